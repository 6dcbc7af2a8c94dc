"""The stand-in server's conversation without sockets: bytes in, actions out (issue 14)."""

from __future__ import annotations

import base64
from typing import List, Optional, Tuple

import pytest

from yaxmpp.testing.conversation import IQ_HANDLERS, Conversation, Hangup, Note, StartCompression, StartTLS, Write
from yaxmpp.testing.options import ServerOptions
from yaxmpp.testing.router import Jid, Router
from yaxmpp.testing.stanzas import serialize

HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
    b"to='ya.ru' version='1.0'>"
)


class Endpoint:
    def __init__(self) -> None:
        self.delivered: List[str] = []
        self.replaced_count = 0

    def deliver(self, xml: str) -> None:
        self.delivered.append(xml)

    def replaced(self) -> None:
        self.replaced_count += 1


def conversation(router: Optional[Router] = None, tls: bool = True, **options: object) -> Tuple[Conversation, Endpoint]:
    endpoint = Endpoint()
    conv = Conversation(
        ServerOptions(**options),  # type: ignore[arg-type]
        {"test": "t0ken"},
        router or Router(),
        endpoint,
        number=1,
        tls=tls,
        stream_ids=lambda: "4235063168",
    )
    return conv, endpoint


def written(actions: List[object]) -> bytes:
    return b"".join(a.data for a in actions if isinstance(a, Write))


def auth(login: str = "test", token: str = "t0ken") -> bytes:
    payload = base64.b64encode(("%s\0%s" % (login, token)).encode()).decode()
    return ("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-YANDEX-OAUTH'>%s</auth>" % payload).encode()


def bound(conv: Conversation, resource: str = "res") -> List[object]:
    conv.receive(HEADER + auth())
    actions = conv.receive(HEADER + b"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                           b"<resource>%s</resource></bind></iq>" % resource.encode())
    assert conv.jid == "test@ya.ru/" + resource
    return actions


def test_seed_features_before_tls() -> None:
    conv, _ = conversation(tls=False)
    data = written(conv.receive(HEADER))
    assert data.startswith(b"<?xml version='1.0'?>\n<stream:stream xmlns='jabber:client'")
    assert b"id='4235063168' from='ya.ru'" in data
    assert data.endswith(
        b'<stream:features><starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"/>'
        b'<compression xmlns="http://jabber.org/features/compress"><method>zlib</method></compression>'
        b'<mechanisms xmlns="urn:ietf:params:xml:ns:xmpp-sasl"/></stream:features>'
    )


def test_bytes_after_starttls_go_to_the_tls_layer() -> None:
    conv, _ = conversation(tls=False)
    conv.receive(HEADER)
    actions = conv.receive(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\x16\x03\x01client-hello")
    assert isinstance(actions[-1], StartTLS) and actions[-1].leftover == b"\x16\x03\x01client-hello"
    assert written(actions) == b'<proceed xmlns="urn:ietf:params:xml:ns:xmpp-tls"/>'
    assert conv.tls


def test_bytes_after_compress_go_to_the_zlib_layer() -> None:
    conv, _ = conversation()
    conv.receive(HEADER)
    actions = conv.receive(b"<compress xmlns='http://jabber.org/protocol/compress'><method>zlib</method></compress>x\x9c")
    assert isinstance(actions[-1], StartCompression) and actions[-1].leftover == b"x\x9c"
    assert conv.compressed


def test_auth_and_the_next_header_in_one_read() -> None:
    conv, _ = conversation()
    conv.receive(HEADER)
    data = written(conv.receive(auth() + HEADER))
    assert data.startswith(b'<success xmlns="urn:ietf:params:xml:ns:xmpp-sasl"/>')
    assert b'<bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/>' in data  # the second stream's features
    assert conv.authenticated and conv.login == "test"


@pytest.mark.parametrize("data,condition", [
    (HEADER.replace(b"to='ya.ru'", b"to='example.org'"), b"host-unknown"),
    (HEADER.replace(b"to='ya.ru' ", b""), b"improper-addressing"),
    (HEADER + b"<iq><<", b"not-well-formed"),
    (b"<<<", b"not-well-formed"),
])
def test_stream_errors_end_the_stream(data: bytes, condition: bytes) -> None:
    conv, _ = conversation()
    actions = conv.receive(data)
    out = written(actions)
    assert out.startswith(b"<?xml version='1.0'?>")  # a header always precedes the error
    assert b"<stream:error><%s xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>" % condition in out
    assert out.endswith(b"</stream:stream>")
    assert actions[-1] == Hangup()
    assert any(isinstance(a, Note) and a.kind == "error" for a in actions)
    assert conv.receive(b"<iq/>") == []  # nothing is read after the end


@pytest.mark.parametrize("mechanism,tls,condition", [
    ("X-YANDEX-OAUTH", False, b"encryption-required"),
    ("PLAIN", True, b"invalid-mechanism"),
])
def test_sasl_failures(mechanism: str, tls: bool, condition: bytes) -> None:
    conv, _ = conversation(tls=tls)
    conv.receive(HEADER)
    out = written(conv.receive(auth().replace(b"X-YANDEX-OAUTH", mechanism.encode())))
    assert out == b'<failure xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><%s/></failure>' % condition
    assert not conv.authenticated


def test_a_bind_replaces_the_older_session_on_that_jid() -> None:
    router = Router()
    older, older_end = conversation(router)
    newer, _ = conversation(router)
    bound(older)
    bound(newer)
    assert older_end.replaced_count == 1
    assert router.lookup("TEST@YA.RU/res") is newer.endpoint  # local part and domain without case
    assert router.lookup("test@ya.ru/RES") is None  # the resource exactly
    newer.finish()
    assert router.lookup("test@ya.ru/res") is None


def test_routing_stamps_the_sender() -> None:
    router = Router()
    sender, _ = conversation(router)
    bound(sender, "a")
    target = Endpoint()
    router.bind("other@ya.ru/b", target)
    sender.receive(b"<iq type='get' id='x' to='other@ya.ru/b' from='ya.ru'><q xmlns='urn:q' xml:lang='en'>t</q></iq>")
    assert target.delivered == [
        '<iq xmlns="jabber:client" type="get" id="x" to="other@ya.ru/b" from="test@ya.ru/a">'
        '<q xmlns="urn:q" xml:lang="en">t</q></iq>'
    ]


def test_every_handled_iq_is_in_the_table() -> None:
    targets = {target for target, _, _ in IQ_HANDLERS}
    assert targets == {"server", "self", "account"}


def test_serialize_keeps_namespaces_and_escapes() -> None:
    from xml.etree.ElementTree import fromstring

    elem = fromstring("<iq xmlns='jabber:client' a='&quot;&lt;'><x xmlns='urn:x' xmlns:p='urn:p' p:y='1'>&amp;</x></iq>")
    again = fromstring(serialize(elem))
    assert again.tag == "{jabber:client}iq" and again.get("a") == '"<'
    assert again[0].tag == "{urn:x}x" and again[0].get("{urn:p}y") == "1" and again[0].text == "&"


def test_jid_parse() -> None:
    assert Jid.parse("a@b/c/d") == Jid("a", "b", "c/d")
    assert Jid.parse("ya.ru").bare == "ya.ru" and Jid.parse("ya.ru/x").resource == "x"
