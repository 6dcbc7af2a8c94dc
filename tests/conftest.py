"""Shared fixtures: stand-in servers, clients pointed at them, and a thread-leak guard."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Callable, Iterator, List

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


def closed_port() -> int:
    """A loopback port with nothing listening on it (connects are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """For tests only: wait for a condition that has no event to wait on."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()
