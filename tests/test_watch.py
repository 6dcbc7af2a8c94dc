"""``yaxmpp watch``'s parts, without a server: the event records (JSON schema), text lines and
their escaping, the filters, the account and option checks, the status lines, and ``--exec``
/ ``--batch`` (real commands, reporting to a control socket; no sleeps)."""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from typing import Any, Dict, List, Optional

import pytest

import yaxmpp
from yaxmpp.cli import common, events, execute, watch
from yaxmpp.protocol.disk import Notification
from yaxmpp.testing import CA_FILE
from yaxmpp.testing.server import query_xml

from xml.etree.ElementTree import fromstring

from .conftest import LOGIN, TOKEN
from .watch_helpers import Control

# -- records ---------------------------------------------------------------------------------


def notification(changes: List[Dict[str, str]], attrs: Optional[Dict[str, str]] = None, at: float = 1764630600.25) -> Notification:
    return Notification(fromstring(query_xml(changes, attrs)), at, "push_1", "ya.ru")


def test_change_record_has_every_key_of_the_schema():
    item = notification(
        [{"type": "new", "key": "disk:/Фото/кот.jpg", "fid": "7", "size": "2048", "md5": "abc", "resource_id": "1:x"}],
        {"uid": "42", "version": "9"},
    )
    (record,) = events.change_records(item)
    assert record == {
        "event": "change",
        "type": "new",
        "path": "disk:/Фото/кот.jpg",
        "disk_path": "/Фото/кот.jpg",
        "fid": "7",
        "size": 2048,
        "received_at": "2025-12-01T23:10:00.250Z",
        "md5": "abc",
        "resource_id": "1:x",
        "op": {"type": "new", "key": "disk:/Фото/кот.jpg", "fid": "7", "size": "2048", "md5": "abc", "resource_id": "1:x"},
        "query": {"uid": "42", "version": "9"},
    }
    assert json.loads(json.dumps(record)) == record


def test_op_attributes_named_like_the_records_own_keys_stay_under_op():
    (record,) = events.change_records(
        notification([{"type": "new", "key": "/disk/a", "event": "evil", "query": "q", "disk_path": "/x", "path": "p"}])
    )
    assert record["event"] == "change" and record["disk_path"] == "/a" and record["path"] == "/disk/a"
    assert record["query"] == {}
    assert record["op"]["event"] == "evil" and record["op"]["path"] == "p" and record["op"]["query"] == "q"


def test_a_push_without_changes_is_one_record_with_empty_fields():
    (record,) = events.change_records(notification([], {"uid": "1"}))
    assert record["event"] == "change" and record["query"] == {"uid": "1"} and record["op"] == {}
    assert all(record[k] is None for k in ("type", "path", "disk_path", "fid", "size"))


def test_resync_record_with_and_without_the_revision_check():
    resync = yaxmpp.Resync(100.5, 102.25, "connection lost: reset by peer", revision_changed=True, revision=8, previous_revision=7)
    assert events.resync_record(resync) == {"event": "resync", "since": 100.5, "until": 102.25, "reason": "connection lost: reset by peer"}
    assert events.resync_record(resync, check_revision=True) == {
        "event": "resync",
        "since": 100.5,
        "until": 102.25,
        "reason": "connection lost: reset by peer",
        "revision_changed": True,
        "revision": 8,
        "previous_revision": 7,
    }
    (event,) = events.events_of(resync, check_revision=False)
    assert event.record["event"] == "resync" and event.at == 102.25
    unknown = events.resync_record(yaxmpp.Resync(1.0, 2.0, "x"), check_revision=True)
    assert unknown["revision_changed"] is None
    assert isinstance(unknown["since"], float) and isinstance(unknown["until"], float)


# -- text lines --------------------------------------------------------------------------------

AWKWARD = [
    "plain",
    "two words",
    "tab\there",
    "line\nbreak",
    "cr\rlf\r\n",
    "back\\slash",
    "\\x41 looks escaped",
    "-",
    "",
    "nbsp\u00a0and\u2028ls\u2029ps\x85nel",
    "ctl\x01\x1b[31m\x7fdel",
    "кот = 🐈",
]


