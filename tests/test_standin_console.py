"""``python -m yaxmpp.testing``: the stand-in server's console (issue 14).

No input line ends the console but ``quit``: each gets one line of answer (an error is one
line too), both through :meth:`Console.handle` and through a real process's stdin.
"""

from __future__ import annotations

import json
import os
import queue
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Iterator, List, Optional

import pytest

from yaxmpp.testing import FakeServer
from yaxmpp.testing.console import Console, build_parser

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WAIT = 15.0

#: Lines a new user, a fuzzer or a cat on the keyboard may type.
ODD_LINES = [
    "push /disk/a b.txt",
    "push 1.5",
    "push",
    "push 0",
    "push -1",
    "push 99999999999999999999999",
    "push 1e3",
    "push \u00b2",
    "push \u0661 new /disk/x",
    "push .5",
    "push new",
    'push new "/disk/a b.txt"',
    "push deleted /disk/it's here.txt",
    "push new '/disk/single quoted.txt'",
    'push new "/disk/unbalanced',
    'push new "',
    "push bogus /x",
    "push new relative/path",
    "push new /disk/\x01control",
    "push new disk:/ok",
    "push 2 changed /disk/x y",
    "push NEW /disk/upper",
    "push new /disk/<&>\"'.txt",
    "push new /disk/" + "é" * 3000,
    "ping",
    "ping now",
    "sessions",
    "sessions x",
    "list",
    "list x",
    "help",
    "help push",
    "help nope",
    "help " + "x" * 500,
    "HELP",
    "PuSh /disk/case.txt",
    "\x00",
    "\x1b[A\x1b[B",
    "\ufeffpush",
    "💥" * 200,
    "x" * 100_000,
    "push\tnew\t/disk/tabs",
    "   push    new    /disk/spaces   ",
    "drop x",
    "drop 999",
    "drop #999",
    "drop -1",
    "drop \u00b2",
    "\\",
    "%s%n%x",
    "{}",
]
SILENT_LINES = ["", "   ", "\t", "# a comment"]


@pytest.fixture
def console_of(make_server: Callable[..., FakeServer]) -> Callable[..., "tuple[Console, List[str]]"]:
    def make(server: Optional[FakeServer] = None) -> "tuple[Console, List[str]]":
        lines: List[str] = []
        return Console(server or make_server(), lines.append), lines

    return make


def answer(console: Console, lines: List[str], line: str) -> str:
    before = len(lines)
    assert console.handle(line) is True, line
    assert len(lines) == before + 1, (line, lines[before:])
    assert "\n" not in lines[-1] and "Traceback" not in lines[-1]
    return lines[-1]


def test_odd_lines_get_one_line_each(console_of: Any) -> None:
    console, lines = console_of()
    for line in ODD_LINES:
        assert not answer(console, lines, line).startswith("error: "), line  # an exception it did not expect
    for line in SILENT_LINES:
        assert console.handle(line) is True and not lines[len(ODD_LINES):]
    assert console.handle("quit") is False and console.handle("  EXIT ") is False


def test_errors_are_one_line_each(console_of: Any) -> None:
    console, lines = console_of()
    assert answer(console, lines, "push 1.5").startswith("push: COUNT must be a whole number")
    assert answer(console, lines, "push bogus /x").startswith("push: 'bogus' is neither a change type")
    assert answer(console, lines, "frobnicate").startswith("unknown command 'frobnicate'")
    assert answer(console, lines, "drop 7") == "drop: no connected client #7 (see list)"
    assert answer(console, lines, "push new /disk/\x01") == "push: the path holds a control character XML cannot carry"


def test_help_lists_every_command(console_of: Any) -> None:
    console, lines = console_of()
    text = answer(console, lines, "help")
    for command in ("help", "push", "ping", "drop", "sessions", "list", "quit"):
        assert command in text
    assert '"/disk/a b.txt"' in answer(console, lines, "help push")


def test_push_with_type_and_path_reaches_the_client(make_server: Callable[..., FakeServer], make_client: Any, console_of: Any) -> None:
    server = make_server()
    client = make_client(server).connect()
    assert server.wait_for_session().subscribed.wait(5)
    console, lines = console_of(server)
    pushes = [
        ('push new "/disk/a b.txt"', "pushed 1", [("new", "/disk/a b.txt")]),
        ("push /disk/a b.txt", "pushed 1", [("new", "/disk/a b.txt")]),
        ("push deleted /disk/it's here.txt", "pushed 1", [("deleted", "/disk/it's here.txt")]),
        ("push 3 changed disk:/x y", "pushed 3", [("changed", "disk:/x y")] * 3),
        ("push new /disk/<&>\"'.txt", "pushed 1", [("new", "/disk/<&>\"'.txt")]),
        ("push", "pushed 1", [("new", "/disk/file.txt")]),
    ]
    for line, said, changes in pushes:
        assert answer(console, lines, line) == said
        got = [client.get_notification(timeout=5) for _ in changes]
        assert [(n.changes[0].type, n.changes[0].path) for n in got] == changes
    # Every odd line later, the client is still there and took nothing it should not have.
    for line in ODD_LINES:
        answer(console, lines, line)
    assert client.connected
    assert answer(console, lines, "sessions") == "sessions 1 subscribed 1"
    assert answer(console, lines, "list").startswith("#1 test@ya.ru/YaDisk-client (STARTTLS; subscribed)")
    assert answer(console, lines, "drop 1") == "dropped 1"
    assert server.sessions[0].wait_ended(5)


# -- the process ---------------------------------------------------------------------------------


