"""The reconnect loop: one thread per client that brings the session back after it ends.

It waits (without polling) for the current connection to end, then, per the
:class:`~yaxmpp.Reconnect` policy, waits a jittered backoff and connects again, iteratively,
until it succeeds, the policy gives up, or the client is closed.  ``close()`` during a
backoff wait returns at once.  A ``see-other-host`` stream error is followed right away.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Optional

from .errors import ClientClosed, Error, StreamError
from .policy import Reconnect

if TYPE_CHECKING:  # pragma: no cover
    from .client import Client
    from .connection import Connection

__all__ = ["Supervisor"]

log = logging.getLogger("yaxmpp")


class Supervisor:
    def __init__(self, client: "Client", policy: Reconnect, connection: "Connection", name: str) -> None:
        self.client = client
        self.policy = policy
        self._connection = connection
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Ask the loop to end; a backoff wait in progress returns at once."""
        self._stop.set()

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def join(self, timeout: Optional[float]) -> None:
        """Wait for the loop to end (not from itself; nothing to wait for if never started)."""
        if self.thread is not threading.current_thread() and self.thread.ident is not None:
            self.thread.join(timeout)

    def _run(self) -> None:
        policy, client = self.policy, self.client
        connection = self._connection
        attempt = 0
        try:
            while True:
                connection.wait_ended()
                if self._stop.is_set():
                    return
                error: Optional[Error] = connection.end_error
                if connection.uptime() >= policy.stable_after:
                    attempt = 0  # only a session that stayed up resets the count
                redirect = error.other_host if isinstance(error, StreamError) else None
                while True:
                    if redirect is None and policy.gives_up(attempt, error):
                        log.warning("not reconnecting after: %s", error)
                        client._give_up(error)
                        return
                    delay = 0.0 if redirect is not None else policy.delay(attempt)
                    if redirect is None:
                        attempt += 1
                    log.info("reconnecting in %.2fs (attempt %d) after: %s", delay, attempt, error)
                    if self._stop.wait(delay):
                        return
                    try:
                        connection = client._reopen(redirect)
                        break
                    except ClientClosed:
                        return
                    except Error as exc:
                        log.warning("reconnect attempt %d failed: %s", attempt, exc)
                        error = exc
                        redirect = exc.other_host if isinstance(exc, StreamError) else None
        except BaseException:  # a bug must not end reconnection silently
            log.exception("the reconnect loop failed")
            client._give_up(ClientClosed("the reconnect loop failed; see the log"))
