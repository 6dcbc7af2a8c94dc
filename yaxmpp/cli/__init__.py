"""The ``yaxmpp`` command: one module per subcommand (``watch``, ``demo``, ...), what they
share in :mod:`yaxmpp.cli.common`.

Exit codes: 0 success (also after Ctrl-C or SIGTERM), 1 any other error, 2 usage,
3 authentication failure, 4 connection or TLS failure.  Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, List, Optional

from .._version import __version__
from . import doctor, login, watch
from .common import EXIT_AUTH, EXIT_CONNECT, EXIT_ERROR, EXIT_OK, EXIT_USAGE, TOKEN_ENV
from .watch import change_records, run_watch

__all__ = ["main", "run_watch", "change_records", "EXIT_OK", "EXIT_ERROR", "EXIT_USAGE", "EXIT_AUTH", "EXIT_CONNECT", "TOKEN_ENV"]


def _run_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    return run_demo(verbose=args.verbose)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="yaxmpp", description="Yandex.Disk change notifications over XMPP.")
    parser.add_argument("--version", action="version", version="yaxmpp %s" % __version__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    watch.register(commands)
    login.register(commands)
    doctor.register(commands)
    demo = commands.add_parser("demo", help="run a whole session against the built-in loopback server")
    demo.add_argument("-v", "--verbose", action="store_true", help="also show the XML traffic (token masked)")
    demo.set_defaults(run=_run_demo)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    run: Any = getattr(args, "run", None)
    if run is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return int(run(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
