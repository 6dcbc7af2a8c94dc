"""A connection run one step at a time, each with its own verdict, timing and hint.

::

    for step in yaxmpp.doctor.diagnose("login", token, rest=True):
        print(step.name, step.ok, "%.0f ms" % (step.seconds * 1000), step.detail, step.hint or "")

The steps: name resolution, TCP to the STARTTLS port, TCP to the direct-TLS port, STARTTLS,
the TLS handshake (version, certificate subject, issuer, expiry, host name), the stream and
its features (mechanisms, compression), SASL, bind, session, the Disk subscription, one ping
round trip, the close; then, with ``rest=True``, the token checked against the Disk REST API.
The protocol is the library's own sans-IO core over the library's own dialling and transport
(the same code :class:`~yaxmpp.Client` runs), driven here step by step instead of by
:class:`~yaxmpp.connection.Connection`, so that each step can be timed and named.

A failing step ends the XMPP steps (except a closed STARTTLS port: like the client, the
direct-TLS port is tried next); its :attr:`StepResult.error` is the typed error the client
would have raised, its :attr:`StepResult.hint` says what it means and what to try.  Nothing
here shows the token: every text is masked with the token's redactor.
"""

from __future__ import annotations

import socket
import ssl
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from .connection import HEAD_BYTES, NotXMPP, not_xml_stream
from .deadline import Deadline
from .dial import dial, resolve
from .diskapi import DEFAULT_API_URL, disk_info
from .errors import (
    APIError,
    AuthError,
    ConnectionLost,
    Error,
    IqError,
    NetworkError,
    ProtocolError,
    StreamError,
    SubscribeError,
    Timeout,
    TLSError,
)
from .options import DEFAULT_HOST, Options
from .protocol.core import ClientProtocol
from .protocol.disk import subscribe_payload, subscribe_target
from .protocol.events import (
    Authenticated,
    Bound,
    CompressionRequested,
    Event,
    IqResponse,
    PushesReceived,
    SessionStarted,
    StreamClosed,
    TLSRequested,
)
from .protocol.redact import Redactor, bound
from .protocol.state import Step
from .transport import Transport

__all__ = ["StepResult", "diagnose", "STEPS"]

#: Every step's name and title, in order.
STEPS: Tuple[Tuple[str, str], ...] = (
    ("resolve", "name resolution"),
    ("tcp-starttls", "TCP to the STARTTLS port"),
    ("tcp-tls", "TCP to the direct-TLS port"),
    ("starttls", "STARTTLS"),
    ("tls", "TLS handshake"),
    ("stream", "stream and features"),
    ("compression", "zlib compression"),
    ("sasl", "SASL authentication"),
    ("bind", "resource binding"),
    ("session", "session"),
    ("subscribe", "Disk push subscription"),
    ("ping", "ping round trip"),
    ("close", "close"),
    ("rest", "Disk REST API token check"),
)
_TITLES = dict(STEPS)

PING = '<ping xmlns="urn:xmpp:ping"/>'


class StepResult:
    """One step's outcome: ``name`` (a key of :data:`STEPS`), ``title``, ``ok``, ``seconds``
    (its own duration), ``detail`` (what was found, in words), ``info`` (the same as data),
    ``error`` (the typed error when it failed) and ``hint`` (what it means, what to try)."""

    __slots__ = ("name", "title", "ok", "seconds", "detail", "info", "error", "hint")

    def __init__(
        self,
        name: str,
        ok: bool,
        seconds: float,
        detail: str = "",
        info: Optional[Dict[str, Any]] = None,
        error: Optional[Error] = None,
        hint: Optional[str] = None,
    ) -> None:
        self.name = name
        self.title = _TITLES.get(name, name)
        self.ok = ok
        self.seconds = seconds
        self.detail = detail
        self.info: Dict[str, Any] = dict(info or {})
        self.error = error
        self.hint = hint

    def to_json(self) -> Dict[str, Any]:
        return {
            "step": self.name,
            "title": self.title,
            "ok": self.ok,
            "ms": round(self.seconds * 1000, 1),
            "detail": self.detail,
            "info": self.info,
            "error": None if self.error is None else {"type": type(self.error).__name__, "message": str(self.error)},
            "hint": self.hint,
        }

    def __repr__(self) -> str:
        return "<StepResult %s %s %.3fs %r>" % (self.name, "ok" if self.ok else "FAILED", self.seconds, self.detail)


