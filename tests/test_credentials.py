"""The stored credentials (yaxmpp.credentials): where they live, their file's mode, the
atomic write, the refresh near expiry, and that nothing shows a secret."""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from typing import Iterator, List

import pytest

import yaxmpp
from yaxmpp import credentials
from yaxmpp.credentials import Credentials
from yaxmpp.testing import CA_FILE
from yaxmpp.testing.oauth import OAuthStandIn
from yaxmpp.testing.rest import RestStandIn

ACCESS = "y0_access_token_for_tests_8f7e6d5c4b3a"
REFRESH = "1:refresh_token_for_tests:9a8b7c6d5e4f"
SECRET = "client-secret-for-tests-1a2b3c4d"
EXPIRES = int(time.time()) + 365 * 86400


def sample(**changes: object) -> Credentials:
    values: dict = dict(
        refresh_token=REFRESH,
        expires_at=EXPIRES,
        client_id="client-id-1",
        client_secret=SECRET,
        login="test",
        device_id="device-1",
    )
    values.update(changes)
    return Credentials(ACCESS, **values)


def mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def api() -> Iterator[RestStandIn]:
    with RestStandIn(token=ACCESS) as stand_in:
        yield stand_in


def test_default_path_follows_xdg_config_home() -> None:
    assert credentials.default_path({"XDG_CONFIG_HOME": "/cfg", "HOME": "/home/u"}) == "/cfg/yaxmpp/credentials.json"
    # unset, empty or relative: ignored, as the XDG spec says
    for env in ({"HOME": "/home/u"}, {"XDG_CONFIG_HOME": "", "HOME": "/home/u"}, {"XDG_CONFIG_HOME": "rel", "HOME": "/home/u"}):
        assert credentials.default_path(env) == "/home/u/.config/yaxmpp/credentials.json"


def test_save_makes_an_owner_only_file_in_an_owner_only_folder(tmp_path: "os.PathLike[str]") -> None:
    path = os.path.join(str(tmp_path), "config", "yaxmpp", "credentials.json")
    old = os.umask(0)  # even with a permissive umask
    try:
        assert credentials.save(sample(), path) == path
    finally:
        os.umask(old)
    assert mode(path) == 0o600
    assert mode(os.path.dirname(path)) == 0o700
    assert credentials.load(path) == sample()
    assert os.listdir(os.path.dirname(path)) == ["credentials.json"]  # no temporary left


def test_save_replaces_atomically_and_keeps_the_old_file_on_failure(tmp_path: "os.PathLike[str]", monkeypatch: pytest.MonkeyPatch) -> None:
    path = os.path.join(str(tmp_path), "credentials.json")
    credentials.save(sample(login="first"), path)
    synced: List[int] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    def replace(src: str, dst: str) -> None:
        assert synced, "renamed before the data was flushed to disk"
        assert os.path.dirname(src) == os.path.dirname(dst), "the temporary file must be in the same folder"
        assert mode(src) == 0o600
        with open(dst) as f:  # the old file is whole until the rename
            assert json.load(f)["login"] == "first"
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(yaxmpp.UsageError) as caught:
        credentials.save(sample(login="second"), path)
    assert "No space left" in str(caught.value)
    monkeypatch.setattr(os, "replace", real_replace)
    stored = credentials.load(path)
    assert stored is not None and stored.login == "first"
    assert os.listdir(str(tmp_path)) == ["credentials.json"]  # the temporary was removed
    credentials.save(sample(login="second"), path)
    stored = credentials.load(path)
    assert stored is not None and stored.login == "second"
    assert mode(path) == 0o600


def test_load_missing_is_none_and_broken_files_say_so_without_their_content(tmp_path: "os.PathLike[str]") -> None:
    path = os.path.join(str(tmp_path), "credentials.json")
    assert credentials.load(path) is None
    for content in ('{"access_token": "%s", ' % ACCESS, json.dumps({"refresh_token": REFRESH}), json.dumps({"access_token": ACCESS, "login": 5})):
        with open(path, "w") as f:
            f.write(content)
        with pytest.raises(yaxmpp.UsageError) as caught:
            credentials.load(path)
        assert ACCESS not in str(caught.value) and REFRESH not in str(caught.value)
        assert path in str(caught.value)


def test_reprs_show_no_secret() -> None:
    text = repr(sample())
    for secret in (ACCESS, REFRESH, SECRET):
        assert secret not in text
    assert "test" in text


