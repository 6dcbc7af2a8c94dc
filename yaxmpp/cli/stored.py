"""The account from stored credentials (``yaxmpp login``'s file), for the commands that
connect: used when neither ``--login`` nor a token source is given.

The token is refreshed first when it is near its expiry and a refresh token is stored, and
the refreshed credentials are stored again.  Failures are :class:`yaxmpp.Error` subclasses
(the caller turns them into its exit code): :class:`~yaxmpp.UsageError` for an unusable file,
:class:`~yaxmpp.AuthError` for a token expired beyond refreshing or a refused refresh,
:class:`~yaxmpp.NetworkError` subclasses when a refresh that was needed could not be made.
"""

from __future__ import annotations

import argparse
import os
from typing import Any, Optional, TextIO, Tuple

from ..credentials import Credentials, default_path, fresh, load, lookup_login, save
from ..diskapi import DEFAULT_API_URL
from ..errors import UsageError
from ..oauth import DEFAULT_OAUTH_URL

__all__ = ["add_account_arguments", "stored_account", "credentials_path", "oauth_url", "api_url"]


def _add_once(parser: argparse.ArgumentParser, flag: str, **kwargs: Any) -> None:
    """Add ``flag`` unless the parser has it already (several helpers may add these)."""
    if flag not in parser._option_string_actions:
        parser.add_argument(flag, **kwargs)


def add_account_arguments(parser: argparse.ArgumentParser, api_url: bool = True) -> None:
    """``--credentials``, ``--oauth-url`` and (with ``api_url``) ``--api-url``, each only if
    the parser lacks it.  ``--oauth-url`` and ``--api-url`` default to None: the users of
    ``args`` fall back to :data:`~yaxmpp.oauth.DEFAULT_OAUTH_URL` and
    :data:`~yaxmpp.diskapi.DEFAULT_API_URL` (so a command may give ``--api-url`` a meaning
    of its own, e.g. "only with --check-revision")."""
    _add_once(parser, "--credentials", metavar="FILE", help="the stored credentials (default %s)" % default_path().replace(_home(), "~", 1))
    _add_once(parser, "--oauth-url", metavar="URL", help="Yandex OAuth base URL (default %s)" % DEFAULT_OAUTH_URL)
    if api_url:
        _add_once(parser, "--api-url", metavar="URL", help="Disk REST API base URL (default %s)" % DEFAULT_API_URL)


def oauth_url(args: argparse.Namespace) -> str:
    return getattr(args, "oauth_url", None) or DEFAULT_OAUTH_URL


def api_url(args: argparse.Namespace) -> str:
    return getattr(args, "api_url", None) or DEFAULT_API_URL


def _home() -> str:
    return os.path.expanduser("~") or "~"


def credentials_path(args: argparse.Namespace) -> str:
    return getattr(args, "credentials", None) or default_path()


def stored_account(args: argparse.Namespace, err: Optional[TextIO] = None) -> Optional[Tuple[str, str]]:
    """(login, token) from the stored credentials; None when none are stored.
    :class:`~yaxmpp.UsageError` when ``--login`` names another account than the stored one.

    Refreshes a token near its expiry first (and stores the result), saying so on ``err``.
    A stored file without a login gets it from the Disk REST API (and stored)."""
    path = credentials_path(args)
    stored = load(path)
    if stored is None:
        return None
    wanted = getattr(args, "login", None)
    if wanted and stored.login and wanted.lower() != stored.login.lower():
        raise UsageError(
            "no token for %s: the stored credentials (%s) are %s's; give %s's token with --token-file PATH "
            "or %s, or run `yaxmpp login` for %s" % (wanted, path, stored.login, wanted, "YANDEX_DISK_TOKEN", wanted)
        )
    timeout = float(getattr(args, "timeout", 30.0) or 30.0)
    cafile = getattr(args, "cafile", None)
    renewed: Credentials = fresh(
        stored,
        path,
        oauth_url=oauth_url(args),
        timeout=timeout,
        cafile=cafile,
    )
    if renewed is not stored and err is not None:
        err.write("yaxmpp: refreshed the stored token (%s)\n" % path)
        err.flush()
    login = renewed.login or wanted
    if not login:
        login = lookup_login(renewed.access_token, api_url=api_url(args), timeout=timeout, cafile=cafile)
        renewed.login = login
        save(renewed, path)
    return login, renewed.access_token
