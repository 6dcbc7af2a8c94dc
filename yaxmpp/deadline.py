"""A point in time after which a blocking operation gives up (monotonic clock)."""

from __future__ import annotations

import time
from typing import Optional

__all__ = ["Deadline", "MAX_TIMEOUT"]

#: The longest timeout accepted anywhere (ten years): longer waits overflow the platform's
#: socket and lock timeouts.
MAX_TIMEOUT = 10 * 365 * 24 * 3600


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
