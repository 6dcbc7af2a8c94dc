"""A stand-in for Yandex OAuth's device flow and refresh, as routes of a
:class:`~yaxmpp.testing.rest.RestStandIn`.

::

    with RestStandIn(token="unused") as api:
        auth = OAuthStandIn(api, approve_after=3)   # the user confirms during the 3rd poll
        ...  # point the client at api.url for both the OAuth and the Disk endpoints

``POST /device/code`` (``client_id``, optional ``device_id``/``device_name``) answers
``device_code``, ``user_code``, ``verification_url``, ``interval``, ``expires_in``.
``POST /token`` takes Yandex's parameter names: ``grant_type=device_code`` with ``code``
(not RFC 8628's ``device_code``), or ``grant_type=refresh_token`` with ``refresh_token``;
both with ``client_id`` and ``client_secret``.  Its answers, as documented: HTTP 400 with
``error`` and ``error_description`` for ``authorization_pending``, ``slow_down``,
``access_denied``, ``expired_token``, ``invalid_grant``, ``invalid_client`` (a wrong id or
secret), ``unsupported_grant_type``; 200 with ``access_token``, ``refresh_token``,
``expires_in``, ``token_type`` on success.  Every issued access token becomes the one the Disk
route accepts (``api.token``).  ``interval`` defaults to 0 so tests never wait.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any, Dict, List, Optional, Set, Tuple

from .rest import Request, RestStandIn

__all__ = ["OAuthStandIn"]

Answer = Tuple[int, Dict[str, Any]]


def _error(error: str, description: str, status: int = 400) -> Answer:
    return status, {"error": error, "error_description": description}


class OAuthStandIn:
    """The OAuth routes on ``api``.

    ``client_id``/``client_secret``: the registered app.  ``approve_after``: the poll (1, 2,
    ...) from which the user has confirmed (None: never).  ``deny``: the user refuses
    (``access_denied``).  ``expire_after``: polls after which the code has expired
    (``expired_token``; None: never).  ``slow_down_on``: polls answered ``slow_down``.
    ``interval``, ``expires_in``: what ``/device/code`` announces.  ``access_tokens``: the
    access tokens to hand out first, in order (then made-up ones).  ``token_lifetime``: the
    ``expires_in`` of issued tokens.  ``polls`` counts device-code token requests,
    ``refreshes`` the refresh requests; ``issued`` lists every access token handed out.
    """

    def __init__(
        self,
        api: RestStandIn,
        *,
        client_id: str = "test-client-id",
        client_secret: str = "test-client-secret-7f3a9c",
        approve_after: Optional[int] = 1,
        deny: bool = False,
        expire_after: Optional[int] = None,
        slow_down_on: Tuple[int, ...] = (),
        interval: float = 0,
        expires_in: float = 300,
        token_lifetime: int = 31536000,
        user_code: str = "WXYZ-1234",
        verification_url: str = "https://ya.ru/device",
        access_tokens: Tuple[str, ...] = (),
    ) -> None:
        self.api = api
        self.client_id = client_id
        self.client_secret = client_secret
        self.approve_after = approve_after
        self.deny = deny
        self.expire_after = expire_after
        self.slow_down_on = tuple(slow_down_on)
        self.interval = interval
        self.expires_in = expires_in
        self.token_lifetime = token_lifetime
        self.user_code = user_code
        self.verification_url = verification_url
        self.polls = 0
        self.refreshes = 0
        self.issued: List[str] = []
        self.device_codes: Set[str] = set()
        self.refresh_tokens: Set[str] = set()
        self.device_requests: List[Dict[str, str]] = []
        self._next_tokens = list(access_tokens)
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        api.route("POST", "/device/code", self._device_code)
        api.route("POST", "/token", self._token)

    def add_refresh_token(self, refresh_token: str) -> None:
        """Accept ``refresh_token`` (e.g. one written into a credentials file by a test)."""
        with self._lock:
            self.refresh_tokens.add(refresh_token)

    def _issue(self) -> Answer:
        number = next(self._numbers)
        if self._next_tokens:
            access = self._next_tokens.pop(0)
        else:
            access = "y0_standin_access_%04d_%s" % (number, "a1b2c3d4e5f60718293a4b5c6d7e8f90")
        refresh = "1:standin:refresh_%04d:%s" % (number, "0f1e2d3c4b5a69788796a5b4c3d2e1f0")
        self.issued.append(access)
        self.refresh_tokens.add(refresh)
        self.api.token = access  # the Disk route accepts the newest token
        return 200, {
            "token_type": "bearer",
            "access_token": access,
            "expires_in": self.token_lifetime,
            "refresh_token": refresh,
            "scope": "cloud_api:disk.info",
        }

    def _client_ok(self, form: Dict[str, str]) -> Optional[Answer]:
        if form.get("client_id") != self.client_id:
            return _error("invalid_client", "Client not found")
        if form.get("client_secret") != self.client_secret:
            return _error("invalid_client", "Wrong client secret")
        return None

    def _device_code(self, request: Request) -> Answer:
        form = request.form
        with self._lock:
            self.device_requests.append(dict(form))
            if form.get("client_id") != self.client_id:
                return _error("invalid_client", "Client not found")
            code = "standin-device-code-%04d-9d8c7b6a5f4e" % next(self._numbers)
            self.device_codes.add(code)
        return 200, {
            "device_code": code,
            "user_code": self.user_code,
            "verification_url": self.verification_url,
            "interval": self.interval,
            "expires_in": self.expires_in,
        }

    def _token(self, request: Request) -> Answer:
        form = request.form
        with self._lock:
            grant = form.get("grant_type")
            if grant == "device_code":
                return self._device_grant(form)
            if grant == "refresh_token":
                return self._refresh_grant(form)
            return _error("unsupported_grant_type", "Unsupported grant type")

    def _device_grant(self, form: Dict[str, str]) -> Answer:
        refused = self._client_ok(form)
        if refused is not None:
            return refused
        if "code" not in form:
            return _error("invalid_request", "code is required")  # e.g. a client that sent device_code=
        if form["code"] not in self.device_codes:
            return _error("invalid_grant", "Invalid code")
        self.polls += 1
        poll = self.polls
        if self.expire_after is not None and poll > self.expire_after:
            return _error("expired_token", "Code has expired")
        if poll in self.slow_down_on:
            return _error("slow_down", "Too many requests, slow down")
        if self.deny:
            return _error("access_denied", "User denied access")
        if self.approve_after is not None and poll >= self.approve_after:
            self.device_codes.discard(form["code"])
            return self._issue()
        return _error("authorization_pending", "User has not yet entered the code")

    def _refresh_grant(self, form: Dict[str, str]) -> Answer:
        refused = self._client_ok(form)
        if refused is not None:
            return refused
        token = form.get("refresh_token", "")
        if token not in self.refresh_tokens:
            return _error("invalid_grant", "Invalid refresh token")
        self.refreshes += 1
        self.refresh_tokens.discard(token)
        return self._issue()
