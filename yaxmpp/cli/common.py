"""What the ``yaxmpp`` commands share: exit codes, the connection options, the token's
sources, logging to stderr, one-line errors, SIGTERM."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import threading
from typing import Any, Dict, Iterator, Optional, TextIO

from .stored import add_account_arguments, stored_account

__all__ = [
    "EXIT_OK",
    "EXIT_ERROR",
    "EXIT_USAGE",
    "EXIT_AUTH",
    "EXIT_CONNECT",
    "TOKEN_ENV",
    "Stop",
    "port_number",
    "add_connection_arguments",
    "read_token",
    "client_options",
    "fail",
    "exit_code",
    "logging_to",
    "sigterm_stops",
    "silence",
]

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_AUTH, EXIT_CONNECT = 0, 1, 2, 3, 4
TOKEN_ENV = "YANDEX_DISK_TOKEN"


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


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every command that connects takes (``watch``, ``doctor``)."""
    parser.add_argument("--login", help="the Yandex account name (default: the stored credentials' login)")
    parser.add_argument("--token-file", metavar="PATH", help="file holding the OAuth token")
    parser.add_argument("--host", default=None, help="server to connect to (default push.xmpp.yandex.ru)")
    parser.add_argument("--port", type=port_number, default=5222, help="STARTTLS port, or 'none' (default 5222)")
    parser.add_argument("--tls-port", type=port_number, default=443, help="direct-TLS fallback port, or 'none' (default 443)")
    parser.add_argument("--cafile", help="CA bundle to verify the server with (default: certifi's)")
    parser.add_argument("--domain", default="ya.ru", help=argparse.SUPPRESS)
    parser.add_argument("--resource", default="YaDisk-client", help="XMPP resource (default YaDisk-client)")
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
    unset); None when none has one.

    OSError or UnicodeDecodeError for a file that cannot be read; a :class:`yaxmpp.Error`
    when the stored credentials cannot be used."""
    if args.token_file:
        with open(args.token_file, encoding="utf-8") as f:
            return f.read().strip() or None
    token = os.environ.get(TOKEN_ENV, "").strip() or None
    if token is None:
        account = stored_account(args, err)
        if account is not None:
            if not getattr(args, "login", None):
                args.login = account[0]
            token = account[1]
    return token


def client_options(args: argparse.Namespace) -> Dict[str, Any]:
    """The :class:`yaxmpp.Client` keyword arguments the connection options ask for."""
    options: Dict[str, Any] = {
        "port": args.port,
        "tls_port": args.tls_port,
        "cafile": args.cafile,
        "domain": args.domain,
        "resource": args.resource or None,
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
def sigterm_stops() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Stop` (on the main thread only)."""
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if threading.current_thread() is threading.main_thread() else None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def silence(out: TextIO) -> None:
    """Point ``out`` at /dev/null so the interpreter's flush at exit does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
