"""Yandex OAuth, the little of it yaxmpp needs: the device flow ("the user enters the code on
the Yandex OAuth page") and the refresh of a token.

::

    code = oauth.request_device_code(client_id)
    print("Open %s and enter %s" % (code.verification_url, code.user_code))
    tokens = oauth.wait_for_token(client_id, client_secret, code)   # polls until confirmed

The endpoints (``POST /device/code`` and ``POST /token`` under :data:`DEFAULT_OAUTH_URL`) take
form-encoded bodies.  Yandex names the device code ``code`` in the token request (RFC 8628
calls it ``device_code``), with ``grant_type=device_code``.  The token endpoint answers
``authorization_pending`` until the user confirms (polling goes on), ``slow_down`` (the
interval grows by :data:`SLOW_DOWN_STEP` seconds), or another error, which ends the wait
with an :class:`~yaxmpp.APIError` carrying the server's ``error`` and ``error_description``.
The wait also ends when the code's ``expires_in`` has passed (``error="expired_token"``).

Every request is one bounded HTTPS exchange (:mod:`yaxmpp.https`); the client secret, the
device code and the refresh token are masked out of every error, and no repr here shows a
token or a secret.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any, Callable, Dict, Mapping, Optional

from .cancel import Cancel
from .errors import APIError, ClientClosed, ConnectError, ConnectionLost, Error, Timeout, UsageError
from .https import request_json

__all__ = [
    "DEFAULT_OAUTH_URL",
    "DEFAULT_INTERVAL",
    "SLOW_DOWN_STEP",
    "DeviceCode",
    "Tokens",
    "request_device_code",
    "exchange_device_code",
    "wait_for_token",
    "refresh_token",
    "PENDING",
    "SLOW_DOWN",
    "EXPIRED",
]

DEFAULT_OAUTH_URL = "https://oauth.yandex.ru"
#: Seconds between polls when the server names no interval (RFC 8628 §3.2).
DEFAULT_INTERVAL = 5.0
#: Seconds added to the interval on each ``slow_down`` (RFC 8628 §3.5).
SLOW_DOWN_STEP = 5.0

PENDING = "authorization_pending"
SLOW_DOWN = "slow_down"
EXPIRED = "expired_token"


#: The bounds put on the server's ``interval`` (so a hostile or broken server can make the
#: wait neither hammer it nor stall) and ``expires_in`` of a device code (seconds).
MIN_INTERVAL = 0.25
MAX_INTERVAL = 60.0
MAX_CODE_LIFETIME = 3600.0
#: A token's ``expires_in`` beyond this (ten years) is taken as this.
MAX_TOKEN_LIFETIME = 10 * 365 * 86400.0

# Printable ASCII without space: what a code, a token or a URL is made of (RFC 6749 A.12);
# anything else (a terminal escape, a line break for a header) is refused.
_TOKEN = re.compile(r"[\x21-\x7e]{1,8192}\Z")
_DIGITS = re.compile(r"[0-9]{1,15}\Z")


def _text(document: Mapping[str, Any], key: str, what: str) -> str:
    value = document.get(key)
    if not isinstance(value, str) or not value:
        raise APIError("the %s answer has no %s" % (what, key), status=200)
    if not _TOKEN.match(value):
        raise APIError("the %s answer has an unusable %s" % (what, key), status=200)
    return value


def _seconds(document: Mapping[str, Any], key: str, default: Optional[float]) -> Optional[float]:
    value = document.get(key)
    if value is None:
        return default
    if isinstance(value, str) and _DIGITS.match(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise APIError("the OAuth answer has an unusable %s" % key, status=200)
    try:
        seconds = float(value)
    except OverflowError:  # an int beyond a float
        seconds = math.inf
    if not math.isfinite(seconds) or seconds < 0:
        raise APIError("the OAuth answer has an unusable %s" % key, status=200)
    return seconds


def _lifetime(seconds: Optional[float]) -> Optional[float]:
    return None if seconds is None else min(seconds, MAX_TOKEN_LIFETIME)


class DeviceCode:
    """What ``POST /device/code`` answered: ``user_code`` and ``verification_url`` (for the
    user), ``device_code`` (for the token requests: kept out of the repr), ``interval`` and
    ``expires_in`` (seconds)."""

    __slots__ = ("device_code", "user_code", "verification_url", "interval", "expires_in")

    def __init__(self, device_code: str, user_code: str, verification_url: str, interval: float, expires_in: float) -> None:
        self.device_code = device_code
        self.user_code = user_code
        self.verification_url = verification_url
        self.interval = interval
        self.expires_in = expires_in

    @classmethod
    def from_answer(cls, document: Mapping[str, Any]) -> "DeviceCode":
        interval = _seconds(document, "interval", DEFAULT_INTERVAL)
        expires_in = _seconds(document, "expires_in", 600.0)
        assert interval is not None and expires_in is not None
        url = document.get("verification_url", document.get("verification_uri"))
        if url is not None and not (isinstance(url, str) and _TOKEN.match(url) and url.lower().startswith(("https://", "http://"))):
            raise APIError("the device code answer has an unusable verification_url", status=200)
        return cls(
            _text(document, "device_code", "device code"),
            _text(document, "user_code", "device code"),
            url or "https://ya.ru/device",
            min(max(interval, MIN_INTERVAL), MAX_INTERVAL),
            min(expires_in, MAX_CODE_LIFETIME),
        )

    def __repr__(self) -> str:
        return "DeviceCode(user_code=%r, verification_url=%r, interval=%r, expires_in=%r)" % (
            self.user_code,
            self.verification_url,
            self.interval,
            self.expires_in,
        )


class Tokens:
    """A successful token answer: ``access_token``, ``refresh_token`` (None when absent),
    ``expires_in`` (seconds, None when absent), ``token_type``, ``scope``.  Its repr shows
    neither token."""

    __slots__ = ("access_token", "refresh_token", "expires_in", "token_type", "scope")

    def __init__(
        self,
        access_token: str,
        refresh_token: Optional[str] = None,
        expires_in: Optional[float] = None,
        token_type: Optional[str] = None,
        scope: Optional[str] = None,
    ) -> None:
        self.access_token = access_token
        self.refresh_token = refresh_token
        self.expires_in = expires_in
        self.token_type = token_type
        self.scope = scope

    @classmethod
    def from_answer(cls, document: Mapping[str, Any]) -> "Tokens":
        refresh = document.get("refresh_token")
        token_type = document.get("token_type")
        scope = document.get("scope")
        return cls(
            _text(document, "access_token", "token"),
            refresh if isinstance(refresh, str) and refresh else None,
            _lifetime(_seconds(document, "expires_in", None)),
            token_type if isinstance(token_type, str) else None,
            scope if isinstance(scope, str) else None,
        )

    def __repr__(self) -> str:
        return "Tokens(access_token=***, refresh_token=%s, expires_in=%r, scope=%r)" % (
            "***" if self.refresh_token else None,
            self.expires_in,
            self.scope,
        )


def _check(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise UsageError("%s must be a non-empty string" % name)
    return value


def _post(oauth_url: str, path: str, form: Dict[str, str], timeout: float, cafile: Optional[str], cancel: Optional[Cancel], secrets: Any) -> Dict[str, Any]:
    url = oauth_url.rstrip("/") + path
    return request_json("POST", url, form=form, timeout=timeout, cafile=cafile, secrets=secrets, cancel=cancel)


def request_device_code(
    client_id: str,
    *,
    device_id: Optional[str] = None,
    device_name: Optional[str] = None,
    oauth_url: str = DEFAULT_OAUTH_URL,
    timeout: float = 10.0,
    cafile: Optional[str] = None,
    cancel: Optional[Cancel] = None,
) -> DeviceCode:
    """``POST /device/code``: a device code and the code to show the user.

    ``device_id`` (6 to 50 printable ASCII characters, the same every time on one device) and
    ``device_name`` let the user see and revoke this device's token.  Raises
    :class:`~yaxmpp.APIError` (e.g. ``invalid_client`` for an unknown client id),
    :class:`~yaxmpp.NetworkError` subclasses, :class:`~yaxmpp.UsageError`.
    """
    form = {"client_id": _check("client_id", client_id)}
    if device_id:
        form["device_id"] = device_id
    if device_name:
        form["device_name"] = device_name
    return DeviceCode.from_answer(_post(oauth_url, "/device/code", form, timeout, cafile, cancel, ()))


def exchange_device_code(
    client_id: str,
    client_secret: str,
    device_code: "str | DeviceCode",
    *,
    oauth_url: str = DEFAULT_OAUTH_URL,
    timeout: float = 10.0,
    cafile: Optional[str] = None,
    cancel: Optional[Cancel] = None,
) -> Tokens:
    """One token request for a device code (``grant_type=device_code``, ``code=…``).

    While the user has not confirmed, raises :class:`~yaxmpp.APIError` with ``error``
    :data:`PENDING` (or :data:`SLOW_DOWN`); :func:`wait_for_token` does the polling."""
    code = device_code.device_code if isinstance(device_code, DeviceCode) else device_code
    form = {
        "grant_type": "device_code",
        "code": _check("device_code", code),
        "client_id": _check("client_id", client_id),
        "client_secret": _check("client_secret", client_secret),
    }
    return Tokens.from_answer(_post(oauth_url, "/token", form, timeout, cafile, cancel, (client_secret, code)))


def wait_for_token(
    client_id: str,
    client_secret: str,
    device_code: DeviceCode,
    *,
    oauth_url: str = DEFAULT_OAUTH_URL,
    timeout: float = 10.0,
    cafile: Optional[str] = None,
    cancel: Optional[Cancel] = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Optional[Callable[[float], None]] = None,
    on_poll: Optional[Callable[[int, Optional[str]], None]] = None,
) -> Tokens:
    """Poll the token endpoint until the user confirms the code; the tokens.

    Waits ``device_code.interval`` seconds before every request (so never faster), longer
    after each ``slow_down``; keeps waiting on ``authorization_pending``, and through a poll
    that failed for the network's reasons (:class:`~yaxmpp.ConnectError`,
    :class:`~yaxmpp.Timeout`, :class:`~yaxmpp.ConnectionLost`: a blip must not cost the user
    the code; a TLS failure still ends the wait); stops with the server's error on anything
    else, and with ``error="expired_token"`` once ``device_code.expires_in`` seconds have
    passed since the call (or with the network error, if the last poll failed that way).  ``timeout`` bounds each
    request.  ``cancel`` (set from another thread) stops the wait at once with
    :class:`~yaxmpp.ClientClosed`.  ``clock`` and ``sleep`` are for tests (a fake clock);
    by default the wait is ``cancel.wait`` or :func:`time.sleep`.  ``on_poll(n, error)`` is
    called after each answer (``error`` None on success).
    """
    if sleep is None:
        if cancel is not None:
            waiter = cancel

            def sleep(seconds: float) -> None:
                waiter.wait(seconds)

        else:
            sleep = time.sleep
    interval = device_code.interval
    ends = clock() + device_code.expires_in
    polls = 0
    lost: Optional[Error] = None  # the last poll failed for the network's reasons
    while True:
        left = ends - clock()
        if left > 0:
            sleep(min(interval, left))
        if cancel is not None and cancel.cancelled:
            raise ClientClosed("the wait for the confirmation was cancelled")
        if clock() >= ends:
            if lost is not None:
                raise lost
            raise APIError(
                "the code was not confirmed within %gs and has expired" % device_code.expires_in,
                error=EXPIRED,
                description="the code expired before it was confirmed",
            )
        polls += 1
        try:
            tokens = exchange_device_code(
                client_id, client_secret, device_code, oauth_url=oauth_url, timeout=timeout, cafile=cafile, cancel=cancel
            )
        except (ConnectError, Timeout, ConnectionLost) as exc:
            lost = exc
            if on_poll is not None:
                on_poll(polls, "network")
            continue  # polled again after the interval, until the code expires
        except APIError as exc:
            lost = None
            if on_poll is not None:
                on_poll(polls, exc.error or "error")
            if exc.error == PENDING:
                continue
            if exc.error == SLOW_DOWN:
                interval += SLOW_DOWN_STEP
                continue
            raise
        if on_poll is not None:
            on_poll(polls, None)
        return tokens


def refresh_token(
    client_id: str,
    client_secret: str,
    refresh_token: str,
    *,
    oauth_url: str = DEFAULT_OAUTH_URL,
    timeout: float = 10.0,
    cafile: Optional[str] = None,
    cancel: Optional[Cancel] = None,
) -> Tokens:
    """``grant_type=refresh_token``: new tokens for a refresh token (the answer may carry a
    new refresh token, to be stored in place of the old one).  Raises
    :class:`~yaxmpp.APIError` (``invalid_grant`` for a refresh token that is no longer valid,
    ``invalid_client`` for a wrong secret) and :class:`~yaxmpp.NetworkError` subclasses."""
    form = {
        "grant_type": "refresh_token",
        "refresh_token": _check("refresh_token", refresh_token),
        "client_id": _check("client_id", client_id),
        "client_secret": _check("client_secret", client_secret),
    }
    return Tokens.from_answer(_post(oauth_url, "/token", form, timeout, cafile, cancel, (client_secret, refresh_token)))
