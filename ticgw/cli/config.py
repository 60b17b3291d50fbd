"""`ticgw config`: check a configuration directory, list the keys."""
from __future__ import annotations

import sys
from pathlib import Path

from ticgw.config import config_dir_of, describe, key_table_markdown, read_dir


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "config", help="check configuration files, list the configuration keys",
        description="Check the three configuration files (<site>_config.ini, _daq.ini, "
                    "_var.ini) or list every key with its default and help.")
    sub = p.add_subparsers(dest="config_command", metavar="ACTION")
    c = sub.add_parser("check", help="check a data dir or config dir",
                       description="Load and validate the configuration in DIR (a data dir "
                                   "holding config/, or the config dir itself). Prints OK and the "
                                   "effective settings, secrets masked (exit 0), or every "
                                   "problem as 'file: key: reason' (exit 1).")
    c.add_argument("dir", metavar="DIR")
    c.set_defaults(func=run_check)
    k = sub.add_parser("keys", help="print every key as a Markdown table",
                       description="Print every configuration key (file, default, help) as a "
                                   "Markdown table.")
    k.set_defaults(func=run_keys)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_check(args, out=None) -> int:
    out = out or sys.stdout
    path = Path(args.dir)
    if not path.is_dir():
        print("%s: not a directory" % path, file=out)
        return 1
    config_dir = config_dir_of(path)
    loaded = read_dir(config_dir)
    for w in loaded.warnings:
        print("warning: %s" % w, file=out)
    if loaded.problems:
        for p in loaded.problems:
            print(str(p), file=out)
        print("%d problem(s) in %s" % (len(loaded.problems), config_dir), file=out)
        return 1
    files = [loaded.files[k] for k in ("config", "daq", "var") if k in loaded.files]
    print("OK: %s" % (", ".join(files) if files else "no files, defaults for every key"),
          file=out)
    for line in describe(loaded.settings):
        print(line, file=out)
    return 0


def run_keys(args, out=None) -> int:
    (out or sys.stdout).write(key_table_markdown())
    return 0
