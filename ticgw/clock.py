"""Clocks: the system's, and the gateway's (system time plus the offset of the last NTP sync).

A service is given one clock object with two readings: ``monotonic()`` for its deadlines and
timers, ``time()`` for wall time. :class:`SystemClock` is the real one; a test passes
``bus.testing.FakeClock`` to drive a whole service through minutes of timeouts at once.

:class:`GatewayClock` is what records and files are stamped with (DESIGN 5 step 3): the uplink
measures the offset at each connection and stores it in ``<data dir>/state/clock_offset``; every
service adds it to the wall time until the next sync. The file is looked at most once a second.
"""
from __future__ import annotations

import time
from pathlib import Path

from .files import write_atomic


class SystemClock:
    monotonic = staticmethod(time.monotonic)
    time = staticmethod(time.time)


SYSTEM = SystemClock()

#: Seconds between two looks at the offset file.
RECHECK = 1.0


class GatewayClock:
    def __init__(self, state_dir: Path, clock=SYSTEM, wall=None):
        """``clock``: the service's clock; ``wall``: a wall-time function to use instead of
        ``clock.time`` (tools that replay a day)."""
        self.path = Path(state_dir) / "clock_offset"
        self.clock = clock
        self.wall = wall or clock.time
        self._mtime = None
        self._offset = 0.0
        self._checked = None

    @property
    def offset(self) -> float:
        now = self.clock.monotonic()
        if self._checked is not None and now - self._checked < RECHECK:
            return self._offset
        self._checked = now
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
        write_atomic(self.path, ("%.6f\n" % offset).encode())
        self._offset = offset
        self._checked = self.clock.monotonic()
