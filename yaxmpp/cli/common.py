"""What the ``yaxmpp`` commands share: exit codes, the connection options, the account and its
token (:func:`resolve_account`), logging to stderr, one-line errors, SIGTERM."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import threading
from typing import Callable, Any, Dict, Iterator, Optional, TextIO, Tuple

from .stored import add_account_arguments, stored_account

__all__ = [
    "EXIT_OK",
    "EXIT_ERROR",
    "EXIT_USAGE",
    "EXIT_AUTH",
    "EXIT_CONNECT",
    "TOKEN_ENV",
    "DEFAULT_RESOURCE",
    "CommandError",
    "Stop",
    "port_number",
    "positive_seconds",
    "add_connection_arguments",
    "read_token",
    "resolve_account",
    "token_source_note",
    "check_connection_arguments",
    "client_options",
    "fail",
    "exit_code",
    "logging_to",
    "sigterm_stops",
    "silence",
]

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_AUTH, EXIT_CONNECT = 0, 1, 2, 3, 4
TOKEN_ENV = "YANDEX_DISK_TOKEN"
#: The library's resource, used when a command does not choose one of its own.
DEFAULT_RESOURCE = "YaDisk-client"


class CommandError(Exception):
    """A command cannot go on: ``code`` is its exit code, ``message`` one line for stderr
    (never carrying the token)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message


