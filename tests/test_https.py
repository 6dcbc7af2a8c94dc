"""yaxmpp.https (one bounded HTTPS request), yaxmpp.diskapi (GET /v1/disk/) and the REST
stand-in (yaxmpp.testing.rest), over loopback with real TLS."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest

import yaxmpp
from yaxmpp import https
from yaxmpp.cancel import Cancel
from yaxmpp.diskapi import disk_info
from yaxmpp.testing import CA_FILE
from yaxmpp.testing.rest import Request, RestStandIn

from .conftest import TOKEN
from .scripted import ScriptedServer, read_until, server_tls_context, wait_for_eof
from .secrets_check import assert_error_clean, assert_no_secret, half


@pytest.fixture
def api() -> Iterator[RestStandIn]:
    with RestStandIn(token=TOKEN, login="test", revision=7) as stand_in:
        yield stand_in


def raw_server(answer: Callable[[Any], None]) -> ScriptedServer:
    """An HTTPS server that reads one request and runs ``answer(tls_socket)``."""

    def script(sock: socket.socket) -> None:
        tls = server_tls_context().wrap_socket(sock, server_side=True)
        read_until(tls, b"\r\n\r\n")
        answer(tls)

    return ScriptedServer(script)


def url(server: ScriptedServer) -> str:
    return "https://127.0.0.1:%d" % server.port


# -- the Disk API through the stand-in ---------------------------------------------------------------


def test_200_gives_the_revision_and_the_login(api):
    info = disk_info(TOKEN, api_url=api.url, cafile=CA_FILE, timeout=5)
    assert (info.revision, info.login) == (7, "test")
    assert info.raw["user"]["login"] == "test"
    [request] = api.requests
    assert (request.method, request.path) == ("GET", "/v1/disk/")
    assert request.headers["authorization"] == "OAuth %s" % TOKEN
    assert request.headers["host"] == "127.0.0.1:%d" % api.port
    assert request.headers["user-agent"] == https.USER_AGENT
    assert request.headers["connection"] == "close"


def test_the_api_url_may_end_with_a_slash_and_the_token_be_a_secret(api):
    from yaxmpp.protocol.redact import Secret

    assert disk_info(Secret(TOKEN), api_url=api.url + "/", cafile=CA_FILE, timeout=5).revision == 7
    assert api.requests[0].path == "/v1/disk/"


def test_a_missing_revision_is_none(api):
    api.revision = None
    assert disk_info(TOKEN, api_url=api.url, cafile=CA_FILE, timeout=5).revision is None


def test_401_for_a_wrong_token(api):
    with pytest.raises(yaxmpp.APIError) as caught:
        disk_info("wrong-token-0123456789", api_url=api.url, cafile=CA_FILE, timeout=5)
    assert caught.value.status == 401 and caught.value.error == "UnauthorizedError"
    assert caught.value.description == "Unauthorized"
    assert "401" in str(caught.value)


def test_503(api):
    api.fail = 503
    with pytest.raises(yaxmpp.APIError) as caught:
        disk_info(TOKEN, api_url=api.url, cafile=CA_FILE, timeout=5)
    assert caught.value.status == 503 and "503" in str(caught.value)


def test_a_hung_answer_is_a_timeout_within_the_bound(api):
    api.fail = "hang"
    started = time.monotonic()
    with pytest.raises(yaxmpp.Timeout) as caught:
        disk_info(TOKEN, api_url=api.url, cafile=CA_FILE, timeout=0.5)
    assert time.monotonic() - started < 0.5 + 1.5
    assert caught.value.step == https.STEP


def test_a_connection_closed_without_an_answer(api):
    api.fail = "close"
    with pytest.raises(yaxmpp.ConnectionLost):
        disk_info(TOKEN, api_url=api.url, cafile=CA_FILE, timeout=5)


def test_cancel_stops_a_hung_request_at_once(api):
    api.fail = "hang"
    cancel = Cancel()
    timer = threading.Timer(0.2, cancel.cancel)
    timer.start()
    started = time.monotonic()
    try:
        with pytest.raises(yaxmpp.ClientClosed):
            disk_info(TOKEN, api_url=api.url, cafile=CA_FILE, timeout=30, cancel=cancel)
    finally:
        timer.join()
    assert time.monotonic() - started < 0.2 + 1.5


def test_the_token_echoed_in_the_error_description_is_masked(api):
    def echo(request: Request) -> Tuple[int, Dict[str, Any]]:
        return 401, {
            "error": "Unauthorized:%s" % TOKEN,
            "description": "your token %s... ends %s" % (half(TOKEN), half(TOKEN, False)),
            "message": request.headers.get("authorization", ""),
        }

    api.route("GET", "/v1/disk/", echo)
    with pytest.raises(yaxmpp.APIError) as caught:
        disk_info(TOKEN, api_url=api.url, cafile=CA_FILE, timeout=5)
    error = caught.value
    assert error.status == 401 and error.description is not None and "your token" in error.description
    assert_error_clean(error, TOKEN)
    assert_no_secret([error.error or "", error.description], TOKEN)


def test_a_certificate_not_trusted_is_a_tls_error(api):
    with pytest.raises(yaxmpp.TLSError):
        disk_info(TOKEN, api_url=api.url, timeout=5)  # certifi's bundle: the test CA is unknown
    assert api.requests == []


def test_bad_urls_are_usage_errors():
    for bad in ["http://127.0.0.1:1", "https://", "https://127.0.0.1:99999"]:
        with pytest.raises(yaxmpp.UsageError):
            https.request("GET", bad, timeout=1)


# -- answers only a hand-made server gives ----------------------------------------------------------


def _send_json(document: Dict[str, Any], status: str = "200 OK", extra: str = "") -> Callable[[Any], None]:
    def answer(tls: Any) -> None:
        body = json.dumps(document).encode()
        tls.sendall(
            ("HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n" % (status, len(body), extra)).encode()
            + body
        )
        wait_for_eof(tls, 10)  # the connection stays open: the client must see the answer is whole

    return answer


def test_an_answer_of_known_length_is_complete_without_the_server_closing():
    with raw_server(_send_json({"revision": 3})) as server:
        started = time.monotonic()
        assert https.request_json("GET", url(server) + "/v1/disk/", cafile=CA_FILE, timeout=10) == {"revision": 3}
        assert time.monotonic() - started < 5


def test_a_chunked_answer():
    body = json.dumps({"revision": 11, "user": {"login": "test"}}).encode()
    pieces = [body[:5], body[5:17], body[17:]]

    def answer(tls: Any) -> None:
        tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        for piece in pieces:
            tls.sendall(b"%x;ext=1\r\n%s\r\n" % (len(piece), piece))
        tls.sendall(b"0\r\nX-Trailer: yes\r\n\r\n")
        wait_for_eof(tls, 10)

    with raw_server(answer) as server:
        info = disk_info(TOKEN, api_url=url(server), cafile=CA_FILE, timeout=10)
    assert (info.revision, info.login) == (11, "test")


def test_a_chunk_whose_data_ends_like_the_last_chunk_is_not_taken_for_it():
    first = b'{"revision": 10\r\n'  # JSON whitespace: with its chunk's CR LF it ends "0\r\n\r\n"
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    partial = head + b"%x\r\n%s\r\n" % (len(first), first)
    assert not https._complete(partial)  # a reader that stopped here would lose the rest
    assert https._complete(partial + b"1\r\n}\r\n0\r\n\r\n")

    def answer(tls: Any) -> None:
        tls.sendall(partial)
        tls.sendall(b"1\r\n}\r\n0\r\n\r\n")
        wait_for_eof(tls, 10)

    with raw_server(answer) as server:
        assert https.request_json("GET", url(server) + "/", cafile=CA_FILE, timeout=10) == {"revision": 10}


def test_an_oversize_answer_is_a_protocol_error():
    def answer(tls: Any) -> None:
        size = https.MAX_ANSWER + 1024
        tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        block = b"x" * 65536
        try:
            for _ in range(size // len(block) + 1):
                tls.sendall(block)
        except OSError:
            pass  # the client stopped reading
        wait_for_eof(tls, 10)

    with raw_server(answer) as server:
        with pytest.raises(yaxmpp.ProtocolError) as caught:
            https.request("GET", url(server) + "/", cafile=CA_FILE, timeout=10)
    assert "larger than" in str(caught.value)


def test_an_oversize_answer_without_a_length_is_a_protocol_error_too():
    def answer(tls: Any) -> None:
        tls.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
        try:
            for _ in range(https.MAX_ANSWER // 65536 + 2):
                tls.sendall(b"y" * 65536)
        except OSError:
            pass
        wait_for_eof(tls, 10)

    with raw_server(answer) as server:
        with pytest.raises(yaxmpp.ProtocolError):
            https.request("GET", url(server) + "/", cafile=CA_FILE, timeout=10)


def test_a_trickling_server_does_not_extend_the_deadline():
    stop = threading.Event()

    def answer(tls: Any) -> None:
        tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        while not stop.wait(0.05):  # one byte every 50 ms: each read gets something
            try:
                tls.sendall(b" ")
            except OSError:
                return

    with raw_server(answer) as server:
        started = time.monotonic()
        try:
            with pytest.raises(yaxmpp.Timeout):
                https.request("GET", url(server) + "/", cafile=CA_FILE, timeout=0.6)
            assert time.monotonic() - started < 0.6 + 1.5
        finally:
            stop.set()


def test_a_redirect_is_not_followed(api):
    location = api.url + "/v1/disk/"

    with raw_server(_send_json({"message": "moved"}, "302 Found", "Location: %s\r\n" % location)) as server:
        with pytest.raises(yaxmpp.APIError) as caught:
            disk_info(TOKEN, api_url=url(server), cafile=CA_FILE, timeout=10)
        answer = https.request("GET", url(server) + "/v1/disk/", cafile=CA_FILE, timeout=10)
    assert caught.value.status == 302
    assert answer.status == 302 and answer.headers["location"] == location
    assert api.requests == []  # nobody went where it pointed


def test_an_answer_that_is_not_json_is_an_api_error():
    def answer(tls: Any) -> None:
        tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        wait_for_eof(tls, 10)

    with raw_server(answer) as server:
        with pytest.raises(yaxmpp.APIError) as caught:
            https.request_json("GET", url(server) + "/", cafile=CA_FILE, timeout=10)
    assert caught.value.status == 200


def test_something_that_is_not_http_is_a_protocol_error():
    def answer(tls: Any) -> None:
        tls.sendall(b"<?xml version='1.0'?><stream:stream>")
        tls.shutdown(socket.SHUT_RDWR)

    with raw_server(answer) as server:
        with pytest.raises(yaxmpp.ProtocolError):
            https.request("GET", url(server) + "/", cafile=CA_FILE, timeout=10)


def test_a_truncated_answer_is_a_protocol_error():
    def answer(tls: Any) -> None:
        tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{\"revision\"")
        tls.shutdown(socket.SHUT_RDWR)

    with raw_server(answer) as server:
        with pytest.raises(yaxmpp.ProtocolError):
            https.request("GET", url(server) + "/", cafile=CA_FILE, timeout=10)


def test_a_post_form_is_sent_urlencoded(api):
    seen: List[Request] = []

    def token(request: Request) -> Tuple[int, Dict[str, Any]]:
        seen.append(request)
        return 200, {"ok": True}

    api.route("POST", "/token", token)
    assert https.request_json("POST", api.url + "/token", form={"a": "1 2", "b": "&"}, cafile=CA_FILE, timeout=5) == {"ok": True}
    assert seen[0].form == {"a": "1 2", "b": "&"}
    assert seen[0].headers["content-type"] == "application/x-www-form-urlencoded"


@pytest.mark.parametrize("timeout", [-1, 0, float("nan"), True])
def test_a_bad_timeout_is_a_usage_error(timeout):
    with pytest.raises(yaxmpp.UsageError, match="timeout"):
        yaxmpp.https.request("GET", "https://127.0.0.1:9/", timeout=timeout)
