"""``yaxmpp watch`` as a real process against the loopback stand-in: status lines, resync
events after a dropped session and a server restart, a burst of pushes into ``--exec
--batch``, a hung ``--exec`` command, two watches of one account, filters, escaping, the
JSON schema, the first connection retried, and the exit codes of the friendlier errors.
"""

from __future__ import annotations

import io
import json
import re
import signal
import socket
import threading
from typing import Any, Callable, Dict, List, Optional

import pytest

import yaxmpp
from yaxmpp.cli import watch as watch_module
from yaxmpp.testing import CA_FILE, FakeServer

from .conftest import LOGIN, TOKEN, closed_port
from .test_cli import STAMP, WAIT, Watch, assert_one_line_error, cli_env, run_cli, subscribed_session, watch_args
from .watch_helpers import Control, Lines

# -- a watch whose stderr lines can be waited for ---------------------------------------------


class LiveWatch(Watch):
    """:class:`tests.test_cli.Watch` with a way to wait for a stderr line."""

    def __init__(self, args: List[str], env: Dict[str, str]) -> None:
        self._err_cond = threading.Condition()
        super().__init__(args, env)

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for raw in iter(self.proc.stderr.readline, b""):
            with self._err_cond:
                self._err += raw
                self._err_cond.notify_all()

    def wait_err(self, needle: str, timeout: float = WAIT, count: int = 1) -> str:
        """The ``count``-th stderr line containing ``needle``, waiting for it."""

        def found() -> List[str]:
            return [line for line in self.stderr.splitlines() if needle in line]

        with self._err_cond:
            if not self._err_cond.wait_for(lambda: len(found()) >= count or self.proc.poll() is not None, timeout):
                raise AssertionError("no stderr line with %r within %gs: %r" % (needle, timeout, self.stderr))
        lines = found()
        assert len(lines) >= count, "exited (%r) without %r on stderr: %r" % (self.proc.poll(), needle, self.stderr)
        return lines[count - 1]

    def json_line(self, timeout: float = 5.0) -> Dict[str, Any]:
        record: Dict[str, Any] = json.loads(self.next_line(timeout))
        return record


def fast(options: Dict[str, Any], *extra: str) -> List[str]:
    """``watch`` arguments with a short first retry delay (the hidden --backoff)."""
    return watch_args(options, "--backoff", "0.05", *extra)


# -- status lines ------------------------------------------------------------------------------


def test_status_lines_on_stderr_without_v(make_server):
    server = make_server()
    with LiveWatch(fast(server.client_options()), cli_env(TOKEN)) as watch:
        session = subscribed_session(server, watch)
        connected = watch.wait_err("connected as")
        assert re.fullmatch(r"yaxmpp: connected as test@ya\.ru/YaDisk-client-[0-9a-f]{8} \(127\.0\.0\.1 port \d+\)", connected), connected
        assert session.jid and connected.startswith("yaxmpp: connected as %s " % session.jid)
        session.drop()
        lost = watch.wait_err("connection lost")
        assert lost.startswith("yaxmpp: connection lost: ") and len(lost) > len("yaxmpp: connection lost: ")
        second = server.wait_for_session(index=1, timeout=WAIT)
        assert second.subscribed.wait(WAIT)
        reconnected = watch.wait_err("reconnected as")
        assert reconnected.startswith("yaxmpp: reconnected as %s " % second.jid)
        assert watch.stop() == 0, watch.stderr
    assert "Traceback" not in watch.stderr
    assert TOKEN not in watch.stderr


def test_quiet_prints_no_status(make_server):
    server = make_server()
    with LiveWatch(fast(server.client_options(), "-q"), cli_env(TOKEN)) as watch:
        first = subscribed_session(server, watch)
        first.drop()
        second = server.wait_for_session(index=1, timeout=WAIT)
        assert second.subscribed.wait(WAIT)
        second.push([{"type": "new", "key": "/disk/q"}])
        line = watch.next_line()
        if " resync " in line:  # the reconnect's resync comes first (with the library's Resync)
            line = watch.next_line()
        assert line.rstrip("\n").endswith(" new /disk/q")
        assert watch.stop() == 0
    assert watch.stderr == ""


