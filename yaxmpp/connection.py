"""One connection's life: dial, negotiate under a deadline, read on a background thread, close.

:class:`Connection` is the thin blocking driver around the sans-IO
:class:`~yaxmpp.protocol.core.ClientProtocol`: it owns the transport and the reader thread,
feeds the core what the socket gives, writes what the core queues, runs the TLS handshake
when the core asks, and turns socket-level failures into typed errors.  It runs no user
code: what arrives is handed to a *sink* whose methods must return at once.
"""

from __future__ import annotations

import itertools
from itertools import repeat
import logging
import socket
import ssl
import threading
import time
from typing import TYPE_CHECKING, Dict, List, Optional
from xml.etree.ElementTree import Element

from .cancel import Cancel
from .deadline import Deadline
from .dial import dial
from .errors import ClientClosed, ConnectionLost, Error, ProtocolError, Timeout, TLSError
from .protocol.core import ClientProtocol, Step, VersionInfo
from .protocol.disk import Notification
from .protocol.events import (
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
from .protocol.limits import Limits
from .protocol.redact import scrub_error
from .protocol.sasl import Mechanism
from .transport import Transport

if TYPE_CHECKING:  # pragma: no cover
    from typing import Protocol

    class Sink(Protocol):
        def stanza_received(self, connection: "Connection", element: Element) -> None: ...

        def pushes_received(self, connection: "Connection", notifications: List[Notification]) -> int: ...

        def connection_ended(self, connection: "Connection", error: Optional[Error]) -> None: ...


__all__ = ["Settings", "Connection"]

log = logging.getLogger("yaxmpp")

_numbers = itertools.count(1)

KEEPALIVE_PING = '<ping xmlns="urn:xmpp:ping"/>'


class Settings:
    """Everything a connection needs to know, fixed when the client is made."""

    def __init__(
        self,
        *,
        mechanism: Mechanism,
        host: str,
        port: Optional[int],
        tls_port: Optional[int],
        domain: str,
        resource: Optional[str],
        timeout: float,
        ssl_context: ssl.SSLContext,
        version: VersionInfo,
        limits: Limits,
        compress: bool = False,
        keepalive: Optional[float] = 60.0,
        keepalive_timeout: float = 20.0,
    ) -> None:
        self.mechanism = mechanism
        self.host = host
        self.port = port
        self.tls_port = tls_port
        self.domain = domain
        self.resource = resource
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.version = version
        self.limits = limits
        self.compress = compress
        self.keepalive = keepalive
        self.keepalive_timeout = keepalive_timeout

    def redirected(self, host: str, port: Optional[int]) -> "Settings":
        """These settings for another host (a ``see-other-host`` redirect).  A port named by
        the redirect is used as the STARTTLS port, without fallback."""
        other = Settings.__new__(Settings)
        other.__dict__.update(self.__dict__)
        other.host = host
        if port is not None:
            other.port, other.tls_port = port, None
        return other


class _Waiter:
    """One pending iq request, answered by the reader thread."""

    __slots__ = ("event", "element", "error")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.element: Optional[Element] = None
        self.error: Optional[Error] = None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class Connection:
    """A single XMPP connection.  Not reusable: make a new one to connect again."""

    def __init__(self, settings: Settings, sink: "Sink") -> None:
        self.settings = settings
        self.sink = sink
        self.number = next(_numbers)
        self.core: Optional[ClientProtocol] = None
        self.transport: Optional[Transport] = None
        self.port: Optional[int] = None
        self._lock = threading.Lock()  # the core, and the order of writes
        self._waiters: Dict[str, _Waiter] = {}
        self._reader: Optional[threading.Thread] = None
        self._ended = threading.Event()
        self._end_error: Optional[Error] = None
        self._closing = False  # close() was called
        self._aborted = False  # abort() was called while opening
        self._cancel = Cancel()  # stops dial() when set
        self._phase: Optional[str] = None  # what open() is doing, when the core cannot tell
        self.established_at: Optional[float] = None  # time.monotonic() when the session opened
        self.ended_at: Optional[float] = None

    # -- opening -------------------------------------------------------------------------

    def open(self, deadline: Deadline) -> None:
        """Connect and run steps 1-8 within ``deadline``, then start the reader thread.

        On failure, raises a typed error and leaves no socket and no thread behind.
        """
        s = self.settings
        sock, direct_tls = dial(s.host, s.port, s.tls_port, deadline, self._cancel)
        self.port = sock.getpeername()[1]
        transport = self.transport = Transport(sock)
        core = self.core = ClientProtocol(
            s.mechanism,
            domain=s.domain,
            resource=s.resource,
            tls=direct_tls,
            version=s.version,
            limits=s.limits,
            compress=s.compress,
        )
        log.info("connected to %s port %d (%s)", s.host, self.port, "direct TLS" if direct_tls else "STARTTLS")
        if self._aborted:
            transport.close(polite=False)
            raise ClientClosed("the client was closed during connect()")
        early: List[Event] = []
        try:
            if direct_tls:
                self._handshake(deadline, b"")
            core.initiate()
            self._write(core.data_to_send())
            while not core.established:
                self._arm(deadline)
                data = transport.recv(deadline)
                events = core.receive_data(data)
                self._write(core.data_to_send())
                for event in events:
                    if isinstance(event, TLSRequested):
                        self._handshake(deadline, event.leftover)
                        core.tls_established()
                        self._write(core.data_to_send())
                    elif isinstance(event, CompressionRequested):
                        transport.start_compression()
                        log.info("zlib compression on")
                        core.compression_established()
                        self._write(core.data_to_send())
                    elif isinstance(event, StreamClosed):
                        raise event.error or ConnectionLost("the stream ended during negotiation")
                    elif isinstance(event, (StanzaReceived, IqResponse, PushesReceived)):
                        early.append(event)
                    else:
                        self._log_step(event)
        except BaseException as exc:
            error = self._opening_error(exc, deadline)
            self._linger(deadline)
            transport.close(polite=True)
            if error is exc:
                raise
            raise error from None
        self.established_at = time.monotonic()
        if s.keepalive is None and transport.bound_sends(s.timeout):
            transport.set_timeout(None)  # no keepalive: the reader sleeps until data comes
        else:
            transport.set_timeout(s.keepalive or s.timeout)
        reader = threading.Thread(target=self._run, name="yaxmpp-reader-%d" % self.number, daemon=True)
        self._deliver_all(early)
        self._reader = reader
        reader.start()

    def _opening_error(self, exc: BaseException, deadline: Deadline) -> BaseException:
        step = self._phase or (self.core.step.value if self.core is not None else "connecting")
        if self._aborted:
            return ClientClosed("the client was closed during connect()")
        if isinstance(exc, socket.timeout):
            return Timeout("connect() timed out after %gs while %s" % (deadline.seconds, step))
        if isinstance(exc, Error):
            return scrub_error(exc)
        if isinstance(exc, OSError):
            return ConnectionLost("connection lost while %s: %s" % (step, _describe(exc)))
        return exc

    def _arm(self, deadline: Deadline) -> None:
        """Let the next blocking socket call wait only as long as the deadline allows."""
        remaining = deadline.remaining()
        if remaining is not None and remaining <= 0:
            raise socket.timeout("deadline passed")
        assert self.transport is not None
        self.transport.set_timeout(remaining)

    def _handshake(self, deadline: Deadline, leftover: bytes) -> None:
        assert self.transport is not None
        s = self.settings
        self._phase = "TLS handshake"
        self.transport.start_tls(s.ssl_context, s.host, leftover, deadline=deadline)
        self._phase = None
        log.info("TLS established with %s: %s, %s", s.host, self.transport.tls_version, self.transport.cipher)

    def _write(self, data: bytes) -> None:
        if data:
            assert self.transport is not None
            self.transport.send(data)

    def _linger(self, deadline: Deadline) -> None:
        """After a failed negotiation in which we sent our close tag, give the server a moment
        to answer with its own and close, so the stream ends cleanly.  Bounded."""
        core, transport = self.core, self.transport
        if core is None or transport is None or not core.close_sent or self._aborted:
            return
        remaining = deadline.remaining()
        linger = Deadline(1.0 if remaining is None else min(1.0, remaining))
        try:
            while True:  # a server that keeps sending does not keep us here
                left = linger.remaining()
                if not left:
                    break
                transport.set_timeout(left)
                if not transport.recv():
                    break
        except (OSError, Error):
            pass

    def _log_step(self, event: Event) -> None:
        if isinstance(event, StreamOpened):
            log.info("stream opened (%s), id %s", event.step, event.stream_id)
        elif isinstance(event, Authenticated):
            log.info("authenticated with %s", event.mechanism)
        elif isinstance(event, Bound):
            log.info("resource bound: %s", event.jid)
        elif isinstance(event, SessionStarted):
            log.info("session open as %s", event.jid)
        elif isinstance(event, RequestAnswered):
            log.info("answered the server's %s request (id %s)", event.kind, event.iq_id)

    def abort(self) -> None:
        """Stop an :meth:`open` in progress from another thread: it raises ClientClosed."""
        self._aborted = True
        self._closing = True
        self._cancel.cancel()
        if self.transport is not None:
            self.transport.shutdown()

    # -- running -------------------------------------------------------------------------

    @property
    def opened(self) -> bool:
        """True once open() succeeded (the reader thread was started)."""
        return self._reader is not None

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    @property
    def end_error(self) -> Optional[Error]:
        return self._end_error

    def uptime(self) -> float:
        """Seconds the session was (or has been) open; 0 if it never opened."""
        if self.established_at is None:
            return 0.0
        end = self.ended_at if self.ended_at is not None else time.monotonic()
        return end - self.established_at

    def wait_ended(self, timeout: Optional[float] = None) -> bool:
        return self._ended.wait(timeout)

    def _keepalive(self, waiting: bool) -> List[Event]:
        """The socket was silent for a keepalive period: ping the server, or, if a ping is
        already out and still nothing came, declare the connection dead."""
        core, transport, s = self.core, self.transport, self.settings
        assert core is not None and transport is not None and s.keepalive is not None
        with self._lock:
            if waiting:
                return core.connection_lost(
                    ConnectionLost("the server did not answer for %gs after a keepalive ping" % s.keepalive_timeout)
                )
            if not core.established:
                return []
            core.send_iq("get", KEEPALIVE_PING, s.domain)
            try:
                self._write(core.data_to_send())
            except (OSError, Error) as exc:
                return core.connection_lost(self._lost(exc))
        transport.set_timeout(s.keepalive_timeout)
        return []

    def _run(self) -> None:
        core, transport, s = self.core, self.transport, self.settings
        assert core is not None and transport is not None
        pinged = False  # a keepalive ping is out and nothing has arrived since
        try:
            while not core.closed:
                try:
                    data = transport.recv()
                except socket.timeout:
                    if s.keepalive is None:
                        continue
                    events = self._keepalive(pinged)
                    pinged = True
                    self._deliver_all(events)
                    continue
                except (OSError, Error) as exc:
                    with self._lock:
                        events = core.connection_lost(self._lost(exc))
                else:
                    if pinged:
                        pinged = False
                        transport.set_timeout(s.keepalive)
                    with self._lock:
                        events = core.receive_data(data)
                        try:
                            self._write(core.data_to_send())
                        except (OSError, Error) as exc:
                            events += core.connection_lost(self._lost(exc))
                self._deliver_all(events)
        except BaseException as exc:  # a bug must end the connection loudly, never silently
            log.exception("the reader thread failed")
            with self._lock:
                events = core.connection_lost(ProtocolError("internal error in the reader: %r" % exc))
            for event in events:
                self._deliver(event)
        finally:
            transport.close(polite=True)
            self.ended_at = time.monotonic()
            self._ended.set()

    def _lost(self, exc: BaseException) -> Error:
        if isinstance(exc, Error):
            return exc
        return ConnectionLost("connection lost: %s" % _describe(exc))

    def _deliver_all(self, events: List[Event]) -> None:
        for event in events:
            if type(event) is PushesReceived:
                self._take_pushes(event)  # type: ignore[arg-type]
            else:
                self._deliver(event)

    def _take_pushes(self, pushes: PushesReceived) -> None:
        """Queue the pushes with the sink, then acknowledge them: an acknowledged push is
        already safe.  Those the sink could not take are answered with an error instead."""
        count = len(pushes)
        notifications = list(map(Notification, pushes.queries, repeat(time.time(), count), pushes.iq_ids, pushes.senders))
        taken = self.sink.pushes_received(self, notifications)
        core = self.core
        assert core is not None
        with self._lock:
            core.acknowledge_all(pushes, taken)
            try:
                self._write(core.data_to_send())
            except (OSError, Error) as exc:
                log.debug("could not acknowledge pushes: %s", exc)
                assert self.transport is not None
                self.transport.shutdown()  # the reader sees the end on its next read
        if taken < count:
            log.warning("notification queue full: refused %d push(es)", count - taken)

    def _deliver(self, event: Event) -> None:
        if isinstance(event, StanzaReceived):
            self.sink.stanza_received(self, event.element)
        elif isinstance(event, IqResponse):
            waiter = self._waiters.pop(event.iq_id, None)
            if waiter is not None:
                waiter.element = event.element
                waiter.error = event.error
                waiter.event.set()
        elif isinstance(event, StreamClosed):
            error = None if self._closing else event.error
            self._end_error = error
            if error is None:
                log.info("stream closed")
            else:
                log.warning("connection ended: %s", error)
            for waiter in self._drain_waiters():
                waiter.error = error or ClientClosed("the client was closed")
                waiter.event.set()
            self.sink.connection_ended(self, error)
        else:
            self._log_step(event)

    def _drain_waiters(self) -> List[_Waiter]:
        with self._lock:
            waiters = list(self._waiters.values())
            self._waiters.clear()
        return waiters

    # -- requests ------------------------------------------------------------------------

    def _check_open(self) -> None:
        core = self.core
        if core is None or self._closing:
            raise ClientClosed("the client is closed")
        if core.closed or core.step is Step.CLOSING:
            if self._end_error is not None:
                raise ConnectionLost("the connection has ended: %s" % self._end_error)
            raise ConnectionLost("the connection has ended")

    def request(self, iq_type: str, payload: str, to: Optional[str], timeout: Optional[float]) -> Element:
        """Send an iq ``get``/``set`` and wait for its answer; raise IqError on ``type="error"``."""
        waiter = _Waiter()
        with self._lock:
            self._check_open()
            assert self.core is not None
            iq_id = self.core.send_iq(iq_type, payload, to)
            self._waiters[iq_id] = waiter
            self._send_queued()
        if not waiter.event.wait(timeout):
            with self._lock:
                self._waiters.pop(iq_id, None)
            raise Timeout("no answer to iq %s within %gs" % (iq_id, timeout))
        if waiter.error is not None:
            raise waiter.error
        assert waiter.element is not None
        return waiter.element

    def send_stanza(self, xml: str) -> None:
        """Send one complete stanza."""
        with self._lock:
            self._check_open()
            assert self.core is not None
            self.core.send_stanza(xml)
            self._send_queued()

    def _send_queued(self) -> None:
        """Write what the core queued; the caller holds the lock.  A failed write ends the
        connection through the reader (the socket is shut down so it notices)."""
        assert self.core is not None and self.transport is not None
        try:
            self._write(self.core.data_to_send())
        except (OSError, TLSError) as exc:
            self.transport.shutdown()
            raise self._lost(exc) from None

    # -- closing -------------------------------------------------------------------------

    def close(self, deadline: Deadline) -> None:
        """Close the stream politely within ``deadline``, then the socket; join the reader.

        Idempotent and callable from any thread.  If the server already ended the stream,
        this only reaps the finished reader thread.
        """
        self._closing = True
        reader = self._reader
        if reader is None:
            return
        if reader.ident is None:  # interrupted (e.g. by a signal) between open() and start()
            assert self.transport is not None
            self.transport.close(polite=False)
            self._ended.set()
            return
        if not self._ended.is_set():
            self._send_close(deadline)
            if not self._ended.wait(deadline.remaining()):
                log.info("the server did not answer the close in time; closing the socket")
        assert self.transport is not None
        self.transport.shutdown()  # wakes the reader if it still waits
        if reader is not threading.current_thread():
            remaining = deadline.remaining()
            reader.join(max(1.0, remaining or 0.0))
            if reader.is_alive():  # pragma: no cover - the reader only waits on the socket
                log.warning("the reader thread did not stop in time")

    def _send_close(self, deadline: Deadline) -> None:
        assert self.core is not None and self.transport is not None
        remaining = deadline.remaining()
        if not self._lock.acquire(timeout=-1 if remaining is None else remaining):
            return
        try:
            self.core.close()
            data = self.core.data_to_send()
            if data:
                remaining = deadline.remaining()
                if remaining is not None:
                    self.transport.set_timeout(min(remaining, self.settings.timeout))
                self.transport.send(data)
        except (OSError, Error):
            pass
        finally:
            self._lock.release()