class Stop(BaseException):
    """SIGTERM arrived (like KeyboardInterrupt, not an Exception: nothing may swallow it)."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Stop()


def port_number(text: str) -> Optional[int]:
    if text.lower() == "none":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a port number: %r" % text) from None
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError("not a port number: %r" % text)
    return value


def positive_seconds(text: str) -> float:
    """An argparse type: a positive number of seconds, at most ten years (NaN and inf refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a number of seconds: %r" % text) from None
    if not 0 < value <= 10 * 365 * 86400:  # NaN fails too
        raise argparse.ArgumentTypeError("not a positive number of seconds: %r" % text)
    return value


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every command that connects takes (``watch``, ``doctor``)."""
    parser.add_argument("--login", help="the Yandex account name (default: the stored credentials' login)")
    parser.add_argument(
        "--token-file",
        metavar="PATH",
        help="file holding the OAuth token (wins over the %s environment variable)" % TOKEN_ENV,
    )
    parser.add_argument("--host", default=None, help="server to connect to (default push.xmpp.yandex.ru)")
    parser.add_argument("--port", type=port_number, default=5222, help="STARTTLS port, or 'none' (default 5222)")
    parser.add_argument("--tls-port", type=port_number, default=443, help="direct-TLS fallback port, or 'none' (default 443)")
    parser.add_argument("--cafile", help="CA bundle to verify the server with (default: certifi's)")
    parser.add_argument("--domain", default="ya.ru", help=argparse.SUPPRESS)
    parser.add_argument(
        "--resource",
        default=None,
        help="XMPP resource ('' lets the server choose; default: the command's, %s for most)" % DEFAULT_RESOURCE,
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds allowed for each connection attempt as a whole (DNS, TCP, TLS, login, "
        "subscription) and for each request (default 30)",
    )
    parser.add_argument(
        "--close-timeout",
        type=float,
        default=5.0,
        help="seconds allowed for a clean close on Ctrl-C or SIGTERM (default 5)",
    )
    parser.add_argument("--compress", action="store_true", help="ask for zlib stream compression")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log to stderr (-vv: with XML)")
    add_account_arguments(parser, api_url=False)  # --credentials, --oauth-url: for the stored credentials


def read_token(args: argparse.Namespace, err: Optional[TextIO] = None) -> Optional[str]:
    """The token from ``--token-file``, else from :data:`TOKEN_ENV`, else from the stored
    credentials (refreshed first when near expiry; they also set ``args.login`` when it is
    unset); None when none has one.  Unlike :func:`resolve_account`, a missing login is the
    caller's to handle (``doctor`` asks the Disk API for it).

    :class:`CommandError` (exit 2) for a token file that cannot be read, is not UTF-8, is
    blank or holds more than the token (worded as :func:`resolve_account` words them), or a
    blank :data:`TOKEN_ENV`; a :class:`yaxmpp.Error` when the stored credentials cannot be used."""
    if getattr(args, "token_file", None):
        return _token_from_file(args.token_file)
    raw = os.environ.get(TOKEN_ENV)
    if raw is not None:
        token = raw.strip()
        if not token:
            raise CommandError(EXIT_USAGE, "%s is set but blank: put the token in it, or use --token-file PATH" % TOKEN_ENV)
        return token
    account = stored_account(args, err)
    if account is None:
        return None
    if not getattr(args, "login", None):
        args.login = account[0]
    return account[1]


def _token_from_file(path: str) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read(65537)
    except OSError as exc:
        raise CommandError(EXIT_USAGE, "cannot read the token file %s: %s" % (path, exc.strerror or type(exc).__name__)) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CommandError(EXIT_USAGE, "the token file %s is not UTF-8 text" % path) from None
    token = text.strip()
    if not token:
        raise CommandError(EXIT_USAGE, "the token file %s is blank: put the OAuth token in it" % path)
    if len(data) > 65536 or len(token.split()) > 1:
        raise CommandError(EXIT_USAGE, "the token file %s holds more than the token (one line, nothing else)" % path)
    return token


def resolve_account(args: argparse.Namespace, err: Optional[TextIO] = None) -> Tuple[str, str]:
    """The account to use: (login, token) from ``--login`` and ``--token-file``, else from
    :data:`TOKEN_ENV`, else from the credentials stored by ``yaxmpp login`` (refreshed first
    when near expiry; their login unless ``--login`` is given).  ``--token-file`` wins when
    both are given (see :func:`token_source_note`).

    Raises :class:`CommandError` (exit 2) with a message saying what is missing or wrong: a
    token file that cannot be read (named), that is not UTF-8, or blank; no token at all; no login.
    """
    login = (getattr(args, "login", None) or "").strip()
    token_file = getattr(args, "token_file", None)
    if token_file:
        token = _token_from_file(token_file)
    else:
        raw = os.environ.get(TOKEN_ENV)
        if raw is None:
            import yaxmpp

            try:
                account = stored_account(args, err)  # a refresh is reported on err
            except yaxmpp.Error as exc:  # the stored credentials cannot be used (or refreshed)
                raise CommandError(exit_code(exc), str(exc)) from None
            if account is None:
                raise CommandError(EXIT_USAGE, "no token: use --token-file PATH, set %s, or run `yaxmpp login`" % TOKEN_ENV)
            stored_login, token = account
            login = login or stored_login
        else:
            token = raw.strip()
            if not token:
                raise CommandError(EXIT_USAGE, "%s is set but blank: put the token in it, or use --token-file PATH" % TOKEN_ENV)
    if not login:
        raise CommandError(EXIT_USAGE, "no login: give --login LOGIN (the account name, without @yandex.ru), or run `yaxmpp login`")
    return login, token


def token_source_note(args: argparse.Namespace) -> Optional[str]:
    """One line saying which token source wins when both ``--token-file`` and :data:`TOKEN_ENV`
    are given (None otherwise)."""
    if getattr(args, "token_file", None) and os.environ.get(TOKEN_ENV, "").strip():
        return "using the token from --token-file %s (%s is set too, and ignored)" % (args.token_file, TOKEN_ENV)
    return None


def check_connection_arguments(args: argparse.Namespace) -> None:
    """Checks of the connection options that argparse cannot make, worded with the flags'
    names; raises :class:`CommandError` (exit 2)."""
    if args.port is None and args.tls_port is None:
        raise CommandError(EXIT_USAGE, "--port and --tls-port cannot both be 'none': one of them is needed")
    for flag, value in (("--timeout", args.timeout), ("--close-timeout", args.close_timeout)):
        if not (value > 0 and value <= 10 * 365 * 86400):  # also catches NaN
            raise CommandError(EXIT_USAGE, "%s must be a positive number of seconds, not %g" % (flag, value))
    if args.cafile:
        from ..errors import UsageError
        from ..tls import create_default_context

        try:
            create_default_context(args.cafile)
        except UsageError as exc:
            message = str(exc)
            if message.startswith("cafile "):
                message = message[len("cafile ") :]
            raise CommandError(EXIT_USAGE, "--cafile %s" % message) from None


def client_options(args: argparse.Namespace, resource: str = DEFAULT_RESOURCE) -> Dict[str, Any]:
    """The :class:`yaxmpp.Client` keyword arguments the connection options ask for, checked
    first (:func:`check_connection_arguments`).  ``resource`` is the command's default, used
    when ``--resource`` is not given (``--resource ''`` lets the server choose)."""
    check_connection_arguments(args)
    chosen = resource if args.resource is None else args.resource
    options: Dict[str, Any] = {
        "port": args.port,
        "tls_port": args.tls_port,
        "cafile": args.cafile,
        "domain": args.domain,
        "resource": chosen or None,
        "timeout": args.timeout,
        "close_timeout": args.close_timeout,
        "compress": args.compress,
    }
    if args.host:
        options["host"] = args.host
    return options


def fail(code: int, message: str, err: TextIO) -> int:
    """Report ``message`` as one line on ``err``; return ``code``."""
    err.write("yaxmpp: %s\n" % message)
    err.flush()
    return code


def exit_code(error: BaseException) -> int:
    """The exit code for an error that ended a command."""
    import yaxmpp

    if isinstance(error, CommandError):
        return error.code
    if isinstance(error, (yaxmpp.UsageError, ValueError, TypeError)):
        return EXIT_USAGE
    if isinstance(error, yaxmpp.AuthError):
        return EXIT_AUTH
    if isinstance(error, yaxmpp.NetworkError):
        return EXIT_CONNECT
    return EXIT_ERROR


@contextlib.contextmanager
def logging_to(err: TextIO, verbose: int) -> Iterator[None]:
    """Log the library to ``err`` at INFO (``verbose`` 1) or DEBUG (2+); with 0, keep its
    records from propagating (the command reports errors itself).  Restores logging after."""
    logger = logging.getLogger("yaxmpp")
    saved = (logger.level, logger.propagate)
    handler: Optional[logging.Handler] = None
    if verbose:
        handler = logging.StreamHandler(err)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
    else:
        logger.propagate = False
    try:
        yield
    finally:  # the command may run inside a program (or a test): leave logging as it was
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
        if handler is not None:
            logger.removeHandler(handler)


@contextlib.contextmanager
def sigterm_stops(stop: Optional[Callable[[], None]] = None) -> Iterator[None]:
    """Within the block, SIGTERM ends the command cleanly (on the main thread only).

    Without ``stop``, the handler raises :class:`Stop` in the main thread.  With ``stop`` (a
    callable safe from any thread), the signal's arrival is written, by the interpreter's C
    handler at that very moment, to a wakeup pipe (:func:`signal.set_wakeup_fd`) that a thread
    of its own, ``yaxmpp-signals``, reads, and that thread calls ``stop``.  A Python-level
    handler runs only between bytecodes of the main thread, so a SIGTERM that lands in the
    instant the main thread starts blocking on a lock would wait there until the next push.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if stop is None:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)
        return
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    stopped = threading.Event()

    def wake_on_sigterm() -> None:
        while True:
            try:
                data = os.read(read_end, 64)
            except InterruptedError:  # pragma: no cover - a signal during the read
                continue
            if not data:
                return  # the block ended
            if signal.SIGTERM in data and not stopped.is_set():
                stopped.set()
                stop()

    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)  # the pipe does the work
    try:
        old_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    except (ValueError, OSError):  # pragma: no cover - no wakeup fd here
        signal.signal(signal.SIGTERM, _on_sigterm)
        old_fd = None
    waker = threading.Thread(target=wake_on_sigterm, name="yaxmpp-signals", daemon=True)
    waker.start()
    try:
        yield
    finally:
        if old_fd is not None:
            signal.set_wakeup_fd(old_fd)
        signal.signal(signal.SIGTERM, previous)
        os.close(write_end)  # the waker reads the end of the pipe and returns
        waker.join()
        os.close(read_end)


def silence(out: TextIO) -> None:
    """Point ``out`` at /dev/null so the interpreter's flush at exit does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
