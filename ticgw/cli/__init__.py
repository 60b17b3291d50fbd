"""The `ticgw` command: one sub-command per module, each adding its own parser."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ticgw import __version__

#: Sub-command modules; each has add_parser(subparsers), which sets args.func.
COMMANDS = ("ticgw.cli.decode", "ticgw.cli.config", "ticgw.cli.statecharts", "ticgw.cli.bus",
            "ticgw.cli.procfile")
#: Command groups: `ticgw sim meter ...`; each module adds its commands under the group.
GROUPS = {"sim": ("simulators (meters, modem, server)", ("sim.cli", "sim.server_cli"))}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ticgw", description="TIC gateway tools")
    parser.add_argument("--version", action="version", version="ticgw " + __version__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(name)
        except ImportError:  # a part not installed on this gateway
            continue
        module.add_parser(sub)
    for group, (help_text, modules) in GROUPS.items():
        gp = sub.add_parser(group, help=help_text)
        gsub = gp.add_subparsers(dest="subcommand", metavar="COMMAND")
        for name in modules:
            importlib.import_module(name).add_parser(gsub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
