"""The sans-IO client state machine: bytes in, events out; calls in, bytes out.

:class:`ClientProtocol` walks the seed's connection steps (stream header, features, STARTTLS,
SASL, restart, bind, session), answers the server's pings, version queries and other requests
by itself, matches iq responses to requests, and turns every way a stream can end into one
final :class:`~yaxmpp.protocol.events.StreamClosed` event.  It owns no socket, thread or clock:
the driver feeds it what it read, asks it what to write, and does the TLS handshake when told.
"""

from __future__ import annotations

import base64
import binascii
import logging
import secrets
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as _defused_fromstring

from ..errors import (
    AuthError,
    ConnectionLost,
    Error,
    IqError,
    LocalProtocolError,
    ProtocolError,
    StreamError,
    TLSError,
    UsageError,
)
from . import ns, stanzas
from .events import (
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
    StreamOpened,
    TLSRequested,
)
from .features import Features
from .limits import Limits
from .parser import STREAM_END, StreamHeader, StreamParser
from .pushscan import PushRun
from .redact import MASK, Redactor
from .sasl import Mechanism
from .state import AFTER_AUTH, DRIVER_TURN, INITIAL, NEGOTIATING, Step, check_transition
from .xmltext import to_xml

__all__ = ["Step", "ClientProtocol", "VersionInfo"]

xml_log = logging.getLogger("yaxmpp.xml")

_IQ = ns.IQ
_DISK_QUERY = ns.DISK_QUERY

_NEGOTIATING = NEGOTIATING
_DRIVER_TURN = DRIVER_TURN
_AFTER_AUTH = AFTER_AUTH


class VersionInfo:
    """What the client says of itself in the XEP-0092 answer."""

    __slots__ = ("name", "version", "os")

    def __init__(self, name: str, version: str, os: Optional[str] = None) -> None:
        self.name = name
        self.version = version
        self.os = os


def _error_condition(elem: Optional[Element], namespace: str) -> Tuple[str, Optional[str]]:
    """(condition, text) of an error element whose condition children live in ``namespace``."""
    if elem is None:
        return "undefined-condition", None
    condition = "undefined-condition"
    text = None
    text_tag = ns.qname(namespace, "text")
    for child in elem:
        if child.tag == text_tag:
            text = (child.text or "").strip() or None
        elif child.tag.startswith("{%s}" % namespace) and condition == "undefined-condition":
            condition = child.tag.split("}", 1)[1]
    return condition, text


def new_id(prefix: str = "") -> str:
    """A fresh, unpredictable stanza id: 64 random bits in hex, after ``prefix``.

    Another account on the server cannot guess it, so it cannot answer a request it never saw.
    """
    return prefix + secrets.token_hex(8)


JidKey = Tuple[str, str, str]


def jid_key(jid: str) -> JidKey:
    """``(localpart, domainpart, resourcepart)`` of ``jid`` in the form two JIDs are compared
    in: local and domain parts are case-insensitive (the domain also without a final dot),
    the resource is compared exactly (RFC 7622)."""
    bare, _, resource = jid.partition("/")
    local, at, domain = bare.partition("@")
    if not at:
        local, domain = "", bare
    return (local.lower(), domain.lower().rstrip("."), resource)


#: Payloads already checked by :func:`_check_payload` (the keepalive ping and the subscription
#: are constants: after the first time, checking them costs a dict lookup).
_checked_payloads: Dict[str, None] = {}
_CHECKED_MAX = 256
_CACHED_LENGTH = 2048


def _check_payload(payload: str) -> None:
    """Raise :class:`UsageError` unless ``payload`` is one well-formed XML element (or empty)."""
    if not payload or payload in _checked_payloads:
        return
    problem = None
    try:
        # Inside a wrapper, so that a second element or stray text shows; no DTD, no entities.
        root = _defused_fromstring("<w>%s</w>" % payload, forbid_dtd=True, forbid_entities=True)
    except DefusedXmlException:
        problem = "declares a DTD or an entity"
    except (SyntaxError, ValueError) as exc:  # ParseError is a SyntaxError
        problem = "is not well-formed XML (%s)" % (exc.msg if isinstance(exc, SyntaxError) else exc)
    else:
        if len(root) != 1:
            problem = "holds %d elements, not exactly one" % len(root)
        elif (root.text or "").strip() or (root[0].tail or "").strip():
            problem = "has text outside its element"
    if problem is not None:
        raise UsageError("the iq payload %s" % problem)  # not echoed: it may hold anything
    if len(payload) <= _CACHED_LENGTH:  # (a long one-off payload is not kept alive)
        if len(_checked_payloads) >= _CHECKED_MAX:
            _checked_payloads.clear()
        _checked_payloads[payload] = None


