"""A hostile HTTPS server against yaxmpp.https, yaxmpp.diskapi, yaxmpp.oauth and
yaxmpp.credentials: every failure is a typed yaxmpp.Error within the request's bound, and no
secret the request carried shows in the error (str, repr, args, pickle) or the logs."""

from __future__ import annotations

import base64
import json
import math
import pickle
import socket
import ssl
import threading
import time
import urllib.parse
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest
import trustme

import yaxmpp
from yaxmpp import credentials, https, oauth
from yaxmpp.diskapi import disk_info
from yaxmpp.testing import CA_FILE

from .scripted import ScriptedServer, read_until, server_tls_context, wait_for_eof
from .secrets_check import assert_error_clean, assert_no_secret

# Secrets with a character URL encoding changes at least every 4 characters: their encoded
# forms share no run of 8 characters with them (what the redactor masks in the raw form).
TOKEN = "y0_A/gAA+AAB=hos&til?e-t%ok#en/wi+th="
SECRET = "cli/ent+sec=ret&wit h/od+d=ch&ars"
REFRESH = "1:r/efr+esh=tok&en?o%dd/cha+rs="


def _read_request(tls: Any) -> bytes:
    """The whole request (head and form body)."""
    data = read_until(tls, b"\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = tls.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def hostile(answer: Callable[[Any, bytes], None]) -> ScriptedServer:
    """An HTTPS server (the test CA) that reads one request and runs ``answer(tls, request)``."""

    def script(sock: socket.socket) -> None:
        tls = server_tls_context().wrap_socket(sock, server_side=True)
        answer(tls, _read_request(tls))

    return ScriptedServer(script)


def sends(data: bytes, close: bool = False) -> Callable[[Any, bytes], None]:
    def answer(tls: Any, request: bytes) -> None:
        try:
            tls.sendall(data)
        except OSError:
            return
        if close:
            tls.shutdown(socket.SHUT_RDWR)
        else:
            wait_for_eof(tls, 10)

    return answer


def http(body: "bytes | str", status: bytes = b"200 OK", extra: bytes = b"") -> bytes:
    data = body.encode("utf-8") if isinstance(body, str) else body
    return b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n" % (status, len(data), extra) + data


def base(server: ScriptedServer) -> str:
    return "https://127.0.0.1:%d" % server.port


def bounded(call: Callable[[], Any], timeout: float) -> BaseException:
    """Run ``call``; the yaxmpp.Error it raises, within ``timeout`` + 1.5 s."""
    started = time.monotonic()
    with pytest.raises(yaxmpp.Error) as caught:
        call()
    assert time.monotonic() - started < timeout + 1.5
    return caught.value


# -- HTTP framing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, kind",
    [
        (b"HTTP/1.1 \xb200 OK\r\nContent-Length: 2\r\n\r\n{}", yaxmpp.ProtocolError),  # "²00": isdigit, not int
        (b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\n{}", yaxmpp.ProtocolError),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n{\"a\": 1}xyz", yaxmpp.ProtocolError),
        (b"HTTP/1.1 200 OK\r\nContent-Length: \xb9\r\n\r\n{}", yaxmpp.ProtocolError),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n{}", yaxmpp.ProtocolError),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"f" * 5000 + b"\r\nabc", yaxmpp.ProtocolError),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nabc\r\n0\r\n\r\n", yaxmpp.ProtocolError),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\xb2\r\nab\r\n0\r\n\r\n", yaxmpp.ProtocolError),
        (b"HTTP/1.1 200 OK\r\nX-Endless: " + b"a" * 100, yaxmpp.ProtocolError),  # a header never ended
        (b"", yaxmpp.ConnectionLost),
    ],
    ids=["superscript-status", "4-digit-status", "negative-length", "superscript-length", "huge-length-closed",
         "huge-chunk-closed", "negative-chunk", "superscript-chunk", "unended-header", "nothing"],
)
def test_broken_framing_is_a_typed_error(data: bytes, kind: type) -> None:
    with hostile(sends(data, close=True)) as server:
        error = bounded(lambda: https.request("GET", base(server) + "/", cafile=CA_FILE, timeout=5), 5)
    assert isinstance(error, kind), repr(error)


