"""The client's lifecycle (yaxmpp/session.py): states, redirects under the backoff policy,
failures that reach every consumer, close() bounded by its own timeout, reconnect races."""

from __future__ import annotations

import random
import socket
import threading
import time
from typing import List

import pytest

import yaxmpp
from yaxmpp.connection import TRANSITIONS as CONN_TRANSITIONS
from yaxmpp.connection import ConnState
from yaxmpp.session import TRANSITIONS, Session, State

from .conftest import LOGIN, TOKEN, Recorder, library_threads
from .scripted import ScriptedServer, pass_through, tls_redirector, wait_for_eof

class Recording(random.Random):
    """A 'random' source that always draws the longest wait and records every draw."""

    def __init__(self) -> None:
        super().__init__(1)
        self.draws: List[float] = []

    def uniform(self, a: float, b: float) -> float:
        self.draws.append(b)
        return b


def _scripted_client(port: int, server, **options) -> yaxmpp.Client:
    """A client for a scripted server on ``port`` (STARTTLS only) that trusts the stand-in's CA."""
    return yaxmpp.Client(LOGIN, TOKEN, host="127.0.0.1", port=port, tls_port=None, cafile=server.cafile, **options)


# -- the tables ---------------------------------------------------------------------------------


def test_every_state_has_its_transitions_listed_and_is_reachable():
    assert set(TRANSITIONS) == set(State)
    reachable = {State.IDLE}
    frontier = [State.IDLE]
    while frontier:
        for nxt in TRANSITIONS[frontier.pop()]:
            if nxt not in reachable:
                reachable.add(nxt)
                frontier.append(nxt)
    assert reachable == set(State)
    assert set(CONN_TRANSITIONS) == set(ConnState)
    assert CONN_TRANSITIONS[ConnState.ENDED] == frozenset()


def test_an_unlisted_transition_is_a_local_protocol_error(server, make_client):
    client = make_client(server)
    session: Session = client._session
    with pytest.raises(yaxmpp.LocalProtocolError):
        with session._cond:
            session._set(State.CONNECTED)  # IDLE -> CONNECTED skips CONNECTING
    assert client.state is State.IDLE


def test_states_through_a_whole_life(server, make_client):
    client = make_client(server)
    assert client.state is State.IDLE
    client.connect()
    assert client.state is State.CONNECTED
    client.close()
    assert client.state is State.CLOSED
    client.connect()  # a closed client connects anew (documented)
    assert client.state is State.CONNECTED and client.connected
    client.close()
    assert client.wait(0) is True


# -- redirects are attempts under the policy ---------------------------------------------------


def test_a_server_that_redirects_to_itself_cannot_cause_a_storm(server):
    """Every connection after the first session is answered with see-other-host pointing back
    at the same server: each one must wait a backoff delay, and the attempts are counted."""
    holder = {}

    def script(sock: socket.socket) -> None:
        if len(redirector.connections) == 1:  # the first one: a real session, through to the server
            pass_through(sock, server.starttls_port)
        else:
            tls_redirector(b"127.0.0.1:%d" % holder["port"])(sock)

    rng = Recording()
    with ScriptedServer(script) as redirector:
        holder["port"] = redirector.port
        policy = yaxmpp.Reconnect(initial=0.01, maximum=0.05, max_attempts=6, rng=rng)
        client = _scripted_client(redirector.port, server, timeout=5, reconnect=policy)
        try:
            client.connect()
            server.wait_for_session().drop()
            with pytest.raises(yaxmpp.StreamError) as info:
                client.get_notification(timeout=20)
            assert info.value.condition == "see-other-host"
            # One backoff draw before every connection after the first session, none skipped.
            assert len(redirector.connections) - 1 == len(rng.draws) == 6
            assert all(d > 0 for d in rng.draws)
        finally:
            client.close()


