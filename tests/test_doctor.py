"""``yaxmpp doctor`` and yaxmpp.doctor against the stand-ins: every step passing, and each
failure the issue names, with its step, hint and exit code."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import ssl
import time
from typing import Any, Dict, Iterator, List, Tuple

import pytest
import trustme

import yaxmpp.cli
from yaxmpp import doctor
from yaxmpp.testing import CA_FILE, FakeServer
from yaxmpp.testing.rest import RestStandIn

from .conftest import LOGIN, TOKEN, closed_port, join_library_threads
from .scripted import STREAM_HEAD, ScriptedServer, read_until, server_tls_context, wait_for_eof

ALL_STEPS = ["resolve", "tcp-starttls", "tcp-tls", "starttls", "tls", "stream", "sasl", "bind", "session", "subscribe", "ping", "close"]


def cli(argv: List[str]) -> Tuple[int, str, str]:
    parser = yaxmpp.cli._parser()
    args = parser.parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    code = args.run(args, out, err)
    return code, out.getvalue(), err.getvalue()


def doctor_args(options: Dict[str, Any], *extra: str, login: str = LOGIN) -> List[str]:
    def port(value: Any) -> str:
        return "none" if value is None else str(value)

    return [
        "doctor",
        "--login",
        login,
        "--host",
        options["host"],
        "--port",
        port(options["port"]),
        "--tls-port",
        port(options["tls_port"]),
        "--cafile",
        options.get("cafile") or CA_FILE,
        "--timeout",
        "5",
        *extra,
    ]


@pytest.fixture
def token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YANDEX_DISK_TOKEN", TOKEN)
    monkeypatch.setenv("XDG_CONFIG_HOME", "/nonexistent-yaxmpp-test")  # never the user's own credentials


def names(steps: List[doctor.StepResult]) -> List[str]:
    return [s.name for s in steps]


def failed(steps: List[doctor.StepResult]) -> List[doctor.StepResult]:
    return [s for s in steps if not s.ok]


def test_every_step_passes_against_the_stand_in(server: FakeServer) -> None:
    seen: List[str] = []
    steps = doctor.diagnose(LOGIN, TOKEN, timeout=5, on_step=lambda s: seen.append(s.name), **server.client_options())
    assert names(steps) == ALL_STEPS == seen
    assert not failed(steps)
    by_name = {s.name: s for s in steps}
    assert by_name["resolve"].info["addresses"] == ["127.0.0.1"]
    tls = by_name["tls"].info
    assert tls["version"] in ("TLSv1.2", "TLSv1.3")
    assert tls["subject"] == "yaxmpp stand-in server" and "test CA" in tls["issuer"]
    assert tls["not_after"] and tls["host_name_matches"] is True
    assert by_name["stream"].info["mechanisms"] == ["X-YANDEX-OAUTH"] and by_name["stream"].info["compression"] == ["zlib"]
    assert by_name["bind"].info["jid"] == "%s@ya.ru/YaDisk-client" % LOGIN
    assert all(s.seconds >= 0 for s in steps)
    # the STARTTLS connection did it all (the direct-TLS one was only opened)
    subscribed = [s for s in server.sessions if s.subscribed.is_set()]
    assert len(subscribed) == 1 and not subscribed[0].direct_tls and subscribed[0].client_closed.wait(5)


def test_the_cli_prints_one_line_per_step_and_exits_0(server: FakeServer, token_env: None) -> None:
    code, out, err = cli(doctor_args(server.client_options()))
    assert code == 0, err
    # its own resource, so that a running watch (YaDisk-client) is not kicked off
    assert [s.jid for s in server.sessions if s.jid] == ["%s@ya.ru/yaxmpp-doctor-%d" % (LOGIN, os.getpid())]
    lines = out.splitlines()
    assert len(lines) == len(ALL_STEPS) and all(line.startswith("ok ") for line in lines)
    assert re.search(r"TLS handshake\s+\d+\.\d ms\s+TLSv1\.[23]", out)
    assert TOKEN not in out + err


def test_json_and_the_rest_check(server: FakeServer, token_env: None) -> None:
    with RestStandIn(token=TOKEN, login=LOGIN, revision=42) as api:
        code, out, err = cli(doctor_args(server.client_options(), "--json", "--rest", "--api-url", api.url))
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["step"] for r in records] == ALL_STEPS + ["rest"]
    assert all(r["ok"] and r["error"] is None and isinstance(r["ms"], float) for r in records)
    assert records[-1]["info"] == {"login": LOGIN, "revision": 42}
    assert TOKEN not in out + err


def test_a_closed_starttls_port_says_use_port_none(server: FakeServer, token_env: None) -> None:
    options = dict(server.client_options(), port=closed_port())
    steps = doctor.diagnose(LOGIN, TOKEN, timeout=5, **options)
    bad = failed(steps)
    assert names(bad) == ["tcp-starttls"]
    assert "--port none" in (bad[0].hint or "")
    assert isinstance(bad[0].error, yaxmpp.ConnectError)
    # like the client, the direct-TLS port is tried, and the rest passes through it
    assert names(steps) == ["resolve", "tcp-starttls", "tcp-tls", "tls", "stream", "sasl", "bind", "session", "subscribe", "ping", "close"]
    code, out, _ = cli(doctor_args(options))
    assert code == 4
    assert out.splitlines()[1].startswith("FAIL") and "--port none" in out


def test_a_certificate_from_another_ca_says_use_cafile(make_server: Any, tmp_path: "os.PathLike[str]", token_env: None) -> None:
    other = trustme.CA()
    cert = other.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile = os.path.join(str(tmp_path), "cert.pem"), os.path.join(str(tmp_path), "key.pem")
    cert.private_key_and_cert_chain_pem.write_to_path(certfile)
    cert.private_key_pem.write_to_path(keyfile)
    server = make_server(certfile=certfile, keyfile=keyfile)
    steps = doctor.diagnose(LOGIN, TOKEN, timeout=5, **server.client_options())  # trusting only the usual test CA
    assert names(steps) == ["resolve", "tcp-starttls", "tcp-tls", "starttls", "tls"]
    bad = failed(steps)
    assert names(bad) == ["tls"] and isinstance(bad[0].error, yaxmpp.TLSError)
    assert "--cafile" in (bad[0].hint or "") and "not trusted" in (bad[0].hint or "")
    code, out, _ = cli(doctor_args(server.client_options()))
    assert code == 4 and "--cafile" in out


def test_a_wrong_token_says_run_login_and_never_shows_the_token(make_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    server = make_server(token="the-right-token-0f1e2d3c4b5a6978")
    steps = doctor.diagnose(LOGIN, TOKEN, timeout=5, **server.client_options())
    bad = failed(steps)
    assert names(bad) == ["sasl"] and isinstance(bad[0].error, yaxmpp.AuthError)
    assert "yaxmpp login" in (bad[0].hint or "")
    monkeypatch.setenv("YANDEX_DISK_TOKEN", TOKEN)
    monkeypatch.setenv("XDG_CONFIG_HOME", "/nonexistent-yaxmpp-test")
    code, out, err = cli(doctor_args(server.client_options(), "-vv"))
    assert code == 3
    # with the STARTTLS port closed as well, the authentication failure still decides the code
    code, _, _ = cli(doctor_args(dict(server.client_options(), port=closed_port())))
    assert code == 3
    assert "not-authorized" in out and "yaxmpp login" in out
    assert TOKEN not in out + err and TOKEN[:8] not in out + err


def test_a_refused_subscription(make_server: Any, token_env: None) -> None:
    server = make_server(subscribe_error="service-unavailable")
    steps = doctor.diagnose(LOGIN, TOKEN, timeout=5, **server.client_options())
    bad = failed(steps)
    assert names(steps)[-1] == "subscribe" and names(bad) == ["subscribe"]
    assert isinstance(bad[0].error, yaxmpp.SubscribeError) and bad[0].error.condition == "service-unavailable"
    assert "--rest" in (bad[0].hint or "")
    assert cli(doctor_args(server.client_options()))[0] == 1


def _silent_on_ping(sock: socket.socket) -> None:
    """A server that does every step properly, then never answers the ping."""
    read_until(sock, b"xml:lang")
    sock.sendall(STREAM_HEAD + b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>")
    read_until(sock, b"<starttls")
    sock.sendall(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    tls: ssl.SSLSocket = server_tls_context().wrap_socket(sock, server_side=True)
    read_until(tls, b"xml:lang")
    tls.sendall(
        STREAM_HEAD + b"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
        b"<mechanism>X-YANDEX-OAUTH</mechanism></mechanisms></stream:features>"
    )
    read_until(tls, b"</auth>")
    tls.sendall(b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
    read_until(tls, b"xml:lang")
    tls.sendall(
        STREAM_HEAD + b"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
        b"<session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></stream:features>"
    )

    def iq_id() -> bytes:
        return re.findall(rb"id=[\"']([^\"']+)[\"']", read_until(tls, b"</iq>"))[-1]

    tls.sendall(
        b"<iq type='result' id='%s'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>test@ya.ru/r</jid></bind></iq>" % iq_id()
    )
    tls.sendall(b"<iq type='result' id='%s'/>" % iq_id())  # the session
    tls.sendall(b"<iq type='result' id='%s' from='test@ya.ru'/>" % iq_id())  # the subscription
    read_until(tls, b"urn:xmpp:ping")  # ... and no answer to it, ever
    wait_for_eof(tls, 10)


def test_a_server_that_never_answers_the_ping(monkeypatch: pytest.MonkeyPatch) -> None:
    with ScriptedServer(_silent_on_ping) as scripted:
        started = time.monotonic()
        steps = doctor.diagnose(LOGIN, TOKEN, host="127.0.0.1", port=scripted.port, tls_port=None, cafile=CA_FILE, timeout=1.0)
        elapsed = time.monotonic() - started
        assert not scripted.errors, scripted.errors
    assert names(steps) == ["resolve", "tcp-starttls", "starttls", "tls", "stream", "sasl", "bind", "session", "subscribe", "ping"]
    bad = failed(steps)
    assert names(bad) == ["ping"] and isinstance(bad[0].error, yaxmpp.Timeout)
    assert "never answered the ping" in (bad[0].hint or "")
    assert elapsed < 1.0 + 1.5
    monkeypatch.setenv("YANDEX_DISK_TOKEN", TOKEN)
    monkeypatch.setenv("XDG_CONFIG_HOME", "/nonexistent-yaxmpp-test")
    with ScriptedServer(_silent_on_ping) as scripted:
        code, out, _ = cli(doctor_args({"host": "127.0.0.1", "port": scripted.port, "tls_port": None}, "--timeout", "1"))
    assert code == 4 and out.splitlines()[-2].startswith("FAIL ping")


def test_without_a_token_or_login_it_says_how_to_get_them(monkeypatch: pytest.MonkeyPatch, tmp_path: "os.PathLike[str]") -> None:
    monkeypatch.delenv("YANDEX_DISK_TOKEN", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    code, _, err = cli(["doctor"])
    assert code == 2 and "yaxmpp login" in err


def test_doctor_uses_the_stored_credentials(server: FakeServer, monkeypatch: pytest.MonkeyPatch, tmp_path: "os.PathLike[str]") -> None:
    from yaxmpp import credentials

    monkeypatch.delenv("YANDEX_DISK_TOKEN", raising=False)
    path = os.path.join(str(tmp_path), "credentials.json")
    credentials.save(credentials.Credentials(TOKEN, login=LOGIN), path)
    options = server.client_options()
    argv = doctor_args(options, "--credentials", path)
    del argv[1:3]  # no --login: the stored one
    code, out, err = cli(argv)
    assert code == 0, out + err
    assert TOKEN not in out + err


def test_unusable_options_are_usage_errors() -> None:
    with pytest.raises(yaxmpp.UsageError):
        doctor.diagnose(LOGIN, TOKEN, port=None, tls_port=None)


@pytest.fixture
def no_network_resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield


def test_a_name_that_does_not_resolve(no_network_resolver: None) -> None:
    steps = doctor.diagnose(LOGIN, TOKEN, host="push.example.invalid", timeout=2)
    assert names(steps) == ["resolve"] and not steps[0].ok
    assert isinstance(steps[0].error, yaxmpp.ConnectError)
    assert "--host" in (steps[0].hint or "")
    assert not join_library_threads()  # the resolver's helper thread has ended


def test_a_certificate_for_another_name_says_check_host(make_server: Any, tmp_path: "os.PathLike[str]") -> None:
    other = trustme.CA()
    cert = other.issue_cert("push.example.org")
    certfile, keyfile, cafile = (os.path.join(str(tmp_path), n) for n in ("cert.pem", "key.pem", "ca.pem"))
    cert.private_key_and_cert_chain_pem.write_to_path(certfile)
    cert.private_key_pem.write_to_path(keyfile)
    other.cert_pem.write_to_path(cafile)
    server = make_server(certfile=certfile, keyfile=keyfile)
    options = dict(server.client_options(), cafile=cafile)  # trusted, but not for 127.0.0.1
    bad = failed(doctor.diagnose(LOGIN, TOKEN, timeout=5, **options))
    assert names(bad) == ["tls"] and "check --host" in (bad[0].hint or "")


def test_a_token_without_its_login_gets_the_login_from_the_disk_api(server: FakeServer, token_env: None) -> None:
    with RestStandIn(token=TOKEN, login=LOGIN) as api:
        argv = doctor_args(server.client_options(), "--api-url", api.url)
        del argv[1:3]  # no --login
        code, out, err = cli(argv)
    assert code == 0, out + err
    assert "login, from the Disk API: %s" % LOGIN in err


# -- the token and the options are checked and worded like watch's (issue 12's friendlier errors)


def test_a_blank_token_file_says_it_is_blank(tmp_path: "os.PathLike[str]", monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("YANDEX_DISK_TOKEN", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    path = os.path.join(str(tmp_path), "token")
    with open(path, "w") as f:
        f.write("  \n")
    code, out, err = cli(["doctor", "--login", LOGIN, "--token-file", path])
    assert code == 2 and out == ""
    assert "the token file %s is blank" % path in err


def test_a_token_file_with_a_bom_is_read_like_watch_reads_it(server: FakeServer, tmp_path: "os.PathLike[str]", monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("YANDEX_DISK_TOKEN", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    path = os.path.join(str(tmp_path), "token")
    with open(path, "wb") as f:
        f.write(b"\xef\xbb\xbf" + TOKEN.encode() + b"\r\n")  # as Notepad saves it
    code, out, err = cli(doctor_args(server.client_options(), "--token-file", path))
    assert code == 0, out + err


def test_both_ports_none_names_the_flags(token_env: None) -> None:
    code, out, err = cli(["doctor", "--login", LOGIN, "--port", "none", "--tls-port", "none"])
    assert code == 2 and out == ""
    assert "--port and --tls-port" in err and "tls_port" not in err


def test_a_cafile_that_is_not_pem_names_the_flag(token_env: None, tmp_path: "os.PathLike[str]") -> None:
    path = os.path.join(str(tmp_path), "ca.der")
    with open(path, "wb") as f:
        f.write(b"\x30\x82\x01\x00 not PEM")
    code, out, err = cli(["doctor", "--login", LOGIN, "--cafile", path])
    assert code == 2 and out == ""
    assert err.startswith("yaxmpp: --cafile ") and "not a PEM file" in err


def test_both_token_sources_say_which_wins(server: FakeServer, tmp_path: "os.PathLike[str]", monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YANDEX_DISK_TOKEN", "another-token-from-the-environment")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    path = os.path.join(str(tmp_path), "token")
    with open(path, "w") as f:
        f.write(TOKEN + "\n")
    code, out, err = cli(doctor_args(server.client_options(), "--token-file", path))
    assert code == 0, out + err
    assert "using the token from --token-file" in err


def _http_server(conn: socket.socket) -> None:
    """A web server on the port: it reads the request and answers HTTP, not XMPP."""
    conn.settimeout(10)
    try:
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    except OSError:
        pass


def test_a_web_server_on_the_starttls_port_is_not_an_xmpp_server_exit_4(token_env: None) -> None:
    with ScriptedServer(_http_server) as scripted:
        steps = doctor.diagnose(LOGIN, TOKEN, host="127.0.0.1", port=scripted.port, tls_port=None, cafile=CA_FILE, timeout=5)
        code, out, err = cli(doctor_args({"host": "127.0.0.1", "port": scripted.port, "tls_port": None}))
    bad = failed(steps)
    assert len(bad) == 1 and isinstance(bad[0].error, yaxmpp.NetworkError)  # like watch: a connection failure
    assert "not an XMPP server" in str(bad[0].error) and "HTTP/1.1 400 Bad Request" in str(bad[0].error)
    assert "--port" in (bad[0].hint or "")
    assert code == 4, out + err  # watch's code for it


def test_a_plain_text_server_on_the_direct_tls_port_says_it_does_not_speak_tls() -> None:
    with ScriptedServer(_http_server) as scripted:
        steps = doctor.diagnose(LOGIN, TOKEN, host="127.0.0.1", port=None, tls_port=scripted.port, cafile=CA_FILE, timeout=5)
    bad = failed(steps)
    assert names(bad) == ["tls"] and isinstance(bad[0].error, yaxmpp.TLSError)
    assert "does not speak TLS" in (bad[0].hint or "") and "TLS 1.2" not in (bad[0].hint or "")


def test_close_timeout_bounds_the_close_step(make_server: Any, token_env: None) -> None:
    """``--close-timeout`` used to be accepted and ignored: a server that never answers the
    close held the step for the whole ``--timeout``."""
    server = make_server(answer_close=False)
    started = time.monotonic()
    steps = doctor.diagnose(LOGIN, TOKEN, timeout=30, close_timeout=0.5, **server.client_options())
    assert time.monotonic() - started < 10  # (a generous bound: the steps before it are quick)
    bad = failed(steps)
    assert names(bad) == ["close"] and isinstance(bad[0].error, yaxmpp.Timeout)
    assert bad[0].seconds < 3  # well under the 30 s of --timeout
    code, out, _ = cli(doctor_args(server.client_options(), "--timeout", "30", "--close-timeout", "0.5"))
    assert code != 0 and "close" in out.splitlines()[-1]
