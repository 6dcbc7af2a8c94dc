"""Stored credentials: the token ``yaxmpp login`` obtained, kept for ``watch`` and ``doctor``.

::

    from yaxmpp import credentials

    stored = credentials.load()                      # None when nothing is stored
    stored = credentials.fresh(stored)               # refreshed (and stored) when near expiry
    client = yaxmpp.Client(stored.login, stored.access_token)

The file is JSON, by default ``$XDG_CONFIG_HOME/yaxmpp/credentials.json`` (``~/.config/...``
when that variable is unset or not an absolute path).  It is written atomically (a temporary
file in the same directory, flushed to disk, then renamed over the old one), readable by its
owner only (mode 0600, its directory 0700 when created here).  It holds ``access_token``,
``refresh_token``, ``expires_at`` (Unix time), ``client_id``, ``client_secret``, ``login``
and ``device_id``.  No repr shows a token or the secret, and no error quotes the file.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from typing import Any, Dict, Mapping, Optional, Tuple

from .cancel import Cancel
from .diskapi import DEFAULT_API_URL, disk_info
from .errors import APIError, AuthError, NetworkError, UsageError
from .oauth import DEFAULT_OAUTH_URL, Tokens, refresh_token

__all__ = [
    "Credentials",
    "default_path",
    "load",
    "save",
    "fresh",
    "lookup_login",
    "account",
    "REFRESH_MARGIN",
    "FILE_MODE",
    "DIR_MODE",
]

log = logging.getLogger("yaxmpp")

#: A token with less than this many seconds left is refreshed first (Yandex tokens live for
#: months; a week leaves room for a machine that was off).
REFRESH_MARGIN = 7 * 86400.0
FILE_MODE = 0o600
DIR_MODE = 0o700
FORMAT = 1
#: The last second of the year 9999: a later (or infinite) expiry in a file is not usable.
MAX_EXPIRES_AT = 253402300799

_FIELDS = ("access_token", "refresh_token", "expires_at", "client_id", "client_secret", "login", "device_id")


class Credentials:
    """One account's stored credentials.  Only ``access_token`` is required."""

    __slots__ = _FIELDS

    def __init__(
        self,
        access_token: str,
        *,
        refresh_token: Optional[str] = None,
        expires_at: Optional[float] = None,
        client_id: Optional[str] = None,
        client_secret: Optional[str] = None,
        login: Optional[str] = None,
        device_id: Optional[str] = None,
    ) -> None:
        if not isinstance(access_token, str) or not access_token.strip():
            raise UsageError("access_token must be a non-empty string")
        self.access_token = access_token
        self.refresh_token = refresh_token
        self.expires_at = expires_at
        self.client_id = client_id
        self.client_secret = client_secret
        self.login = login
        self.device_id = device_id

    @classmethod
    def from_tokens(
        cls,
        tokens: Tokens,
        *,
        client_id: Optional[str] = None,
        client_secret: Optional[str] = None,
        login: Optional[str] = None,
        device_id: Optional[str] = None,
        now: Optional[float] = None,
        previous: Optional["Credentials"] = None,
    ) -> "Credentials":
        """Credentials from a token answer (``expires_in`` counted from ``now``, default
        :func:`time.time`).  ``previous`` supplies what the answer lacks (a refresh answer
        without a new refresh token keeps the old one)."""
        moment = time.time() if now is None else now
        return cls(
            tokens.access_token,
            refresh_token=tokens.refresh_token or (previous.refresh_token if previous else None),
            expires_at=None if tokens.expires_in is None else moment + tokens.expires_in,
            client_id=client_id or (previous.client_id if previous else None),
            client_secret=client_secret or (previous.client_secret if previous else None),
            login=login or (previous.login if previous else None),
            device_id=device_id or (previous.device_id if previous else None),
        )

    def expires_within(self, seconds: float, now: Optional[float] = None) -> bool:
        """Whether the token expires within ``seconds`` (False when its expiry is unknown)."""
        if self.expires_at is None:
            return False
        return self.expires_at - (time.time() if now is None else now) <= seconds

    def expired(self, now: Optional[float] = None) -> bool:
        return self.expires_within(0.0, now)

    @property
    def can_refresh(self) -> bool:
        return bool(self.refresh_token and self.client_id and self.client_secret)

    def to_json(self) -> Dict[str, Any]:
        document: Dict[str, Any] = {"format": FORMAT}
        for name in _FIELDS:
            value = getattr(self, name)
            if value is not None:
                document[name] = int(value) if name == "expires_at" else value
        return document

    @classmethod
    def from_json(cls, document: Any) -> "Credentials":
        """From the stored JSON object; :class:`~yaxmpp.UsageError` naming the field that is
        wrong (never its value)."""
        if not isinstance(document, dict):
            raise UsageError("the credentials file does not hold a JSON object")
        values: Dict[str, Any] = {}
        for name in _FIELDS:
            value = document.get(name)
            if value is None:
                continue
            if name == "expires_at":
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_EXPIRES_AT:
                    raise UsageError("the credentials file has an unusable expires_at")  # (NaN fails the range too)
            elif not isinstance(value, str):
                raise UsageError("the credentials file has an unusable %s" % name)
            values[name] = value
        if not values.get("access_token"):
            raise UsageError("the credentials file holds no access_token")
        access = values.pop("access_token")
        return cls(access, **values)

    def __repr__(self) -> str:
        return "<yaxmpp.credentials.Credentials login=%r client_id=%r expires_at=%r access_token=*** refresh_token=%s client_secret=%s>" % (
            self.login,
            self.client_id,
            self.expires_at,
            "***" if self.refresh_token else None,
            "***" if self.client_secret else None,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Credentials) and all(getattr(self, n) == getattr(other, n) for n in _FIELDS)

    __hash__ = None  # type: ignore[assignment]


