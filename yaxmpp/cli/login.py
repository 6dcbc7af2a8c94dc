"""``yaxmpp login``: get a token with Yandex's device flow (or store one obtained by hand),
find the account's login, and store both for ``watch`` and ``doctor``."""

from __future__ import annotations

import argparse
import datetime
import os
import socket
import sys
import uuid
from typing import Optional, TextIO, Tuple

from .common import (
    EXIT_AUTH,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    Stop,
    _token_from_file,
    exit_code,
    fail,
    logging_to,
    positive_seconds,
    sigterm_stops,
)
from .stored import add_account_arguments, api_url, credentials_path, oauth_url

__all__ = ["register", "run_login", "SECRET_ENV"]

#: Where the client secret may come from instead of the command line (where ``ps`` shows it).
SECRET_ENV = "YAXMPP_CLIENT_SECRET"


def register(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    login = commands.add_parser(
        "login",
        help="get a token (Yandex's device flow) and store it",
        description="Get an OAuth token for your own registered app with Yandex's device flow: open the "
        "address shown, enter the code, confirm. The token, the refresh token, the app's id and secret "
        "and the account's login are stored (mode 0600) for `yaxmpp watch` and `yaxmpp doctor`. "
        "With --token-file, a token obtained by hand is stored instead.",
    )
    login.add_argument("--client-id", metavar="ID", help="your app's ClientID (oauth.yandex.ru)")
    login.add_argument(
        "--client-secret",
        metavar="SECRET",
        help="your app's Client secret (or set %s: the command line is visible to other users)" % SECRET_ENV,
    )
    login.add_argument("--device-name", metavar="NAME", help="the name Yandex shows for this device (default: yaxmpp on HOSTNAME)")
    login.add_argument("--token-file", metavar="PATH", help="store this token (obtained by hand) instead of running the device flow")
    login.add_argument("--login", help="the account name, if it cannot be looked up (without @yandex.ru)")
    login.add_argument("--cafile", help="CA bundle to verify the HTTPS endpoints with (default: certifi's)")
    login.add_argument("--timeout", type=positive_seconds, default=30.0, help="seconds allowed for each HTTPS request (default 30)")
    login.add_argument("-v", "--verbose", action="count", default=0, help="log to stderr")
    add_account_arguments(login)
    login.set_defaults(run=run_login)


def _when(timestamp: Optional[float]) -> str:
    if timestamp is None:
        return "an unknown date"
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def run_login(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    import yaxmpp

    with logging_to(err, args.verbose), sigterm_stops():
        try:
            if args.token_file:
                return _store_by_hand(args, out, err)
            return _device_flow(args, out, err)
        except (KeyboardInterrupt, Stop):
            return fail(EXIT_ERROR, "interrupted; nothing was stored", err)
        except yaxmpp.APIError as exc:
            # the server said no (a wrong id or secret, denied, expired): an authentication failure
            refused = (exc.status is not None and 400 <= exc.status < 500) or (exc.status is None and exc.error is not None)
            return fail(EXIT_AUTH if refused else EXIT_ERROR, str(exc), err)
        except yaxmpp.Error as exc:
            return fail(exit_code(exc), str(exc), err)


def _looked_up(args: argparse.Namespace, token: str, err: TextIO) -> Tuple[Optional[str], int]:
    """The account's login from the Disk API (``--login`` wins), or None, said on ``err``,
    with the exit code for why it could not be found."""
    import yaxmpp
    from ..credentials import lookup_login

    if args.login:
        return str(args.login), EXIT_OK
    try:
        return lookup_login(token, api_url=api_url(args), timeout=args.timeout, cafile=args.cafile), EXIT_OK
    except yaxmpp.Error as exc:
        err.write("yaxmpp: could not look up the account's login (%s); give it with --login NAME\n" % exc)
        refused = isinstance(exc, yaxmpp.APIError) and exc.status in (401, 403)
        return None, EXIT_AUTH if refused else exit_code(exc)


def _store_by_hand(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..credentials import Credentials, save

    try:
        token = _token_from_file(args.token_file)  # read, and worded, as watch reads it
    except CommandError as exc:
        return fail(exc.code, exc.message, err)
    if token.isdigit() and len(token) <= 10:
        return fail(
            EXIT_USAGE,
            "the token file holds a short number: that is a confirmation code, not a token "
            "(exchange it for a token, or use `yaxmpp login --client-id ID` for the device flow)",
            err,
        )
    login, code = _looked_up(args, token, err)
    if login is None:
        return code
    path = save(Credentials(token, login=login, client_id=args.client_id), credentials_path(args))
    out.write("Stored the token for %s in %s (it cannot be refreshed: run `yaxmpp login` again when it expires).\n" % (login, path))
    out.flush()
    return EXIT_OK


def _device_flow(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .. import oauth
    from ..credentials import Credentials, load, save
    from ..errors import UsageError

    client_id = args.client_id
    secret = args.client_secret or os.environ.get(SECRET_ENV, "").strip()
    if not client_id or not secret:
        return fail(
            EXIT_USAGE,
            "login needs your app's --client-id and --client-secret (or %s); register an app at "
            "https://oauth.yandex.ru/client/new (see the README, \"Getting a token\")" % SECRET_ENV,
            err,
        )
    path = credentials_path(args)
    try:
        previous = load(path)
    except UsageError:
        previous = None  # an unusable old file is replaced
    device_id = previous.device_id if previous is not None and previous.device_id else uuid.uuid4().hex
    device_name = args.device_name or ("yaxmpp on %s" % (socket.gethostname() or "this computer"))[:100]
    code = oauth.request_device_code(
        client_id, device_id=device_id, device_name=device_name, oauth_url=oauth_url(args), timeout=args.timeout, cafile=args.cafile
    )
    minutes = max(1, int(round(code.expires_in / 60)))
    out.write(
        "To let yaxmpp use your Yandex.Disk, open\n\n    %s\n\nand enter the code\n\n    %s\n\n"
        "Waiting for your confirmation (the code is valid for %d minute%s)...\n"
        % (code.verification_url, code.user_code, minutes, "" if minutes == 1 else "s")
    )
    out.flush()
    tokens = oauth.wait_for_token(client_id, secret, code, oauth_url=oauth_url(args), timeout=args.timeout, cafile=args.cafile)
    login, why = _looked_up(args, tokens.access_token, err)
    credentials = Credentials.from_tokens(tokens, client_id=client_id, client_secret=secret, login=login, device_id=device_id)
    stored = save(credentials, path)
    if login is None:
        out.write("The token is stored in %s, without the login.\n" % stored)
        out.flush()
        return why
    out.write("Logged in as %s. The token is stored in %s (valid until %s).\n" % (login, stored, _when(credentials.expires_at)))
    out.write("Next: yaxmpp doctor, then yaxmpp watch\n")
    out.flush()
    return EXIT_OK
