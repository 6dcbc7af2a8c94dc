"""``yaxmpp login`` through the whole flow, in-process, against the OAuth and REST stand-ins;
and ``yaxmpp watch`` refreshing a stored token near expiry before it connects.  No token,
refresh token or client secret may appear in the output or the logs."""

from __future__ import annotations

import io
import json
import logging
import os
import stat
import threading
import time
from typing import Any, Iterator, List, Tuple

import pytest

import yaxmpp.cli
from yaxmpp import credentials
from yaxmpp.testing import CA_FILE, FakeServer
from yaxmpp.testing.oauth import OAuthStandIn
from yaxmpp.testing.rest import RestStandIn

CLIENT_ID = "client-id-for-tests"
SECRET = "client-secret-for-tests-5f6e7d8c"
NEW_TOKEN = "y0_issued_access_token_0a1b2c3d4e5f6a7b"


@pytest.fixture
def api() -> Iterator[RestStandIn]:
    with RestStandIn(token="nothing-issued-yet", login="test") as stand_in:
        yield stand_in


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="yaxmpp")
    return caplog


class Output(io.StringIO):
    """A captured stdout with an event set at the first write."""

    def __init__(self) -> None:
        super().__init__()
        self.written = threading.Event()

    def write(self, text: str) -> int:
        count = super().write(text)
        self.written.set()
        return count


def cli(argv: List[str], out: "io.StringIO | None" = None) -> Tuple[int, str, str]:
    """Run one command in-process; (exit code, stdout, stderr)."""
    parser = yaxmpp.cli._parser()
    args = parser.parse_args(argv)
    out, err = out or io.StringIO(), io.StringIO()
    code = args.run(args, out, err)
    return code, out.getvalue(), err.getvalue()


def login_args(api: RestStandIn, path: str, secret: str = SECRET) -> List[str]:
    return [
        "login",
        "--client-id",
        CLIENT_ID,
        "--client-secret",
        secret,
        "--credentials",
        path,
        "--oauth-url",
        api.url,
        "--api-url",
        api.url,
        "--cafile",
        CA_FILE,
        "--timeout",
        "5",
    ]


def assert_no_secret(texts: List[str], secrets: List[str]) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text, "a secret was shown"


def test_a_user_who_approves_after_three_polls_gets_stored_credentials(api: RestStandIn, tmp_path: "os.PathLike[str]", logs: pytest.LogCaptureFixture) -> None:
    stand_in = OAuthStandIn(api, client_id=CLIENT_ID, client_secret=SECRET, approve_after=3, access_tokens=(NEW_TOKEN,))
    path = os.path.join(str(tmp_path), "yaxmpp", "credentials.json")
    code, out, err = cli(login_args(api, path) + ["-v"])
    assert code == 0, err
    assert "https://ya.ru/device" in out and "WXYZ-1234" in out
    assert "Logged in as test" in out and path in out
    assert stand_in.polls == 3
    request = stand_in.device_requests[0]
    assert request["client_id"] == CLIENT_ID and 6 <= len(request["device_id"]) <= 50 and request["device_name"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path) as f:
        document = json.load(f)
    assert document["access_token"] == NEW_TOKEN
    assert document["refresh_token"] in stand_in.refresh_tokens
    assert document["client_id"] == CLIENT_ID and document["client_secret"] == SECRET
    assert document["login"] == "test"
    assert abs(document["expires_at"] - (time.time() + stand_in.token_lifetime)) < 60
    assert document["device_id"] == request["device_id"]
    assert_no_secret([out, err, logs.text], [NEW_TOKEN, document["refresh_token"], SECRET])


def test_a_second_login_keeps_the_device_id(api: RestStandIn, tmp_path: "os.PathLike[str]") -> None:
    stand_in = OAuthStandIn(api, client_id=CLIENT_ID, client_secret=SECRET)
    path = os.path.join(str(tmp_path), "credentials.json")
    assert cli(login_args(api, path))[0] == 0
    assert cli(login_args(api, path))[0] == 0
    first, second = stand_in.device_requests
    assert first["device_id"] == second["device_id"]


def test_a_user_who_never_approves_gets_a_clear_error_and_nothing_is_stored(api: RestStandIn, tmp_path: "os.PathLike[str]", logs: pytest.LogCaptureFixture) -> None:
    stand_in = OAuthStandIn(api, client_id=CLIENT_ID, client_secret=SECRET, approve_after=None, expire_after=4)
    path = os.path.join(str(tmp_path), "credentials.json")
    code, out, err = cli(login_args(api, path))
    assert code == 3
    assert err.startswith("yaxmpp: ") and err.count("\n") == 1
    assert "expired_token" in err and "Code has expired" in err
    assert stand_in.polls == 5
    assert not os.path.exists(path)
    assert_no_secret([out, err, logs.text], [SECRET] + sorted(stand_in.device_codes))


