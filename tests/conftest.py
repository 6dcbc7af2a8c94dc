"""Shared fixtures: stand-in servers, clients pointed at them, and a thread-leak guard."""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any, Callable, Iterator, List, Optional

import pytest

import yaxmpp
from yaxmpp.testing import FakeServer

# Helper modules whose asserts should report like the tests' own.
pytest.register_assert_rewrite("tests.core_harness")

LOGIN = "test"
#: Long enough to be scrubbed from logs (tokens shorter than 6 characters are not searched for).
TOKEN = "0c4181a7c2cf4521964a72ff57a34a07"


def library_threads() -> List[threading.Thread]:
    """Threads the client library started (the stand-in server's own are not counted)."""
    return [t for t in threading.enumerate() if t.name.startswith("yaxmpp-") and not t.name.startswith("yaxmpp-testing")]


@pytest.fixture(autouse=True)
def no_thread_leak() -> Iterator[None]:
    yield
    leaked = library_threads()
    assert not leaked, "threads left behind: %r" % leaked


@pytest.fixture
def make_server() -> Iterator[Callable[..., FakeServer]]:
    servers: List[FakeServer] = []

    def make(**kwargs: Any) -> FakeServer:
        kwargs.setdefault("login", LOGIN)
        kwargs.setdefault("token", TOKEN)
        server = FakeServer(**kwargs).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def server(make_server: Callable[..., FakeServer]) -> FakeServer:
    return make_server()


@pytest.fixture
def make_client() -> Iterator[Callable[..., yaxmpp.Client]]:
    clients: List[yaxmpp.Client] = []

    def make(server: FakeServer, **kwargs: Any) -> yaxmpp.Client:
        options = server.client_options()
        options.update(kwargs)
        options.setdefault("timeout", 5.0)
        login = options.pop("login", LOGIN)
        token = options.pop("token", TOKEN)
        client = yaxmpp.Client(login, token, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close(timeout=2.0)


#: Sockets behind the ports closed_port() handed out; the autouse fixture below closes them
#: when the test that asked for them ends.
_refusing: List[socket.socket] = []


def closed_port(host: str = "127.0.0.1") -> int:
    """A port on ``host`` that refuses connects for the rest of the current test.

    The port is held by a socket that is bound but never listens: on Linux a connect to it
    is refused (RST), and since the socket stays bound (without SO_REUSEADDR) no other
    process or test can take the port meanwhile.  Released when the test ends."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.bind((host, 0))
    except BaseException:
        sock.close()
        raise
    _refusing.append(sock)
    return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def release_closed_ports() -> Iterator[None]:
    yield
    while _refusing:
        _refusing.pop().close()


class Recorder:
    """A callable that records what it is called with (its first argument, or None) and lets
    a test wait for the n-th call: an event to wait on for callbacks such as on_connect and
    on_disconnect, instead of polling a list."""

    def __init__(self) -> None:
        self.calls: List[Any] = []
        self._cond = threading.Condition()

    def __call__(self, *args: Any) -> None:
        with self._cond:
            self.calls.append(args[0] if args else None)
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 5.0) -> bool:
        """True once at least ``count`` calls were made (False if ``timeout`` passed first)."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self.calls) >= count, timeout)


class LogEvent(logging.Handler):
    """An event set when the library logs a message matching ``predicate`` (on ``logger``, at
    any level): for the few moments a test must wait for that have no other signal, e.g. the
    client sending its own keepalive ping.  Use as a context manager."""

    def __init__(self, logger: str, predicate: Callable[[str], bool]) -> None:
        super().__init__(logging.DEBUG)
        self.logger = logging.getLogger(logger)
        self.predicate = predicate
        self.event = threading.Event()
        self._level: Optional[int] = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.predicate(record.getMessage()):
            self.event.set()

    def wait(self, timeout: float = 5.0) -> bool:
        return self.event.wait(timeout)

    def __enter__(self) -> "LogEvent":
        self._level = self.logger.level
        self.logger.setLevel(logging.DEBUG)
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.logger.removeHandler(self)
        if self._level is not None:
            self.logger.setLevel(self._level)


def join_library_threads(timeout: float = 5.0) -> List[threading.Thread]:
    """Join the library's threads (bounded) and return those still alive: for threads that end
    on their own after the client has ended (no event exists for a thread's exit but join)."""
    end = time.monotonic() + timeout
    for thread in library_threads():
        thread.join(max(0.0, end - time.monotonic()))
    return library_threads()


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Polls ``predicate``: only for a condition no event can signal (kept for test_dial.py,
    which is not converted here); every other test waits on an event."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()