@pytest.mark.parametrize("text", AWKWARD)
def test_escape_makes_one_field_and_unescape_gives_it_back(text):
    field = events.escape(text)
    assert field and len(field.split()) == 1 and field.split(" ") == [field]
    assert len(field.splitlines()) == 1
    assert all(c.isprintable() and not c.isspace() for c in field), field
    assert events.unescape(field) == text


def test_escape_is_what_the_readme_says():
    assert events.escape("a b\tc\nd\\e\x01") == "a\\x20b\\tc\\nd\\\\e\\x01"
    assert events.escape("\u2028") == "\\u2028"
    assert events.escape("-") == "\\x2d" and events.escape("") == "-"
    assert events.unescape("-") == ""


def test_text_line_of_a_change_with_awkward_paths_splits_into_its_fields():
    path = "/disk/a b/c\td\ne=f\\g"
    (record,) = events.change_records(notification([{"type": "new", "key": path, "fid": "1 2", "size": "3", "note": "x y"}]))
    line = events.text_line(record)
    assert "\n" not in line
    fields = line.split(" ")
    assert fields[0] == "2025-12-01T23:10:00.250Z"
    assert fields[1] == "new"
    assert events.unescape(fields[2]) == path
    assert fields[3:] == ["size=3", "fid=1\\x202", "note=x\\x20y"]
    assert events.unescape(fields[5].split("=", 1)[1]) == "x y"


def test_text_line_of_a_resync():
    line = events.text_line(events.resync_record(yaxmpp.Resync(1764630600.0, 1764630601.5, "lost: the server closed the stream")))
    assert line == "2025-12-01T23:10:01.500Z resync - since=2025-12-01T23:10:00.000Z reason=lost:\\x20the\\x20server\\x20closed\\x20the\\x20stream"
    checked = events.resync_record(yaxmpp.Resync(1.0, 2.0, "r", revision_changed=None), check_revision=True)
    assert events.text_line(checked).endswith(" reason=r revision_changed=unknown")
    checked["revision_changed"] = False
    assert events.text_line(checked).endswith(" revision_changed=false")


# -- filters ---------------------------------------------------------------------------------


def records(*keys: str, type: str = "new") -> List[Dict[str, Any]]:
    return [events.change_records(notification([{"type": type, "key": key}]))[0] for key in keys]


@pytest.mark.parametrize("prefix", ["/Photos", "/disk/Photos", "disk:/Photos", "disk:/Photos/", "Photos"])
def test_path_prefix_matches_whatever_key_form(prefix):
    selection = events.Filter([prefix])
    inside = records("/disk/Photos", "disk:/Photos/cat.jpg", "/disk/Photos/2025/a b.jpg")
    outside = records("/disk/Photos2/x", "disk:/Docs/Photos", "/disk/photos/x", "/other/Photos")
    assert all(selection.passes(r) for r in inside)
    assert not any(selection.passes(r) for r in outside)


def test_paths_and_types_combine_and_resync_always_passes():
    selection = events.Filter(["/A", "/B"], ["new", "deleted"])
    assert selection.passes(records("/disk/A/x", type="new")[0])
    assert selection.passes(records("disk:/B", type="deleted")[0])
    assert not selection.passes(records("/disk/A/x", type="changed")[0])
    assert not selection.passes(records("/disk/C/x", type="new")[0])
    assert not selection.passes(events.change_records(notification([]))[0])  # no type, no path
    assert selection.passes(events.resync_record(yaxmpp.Resync(1.0, 2.0, "x")))
    assert events.Filter(["/"]).passes(records("/disk/anything")[0])
    assert not events.Filter().active and events.Filter(types=["new"]).active


# -- the account and the options ----------------------------------------------------------------


def args_for(*argv: str) -> argparse.Namespace:
    return watch.parse(["--host", "127.0.0.1", *argv])


@pytest.fixture
def no_env_token(monkeypatch):
    monkeypatch.delenv(common.TOKEN_ENV, raising=False)


