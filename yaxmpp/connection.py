"""One connection: dial, negotiate under a deadline, read on a background thread, close.

:class:`Connection` is the thin blocking driver around the sans-IO
:class:`~yaxmpp.protocol.core.ClientProtocol`: it owns the transport and the reader thread
(``yaxmpp-reader-N``), feeds the core what the socket gives, writes what the core queues, runs
the TLS handshake when the core asks, answers nothing itself, and turns socket-level failures
into typed errors.  It runs no user code and knows nothing of the client above it: what
arrives goes to the two callables it is given (``on_pushes`` and ``on_ended``), which must
return at once.

Its life is :class:`ConnState`, with every allowed transition in :data:`TRANSITIONS`::

    NEW -> OPENING -> OPEN -> CLOSING -> ENDED
       \\-------------\\-------\\----------> ENDED    (failure, abort, or the server's end)

The TLS certificate is always checked against the configured ``host``, wherever the socket
was dialled (a ``see-other-host`` redirect changes where the client connects, never whom it
trusts: RFC 6120 §4.9.3.19).
"""

from __future__ import annotations

import enum
import itertools
import logging
import socket
import threading
import time
from itertools import repeat
from typing import Callable, Dict, FrozenSet, List, Optional, Tuple
from xml.etree.ElementTree import Element

from .cancel import Cancel
from .deadline import Deadline
from .dial import dial
from .errors import (
    ClientClosed,
    ConnectionLost,
    Error,
    LocalProtocolError,
    NetworkError,
    ProtocolError,
    Timeout,
    TLSError,
)
from .options import Options
from .protocol.core import ClientProtocol
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
from .protocol.redact import Redactor, bound
from .transport import Transport

__all__ = ["Connection", "ConnState", "TRANSITIONS", "Target", "NotXMPP", "not_xml_stream"]

log = logging.getLogger("yaxmpp")
xml_log = logging.getLogger("yaxmpp.xml")


def not_xml_stream(head: bytes) -> bool:
    """Whether a peer's first bytes (before any stream header) show it is no XMPP server:
    not markup at all (an HTTP status line, an SSH banner), or an HTML page."""
    start = head.lstrip(b" \t\r\n\xef\xbb\xbf")
    if not start.startswith(b"<"):
        return True
    lowered = start[:9].lower()
    return lowered.startswith(b"<!doctype") or lowered.startswith(b"<html")


class NotXMPP(NetworkError, ProtocolError):
    """The peer is not an XMPP server at all (its first bytes are not XML: an HTTP server on
    the port, say).  A connection failure (:class:`~yaxmpp.NetworkError`) that is also a
    :class:`~yaxmpp.ProtocolError`, as any unparsable stream is."""


#: How many of the first bytes of a stream are kept during negotiation, to show (at DEBUG)
#: when the server's XML is malformed, and to tell a peer that is not XMPP at all.
HEAD_BYTES = 64

_numbers = itertools.count(1)

KEEPALIVE_PING = '<ping xmlns="urn:xmpp:ping"/>'

#: Where to dial: (host, STARTTLS port or None, direct-TLS port or None).
Target = Tuple[str, Optional[int], Optional[int]]

PushSink = Callable[[List[Notification]], int]
EndSink = Callable[["Connection", Optional[Error]], None]


class ConnState(enum.Enum):
    NEW = "not opened yet"
    OPENING = "connecting and negotiating"
    OPEN = "session open"
    CLOSING = "closing the stream"
    ENDED = "ended"