def test_a_token_far_from_expiry_is_left_alone(api: RestStandIn, tmp_path: "os.PathLike[str]") -> None:
    stand_in = OAuthStandIn(api, client_id="client-id-1", client_secret=SECRET)
    stored = sample()
    assert credentials.fresh(stored, os.path.join(str(tmp_path), "c.json"), oauth_url=api.url, cafile=CA_FILE) is stored
    assert stand_in.refreshes == 0 and not api.requests


def test_a_token_near_expiry_is_refreshed_and_stored(api: RestStandIn, tmp_path: "os.PathLike[str]", caplog: pytest.LogCaptureFixture) -> None:
    stand_in = OAuthStandIn(api, client_id="client-id-1", client_secret=SECRET, access_tokens=("y0_the_new_access_token_77665544",))
    stand_in.add_refresh_token(REFRESH)
    path = os.path.join(str(tmp_path), "c.json")
    stored = sample(expires_at=time.time() + 3600)
    credentials.save(stored, path)
    caplog.set_level(logging.DEBUG, logger="yaxmpp")
    renewed = credentials.fresh(stored, path, oauth_url=api.url, cafile=CA_FILE)
    assert stand_in.refreshes == 1
    assert renewed.access_token == "y0_the_new_access_token_77665544"
    assert renewed.refresh_token and renewed.refresh_token != REFRESH
    assert renewed.login == "test" and renewed.client_secret == SECRET and renewed.device_id == "device-1"
    assert renewed.expires_at is not None and renewed.expires_at > time.time() + 300 * 86400
    on_disk = credentials.load(path)
    assert on_disk is not None and on_disk.access_token == renewed.access_token and on_disk.refresh_token == renewed.refresh_token
    assert mode(path) == 0o600
    for secret in (ACCESS, REFRESH, SECRET, renewed.access_token, renewed.refresh_token):
        assert secret not in caplog.text


def test_an_expired_token_that_cannot_be_refreshed_is_an_auth_error(tmp_path: "os.PathLike[str]") -> None:
    with pytest.raises(yaxmpp.AuthError) as caught:
        credentials.fresh(sample(expires_at=time.time() - 10, refresh_token=None))
    assert "yaxmpp login" in str(caught.value)


def test_a_refused_refresh_is_an_auth_error(api: RestStandIn) -> None:
    OAuthStandIn(api, client_id="client-id-1", client_secret=SECRET)  # knows no refresh token
    with pytest.raises(yaxmpp.AuthError) as caught:
        credentials.fresh(sample(expires_at=time.time() + 60), oauth_url=api.url, cafile=CA_FILE, store=False)
    assert REFRESH not in str(caught.value) and SECRET not in str(caught.value)


def test_a_refresh_the_network_prevents_keeps_a_valid_token(api: RestStandIn) -> None:
    OAuthStandIn(api, client_id="client-id-1", client_secret=SECRET)
    api.fail = "close"
    stored = sample(expires_at=time.time() + 60)
    assert credentials.fresh(stored, oauth_url=api.url, cafile=CA_FILE, store=False) is stored
    with pytest.raises(yaxmpp.NetworkError):  # but an expired one cannot be used
        credentials.fresh(sample(expires_at=time.time() - 60), oauth_url=api.url, cafile=CA_FILE, store=False)


def test_lookup_login_asks_the_disk_api(api: RestStandIn) -> None:
    api.login = "someone"
    assert credentials.lookup_login(ACCESS, api_url=api.url, cafile=CA_FILE) == "someone"
    with pytest.raises(yaxmpp.APIError) as caught:
        credentials.lookup_login("y0_a_wrong_token_0000000000", api_url=api.url, cafile=CA_FILE)
    assert caught.value.status == 401


def test_account_gives_login_and_token_and_finds_a_missing_login(api: RestStandIn, tmp_path: "os.PathLike[str]") -> None:
    path = os.path.join(str(tmp_path), "c.json")
    with pytest.raises(yaxmpp.UsageError) as caught:
        credentials.account(path)
    assert "yaxmpp login" in str(caught.value)
    credentials.save(Credentials(ACCESS), path)  # a token stored without its login
    api.login = "someone"
    assert credentials.account(path, api_url=api.url, cafile=CA_FILE) == ("someone", ACCESS)
    stored = credentials.load(path)
    assert stored is not None and stored.login == "someone"
    assert credentials.account(path, api_url="https://127.0.0.1:1", cafile=CA_FILE) == ("someone", ACCESS)  # no second look-up
