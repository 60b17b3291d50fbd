"""`ticgw procfile`: write the Procfile and Procfile.demo from the service registry.

``Procfile`` holds the broker and every registered service (ticgw/registry.py);
``Procfile.demo`` adds the demo's simulated meters and remote server (``sim.demo``). With
``--check`` nothing is written and the exit status says whether both files are up to date (a test
runs it).
"""
from __future__ import annotations

from pathlib import Path

from ticgw import registry

from .generated import refresh

ROOT = Path(__file__).resolve().parent.parent.parent


def texts() -> dict[str, str]:
    from sim import demo

    return {"Procfile": registry.procfile(),
            "Procfile.demo": registry.procfile(demo.DEMO_PROCESSES)}


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("procfile", help="write Procfile and Procfile.demo from the "
                                               "service registry")
    p.add_argument("--check", action="store_true",
                   help="do not write; exit 1 if a Procfile is out of date")
    p.add_argument("--dir", default=str(ROOT), help="where the Procfiles are (default: the "
                                                    "source tree)")
    p.set_defaults(func=run)


def run(args) -> int:
    return refresh({Path(args.dir) / name: text for name, text in texts().items()}, args.check)
