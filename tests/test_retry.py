"""connect(retry=True): a first connection that fails for the network's reasons is retried
like a reconnect; Reconnect(on_retry=...) reports every attempt about to wait; wait() is the
main loop of a callback program."""

from __future__ import annotations

import random
import socket
import threading
import time
from typing import Any, List, Optional, Tuple

import pytest

import yaxmpp
from yaxmpp.testing import FakeServer

from .conftest import LOGIN, TOKEN, Recorder, closed_port
from .scripted import STREAM_HEAD, ScriptedServer, pass_through, read_until, wait_for_eof

FAST = dict(initial=0.02, maximum=0.05)


class Longest(random.Random):
    """Always draws the longest wait."""

    def uniform(self, a: float, b: float) -> float:
        return b


class Retries:
    """An on_retry that records (error, attempt, delay, thread name) and lets a test wait."""

    def __init__(self) -> None:
        self.calls: List[Tuple[yaxmpp.Error, int, float, str]] = []
        self._cond = threading.Condition()

    def __call__(self, error: yaxmpp.Error, attempt: int, delay: float) -> None:
        with self._cond:
            self.calls.append((error, attempt, delay, threading.current_thread().name))
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.calls) >= count, timeout)


class Connecting:
    """``client.connect(**kwargs)`` on a thread; ``result()`` is its outcome."""

    def __init__(self, client: yaxmpp.Client, **kwargs: Any) -> None:
        self.outcome: Optional[BaseException] = None
        self.done = threading.Event()

        def run() -> None:
            try:
                client.connect(**kwargs)
            except BaseException as exc:  # surfaced by result()
                self.outcome = exc
            finally:
                self.done.set()

        self.thread = threading.Thread(target=run, name="test-connect", daemon=True)
        self.thread.start()

    def result(self, timeout: float = 10.0) -> Optional[BaseException]:
        assert self.done.wait(timeout), "connect() did not return"
        self.thread.join(5)
        return self.outcome


def down_server(make_server: Any) -> Tuple[FakeServer, int, int]:
    """A stand-in that was started and stopped: its ports now refuse (until restarted)."""
    server = make_server()
    ports = (server.starttls_port, server.tls_port)
    server.stop()
    return server, ports[0], ports[1]


# -- connect(retry=True) ------------------------------------------------------------------------


def test_retry_needs_a_reconnect_policy(server, make_client):
    client = make_client(server)
    with pytest.raises(yaxmpp.UsageError):
        client.connect(retry=True)
    assert client.state is yaxmpp.State.IDLE
    with pytest.raises(yaxmpp.UsageError):
        make_client(server, reconnect=yaxmpp.Reconnect()).connect(retry="yes")  # type: ignore[arg-type]
    with pytest.raises(yaxmpp.UsageError):
        yaxmpp.Reconnect(on_retry=42)  # type: ignore[arg-type]


def test_a_refused_first_connection_is_retried_until_the_server_is_up(make_server, make_client):
    old, port, tls_port = down_server(make_server)
    retries = Retries()
    policy = yaxmpp.Reconnect(initial=0.02, maximum=0.05, on_retry=retries)
    client = make_client(old, reconnect=policy, on_connect=Recorder())
    connecting = Connecting(client, retry=True)
    assert retries.wait_for(3), "no retries reported"
    assert client.state is yaxmpp.State.CONNECTING
    server = make_server(starttls_port=port, tls_port=tls_port)
    assert connecting.result() is None
    assert client.connected and client.state is yaxmpp.State.CONNECTED
    errors = [call[0] for call in retries.calls]
    assert all(isinstance(error, yaxmpp.ConnectError) for error in errors)
    attempts = [call[1] for call in retries.calls]
    assert attempts == list(range(1, len(attempts) + 1))
    assert all(0 <= call[2] <= policy.cap(call[1] - 1) for call in retries.calls)
    assert {call[3] for call in retries.calls} == {"yaxmpp-dispatch-%d" % client.number}
    session = server.wait_for_session()
    assert session.subscribed.wait(5)
    session.push([{"type": "new", "key": "/disk/first"}])
    first = client.get_notification(timeout=5)
    assert not first.is_resync and first.changes[0].path == "/disk/first"  # a first connection has no gap