class _Missing:
    pass


_MISSING = _Missing()


class ClientProtocol:
    """One XMPP client stream, from the first header to the final close, without I/O.

    Typical driving::

        proto = ClientProtocol(XYandexOAuth(login, token), tls=False)
        proto.initiate()
        send(proto.data_to_send())
        while True:
            for event in proto.receive_data(recv()):   # b"" means end of file
                if isinstance(event, TLSRequested): handshake(event.leftover); proto.tls_established()
                ...
            send(proto.data_to_send())

    ``tls`` says whether the transport is already TLS (the direct-TLS port).  The core never
    sends credentials over a stream that is not TLS.  With ``compress=True`` it asks for zlib
    compression (XEP-0138) when the server offers it over TLS, before authentication or, if
    only offered then, after it; :class:`CompressionRequested` tells the driver when to switch.
    ``redactor`` (by default one made from ``mechanism``) masks the client's secrets in every
    error and log line the core makes; it is :attr:`redactor`, for the driver to bind.
    """

    def __init__(
        self,
        mechanism: Mechanism,
        *,
        domain: str = "ya.ru",
        resource: Optional[str] = "YaDisk-client",
        tls: bool = False,
        version: Optional[VersionInfo] = None,
        limits: Optional[Limits] = None,
        lang: str = "en",
        compress: bool = False,
        redactor: Optional[Redactor] = None,
    ) -> None:
        self.mechanism = mechanism
        self.domain = domain
        self.resource = resource
        self.tls = tls
        self.version = version or VersionInfo("yaxmpp", "0")
        self.limits = limits or Limits()
        self.lang = lang
        self.compress = compress
        self.compressed = False
        self._compression_refused = False
        self.step = INITIAL  # changed only by _go(), which checks the table in state.py
        self.authenticated = False
        self.jid: Optional[str] = None
        self.stream_id: Optional[str] = None
        self.features: Optional[Features] = None
        self._parser: Optional[StreamParser] = None
        self._out: List[bytes] = []
        self._close_sent = False
        self._close_owed = False  # our close tag waits for push acknowledgements
        self._final_owed = False  # closed by close() without a StreamClosed yet
        self._unacked: Set[str] = set()
        self._header_seen = False  # the server's header of the current stream arrived
        self._debug = False  # DEBUG logging of stanzas, checked once per receive_data()
        # Requests waiting for an answer: id -> who may answer (None: the server or the
        # user's own account, see _server_answered; else the JID the request went to).
        self._pending: Dict[str, Optional[JidKey]] = {}
        self._new_id: Callable[[str], str] = new_id
        self._domain_key = jid_key(domain)
        self._bind_id: Optional[str] = None
        self._session_id: Optional[str] = None
        #: Masks this client's secrets (whole or in part) in its errors and log lines; the
        #: driver binds it to its threads (:func:`~yaxmpp.protocol.redact.bound`).
        self.redactor = redactor if redactor is not None else Redactor.for_mechanism(mechanism)

    # -- outgoing ----------------------------------------------------------------------------

    def initiate(self) -> None:
        """Queue the first stream header.  Call once, when the transport is up."""
        if self._parser is not None:
            raise LocalProtocolError("initiate() was already called")
        if self.step is Step.CLOSED:
            raise LocalProtocolError("initiate() after close()")
        self._restart()

    def data_to_send(self) -> bytes:
        """Everything queued for the wire since the last call, in order."""
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data

    def tls_established(self) -> None:
        """The driver finished the TLS handshake that :class:`TLSRequested` asked for."""
        if self.step is not Step.TLS:
            raise LocalProtocolError("tls_established() outside the TLS step (now: %s)" % self.step.name)
        self.tls = True
        self._restart()

    def compression_established(self) -> None:
        """The driver switched both directions to zlib, as :class:`CompressionRequested` asked."""
        if self.step is not Step.COMPRESSION:
            raise LocalProtocolError("compression_established() outside the compression step (now: %s)" % self.step.name)
        self.compressed = True
        self._restart()

    def send_iq(self, iq_type: str, payload: str = "", to: Optional[str] = None) -> str:
        """Queue an iq ``get``/``set`` with ``payload`` (serialised XML: one element, or
        nothing); return its id, which is random.

        Its answer comes back as an :class:`IqResponse` with that id, and only from the
        entity the request went to: for a request to ``None``, the server's domain or the
        user's own bare JID, an answer without ``from``, from the domain or from the bare
        JID (RFC 6120 8.1.2.1, 10.3); for any other ``to``, from exactly that JID.  An
        answer from anyone else is ignored.  Call :meth:`forget` when giving up on it.

        Raises :class:`~yaxmpp.errors.UsageError` for another type or a payload that is
        not one well-formed element (checked once per distinct payload string).
        """
        if iq_type != "get" and iq_type != "set":
            raise UsageError("iq requests are 'get' or 'set', not %r" % (iq_type,))
        _check_payload(payload)
        self._require_open()
        iq_id = self._new_id("")
        while iq_id in self._pending:  # pragma: no cover - 64 random bits
            iq_id = self._new_id("")
        self._pending[iq_id] = None if to is None or self._is_server(jid_key(to)) else jid_key(to)
        self._send(stanzas.iq(iq_type, to, iq_id, payload))
        return iq_id

    def forget(self, iq_id: str) -> None:
        """Stop waiting for the answer to request ``iq_id`` (timed out, or its caller gave
        up): a late answer is then ignored.  Unknown or answered ids are no error."""
        self._pending.pop(iq_id, None)

    @property
    def pending_requests(self) -> int:
        """How many requests sent with :meth:`send_iq` still wait for their answer."""
        return len(self._pending)

    def send_stanza(self, xml: str) -> None:
        """Queue one complete stanza, already serialised (e.g. an iq result)."""
        self._require_open()
        self._send(xml)

    def acknowledge(self, iq_id: str, sender: Optional[str], accepted: bool = True) -> None:
        """Answer one push (see :meth:`acknowledge_all`)."""
        run = PushesReceived()
        run.iq_ids.append(iq_id)
        run.senders.append(sender)
        self.acknowledge_all(run, 1 if accepted else 0)

    def acknowledge_all(self, pushes: PushesReceived, taken: int) -> None:
        """Answer a run of pushes at once: the first ``taken`` with an empty result, the rest
        with an error ``resource-constraint`` of type ``wait`` (the client could not take
        them).  Nothing is written once our ``</stream:stream>`` is out."""
        unacked = self._unacked
        ids, senders = pushes.iq_ids, pushes.senders
        step = self.step
        if self._close_sent or step is Step.TLS or step is Step.COMPRESSION:
            unacked.difference_update(ids)
            return
        parts: List[str]
        fast = None
        if taken >= len(ids) and senders and senders.count(senders[0]) == len(senders):
            fast = stanzas.iq_results(senders[0], ids)  # all taken, all from one sender: the usual run
        if fast is not None:
            parts = [fast]
        else:
            result = stanzas.iq_result
            parts = [result(senders[i], ids[i]) for i in range(min(taken, len(ids))) if ids[i]]
            for i in range(taken, len(ids)):
                if ids[i]:
                    parts.append(stanzas.iq_error(senders[i], ids[i], "resource-constraint", "wait"))
        unacked.difference_update(ids)
        if parts:
            self._out.append("".join(parts).encode("utf-8"))
            if self._debug:
                scrub = self.redactor.scrub  # a sender's address is the server's choice
                for part in parts if fast is None else [stanzas.iq_result(senders[0], iq_id) for iq_id in ids]:
                    xml_log.debug("SEND %s", scrub(part))
        if self._close_owed and not unacked:
            self._send_close()

    def close(self) -> None:
        """Queue ``</stream:stream>``; the stream ends when the server answers with its own.

        During the TLS handshake or the switch to compression (and before :meth:`initiate`)
        nothing can be written: the core is closed at once, and the driver, which drops the
        transport, gets the final ``StreamClosed(None)`` from its next
        :meth:`connection_lost` (or :meth:`receive_data`) call.
        """
        if self._close_sent or self.step is Step.CLOSED:
            return
        if self.step in _DRIVER_TURN or self._parser is None:
            # Nothing can be written now; there is no open stream to close politely.
            self._go(Step.CLOSED)
            self._pending.clear()
            self._final_owed = True
            return
        self._send_close()
        self._go(Step.CLOSING)

    @property
    def close_sent(self) -> bool:
        """Our ``</stream:stream>`` is queued: nothing more will be written."""
        return self._close_sent

    @property
    def closed(self) -> bool:
        return self.step is Step.CLOSED

    @property
    def established(self) -> bool:
        return self.step is Step.ESTABLISHED

    # -- incoming ----------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> List[Event]:
        """Feed bytes read from the transport (``b""`` at end of file); return the events.

        Events that were complete before a failure are returned before the final
        :class:`StreamClosed`.  After it, further data is ignored.
        """
        events: List[Event] = []
        if self.step is Step.CLOSED:
            if self._final_owed:
                self._final_owed = False
                events.append(StreamClosed(None))
            return events
        self._debug = xml_log.isEnabledFor(logging.DEBUG)
        if self.step in _DRIVER_TURN:
            raise LocalProtocolError("data fed to the core while the driver must %s" % self.step.value)
        if self._parser is None:
            raise LocalProtocolError("receive_data() before initiate()")
        if not data:
            self._end(events, self._lost_error("the server closed the connection"))
            return events
        try:
            while data:
                parser = self._parser
                rest = b""
                failure: Optional[ProtocolError] = None
                try:
                    if self.step in _NEGOTIATING:
                        rest = parser.feed_until_stanza(data)
                    else:
                        parser.feed(data)
                except ProtocolError as exc:
                    failure = exc
                items = parser.items
                if items:
                    parser.items = []
                    if self._take_items(items, events):
                        return events
                if failure is not None:
                    raise failure
                if self.step is Step.TLS:
                    events.append(TLSRequested(rest))
                    return events
                if self.step is Step.COMPRESSION:
                    if rest:
                        # The server cannot have compressed data for us before our new header.
                        raise ProtocolError("%d plain bytes after <compressed/>" % len(rest))
                    events.append(CompressionRequested())
                    return events
                data = rest
        except Error as exc:
            self._end(events, exc)
        except Exception as exc:
            # A bug, or a user mechanism's failure not caught below: never out of here.  The
            # message names the exception's type only (its text may hold server bytes).
            self._end(events, ProtocolError("failed on received data (%s)" % type(exc).__name__))
        return events

    def connection_lost(self, error: Optional[Error] = None) -> List[Event]:
        """The transport broke (``error`` says how) or hit end of file; returns the final event."""
        events: List[Event] = []
        if self.step is not Step.CLOSED:
            error = error or self._lost_error("the connection was closed")
            self._go(Step.CLOSED)
            self._pending.clear()
            events.append(StreamClosed(self.redactor.scrub_error(error)))
        elif self._final_owed:
            self._final_owed = False
            events.append(StreamClosed(None))
        return events

    # -- internals ---------------------------------------------------------------------------

    def _go(self, step: Step) -> None:
        """The one place the step changes: the move must be in the table of state.py."""
        check_transition(self.step, step)
        self.step = step

    def _is_server(self, key: JidKey) -> bool:
        """Whether ``key`` (see :func:`jid_key`) addresses the server or the user's own
        account: the stream's domain, the domain of the bound JID, or the own bare JID."""
        if key[2]:
            return False
        if key[0] == "":
            return key[1] == self._domain_key[1] or (self.jid is not None and key[1] == jid_key(self.jid)[1])
        return self.jid is not None and key[:2] == jid_key(self.jid)[:2]

    def _server_answered(self, sender: Optional[str]) -> bool:
        """Whether an answer with this ``from`` comes from the server or on behalf of the
        user's account (RFC 6120 8.1.2.1: no ``from``, the server's domain, or the account's
        bare JID).  Another account's stanzas carry its own address: the server stamps it."""
        return sender is None or self._is_server(jid_key(sender))

    def _require_open(self) -> None:
        if self._close_sent or self.step in (Step.CLOSED, Step.CLOSING):
            raise LocalProtocolError("the stream is closed")
        if self.step is not Step.ESTABLISHED:
            # Never a stanza of ours before TLS, authentication and the session.
            raise LocalProtocolError("stanzas can be sent once the session is open (now: %s)" % self.step.value)

    def _lost_error(self, what: str) -> ConnectionLost:
        if self.step is Step.ESTABLISHED:
            return ConnectionLost(what)
        return ConnectionLost("%s (%s)" % (what, self.step.value))

    def _restart(self) -> None:
        if self._parser is not None:  # initiate() starts in the initial step already
            self._go(Step.STREAM)
        self._parser = StreamParser(self.limits, pushes=True)
        self._header_seen = False
        self.features = None
        header = stanzas.stream_header(self.domain, self.lang)
        self._out.append(header)
        if xml_log.isEnabledFor(logging.DEBUG):
            xml_log.debug("SEND %s", header.decode("utf-8"))

    def _send(self, xml: str, shown: Optional[str] = None) -> None:
        self._out.append(xml.encode("utf-8"))
        if self._debug or xml_log.isEnabledFor(logging.DEBUG):
            xml_log.debug("SEND %s", shown if shown is not None else self.redactor.scrub(xml))

    def _send_close(self) -> None:
        if not self._close_sent:
            self._close_sent = True
            self._out.append(stanzas.STREAM_CLOSE)
            xml_log.debug("SEND </stream:stream>")

    def _end(self, events: List[Event], error: Optional[Error]) -> None:
        """Finish the stream: answer with our close tag if one is owed, emit StreamClosed."""
        if self.step is Step.CLOSED:
            return
        if error is not None:
            self.redactor.scrub_error(error)  # server-chosen names and texts may echo the token back
        if self.step not in _DRIVER_TURN:
            if self._unacked and not self._close_sent:
                self._close_owed = True  # acknowledge() sends it after the last pending push
            else:
                self._send_close()
        self._go(Step.CLOSED)
        self._pending.clear()
        events.append(StreamClosed(error))

    def _scrubbed(self, text: Optional[str]) -> Optional[str]:
        return None if text is None else self.redactor.scrub(text)

    def _dispatch(self, item: object, events: List[Event]) -> None:
        if type(item) is Element:
            elem: Element = item
            if self._debug:
                xml_log.debug("RECV %s", self.redactor.scrub(to_xml(elem)))
            tag = elem.tag
            if tag == ns.IQ:
                self._on_iq(elem, events)
            elif tag == ns.STREAM_ERROR:
                condition, text = _error_condition(elem, ns.STREAM_ERRORS)
                other = elem.find(ns.qname(ns.STREAM_ERRORS, "see-other-host"))
                other_host = (other.text or "").strip() or None if other is not None else None
                if other is not None and not self.tls:
                    # Anyone on the path can inject a redirect into a plain stream: never follow it.
                    other_host = None
                    text = (text + "; " if text else "") + "a redirect before TLS is not followed"
                raise StreamError(condition, self._scrubbed(text), other_host)
            elif self.step is Step.FEATURES and tag == ns.FEATURES:
                self._on_features(Features(elem))
            elif self.step is Step.STARTTLS:
                self._on_starttls_answer(elem)
            elif self.step is Step.COMPRESS:
                self._on_compress_answer(elem)
            elif self.step is Step.AUTH:
                self._on_auth_answer(elem, events)
            elif self.step in _AFTER_AUTH and self.authenticated:
                events.append(StanzaReceived(elem))
            elif self.step is Step.CLOSING:
                pass  # closing a stream that never authenticated: nothing from it is trusted
            else:
                raise ProtocolError("unexpected <%s> while %s" % (tag, self.step.value))
        elif isinstance(item, StreamHeader):
            if self._debug:
                attrs = " ".join('%s="%s"' % (k.replace("{%s}" % ns.XML, "xml:"), v) for k, v in item.attrs.items())
                xml_log.debug("RECV <stream:stream %s>", self.redactor.scrub(attrs))
            if self.step is Step.CLOSING and not self._header_seen:
                # close() came before the server's header: take it, and wait for its close.
                self._header_seen = True
                self.stream_id = item.id
                return
            if self.step is not Step.STREAM:
                raise ProtocolError("unexpected stream header while %s" % self.step.value)
            self._header_seen = True
            self.stream_id = item.id
            self._go(Step.FEATURES)
            stage = "after authentication" if self.authenticated else ("over TLS" if self.tls else "initial")
            events.append(StreamOpened(item.id, stage))
        elif item is STREAM_END:
            xml_log.debug("RECV </stream:stream>")
            if self.step is Step.CLOSING:
                self._end(events, None)
            else:
                self._end(events, self._lost_error("the server closed the stream"))

    def _on_features(self, features: Features) -> None:
        self.features = features
        if not self.tls:
            if not features.starttls:
                raise TLSError(
                    "the server did not offer STARTTLS; refusing to authenticate over an unencrypted stream"
                )
            self._out.append(stanzas.STARTTLS)
            xml_log.debug("SEND %s", stanzas.STARTTLS.decode())
            self._go(Step.STARTTLS)
        elif self.compress and not self.compressed and not self._compression_refused and "zlib" in features.compression:
            self._send(stanzas.COMPRESS_ZLIB)
            self._go(Step.COMPRESS)
        elif not self.authenticated:
            name = self.mechanism.name
            # The seed's server lists no mechanism at all; an empty or missing list still gets
            # ours.  A list that names others but not ours means it would be refused: do not
            # hand the credentials to a server that did not ask for them.
            if features.mechanisms and name not in features.mechanisms:
                raise AuthError(
                    "invalid-mechanism", "server offers %s, not %s" % (", ".join(features.mechanisms), name)
                )
            try:
                initial = self.mechanism.initial_response()
                payload = None if initial is None else base64.b64encode(initial).decode("ascii")
            except Error:
                raise
            except Exception as exc:
                raise self._mechanism_failure("initial_response", exc) from None
            self._send(stanzas.auth(name, payload), shown=stanzas.auth(name, None if payload is None else MASK))
            self._go(Step.AUTH)
        else:
            self._bind_id = self._new_id("bind_")
            self._send(stanzas.bind(self._bind_id, self.resource))
            self._go(Step.BIND)

    def _mechanism_failure(self, method: str, exc: Exception) -> AuthError:
        """What a mechanism's own exception (not a yaxmpp error) becomes: an AuthError that
        names the method and the exception type; its text, which may hold a secret, is left out."""
        return AuthError(
            "mechanism-failure", "%s.%s() raised %s" % (type(self.mechanism).__name__, method, type(exc).__name__)
        )

    def _on_starttls_answer(self, elem: Element) -> None:
        if elem.tag == ns.PROCEED:
            self._go(Step.TLS)
        elif elem.tag == ns.TLS_FAILURE:
            raise TLSError("the server refused STARTTLS")
        else:
            raise ProtocolError("expected <proceed/>, got <%s>" % elem.tag)

    def _on_compress_answer(self, elem: Element) -> None:
        if elem.tag == ns.COMPRESSED:
            self._go(Step.COMPRESSION)
        elif elem.tag == ns.COMPRESS_FAILURE:
            condition, _ = _error_condition(elem, ns.COMPRESS)
            logging.getLogger("yaxmpp").warning("the server refused compression (%s); going on uncompressed", self._scrubbed(condition))
            self._compression_refused = True
            assert self.features is not None
            self._on_features(self.features)
        else:
            raise ProtocolError("expected <compressed/>, got <%s>" % elem.tag)

    def _on_auth_answer(self, elem: Element, events: List[Event]) -> None:
        tag = elem.tag
        if tag == ns.SASL_SUCCESS:
            # Additional data with success (RFC 6120 6.4.6), e.g. SCRAM's server signature:
            # the mechanism checks it before anything else happens on this stream.
            raw = (elem.text or "").strip()
            try:
                data = base64.b64decode(raw if raw != "=" else "", validate=True)
            except (ValueError, binascii.Error):
                raise ProtocolError("SASL success data is not base64") from None
            check = getattr(self.mechanism, "success", None)  # (a duck-typed mechanism may lack it)
            try:
                if check is not None:
                    check(data)
            except Error:
                raise
            except Exception as exc:
                raise self._mechanism_failure("success", exc) from None
            self.authenticated = True
            events.append(Authenticated(self.mechanism.name))
            self._restart()
        elif tag == ns.SASL_FAILURE:
            condition, text = _error_condition(elem, ns.SASL)
            raise AuthError(condition, self._scrubbed(text))
        elif tag == ns.SASL_CHALLENGE:
            raw = (elem.text or "").strip()
            try:
                data = base64.b64decode(raw if raw != "=" else "", validate=True)
            except (ValueError, binascii.Error):
                raise ProtocolError("SASL challenge is not base64") from None
            try:
                answer = base64.b64encode(self.mechanism.challenge(data)).decode("ascii")
            except Error:
                raise
            except Exception as exc:
                raise self._mechanism_failure("challenge", exc) from None
            self._send(stanzas.sasl_response(answer), shown=stanzas.sasl_response(MASK))
        else:
            raise ProtocolError("expected the SASL result, got <%s>" % tag)

    def _take_items(self, items: Sequence[object], events: List[Event]) -> bool:
        """Dispatch what the parser gave; True once the stream is closed.

        Disk pushes, the hot path, are recognised here and gathered into one
        :class:`PushesReceived` per run (their ids are marked unacknowledged once per run);
        all else goes to :meth:`_dispatch`."""
        run: Optional[PushesReceived] = None
        pushes_allowed = self.authenticated
        debug = self._debug
        for item in self._expand(items, pushes_allowed):
            if type(item) is PushRun:  # pushes of the usual shape, from the parser's fast path
                if debug:
                    for element in item.elements():
                        xml_log.debug("RECV %s", self.redactor.scrub(to_xml(element)))
                if run is None:
                    run = PushesReceived()
                    events.append(run)
                run.iq_ids += item.ids
                run.senders += item.senders
                run.queries += item.compacts
                continue
            if pushes_allowed and type(item) is Element and item.tag == _IQ and len(item):
                query = item[0]
                if query.tag == _DISK_QUERY and item.get("type") == "set":
                    sender = item.get("from")
                    # A push comes from the server (no "from", or a server or component
                    # address) or the user's own account; no other user.
                    if sender is None or "@" not in sender or self._own(sender):
                        if debug:
                            xml_log.debug("RECV %s", self.redactor.scrub(to_xml(item)))
                        if run is None:
                            run = PushesReceived()
                            events.append(run)
                        run.iq_ids.append(item.get("id") or "")
                        run.senders.append(sender)
                        run.queries.append(query)
                        continue
            if run is not None:
                self._mark_unacked(run)
            self._dispatch(item, events)
            if self.closed:
                return True
            if run is not None and events[-1] is not run:
                run = None  # pushes after this event start a new run
        if run is not None:
            self._mark_unacked(run)
        return False

    def _expand(self, items: Sequence[object], pushes_allowed: bool) -> Iterator[object]:
        """``items``, with each run of pushes from the parser's fast path that is not taken as
        it is (before authentication, or from another user) as the elements expat would have
        built, to be seen one by one."""
        for item in items:
            if type(item) is PushRun:
                senders = set(item.senders)  # (nearly always one)
                if pushes_allowed and all(sender is None or "@" not in sender or self._own(sender) for sender in senders):
                    yield item
                else:
                    yield from item.elements()
            else:
                yield item

    def _mark_unacked(self, run: PushesReceived) -> None:
        # Delivered even when it cannot be acknowledged: received data is never dropped.
        if not self._close_sent:
            unacked = self._unacked
            unacked.update(run.iq_ids)
            unacked.discard("")

    def _on_iq(self, elem: Element, events: List[Event]) -> None:
        iq_type = elem.get("type")
        iq_id = elem.get("id")
        if iq_type == "result" or iq_type == "error":
            if iq_id is None:
                return
            sender = elem.get("from")
            if self.step is Step.BIND and iq_id == self._bind_id:
                if self._server_answered(sender):
                    self._on_bind_answer(elem, iq_type, events)
                    return
            elif self.step is Step.SESSION and iq_id == self._session_id:
                if self._server_answered(sender):
                    self._on_session_answer(elem, iq_type, events)
                    return
            else:
                expected = self._pending.get(iq_id, _MISSING)
                if expected is _MISSING:
                    return  # an answer to nothing we asked is ignored
                if expected is None:
                    answered = self._server_answered(sender)
                else:
                    answered = sender is not None and jid_key(sender) == expected
                if answered:
                    del self._pending[iq_id]
                    self._on_answer(elem, iq_id, iq_type, events)
                    return
            # Someone else answering our id (a guess, or a spoof): not the answer.
            if self._debug:
                xml_log.debug("an answer to %s from an entity it was not sent to is ignored", iq_id)
            return
        if iq_type != "get" and iq_type != "set":
            return  # not a request: nothing to answer
        if iq_id is None or self._close_sent or self.step is Step.CLOSED:
            return  # cannot be answered
        sender = elem.get("from")
        child_tag = elem[0].tag if len(elem) else None
        if iq_type == "get" and child_tag == ns.PING_TAG:
            self._send(stanzas.iq_result(sender, iq_id))
            events.append(RequestAnswered("ping", iq_id, sender))
        elif iq_type == "get" and child_tag == ns.VERSION_QUERY and self.authenticated:
            # (Before authentication, possibly before TLS, the client does not say what it is.)
            v = self.version
            self._send(stanzas.version_result(sender, iq_id, v.name, v.version, v.os))
            events.append(RequestAnswered("version", iq_id, sender))
        else:
            # Anything else, including a "push" before authentication, is not served.
            self._send(stanzas.iq_error(sender, iq_id))
            events.append(RequestAnswered("unsupported", iq_id, sender))

    def _on_answer(self, elem: Element, iq_id: str, iq_type: str, events: List[Event]) -> None:
        error = None
        if iq_type == "error":
            err_elem = elem.find(ns.STANZA_ERROR)
            condition, text = _error_condition(err_elem, ns.STANZAS)
            error = IqError(
                "iq %s" % iq_id,
                condition,
                err_elem.get("type") if err_elem is not None else None,
                self._scrubbed(text),
            )
            self.redactor.scrub_error(error)  # the condition and type are server-chosen
        events.append(IqResponse(iq_id, elem, error))

    def _own(self, sender: str) -> bool:
        """Whether ``sender`` is the user's own account (bare or full JID)."""
        jid = self.jid
        return jid is not None and sender.partition("/")[0].lower() == jid.partition("/")[0].lower()

    def _on_bind_answer(self, elem: Element, iq_type: str, events: List[Event]) -> None:
        if iq_type == "error":
            condition, text = _error_condition(elem.find(ns.STANZA_ERROR), ns.STANZAS)
            raise IqError("resource binding", condition, None, self._scrubbed(text))
        jid_elem = elem.find("%s/%s" % (ns.BIND_TAG, ns.JID_TAG))
        jid = (jid_elem.text or "").strip() if jid_elem is not None else ""
        if not jid:
            raise ProtocolError("the bind result carries no JID")
        self.jid = jid
        events.append(Bound(jid))
        self._session_id = self._new_id("session_")
        self._send(stanzas.session(self._session_id))
        self._go(Step.SESSION)

    def _on_session_answer(self, elem: Element, iq_type: str, events: List[Event]) -> None:
        if iq_type == "error":
            condition, text = _error_condition(elem.find(ns.STANZA_ERROR), ns.STANZAS)
            features = self.features
            if features is not None and features.session:
                raise IqError("session", condition, None, self._scrubbed(text))
            # RFC 6121 dropped the session step; a server that did not offer it may refuse it.
            logging.getLogger("yaxmpp").warning("session refused (%s), but it was not offered; going on", self._scrubbed(condition))
        self._go(Step.ESTABLISHED)
        assert self.jid is not None
        events.append(SessionStarted(self.jid, self.stream_id))