def restart(server: FakeServer, options: Dict[str, Any]) -> FakeServer:
    """A new stand-in on the stopped one's ports (a server restart)."""
    return FakeServer(login=LOGIN, token=TOKEN, starttls_port=options["port"], tls_port=options["tls_port"]).start()


def next_change(watch: LiveWatch) -> Dict[str, Any]:
    """The next change record (resync records before it are skipped)."""
    while True:
        record = watch.json_line()
        if record["event"] == "change":
            return record


def test_a_server_restart_is_survived(make_server):
    server = make_server()
    options = server.client_options()
    with LiveWatch(fast(options, "--json"), cli_env(TOKEN)) as watch:
        first = subscribed_session(server, watch)
        first.push([{"type": "new", "key": "/disk/before-restart"}])
        assert watch.json_line()["path"] == "/disk/before-restart"
        server.stop()
        assert first.wait_ended(WAIT)
        watch.wait_err("connection lost")
        restarted = restart(server, options)
        try:
            again = restarted.wait_for_session(timeout=WAIT)
            assert again.subscribed.wait(WAIT)
            watch.wait_err("reconnected as")
            again.push([{"type": "new", "key": "/disk/after-restart"}])
            assert next_change(watch)["path"] == "/disk/after-restart"
            assert watch.stop() == 0, watch.stderr
        finally:
            restarted.stop()
    assert "Traceback" not in watch.stderr


def test_each_failed_reconnect_attempt_is_a_line_with_its_delay(make_server):
    server = make_server()
    options = server.client_options()
    with LiveWatch(fast(options, "--json"), cli_env(TOKEN)) as watch:
        first = subscribed_session(server, watch)
        watch.wait_err("connected as")
        server.stop()
        assert first.wait_ended(WAIT)
        watch.wait_err("connection lost")
        failed = watch.wait_err("failed:")  # the first attempts meet the closed ports
        assert re.search(r"reconnect failed: .+; retrying in \d+\.\ds \(attempt \d+\)$", failed), failed
        assert watch.wait_err("failed:", count=2) != failed  # one line per attempt
        restarted = restart(server, options)
        try:
            assert restarted.wait_for_session(timeout=WAIT).subscribed.wait(WAIT)
            watch.wait_err("reconnected as")
            assert watch.json_line()["event"] == "resync"
            assert watch.stop() == 0, watch.stderr
        finally:
            restarted.stop()


def test_a_burst_of_pushes_is_printed_in_order_and_acknowledged(make_server):
    server = make_server()
    with LiveWatch(fast(server.client_options(), "--json", "-q"), cli_env(TOKEN)) as watch:
        session = subscribed_session(server, watch)
        ids = session.push_many(2000, [{"type": "new", "key": "/disk/burst", "fid": "1", "size": "1"}])
        session.push([{"type": "deleted", "key": "/disk/last"}])
        records = [watch.json_line() for _ in range(2001)]
        for iq_id in ids:
            assert session.wait_reply(iq_id, timeout=WAIT).get("type") == "result"
        assert watch.stop() == 0, watch.stderr
    assert [r["path"] for r in records] == ["/disk/burst"] * 2000 + ["/disk/last"]


# -- resync events ---------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["drop", "close-stream"])
def test_a_lost_session_is_a_resync_event_before_the_new_sessions_pushes(make_server, how):
    server = make_server()
    with LiveWatch(fast(server.client_options(), "--json", "-q"), cli_env(TOKEN)) as watch:
        first = subscribed_session(server, watch)
        first.push([{"type": "new", "key": "/disk/before"}])
        assert watch.json_line()["path"] == "/disk/before"
        first.drop() if how == "drop" else first.close_stream()
        second = server.wait_for_session(index=1, timeout=WAIT)
        assert second.subscribed.wait(WAIT)
        second.push([{"type": "new", "key": "/disk/after"}])
        resync = watch.json_line()
        after = watch.json_line()
        assert watch.stop() == 0, watch.stderr
    assert set(resync) == {"event", "since", "until", "reason"}
    assert resync["event"] == "resync" and isinstance(resync["reason"], str) and resync["reason"]
    assert isinstance(resync["since"], float) and isinstance(resync["until"], float)
    assert resync["since"] <= resync["until"]
    assert after["event"] == "change" and after["path"] == "/disk/after"