def test_the_policy_gives_up_and_the_last_error_is_raised(make_client, server):
    retries = Retries()
    client = make_client(
        server, port=closed_port(), tls_port=None, reconnect=yaxmpp.Reconnect(max_attempts=2, on_retry=retries, **FAST)
    )
    with pytest.raises(yaxmpp.ConnectError):
        client.connect(retry=True)
    assert client.state is yaxmpp.State.FAILED
    with pytest.raises(yaxmpp.ConnectError):
        client.wait(5)
    assert retries.wait_for(2)
    assert [call[1] for call in retries.calls] == [1, 2]


def test_each_attempt_is_bounded_by_the_timeout(server):
    def silent(sock: socket.socket) -> None:
        wait_for_eof(sock, 10)

    retries = Retries()
    with ScriptedServer(silent) as scripted:
        client = yaxmpp.Client(
            LOGIN, TOKEN, host="127.0.0.1", port=scripted.port, tls_port=None, cafile=server.cafile,
            reconnect=yaxmpp.Reconnect(max_attempts=1, on_retry=retries, **FAST),
        )
        started = time.monotonic()
        try:
            with pytest.raises(yaxmpp.Timeout):
                client.connect(timeout=0.3, retry=True)
            assert time.monotonic() - started < 2 * 0.3 + 0.05 + 1.5
            assert len(scripted.connections) == 2
            assert retries.wait_for(1) and isinstance(retries.calls[0][0], yaxmpp.Timeout)
        finally:
            client.close()


def test_a_connection_lost_during_negotiation_is_retried(server):
    cuts = iter(range(100))

    def script(sock: socket.socket) -> None:
        if next(cuts) == 0:
            read_until(sock, b"xml:lang")
            sock.shutdown(socket.SHUT_RDWR)  # hang up on the first attempt
            return
        pass_through(sock, server.starttls_port)

    retries = Retries()
    with ScriptedServer(script) as scripted:
        client = yaxmpp.Client(
            LOGIN, TOKEN, host="127.0.0.1", port=scripted.port, tls_port=None, cafile=server.cafile,
            reconnect=yaxmpp.Reconnect(on_retry=retries, **FAST), timeout=5,
        )
        try:
            client.connect(retry=True)
            assert client.connected
            assert retries.wait_for(1) and isinstance(retries.calls[0][0], yaxmpp.ConnectionLost)
        finally:
            client.close()


def _stream_error(sock: socket.socket) -> None:
    read_until(sock, b"xml:lang")
    sock.sendall(
        STREAM_HEAD + b"<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>"
    )
    wait_for_eof(sock, 5)


@pytest.mark.parametrize("failure", ["auth", "tls", "stream"])
def test_failures_that_are_not_the_networks_are_raised_at_once(make_server, failure):
    server = make_server()
    retries = Retries()
    policy = yaxmpp.Reconnect(on_retry=retries, **FAST)
    expected = {"auth": yaxmpp.AuthError, "tls": yaxmpp.TLSError, "stream": yaxmpp.StreamError}[failure]
    with ScriptedServer(_stream_error) as scripted:
        options: dict = dict(server.client_options(), reconnect=policy, timeout=5)
        token = TOKEN
        if failure == "auth":
            token = "wrong-" + TOKEN
        elif failure == "tls":
            options["cafile"] = None  # certifi's bundle does not trust the test CA
        else:
            options.update(port=scripted.port, tls_port=None)
        client = yaxmpp.Client(LOGIN, token, **options)
        try:
            with pytest.raises(expected):
                client.connect(retry=True)
            assert client.state is yaxmpp.State.FAILED
        finally:
            client.close()
    assert retries.calls == []
    assert len(server.sessions) + len(scripted.connections) == 1  # one attempt only


