"""The reconnect policy: when to try again after a connection ends, and when to give up."""

from __future__ import annotations

import math
import random
from typing import Any, Callable, Optional

from .errors import AuthError, ConnectError, ConnectionLost, Error, LocalProtocolError, StreamError, Timeout, UsageError

__all__ = ["Reconnect", "is_network_failure"]

#: Stream error conditions that another attempt would only repeat (or turn into a storm:
#: ``conflict`` means another client took our resource; fighting back kicks it out in turn).
FATAL_STREAM_CONDITIONS = frozenset({"not-authorized", "conflict", "host-unknown", "policy-violation"})


def is_network_failure(error: BaseException) -> bool:
    """Whether a failed first connection is the network's doing (refused, unreachable, timed
    out, lost), so that ``connect(retry=True)`` tries again; a TLS or certificate failure, an
    authentication failure, a usage error or a protocol or stream error is not."""
    return isinstance(error, (ConnectError, Timeout, ConnectionLost))


class Reconnect:
    """Capped exponential backoff with full jitter, in the spirit of urllib3's ``Retry``.

    Attempt *n* (counting from 0) waits a random time between 0 and
    ``min(maximum, initial * multiplier ** n)`` seconds.  The attempt count starts again only
    after a session has stayed up for ``stable_after`` seconds, never on a bare TCP connect,
    so a server that accepts and then drops every session cannot cause a reconnect storm.
    ``max_attempts`` (None: no limit) caps consecutive failed attempts.  An
    :class:`~yaxmpp.AuthError` is never retried (a bad token stays bad), nor are stream
    errors whose condition another attempt would repeat (see :data:`FATAL_STREAM_CONDITIONS`).

    ``on_retry(error, attempt, delay)``, when set, is called for each attempt about to wait:
    ``error`` is what the previous attempt failed with (or what ended the session, before the
    first attempt), ``attempt`` the number of the attempt that follows the wait (from 1),
    ``delay`` the wait in seconds.  Like ``on_connect`` and ``on_disconnect`` it runs on the
    client's dispatcher thread, in order with them.  It also reports the retries of a first
    ``connect(retry=True)``.
    """

    __slots__ = ("initial", "maximum", "multiplier", "max_attempts", "stable_after", "on_retry", "_random")

    initial: float
    maximum: float
    multiplier: float
    max_attempts: Optional[int]
    stable_after: float
    on_retry: Optional[Callable[[Error, int, float], None]]
    _random: random.Random

    def __init__(
        self,
        initial: float = 1.0,
        maximum: float = 60.0,
        multiplier: float = 2.0,
        max_attempts: Optional[int] = None,
        stable_after: float = 60.0,
        rng: Optional[random.Random] = None,
        on_retry: Optional[Callable[[Error, int, float], None]] = None,
    ) -> None:
        for name, value in (("initial", initial), ("maximum", maximum), ("multiplier", multiplier), ("stable_after", stable_after)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or math.isinf(value):
                raise UsageError("%s must be a finite number" % name)
        if max_attempts is not None and (isinstance(max_attempts, bool) or not isinstance(max_attempts, int)):
            raise UsageError("max_attempts must be an integer or None")
        if initial < 0 or maximum < initial or multiplier < 1:
            raise UsageError("need 0 <= initial <= maximum and multiplier >= 1")
        if max_attempts is not None and max_attempts < 0:
            raise UsageError("max_attempts cannot be negative")
        if stable_after < 0:
            raise UsageError("stable_after cannot be negative")
        if on_retry is not None and not callable(on_retry):
            raise UsageError("on_retry must be callable or None")
        object.__setattr__(self, "initial", float(initial))
        object.__setattr__(self, "maximum", float(maximum))
        object.__setattr__(self, "multiplier", float(multiplier))
        object.__setattr__(self, "max_attempts", max_attempts)
        object.__setattr__(self, "stable_after", float(stable_after))
        object.__setattr__(self, "on_retry", on_retry)
        object.__setattr__(self, "_random", rng or random.Random())

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Reconnect is immutable")

    def cap(self, attempt: int) -> float:
        """The longest wait before attempt number ``attempt`` (0-based)."""
        try:
            return min(self.maximum, self.initial * self.multiplier**attempt)
        except OverflowError:
            return self.maximum

    def delay(self, attempt: int) -> float:
        """A wait before attempt ``attempt``: uniform in [0, cap(attempt)] ("full jitter")."""
        return self._random.uniform(0.0, self.cap(attempt))

    def gives_up(self, attempt: int, error: Optional[Error]) -> bool:
        """True when attempt ``attempt`` should not be made after ``error``."""
        if isinstance(error, (AuthError, LocalProtocolError, UsageError)):
            return True  # a bad token stays bad; a bug in the library would only repeat
        if isinstance(error, StreamError) and error.condition in FATAL_STREAM_CONDITIONS:
            return True
        return self.max_attempts is not None and attempt >= self.max_attempts

    def __repr__(self) -> str:
        return "Reconnect(initial=%g, maximum=%g, multiplier=%g, max_attempts=%r, stable_after=%g)" % (
            self.initial,
            self.maximum,
            self.multiplier,
            self.max_attempts,
            self.stable_after,
        )
