"""The update record (``<releases>/update.json``): where an install stands, across restarts.

It is what makes a power cut harmless. Written atomically, under the releases lock, before
each step that changes what runs, it says:

- ``state``: ``idle``, ``installing``, ``switching`` (about to swap the link), ``verifying``
  (the link names the new release, not yet committed), ``rolling_back``, or a final outcome:
  ``committed``, ``rolled_back``, ``failed`` (refused or interrupted before the switch);
- ``version``/``release``/``sha256``/``build_date``: the package being installed;
- ``from_version``/``from_release``: what ran before (``from_release`` None: the base install);
- ``tries_left``: starts the launcher may still give the new release before it is rolled
  back without waiting for a health check (a release that cannot even start);
- ``migrated``: the new release's configuration migrations have run (moves.py);
- ``reason``: why it failed or was rolled back (French, for the journal and the page);
- ``announced``: the outcome's journal row (and alarm) is written.

Standard library only: the launcher reads and writes it.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ticgw.files import write_atomic

#: States in which the ``current`` link may name a release that is not committed yet.
PENDING = ("switching", "verifying", "rolling_back")
#: Outcomes: the record stays so until the next package.
FINAL = ("committed", "rolled_back", "failed")
#: Starts of the update service a new release gets before the launcher rolls it back.
TRIES = 3
#: How the reason of an install a kill or power cut interrupted begins: such a package is
#: fetched and tried again (a package refused for what it is, is not).
INTERRUPTED = "Mise à jour interrompue"


def retryable(rec: dict) -> bool:
    """A record (as a dict, from the update service's status) whose package may be tried
    again."""
    return rec.get("state") == "failed" and str(rec.get("reason") or "").startswith(INTERRUPTED)


@dataclass
class Record:
    state: str = "idle"
    version: str | None = None
    release: str | None = None
    sha256: str | None = None
    build_date: str | None = None
    origin: str | None = None
    from_version: str | None = None
    from_release: str | None = None
    tries_left: int = TRIES
    migrated: bool = False
    reason: str | None = None
    announced: bool = True
    at: float = 0.0

    @property
    def pending(self) -> bool:
        return self.state in PENDING

    def to_dict(self) -> dict:
        return asdict(self)


def load(path) -> Record:
    """The record, or an idle one when there is none (or it cannot be read: said in reason)."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return Record()
    except (OSError, ValueError) as e:
        return Record(state="failed", reason="Enregistrement de mise à jour illisible (%s)"
                      % type(e).__name__, announced=False)
    known = {f.name for f in fields(Record)}
    return Record(**{k: v for k, v in data.items() if k in known})


def save(path, record: Record, clock=time.time) -> None:
    record.at = clock()
    write_atomic(path, (json.dumps(record.to_dict(), indent=1, sort_keys=True) + "\n").encode())
