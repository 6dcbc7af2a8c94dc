"""The OAuth device flow and refresh (yaxmpp.oauth) against the OAuth stand-in, with a fake
clock: no test waits for an interval."""

from __future__ import annotations

from typing import Iterator, List, Tuple

import pytest

import yaxmpp
from yaxmpp import oauth
from yaxmpp.cancel import Cancel
from yaxmpp.testing import CA_FILE
from yaxmpp.testing.oauth import OAuthStandIn
from yaxmpp.testing.rest import RestStandIn


@pytest.fixture
def api() -> Iterator[RestStandIn]:
    with RestStandIn(token="unused-before-login") as stand_in:
        yield stand_in


class FakeClock:
    """``clock`` and ``sleep`` for wait_for_token: sleeping moves the clock, nothing waits."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: List[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def start(api: RestStandIn, **kwargs: object) -> Tuple[OAuthStandIn, oauth.DeviceCode]:
    stand_in = OAuthStandIn(api, **kwargs)  # type: ignore[arg-type]
    code = oauth.request_device_code(stand_in.client_id, device_id="device-0001", device_name="test box", oauth_url=api.url, cafile=CA_FILE)
    return stand_in, code


def wait(stand_in: OAuthStandIn, code: oauth.DeviceCode, fake: FakeClock, secret: str = "") -> oauth.Tokens:
    return oauth.wait_for_token(
        stand_in.client_id,
        secret or stand_in.client_secret,
        code,
        oauth_url=stand_in.api.url,
        cafile=CA_FILE,
        clock=fake.clock,
        sleep=fake.sleep,
    )


def test_device_code_request_carries_the_client_and_device(api: RestStandIn) -> None:
    stand_in, code = start(api, interval=5, expires_in=300)
    assert stand_in.device_requests == [{"client_id": stand_in.client_id, "device_id": "device-0001", "device_name": "test box"}]
    assert (code.user_code, code.verification_url, code.interval, code.expires_in) == ("WXYZ-1234", "https://ya.ru/device", 5.0, 300.0)
    assert code.device_code not in repr(code)


def test_approval_after_three_polls_waits_the_interval_before_each(api: RestStandIn) -> None:
    stand_in, code = start(api, approve_after=3, interval=5)
    fake = FakeClock()
    tokens = wait(stand_in, code, fake)
    assert stand_in.polls == 3
    assert fake.sleeps == [5.0, 5.0, 5.0]  # never faster than the interval, also before the first poll
    assert tokens.access_token == stand_in.issued[-1]
    assert tokens.refresh_token and tokens.expires_in == stand_in.token_lifetime
    # Yandex's parameter names: code=<device_code>, not RFC 8628's device_code=
    polls = [r.form for r in api.requests if r.path == "/token"]
    assert len(polls) == 3
    for form in polls:
        assert form["grant_type"] == "device_code"
        assert form["code"] == code.device_code and "device_code" not in form
        assert form["client_id"] == stand_in.client_id and form["client_secret"] == stand_in.client_secret
    assert tokens.access_token not in repr(tokens) and tokens.refresh_token not in repr(tokens)


def test_slow_down_grows_the_interval_for_good(api: RestStandIn) -> None:
    stand_in, code = start(api, approve_after=4, slow_down_on=(2,), interval=5)
    fake = FakeClock()
    wait(stand_in, code, fake)
    assert fake.sleeps == [5.0, 5.0, 10.0, 10.0]


def test_the_wait_ends_when_the_code_expires(api: RestStandIn) -> None:
    stand_in, code = start(api, approve_after=None, interval=5, expires_in=12)
    fake = FakeClock()
    with pytest.raises(yaxmpp.APIError) as caught:
        wait(stand_in, code, fake)
    assert caught.value.error == oauth.EXPIRED
    assert "expired" in str(caught.value)
    assert stand_in.polls == 2  # at 5 s and 10 s; the last 2 s are waited out, not polled
    assert fake.sleeps == [5.0, 5.0, 2.0]


@pytest.mark.parametrize(
    "kwargs, error",
    [({"deny": True}, "access_denied"), ({"approve_after": None, "expire_after": 1}, "expired_token")],
)
def test_any_other_error_ends_the_wait_with_its_description(api: RestStandIn, kwargs: dict, error: str) -> None:
    stand_in, code = start(api, **kwargs)
    fake = FakeClock()
    with pytest.raises(yaxmpp.APIError) as caught:
        wait(stand_in, code, fake)
    assert caught.value.error == error and caught.value.status == 400
    assert caught.value.description and caught.value.description in str(caught.value)
    assert stand_in.polls == (1 if error == "access_denied" else 2)


def test_a_wrong_client_secret_is_invalid_client_and_never_shown(api: RestStandIn) -> None:
    stand_in, code = start(api)
    wrong = "wrong-secret-5e4d3c2b1a"
    with pytest.raises(yaxmpp.APIError) as caught:
        wait(stand_in, code, FakeClock(), secret=wrong)
    assert caught.value.error == "invalid_client"
    assert wrong not in str(caught.value) and wrong not in repr(caught.value.args)
    assert code.device_code not in str(caught.value)


def test_an_unknown_client_id_is_refused_at_the_device_code_request(api: RestStandIn) -> None:
    OAuthStandIn(api)
    with pytest.raises(yaxmpp.APIError) as caught:
        oauth.request_device_code("no-such-client", oauth_url=api.url, cafile=CA_FILE)
    assert caught.value.error == "invalid_client"


def test_a_cancelled_wait_stops_without_polling(api: RestStandIn) -> None:
    stand_in, code = start(api, interval=3600)
    cancel = Cancel()
    cancel.cancel()
    with pytest.raises(yaxmpp.ClientClosed):
        oauth.wait_for_token(stand_in.client_id, stand_in.client_secret, code, oauth_url=api.url, cafile=CA_FILE, cancel=cancel)
    assert stand_in.polls == 0


def test_refresh_uses_the_refresh_token_grant(api: RestStandIn) -> None:
    stand_in = OAuthStandIn(api, access_tokens=("renewed-access-token-0001",))
    stand_in.add_refresh_token("old-refresh-token-abcdef")
    tokens = oauth.refresh_token(stand_in.client_id, stand_in.client_secret, "old-refresh-token-abcdef", oauth_url=api.url, cafile=CA_FILE)
    assert tokens.access_token == "renewed-access-token-0001"
    assert tokens.refresh_token and tokens.refresh_token != "old-refresh-token-abcdef"
    form = api.requests[-1].form
    assert form == {
        "grant_type": "refresh_token",
        "refresh_token": "old-refresh-token-abcdef",
        "client_id": stand_in.client_id,
        "client_secret": stand_in.client_secret,
    }
    with pytest.raises(yaxmpp.APIError) as caught:  # a refresh token works once
        oauth.refresh_token(stand_in.client_id, stand_in.client_secret, "old-refresh-token-abcdef", oauth_url=api.url, cafile=CA_FILE)
    assert caught.value.error == "invalid_grant"
    assert "old-refresh-token-abcdef" not in str(caught.value)


def test_a_network_blip_while_polling_does_not_end_the_wait(api: RestStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    """It used to end the login (the user had to start again with a new code)."""
    stand_in, code = start(api, approve_after=2, interval=5)
    real = oauth.exchange_device_code
    failures = [yaxmpp.ConnectError("connection refused"), yaxmpp.Timeout("no answer", "request")]
    seen: List[Tuple[int, object]] = []

    def flaky(*args: object, **kwargs: object) -> oauth.Tokens:
        if failures:
            raise failures.pop(0)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(oauth, "exchange_device_code", flaky)
    fake = FakeClock()
    tokens = oauth.wait_for_token(
        stand_in.client_id, stand_in.client_secret, code, oauth_url=api.url, cafile=CA_FILE,
        clock=fake.clock, sleep=fake.sleep, on_poll=lambda n, error: seen.append((n, error)),
    )
    assert tokens.access_token == stand_in.issued[-1]
    assert seen == [(1, "network"), (2, "network"), (3, "authorization_pending"), (4, None)]
    assert fake.sleeps == [5.0] * 4  # never faster than the interval, blips included


def test_a_network_failure_until_expiry_raises_it_and_tls_ends_at_once(api: RestStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    stand_in, code = start(api, approve_after=None, interval=5, expires_in=12)

    def down(*args: object, **kwargs: object) -> oauth.Tokens:
        raise yaxmpp.ConnectError("connection refused")

    monkeypatch.setattr(oauth, "exchange_device_code", down)
    with pytest.raises(yaxmpp.ConnectError):
        wait(stand_in, code, FakeClock())

    def bad_certificate(*args: object, **kwargs: object) -> oauth.Tokens:
        raise yaxmpp.TLSError("certificate verify failed")

    monkeypatch.setattr(oauth, "exchange_device_code", bad_certificate)
    fake = FakeClock()
    with pytest.raises(yaxmpp.TLSError):
        wait(stand_in, code, fake)
    assert fake.sleeps == [5.0]  # one poll, no retry
