"""The stand-in's console under random input lines (hypothesis): every line that says
something gets exactly one line of answer, none of them an internal error, and a push's
path reaches a subscribed client exactly as it was typed."""

from __future__ import annotations

import re
import shlex
from typing import Any, Callable, Iterator, List, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import yaxmpp
from yaxmpp.testing import FakeServer
from yaxmpp.testing.console import CHANGE_TYPES, COMMANDS, Console, parse_push

from .conftest import LOGIN, TOKEN

WORDS = sorted(COMMANDS) + ["exit", "quit", "all", "#1", "1", "0", "-1", "1.5", "1e3", "disk:/x"] + list(CHANGE_TYPES)

#: Any line: random text, or command words with random arguments.
LINES = st.one_of(
    st.text(max_size=200),
    st.lists(st.one_of(st.sampled_from(WORDS), st.text(max_size=20)), min_size=1, max_size=5).map(" ".join),
    st.tuples(st.sampled_from(["push", "PUSH", " push"]), st.text(max_size=80)).map(" ".join),
    st.sampled_from(["push \u00b2", "push \u0661 new /x", "push \u00b9\u00b2 /x", "drop \u00b2"]),
)


def _quiet(line: str) -> bool:
    text = line.strip()
    return not text or text.startswith("#")


def _quits(line: str) -> bool:
    words = line.split(None, 1)
    return bool(words) and words[0].lower() in ("quit", "exit")


def _too_many(line: str) -> bool:
    """A push of more than a few pushes (a million would only slow the fuzzing down)."""
    words = line.split()
    return len(words) > 1 and words[0].lower() == "push" and re.fullmatch("[0-9]+", words[1]) is not None and int(words[1]) > 20


@pytest.fixture
def server() -> Iterator[FakeServer]:
    server = FakeServer(login=LOGIN, token=TOKEN).start()
    yield server
    server.stop()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(line=LINES)
def test_every_line_gets_one_line_and_no_internal_error(server: FakeServer, line: str) -> None:
    out: List[str] = []
    console = Console(server, out.append)
    if _too_many(line) or line.split()[:1] == ["drop"]:
        return  # (a big push only slows the fuzzing; drop is fuzzed below)
    keep_going = console.handle(line)
    if _quits(line):
        assert keep_going is False and out == []
        return
    assert keep_going is True
    if _quiet(line):
        assert out == []
        return
    assert len(out) == 1, (line, out)
    assert "\n" not in out[0] and "\r" not in out[0]
    assert not out[0].startswith("error: "), (line, out[0])  # an exception the console did not expect


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rest=st.one_of(st.text(max_size=30), st.sampled_from(["all", "#1", "1", "\u00b2", "#\u00b9", "\u0661", "99" * 20])))
def test_drop_with_any_argument_is_one_line(server: FakeServer, rest: str) -> None:
    out: List[str] = []
    assert Console(server, out.append).handle("drop " + rest) is True
    assert len(out) == 1 and not out[0].startswith("error: "), (rest, out)


PATH_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
PATHS = st.text(PATH_CHARS, min_size=1, max_size=60).map(lambda rest: "/disk/" + rest)


@pytest.fixture
def subscribed(server: FakeServer) -> Iterator[Tuple[FakeServer, yaxmpp.Client]]:
    options = server.client_options()
    options.pop("login", None)
    options.pop("token", None)
    client = yaxmpp.Client(LOGIN, TOKEN, timeout=5.0, **options).connect()
    assert server.wait_for_session().subscribed.wait(5)
    try:
        yield server, client
    finally:
        client.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(change=st.sampled_from(CHANGE_TYPES), path=PATHS, quoted=st.booleans())
def test_a_pushed_path_arrives_as_typed(subscribed: Tuple[FakeServer, yaxmpp.Client], change: str, path: str, quoted: bool) -> None:
    server, client = subscribed
    out: List[str] = []
    console = Console(server, out.append)
    typed = '"%s"' % path if quoted else path
    line = "push %s %s" % (change, typed)
    try:
        _, _, expected = parse_push("%s %s" % (change, typed))
    except Exception as exc:  # the console refuses it: then in one line, and nothing is sent
        assert console.handle(line) is True and len(out) == 1 and not out[0].startswith("error: "), (line, out, exc)
        with pytest.raises(yaxmpp.Timeout):
            client.get_notification(timeout=0.05)
        return
    assert console.handle(line) is True
    assert out == ["pushed 1"], (line, out)
    notification = client.get_notification(timeout=5)
    assert client.connected
    assert (notification.changes[0].type, notification.changes[0].path) == (change, expected)
    assert expected == (path if quoted else path.strip())
