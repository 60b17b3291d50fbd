"""Name stamps that are never used twice (issue 8).

A delivered file is named ``<site>_<kind>_<YYMMDD_hhmmss>``: by the second. Two files of one kind
made within a second (a schedule and a button, a seal, upload and new seal), or a clock stepped
back by NTP, would give a name already delivered, and the server would overwrite the first file
with the second. The book remembers, per kind, the last stamp it handed out; a new stamp is the
clock's, or one second after the last one when the clock's is not later. So, per kind, stamps only
grow: no name twice, and a name sort stays a time sort even after a backward clock step.

The book is ``<state dir>/stamps.json``, shared by every service under ``flock`` on
``stamps.lock``. A stamp is on disk (fsync'd) before it is returned: a crash after that wastes a
stamp, never reuses one. Disk work: call it from a worker, never from a loop.

    stamps = StampBook(data_dir / "state")
    name = files.ack_name(site, stamps.take("ack", clock.now()))
"""
from __future__ import annotations

import calendar
import json
import time
from pathlib import Path

from .files import locked, name_stamp, write_atomic

#: The kinds of delivered files, one sequence each ("seal" names a data and an alarm file).
KINDS = ("seal", "params", "ack", "log", "debug")

_FORMAT = "%y%m%d_%H%M%S"


def stamp_time(stamp: str) -> float:
    """The UTC epoch second of a YYMMDD_hhmmss stamp."""
    return float(calendar.timegm(time.strptime(stamp, _FORMAT)))


class StampBook:
    def __init__(self, state_dir):
        self.dir = Path(state_dir)
        self.path = self.dir / "stamps.json"
        self.lock_path = self.dir / "stamps.lock"

    def _locked(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        return locked(self.lock_path)

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def last(self, kind: str) -> str | None:
        """The last stamp handed out for ``kind``, if any."""
        return self._read().get(kind)

    def take(self, kind: str, t: float, taken=None) -> str:
        """A new stamp for a file of ``kind`` made at ``t``: later than every stamp handed out
        for ``kind`` before. ``taken(stamp) -> bool`` may refuse more (a name found on disk)."""
        if kind not in KINDS:
            raise ValueError("unknown stamp kind %r (one of %s)" % (kind, ", ".join(KINDS)))
        with self._locked():
            data = self._read()
            last = data.get(kind)
            second = float(int(t))
            if last is not None:
                try:
                    second = max(second, stamp_time(last) + 1)
                except ValueError:  # a damaged entry: the clock's stamp, as with no entry
                    pass
            stamp = name_stamp(second)
            while taken is not None and taken(stamp):
                second += 1
                stamp = name_stamp(second)
            data[kind] = stamp
            write_atomic(self.path, json.dumps(data, sort_keys=True).encode())
        return stamp
