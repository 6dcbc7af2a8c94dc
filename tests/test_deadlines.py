"""Every deadline holds: ``connect(timeout=2)`` returns by about 2 s whatever the server does,
also when bytes keep coming that never complete anything (a TLS record trickled byte by byte,
zlib blocks that inflate to nothing); and the transport calls, timeouts and TLS settings
under it (real sockets and real TLS over loopback)."""

from __future__ import annotations

import math
import socket
import ssl
import threading
import time
from typing import Callable, Dict

import pytest

import yaxmpp
from yaxmpp.deadline import MAX_TIMEOUT, Deadline, check_timeout
from yaxmpp.testing import CA_FILE, KEY_FILE
from yaxmpp.tls import create_default_context
from yaxmpp.transport import Transport

from .conftest import LOGIN, TOKEN, library_threads
from .scripted import ScriptedServer, server_tls_context

TIMEOUT = 2.0
BOUND = TIMEOUT + 1.5  # "returned within its deadline", generously
HALT_AFTER = 30.0  # a trickle never stops on its own before this

CLIENT_HEADER_END = b'1998/namespace">'
HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' id='d1' from='ya.ru' version='1.0' xml:lang='en'>"
)
FEATURES_STARTTLS = (
    b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
    b"<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/></stream:features>"
)
STARTTLS = b'<starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"/>'
PROCEED = b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
FEATURES_COMPRESSION = (
    b"<stream:features><compression xmlns='http://jabber.org/features/compress'><method>zlib</method></compression>"
    b"<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>X-YANDEX-OAUTH</mechanism></mechanisms>"
    b"</stream:features>"
)
COMPRESSED = b"<compressed xmlns='http://jabber.org/protocol/compress'/>"
#: The head of a TLS application-data record announcing 16 KiB, then the body: one byte at a
#: time this never completes a record.
RECORD = b"\x17\x03\x03\x40\x00" + b"\x00" * 16384
#: The head of a TLS handshake record (a ServerHello that never completes).
HANDSHAKE = b"\x16\x03\x03\x40\x00" + b"\x02" * 16384
ZLIB_HEADER = b"\x78\x9c"
EMPTY_SYNC_FLUSH = b"\x00\x00\x00\xff\xff"  # an empty stored block: inflates to nothing


