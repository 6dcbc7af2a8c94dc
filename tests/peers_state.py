"""Where the interop servers of ``tests/peers/peers.sh`` are, for the tests that use them
(``test_interop.py``, ``test_probes.py``): the state file the script writes, and whether a
port is listening.  Nothing here skips or marks a test."""

from __future__ import annotations

import os
import socket
from typing import Dict, Optional

PEERS_DIR = os.environ.get("PEERS", "/tmp/xmpp-peers")


def read_state() -> Optional[Dict[str, str]]:
    """The ``peers.env`` the script wrote (name=value lines), or None when there is none."""
    try:
        with open(os.path.join(PEERS_DIR, "peers.env")) as f:
            return dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)
    except OSError:
        return None


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False