def test_text_mode_prints_resync_lines(make_server):
    server = make_server()
    with LiveWatch(fast(server.client_options(), "-q"), cli_env(TOKEN)) as watch:
        subscribed_session(server, watch).drop()
        assert server.wait_for_session(index=1, timeout=WAIT).subscribed.wait(WAIT)
        line = watch.next_line()
        assert watch.stop() == 0
    assert re.fullmatch(r"%s resync - since=%s reason=\S+\n" % (STAMP, STAMP), line), line


@pytest.mark.parametrize("revision, fail, expected", [(8, None, True), (7, None, False), (7, 503, None)], ids=["changed", "unchanged", "failing"])
def test_check_revision_says_whether_the_disk_changed_across_the_gap(make_server, revision, fail, expected):
    from yaxmpp.testing.rest import RestStandIn

    server = make_server()
    with RestStandIn(token=TOKEN, login=LOGIN, revision=7) as api:
        args = fast(server.client_options(), "--json", "-q", "--check-revision", "--api-url", api.url)
        with LiveWatch(args, cli_env(TOKEN)) as watch:
            first = subscribed_session(server, watch)
            assert api.wait_for_requests(1), "no revision request at the first session start"
            with api.lock:  # the disk changes (or the API fails) while the watch is away
                api.revision = revision
                api.fail = fail
            first.drop()
            assert server.wait_for_session(index=1, timeout=WAIT).subscribed.wait(WAIT)
            resync = watch.json_line()
            assert watch.stop() == 0, watch.stderr
    assert resync["event"] == "resync"
    assert resync["revision_changed"] is expected
    assert TOKEN not in watch.stderr


# -- --exec ----------------------------------------------------------------------------------


@pytest.fixture
def control(tmp_path):
    made = Control(tmp_path)
    yield made
    made.close()


def test_a_burst_of_pushes_is_one_batch_and_every_push_is_acknowledged_meanwhile(make_server, control):
    server = make_server()
    args = fast(server.client_options(), "--exec", control.command(), "--batch", "0.5", "-q")
    with LiveWatch(args, cli_env(TOKEN)) as watch:
        session = subscribed_session(server, watch)
        session.push([{"type": "new", "key": "/disk/first"}])
        held = control.next_run()  # the command runs and is held: it does not end until we say
        assert held.env["YAXMPP_EVENT"] == "batch" and held.env["YAXMPP_COUNT"] == "1"
        ids = session.push_many(500, [{"type": "changed", "key": "/disk/burst", "fid": "3", "size": "1"}])
        for iq_id in ids:  # acknowledged while the command is still running
            assert session.wait_reply(iq_id, timeout=WAIT).get("type") == "result"
        held.finish(0)
        runs = []
        total = 0
        while total < 500:
            run = control.next_run()
            run.finish(0)
            runs.append(run)
            total += int(run.env["YAXMPP_COUNT"])
        assert watch.stop() == 0, watch.stderr
    assert total == 500
    assert len(runs) <= 3, [r.env["YAXMPP_COUNT"] for r in runs]  # coalesced, not one run per push
    records = [r for run in runs for r in run.records]
    assert len(records) == 500 and all(r["event"] == "change" and r["path"] == "/disk/burst" for r in records)
    assert watch.rest() == []  # with --exec nothing goes to stdout


