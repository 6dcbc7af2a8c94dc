"""Keeping the OAuth token out of logs, reprs and exception messages.

A hostile server can echo the token back anywhere: in an element name, a condition, an error
text, a stream id, an iq id.  Each client holds one :class:`Redactor` with its own secrets (the
core builds it from the SASL mechanism, see :meth:`Redactor.for_mechanism`); it masks them, whole
or in part, in text (:meth:`Redactor.scrub`) and in exceptions, their ``args`` included
(:meth:`Redactor.scrub_error`).

Log records are masked by one :class:`LogRedactor` filter on the yaxmpp loggers.  It applies the
redactor named by the record (``extra={"yaxmpp_redactor": redactor}``) and those bound to the
thread that logs (:func:`bound`)::

    with redact.bound(core.redactor):   # a driver's thread, for as long as it serves that client
        ...

Nothing here is global but that (empty) binding: a closed client's redactor goes with it.
"""

from __future__ import annotations

import base64
import contextvars
import logging
import re
import struct
import traceback
from typing import TYPE_CHECKING, Any, Callable, FrozenSet, Iterable, List, NoReturn, Optional, Set, Tuple, Type, TypeVar

if TYPE_CHECKING:  # pragma: no cover
    from types import TracebackType

    from .sasl import Mechanism

__all__ = [
    "Secret",
    "MASK",
    "MIN_SCRUB_LENGTH",
    "PIECE_LENGTH",
    "RECORD_ATTRIBUTE",
    "Redactor",
    "bound",
    "current",
    "scrub",
    "scrub_error",
    "LogRedactor",
    "install",
]

MASK = "***"


class Secret:
    """A string that never shows itself: its ``repr`` and ``str`` are a mask.

    Call :meth:`reveal` at the one place that needs the value (building the SASL payload).
    """

    __slots__ = ("_value",)

    def __init__(self, value: "str | Secret") -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str):
            raise TypeError("a token must be a str")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(%r)" % MASK

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled")


#: Secrets shorter than this are not searched for in text: masking a 1-character test token
#: would garble every line.  Real OAuth tokens are dozens of characters long.
MIN_SCRUB_LENGTH = 6

#: Any run of this many consecutive characters of a secret is masked wherever it appears (a
#: server may echo half of the token).  Secrets shorter than this (but of at least
#: :data:`MIN_SCRUB_LENGTH`) are masked where they appear whole.
PIECE_LENGTH = 8

#: The log record attribute that names the redactor for one record (``extra=``).
RECORD_ATTRIBUTE = "yaxmpp_redactor"

# Pieces are found in two passes.  The text is cut into 4-character chunks at offsets 0, 4,
# 8, ... and the chunks are looked up, all at once in C, in the set of every 4-character
# substring of the secrets: a run of 8 characters always covers one whole aligned chunk, so no
# hit means nothing to mask (the common case).  Around each hit, the 8-character windows are
# looked up in the set of the secrets' 8-character substrings.  A text that encodes to
# Latin-1 (nearly every log line) is chunked as the 32-bit words of its bytes (about 8 ns a
# character); any other text by a regular expression (about 20 ns a character).
_CHUNK = 4
_chunks: Callable[[str], List[str]] = re.compile(".{%d}" % _CHUNK, re.S).findall
_WORDS = struct.calcsize("I") == _CHUNK  # memoryview.cast("I") yields one word per chunk
_BLOCK = 4096  # texts are chunked this much at a time (a multiple of _CHUNK): bounded lists

E = TypeVar("E", bound=BaseException)


def _grams(text: str, size: int) -> Iterable[str]:
    return (text[i : i + size] for i in range(len(text) - size + 1))


