"""A point in time after which a blocking operation gives up (monotonic clock), and the check
that a timeout given by the caller is one the library can wait for."""

from __future__ import annotations

import math
import numbers
import threading
import time
from typing import Optional

from .errors import UsageError

__all__ = ["Deadline", "check_timeout", "MAX_TIMEOUT"]

#: The longest timeout accepted: ten years, or less where the platform's thread waits cannot
#: take that much (``threading.TIMEOUT_MAX`` is about 49 days on Windows).  Anything this long
#: still fits ``socket.settimeout`` and every thread wait; use None to wait without limit.
MAX_TIMEOUT = min(10 * 365 * 86400.0, threading.TIMEOUT_MAX)


def check_timeout(name: str, value: object, *, allow_none: bool) -> Optional[float]:
    """``value`` as a float number of seconds, or :class:`~yaxmpp.UsageError` saying what is
    wrong with it: not a number (booleans are refused too), NaN, zero or negative, infinite, or
    more than :data:`MAX_TIMEOUT`.  ``None`` is returned as is when ``allow_none``.

    ``name`` is the argument's name, for the message (e.g. ``"timeout"``).
    """
    if type(value) is float and 0.0 < value <= MAX_TIMEOUT:
        return value  # the usual case, in one test (NaN fails it, infinity too)
    if value is None:
        if allow_none:
            return None
        raise UsageError("%s must be a number of seconds, not None" % name)
    if type(value) is not float and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
        raise UsageError("%s must be a number of seconds, not %s" % (name, type(value).__name__))
    try:
        seconds = float(value)
    except (OverflowError, ValueError):  # e.g. an int too large for a float
        raise UsageError("%s is too large: at most %g seconds" % (name, MAX_TIMEOUT)) from None
    if math.isnan(seconds):
        raise UsageError("%s must be a number of seconds, not NaN" % name)
    if seconds <= 0:
        raise UsageError("%s must be more than 0 seconds" % name + (" (or None for no limit)" if allow_none else ""))
    if math.isinf(seconds):
        raise UsageError("%s must be a finite number of seconds" % name + ("; use None for no limit" if allow_none else ""))
    if seconds > MAX_TIMEOUT:
        hint = "; use None for no limit" if allow_none else ""
        raise UsageError("%s is too large: at most %g seconds%s" % (name, MAX_TIMEOUT, hint))
    return seconds


class Deadline:
    """``Deadline(30)`` expires 30 s from now; ``Deadline(None)`` never does."""

    __slots__ = ("seconds", "_at")

    def __init__(self, seconds: Optional[float]) -> None:
        if seconds is not None and seconds < 0:
            raise ValueError("a timeout cannot be negative")
        self.seconds = seconds
        self._at = None if seconds is None else time.monotonic() + seconds

    def remaining(self) -> Optional[float]:
        """Seconds left (never negative), or ``None`` for no limit."""
        if self._at is None:
            return None
        return max(0.0, self._at - time.monotonic())

    @property
    def expired(self) -> bool:
        return self._at is not None and time.monotonic() >= self._at

    def __repr__(self) -> str:
        return "Deadline(remaining=%r)" % (self.remaining(),)
