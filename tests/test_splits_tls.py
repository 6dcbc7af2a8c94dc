"""Pushes holding CDATA, comments and PIs with '<' and quotes, split at every byte boundary
into separate writes over real TLS, each read by the client before the next: every
notification arrives intact and none waits for a later write."""

from __future__ import annotations

import pytest

from yaxmpp.protocol import ns
from yaxmpp.protocol.disk import push_xml
from yaxmpp.protocol.stanzas import escape_attr

NASTY = "a<b<c 'x' \"y\""
NOTE = "{%s}note" % ns.DISK
PING = b'<iq from="ya.ru" type="get" to="%s" id="%s"><ping xmlns="urn:xmpp:ping"/></iq>'

#: What goes in the push's <note>, and the text read back from it.
NOTES = {
    "cdata": ("<![CDATA[%s]]>" % NASTY, NASTY),
    "comment-pi": ("n<!-- <a> 'q' \"r\" --><?x a<b>'c'??>", "n"),
}


def query(note: str) -> str:
    return (
        '<query xmlns="%s"><diff><op type="new" key="/disk/a.txt" fid="1"/></diff><note>%s</note></query>'
        % (ns.DISK, note)
    )


@pytest.mark.parametrize("kind", sorted(NOTES))
def test_push_split_at_every_byte_over_tls(make_server, make_client, kind):
    note, text = NOTES[kind]
    server = make_server(compression=False)
    client = make_client(server).connect()
    session = server.wait_for_session()
    assert session.subscribed.wait(5)
    assert session.tls
    size = len(push_xml("push_0000", query(note), server.domain, session.jid).encode())
    for cut in range(1, size):
        iq_id = "push_%04d" % cut  # the same length for all: each byte boundary once
        data = push_xml(iq_id, query(note), server.domain, session.jid).encode()
        # A ping ahead of the first part: its answer shows the client has read that write
        # (TLS records are decrypted whole) before the second part goes out.
        ping_id = "ping_%04d" % cut
        session.send(PING % (escape_attr(session.jid or "").encode(), ping_id.encode()) + data[:cut])
        assert session.wait_reply(ping_id).get("type") == "result"
        session.send(data[cut:])
        # Nothing else is sent: were the push held back, this would time out.
        notification = client.get_notification(timeout=5)
        assert notification.iq_id == iq_id
        assert notification.element.findtext(NOTE) == text, "split at %d" % cut
        assert notification.changes[0].path == "/disk/a.txt"
    assert session.wait_reply(iq_id).get("type") == "result"
    ping = session.ping()
    assert session.wait_reply(ping).get("type") == "result"
    assert client.connected


def test_bytewise_server_with_compression(make_server, make_client):
    """Every byte in its own TLS write, through zlib, negotiation included."""
    server = make_server(write_mode="bytewise")
    client = make_client(server).connect()
    session = server.wait_for_session()
    assert session.subscribed.wait(5)
    for kind in sorted(NOTES):
        note, text = NOTES[kind]
        iq_id = session.push(xml=query(note))
        notification = client.get_notification(timeout=5)
        assert notification.iq_id == iq_id
        assert notification.element.findtext(NOTE) == text
    assert session.wait_reply(session.ping()).get("type") == "result"
