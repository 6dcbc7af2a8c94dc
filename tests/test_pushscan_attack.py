"""Hostile input for the push fast path (yaxmpp/protocol/pushscan.py): each test here is an
input a server could send on which the fast path once disagreed with expat, broke a limit or
took super-linear time.  Differential, as in test_pushscan.py: the same reads to a parser with
the fast path and one without."""

from __future__ import annotations

from typing import Any, List

import pytest

from yaxmpp import Limits
from yaxmpp.protocol import StreamParser
from yaxmpp.protocol import pushscan

from .test_pushscan import HEADER, parse, push, same

SMALL = Limits(max_stanza_bytes=1024, max_tag_bytes=1024)


# -- a stray quote after the query: the markup of a plan, one value more ----------------------
#
# A push is cut at its quotes, the even parts being its markup.  One more quote after the
# query gives the same even parts as the learnt push (the text after the quote is an odd
# part, a "value"), so the plan read it, dropped that text and took what expat refuses.


@pytest.mark.parametrize(
    "tail",
    [
        b'" some text',  # text in the iq after its query: kept by expat (the query's tail)
        b'"]]>',  # "]]>" in text: not well-formed
        b'"',
        b'"\n',
    ],
)
def test_a_stray_quote_and_text_after_the_query(tail):
    odd = push("b").replace(b"</query></iq>", b"</query>" + tail + b"</iq>")
    data = push("a") + odd + push("c")
    same(data)
    same(data, [len(push("a"))])
    same(data, range(0, len(data), 11))


def test_a_stray_quote_after_the_query_of_a_long_run():
    pushes = [push("p%d" % i) for i in range(40)]
    pushes[30] = pushes[30].replace(b"</query></iq>", b'</query>"x</iq>')
    assert same(b"".join(pushes)) == 30


# -- the limits are in bytes, the fast path's text in characters ------------------------------


def test_a_push_too_long_in_bytes_but_not_in_characters():
    long = push("l", "/disk/" + "Я" * 450)  # about 600 characters, 1,050 bytes
    assert len(long.decode()) < 1024 - 5 < len(long)
    data = push("s") + long + push("t")
    same(data, limits=SMALL)
    same(data, [len(push("s"))], limits=SMALL)
    _, error, taken = parse(data, True, (), SMALL)
    assert error is not None and taken == 1


def test_four_byte_characters_count_four_bytes():
    long = push("l", "/disk/" + "\U0001f600" * 240)
    assert len(long.decode()) < 1024 - 5 < len(long)
    same(push("s") + long, limits=SMALL)
    same(push("s") + long + push("t"), limits=Limits(max_stanza_bytes=1 << 20, max_tag_bytes=1024))


# -- linear time: a run whose every other push has a value the plan may not take --------------


def _work(monkeypatch: Any, data: bytes) -> int:
    """The pushes the plan's value checks looked at while ``data`` was fed in one read."""
    seen: List[int] = [0]
    for name in ("_read", "_takes"):
        original = getattr(pushscan, name, None)
        if original is None:
            continue

        def counting(plan: Any, values: Any, original: Any = original) -> Any:
            seen[0] += len(values)
            return original(plan, values)

        monkeypatch.setattr(pushscan, name, counting)
    parser = StreamParser(pushes=True)
    parser.feed(HEADER)
    parser.feed(data)
    monkeypatch.undo()
    return seen[0]


def test_alternating_bad_values_cost_linear_work(monkeypatch):
    good = push("g")
    odd = push("g").replace(b'id="g"', 'id="\u00a0"'.encode())  # not printable: the full pattern's
    data = (good + odd) * 100
    assert same(data) == 200
    small, big = _work(monkeypatch, (good + odd) * 100), _work(monkeypatch, (good + odd) * 400)
    assert big <= 4.5 * small  # (it was 16 times: the rest of the run checked again after each)
    assert big <= 10 * 800


def test_a_bad_value_at_the_end_of_a_long_run_costs_linear_work(monkeypatch):
    bad = push("x").replace(b'id="x"', b'id="&amp;"')
    small = _work(monkeypatch, push("g") * 200 + bad)
    big = _work(monkeypatch, push("g") * 800 + bad)
    assert big <= 4.5 * small


# -- a fuzzer of markups: random attribute names, quotes, whitespace, ops, stray quotes --------

from random import Random  # noqa: E402

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_ODD_NAMES = ["type", "xmlns", "xmlnsx", "xml", "xml:lang", "xmlns:q", "1a", "-a", "a.b", "a-b", "_x"]
_ODD_VALUES = ["", "set", "jabber:client", "yandex:push:disk", "a>b", "'", "]]>", "&amp;", "&#32;", "<", "\t",
               "\u0085", "\u00a0", "\U0001f600", "\ufeff", "\u2028", "\ufffe"]


def _attr(rnd: Random, name: str = "", value: "str | None" = None) -> str:
    if not name:
        name = rnd.choice(_ODD_NAMES) if rnd.random() < 0.15 else rnd.choice(["id", "from", "to", "key", "fid"])
    if value is None:
        value = rnd.choice(_ODD_VALUES) if rnd.random() < 0.1 else rnd.choice(["a", "/disk/Я", "x y", "1", ""])
    quote = "'" if rnd.random() < 0.2 else '"'
    return rnd.choice([" ", "\n", "  "]) + name + rnd.choice(["", " "]) + "=" + rnd.choice(["", " "]) + quote + value + quote


def _markup(rnd: Random) -> str:
    iq = [_attr(rnd, "type", "set" if rnd.random() < 0.9 else "get")] + [_attr(rnd) for _ in range(rnd.randint(0, 4))]
    query = [_attr(rnd, "xmlns", "yandex:push:disk" if rnd.random() < 0.9 else "x")] + [_attr(rnd) for _ in range(rnd.randint(0, 2))]
    rnd.shuffle(iq)
    rnd.shuffle(query)
    ops = "".join("<op%s%s/>" % ("".join(_attr(rnd) for _ in range(rnd.randint(0, 3))), rnd.choice(["", " "])) for _ in range(rnd.randint(1, 3)))
    made = "%s<iq%s%s><query%s><diff>%s</diff></query%s></iq>" % (
        rnd.choice(["", " ", "\n"]), "".join(iq), rnd.choice(["", " "]), "".join(query), ops, rnd.choice(["", " "]))
    if rnd.random() < 0.1:
        made = made.replace("</query>", "</query>" + rnd.choice(['"', '" x', '"]]>', "'", "x"]))
    return made


def _revalued(rnd: Random, markup: str) -> str:
    parts = markup.split('"')
    for index in range(1, len(parts), 2):
        if rnd.random() < 0.08:
            parts[index] = rnd.choice(_ODD_VALUES)
    return '"'.join(parts)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False))
def test_fuzz_markups_agree_with_expat(rnd):
    markups = [_markup(rnd) for _ in range(rnd.randint(1, 4))]
    out = []
    for _ in range(rnd.randint(1, 8)):
        roll = rnd.random()
        if roll < 0.75:
            out.append(_revalued(rnd, rnd.choice(markups)))
        elif roll < 0.85:
            out.append(rnd.choice([" ", "\n", "&#32;", "x", "<message/>", "<!-- c -->", "</stream:stream>", "<iq type='result' id='r'/>"]))
        else:
            markups.append(_markup(rnd))
            out.append(markups[-1])
    data = "".join(out).encode("utf-8")
    cuts = sorted(rnd.sample(range(len(data) + 1), rnd.randint(0, 3)))
    same(data, cuts, rnd.choice([None, Limits(max_stanza_bytes=1 << 20, max_tag_bytes=1024)]))