def test_an_endless_header_stops_at_the_size_limit() -> None:
    def answer(tls: Any, request: bytes) -> None:
        tls.sendall(b"HTTP/1.1 200 OK\r\nX-Endless: ")
        try:
            for _ in range(https.MAX_ANSWER // 65536 + 2):
                tls.sendall(b"a" * 65536)
        except OSError:
            return
        wait_for_eof(tls, 10)

    with hostile(answer) as server:
        error = bounded(lambda: https.request("GET", base(server) + "/", cafile=CA_FILE, timeout=10), 10)
    assert isinstance(error, yaxmpp.ProtocolError) and "larger than" in str(error)


@pytest.mark.parametrize("head", [b"Content-Length: 99999999999\r\n", b"Transfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff"])
def test_a_huge_announced_body_never_sent_is_a_timeout_within_the_bound(head: bytes) -> None:
    with hostile(sends(b"HTTP/1.1 200 OK\r\n" + head + b"\r\n{}")) as server:
        error = bounded(lambda: https.request("GET", base(server) + "/", cafile=CA_FILE, timeout=0.8), 0.8)
    assert isinstance(error, yaxmpp.Timeout)


def test_a_flood_of_tiny_tls_records_stays_within_the_bound() -> None:
    stop = threading.Event()

    def answer(tls: Any, request: bytes) -> None:
        tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (2 * https.MAX_ANSWER))  # never whole
        try:
            while not stop.is_set():
                tls.sendall(b" ")  # one TLS record a byte, as fast as it goes
        except OSError:
            pass

    with hostile(answer) as server:
        try:
            error = bounded(lambda: https.request("GET", base(server) + "/", cafile=CA_FILE, timeout=1.0), 1.0)
        finally:
            stop.set()
    assert isinstance(error, (yaxmpp.Timeout, yaxmpp.ProtocolError))


# -- TLS --------------------------------------------------------------------------------------------


def test_a_plain_http_server_on_the_https_port_is_a_tls_error() -> None:
    def script(sock: socket.socket) -> None:
        sock.recv(65536)
        sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        sock.shutdown(socket.SHUT_RDWR)

    with ScriptedServer(script) as server:
        error = bounded(lambda: https.request("GET", base(server) + "/", cafile=CA_FILE, timeout=5), 5)
    assert isinstance(error, yaxmpp.TLSError)


@pytest.mark.parametrize("behaviour", ["silent", "close", "garbage"])
def test_a_peer_that_never_does_tls_fails_within_the_bound(behaviour: str) -> None:
    stop = threading.Event()

    def script(sock: socket.socket) -> None:
        if behaviour == "garbage":
            sock.sendall(b"\x16\x03\x01\x00\x05hello" * 10)
        if behaviour == "close":
            sock.shutdown(socket.SHUT_RDWR)
            return
        stop.wait(10)

    with ScriptedServer(script) as server:
        try:
            error = bounded(lambda: disk_info(TOKEN, api_url=base(server), cafile=CA_FILE, timeout=0.8), 0.8)
        finally:
            stop.set()
    assert isinstance(error, yaxmpp.Timeout if behaviour == "silent" else yaxmpp.TLSError), repr(error)
    assert_error_clean(error, TOKEN)


def test_a_certificate_for_another_name_is_a_tls_error(tmp_path: Any) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("other.example")
    cafile = str(tmp_path / "ca.pem")
    ca.cert_pem.write_to_path(cafile)

    def script(sock: socket.socket) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(context)
        try:
            context.wrap_socket(sock, server_side=True).recv(1)
        except (OSError, ssl.SSLError):
            pass

    with ScriptedServer(script) as server:
        error = bounded(lambda: disk_info(TOKEN, api_url=base(server), cafile=cafile, timeout=5), 5)
    assert isinstance(error, yaxmpp.TLSError) and "127.0.0.1" in str(error)
    assert_error_clean(error, TOKEN)


