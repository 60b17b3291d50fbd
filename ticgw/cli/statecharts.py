"""`ticgw statecharts`: render every state machine of statecharts/ as Mermaid Markdown."""
from __future__ import annotations

import statecharts


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("statecharts", help="render the state machines (Mermaid) into "
                                                  "statecharts/*.md")
    p.add_argument("--check", action="store_true",
                   help="do not write; exit 1 if a rendered chart is out of date")
    p.set_defaults(func=run)


def run(args) -> int:
    stale = []
    for name in statecharts.charts():
        path = statecharts.HERE / ("%s.md" % name)
        text = statecharts.mermaid(name)
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != text:
            stale.append(path)
            if not args.check:
                path.write_text(text, encoding="utf-8")
        print("%s %s" % ("stale" if current != text else "ok   ", path))
    return 1 if (args.check and stale) else 0
