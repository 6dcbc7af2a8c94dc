"""``python -m yaxmpp``: the same as the ``yaxmpp`` command."""

import sys

from .cli import main

sys.exit(main())