def test_a_hung_command_is_killed_reported_and_the_watch_goes_on(make_server, control):
    server = make_server()
    args = fast(server.client_options(), "--exec", control.command(), "--exec-timeout", "1", "-q")
    with LiveWatch(args, cli_env(TOKEN)) as watch:
        session = subscribed_session(server, watch)
        first = session.push([{"type": "new", "key": "/disk/hangs"}])
        hung = control.next_run()  # never answered
        assert hung.env["YAXMPP_PATH"] == "/disk/hangs"
        pushed = [session.push([{"type": "new", "key": "/disk/next-%d" % n}]) for n in range(3)]
        for iq_id in [first] + pushed:
            assert session.wait_reply(iq_id, timeout=WAIT).get("type") == "result"
        line = watch.wait_err("killed")
        assert "--exec-timeout 1s" in line and "/disk/hangs" in line
        paths = []
        for _ in range(3):
            run = control.next_run()
            paths.append(run.env["YAXMPP_PATH"])
            run.finish(0 if len(paths) != 2 else 5)
        assert "exited with status 5" in watch.wait_err("status 5")
        assert watch.stop() == 0, watch.stderr
    assert paths == ["/disk/next-0", "/disk/next-1", "/disk/next-2"]
    assert not hung.token_env


def test_exec_gets_resync_events_too(make_server, control):
    server = make_server()
    args = fast(server.client_options(), "--exec", control.command(), "-q")
    control.auto = True
    with LiveWatch(args, cli_env(TOKEN)) as watch:
        subscribed_session(server, watch).drop()
        second = server.wait_for_session(index=1, timeout=WAIT)
        assert second.subscribed.wait(WAIT)
        second.push([{"type": "new", "key": "/disk/x"}])
        resync = control.next_run()
        change = control.next_run()
        assert watch.stop() == 0, watch.stderr
    assert resync.env["YAXMPP_EVENT"] == "resync" and resync.records[0]["event"] == "resync"
    assert change.env["YAXMPP_EVENT"] == "change" and change.env["YAXMPP_PATH"] == "/disk/x"


# -- two watches, filters, escaping ------------------------------------------------------------


def test_two_watches_of_one_account_have_their_own_resources(make_server):
    server = make_server()
    with LiveWatch(fast(server.client_options(), "--json", "-q"), cli_env(TOKEN)) as one:
        first = subscribed_session(server, one)
        with LiveWatch(fast(server.client_options(), "--json", "-q"), cli_env(TOKEN)) as two:
            second = server.wait_for_session(index=1, timeout=WAIT)
            assert second.subscribed.wait(WAIT)
            assert first.jid != second.jid
            assert first.jid.startswith("test@ya.ru/YaDisk-client-") and second.jid.startswith("test@ya.ru/YaDisk-client-")
            server.push([{"type": "new", "key": "/disk/both"}])
            assert one.json_line()["path"] == "/disk/both"
            assert two.json_line()["path"] == "/disk/both"
            assert two.stop() == 0
        assert one.stop() == 0
    assert not first.ended.is_set() or first.client_closed.is_set()  # never kicked off by the second
    assert len(server.sessions) == 2


def test_two_watches_with_one_resource_kick_each_other_off(make_server):
    """Why watch picks a resource of its own: the stand-in, like real servers, ends the older
    of two sessions with one resource with a conflict, and a conflict is not retried."""
    server = make_server()
    with LiveWatch(fast(server.client_options(), "--resource", "same", "-q"), cli_env(TOKEN)) as one:
        subscribed_session(server, one)
        with LiveWatch(fast(server.client_options(), "--resource", "same", "-q"), cli_env(TOKEN)) as two:
            assert server.wait_for_session(index=1, timeout=WAIT).subscribed.wait(WAIT)
            assert one.wait() == 1
            assert "conflict" in one.stderr
            assert two.stop() == 0


def test_resource_given_is_used_as_is(make_server):
    server = make_server()
    with LiveWatch(fast(server.client_options(), "--resource", "my-box", "-q"), cli_env(TOKEN)) as watch:
        session = subscribed_session(server, watch)
        assert session.jid == "test@ya.ru/my-box"
        assert watch.stop() == 0


