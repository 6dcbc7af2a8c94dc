"""Fuzzing the sans-IO core: hostile server transcripts, a driver that follows the steps, oracles.

Shared by ``tests/test_fuzz.py`` (a short seeded run in the normal suite) and
``tools/fuzz_core.py`` (the long run).  A :class:`Case` is everything one input needs: the
configuration of the :class:`~yaxmpp.protocol.core.ClientProtocol`, the server's bytes (the
whole server side of a session, mutated) and the seed of the driver's own choices (chunk
boundaries, when to call ``send_iq``/``close``/``acknowledge_all``).  :func:`run_case` plays it
and returns the oracle failures:

``a``  an exception escaping ``receive_data()``/``connection_lost()`` or a driver call made in the
       right step (anything not a ``yaxmpp.Error`` is the worst; an ``Error`` escaping
       ``receive_data`` breaks its documented contract too, and is reported as ``a-error``).
``b``  an event after ``StreamClosed``, or not exactly one ``StreamClosed`` once the stream ended.
``c``  an 8-character piece of a secret (the token, base64(login NUL token), a custom
       mechanism's secret) in an error's message/args/repr/fields or a formatted DEBUG log line.
``e``  bytes written after our ``</stream:stream>``; ``<auth>``/``<response>`` written before TLS.
``h``  trust: an Authenticated event on a stream that is not TLS; pushes, stanzas or iq answers
       before authentication; a push from a user other than the bound account.
``g``  (differential, optional) the same bytes fed whole and in random pieces give different
       events.

The oracles only search text: they do not depend on how the library redacts.
"""

from __future__ import annotations

import base64
import inspect
import logging
import random
import traceback
from collections import Counter
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from yaxmpp.errors import ConnectionLost, Error, LocalProtocolError
from yaxmpp.protocol import ns
from yaxmpp.protocol.core import ClientProtocol, VersionInfo
from yaxmpp.protocol.events import (
    Authenticated,
    Bound,
    CompressionRequested,
    Event,
    IqResponse,
    PushesReceived,
    RequestAnswered,
    SessionStarted,
    StanzaReceived,
    StreamClosed,
    TLSRequested,
)
from yaxmpp.protocol.limits import Limits
from yaxmpp.protocol.sasl import Mechanism, XYandexOAuth

LOGIN = "test"
#: Not the token of the other tests: the library masks every token it was ever given (a process-wide
#: registry), so a shared one would make what this suite sees depend on which tests ran first.
TOKEN = "9f3b2a7de41c6085b7f2c9e1a4d36b58"
PAYLOAD = base64.b64encode(LOGIN.encode() + b"\0" + TOKEN.encode()).decode("ascii")
#: The secret of the custom challenge mechanism (never registered anywhere by the library).
CUSTOM_SECRET = "Zq9tK3vXpL0wRb7NmQ2s"
CUSTOM_NAME = "X-FUZZ-CHALLENGE"
PIECE = 8

SECRETS = {"token": TOKEN, "payload": PAYLOAD, "custom": CUSTOM_SECRET}


def _pieces(secret: str) -> List[str]:
    return sorted({secret[i : i + PIECE] for i in range(len(secret) - PIECE + 1)})


Pieces = List[Tuple[str, str, str]]
YANDEX_PIECES: Pieces = [(n, s, p) for n, s in SECRETS.items() if n != "custom" for p in _pieces(s)]
CUSTOM_PIECES: Pieces = [("custom", CUSTOM_SECRET, p) for p in _pieces(CUSTOM_SECRET)]


def find_leak(text: str, pieces: Pieces = YANDEX_PIECES) -> Optional[Tuple[str, str]]:
    """(secret name, "full"/"piece") of the first secret piece found in ``text``, else None."""
    for name, secret, piece in pieces:
        if piece in text:
            return name, ("full" if secret in text else "piece")
    return None


class ChallengeMechanism(Mechanism):
    """A custom mechanism that answers every challenge (with its secret, as a real one would)."""

    name = CUSTOM_NAME

    def __init__(self, initial: Optional[bytes]) -> None:
        self._initial = initial
        self.challenges = 0

    def initial_response(self) -> Optional[bytes]:
        return self._initial

    def challenge(self, data: bytes) -> bytes:
        self.challenges += 1
        return b"n=" + CUSTOM_SECRET.encode() + b",c=" + str(len(data)).encode()

    def secrets(self) -> Sequence[str]:
        return (CUSTOM_SECRET,)


# -- values a hostile server echoes ------------------------------------------------------------


def _charref(text: str, rng: random.Random) -> str:
    """``text`` with one character written as a character reference."""
    if not text:
        return text
    i = rng.randrange(len(text))
    return text[:i] + "&#%d;" % ord(text[i]) + text[i + 1 :]


def _secret_echo(rng: random.Random) -> str:
    secret = rng.choice((TOKEN, TOKEN, PAYLOAD, CUSTOM_SECRET))
    half = len(secret) // 2
    choice = rng.randrange(7)
    if choice == 0:
        return secret
    if choice == 1:
        return secret[:half]
    if choice == 2:
        return secret[half:]
    if choice == 3:
        start = rng.randrange(len(secret) - PIECE + 1)
        return secret[start : start + rng.randint(PIECE, len(secret) - start)]
    if choice == 4:
        return "x" * rng.randint(1, 60) + secret
    if choice == 5:
        return secret + " " + secret[:half]
    return rng.choice(("Bearer ", "token=", "")) + secret


HOSTILE_TEXTS = [
    "",
    " ",
    "\n\t ",
    "plain",
    "ü日本\U0001F600",
    "a]]>b",
    "--",
    "&amp;&lt;&gt;&quot;&apos;",
    "&#x10FFFF;",
    "&#0;",
    "&#xD800;",
    "&lol;",
    "%pe;",
]