def error_of(args: argparse.Namespace) -> common.CommandError:
    with pytest.raises(common.CommandError) as info:
        common.resolve_account(args)
    return info.value


def test_resolve_account_from_the_file_and_from_the_environment(tmp_path, monkeypatch, no_env_token):
    token_file = tmp_path / "token"
    token_file.write_text("\ufeff  %s\n" % TOKEN, encoding="utf-8")
    assert common.resolve_account(args_for("--login", LOGIN, "--token-file", str(token_file))) == (LOGIN, TOKEN)
    monkeypatch.setenv(common.TOKEN_ENV, " %s " % TOKEN)
    assert common.resolve_account(args_for("--login", LOGIN)) == (LOGIN, TOKEN)


def test_the_token_file_wins_and_the_note_says_so(tmp_path, monkeypatch):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN, encoding="utf-8")
    monkeypatch.setenv(common.TOKEN_ENV, "another-token-from-the-env")
    args = args_for("--login", LOGIN, "--token-file", str(token_file))
    assert common.resolve_account(args) == (LOGIN, TOKEN)
    note = common.token_source_note(args)
    assert note is not None and str(token_file) in note and common.TOKEN_ENV in note and "ignored" in note
    assert TOKEN not in note
    monkeypatch.delenv(common.TOKEN_ENV)
    assert common.token_source_note(args) is None


def test_token_file_errors_name_the_file(tmp_path, no_env_token):
    missing = tmp_path / "no-such-token"
    error = error_of(args_for("--login", LOGIN, "--token-file", str(missing)))
    assert error.code == 2 and str(missing) in error.message and "No such file" in error.message
    blank = tmp_path / "blank"
    blank.write_text(" \n\t\n", encoding="utf-8")
    error = error_of(args_for("--login", LOGIN, "--token-file", str(blank)))
    assert error.code == 2 and str(blank) in error.message and "blank" in error.message
    assert "use --token-file" not in error.message
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00abc")
    error = error_of(args_for("--login", LOGIN, "--token-file", str(binary)))
    assert str(binary) in error.message and "not UTF-8" in error.message
    two = tmp_path / "two"
    two.write_text("%s\nsomething else\n" % TOKEN, encoding="utf-8")
    error = error_of(args_for("--login", LOGIN, "--token-file", str(two)))
    assert str(two) in error.message and TOKEN not in error.message
    error = error_of(args_for("--login", LOGIN, "--token-file", str(tmp_path)))
    assert str(tmp_path) in error.message and "directory" in error.message.lower()


def test_no_token_and_no_login(monkeypatch, no_env_token):
    error = error_of(args_for("--login", LOGIN))
    assert "--token-file" in error.message and common.TOKEN_ENV in error.message
    monkeypatch.setenv(common.TOKEN_ENV, "   ")
    error = error_of(args_for("--login", LOGIN))
    assert "blank" in error.message and common.TOKEN_ENV in error.message
    monkeypatch.setenv(common.TOKEN_ENV, TOKEN)
    error = error_of(args_for())
    assert error.code == 2 and "--login" in error.message


def test_both_ports_none_names_the_flags():
    with pytest.raises(common.CommandError) as info:
        common.client_options(args_for("--port", "none", "--tls-port", "none"))
    assert "--port" in info.value.message and "--tls-port" in info.value.message
    assert "tls_port" not in info.value.message and "None" not in info.value.message


def test_a_ca_file_that_is_not_pem_says_so(tmp_path):
    bad = tmp_path / "ca.txt"
    bad.write_text("this is not a certificate\n", encoding="utf-8")
    with pytest.raises(common.CommandError) as info:
        common.client_options(args_for("--cafile", str(bad)))
    assert info.value.code == 2
    assert info.value.message.startswith("--cafile ") and str(bad) in info.value.message and "not a PEM file" in info.value.message
    assert common.client_options(args_for("--cafile", CA_FILE))["cafile"] == CA_FILE


def test_timeouts_are_checked_with_the_flags_names():
    for flag in ("--timeout", "--close-timeout"):
        with pytest.raises(common.CommandError) as info:
            common.client_options(args_for(flag, "-1"))
        assert flag in info.value.message