def _words(secret: str) -> List[int]:
    """The 32-bit words that the 4-character substrings of ``secret`` are in a Latin-1
    text's bytes (those that are Latin-1: no other can appear in such a text)."""
    try:
        data = secret.encode("latin-1")
    except UnicodeEncodeError:
        return [w for quad in _grams(secret, _CHUNK) if max(quad) <= "\xff" for w in _words(quad)]
    words: List[int] = []
    for offset in range(_CHUNK):
        view = memoryview(data)[offset:]
        words += view[: len(view) - len(view) % _CHUNK].cast("I").tolist()
    return words


def _lower(text: str) -> str:
    """``text`` lower-cased, one character for one (``str.lower`` may lengthen a few
    non-ASCII letters, which would shift the offsets of what is masked)."""
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


def _masked(text: str, spans: List[List[int]]) -> str:
    """``text`` with the (possibly overlapping) ``spans`` replaced by :data:`MASK`."""
    if not spans:
        return text
    spans.sort()
    merged = [spans[0][:]]
    for start, end in spans[1:]:
        if start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1][1] = end
        else:
            merged.append([start, end])
    out = []
    position = 0
    for start, end in merged:
        out.append(text[position:start])
        out.append(MASK)
        position = end
    out.append(text[position:])
    return "".join(out)


