"""The ``yaxmpp`` command, run as a real subprocess against the loopback stand-in server.

Every child process gets the token through ``YANDEX_DISK_TOKEN`` or ``--token-file`` (never
on its command line), every wait is bounded, and every process is killed in a ``finally``.
"""

from __future__ import annotations

import base64
import calendar
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import pytest
import trustme

import yaxmpp
from yaxmpp.testing import CA_FILE, FakeServer

from .conftest import LOGIN, TOKEN, closed_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKEN_ENV = "YANDEX_DISK_TOKEN"
WAIT = 10.0  # the bound on any single wait for the child
HEX32 = re.compile(r"(?<![0-9a-fA-F])[0-9a-fA-F]{32}(?![0-9a-fA-F])")
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"

# -- running the command ----------------------------------------------------------------------


def cli_env(token: Optional[str] = None, **extra: str) -> Dict[str, str]:
    """The child's environment: this checkout first on the path, the token only if given."""
    env = dict(os.environ)
    env.pop(TOKEN_ENV, None)
    env.pop("PYTHONUNBUFFERED", None)  # the command must flush by itself
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONIOENCODING"] = "utf-8"
    # never the user's own stored credentials (`yaxmpp login`), which watch falls back to
    env["XDG_CONFIG_HOME"] = os.path.join(ROOT, "tests", "no-such-config-dir")
    if token is not None:
        env[TOKEN_ENV] = token
    env.update(extra)
    return env


def command(args: Sequence[str]) -> List[str]:
    return [sys.executable, "-m", "yaxmpp", *args]


