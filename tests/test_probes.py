"""The same raw stanzas to the stand-in server, Prosody and ejabberd, and the same answers (issue 14).

Every probe here runs against :class:`yaxmpp.testing.FakeServer` always, and against the
interop servers of ``tests/peers/peers.sh`` when they run (marker ``interop``; skipped when
they are absent, failed with ``YAXMPP_INTEROP=require``, as in ``tests/test_interop.py``).
A probe talks XML over a raw TLS socket (:class:`RawStream`), so nothing of yaxmpp's client
sits between the stanza and the answer; only the answer's gist is compared (the condition,
the error type, who it is from), not each server's wording.

Left out on purpose, the documented Yandex specifics where the stand-in differs from both
real servers: the features before TLS (``<starttls/>`` without ``<required/>``, zlib and an
empty ``<mechanisms/>``), the numeric stream id (ejabberd's are numeric too, Prosody's are
UUIDs), X-YANDEX-OAUTH, the unsolicited version query and the Disk pushes.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import ssl
import uuid
from typing import Any, Iterator, List, NamedTuple, Optional, Tuple, Union
from xml.etree.ElementTree import Element

import pytest

from yaxmpp.protocol import ns
from yaxmpp.protocol.parser import STREAM_END, StreamHeader, StreamParser
from yaxmpp.testing import FakeServer

from .peers_state import PEERS_DIR, listening, read_state

REQUIRED = os.environ.get("YAXMPP_INTEROP", "") == "require"
DOMAIN = "ya.ru"
USERS = {"test": "testpass", "other": "otherpass"}
DISCO_INFO = "http://jabber.org/protocol/disco#info"
PING = '<ping xmlns="urn:xmpp:ping"/>'
SESSION = '<session xmlns="%s"/>' % ns.SESSION


class Target(NamedTuple):
    """Where a probe connects: the STARTTLS and direct-TLS ports of one server."""

    name: str
    port: int
    tls_port: int
    cafile: str


# -- the servers ---------------------------------------------------------------------------


def _peer(name: str) -> Target:
    state = read_state()
    why = "no %s/peers.env" % PEERS_DIR
    if state is not None:
        key = name.upper()
        target = Target(name, int(state[key + "_PORT"]), int(state[key + "_TLS_PORT"]), state["CA"])
        if listening(target.port) and listening(target.tls_port):
            return target
        why = "nothing on 127.0.0.1:%d" % target.port
    reason = "%s is not running (%s); start it: bash tests/peers/peers.sh start" % (name, why)
    if REQUIRED:
        pytest.fail(reason + " [YAXMPP_INTEROP=require]")
    pytest.skip(reason)


TARGETS = [
    pytest.param("standin", id="standin"),
    pytest.param("prosody", id="prosody", marks=pytest.mark.interop),
    pytest.param("ejabberd", id="ejabberd", marks=pytest.mark.interop),
]


@pytest.fixture(params=TARGETS)
def target(request: Any) -> Iterator[Target]:
    if request.param != "standin":
        yield _peer(request.param)
        return
    server = FakeServer(login=None, accounts=USERS, mechanisms=("X-YANDEX-OAUTH", "PLAIN")).start()
    try:
        assert server.starttls_port is not None and server.tls_port is not None
        yield Target("standin", server.starttls_port, server.tls_port, server.cafile)
    finally:
        server.stop()


# -- a raw client ----------------------------------------------------------------------------

Item = Union[StreamHeader, Element, object]
#: What :meth:`RawStream.next` returns when the server closed the connection / said nothing.
EOF = "EOF"
SILENCE = "SILENCE"


class RawStream:
    """One connection that sends XML as given and parses what comes back.

    Server pings (from the domain) are answered and skipped: Prosody and ejabberd ping
    every couple of seconds on the test configuration.  So is the stand-in's unsolicited
    version query after the session (a Yandex specific).
    """

    def __init__(self, target: Target, direct_tls: bool = True) -> None:
        self.target = target
        self.context = ssl.create_default_context(cafile=target.cafile)
        sock = socket.create_connection(("127.0.0.1", target.tls_port if direct_tls else target.port), timeout=5)
        self.sock: socket.socket = self.context.wrap_socket(sock, server_hostname="localhost") if direct_tls else sock
        self.parser = StreamParser()
        self.jid: Optional[str] = None
        self.seen: List[Element] = []

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, xml: str) -> None:
        self.sock.sendall(xml.encode("utf-8"))

    def next(self, timeout: float = 5.0) -> Item:
        """The next header, stanza or STREAM_END; EOF, or SILENCE after ``timeout``."""
        self.sock.settimeout(timeout)
        while True:
            while self.parser.items:
                item = self.parser.items.pop(0)
                if isinstance(item, Element) and self._is_server_ping(item):
                    self.send("<iq type='result' id='%s' to='%s'/>" % (item.get("id"), DOMAIN))
                    continue
                if isinstance(item, Element):
                    self.seen.append(item)
                return item
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return SILENCE
            except (OSError, ssl.SSLError):
                return EOF
            if not data:
                return EOF
            self.parser.feed(data)

    @staticmethod
    def _is_server_ping(item: Element) -> bool:
        if item.tag != ns.IQ or item.get("type") != "get" or item.get("from") not in (DOMAIN, None):
            return False
        return item.find(ns.PING_TAG) is not None or item.find(ns.VERSION_QUERY) is not None

    def stanza(self, timeout: float = 5.0) -> Element:
        item = self.next(timeout)
        assert isinstance(item, Element), "expected a stanza from %s, got %r" % (self.target.name, item)
        return item

    def open(self, to: Optional[str] = DOMAIN) -> Item:
        """Send a stream header; return the server's header (the features are read too when
        the stream is accepted)."""
        self.parser = StreamParser()
        attr = " to='%s'" % to if to is not None else ""
        self.send(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
            "xmlns:stream='http://etherx.jabber.org/streams'%s version='1.0' xml:lang='en'>" % attr
        )
        return self.next()

    def features(self) -> Element:
        features = self.stanza()
        assert features.tag == ns.FEATURES, features.tag
        return features

    def auth(self, mechanism: str, user: str = "test", password: Optional[str] = None) -> Element:
        secret = USERS[user] if password is None else password
        payload = base64.b64encode(("\0%s\0%s" % (user, secret)).encode()).decode()
        self.send("<auth xmlns='%s' mechanism='%s'>%s</auth>" % (ns.SASL, mechanism, payload))
        return self.stanza()

    def login(self, user: str = "test", resource: Optional[str] = "", session: bool = True) -> "RawStream":
        """Authenticate with PLAIN and bind ``resource`` ("": a fresh unique one; None: no bind)."""
        self.open()
        self.features()
        assert self.auth("PLAIN", user).tag == ns.SASL_SUCCESS
        self.open()
        self.features()
        if resource is None:
            return self
        self.send(
            "<iq type='set' id='bind-1'><bind xmlns='%s'><resource>%s</resource></bind></iq>"
            % (ns.BIND, resource or "probe-" + uuid.uuid4().hex[:8])
        )
        bound = self.stanza()
        self.jid = bound.findtext("{%s}bind/{%s}jid" % (ns.BIND, ns.BIND))
        assert self.jid, bound
        if session:
            self.send("<iq type='set' id='session-1'>%s</iq>" % SESSION)
            assert self.stanza().get("type") == "result"
        return self

    def request(self, xml: str) -> Element:
        """Send an iq and return the answer carrying its id."""
        found = re.search(r" id='([^']*)'", xml)
        wanted = found.group(1) if found else None
        self.send(xml)
        while True:
            answer = self.stanza()
            if answer.tag == ns.IQ and answer.get("id") == wanted:
                return answer


@pytest.fixture
def streams() -> Iterator[List[RawStream]]:
    made: List[RawStream] = []
    yield made
    for stream in made:
        stream.close()


@pytest.fixture
def connect(target: Target, streams: List[RawStream]) -> Any:
    def connect(direct_tls: bool = True) -> RawStream:
        stream = RawStream(target, direct_tls)
        streams.append(stream)
        return stream

    return connect


def stream_error(item: Item) -> Optional[str]:
    """The condition of a stream error, else None."""
    if not isinstance(item, Element) or item.tag != ns.STREAM_ERROR:
        return None
    for child in item:
        if child.tag.startswith("{%s}" % ns.STREAM_ERRORS) and not child.tag.endswith("}text"):
            return child.tag.split("}", 1)[1]
    return "(none)"


def condition(elem: Element) -> Tuple[Optional[str], Optional[str]]:
    """(error type, condition) of an iq error, or of a SASL failure (type None)."""
    if elem.tag == ns.SASL_FAILURE:
        names = [c.tag.split("}", 1)[1] for c in elem if c.tag != ns.SASL_TEXT]
        return None, names[0] if names else None
    error = elem.find(ns.STANZA_ERROR)
    assert error is not None, "no <error> in %r" % elem.attrib
    names = [c.tag.split("}", 1)[1] for c in error if c.tag.startswith("{%s}" % ns.STANZAS) and not c.tag.endswith("}text")]
    return error.get("type"), names[0] if names else None


def assert_stream_ends_with(stream: RawStream, expected: str) -> None:
    item = stream.next()
    assert stream_error(item) == expected, "%s: %r" % (stream.target.name, item)
    assert stream.next() in (STREAM_END, EOF)


# -- the stream --------------------------------------------------------------------------------


def test_stream_to_a_host_it_does_not_serve(connect: Any) -> None:
    stream = connect()
    assert isinstance(stream.open(to="example.org"), StreamHeader)
    assert_stream_ends_with(stream, "host-unknown")


def test_stream_without_to(connect: Any) -> None:
    stream = connect()
    assert isinstance(stream.open(to=None), StreamHeader)
    assert_stream_ends_with(stream, "improper-addressing")


def test_malformed_xml(connect: Any) -> None:
    stream = connect()
    stream.open()
    stream.features()
    stream.send("<iq type='get' id='a'><<</iq>")
    assert_stream_ends_with(stream, "not-well-formed")


def test_stream_header_in_another_namespace(connect: Any) -> None:
    stream = connect()
    stream.send(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='urn:not-streams' "
        "to='ya.ru' version='1.0'>"
    )
    assert isinstance(stream.next(), StreamHeader)
    assert_stream_ends_with(stream, "invalid-namespace")


def test_a_stanza_instead_of_a_stream_header(connect: Any) -> None:
    """Prosody says invalid-namespace, ejabberd invalid-xml."""
    stream = connect()
    stream.send("<iq type='get' id='first'/>")
    assert isinstance(stream.next(), StreamHeader)
    item = stream.next()
    assert stream_error(item) in ("invalid-namespace", "invalid-xml"), item
    assert stream.next() in (STREAM_END, EOF)


def test_starttls_inside_tls(connect: Any) -> None:
    stream = connect()
    stream.open()
    stream.features()
    stream.send("<starttls xmlns='%s'/>" % ns.TLS)
    assert stream.stanza().tag == ns.TLS_FAILURE
    assert stream.next() in (STREAM_END, EOF)


def test_close_is_answered(connect: Any) -> None:
    stream = connect().login()
    stream.send("</stream:stream>")
    assert stream.next() is STREAM_END


# -- authentication ------------------------------------------------------------------------------


def test_auth_before_tls(connect: Any) -> None:
    stream = connect(direct_tls=False)
    stream.open()
    stream.features()  # (what they offer before TLS is a Yandex specific)
    assert condition(stream.auth("PLAIN")) == (None, "encryption-required")


def test_unoffered_mechanism(connect: Any) -> None:
    stream = connect()
    stream.open()
    stream.features()
    assert condition(stream.auth("X-NOT-A-MECHANISM")) == (None, "invalid-mechanism")


def test_auth_again_after_success_is_refused(connect: Any) -> None:
    """ejabberd answers a SASL failure, Prosody ends the stream: never a second success."""
    stream = connect().login()
    stream.send("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (ns.SASL, base64.b64encode(b"\0test\0testpass").decode()))
    item = stream.next()
    if stream_error(item) is not None:
        assert stream_error(item) == "unsupported-stanza-type"
    else:
        assert isinstance(item, Element) and item.tag == ns.SASL_FAILURE, item


def test_wrong_password(connect: Any) -> None:
    stream = connect()
    stream.open()
    stream.features()
    assert condition(stream.auth("PLAIN", password="wrong")) == (None, "not-authorized")


# -- iq rules ------------------------------------------------------------------------------------

BAD_IQS = {
    "no-child": "<iq type='get' id='bad' to='ya.ru'/>",
    "bogus-type": "<iq type='bogus' id='bad' to='ya.ru'>%s</iq>" % PING,
    "two-children": "<iq type='get' id='bad' to='ya.ru'>%s%s</iq>" % (PING, PING),
}


@pytest.mark.parametrize("kind", sorted(BAD_IQS))
def test_malformed_iq_is_a_bad_request(connect: Any, kind: str) -> None:
    stream = connect().login()
    answer = stream.request(BAD_IQS[kind])
    assert answer.get("type") == "error"
    assert condition(answer) == ("modify", "bad-request")


def test_iq_without_id_is_a_bad_request(connect: Any) -> None:
    stream = connect().login()
    stream.send("<iq type='get' to='ya.ru'>%s</iq>" % PING)
    answer = stream.stanza()
    assert (answer.get("type"), answer.get("id")) == ("error", None)
    assert condition(answer) == ("modify", "bad-request")


def test_iq_before_bind_gets_no_result(connect: Any) -> None:
    """Prosody refuses it (service-unavailable), ejabberd ignores it: never a result."""
    stream = connect().login(resource=None)
    stream.send("<iq type='get' id='early' to='ya.ru'>%s</iq>" % PING)
    answer = stream.next(timeout=1.5)
    if answer is not SILENCE:
        assert isinstance(answer, Element) and answer.get("type") == "error", answer


def test_second_bind_is_refused(connect: Any) -> None:
    stream = connect().login()
    answer = stream.request("<iq type='set' id='bind-2'><bind xmlns='%s'><resource>again</resource></bind></iq>" % ns.BIND)
    assert condition(answer) == ("cancel", "service-unavailable")


# -- what the server answers itself --------------------------------------------------------------


def test_ping_the_server(connect: Any) -> None:
    answer = connect().login().request("<iq type='get' id='probe-ping' to='ya.ru'>%s</iq>" % PING)
    assert (answer.get("type"), answer.get("from")) == ("result", DOMAIN)


def test_disco_info_of_the_server(connect: Any) -> None:
    answer = connect().login().request("<iq type='get' id='d1' to='ya.ru'><query xmlns='%s'/></iq>" % DISCO_INFO)
    assert (answer.get("type"), answer.get("from")) == ("result", DOMAIN)
    identity = answer.find("{%s}query/{%s}identity" % (DISCO_INFO, DISCO_INFO))
    assert identity is not None and (identity.get("category"), identity.get("type")) == ("server", "im")
    features = {f.get("var") for f in answer.iter("{%s}feature" % DISCO_INFO)}
    assert {DISCO_INFO, ns.PING, ns.VERSION} <= features


def test_disco_items_of_the_server(connect: Any) -> None:
    items = "http://jabber.org/protocol/disco#items"
    answer = connect().login().request("<iq type='get' id='di1' to='ya.ru'><query xmlns='%s'/></iq>" % items)
    assert (answer.get("type"), answer.get("from")) == ("result", DOMAIN)
    assert answer.find("{%s}query" % items) is not None


def test_a_message_to_the_server_bounces(connect: Any) -> None:
    """Prosody says service-unavailable, ejabberd item-not-found: an error either way."""
    stream = connect().login()
    stream.send("<message to='ya.ru' id='msg-1'><body>hello</body></message>")
    answer = stream.stanza()
    assert (answer.tag, answer.get("type"), answer.get("id"), answer.get("from")) == (ns.MESSAGE, "error", "msg-1", DOMAIN)
    assert condition(answer)[0] == "cancel"


@pytest.mark.parametrize("to", ["@@bad@@", "a b@ya.ru", "a&lt;b@ya.ru"])
def test_iq_to_an_address_that_is_no_jid(connect: Any, to: str) -> None:
    """Prosody says jid-malformed, ejabberd bad-request: a modify error either way."""
    answer = connect().login().request("<iq type='get' id='jm1' to='%s'>%s</iq>" % (to, PING))
    assert answer.get("type") == "error"
    assert condition(answer) in (("modify", "jid-malformed"), ("modify", "bad-request"))


def test_roster_get(connect: Any) -> None:
    answer = connect().login().request("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
    assert answer.get("type") == "result"
    assert answer.find("{jabber:iq:roster}query") is not None


def test_version_of_the_server(connect: Any) -> None:
    answer = connect().login().request("<iq type='get' id='v1' to='ya.ru'><query xmlns='%s'/></iq>" % ns.VERSION)
    assert (answer.get("type"), answer.get("from")) == ("result", DOMAIN)
    assert answer.findtext("{%s}query/{%s}name" % (ns.VERSION, ns.VERSION))


def test_unknown_query_to_the_server(connect: Any) -> None:
    answer = connect().login().request("<iq type='get' id='u1' to='ya.ru'><query xmlns='urn:yaxmpp:nothing'/></iq>")
    assert (answer.get("type"), answer.get("from")) == ("error", DOMAIN)
    assert condition(answer) == ("cancel", "service-unavailable")


# -- between sessions ----------------------------------------------------------------------------


def test_same_resource_replaces_the_older_session(connect: Any) -> None:
    resource = "probe-" + uuid.uuid4().hex[:8]
    older = connect().login(resource=resource)
    newer = connect().login(resource=resource)
    assert newer.jid == older.jid
    assert_stream_ends_with(older, "conflict")


def test_iq_to_a_missing_full_jid(connect: Any) -> None:
    answer = connect().login().request("<iq type='get' id='m1' to='other@ya.ru/gone'>%s</iq>" % PING)
    assert (answer.get("type"), answer.get("from")) == ("error", "other@ya.ru/gone")
    assert condition(answer) == ("cancel", "service-unavailable")


def test_iq_between_sessions_is_routed(connect: Any) -> None:
    a = connect().login()
    b = connect().login("other")
    b.send("<iq type='get' id='b-ping' to='%s'>%s</iq>" % (a.jid, PING))
    request = a.stanza()
    assert (request.get("type"), request.get("id"), request.get("from")) == ("get", "b-ping", b.jid)
    a.send("<iq type='result' id='b-ping' to='%s'/>" % b.jid)
    answer = b.stanza()
    assert (answer.get("type"), answer.get("id"), answer.get("from")) == ("result", "b-ping", a.jid)


def test_forged_answer_arrives_from_its_real_sender(connect: Any) -> None:
    a = connect().login()
    b = connect().login("other")
    b.send("<iq type='result' id='someone-elses' to='%s'/>" % a.jid)
    forged = a.stanza()
    assert (forged.get("type"), forged.get("id"), forged.get("from")) == ("result", "someone-elses", b.jid)


def test_a_forged_from_never_reaches_the_target(connect: Any) -> None:
    """Prosody rewrites the ``from``, ejabberd ends the forger's stream (invalid-from)."""
    a = connect().login()
    b = connect().login("other")
    b.send("<iq type='set' id='forged' from='ya.ru' to='%s'><query xmlns='yandex:push:disk'/></iq>" % a.jid)
    b.send("<iq type='get' id='probe-ping' to='ya.ru'>%s</iq>" % PING)  # once answered, the forgery was handled
    after = b.next()
    assert (isinstance(after, Element) and after.get("id") == "probe-ping") or stream_error(after) == "invalid-from", after
    a.request("<iq type='get' id='probe-ping' to='ya.ru'>%s</iq>" % PING)  # behind anything routed to a
    for stanza in a.seen:
        if stanza.get("id") == "forged":
            assert stanza.get("from") == b.jid
