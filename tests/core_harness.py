"""The scripted server side of the sans-IO core tests: the seed's bytes, step by step, and a
driver that walks a :class:`ClientProtocol` to an established session without sockets.

Shared by test_core.py and the other core-level test modules (which import it directly or
through test_core)."""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

from yaxmpp import Error
from yaxmpp.protocol.core import ClientProtocol
from yaxmpp.protocol.events import (
    Event,
    IqResponse,
    RequestAnswered,
    SessionStarted,
    StanzaReceived,
    StreamClosed,
)
from yaxmpp.protocol.sasl import Mechanism, XYandexOAuth

LOGIN = "test"
#: The seed's example token: its "test\00c4181a..." is login, NUL, then this token.
TOKEN = "c4181a7c2cf4521964a72ff57a34a07"
#: The seed's <auth> payload for that login and token.
SEED_PAYLOAD = b"dGVzdABjNDE4MWE3YzJjZjQ1MjE5NjRhNzJmZjU3YTM0YTA3"

# -- what the client sends, byte for byte ---------------------------------------------------------

CLIENT_HEADER = (
    b'<?xml version="1.0"?>\n'
    b'<stream:stream xmlns:stream="http://etherx.jabber.org/streams" version="1.0" xmlns="jabber:client" '
    b'to="ya.ru" xml:lang="en" xmlns:xml="http://www.w3.org/XML/1998/namespace">'
)
CLIENT_STARTTLS = b'<starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"/>'
CLIENT_AUTH = b'<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="X-YANDEX-OAUTH">' + SEED_PAYLOAD + b"</auth>"
CLIENT_BIND = (
    b'<iq type="set" id="bind_1"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind">'
    b"<resource>YaDisk-client</resource></bind></iq>"
)
CLIENT_SESSION = b'<iq type="set" id="session_1"><session xmlns="urn:ietf:params:xml:ns:xmpp-session"/></iq>'
CLIENT_CLOSE = b"</stream:stream>"
PONG = b'<iq type="result" to="ya.ru" id="ping_1"/>'

# -- what the seed's server sends ----------------------------------------------------------------


def server_header(stream_id: str = "4235063168") -> bytes:
    return (
        b"<?xml version='1.0'?>\n<stream:stream xmlns='jabber:client' "
        b"xmlns:stream='http://etherx.jabber.org/streams' id='%s' from='ya.ru' version='1.0' xml:lang='en'>\n"
        % stream_id.encode()
    )


FEATURES_TLS = (
    b"<stream:features>\n"
    b'  <starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"/>\n'
    b'  <compression xmlns="http://jabber.org/features/compress">\n'
    b"    <method>zlib</method>\n"
    b"  </compression>\n"
    b'  <mechanisms xmlns="urn:ietf:params:xml:ns:xmpp-sasl"/>\n'
    b"</stream:features>"
)
FEATURES_AUTH = (
    b"<stream:features>"
    b'<compression xmlns="http://jabber.org/features/compress"><method>zlib</method></compression>'
    b'<mechanisms xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><mechanism>X-YANDEX-OAUTH</mechanism></mechanisms>'
    b"</stream:features>"
)
FEATURES_BIND = (
    b"<stream:features>"
    b'<bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/>'
    b'<session xmlns="urn:ietf:params:xml:ns:xmpp-session"/>'
    b"</stream:features>"
)
PROCEED = b'<proceed xmlns="urn:ietf:params:xml:ns:xmpp-tls"/>'
SUCCESS = b'<success xmlns="urn:ietf:params:xml:ns:xmpp-sasl"/>'
BIND_RESULT = (
    b'<iq xmlns="jabber:client" type="result" id="bind_1">\n'
    b'  <bind xmlns="urn:ietf:params:xml:ns:xmpp-bind">\n'
    b"    <jid>test@ya.ru/YaDisk-client</jid>\n"
    b"  </bind>\n"
    b"</iq>"
)
SESSION_RESULT = b'<iq type="result" id="session_1">\n<session xmlns="urn:ietf:params:xml:ns:xmpp-session"/>\n</iq>'
VERSION_GET = (
    b'<iq from="ya.ru" type="get" to="test@ya.ru/YaDisk-client" id="ask_version">\n'
    b'<query xmlns="jabber:iq:version"/>\n'
    b"</iq>"
)
PING = (
    b'<iq from="ya.ru" type="get" to="test@ya.ru/YaDisk-client" id="ping_1">\n'
    b'  <ping xmlns="urn:xmpp:ping"/>\n'
    b"</iq>"
)
SERVER_CLOSE = b"</stream:stream>"

