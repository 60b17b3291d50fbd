"""The `ticgw` command: one sub-command per module, each adding its own parser."""
from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__

#: Sub-command modules; each has add_parser(subparsers), which sets args.func.
COMMANDS = ("ticgw.decode", "ticgw.config_cmd", "ticgw.statecharts_cmd", "sim.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ticgw", description="TIC gateway tools")
    parser.add_argument("--version", action="version", version="ticgw " + __version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
