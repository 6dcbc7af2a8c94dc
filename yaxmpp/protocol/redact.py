"""Keeping the OAuth token out of logs, reprs and exception messages."""

from __future__ import annotations

from typing import Iterable

__all__ = ["Secret", "MASK", "scrub"]

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