#: Steps 1 to 8 on a stream that is TLS from the start, then server requests and the server's close.
ESTABLISH_SCRIPT = (
    server_header("1")
    + FEATURES_AUTH
    + SUCCESS
    + server_header("2")
    + FEATURES_BIND
    + BIND_RESULT
    + b"\n"
    + SESSION_RESULT
)
REQUESTS_SCRIPT = (
    VERSION_GET
    + b" "
    + PING
    + b"<iq from='ya.ru' type='get' id='q1'><query xmlns='jabber:iq:last'/></iq>"
    + b"<message from='ya.ru'><body>hello</body></message>"
    + b"<iq type='result' id='nobody-asked'/>"
)
WHOLE_SCRIPT = ESTABLISH_SCRIPT + REQUESTS_SCRIPT + SERVER_CLOSE


def predictable_ids(proto: ClientProtocol) -> None:
    """Give ``proto`` the seed's ids (``bind_1``, ``session_1``) and ``yx1``, ``yx2``... for
    requests, instead of random ones, so that scripts can be written byte for byte."""
    counter = iter(range(1, 1 << 30))
    proto._new_id = lambda prefix: prefix + "1" if prefix else "yx%d" % next(counter)


class Driver:
    """Plays the server against one ClientProtocol and collects what the client does
    (X-YANDEX-OAUTH for LOGIN and ``token`` unless another ``mechanism`` is given)."""

    def __init__(self, tls: bool = False, token: str = TOKEN, mechanism: Optional[Mechanism] = None, **kwargs: Any) -> None:
        self.proto = ClientProtocol(mechanism or XYandexOAuth(LOGIN, token), tls=tls, **kwargs)
        predictable_ids(self.proto)
        self.proto.initiate()
        self.wire = self.proto.data_to_send()  # everything the client ever sent
        self.events: List[Event] = []

    def feed(self, data: bytes) -> List[Event]:
        events = self.proto.receive_data(data)
        self.events.extend(events)
        return events

    def out(self) -> bytes:
        """What the client queued since the last call."""
        data = self.proto.data_to_send()
        self.wire += data
        return data

    def exchange(self, data: bytes) -> Tuple[List[Event], bytes]:
        return self.feed(data), self.out()


def established(**kwargs: Any) -> Driver:
    """A driver whose session is open (TLS from the start; nothing left to read or write)."""
    kwargs.setdefault("tls", True)
    driver = Driver(**kwargs)
    events, _ = driver.exchange(ESTABLISH_SCRIPT)
    assert isinstance(events[-1], SessionStarted)
    assert driver.proto.established
    return driver


def summary(events: List[Event]) -> List[tuple]:
    """Events in a comparable form: their type and the fields that identify them."""
    out = []
    for event in events:
        if isinstance(event, StreamClosed):
            out.append(("StreamClosed", type(event.error).__name__))
        elif isinstance(event, (RequestAnswered, IqResponse)):
            out.append((type(event).__name__, event.iq_id))
        elif isinstance(event, StanzaReceived):
            out.append(("StanzaReceived", event.element.tag))
        else:
            out.append((type(event).__name__, repr(event)))
    return out


def closed_error(events: List[Event]) -> Optional[Error]:
    assert events, "no events"
    last = events[-1]
    assert isinstance(last, StreamClosed), "last event is %r" % (last,)
    assert sum(isinstance(e, StreamClosed) for e in events) == 1
    return last.error


def authenticated(**kwargs: Any) -> Driver:
    kwargs.setdefault("tls", True)
    driver = Driver(**kwargs)
    driver.exchange(server_header("1") + FEATURES_AUTH + SUCCESS + server_header("2"))
    return driver