TRANSITIONS: Dict[ConnState, FrozenSet[ConnState]] = {
    ConnState.NEW: frozenset({ConnState.OPENING, ConnState.ENDED}),
    ConnState.OPENING: frozenset({ConnState.OPEN, ConnState.ENDED}),
    ConnState.OPEN: frozenset({ConnState.CLOSING, ConnState.ENDED}),
    ConnState.CLOSING: frozenset({ConnState.ENDED}),
    ConnState.ENDED: frozenset(),
}


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

    def __init__(self, options: Options, target: Target, redactor: Redactor, on_pushes: PushSink, on_ended: EndSink) -> None:
        self.options = options
        self.target = target
        self.number = next(_numbers)
        self._on_pushes = on_pushes
        self._on_ended = on_ended
        self._state = ConnState.NEW
        self._state_lock = threading.Lock()
        self._core: Optional[ClientProtocol] = None
        self._transport: Optional[Transport] = None
        self._cancel = Cancel()
        self._lock = threading.Lock()  # the core, and the order of writes
        self._waiters: Dict[str, _Waiter] = {}
        self._reader: Optional[threading.Thread] = None
        self._reader_ready = threading.Event()  # open() is done starting the reader (or gave up)
        self._ended = threading.Event()
        self._end_error: Optional[Error] = None
        self._stream_over = False  # the final StreamClosed was handled
        self._closing = False  # close() or abort() was called
        self._phase: Optional[str] = None  # what open() is doing, when the core cannot tell
        self._head = b""  # the first bytes of the current stream, during negotiation
        self.port: Optional[int] = None
        self.redactor = redactor
        self.established_at: Optional[float] = None  # time.monotonic() when the session opened
        self.ended_at: Optional[float] = None

    # -- state ---------------------------------------------------------------------------

    @property
    def state(self) -> ConnState:
        return self._state

    def _set_state(self, new: ConnState) -> None:
        with self._state_lock:
            if new not in TRANSITIONS[self._state]:
                raise LocalProtocolError("connection cannot go from %s to %s" % (self._state.name, new.name))
            self._state = new

    def _end_state(self) -> None:
        with self._state_lock:
            self._state = ConnState.ENDED  # every state may end

    @property
    def jid(self) -> Optional[str]:
        return self._core.jid if self._core is not None else None

    @property
    def stream_id(self) -> Optional[str]:
        return self._core.stream_id if self._core is not None else None

    @property
    def established(self) -> bool:
        return self._state is ConnState.OPEN

    @property
    def ended(self) -> bool:
        """The stream is over (the reader may still be closing the socket)."""
        return self._stream_over or self._ended.is_set()

    @property
    def end_error(self) -> Optional[Error]:
        return self._end_error

    @property
    def compressed(self) -> bool:
        return self._transport is not None and self._transport.compressed

    @property
    def tls_version(self) -> Optional[str]:
        return self._transport.tls_version if self._transport is not None else None

    @property
    def transport(self) -> Optional[Transport]:
        """The byte pipe (for tests and benchmarks that count bytes)."""
        return self._transport

    def uptime(self) -> float:
        """Seconds the session was (or has been) open; 0 if it never opened."""
        if self.established_at is None:
            return 0.0
        end = self.ended_at if self.ended_at is not None else time.monotonic()
        return end - self.established_at

    # -- opening -------------------------------------------------------------------------

    def open(self, deadline: Deadline) -> None:
        """Connect and run steps 1-8 within ``deadline``, then start the reader thread.

        On failure, raises a typed error and leaves no socket and no thread behind.
        :meth:`abort` from another thread makes it raise :class:`~yaxmpp.ClientClosed`.
        """
        self._set_state(ConnState.OPENING)
        try:
            with bound(self.redactor):
                self._open(deadline)
        except BaseException:
            self._end_state()
            self.ended_at = time.monotonic()
            self._ended.set()
            self._reader_ready.set()  # there will be none
            raise
        try:
            self._set_state(ConnState.OPEN)
            reader = threading.Thread(target=self._run, name="yaxmpp-reader-%d" % self.number, daemon=True)
            reader.start()
            self._reader = reader  # only a started thread: close() joins it
        finally:  # a close() that came meanwhile waits for this, never for longer
            self._reader_ready.set()

    def _open(self, deadline: Deadline) -> None:
        o = self.options
        host, port, tls_port = self.target
        sock, direct_tls = dial(host, port, tls_port, deadline, self._cancel)
        self.port = sock.getpeername()[1]
        transport = self._transport = Transport(sock)
        core = self._core = o.make_core(direct_tls, self.redactor)
        log.info("connected to %s port %d (%s)", host, self.port, "direct TLS" if direct_tls else "STARTTLS")
        early: List[Event] = []
        try:
            if self._closing:
                raise ClientClosed("the client was closed during connect()")
            if direct_tls:
                self._handshake(deadline, b"")
            core.initiate()
            self._write(core.data_to_send(), deadline)
            while not core.established:
                data = transport.recv(self._left(deadline))
                if len(self._head) < HEAD_BYTES:
                    self._head += data[: HEAD_BYTES - len(self._head)]
                events = core.receive_data(data)
                self._write(core.data_to_send(), deadline)
                for event in events:
                    if isinstance(event, TLSRequested):
                        self._head = b""  # a new stream begins inside TLS
                        self._handshake(deadline, event.leftover)
                        core.tls_established()
                        self._write(core.data_to_send(), deadline)
                    elif isinstance(event, CompressionRequested):
                        transport.start_compression()
                        log.info("zlib compression on")
                        core.compression_established()
                        self._write(core.data_to_send(), deadline)
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
        if o.keepalive is None:
            transport.bound_sends(o.timeout)  # the reader waits without a timeout; sends stay bounded
        self._deliver_all(early)

    def _left(self, deadline: Deadline) -> Deadline:
        if deadline.expired:
            raise socket.timeout("deadline passed")
        return deadline

    def _opening_error(self, exc: BaseException, deadline: Deadline) -> BaseException:
        step = self._phase or (self._core.step.value if self._core is not None else "connecting")
        if self._closing:
            return ClientClosed("the client was closed during connect()")
        if isinstance(exc, socket.timeout):
            return Timeout("connect() timed out after %gs while %s" % (deadline.seconds or 0.0, step), step)
        if isinstance(exc, ProtocolError) and self._head:
            xml_log.debug("RECV (the stream's first %d bytes, as received) %s", len(self._head), self.redactor.scrub(repr(self._head)))
            if self._core is not None and self._core.stream_id is None and not_xml_stream(self._head):
                return self._not_xmpp()
        if isinstance(exc, Error):
            return self.redactor.scrub_error(exc)
        if isinstance(exc, OSError):
            return ConnectionLost("connection lost while %s: %s" % (step, _describe(exc)))
        return exc

    def _not_xmpp(self) -> NotXMPP:
        """The peer's first bytes are not XML at all (an HTTP server, say): a connection failure."""
        first = self._head.strip().split(b"\n", 1)[0].strip()[:40].decode("ascii", "replace")
        shown = "".join(c if c.isprintable() else "?" for c in first)
        return NotXMPP(
            "not an XMPP server at %s port %s (it answered %r)" % (self.target[0], self.port, self.redactor.scrub(shown))
        )

    def _handshake(self, deadline: Deadline, leftover: bytes) -> None:
        assert self._transport is not None
        self._phase = "TLS handshake"
        # The reference identity is the configured host, also after a redirect.
        self._transport.start_tls(self.options.ssl_context, self.options.host, leftover, deadline=deadline)
        self._phase = None
        log.info("TLS established with %s: %s, %s", self.options.host, self._transport.tls_version, self._transport.cipher)

    def _write(self, data: bytes, deadline: Optional[Deadline] = None) -> None:
        if data:
            assert self._transport is not None
            self._transport.send(data, deadline=deadline)

    def _linger(self, deadline: Deadline) -> None:
        """After a failed negotiation in which we sent our close tag, give the server a moment
        to answer with its own and close, so the stream ends cleanly.  Bounded."""
        core, transport = self._core, self._transport
        if core is None or transport is None or not core.close_sent or self._closing:
            return
        remaining = deadline.remaining()
        linger = Deadline(1.0 if remaining is None else min(1.0, remaining))
        try:
            while not linger.expired:  # a server that keeps sending does not keep us here
                if not transport.recv(linger):
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
        """Stop an :meth:`open` in progress from any thread: it raises ClientClosed promptly,
        whether it is resolving the name, connecting, or negotiating."""
        self._closing = True
        self._cancel.cancel()
        if self._transport is not None:
            self._transport.shutdown()

    # -- running -------------------------------------------------------------------------

    def _keepalive(self, ping_id: Optional[str]) -> "Tuple[Optional[str], List[Event]]":
        """The stream was silent for a keepalive period: ping the server, or, if a ping is
        already out and still nothing came, declare the connection dead."""
        core, o = self._core, self.options
        assert core is not None and o.keepalive is not None
        with self._lock:
            if ping_id is not None:
                core.forget(ping_id)
                return None, core.connection_lost(
                    ConnectionLost("the server did not answer for %gs after a keepalive ping" % o.keepalive_timeout)
                )
            if not core.established:
                return None, []
            ping_id = core.send_iq("get", KEEPALIVE_PING, o.domain)
            try:
                self._write(core.data_to_send(), Deadline(o.timeout))
            except (OSError, Error) as exc:
                return None, core.connection_lost(self._lost(exc))
        return ping_id, []

    def _run(self) -> None:
        with bound(self.redactor):
            self._read_loop()

    def _read_loop(self) -> None:
        core, transport, o = self._core, self._transport, self.options
        assert core is not None and transport is not None
        ping_id: Optional[str] = None  # a keepalive ping is out and nothing has arrived since
        try:
            while not core.closed:
                if o.keepalive is None:
                    wait = None
                else:
                    wait = Deadline(o.keepalive if ping_id is None else o.keepalive_timeout)
                try:
                    data = transport.recv(wait)
                except socket.timeout:
                    ping_id, events = self._keepalive(ping_id)
                    self._deliver_all(events)
                    continue
                except (OSError, Error) as exc:
                    with self._lock:
                        events = core.connection_lost(self._lost(exc))
                else:
                    with self._lock:
                        if ping_id is not None:
                            core.forget(ping_id)  # the stream is alive; the answer no longer matters
                            ping_id = None
                        events = core.receive_data(data)
                        try:
                            self._write(core.data_to_send(), Deadline(o.timeout))
                        except (OSError, Error) as exc:
                            events += core.connection_lost(self._lost(exc))
                self._deliver_all(events)
        except BaseException as exc:  # a bug must end the connection loudly, never silently
            log.exception("the reader thread failed")
            with self._lock:
                events = core.connection_lost(LocalProtocolError("internal error in the reader thread: %s" % type(exc).__name__))
            for event in events:
                self._deliver(event)
        finally:
            transport.close(polite=True)
            self.ended_at = time.monotonic()
            self._end_state()
            self._ended.set()

    def _lost(self, exc: BaseException) -> Error:
        if isinstance(exc, Error):
            return self.redactor.scrub_error(exc)
        return ConnectionLost("connection lost: %s" % _describe(exc))

    def _deliver_all(self, events: List[Event]) -> None:
        for event in events:
            if type(event) is PushesReceived:
                self._take_pushes(event)
            else:
                self._deliver(event)

    def _take_pushes(self, pushes: PushesReceived) -> None:
        """Queue the pushes with the client, then acknowledge them: an acknowledged push is
        already safe.  Those it could not take are answered with an error instead."""
        count = len(pushes)
        notifications = list(map(Notification, pushes.queries, repeat(time.time(), count), pushes.iq_ids, pushes.senders))
        taken = self._on_pushes(notifications)
        if taken < count:  # said before the answers go out, so it is in the log when they arrive
            log.warning("notification queue full: refused %d push(es)", count - taken)
        core = self._core
        assert core is not None
        with self._lock:
            core.acknowledge_all(pushes, taken)
            try:
                self._write(core.data_to_send(), Deadline(self.options.timeout))
            except (OSError, Error) as exc:
                log.debug("could not acknowledge pushes: %s", exc)
                assert self._transport is not None
                self._transport.shutdown()  # the reader sees the end on its next read

    def _deliver(self, event: Event) -> None:
        if isinstance(event, IqResponse):
            waiter = self._waiters.pop(event.iq_id, None)
            if waiter is not None:
                waiter.element = event.element
                waiter.error = event.error
                waiter.event.set()
        elif isinstance(event, StreamClosed):
            error = None if self._closing else event.error
            self._end_error = error
            self._stream_over = True  # before on_ended: whoever checks `ended` now sees it
            if error is None:
                log.info("stream closed")
            else:
                log.warning("connection ended: %s", error)
            for waiter in self._drain_waiters():
                waiter.error = error or ClientClosed("the client was closed")
                waiter.event.set()
            self._on_ended(self, error)
        elif isinstance(event, StanzaReceived):
            pass  # messages and presences carry nothing for this client
        else:
            self._log_step(event)

    def _drain_waiters(self) -> List[_Waiter]:
        with self._lock:
            waiters = list(self._waiters.values())
            self._waiters.clear()
        return waiters

    # -- requests ------------------------------------------------------------------------

    def _check_open(self) -> ClientProtocol:
        core = self._core
        if self._closing:
            raise ClientClosed("the client is closed")
        if core is None or self._state is not ConnState.OPEN or core.closed or core.close_sent:
            if self._end_error is not None:
                raise ConnectionLost("the connection has ended: %s" % self._end_error)
            raise ConnectionLost("the connection has ended")
        return core

    def request(self, iq_type: str, payload: str, to: Optional[str], timeout: float) -> Element:
        """Send an iq ``get``/``set`` and wait for its answer; raise IqError on ``type="error"``."""
        waiter = _Waiter()
        with self._lock:
            core = self._check_open()
            iq_id = core.send_iq(iq_type, payload, to)
            self._waiters[iq_id] = waiter
            self._send_queued(core, timeout)
        if not waiter.event.wait(timeout):
            with self._lock:
                if self._waiters.pop(iq_id, None) is not None and self._core is not None:
                    self._core.forget(iq_id)  # a late answer is ignored; nothing stays behind
            if not waiter.event.is_set():
                raise Timeout("no answer to the request within %gs" % timeout, "waiting for an iq answer")
        if waiter.error is not None:
            raise waiter.error
        assert waiter.element is not None
        return waiter.element

    def _send_queued(self, core: ClientProtocol, timeout: Optional[float]) -> None:
        """Write what the core queued; the caller holds the lock.  A failed write ends the
        connection through the reader (the socket is shut down so it notices)."""
        assert self._transport is not None
        try:
            self._write(core.data_to_send(), Deadline(timeout))
        except (OSError, TLSError) as exc:
            self._transport.shutdown()
            raise self._lost(exc) from None

    # -- closing -------------------------------------------------------------------------

    def close(self, deadline: Deadline) -> None:
        """Close the stream politely within ``deadline``, then the socket; join the reader.

        Idempotent and callable from any thread.  If the server already ended the stream,
        this only reaps the finished reader thread.  Before the session is open, this is
        :meth:`abort`.
        """
        if self._state in (ConnState.NEW, ConnState.OPENING):
            self.abort()
            return
        self._closing = True
        # open() may be between OPEN and the reader's start on another thread: wait for it.
        self._reader_ready.wait(deadline.remaining())
        reader = self._reader
        if reader is not None and not self._ended.is_set():
            with self._state_lock:
                if self._state is ConnState.OPEN:
                    self._state = ConnState.CLOSING
            self._send_close(deadline)
            if not self._ended.wait(deadline.remaining()):
                log.info("the server did not answer the close in time; closing the socket")
        if self._transport is None:  # open() failed before it had a socket
            return
        self._transport.shutdown()  # wakes the reader if it still waits
        if reader is None:  # open() was interrupted before its reader could start
            self._transport.close(polite=False)
            return
        if reader is not threading.current_thread():
            reader.join(max(0.2, deadline.remaining() or 0.0))  # shutdown() has woken it
            if reader.is_alive():  # pragma: no cover - the reader only waits on the socket
                log.warning("the reader thread did not stop in time")

    def _send_close(self, deadline: Deadline) -> None:
        assert self._core is not None and self._transport is not None
        remaining = deadline.remaining()
        if not self._lock.acquire(timeout=-1 if remaining is None else remaining):
            return
        try:
            self._core.close()
            self._write(self._core.data_to_send(), deadline)
        except (OSError, Error):
            pass
        finally:
            self._lock.release()
