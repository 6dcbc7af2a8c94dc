"""The byte pipe under the XML stream: a TCP socket, optionally wrapped in TLS.

TLS runs over memory BIOs (:meth:`ssl.SSLContext.wrap_bio`) rather than an ``SSLSocket`` so
that bytes read before the switch to TLS can be handed to the TLS layer instead of being
lost, and so that reads (reader thread) and writes (any thread) can share one TLS object
under a short lock while the socket itself is used without one.

The socket is non-blocking; every wait is an explicit ``poll`` bounded by a
:class:`~yaxmpp.deadline.Deadline` that covers the whole call.  So a peer trickling bytes that
never complete a TLS record (or zlib data that inflates to nothing) cannot stretch a call past
its deadline, and a reader waiting on the socket and a writer on another thread never fight
over a shared socket timeout.  :meth:`Transport.shutdown` from another thread wakes a waiter.

Errors: deadlines surface as :class:`socket.timeout`, other socket failures as
:class:`OSError`, and TLS failures as :class:`~yaxmpp.TLSError`.
"""

from __future__ import annotations

import errno
import math
import select
import socket
import ssl
import struct
import sys
import threading
from typing import Any, Callable, Dict, List, Optional

from .cancel import MAX_WAIT, wait_socket
from .compression import Deflater, Inflater
from .deadline import Deadline
from .errors import TLSError

__all__ = ["Transport"]

RECV_SIZE = 65536
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)


