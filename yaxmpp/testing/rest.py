"""A loopback stand-in for Yandex's HTTPS APIs: the Disk REST API's ``GET /v1/disk/`` (and
whatever routes a test adds, e.g. the OAuth endpoints).

::

    from yaxmpp.testing.rest import RestStandIn

    with RestStandIn(token="t", login="test", revision=7) as api:
        info = yaxmpp.diskapi.disk_info("t", api_url=api.url, cafile=CA_FILE)
        api.revision = 8          # the disk changed
        api.fail = 503            # or "hang", or "close": the next answers misbehave

HTTPS with the test certificate (like :class:`~yaxmpp.testing.FakeServer`), one thread per
connection, named ``yaxmpp-testing-rest-…``.  Answers follow the documented JSON shapes; an
``Authorization`` other than ``OAuth <token>`` gets the API's 401.  Every request is recorded.
"""

from __future__ import annotations

import http.server
import json
import logging
import socket
import ssl
import threading
import urllib.parse
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple, Union

from .server import CERT_FILE, KEY_FILE

__all__ = ["RestStandIn", "Request", "Handler"]

log = logging.getLogger("yaxmpp.testing")


class Request(NamedTuple):
    method: str
    path: str  # without the query
    query: Dict[str, str]
    headers: Dict[str, str]  # names lower-cased
    form: Dict[str, str]  # a urlencoded body, parsed


#: A route: the request in, (status, JSON object) out.
Handler = Callable[[Request], Tuple[int, Dict[str, Any]]]

UNAUTHORIZED: Dict[str, Any] = {"message": "Не авторизован.", "description": "Unauthorized", "error": "UnauthorizedError"}


class _Server:
    """What the request handler needs of a server: the stand-in."""

    def __init__(self, stand_in: "RestStandIn") -> None:
        self.stand_in = stand_in


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server  # type: ignore[assignment]
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        self.request.settimeout(10)
        self.request = self.server.stand_in.context.wrap_socket(self.request, server_side=True)
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("rest stand-in: " + format, *args)

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        stand_in = self.server.stand_in
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urllib.parse.urlsplit(self.path)
        form: Dict[str, str] = {}
        if body:
            form = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        request = Request(
            self.command,
            parts.path,
            dict(urllib.parse.parse_qsl(parts.query)),
            {k.lower(): v for k, v in self.headers.items()},
            form,
        )
        with stand_in.lock:
            stand_in.requests.append(request)
            stand_in._requested.notify_all()
            fail = stand_in.fail
            handler = stand_in.routes.get((self.command, parts.path))
        if fail == "hang":
            stand_in.released.wait(30)
            self.close_connection = True
            return
        if fail == "close":
            self.close_connection = True
            return
        if isinstance(fail, int):
            status, document = fail, {"error": "StandInError", "description": "failure %d set by the test" % fail}
        elif handler is None:
            status, document = 404, {"error": "NotFound", "description": "no route %s %s" % (self.command, parts.path)}
        else:
            status, document = handler(request)
        payload = json.dumps(document, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)
        self.close_connection = True


class RestStandIn:
    """The stand-in API server.  ``token``: the only token accepted; ``login``: the account's
    name in ``user.login``; ``revision``: the disk's revision (settable at any time).

    ``fail`` (settable): None to answer normally, an HTTP status to answer every request with
    it, ``"hang"`` to accept and never answer (until :meth:`stop`), ``"close"`` to close the
    connection without an answer.  ``routes`` maps ``(method, path)`` to a :data:`Handler`;
    :meth:`route` adds one.  ``url`` is the base URL to point a client at;
    :meth:`wait_for_requests` waits for the n-th request to arrive.
    """

    def __init__(self, token: str = "test-token", login: str = "test", revision: Optional[int] = 1) -> None:
        self.token = token
        self.login = login
        self.revision = revision
        self.fail: Union[None, int, str] = None
        self.requests: List[Request] = []
        self.lock = threading.Lock()
        self._requested = threading.Condition(self.lock)
        self.released = threading.Event()
        self.routes: Dict[Tuple[str, str], Handler] = {("GET", "/v1/disk/"): self._disk, ("GET", "/v1/disk"): self._disk}
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(CERT_FILE, KEY_FILE)
        self.context = context
        self._listener: Optional[socket.socket] = None
        self._thread: Optional[threading.Thread] = None
        self._stopping = False
        self._port = 0

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until at least ``count`` requests have arrived; False if ``timeout`` passed."""
        with self._requested:
            return self._requested.wait_for(lambda: len(self.requests) >= count, timeout)

    def route(self, method: str, path: str, handler: Handler) -> None:
        with self.lock:
            self.routes[(method, path)] = handler

    def authorized(self, request: Request) -> bool:
        """Whether the request carries ``Authorization: OAuth <token>``."""
        return request.headers.get("authorization") == "OAuth %s" % self.token

    def _disk(self, request: Request) -> Tuple[int, Dict[str, Any]]:
        if not self.authorized(request):
            return 401, dict(UNAUTHORIZED)
        document: Dict[str, Any] = {
            "total_space": 10737418240,
            "used_space": 1048576,
            "trash_size": 0,
            "is_paid": False,
            "system_folders": {"downloads": "disk:/Загрузки/"},
            "user": {"login": self.login, "uid": "1000", "display_name": self.login, "country": "ru"},
        }
        if self.revision is not None:
            document["revision"] = self.revision
        return 200, document

    @property
    def port(self) -> int:
        assert self._port, "not started"
        return self._port

    @property
    def url(self) -> str:
        return "https://127.0.0.1:%d" % self.port

    def start(self) -> "RestStandIn":
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        self._listener = listener
        self._port = listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, args=(listener,), name="yaxmpp-testing-rest", daemon=True)
        self._thread.start()
        return self

    def _accept_loop(self, listener: socket.socket) -> None:
        server = _Server(self)
        while True:
            try:
                conn, address = listener.accept()
            except OSError:
                return
            if self._stopping:
                conn.close()
                return
            threading.Thread(target=self._serve, args=(conn, address, server), name="yaxmpp-testing-rest-conn", daemon=True).start()

    @staticmethod
    def _serve(conn: socket.socket, address: Any, server: _Server) -> None:
        try:
            _Handler(conn, address, server)  # type: ignore[arg-type]
        except (OSError, ssl.SSLError, ValueError):
            pass  # a client that went away or spoke no TLS
        finally:
            try:
                conn.close()
            except OSError:  # pragma: no cover
                pass

    def stop(self) -> None:
        """Stop accepting and release hung answers; idempotent."""
        self._stopping = True
        self.released.set()
        listener, self._listener = self._listener, None
        if listener is not None:
            try:  # wakes the blocked accept()
                socket.create_connection(("127.0.0.1", self._port), timeout=1).close()
            except OSError:
                pass
            listener.close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> "RestStandIn":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()