def test_watch_uses_a_resource_of_its_own_unless_given():
    first, second = watch.unique_resource(), watch.unique_resource()
    assert first != second and first.startswith("YaDisk-client-") and second.startswith("YaDisk-client-")
    assert common.client_options(args_for(), resource=first)["resource"] == first
    assert common.client_options(args_for("--resource", "mine"), resource=first)["resource"] == "mine"
    assert common.client_options(args_for("--resource", ""), resource=first)["resource"] is None
    assert common.client_options(args_for())["resource"] == "YaDisk-client"  # other commands: the library's


def test_exec_and_batch_usage_errors(monkeypatch):
    monkeypatch.setenv(common.TOKEN_ENV, TOKEN)
    err = _Sink()
    assert watch.run_watch(args_for("--login", LOGIN, "--batch", "1"), _Sink(), err) == 2
    assert "--batch needs --exec" in err.text
    err = _Sink()
    assert watch.run_watch(args_for("--login", LOGIN, "--exec", "no-such-program-anywhere --x"), _Sink(), err) == 2
    assert "command not found: no-such-program-anywhere" in err.text
    err = _Sink()
    assert watch.run_watch(args_for("--login", LOGIN, "--exec", "'unbalanced"), _Sink(), err) == 2
    assert "--exec" in err.text
    with pytest.raises(SystemExit):
        watch.parse(["--batch", "0"])


class _Sink:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass


# -- status lines ------------------------------------------------------------------------------


class _FakeClient:
    def __init__(self, jid: Optional[str]) -> None:
        self.jid = jid
        self.host = "push.example"
        self.port = 5222 if jid else None
        self.options = yaxmpp.Options(LOGIN, TOKEN, resource="YaDisk-client-1234")


def test_status_lines_tell_the_connections_life():
    lines: List[str] = []
    status = watch.Status(lines.append)
    status.on_connect(_FakeClient("test@ya.ru/YaDisk-client-1234"))
    lost = yaxmpp.ConnectionLost("connection lost: Connection reset by peer")
    status.on_disconnect(lost)
    status.on_retry(lost, 1, 0.73)
    refused = yaxmpp.ConnectError("cannot connect to push.example:5222 Connection refused", "push.example", 5222)
    status.on_retry(refused, 2, 1.5)
    status.on_connect(_FakeClient(None))  # lost again before the callback ran: no JID to show
    status.on_disconnect(None)  # closed by the watch itself: no line
    assert lines == [
        "connected as test@ya.ru/YaDisk-client-1234 (push.example port 5222)",
        "connection lost: connection lost: Connection reset by peer",
        "reconnecting in 0.7s (attempt 1)",
        "reconnect failed: cannot connect to push.example:5222 Connection refused; retrying in 1.5s (attempt 2)",
        "reconnected as test@ya.ru/YaDisk-client-1234",
    ]
    first = watch.Status(lines.append)
    first.on_retry(refused, 1, 2.0)
    assert lines[-1] == "connect failed: cannot connect to push.example:5222 Connection refused; retrying in 2.0s (attempt 1)"


# -- --exec and --batch -----------------------------------------------------------------------


class Reports:
    """What the executor reports on stderr, with a way to wait for a report."""

    def __init__(self) -> None:
        self.lines: List[str] = []
        self.cond = threading.Condition()

    def __call__(self, line: str) -> None:
        with self.cond:
            self.lines.append(line)
            self.cond.notify_all()

    def wait_for(self, needle: str, timeout: float = 10.0) -> str:
        with self.cond:
            if not self.cond.wait_for(lambda: any(needle in line for line in self.lines), timeout):
                raise AssertionError("no report with %r within %gs: %r" % (needle, timeout, self.lines))
            return next(line for line in self.lines if needle in line)


def change_event(key: str, type: str = "new", size: Optional[str] = "5") -> events.Event:
    op = {"type": type, "key": key, "fid": "11"}
    if size is not None:
        op["size"] = size
    return events.events_of(notification([op], at=time.time()))[0]


@pytest.fixture
def control(tmp_path):
    made = Control(tmp_path)
    yield made
    made.close()


