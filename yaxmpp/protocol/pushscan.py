"""The parser's fast path: Disk pushes of the usual shape, recognised straight from the bytes.

Nearly everything a long-lived stream carries is pushes of one shape::

    <iq type="set" id="…" from="…" to="…"><query xmlns="yandex:push:disk" …><diff><op type="…" key="…" …/></diff></query></iq>

Run through expat and ElementTree, each one costs about 35,000 instructions, most of the
client's work per push.  Between stanzas, :class:`~yaxmpp.protocol.parser.StreamParser` first
hands the bytes to :func:`scan`, which takes the pushes at their front and leaves everything
from the first byte it is not sure of to expat, as if the fast path did not exist.

How, in two steps:

1. **The full pattern.**  The first push of each *markup* (the push with its attribute values
   left out) is matched by one regular expression, :data:`_PUSH`, which accepts a strict subset
   of well-formed XML whose meaning is fixed (below).  Its markup is remembered as a
   :class:`_Plan`: which value goes to which attribute.
2. **By markup.**  The following pushes are cut at each ``</iq>`` and each at its quotes
   (C string methods over a whole read, no Python step per byte or per attribute): a push whose
   markup is a remembered one differs from it in its values alone, so only the values are
   checked (as many as the markup has, no ``<`` or ``&``, printable characters only,
   ``type="set"`` and the namespaces).
   A run of pushes of one markup is read in a handful of C loops, a few thousand instructions
   per push, into one :class:`PushRun`.

What is taken, so that nothing of the parser's guard is skipped:

- exactly ``iq`` > ``query`` > ``diff`` (no attributes) > one or more empty ``op``, with no text,
  comment, CDATA, PI or whitespace between them (whitespace only inside tags and before the
  ``<iq``), so the nesting is four levels (:class:`~yaxmpp.Limits` allows no fewer);
- unprefixed ASCII names; ``xmlns`` only as the query's, exactly ``yandex:push:disk``, or the
  iq's, exactly ``jabber:client`` (which must otherwise be the stream's default namespace);
- attribute values without ``<``, ``&`` (so no reference of any kind), control characters
  (tab, CR and LF included, which expat would normalise) or anything that is not a valid XML
  character in valid UTF-8; no attribute twice; ``type="set"`` on the iq;
- the whole of it within both the stanza and the tag byte limits.

Anything else, including a push of another shape, goes to expat.  The differential tests
(``tests/test_pushscan.py``, ``tests/test_pushscan_attack.py``) feed the same reads to a parser
with and without this path, cut at every byte and by fuzzers, and require the same stanzas and
the same kind of error (its words may differ, as they do for expat alone across reads).
"""

from __future__ import annotations

import re
from itertools import chain, groupby, repeat
from operator import eq, itemgetter, methodcaller
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple
from xml.etree.ElementTree import Element

from . import ns
from .disk import Compact, rebuild_query

__all__ = ["PushRun", "scan"]

_S = "[ \t\r\n]"
_NAME = "[A-Za-z_][A-Za-z0-9._-]*"
# Valid XML characters of valid UTF-8 (the bytes are decoded with "surrogateescape", so an
# invalid byte is a lone surrogate) other than "<", "&", controls and the closing quote.
_CHARS = "<&\x00-\x1f\ud800-\udfff\ufffe\uffff"
_VALUE = "(?:\"[^\"%s]*\"|'[^'%s]*')" % (_CHARS, _CHARS)
_ATTRS = "(?:%s+%s%s*=%s*%s)*" % (_S, _NAME, _S, _S, _VALUE)

_PUSH = re.compile(
    "%s*<iq(%s)%s*><query(%s)%s*><diff%s*>((?:<op%s%s*/>)+)</diff%s*></query%s*></iq%s*>"
    % (_S, _ATTRS, _S, _ATTRS, _S, _S, _ATTRS, _S, _S, _S, _S)
)
_OP = re.compile("<op(%s)" % _ATTRS)
_DOUBLE = re.compile("(%s)%s*=%s*\"([^\"]*)\"" % (_NAME, _S, _S))
_SINGLE = re.compile("(%s)%s*=%s*'([^']*)'" % (_NAME, _S, _S))
_EITHER = re.compile("(%s)%s*=%s*(?:\"([^\"]*)\"|'([^']*)')" % (_NAME, _S, _S))