def test_a_wrong_client_secret_is_refused_and_not_shown(api: RestStandIn, tmp_path: "os.PathLike[str]", logs: pytest.LogCaptureFixture) -> None:
    OAuthStandIn(api, client_id=CLIENT_ID, client_secret=SECRET)
    wrong = "a-wrong-client-secret-0099887766"
    path = os.path.join(str(tmp_path), "credentials.json")
    code, out, err = cli(login_args(api, path, secret=wrong))
    assert code == 3
    assert "invalid_client" in err and "Wrong client secret" in err
    assert not os.path.exists(path)
    assert_no_secret([out, err, logs.text], [wrong, SECRET])


def test_the_secret_may_come_from_the_environment(api: RestStandIn, tmp_path: "os.PathLike[str]", monkeypatch: pytest.MonkeyPatch) -> None:
    OAuthStandIn(api, client_id=CLIENT_ID, client_secret=SECRET)
    monkeypatch.setenv("YAXMPP_CLIENT_SECRET", SECRET)
    argv = login_args(api, os.path.join(str(tmp_path), "c.json"))
    index = argv.index("--client-secret")
    del argv[index : index + 2]
    assert cli(argv)[0] == 0
    monkeypatch.delenv("YAXMPP_CLIENT_SECRET")
    code, _, err = cli(argv)
    assert code == 2 and "--client-secret" in err and "Getting a token" in err


def test_a_token_pasted_by_hand_is_stored_with_its_login(api: RestStandIn, tmp_path: "os.PathLike[str]") -> None:
    api.token = "y0_a_token_pasted_by_hand_11223344"
    token_file = os.path.join(str(tmp_path), "token")
    with open(token_file, "w") as f:
        f.write(api.token + "\n")
    path = os.path.join(str(tmp_path), "credentials.json")
    code, out, err = cli(["login", "--token-file", token_file, "--credentials", path, "--api-url", api.url, "--cafile", CA_FILE])
    assert code == 0, err
    stored = credentials.load(path)
    assert stored is not None and stored.access_token == api.token and stored.login == "test" and stored.refresh_token is None
    assert api.token not in out + err


def test_a_confirmation_code_is_not_taken_for_a_token(api: RestStandIn, tmp_path: "os.PathLike[str]") -> None:
    token_file = os.path.join(str(tmp_path), "token")
    with open(token_file, "w") as f:
        f.write("4827364\n")
    code, _, err = cli(["login", "--token-file", token_file, "--credentials", os.path.join(str(tmp_path), "c.json")])
    assert code == 2 and "confirmation code" in err
    assert not api.requests