def console_process(*args: str) -> "subprocess.Popen[bytes]":
    return subprocess.Popen(
        [sys.executable, "-m", "yaxmpp.testing", *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_the_process_survives_every_odd_line() -> None:
    lines = ODD_LINES + SILENT_LINES + ["drop", "drop all"]
    data = "\n".join(lines).encode("utf-8") + b"\n\xff\xfe broken utf-8\n\r\n" + b"quit\n"
    proc = console_process()
    out, err = proc.communicate(data, timeout=WAIT)
    assert proc.returncode == 0, err
    assert b"Traceback" not in err and b"Traceback" not in out
    printed = out.decode("utf-8").splitlines()
    options = json.loads(printed[0])
    assert options["port"] > 0 and options["login"] == "test"
    talking = [line for line in lines if line.strip() and not line.strip().startswith("#")] + ["\xff\xfe broken utf-8"]
    assert len(printed) == 1 + len(talking), printed


def test_end_of_input_stops_it() -> None:
    proc = console_process("--tls-port", "none")
    out, err = proc.communicate(b"", timeout=WAIT)
    assert proc.returncode == 0 and b"Traceback" not in err
    assert json.loads(out.decode().splitlines()[0])["tls_port"] is None


def test_a_busy_port_is_one_line_and_a_failure() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        proc = console_process("--port", str(busy.getsockname()[1]))
        out, err = proc.communicate(b"", timeout=WAIT)
    assert proc.returncode != 0
    assert out == b""
    text = err.decode()
    assert text.count("\n") == 1 and "Traceback" not in text, text
    assert "cannot listen on 127.0.0.1" in text and "in use" in text


def test_every_option_has_help_and_the_description_is_plain_text() -> None:
    parser = build_parser()
    for action in parser._actions:
        assert action.help, action.option_strings
    text = parser.format_help()
    assert "``" not in text and ":class:" not in text
    for option in ("--login", "--token", "--ping-interval", "--port", "--tls-port", "--plain", "--host"):
        assert option in text


class Lines:
    """A pipe's lines, read by a thread."""

    def __init__(self, stream: Any) -> None:
        self.queue: "queue.Queue[Optional[str]]" = queue.Queue()
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream: Any) -> None:
        for raw in iter(stream.readline, b""):
            self.queue.put(raw.decode("utf-8", "replace"))
        self.queue.put(None)

    def next(self, timeout: float = WAIT) -> str:
        line = self.queue.get(timeout=timeout)
        assert line is not None, "the pipe closed"
        return line


@pytest.fixture
def processes() -> Iterator[List["subprocess.Popen[bytes]"]]:
    made: List["subprocess.Popen[bytes]"] = []
    yield made
    for proc in made:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=WAIT)


def test_the_printed_watch_command_connects(processes: List["subprocess.Popen[bytes]"]) -> None:
    console = console_process("--token", "a-token-for-the-console-test")
    processes.append(console)
    out, err = Lines(console.stdout), Lines(console.stderr)
    json.loads(out.next())
    while not err.next().startswith("connect to it with:"):
        pass
    words = shlex.split(err.next())
    start = words.index("watch")
    assert words[:start] in (["yaxmpp"], [sys.executable, "-m", "yaxmpp"])
    assert "a-token-for-the-console-test" not in " ".join(words)  # the token goes by file
    env = dict(os.environ)
    env.pop("YANDEX_DISK_TOKEN", None)
    watch = subprocess.Popen([sys.executable, "-m", "yaxmpp"] + words[start:], cwd=ROOT, env=env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    processes.append(watch)
    watched = Lines(watch.stdout)

    def say(line: str) -> str:
        assert console.stdin is not None
        console.stdin.write(line.encode() + b"\n")
        console.stdin.flush()
        return out.next().rstrip("\n")

    deadline = time.monotonic() + WAIT
    while say("sessions") != "sessions 1 subscribed 1":  # a round trip each, no sleep
        assert watch.poll() is None, watch.communicate(timeout=WAIT)
        assert time.monotonic() < deadline, "watch did not subscribe"
    assert say('push new "/disk/a b.txt"') == "pushed 1"
    assert " new /disk/a\\x20b.txt size=1 fid=" in watched.next()  # watch escapes the space
    watch.send_signal(signal.SIGTERM)
    assert watch.wait(WAIT) == 0
    assert console.stdin is not None
    console.stdin.write(b"quit\n")
    console.stdin.flush()
    assert console.wait(WAIT) == 0


def test_a_terminal_gets_a_prompt() -> None:
    """The prompt goes to stderr, and only when stdin is a terminal (scripts read stdout)."""
    pty = pytest.importorskip("pty")
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "yaxmpp.testing"], cwd=ROOT, stdin=terminal,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        os.write(controller, b"sessions\nquit\n")
        out, err = proc.communicate(timeout=WAIT)
    finally:
        os.close(controller)
        os.close(terminal)
    assert proc.returncode == 0
    assert out.decode().splitlines()[1:] == ["sessions 0 subscribed 0"]
    assert err.decode().count("> ") >= 2


def test_sigterm_stops_it_and_removes_the_token_file(processes: List["subprocess.Popen[bytes]"]) -> None:
    console = console_process()
    processes.append(console)
    err = Lines(console.stderr)
    while not err.next().startswith("connect to it with:"):
        pass
    words = shlex.split(err.next())
    token_file = words[words.index("--token-file") + 1]
    with open(token_file) as f:
        assert f.read() == "t\n"
    console.send_signal(signal.SIGTERM)
    assert console.wait(WAIT) == 0
    assert not os.path.exists(token_file)
