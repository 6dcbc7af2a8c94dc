"""``python -m yaxmpp.testing``: the stand-in server in a terminal, driven by typed commands.

:class:`Console` reads one command per line (:meth:`Console.handle`) and answers in one
line; no line, however odd, ends it but ``quit`` (or the end of input).  :func:`main` is the
command: it starts a :class:`~yaxmpp.testing.server.FakeServer`, prints one JSON line with
the client options on stdout (for scripts), and on stderr the ``yaxmpp watch`` command line
that connects to it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shlex
import shutil
import signal
import sys
import tempfile
from typing import Callable, Dict, List, Optional, Sequence, TextIO, Tuple

from .server import FakeServer
from .session import ServerSession

__all__ = ["Console", "main", "CHANGE_TYPES", "watch_command"]

PROG = "python -m yaxmpp.testing"

DESCRIPTION = """\
Run the yaxmpp stand-in for push.xmpp.yandex.ru on this machine: a loopback XMPP server with
real TLS (a test certificate for 127.0.0.1, signed by a test CA that ships with yaxmpp),
one account, Disk pushes on demand.

On start it prints one JSON line with the client options on standard output (for scripts)
and, on standard error, the yaxmpp watch command line that connects to it.  Then it reads
commands, one per line, from standard input; type help for the list."""

#: The ``type`` values of a Disk push op the console knows by name.
CHANGE_TYPES = ("new", "changed", "deleted", "published", "unpublished")
DEFAULT_PATH = "/disk/file.txt"
MAX_COUNT = 1_000_000

#: command -> (usage, what it does, more detail for ``help COMMAND``)
COMMANDS: Dict[str, Tuple[str, str, str]] = {
    "help": ("help [COMMAND]", "list the commands, or explain one", ""),
    "push": (
        "push [COUNT] [TYPE] [PATH]",
        "send Disk pushes to every subscribed client",
        "COUNT pushes (default 1), each one change of TYPE (%s; default new) to PATH (default %s); "
        "PATH is the rest of the line, spaces included, quotes around it optional: "
        'push new "/disk/a b.txt"' % (", ".join(CHANGE_TYPES), DEFAULT_PATH),
    ),
    "ping": ("ping", "ping every client whose session is open", ""),
    "drop": ("drop [NUMBER|all]", "cut the TCP connection of one client (see list) or of all (the default)", ""),
    "sessions": ("sessions", "how many clients are connected and how many subscribed", ""),
    "list": ("list", "one line per connected client: number, JID, what it negotiated", ""),
    "quit": ("quit", "stop the server and exit (also: exit, or the end of input)", ""),
}

# Characters XML 1.0 cannot carry: a path with one would break the client's stream.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
# A whole number typed in ASCII digits (str.isdigit also takes "\u00b2", which int() refuses).
_DIGITS = re.compile(r"[0-9]+\Z")


class CommandError(Exception):
    """A command that cannot be carried out; its message is the one line printed."""


def _one_line(text: str) -> str:
    return " ".join(text.split())


class Console:
    """The command interpreter; ``write`` prints one line of output."""

    def __init__(self, server: FakeServer, write: Callable[[str], None]) -> None:
        self.server = server
        self.write = write
        self._fids = itertools.count(1)

    def handle(self, line: str) -> bool:
        """Carry out one input line; False once the console should stop (``quit``)."""
        try:
            return self._handle(line)
        except CommandError as exc:
            self.write(str(exc))
        except Exception as exc:  # never let a command end the console
            self.write("error: %s: %s" % (type(exc).__name__, _one_line(str(exc))))
        return True

    def _handle(self, line: str) -> bool:
        text = line.strip()
        if not text or text.startswith("#"):
            return True
        parts = text.split(None, 1)
        name, rest = parts[0], (parts[1] if len(parts) > 1 else "")
        command = name.lower()
        if command in ("quit", "exit"):
            return False
        handler = getattr(self, "do_" + command, None) if command in COMMANDS else None
        if handler is None:
            raise CommandError("unknown command %s; type help for the list" % _quote(name))
        handler(rest.strip())
        return True

    # -- the commands ----------------------------------------------------------------------

    def do_help(self, rest: str) -> None:
        if rest:
            entry = COMMANDS.get(rest.lower())
            if entry is None:
                raise CommandError("help: no command %s; type help for the list" % _quote(rest))
            usage, summary, detail = entry
            self.write("%s: %s%s" % (usage, summary, ": " + detail if detail else ""))
            return
        self.write("commands: " + "; ".join(usage for usage, _, _ in COMMANDS.values()) + " (help COMMAND for more)")

    def do_push(self, rest: str) -> None:
        count, change_type, path = parse_push(rest)
        changes = [{"type": change_type, "key": path, "fid": str(next(self._fids))}]
        if change_type in ("new", "changed"):
            changes[0]["size"] = "1"
        sessions = [s for s in self.server.live_sessions() if s.subscribed.is_set()]
        for session in sessions:
            if count == 1:
                session.push(changes)
            else:
                session.push_many(count, changes)
        if sessions:
            self.write("pushed %d" % (count * len(sessions)))
        else:
            self.write("pushed 0 (no client has subscribed yet)")

    def do_ping(self, rest: str) -> None:
        self._no_arguments("ping", rest)
        sessions = [s for s in self.server.live_sessions() if s.session_started.is_set()]
        for session in sessions:
            session.ping()
        self.write("pinged %d" % len(sessions))

    def do_drop(self, rest: str) -> None:
        live = self.server.live_sessions()
        if rest in ("", "all"):
            chosen = live
        elif _DIGITS.match(rest.lstrip("#")):
            number = int(rest.lstrip("#"))
            chosen = [s for s in live if s.number == number]
            if not chosen:
                raise CommandError("drop: no connected client #%d (see list)" % number)
        else:
            raise CommandError("drop: expected a client number or all, not %s" % _quote(rest))
        for session in chosen:
            session.drop()
        self.write("dropped %d" % len(chosen))

    def do_sessions(self, rest: str) -> None:
        self._no_arguments("sessions", rest)
        live = self.server.live_sessions()
        self.write("sessions %d subscribed %d" % (len(live), sum(s.subscribed.is_set() for s in live)))

    def do_list(self, rest: str) -> None:
        self._no_arguments("list", rest)
        live = self.server.live_sessions()
        if not live:
            self.write("no client connected")
        for session in live:
            self.write(describe(session))

    def _no_arguments(self, command: str, rest: str) -> None:
        if rest:
            raise CommandError("%s takes no arguments (got %s)" % (command, _quote(rest)))


def _quote(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")


def parse_push(rest: str) -> Tuple[int, str, str]:
    """``[COUNT] [TYPE] [PATH]`` -> (count, type, path); CommandError for anything else."""
    count = 1
    words = rest.split(None, 1)
    if words and _DIGITS.match(words[0]):
        count = int(words[0])
        if not 1 <= count <= MAX_COUNT:
            raise CommandError("push: COUNT must be from 1 to %d, not %s" % (MAX_COUNT, words[0]))
        rest = words[1] if len(words) > 1 else ""
    elif words and _NUMBER.fullmatch(words[0]):
        raise CommandError("push: COUNT must be a whole number from 1 to %d, not %s" % (MAX_COUNT, words[0]))
    change_type = "new"
    words = rest.split(None, 1)
    if words and words[0].lower() in CHANGE_TYPES:
        change_type = words[0].lower()
        rest = words[1] if len(words) > 1 else ""
    path = rest.strip()
    if len(path) >= 2 and path[0] == path[-1] and path[0] in "\"'":
        path = path[1:-1]
    elif path[:1] in ("'", '"'):
        raise CommandError("push: unbalanced quote in the path %s" % _quote(path))
    if not path:
        path = DEFAULT_PATH
    elif not (path.startswith("/") or path.startswith("disk:")):
        raise CommandError(
            "push: %s is neither a change type (%s) nor a path (starting with / or disk:)"
            % (_quote(path.split(None, 1)[0]), ", ".join(CHANGE_TYPES))
        )
    if _NOT_XML.search(path):
        raise CommandError("push: the path holds a control character XML cannot carry")
    return count, change_type, path


def describe(session: ServerSession) -> str:
    """One line about a connection, for ``list``."""
    layers = ["direct TLS" if session.direct_tls else ("STARTTLS" if session.tls else "no TLS")]
    if session.compressed:
        layers.append("zlib")
    state = "subscribed" if session.subscribed.is_set() else (
        "session open" if session.session_started.is_set() else ("authenticated" if session.authenticated else "connecting")
    )
    return "#%d %s (%s; %s)" % (session.number, session.jid or "(no JID yet)", ", ".join(layers), state)


def watch_command(server: FakeServer, login: str, token_file: str) -> List[str]:
    """The ``yaxmpp watch`` command line that connects to ``server``."""
    program = ["yaxmpp"] if shutil.which("yaxmpp") else [sys.executable, "-m", "yaxmpp"]
    args = program + ["watch", "--login", login, "--token-file", token_file, "--host", server.host]
    args += ["--port", str(server.starttls_port), "--tls-port", "none" if server.tls_port is None else str(server.tls_port)]
    return args + ["--cafile", server.cafile]


# -- the command -----------------------------------------------------------------------------


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a port number: %r" % text) from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError("a port is from 0 to 65535, not %d" % port)
    return port


def _tls_port(text: str) -> Optional[int]:
    return None if text.lower() == "none" else _port(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a number of seconds: %r" % text) from None
    if not 0 < value < 1e9:
        raise argparse.ArgumentTypeError("must be a positive number of seconds, not %r" % text)
    return value


def _login(text: str) -> str:
    if not text or any(c in text for c in "@/\0 \t\r\n"):
        raise argparse.ArgumentTypeError("a login is a non-empty name without @, / or spaces: %r" % text)
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n" + "\n".join("  %-28s %s" % (usage, summary) for usage, summary, _ in COMMANDS.values()),
    )
    parser.add_argument("--login", type=_login, default="test", help="the one account's login (default: test)")
    parser.add_argument("--token", default="t", help="the OAuth token that account must present (default: t)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=0, help="STARTTLS port, like 5222 (default: any free one)")
    parser.add_argument(
        "--tls-port", type=_tls_port, default=0, help="direct-TLS port, like 443, or 'none' (default: any free one)"
    )
    parser.add_argument("--plain", action="store_true", help="also offer SASL PLAIN (the token as the password)")
    parser.add_argument(
        "--ping-interval", type=_seconds, default=None, metavar="SECONDS",
        help="ping a client after this many seconds of silence from it (default: never)",
    )
    return parser


def _write_token(token: str) -> Tuple[str, str]:
    folder = tempfile.mkdtemp(prefix="yaxmpp-standin-")
    path = os.path.join(folder, "token")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return folder, path


def _remove(folder: str) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def main(argv: Optional[Sequence[str]] = None, stdin: Optional[TextIO] = None) -> int:
    args = build_parser().parse_args(argv)
    err = sys.stderr
    mechanisms = ("X-YANDEX-OAUTH", "PLAIN") if args.plain else ("X-YANDEX-OAUTH",)
    server = FakeServer(
        login=args.login,
        token=args.token,
        host=args.host,
        starttls_port=args.port,
        tls_port=args.tls_port,
        mechanisms=mechanisms,
        ping_interval=args.ping_interval,
    )
    try:
        server.start()
    except OSError as exc:
        wanted = "STARTTLS port %s" % (args.port or "any")
        if args.tls_port is not None:
            wanted += ", direct-TLS port %s" % (args.tls_port or "any")
        err.write("%s: cannot listen on %s (%s): %s\n" % (PROG, args.host, wanted, _one_line(exc.strerror or str(exc))))
        return 1
    folder, token_file = _write_token(args.token)
    try:
        _exit_on_sigterm()
        return _run(server, args.login, args.token, token_file, stdin)
    except KeyboardInterrupt:
        err.write("\n")
        return 0
    except BrokenPipeError:  # whoever read our output went away
        return 0
    finally:
        server.stop()
        _remove(folder)


def _exit_on_sigterm() -> None:
    """SIGTERM ends the console like ``quit``: the server stops, the token file goes."""

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    try:
        signal.signal(signal.SIGTERM, stop)
    except ValueError:  # pragma: no cover - not the main thread
        pass


def _run(server: FakeServer, login: str, token: str, token_file: str, stdin: Optional[TextIO]) -> int:
    out, err = sys.stdout, sys.stderr

    def write(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    write(json.dumps(dict(server.client_options(), login=login, token=token)))
    ports = "STARTTLS port %s" % server.starttls_port
    if server.tls_port is not None:
        ports += ", direct TLS port %d" % server.tls_port
    err.write("yaxmpp stand-in for push.xmpp.yandex.ru on %s: %s, domain %s, login %s\n" % (server.host, ports, server.domain, login))
    err.write("connect to it with:\n  %s\n" % " ".join(shlex.quote(a) for a in watch_command(server, login, token_file)))
    err.write("type help for the commands, quit (or Ctrl-D) to stop\n")
    err.flush()
    console = Console(server, write)
    source = stdin if stdin is not None else _lines(sys.stdin)
    interactive = stdin is None and sys.stdin.isatty()
    while True:
        if interactive:
            err.write("> ")
            err.flush()
        line = source.readline()
        if not line:
            return 0
        if not console.handle(line):
            return 0


class _lines:
    """Lines of standard input as text, whatever bytes arrive (undecodable ones replaced)."""

    def __init__(self, stream: TextIO) -> None:
        self._buffer = getattr(stream, "buffer", None)
        self._stream = stream

    def readline(self) -> str:
        if self._buffer is None:
            return self._stream.readline()
        raw: bytes = self._buffer.readline()
        return raw.decode("utf-8", "replace") if raw else ""