class _Failed(Exception):
    """A step failed and was recorded: the XMPP steps end."""


def _name(parts: Any) -> str:
    """A certificate name (``getpeercert()`` form) in words: its CN and O, else everything."""
    fields: Dict[str, str] = {}
    for rdn in parts or ():
        for key, value in rdn:
            fields.setdefault(key, value)
    chosen = [fields[k] for k in ("commonName", "organizationName") if k in fields]
    return ", ".join(chosen or ["%s=%s" % kv for kv in fields.items()]) or "?"


class _Doctor:
    def __init__(
        self,
        options: Options,
        redactor: Redactor,
        token: str,
        on_step: Optional[Callable[[StepResult], None]],
        clock: Callable[[], float],
    ) -> None:
        self.o = options
        self.redactor = redactor
        self.token = token
        self.on_step = on_step
        self.clock = clock
        self.steps: List[StepResult] = []
        self.mark = clock()
        self.deadline = Deadline(options.timeout)
        self.current = "resolve"
        self.transport: Optional[Transport] = None
        self.core: Optional[ClientProtocol] = None
        self.direct_tls = False
        self.port: Optional[int] = None
        #: The first bytes of the first stream, to tell a peer that is not XMPP at all.
        self.head = b""
        self.opened = False  # a stream header was ever received

    # -- recording -------------------------------------------------------------------------

    def record(self, name: str, ok: bool, detail: str = "", info: Optional[Dict[str, Any]] = None, error: Optional[Error] = None, hint: Optional[str] = None) -> StepResult:
        now = self.clock()
        if error is not None:
            error = self.redactor.scrub_error(error)
            detail = detail or str(error)
        result = StepResult(name, ok, max(0.0, now - self.mark), self.redactor.scrub(detail), info, error, hint and self.redactor.scrub(hint))
        self.mark = now
        self.deadline = Deadline(self.o.timeout)
        self.steps.append(result)
        if self.on_step is not None:
            self.on_step(result)
        return result

    def fail(self, name: str, error: BaseException) -> "_Failed":
        typed = self._typed(error)
        self.record(name, False, error=typed, hint=self.hint(name, typed))
        return _Failed()

    def _typed(self, exc: BaseException) -> Error:
        if isinstance(exc, ProtocolError) and not self.opened and self.head:
            if not_xml_stream(self.head):
                return self._not_xmpp()  # what watch says of it: a connection failure
        if isinstance(exc, Error):
            return exc
        what = self.core.step.value if self.core is not None else _TITLES.get(self.current, self.current)
        if isinstance(exc, socket.timeout):
            return Timeout("no answer within %gs while %s" % (self.o.timeout, what), what)
        if isinstance(exc, OSError):
            return ConnectionLost("connection lost while %s: %s" % (what, exc.strerror or exc))
        return ProtocolError("failed while %s (%s)" % (what, type(exc).__name__))

    def _not_xmpp(self) -> NotXMPP:
        first = self.head.strip().split(b"\n", 1)[0].strip()[:40].decode("ascii", "replace")
        shown = "".join(c if c.isprintable() else "?" for c in first)
        return NotXMPP("not an XMPP server at %s port %s (it answered %r)" % (self.o.host, self.port, self.redactor.scrub(shown)))

    # -- the steps -------------------------------------------------------------------------

    def run(self, rest: bool, api_url: str, rest_cafile: Optional[str]) -> List[StepResult]:
        try:
            with bound(self.redactor):
                self._xmpp()
        except _Failed:
            pass
        finally:
            if self.transport is not None:
                self.transport.close(polite=False)
        if rest:
            self._rest(api_url, rest_cafile)
        return self.steps

    def _xmpp(self) -> None:
        o = self.o
        first = o.port if o.port is not None else o.tls_port
        assert first is not None
        try:
            addresses = resolve(o.host, first, self.deadline)
        except Error as exc:
            raise self.fail("resolve", exc) from None
        found: List[str] = []
        for info in addresses:
            if info[4][0] not in found:
                found.append(info[4][0])
        self.record("resolve", True, "%s: %s" % (o.host, ", ".join(found)), {"host": o.host, "addresses": found})
        sockets: List[Tuple[socket.socket, bool]] = []
        for name, number, direct in (("tcp-starttls", o.port, False), ("tcp-tls", o.tls_port, True)):
            if number is None:
                continue
            self.current = name
            try:
                sock, _ = dial(o.host, None if direct else number, number if direct else None, self.deadline)
            except Error as exc:
                self.fail(name, exc)
                continue
            peer = sock.getpeername()
            self.record(name, True, "connected to %s port %d" % (peer[0], peer[1]), {"address": peer[0], "port": peer[1]})
            sockets.append((sock, direct))
        if not sockets:
            raise _Failed()
        sock, self.direct_tls = sockets[0]  # the STARTTLS port when it answered, as the client does
        for other, _ in sockets[1:]:
            other.close()
        self.port = sock.getpeername()[1]
        self.transport = Transport(sock)
        self.core = core = o.make_core(self.direct_tls, self.redactor)
        if self.direct_tls:
            self.current = "tls"
            self._handshake(b"")
        else:
            self.current = "starttls"
        core.initiate()
        self._send()
        self._negotiate()
        self._subscribe()
        self._ping()
        self._close()

    def _send(self) -> None:
        assert self.core is not None and self.transport is not None
        data = self.core.data_to_send()
        if data:
            self.transport.send(data, deadline=self.deadline)

    def _events(self) -> List[Event]:
        """One read, fed to the core, its answers sent; the events."""
        assert self.core is not None and self.transport is not None
        data = self.transport.recv(self.deadline)
        if not self.opened and len(self.head) < HEAD_BYTES:
            self.head += data[: HEAD_BYTES - len(self.head)]
        try:
            events = self.core.receive_data(data)
        finally:
            self.opened = self.opened or self.core.stream_id is not None
        self._send()
        for event in events:
            if isinstance(event, PushesReceived):
                self.core.acknowledge_all(event, len(event))
                self._send()
        return events

    def _handshake(self, leftover: bytes) -> None:
        assert self.transport is not None
        o = self.o
        try:
            self.transport.start_tls(o.ssl_context, o.host, leftover, deadline=self.deadline)
        except (Error, OSError) as exc:
            raise self.fail("tls", exc) from None
        transport = self.transport
        cert = transport.peer_certificate() or {}
        info: Dict[str, Any] = {
            "version": transport.tls_version,
            "cipher": transport.cipher,
            "subject": _name(cert.get("subject")),
            "issuer": _name(cert.get("issuer")),
            "not_after": cert.get("notAfter"),
            "names": [value for _, value in cert.get("subjectAltName", ())],
            "host_name_checked": o.ssl_context.check_hostname,
            "host_name_matches": True if o.ssl_context.check_hostname else None,
        }
        detail = "%s, %s; certificate %s, issued by %s" % (info["version"], info["cipher"], info["subject"], info["issuer"])
        if info["not_after"]:
            try:
                days = (ssl.cert_time_to_seconds(info["not_after"]) - time.time()) / 86400
            except ValueError:
                days = None
            detail += ", valid until %s" % info["not_after"]
            if days is not None:
                info["days_left"] = int(days)
                if days < 14:
                    detail += " (%d days left)" % days
        detail += "; host name %s" % (o.host + " matches" if o.ssl_context.check_hostname else "not checked")
        self.record("tls", True, detail, info)
        self.current = "stream"

    def _negotiate(self) -> None:
        core = self.core
        assert core is not None and self.transport is not None
        streamed = False
        try:
            while not core.established:
                for event in self._events():
                    if isinstance(event, TLSRequested):
                        features = core.features
                        required = features is not None and features.starttls_required
                        self.record("starttls", True, "offered%s; the server said proceed" % (" (required)" if required else ""))
                        self.current = "tls"
                        self._handshake(event.leftover)
                        core.tls_established()
                        self._send()
                    elif isinstance(event, CompressionRequested):
                        self.transport.start_compression()
                        core.compression_established()
                        self._send()
                        self.record("compression", True, "zlib on")
                        self.current = "bind" if core.authenticated else "sasl"
                    elif isinstance(event, Authenticated):
                        self.record("sasl", True, "authenticated with %s" % event.mechanism, {"mechanism": event.mechanism})
                        self.current = "bind"
                    elif isinstance(event, Bound):
                        self.record("bind", True, "bound as %s" % event.jid, {"jid": event.jid})
                        self.current = "session"
                    elif isinstance(event, SessionStarted):
                        self.record("session", True, "session open", {"stream_id": event.stream_id})
                        self.current = "subscribe"
                    elif isinstance(event, StreamClosed):
                        raise event.error or ConnectionLost("the stream ended during negotiation")
                if not streamed and core.authenticated is False and core.tls and core.step in (Step.AUTH, Step.COMPRESS):
                    streamed = True
                    self._stream_step(core)
        except _Failed:
            raise
        except (Error, OSError) as exc:
            raise self.fail(self.current, exc) from None

    def _stream_step(self, core: ClientProtocol) -> None:
        features = core.features
        mechanisms = list(features.mechanisms or ()) if features is not None else []
        compression = list(features.compression) if features is not None else []
        detail = "stream id %s; mechanisms: %s; compression: %s" % (
            core.stream_id or "-",
            ", ".join(mechanisms) or "none listed",
            ", ".join(compression) or "none",
        )
        self.record("stream", True, detail, {"stream_id": core.stream_id, "mechanisms": mechanisms, "compression": compression})
        self.current = "compression" if core.step is Step.COMPRESS else "sasl"

    def _request(self, name: str, iq_type: str, payload: str, to: Optional[str]) -> IqResponse:
        core = self.core
        assert core is not None
        self.current = name
        try:
            iq_id = core.send_iq(iq_type, payload, to)
            self._send()
            while True:
                for event in self._events():
                    if isinstance(event, IqResponse) and event.iq_id == iq_id:
                        return event
                    if isinstance(event, StreamClosed):
                        raise event.error or ConnectionLost("the stream ended while waiting for the answer")
        except _Failed:
            raise
        except (Error, OSError) as exc:
            raise self.fail(name, exc) from None

    def _subscribe(self) -> None:
        o = self.o
        to = subscribe_target(o.login, o.domain)
        answer = self._request("subscribe", "set", subscribe_payload(), to)
        if answer.error is not None:
            error = SubscribeError(answer.error.condition, answer.error.type, answer.error.text)
            raise self.fail("subscribe", error)
        self.record("subscribe", True, "subscribed for %s" % to, {"to": to})

    def _ping(self) -> None:
        answer = self._request("ping", "get", PING, self.o.domain)
        if answer.error is not None:
            # An error answer still is a round trip: the server is there and answering.
            self.record("ping", True, "answered with an error (%s)" % answer.error.condition, {"condition": answer.error.condition})
        else:
            self.record("ping", True, "answered")

    def _close(self) -> None:
        core = self.core
        assert core is not None and self.transport is not None
        self.current = "close"
        self.deadline = Deadline(self.o.close_timeout)  # (bounded like the client's close)
        try:
            core.close()
            self._send()
            ended = False
            while not ended:
                for event in self._events():
                    if isinstance(event, StreamClosed):
                        if event.error is not None:
                            raise event.error
                        ended = True
        except (Error, OSError) as exc:
            raise self.fail("close", exc) from None
        self.transport.close(polite=True)
        self.transport = None
        self.record("close", True, "the server closed its stream too")

    def _rest(self, api_url: str, cafile: Optional[str]) -> None:
        self.mark = self.clock()
        try:
            info = disk_info(self.token, api_url=api_url, timeout=self.o.timeout, cafile=cafile)
        except Error as exc:
            self.fail("rest", exc)
            return
        detail = "the token is good for the Disk API: login %s, revision %s" % (info.login or "?", info.revision)
        hint = None
        if info.login and info.login.lower() != self.o.login.lower():
            detail += "; not the login %s given" % self.o.login
            hint = "the token belongs to %s: use --login %s" % (info.login, info.login)
        self.record("rest", True, detail, {"login": info.login, "revision": info.revision}, hint=hint)

    # -- hints -----------------------------------------------------------------------------

    def hint(self, name: str, error: Error) -> Optional[str]:
        o = self.o
        text = str(error).lower()
        if isinstance(error, StreamError):
            if error.condition == "conflict":
                return "another client uses the same resource: give this one its own with --resource NAME"
            if error.other_host:
                return "the server redirects to %s (watch follows redirects); try --host %s" % (error.other_host, error.other_host)
            return "the server ended the stream (%s)" % error.condition
        if name == "resolve":
            if isinstance(error, Timeout):
                return "the resolver did not answer in time: check the DNS settings or the network"
            return "the name %s does not resolve: check --host, the DNS settings or the network" % o.host
        if name == "tcp-starttls":
            if o.tls_port is not None:
                return "port %s is blocked or closed (many networks allow only 443): try --port none to connect with direct TLS to port %s" % (
                    o.port,
                    o.tls_port,
                )
            return "port %s is blocked or closed: try the direct-TLS port with --port none --tls-port 443" % o.port
        if name == "tcp-tls":
            if any(s.name == "tcp-starttls" and s.ok for s in self.steps):
                return "the direct-TLS fallback port %s is not reachable; the STARTTLS port works, so this only matters if that one fails (--tls-port none skips it)" % (o.tls_port,)
            return "no port is reachable: check the network, a firewall, or --host"
        if isinstance(error, NotXMPP):
            return "port %s answers, but not as an XMPP server (a web server?): check --host, --port and --tls-port" % (self.port,)
        if name == "starttls":
            if isinstance(error, TLSError):
                return "the STARTTLS offer is missing: something on the way strips it, or this is not the XMPP server; try --port none (direct TLS)"
            if isinstance(error, (Timeout, ProtocolError)):
                return "the server does not speak XMPP on port %d: check --host and --port" % (self.port or 0)
        if name == "tls":
            if "certificate" in text or "verify" in text:
                if "hostname" in text or "host name" in text or "match" in text:
                    return "the certificate is for another name than %s: check --host (the certificate is checked against it)" % o.host
                return (
                    "the server's certificate is not trusted (an intercepting proxy or antivirus?); "
                    "if you trust the CA that signed it, pass that CA with --cafile FILE"
                )
            if isinstance(error, Timeout):
                return "the TLS handshake got no answer: something on the way holds TLS; try the other port (--port none, or --tls-port none)"
            if "wrong_version_number" in text or "record layer" in text or "http_request" in text:
                return (
                    "the server on port %s does not speak TLS (plain text: a web server, or a STARTTLS port given "
                    "as --tls-port?): check --host and --tls-port" % (self.port,)
                )
            return "the TLS handshake failed: yaxmpp needs TLS 1.2 or newer; an old proxy may be in the way"
        if isinstance(error, AuthError):
            if error.condition == "not-authorized":
                return (
                    "the token is wrong, expired or lacks Disk access, or it is not the token of --login "
                    "(the account name, without @yandex.ru): run `yaxmpp login`, or check the token with --rest"
                )
            if error.condition == "invalid-mechanism":
                return "the server does not offer X-YANDEX-OAUTH: is --host the Yandex push server?"
            return "authentication failed (%s): run `yaxmpp login` for a new token" % error.condition
        if name == "subscribe":
            if isinstance(error, SubscribeError):
                return (
                    "the server refused the Disk subscription (%s): the token may lack Disk access, "
                    "or --login is not the token's account; check with --rest" % error.condition
                )
            if isinstance(error, Timeout):
                return "the server never answered the subscription: it may not be the Yandex push server"
        if name == "ping":
            if isinstance(error, Timeout):
                return (
                    "the server never answered the ping: something on the way may cut or hold the connection "
                    "(a proxy or firewall), and watch would see the connection as dead after its keepalive"
                )
        if name == "close" and isinstance(error, Timeout):
            return "the server did not answer the close: harmless for watching, but unusual"
        if name in ("bind", "session") and isinstance(error, IqError):
            return "the server refused %s (%s): try another --resource" % (_TITLES[name], error.condition)
        if name == "rest":
            if isinstance(error, APIError) and error.status == 401:
                return (
                    "the token is wrong, expired or lacks Disk access (the app needs the Disk permission "
                    "'Access to information about Disk'): run `yaxmpp login`"
                )
            if isinstance(error, NetworkError):
                return "the Disk REST API is not reachable: check the network, or --api-url and --cafile"
            return None
        if isinstance(error, Timeout):
            return "no answer in time (--timeout %g): the network is slow or something on the way holds the connection" % o.timeout
        if isinstance(error, ConnectionLost):
            return "the server or something on the way closed the connection"
        if isinstance(error, ProtocolError):
            return "the server broke the protocol: is --host the Yandex push server?"
        return None