class Transport:
    """One connected socket and the layers on it.  ``recv`` is for one reader at a time;
    ``send`` may be called from any thread.

    A call given no deadline is bounded by the default set with :meth:`set_timeout` (none at
    first: it waits as long as it takes), a send by :meth:`bound_sends` when that was set.
    The socket is made non-blocking; its own timeout is not used.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._timeout: Optional[float] = None
        self._send_bound: Optional[float] = None
        sock.setblocking(False)
        self._poller: "Optional[select.poll]" = None
        if hasattr(select, "poll"):
            self._poller = select.poll()
            self._poller.register(sock.fileno(), select.POLLIN)
        self._tls: Optional[ssl.SSLObject] = None
        self._incoming: Optional[ssl.MemoryBIO] = None
        self._outgoing: Optional[ssl.MemoryBIO] = None
        self._tls_lock = threading.Lock()  # guards the SSLObject and its BIOs
        self._send_lock = threading.Lock()  # keeps records in the order they were made
        self._deflater: Optional[Deflater] = None
        self._inflater: Optional[Inflater] = None
        self._shut = False
        self.bytes_received = 0
        self.bytes_sent = 0

    @property
    def tls_active(self) -> bool:
        return self._tls is not None

    @property
    def compressed(self) -> bool:
        return self._inflater is not None

    def start_compression(self, max_ratio: int = 200, leftover: bytes = b"") -> None:
        """From now on both directions are one zlib stream each (XEP-0138).

        ``leftover``: bytes already read that belong to the compressed stream.
        """
        with self._send_lock:
            self._deflater = Deflater()
            inflater = Inflater(max_ratio)
            if leftover:
                inflater.feed(leftover)
            self._inflater = inflater

    @property
    def tls_version(self) -> Optional[str]:
        return self._tls.version() if self._tls is not None else None

    def peer_certificate(self) -> Optional[Dict[str, Any]]:
        """The server's certificate as :meth:`ssl.SSLObject.getpeercert` gives it (None before
        TLS, or when it was not verified)."""
        return self._tls.getpeercert() if self._tls is not None else None

    @property
    def cipher(self) -> Optional[str]:
        cipher = self._tls.cipher() if self._tls is not None else None
        return cipher[0] if cipher else None

    # -- TLS -----------------------------------------------------------------------------

    def start_tls(
        self,
        context: ssl.SSLContext,
        server_hostname: Optional[str],
        leftover: bytes = b"",
        set_timeout: Optional[Callable[[], None]] = None,
        server_side: bool = False,
        deadline: Optional[Deadline] = None,
    ) -> None:
        """Run the TLS handshake over the socket, all of it within ``deadline`` (default: the
        :meth:`set_timeout` bound for the whole handshake); :class:`socket.timeout` after it.

        ``leftover`` are bytes already read from the socket that belong to TLS.
        ``set_timeout`` (older interface) is called before every blocking read.
        ``server_side`` is for the loopback stand-in server, which shares this transport.
        """
        if deadline is None:
            deadline = Deadline(self._timeout)
        incoming = ssl.MemoryBIO()
        outgoing = ssl.MemoryBIO()
        try:
            tls = context.wrap_bio(
                incoming, outgoing, server_side=server_side, server_hostname=None if server_side else server_hostname
            )
        except (ssl.SSLError, ValueError) as exc:
            raise TLSError("cannot set up TLS for %s: %s" % (server_hostname, exc)) from None
        if leftover:
            incoming.write(leftover)
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush_handshake(outgoing, deadline)
                if set_timeout is not None:
                    set_timeout()
                data = self._read_socket(deadline)
                if not data:
                    raise TLSError("the server closed the connection during the TLS handshake") from None
                incoming.write(data)
            except ssl.SSLCertVerificationError as exc:
                self._flush_handshake(outgoing, deadline)
                raise TLSError("certificate verification failed for %s: %s" % (server_hostname, exc.verify_message or exc)) from None
            except ssl.SSLError as exc:
                self._flush_handshake(outgoing, deadline)
                raise TLSError("TLS handshake with %s failed: %s" % (server_hostname, exc.reason or exc)) from None
        self._flush_handshake(outgoing, deadline)
        with self._tls_lock:
            self._tls, self._incoming, self._outgoing = tls, incoming, outgoing

    def _flush_handshake(self, outgoing: ssl.MemoryBIO, deadline: Deadline) -> None:
        data = outgoing.read()
        if data:
            self._write_socket(data, deadline)

    # -- the socket ------------------------------------------------------------------------

    def _read_socket(self, deadline: Optional[Deadline]) -> bytes:
        """One ``recv`` from the socket, waiting at most until ``deadline`` (None: no limit).

        The deadline is checked before every read, also when data is ready: a peer fast
        enough that the socket never runs dry must not hold a call past it either."""
        if deadline is not None and deadline.expired:
            raise socket.timeout("timed out")
        sock = self.sock
        try:  # data is often there already (a burst of pushes): then no poll is needed
            data = sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            pass
        else:
            self.bytes_received += len(data)
            return data
        while True:
            timeout = None if deadline is None else deadline.remaining()
            if timeout is not None and timeout <= 0:
                raise socket.timeout("timed out")
            if not self._wait_readable(timeout):
                continue  # the time is up (checked above), or a long wait is done in steps
            try:
                data = sock.recv(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                continue  # woken for nothing
            self.bytes_received += len(data)
            return data

    def _wait_readable(self, timeout: Optional[float]) -> bool:
        """Like :func:`~yaxmpp.cancel.wait_socket` for reading, with one poll object kept for
        the reader (this is on every wait of the reader thread)."""
        poller = self._poller
        if poller is None:
            return wait_socket(self.sock, False, timeout)
        if self.sock.fileno() < 0:
            raise OSError(errno.EBADF, "the socket is closed")  # poll() would ignore it and sleep
        return bool(poller.poll(None if timeout is None else math.ceil(min(timeout, MAX_WAIT) * 1000)))

    def _write_socket(self, data: bytes, deadline: Optional[Deadline], bound: Optional[float] = None) -> None:
        """All of ``data`` into the socket by ``deadline``; without one, within ``bound``
        seconds of the first wait (None: no limit)."""
        sock = self.sock
        view = memoryview(data)
        try:
            while view:
                try:
                    sent = sock.send(view)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                if sent:
                    self.bytes_sent += sent
                    view = view[sent:]
                    continue
                if deadline is None and bound is not None:
                    deadline = Deadline(bound)  # made only when a wait is needed: sends seldom wait
                timeout = None if deadline is None else deadline.remaining()
                if timeout is not None and timeout <= 0:
                    raise socket.timeout("timed out")
                wait_socket(sock, True, timeout)
        finally:
            view.release()

    # -- data ----------------------------------------------------------------------------

    def recv(self, deadline: Optional[Deadline] = None) -> bytes:
        """Block until data arrives; ``b""`` at end of file (or TLS close).

        The whole call ends by ``deadline`` (default: the :meth:`set_timeout` bound, counted
        from now), with :class:`socket.timeout` if nothing usable came: bytes that arrive but
        complete no TLS record, or inflate to nothing, do not extend it.

        With compression on, returns inflated data in bounded pieces
        (:class:`~yaxmpp.ProtocolError` for corrupt data or a bomb).
        """
        if deadline is None and self._timeout is not None:
            deadline = Deadline(self._timeout)
        inflater = self._inflater
        if inflater is None:
            return self._recv_layer(deadline)
        while True:
            piece = inflater.next_piece()
            if piece:
                return piece
            data = self._recv_layer(deadline)
            if not data:
                return b""
            inflater.feed(data)

    def _recv_layer(self, deadline: Optional[Deadline]) -> bytes:
        """Plaintext from the socket, through TLS when it is on."""
        if self._tls is None:
            return self._read_socket(deadline)
        while True:
            plain, eof, reply = self._decrypt()
            if reply:
                self._send_raw_in_order(deadline)
            if plain or eof:
                return plain
            data = self._read_socket(deadline)
            with self._tls_lock:
                if data:
                    self._incoming.write(data)  # type: ignore[union-attr]
                else:
                    self._incoming.write_eof()  # type: ignore[union-attr]

    def _decrypt(self) -> "tuple[bytes, bool, bool]":
        """(plaintext available now, end of stream, TLS wants to write)."""
        chunks: List[bytes] = []
        eof = False
        with self._tls_lock:
            tls = self._tls
            assert tls is not None
            while True:
                try:
                    chunk = tls.read(RECV_SIZE)
                except ssl.SSLWantReadError:
                    break
                except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                    eof = True
                    break
                except ssl.SSLError as exc:
                    raise TLSError("TLS error: %s" % (exc.reason or exc)) from None
                if not chunk:
                    eof = True
                    break
                chunks.append(chunk)
            reply = self._outgoing.pending > 0  # type: ignore[union-attr]
        return b"".join(chunks), eof, reply

    def _send_raw_in_order(self, deadline: Optional[Deadline]) -> None:
        with self._send_lock:
            with self._tls_lock:
                data = self._outgoing.read()  # type: ignore[union-attr]
            if data:
                self._write_socket(data, deadline)

    def compress(self, data: bytes) -> bytes:
        """``data`` as the compression layer would put it on the wire (unchanged when off).
        For the stand-in server, which sends hand-split wire bytes with ``compress=False``."""
        with self._send_lock:
            return self._deflater.compress(data) if self._deflater is not None else data

    def send(self, data: bytes, compress: bool = True, deadline: Optional[Deadline] = None) -> None:
        """Write all of ``data`` (compressed and encrypted when those are on), the whole call
        within ``deadline`` (default: the :meth:`bound_sends` bound, else the :meth:`set_timeout`
        one, counted from the first wait, as most sends never wait); :class:`socket.timeout`
        after it.  The deadline includes the
        wait for another thread's send.  ``compress=False`` skips compression (the stand-in
        server uses it to send hand-made zlib data)."""
        if not data:
            return
        bound = self._send_bound if self._send_bound is not None else self._timeout
        lock = self._send_lock
        if not lock.acquire(False):  # another thread is sending: wait for it, within the bound
            if deadline is None and bound is not None:
                deadline = Deadline(bound)
            remaining = None if deadline is None else deadline.remaining()
            if remaining is None:
                lock.acquire()
            elif not lock.acquire(timeout=min(remaining, MAX_WAIT) if remaining else 0):
                raise socket.timeout("timed out waiting for another send")
        try:
            if compress and self._deflater is not None:
                data = self._deflater.compress(data)
            if self._tls is not None:
                with self._tls_lock:
                    try:
                        self._tls.write(data)
                    except ssl.SSLError as exc:
                        raise TLSError("TLS error: %s" % (exc.reason or exc)) from None
                    data = self._outgoing.read()  # type: ignore[union-attr]
            self._write_socket(data, deadline, bound)
        finally:
            lock.release()

    # -- ending ----------------------------------------------------------------------------

    @property
    def timeout(self) -> Optional[float]:
        """The bound of a :meth:`recv` (and :meth:`send`) called without a deadline."""
        return self._timeout

    def set_timeout(self, seconds: Optional[float]) -> None:
        """Bound each later :meth:`recv` (and :meth:`send`, unless :meth:`bound_sends` was
        called) given no deadline by ``seconds`` in all; None: no limit."""
        self._timeout = seconds

    def bound_sends(self, seconds: float) -> bool:
        """Bound each :meth:`send` given no deadline by ``seconds``, for a transport whose
        reads wait without a timeout.  Always True (kept for callers that checked): the bound is
        kept here, and also set as the kernel's SO_SNDTIMEO where the platform allows, as a
        second guard for the socket's other users."""
        self._send_bound = seconds
        option = getattr(socket, "SO_SNDTIMEO", None)
        if option is None:  # pragma: no cover
            return True
        if sys.platform == "win32":  # pragma: no cover - a DWORD of milliseconds there
            value = struct.pack("<I", int(seconds * 1000))
        else:  # struct timeval
            value = struct.pack("ll", int(seconds), int((seconds % 1) * 1_000_000))
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, option, value)
        except (OSError, OverflowError, struct.error):  # pragma: no cover
            pass
        return True

    def shutdown(self) -> None:
        """Stop both directions now: wakes a thread blocked in :meth:`recv`.  Idempotent."""
        if self._shut:
            return
        self._shut = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self, polite: bool = True) -> None:
        """Send TLS close_notify (when ``polite`` and it can go out at once), shut down, close."""
        if polite and self._tls is not None and not self._shut and self._send_lock.acquire(timeout=0.5):
            try:
                with self._tls_lock:
                    try:
                        self._tls.unwrap()
                    except ssl.SSLWantReadError:
                        pass  # close_notify is written; the peer's answer is not awaited
                    data = self._outgoing.read()  # type: ignore[union-attr]
                if data:
                    self.sock.send(data, _DONTWAIT)
            except (OSError, ssl.SSLError):
                pass
            finally:
                self._send_lock.release()
        self.shutdown()
        try:
            self.sock.close()
        except OSError:  # pragma: no cover
            pass
