"""A loopback server that runs a test's own script on each connection (for misbehaviour the
stand-in server does not offer: silence, garbage, abrupt cuts)."""

from __future__ import annotations

import socket
import ssl
import threading
from typing import Callable, List, Optional

from yaxmpp.testing import CERT_FILE, KEY_FILE


def server_tls_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(CERT_FILE, KEY_FILE)
    return context


class ScriptedServer:
    """``ScriptedServer(script)`` calls ``script(sock)`` on a thread for each connection."""

    def __init__(self, script: Callable[[socket.socket], None]) -> None:
        self.script = script
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.connections: List[socket.socket] = []
        self.errors: List[BaseException] = []
        self._threads: List[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, name="scripted-accept", daemon=True)
        self._accepter.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(conn)
            thread = threading.Thread(target=self._run, args=(conn,), name="scripted-conn", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _run(self, conn: socket.socket) -> None:
        try:
            self.script(conn)
        except OSError:
            pass
        except BaseException as exc:  # surfaced by the test through .errors
            self.errors.append(exc)

    def stop(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        for conn in self.connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
        self._accepter.join(5)
        for thread in self._threads:
            thread.join(5)

    def __enter__(self) -> "ScriptedServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def read_until(sock: socket.socket, marker: bytes, limit: int = 1 << 20) -> bytes:
    """Read from ``sock`` until ``marker`` has been seen (or the peer closes)."""
    data = b""
    while marker not in data and len(data) < limit:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def wait_for_eof(sock: socket.socket, timeout: Optional[float] = 10.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


# -- redirects and pass-through, shared by the lifecycle, redirect and resilience tests ----------

STREAM_HEAD = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' id='1' from='ya.ru' version='1.0'>"
)


def see_other_host(target: bytes) -> bytes:
    """A stream header, then ``<see-other-host>`` naming ``target``, then the stream's end."""
    return (
        STREAM_HEAD + b"<stream:error><see-other-host xmlns='urn:ietf:params:xml:ns:xmpp-streams'>" + target
        + b"</see-other-host></stream:error></stream:stream>"
    )


def tls_redirector(target: bytes, context: Optional[ssl.SSLContext] = None) -> Callable[[socket.socket], None]:
    """A script that does STARTTLS properly (with ``context``'s certificate, by default the
    stand-in's), then redirects to ``target`` (a redirect before TLS is not followed)."""

    def script(sock: socket.socket) -> None:
        read_until(sock, b"xml:lang")
        sock.sendall(STREAM_HEAD + b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>")
        read_until(sock, b"<starttls")
        sock.sendall(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        tls = (context or server_tls_context()).wrap_socket(sock, server_side=True)
        read_until(tls, b"xml:lang")
        tls.sendall(see_other_host(target))
        wait_for_eof(tls, 5)

    return script


def pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy ``source`` to ``sink`` until either ends, then shut both down."""
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def pass_through(sock: socket.socket, port: int) -> None:
    """Forward the connection both ways to 127.0.0.1:``port`` (a script's "behave normally")."""
    upstream = socket.create_connection(("127.0.0.1", port))
    back = threading.Thread(target=pump, args=(upstream, sock), name="scripted-pump", daemon=True)
    back.start()
    pump(sock, upstream)
    back.join(5)