def test_watch_refreshes_a_stored_token_near_expiry_then_connects_with_the_new_one(
    api: RestStandIn, tmp_path: "os.PathLike[str]", logs: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_token, old_refresh = "y0_old_access_token_about_to_expire_01", "1:old-refresh-token:0f0e0d0c0b0a"
    stand_in = OAuthStandIn(api, client_id=CLIENT_ID, client_secret=SECRET, access_tokens=(NEW_TOKEN,))
    stand_in.add_refresh_token(old_refresh)
    path = os.path.join(str(tmp_path), "credentials.json")
    credentials.save(
        credentials.Credentials(
            old_token, refresh_token=old_refresh, expires_at=time.time() + 3600, client_id=CLIENT_ID, client_secret=SECRET, login="test"
        ),
        path,
    )
    monkeypatch.delenv("YANDEX_DISK_TOKEN", raising=False)
    with FakeServer(login=None, token=None, accounts={"test": NEW_TOKEN}) as server:
        options = server.client_options()
        argv = [  # neither --login nor a token source: the stored credentials
            "watch",
            "--host",
            options["host"],
            "--port",
            str(options["port"]),
            "--tls-port",
            "none",
            "--cafile",
            CA_FILE,
            "--timeout",
            "5",
            "--credentials",
            path,
            "--oauth-url",
            api.url,
        ]
        subscribed = threading.Event()
        output = Output()
        clients: List[yaxmpp.Client] = []

        class Recorded(yaxmpp.Client):  # the client watch makes, so that the test can close it
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                clients.append(self)

        monkeypatch.setattr(yaxmpp, "Client", Recorded)

        def stop_when_watching() -> None:
            try:
                session = server.wait_for_session(timeout=10)
            except TimeoutError:
                return  # watch ended on its own: the asserts below say why
            if not session.subscribed.wait(10):
                return
            subscribed.set()
            session.push([{"type": "new", "key": "/disk/a.txt", "fid": "1", "size": "3"}])
            if output.written.wait(10):  # watch has connected and printed the change
                clients[0].close()  # its notifications end: watch returns 0

        stopper = threading.Thread(target=stop_when_watching, name="test-stopper", daemon=True)
        stopper.start()
        code, out, err = cli(argv, output)
        stopper.join(10)
        assert subscribed.is_set(), err
        assert code == 0, err
        assert "/disk/a.txt" in out
        assert server.sessions[0].login == "test" and server.sessions[0].authenticated
    assert stand_in.refreshes == 1
    stored = credentials.load(path)
    assert stored is not None and stored.access_token == NEW_TOKEN and stored.refresh_token != old_refresh
    assert stored.expires_at is not None and stored.expires_at > time.time() + 300 * 86400
    assert "refreshed the stored token" in err
    assert_no_secret([out, err, logs.text], [old_token, old_refresh, NEW_TOKEN, stored.refresh_token or "-", SECRET])


def test_a_token_file_with_a_bom_is_stored_without_it(api: RestStandIn, tmp_path: "os.PathLike[str]") -> None:
    api.token = "y0_a_token_saved_by_notepad_5566778899"
    token_file = os.path.join(str(tmp_path), "token")
    with open(token_file, "wb") as f:
        f.write(b"\xef\xbb\xbf" + api.token.encode() + b"\r\n")
    path = os.path.join(str(tmp_path), "credentials.json")
    code, _, err = cli(["login", "--token-file", token_file, "--credentials", path, "--api-url", api.url, "--cafile", CA_FILE])
    assert code == 0, err
    stored = credentials.load(path)
    assert stored is not None and stored.access_token == api.token


def test_a_token_file_holding_more_than_a_token_is_refused(api: RestStandIn, tmp_path: "os.PathLike[str]") -> None:
    token_file = os.path.join(str(tmp_path), "token")
    with open(token_file, "w") as f:
        f.write("y0_first_token_aaaaaaaa\ny0_second_token_bbbbbbbb\n")
    path = os.path.join(str(tmp_path), "credentials.json")
    code, out, err = cli(["login", "--token-file", token_file, "--credentials", path, "--api-url", api.url, "--cafile", CA_FILE])
    assert code == 2 and token_file in err and "more than the token" in err
    assert "aaaaaaaa" not in out + err and not api.requests and not os.path.exists(path)


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf"])
def test_a_bad_timeout_is_a_usage_error_naming_the_flag(value: str, tmp_path: "os.PathLike[str]", capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["login", "--client-id", CLIENT_ID, "--client-secret", SECRET, "--credentials", os.path.join(str(tmp_path), "c.json"),
            "--oauth-url", "https://127.0.0.1:9", "--timeout", value]  # fmt: skip
    with pytest.raises(SystemExit) as exited:
        yaxmpp.cli._parser().parse_args(argv)
    assert exited.value.code == 2
    assert "--timeout" in capsys.readouterr().err


def test_watch_quiet_does_not_report_the_refresh(api: RestStandIn, tmp_path: "os.PathLike[str]", monkeypatch: pytest.MonkeyPatch) -> None:
    from .conftest import closed_port

    old_refresh = "1:old-refresh-token:quiet:0f0e0d0c"
    stand_in = OAuthStandIn(api, client_id=CLIENT_ID, client_secret=SECRET, access_tokens=(NEW_TOKEN,))
    stand_in.add_refresh_token(old_refresh)
    path = os.path.join(str(tmp_path), "credentials.json")
    credentials.save(
        credentials.Credentials(
            "y0_old_access_token_quiet_0102030405", refresh_token=old_refresh, expires_at=time.time() + 3600,
            client_id=CLIENT_ID, client_secret=SECRET, login="test",
        ),
        path,
    )  # fmt: skip
    monkeypatch.delenv("YANDEX_DISK_TOKEN", raising=False)
    argv = ["watch", "-q", "--host", "127.0.0.1", "--port", str(closed_port()), "--tls-port", "none", "--max-attempts", "0",
            "--timeout", "5", "--credentials", path, "--oauth-url", api.url, "--cafile", CA_FILE]  # fmt: skip
    code, out, err = cli(argv)
    assert stand_in.refreshes == 1  # it was refreshed...
    assert code == 4 and out == ""
    assert err.count("\n") == 1 and "cannot connect" in err, err  # ...and only the error is said