def executor(control: Control, reports: Reports, **kwargs: Any) -> execute.Executor:
    return execute.Executor(execute.parse_command(control.command("--flag", "a b")), reports, **kwargs)


def test_exec_runs_once_per_event_in_order_with_json_and_environment(control, monkeypatch):
    monkeypatch.setenv(common.TOKEN_ENV, TOKEN)
    monkeypatch.setenv("YAXMPP_STALE", "from the parent")
    reports = Reports()
    runner = executor(control, reports, timeout=10.0)
    try:
        runner.submit(change_event("/disk/first file.txt"))
        runner.submit(change_event("disk:/second", type="deleted", size=None))
        runner.submit(events.events_of(yaxmpp.Resync(10.0, 12.5, "connection lost"))[0])
        first = control.next_run()
        assert runner.pending == 2  # one at a time: the others wait for this run
        first.finish(0)
        second = control.next_run()
        second.finish(0)
        third = control.next_run()
        third.finish(0)
    finally:
        assert runner.close() == 0
    assert first.argv == ["--flag", "a b"]  # split like a shell: the quoted words stay one
    (record,) = first.records
    assert record["event"] == "change" and record["path"] == "/disk/first file.txt" and record["size"] == 5
    assert first.env == {
        "YAXMPP_EVENT": "change",
        "YAXMPP_TYPE": "new",
        "YAXMPP_PATH": "/disk/first file.txt",
        "YAXMPP_DISK_PATH": "/first file.txt",
        "YAXMPP_FID": "11",
        "YAXMPP_SIZE": "5",
    }
    assert second.env == {
        "YAXMPP_EVENT": "change",
        "YAXMPP_TYPE": "deleted",
        "YAXMPP_PATH": "disk:/second",
        "YAXMPP_DISK_PATH": "/second",
        "YAXMPP_FID": "11",
    }
    assert third.env["YAXMPP_EVENT"] == "resync" and third.env["YAXMPP_REASON"] == "connection lost"
    assert third.records == [{"event": "resync", "since": 10.0, "until": 12.5, "reason": "connection lost"}]
    assert not (first.token_env or second.token_env or third.token_env), "the command inherited the token"
    assert reports.lines == []
    assert runner.runs == 3 and runner.failures == 0


def test_a_failing_command_is_reported_and_the_next_event_still_runs(control):
    reports = Reports()
    runner = executor(control, reports, timeout=10.0)
    try:
        runner.submit(change_event("/disk/fails"))
        runner.submit(change_event("/disk/next"))
        control.next_run().finish(3)
        assert "exited with status 3 (change new /disk/fails)" in reports.wait_for("status 3")
        nxt = control.next_run()
        nxt.finish(0)
        assert nxt.records[0]["path"] == "/disk/next"
    finally:
        runner.close()
    assert runner.failures == 1


def test_a_hung_command_is_killed_after_the_timeout_and_the_watch_goes_on(control):
    reports = Reports()
    runner = executor(control, reports, timeout=1.0)
    try:
        runner.submit(change_event("/disk/hangs"))
        runner.submit(change_event("/disk/after"))
        hung = control.next_run()  # never answered: the command hangs
        started = time.monotonic()
        line = reports.wait_for("killed")
        assert time.monotonic() - started < 1.0 + 5.0
        assert "--exec-timeout 1s" in line and "/disk/hangs" in line
        after = control.next_run()
        after.finish(0)
        assert after.records[0]["path"] == "/disk/after"
        hung.finish(0)
    finally:
        runner.close()


def test_batch_runs_once_per_quiet_period_with_every_event(control):
    reports = Reports()
    runner = executor(control, reports, timeout=10.0, batch=0.3)
    try:
        for number in range(50):
            runner.submit(change_event("/disk/burst-%d" % number))
        run = control.next_run()
        run.finish(0)
        assert run.env["YAXMPP_EVENT"] == "batch"
        counted = int(run.env["YAXMPP_COUNT"])
        paths = [r["path"] for r in run.records]
        while len(paths) < 50:  # a slow machine may split the burst; never lose or reorder
            more = control.next_run()
            more.finish(0)
            counted += int(more.env["YAXMPP_COUNT"])
            paths += [r["path"] for r in more.records]
    finally:
        runner.close()
    assert paths == ["/disk/burst-%d" % n for n in range(50)]
    assert counted == 50