def value(rng: random.Random, *, attr: bool = True, allow_secret: bool = True) -> str:
    """A value for an attribute or a text: ordinary, odd, huge, or an echo of a secret."""
    r = rng.random()
    if allow_secret and r < 0.25:
        text = _secret_echo(rng)
        return _charref(text, rng) if rng.random() < 0.2 else text
    if r < 0.55:
        return rng.choice(("ya.ru", "test@ya.ru", "test@ya.ru/YaDisk-client", "q1", "1", "disk.ya.ru", "x"))
    if r < 0.75:
        text = rng.choice(HOSTILE_TEXTS)
        if attr and "<" in text:
            text = text.replace("<", "&lt;")
        return text
    if r < 0.8:
        return "v" * rng.choice((100, 1000, 5000, 17000))
    return "".join(rng.choice("abcXYZ019-_./@ ") for _ in range(rng.randint(1, 20)))


def name(rng: random.Random) -> str:
    """An element or attribute local name, sometimes carrying a secret."""
    r = rng.random()
    if r < 0.2:
        return "x" + "".join(c for c in _secret_echo(rng) if c.isalnum())
    if r < 0.3:
        return "n" * rng.choice((50, 2000, 20000))
    return rng.choice(("x", "op", "item", "body", "a-b", "a.b", "q_1", "diff", "undefined-condition"))


def q(text: str) -> str:
    """Escape for a single-quoted attribute (keeping character references as written)."""
    return text.replace("<", "&lt;").replace("'", "&apos;").replace("\n", "&#10;")


def t(text: str) -> str:
    return text.replace("<", "&lt;")


# -- the server's side of a session ------------------------------------------------------------

SASL = ns.SASL
DECLS = ("<?xml version='1.0'?>", '<?xml version="1.0" encoding="UTF-8"?>', "", "<?xml version='1.0'?>\n")


ENCODINGS = ("utf-16", "UTF8", "utf-8", "latin-1", "cp1251", "shift_jis", "x-bogus", "rot13", "ascii")


def header(rng: random.Random, sid: Optional[str] = None) -> str:
    if sid is None:
        sid = value(rng) if rng.random() < 0.3 else str(rng.randrange(10**10))
    attrs = [
        "xmlns='jabber:client'",
        "xmlns:stream='http://etherx.jabber.org/streams'",
        "id='%s'" % q(sid),
        "from='%s'" % q(value(rng) if rng.random() < 0.1 else "ya.ru"),
        "version='1.0'",
        "xml:lang='en'",
    ]
    if rng.random() < 0.3:
        rng.shuffle(attrs)
    if rng.random() < 0.05:
        attrs.append("%s='%s'" % (name(rng), q(value(rng))))
    decl = rng.choice(DECLS)
    if rng.random() < 0.03:
        decl = "<?xml version='1.0' encoding='%s'?>" % rng.choice(ENCODINGS)
    return decl + "<stream:stream %s>" % " ".join(attrs) + rng.choice(("", "\n", " "))


def mechanisms(rng: random.Random, ours: str) -> str:
    r = rng.random()
    if r < 0.15:
        return ""
    if r < 0.3:
        return "<mechanisms xmlns='%s'/>" % SASL
    names = [ours]
    if rng.random() < 0.3:
        names.append(rng.choice(("PLAIN", "SCRAM-SHA-1", value(rng))))
    if rng.random() < 0.1:
        names = [rng.choice(("PLAIN", value(rng)))]
    rng.shuffle(names)
    return "<mechanisms xmlns='%s'>%s</mechanisms>" % (SASL, "".join("<mechanism>%s</mechanism>" % t(n) for n in names))


def compression(rng: random.Random) -> str:
    methods = ["zlib"] if rng.random() < 0.85 else [rng.choice(("lzw", value(rng)))]
    return "<compression xmlns='%s'>%s</compression>" % (
        ns.COMPRESS_FEATURE,
        "".join("<method>%s</method>" % t(m) for m in methods),
    )


def features(rng: random.Random, *parts: str) -> str:
    inner = [p for p in parts if p]
    if rng.random() < 0.1:
        inner.append("<%s xmlns='urn:x'>%s</%s>" % ("x", t(value(rng)), "x"))
    sep = rng.choice(("", "\n", "\n  "))
    return "<stream:features>" + sep + sep.join(inner) + sep + "</stream:features>"


def compress_answer(rng: random.Random) -> Tuple[str, bool]:
    """(the answer to <compress/>, whether it accepts)."""
    if rng.random() < 0.7:
        return "<compressed xmlns='%s'/>" % ns.COMPRESS, True
    cond = rng.choice(("setup-failed", "unsupported-method", name(rng)))
    return "<failure xmlns='%s'><%s/></failure>" % (ns.COMPRESS, cond), False


def stream_error(rng: random.Random) -> str:
    cond = rng.choice(("conflict", "see-other-host", "system-shutdown", "policy-violation", name(rng)))
    body = "<%s xmlns='%s'%s" % (cond, ns.STREAM_ERRORS, "/>" if cond != "see-other-host" else ">%s</%s>" % (t(value(rng)), cond))
    if rng.random() < 0.6:
        body += "<text xmlns='%s'>%s</text>" % (ns.STREAM_ERRORS, t(value(rng, attr=False)))
    return "<stream:error>%s</stream:error>" % body


