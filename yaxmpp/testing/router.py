"""Which full JID is bound to which session, and how a JID is compared.

The :class:`Router` is the stand-in server's whole "server-to-session" part: a session binds
its full JID here, a stanza for a full JID is delivered to the session bound to it, and a
bind to a resource already bound replaces (or, by option, keeps) the older session.
"""

from __future__ import annotations

import threading
from typing import Dict, List, NamedTuple, Optional, Protocol

__all__ = ["Endpoint", "Jid", "Router"]


class Endpoint(Protocol):
    """What the router needs of a bound session (a client connection or a scripted one)."""

    def deliver(self, xml: str) -> None:
        """Write a routed stanza to this session's client (from any thread)."""

    def replaced(self) -> None:
        """A newer session bound the same full JID: end this one with ``<conflict/>``."""


class Jid(NamedTuple):
    """``local@domain/resource`` split; ``key`` compares the way servers do (local part and
    domain without case, the resource exactly)."""

    local: str
    domain: str
    resource: str

    @classmethod
    def parse(cls, text: str) -> "Jid":
        bare, _, resource = text.partition("/")
        local, at, domain = bare.rpartition("@")
        if not at:
            local, domain = "", bare
        return cls(local, domain, resource)

    @property
    def bare(self) -> str:
        return "%s@%s" % (self.local, self.domain) if self.local else self.domain

    @property
    def key(self) -> str:
        return "%s@%s/%s" % (self.local.lower(), self.domain.lower(), self.resource)

    @property
    def bare_key(self) -> str:
        return "%s@%s" % (self.local.lower(), self.domain.lower())


class Router:
    """The bound sessions of one server.  Thread-safe."""

    def __init__(self) -> None:
        self._bound: Dict[str, List[Endpoint]] = {}
        self._lock = threading.Lock()

    def bind(self, jid: str, endpoint: Endpoint, replace: bool = True) -> None:
        """Bind ``jid`` to ``endpoint``; with ``replace`` an older session on it is told it
        was replaced and unbound, else both stay bound (the newest gets what is routed)."""
        key = Jid.parse(jid).key
        with self._lock:
            older = self._bound.get(key, [])
            self._bound[key] = [endpoint] + ([] if replace else older)
        if replace:
            for old in older:
                old.replaced()

    def unbind(self, jid: str, endpoint: Endpoint) -> None:
        key = Jid.parse(jid).key
        with self._lock:
            left = [e for e in self._bound.get(key, []) if e is not endpoint]
            if left:
                self._bound[key] = left
            else:
                self._bound.pop(key, None)

    def lookup(self, jid: str) -> Optional[Endpoint]:
        """The (newest) session bound to the full JID ``jid``, or None."""
        with self._lock:
            found = self._bound.get(Jid.parse(jid).key)
            return found[0] if found else None
