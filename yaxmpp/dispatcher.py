"""The thread that runs the user's callbacks, away from the reader.

``on_notification``, ``on_connect`` and ``on_disconnect`` all run here, one at a time, in the
order their events happened.  A callback that blocks for minutes delays only the callbacks
after it, never the reader thread and so never a ping reply.  An exception in a callback is
logged and the next callback runs as usual.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Optional

from .errors import Error
from .inbox import Inbox

__all__ = ["Dispatcher", "Call"]

log = logging.getLogger("yaxmpp")


class Call:
    """A queued callback invocation (``on_connect``, ``on_disconnect``)."""

    __slots__ = ("function", "args")

    def __init__(self, function: Callable[..., Any], *args: Any) -> None:
        self.function = function
        self.args = args


class Dispatcher:
    """Takes items from an inbox in order, until it ends: a :class:`Call` is made as it is,
    anything else is passed to ``callback``."""

    def __init__(self, inbox: Inbox, callback: Optional[Callable[[Any], None]], name: str) -> None:
        self.inbox = inbox
        self.callback = callback
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                item = self.inbox.get()
            except Error:
                return  # the inbox ended: closed, or the connection is gone
            try:
                if type(item) is Call:
                    item.function(*item.args)
                elif self.callback is not None:
                    self.callback(item)
            except Exception:
                log.exception("a callback raised; the connection goes on")

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def join(self, timeout: Optional[float]) -> bool:
        """Wait for the thread to finish (never from the thread itself); True if it did."""
        if self.thread is threading.current_thread() or self.thread.ident is None:
            return False
        self.thread.join(timeout)
        if self.thread.is_alive():
            log.warning("a callback is still running after close(); its thread ends when it returns")
            return False
        return True
