"""The server's side of one client stream, without sockets: bytes in, actions out.

:meth:`Conversation.receive` takes the plaintext the client sent and returns what the
connection must do, in order: :class:`Write` bytes, switch layers (:class:`StartTLS`,
:class:`StartCompression`, with the bytes already read that belong to the new layer), record
a :class:`Note` (the session opened, the client subscribed...), :class:`Hangup`.  Stanzas
for another bound session go through the :class:`~yaxmpp.testing.router.Router`.

What the server answers follows the seed where it documents push.xmpp.yandex.ru (numeric
stream ids, zlib and an empty ``<mechanisms/>`` before TLS, ``<starttls/>`` not required,
the unsolicited version query) and RFC 6120 as Prosody and ejabberd implement it everywhere
else.  An iq the server itself answers is looked up in :data:`IQ_HANDLERS`: adding a query
the server answers is one entry there.
"""

from __future__ import annotations

import base64
import binascii
import random
import re
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple, Union
from xml.etree.ElementTree import Element

from .._version import __version__
from ..errors import ProtocolError
from ..protocol import ns
from ..protocol.parser import STREAM_END, StreamHeader, StreamParser
from . import stanzas as out
from .options import ServerOptions
from .router import Endpoint, Jid, Router

__all__ = [
    "Action",
    "Conversation",
    "Hangup",
    "IQ_HANDLERS",
    "Note",
    "StartCompression",
    "StartTLS",
    "Write",
]


class Write(NamedTuple):
    """Bytes for the client; ``flush`` False lets the ``coalesced`` write mode hold them."""

    data: bytes
    flush: bool = True


class StartTLS(NamedTuple):
    """Begin the TLS handshake; ``leftover`` are bytes already read that belong to it."""

    leftover: bytes


class StartCompression(NamedTuple):
    """Begin zlib both ways; ``leftover`` are compressed bytes already read."""

    leftover: bytes


class Note(NamedTuple):
    """Something the tests wait for: ``session_started``, ``subscribed``, ``client_closed``,
    ``reply`` (value: the client's iq result or error), ``error`` (value: why the server
    ended the stream)."""

    kind: str
    value: object = None


class Hangup(NamedTuple):
    """End the connection; ``drain``: first read until the client hangs up."""

    drain: bool = False


Action = Union[Write, StartTLS, StartCompression, Note, Hangup]

_AUTH = ns.qname(ns.SASL, "auth")
_COMPRESS = ns.qname(ns.COMPRESS, "compress")
_COMPRESS_METHOD = ns.qname(ns.COMPRESS, "method")
_RESOURCE = ns.qname(ns.BIND, "resource")
_DISK_SUBSCRIBE = ns.qname(ns.DISK, "s")
_DISCO_INFO_QUERY = ns.qname(out.DISCO_INFO, "query")
_ROSTER_QUERY = ns.qname(out.ROSTER, "query")
_DISCO_ITEMS_QUERY = ns.qname(out.DISCO_ITEMS, "query")
# What a JID's local part may not hold (RFC 7622): then it is not an address at all.  (A
# domain with odd characters is taken for another server's, as Prosody and ejabberd do.)
_NOT_IN_LOCAL = re.compile(r"[\s\"&'/:<>@]")

#: Who an iq is for: ``self`` (no ``to``, or the user's own bare JID), ``server`` (the
#: domain), ``account`` (another bare JID of the domain).  Full JIDs are routed, other
#: domains refused, addresses that are no JID (``malformed``) refused with ``jid-malformed``.
_Target = str


def _numeric_id() -> str:
    return str(random.randint(10**9, 4 * 10**9))