def _base64_forms(secret: str) -> List[str]:
    """The encodings a server may echo ``secret`` in: its base64 and base64url text at each of
    the three alignments it can have inside a longer string (only the characters that depend
    on the secret alone), and its hex."""
    data = secret.encode("utf-8")
    forms = []
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + data).decode("ascii")
        start = -(-8 * pad // 6)  # the first character with no padding bit in it
        end = 8 * (pad + len(data)) // 6  # the last whole character of data bits
        forms.append(encoded[start:end])
        forms.append(encoded[start:end].replace("+", "-").replace("/", "_"))  # base64url
    forms.append(data.hex())  # any case: matching ignores it
    return forms


class Redactor:
    """One client's secrets, and the masking of them in text and exceptions.

    Every secret of at least :data:`PIECE_LENGTH` characters is masked wherever a run of that
    many of its consecutive characters appears; shorter ones (down to
    :data:`MIN_SCRUB_LENGTH`) where they appear whole; shorter still, not at all.  A pure
    object: no lock, no global state; its ``repr`` shows no secret and it does not pickle.
    """

    __slots__ = ("_whole", "_quads", "_words", "_pieces", "__weakref__")

    def __init__(self, secrets: Iterable["str | Secret"] = ()) -> None:
        whole: Set[str] = set()
        quads: Set[str] = set()
        words: Set[int] = set()
        pieces: Set[str] = set()
        for secret in secrets:
            if isinstance(secret, Secret):
                secret = secret.reveal()
            if not isinstance(secret, str):
                raise TypeError("a secret must be a str, not %s" % type(secret).__name__)
            secret = _lower(secret)  # matching ignores case: an echo may change it
            if len(secret) >= PIECE_LENGTH:
                quads.update(_grams(secret, _CHUNK))
                if _WORDS:
                    words.update(_words(secret))
                pieces.update(_grams(secret, PIECE_LENGTH))
            elif len(secret) >= MIN_SCRUB_LENGTH:
                whole.add(secret)
        # Longest first: a secret inside another must not break the longer one's match.
        self._whole: Tuple[str, ...] = tuple(sorted(whole, key=len, reverse=True))
        self._quads: FrozenSet[str] = frozenset(quads)
        self._words: FrozenSet[int] = frozenset(words)
        self._pieces: FrozenSet[str] = frozenset(pieces)

    @classmethod
    def with_encodings(cls, secrets: Iterable["str | Secret"]) -> "Redactor":
        """A redactor of ``secrets`` and of the encodings a server may echo them in (base64,
        base64url, hex; see :func:`_base64_forms`)."""
        raw = [s.reveal() if isinstance(s, Secret) else s for s in secrets if s]
        every = list(raw)
        for secret in raw:
            every += _base64_forms(secret)
        return cls(every)

    @classmethod
    def for_mechanism(cls, mechanism: "Mechanism") -> "Redactor":
        """The redactor of a SASL mechanism: its :meth:`~yaxmpp.Mechanism.secrets`, their
        base64 forms, and the base64 of its initial response (what goes on the wire)."""
        raw = [s.reveal() if isinstance(s, Secret) else s for s in mechanism.secrets() if s]
        secrets = list(raw)
        for secret in raw:
            secrets += _base64_forms(secret)
        initial = mechanism.initial_response()
        if initial:
            secrets.append(base64.b64encode(initial).decode("ascii"))
        return cls(secrets)

    def __bool__(self) -> bool:
        return bool(self._whole or self._pieces)

    def __repr__(self) -> str:
        return "<Redactor %s>" % ("active" if self else "empty")

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Redactor cannot be pickled")

    def scrub(self, text: str) -> str:
        """``text`` with every secret, and every piece of one, replaced by :data:`MASK`,
        whatever the case of their letters."""
        original = text
        text = _lower(text)
        spans: List[List[int]] = []
        for secret in self._whole:
            start = text.find(secret)
            while start >= 0:
                spans.append([start, start + len(secret)])
                start = text.find(secret, start + len(secret))
        quads = self._quads
        if not quads or len(text) < PIECE_LENGTH:
            return _masked(original, spans)
        n = len(text)
        hits: Optional[List[int]] = None
        data: Optional[memoryview] = None
        if _WORDS:
            try:
                data = memoryview(text.encode("latin-1"))
            except UnicodeEncodeError:
                pass
        if data is not None:
            words = self._words
            usable = n - n % _CHUNK
            for base in range(0, usable, _BLOCK):
                found = data[base : min(base + _BLOCK, usable)].cast("I").tolist()
                if not words.isdisjoint(found):
                    if hits is None:
                        hits = []
                    hits += [base + _CHUNK * k for k, word in enumerate(found) if word in words]
        else:
            for base in range(0, n, _BLOCK):
                chunks = _chunks(text[base : base + _BLOCK])
                if not quads.isdisjoint(chunks):
                    if hits is None:
                        hits = []
                    hits += [base + _CHUNK * k for k, chunk in enumerate(chunks) if chunk in quads]
        if hits is None:
            return _masked(original, spans)
        # Every window of PIECE_LENGTH that is a piece of a secret covers an aligned chunk
        # that is a hit, and starts at most PIECE_LENGTH - _CHUNK before it.
        pieces = self._pieces
        last = n - PIECE_LENGTH
        for hit in hits:
            for start in range(max(hit - (PIECE_LENGTH - _CHUNK), 0), min(hit, last) + 1):
                if text[start : start + PIECE_LENGTH] in pieces:
                    spans.append([start, start + PIECE_LENGTH])
        return _masked(original, spans)

    def scrub_error(self, error: E) -> E:
        """Mask this redactor's secrets in ``error``, in place, and return it: its ``args``
        (what ``repr`` shows and pickling rebuilds it from), its string attributes
        (``condition``, ``text``, ``other_host``, ``type``, ...), its notes, and the errors
        chained to it (``__cause__``, ``__context__``)."""
        if self:
            seen: Set[int] = set()
            todo: List[Optional[BaseException]] = [error]
            while todo and len(seen) < 64:
                current = todo.pop()
                if current is not None and id(current) not in seen:
                    seen.add(id(current))
                    self._scrub_one(current)
                    todo += (current.__cause__, current.__context__)
        return error

    def _scrub_one(self, error: BaseException) -> None:
        scrub = self.scrub
        args = error.args
        cleaned = tuple(scrub(a) if isinstance(a, str) else a for a in args)
        if cleaned != args:
            try:
                error.args = cleaned
            except (AttributeError, TypeError):  # pragma: no cover - exotic exception types
                pass
        attributes = getattr(error, "__dict__", None)
        if attributes:
            for name, value in list(attributes.items()):
                if isinstance(value, str):
                    masked = scrub(value)
                    if masked != value:
                        attributes[name] = masked
                elif name == "__notes__" and isinstance(value, list):
                    value[:] = [scrub(v) if isinstance(v, str) else v for v in value]


# The redactors bound to the running thread (or task), innermost last.  A context variable
# rather than a thread-local: every thread starts with it empty, and it holds a redactor only
# while a ``with bound(...)`` block runs.
_bound: "contextvars.ContextVar[Tuple[Redactor, ...]]" = contextvars.ContextVar("yaxmpp_redactors", default=())


class bound:
    """``with bound(redactor):`` -- log records made on this thread inside the block are
    masked with ``redactor`` (and with those of enclosing blocks).  Nests; ``None`` binds
    nothing."""

    __slots__ = ("_redactor", "_token")

    def __init__(self, redactor: Optional[Redactor]) -> None:
        self._redactor = redactor
        self._token: "Optional[contextvars.Token[Tuple[Redactor, ...]]]" = None

    def __enter__(self) -> Optional[Redactor]:
        redactor = self._redactor
        if redactor is not None:
            chain = _bound.get()
            if redactor not in chain:
                self._token = _bound.set(chain + (redactor,))
        return redactor

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: "Optional[TracebackType]",
    ) -> None:
        token, self._token = self._token, None
        if token is not None:
            _bound.reset(token)