def test_events_beyond_the_backlog_fold_into_one_resync(control):
    reports = Reports()
    runner = executor(control, reports, timeout=10.0, max_backlog=3)
    try:
        runner.submit(change_event("/disk/0"))
        busy = control.next_run()  # the command is busy with /disk/0; the rest must wait
        for number in range(1, 8):
            runner.submit(change_event("/disk/%d" % number))
        assert "events dropped" in reports.wait_for("slower than the changes")
        assert runner.pending <= 3
        busy.finish(0)
        runs = []
        while True:
            run = control.next_run()
            run.finish(0)
            runs.append(run.records[0])
            if run.records[0].get("path") == "/disk/7":
                break
    finally:
        runner.close()
    kinds = [r["event"] for r in runs]
    assert "resync" in kinds, runs
    resync = runs[kinds.index("resync")]
    assert "dropped" in resync["reason"] and resync["since"] <= resync["until"]
    assert "overflow" not in resync
    dropped = int(resync["reason"].split(": ")[1].split()[0])
    assert dropped + (len(runs) - 1) == 7  # every event is either run or counted as dropped


def test_close_drops_what_is_left_and_kills_a_running_command(control):
    reports = Reports()
    runner = executor(control, reports, timeout=None)
    runner.submit(change_event("/disk/a"))
    runner.submit(change_event("/disk/b"))
    control.next_run()  # hangs, no timeout
    started = time.monotonic()
    assert runner.close(timeout=0.5) == 1
    assert time.monotonic() - started < 0.5 + 6.0
    assert not any(t.name == "yaxmpp-exec" and t.is_alive() for t in threading.enumerate())


def test_parse_command_checks_the_program():
    assert execute.parse_command("sh -c 'echo \"$YAXMPP_PATH\"'") == ["sh", "-c", 'echo "$YAXMPP_PATH"']
    with pytest.raises(common.CommandError, match="not an executable file"):
        execute.parse_command("%s" % os.path.abspath(__file__))
    with pytest.raises(common.CommandError, match="empty"):
        execute.parse_command("   ")


# -- the watch loop in-process, against a stub client ---------------------------------------------


class _StubReconnect:
    """Records what watch asks of yaxmpp.Reconnect (``on_retry`` among it)."""

    def __init__(self, *, on_retry: Any = None, **policy: Any) -> None:
        self.on_retry = on_retry
        self.policy = policy


class _StubClient:
    """Records what watch asks of yaxmpp.Client (check_revision, api_url, connect(retry=...))
    and plays a scripted notification stream."""

    made: List["_StubClient"] = []
    items: List[Any] = []

    def __init__(self, login: str, token: str, *, check_revision: bool = False, api_url: Optional[str] = None, **options: Any) -> None:
        self.login, self.token, self.options = login, token, options
        self.check_revision, self.api_url = check_revision, api_url
        self.on_retry = getattr(options["reconnect"], "on_retry", None)
        self.connected_with: Optional[Dict[str, Any]] = None
        self.closed = False
        _StubClient.made.append(self)

    def connect(self, timeout: Optional[float] = None, *, retry: bool = False) -> "_StubClient":
        self.connected_with = {"timeout": timeout, "retry": retry}
        if self.on_retry is not None:
            self.on_retry(yaxmpp.ConnectError("cannot connect to h:1 Connection refused", "h", 1), 1, 0.25)
        return self

    def notifications(self) -> Any:
        return iter(list(_StubClient.items))

    def close(self, timeout: Optional[float] = None) -> None:
        self.closed = True


@pytest.fixture
def stub_client(monkeypatch):
    monkeypatch.setattr(yaxmpp, "Client", _StubClient)
    monkeypatch.setattr(yaxmpp, "Reconnect", _StubReconnect)
    monkeypatch.setenv(common.TOKEN_ENV, TOKEN)
    _StubClient.made = []
    yield _StubClient


