"""Nesting and the other per-stanza limits, now that the tree builder reports only end events:
nesting is measured on the tree (level by level for a stanza finished within one slice, along
its rightmost path for one that spans slices), and must still not depend on the reads.  Each
case runs twice: through ElementTree's event deque with end events only (the fast path), and
through its public API with start events too (the fallback should those internals change)."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

import yaxmpp.protocol.parser as parser_module
from yaxmpp import Limits, ProtocolError
from yaxmpp.protocol.parser import StreamParser

from .test_parser_chunking import HEADER, PING, assert_same_at_every_cut, feed


class _NoSetEvents:
    """An XMLParser stand-in without ``_setevents``: the parser must take the public path."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if name == "_setevents":
            raise AttributeError(name)
        return getattr(self._inner, name)


@pytest.fixture(params=["end events", "public API"])
def path(request: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "public API":
        original = parser_module.XMLPullParser

        class Public(original):  # type: ignore[misc, valid-type]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                self._parser = _NoSetEvents(self._parser)

        monkeypatch.setattr(parser_module, "XMLPullParser", Public)
    yield request.param


def test_the_fast_path_is_taken_unless_forced_off(path: str) -> None:
    parser = StreamParser()
    parser.feed(HEADER + PING)
    assert parser._public is (path == "public API")
    assert len(parser.items) == 2


DEEP4 = b"<a><b><c><d/></c></b></a>"  # depth 4 (the stanza is 1)
DEEP5 = b"<a><b><c><d><e/></d></c></b></a>"


@pytest.mark.parametrize(
    "tail, error",
    [
        (PING + DEEP4 + PING, None),
        (PING + DEEP5 + PING, "ProtocolError"),
        # Too deep inside a stanza that is still open at the end, the deep part already closed:
        # refused whatever the reads (never only when a read happened to end inside it).
        (b"<m>" + DEEP4 + b"<z/>", "ProtocolError"),
        (b"<m><x/><y>" + DEEP4 + b"</y><z/>", "ProtocolError"),
        (b"<m><x/><y><a/>" + b"<b><c/></b>" * 3 + b"</y><z/></m>" + PING, None),
        # The old last child of an open element gains children after a read, then a sibling.
        (b"<m><y><a/><b><c><d/></c></b></y><z/></m>", "ProtocolError"),
        (b"<m><y><a/><b><c/></b></y><z/></m>" + PING, None),
        (b"<a>" * 5, "ProtocolError"),
        (b"<a>" * 4 + b"</a>" * 4 + b"<a>" * 4, None),
        # A second stream header, finished or open, and before or after a stanza too deep.
        (PING + b"<stream:stream/>", "ProtocolError"),
        (PING + b"<stream:stream>", "ProtocolError"),
        (PING + DEEP5 + b"<stream:stream/>", "ProtocolError"),
    ],
)
def test_nesting_is_refused_whatever_the_reads(path: str, tail: bytes, error: Any) -> None:
    items, got = assert_same_at_every_cut(HEADER + tail, Limits(max_depth=4))
    assert got == error
    if error is not None:
        assert not any("<e" in item or "stream:stream" in item or "<d" in item and "<m" in item for item in items)


def test_the_stanzas_before_the_culprit_are_delivered(path: str) -> None:
    items, error = feed(HEADER + PING + PING + DEEP5 + PING, [], Limits(max_depth=4))
    assert error == "ProtocolError" and items[0] == "header" and len(items) == 3
    items, error = feed(HEADER + PING + b"<stream:stream/>" + PING, [], Limits(max_depth=4))
    assert error == "ProtocolError" and len(items) == 2


def test_the_error_names_the_limit(path: str) -> None:
    parser = StreamParser(Limits(max_depth=4))
    with pytest.raises(ProtocolError, match="nested deeper than 4 levels"):
        parser.feed(HEADER + PING + DEEP5)
    parser = StreamParser(Limits(max_depth=4))
    with pytest.raises(ProtocolError, match="second stream header"):
        parser.feed(HEADER + b"<stream:stream>")


def test_a_long_stanza_spanning_many_reads_is_not_walked_again_each_time(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nesting inside a stanza that spans reads is checked on what is new since the last read:
    the elements looked at grow with the stanza, not with the square of its reads."""
    seen = [0]
    real = parser_module._deeper

    def counting(elements: Any, depth: int, limit: int) -> bool:
        seen[0] += len(elements)
        return real(elements, depth, limit)

    monkeypatch.setattr(parser_module, "_deeper", counting)
    parser = StreamParser()
    parser.feed(HEADER + b"<message><body>")
    for _ in range(2000):
        parser.feed(b"<x><y/></x>")
    parser.feed(b"</body></message>")
    assert len(parser.items) == 2
    assert seen[0] < 3 * 2000, seen[0]
