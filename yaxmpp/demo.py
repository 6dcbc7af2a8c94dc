"""``yaxmpp demo``: one full session against the built-in loopback server, told step by step."""

from __future__ import annotations

import logging
import secrets
import sys
import time
from typing import TextIO

from .client import Client
from .protocol.redact import MASK
from .testing import FakeServer

__all__ = ["run_demo"]

SAMPLE_CHANGES = [
    {"type": "new", "key": "/disk/Photos/cat.jpg", "fid": "1001", "size": "524288"},
    {"type": "changed", "key": "disk:/Documents/notes.txt", "fid": "1002", "size": "2048"},
    {"type": "deleted", "key": "/disk/old/report.pdf", "fid": "1003"},
]


class _StepPrinter(logging.Handler):
    """Prints the client's log records as numbered, readable steps."""

    def __init__(self, out: TextIO) -> None:
        super().__init__(logging.DEBUG)
        self.out = out
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.name == "yaxmpp.xml":
                self.out.write("        %s\n" % message.replace("\n", ""))
            else:
                self.count += 1
                self.out.write("  %2d. %s\n" % (self.count, message))
            self.out.flush()
        except Exception:
            self.handleError(record)


def run_demo(verbose: bool = False, out: TextIO = sys.stdout) -> int:
    login = "test"
    token = secrets.token_hex(16)  # a made-up OAuth token; it is masked everywhere below
    started = time.monotonic()
    out.write("yaxmpp demo: a whole session against the built-in stand-in for push.xmpp.yandex.ru\n")
    logger = logging.getLogger("yaxmpp")
    handler = _StepPrinter(out)
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    if not verbose:
        logging.getLogger("yaxmpp.xml").setLevel(logging.INFO)
    try:
        with FakeServer(login=login, token=token) as server:
            out.write(
                "  server: 127.0.0.1, STARTTLS port %s, direct-TLS port %s, login %r, token %s\n"
                % (server.starttls_port, server.tls_port, login, MASK)
            )
            client = Client(login, token, client_name="yaxmpp-demo", **server.client_options())
            with client:
                out.write("  connected: JID %s, stream id %s, %s\n" % (client.jid, client.stream_id, client.tls_version))
                session = server.wait_for_session()
                version = session.wait_reply("ask_version")
                name = version.findtext("{jabber:iq:version}query/{jabber:iq:version}name")
                out.write("  the server asked for the client's version and got %r\n" % name)
                ping = session.ping()
                session.wait_reply(ping)
                out.write("  the server pinged (%s) and the client answered by itself\n" % ping)
                out.write("  subscribed to Disk pushes: %s\n" % session.subscribed.is_set())
                pushed = [session.push([change]) for change in SAMPLE_CHANGES]
                for number, notification in enumerate(client.notifications(timeout=5), 1):
                    for change in notification.changes:
                        out.write("  change %d: %s %s (size %s, fid %s)\n" % (number, change.type, change.path, change.size, change.fid))
                    if number == len(SAMPLE_CHANGES):
                        break
                acked = sum(session.wait_reply(iq_id).get("type") == "result" for iq_id in pushed)
                out.write("  the client acknowledged %d of %d pushes\n" % (acked, len(pushed)))
                out.write("  closing\n")
        out.write("done in %.2f s\n" % (time.monotonic() - started))
        return 0
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logging.getLogger("yaxmpp.xml").setLevel(logging.NOTSET)
