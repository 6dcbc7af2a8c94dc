"""The Yandex.Disk REST API, the little of it yaxmpp needs: ``GET /v1/disk/``.

Its answer carries the disk's ``revision`` (a number that grows with every change: compared
across a gap in the push stream it says whether something changed meanwhile) and the account's
``user.login`` (the name the push service wants).  One bounded HTTPS request (:mod:`yaxmpp.https`);
the token goes only into the ``Authorization`` header and is masked out of every error.
"""

from __future__ import annotations

import re
from typing import Any, Dict, NamedTuple, Optional

from .cancel import Cancel
from .errors import APIError
from .https import request_json
from .protocol.redact import Secret

__all__ = ["DEFAULT_API_URL", "DiskInfo", "disk_info"]

DEFAULT_API_URL = "https://cloud-api.yandex.net"

# A revision given as text: ASCII digits only (str.isdigit also takes "\u00b2", which int()
# refuses), and short enough for int() (which refuses more than 4300 digits).
_DIGITS = re.compile(r"[0-9]{1,30}\Z")
# A login the push service can take as a JID's local part, and a terminal can show: printable
# ASCII or letters, none of the characters RFC 7622 forbids there.  Anything else is taken as
# no login at all (a hostile answer must not put "x@evil" or a terminal escape in the JID).
_LOGIN = re.compile(r"[^\x00-\x20\x7f-\x9f\"&'/:<>@]{1,255}\Z")


class DiskInfo(NamedTuple):
    """What ``GET /v1/disk/`` said: ``revision`` and ``login`` (None when absent, or when it
    could not be a login: control characters, ``@``, ...), ``raw`` (the whole JSON object)."""

    revision: Optional[int]
    login: Optional[str]
    raw: Dict[str, Any]


def disk_info(
    token: "str | Secret",
    *,
    api_url: str = DEFAULT_API_URL,
    timeout: float = 10.0,
    cafile: Optional[str] = None,
    cancel: Optional[Cancel] = None,
) -> DiskInfo:
    """Ask the Disk REST API about the token's disk (``Authorization: OAuth <token>``).

    Raises :class:`~yaxmpp.APIError` (``status`` 401 for a token that is wrong, expired or
    lacks Disk access), :class:`~yaxmpp.NetworkError` subclasses, or
    :class:`~yaxmpp.UsageError` for a bad ``api_url``.
    """
    value = token.reveal() if isinstance(token, Secret) else token
    url = api_url.rstrip("/") + "/v1/disk/"
    document = request_json(
        "GET", url, headers={"Authorization": "OAuth %s" % value}, timeout=timeout, cafile=cafile, secrets=[value], cancel=cancel
    )
    revision = document.get("revision")
    if isinstance(revision, bool) or not isinstance(revision, (int, type(None))):
        if isinstance(revision, str) and _DIGITS.match(revision):
            revision = int(revision)
        else:
            raise APIError("the Disk API answered a revision that is not a number", status=200)
    user = document.get("user")
    login = user.get("login") if isinstance(user, dict) else None
    return DiskInfo(revision, login if isinstance(login, str) and _LOGIN.match(login) else None, document)
