"""``python -m ticgw.migrate``: bring the configuration to what this release expects, once.

A release that needs a configuration change (a key renamed, a default that must change on
gateways already set up) adds a :class:`Migration` to :data:`MIGRATIONS`, with an id that is
never reused. The launcher runs this module with the new release's interpreter the first time
that release starts, after the configuration was copied aside (ticgw/release/configs.py): the
copy comes back if the release is rolled back, and is removed when it commits.

Each migration that ran is written to ``<data>/state/migrations.json`` right after it, so a
kill in the middle runs only what had not run (and the launcher restores the copy first).
"""
from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ticgw import gateway
from ticgw.files import write_atomic

log = logging.getLogger("migrate")

FILE = "migrations.json"


@dataclass(frozen=True)
class Migration:
    id: str                                 # never reused: "2026-12-config-rename-x"
    doc: str                                # what it changes, for the log
    apply: Callable[[Path], None]           # given the data dir; raises to refuse


#: Every migration, oldest first. None is needed yet: the first release that renames or
#: reshapes a configuration key adds one here.
MIGRATIONS: tuple[Migration, ...] = ()


def applied(data: Path) -> list[str]:
    try:
        ids = json.loads((data / "state" / FILE).read_text())
    except FileNotFoundError:
        return []
    return [str(i) for i in ids] if isinstance(ids, list) else []


def run(data: Path, migrations=None) -> list[str]:
    """Apply what has not been applied, in order; the ids applied now."""
    migrations = MIGRATIONS if migrations is None else migrations
    done = applied(data)
    now = []
    for m in migrations:
        if m.id in done:
            continue
        log.warning("migration %s: %s", m.id, m.doc)
        m.apply(data)
        done.append(m.id)
        (data / "state").mkdir(parents=True, exist_ok=True)
        write_atomic(data / "state" / FILE, (json.dumps(done) + "\n").encode())
        now.append(m.id)
    return now


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="migrate: %(message)s")
    data = gateway.data_dir()
    try:
        now = run(data)
    except Exception as e:
        print("migration failed: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 1
    print("migrations applied: %s" % (", ".join(now) or "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
