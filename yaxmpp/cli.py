"""The ``yaxmpp`` command: ``yaxmpp watch``, ``yaxmpp demo``, ``yaxmpp --version``.

Exit codes: 0 success (also after Ctrl-C or SIGTERM), 1 any other error, 2 usage,
3 authentication failure, 4 connection or TLS failure.  Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import signal
import sys
from typing import Any, Dict, List, Optional, TextIO

from ._version import __version__

__all__ = ["main"]

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_AUTH, EXIT_CONNECT = 0, 1, 2, 3, 4
TOKEN_ENV = "YANDEX_DISK_TOKEN"


def _port(text: str) -> Optional[int]:
    if text.lower() == "none":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a port number: %r" % text) from None
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError("not a port number: %r" % text)
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="yaxmpp", description="Yandex.Disk change notifications over XMPP.")
    parser.add_argument("--version", action="version", version="yaxmpp %s" % __version__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    watch = commands.add_parser(
        "watch",
        help="print Disk changes as they happen",
        description="Connect, subscribe and print one line per Disk change until Ctrl-C or SIGTERM. "
        "The token comes from --token-file or the %s environment variable." % TOKEN_ENV,
    )
    watch.add_argument("--login", required=True, help="the Yandex account name")
    watch.add_argument("--token-file", metavar="PATH", help="file holding the OAuth token")
    watch.add_argument("--host", default=None, help="server to connect to (default push.xmpp.yandex.ru)")
    watch.add_argument("--port", type=_port, default=5222, help="STARTTLS port, or 'none' (default 5222)")
    watch.add_argument("--tls-port", type=_port, default=443, help="direct-TLS fallback port, or 'none' (default 443)")
    watch.add_argument("--cafile", help="CA bundle to verify the server with (default: certifi's)")
    watch.add_argument("--domain", default="ya.ru", help=argparse.SUPPRESS)
    watch.add_argument("--resource", default="YaDisk-client", help="XMPP resource (default YaDisk-client)")
    watch.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds allowed for each connection attempt as a whole (DNS, TCP, TLS, login, "
        "subscription) and for each request (default 30)",
    )
    watch.add_argument(
        "--close-timeout",
        type=float,
        default=5.0,
        help="seconds allowed for a clean close on Ctrl-C or SIGTERM (default 5)",
    )
    watch.add_argument("--compress", action="store_true", help="ask for zlib stream compression")
    watch.add_argument("--json", action="store_true", help="one JSON object per line")
    watch.add_argument("-v", "--verbose", action="count", default=0, help="log to stderr (-vv: with XML)")

    demo = commands.add_parser("demo", help="run a whole session against the built-in loopback server")
    demo.add_argument("-v", "--verbose", action="store_true", help="also show the XML traffic (token masked)")
    return parser


class _Stop(BaseException):
    """SIGTERM arrived (like KeyboardInterrupt, not an Exception: nothing may swallow it)."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Stop()


def _read_token(args: argparse.Namespace) -> Optional[str]:
    if args.token_file:
        with open(args.token_file, encoding="utf-8") as f:
            return f.read().strip() or None
    return os.environ.get(TOKEN_ENV, "").strip() or None


def _iso(timestamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def change_records(notification: Any) -> List[Dict[str, Any]]:
    """One dict per change (one with empty fields for a push without changes)."""
    received = _iso(notification.received_at)
    changes = notification.changes
    if not changes:
        return [{"type": None, "path": None, "fid": None, "size": None, "received_at": received}]
    records = []
    for change in changes:
        record: Dict[str, Any] = {
            "type": change.type,
            "path": change.path,
            "fid": change.fid,
            "size": change.size,
            "received_at": received,
        }
        for key, value in change.attrs.items():
            if key not in ("type", "key", "fid", "size"):
                record[key] = value
        records.append(record)
    return records


def _text_line(record: Dict[str, Any]) -> str:
    parts = [record["received_at"], record["type"] or "-", record["path"] or "-"]
    if record["size"] is not None:
        parts.append("size=%d" % record["size"])
    if record["fid"] is not None:
        parts.append("fid=%s" % record["fid"])
    for key, value in record.items():
        if key not in ("received_at", "type", "path", "size", "fid"):
            parts.append("%s=%s" % (key, value))
    return " ".join(parts)


def _fail(code: int, message: str, err: TextIO) -> int:
    err.write("yaxmpp: %s\n" % message)
    err.flush()
    return code


def run_watch(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    try:
        token = _read_token(args)
    except OSError as exc:
        return _fail(EXIT_USAGE, "cannot read the token file: %s" % (exc.strerror or exc), err)
    except UnicodeDecodeError:
        return _fail(EXIT_USAGE, "the token file is not UTF-8 text", err)
    if not token:
        return _fail(EXIT_USAGE, "no token: use --token-file or set %s" % TOKEN_ENV, err)
    logger = logging.getLogger("yaxmpp")
    saved = (logger.level, logger.propagate)
    handler: Optional[logging.Handler] = None
    if args.verbose:
        handler = logging.StreamHandler(err)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG if args.verbose > 1 else logging.INFO)
    else:
        logger.propagate = False  # errors are reported once, on one line, by the command itself
    try:
        return _watch(args, token, out, err)
    finally:  # the command may run inside a program (or a test): leave logging as it was
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
        if handler is not None:
            logger.removeHandler(handler)


def _watch(args: argparse.Namespace, token: str, out: TextIO, err: TextIO) -> int:
    import yaxmpp

    options: Dict[str, Any] = {
        "port": args.port,
        "tls_port": args.tls_port,
        "cafile": args.cafile,
        "domain": args.domain,
        "resource": args.resource or None,
        "timeout": args.timeout,
        "close_timeout": args.close_timeout,
        "compress": args.compress,
        "reconnect": yaxmpp.Reconnect(),
    }
    if args.host:
        options["host"] = args.host
    try:
        client = yaxmpp.Client(args.login, token, **options)
    except (ValueError, TypeError) as exc:  # yaxmpp.UsageError is a ValueError
        return _fail(EXIT_USAGE, str(exc), err)
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if _main_thread() else None
    try:
        client.connect()
        for notification in client.notifications():
            for record in change_records(notification):
                out.write((json.dumps(record, ensure_ascii=False) if args.json else _text_line(record)) + "\n")
            out.flush()
        return EXIT_OK
    except (KeyboardInterrupt, _Stop):
        return EXIT_OK
    except yaxmpp.AuthError as exc:
        return _fail(EXIT_AUTH, str(exc), err)
    except yaxmpp.NetworkError as exc:
        return _fail(EXIT_CONNECT, str(exc), err)
    except yaxmpp.Error as exc:
        return _fail(EXIT_ERROR, str(exc), err)
    except BrokenPipeError:
        _silence(out)  # the reader of our output went away (e.g. `| head`): not an error
        return EXIT_OK
    except UnicodeEncodeError as exc:
        return _fail(EXIT_ERROR, "cannot write a change to the output: %s" % exc.reason, err)
    finally:
        try:
            client.close()
        except (KeyboardInterrupt, _Stop):
            pass
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _silence(out: TextIO) -> None:
    """Point ``out`` at /dev/null so the interpreter's flush at exit does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def main(argv: Optional[List[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "watch":
        return run_watch(args)
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(verbose=args.verbose)
    parser.print_help(sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
