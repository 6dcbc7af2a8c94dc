"""The REST revision check (check_revision=True): each session start asks GET /v1/disk/ on a
thread of its own; the resync says whether the revision changed across the gap, never
delaying or breaking the XMPP session, never showing the token."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Dict, Iterator, List, Tuple

import pytest

import yaxmpp
from yaxmpp.testing import FakeServer
from yaxmpp.testing.rest import Request, RestStandIn

from .conftest import LOGIN, TOKEN
from .secrets_check import assert_no_secret, half

FAST = dict(initial=0.02, maximum=0.05)


@pytest.fixture
def api() -> Iterator[RestStandIn]:
    with RestStandIn(token=TOKEN, login=LOGIN, revision=7) as stand_in:
        yield stand_in


def checking_client(make_client: Any, server: FakeServer, api: RestStandIn, **options: Any) -> yaxmpp.Client:
    options.setdefault("reconnect", yaxmpp.Reconnect(**FAST))
    return make_client(server, check_revision=True, api_url=api.url, **options)


def change(path: str) -> List[Dict[str, str]]:
    return [{"type": "new", "key": path, "fid": "1", "size": "1"}]


def reconnect(server: FakeServer, index: int) -> "yaxmpp.testing.ServerSession":
    server.wait_for_session(index - 1).drop()
    session = server.wait_for_session(index=index, timeout=10)
    assert session.subscribed.wait(10)
    return session


def revision_threads(client: yaxmpp.Client) -> List[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "yaxmpp-revision-%d" % client.number]


def test_the_revision_changed_across_the_gap(server, make_client, api):
    client = checking_client(make_client, server, api).connect()
    assert api.wait_for_requests(1), "no revision request at the first session start"
    request = api.requests[0]
    assert (request.method, request.path) == ("GET", "/v1/disk/")
    assert request.headers["authorization"] == "OAuth %s" % TOKEN
    with api.lock:
        api.revision = 8  # the disk changes while the client is away
    session = reconnect(server, 1)
    session.push(change("/disk/after"))
    resync = client.get_notification(timeout=10)
    assert isinstance(resync, yaxmpp.Resync)
    assert (resync.revision_changed, resync.previous_revision, resync.revision) == (True, 7, 8)
    assert client.get_notification(timeout=10).changes[0].path == "/disk/after"
    assert len(api.requests) == 2


def test_the_revision_unchanged_across_the_gap(server, make_client, api):
    client = checking_client(make_client, server, api).connect()
    reconnect(server, 1)
    resync = client.get_notification(timeout=10)
    assert (resync.revision_changed, resync.previous_revision, resync.revision) == (False, 7, 7)


@pytest.mark.parametrize("failure", [503, 401, "close"])
def test_a_failing_request_makes_it_unknown(server, make_client, api, failure, caplog):
    client = checking_client(make_client, server, api).connect()
    assert api.wait_for_requests(1)
    with api.lock:
        api.fail = failure
    session = reconnect(server, 1)
    session.push(change("/disk/after"))
    resync = client.get_notification(timeout=10)
    assert resync.revision_changed is None and resync.revision is None
    assert resync.previous_revision == 7
    assert client.get_notification(timeout=10).changes[0].path == "/disk/after"
    assert "could not get the disk's revision" in caplog.text


def test_a_failed_baseline_makes_it_unknown(server, make_client, api):
    api.fail = 503
    client = checking_client(make_client, server, api).connect()
    assert api.wait_for_requests(1)
    with api.lock:
        api.fail = None
    reconnect(server, 1)
    resync = client.get_notification(timeout=10)
    assert (resync.revision_changed, resync.previous_revision, resync.revision) == (None, None, 7)


def test_without_the_check_no_request_is_made(server, make_client, api):
    client = make_client(server, reconnect=yaxmpp.Reconnect(**FAST), api_url=api.url).connect()
    reconnect(server, 1)
    resync = client.get_notification(timeout=10)
    assert resync.revision_changed is None and resync.revision is None and resync.previous_revision is None
    assert api.requests == [] and revision_threads(client) == []


def test_a_hung_request_never_delays_the_session_and_the_pushes_wait_behind_the_resync(server, make_client, api):
    client = checking_client(make_client, server, api, api_timeout=60).connect()
    assert api.wait_for_requests(1)
    with api.lock:
        api.fail = "hang"
    session = reconnect(server, 1)
    assert api.wait_for_requests(2)
    assert len(revision_threads(client)) == 1  # the hung request, on its own thread
    ids = [session.push(change("/disk/%d" % n)) for n in range(3)]
    for iq_id in ids:
        assert session.wait_reply(iq_id).get("type") == "result"  # acknowledged meanwhile
    assert session.wait_reply(session.ping()).get("type") == "result"  # pings answered
    assert client.connected and client.pending_notifications == 3
    with pytest.raises(yaxmpp.Timeout):
        client.get_notification(timeout=0)  # held behind the resync, which waits for the answer
    api.released.set()  # the stand-in closes the connection without an answer
    items = [client.get_notification(timeout=10) for _ in range(4)]
    assert items[0].is_resync and items[0].revision_changed is None and items[0].previous_revision == 7
    assert [n.changes[0].path for n in items[1:]] == ["/disk/0", "/disk/1", "/disk/2"]


def test_the_wait_for_a_hung_request_is_bounded_by_api_timeout(server, make_client, api):
    client = checking_client(make_client, server, api, api_timeout=0.5).connect()
    assert api.wait_for_requests(1)
    with api.lock:
        api.fail = "hang"
    session = reconnect(server, 1)
    started = time.monotonic()
    session.push(change("/disk/after"))
    resync = client.get_notification(timeout=10)
    assert time.monotonic() - started < 0.5 + 1.5
    assert resync.is_resync and resync.revision_changed is None
    assert client.get_notification(timeout=10).changes[0].path == "/disk/after"


def test_close_stops_a_hung_request_and_delivers_the_resync(server, make_client, api):
    client = checking_client(make_client, server, api, api_timeout=60, close_timeout=2).connect()
    assert api.wait_for_requests(1)
    with api.lock:
        api.fail = "hang"
    session = reconnect(server, 1)
    session.wait_reply(session.push(change("/disk/held")))
    assert api.wait_for_requests(2)
    started = time.monotonic()
    client.close()
    assert time.monotonic() - started < 2 + 1.5
    assert revision_threads(client) == []  # cancelled and joined, not left to hang
    items = list(client.notifications())
    assert [("RESYNC" if n.is_resync else n.changes[0].path) for n in items] == ["RESYNC", "/disk/held"]
    assert items[0].revision_changed is None


def test_a_session_lost_before_its_answer_releases_its_resync_first(server, make_client, api):
    """The resync of a session that ends before its revision answer comes out (unknown) before
    that session's end, so the next gap's resync follows it in order."""
    client = checking_client(make_client, server, api, api_timeout=60).connect()
    assert api.wait_for_requests(1)
    with api.lock:
        api.fail = "hang"
    second = reconnect(server, 1)
    second.wait_reply(second.push(change("/disk/second")))
    assert api.wait_for_requests(2)
    with api.lock:
        api.fail = None
    third = reconnect(server, 2)  # the second session's request still hangs
    third.wait_reply(third.push(change("/disk/third")))
    assert api.wait_for_requests(3)
    items = [client.get_notification(timeout=10) for _ in range(2)]  # released by the loss
    assert items[0].is_resync and items[0].revision_changed is None
    assert items[1].changes[0].path == "/disk/second"
    with pytest.raises(yaxmpp.Timeout):
        client.get_notification(timeout=0)  # the third gap waits for the second answer
    api.released.set()  # which fails
    items = [client.get_notification(timeout=10) for _ in range(2)]
    assert items[0].is_resync and (items[0].revision_changed, items[0].previous_revision, items[0].revision) == (None, None, 7)
    assert items[1].changes[0].path == "/disk/third"


def test_the_token_never_shows_when_the_api_echoes_it(server, make_client, api, caplog):
    def echo(request: Request) -> Tuple[int, Dict[str, Any]]:
        return 401, {"error": "UnauthorizedError %s" % TOKEN, "description": "token %s or %s" % (half(TOKEN), half(TOKEN, False))}

    caplog.set_level(logging.DEBUG, logger="yaxmpp")
    api.route("GET", "/v1/disk/", echo)
    client = checking_client(make_client, server, api).connect()
    assert api.wait_for_requests(1)
    reconnect(server, 1)
    resync = client.get_notification(timeout=10)
    assert resync.revision_changed is None
    assert "could not get the disk's revision" in caplog.text and "401" in caplog.text
    assert_no_secret([caplog.text, repr(resync), resync.reason], TOKEN, login=LOGIN)


def test_options_are_checked():
    with pytest.raises(yaxmpp.UsageError):
        yaxmpp.Client(LOGIN, TOKEN, check_revision="yes")  # type: ignore[arg-type]
    for url in ["http://cloud-api.yandex.net", "https://", "https://h:0x1", "https://h/?q=1", "ftp://h"]:
        with pytest.raises(yaxmpp.UsageError):
            yaxmpp.Client(LOGIN, TOKEN, api_url=url)
    for timeout in [0, -1, float("nan"), "5"]:
        with pytest.raises(yaxmpp.UsageError):
            yaxmpp.Client(LOGIN, TOKEN, api_timeout=timeout)  # type: ignore[arg-type]
    options = yaxmpp.Client(LOGIN, TOKEN).options
    assert (options.check_revision, options.api_url, options.api_timeout) == (False, "https://cloud-api.yandex.net", 10.0)
    assert TOKEN not in repr(options.token)
