"""``yaxmpp watch``: connect, subscribe, and report every Disk change (and every gap in the
stream, as a resync) until Ctrl-C or SIGTERM.

Events go to stdout, one line each (text or ``--json``; see :mod:`yaxmpp.cli.events`), or to
a command (``--exec``; see :mod:`yaxmpp.cli.execute`).  The connection's life goes to stderr
as status lines (connected, lost, each retry, reconnected) unless ``-q``.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import threading
from typing import Any, Callable, Dict, List, Optional, TextIO

from .common import (
    DEFAULT_RESOURCE,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    TOKEN_ENV,
    CommandError,
    Stop,
    add_connection_arguments,
    client_options,
    exit_code,
    fail,
    logging_to,
    resolve_account,
    sigterm_stops,
    silence,
    token_source_note,
)
from .events import Filter, change_records, events_of, text_line
from .execute import DEFAULT_BACKLOG, Executor, parse_command

__all__ = ["register", "add_watch_arguments", "parse", "run_watch", "change_records", "Watcher", "Status", "unique_resource"]


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a number of seconds: %r" % text) from None
    if not 0 < value <= 10 * 365 * 86400:  # NaN fails too
        raise argparse.ArgumentTypeError("not a positive number of seconds: %r" % text)
    return value


def _optional_seconds(text: str) -> Optional[float]:
    return None if text.lower() == "none" else _seconds(text)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a whole number: %r" % text) from None
    if value < 0:
        raise argparse.ArgumentTypeError("cannot be negative: %r" % text)
    return value


def add_watch_arguments(parser: argparse.ArgumentParser) -> None:
    """``watch``'s own options (the connection's are :func:`add_connection_arguments`)."""
    add_connection_arguments(parser)
    parser.add_argument("--json", action="store_true", help="one JSON object per line (see the README for the schema)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no status lines on stderr (errors are still reported)")
    parser.add_argument(
        "--path",
        action="append",
        metavar="PREFIX",
        help="only changes at or under this disk path (/disk/A, disk:/A and /A alike); repeatable",
    )
    parser.add_argument("--type", action="append", metavar="TYPE", help="only changes of this type (new, deleted, ...); repeatable")
    parser.add_argument(
        "--exec",
        metavar="CMD",
        help="run CMD (split like a shell would, run without one) for each event, one at a time, "
        "with the event as JSON on its stdin and in YAXMPP_* variables; nothing is printed on stdout",
    )
    parser.add_argument(
        "--batch",
        type=_seconds,
        metavar="SECONDS",
        help="with --exec: run CMD once per burst, after SECONDS without a new event, with all its events on stdin",
    )
    parser.add_argument(
        "--exec-timeout",
        type=_optional_seconds,
        default=300.0,
        metavar="SECONDS",
        help="kill a command still running after SECONDS, or 'none' (default 300)",
    )
    parser.add_argument(
        "--exec-backlog",
        type=_count,
        default=DEFAULT_BACKLOG,
        metavar="N",
        help="events that may wait for a slow command before they are folded into one resync (default %d)" % DEFAULT_BACKLOG,
    )
    parser.add_argument(
        "--check-revision",
        action="store_true",
        help="ask the Disk REST API for the disk's revision at each session, so resync events say whether it changed",
    )
    parser.add_argument("--api-url", metavar="URL", help="base URL of the Disk REST API (default https://cloud-api.yandex.net)")
    parser.add_argument(
        "--max-attempts",
        type=_count,
        default=None,
        metavar="N",
        help="give up after N failed connection attempts in a row (default: never; 0: do not retry)",
    )
    parser.add_argument("--backoff", type=_seconds, default=1.0, help=argparse.SUPPRESS)  # first retry delay (tests)


def register(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    watch = commands.add_parser(
        "watch",
        help="print Disk changes as they happen",
        description="Connect, subscribe and print one line per Disk change (and a resync line after each "
        "gap) until Ctrl-C or SIGTERM. The token comes from --token-file or the %s environment "
        "variable (--token-file wins), else from the credentials stored by `yaxmpp login`." % TOKEN_ENV,
    )
    add_watch_arguments(watch)
    watch.set_defaults(run=run_watch)


def parse(argv: List[str]) -> argparse.Namespace:
    """``watch``'s arguments (without the ``watch`` word), as the command line would give them."""
    parser = argparse.ArgumentParser(prog="yaxmpp watch")
    add_watch_arguments(parser)
    return parser.parse_args(argv)


def unique_resource() -> str:
    """A resource of this process's own, so that two watches of one account coexist (the
    server ends the older of two sessions with one resource with a ``conflict``)."""
    return "%s-%s" % (DEFAULT_RESOURCE, secrets.token_hex(4))


class _Lines:
    """Writes whole lines to stderr from any thread (status, command failures, errors)."""

    def __init__(self, err: TextIO) -> None:
        self.err = err
        self.lock = threading.Lock()

    def __call__(self, message: str) -> None:
        with self.lock:
            try:
                self.err.write("yaxmpp: %s\n" % message)
                self.err.flush()
            except (OSError, ValueError):
                pass  # stderr is gone: nothing better to do