class Conversation:
    """One client stream as the server sees it; one thread at a time calls :meth:`receive`.

    ``accounts`` maps logins to tokens (read at each authentication).  ``endpoint`` is what
    the router delivers to once this stream has bound a JID.
    """

    def __init__(
        self,
        options: ServerOptions,
        accounts: Dict[str, str],
        router: Router,
        endpoint: Endpoint,
        number: int,
        tls: bool = False,
        stream_ids: Callable[[], str] = _numeric_id,
    ) -> None:
        self.options = options
        self.accounts = accounts
        self.router = router
        self.endpoint = endpoint
        self.number = number
        self.tls = tls
        self.compressed = False
        self.authenticated = False
        self.login: Optional[str] = None
        self.jid: Optional[str] = None
        self.stream_id: Optional[str] = None
        self.headers: List[Dict[str, str]] = []
        self.stanzas: List[Element] = []
        self.server_closed = False  # the server sent </stream:stream>
        self.ended = False  # nothing more is read
        self._stream_ids = stream_ids
        self._parser = StreamParser()
        self._header_sent = False
        self._out: List[Action] = []

    # -- input ---------------------------------------------------------------------------

    def receive(self, data: bytes) -> List[Action]:
        """Take the client's next bytes; return what the connection must do, in order."""
        actions = self._out = []
        while not self.ended:
            if not self._parser.items:
                if not data:
                    break
                try:
                    # One item at a time: the bytes after <starttls/> or <compress/> belong
                    # to another layer, those after <auth/> to the next stream.
                    data = self._parser.feed_until_stanza(data)
                except ProtocolError as exc:
                    self._malformed(exc)
                    break
                continue
            self._handle(self._parser.items.pop(0))
            last = actions[-1] if actions else None
            if isinstance(last, (StartTLS, StartCompression)):
                actions[-1] = type(last)(data)
                break
        return actions

    def server_closing(self) -> None:
        """The server sent ``</stream:stream>`` (from another thread): the client's answer
        ends the connection."""
        self.server_closed = True

    def finish(self) -> None:
        """The connection is gone: unbind its JID."""
        if self.jid is not None:
            self.router.unbind(self.jid, self.endpoint)

    # -- output helpers ------------------------------------------------------------------

    def _write(self, text: str) -> None:
        self._out.append(Write(text.encode("utf-8"), flush=False))

    def _send(self, text: str) -> None:
        self._out.append(Write(text.encode("utf-8")))

    def _note(self, kind: str, value: object = None) -> None:
        self._out.append(Note(kind, value))

    def _fail(self, condition: str, text: Optional[str] = None, reason: object = None) -> None:
        """End the stream with a stream error; ``reason`` is noted as the session's error."""
        self._send(out.stream_error(condition, text))
        self._note("error", reason if reason is not None else ProtocolError("sent a %s stream error" % condition))
        self.server_closed = self.ended = True
        self._out.append(Hangup())

    def _restart(self) -> None:
        """A fresh parser for the client's next stream."""
        self._parser = StreamParser()
        self._header_sent = False

    # -- stream level ----------------------------------------------------------------------

    def _handle(self, item: object) -> None:
        if isinstance(item, StreamHeader):
            self._header(dict(item.attrs))
        elif item is STREAM_END:
            self._stream_end()
        else:
            assert isinstance(item, Element)
            self.stanzas.append(item)
            handler = _STANZA_HANDLERS.get(item.tag)
            if handler is not None:
                handler(self, item)

    def _header(self, attrs: Dict[str, str]) -> None:
        options = self.options
        self.headers.append(attrs)
        self.stream_id = self._stream_ids()
        self._header_sent = True
        to = attrs.get("to")
        if to is None:
            self._send(out.stream_header(self.stream_id, None))
            self._fail("improper-addressing", "A 'to' attribute is required on stream headers")
            return
        if to.lower() != options.domain.lower():
            self._send(out.stream_header(self.stream_id, to))
            self._fail("host-unknown", "This server does not serve %s" % to)
            return
        zlib = options.compression and not self.compressed
        if zlib and options.compression_after_auth:
            zlib = self.authenticated
        if self.authenticated:
            offer = out.features(starttls=False, zlib=zlib, mechanisms=None, bind=True)
        elif self.tls:
            offer = out.features(starttls=False, zlib=zlib, mechanisms=options.mechanisms, bind=False)
        else:  # the seed: STARTTLS (not required), zlib and no mechanism before TLS
            offer = out.features(starttls=options.offer_starttls, zlib=zlib, mechanisms=(), bind=False)
        self._write(out.stream_header(self.stream_id, options.domain) + offer)
        if self.authenticated and options.ping_before_bind:
            self._write(out.ping("ping_early", options.domain, None))

    def _stream_end(self) -> None:
        self._note("client_closed")
        answer = self.options.answer_close
        if answer and not self.server_closed:
            self._send(out.STREAM_CLOSE)
        self.ended = True
        self._out.append(Hangup(drain=not (answer or self.server_closed)))

    def _malformed(self, exc: ProtocolError) -> None:
        condition = "not-well-formed"
        if not self._header_sent:
            self.stream_id = self._stream_ids()
            self._send(out.stream_header(self.stream_id, self.options.domain))
            if str(exc).startswith("expected <stream:stream>"):
                condition = "invalid-namespace"  # no stream header, or one in another namespace
        self._fail(condition, reason=exc)

    # -- negotiation ---------------------------------------------------------------------

    def _starttls(self, elem: Element) -> None:
        if self.tls or not self.options.offer_starttls:
            self._send('<failure xmlns="%s"/>%s' % (ns.TLS, out.STREAM_CLOSE))
            self.server_closed = self.ended = True
            self._out.append(Hangup())
            return
        self._send('<proceed xmlns="%s"/>' % ns.TLS)
        self._out.append(StartTLS(b""))
        self.tls = True
        self._restart()

    def _compress(self, elem: Element) -> None:
        options = self.options
        offered = options.compression and not self.compressed
        if offered and options.compression_after_auth:
            offered = self.authenticated
        method = elem.findtext(_COMPRESS_METHOD)
        if not offered:
            condition: Optional[str] = "setup-failed"
        elif options.compression_failure:
            condition = options.compression_failure
        else:
            condition = None if method == "zlib" else "unsupported-method"
        if condition is not None:
            self._send('<failure xmlns="%s"><%s/></failure>' % (ns.COMPRESS, condition))
            return
        self._out.append(Write(('<compressed xmlns="%s"/>' % ns.COMPRESS).encode() + options.after_compressed))
        self._out.append(StartCompression(b""))
        self.compressed = True
        self._restart()

    def _auth(self, elem: Element) -> None:
        if self.authenticated:  # SASL again on an authenticated stream (as ejabberd answers it)
            self._send(out.sasl_failure("not-authorized"))
            return
        condition = self._check_auth(elem)
        if condition is not None:
            self._send(out.sasl_failure(condition))
            return  # the client tries again or closes the stream
        self.authenticated = True
        self._send('<success xmlns="%s"/>' % ns.SASL)
        self._restart()

    def _check_auth(self, elem: Element) -> Optional[str]:
        """None when the credentials are right, else the SASL failure condition."""
        mechanism = elem.get("mechanism")
        if not self.tls:
            return "encryption-required"
        if mechanism not in self.options.mechanisms:
            return "invalid-mechanism"
        try:
            raw = base64.b64decode((elem.text or "").strip(), validate=True)
        except (binascii.Error, ValueError):
            return "incorrect-encoding"
        try:
            text = raw.decode("utf-8")
            if mechanism == "PLAIN":  # authzid NUL authcid NUL password; the token is the password
                _, login, token = text.split("\0", 2)
                login = login.split("@", 1)[0]
            else:
                login, token = text.split("\0", 1)
        except ValueError:
            return self.options.auth_failure
        expected = self.accounts.get(login)
        if expected is None or expected != token:
            return self.options.auth_failure
        self.login = login
        return None

    # -- stanzas -------------------------------------------------------------------------

    def _iq(self, elem: Element) -> None:
        iq_type, iq_id, to = elem.get("type"), elem.get("id"), elem.get("to")
        if not self.authenticated:
            self._send(out.iq_error(iq_id or "", "not-authorized"))
            return
        if iq_type in ("result", "error"):
            self._note("reply", elem)
            if to is not None and self._target(to) == "session":
                self._route(elem, to)
            return
        if iq_type not in ("get", "set") or iq_id is None or len(elem) != 1:
            self._send(out.iq_error(iq_id, "bad-request", sender=to))
            return
        child = elem[0]
        if self.jid is None:
            if child.tag == ns.BIND_TAG and iq_type == "set":
                self._bind(iq_id, child)
            else:  # nothing but bind before bind
                self._send(out.iq_error(iq_id, "service-unavailable", sender=to))
            return
        target = self._target(to)
        if target == "session":
            assert to is not None
            self._route(elem, to)
            return
        if target == "remote":
            self._send(out.iq_error(iq_id, "remote-server-not-found", sender=to))
            return
        if target == "malformed":
            self._send(out.iq_error(iq_id, "jid-malformed", sender=to))
            return
        handler = IQ_HANDLERS.get((target, child.tag, iq_type))
        if handler is None:  # a second bind among them
            self._send(out.iq_error(iq_id, "service-unavailable", sender=to))
        else:
            handler(self, iq_id, to)

    def _message_or_presence(self, elem: Element) -> None:
        to = elem.get("to")
        if self.jid is None or to is None:
            return
        target = self._target(to)
        if target == "session":
            self._route(elem, to)
        elif target == "server" and elem.tag == ns.MESSAGE and elem.get("type") != "error":
            self._send(out.message_error(elem.get("id"), "service-unavailable", sender=to))  # as both real servers do

    def _target(self, to: Optional[str]) -> _Target:
        if to is None:
            return "self"
        jid = Jid.parse(to)
        if not jid.domain or _NOT_IN_LOCAL.search(jid.local):
            return "malformed"
        if jid.domain.lower() != self.options.domain.lower():
            return "remote"
        if not jid.local:
            return "server"
        if jid.resource:
            return "session"
        if self.login is not None and jid.bare_key == Jid(self.login, self.options.domain, "").bare_key:
            return "self"
        return "account"

    def _route(self, elem: Element, to: str) -> None:
        """Deliver to the session bound to the full JID ``to``, stamped with our JID."""
        endpoint = self.router.lookup(to)
        if endpoint is None:
            if elem.tag == ns.IQ and elem.get("type") in ("get", "set"):
                self._send(out.iq_error(elem.get("id"), "service-unavailable", sender=to))
            return  # results, errors, messages and presence to nobody are dropped
        stamped = Element(elem.tag, dict(elem.attrib))
        if self.jid is not None:
            stamped.set("from", self.jid)
        stamped.text = elem.text
        stamped.extend(list(elem))
        endpoint.deliver(out.serialize(stamped))

    def _bind(self, iq_id: str, child: Element) -> None:
        resource = (child.findtext(_RESOURCE) or "").strip() or "yaxmpp-%d" % self.number
        self.jid = "%s@%s/%s" % (self.login, self.options.domain, resource)
        self._write(out.bind_result(iq_id, self.jid))
        self.router.bind(self.jid, self.endpoint, replace=self.options.resource_conflict == "replace")

    # -- iqs the server answers itself (see IQ_HANDLERS) -----------------------------------

    def _pong(self, iq_id: str, to: Optional[str]) -> None:
        self._send(out.iq_result(iq_id, sender=to))

    def _open_session(self, iq_id: str, to: Optional[str]) -> None:
        options = self.options
        self._write(out.session_result(iq_id))
        if options.ask_version:
            self._write(out.version_query("ask_version", options.domain, self.jid))
        if options.write_mode == "coalesced":
            self._write(out.ping("ping_0", options.domain, self.jid))
        self._note("session_started")

    def _subscribe(self, iq_id: str, to: Optional[str]) -> None:
        if self.options.subscribe_error:
            self._send(out.iq_error(iq_id, self.options.subscribe_error, sender=to))
        else:
            self._send(out.iq_result(iq_id, sender=to))
            self._note("subscribed")

    def _server_info(self, iq_id: str, to: Optional[str]) -> None:
        features = "".join('<feature var="%s"/>' % var for var in (out.DISCO_INFO, ns.PING, ns.VERSION))
        payload = '<query xmlns="%s"><identity category="server" type="im" name="yaxmpp.testing"/>%s</query>'
        self._send(out.iq_result(iq_id, payload % (out.DISCO_INFO, features), sender=to))

    def _account_info(self, iq_id: str, to: Optional[str]) -> None:
        payload = '<query xmlns="%s"><identity category="account" type="registered"/></query>' % out.DISCO_INFO
        self._send(out.iq_result(iq_id, payload, sender=to))

    def _server_items(self, iq_id: str, to: Optional[str]) -> None:
        self._send(out.iq_result(iq_id, '<query xmlns="%s"/>' % out.DISCO_ITEMS, sender=to))

    def _roster(self, iq_id: str, to: Optional[str]) -> None:
        self._send(out.iq_result(iq_id, '<query xmlns="%s"/>' % out.ROSTER, sender=to))

    def _server_version(self, iq_id: str, to: Optional[str]) -> None:
        payload = '<query xmlns="%s"><name>yaxmpp.testing</name><version>%s</version></query>' % (ns.VERSION, __version__)
        self._send(out.iq_result(iq_id, payload, sender=to))