_IQ = ns.qname(ns.CLIENT, "iq")
_SPLIT = methodcaller("split", '"')  # a stanza into its markup (even parts) and values (odd)
_MARKUP = itemgetter(slice(None, None, 2))
_VALUES = itemgetter(slice(1, None, 2))

#: (iq names, query names, each op's names): a push's attribute names in document order.
Names = Tuple[List[str], List[str], List[List[str]]]


class PushRun:
    """Pushes of the usual shape that came one after another, as parallel lists: ``ids`` and
    ``senders`` (the iq's ``id``, or ``""``, and ``from``, or None) and ``compacts`` (each
    query as :data:`~yaxmpp.protocol.disk.Compact` attributes).  :meth:`elements` gives the iq
    elements expat would have built (their attributes are worked out then: seldom needed)."""

    __slots__ = ("ids", "senders", "compacts", "_iq_attrs", "_iq_values")

    def __init__(
        self,
        ids: List[str],
        senders: List[Optional[str]],
        compacts: List[Compact],
        iq_attrs: Optional[List[Dict[str, str]]] = None,
        iq_values: "Optional[tuple[_Place, List[List[str]]]]" = None,
    ) -> None:
        self.ids = ids
        self.senders = senders
        self.compacts = compacts
        self._iq_attrs = iq_attrs
        self._iq_values = iq_values  # (the iq's place in the plan, each push's values)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def iq_attrs(self) -> List[Dict[str, str]]:
        """Each iq's attributes."""
        if self._iq_attrs is None:
            assert self._iq_values is not None
            (names, get), values = self._iq_values
            self._iq_attrs = list(map(dict, map(zip, repeat(names), map(get, values))))
        return self._iq_attrs

    def elements(self) -> List[Element]:
        """Each iq element, equal in tags, attributes and text to what expat makes of the bytes."""
        made = []
        for attrs, (query_attrs, ops) in zip(self.iq_attrs, self.compacts):
            iq = Element(_IQ, attrs)
            iq.append(rebuild_query(query_attrs, (ops,) if isinstance(ops, dict) else ops))
            made.append(iq)
        return made

    def __repr__(self) -> str:
        return "PushRun(ids=%r)" % (self.ids,)


def _attributes(text: str) -> Optional[Dict[str, str]]:
    """The attributes of a tag's attribute text (already matched by the push pattern), or None
    if one is given twice."""
    if "'" not in text:
        pairs = _DOUBLE.findall(text)
    elif '"' not in text:
        pairs = _SINGLE.findall(text)
    else:
        pairs = [(name, double or single) for name, double, single in _EITHER.findall(text)]
    attrs = dict(pairs)
    return attrs if len(attrs) == len(pairs) else None


def _precise(text: str, pos: int, default_client: bool) -> "Optional[tuple[PushRun, int, Names]]":
    """The push at ``pos`` by the full pattern: a run of it alone, where it ends, and the
    attribute names of its iq, query and ops (xmlns included); None if it is not one."""
    found = _PUSH.match(text, pos)
    if found is None:
        return None
    head, query, ops = found.group(1, 2, 3)
    iq = _attributes(head)
    if iq is None or iq.get("type") != "set":
        return None
    names: Names = (list(iq), [], [])  # (dicts keep the document's order)
    if "xmlns" in iq:
        if iq.pop("xmlns") != ns.CLIENT:
            return None
    elif not default_client:
        return None
    attrs = _attributes(query)
    if attrs is None:
        return None
    names[1].extend(attrs)
    if attrs.pop("xmlns", None) != ns.DISK:
        return None
    several = []
    for op_text in _OP.findall(ops):
        op = _attributes(op_text)
        if op is None or "xmlns" in op:
            return None
        names[2].append(list(op))
        several.append(op)
    compact: Compact = (attrs, several[0] if len(several) == 1 else tuple(several))
    return PushRun([iq.get("id") or ""], [iq.get("from")], [compact], iq_attrs=[iq]), found.end(), names


