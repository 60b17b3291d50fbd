"""Sampling one meter per its definition: every DAQ period, one row of columns.

Values stay the raw TIC text (DESIGN 6). For action 2 the min and max are the raw texts of the
smallest and largest readings; the mean is computed on the numeric part and written with the
width of the raw values (zero-padded), so `IINST 009` readings give `009;012;010`. A value with no
numeric part (a label, a status word) contributes its last text to the three columns.
Alarms (DESIGN 6 and issue 3): every change of an action-8 variable; overload while ADPS or an
ADIRn group is present (raised when it appears, cleared when it goes) or STGE bit 7 is set.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from tic.definitions import Definition

_NUMBER = re.compile(r"\s*([+-]?\d+(?:[.,]\d+)?)")

OVERLOAD_LABELS = ("ADPS", "ADIR1", "ADIR2", "ADIR3")


@dataclass(slots=True)
class Alarm:
    """One alarm row: date-time;source;definition;name;index;value (DESIGN 6)."""

    time: float
    source: str        # "TIC1".."TIC3"
    definition: str
    name: str          # the label, or an event name (COMPTEUR_PERDU, COMPTEUR_RETROUVE)
    index: int         # the variable's index in the definition, 0 for events
    value: str
    raised: bool = True


@dataclass(slots=True)
class _Acc:
    first: str | None = None
    last: str | None = None
    n: int = 0
    total: float = 0.0
    lo: tuple[float, str] | None = None
    hi: tuple[float, str] | None = None
    width: int = 0
    decimal: bool = False

    def add(self, text: str) -> None:
        self.last = text
        m = _NUMBER.match(text)
        if not m:
            return
        num_text = m.group(1)
        x = float(num_text.replace(",", "."))
        self.n += 1
        self.total += x
        self.width = max(self.width, len(num_text.lstrip("+-")))
        self.decimal = self.decimal or ("," in num_text or "." in num_text)
        if self.lo is None or x < self.lo[0]:
            self.lo = (x, text)
        if self.hi is None or x > self.hi[0]:
            self.hi = (x, text)

    def triple(self) -> list[str]:
        if self.n == 0:
            v = self.last or ""
            return [v, v, v]
        mean = self.total / self.n
        if self.decimal:
            avg = "%.2f" % mean
        else:
            avg = "%0*d" % (self.width, round(mean)) if mean >= 0 else "%d" % round(mean)
        return [self.lo[1], self.hi[1], avg]


@dataclass
class Sampler:
    """Accumulates the valid values of one input's frames and emits one row per period."""

    definition: Definition
    source: str
    _acc: dict[str, _Acc] = field(default_factory=dict)
    _instant: dict[str, str] = field(default_factory=dict)
    _previous: dict[str, str] = field(default_factory=dict)
    _overload: dict[str, str] = field(default_factory=dict)
    _missing: dict[str, int] = field(default_factory=dict)
    _stge_overload: bool = False
    params: dict[str, str] = field(default_factory=dict)
    frames: int = 0

    def __post_init__(self):
        self._vars = self.definition.by_label()

    def add(self, values: dict[str, str], t: float) -> list[Alarm]:
        """Take a frame's valid values; return the alarms it raises or clears."""
        self.frames += 1
        alarms: list[Alarm] = []
        name = self.definition.name
        for label, value in values.items():
            var = self._vars.get(label)
            if var is None:
                continue
            a = var.action
            if a == 2:
                acc = self._acc.get(label)
                if acc is None:
                    acc = self._acc[label] = _Acc()
                acc.add(value)
            elif a in (4, 8):
                self._instant[label] = value
                if a == 8 and label not in OVERLOAD_LABELS:  # those: raised and cleared below
                    prev = self._previous.get(label)
                    if prev is not None and prev != value:
                        alarms.append(Alarm(t, self.source, name, label, var.index, value))
                    self._previous[label] = value
            elif a == 1:
                self.params[label] = value
        alarms += self._overloads(values, t)
        return alarms

    def _overloads(self, values: dict[str, str], t: float) -> list[Alarm]:
        out = []
        name = self.definition.name
        for label in OVERLOAD_LABELS:
            var = self._vars.get(label)
            idx = var.index if var else 0
            if label in values:
                self._missing[label] = 0
                if label not in self._overload:
                    self._overload[label] = values[label]
                    out.append(Alarm(t, self.source, name, label, idx, values[label]))
            elif label in self._overload:
                # ADPS is in every frame while the power is exceeded. ADIRn are only in the short
                # frames of a CBETM overload cycle (20 short, 1 long): two frames in a row
                # without it mean the cycle is over.
                self._missing[label] = self._missing.get(label, 0) + 1
                if self._missing[label] >= (1 if label == "ADPS" else 2):
                    del self._overload[label]
                    out.append(Alarm(t, self.source, name, label, idx, "0", raised=False))
        stge = values.get("STGE")
        if stge is not None and len(stge) == 8:
            try:
                over = bool(int(stge, 16) & 0x80)
            except ValueError:
                over = self._stge_overload
            if over != self._stge_overload:
                self._stge_overload = over
                var = self._vars.get("STGE")
                out.append(Alarm(t, self.source, name, "STGE", var.index if var else 0, stge,
                                 raised=over))
        return out

    @property
    def overloaded(self) -> bool:
        return bool(self._overload) or self._stge_overload

    def row(self) -> list[str] | None:
        """The period's columns in definition order, then reset; None if no frame was seen."""
        if not self._acc and not self._instant:
            return None
        cols: list[str] = []
        for v in self.definition.sampled():
            if v.action == 2:
                acc = self._acc.get(v.label)
                cols += acc.triple() if acc else ["", "", ""]
            else:
                cols.append(self._instant.get(v.label, ""))
        self._acc.clear()
        self._instant.clear()
        return cols

