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


# -- running it in a terminal: `python -m yaxmpp.testing.oauth` ------------------------------


def main(argv: Optional[List[str]] = None, out: Optional[Any] = None, stop: Optional[threading.Event] = None) -> int:
    """Run the OAuth and Disk REST stand-ins in the foreground, print the ``yaxmpp login``
    command line that uses them, and wait for Ctrl-C or SIGTERM (or ``stop``).

    The access token it issues is ``--token`` (default ``t``, the token
    ``python -m yaxmpp.testing`` expects), so that after the login ``yaxmpp watch`` with the
    stored credentials connects to that stand-in server.  The credentials file it names lives
    in a folder of its own, removed when it stops."""
    import argparse
    import json
    import os
    import shlex
    import shutil
    import signal
    import sys
    import tempfile

    from .options import CA_FILE

    parser = argparse.ArgumentParser(
        prog="python -m yaxmpp.testing.oauth",
        description="Stand-ins for Yandex OAuth's device flow and the Disk REST API on 127.0.0.1 (HTTPS with "
        "the test CA), to try `yaxmpp login` without a Yandex account.",
    )
    parser.add_argument("--login", default="test", help="the account's login the Disk API tells (default: test)")
    parser.add_argument("--token", default="t", help="the access token issued on approval (default: t)")
    parser.add_argument("--approve-after", type=int, default=3, metavar="N", help="the user confirms at the N-th poll (default 3)")
    parser.add_argument("--interval", type=float, default=1.0, metavar="SECONDS", help="the poll interval announced (default 1)")
    args = parser.parse_args(argv)
    out = out if out is not None else sys.stdout
    stop = stop if stop is not None else threading.Event()
    folder = tempfile.mkdtemp(prefix="yaxmpp-oauth-standin-")
    credentials = os.path.join(folder, "credentials.json")
    with RestStandIn(token=args.token, login=args.login) as api:
        stand_in = OAuthStandIn(
            api, approve_after=max(1, args.approve_after), interval=max(0.0, args.interval), access_tokens=(args.token,)
        )
        out.write(json.dumps({"url": api.url, "client_id": stand_in.client_id, "cafile": CA_FILE, "credentials": credentials}) + "\n")
        command = [
            "yaxmpp", "login", "--client-id", stand_in.client_id, "--oauth-url", api.url, "--api-url", api.url,
            "--cafile", CA_FILE, "--credentials", credentials,
        ]  # fmt: skip
        out.write(
            "Yandex OAuth and Disk REST stand-ins on %s (client id %s, the user confirms at poll %d)\n"
            "log in with:\n  %s=%s %s\n"
            "then watch the stand-in server (python -m yaxmpp.testing --login %s --token %s) with the stored token:\n"
            "  yaxmpp watch --credentials %s --oauth-url %s --host 127.0.0.1 --port PORT --tls-port TLS_PORT --cafile %s\n"
            "Ctrl-C to stop\n"
            % (
                api.url, stand_in.client_id, stand_in.approve_after or 0, "YAXMPP_CLIENT_SECRET",
                shlex.quote(stand_in.client_secret), " ".join(shlex.quote(c) for c in command),
                shlex.quote(args.login), shlex.quote(args.token), shlex.quote(credentials), api.url, shlex.quote(CA_FILE),
            )
        )  # fmt: skip
        out.flush()
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            shutil.rmtree(folder, ignore_errors=True)  # the credentials stored for the stand-ins
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