_Handler = Callable[[Conversation, str, Optional[str]], None]

#: The iqs the server answers itself: (target, child tag, iq type) -> handler.  Every other
#: request for the server or an account gets ``service-unavailable``.
IQ_HANDLERS: Dict[Tuple[_Target, str, str], _Handler] = {
    ("server", ns.PING_TAG, "get"): Conversation._pong,
    ("self", ns.PING_TAG, "get"): Conversation._pong,
    ("account", ns.PING_TAG, "get"): Conversation._pong,
    ("server", ns.SESSION_TAG, "set"): Conversation._open_session,
    ("self", ns.SESSION_TAG, "set"): Conversation._open_session,
    ("server", _DISK_SUBSCRIBE, "set"): Conversation._subscribe,
    ("self", _DISK_SUBSCRIBE, "set"): Conversation._subscribe,
    ("server", _DISCO_INFO_QUERY, "get"): Conversation._server_info,
    ("self", _DISCO_INFO_QUERY, "get"): Conversation._account_info,
    ("account", _DISCO_INFO_QUERY, "get"): Conversation._account_info,
    ("server", _DISCO_ITEMS_QUERY, "get"): Conversation._server_items,
    ("self", _ROSTER_QUERY, "get"): Conversation._roster,
    ("server", ns.VERSION_QUERY, "get"): Conversation._server_version,
}

_STANZA_HANDLERS: Dict[str, Callable[[Conversation, Element], None]] = {
    ns.STARTTLS: Conversation._starttls,
    _COMPRESS: Conversation._compress,
    _AUTH: Conversation._auth,
    ns.IQ: Conversation._iq,
    ns.MESSAGE: Conversation._message_or_presence,
    ns.PRESENCE: Conversation._message_or_presence,
}