def test_a_redirect_to_another_host_is_not_followed() -> None:
    location = b"Location: https://evil.example/v1/disk/?token=" + TOKEN.encode() + b"\r\n"
    with hostile(sends(http('{"message": "moved"}', b"302 Found", location))) as server:
        error = bounded(lambda: disk_info(TOKEN, api_url=base(server), cafile=CA_FILE, timeout=5), 5)
    assert isinstance(error, yaxmpp.APIError) and error.status == 302 and "evil" not in str(error)
    assert_error_clean(error, TOKEN)


# -- JSON ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, status",
    [
        ("[" * 100000 + "]" * 100000, b"200 OK"),  # nested past the recursion limit
        ('{"error": ' + "[" * 100000 + "]" * 100000 + "}", b"400 Bad Request"),
        ("not json", b"200 OK"),
        ("[1, 2]", b"200 OK"),
        ('"a string"', b"200 OK"),
        ("1" * 5000, b"200 OK"),  # more digits than int() takes
        (b"\xff\xfe{}", b"200 OK"),
        ("", b"200 OK"),
        ("<html>", b"503 Service Unavailable"),
    ],
    ids=["deep", "deep-error", "text", "array", "string", "long-int", "not-utf8", "empty", "html-503"],
)
def test_an_answer_that_is_not_a_json_object_is_an_api_error(body: "str | bytes", status: bytes) -> None:
    with hostile(sends(http(body, status))) as server:
        error = bounded(lambda: https.request_json("GET", base(server) + "/", cafile=CA_FILE, timeout=5), 5)
    assert isinstance(error, yaxmpp.APIError) and error.status == int(status[:3])


@pytest.mark.parametrize(
    "revision, expected",
    [('"42"', 42), ('"\\u00b2"', None), ('"%s"' % ("1" * 5000), None), ('"-1"', None), ("1.5", None), ("true", None), ('[1]', None)],
    ids=["digits", "superscript", "5000-digits", "negative-text", "float", "bool", "array"],
)
def test_a_revision_of_the_wrong_type(revision: str, expected: Optional[int]) -> None:
    with hostile(sends(http('{"revision": %s, "user": {"login": 5}}' % revision))) as server:
        if expected is not None:
            info = disk_info(TOKEN, api_url=base(server), cafile=CA_FILE, timeout=5)
            assert info.revision == expected and info.login is None
            return
        error = bounded(lambda: disk_info(TOKEN, api_url=base(server), cafile=CA_FILE, timeout=5), 5)
    assert isinstance(error, yaxmpp.APIError) and "revision" in str(error)


@pytest.mark.parametrize("login", ["test@evil.example", "te st", "\x1b[2Jtest", "a/b", "x" * 300, "", "a\u0085b"])
def test_a_login_that_cannot_be_one_is_no_login(login: str) -> None:
    with hostile(sends(http(json.dumps({"revision": 1, "user": {"login": login}})))) as server:
        assert disk_info(TOKEN, api_url=base(server), cafile=CA_FILE, timeout=5).login is None
    with hostile(sends(http(json.dumps({"revision": 1, "user": {"login": login}})))) as server:
        error = bounded(lambda: credentials.lookup_login(TOKEN, api_url=base(server), cafile=CA_FILE, timeout=5), 5)
    assert isinstance(error, yaxmpp.APIError) and "login" in str(error)


@pytest.mark.parametrize("login", ["test", "ivan.petrov-1985", "пользователь"])
def test_a_plain_login_is_kept(login: str) -> None:
    with hostile(sends(http(json.dumps({"revision": 1, "user": {"login": login}})))) as server:
        assert disk_info(TOKEN, api_url=base(server), cafile=CA_FILE, timeout=5).login == login