def run_cli(args: Sequence[str], env: Dict[str, str], timeout: float = 20.0) -> Tuple[int, str, str]:
    """Run the command to its end; returns (exit code, stdout, stderr)."""
    proc = subprocess.Popen(
        command(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=WAIT)
    return proc.returncode, out.decode("utf-8"), err.decode("utf-8")


def watch_args(options: Dict[str, Any], *extra: str, login: str = LOGIN) -> List[str]:
    """``watch`` arguments pointing at a stand-in server (``options`` as from client_options())."""
    args = [
        "watch",
        "--login",
        login,
        "--host",
        options["host"],
        "--port",
        "none" if options["port"] is None else str(options["port"]),
        "--tls-port",
        "none" if options["tls_port"] is None else str(options["tls_port"]),
        "--domain",
        options.get("domain") or "ya.ru",
        "--timeout",
        "5",
    ]
    if options.get("cafile"):
        args += ["--cafile", options["cafile"]]
    return args + list(extra)


def assert_one_line_error(err: str) -> None:
    assert "Traceback" not in err, err
    assert err.endswith("\n"), err
    assert err.count("\n") == 1, "expected one line on stderr, got %r" % err
    assert err.startswith("yaxmpp: "), err


class Watch:
    """A running ``yaxmpp watch``: stdout lines are read by a thread as soon as they are printed.

    Use as a context manager: the process is killed on the way out if it is still running.
    """

    def __init__(self, args: Sequence[str], env: Dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            command(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT
        )
        self.lines: "queue.Queue[Optional[str]]" = queue.Queue()
        self._err = bytearray()
        self._threads = [
            threading.Thread(target=self._read_out, name="cli-test-stdout", daemon=True),
            threading.Thread(target=self._read_err, name="cli-test-stderr", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            self.lines.put(raw.decode("utf-8"))
        self.lines.put(None)

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for raw in iter(self.proc.stderr.readline, b""):
            self._err += raw

    def next_line(self, timeout: float = 5.0) -> str:
        """The next stdout line, which must arrive while the process is still running."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no line printed within %gs (not flushed?); stderr: %r" % (timeout, self.stderr)) from None
        assert line is not None, "stdout ended early; exit %r, stderr: %r" % (self.proc.poll(), self.stderr)
        assert self.proc.poll() is None, "the line was only seen after the process exited"
        return line

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """Send ``signum`` and wait (bounded) for the exit code."""
        assert self.proc.poll() is None, "exited before the signal: %r, stderr: %r" % (self.proc.returncode, self.stderr)
        self.proc.send_signal(signum)
        return self.wait()

    def wait(self) -> int:
        code = self.proc.wait(timeout=WAIT)
        for thread in self._threads:
            thread.join(WAIT)
        return code

    def rest(self) -> List[str]:
        """The lines still queued after the process ended."""
        lines = []
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                return lines
            if line is not None:
                lines.append(line)

    @property
    def stderr(self) -> str:
        return bytes(self._err).decode("utf-8", "replace")

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=WAIT)
        finally:
            for thread in self._threads:
                thread.join(WAIT)
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()


def subscribed_session(server: FakeServer, watch: Watch):
    """The server's side of the watcher's connection, once it has subscribed to pushes."""
    session = server.wait_for_session(timeout=WAIT)
    if not session.subscribed.wait(WAIT):
        raise AssertionError("the watcher never subscribed; exit %r, stderr: %r" % (watch.proc.poll(), watch.stderr))
    return session


def assert_recent(stamp: str) -> None:
    """``stamp`` is an ISO UTC time with milliseconds, within a minute of now."""
    assert re.fullmatch(STAMP, stamp), stamp
    seconds = calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
    assert abs(seconds - time.time()) < 60, (stamp, time.time())


# -- --version and demo ---------------------------------------------------------------------


def test_version_prints_the_version():
    code, out, err = run_cli(["--version"], cli_env())
    assert code == 0, err
    assert out.strip() == "yaxmpp %s" % yaxmpp.__version__
    assert "Traceback" not in err


def test_demo_tells_every_step_and_hides_the_token():
    code, out, err = run_cli(["demo"], cli_env())
    assert code == 0, err
    assert "Traceback" not in err
    for step in (
        "TLS established",
        "authenticated",
        "resource bound",
        "session open",
        "subscribed",
        "change 1: new /disk/Photos/cat.jpg",
        "change 2: changed disk:/Documents/notes.txt",
        "change 3: deleted /disk/old/report.pdf",
        "acknowledged 3 of 3",
    ):
        assert step in out, "%r missing from the demo output:\n%s" % (step, out)
    assert "change 4" not in out
    assert not HEX32.search(out + err), "a 32-hex-digit string (the demo token?) in the output:\n%s" % out


def test_demo_verbose_shows_xml_with_the_token_masked():
    code, out, err = run_cli(["demo", "-v"], cli_env())
    assert code == 0, err
    assert "SEND <auth " in out and 'mechanism="X-YANDEX-OAUTH">***</auth>' in out
    assert "acknowledged 3 of 3" in out
    assert not HEX32.search(out + err), "a 32-hex-digit string (the demo token?) in the output:\n%s" % out


# -- watch: output ------------------------------------------------------------------------------


def test_watch_prints_each_change_as_it_arrives_and_stops_cleanly_on_sigterm(make_server):
    server = make_server()
    with Watch(watch_args(server.client_options(), "-q"), cli_env(TOKEN)) as watch:
        session = subscribed_session(server, watch)
        first = session.push([{"key": "/disk/a.txt", "fid": "12", "size": "5", "type": "new"}])
        line = watch.next_line()  # seen while the process runs: flushed as printed
        match = re.fullmatch(r"(%s) new /disk/a\.txt size=5 fid=12\n" % STAMP, line)
        assert match, line
        assert_recent(match.group(1))
        second = session.push([{"key": "disk:/b", "type": "deleted", "resource_id": "42:disk:/b"}])
        line = watch.next_line()
        assert re.fullmatch(r"%s deleted disk:/b resource_id=42:disk:/b\n" % STAMP, line), line
        assert watch.stop(signal.SIGTERM) == 0, watch.stderr
        assert watch.rest() == []
        assert watch.stderr == ""
    assert session.client_closed.wait(WAIT), "the server never saw </stream:stream>"
    assert session.wait_reply(first).get("type") == "result"
    assert session.wait_reply(second).get("type") == "result"


def test_watch_json_prints_one_object_per_change(make_server):
    server = make_server()
    with Watch(watch_args(server.client_options(), "--json"), cli_env(TOKEN)) as watch:
        session = subscribed_session(server, watch)
        pushed = [
            session.push(
                [
                    {"type": "new", "key": "/disk/Фото/кот.jpg", "fid": "7", "size": "2048", "md5": "abc"},
                    {"type": "deleted", "key": "disk:/old", "fid": "8"},
                ]
            ),
            session.push([]),
        ]
        records = [json.loads(watch.next_line()) for _ in range(3)]
        assert watch.stop() == 0, watch.stderr
        assert watch.rest() == []
    assert set(records[0]) == {"event", "type", "path", "disk_path", "fid", "size", "received_at", "md5", "op", "query"}
    assert {k: v for k, v in records[0].items() if k != "received_at"} == {
        "event": "change",
        "type": "new",
        "path": "/disk/Фото/кот.jpg",
        "disk_path": "/Фото/кот.jpg",
        "fid": "7",
        "size": 2048,
        "md5": "abc",
        "op": {"type": "new", "key": "/disk/Фото/кот.jpg", "fid": "7", "size": "2048", "md5": "abc"},
        "query": {},
    }
    assert isinstance(records[0]["size"], int)
    assert_recent(records[0]["received_at"])
    assert {k: v for k, v in records[1].items() if k != "received_at"} == {
        "event": "change",
        "type": "deleted",
        "path": "disk:/old",
        "disk_path": "/old",
        "fid": "8",
        "size": None,
        "op": {"type": "deleted", "key": "disk:/old", "fid": "8"},
        "query": {},
    }
    assert records[1]["received_at"] == records[0]["received_at"]  # one push, one arrival time
    # A push without changes: one line with empty fields.
    assert {k: v for k, v in records[2].items() if k != "received_at"} == {
        "event": "change",
        "type": None,
        "path": None,
        "disk_path": None,
        "fid": None,
        "size": None,
        "op": {},
        "query": {},
    }
    assert_recent(records[2]["received_at"])
    assert session.client_closed.wait(WAIT)
    assert all(session.wait_reply(iq_id).get("type") == "result" for iq_id in pushed)


def test_watch_survives_the_reader_going_away(make_server):
    """``yaxmpp watch | head -1``: a closed stdout ends the command quietly with 0."""
    server = make_server()
    proc = subprocess.Popen(
        command(watch_args(server.client_options(), "-q")),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(TOKEN),
        cwd=ROOT,
    )
    try:
        session = server.wait_for_session(timeout=WAIT)
        assert session.subscribed.wait(WAIT)
        session.push([{"type": "new", "key": "/disk/one"}])
        assert proc.stdout is not None
        assert proc.stdout.readline().endswith(b" new /disk/one\n")
        proc.stdout.close()  # like `head -1` exiting
        for number in range(3):
            session.push([{"type": "new", "key": "/disk/more-%d" % number}])
        code = proc.wait(timeout=WAIT)
        err = proc.stderr.read().decode("utf-8") if proc.stderr is not None else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=WAIT)
        if proc.stderr is not None:
            proc.stderr.close()
    assert code == 0, err
    assert err == ""
    assert session.client_closed.wait(WAIT)


# -- watch: the token -----------------------------------------------------------------------------


def test_token_from_token_file(make_server, tmp_path):
    server = make_server()
    token_file = tmp_path / "token"
    token_file.write_text("  %s\n" % TOKEN, encoding="utf-8")
    args = watch_args(server.client_options(), "--token-file", str(token_file))
    with Watch(args, cli_env()) as watch:
        session = subscribed_session(server, watch)
        assert session.authenticated and session.login == LOGIN
        assert watch.stop() == 0, watch.stderr
    assert session.client_closed.wait(WAIT)


def test_token_file_wins_over_the_environment(make_server, tmp_path):
    server = make_server()
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN, encoding="utf-8")
    args = watch_args(server.client_options(), "--token-file", str(token_file))
    with Watch(args, cli_env("not-the-right-token")) as watch:
        session = subscribed_session(server, watch)
        assert watch.stop() == 0, watch.stderr
    assert session.authenticated


@pytest.mark.parametrize("env_token", [None, "", "   "], ids=["unset", "empty", "blank"])
def test_missing_token_is_a_usage_error(env_token):
    args = watch_args({"host": "127.0.0.1", "port": closed_port(), "tls_port": None})
    code, out, err = run_cli(args, cli_env(env_token))
    assert code == 2, err
    assert_one_line_error(err)
    assert TOKEN_ENV in err and "--token-file" in err
    assert out == ""


def test_unreadable_token_file_is_a_usage_error(tmp_path):
    args = watch_args({"host": "127.0.0.1", "port": closed_port(), "tls_port": None}, "--token-file", str(tmp_path / "nope"))
    code, out, err = run_cli(args, cli_env(TOKEN))  # the env token does not rescue a bad --token-file
    assert code == 2, err
    assert_one_line_error(err)
    assert "token file" in err
    assert out == ""


def test_token_file_that_is_not_utf8_is_a_usage_error(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_bytes(b"\xff\xfe\x00token-bytes")
    args = watch_args({"host": "127.0.0.1", "port": closed_port(), "tls_port": None}, "--token-file", str(token_file))
    code, out, err = run_cli(args, cli_env())
    assert_one_line_error(err)
    assert code == 2, err


def test_token_never_shown_even_with_vv(make_server):
    server = make_server()
    with Watch(watch_args(server.client_options(), "-vv"), cli_env(TOKEN)) as watch:
        session = subscribed_session(server, watch)
        session.push([{"type": "new", "key": "/disk/x", "fid": "1", "size": "1"}])
        watch.next_line()
        assert watch.stop() == 0, watch.stderr
        out, err = "".join(watch.rest()), watch.stderr
    payload = base64.b64encode(("%s\0%s" % (LOGIN, TOKEN)).encode()).decode()
    # -vv really logged the XML, the auth included...
    assert "SEND <auth " in err and ">***</auth>" in err, err
    assert "yaxmpp.xml DEBUG" in err
    # ...but never the token, in clear or in the SASL payload.
    for text in (out, err):
        assert TOKEN not in text
        assert payload not in text


def test_token_never_shown_on_auth_failure_with_vv(make_server):
    server = make_server(token="a-different-token-42")
    code, out, err = run_cli(watch_args(server.client_options(), "-vv"), cli_env(TOKEN))
    assert code == 3, err
    assert "authentication failed" in err and ">***</auth>" in err
    assert TOKEN not in out + err
    assert base64.b64encode(("%s\0%s" % (LOGIN, TOKEN)).encode()).decode() not in out + err


# -- watch: exit codes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, needle",
    [
        (["watch"], "--login"),
        (["watch", "--login", LOGIN, "--port", "70000"], "not a port number"),
        (["watch", "--login", LOGIN, "--tls-port", "https"], "not a port number"),
        (["watch", "--login", LOGIN, "--no-such-option"], "--no-such-option"),
        ([], "watch"),
    ],
    ids=["missing-login", "port-out-of-range", "tls-port-not-a-number", "unknown-option", "no-command"],
)
def test_usage_errors_exit_2(args, needle):
    code, out, err = run_cli(args, cli_env(TOKEN))
    assert code == 2, err
    assert needle in err
    assert "Traceback" not in err
    assert out == ""


def test_invalid_option_values_exit_2_on_one_line():
    options = {"host": "127.0.0.1", "port": None, "tls_port": None}
    code, out, err = run_cli(watch_args(options), cli_env(TOKEN))  # both ports 'none'
    assert code == 2, err
    assert_one_line_error(err)
    args = watch_args({"host": "127.0.0.1", "port": closed_port(), "tls_port": None})
    args[args.index("--timeout") + 1] = "-1"
    code, out, err = run_cli(args, cli_env(TOKEN))
    assert code == 2, err
    assert_one_line_error(err)


def test_wrong_token_exits_3(make_server):
    server = make_server(token="the-server-wants-this-one")
    code, out, err = run_cli(watch_args(server.client_options()), cli_env(TOKEN))
    assert code == 3, err
    assert_one_line_error(err)
    assert "authentication failed" in err and "not-authorized" in err
    assert TOKEN not in err
    assert out == ""
    assert server.wait_for_session().authenticated is False


def test_both_ports_refused_exits_4():
    port, tls_port = closed_port(), closed_port()
    options = {"host": "127.0.0.1", "port": port, "tls_port": tls_port, "cafile": CA_FILE}
    code, out, err = run_cli(watch_args(options, "--max-attempts", "0", "-q"), cli_env(TOKEN))  # no retry
    assert code == 4, err
    assert_one_line_error(err)
    assert ":%d " % port in err and ":%d " % tls_port in err, err
    assert out == ""


def test_untrusted_certificate_exits_4(make_server, tmp_path):
    server = make_server()
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    options = dict(server.client_options(), cafile=str(other_ca))
    code, out, err = run_cli(watch_args(options), cli_env(TOKEN))
    assert code == 4, err
    assert_one_line_error(err)
    assert "certificate" in err
    assert out == ""
    assert all(not session.authenticated for session in server.sessions)


def test_missing_cafile_is_reported_on_one_line(tmp_path):
    options = {"host": "127.0.0.1", "port": closed_port(), "tls_port": None, "cafile": str(tmp_path / "missing.pem")}
    code, out, err = run_cli(watch_args(options), cli_env(TOKEN))
    assert_one_line_error(err)
    assert code == 2, err  # a cafile that does not exist is a usage error, found before any connect
    assert "missing.pem" in err


def test_tls_port_none_disables_the_fallback():
    port = closed_port()
    options = {"host": "127.0.0.1", "port": port, "tls_port": None, "cafile": CA_FILE}
    code, out, err = run_cli(watch_args(options, "--max-attempts", "0", "-q"), cli_env(TOKEN))  # no retry
    assert code == 4, err
    assert_one_line_error(err)
    assert ":%d " % port in err
    assert not re.search(r":443(?!\d)", err), "the default direct-TLS port was tried: %r" % err


def test_refused_starttls_port_falls_back_to_direct_tls(make_server):
    server = make_server()
    options = dict(server.client_options(), port=closed_port())
    with Watch(watch_args(options), cli_env(TOKEN)) as watch:
        session = subscribed_session(server, watch)
        assert session.direct_tls
        assert watch.stop() == 0, watch.stderr
    assert session.client_closed.wait(WAIT)


def test_ctrl_c_exits_0(make_server):
    server = make_server()
    with Watch(watch_args(server.client_options(), "-q"), cli_env(TOKEN)) as watch:
        session = subscribed_session(server, watch)
        pushed = session.push([{"type": "new", "key": "/disk/c"}])
        assert watch.next_line().endswith(" new /disk/c\n")
        assert watch.stop(signal.SIGINT) == 0, watch.stderr
        assert "Traceback" not in watch.stderr and "KeyboardInterrupt" not in watch.stderr
        assert watch.stderr == ""
    assert session.client_closed.wait(WAIT)
    assert session.wait_reply(pushed).get("type") == "result"


def test_sigterm_while_connecting_exits_0_promptly():
    """The server accepted but never speaks: SIGTERM ends connect() without waiting it out."""
    listener = socket.socket()
    conn = None
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(WAIT)
        options = {"host": "127.0.0.1", "port": listener.getsockname()[1], "tls_port": None, "cafile": CA_FILE}
        args = watch_args(options)
        args[args.index("--timeout") + 1] = "30"
        with Watch(args, cli_env(TOKEN)) as watch:
            conn, _ = listener.accept()
            conn.settimeout(WAIT)
            assert conn.recv(1024).startswith(b"<?xml")  # the client is inside connect() now
            started = time.monotonic()
            assert watch.stop(signal.SIGTERM) == 0, watch.stderr
            assert time.monotonic() - started < 5
            assert watch.stderr == ""
    finally:
        if conn is not None:
            conn.close()
        listener.close()


@pytest.mark.parametrize("how", ["close-stream", "drop"])
def test_watch_reconnects_when_the_server_ends_the_session(make_server, how):
    server = make_server()
    with Watch(watch_args(server.client_options()), cli_env(TOKEN)) as watch:
        first = subscribed_session(server, watch)
        if how == "drop":
            first.drop()
        else:
            first.close_stream()
        second = server.wait_for_session(index=1, timeout=10)
        assert second.subscribed.wait(10), "watch did not subscribe again after reconnecting"
        second.push([{"type": "new", "key": "/disk/after-reconnect"}])
        line = watch.next_line()
        if "/disk/after-reconnect" not in line:  # the resync item of the reconnect came first
            assert " resync " in line, line
            line = watch.next_line()
        assert "/disk/after-reconnect" in line
        assert watch.stop() == 0, watch.stderr
        status = [s for s in watch.stderr.splitlines() if "reconnecting in" not in s and "failed:" not in s]
    # Status lines, not errors: connected, lost (with the reason), reconnected.
    assert status[0].startswith("yaxmpp: connected as test@ya.ru/YaDisk-client-"), status
    assert status[1].startswith("yaxmpp: connection lost: "), status
    assert status[-1].startswith("yaxmpp: reconnected as test@ya.ru/YaDisk-client-"), status


def test_fatal_stream_error_is_one_line_on_stderr(make_server):
    server = make_server()
    with Watch(watch_args(server.client_options(), "-q"), cli_env(TOKEN)) as watch:
        session = subscribed_session(server, watch)
        session.send(
            "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>"
        )
        assert watch.wait() == 1, watch.stderr
        err = watch.stderr
    assert_one_line_error(err)
    assert "conflict" in err


def test_unencodable_output_is_not_a_usage_error(make_server):
    server = make_server()
    env = cli_env(TOKEN, PYTHONIOENCODING="ascii")
    with Watch(watch_args(server.client_options(), "-q"), env) as watch:
        session = subscribed_session(server, watch)
        session.push([{"type": "new", "key": "/disk/Фото.jpg"}])
        try:
            code = watch.wait()  # it must end by itself: a watcher that hangs here fails the test
        except subprocess.TimeoutExpired:
            raise AssertionError("the watcher hung on an unencodable line; stderr: %r" % watch.stderr) from None
        err = watch.stderr
    assert code == 1, err  # a runtime error, not a usage error (2) nor a success (0)
    assert_one_line_error(err)
    assert "cannot write a change to the output" in err