def default_path(environ: Optional[Mapping[str, str]] = None) -> str:
    """``$XDG_CONFIG_HOME/yaxmpp/credentials.json``, or ``~/.config/yaxmpp/credentials.json``
    when ``XDG_CONFIG_HOME`` is unset, empty or relative (as the XDG spec says)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME", "")
    if not base or not os.path.isabs(base):
        home = env.get("HOME") or os.path.expanduser("~")
        base = os.path.join(home, ".config")
    return os.path.join(base, "yaxmpp", "credentials.json")


def load(path: Optional[str] = None) -> Optional[Credentials]:
    """The credentials stored at ``path`` (default :func:`default_path`); None when there is
    no such file.  :class:`~yaxmpp.UsageError` for a file that cannot be read or used."""
    path = path or default_path()
    try:
        with open(path, "rb") as f:
            raw = f.read(1 << 20)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UsageError("cannot read the credentials file %s: %s" % (path, exc.strerror or type(exc).__name__)) from None
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise UsageError("the credentials file %s is not JSON" % path) from None
    try:
        return Credentials.from_json(document)
    except UsageError as exc:
        raise UsageError("%s (%s)" % (exc, path)) from None


def save(credentials: Credentials, path: Optional[str] = None) -> str:
    """Write ``credentials`` to ``path`` (default :func:`default_path`) atomically, mode 0600;
    the path.  A directory made here is 0700.  :class:`~yaxmpp.UsageError` when it cannot be
    written (the old file, if any, is then left as it was)."""
    path = os.path.abspath(path or default_path())
    folder = os.path.dirname(path)
    data = (json.dumps(credentials.to_json(), indent=2, sort_keys=True) + "\n").encode("utf-8")
    try:
        if not os.path.isdir(folder):
            os.makedirs(folder, mode=DIR_MODE, exist_ok=True)
            os.chmod(folder, DIR_MODE)  # makedirs' mode is cut by the umask
        fd, temporary = tempfile.mkstemp(prefix=".credentials-", suffix=".tmp", dir=folder)  # mode 0600
    except OSError as exc:
        raise UsageError("cannot write the credentials file %s: %s" % (path, exc.strerror or type(exc).__name__)) from None
    try:
        try:
            if hasattr(os, "fchmod"):  # (mkstemp made it 0600 already; this is belt and braces)
                os.fchmod(fd, FILE_MODE)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except OSError as exc:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise UsageError("cannot write the credentials file %s: %s" % (path, exc.strerror or type(exc).__name__)) from None
    try:  # the rename itself on disk (best effort: not every platform can open a directory)
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return path
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
    return path


def lookup_login(
    token: str,
    *,
    api_url: str = DEFAULT_API_URL,
    timeout: float = 10.0,
    cafile: Optional[str] = None,
    cancel: Optional[Cancel] = None,
) -> str:
    """The account name (``user.login`` of ``GET /v1/disk/``): what the push service calls the
    login.  :class:`~yaxmpp.APIError` when the API does not say (401: the token is wrong,
    expired or lacks Disk access)."""
    info = disk_info(token, api_url=api_url, timeout=timeout, cafile=cafile, cancel=cancel)
    if not info.login:
        raise APIError("the Disk API did not say the account's login", status=200)
    return info.login


_REFUSED = ("invalid_grant", "invalid_client", "unauthorized_client", "access_denied")


def fresh(
    credentials: Credentials,
    path: Optional[str] = None,
    *,
    margin: float = REFRESH_MARGIN,
    oauth_url: str = DEFAULT_OAUTH_URL,
    timeout: float = 10.0,
    cafile: Optional[str] = None,
    now: Optional[float] = None,
    store: bool = True,
) -> Credentials:
    """``credentials`` with a token good for more than ``margin`` seconds when that can be had.

    A token near its expiry (or past it) with a refresh token, client id and secret stored is
    refreshed (``grant_type=refresh_token``) and the result saved to ``path`` (unless
    ``store`` is False) before it is returned.  Otherwise the credentials come back as they
    are; a token already expired that cannot be refreshed is an :class:`~yaxmpp.AuthError`.
    A refresh the server refuses is an :class:`~yaxmpp.AuthError` too; a network failure
    while the token is still valid only logs a warning and keeps the old token.
    """
    moment = time.time() if now is None else now
    if not credentials.expires_within(margin, moment):
        return credentials
    if not credentials.can_refresh:
        if credentials.expired(moment):
            raise AuthError("credentials-expired", "the stored token has expired and cannot be refreshed; run `yaxmpp login`")
        log.warning("the stored token expires soon and cannot be refreshed; run `yaxmpp login`")
        return credentials
    assert credentials.refresh_token and credentials.client_id and credentials.client_secret
    try:
        tokens = refresh_token(
            credentials.client_id,
            credentials.client_secret,
            credentials.refresh_token,
            oauth_url=oauth_url,
            timeout=timeout,
            cafile=cafile,
        )
    except APIError as exc:
        if exc.error in _REFUSED or exc.status in (400, 401, 403):
            raise AuthError(
                "refresh-refused", "refreshing the stored token failed: %s; run `yaxmpp login`" % (exc.description or exc.error or exc)
            ) from None
        if credentials.expired(moment):
            raise
        log.warning("could not refresh the stored token (%s); using it while it lasts", exc)
        return credentials
    except NetworkError as exc:
        if credentials.expired(moment):
            raise
        log.warning("could not refresh the stored token (%s); using it while it lasts", exc)
        return credentials
    renewed = Credentials.from_tokens(tokens, previous=credentials, now=moment)
    if store:
        save(renewed, path)
    log.info("refreshed the stored token")
    return renewed


def account(
    path: Optional[str] = None,
    *,
    oauth_url: str = DEFAULT_OAUTH_URL,
    api_url: str = DEFAULT_API_URL,
    timeout: float = 10.0,
    cafile: Optional[str] = None,
) -> Tuple[str, str]:
    """(login, access token) from the stored credentials, as ``yaxmpp watch`` uses them: the
    token refreshed first (and stored) when near its expiry, the login looked up with the
    Disk API (and stored) when the file lacks it.  :class:`~yaxmpp.UsageError` when nothing
    is stored; otherwise the errors of :func:`load`, :func:`fresh` and :func:`lookup_login`."""
    path = path or default_path()
    stored = load(path)
    if stored is None:
        raise UsageError("no stored credentials in %s: run `yaxmpp login`" % path)
    renewed = fresh(stored, path, oauth_url=oauth_url, timeout=timeout, cafile=cafile)
    if not renewed.login:
        renewed.login = lookup_login(renewed.access_token, api_url=api_url, timeout=timeout, cafile=cafile)
        save(renewed, path)
    return renewed.login, renewed.access_token