def _getter(indexes: List[int]) -> Callable[[List[str]], Tuple[str, ...]]:
    """A function picking ``indexes`` out of a list, as a tuple (in C for two or more)."""
    if len(indexes) >= 2:
        return itemgetter(*indexes)
    if indexes:
        only = indexes[0]
        return lambda values: (values[only],)
    return lambda values: ()


_Place = Tuple[Tuple[str, ...], Callable[[List[str]], Tuple[str, ...]]]
_CONTROLS = bytes(range(32)) + b"\x7f"  # the ASCII characters that are not printable
_NO_ATTRS: Dict[str, str] = {}  # the attributes of every query that has none (never changed)


class _Plan:
    """How to read the pushes of one markup (a push split at its quotes, the even parts),
    learnt from one that the full pattern read: the values' places.  The markup being one the
    pattern accepted, what is left to check is in the values: the fixed ones here
    (``type="set"``, the namespaces), the rest in :func:`_takes`."""

    __slots__ = ("fixed", "expected", "iq", "query", "ops", "id", "sender", "size")

    def __init__(self, names: Names) -> None:
        fixed: List[int] = []
        expected: List[str] = []
        index = 0

        def place(tag_names: List[str], fixed_values: Dict[str, str]) -> _Place:
            nonlocal index
            kept_names, kept = [], []
            for name in tag_names:
                if name in fixed_values:
                    fixed.append(index)
                    expected.append(fixed_values[name])
                if name != "xmlns":
                    kept_names.append(name)
                    kept.append(index)
                index += 1
            return tuple(kept_names), _getter(kept)

        iq_names = [name for name in names[0] if name != "xmlns"]
        self.id = itemgetter(names[0].index("id")) if "id" in iq_names else None
        self.sender = itemgetter(names[0].index("from")) if "from" in iq_names else None
        self.iq = place(names[0], {"type": "set", "xmlns": ns.CLIENT})
        self.query = place(names[1], {"xmlns": ns.DISK})
        self.ops = tuple(place(op_names, {}) for op_names in names[2])
        self.fixed = _getter(fixed)
        self.expected = tuple(expected)
        self.size = index  # values per push (see _takes)

    def read(self, values: List[List[str]]) -> PushRun:
        """The run of pushes whose values are ``values`` (one list per push, all checked by
        :func:`_takes`)."""
        count = len(values)
        names, get = self.query
        # (A query has no attributes as far as known: then one empty dict, never changed, for all.)
        queries: Iterator[Dict[str, str]] = map(dict, map(zip, repeat(names), map(get, values))) if names else repeat(_NO_ATTRS)
        ops: Iterator[Any]
        if len(self.ops) == 1:
            names, get = self.ops[0]
            ops = map(dict, map(zip, repeat(names), map(get, values)))
        else:
            ops = zip(*[map(dict, map(zip, repeat(names), map(get, values))) for names, get in self.ops])
        ids = list(map(self.id, values)) if self.id is not None else [""] * count
        senders: List[Optional[str]] = list(map(self.sender, values)) if self.sender is not None else [None] * count
        return PushRun(ids, senders, list(zip(queries, ops)), iq_values=(self.iq, values))


#: Markups remembered per stream at most (past them, each push of another goes to the full
#: pattern).
MAX_PLANS = 64


