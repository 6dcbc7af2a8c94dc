"""Delivery: how received notifications and lifecycle callbacks reach the user.

One :class:`Delivery` per client holds the bounded queue between the reader thread and the
consumer, and, when callbacks are set, the dispatcher thread (``yaxmpp-dispatch-N``) that runs
them, one at a time, in the order their events happened.

- The reader thread never waits here: when ``max_pending`` notifications are already queued,
  :meth:`Delivery.put_notifications` takes what fits and reports the rest as refused (the
  reader answers those pushes with an error instead of an acknowledgement).  Control items
  (``on_connect`` and ``on_disconnect`` calls) never count against that bound.
- Pull (``notifications()``, ``get_notification()``) and callback (``on_notification``)
  delivery read the same queue; when the queue has ended and is empty, a reader learns why:
  the error that ended the client, or :class:`~yaxmpp.ClientClosed` after ``close()``.
- A callback that raises is logged and the next one runs; a callback that blocks delays only
  the callbacks after it, never the reader thread.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any, Callable, Deque, Iterable, List, Optional

from .deadline import Deadline
from .errors import ClientClosed, Error, Timeout
from .protocol.disk import compact_notifications

__all__ = ["Delivery", "Call"]

#: Queued notifications past which new ones are compacted (see compact_notifications).
COMPACT_BACKLOG = 512

log = logging.getLogger("yaxmpp")


class Call:
    """A queued lifecycle callback (``on_connect``, ``on_disconnect``)."""

    __slots__ = ("function", "args")

    def __init__(self, function: Callable[..., Any], *args: Any) -> None:
        self.function = function
        self.args = args


class Delivery:
    """The notification queue, its end, and the dispatcher thread."""

    def __init__(self, max_pending: int, on_notification: Optional[Callable[[Any], None]], callbacks: bool, name: str) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self.max_pending = max_pending
        self._on_notification = on_notification
        self._callbacks = callbacks  # some callback is set: a dispatcher thread is needed
        self._name = name
        self._queue: Deque[Any] = deque()  # notifications (and, with on_notification, calls)
        self._calls: Deque[Call] = deque()  # calls, when notifications are pulled
        self._queued_calls = 0  # the calls in _queue (with on_notification only)
        self._held: Optional[List[Any]] = None  # notifications kept back until release()
        self._lock = threading.Lock()  # (taken directly on the hot paths: no Python frame)
        self._cond = threading.Condition(self._lock)
        self._ended = True  # until the client first connects
        self._opened = False
        self._error: Optional[Error] = None
        self._thread: Optional[threading.Thread] = None
        self.refused = 0  # notifications that did not fit, over the client's life

    # How many notifications wait (``len(delivery)``, what ``max_pending`` bounds) is not kept
    # in a counter: the consumer takes from ``_queue`` without the lock (see :meth:`take`), so
    # it could not update one.  It is what ``_queue`` holds (notifications and resync items;
    # with ``on_notification``, calls too, counted by ``_queued_calls``) plus what ``_held``
    # holds.  Under the lock, only takes can change it meanwhile, and they only lower it: a
    # count read under the lock is never too low, so ``max_pending`` is never exceeded.

    # -- the reader's side ---------------------------------------------------------------

    def put_notifications(self, items: Iterable[Any]) -> int:
        """Queue what fits, in order; return how many were taken (the rest were refused).
        While held (:meth:`hold`), what is taken waits aside, still counted."""
        batch = items if isinstance(items, list) else list(items)
        queue = self._queue
        held = self._held
        if len(queue) - self._queued_calls + (len(held) if held else 0) >= COMPACT_BACKLOG:
            compact_notifications(batch)  # the consumer lags: keep the backlog cheap for the GC
        with self._lock:
            held = self._held
            pending = len(queue) - self._queued_calls + (len(held) if held else 0)
            taken = min(max(self.max_pending - pending, 0), len(batch))
            if taken:
                (queue if held is None else held).extend(batch if taken == len(batch) else batch[:taken])
                self._cond.notify_all()
            self.refused += len(batch) - taken
        return taken

    def put_call(self, function: Optional[Callable[..., Any]], *args: Any) -> None:
        """Queue a lifecycle callback for the dispatcher thread (nothing if ``function`` is None)."""
        if function is None:
            return
        with self._cond:
            if self._on_notification is not None:
                self._queue.append(Call(function, *args))  # in order with the notifications
                self._queued_calls += 1
            else:
                self._calls.append(Call(function, *args))
            self._cond.notify_all()

    def hold(self) -> None:
        """Keep the notifications queued from now on aside (taken and counted as usual, so
        they are acknowledged and bounded) until :meth:`release`: what must come first in the
        stream is not known yet.  Lifecycle calls are not held."""
        with self._cond:
            if self._held is None:
                self._held = []

    def release(self, lead: Optional[Callable[[Any], Any]] = None) -> None:
        """Queue the item ``lead(first held item or None)`` builds (never refused, counted
        like a notification; built under the lock, so nothing is held meanwhile), then what
        was held, in order; stop holding."""
        with self._cond:
            held, self._held = self._held, None
            first = lead(held[0] if held else None) if lead is not None else None
            if first is not None:
                self._queue.append(first)
            if held:
                self._queue.extend(held)
            self._cond.notify_all()

    def end(self, error: Optional[Error]) -> None:
        """Nothing more will be queued: once the queue is drained, readers get ``error``
        (``ClientClosed`` when None).  The first end wins until :meth:`reopen`.  What was
        held is queued first (it was acknowledged)."""
        with self._cond:
            held, self._held = self._held, None
            if held:
                self._queue.extend(held)
            if not self._ended:
                self._ended = True
                self._error = error
            self._cond.notify_all()

    def reopen(self) -> None:
        """Accept items again (the client connects anew); what is queued stays."""
        with self._cond:
            self._ended = False
            self._opened = True
            self._error = None

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def error(self) -> Optional[Error]:
        """What ended delivery (None while running, or after ``close()``)."""
        return self._error

    def __len__(self) -> int:
        with self._lock:  # _queue and _queued_calls agree (takes may lower it meanwhile)
            held = self._held
            return len(self._queue) - self._queued_calls + (len(held) if held else 0)

    # -- the consumer's side -------------------------------------------------------------

    def take(self, timeout: Optional[float]) -> Any:
        """The next notification, or None when ``timeout`` passed first.  Once ended and
        drained, raises what ended it (``ClientClosed`` after ``close()``).

        For pull delivery only (the dispatcher takes the calls and notifications itself)."""
        queue = self._queue
        if queue:  # the common case when the consumer keeps up: no lock (popleft is atomic)
            try:
                return queue.popleft()
            except IndexError:  # another consumer took it first: wait below
                pass
        with self._lock:  # every put appends and notifies under it: no wakeup is missed
            deadline = None
            while True:
                if queue:  # consumers outside the lock may still take it first
                    try:
                        return queue.popleft()
                    except IndexError:
                        pass
                if self._ended:
                    raise self._end_error()
                if deadline is None:
                    deadline = Deadline(timeout)
                remaining = deadline.remaining()
                if remaining is not None and remaining <= 0.0:
                    return None
                self._cond.wait(remaining)

    def get(self, timeout: Optional[float]) -> Any:
        """Like :meth:`take`, but a passed ``timeout`` raises :class:`~yaxmpp.Timeout`."""
        item = self.take(timeout)
        if item is None:
            raise Timeout("no notification within %gs" % (timeout or 0.0), "waiting for a notification")
        return item

    def _end_error(self) -> Error:
        error = self._error
        if error is None:
            return ClientClosed("the client was closed" if self._opened else "the client is not connected")
        return error.with_traceback(None)

    # -- the dispatcher thread -------------------------------------------------------------

    def start(self) -> None:
        """Start the dispatcher thread if callbacks are set and it is not running."""
        if not self._callbacks:
            return
        thread = self._thread
        if thread is not None and thread.is_alive():
            return
        self._thread = threading.Thread(target=self._dispatch, name=self._name, daemon=True)
        self._thread.start()

    @property
    def on_dispatcher_thread(self) -> bool:
        """Whether the caller is the dispatcher thread (a callback is running)."""
        return self._thread is not None and self._thread is threading.current_thread()

    def join(self, timeout: Optional[float]) -> bool:
        """Wait for the dispatcher to finish (never from itself); True if it did."""
        thread = self._thread
        if thread is None or thread is threading.current_thread() or thread.ident is None:
            return thread is None
        thread.join(timeout)
        if thread.is_alive():
            log.warning("a callback is still running after close(); its thread ends when it returns")
            return False
        return True

    def _next_for_dispatcher(self) -> Any:
        """The next item for the dispatcher; None once ended and drained."""
        with self._cond:
            queue = self._queue if self._on_notification is not None else self._calls
            while not queue:
                if self._ended:
                    return None
                self._cond.wait()
            item = queue.popleft()
            if type(item) is Call and queue is self._queue:
                self._queued_calls -= 1
            return item

    def _dispatch(self) -> None:
        callback = self._on_notification
        while True:
            item = self._next_for_dispatcher()
            if item is None:
                return
            try:
                if type(item) is Call:
                    item.function(*item.args)
                elif callback is not None:
                    callback(item)
            except Exception:
                log.exception("a callback raised; the client goes on")
