"""Sampling slots that a clock step cannot bend (issue 8, item 5).

A sample is keyed by its *slot*: the latest multiple of the period at or before the gateway time
in force when it is taken (the row's time). The rules, all pure here (the service reads the clocks
and does the disk work):

- a slot is sampled at most once: :class:`Slots` keeps the last slot sampled (the service persists
  it, ``state/last_slot``), and only a later slot is ever due;
- after a backward step no slot is due until the clock passes the last slot sampled again: the
  values keep accumulating into the next row (nothing lost, nothing twice);
- after a forward step the row is stamped with the new clock's latest boundary, and the slots the
  step jumped over are counted (``Due.skipped``);
- :class:`StepWatch` tells a step of the gateway clock (its reading against the one expected from
  the monotonic clock) from the clock merely running.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ticgw.files import write_atomic

#: Seconds between two looks at the clock at most, however far the next boundary is: a step is
#: seen (and a slot it brings due is sampled) within this delay.
RECHECK = 2.0
#: Seconds of difference between the gateway time and the time expected that count as a step.
STEP_THRESHOLD = 2.0
#: Shortest wait before the next look (a timer that fired a hair early looks again at once).
MIN_WAIT = 0.001
#: Where the last slot sampled is kept, under the state directory.
LAST_SLOT_FILE = "last_slot"


@dataclass(frozen=True)
class Due:
    """A slot to sample now: its time (the row's) and how many slots before it were jumped."""
    slot: float
    skipped: int = 0


class Slots:
    """The sampling schedule of one period, from the last slot sampled (or the floor given at
    start: no slot at or before it is ever due)."""

    def __init__(self, period: float, last: float):
        if period <= 0:
            raise ValueError("the sampling period must be positive")
        self.period = float(period)
        self.last = float(last)

    def boundary(self, now: float) -> float:
        """The latest boundary at or before ``now``."""
        return latest_boundary(now, self.period)

    def due(self, now: float) -> Due | None:
        """The slot to sample at ``now``, if one is due (nothing changes until :meth:`taken`)."""
        slot = self.boundary(now)
        if slot <= self.last:
            return None
        return Due(slot, self._between(self.last, slot))

    def taken(self, due: Due) -> None:
        """The slot ``due`` was sampled: it and every slot before it are done."""
        self.last = max(self.last, due.slot)

    def held(self, now: float) -> bool:
        """True while a backward step holds the samples back: the clock is before the last slot
        sampled."""
        return now < self.last

    def wait(self, now: float, recheck: float = RECHECK) -> float:
        """Seconds from ``now`` to the next look at the clock."""
        if self.due(now) is not None:
            return 0.0
        following = self.boundary(max(now, self.last)) + self.period
        return max(MIN_WAIT, min(following - now, recheck))

    def _between(self, last: float, slot: float) -> int:
        """Boundaries strictly between ``last`` (on a boundary or not) and ``slot``."""
        first_after = self.boundary(last) + self.period
        return max(0, round((slot - first_after) / self.period))


class StepWatch:
    """Tells a step of the gateway clock: between two looks, the gateway time should move as the
    monotonic clock does; a difference beyond ``threshold`` is a step, of that size."""

    def __init__(self, threshold: float = STEP_THRESHOLD):
        self.threshold = threshold
        self._prev: tuple[float, float] | None = None

    def look(self, monotonic: float, now: float) -> float | None:
        """The step seen since the previous look (seconds, negative backward), or None."""
        prev, self._prev = self._prev, (monotonic, now)
        if prev is None:
            return None
        step = (now - prev[1]) - (monotonic - prev[0])
        return step if abs(step) > self.threshold else None


def step_message(step: float, skipped: int = 0) -> str:
    """The journal row of a clock step, with the slots a forward step jumped over if any."""
    text = "Horloge %s de %d s" % ("avancée" if step > 0 else "reculée", round(abs(step)))
    return text + " : " + skipped_message(skipped) if skipped else text


def skipped_message(skipped: int) -> str:
    """The journal row of slots jumped over (alone when no step explains them: a loop held up
    for more than a period)."""
    return "%d période(s) d'acquisition sans échantillon" % skipped


# --- the last slot on disk (disk work: the spool writer saves it, the sealer reads it at start) -

def load_last_slot(state_dir: Path) -> float | None:
    try:
        return float((Path(state_dir) / LAST_SLOT_FILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def save_last_slot(state_dir: Path, slot: float) -> None:
    write_atomic(Path(state_dir) / LAST_SLOT_FILE, ("%.6f\n" % slot).encode())


def latest_boundary(now: float, period: float) -> float:
    """The latest multiple of ``period`` at or before ``now`` (to the microsecond: a float
    period leaves crumbs)."""
    return round(math.floor(now / period) * period, 6)