def diagnose(
    login: str,
    token: str,
    *,
    host: str = DEFAULT_HOST,
    port: Optional[int] = 5222,
    tls_port: Optional[int] = 443,
    domain: str = "ya.ru",
    resource: Optional[str] = "YaDisk-client",
    timeout: float = 30.0,
    close_timeout: float = 5.0,
    cafile: Optional[str] = None,
    ssl_context: Optional[ssl.SSLContext] = None,
    compress: bool = False,
    mechanism: Any = None,
    rest: bool = False,
    api_url: str = DEFAULT_API_URL,
    rest_cafile: Optional[str] = None,
    on_step: Optional[Callable[[StepResult], None]] = None,
    clock: Callable[[], float] = time.monotonic,
) -> List[StepResult]:
    """Run the steps and return their results (``on_step`` is also called with each one as
    soon as it is done).  Every step succeeded when every result's ``ok`` is True.

    The options are :class:`~yaxmpp.Client`'s (``timeout`` bounds each step on its own,
    ``close_timeout`` the close);
    ``rest`` adds the REST check of the token at ``api_url`` (verified with ``rest_cafile``,
    default ``cafile``).  Raises :class:`~yaxmpp.UsageError` at once for unusable options;
    every other failure is a step's result, not an exception.
    """
    options = Options(
        login,
        token,
        host=host,
        port=port,
        tls_port=tls_port,
        domain=domain,
        resource=resource,
        timeout=timeout,
        close_timeout=close_timeout,
        cafile=cafile,
        ssl_context=ssl_context,
        compress=compress,
        mechanism=mechanism,
        keepalive=None,
    )
    redactor = Redactor.for_mechanism(options.mechanism)
    doctor = _Doctor(options, redactor, token, on_step, clock)
    return doctor.run(rest, api_url, rest_cafile if rest_cafile is not None else cafile)