def test_see_other_host_after_the_session_waits_its_backoff(make_server, make_client):
    old, new = make_server(), make_server()
    rng = Recording()
    client = make_client(old, reconnect=yaxmpp.Reconnect(initial=0.05, maximum=0.05, rng=rng)).connect()
    old.wait_for_session().send(
        "<stream:error><see-other-host xmlns='urn:ietf:params:xml:ns:xmpp-streams'>127.0.0.1:%d</see-other-host>"
        "</stream:error></stream:stream>" % new.starttls_port
    )
    moved = new.wait_for_session(timeout=5)
    assert moved.subscribed.wait(5)
    assert rng.draws == [0.05]  # the redirect was an attempt under the policy
    moved.push([{"type": "new", "key": "/disk/moved"}])
    resync = client.get_notification(timeout=5)  # the gap comes first in the stream
    assert isinstance(resync, yaxmpp.Resync) and isinstance(resync.error, yaxmpp.StreamError)
    assert client.get_notification(timeout=5).changes[0].path == "/disk/moved"


# -- failures reach every consumer -------------------------------------------------------------


def test_iterator_raises_when_the_policy_gives_up_with_a_timeout(server):
    """The reconnect attempts reach a server that accepts and never speaks: each one times
    out, the policy gives up, and notifications() raises that Timeout (not a quiet end)."""

    def script(sock: socket.socket) -> None:
        if len(gateway.connections) == 1:
            pass_through(sock, server.starttls_port)
        else:
            wait_for_eof(sock, 10)

    with ScriptedServer(script) as gateway:
        policy = yaxmpp.Reconnect(initial=0.01, maximum=0.01, max_attempts=2)
        client = _scripted_client(gateway.port, server, timeout=0.5, reconnect=policy)
        try:
            client.connect()
            server.wait_for_session().drop()
            with pytest.raises(yaxmpp.Timeout):
                for _ in client.notifications():
                    pass
            with pytest.raises(yaxmpp.Timeout):
                client.wait(10)
            assert client.state is State.FAILED
        finally:
            client.close()


def test_a_crash_in_the_reader_thread_ends_the_client_with_a_typed_error(server, make_client, monkeypatch, caplog):
    client = make_client(server, reconnect=yaxmpp.Reconnect(initial=0.01, maximum=0.01)).connect()
    connection = client._session.connection

    def broken(pushes):  # a bug in the driver, on the reader thread
        raise RuntimeError("boom")

    monkeypatch.setattr(connection, "_take_pushes", broken)
    server.wait_for_session().push([{"type": "new", "key": "/disk/x"}])
    with pytest.raises(yaxmpp.LocalProtocolError, match="internal error"):
        for _ in client.notifications():
            pass
    with pytest.raises(yaxmpp.LocalProtocolError):
        client.wait(5)
    assert len(server.sessions) == 1  # a bug is not retried
    assert "the reader thread failed" in caplog.text


def test_a_crash_in_the_reconnect_loop_ends_the_client_with_a_typed_error(server, make_client, caplog):
    class Broken(random.Random):
        def uniform(self, a: float, b: float) -> float:
            raise RuntimeError("broken rng")

    done = threading.Event()
    client = make_client(
        server, reconnect=yaxmpp.Reconnect(rng=Broken()), on_disconnect=lambda error: done.set()
    ).connect()
    server.wait_for_session().drop()
    with pytest.raises(yaxmpp.LocalProtocolError, match="reconnect loop failed"):
        client.wait(10)
    with pytest.raises(yaxmpp.LocalProtocolError):
        client.get_notification(timeout=5)
    assert done.wait(5)
    assert "the reconnect loop failed" in caplog.text


def test_a_crash_in_the_reconnect_loop_ends_the_pull_iterator_too(server, make_client):
    class Broken(random.Random):
        def uniform(self, a: float, b: float) -> float:
            raise RuntimeError("broken rng")

    client = make_client(server, reconnect=yaxmpp.Reconnect(rng=Broken())).connect()
    server.wait_for_session().drop()
    with pytest.raises(yaxmpp.LocalProtocolError):
        for _ in client.notifications():
            pass