def stanza_error(rng: random.Random) -> str:
    cond = rng.choice(("service-unavailable", "item-not-found", "forbidden", name(rng)))
    text = ""
    if rng.random() < 0.5:
        text = "<text xmlns='%s'>%s</text>" % (ns.STANZAS, t(value(rng, attr=False)))
    return "<error type='%s'><%s xmlns='%s'/>%s</error>" % (
        q(rng.choice(("cancel", "wait", "auth", value(rng)))),
        cond,
        ns.STANZAS,
        text,
    )


def push(rng: random.Random, iq_id: str) -> str:
    sender = rng.choice((" from='ya.ru'", "", " from='test@ya.ru'", " from='mallory@ya.ru/x'", " from='%s'" % q(value(rng))))
    ops = "".join(
        "<op type='%s' key='/disk/%s' fid='%d' size='%s'/>"
        % (rng.choice(("new", "changed", "deleted")), q(value(rng)), rng.randrange(10**6), q(rng.choice(("1", "-1", "x", "99999999999999999999"))))
        for _ in range(rng.randint(0, 3))
    )
    return "<iq type='set' id='%s'%s><query xmlns='yandex:push:disk'><diff>%s</diff></query></iq>" % (q(iq_id), sender, ops)


def established_stanza(rng: random.Random, counter: List[int]) -> str:
    """One stanza of an open session: pushes, pings, version queries, answers to our iqs..."""
    counter[0] += 1
    n = counter[0]
    r = rng.random()
    iq_id = ("p%d" % n) if rng.random() < 0.8 else value(rng)
    if r < 0.35:
        return push(rng, iq_id)
    if r < 0.45:
        return "<iq from='ya.ru' type='get' to='test@ya.ru/YaDisk-client' id='%s'><ping xmlns='urn:xmpp:ping'/></iq>" % q(iq_id)
    if r < 0.5:
        return "<iq from='ya.ru' type='get' id='%s'><query xmlns='jabber:iq:version'/></iq>" % q(iq_id)
    if r < 0.55:
        return "<iq type='%s' id='%s' from='%s'><%s xmlns='urn:x:%s'/></iq>" % (
            rng.choice(("get", "set")), q(iq_id), q(value(rng)), name(rng), q(value(rng))[:40].replace("'", "")
        )
    if r < 0.75:
        # An answer to a request the driver may have sent (its ids are yx1, yx2, ...).
        our = "yx%d" % rng.randint(1, 6)
        if rng.random() < 0.6:
            return "<iq type='result' id='%s' from='test@ya.ru'><x xmlns='urn:x'>%s</x></iq>" % (our, t(value(rng, attr=False)))
        return "<iq type='error' id='%s'>%s</iq>" % (our, stanza_error(rng))
    if r < 0.85:
        return "<message from='%s'><body>%s</body></message>" % (q(value(rng)), t(value(rng, attr=False)))
    if r < 0.9:
        return "<presence from='%s'/>" % q(value(rng))
    if r < 0.95:
        return rng.choice((" ", "\n", "\r\n\t"))
    return "<iq type='result' id='%s'/>" % q(iq_id)


def transcript(rng: random.Random, cfg: Dict[str, Any]) -> List[bytes]:
    """The whole server side of one session as a list of stanza-sized segments."""
    seg: List[str] = []
    ours = CUSTOM_NAME if cfg["mech"] == "custom" else "X-YANDEX-OAUTH"
    compressing = cfg["compress"]
    compressed = False
    if not cfg["tls"]:
        seg.append(header(rng))
        starttls = "<starttls xmlns='%s'%s" % (ns.TLS, "><required/></starttls>" if rng.random() < 0.3 else "/>")
        if rng.random() < 0.04:
            starttls = ""
        seg.append(features(rng, starttls, compression(rng) if rng.random() < 0.5 else "", "<mechanisms xmlns='%s'/>" % SASL))
        if rng.random() < 0.05:
            seg.append("<failure xmlns='%s'/>" % ns.TLS)
            return _finish(rng, seg, cfg)
        seg.append("<proceed xmlns='%s'/>" % ns.TLS)
    # Over TLS (after STARTTLS or from the start).
    seg.append(header(rng))
    offer_before = compressing and rng.random() < 0.5
    seg.append(features(rng, compression(rng) if (offer_before or rng.random() < 0.2) else "", mechanisms(rng, ours)))
    if offer_before:
        answer, accepted = compress_answer(rng)
        seg.append(answer)
        if accepted:
            compressed = True
            seg.append(header(rng))
            seg.append(features(rng, mechanisms(rng, ours)))
    # SASL.
    if cfg["mech"] == "custom" or rng.random() < 0.1:
        for _ in range(rng.randint(0, 3)):
            data = rng.choice((b"", b"r=abc,s=xyz", CUSTOM_SECRET.encode(), TOKEN.encode()[:16], bytes(rng.randrange(256) for _ in range(12))))
            text = base64.b64encode(data).decode() if rng.random() < 0.9 else rng.choice(("not base64!", "=", "AAA"))
            seg.append("<challenge xmlns='%s'>%s</challenge>" % (SASL, text))
    if rng.random() < 0.08:
        cond = rng.choice(("not-authorized", "aborted", name(rng)))
        text = "<text>%s</text>" % t(value(rng, attr=False)) if rng.random() < 0.6 else ""
        seg.append("<failure xmlns='%s'><%s/>%s</failure>" % (SASL, cond, text))
        return _finish(rng, seg, cfg)
    extra = base64.b64encode(b"v=ok").decode() if rng.random() < 0.2 else ""
    seg.append("<success xmlns='%s'>%s</success>" % (SASL, extra) if extra else "<success xmlns='%s'/>" % SASL)
    # After authentication.
    seg.append(header(rng))
    offer_after = compressing and not compressed and rng.random() < 0.6
    session = "<session xmlns='%s'>%s</session>" % (ns.SESSION, "<optional/>" if rng.random() < 0.3 else "") if rng.random() < 0.7 else ""
    seg.append(features(rng, "<bind xmlns='%s'/>" % ns.BIND, session, compression(rng) if offer_after else ""))
    if offer_after:
        answer, accepted = compress_answer(rng)
        seg.append(answer)
        if accepted:
            seg.append(header(rng))
            seg.append(features(rng, "<bind xmlns='%s'/>" % ns.BIND, session))
    counter = [0]
    if rng.random() < 0.2:
        seg.append(established_stanza(rng, counter))  # a ping or push before the bind result
    if rng.random() < 0.05:
        seg.append("<iq type='error' id='bind_1'>%s</iq>" % stanza_error(rng))
        return _finish(rng, seg, cfg)
    jid = "test@ya.ru/YaDisk-client" if rng.random() < 0.8 else value(rng, attr=False)
    seg.append(
        "<iq xmlns='jabber:client' type='result' id='bind_1'><bind xmlns='%s'><jid>%s</jid></bind></iq>" % (ns.BIND, t(jid))
    )
    if rng.random() < 0.1:
        seg.append("<iq type='error' id='session_1'>%s</iq>" % stanza_error(rng))
    else:
        seg.append("<iq type='result' id='session_1'/>")
    for _ in range(rng.randint(0, cfg.get("stanzas", 12))):
        seg.append(established_stanza(rng, counter))
    return _finish(rng, seg, cfg)


