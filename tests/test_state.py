"""The step table of the core (yaxmpp/protocol/state.py): every path the core can take goes
through the table, every transition of the table is taken by some path, and every step can be
reached."""

from __future__ import annotations

import base64
from typing import Callable, List, Optional, Set, Tuple

import pytest

from yaxmpp import ConnectionLost, LocalProtocolError
from yaxmpp.protocol import core as core_module
from yaxmpp.protocol import state
from yaxmpp.protocol.core import ClientProtocol
from yaxmpp.protocol.core import Step as CoreStep
from yaxmpp.protocol.events import SessionStarted, StreamClosed
from yaxmpp.protocol.sasl import Mechanism, XYandexOAuth
from yaxmpp.protocol.state import INITIAL, TRANSITIONS, Step, check_transition

from .test_core import (
    BIND_RESULT,
    FEATURES_AUTH,
    FEATURES_BIND,
    FEATURES_TLS,
    LOGIN,
    PROCEED,
    SERVER_CLOSE,
    SESSION_RESULT,
    SUCCESS,
    TOKEN,
    predictable_ids,
    server_header,
)

COMPRESSED = b"<compressed xmlns='http://jabber.org/protocol/compress'/>"
COMPRESS_REFUSED = b"<failure xmlns='http://jabber.org/protocol/compress'><setup-failed/></failure>"
FEATURES_SASL_ONLY = b"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/></stream:features>"
FEATURES_BIND_ZLIB = (
    b"<stream:features>"
    b"<compression xmlns='http://jabber.org/features/compress'><method>zlib</method></compression>"
    b"<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/>"
    b"</stream:features>"
)
CHALLENGE = b"<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>%s</challenge>" % base64.b64encode(b"nonce")


class Challenged(Mechanism):
    """A mechanism that takes one challenge before success."""

    name = "X-CHALLENGED"

    def initial_response(self) -> Optional[bytes]:
        return b"hello"

    def challenge(self, data: bytes) -> bytes:
        return data[::-1]


Action = Callable[[ClientProtocol], object]


def feed(data: bytes) -> Action:
    def action(proto: ClientProtocol) -> object:
        events = proto.receive_data(data)
        assert not any(isinstance(e, StreamClosed) for e in events), events
        return events

    action.__name__ = "feed %r" % data[:30]
    return action


def tls_done(proto: ClientProtocol) -> object:
    return proto.tls_established()


def zlib_done(proto: ClientProtocol) -> object:
    return proto.compression_established()


AFTER_AUTH = [feed(server_header("a") + FEATURES_BIND), feed(BIND_RESULT), feed(SESSION_RESULT)]

#: name -> (constructor options, mechanism, the actions that open the session)
PATHS = {
    "starttls, zlib before auth": (
        {"tls": False, "compress": True},
        None,
        [
            feed(server_header("1")),
            feed(FEATURES_TLS),
            feed(PROCEED),
            tls_done,
            feed(server_header("2") + FEATURES_AUTH),
            feed(COMPRESSED),
            zlib_done,
            feed(server_header("3") + FEATURES_AUTH),
            feed(SUCCESS),
        ]
        + AFTER_AUTH,
    ),
    "direct tls, zlib after auth": (
        {"tls": True, "compress": True},
        None,
        [
            feed(server_header("1") + FEATURES_SASL_ONLY),
            feed(SUCCESS),
            feed(server_header("2") + FEATURES_BIND_ZLIB),
            feed(COMPRESSED),
            zlib_done,
            feed(server_header("3") + FEATURES_BIND_ZLIB),
            feed(BIND_RESULT),
            feed(SESSION_RESULT),
        ],
    ),
    "compression refused before auth": (
        {"tls": True, "compress": True},
        None,
        [feed(server_header("1") + FEATURES_AUTH), feed(COMPRESS_REFUSED), feed(SUCCESS)] + AFTER_AUTH,
    ),
    "compression refused after auth": (
        {"tls": True, "compress": True},
        None,
        [
            feed(server_header("1") + FEATURES_SASL_ONLY),
            feed(SUCCESS),
            feed(server_header("2") + FEATURES_BIND_ZLIB),
            feed(COMPRESS_REFUSED),
            feed(BIND_RESULT),
            feed(SESSION_RESULT),
        ],
    ),
    "sasl challenge": (
        {"tls": True},
        Challenged(),
        [feed(server_header("1") + FEATURES_SASL_ONLY), feed(CHALLENGE), feed(SUCCESS)] + AFTER_AUTH,
    ),
}


class Recorder:
    """Collects every transition the core asks the table about."""

    def __init__(self) -> None:
        self.taken: List[Tuple[Step, Step]] = []

    def __call__(self, old: Step, new: Step) -> None:
        self.taken.append((old, new))
        check_transition(old, new)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    rec = Recorder()
    monkeypatch.setattr(core_module, "check_transition", rec)
    return rec


def make(options: dict, mechanism: Optional[Mechanism]) -> ClientProtocol:
    proto = ClientProtocol(mechanism or XYandexOAuth(LOGIN, TOKEN), **options)
    predictable_ids(proto)
    return proto


