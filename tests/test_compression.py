"""Stream compression (XEP-0138): end to end over TLS, split input, refusal, bombs, corruption."""

from __future__ import annotations

import logging
import zlib

import pytest

import yaxmpp
from yaxmpp.compression import PIECE, Deflater, Inflater
from yaxmpp.protocol import ClientProtocol, CompressionRequested, StreamClosed, TLSRequested, XYandexOAuth
from yaxmpp.protocol.parser import StreamParser

from .conftest import TOKEN, library_threads

FEATURES_TLS = (
    b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='1' version='1.0'>"
    b"<stream:features><compression xmlns='http://jabber.org/features/compress'><method>zlib</method>"
    b"</compression><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/></stream:features>"
)


# -- the layer on its own ---------------------------------------------------------------------


def test_each_write_is_complete_for_the_peer():
    deflater, inflater = Deflater(), Inflater()
    for stanza in (b"<iq type='get' id='1'/>", b"<iq type='result' id='2'/>" * 3):
        inflater.feed(deflater.compress(stanza))
        assert inflater.next_piece() == stanza  # no byte held back: Z_SYNC_FLUSH per write


def test_compressed_input_split_into_single_bytes():
    stanzas = [b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"]
    stanzas += [b"<iq type='set' id='p%d'><query xmlns='yandex:push:disk'/></iq>" % i for i in range(50)]
    deflater = Deflater()
    wire = b"".join(deflater.compress(s) for s in stanzas)
    inflater, parser = Inflater(), StreamParser()
    for i in range(len(wire)):
        inflater.feed(wire[i : i + 1])
        while True:
            piece = inflater.next_piece()
            if not piece:
                break
            parser.feed(piece)
    assert [e.get("id") for e in parser.items[1:]] == ["p%d" % i for i in range(50)]


def test_inflate_is_bounded_per_step_and_a_bomb_is_refused():
    bomb = zlib.compress(b" " * 50_000_000, 9)
    assert len(bomb) < 100_000
    inflater = Inflater()
    inflater.feed(bomb)
    produced = 0
    with pytest.raises(yaxmpp.ProtocolError, match="bomb"):
        while True:
            piece = inflater.next_piece()
            assert len(piece) <= PIECE
            produced += len(piece)
            if not piece:
                break
    assert produced <= len(bomb) * inflater.max_ratio


def test_the_wire_is_zlibs_own_format_byte_for_byte():
    """The header is written by hand and the deflate data made raw (no Adler-32 computed):
    what goes out must still be exactly what zlib's format gives."""
    deflater = Deflater()
    reference = zlib.compressobj(6, zlib.DEFLATED, 10, 4)
    for data in (b"<iq type='result' id='1'/>", b"", b"x" * 5000, "é<ü/>".encode()):
        assert deflater.compress(data) == reference.compress(data) + reference.flush(zlib.Z_SYNC_FLUSH)


@pytest.mark.parametrize("level, window", [(1, 9), (6, 15), (9, 12), (0, 15)])
def test_streams_of_any_window_and_level_are_read(level, window):
    z = zlib.compressobj(level, zlib.DEFLATED, window)
    writes = [b"<iq type='set' id='p%d'/>" % i for i in range(20)]
    wire = b"".join(z.compress(w) + z.flush(zlib.Z_SYNC_FLUSH) for w in writes)
    for cut in range(0, 40):  # the header cut anywhere, then the rest
        inflater = Inflater()
        out = b""
        for piece in (wire[:cut], wire[cut:]):
            inflater.feed(piece)
            while True:
                got = inflater.next_piece()
                if not got:
                    break
                out += got
        assert out == b"".join(writes)


@pytest.mark.parametrize(
    "header",
    [
        b"\x78\xbb",  # a preset dictionary (FDICT), which XEP-0138 streams never have
        b"\x79\x9c",  # not deflate (CM 9), and a wrong check
        b"\x88\x98",  # a 64 KiB window (CINFO 8): not allowed
        b"\x78\x9d",  # a wrong check
        b"<?",  # plain XML where compressed data was due
    ],
)
def test_a_bad_zlib_header_is_a_protocol_error(header):
    inflater = Inflater()
    inflater.feed(header + b"\x00\x00\xff\xff")
    with pytest.raises(yaxmpp.ProtocolError, match="corrupt"):
        inflater.next_piece()


def test_corrupt_data_is_a_protocol_error():
    inflater = Inflater()
    inflater.feed(b"\x78\x9c\xff\xfe\xfd garbage")
    with pytest.raises(yaxmpp.ProtocolError, match="corrupt"):
        while inflater.next_piece():
            pass


def test_core_never_asks_for_compression_before_tls():
    core = ClientProtocol(XYandexOAuth("test", TOKEN), compress=True, tls=False)
    core.initiate()
    core.data_to_send()
    events = core.receive_data(
        b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='1' version='1.0'>"
        b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
        b"<compression xmlns='http://jabber.org/features/compress'><method>zlib</method></compression>"
        b"<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/></stream:features>"
    )
    assert core.data_to_send() == b'<starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"/>'
    assert not any(isinstance(e, CompressionRequested) for e in events)


def test_core_plain_bytes_after_compressed_are_an_error_not_parsed():
    core = ClientProtocol(XYandexOAuth("test", TOKEN), compress=True, tls=True)
    core.initiate()
    core.receive_data(FEATURES_TLS)
    assert b"<compress" in core.data_to_send()
    events = core.receive_data(b"<compressed xmlns='http://jabber.org/protocol/compress'/><iq type='get' id='x'/>")
    assert isinstance(events[-1], StreamClosed)
    assert isinstance(events[-1].error, yaxmpp.ProtocolError)
    assert not any(isinstance(e, (CompressionRequested, TLSRequested)) for e in events)


# -- end to end -------------------------------------------------------------------------------


def exercise(server, client):
    """Pings, version, subscription and pushes all work on the compressed stream."""
    session = server.wait_for_session()
    assert client.compressed and session.compressed
    assert session.wait_reply("ask_version").get("type") == "result"
    assert session.wait_reply(session.ping()).get("type") == "result"
    assert session.subscribed.wait(5)  # set just after the server sent its answer
    ids = session.push_many(300)
    assert [client.get_notification(timeout=5).iq_id for _ in ids] == ids
    assert session.wait_reply(ids[-1]).get("type") == "result"
    return session


def test_compressed_session_on_the_starttls_path(server, make_client):
    client = make_client(server, compress=True).connect()
    session = exercise(server, client)
    sent = bytes(session.received)  # what the server read, inflated
    # Never before TLS: <compress/> follows the second stream header, and precedes <auth>.
    assert sent.index(b"<starttls") < sent.index(b"<compress") < sent.index(b"<auth")
    assert b'<compress xmlns="http://jabber.org/protocol/compress"><method>zlib</method></compress>' in sent
    client.close()
    assert session.client_closed.wait(5)


def test_compressed_session_on_the_direct_tls_path(server, make_client):
    client = make_client(server, compress=True, port=None).connect()
    assert client.port == server.tls_port
    exercise(server, client)


def test_compression_offered_only_after_authentication_is_negotiated_there(make_server, make_client):
    server = make_server(compression_after_auth=True)
    client = make_client(server, compress=True).connect()
    session = exercise(server, client)
    sent = bytes(session.received)
    assert sent.index(b"<auth") < sent.index(b"<compress") < sent.index(b'id="bind_')


def test_compression_refused_goes_on_uncompressed_with_a_warning(make_server, make_client, caplog):
    server = make_server(compression_failure="setup-failed")
    client = make_client(server, compress=True).connect()
    assert client.connected and not client.compressed
    assert "setup-failed" in caplog.text
    assert any(r.levelno == logging.WARNING for r in caplog.records)
    session = server.wait_for_session()
    assert session.wait_reply(session.ping()).get("type") == "result"


def test_compression_is_off_by_default(server, make_client):
    client = make_client(server).connect()
    assert not client.compressed
    assert b"<compress" not in bytes(server.wait_for_session().received)


def test_compressed_server_writes_split_into_single_bytes(make_server, make_client):
    server = make_server(write_mode="bytewise")
    client = make_client(server, compress=True).connect()
    session = server.wait_for_session()
    assert client.compressed
    ids = [session.push([{"type": "new", "key": "/disk/%d" % i}]) for i in range(5)]
    assert [client.get_notification(timeout=5).iq_id for _ in ids] == ids


def test_zlib_bomb_ends_the_connection_with_a_protocol_error(server, make_client):
    client = make_client(server, compress=True).connect()
    session = server.wait_for_session()
    session.push([{"type": "new", "key": "/disk/before"}])
    session.send(b" " * 30_000_000)  # 30 MB of whitespace: about 30 KB compressed
    assert client.get_notification(timeout=5).changes[0].path == "/disk/before"
    with pytest.raises(yaxmpp.ProtocolError, match="bomb"):
        client.get_notification(timeout=10)
    client.close()
    assert library_threads() == []


def test_corrupt_zlib_data_ends_the_connection_with_a_protocol_error(server, make_client):
    client = make_client(server, compress=True).connect()
    session = server.wait_for_session()
    session.send_wire(b"\x00\x00\xff\xff\x07garbage-that-is-not-deflate")
    with pytest.raises(yaxmpp.ProtocolError):
        client.get_notification(timeout=10)
    client.close()


def test_plain_bytes_after_compressed_fail_connect(make_server, make_client):
    server = make_server(after_compressed=b"<iq type='get' id='sneaky'/>")
    client = make_client(server, compress=True)
    with pytest.raises(yaxmpp.ProtocolError, match="after <compressed/>"):
        client.connect()
    assert library_threads() == []