def test_filters_by_path_prefix_and_type(make_server):
    server = make_server()
    args = fast(server.client_options(), "--json", "-q", "--path", "/disk/Photos", "--path", "disk:/Docs/", "--type", "new", "--type", "deleted")
    with LiveWatch(args, cli_env(TOKEN)) as watch:
        session = subscribed_session(server, watch)
        session.push(
            [
                {"type": "new", "key": "disk:/Photos/a.jpg"},
                {"type": "changed", "key": "/disk/Photos/b.jpg"},
                {"type": "new", "key": "/disk/Photos2/c.jpg"},
                {"type": "deleted", "key": "/disk/Docs"},
                {"type": "new", "key": "/disk/Other/d"},
            ]
        )
        session.push([{"type": "new", "key": "/disk/Music/e"}])
        session.push([{"type": "new", "key": "/disk/Docs/last"}])
        seen = [watch.json_line()["path"] for _ in range(3)]
        assert watch.stop() == 0
        assert watch.rest() == []
    assert seen == ["disk:/Photos/a.jpg", "/disk/Docs", "/disk/Docs/last"]


def test_text_mode_keeps_one_change_per_line_whatever_the_path(make_server):
    server = make_server()
    path = "/disk/two words/tab\there/new\nline/back\\slash/-"
    with LiveWatch(fast(server.client_options(), "-q"), cli_env(TOKEN)) as watch:
        session = subscribed_session(server, watch)
        session.push([{"type": "new", "key": path, "fid": "1", "note": "a b"}])
        session.push([{"type": "deleted", "key": "/disk/next"}])
        line = watch.next_line()
        following = watch.next_line()
        assert watch.stop() == 0
    from yaxmpp.cli.events import unescape

    fields = line.rstrip("\n").split(" ")
    assert len(fields) == 5, fields
    assert fields[1] == "new" and unescape(fields[2]) == path
    assert fields[2] == "/disk/two\\x20words/tab\\there/new\\nline/back\\\\slash/-"
    assert fields[3:] == ["fid=1", "note=a\\x20b"]
    assert following.rstrip("\n").split(" ")[1:] == ["deleted", "/disk/next"]


def test_json_schema_of_a_change(make_server):
    server = make_server()
    with LiveWatch(fast(server.client_options(), "--json", "-q"), cli_env(TOKEN)) as watch:
        session = subscribed_session(server, watch)
        session.push([{"type": "new", "key": "disk:/a", "fid": "9", "size": "10", "md5": "m"}], attrs={"uid": "77", "version": "3"})
        record = watch.json_line()
        assert watch.stop() == 0
    assert record.pop("received_at")
    assert record == {
        "event": "change",
        "type": "new",
        "path": "disk:/a",
        "disk_path": "/a",
        "fid": "9",
        "size": 10,
        "md5": "m",
        "op": {"type": "new", "key": "disk:/a", "fid": "9", "size": "10", "md5": "m"},
        "query": {"uid": "77", "version": "3"},
    }


# -- in-process --------------------------------------------------------------------------------


def test_run_watch_in_process_stops_cleanly_and_leaves_no_thread(make_server, control, monkeypatch):
    monkeypatch.setenv("YANDEX_DISK_TOKEN", TOKEN)
    server = make_server()
    control.auto = True
    args = watch_module.parse(fast(server.client_options(), "--exec", control.command())[1:])
    out, err = Lines(), Lines()
    runner = watch_module.Watcher(args, out, err)
    codes: List[int] = []
    thread = threading.Thread(target=lambda: codes.append(runner.run()), name="test-watch-main")
    try:
        thread.start()
        session = server.wait_for_session(timeout=WAIT)
        assert session.subscribed.wait(WAIT)
        session.push([{"type": "new", "key": "/disk/in-process"}])
        run = control.next_run()
        assert run.env["YAXMPP_PATH"] == "/disk/in-process"
        assert err.wait_for(lambda line: line.startswith("yaxmpp: connected as test@ya.ru/YaDisk-client-"))
    finally:
        runner.stop()
        thread.join(WAIT)
    assert codes == [0]
    assert out.lines == []
    assert session.client_closed.wait(WAIT)