Ending = Callable[[ClientProtocol], None]


def end_by_close(proto: ClientProtocol) -> None:
    proto.close()
    if proto.closed:  # nothing could be written: the final event comes with the transport's end
        assert proto.connection_lost() == [StreamClosed(None)]
    else:
        assert proto.step is Step.CLOSING
        if proto._parser is not None and not proto._header_seen:  # the server's header is still owed
            proto.receive_data(server_header("late"))
        events = proto.receive_data(SERVER_CLOSE)
        assert events == [StreamClosed(None)]


def end_by_server(proto: ClientProtocol) -> None:
    if proto.step in (Step.TLS, Step.COMPRESSION) or proto._parser is None:
        events = proto.connection_lost(ConnectionLost("reset"))
    else:
        events = proto.receive_data(SERVER_CLOSE if proto._header_seen else b"")
    assert isinstance(events[-1], StreamClosed) and events[-1].error is not None


def end_by_eof(proto: ClientProtocol) -> None:
    if proto.step in (Step.TLS, Step.COMPRESSION) or proto._parser is None:
        events = proto.connection_lost()
    else:
        events = proto.receive_data(b"")
    assert isinstance(events[-1], StreamClosed)


def walk(recorder: Recorder, name: str, stop: Optional[int], ending: Optional[Ending]) -> Set[Step]:
    """Run path ``name`` (its first ``stop`` actions, all when None), end it with ``ending``;
    return the steps the core was in."""
    options, mechanism, actions = PATHS[name]
    proto = make(options, mechanism)
    seen = {proto.step}
    if stop != -1:  # -1: end before initiate()
        proto.initiate()
        for action in actions[:stop]:
            action(proto)
            seen.add(proto.step)
        if stop is None:
            assert proto.established
    if ending is not None:
        ending(proto)
        assert proto.closed
        seen.add(proto.step)
        assert proto.receive_data(b"<iq/>") == [] and proto.connection_lost() == []
    return seen


def all_walks(recorder: Recorder) -> Set[Step]:
    seen: Set[Step] = set()
    for name, (_, _, actions) in PATHS.items():
        seen |= walk(recorder, name, None, None)
        for ending in (end_by_close, end_by_server, end_by_eof):
            for stop in range(-1, len(actions) + 1):
                seen |= walk(recorder, name, stop, ending)
    return seen


def test_every_transition_taken_is_in_the_table_and_every_one_in_the_table_is_taken(recorder):
    seen = all_walks(recorder)
    allowed = {(old, new) for old, news in TRANSITIONS.items() for new in news}
    taken = set(recorder.taken)
    assert taken <= allowed  # (the recorder checked each one as it went, too)
    assert allowed - taken == set(), "transitions in the table that no path takes"
    assert seen | {new for _, new in taken} == set(Step)


def test_every_step_is_reachable_from_the_initial_one_and_only_closed_is_final():
    reached = {INITIAL}
    frontier = [INITIAL]
    while frontier:
        for new in TRANSITIONS[frontier.pop()]:
            if new not in reached:
                reached.add(new)
                frontier.append(new)
    assert reached == set(Step)
    assert set(TRANSITIONS) == set(Step)
    assert [step for step, news in TRANSITIONS.items() if not news] == [Step.CLOSED]
    assert all(Step.CLOSED in news for step, news in TRANSITIONS.items() if step is not Step.CLOSED)


def test_step_is_still_importable_from_the_core():
    assert CoreStep is Step is state.Step


@pytest.mark.parametrize("old, new", [(Step.CLOSED, Step.STREAM), (Step.ESTABLISHED, Step.AUTH), (Step.TLS, Step.CLOSING)])
def test_a_transition_outside_the_table_is_a_local_protocol_error(old, new):
    with pytest.raises(LocalProtocolError):
        check_transition(old, new)


def test_the_core_refuses_a_step_change_the_table_does_not_list():
    proto = make({"tls": True}, None)
    proto.initiate()
    proto.receive_data(server_header() + FEATURES_AUTH)
    assert proto.step is Step.AUTH
    with pytest.raises(LocalProtocolError):
        proto._go(Step.ESTABLISHED)
    assert proto.step is Step.AUTH


def test_the_sasl_challenge_stays_in_the_auth_step(recorder):
    proto = make({"tls": True}, Challenged())
    proto.initiate()
    proto.receive_data(server_header() + FEATURES_SASL_ONLY)
    before = list(recorder.taken)
    proto.receive_data(CHALLENGE)
    assert proto.step is Step.AUTH and recorder.taken == before
    assert base64.b64encode(b"ecnon") in proto.data_to_send()


def test_no_dead_state_is_left_on_the_core():
    proto = make({"tls": True}, None)
    assert not hasattr(proto, "_server_closed")
    assert not hasattr(proto, "_ids")


def test_paths_end_in_a_session():
    for name in PATHS:
        options, mechanism, actions = PATHS[name]
        proto = make(options, mechanism)
        proto.initiate()
        events: List[object] = []
        for action in actions:
            result = action(proto)
            if isinstance(result, list):
                events += result
        assert isinstance(events[-1], SessionStarted), name
