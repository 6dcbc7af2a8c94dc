"""The bounded queue of notifications between the reader thread and the consumer.

The reader thread never waits on it: when it is full, :meth:`Inbox.put_many` takes what fits
and reports the rest as refused, and the reader answers those pushes with an error instead of
an acknowledgement.  So a consumer that stops consuming costs bounded memory, never delays a
ping reply, and never makes an acknowledged push disappear.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Deque, Generic, Iterable, Optional, TypeVar

from .deadline import Deadline
from .errors import ClientClosed, Error, Timeout

__all__ = ["Inbox"]

T = TypeVar("T")


class Inbox(Generic[T]):
    """FIFO with a bound, an end, and the reason for the end."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self._items: Deque[T] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._ended = False
        self._error: Optional[Error] = None
        self.refused = 0  # items that did not fit, over the inbox's life

    def __len__(self) -> int:
        return len(self._items)

    def put_many(self, items: Iterable[T]) -> int:
        """Append what fits, in order; return how many were taken (the rest were refused)."""
        taken = 0
        with self._cond:
            queue = self._items
            room = self.maxsize - len(queue)
            for item in items:
                if taken >= room:
                    self.refused += 1
                    continue
                queue.append(item)
                taken += 1
            if taken:
                self._cond.notify_all()
        return taken

    def put_control(self, item: T) -> None:
        """Append ``item`` whatever the bound (a few control items, never notifications)."""
        with self._cond:
            self._items.append(item)
            self._cond.notify_all()

    def get(self, timeout: Optional[float] = None) -> T:
        """The next item.  Raises :class:`~yaxmpp.Timeout` when ``timeout`` passes first; once
        the inbox has ended and is empty, raises the reason it ended (``ClientClosed`` when
        the client was closed)."""
        with self._cond:
            if self._items:  # the common case when the consumer keeps up, made cheap
                return self._items.popleft()
            deadline = Deadline(timeout)
            while not self._items:
                if self._ended:
                    error = self._error
                    if error is None:
                        raise ClientClosed("the client was closed")
                    raise error.with_traceback(None)
                if not self._cond.wait(deadline.remaining()):
                    if not self._items and not self._ended:
                        raise Timeout("no notification within %gs" % timeout)  # type: ignore[str-format]
            return self._items.popleft()

    def end(self, error: Optional[Error]) -> None:
        """No more items will come: after the queued ones, ``get`` raises ``error`` (or
        ``ClientClosed`` when it is None)."""
        with self._cond:
            if not self._ended:
                self._ended = True
                self._error = error
            self._cond.notify_all()

    def reopen(self) -> None:
        """Accept items again (a new connection); queued items stay."""
        with self._cond:
            self._ended = False
            self._error = None

    @property
    def ended(self) -> bool:
        return self._ended
