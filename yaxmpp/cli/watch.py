"""``yaxmpp watch``: connect, subscribe, and print one line per Disk change."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from typing import Any, Dict, List, TextIO

from .common import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    TOKEN_ENV,
    Stop,
    add_connection_arguments,
    client_options,
    exit_code,
    fail,
    logging_to,
    read_token,
    sigterm_stops,
    silence,
)

__all__ = ["register", "run_watch", "change_records"]


def register(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    watch = commands.add_parser(
        "watch",
        help="print Disk changes as they happen",
        description="Connect, subscribe and print one line per Disk change until Ctrl-C or SIGTERM. "
        "The token comes from --token-file or the %s environment variable." % TOKEN_ENV,
    )
    add_connection_arguments(watch)
    watch.add_argument("--json", action="store_true", help="one JSON object per line")
    watch.set_defaults(run=run_watch)


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


def run_watch(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    from ..errors import Error

    try:
        token = read_token(args, err)
    except Error as exc:  # the stored credentials could not be used (before OSError: ConnectError is one)
        return fail(exit_code(exc), str(exc), err)
    except OSError as exc:
        return fail(EXIT_USAGE, "cannot read the token file: %s" % (exc.strerror or exc), err)
    except UnicodeDecodeError:
        return fail(EXIT_USAGE, "the token file is not UTF-8 text", err)
    if not token:
        return fail(EXIT_USAGE, "no token: use --token-file, set %s, or run `yaxmpp login`" % TOKEN_ENV, err)
    if not args.login:
        return fail(EXIT_USAGE, "no login: use --login NAME (the account name, without @yandex.ru), or run `yaxmpp login`", err)
    with logging_to(err, args.verbose):
        return _watch(args, token, out, err)


def _watch(args: argparse.Namespace, token: str, out: TextIO, err: TextIO) -> int:
    import yaxmpp

    try:
        client = yaxmpp.Client(args.login, token, reconnect=yaxmpp.Reconnect(), **client_options(args))
    except (ValueError, TypeError) as exc:  # yaxmpp.UsageError is a ValueError
        return fail(EXIT_USAGE, str(exc), err)
    with sigterm_stops():
        try:
            client.connect()
            for notification in client.notifications():
                for record in change_records(notification):
                    out.write((json.dumps(record, ensure_ascii=False) if args.json else _text_line(record)) + "\n")
                out.flush()
            return EXIT_OK
        except (KeyboardInterrupt, Stop):
            return EXIT_OK
        except yaxmpp.Error as exc:
            return fail(exit_code(exc), str(exc), err)
        except BrokenPipeError:
            silence(out)  # the reader of our output went away (e.g. `| head`): not an error
            return EXIT_OK
        except UnicodeEncodeError as exc:
            return fail(EXIT_ERROR, "cannot write a change to the output: %s" % exc.reason, err)
        finally:
            try:
                client.close()
            except (KeyboardInterrupt, Stop):
                pass