# -- the first connection, and exit codes --------------------------------------------------------


def test_the_first_connection_is_retried_until_the_server_is_up():
    """Started before the network (here: the server) is up, the watch waits for it."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))  # bound, not listening: connects are refused
    port = holder.getsockname()[1]
    options = {"host": "127.0.0.1", "port": port, "tls_port": None, "cafile": CA_FILE}
    server: Optional[FakeServer] = None
    try:
        with LiveWatch(fast(options, "--json"), cli_env(TOKEN)) as watch:
            failed = watch.wait_err("connect failed:")
            assert "retrying in" in failed and "attempt 1" in failed
            holder.close()
            server = FakeServer(login=LOGIN, token=TOKEN, starttls_port=port, tls_port=None).start()
            session = server.wait_for_session(timeout=WAIT)
            assert session.subscribed.wait(WAIT)
            watch.wait_err("connected as")
            session.push([{"type": "new", "key": "/disk/late"}])
            assert watch.json_line()["path"] == "/disk/late"
            assert watch.stop() == 0, watch.stderr
    finally:
        holder.close()
        if server is not None:
            server.stop()


def test_max_attempts_0_exits_4_when_the_server_is_down():
    port = closed_port()
    options = {"host": "127.0.0.1", "port": port, "tls_port": None, "cafile": CA_FILE}
    code, out, err = run_cli(fast(options, "--max-attempts", "0", "-q"), cli_env(TOKEN))
    assert code == 4, err
    assert_one_line_error(err)
    assert ":%d " % port in err


def test_a_wrong_token_still_exits_3_at_once(make_server):
    server = make_server(token="the-server-wants-this-one")
    code, out, err = run_cli(fast(server.client_options(), "-q"), cli_env(TOKEN), timeout=WAIT)
    assert code == 3, err
    assert len(server.sessions) == 1  # not retried


def test_an_untrusted_certificate_still_exits_4_at_once(make_server, tmp_path):
    import trustme

    server = make_server()
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    options = dict(server.client_options(), cafile=str(other_ca), tls_port=None)
    code, out, err = run_cli(fast(options, "-q"), cli_env(TOKEN), timeout=WAIT)
    assert code == 4, err
    assert "certificate" in err
    assert len(server.sessions) == 1  # not retried


HTTP_ANSWER = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\nContent-Length: 11\r\n\r\nbad request"


class _Peer:
    """Answers whatever comes with ``answer`` (by default an HTTP error, like a web server on
    the wrong port)."""

    def __init__(self, answer: bytes = HTTP_ANSWER) -> None:
        self.answer = answer
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.settimeout(WAIT)
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self.closing = False
        self.thread = threading.Thread(target=self._serve, name="test-http-peer", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            if self.closing:
                conn.close()
                return
            self.accepted += 1
            with conn:
                conn.settimeout(WAIT)
                try:
                    conn.recv(4096)
                    conn.sendall(self.answer)
                    conn.recv(4096)
                except OSError:
                    pass

    def close(self) -> None:
        self.closing = True
        socket.create_connection(("127.0.0.1", self.port), timeout=WAIT).close()  # wakes accept()
        self.thread.join(WAIT)
        self.listener.close()


def test_an_http_server_is_not_an_xmpp_server_exit_4():
    peer = _Peer()
    try:
        options = {"host": "127.0.0.1", "port": peer.port, "tls_port": None, "cafile": CA_FILE}
        code, out, err = run_cli(fast(options, "-q"), cli_env(TOKEN), timeout=WAIT)
        assert code == 4, err
        assert_one_line_error(err)
        assert "not an XMPP server" in err and "HTTP/1.1 400 Bad Request" in err
        code, out, err = run_cli(fast(options, "-vv"), cli_env(TOKEN), timeout=WAIT)
        assert code == 4, err
        assert "RECV (the stream's first" in err and "HTTP/1.1 400" in err
        assert TOKEN not in err
    finally:
        peer.close()


@pytest.mark.parametrize("page", [b"<!DOCTYPE HTML>\n<html><body>Error</body></html>", b"<html><body>hi</body></html>"])
def test_a_bare_html_page_is_not_an_xmpp_server_exit_4(page):
    peer = _Peer(page)  # python -m http.server answers a bad request with a bare HTML page
    try:
        options = {"host": "127.0.0.1", "port": peer.port, "tls_port": None, "cafile": CA_FILE}
        code, out, err = run_cli(fast(options, "-q"), cli_env(TOKEN), timeout=WAIT)
        assert code == 4, err
        assert "not an XMPP server" in err
    finally:
        peer.close()


def test_not_xml_stream_tells_web_pages_from_xml():
    from yaxmpp.connection import not_xml_stream

    assert not_xml_stream(b"HTTP/1.1 200 OK") and not_xml_stream(b"SSH-2.0-OpenSSH")
    assert not_xml_stream(b"\r\n<!doctype html>") and not_xml_stream(b"<HTML>")
    assert not not_xml_stream(b"<?xml version='1.0'?><stream:stream") and not not_xml_stream(b"<stream:stream ")


def test_vv_shows_the_first_bytes_of_a_stream_whose_xml_is_malformed():
    header = b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='x1' from='ya.ru' version='1.0'>"
    peer = _Peer(header + b"<stream:features><a></b>")
    try:
        options = {"host": "127.0.0.1", "port": peer.port, "tls_port": None, "cafile": CA_FILE}
        code, out, err = run_cli(fast(options, "-vv"), cli_env(TOKEN), timeout=WAIT)
        assert code == 1, err  # an XMPP server that breaks XML: a protocol error, not "not XMPP"
        assert "malformed XML from server" in err and "not an XMPP server" not in err
        shown = [line for line in err.splitlines() if "RECV (the stream's first 64 bytes" in line]
        assert shown and "<?xml version=" in shown[0], err
        code, out, err = run_cli(fast(options), cli_env(TOKEN), timeout=WAIT)
        assert "RECV" not in err  # only with -vv
    finally:
        peer.close()


def test_friendlier_usage_errors_exit_2_on_one_line(tmp_path):
    port = closed_port()
    options = {"host": "127.0.0.1", "port": port, "tls_port": None, "cafile": CA_FILE}
    blank = tmp_path / "token"
    blank.write_text("\n  \n", encoding="utf-8")
    code, out, err = run_cli(fast(options, "--token-file", str(blank)), cli_env(TOKEN))
    assert code == 2 and str(blank) in err and "blank" in err, err
    assert_one_line_error(err)
    code, out, err = run_cli(fast(dict(options, port=None)), cli_env(TOKEN))
    assert code == 2 and "--port" in err and "--tls-port" in err, err
    assert_one_line_error(err)
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("hello\n", encoding="utf-8")
    code, out, err = run_cli(fast(dict(options, cafile=str(not_pem))), cli_env(TOKEN))
    assert code == 2 and "--cafile" in err and "not a PEM file" in err, err
    assert_one_line_error(err)
    args = fast(options)
    del args[args.index("--login") : args.index("--login") + 2]
    code, out, err = run_cli(args, cli_env(TOKEN))
    assert code == 2 and "--login" in err, err
    assert_one_line_error(err)


def test_both_token_sources_say_which_wins(make_server, tmp_path):
    server = make_server()
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN, encoding="utf-8")
    with LiveWatch(fast(server.client_options(), "--token-file", str(token_file)), cli_env("the-env-one-loses")) as watch:
        assert subscribed_session(server, watch).authenticated
        note = watch.wait_err("using the token from --token-file")
        assert str(token_file) in note and "YANDEX_DISK_TOKEN" in note and "ignored" in note
        assert watch.stop() == 0
    assert TOKEN not in watch.stderr and "the-env-one-loses" not in watch.stderr
