"""A loopback TCP proxy for fault injection: forwards both ways, records the server's write
sizes, and can cut the connection after a given number of bytes in one direction."""

from __future__ import annotations

import socket
import threading
from typing import List, Optional


class CutProxy:
    """Listens on 127.0.0.1 and forwards each connection to ``target_port``.

    Only the first connection is subject to the cut (so a client that reconnects gets
    through): ``cut_down`` cuts after that many server-to-client bytes, ``cut_up`` after that
    many client-to-server bytes.  ``chunks`` records the sizes of what the server sent on the
    first connection, one entry per read (on loopback: per server write, roughly per step).
    """

    def __init__(self, target_port: int, cut_down: Optional[int] = None, cut_up: Optional[int] = None) -> None:
        self.target_port = target_port
        self.cut_down = cut_down
        self.cut_up = cut_up
        self.chunks: List[int] = []
        self.connections = 0
        self.cut_done = threading.Event()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self._sockets: List[socket.socket] = []
        self._threads: List[threading.Thread] = []
        self._lock = threading.Lock()
        self._accepter = threading.Thread(target=self._accept, name="proxy-accept", daemon=True)
        self._accepter.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self.connections += 1
                first = self.connections == 1
                self._sockets += [client, upstream]
            pair = _Pair(client, upstream)
            for source, sink, limit, record in (
                (upstream, client, self.cut_down if first else None, first),
                (client, upstream, self.cut_up if first else None, False),
            ):
                thread = threading.Thread(
                    target=self._pump, args=(pair, source, sink, limit, record), name="proxy-pump", daemon=True
                )
                self._threads.append(thread)
                thread.start()

    def _pump(self, pair: "_Pair", source: socket.socket, sink: socket.socket, limit: Optional[int], record: bool) -> None:
        sent = 0
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if record:
                    self.chunks.append(len(data))
                if limit is not None and sent + len(data) >= limit:
                    sink.sendall(data[: limit - sent])
                    self.cut_done.set()
                    break
                sink.sendall(data)
                sent += len(data)
        except OSError:
            pass
        pair.shut()

    def stop(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._accepter.join(5)
        for thread in self._threads:
            thread.join(5)
        for sock in sockets:
            sock.close()

    def __enter__(self) -> "CutProxy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Pair:
    """Both sockets of one proxied connection; shutting one direction down ends both."""

    def __init__(self, a: socket.socket, b: socket.socket) -> None:
        self.a, self.b = a, b

    def shut(self) -> None:
        for sock in (self.a, self.b):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
