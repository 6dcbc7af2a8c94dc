"""``yaxmpp watch --exec CMD [--batch SECONDS]``: run a command per event, or per burst.

The thread that reads the client's notifications only hands events to :class:`Executor`,
which never blocks it: the command runs on a worker thread of its own (``yaxmpp-exec``), one
run at a time, in the order the events came.  So the library's queue keeps draining and every
push is acknowledged while a command runs, however long it takes.

When the command is slower than the pushes, events wait here.  Their number is bounded
(``max_backlog``): when it is reached, the waiting events are dropped and replaced by one
``resync`` event saying how many were dropped and over what time, so the command still
learns that it must resynchronise, and memory stays bounded.

The command inherits watch's environment but for ``YANDEX_DISK_TOKEN``, every ``YAXMPP_*``
variable of watch's own, and any variable whose value holds the token (``secrets``).

A command that fails (non-zero exit, killed, cannot start) or runs past ``timeout`` (it is
then killed, with its whole process group) is reported on stderr; the watch goes on.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple

from .common import EXIT_USAGE, TOKEN_ENV, CommandError
from .events import Event

__all__ = ["Executor", "parse_command", "event_environment", "DEFAULT_BACKLOG"]

#: Events that may wait for the command before the oldest are folded into one resync.
DEFAULT_BACKLOG = 10000
#: A burst that never pauses for ``batch`` seconds still runs the command this many
#: ``batch`` periods after its first event.
BATCH_MAX_FACTOR = 10

Report = Callable[[str], None]


def parse_command(text: str) -> List[str]:
    """``--exec CMD`` split like a shell would (no shell runs it); the program must exist."""
    try:
        argv = shlex.split(text)
    except ValueError as exc:
        raise CommandError(EXIT_USAGE, "--exec: cannot split the command: %s" % exc) from None
    if not argv:
        raise CommandError(EXIT_USAGE, "--exec: the command is empty")
    program = argv[0]
    if os.sep in program or (os.altsep and os.altsep in program):
        if not os.path.isfile(program) or not os.access(program, os.X_OK):
            raise CommandError(EXIT_USAGE, "--exec: %s is not an executable file" % program)
    elif shutil.which(program) is None:
        raise CommandError(EXIT_USAGE, "--exec: command not found: %s" % program)
    return argv


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def event_environment(record: Dict[str, Any]) -> Dict[str, str]:
    """The ``YAXMPP_*`` variables for one event (only those it has a value for)."""
    env = {"YAXMPP_EVENT": record["event"]}
    names: Tuple[Tuple[str, str], ...]
    if record["event"] == "change":
        names = (("YAXMPP_TYPE", "type"), ("YAXMPP_PATH", "path"), ("YAXMPP_DISK_PATH", "disk_path"), ("YAXMPP_FID", "fid"), ("YAXMPP_SIZE", "size"))
    else:
        names = (("YAXMPP_SINCE", "since"), ("YAXMPP_UNTIL", "until"), ("YAXMPP_REASON", "reason"))
    for variable, key in names:
        value = record.get(key)
        if value is not None:
            env[variable] = _text(value)
    return env


def _describe(record: Dict[str, Any]) -> str:
    if record.get("event") == "resync":
        return "resync"
    return "change %s %s" % (record.get("type") or "-", record.get("path") or "-")


class Executor:
    """Runs ``argv`` for each submitted event (or once per quiet period of ``batch`` seconds)
    on the ``yaxmpp-exec`` thread.  :meth:`submit` never blocks; :meth:`close` ends it."""

    def __init__(
        self,
        argv: List[str],
        report: Report,
        *,
        timeout: Optional[float] = None,
        batch: Optional[float] = None,
        max_backlog: int = DEFAULT_BACKLOG,
        grace: float = 5.0,
        secrets: Sequence[str] = (),
    ) -> None:
        self.argv = list(argv)
        self.timeout = timeout
        self.batch = batch
        self.max_backlog = max(1, max_backlog)
        self.grace = grace
        self._report = report
        self._pending: Deque[Event] = deque()
        self._dropped = 0  # events folded into the pending overflow resync
        self._cond = threading.Condition(threading.Lock())
        self._closing = False
        self._proc: Optional["subprocess.Popen[bytes]"] = None
        self.runs = 0  # commands started
        self.failures = 0  # commands that failed, timed out, or could not start
        #: Secrets no variable of the command's environment may hold (the token): a variable
        #: whose value holds one is left out, whatever its name.
        self.secrets = tuple(s for s in secrets if s and len(s) >= 6)
        self._environment = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("YAXMPP_") and k != TOKEN_ENV and not any(secret in v for secret in self.secrets)
        }
        self._thread = threading.Thread(target=self._work, name="yaxmpp-exec", daemon=True)
        self._thread.start()

    # -- the reader's side ---------------------------------------------------------------

    def submit(self, event: Event) -> None:
        """Queue one event for the command; never waits."""
        with self._cond:
            if self._closing:
                return
            if len(self._pending) >= self.max_backlog:
                self._fold_locked()
            self._pending.append(event)
            self._cond.notify_all()

    def _fold_locked(self) -> None:
        """Replace every waiting event by one resync that says they were dropped."""
        events = list(self._pending)
        self._pending.clear()
        dropped = self._dropped
        since = min(e.at for e in events)
        until = max(e.at for e in events)
        for event in events:
            if event.record.get("overflow"):
                since = min(since, event.record["since"])
            else:
                dropped += 1
        self._dropped = dropped
        record = {
            "event": "resync",
            "since": since,
            "until": until,
            "reason": "the command fell behind: %d events dropped" % dropped,
            "overflow": True,
        }
        self._pending.append(Event(record, until))
        self._report("the command is slower than the changes: %d events dropped, replaced by one resync event" % dropped)

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    # -- the worker ----------------------------------------------------------------------

    def _next_run(self) -> Optional[List[Event]]:
        """The events of the next run; None once closing."""
        with self._cond:
            while not self._pending:
                if self._closing:
                    return None
                self._cond.wait()
            if self.batch is None:
                event = self._pending.popleft()
                if event.record.get("overflow"):
                    self._dropped = 0
                return [event]
            # A batch: wait for a quiet period (bounded, so a burst that never pauses runs too).
            first = time.monotonic()
            seen = len(self._pending)
            while not self._closing:
                cap = first + self.batch * BATCH_MAX_FACTOR - time.monotonic()
                if cap <= 0:
                    break
                self._cond.wait(min(self.batch, cap))
                if len(self._pending) == seen:
                    break  # nothing new for a whole quiet period
                seen = len(self._pending)
            if self._closing:
                return None
            events = list(self._pending)
            self._pending.clear()
            self._dropped = 0
            return events

    def _work(self) -> None:
        while True:
            events = self._next_run()
            if events is None:
                return
            try:
                self._run(events)
            except Exception as exc:  # never let the worker die: the watch must go on
                self.failures += 1
                self._report("the command could not be run: %s" % (exc,))

    def _run(self, events: List[Event]) -> None:
        records = [dict((k, v) for k, v in e.record.items() if k != "overflow") for e in events]
        if self.batch is None:
            record = records[0]
            env = event_environment(record)
            what = _describe(record)
            data = json.dumps(record, ensure_ascii=False) + "\n"
        else:
            env = {"YAXMPP_EVENT": "batch", "YAXMPP_COUNT": str(len(records))}
            what = "batch of %d events" % len(records)
            data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        environment = dict(self._environment)
        environment.update((k, v) for k, v in env.items() if "\0" not in v)
        try:
            proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, env=environment, start_new_session=True)
        except OSError as exc:
            self.failures += 1
            self._report("cannot run the command (%s): %s" % (what, exc.strerror or exc))
            return
        with self._cond:
            self._proc = proc
            self.runs += 1
            closing = self._closing
        if closing:
            self._kill(proc)
        try:
            proc.communicate(data.encode("utf-8"), timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self._kill(proc)
            self.failures += 1
            self._report("the command ran past --exec-timeout %gs and was killed (%s)" % (self.timeout or 0.0, what))
            return
        finally:
            with self._cond:
                self._proc = None
        code = proc.returncode
        if code != 0:
            self.failures += 1
            if code < 0:
                try:
                    name = signal.Signals(-code).name
                except ValueError:
                    name = "signal %d" % -code
                self._report("the command was killed by %s (%s)" % (name, what))
            else:
                self._report("the command exited with status %d (%s)" % (code, what))

    @staticmethod
    def _kill(proc: "subprocess.Popen[bytes]") -> None:
        """Kill the command and whatever it started (its own process group), then reap it."""
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            try:
                proc.kill()
            except OSError:
                pass
        try:
            proc.communicate(timeout=5.0)
        except (subprocess.TimeoutExpired, OSError, ValueError):
            pass

    # -- ending ----------------------------------------------------------------------------

    def close(self, timeout: Optional[float] = None) -> int:
        """Stop: events not run yet are dropped (their number is returned); a command still
        running gets ``timeout`` (default: ``grace``) seconds to finish, then is killed."""
        with self._cond:
            self._closing = True
            left = len(self._pending)
            self._pending.clear()
            self._cond.notify_all()
        wait = self.grace if timeout is None else timeout
        self._thread.join(wait)
        if self._thread.is_alive():
            with self._cond:
                proc = self._proc
            if proc is not None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except OSError:
                    pass
            self._thread.join(5.0)
        return left