def test_control_characters_in_an_error_are_escaped() -> None:
    body = json.dumps({"error": "bad\x1b[2J\x1b]0;pwned\x07", "error_description": "line\r\nInjected: yes\x00"})
    with hostile(sends(http(body, b"400 Bad Request"))) as server:
        error = bounded(lambda: https.request_json("GET", base(server) + "/", cafile=CA_FILE, timeout=5), 5)
    assert isinstance(error, yaxmpp.APIError)
    for text in (str(error), error.error or "", error.description or ""):
        assert not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in text), repr(text)
    assert error.error == "bad\\x1b[2J\\x1b]0;pwned\\x07"


# -- OAuth answers of the wrong shape ------------------------------------------------------------------

CODE = {"device_code": "dev-code-123456", "user_code": "ABCD-1234", "verification_url": "https://ya.ru/device"}


def device_code(server: ScriptedServer) -> oauth.DeviceCode:
    return oauth.request_device_code("client-id", oauth_url=base(server), cafile=CA_FILE, timeout=5)


@pytest.mark.parametrize(
    "fields",
    [
        {"interval": -1},
        {"interval": "NaN"},
        {"interval": "\u00b2"},
        {"interval": True},
        {"interval": [5]},
        {"expires_in": -300},
        {"expires_in": 10 ** 400},  # beyond a float
        {"expires_in": "9" * 5000},
        {"device_code": None},
        {"device_code": 12345678},
        {"user_code": "\x1b[2JABCD"},  # a terminal escape for the user's screen
        {"user_code": ""},
        {"verification_url": "https://evil.example/\x1b[2J"},
        {"verification_url": "javascript:alert(1)"},
        {"verification_url": 5},
    ],
)
def test_an_unusable_device_code_answer_is_an_api_error(fields: Dict[str, Any]) -> None:
    document = dict(CODE, **fields)
    body = json.dumps(document).replace('"NaN"', "NaN")
    with hostile(sends(http(body))) as server:
        error = bounded(lambda: device_code(server), 5)
    assert isinstance(error, yaxmpp.APIError) and error.status == 200


@pytest.mark.parametrize(
    "fields, interval, expires_in",
    [
        ({"interval": 0}, oauth.MIN_INTERVAL, 600.0),
        ({"interval": 10 ** 9, "expires_in": 10 ** 9}, oauth.MAX_INTERVAL, oauth.MAX_CODE_LIFETIME),
        ({"interval": "7", "expires_in": "120"}, 7.0, 120.0),
        ({"interval": 1e-9}, oauth.MIN_INTERVAL, 600.0),
    ],
)
def test_the_interval_and_lifetime_of_a_code_are_kept_within_bounds(fields: Dict[str, Any], interval: float, expires_in: float) -> None:
    with hostile(sends(http(json.dumps(dict(CODE, **fields))))) as server:
        code = device_code(server)
    assert (code.interval, code.expires_in) == (interval, expires_in)


def test_a_server_that_says_interval_0_is_not_hammered() -> None:
    polls: List[float] = []

    def script(sock: socket.socket) -> None:
        tls = server_tls_context().wrap_socket(sock, server_side=True)
        request = _read_request(tls)
        polls.append(time.monotonic())
        document = dict(CODE, interval=0, expires_in=1) if b"/device/code" in request else {"error": oauth.PENDING}
        tls.sendall(http(json.dumps(document), b"200 OK" if b"/device/code" in request else b"400 Bad Request"))
        tls.shutdown(socket.SHUT_RDWR)

    with ScriptedServer(script) as server:
        code = device_code(server)
        error = bounded(lambda: oauth.wait_for_token("client-id", SECRET, code, oauth_url=base(server), cafile=CA_FILE, timeout=5), 1)
    assert isinstance(error, yaxmpp.APIError) and error.error == oauth.EXPIRED
    assert 1 <= len(polls) - 1 <= 1 / oauth.MIN_INTERVAL + 1  # not hundreds of polls in the second


