"""``yaxmpp doctor``: the connection one step at a time, each with its verdict, timing and,
on failure, what it means and what to try (:mod:`yaxmpp.doctor`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, TextIO

from .common import (
    EXIT_AUTH,
    EXIT_OK,
    EXIT_USAGE,
    TOKEN_ENV,
    CommandError,
    Stop,
    add_connection_arguments,
    check_connection_arguments,
    exit_code,
    fail,
    logging_to,
    read_token,
    sigterm_stops,
    token_source_note,
)
from .stored import add_account_arguments, api_url

__all__ = ["register", "run_doctor", "step_line"]


def register(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    doctor = commands.add_parser(
        "doctor",
        help="check the connection step by step and say what is wrong",
        description="Run the connection one step at a time (DNS, TCP, TLS, stream, SASL, bind, session, "
        "subscription, ping, close) and print one line per step with its result and timing; on a failure, "
        "what it means and what to try. The token comes from --token-file, %s, or the stored "
        "credentials of `yaxmpp login`. Exit 0 only when every step passed." % TOKEN_ENV,
    )
    add_connection_arguments(doctor)
    # Its own resource unless --resource is given: binding a running watch's resource would
    # make the server end that watch's session (a conflict).
    doctor.set_defaults(resource=None)
    add_account_arguments(doctor)
    doctor.add_argument("--rest", action="store_true", help="also check the token with the Disk REST API")
    doctor.add_argument("--json", action="store_true", help="one JSON object per step")
    doctor.set_defaults(run=run_doctor)


def step_line(step: "object") -> List[str]:
    """The text lines of one step: the verdict, then the hint (if any)."""
    from ..doctor import StepResult

    assert isinstance(step, StepResult)
    lines = ["%-4s %-27s %8.1f ms  %s" % ("ok" if step.ok else "FAIL", step.title, step.seconds * 1000, step.detail)]
    if step.hint:
        lines.append("     -> %s" % step.hint)
    return lines


def run_doctor(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    import yaxmpp
    from ..doctor import StepResult, diagnose

    try:
        check_connection_arguments(args)  # --port none --tls-port none, a --cafile that is not PEM...
        token = read_token(args, err)
    except CommandError as exc:
        return fail(exc.code, exc.message, err)
    except yaxmpp.Error as exc:
        return fail(exit_code(exc), str(exc), err)
    if not token:
        return fail(EXIT_USAGE, "no token: use --token-file PATH, set %s, or run `yaxmpp login`" % TOKEN_ENV, err)
    note = token_source_note(args)
    if note:
        err.write("yaxmpp: %s\n" % note)
    if not args.login:  # a token without its login: the Disk API knows it
        from ..credentials import lookup_login

        try:
            args.login = lookup_login(token, api_url=api_url(args), timeout=args.timeout, cafile=args.cafile)
        except yaxmpp.Error as exc:
            return fail(
                EXIT_USAGE,
                "no login: use --login NAME (the account name, without @yandex.ru); the Disk API could not tell it (%s)" % exc,
                err,
            )
        err.write("yaxmpp: the token's login, from the Disk API: %s\n" % args.login)

    def show(step: StepResult) -> None:
        if args.json:
            out.write(json.dumps(step.to_json(), ensure_ascii=False) + "\n")
        else:
            out.write("".join(line + "\n" for line in step_line(step)))
        out.flush()

    options = {
        "port": args.port,
        "tls_port": args.tls_port,
        "cafile": args.cafile,
        "domain": args.domain,
        "resource": ("yaxmpp-doctor-%d" % os.getpid()) if args.resource is None else (args.resource or None),
        "timeout": args.timeout,
        "close_timeout": args.close_timeout,
        "compress": args.compress,
    }
    if args.host:
        options["host"] = args.host
    with logging_to(err, args.verbose), sigterm_stops():
        try:
            steps = diagnose(args.login, token, rest=args.rest, api_url=api_url(args), on_step=show, **options)
        except (KeyboardInterrupt, Stop):
            return fail(1, "interrupted", err)
        except (ValueError, TypeError) as exc:  # yaxmpp.UsageError is a ValueError
            return fail(EXIT_USAGE, str(exc), err)
        except BrokenPipeError:
            return EXIT_OK
    # The exit code of the failure watch would have ended with: a port that failed while the
    # other one carried on is reported, but a failure after it (or the REST check's) decides.
    failures = [step for step in steps if not step.ok]
    fatal = [step for step in failures if step.name not in ("tcp-starttls", "tcp-tls")]
    if not failures:
        return EXIT_OK
    first = (fatal or failures)[0]
    assert first.error is not None
    if isinstance(first.error, yaxmpp.APIError) and first.error.status in (401, 403):
        return EXIT_AUTH  # the REST API refused the token
    return exit_code(first.error)
