"""A cancellation signal that blocking calls can wait on, and bounded waits on sockets.

:class:`Cancel` is set once, from any thread (``Client.close()`` during a ``connect()``).  A
thread blocked in name resolution waits on it and on the resolver together (see
:meth:`Cancel.on_cancel`); a thread blocked in a TCP connect waits on the socket and on the
cancel's file descriptor together (see :func:`wait_socket`).  Nothing polls.
"""

from __future__ import annotations

import math
import select
import socket
import threading
import time
from typing import Callable, List, Optional, Tuple

__all__ = ["Cancel", "wait_socket", "MAX_WAIT"]

#: The longest single wait handed to the OS (poll() takes a C int of milliseconds, Windows
#: thread waits about 49 days); longer waits are done in several steps.
MAX_WAIT = min(86400.0, threading.TIMEOUT_MAX)


class Cancel:
    """A one-way switch: :meth:`cancel` sets it for good; blocking calls given it stop early.

    :meth:`fileno` makes it selectable: its descriptor is readable once cancelled.  The
    descriptor (one end of a socket pair) is only made when first asked for, and
    :meth:`close` releases it (a later :meth:`fileno` makes a new one); :meth:`cancel` and
    :attr:`cancelled` work all along.  :func:`~yaxmpp.dial.dial` closes it when done with it.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._pair: Optional[Tuple[socket.socket, socket.socket]] = None
        self._callbacks: List[Callable[[], None]] = []

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self) -> None:
        """Set the switch (idempotent, from any thread); wakes every waiter."""
        with self._lock:
            if self._event.is_set():
                return
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
            if self._pair is not None:
                self._poke(self._pair[1])
        for callback in callbacks:
            callback()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait until cancelled, at most ``timeout`` seconds (None: for ever); True if cancelled."""
        end = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        while True:
            left = MAX_WAIT if end is None else min(end - time.monotonic(), MAX_WAIT)
            if self._event.wait(max(left, 0.0)):
                return True
            if end is not None and time.monotonic() >= end:
                return False

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback()`` when cancelled (at once, here, if already cancelled); returns a
        function that unregisters it.  The callback runs on the cancelling thread and must
        return at once (e.g. set an :class:`threading.Event`)."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)

                def remove() -> None:
                    with self._lock:
                        if callback in self._callbacks:
                            self._callbacks.remove(callback)

                return remove
        callback()
        return lambda: None

    def fileno(self) -> int:
        """A descriptor that is readable once cancelled (made on first use, valid until
        :meth:`close`)."""
        with self._lock:
            if self._pair is None:
                reader, writer = socket.socketpair()
                reader.setblocking(False)
                writer.setblocking(False)
                self._pair = (reader, writer)
                if self._event.is_set():
                    self._poke(writer)
            return self._pair[0].fileno()

    @staticmethod
    def _poke(writer: socket.socket) -> None:
        try:
            writer.send(b"x")
        except OSError:  # pragma: no cover - one byte into an empty socket pair
            pass

    def close(self) -> None:
        """Release the descriptor, if one was made (idempotent).  The switch itself still
        works.  Only for the thread that uses the descriptor, once it no longer waits on it."""
        with self._lock:
            pair, self._pair = self._pair, None
        if pair is not None:
            for sock in pair:
                sock.close()

    def __del__(self) -> None:
        pair = getattr(self, "_pair", None)
        if pair is not None:
            for sock in pair:
                sock.close()

    def __enter__(self) -> "Cancel":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return "<Cancel %s>" % ("cancelled" if self.cancelled else "armed")


def _milliseconds(timeout: Optional[float]) -> Optional[int]:
    if timeout is None:
        return None
    return math.ceil(min(max(timeout, 0.0), MAX_WAIT) * 1000)


if hasattr(select, "poll"):

    def _wait(fd: int, write: bool, timeout: Optional[float], cancel_fd: int) -> Tuple[bool, bool]:
        poller = select.poll()
        poller.register(fd, select.POLLOUT if write else select.POLLIN)
        if cancel_fd >= 0:
            poller.register(cancel_fd, select.POLLIN)
        ready = poller.poll(_milliseconds(timeout))
        return any(f == fd for f, _ in ready), any(f == cancel_fd for f, _ in ready)

else:  # pragma: no cover - Windows

    def _wait(fd: int, write: bool, timeout: Optional[float], cancel_fd: int) -> Tuple[bool, bool]:
        reads = [cancel_fd] if cancel_fd >= 0 else []
        if not write:
            reads.append(fd)
        wait = None if timeout is None else min(max(timeout, 0.0), MAX_WAIT)
        readable, writable, failed = select.select(reads, [fd] if write else [], [fd], wait)
        return fd in readable or fd in writable or fd in failed, cancel_fd in readable


def wait_socket(sock: socket.socket, write: bool, timeout: Optional[float], cancel: Optional[Cancel] = None) -> bool:
    """Wait until ``sock`` is readable (``write``: writable), or has an error or hung up, for at
    most ``timeout`` seconds (None: no limit; very long waits may return False early, so
    callers loop on their deadline).  True when ready, False when the time is up or
    ``cancel`` was set.  OSError if the socket is closed."""
    fd = sock.fileno()
    if fd < 0:
        raise OSError(9, "the socket is closed")  # EBADF; poll() would ignore it and sleep
    cancel_fd = -1
    if cancel is not None:
        if cancel.cancelled:
            return False
        cancel_fd = cancel.fileno()
    ready, cancelled = _wait(fd, write, timeout, cancel_fd)
    return ready and not cancelled
