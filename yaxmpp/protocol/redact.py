"""Keeping the OAuth token out of logs, reprs and exception messages."""

from __future__ import annotations

import logging
import threading
from typing import Iterable, Set, TypeVar

__all__ = ["Secret", "MASK", "scrub", "register", "scrub_known", "scrub_error", "LogRedactor"]

MASK = "***"


class Secret:
    """A string that never shows itself: its ``repr`` and ``str`` are a mask.

    Call :meth:`reveal` at the one place that needs the value (building the SASL payload).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
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

    def __reduce__(self) -> object:
        raise TypeError("a Secret cannot be pickled")


#: Secrets shorter than this are not searched for in text: masking a 1-character test token
#: would garble every line.  Real OAuth tokens are dozens of characters long.
MIN_SCRUB_LENGTH = 6


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret replaced by a mask."""
    for secret in secrets:
        if len(secret) >= MIN_SCRUB_LENGTH and secret in text:
            text = text.replace(secret, MASK)
    return text


# Every secret a mechanism holds is registered here, so that text from anywhere (a hostile
# server can echo the token back in an element name, a stream id, an error text) is masked
# before it reaches a log line or an exception message.
_known: Set[str] = set()
_known_lock = threading.Lock()


def register(*secrets: str) -> None:
    """Remember secrets to mask wherever yaxmpp writes text."""
    with _known_lock:
        _known.update(s for s in secrets if len(s) >= MIN_SCRUB_LENGTH)


def scrub_known(text: str) -> str:
    """``text`` with every registered secret masked."""
    if not _known:
        return text
    return scrub(text, tuple(_known))


E = TypeVar("E", bound=BaseException)


def scrub_error(error: E) -> E:
    """Mask registered secrets in an exception's message and text attributes, in place."""
    if not _known:
        return error
    error.args = tuple(scrub_known(a) if isinstance(a, str) else a for a in error.args)
    for name in ("condition", "text", "other_host"):
        value = getattr(error, name, None)
        if isinstance(value, str):
            setattr(error, name, scrub_known(value))
    return error


class LogRedactor(logging.Filter):
    """A logging filter that masks registered secrets in every record it passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _known:
            message = record.getMessage()
            cleaned = scrub_known(message)
            if cleaned != message:
                record.msg, record.args = cleaned, ()
        return True