def _finish(rng: random.Random, seg: List[str], cfg: Dict[str, Any]) -> List[bytes]:
    r = rng.random()
    if r < 0.25:
        seg.append(stream_error(rng))
    if r < 0.8:
        seg.append("</stream:stream>")
    out = [s.encode("utf-8") for s in seg]
    if rng.random() < 0.3:
        out.append(bytes(rng.randrange(256) for _ in range(rng.randint(1, 8))))  # garbage after
    return out


# -- mutations ---------------------------------------------------------------------------------

TOKENS = [
    b"<",
    b">",
    b"/>",
    b"</",
    b"]]>",
    b"<![CDATA[",
    b"<![CDATA[x]]>",
    b"<!--",
    b"-->",
    b"<!-- c -->",
    b"<?",
    b"?>",
    b"<?pi x?>",
    b"<?xml version='1.0' encoding='utf-16'?>",
    b"<?xml version='1.0'?>",
    b"<!DOCTYPE stream:stream>",
    b"<!DOCTYPE x [<!ENTITY a 'bbbbbbbb'>]>",
    b"<!ENTITY e SYSTEM 'file:///etc/passwd'>",
    b"&a;",
    b"&lol;",
    b"&amp;",
    b"&#0;",
    b"&#x10FFFF;",
    b"&#xD800;",
    b"&",
    b"'",
    b'"',
    b"=",
    b"\x00",
    b"\xff\xfe",
    b"\xc3",
    b"\xef\xbb\xbf",
    b"xmlns='jabber:client'",
    b"xmlns:stream='urn:wrong'",
    b"xmlns:x='urn:x' x:a='1'",
    b" a='1' a='2'",
    b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>",
    b"</stream:stream>",
    b"<stream:features/>",
    b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
    b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>",
    b"<compressed xmlns='http://jabber.org/protocol/compress'/>",
    b"<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
    b"\x16\x03\x01\x00\xa5",
    TOKEN.encode(),
    TOKEN[:16].encode(),
    TOKEN[16:].encode(),
    PAYLOAD.encode(),
    PAYLOAD[:26].encode(),
    CUSTOM_SECRET.encode(),
    b"<x" + TOKEN.encode() + b"/>",
]


def mutate_segments(rng: random.Random, segs: List[bytes]) -> List[bytes]:
    segs = list(segs)
    for _ in range(rng.choice((0, 0, 1, 1, 2, 3))):
        if not segs:
            break
        i = rng.randrange(len(segs))
        op = rng.randrange(5)
        if op == 0:
            segs.insert(i, segs[i])  # duplicate
        elif op == 1 and i + 1 < len(segs):
            segs[i], segs[i + 1] = segs[i + 1], segs[i]  # swap neighbours
        elif op == 2:
            del segs[i]
        elif op == 3:
            segs[i] = segs[i][: rng.randrange(len(segs[i]) + 1)]  # truncate one
        else:
            segs.insert(rng.randrange(len(segs) + 1), segs.pop(i))  # move
    return segs


def _position(rng: random.Random, data: bytearray) -> int:
    """A position, often right after a '<' or before a '>' or a quote."""
    if data and rng.random() < 0.6:
        for _ in range(4):
            i = rng.randrange(len(data))
            if data[i] in b"<>'\"":
                return i + rng.randrange(2)
    return rng.randrange(len(data) + 1)


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.choice((0, 1, 1, 1, 2, 2, 3, 5))):
        op = rng.random()
        if op < 0.2 and buf:
            i = rng.randrange(len(buf))
            buf[i] = rng.randrange(256) if rng.random() < 0.5 else buf[i] ^ (1 << rng.randrange(8))
        elif op < 0.6:
            i = _position(rng, buf)
            buf[i:i] = rng.choice(TOKENS)
        elif op < 0.7 and buf:
            i = rng.randrange(len(buf))
            del buf[i : i + rng.randint(1, 32)]
        elif op < 0.78 and buf:
            i = rng.randrange(len(buf))
            j = min(len(buf), i + rng.randint(1, 200))
            buf[j:j] = buf[i:j]
        elif op < 0.86:
            i = _position(rng, buf)
            depth = rng.choice((3, 10, 40, 200, 3000))
            buf[i:i] = b"<a>" * depth + (b"</a>" * depth if rng.random() < 0.5 else b"")
        elif op < 0.92:
            i = _position(rng, buf)
            size = rng.choice((100, 5000, 17000, 70000))
            buf[i:i] = b" big='" + b"A" * size + b"'"
        elif buf:
            del buf[rng.randrange(len(buf)) :]  # truncate
    return bytes(buf)


