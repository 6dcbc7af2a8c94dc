"""A second account, scripted by the test, bound on the stand-in server without a socket.

``other = server.scripted_session("other")`` binds ``other@ya.ru/scripted``.  What it sends
goes through the server's router with its own JID as ``from``, exactly as a real server
would route another account's stanzas: forged iq answers, Disk pushes from a foreign
sender, requests the client must answer.  What the client sends to that JID lands in
``other.stanzas`` (:meth:`ScriptedSession.wait_for`).
"""

from __future__ import annotations

import itertools
import threading
from typing import TYPE_CHECKING, Callable, Dict, List, Optional
from xml.etree.ElementTree import Element

from defusedxml.ElementTree import fromstring

from ..protocol import ns
from . import stanzas as out
from .router import Jid

if TYPE_CHECKING:  # pragma: no cover
    from .server import FakeServer

__all__ = ["ScriptedSession"]


def _parse(xml: str) -> Element:
    """One stanza, in the ``jabber:client`` namespace unless it declares another."""
    parsed: Element = fromstring('<wrap xmlns="%s">%s</wrap>' % (ns.CLIENT, xml))[0]
    return parsed


class ScriptedSession:
    """A bound session of another account, driven by the test (see the module docstring)."""

    def __init__(self, server: "FakeServer", jid: str) -> None:
        self.server = server
        self.jid = jid
        self.stanzas: List[Element] = []  # what was routed to this JID, in order
        self.superseded = threading.Event()  # a real client bound the same full JID
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        server.router.bind(jid, self, replace=server.options.resource_conflict == "replace")

    def __repr__(self) -> str:
        return "<ScriptedSession %s>" % self.jid

    # -- sending ---------------------------------------------------------------------------

    def send(self, xml: str) -> None:
        """Route one stanza (``to`` a full JID) with this session's JID as ``from``.

        An iq request to a JID nobody has bound comes back as ``service-unavailable``
        (into :attr:`stanzas`), as from a real server.
        """
        elem = _parse(xml)
        elem.set("from", self.jid)
        to = elem.get("to") or ""
        endpoint = self.server.router.lookup(to) if Jid.parse(to).resource else None
        if endpoint is not None:
            endpoint.deliver(out.serialize(elem))
        elif elem.tag == ns.IQ and elem.get("type") in ("get", "set"):
            self.deliver(out.iq_error(elem.get("id"), "service-unavailable", sender=to, to=self.jid))

    def iq(self, iq_type: str, to: str, payload: str = "", iq_id: Optional[str] = None) -> str:
        """Send an iq; returns its id (the answer: ``wait_for(lambda s: s.get("id") == id)``)."""
        iq_id = iq_id or "scripted_%d" % next(self._ids)
        self.send(out.iq(iq_type, iq_id, payload, to=to))
        return iq_id

    def push(
        self,
        to: str,
        changes: Optional[List[Dict[str, str]]] = None,
        *,
        xml: Optional[str] = None,
        iq_id: Optional[str] = None,
    ) -> str:
        """A Disk push from this (foreign) account to ``to``; returns its id."""
        query = xml if xml is not None else out.query_xml(changes or [{"type": "new", "key": "/disk/file.txt"}])
        return self.iq("set", to, query, iq_id)

    def answer(self, request: Element, payload: str = "", iq_type: str = "result") -> None:
        """Answer an iq the client sent to this JID (``iq_type`` "error" with a payload
        holding the ``<error>``)."""
        self.send(out.iq(iq_type, request.get("id"), payload, to=request.get("from")))

    # -- receiving -------------------------------------------------------------------------

    def wait_for(self, match: Optional[Callable[[Element], bool]] = None, timeout: float = 5.0) -> Element:
        """The first stanza routed here that ``match`` accepts (any, by default); waits for
        it, raising TimeoutError."""
        test = match or (lambda _: True)
        with self._cond:
            found: List[Element] = []

            def seen() -> bool:
                found[:] = [s for s in self.stanzas if test(s)][:1]
                return bool(found)

            if not self._cond.wait_for(seen, timeout):
                raise TimeoutError("nothing for %s within %gs" % (self.jid, timeout))
            return found[0]

    def close(self) -> None:
        """Unbind: iqs to this JID get ``service-unavailable`` from then on."""
        self.server.router.unbind(self.jid, self)

    # -- what the router calls -------------------------------------------------------------

    def deliver(self, xml: str) -> None:
        elem = _parse(xml)
        with self._cond:
            self.stanzas.append(elem)
            self._cond.notify_all()

    def replaced(self) -> None:
        self.superseded.set()