def test_close_from_another_thread_stops_the_retrying(make_server, make_client):
    old, port, tls_port = down_server(make_server)
    retries = Retries()
    client = make_client(old, reconnect=yaxmpp.Reconnect(initial=30, maximum=30, rng=Longest(), on_retry=retries))
    connecting = Connecting(client, retry=True)
    assert retries.wait_for(1)
    assert retries.calls[0][1:3] == (1, 30.0)
    started = time.monotonic()
    client.close()
    assert isinstance(connecting.result(), yaxmpp.ClientClosed)
    assert time.monotonic() - started < 5 + 1.5
    assert client.state is yaxmpp.State.CLOSED


def test_without_retry_a_refused_first_connection_fails_at_once(make_client, server):
    retries = Retries()
    client = make_client(server, port=closed_port(), tls_port=None, reconnect=yaxmpp.Reconnect(on_retry=retries, **FAST))
    with pytest.raises(yaxmpp.ConnectError):
        client.connect()
    assert retries.calls == []


# -- on_retry in the reconnect loop -------------------------------------------------------------


def test_on_retry_reports_each_reconnect_attempt_on_the_dispatcher(make_server, make_client):
    server = make_server()
    port, tls_port = server.starttls_port, server.tls_port
    retries = Retries()
    lost = Recorder()
    policy = yaxmpp.Reconnect(initial=0.02, maximum=0.05, on_retry=retries)
    client = make_client(server, reconnect=policy, on_disconnect=lost).connect()
    server.stop()
    assert retries.wait_for(3)
    assert lost.wait_for(1)
    first, second = retries.calls[0], retries.calls[1]
    assert first[0] is lost.calls[0]  # the first wait follows the loss, with its error
    assert isinstance(first[0], yaxmpp.ConnectionLost) and isinstance(second[0], yaxmpp.ConnectError)
    assert [call[1] for call in retries.calls[:3]] == [1, 2, 3]
    assert all(0 <= call[2] <= policy.cap(call[1] - 1) for call in retries.calls)
    assert {call[3] for call in retries.calls} == {"yaxmpp-dispatch-%d" % client.number}
    again = make_server(starttls_port=port, tls_port=tls_port)
    assert again.wait_for_session(timeout=10).subscribed.wait(10)


def test_on_retry_alone_starts_the_dispatcher(make_server, make_client):
    """A policy's on_retry is a callback like the others (pulled notifications aside)."""
    server = make_server()
    retries = Retries()
    client = make_client(server, reconnect=yaxmpp.Reconnect(on_retry=retries, **FAST)).connect()
    assert client.options.callbacks
    server.wait_for_session().drop()
    assert retries.wait_for(1)


# -- wait() ---------------------------------------------------------------------------------------


def test_wait_returns_after_close_from_a_callback(server, make_client):
    holder: List[yaxmpp.Client] = []

    def on_notification(item: Any) -> None:
        holder[0].close()

    client = make_client(server, on_notification=on_notification, reconnect=yaxmpp.Reconnect(**FAST))
    holder.append(client)
    client.connect()
    assert client.wait(0) is False  # still running
    session = server.wait_for_session()
    session.push([{"type": "new", "key": "/disk/stop"}])
    assert client.wait(10) is True
    assert client.state is yaxmpp.State.CLOSED


def test_wait_returns_after_close_from_another_thread(server, make_client):
    client = make_client(server, on_notification=lambda item: None).connect()
    timer = threading.Timer(0.1, client.close)
    timer.start()
    try:
        assert client.wait(10) is True
    finally:
        timer.join()


def test_wait_raises_what_ended_the_client(server, make_client):
    client = make_client(server, on_notification=lambda item: None, reconnect=yaxmpp.Reconnect(max_attempts=0)).connect()
    server.wait_for_session().drop()
    with pytest.raises(yaxmpp.ConnectionLost):
        client.wait(10)
    assert client.state is yaxmpp.State.FAILED