class Halt:
    """Stops a trickling server script when the test is over."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def sleep(self, seconds: float) -> bool:
        """Wait ``seconds``; True if the test is over."""
        return self.event.wait(seconds)


def read_until(read: Callable[[], bytes], marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = read()
        if not chunk:
            raise ConnectionAbortedError("the client hung up")
        data += chunk
    return data


def trickle(sock: socket.socket, data: bytes, interval: float, halt: Halt) -> None:
    """Raw bytes one at a time (below any TLS), until the client hangs up or the test ends."""
    started = time.monotonic()
    for index in range(len(data)):
        try:
            sock.sendall(data[index : index + 1])
        except OSError:
            return
        if halt.sleep(interval) or time.monotonic() - started > HALT_AFTER:
            return


def plain_steps_to_tls(sock: socket.socket) -> Transport:
    """The STARTTLS port up to the TLS handshake (server side, real TLS); the transport."""
    read_until(lambda: sock.recv(65536), CLIENT_HEADER_END)
    sock.sendall(HEADER + FEATURES_STARTTLS)
    read_until(lambda: sock.recv(65536), STARTTLS)
    sock.sendall(PROCEED)
    transport = Transport(sock)
    transport.start_tls(server_tls_context(), None, server_side=True)
    return transport


def connect_bounded(script: Callable[[socket.socket], None], halt: Halt, *, direct_tls: bool = False, **options: object) -> BaseException:
    """connect(timeout=2) against ``script``: returns the error it raised, after checking it
    came within the bound and left no thread behind."""
    with ScriptedServer(script) as server:
        ports = {"port": None, "tls_port": server.port} if direct_tls else {"port": server.port, "tls_port": None}
        client = yaxmpp.Client(LOGIN, TOKEN, host="127.0.0.1", cafile=CA_FILE, subscribe=False, **ports, **options)  # type: ignore[arg-type]
        box: Dict[str, BaseException] = {}

        def run() -> None:
            try:
                client.connect(timeout=TIMEOUT)
            except BaseException as exc:  # handed to the test
                box["error"] = exc

        caller = threading.Thread(target=run, name="deadline-caller", daemon=True)
        started = time.monotonic()
        caller.start()
        caller.join(BOUND + 5)  # to report a hang as a failure rather than hang the run
        elapsed = time.monotonic() - started
        halt.event.set()
        assert not caller.is_alive(), "connect(timeout=%g) still blocked after %.1fs" % (TIMEOUT, elapsed)
        client.close(timeout=2)
        assert server.errors == []
    assert elapsed < BOUND, "connect(timeout=%g) took %.1fs" % (TIMEOUT, elapsed)
    assert library_threads() == []
    error = box.get("error")
    assert error is not None
    return error


# -- bytes that never complete anything ------------------------------------------------------


def test_trickled_tls_record_after_a_direct_tls_handshake_times_out_in_time():
    halt = Halt()

    def script(sock: socket.socket) -> None:
        transport = Transport(sock)
        transport.start_tls(server_tls_context(), None, server_side=True)
        read_until(transport.recv, CLIENT_HEADER_END)
        trickle(sock, RECORD, 0.2, halt)

    error = connect_bounded(script, halt, direct_tls=True)
    assert isinstance(error, yaxmpp.Timeout), repr(error)
    assert "stream header" in str(error)


def test_trickled_tls_record_after_starttls_times_out_in_time():
    halt = Halt()

    def script(sock: socket.socket) -> None:
        transport = plain_steps_to_tls(sock)
        read_until(transport.recv, CLIENT_HEADER_END)
        trickle(sock, RECORD, 0.2, halt)

    error = connect_bounded(script, halt)
    assert isinstance(error, yaxmpp.Timeout), repr(error)


def test_trickled_handshake_bytes_time_out_in_time():
    halt = Halt()

    def script(sock: socket.socket) -> None:
        assert sock.recv(65536)  # the ClientHello
        trickle(sock, HANDSHAKE, 0.2, halt)

    error = connect_bounded(script, halt, direct_tls=True)
    assert isinstance(error, yaxmpp.Timeout), repr(error)
    assert "TLS" in str(error)


def test_empty_zlib_blocks_after_compression_time_out_in_time():
    halt = Halt()

    def script(sock: socket.socket) -> None:
        transport = plain_steps_to_tls(sock)
        read_until(transport.recv, CLIENT_HEADER_END)
        transport.send(HEADER + FEATURES_COMPRESSION)
        read_until(transport.recv, b"</compress>")
        transport.send(COMPRESSED)
        transport.send(ZLIB_HEADER)
        started = time.monotonic()
        while not halt.sleep(0.3) and time.monotonic() - started < HALT_AFTER:
            try:
                transport.send(EMPTY_SYNC_FLUSH)  # one TLS record each
            except (OSError, yaxmpp.Error):
                return

    error = connect_bounded(script, halt, compress=True)
    assert isinstance(error, yaxmpp.Timeout), repr(error)


# -- the transport itself -------------------------------------------------------------------


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def test_recv_deadline_is_not_extended_by_bytes_that_inflate_to_nothing(pair):
    a, b = pair
    transport = Transport(a)
    transport.start_compression()
    b.sendall(ZLIB_HEADER)
    stop = threading.Event()

    def feed() -> None:
        while not stop.wait(0.05):
            try:
                b.sendall(EMPTY_SYNC_FLUSH)
            except OSError:
                return

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    started = time.monotonic()
    try:
        with pytest.raises(socket.timeout):
            transport.recv(Deadline(0.5))
    finally:
        stop.set()
        feeder.join(5)
    assert time.monotonic() - started < 0.5 + 1.5
    assert transport.bytes_received > len(ZLIB_HEADER)  # bytes did come in during the wait


def test_recv_without_a_deadline_is_bounded_by_set_timeout_in_all(pair):
    a, b = pair
    transport = Transport(a)
    transport.set_timeout(0.3)
    with pytest.raises(socket.timeout):
        transport.recv()
    b.sendall(b"hello")
    assert transport.recv() == b"hello"


def test_send_deadline_bounds_the_whole_send(pair):
    a, b = pair  # nobody reads b: a's buffers fill and the send must give up in time
    transport = Transport(a)
    started = time.monotonic()
    with pytest.raises(socket.timeout):
        transport.send(b"x" * (64 << 20), deadline=Deadline(0.5))
    assert time.monotonic() - started < 0.5 + 1.5
    assert transport.bytes_sent > 0


def test_send_waiting_for_another_senders_lock_keeps_its_deadline(pair):
    a, b = pair
    transport = Transport(a)
    with transport._send_lock:  # another thread's send in progress
        with pytest.raises(socket.timeout):
            transport.send(b"x", deadline=Deadline(0.2))


def test_shutdown_from_another_thread_wakes_a_recv_without_deadline(pair):
    a, b = pair
    transport = Transport(a)
    box = {}
    entered = threading.Event()

    def read() -> None:
        entered.set()
        box["data"] = transport.recv(Deadline(None))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert entered.wait(5)
    transport.shutdown()
    reader.join(5)
    assert not reader.is_alive()
    assert box["data"] == b""


def test_recv_on_a_closed_transport_fails_at_once_rather_than_sleeping(pair):
    a, b = pair
    transport = Transport(a)
    transport.close(polite=False)
    with pytest.raises(OSError):
        transport.recv(Deadline(None))


def test_tls_handshake_deadline_holds_against_a_silent_peer(pair):
    a, b = pair
    transport = Transport(a)
    context = ssl.create_default_context(cafile=CA_FILE)
    started = time.monotonic()
    with pytest.raises(socket.timeout):
        transport.start_tls(context, "localhost", deadline=Deadline(0.3))
    assert time.monotonic() - started < 0.3 + 1.5


# -- absurd timeouts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, words",
    [
        ("3", "not str"),
        (True, "not bool"),
        ([1], "not list"),
        (float("nan"), "NaN"),
        (0, "more than 0"),
        (-1.5, "more than 0"),
        (float("inf"), "finite"),
        (1e10, "too large"),
        (10**400, "too large"),
        (MAX_TIMEOUT * 2, "too large"),
    ],
)
def test_check_timeout_refuses_what_cannot_be_waited_for(value, words):
    with pytest.raises(yaxmpp.UsageError) as info:
        check_timeout("timeout", value, allow_none=True)
    assert words in str(info.value)
    assert str(info.value).startswith("timeout ")
    assert isinstance(info.value, ValueError)


def test_check_timeout_accepts_numbers_and_none_when_allowed():
    assert check_timeout("timeout", 3, allow_none=False) == 3.0
    assert isinstance(check_timeout("timeout", 3, allow_none=False), float)
    assert check_timeout("timeout", 0.001, allow_none=False) == 0.001
    assert check_timeout("timeout", MAX_TIMEOUT, allow_none=False) == MAX_TIMEOUT
    assert check_timeout("keepalive", None, allow_none=True) is None
    with pytest.raises(yaxmpp.UsageError, match="keepalive must be a number of seconds, not None"):
        check_timeout("keepalive", None, allow_none=False)


def test_max_timeout_fits_every_wait_the_library_uses():
    assert 0 < MAX_TIMEOUT <= threading.TIMEOUT_MAX
    lock = threading.Lock()
    assert lock.acquire(timeout=MAX_TIMEOUT)  # checks its argument even when free at once
    lock.release()
    with pytest.raises(OverflowError):  # what the check guards against
        lock.acquire(timeout=threading.TIMEOUT_MAX * 2)
    with socket.socket() as sock:
        sock.settimeout(MAX_TIMEOUT)
        assert math.isclose(sock.gettimeout() or 0.0, MAX_TIMEOUT)
    assert threading.Event().wait(0) is False
    assert Deadline(MAX_TIMEOUT).remaining() is not None


# -- the CA file ---------------------------------------------------------------------------------


@pytest.fixture
def not_pem(tmp_path):
    path = tmp_path / "not-a-ca.pem"
    path.write_text("this is not a certificate\n")
    return str(path)


def test_missing_cafile_is_a_usage_error_naming_the_file(tmp_path):
    missing = str(tmp_path / "missing.pem")
    with pytest.raises(yaxmpp.UsageError) as info:
        yaxmpp.Client(LOGIN, TOKEN, cafile=missing)
    assert missing in str(info.value)
    assert "not found" in str(info.value)
    assert TOKEN not in str(info.value)


def test_cafile_that_is_not_pem_is_a_usage_error(not_pem):
    with pytest.raises(yaxmpp.UsageError) as info:
        create_default_context(not_pem)
    assert not_pem in str(info.value)
    assert "not a PEM file" in str(info.value)


def test_cafile_holding_a_key_and_no_certificate_is_a_usage_error():
    with pytest.raises(yaxmpp.UsageError, match="not a PEM file"):
        create_default_context(KEY_FILE)


def test_cafile_that_is_a_directory_is_a_usage_error(tmp_path):
    with pytest.raises(yaxmpp.UsageError, match="directory"):
        create_default_context(str(tmp_path))


def test_good_cafile_still_gives_a_shared_verifying_context():
    context = create_default_context(CA_FILE)
    assert context is create_default_context(CA_FILE)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_transport_waits_take_absurdly_long_timeouts_without_overflow(pair):
    # socket.settimeout(1e10) and thread waits of 1e10 s raise OverflowError; the transport
    # waits in steps, so a far deadline (or a default) simply means "wait".
    a, b = pair
    transport = Transport(a)
    transport.set_timeout(1e10)
    transport.bound_sends(1e10)
    threading.Timer(0.05, lambda: b.sendall(b"late")).start()
    assert transport.recv() == b"late"
    threading.Timer(0.05, lambda: b.sendall(b"later")).start()
    assert transport.recv(Deadline(1e10)) == b"later"
    transport.send(b"out", deadline=Deadline(1e10))
    transport.send(b"more")
    assert read_until(lambda: b.recv(100), b"outmore") == b"outmore"


def test_keepalive_counts_only_completed_plaintext(make_server, make_client):
    # A peer that stops answering but trickles bytes of a TLS record that never completes:
    # the bytes must not pass for signs of life, so the keepalive ping still goes unanswered
    # and the connection is declared dead in keepalive + keepalive_timeout, not never.
    server = make_server()
    client = make_client(server, keepalive=0.5, keepalive_timeout=0.5).connect()
    session = server.wait_for_session()
    session.mute()  # pings are not answered any more
    halt = Halt()
    raw = session.transport.sock
    trickler = threading.Thread(target=trickle, args=(raw, RECORD, 0.1, halt), daemon=True)
    started = time.monotonic()
    trickler.start()
    try:
        with pytest.raises(yaxmpp.ConnectionLost, match="keepalive"):
            client.get_notification(timeout=10)
    finally:
        halt.event.set()
        trickler.join(5)
    assert time.monotonic() - started < 0.5 + 0.5 + 1.5


class EndlessFlood:
    """Stands in for the socket of a peer so fast that data is always ready: every recv()
    returns a chunk at once (empty zlib blocks), never EAGAIN."""

    def __init__(self, real: socket.socket, chunk: bytes) -> None:
        self.real = real
        self.chunk = chunk
        self.reads = 0

    def recv(self, size: int) -> bytes:
        self.reads += 1
        return self.chunk

    def fileno(self) -> int:
        return self.real.fileno()


def test_recv_deadline_holds_against_a_flood_that_inflates_to_nothing(pair):
    # Bytes always ready, none of them ever producing data: the deadline must be checked on
    # every read, not only before a wait.
    a, b = pair
    transport = Transport(a)
    transport.start_compression(leftover=ZLIB_HEADER)
    flood = EndlessFlood(a, EMPTY_SYNC_FLUSH * 1000)
    transport.sock = flood  # type: ignore[assignment]
    box: Dict[str, BaseException] = {}

    def read() -> None:
        try:
            transport.recv(Deadline(0.3))
        except BaseException as exc:  # handed to the test
            box["error"] = exc
        finally:
            flood.chunk = b""  # ends the loop if the deadline did not (end of file)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(0.3 + 1.5)
    if reader.is_alive():
        flood.chunk = b""
        reader.join(5)
        pytest.fail("recv(Deadline(0.3)) ignored its deadline while data kept coming")
    assert isinstance(box.get("error"), socket.timeout)
    assert flood.reads > 1