def scan(text: str, items: List[Any], limit: int, default_client: bool, plans: Dict[Tuple[str, ...], _Plan]) -> int:
    """Append to ``items`` a :class:`PushRun` for each run of pushes of the usual shape (of one
    markup) at the front of ``text`` (the bytes decoded with ``surrogateescape``); return how
    many characters they took, whitespace before each included.

    ``limit``: the most bytes one push may take (the stanza and tag limits);
    ``default_client``: the stream's default namespace is ``jabber:client``; ``plans``: the
    markups of this stream read so far, by markup (see :class:`_Plan`)."""
    pieces = text.split("</iq>")
    del pieces[-1]  # what follows the last "</iq>": no whole push
    if not pieces:
        return 0
    # The limit is in bytes, ``text`` in characters (of up to four bytes each).
    most = limit - 5
    longest = max(map(len, pieces))
    if longest > most // 4 and (longest > most or not text.isascii()):
        for index, piece in enumerate(pieces):
            if len(piece) > most // 4 and len(piece.encode("utf-8", "surrogateescape")) > most:
                del pieces[index:]  # a push that long is left to expat, which measures it
                break
    split = list(map(_SPLIT, pieces))
    markups = list(map(_MARKUP, split))
    count = len(pieces)
    pos = 0
    start = 0
    while start < count:
        markup = markups[start]
        plan = plans.get(tuple(markup))
        if plan is None:
            found = _precise(text, pos, default_client)
            piece = pieces[start]
            if found is None or found[1] != pos + len(piece) + 5:
                return pos
            if "'" not in piece and len(plans) < MAX_PLANS:
                plans[tuple(markup)] = _Plan(found[2])
                continue  # read by the plan, with those of the same markup after it
            items.append(found[0])
            pos = found[1]
            start += 1
            continue
        # The run: the pushes of this markup from here on, compared in C over growing windows
        # (so that short runs cost little and long ones few steps).
        stop = start + 1
        window = 8
        while stop < count:
            same = list(map(eq, markups[stop : stop + window], repeat(markup)))
            if False in same:
                stop += same.index(False)
                break
            stop += len(same)
            window = min(window * 4, 512)
        values = list(map(_VALUES, split[start:stop]))
        if _takes(plan, values):
            items.append(plan.read(values))
            pos += sum(map(len, pieces[start:stop])) + 5 * (stop - start)
            start = stop
            continue
        # Some value is not one the plan may take (rare): the whole run is read here, push by
        # push, those the plan may take together and each other one by the full pattern (which
        # refuses it, or takes it: a character it allows).  In one pass, so that no push is
        # compared or checked again after each such one (quadratic time).
        first = start
        for good, group in groupby([_takes(plan, values[index : index + 1]) for index in range(stop - start)]):
            size = len(list(group))
            if good:
                items.append(plan.read(values[start - first : start - first + size]))
                pos += sum(map(len, pieces[start : start + size])) + 5 * size
                start += size
            else:
                for _ in range(size):
                    found = _precise(text, pos, default_client)
                    if found is None or found[1] != pos + len(pieces[start]) + 5:
                        return pos
                    items.append(found[0])
                    pos = found[1]
                    start += 1
    return pos


def _takes(plan: _Plan, values: List[List[str]]) -> bool:
    """Whether the pushes whose values are ``values`` (of the plan's markup) are ones the plan
    may read: every value without "<" or "&", of printable characters only (so no control
    character, no tab or newline, which expat would make spaces, no invalid byte, which the
    decoding made a lone surrogate, and no U+FFFE or U+FFFF), and the fixed ones as they must be."""
    joined = "".join(chain.from_iterable(values))
    if "<" in joined or "&" in joined:
        return False
    if joined.isascii():  # (the common case, where a byte table is quicker than isprintable)
        ascii = joined.encode("ascii")
        if len(ascii.translate(None, _CONTROLS)) != len(ascii):
            return False
    elif not joined.isprintable():
        return False
    # As many values in each push as in the plan: one more (a stray quote, and text after it,
    # after the query) gives the same markup.  (Each push has at least that many.)
    count = len(values)
    return sum(map(len, values)) == count * plan.size and list(map(plan.fixed, values)).count(plan.expected) == count