def test_watch_prints_resync_items_in_order_and_asks_for_the_library_features(stub_client):
    stub_client.items = [
        notification([{"type": "new", "key": "/disk/a"}]),
        yaxmpp.Resync(1764630600.0, 1764630605.0, "connection lost: reset", revision_changed=True, revision=9, previous_revision=8),
        notification([{"type": "deleted", "key": "/disk/b"}, {"type": "new", "key": "/disk/skipped"}]),
    ]
    out, err = _Sink(), _Sink()
    code = watch.run_watch(
        args_for("--login", LOGIN, "--json", "--check-revision", "--api-url", "https://api.example", "--type", "deleted"), out, err
    )
    assert code == 0, err.text
    (client,) = stub_client.made
    assert client.check_revision is True and client.api_url == "https://api.example"
    assert client.connected_with == {"timeout": None, "retry": True}
    assert client.options["resource"].startswith("YaDisk-client-") and client.options["reconnect"] is not None
    assert client.closed
    assert err.text == "yaxmpp: connect failed: cannot connect to h:1 Connection refused; retrying in 0.2s (attempt 1)\n"
    lines = [json.loads(line) for line in out.text.splitlines()]
    assert [r["event"] for r in lines] == ["resync", "change"]  # the filter keeps resyncs
    assert lines[0] == {
        "event": "resync",
        "since": 1764630600.0,
        "until": 1764630605.0,
        "reason": "connection lost: reset",
        "revision_changed": True,
        "revision": 9,
        "previous_revision": 8,
    }
    assert lines[1]["path"] == "/disk/b"


def test_watch_text_mode_prints_resync_lines_and_quiet_asks_for_no_callbacks(stub_client):
    stub_client.items = [yaxmpp.Resync(1764630600.0, 1764630605.0, "lost")]
    out, err = _Sink(), _Sink()
    assert watch.run_watch(args_for("--login", LOGIN, "-q"), out, err) == 0
    assert out.text == "2025-12-01T23:10:05.000Z resync - since=2025-12-01T23:10:00.000Z reason=lost\n"
    assert err.text == ""
    (client,) = stub_client.made
    assert client.on_retry is None and "on_connect" not in client.options and client.check_revision is False


def test_no_variable_holding_the_token_reaches_the_command(control, monkeypatch):
    monkeypatch.setenv("MY_DISK_TOKEN", TOKEN)  # e.g. a systemd EnvironmentFile's own name for it
    monkeypatch.setenv("AUTH_HEADER", "OAuth %s" % TOKEN)
    monkeypatch.setenv("HARMLESS", "a value")
    reports = Reports()
    runner = execute.Executor(execute.parse_command(control.command()), reports, timeout=10.0, secrets=[TOKEN])
    try:
        runner.submit(change_event("/disk/a"))
        run = control.next_run()
        run.finish(0)
    finally:
        runner.close()
    assert "HARMLESS" in run.names
    assert "MY_DISK_TOKEN" not in run.names and "AUTH_HEADER" not in run.names


def test_watch_hands_the_token_to_the_executor_as_a_secret(stub_client, tmp_path):
    stub_client.items = []
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    watcher = watch.Watcher(args_for("--login", LOGIN, "-q", "--token-file", str(token_file), "--exec", "true"), _Sink(), _Sink())
    assert watcher.run() == 0
    assert watcher.executor is not None and TOKEN in watcher.executor.secrets


def test_a_login_other_than_the_stored_ones_says_whose_they_are(tmp_path, no_env_token):
    from yaxmpp import credentials

    path = str(tmp_path / "credentials.json")
    credentials.save(credentials.Credentials(TOKEN, login="alice"), path)
    error = error_of(args_for("--login", "bob", "--credentials", path))
    assert error.code == common.EXIT_USAGE
    assert "alice" in error.message and "bob" in error.message and path in error.message
    assert TOKEN not in error.message
    assert common.resolve_account(args_for("--login", "Alice", "--credentials", path)) == ("Alice", TOKEN)