# -- a case and its run ------------------------------------------------------------------------


class Case:
    """One fuzz input: the core's configuration, the server's bytes, the driver's seed."""

    __slots__ = ("cfg", "data", "driver_seed")

    def __init__(self, cfg: Dict[str, Any], data: bytes, driver_seed: int) -> None:
        self.cfg = cfg
        self.data = data
        self.driver_seed = driver_seed

    def literal(self) -> str:
        return "Case(%r, %r, %r)" % (self.cfg, self.data, self.driver_seed)


def make_case(seed: int, index: int) -> Case:
    rng = random.Random("%d:%d" % (seed, index))
    r = rng.random()
    limits = None
    if r < 0.15:
        limits = (rng.choice((1024, 4096, 1 << 20)), rng.choice((4, 6, 32)), rng.choice((1024, 4096, 16 << 10)))
    cfg: Dict[str, Any] = {
        "tls": rng.random() < 0.4,
        "compress": rng.random() < 0.5,
        "mech": "custom" if rng.random() < 0.25 else "yandex",
        "initial": rng.choice((None, b"", b"hi")),
        "debug": rng.random() < 0.9,
        "limits": limits,
        "stanzas": 12,
        "diff": rng.random() < 0.25,
    }
    segs = transcript(rng, cfg)
    if rng.random() < 0.8:
        segs = mutate_segments(rng, segs)
    data = b"".join(segs)
    if rng.random() < 0.85:
        data = mutate_bytes(rng, data)
    return Case(cfg, data, rng.randrange(1 << 30))


#: How often each event type (and a few paths) was reached, over every case run in this process.
REACHED: "Counter[str]" = Counter()


class Failure:
    __slots__ = ("oracle", "signature", "detail")

    def __init__(self, oracle: str, signature: str, detail: str) -> None:
        self.oracle = oracle
        self.signature = signature
        self.detail = detail

    def __repr__(self) -> str:
        return "Failure(%s: %s)" % (self.signature, self.detail[:300])


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: List[str] = []
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


_capture = _Capture()


def install_log_capture() -> None:
    """Catch the ``yaxmpp`` and ``yaxmpp.xml`` records (both reach the ``yaxmpp`` handlers)."""
    logging.getLogger("yaxmpp").addHandler(_capture)
    xml = logging.getLogger("yaxmpp.xml")
    if not xml.propagate:  # pragma: no cover
        xml.addHandler(_capture)


def remove_log_capture() -> None:
    logging.getLogger("yaxmpp").removeHandler(_capture)
    logging.getLogger("yaxmpp.xml").removeHandler(_capture)


def _set_level(debug: bool) -> Tuple[int, int]:
    a, b = logging.getLogger("yaxmpp"), logging.getLogger("yaxmpp.xml")
    old = (a.level, b.level)
    a.setLevel(logging.DEBUG if debug else logging.WARNING)
    b.setLevel(logging.NOTSET)
    return old


def _error_texts(error: BaseException) -> List[Tuple[str, str]]:
    texts = [("str", str(error)), ("repr", repr(error))]
    for i, arg in enumerate(error.args):
        texts.append(("args[%d]" % i, repr(arg)))
    for attr in ("condition", "text", "other_host", "what", "type", "step"):
        v = getattr(error, attr, None)
        if isinstance(v, str):
            texts.append((attr, v))
    # What a printed traceback adds: the exceptions chained to it (their frames are our code).
    seen = {id(error)}
    link = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        texts.append(("chained %s" % type(link).__name__, "%s %r" % (link, link)))
        link = link.__cause__ or (None if link.__suppress_context__ else link.__context__)
    return texts


def _where(exc: BaseException) -> str:
    """The exception and the last frames it went through."""
    return "%s: %s\n%s" % (type(exc).__name__, exc, "".join(traceback.format_tb(exc.__traceback__, limit=-4)))


def _short(text: str, n: int = 200) -> str:
    return text if len(text) <= n else text[:n] + "..."


def _norm(message: str) -> str:
    """An error message with its variable parts blurred, to tell distinct failures apart."""
    import re

    message = re.sub(r"encoding: .*", "encoding: _", message)
    message = re.sub(r"'[^']*'|\"[^\"]*\"", "'_'", message)
    message = re.sub(r"<[^<>]*>", "<_>", message)
    message = re.sub(r"\d+", "N", message)
    return message[:80]


