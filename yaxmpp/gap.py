"""The gap between two sessions: the revision requests made when each session starts, and
the :class:`~yaxmpp.Resync` a reconnect puts into the stream once they have answered.

:mod:`yaxmpp.session` owns when these happen (the lifecycle); this module holds what they are.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Optional

from .cancel import Cancel
from .diskapi import disk_info
from .errors import ClientClosed, Error
from .options import Options
from .protocol.redact import Redactor
from .resync import Resync

__all__ = ["Probe", "Gap"]

log = logging.getLogger("yaxmpp")


class Probe:
    """One revision request (``GET /v1/disk/``) made when a session starts, on its own thread."""

    __slots__ = ("thread", "cancel", "done", "revision")

    def __init__(self) -> None:
        self.thread: Optional[threading.Thread] = None
        self.cancel = Cancel()
        self.done = threading.Event()
        self.revision: Optional[int] = None  # set before ``done``; None when it failed

    @property
    def known(self) -> Optional[int]:
        return self.revision if self.done.is_set() else None

    def run(self, options: Options) -> None:
        """Ask (on the calling thread, bounded by ``api_timeout``); a failure is logged and
        leaves ``revision`` None.  Does not set ``done``: the caller does, then reacts."""
        try:
            assert options.token is not None  # Options requires a str token for the check
            info = disk_info(options.token, api_url=options.api_url, timeout=options.api_timeout, cafile=options.cafile, cancel=self.cancel)
        except ClientClosed:
            pass
        except Error as exc:
            log.warning("could not get the disk's revision: %s", exc)
        except Exception:
            log.exception("the revision check failed inside the library")
        else:
            self.revision = info.revision
            log.info("the disk's revision is %s", info.revision)


class Gap:
    """The resync of one reconnect, until it goes into the stream."""

    __slots__ = ("since", "until", "error", "before", "after")

    def __init__(self, since: float, until: float, error: Error, before: Optional[Probe], after: Optional[Probe]) -> None:
        self.since = since
        self.until = until
        self.error = error
        self.before = before  # the revision request of the session that was lost
        self.after = after  # the new session's

    @property
    def answered(self) -> bool:
        """Whether every revision request it depends on has ended."""
        return all(probe is None or probe.done.is_set() for probe in (self.before, self.after))

    def resync(self, redactor: Redactor, checked: bool, first: Any) -> Resync:
        """The item; ``first``: the first push held behind it, if any (``until`` is never
        later than its arrival: a push in the same read as the subscription's answer)."""
        before = self.before.known if self.before is not None else None
        after = self.after.known if self.after is not None else None
        changed = None if not checked or before is None or after is None else before != after
        until = self.until if first is None else max(self.since, min(self.until, first.received_at))
        return Resync(self.since, until, redactor.scrub(str(self.error)), self.error, changed, after, before)
