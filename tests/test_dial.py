"""Opening the connection: a close() from another thread stops name resolution and a TCP
connect at once; every resolver failure is a ConnectError; hosts and redirect targets are
checked before use.  Loopback only: a hanging resolver is a stand-in for socket.getaddrinfo,
and a dropped SYN is a loopback listener whose backlog is full."""

from __future__ import annotations

import select
import socket
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest

import yaxmpp
import yaxmpp.dial as dial_module
from yaxmpp.cancel import Cancel, wait_socket
from yaxmpp.deadline import Deadline
from yaxmpp.dial import check_host, dial, parse_redirect, resolve

from .conftest import LOGIN, TOKEN, closed_port, library_threads, wait_until

PROMPT = 1.5  # "at once", generously: close() must not wait for the resolver or the TCP timeout
LONG = 30.0  # the connect timeout: the old behaviour ran on for many seconds


def run_in_thread(function: Callable[[], Any]) -> Tuple[threading.Thread, Dict[str, Any]]:
    box: Dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = function()
        except BaseException as exc:  # handed to the test
            box["error"] = exc

    thread = threading.Thread(target=run, name="dial-caller", daemon=True)
    thread.start()
    return thread, box


# -- Cancel ----------------------------------------------------------------------------------


def test_cancel_sets_wakes_waiters_and_callbacks():
    cancel = Cancel()
    assert not cancel.cancelled
    assert cancel.wait(0.01) is False
    seen: List[str] = []
    remove = cancel.on_cancel(lambda: seen.append("a"))
    cancel.on_cancel(lambda: seen.append("b"))
    remove()
    thread, box = run_in_thread(lambda: cancel.wait(None))
    cancel.cancel()
    cancel.cancel()  # idempotent
    thread.join(5)
    assert box == {"result": True}
    assert cancel.cancelled
    assert seen == ["b"]
    late: List[str] = []
    cancel.on_cancel(lambda: late.append("late"))  # already cancelled: called at once
    assert late == ["late"]
    cancel.close()


@pytest.mark.parametrize("before", [True, False], ids=["fd-made-before-cancel", "fd-made-after-cancel"])
def test_cancel_descriptor_becomes_readable(before):
    with Cancel() as cancel:
        if before:
            fd = cancel.fileno()
            assert select.select([fd], [], [], 0)[0] == []
        cancel.cancel()
        fd = cancel.fileno()
        assert select.select([fd], [], [], 5)[0] == [fd]
    cancel.close()  # idempotent
    assert cancel.cancelled  # the switch outlives its descriptor


def test_wait_socket_returns_false_when_cancelled_from_another_thread():
    a, b = socket.socketpair()
    cancel = Cancel()
    try:
        thread, box = run_in_thread(lambda: wait_socket(a, False, None, cancel))
        cancel.cancel()
        thread.join(PROMPT)
        assert not thread.is_alive()
        assert box == {"result": False}
        b.send(b"x")
        assert wait_socket(a, False, 5) is True
    finally:
        cancel.close()
        a.close()
        b.close()


# -- name resolution that hangs ---------------------------------------------------------------


class HangingResolver:
    """A getaddrinfo that blocks until released (a resolver that does not answer)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.entered.set()
        self.release.wait(60)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


@pytest.fixture
def hanging(monkeypatch: pytest.MonkeyPatch) -> Iterator[HangingResolver]:
    resolver = HangingResolver()
    monkeypatch.setattr(dial_module.socket, "getaddrinfo", resolver)
    yield resolver
    resolver.release.set()
    assert wait_until(lambda: library_threads() == [])  # the resolver thread ends once released


def test_cancel_stops_dial_during_a_hanging_name_resolution(hanging):
    cancel = Cancel()
    thread, box = run_in_thread(lambda: dial("xmpp.test", 5222, 443, Deadline(LONG), cancel))
    assert hanging.entered.wait(5)
    cancelled_at = time.monotonic()
    cancel.cancel()
    thread.join(PROMPT)
    assert not thread.is_alive(), "dial() still resolving after the cancel"
    assert time.monotonic() - cancelled_at < PROMPT
    assert isinstance(box.get("error"), yaxmpp.ClientClosed)
    assert str(box["error"]) == "the client was closed during connect()"


def test_close_stops_connect_during_a_hanging_name_resolution(hanging):
    client = yaxmpp.Client(LOGIN, TOKEN, host="xmpp.test", timeout=LONG, subscribe=False)
    thread, box = run_in_thread(client.connect)
    assert hanging.entered.wait(5)
    closed_at = time.monotonic()
    client.close(timeout=1)
    thread.join(PROMPT)
    assert not thread.is_alive(), "connect() still resolving after close() returned"
    assert time.monotonic() - closed_at < PROMPT
    assert isinstance(box.get("error"), yaxmpp.ClientClosed)


def test_hanging_resolution_still_ends_at_the_deadline(hanging):
    started = time.monotonic()
    with pytest.raises(yaxmpp.Timeout) as info:
        dial("xmpp.test", 5222, None, Deadline(0.3), Cancel())
    assert time.monotonic() - started < 0.3 + PROMPT
    assert info.value.step == dial_module.STEP_RESOLVE


# -- a TCP connect whose SYN is dropped ------------------------------------------------------


@pytest.fixture
def dropping_port() -> Iterator[int]:
    """A loopback port whose accept queue is full, so the kernel drops further SYNs and a
    connect to it hangs (Linux); skipped where that cannot be arranged."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers: List[socket.socket] = []
    try:
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        probe = socket.socket()
        probe.settimeout(0.5)
        try:
            probe.connect(("127.0.0.1", port))
        except socket.timeout:
            pass  # it hangs, as wanted
        else:
            pytest.skip("this system does not drop SYNs to a full accept queue")
        finally:
            probe.close()
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