@pytest.mark.parametrize(
    "fields",
    [
        {"access_token": None},
        {"access_token": 12345678},
        {"access_token": ["a"]},
        {"access_token": ""},
        {"access_token": "tok\r\nX-Injected: 1"},
        {"access_token": "tok en"},
        {"access_token": "тест-токен"},
        {"access_token": "a" * 10000},
        {"access_token": "good-token-1", "expires_in": -1},
        {"access_token": "good-token-1", "expires_in": 10 ** 400},
        {"access_token": "good-token-1", "expires_in": "NaN"},
    ],
)
def test_an_unusable_token_answer_is_an_api_error(fields: Dict[str, Any]) -> None:
    body = json.dumps(fields).replace('"NaN"', "NaN")
    with hostile(sends(http(body))) as server:
        error = bounded(lambda: oauth.refresh_token("client-id", SECRET, REFRESH, oauth_url=base(server), cafile=CA_FILE, timeout=5), 5)
    assert isinstance(error, yaxmpp.APIError) and error.status == 200
    assert_error_clean(error, SECRET)
    assert_error_clean(error, REFRESH)


def test_a_huge_token_lifetime_is_capped_and_can_be_stored(tmp_path: Any) -> None:
    body = json.dumps({"access_token": "good-token-1", "expires_in": 1e300})
    with hostile(sends(http(body))) as server:
        tokens = oauth.refresh_token("client-id", SECRET, REFRESH, oauth_url=base(server), cafile=CA_FILE, timeout=5)
    assert tokens.expires_in == oauth.MAX_TOKEN_LIFETIME
    path = str(tmp_path / "credentials.json")
    credentials.save(credentials.Credentials.from_tokens(tokens), path)
    stored = credentials.load(path)
    assert stored is not None and stored.expires_at is not None and math.isfinite(stored.expires_at)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e400", "-5", "true", "1e15"])
def test_a_stored_expiry_that_is_not_a_time_is_a_usage_error(tmp_path: Any, value: str) -> None:
    path = tmp_path / "credentials.json"
    path.write_text('{"access_token": "stored-token-1", "expires_at": %s}' % value)
    with pytest.raises(yaxmpp.UsageError) as caught:
        credentials.load(str(path))
    assert "expires_at" in str(caught.value)


# -- secrets echoed back ----------------------------------------------------------------------------

