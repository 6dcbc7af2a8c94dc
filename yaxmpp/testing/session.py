"""One client connection to the stand-in server: its socket, its thread, and the test API.

:class:`ServerSession` runs the connection (TLS, compression, the write modes, pings after
silence) on its own thread and feeds what the client sends to its
:class:`~yaxmpp.testing.conversation.Conversation`, which decides every answer.  Tests drive
it from any thread: :meth:`~ServerSession.push`, :meth:`~ServerSession.ping`,
:meth:`~ServerSession.send`, :meth:`~ServerSession.drop` ...
"""

from __future__ import annotations

import itertools
import socket
import threading
from typing import TYPE_CHECKING, Dict, List, Optional
from xml.etree.ElementTree import Element

from ..errors import Error
from ..transport import Transport
from . import stanzas as out
from .conversation import Conversation, Hangup, Note, StartCompression, StartTLS, Write

if TYPE_CHECKING:  # pragma: no cover
    from .server import FakeServer

__all__ = ["ServerSession"]


class ServerSession:
    """One client connection as the server saw it.

    ``received`` holds every plaintext byte the client sent (before and after TLS), ``stanzas``
    every stanza it sent, ``headers`` the attributes of each stream header it sent.  ``error``
    is why the server ended the connection (a broken stream, a stream error it sent), if so.
    """

    def __init__(self, server: "FakeServer", number: int, transport: Transport, direct_tls: bool) -> None:
        self.server = server
        self.number = number
        self.transport = transport
        self.direct_tls = direct_tls
        self.received = bytearray()
        self.error: Optional[BaseException] = None
        self.session_started = threading.Event()
        self.subscribed = threading.Event()  # the client subscribed to Disk pushes
        self.client_closed = threading.Event()  # the client sent </stream:stream>
        self.superseded = threading.Event()  # a newer session bound the same full JID
        self.ended = threading.Event()  # the connection is gone
        self.muted = False
        self.conversation = Conversation(
            server.options, server.accounts, server.router, self, number, tls=direct_tls
        )
        self._replies: Dict[str, Element] = {}
        self._replies_cond = threading.Condition()
        self._out: List[bytes] = []
        self._write_lock = threading.Lock()
        self._pings = itertools.count(1)
        self._pushes = itertools.count(1)

    def __repr__(self) -> str:
        return "<ServerSession #%d jid=%r>" % (self.number, self.jid)

    # -- the conversation's state --------------------------------------------------------

    @property
    def tls(self) -> bool:
        return self.conversation.tls

    @property
    def compressed(self) -> bool:
        return self.conversation.compressed

    @property
    def authenticated(self) -> bool:
        return self.conversation.authenticated

    @property
    def login(self) -> Optional[str]:
        return self.conversation.login

    @property
    def jid(self) -> Optional[str]:
        return self.conversation.jid

    @property
    def stream_id(self) -> Optional[str]:
        return self.conversation.stream_id

    @property
    def headers(self) -> List[Dict[str, str]]:
        return self.conversation.headers

    @property
    def stanzas(self) -> List[Element]:
        return self.conversation.stanzas

    # -- what tests call ---------------------------------------------------------------------

    def send(self, xml: "str | bytes") -> None:
        """Write raw XML to the client now (from any thread)."""
        data = xml.encode("utf-8") if isinstance(xml, str) else xml
        self._write(data, flush=True)

    def send_wire(self, data: bytes) -> None:
        """Write bytes below the compression layer (still inside TLS): for hand-made zlib data."""
        if self.muted:
            return
        with self._write_lock:
            try:
                self.transport.send(data, compress=False)
            except (OSError, Error):
                self.transport.shutdown()

    def ping(self) -> str:
        """Send a XEP-0199 ping as in the seed; returns its id (see :meth:`wait_reply`)."""
        iq_id = "ping_%d" % next(self._pings)
        self.send(out.ping(iq_id, self.server.domain, self.jid))
        return iq_id

    def ask_version(self, iq_id: str = "ask_version") -> str:
        """Send the XEP-0092 query of step 9; returns its id."""
        self.send(out.version_query(iq_id, self.server.domain, self.jid or ""))
        return iq_id

    def push(
        self,
        changes: Optional[List[Dict[str, str]]] = None,
        *,
        xml: Optional[str] = None,
        attrs: Optional[Dict[str, str]] = None,
    ) -> str:
        """Send one Disk push; returns its iq id (its acknowledgement: :meth:`wait_reply`).

        ``changes`` is a list of ``op`` attribute dicts (``type``, ``key``, ``fid``, ``size``,
        anything else); ``xml`` replaces the whole ``<query>`` with raw XML; ``attrs`` are
        attributes of the ``query``.
        """
        iq_id = "push_%d" % next(self._pushes)
        query = xml if xml is not None else out.query_xml(changes or [], attrs)
        self.send(out.push(iq_id, query, self.server.domain, self.jid))
        return iq_id

    def push_many(self, count: int, changes: Optional[List[Dict[str, str]]] = None) -> List[str]:
        """Send ``count`` pushes in as few writes as possible; returns their ids."""
        ids = []
        parts = []
        query = out.query_xml(changes or [{"type": "new", "key": "/disk/file.txt", "fid": "1", "size": "1"}])
        for _ in range(count):
            iq_id = "push_%d" % next(self._pushes)
            ids.append(iq_id)
            parts.append(out.push(iq_id, query, self.server.domain, self.jid))
            if len(parts) >= 256:
                self.send("".join(parts))
                parts = []
        if parts:
            self.send("".join(parts))
        return ids

    def wait_reply(self, iq_id: str, timeout: float = 5.0) -> Element:
        """Wait for the client's iq result/error with ``iq_id``; raises TimeoutError."""
        with self._replies_cond:
            if not self._replies_cond.wait_for(lambda: iq_id in self._replies, timeout):
                raise TimeoutError("no reply to %s within %gs" % (iq_id, timeout))
            return self._replies[iq_id]

    def replies(self) -> Dict[str, Element]:
        with self._replies_cond:
            return dict(self._replies)

    def close_stream(self) -> None:
        """The server closes first: send ``</stream:stream>`` and wait for the client's."""
        self.conversation.server_closing()
        self.send(out.STREAM_CLOSE)

    def mute(self) -> None:
        """From now on send nothing at all (a dead peer that keeps the TCP connection open)."""
        self.muted = True

    def drop(self) -> None:
        """Cut the TCP connection without any goodbye."""
        self.transport.shutdown()

    def wait_ended(self, timeout: float = 5.0) -> bool:
        return self.ended.wait(timeout)

    # -- what the router calls -------------------------------------------------------------

    def deliver(self, xml: str) -> None:
        """A stanza another session sent to this client's JID."""
        self.send(xml)

    def replaced(self) -> None:
        """A newer session bound this JID: ``<conflict/>``, as Prosody and ejabberd do."""
        self.conversation.server_closing()
        self.send(out.stream_error("conflict", "Replaced by new connection"))
        self.superseded.set()

    # -- the connection, on its own thread -------------------------------------------------

    def run(self) -> None:
        """Serve the connection until it ends (called on the connection's thread)."""
        transport, server = self.transport, self.server
        try:
            if self.direct_tls:
                transport.start_tls(server.context, None, server_side=True)
            if server.options.ping_interval is not None:
                transport.set_timeout(server.options.ping_interval)
            self._serve()
        except Exception as exc:  # a misbehaving client ends its connection, not the server
            if self.error is None:
                self.error = exc
        finally:
            self.conversation.finish()
            transport.close(polite=False)
            self.ended.set()

    def _serve(self) -> None:
        transport = self.transport
        while True:
            self._flush()
            try:
                data = transport.recv()
            except socket.timeout:
                if self.jid is not None and not self.conversation.server_closed:
                    self.ping()
                continue
            if not data:
                return
            self.received += data
            for action in self.conversation.receive(data):
                if isinstance(action, Write):
                    self._write(action.data, action.flush)
                elif isinstance(action, StartTLS):
                    self._flush()
                    transport.start_tls(self.server.context, None, action.leftover, server_side=True)
                elif isinstance(action, StartCompression):
                    self._flush()
                    transport.start_compression(leftover=action.leftover)
                elif isinstance(action, Note):
                    self._note(action)
                elif isinstance(action, Hangup):
                    self._flush()
                    if action.drain:  # never answer; wait for the client to hang up
                        while transport.recv():
                            pass
                    return

    def _note(self, note: Note) -> None:
        if note.kind == "reply":
            assert isinstance(note.value, Element)
            with self._replies_cond:
                self._replies[note.value.get("id") or ""] = note.value
                self._replies_cond.notify_all()
        elif note.kind == "error":
            if self.error is None and isinstance(note.value, BaseException):
                self.error = note.value
        else:
            self._flush()  # "set just after the server sent its answer"
            getattr(self, note.kind).set()

    # -- writing ---------------------------------------------------------------------------

    def _write(self, data: bytes, flush: bool = False) -> None:
        with self._write_lock:
            self._out.append(data)
            if flush or self.server.options.write_mode != "coalesced":
                self._flush_locked()

    def _flush(self) -> None:
        with self._write_lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        data = b"".join(self._out)
        self._out.clear()
        if not data or self.muted:
            return
        try:
            if self.server.options.write_mode == "bytewise":
                wire = self.transport.compress(data)  # split what goes on the wire, not the XML
                for i in range(len(wire)):
                    self.transport.send(wire[i : i + 1], compress=False)
            else:
                self.transport.send(data)
        except (OSError, Error):
            self.transport.shutdown()
