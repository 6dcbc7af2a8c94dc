"""``python -m yaxmpp.testing``: the stand-in server in the foreground (see :mod:`.console`)."""

from __future__ import annotations

import sys

from .console import main

if __name__ == "__main__":
    sys.exit(main())