def current() -> Optional[Redactor]:
    """The innermost redactor bound to this thread, if any."""
    chain = _bound.get()
    return chain[-1] if chain else None


def _applicable(redactor: Optional[Redactor]) -> Tuple[Redactor, ...]:
    chain = _bound.get()
    if redactor is None or redactor in chain:
        return chain
    return chain + (redactor,)


def scrub(text: str, redactor: Optional[Redactor] = None) -> str:
    """``text`` masked with ``redactor`` and every redactor bound to this thread."""
    for r in _applicable(redactor):
        text = r.scrub(text)
    return text


def scrub_error(error: E, redactor: Optional[Redactor] = None) -> E:
    """``error`` masked in place (see :meth:`Redactor.scrub_error`) with ``redactor`` and
    every redactor bound to this thread; returns it."""
    for r in _applicable(redactor):
        r.scrub_error(error)
    return error


_format_exception = logging.Formatter().formatException


class LogRedactor(logging.Filter):
    """A logging filter that masks the secrets of the redactors that apply to a record: the
    one named by its ``yaxmpp_redactor`` attribute and those bound to the thread that logs.

    It masks the message, and renders the traceback (``exc_info``) itself: the masked text
    goes to ``record.exc_text`` and ``exc_info`` is cleared, so that no handler renders the
    original.  ``stack_info`` is masked too.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        # The record's own redactor is dropped from it: a kept record keeps no secret alive.
        redactors = _applicable(record.__dict__.pop(RECORD_ATTRIBUTE, None))
        if not redactors:
            return True

        def clean(text: str) -> str:
            for r in redactors:
                text = r.scrub(text)
            return text

        try:
            message = record.getMessage()
        except Exception:  # a broken format: never let logging print the raw arguments
            message = "%s %% %s" % (record.msg, _safe_repr(record.args))
            record.msg, record.args = clean(message), ()
        else:
            cleaned = clean(message)
            if cleaned != message:
                record.msg, record.args = cleaned, ()
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = _render(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = clean(record.exc_text)
        if record.stack_info:
            record.stack_info = clean(record.stack_info)
        return True


def _render(exc_info: Any) -> str:
    try:
        return _format_exception(exc_info)
    except Exception:  # pragma: no cover - a traceback that cannot be rendered
        return "".join(traceback.format_exception_only(exc_info[0], exc_info[1]))


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:
        return "<unprintable>"


_filter = LogRedactor()


def install(*names: str) -> None:
    """Put the (one) :class:`LogRedactor` on the named loggers, once each."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, LogRedactor) for f in logger.filters):
            logger.addFilter(_filter)
