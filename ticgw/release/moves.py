"""The moves of the ``current`` link the update service and the launcher share, each written
to the record before it is made (call them under :meth:`Releases.lock`).

- :func:`switch_to`: the pending mark, the configuration copied aside, then the link;
- :func:`first_start`: before a new release's first service starts, its migrations (the copy
  put back first, so a migration interrupted by a kill starts again from the original files);
- :func:`roll_back`: the copy put back, then the link to the previous release;
- :func:`commit`: the copy dropped and older releases removed.

Standard library only: the launcher uses it.
"""
from __future__ import annotations

from pathlib import Path

from . import configs, record
from .layout import BASE, RECORD, Releases
from .record import Record


def _path(releases: Releases) -> Path:
    return releases.path / RECORD


def switch_to(releases: Releases, rec: Record, data: Path) -> Record:
    rec.state, rec.tries_left, rec.migrated = "switching", record.TRIES, False
    record.save(_path(releases), rec)
    configs.backup(releases.path, data)
    releases.switch(rec.release)
    rec.state = "verifying"
    record.save(_path(releases), rec)
    return rec


def first_start(releases: Releases, rec: Record, data: Path) -> Record:
    """Run the new release's migrations once; a failure rolls it back."""
    if rec.migrated:
        return rec
    configs.restore(releases.path, data)
    why = configs.migrate(releases.python(rec.release), data)
    if why is not None:
        return roll_back(releases, rec, data,
                         "Migration de la configuration impossible (%s)" % why)
    rec.migrated = True
    record.save(_path(releases), rec)
    return rec


def roll_back(releases: Releases, rec: Record, data: Path, reason: str) -> Record:
    rec.state, rec.reason, rec.announced = "rolling_back", reason, False
    record.save(_path(releases), rec)
    configs.restore(releases.path, data)
    back = rec.from_release if releases.is_complete(rec.from_release) else BASE
    releases.switch(back)
    rec.state = "rolled_back"
    record.save(_path(releases), rec)
    return rec


def commit(releases: Releases, rec: Record) -> tuple[Record, list[str]]:
    rec.state, rec.reason, rec.announced = "committed", None, False
    record.save(_path(releases), rec)
    configs.drop(releases.path)
    return rec, releases.purge(keep=(rec.release, rec.from_release))
