"""Helpers for the ``yaxmpp watch`` tests: a control server that ``--exec`` commands report to.

Each run of the test command (:data:`REPORTER`) connects to :class:`Control`'s listener, sends
one JSON line (its ``YAXMPP_*`` environment, its stdin, its arguments, whether it saw the
token variable) and then waits for the test's answer: the exit status to end with.  So a
test knows when a run started (it accepted it), what the run was given, and decides when the
run ends (or never answers: a hung command).  Every wait is bounded.
"""

from __future__ import annotations

import json
import shlex
import socket
import sys
import threading
from typing import Any, Dict, List, Optional

REPORTER = r"""
import json, os, socket, sys
data = sys.stdin.read()
env = {k: v for k, v in os.environ.items() if k.startswith("YAXMPP_")}
conn = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
conn.sendall(json.dumps({"env": env, "stdin": data, "argv": sys.argv[2:],
                         "token_env": "YANDEX_DISK_TOKEN" in os.environ,
                         "names": sorted(os.environ)}).encode("utf-8") + b"\n")
reply = conn.makefile("rb").readline()
sys.exit(int(reply.strip() or b"0"))
"""


class Run:
    """One run of the command, as the control server saw it."""

    def __init__(self, conn: socket.socket, report: Dict[str, Any]) -> None:
        self.conn = conn
        self.env: Dict[str, str] = report["env"]
        self.stdin: str = report["stdin"]
        self.argv: List[str] = report["argv"]
        self.token_env: bool = report["token_env"]
        self.names: List[str] = report["names"]  # every variable of its environment

    @property
    def records(self) -> List[Dict[str, Any]]:
        return [json.loads(line) for line in self.stdin.splitlines()]

    def finish(self, status: int = 0) -> None:
        try:
            self.conn.sendall(b"%d\n" % status)
        except OSError:
            pass
        self.conn.close()


class Control:
    """The listener the command reports to.  ``auto``: answer every run with status 0 at once."""

    def __init__(self, tmp_path: Any, auto: bool = False) -> None:
        self.script = tmp_path / "reporter.py"
        self.script.write_text(REPORTER, encoding="utf-8")
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.auto = auto
        self.open: List[Run] = []

    def command(self, *extra: str) -> str:
        """The ``--exec`` value that runs the reporter (quoted like a shell would want)."""
        return " ".join(shlex.quote(part) for part in [sys.executable, str(self.script), str(self.port), *extra])

    def next_run(self, timeout: float = 10.0) -> Run:
        self.listener.settimeout(timeout)
        try:
            conn, _ = self.listener.accept()
        except socket.timeout:
            raise AssertionError("the command did not run within %gs" % timeout) from None
        conn.settimeout(timeout)
        line = conn.makefile("rb").readline()
        run = Run(conn, json.loads(line))
        if self.auto:
            run.finish(0)
        else:
            self.open.append(run)
        return run

    def no_run(self, timeout: float) -> bool:
        """True if no run starts within ``timeout`` (for "nothing more happens" checks only)."""
        self.listener.settimeout(timeout)
        try:
            conn, _ = self.listener.accept()
        except socket.timeout:
            return True
        conn.close()
        return False

    def close(self) -> None:
        for run in self.open:
            run.finish(0)
        self.listener.close()


class Lines:
    """A thread-safe text sink for in-process runs (``out``/``err``) whose lines a test can
    wait for."""

    def __init__(self) -> None:
        self._text: List[str] = []
        self._cond = threading.Condition()

    def write(self, text: str) -> int:
        with self._cond:
            self._text.append(text)
            self._cond.notify_all()
        return len(text)

    def flush(self) -> None:
        pass

    @property
    def lines(self) -> List[str]:
        with self._cond:
            return "".join(self._text).splitlines()

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> Optional[str]:
        """The first line for which ``predicate`` holds, waiting for it (None if none came)."""
        with self._cond:
            found: List[str] = []

            def seen() -> bool:
                found[:] = [line for line in "".join(self._text).splitlines() if predicate(line)]
                return bool(found)

            if not self._cond.wait_for(seen, timeout):
                return None
            return found[0]