ENCODINGS: Dict[str, Callable[[str], str]] = {
    "whole": lambda s: s,
    "upper": str.upper,
    "half": lambda s: s[len(s) // 2 :],
    "base64": lambda s: base64.b64encode(s.encode()).decode(),
    "base64url": lambda s: base64.urlsafe_b64encode(("x" + s).encode()).decode(),
    "hex": lambda s: s.encode().hex().upper(),
    "quote": lambda s: urllib.parse.quote(s, safe=""),
    "quote-lower": lambda s: urllib.parse.quote(s, safe="").lower(),
    "quote_plus": urllib.parse.quote_plus,
    "quote-keep-slash": urllib.parse.quote,
}


def echoing(encode: Callable[[str], str], status: bytes = b"400 Bad Request") -> Callable[[Any, bytes], None]:
    """Answers with every secret of the request (and the request itself) encoded in the error,
    its description, its message and a header."""

    def answer(tls: Any, request: bytes) -> None:
        text = request.decode("utf-8", "replace")
        head, _, body = text.partition("\r\n\r\n")
        form = urllib.parse.parse_qs(body)
        found = [v[0] for k, v in form.items() if k in ("client_secret", "refresh_token", "code")]
        found += [line.split(" ", 2)[-1] for line in head.split("\r\n") if line.lower().startswith("authorization:")]
        echo = " ".join(encode(s) for s in found)
        document = {"error": "invalid_grant " + echo, "error_description": "you sent %s: %s" % (body, echo), "message": echo}
        tls.sendall(http(json.dumps(document), status, b"X-Echo: " + echo.encode("utf-8", "replace") + b"\r\n"))
        wait_for_eof(tls, 10)

    return answer


def assert_clean(error: BaseException, secret: str) -> None:
    """``error`` (str, repr, args, attributes, pickle) carries no piece of 8 characters of
    ``secret`` in any of the encodings a server may echo it in."""
    assert_error_clean(error, secret)
    texts = "\n".join([str(error), repr(error), repr(error.args), repr(vars(error)), repr(pickle.dumps(error))]).lower()
    for name, encode in ENCODINGS.items():
        form = encode(secret).lower()
        for i in range(len(form) - 7):
            assert form[i : i + 8] not in texts, "%s form of a secret shows: %r" % (name, form[i : i + 8])


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_echoed_secrets_never_show_in_oauth_errors(encoding: str) -> None:
    with hostile(echoing(ENCODINGS[encoding])) as server:
        error = bounded(lambda: oauth.refresh_token("client-id", SECRET, REFRESH, oauth_url=base(server), cafile=CA_FILE, timeout=5), 5)
    assert isinstance(error, yaxmpp.APIError) and error.status == 400
    for secret in (SECRET, REFRESH):
        assert_clean(error, secret)


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_an_echoed_token_never_shows_in_disk_api_errors(encoding: str) -> None:
    with hostile(echoing(ENCODINGS[encoding], b"401 Unauthorized")) as server:
        error = bounded(lambda: disk_info(TOKEN, api_url=base(server), cafile=CA_FILE, timeout=5), 5)
    assert isinstance(error, yaxmpp.APIError) and error.status == 401
    assert_clean(error, TOKEN)


def test_an_echoed_device_code_and_secret_never_show_in_the_exchange_error() -> None:
    with hostile(echoing(ENCODINGS["quote_plus"])) as server:
        error = bounded(lambda: oauth.exchange_device_code("client-id", SECRET, "device/code+with=odd&chars", oauth_url=base(server), cafile=CA_FILE, timeout=5), 5)
    assert_clean(error, SECRET)
    assert_clean(error, "device/code+with=odd&chars")


def test_a_refresh_whose_answer_echoes_the_secrets_logs_none_of_them(caplog: pytest.LogCaptureFixture, tmp_path: Any) -> None:
    stored = credentials.Credentials(
        "old-access-token-1", refresh_token=REFRESH, client_id="client-id", client_secret=SECRET, expires_at=time.time() + 3600
    )
    with hostile(echoing(ENCODINGS["quote"], b"500 Internal Server Error")) as server:
        with caplog.at_level("DEBUG", logger="yaxmpp"):
            kept = credentials.fresh(stored, str(tmp_path / "c.json"), oauth_url=base(server), cafile=CA_FILE, timeout=5)
    assert kept is stored  # a server error while the token is valid: kept, with a warning
    assert "could not refresh" in caplog.text
    for secret in (SECRET, REFRESH):
        assert_no_secret(caplog.text, secret)
        for encode in ENCODINGS.values():
            form = encode(secret).lower()
            assert not any(form[i : i + 8] in caplog.text.lower() for i in range(len(form) - 7))


def test_a_refused_refresh_that_echoes_the_secrets_is_a_clean_auth_error() -> None:
    stored = credentials.Credentials("old-access-token-1", refresh_token=REFRESH, client_id="client-id", client_secret=SECRET, expires_at=0)
    with hostile(echoing(ENCODINGS["quote_plus"])) as server:
        with pytest.raises(yaxmpp.AuthError) as caught:
            credentials.fresh(stored, oauth_url=base(server), cafile=CA_FILE, timeout=5, store=False)
    for secret in (SECRET, REFRESH):
        assert_clean(caught.value, secret)