class Run:
    """Drives one ClientProtocol through a case, like a real driver would, checking as it goes."""

    def __init__(self, case: Case, *, actions: bool = True) -> None:
        self.case = case
        self.actions = actions
        self.failures: List[Failure] = []
        self.events: List[Event] = []
        self.closed_count = 0
        self.after_close: List[Event] = []
        self.wire: List[Tuple[bool, bytes]] = []
        self.rng = random.Random(case.driver_seed)
        cfg = case.cfg
        if cfg["mech"] == "custom":
            mech: Mechanism = ChallengeMechanism(cfg["initial"])
            self.pieces = CUSTOM_PIECES
        else:
            mech = XYandexOAuth(LOGIN, TOKEN)
            self.pieces = YANDEX_PIECES
        limits = Limits(*cfg["limits"]) if cfg["limits"] else None
        self.proto = ClientProtocol(
            mech, tls=cfg["tls"], compress=cfg["compress"], limits=limits, version=VersionInfo("fuzz", "1", "os")
        )
        # The seed's ids (bind_1, session_1) and yx1, yx2... for requests, so that transcripts
        # can answer them; the core's own ids are random (see tests/core_harness.py).
        counter = iter(range(1, 1 << 30))
        self.proto._new_id = lambda prefix: prefix + "1" if prefix else "yx%d" % next(counter)
        self.unacked: List[PushesReceived] = []
        forget = getattr(self.proto, "forget", None)
        self.forget: Optional[Callable[[str], Any]] = None
        if forget is not None:
            try:
                params = list(inspect.signature(forget).parameters.values())
                if len(params) >= 1 and all(p.default is not p.empty for p in params[1:]):
                    self.forget = forget
            except (TypeError, ValueError):  # pragma: no cover
                pass
        self.sent_ids: List[str] = []
        self.closed_in_turn = False
        self.authenticated = False
        self.jid: Optional[str] = None

    # -- checks ----------------------------------------------------------------------------

    def fail(self, oracle: str, signature: str, detail: str) -> None:
        self.failures.append(Failure(oracle, signature, detail))

    def call(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except Error as exc:
            kind = "a-error" if what in ("receive_data", "connection_lost") or not isinstance(exc, LocalProtocolError) else "a-driver"
            self.fail(kind, "%s:%s raised %s: %s" % (kind, what, type(exc).__name__, _norm(str(exc))), _where(exc))
            self.check_error(exc, "raised by %s" % what)
        except Exception as exc:  # noqa: BLE001 - that is the point
            self.fail("a", "a:%s raised %s: %s" % (what, type(exc).__name__, _norm(str(exc))), _where(exc))
            self.check_error(exc, "raised by %s" % what)
        return None

    def check_error(self, error: BaseException, where: str) -> None:
        for field, text in _error_texts(error):
            leak = find_leak(text, self.pieces)
            if leak is not None:
                self.fail(
                    "c",
                    "c:error-%s:%s:%s:%s" % (field.split(" ")[0], leak[0], leak[1], type(error).__name__),
                    "%s %s: %s" % (where, field, _short(text, 400)),
                )
                return

    def take(self, events: Optional[List[Event]], what: str) -> List[Event]:
        if not events:
            return []
        for event in events:
            if self.closed_count:
                self.after_close.append(event)
                self.fail("b", "b:event-after-StreamClosed:%s:%s" % (what, type(event).__name__), repr(event)[:300])
            REACHED[type(event).__name__] += 1
            if isinstance(event, StreamClosed):
                self.closed_count += 1
                REACHED["closed:" + type(event.error).__name__] += 1
                if event.error is not None:
                    self.check_error(event.error, "StreamClosed.error")
                    if not isinstance(event.error, Error):
                        self.fail("a", "a:StreamClosed.error-not-Error:%s" % type(event.error).__name__, repr(event.error))
            elif isinstance(event, Authenticated):
                self.authenticated = True
                if not self.proto.tls:
                    self.fail("h", "h:authenticated-without-TLS", repr(event))
            elif isinstance(event, Bound):
                self.jid = event.jid
            elif isinstance(event, (PushesReceived, StanzaReceived, IqResponse)):
                if not self.authenticated:
                    self.fail("h", "h:%s-before-authentication" % type(event).__name__, repr(event)[:300])
                if isinstance(event, PushesReceived):
                    own = (self.jid or "").partition("/")[0].lower()
                    for sender in event.senders:
                        if sender and "@" in sender and sender.partition("/")[0].lower() != own:
                            self.fail("h", "h:push-from-another-user", "sender %r, bound %r" % (sender, self.jid))
            self.events.append(event)
        return events

    def drain(self) -> None:
        out = self.proto.data_to_send()
        if out:
            self.wire.append((self.proto.tls, out))

    # -- the driver ------------------------------------------------------------------------

    def feed(self, chunk: bytes) -> List[Event]:
        events = self.take(self.call("receive_data", self.proto.receive_data, chunk), "receive_data")
        self.drain()
        return events

    def react(self, events: List[Event]) -> Optional[bytes]:
        """Do what a driver does for the events; returns bytes to feed before the rest (TLS leftover)."""
        leftover = None
        rng = self.rng
        for event in events:
            if isinstance(event, TLSRequested):
                leftover = event.leftover
                self.drain()
                if self.actions and rng.random() < 0.02:
                    self.closed_in_turn = True
                    self.call("close", self.proto.close)  # the user closes during the handshake
                    self.drain()
                    return None
                self.call("tls_established", self.proto.tls_established)
                self.drain()
            elif isinstance(event, CompressionRequested):
                self.drain()
                self.call("compression_established", self.proto.compression_established)
                self.drain()
            elif isinstance(event, SessionStarted) and self.actions:
                r = rng.random()
                if r < 0.6:
                    for _ in range(rng.randint(1, 3)):
                        self._send_iq()  # a real driver subscribes right after the session starts
                elif r < 0.75:
                    self.call("close", self.proto.close)
                self.drain()
            elif isinstance(event, PushesReceived):
                if not self.actions or rng.random() < 0.7:
                    self.call("acknowledge_all", self.proto.acknowledge_all, event, self._taken(event))
                    self.drain()
                else:
                    self.unacked.append(event)
        return leftover

    def _taken(self, run: PushesReceived) -> int:
        if not self.actions:
            return len(run)
        return rng_choice_taken(self.rng, len(run))

    def act(self) -> None:
        """Now and then, between reads, a call of the driver's own."""
        rng = self.rng
        proto = self.proto
        r = rng.random()
        if r < 0.15:
            self._send_iq()
        elif r < 0.2 and self.unacked:
            run = self.unacked.pop(rng.randrange(len(self.unacked)))
            self.call("acknowledge_all", proto.acknowledge_all, run, self._taken(run))
        elif r < 0.22:
            self.call("close", proto.close)
        elif r < 0.24 and self.forget is not None and self.sent_ids:
            self.call("forget", self.forget, rng.choice(self.sent_ids))
        self.drain()

    def _send_iq(self) -> None:
        rng = self.rng
        proto = self.proto
        if proto.established and not proto.close_sent:  # the only step where stanzas may go out
            payload = rng.choice(("", "<ping xmlns='urn:xmpp:ping'/>", "<s xmlns='yandex:push:disk'/>"))
            to = rng.choice((None, "ya.ru", "test@ya.ru"))
            iq_id = self.call("send_iq", proto.send_iq, rng.choice(("get", "set")), payload, to)
            if iq_id is not None:
                self.sent_ids.append(iq_id)

    def chunks(self, size: int) -> Callable[[], int]:
        rng = self.rng
        mode = rng.random()
        if mode < 0.2:
            return lambda: size or 1
        if mode < 0.28 and size < 6000:
            return lambda: 1
        if mode < 0.5:
            return lambda: rng.randint(1, 16)
        if mode < 0.8:
            return lambda: rng.randint(1, 512)
        return lambda: rng.randint(1, max(1, size))

    def play(self) -> List[Failure]:
        proto = self.proto
        rng = self.rng
        old = _set_level(self.case.cfg["debug"])
        _capture.lines = []
        install_log_capture()
        try:
            self.call("initiate", proto.initiate)
            self.drain()
            data = self.case.data
            pos = 0
            size = self.chunks(len(data))
            pipelined = self.actions and rng.random() < 0.1  # a server that sends on past <compressed/>
            while pos < len(data):
                if self.actions and rng.random() < 0.3:
                    self.act()
                n = size() if self.actions else len(data)
                if not pipelined:
                    n = _until_compressed(data, pos, n)
                chunk = data[pos : pos + n]
                pos += len(chunk)
                events = self.feed(chunk)
                leftover = self.react(events)
                if leftover:
                    data = leftover + data[pos:]
                    pos = 0
                if proto.closed and self.actions and rng.random() < 0.5:
                    break  # a real driver stops reading; the rest checks the core ignores more
            # The end: the server's end of file, or the transport breaking.
            end = rng.random() if self.actions else 0.0
            if end < 0.5:
                self.feed(b"")
            elif end < 0.8:
                self.take(self.call("connection_lost", proto.connection_lost, None), "connection_lost")
            else:
                self.take(
                    self.call("connection_lost", proto.connection_lost, ConnectionLost("reset by peer")), "connection_lost"
                )
            for run in self.unacked:
                self.call("acknowledge_all", proto.acknowledge_all, run, len(run))
            self.drain()
            # The stream has ended: exactly one StreamClosed, and silence after it.
            if self.closed_count != 1:
                how = ":after-close()-during-TLS-step" if self.closed_in_turn else ""
                self.fail("b", "b:StreamClosed-count-%d%s" % (min(self.closed_count, 2), how), "events: %s" % _summary(self.events)[-600:])
            if not proto.closed:
                self.fail("b", "b:not-closed-after-end", "step %s" % proto.step)
            self.take(self.call("receive_data", proto.receive_data, b"<iq type='get' id='late'><ping xmlns='urn:xmpp:ping'/></iq>"), "late-data")
            self.take(self.call("connection_lost", proto.connection_lost, None), "late-connection_lost")
            self.drain()
            self.check_wire()
            self.check_logs()
            mech = proto.mechanism
            if isinstance(mech, ChallengeMechanism) and mech.challenges:
                REACHED["challenge-answered"] += 1
            if proto.compressed:
                REACHED["compressed"] += 1
            if self.sent_ids:
                REACHED["send_iq"] += 1
        finally:
            remove_log_capture()
            _capture.lines = []
            logging.getLogger("yaxmpp").setLevel(old[0])
            logging.getLogger("yaxmpp.xml").setLevel(old[1])
        return self.failures

    def check_wire(self) -> None:
        wire = b"".join(out for _, out in self.wire)
        close = wire.find(b"</stream:stream>")
        if close >= 0 and wire[close + 16 :]:
            self.fail("e", "e:bytes-after-our-close", _short(repr(wire[close : close + 200])))
        for tls, out in self.wire:
            # Before TLS the client may echo what the server sent (an iq error to its "from"),
            # but never sends credentials of its own.
            if not tls and (b"<auth " in out or b"<auth>" in out or b"<response" in out):
                self.fail("e", "e:credentials-on-plain-wire", _short(out.decode("utf-8", "replace")))
                break

    def check_logs(self) -> None:
        lines = _capture.lines
        if not lines:
            return
        joined = "\n".join(lines)
        if find_leak(joined, self.pieces) is None:
            return
        for line in lines:
            leak = find_leak(line, self.pieces)
            if leak is not None:
                kind = line.split(": ", 1)[1].split(" ", 1)[0] if ": " in line else "?"
                self.fail("c", "c:log:%s:%s:%s" % (leak[0], leak[1], kind[:12]), _short(line, 400))
                return


COMPRESSED = b"<compressed xmlns='%s'/>" % ns.COMPRESS.encode()


def _until_compressed(data: bytes, pos: int, n: int) -> int:
    """``n``, or less so that a read ends right after a ``<compressed/>`` (even one begun in
    an earlier read): the server sends nothing more until our compressed stream header."""
    size = len(COMPRESSED)
    at = data.find(COMPRESSED, max(0, pos - size + 1), pos + n + size)
    while at >= 0 and at + size <= pos:
        at = data.find(COMPRESSED, at + 1, pos + n + size)
    if at < 0:
        return n
    return max(1, min(n, at + size - pos))


def rng_choice_taken(rng: random.Random, n: int) -> int:
    return rng.choice((n, n, n, 0, rng.randint(0, n), n + 1))


def _summary(events: Sequence[Event]) -> str:
    parts = []
    for e in events:
        if isinstance(e, StreamClosed):
            parts.append("StreamClosed(%s)" % type(e.error).__name__)
        elif isinstance(e, (RequestAnswered, IqResponse)):
            parts.append("%s(%s)" % (type(e).__name__, e.iq_id))
        elif isinstance(e, StanzaReceived):
            parts.append("Stanza(%s)" % e.element.tag)
        elif isinstance(e, PushesReceived):
            parts.extend("Push(%s)" % i for i in e.iq_ids)
        else:
            parts.append(type(e).__name__)
    return ", ".join(parts)


def _differential(case: Case) -> Optional[Failure]:
    """Whole versus random pieces, with the same deterministic driver: the same events."""
    whole = Run(case, actions=False)
    whole.play()
    pieces = Run(case, actions=False)
    rng = random.Random(case.driver_seed ^ 0x5EED)
    original = pieces.feed
    proto = pieces.proto
    old = _set_level(case.cfg["debug"])
    try:
        proto.initiate()
        pieces.drain()
        data = case.data
        pos = 0
        while pos < len(data):
            n = _until_compressed(data, pos, rng.randint(1, 64))
            chunk = data[pos : pos + n]
            pos += len(chunk)
            leftover = pieces.react(original(chunk))
            if leftover:
                data = leftover + data[pos:]
                pos = 0
        pieces.feed(b"")
    finally:
        logging.getLogger("yaxmpp").setLevel(old[0])
        logging.getLogger("yaxmpp.xml").setLevel(old[1])
    if any(f.oracle.startswith("a") for f in whole.failures + pieces.failures):
        return None  # an exception escaped (oracle a): what came before it was lost with it
    a, b = _summary(whole.events), _summary(pieces.events)
    if a != b:
        # Where they part.
        i = 0
        while i < min(len(a), len(b)) and a[i] == b[i]:
            i += 1
        ea, eb = _end_kind(whole.events), _end_kind(pieces.events)
        if "markup longer than" in eb and "markup longer than" not in ea:
            kind = "tag-limit-only-when-split"
        elif ea == eb:
            kind = "same-end-other-events:" + ea
        else:
            kind = "%s->%s" % (ea, eb)
        return Failure(
            "g",
            "g:chunking-changes-events:" + kind,
            "whole: ...%s\npieces: ...%s" % (a[max(0, i - 80) :][:400], b[max(0, i - 80) :][:400]),
        )
    return None


def _end_kind(events: Sequence[Event]) -> str:
    last = events[-1] if events else None
    if not isinstance(last, StreamClosed):
        return "open"
    if last.error is None:
        return "clean"
    message = str(last.error)
    if "markup longer than" in message:
        return "markup longer than"
    return type(last.error).__name__


def run_case(case: Case) -> List[Failure]:
    failures = Run(case).play()
    if case.cfg.get("diff"):
        diff = _differential(case)
        if diff is not None:
            failures.append(diff)
    return failures


#: Signature prefixes of failures already reported in /work/notes/fuzz-findings.md (F-numbers there).
KNOWN = [
    ("a:receive_data raised LookupError", "F6"),
    ("a:receive_data raised ValueError: multi-byte", "F6"),
    ("b:StreamClosed-count-0:after-close()-during-TLS-step", "F3"),
    ("c:log:custom:full:SEND", "F2b"),
    ("c:error-str:custom:full", "F2"),
    ("c:", "F1"),
    ("h:StanzaReceived-before-authentication", "F10"),
    ("g:chunking-changes-events:tag-limit-only-when-split", "F5"),
    ("g:chunking-changes-events:same-end-other-events:markup longer than", "F5"),
    ("g:chunking-changes-events:ProtocolError->ConnectionLost", "F7/F8"),
    ("g:chunking-changes-events:ConnectionLost->ProtocolError", "F7/F8"),
    ("g:chunking-changes-events:AuthError->ProtocolError", "F4/F8"),
    ("g:chunking-changes-events:TLSError->ProtocolError", "F4"),
    ("g:chunking-changes-events:StreamError->ProtocolError", "F4"),
    ("g:chunking-changes-events:IqError->ProtocolError", "F4"),
    ("g:chunking-changes-events:markup longer than->", "F5"),
    ("g:chunking-changes-events:same-end-other-events:ProtocolError", "F4"),
]


def known(signature: str) -> str:
    """The finding a failure was reported as, or "" when it is new."""
    for prefix, finding in KNOWN:
        if signature.startswith(prefix):
            return finding
    return ""


def dedupe(failures: Sequence[Failure]) -> Dict[str, Failure]:
    seen: Dict[str, Failure] = {}
    for f in failures:
        seen.setdefault(f.signature, f)
    return seen


def minimize(case: Case, signature: str, budget: int = 4000) -> Case:
    """A smaller case (fewer bytes) that still fails with ``signature``."""

    def fails(data: bytes) -> bool:
        return any(f.signature == signature for f in run_case(Case(case.cfg, data, case.driver_seed)))

    data = case.data
    runs = 0
    size = max(1, len(data) // 2)
    while size >= 1 and runs < budget:
        i = 0
        shrunk = False
        while i < len(data) and runs < budget:
            candidate = data[:i] + data[i + size :]
            runs += 1
            if fails(candidate):
                data = candidate
                shrunk = True
            else:
                i += size
        if not shrunk:
            size //= 2
    return Case(case.cfg, data, case.driver_seed)
