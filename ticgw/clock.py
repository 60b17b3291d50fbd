"""The gateway's clock: system time plus the offset measured at the last NTP sync (DESIGN 5 step 3).

The uplink service measures the offset at each connection and stores it in
``<data dir>/state/clock_offset``; every service stamps records and files with ``now()``, which
adds it, until the next sync. The file is re-read when it changes.
"""
from __future__ import annotations

import os
import time
from pathlib import Path


class GatewayClock:
    def __init__(self, state_dir: Path, wall=time.time):
        self.path = Path(state_dir) / "clock_offset"
        self.wall = wall
        self._mtime = None
        self._offset = 0.0

    @property
    def offset(self) -> float:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return self._offset
        if st.st_mtime_ns != self._mtime:
            try:
                self._offset = float(self.path.read_text().strip() or 0)
            except ValueError:
                pass
            self._mtime = st.st_mtime_ns
        return self._offset

    def now(self) -> float:
        return self.wall() + self.offset

    def set_offset(self, offset: float) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("%.6f\n" % offset)
        os.replace(tmp, self.path)
        self._offset = offset
