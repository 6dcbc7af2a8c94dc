"""The thread that runs the user's ``on_notification`` callback, away from the reader.

A callback that blocks for minutes delays only the notifications after it, never the reader
thread and so never a ping reply.  An exception in a callback is logged and the next
notification is delivered as usual.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Optional

from .errors import Error
from .inbox import Inbox

__all__ = ["Dispatcher"]

log = logging.getLogger("yaxmpp")


class Dispatcher:
    """Takes items from an inbox in order and calls ``callback`` with each, until it ends."""

    def __init__(self, inbox: Inbox, callback: Callable[[Any], None], name: str) -> None:
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
                self.callback(item)
            except Exception:
                log.exception("on_notification raised; the connection goes on")

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def join(self, timeout: Optional[float]) -> bool:
        """Wait for the thread to finish (never from the thread itself); True if it did."""
        if self.thread is threading.current_thread():
            return False
        self.thread.join(timeout)
        if self.thread.is_alive():
            log.warning("on_notification is still running after close(); it will stop when it returns")
            return False
        return True
