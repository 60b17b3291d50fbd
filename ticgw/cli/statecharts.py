"""`ticgw statecharts`: render every state machine of statecharts/ as Mermaid Markdown."""
from __future__ import annotations

import statecharts

from .generated import refresh


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("statecharts", help="render the state machines (Mermaid) into "
                                                  "statecharts/*.md")
    p.add_argument("--check", action="store_true",
                   help="do not write; exit 1 if a rendered chart is out of date")
    p.set_defaults(func=run)


def run(args) -> int:
    return refresh({statecharts.HERE / ("%s.md" % name): statecharts.mermaid(name)
                    for name in statecharts.charts()}, args.check)