class Status:
    """The status lines: connected (with the JID), connection lost (with the reason), each
    retry (with its delay), reconnected.  Its methods are the client's callbacks."""

    def __init__(self, line: Callable[[str], None]) -> None:
        self.line = line
        self.connected_before = False
        self.lost: Optional[str] = None

    def on_connect(self, client: Any) -> None:
        jid = client.jid
        if jid is None:  # the session ended before this ran: say what was asked for
            options = client.options
            jid = "%s@%s" % (options.login, options.domain) + ("/%s" % options.resource if options.resource else "")
        port = client.port
        where = " (%s port %d)" % (client.host, port) if port else ""
        self.line("%s as %s%s" % ("reconnected" if self.connected_before else "connected", jid, where))
        self.connected_before = True
        self.lost = None

    def on_disconnect(self, error: Any) -> None:
        if error is None:
            return  # closed by us
        self.lost = str(error)
        self.line("connection lost: %s" % error)

    def on_retry(self, error: Any, attempt: int, delay: float) -> None:
        if self.lost is not None and attempt == 1 and str(error) == self.lost:
            self.line("reconnecting in %.1fs (attempt %d)" % (delay, attempt))
        else:
            what = "reconnect" if self.connected_before else "connect"
            self.line("%s failed: %s; retrying in %.1fs (attempt %d)" % (what, error, delay, attempt))


class Watcher:
    """One run of ``yaxmpp watch``: :meth:`run` blocks until the watch ends and returns the
    exit code; :meth:`stop` (from any thread) ends it cleanly with 0."""

    def __init__(self, args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> None:
        self.args = args
        self.out = out
        self.err = err
        self.lines = _Lines(err)
        self.client: Any = None
        self.executor: Optional[Executor] = None
        self._stopped = threading.Event()
        self._lock = threading.Lock()

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            client = self.client
        if client is not None:
            client.close()

    # -- setting up ------------------------------------------------------------------------

    def _check(self) -> "tuple[str, str, Dict[str, Any], Optional[List[str]], Filter]":
        args = self.args
        login, token = resolve_account(args, None if args.quiet else self.err)  # a refresh is a status line
        options = client_options(args, resource=unique_resource())
        argv = parse_command(args.exec) if args.exec else None
        if args.batch is not None and argv is None:
            raise CommandError(EXIT_USAGE, "--batch needs --exec CMD")
        if args.api_url and not args.check_revision:
            raise CommandError(EXIT_USAGE, "--api-url needs --check-revision")
        return login, token, options, argv, Filter(args.path, args.type)

    def _client(self, login: str, token: str, options: Dict[str, Any]) -> Any:
        import yaxmpp

        args = self.args
        policy: Dict[str, Any] = {"initial": args.backoff, "maximum": max(60.0, args.backoff), "max_attempts": args.max_attempts}
        if not args.quiet:
            status = Status(self.lines)
            options["on_connect"] = status.on_connect
            options["on_disconnect"] = status.on_disconnect
            policy["on_retry"] = status.on_retry
        options["reconnect"] = yaxmpp.Reconnect(**policy)
        if args.check_revision:
            options["check_revision"] = True
            if args.api_url:
                options["api_url"] = args.api_url
        return yaxmpp.Client(login, token, **options)

    # -- running ---------------------------------------------------------------------------

    def run(self) -> int:
        try:
            login, token, options, argv, selection = self._check()
        except CommandError as exc:
            return fail(exc.code, exc.message, self.err)
        note = token_source_note(self.args)
        if note and not self.args.quiet:
            self.lines(note)
        with logging_to(self.err, self.args.verbose):
            try:
                client = self._client(login, token, options)
            except CommandError as exc:
                return fail(exc.code, exc.message, self.err)
            except (ValueError, TypeError) as exc:  # yaxmpp.UsageError is a ValueError
                return fail(EXIT_USAGE, str(exc), self.err)
            with self._lock:
                self.client = client
            if argv is not None:
                self.executor = Executor(
                    argv,
                    self.lines,
                    timeout=self.args.exec_timeout,
                    batch=self.args.batch,
                    max_backlog=self.args.exec_backlog,
                    grace=self.args.close_timeout,
                    secrets=[token],
                )
            with sigterm_stops(self.stop):
                try:
                    return self._loop(client, selection)
                finally:
                    self._end(client)

    def _loop(self, client: Any, selection: Filter) -> int:
        import yaxmpp

        args, out, executor = self.args, self.out, self.executor
        check = bool(args.check_revision)
        try:
            if self._stopped.is_set():
                return EXIT_OK
            client.connect(retry=True)  # a network failure at start is retried like a reconnect
            for item in client.notifications():
                events = events_of(item, check)
                if selection.active:
                    events = selection.select(events)
                if not events:
                    continue
                if executor is not None:
                    for event in events:
                        executor.submit(event)
                    continue
                if args.json:
                    out.write("".join(json.dumps(e.record, ensure_ascii=False) + "\n" for e in events))
                else:
                    out.write("".join(text_line(e.record) + "\n" for e in events))
                out.flush()
            return EXIT_OK
        except (KeyboardInterrupt, Stop):
            return EXIT_OK
        except yaxmpp.Error as exc:
            if self._stopped.is_set() and isinstance(exc, yaxmpp.ClientClosed):
                return EXIT_OK  # stop() closed the client during connect()
            return fail(exit_code(exc), str(exc), self.err)
        except BrokenPipeError:
            silence(out)  # the reader of our output went away (e.g. `| head`): not an error
            return EXIT_OK
        except UnicodeEncodeError as exc:
            return fail(EXIT_ERROR, "cannot write a change to the output: %s" % exc.reason, self.err)

    def _end(self, client: Any) -> None:
        try:
            client.close()
        except (KeyboardInterrupt, Stop):
            pass
        executor = self.executor
        if executor is not None:
            try:
                left = executor.close()
            except (KeyboardInterrupt, Stop):
                left = 0
            if left and not self.args.quiet:
                self.lines("stopped with %d event(s) not given to the command" % left)


def run_watch(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run ``yaxmpp watch`` with parsed ``args``; returns the exit code."""
    return Watcher(args, out, err).run()