# -- close() -------------------------------------------------------------------------------------


def test_close_is_bounded_by_close_timeout_not_the_connect_timeout(make_server, make_client):
    server = make_server(answer_close=False)
    client = make_client(server, timeout=30, close_timeout=0.5).connect()
    started = time.monotonic()
    client.close()
    assert time.monotonic() - started < 0.5 + 1.5
    assert server.wait_for_session().client_closed.is_set()


def test_close_timeout_defaults_to_a_few_seconds():
    client = yaxmpp.Client(LOGIN, TOKEN)
    assert client.options.close_timeout == 5.0 and client.options.timeout == 30.0


def test_close_is_idempotent_and_safe_from_many_threads(server, make_client):
    client = make_client(server).connect()
    threads = [threading.Thread(target=client.close) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert client.state is State.CLOSED
    client.close()
    assert library_threads() == []


def test_close_before_connect_is_a_no_op_and_connect_still_works(server, make_client):
    client = make_client(server)
    client.close()
    assert client.state is State.CLOSED
    client.connect()
    assert client.connected


# -- misuse is a typed error -----------------------------------------------------------------------


def test_notifications_with_a_callback_set_is_a_usage_error(server, make_client):
    client = make_client(server, on_notification=lambda n: None)
    with pytest.raises(yaxmpp.UsageError):
        client.notifications()
    with pytest.raises(yaxmpp.UsageError):
        client.get_notification(timeout=0.1)


def test_concurrent_connect_is_a_usage_error_and_the_first_one_wins(server):
    release, arrived = threading.Event(), threading.Event()

    def slow(sock: socket.socket) -> None:  # holds the first connection until told to go on
        arrived.set()
        release.wait(10)
        pass_through(sock, server.starttls_port)

    with ScriptedServer(slow) as gateway:
        client = _scripted_client(gateway.port, server, timeout=10)
        errors: List[BaseException] = []
        first = threading.Thread(target=lambda: _catch(client.connect, errors))
        first.start()
        try:
            assert arrived.wait(5) and client.state is State.CONNECTING
            with pytest.raises(yaxmpp.UsageError, match="already running"):
                client.connect()
            release.set()
            first.join(10)
            assert errors == [] and client.connected
        finally:
            release.set()
            client.close()


def test_request_during_a_reconnect_is_a_connection_lost(server, make_client):
    lost = threading.Event()
    client = make_client(
        server, reconnect=yaxmpp.Reconnect(initial=30, maximum=30, rng=Recording()), on_disconnect=lambda e: lost.set()
    ).connect()
    server.wait_for_session().drop()
    assert lost.wait(5)
    assert client.state is State.RECONNECTING
    with pytest.raises(yaxmpp.ConnectionLost, match="reconnecting"):
        client.request('<ping xmlns="urn:xmpp:ping"/>', timeout=1)
    started = time.monotonic()
    client.close()  # stops the 30 s backoff wait at once
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("name, value", [("timeout", 1e10), ("keepalive", 1e10), ("close_timeout", float("nan")), ("timeout", -1)])
def test_absurd_timeouts_are_usage_errors_at_the_call(name, value):
    with pytest.raises(yaxmpp.UsageError):
        yaxmpp.Client(LOGIN, TOKEN, **{name: value})


def test_absurd_timeouts_of_calls_are_usage_errors(server, make_client):
    client = make_client(server).connect()
    with pytest.raises(yaxmpp.UsageError):
        client.request('<ping xmlns="urn:xmpp:ping"/>', timeout=1e10)
    with pytest.raises(yaxmpp.UsageError):
        client.get_notification(timeout=1e10)
    with pytest.raises(yaxmpp.UsageError):
        client.close(timeout=1e10)
    assert client.connected


def _catch(function, errors: List[BaseException]) -> None:
    try:
        function()
    except BaseException as exc:  # noqa: BLE001 - collected for the test
        errors.append(exc)



# -- bounded memory, control items, masked state ------------------------------------------------


def test_requests_that_time_out_leave_nothing_behind(make_server, make_client):
    server = make_server()
    client = make_client(server).connect()
    server.wait_for_session().mute()  # a silent server: no answer ever comes
    connection = client._session.connection
    for _ in range(300):
        with pytest.raises(yaxmpp.Timeout):
            client.request('<query xmlns="jabber:iq:version"/>', to="ya.ru", timeout=0.001)
    assert connection._waiters == {}
    assert connection._core._pending == {}


def test_control_items_do_not_count_against_max_pending():
    from yaxmpp.delivery import Delivery

    delivery = Delivery(1, on_notification=lambda n: None, callbacks=True, name="yaxmpp-test-delivery")
    delivery.reopen()
    for _ in range(5):
        delivery.put_call(print, "on_connect")
    assert delivery.put_notifications(["n1", "n2"]) == 1  # room for max_pending notifications
    assert len(delivery) == 1 and delivery.refused == 1


def test_repr_masks_a_jid_that_echoes_the_token(server, make_client):
    from .secrets_check import assert_no_secret

    client = make_client(server, resource=TOKEN).connect()
    assert TOKEN in (client.jid or "")  # the server bound what was asked for
    assert_no_secret(repr(client), TOKEN, login=LOGIN)
    assert "connected" in repr(client)


def test_watch_exits_non_zero_when_the_client_ends_by_an_error(server, monkeypatch, tmp_path):
    """A crash of the reconnect loop used to end `yaxmpp watch` with exit code 0."""
    import io

    from yaxmpp import cli

    class Broken(random.Random):
        def uniform(self, a: float, b: float) -> float:
            raise RuntimeError("broken rng")

    real = yaxmpp.Reconnect
    monkeypatch.setattr(yaxmpp, "Reconnect", lambda **kw: real(rng=Broken(), **kw))
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    args = cli._parser().parse_args(
        ["watch", "--login", LOGIN, "--token-file", str(token_file), "--host", "127.0.0.1",
         "--port", str(server.starttls_port), "--tls-port", "none", "--cafile", server.cafile]
    )
    out, err = io.StringIO(), io.StringIO()
    result: List[int] = []
    runner = threading.Thread(target=lambda: result.append(cli.run_watch(args, out, err)))
    runner.start()
    server.wait_for_session().subscribed.wait(5)
    server.wait_for_session().drop()
    runner.join(20)
    assert result == [cli.EXIT_ERROR]
    assert "reconnect loop failed" in err.getvalue()
    assert TOKEN not in err.getvalue() + out.getvalue()


def test_an_end_reported_while_connect_finishes_is_not_lost(server, make_client, monkeypatch):
    """The reader reports the end of a connection that connect() has not yet declared open:
    the session must still see it ended, and reconnect."""
    client = make_client(server, reconnect=yaxmpp.Reconnect(initial=0.01, maximum=0.01))
    session = client._session
    reported, opened = threading.Event(), threading.Event()
    real_ended, real_opened = session._ended, session._opened
    first = []

    def ended(connection, error):
        real_ended(connection, error)
        if not first or first[0] is connection:
            reported.set()
            opened.wait(5)  # the reader waits here, before it finishes closing

    def opened_once(connection, previous, run):
        if first:
            return real_opened(connection, previous, run)
        first.append(connection)
        server.wait_for_session().close_stream()
        assert reported.wait(5)
        try:
            return real_opened(connection, previous, run)
        finally:
            opened.set()

    monkeypatch.setattr(session, "_ended", ended)
    monkeypatch.setattr(session, "_opened", opened_once)
    client.connect()
    assert server.wait_for_session(index=1, timeout=5).subscribed.wait(5)


def test_a_client_closed_while_reconnecting_and_connected_again_still_reconnects(server, make_client):
    lost = Recorder()
    client = make_client(server, reconnect=yaxmpp.Reconnect(initial=0.05, maximum=0.05), on_disconnect=lost)
    client.connect()
    server.wait_for_session(index=0).drop()
    assert lost.wait_for(1)
    client.close()  # during the backoff wait of the first run's loop
    client.connect()
    assert server.wait_for_session(index=1).subscribed.wait(5)
    server.wait_for_session(index=1).drop()
    assert server.wait_for_session(index=2, timeout=5).subscribed.wait(5)  # the new run's loop
    assert [t.name for t in library_threads()].count("yaxmpp-reconnect-%d" % client.number) == 1


def test_close_from_a_callback_during_close_returns_at_once(server, make_client):
    """on_disconnect(None) runs during close(); its own close() must not wait for the outer one
    (which waits for the callback): the whole close ends well within close_timeout."""
    holder = {}
    inner_done = threading.Event()

    def on_disconnect(error):
        holder["client"].close()
        inner_done.set()

    client = make_client(server, on_disconnect=on_disconnect, close_timeout=30.0)
    holder["client"] = client
    client.connect()
    started = time.monotonic()
    client.close()
    assert inner_done.is_set() and client.state is State.CLOSED
    assert time.monotonic() - started < 10  # not the 30 s close_timeout


def test_an_interrupted_close_still_leaves_the_client_closed(server, make_client, monkeypatch):
    from yaxmpp.connection import Connection

    client = make_client(server, close_timeout=2).connect()
    real = Connection.close
    calls: List[int] = []

    def interrupted(self, deadline):
        if not calls:
            calls.append(1)
            raise KeyboardInterrupt  # Ctrl-C (or the CLI's SIGTERM) while close() waits
        return real(self, deadline)

    monkeypatch.setattr(Connection, "close", interrupted)
    with pytest.raises(KeyboardInterrupt):
        client.close()
    assert client.state is State.CLOSED
    assert server.wait_for_session().wait_ended(5)  # the connection was aborted all the same
    client.connect()  # and the client can be used again
    assert client.connected


def test_a_bug_below_connect_is_a_typed_error(server, make_client, monkeypatch, caplog):
    from yaxmpp.connection import Connection

    def broken(self, deadline):
        raise TypeError("a bug")

    monkeypatch.setattr(Connection, "open", broken)
    client = make_client(server)
    with pytest.raises(yaxmpp.LocalProtocolError, match="internal error during connect"):
        client.connect()
    assert client.state is State.FAILED
    with pytest.raises(yaxmpp.LocalProtocolError):
        client.get_notification(timeout=1)



def test_a_close_while_open_is_starting_the_reader_is_not_lost(server, make_client, monkeypatch):
    """Connection.close() from another thread between the connection's OPEN and its reader's
    start waits for the reader and closes: the connection ends, its reader is joined."""
    from yaxmpp import connection as connection_module
    from yaxmpp.deadline import Deadline
    from yaxmpp.protocol.redact import Redactor

    client = make_client(server)
    options = client.options
    at_open, close_returned = threading.Event(), threading.Event()
    progress = threading.Event()  # close() waits for the reader, or (the bug) has returned
    real_set_state = connection_module.Connection._set_state

    class Watched(threading.Event):
        def wait(self, timeout=None):
            progress.set()
            return super().wait(timeout)

    def set_state(self, new):
        real_set_state(self, new)
        if new is ConnState.OPEN:
            self._reader_ready = Watched()
            at_open.set()
            assert progress.wait(5)

    monkeypatch.setattr(connection_module.Connection, "_set_state", set_state)
    conn = connection_module.Connection(options, options.targets(), Redactor(), lambda items: 0, lambda c, e: None)

    def closer():
        assert at_open.wait(5)
        conn.close(Deadline(5))
        close_returned.set()
        progress.set()

    thread = threading.Thread(target=closer)
    thread.start()
    conn.open(Deadline(10))
    thread.join(10)
    assert close_returned.is_set()
    assert conn.ended and conn.state is ConnState.ENDED
    assert [t for t in library_threads() if t.name.startswith("yaxmpp-reader")] == []
