"""The byte pipe under the XML stream: a TCP socket, optionally wrapped in TLS.

TLS runs over memory BIOs (:meth:`ssl.SSLContext.wrap_bio`) rather than an ``SSLSocket`` so
that bytes read before the switch to TLS can be handed to the TLS layer instead of being
lost, and so that reads (reader thread) and writes (any thread) can share one TLS object
under a short lock while the socket itself is used without one.

Errors: socket timeouts surface as :class:`socket.timeout`, other socket failures as
:class:`OSError`, and TLS failures as :class:`~yaxmpp.TLSError`.
"""

from __future__ import annotations

import socket
import ssl
import struct
import sys
import threading
from typing import Callable, List, Optional

from .compression import Deflater, Inflater
from .errors import TLSError

__all__ = ["Transport"]

RECV_SIZE = 65536
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)


class Transport:
    """One connected socket and the layers on it.  ``recv`` is for one reader at a time;
    ``send`` may be called from any thread."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
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
    ) -> None:
        """Run the TLS handshake over the socket.

        ``leftover`` are bytes already read from the socket that belong to TLS.
        ``set_timeout`` is called before every blocking read, so the caller's deadline applies.
        ``server_side`` is for the loopback stand-in server, which shares this transport.
        """
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
                self._flush_handshake(outgoing)
                if set_timeout is not None:
                    set_timeout()
                data = self.sock.recv(RECV_SIZE)
                if not data:
                    raise TLSError("the server closed the connection during the TLS handshake") from None
                self.bytes_received += len(data)
                incoming.write(data)
            except ssl.SSLCertVerificationError as exc:
                self._flush_handshake(outgoing)
                raise TLSError("certificate verification failed for %s: %s" % (server_hostname, exc.verify_message or exc)) from None
            except ssl.SSLError as exc:
                self._flush_handshake(outgoing)
                raise TLSError("TLS handshake with %s failed: %s" % (server_hostname, exc.reason or exc)) from None
        self._flush_handshake(outgoing)
        with self._tls_lock:
            self._tls, self._incoming, self._outgoing = tls, incoming, outgoing

    def _flush_handshake(self, outgoing: ssl.MemoryBIO) -> None:
        data = outgoing.read()
        if data:
            self.sock.sendall(data)
            self.bytes_sent += len(data)

    # -- data ----------------------------------------------------------------------------

    def recv(self) -> bytes:
        """Block until data arrives; ``b""`` at end of file (or TLS close).

        With compression on, returns inflated data in bounded pieces
        (:class:`~yaxmpp.ProtocolError` for corrupt data or a bomb).
        """
        inflater = self._inflater
        if inflater is None:
            return self._recv_layer()
        while True:
            piece = inflater.next_piece()
            if piece:
                return piece
            data = self._recv_layer()
            if not data:
                return b""
            inflater.feed(data)

    def _recv_layer(self) -> bytes:
        """Plaintext from the socket, through TLS when it is on."""
        if self._tls is None:
            data = self.sock.recv(RECV_SIZE)
            self.bytes_received += len(data)
            return data
        while True:
            plain, eof, reply = self._decrypt()
            if reply:
                self._send_raw_in_order()
            if plain or eof:
                return plain
            data = self.sock.recv(RECV_SIZE)
            self.bytes_received += len(data)
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

    def _send_raw_in_order(self) -> None:
        with self._send_lock:
            with self._tls_lock:
                data = self._outgoing.read()  # type: ignore[union-attr]
            if data:
                self.sock.sendall(data)
                self.bytes_sent += len(data)

    def compress(self, data: bytes) -> bytes:
        """``data`` as the compression layer would put it on the wire (unchanged when off).
        For the stand-in server, which sends hand-split wire bytes with ``compress=False``."""
        with self._send_lock:
            return self._deflater.compress(data) if self._deflater is not None else data

    def send(self, data: bytes, compress: bool = True) -> None:
        """Write all of ``data`` (compressed and encrypted when those are on); bounded by the
        socket timeout.  ``compress=False`` skips compression (the stand-in server uses it to
        send hand-made zlib data)."""
        if not data:
            return
        with self._send_lock:
            if compress and self._deflater is not None:
                data = self._deflater.compress(data)
            if self._tls is not None:
                with self._tls_lock:
                    try:
                        self._tls.write(data)
                    except ssl.SSLError as exc:
                        raise TLSError("TLS error: %s" % (exc.reason or exc)) from None
                    data = self._outgoing.read()  # type: ignore[union-attr]
            self.sock.sendall(data)
            self.bytes_sent += len(data)

    # -- ending ----------------------------------------------------------------------------

    def set_timeout(self, seconds: Optional[float]) -> None:
        self.sock.settimeout(seconds)

    def bound_sends(self, seconds: float) -> bool:
        """Bound each blocking send by ``seconds`` with the kernel's SO_SNDTIMEO, for a socket
        whose reads wait without a timeout.  False where the platform does not allow it."""
        option = getattr(socket, "SO_SNDTIMEO", None)
        if option is None:  # pragma: no cover
            return False
        if sys.platform == "win32":  # pragma: no cover - a DWORD of milliseconds there
            value = struct.pack("<I", int(seconds * 1000))
        else:  # struct timeval
            value = struct.pack("ll", int(seconds), int((seconds % 1) * 1_000_000))
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, option, value)
        except OSError:  # pragma: no cover
            return False
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