@pytest.fixture
def connect_waits(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Set when dial() starts waiting for a TCP connect to complete."""
    waiting = threading.Event()
    real = dial_module.wait_socket

    def spy(sock: socket.socket, write: bool, timeout: Any, cancel: Any = None) -> bool:
        waiting.set()
        return real(sock, write, timeout, cancel)

    monkeypatch.setattr(dial_module, "wait_socket", spy)
    return waiting


def test_cancel_stops_a_tcp_connect_whose_syn_is_dropped(dropping_port, connect_waits):
    cancel = Cancel()
    thread, box = run_in_thread(lambda: dial("127.0.0.1", dropping_port, None, Deadline(LONG), cancel))
    assert connect_waits.wait(5)
    cancelled_at = time.monotonic()
    cancel.cancel()
    thread.join(PROMPT)
    assert not thread.is_alive(), "dial() still connecting after the cancel"
    assert time.monotonic() - cancelled_at < PROMPT
    assert isinstance(box.get("error"), yaxmpp.ClientClosed)


def test_close_stops_connect_during_a_tcp_connect_whose_syn_is_dropped(dropping_port, connect_waits):
    client = yaxmpp.Client(LOGIN, TOKEN, host="127.0.0.1", port=dropping_port, tls_port=None, timeout=LONG, subscribe=False)
    thread, box = run_in_thread(client.connect)
    assert connect_waits.wait(5)
    closed_at = time.monotonic()
    client.close(timeout=1)
    thread.join(PROMPT)
    assert not thread.is_alive(), "connect() still connecting after close() returned"
    assert time.monotonic() - closed_at < PROMPT
    assert isinstance(box.get("error"), yaxmpp.ClientClosed)
    assert library_threads() == []


def test_dropped_syn_ends_at_the_deadline_with_a_timeout_naming_the_step(dropping_port):
    started = time.monotonic()
    with pytest.raises(yaxmpp.Timeout) as info:
        dial("127.0.0.1", dropping_port, None, Deadline(0.5))
    assert time.monotonic() - started < 0.5 + PROMPT
    assert info.value.step == dial_module.STEP_CONNECT


def test_refused_connect_is_a_connect_error_with_host_and_port():
    port = closed_port()
    with pytest.raises(yaxmpp.ConnectError) as info:
        dial("127.0.0.1", port, None, Deadline(5), Cancel())
    assert info.value.host == "127.0.0.1"
    assert info.value.port == port
    assert "refused" in str(info.value).lower()


def test_dial_still_connects_and_returns_a_blocking_socket():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    cancel = Cancel()
    try:
        sock, direct_tls = dial("127.0.0.1", listener.getsockname()[1], None, Deadline(5), cancel)
        try:
            assert direct_tls is False
            assert sock.gettimeout() is None
            assert sock.getpeername() == listener.getsockname()
        finally:
            sock.close()
    finally:
        listener.close()


# -- whatever the resolver raises ------------------------------------------------------------


@pytest.mark.parametrize("host", ["a..b", "x" * 64 + ".example"], ids=["empty-label", "long-label"])
def test_a_name_the_resolver_cannot_encode_is_a_connect_error_not_a_dead_thread(host):
    # The real getaddrinfo raises UnicodeError for these before asking any DNS server.
    with pytest.raises(yaxmpp.ConnectError) as info:
        resolve(host, 5222, Deadline(5))
    assert info.value.host == host
    assert library_threads() == []


@pytest.mark.parametrize("host", ["a..b", "", "x" * 64 + ".example", "::1:5222:x", "host:5222", "a b"])
def test_a_bad_configured_host_is_a_usage_error_when_the_client_is_made(host):
    with pytest.raises(yaxmpp.UsageError):
        yaxmpp.Client(LOGIN, TOKEN, host=host, timeout=5, subscribe=False)


def test_any_exception_in_the_resolver_becomes_a_connect_error(monkeypatch):
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("resolver bug")

    monkeypatch.setattr(dial_module.socket, "getaddrinfo", broken)
    with pytest.raises(yaxmpp.ConnectError) as info:
        dial("xmpp.test", 5222, None, Deadline(5))
    assert "RuntimeError" in str(info.value)
    assert info.value.host == "xmpp.test"


# -- redirect targets and configured hosts -----------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("xmpp.example", ("xmpp.example", None)),
        ("xmpp.example:5223", ("xmpp.example", 5223)),
        ("xmpp.example.", ("xmpp.example", None)),
        (" xmpp.example\n", ("xmpp.example", None)),  # text around an XML element
        ("127.0.0.1:443", ("127.0.0.1", 443)),
        ("[::1]", ("::1", None)),
        ("[2001:db8::1]:5222", ("2001:db8::1", 5222)),
        ("bücher.example", ("xn--bcher-kva.example", None)),
        ("_xmpp.example", ("_xmpp.example", None)),
        ("a" * 63 + ".example", ("a" * 63 + ".example", None)),
    ],
)
def test_parse_redirect_accepts_usable_targets(value, expected):
    assert parse_redirect(value) == expected


BAD_TARGETS = {
    "empty": ("", "empty"),
    "only-port": (":5222", "empty"),
    "zero-port": ("xmpp.example:0", "port"),
    "big-port": ("xmpp.example:65536", "port"),
    "huge-port": ("xmpp.example:" + "9" * 5000, "too long"),
    "no-port": ("xmpp.example:", "port"),
    "signed-port": ("xmpp.example:+5222", "port"),
    "unicode-digit-port": ("xmpp.example:５２２２", "port"),
    "port-garbage": ("xmpp.example:5222/x", "port"),
    "empty-label": ("xmpp..example", "empty DNS label"),
    "leading-dot": (".xmpp.example", "empty DNS label"),
    "long-label": ("a" * 64 + ".example", "longer than 63"),
    "long-name": (".".join(["a" * 63] * 4), "longer than 253"),
    "very-long": ("a." * 200 + "a", "too long"),
    "bare-ipv6-with-port": ("2001:db8::1:5222", "brackets"),
    "bare-ipv6": ("::1", "brackets"),
    "unclosed-bracket": ("[::1:5222", "closing bracket"),
    "garbage-after-bracket": ("[::1]5222", "other than a port"),
    "bracketed-name": ("[xmpp.example]", "IPv6"),
    "bad-ipv6": ("[1:2:3:4:5:6:7:8:9]", "IPv6"),
    "ipv6-zone": ("[fe80::1%eth0]", "zone"),
    "space": ("xmpp example", "spaces or control"),
    "nul": ("xmpp\0.example", "spaces or control"),
    "newline-inside": ("xmpp\n.example", "spaces or control"),
    "slash": ("xmpp.example/path", "not allowed"),
    "at": ("user@xmpp.example", "not allowed"),
    "hyphen-edge": ("-xmpp.example", "not allowed"),
    "idna-bidi": ("a\u05d0.example", "IDNA"),
    "surrogate": ("\udcff.example", "spaces or control"),
}


@pytest.mark.parametrize("value, words", list(BAD_TARGETS.values()), ids=list(BAD_TARGETS))
def test_parse_redirect_refuses_unusable_targets_with_a_protocol_error(value, words):
    with pytest.raises(yaxmpp.ProtocolError) as info:
        parse_redirect(value)
    assert words in str(info.value)


def test_parse_redirect_never_repeats_the_value():
    for value in (TOKEN + "..x", "x:" + TOKEN, "[" + TOKEN + "]", TOKEN + " x", TOKEN * 20):
        with pytest.raises(yaxmpp.ProtocolError) as info:
            parse_redirect(value)
        assert TOKEN not in str(info.value)
        assert TOKEN[:8] not in repr(info.value)


@pytest.mark.parametrize(
    "value, expected",
    [("push.xmpp.yandex.ru", "push.xmpp.yandex.ru"), ("::1", "::1"), ("[::1]", "::1"), ("127.0.0.1", "127.0.0.1"), ("bücher.example", "xn--bcher-kva.example")],
)
def test_check_host_accepts_hosts(value, expected):
    assert check_host(value) == expected


@pytest.mark.parametrize(
    "value, words",
    [
        ("push.xmpp.yandex.ru:5222", "port="),
        ("", "empty"),
        ("a..b", "empty DNS label"),
        ("a" * 64, "longer than 63"),
        ("x" * 300, "longer than 253"),
        ("ho st", "spaces"),
        ("[::1]:5222", "port="),
        (b"bytes.example", "string"),
    ],
)
def test_check_host_refuses_with_a_usage_error(value, words):
    with pytest.raises(yaxmpp.UsageError) as info:
        check_host(value)
    assert words in str(info.value)
    assert isinstance(info.value, ValueError)


def test_cancel_wait_takes_an_absurdly_long_timeout():
    cancel = Cancel()
    threading.Timer(0.05, cancel.cancel).start()
    assert cancel.wait(1e10) is True  # threading.Event().wait(1e10) would raise OverflowError


def test_parse_host_port_keeps_its_older_contract():
    assert dial_module.parse_host_port("xmpp.example:5223") == ("xmpp.example", 5223)
    assert dial_module.parse_host_port("::1") == ("::1", None)  # a bare IPv6 address, whole
    with pytest.raises(ValueError):
        dial_module.parse_host_port("xmpp.example:0")
