"""The `ticgw` command: one sub-command per module, each adding its own parser.

A command line that names a command imports that command's module only (its name is the last
part of the module's name, or a group's name): `ticgw decode` does not pay for the bus, the
configuration or the simulators at start-up. `ticgw --help`, or a command line naming no known
command, builds every parser, so help and "invalid choice" list every command.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ticgw import __version__

#: Sub-command modules; each has add_parser(subparsers), which sets args.func. Each adds the
#: command named like the last part of its module name.
COMMANDS = ("ticgw.cli.decode", "ticgw.cli.config", "ticgw.cli.statecharts", "ticgw.cli.bus",
            "ticgw.cli.procfile", "ticgw.cli.pak")
#: Command groups: `ticgw sim meter ...`; each module adds its commands under the group.
GROUPS = {"sim": ("simulators (meters, modem, server)",
                  ("sim.cli", "sim.server_cli", "sim.modem_cli"))}


def command_of(argv: list[str]) -> str | None:
    """The command a command line names, if it is one of ours: the first argument that is not
    an option (the top-level options take no value); None otherwise."""
    for arg in argv:
        if arg == "--":
            return None
        if not arg.startswith("-"):
            known = {name.rpartition(".")[2] for name in COMMANDS} | set(GROUPS)
            return arg if arg in known else None
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; with `command`, only that command's (its module alone is imported)."""
    parser = argparse.ArgumentParser(prog="ticgw", description="TIC gateway tools")
    parser.add_argument("--version", action="version", version="ticgw " + __version__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        if command is not None and name.rpartition(".")[2] != command:
            continue
        try:
            module = importlib.import_module(name)
        except ImportError:  # a part not installed on this gateway
            continue
        module.add_parser(sub)
    for group, (help_text, modules) in GROUPS.items():
        if command is not None and group != command:
            continue
        gp = sub.add_parser(group, help=help_text)
        gsub = gp.add_subparsers(dest="subcommand", metavar="COMMAND")
        for name in modules:
            importlib.import_module(name).add_parser(gsub)
    return parser


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(command_of(argv))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
