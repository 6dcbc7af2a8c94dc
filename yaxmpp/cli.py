"""The ``yaxmpp`` command: ``yaxmpp demo``, ``yaxmpp --version``."""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from . import __version__

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="yaxmpp", description="Yandex.Disk change notifications over XMPP.")
    parser.add_argument("--version", action="version", version="yaxmpp %s" % __version__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser("demo", help="run a whole session against the built-in loopback server")
    demo.add_argument("-v", "--verbose", action="store_true", help="also show the XML traffic (token masked)")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(verbose=args.verbose)
    parser.print_help(sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
