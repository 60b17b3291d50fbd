"""TIC meter simulators: one frame generator per family, values that evolve over simulated time.

Every meter owns a simulated clock (naive local time, never wall-clock) and a seeded
``random.Random``: the same family, seed and options give the same byte stream. ``next_frame()``
advances the clock by the family's frame interval and returns one whole frame (STX..ETX) built
with the codec's encoder, possibly corrupted on purpose (``Corruption``).

Frame intervals (simulated time between two frames; a choice, the spec gives no figure):
``HISTORIC_INTERVAL`` = 1.5 s (a CBEMM frame is ~200 bytes, ~1.7 s at 1200 bd),
``STANDARD_INTERVAL`` = 1.1 s (a Linky standard frame is ~900 bytes, ~0.9 s at 9600 bd, plus
gaps) and ``SHORT_INTERVAL`` = 0.6 s for CBETM overload short frames. Pacing bytes on a line is
the job of ``LinePacer`` (below), not of the generators.

Families (reference ``tic-protocol.md`` section 2): CBEMM, CBEMM-ICC, CBETM, CJE, ICE, ICE-4Q,
PME-PMI and LINKY (historic or standard). CJE/ICE/PME-PMI value layouts come from vendor codecs
and are partly guessed; where the reference gives no length, the one used here is marked as ours.

The simulated clock runs linearly (no DST jump); the season letter of horodates (E/H) follows
the French DST dates of the simulated day.
"""
from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, fields
from datetime import date, datetime, time, timedelta

from tic.codec import HISTORIC, STANDARD, encode_group, with_parity
from tic.horodate import encode_stge

HISTORIC_INTERVAL = 1.5
STANDARD_INTERVAL = 1.1
SHORT_INTERVAL = 0.6

#: Default start of the simulated clock: a winter weekday, mid-morning (HP, Tempo day running).
DEFAULT_START = datetime(2025, 1, 15, 10, 0, 0)

CBEMM, CBEMM_ICC, CBETM, CJE, ICE, ICE_4Q, PME_PMI, LINKY = (
    "CBEMM", "CBEMM-ICC", "CBETM", "CJE", "ICE", "ICE-4Q", "PME-PMI", "LINKY")
FAMILIES = (CBEMM, CBEMM_ICC, CBETM, CJE, ICE, ICE_4Q, PME_PMI, LINKY)

SEPARATORS = ("SP", "HT")


@dataclass(frozen=True, slots=True)
class LineDefaults:
    """Line settings of a family in one mode. ``confirmed`` is False where the reference has no
    source for the baud rate or separator (CJE, ICE, ICE-4Q, PME-PMI: settable)."""

    baud: int
    separator: str      # "SP" or "HT"
    confirmed: bool


#: family -> mode -> line defaults. The first mode listed is the family's default mode.
FAMILY_DEFAULTS: dict[str, dict[str, LineDefaults]] = {
    CBEMM: {HISTORIC: LineDefaults(1200, "SP", True)},
    CBEMM_ICC: {HISTORIC: LineDefaults(1200, "SP", True)},
    CBETM: {HISTORIC: LineDefaults(1200, "SP", True)},
    CJE: {HISTORIC: LineDefaults(1200, "SP", False)},
    ICE: {HISTORIC: LineDefaults(1200, "SP", False)},
    ICE_4Q: {HISTORIC: LineDefaults(1200, "SP", False)},
    PME_PMI: {HISTORIC: LineDefaults(1200, "SP", False)},
    LINKY: {HISTORIC: LineDefaults(1200, "SP", True), STANDARD: LineDefaults(9600, "HT", True)},
}

#: Type digits (characters 5-6) of the default address of each family (reference section 2.2).
#: Pre-Linky CBE codes are unknown; 22/26/28/30 are seen in real captures.
TYPE_CODES = {CBEMM: 22, CBEMM_ICC: 26, CBETM: 30, CJE: 10, ICE: 7, ICE_4Q: 34, PME_PMI: 36}
#: Linky: 75 = mono 90 A G3, 76 = tri 60 A G3.
LINKY_TYPE = {1: 75, 3: 76}

TARIFFS = ("BASE", "HC", "EJP", "TEMPO")
BLEU, BLANC, ROUGE = "BLEU", "BLAN", "ROUG"
TEMPO_CODE = {BLEU: 1, BLANC: 2, ROUGE: 3}
#: Hour after which tomorrow's Tempo colour is announced (DEMAIN, STGE bits 26-27).
TEMPO_ANNOUNCE_HOUR = 20
#: Off-peak hours (HC) for the HC and Tempo options: 22:00-06:00.
OFFPEAK = ((time(22, 0), time(23, 59, 59, 999999)), (time(0, 0), time(6, 0)))


# --- corruption -----------------------------------------------------------------------------

@dataclass
class Corruption:
    """What to break on purpose; every rate is 0 by default.

    checksum: probability that a group carries a wrong checksum (per group)
    lost:     probability that a byte is dropped (per byte of a frame)
    eot:      probability that a frame is cut by EOT at a random point (per frame)
    noise:    probability of a burst of 1-16 printable noise bytes before a frame (per frame)
    parity:   probability of a parity error on a byte (per byte of a frame). In 7-bit output the
              byte becomes NUL (what Linux delivers for a parity error); in 8-bit output (a 7E1
              line read 8N1) bit 7 is flipped so the even-parity check fails.

    Spec syntax: ``"checksum=0.05,lost=0.01,eot=0.02,noise=0.1,parity=0.001"`` (any subset, any
    order; ``""`` or ``"none"`` for no corruption).
    """

    checksum: float = 0.0
    lost: float = 0.0
    eot: float = 0.0
    noise: float = 0.0
    parity: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            v = float(getattr(self, f.name))
            if not 0.0 <= v <= 1.0:
                raise ValueError("corruption %s=%r: a probability must be within 0..1"
                                 % (f.name, v))
            setattr(self, f.name, v)

    @classmethod
    def parse(cls, spec: "str | Corruption | None") -> "Corruption":
        if spec is None:
            return cls()
        if isinstance(spec, Corruption):
            return spec
        spec = spec.strip()
        if spec in ("", "none", "0"):
            return cls()
        names = {f.name for f in fields(cls)}
        kw: dict[str, float] = {}
        for item in spec.split(","):
            item = item.strip()
            if not item:
                continue
            name, eq, value = item.partition("=")
            name = name.strip().lower()
            if not eq or name not in names:
                raise ValueError("bad corruption item %r (expected one of %s as name=rate)"
                                 % (item, ", ".join(sorted(names))))
            try:
                kw[name] = float(value)
            except ValueError:
                raise ValueError("bad corruption rate in %r" % item) from None
        return cls(**kw)

    @property
    def active(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))

    def __str__(self) -> str:
        items = ["%s=%g" % (f.name, getattr(self, f.name)) for f in fields(self)
                 if getattr(self, f.name)]
        return ",".join(items) or "none"


@dataclass
class Injected:
    """Counters of what a meter emitted and broke, to compare with ``DecoderStats``.

    ``bad_checksums`` counts only the corrupted groups that were emitted whole (a group cut by an
    injected EOT is not counted). With one kind of corruption at a time the counters map exactly:
    bad_checksums == checksum_errors, eots == frames_interrupted, noise_bytes == bytes_skipped,
    parity_errors == line_errors, bytes == decoder bytes.
    """

    frames: int = 0
    groups: int = 0
    bytes: int = 0           # bytes emitted (after corruption)
    bad_checksums: int = 0
    lost_bytes: int = 0
    eots: int = 0
    noise_bursts: int = 0
    noise_bytes: int = 0
    parity_errors: int = 0

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# --- calendar ---------------------------------------------------------------------------------

def _last_sunday(year: int, month: int) -> date:
    d = date(year, month, 31)  # March and October both have 31 days
    return d - timedelta(days=(d.weekday() - 6) % 7)


def season(t: datetime) -> str:
    """E (summer time) or H (winter time) for a French local time."""
    start = datetime.combine(_last_sunday(t.year, 3), time(2))
    end = datetime.combine(_last_sunday(t.year, 10), time(3))
    return "E" if start <= t < end else "H"


def horodate(t: datetime, season_letter: str | None = None) -> str:
    """A 13-character standard-mode horodate ``SYYMMDDhhmmss``."""
    s = season(t) if season_letter is None else season_letter
    return s + t.strftime("%y%m%d%H%M%S")


def is_offpeak(t: datetime) -> bool:
    tt = t.time()
    return tt >= time(22, 0) or tt < time(6, 0)


def winter(d: date) -> bool:
    """Tariff winter (high season): November to March."""
    return d.month in (11, 12, 1, 2, 3)


class Calendar:
    """Tempo colours and EJP days: deterministic per seed and date, overridable.

    A Tempo day runs from 06:00 to 06:00 the next day; tomorrow's colour is announced from
    ``TEMPO_ANNOUNCE_HOUR``. An EJP peak runs from 07:00 to 01:00 the next day, with a 30-minute
    notice (PEJP) before it.
    """

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.tempo: dict[date, str] = {}
        self.ejp: dict[date, bool] = {}

    def _draw(self, kind: str, d: date) -> float:
        return random.Random("%s:%s:%d" % (kind, self.seed, d.toordinal())).random()

    def tempo_colour(self, d: date) -> str:
        if d in self.tempo:
            return self.tempo[d]
        if d.weekday() == 6:
            return BLEU
        r = self._draw("tempo", d)
        if winter(d) and d.weekday() < 5 and r < 0.16:
            return ROUGE
        if r < (0.35 if winter(d) else 0.08):
            return BLANC
        return BLEU

    @staticmethod
    def tempo_day(t: datetime) -> date:
        return (t - timedelta(hours=6)).date()

    def tempo_today(self, t: datetime) -> str:
        return self.tempo_colour(self.tempo_day(t))

    def tempo_tomorrow(self, t: datetime) -> str | None:
        """Tomorrow's colour once announced (20:00 to 06:00), else None."""
        if t.hour >= TEMPO_ANNOUNCE_HOUR or t.hour < 6:
            return self.tempo_colour(self.tempo_day(t) + timedelta(days=1))
        return None

    def is_ejp_day(self, d: date) -> bool:
        if d in self.ejp:
            return self.ejp[d]
        return winter(d) and d.weekday() < 5 and self._draw("ejp", d) < 0.2

    def ejp_peak(self, t: datetime) -> bool:
        d = t.date()
        if t.hour >= 7 and self.is_ejp_day(d):
            return True
        return t.hour < 1 and self.is_ejp_day(d - timedelta(days=1))

    def ejp_notice(self, t: datetime) -> bool:
        """PEJP is sent 30 minutes before and during a peak."""
        return self.ejp_peak(t) or (t.time() >= time(6, 30) and t.hour < 7
                                    and self.is_ejp_day(t.date()))


# --- load model -------------------------------------------------------------------------------

class Load:
    """Active power that varies smoothly: a daily profile times a slow random factor
    (Ornstein-Uhlenbeck on its logarithm), plus a little measurement noise."""

    def __init__(self, rng: random.Random, base: float, peak: float, limit: float,
                 tau: float = 900.0, sigma: float = 0.25):
        self.rng = rng
        self.base, self.peak, self.limit = base, peak, limit
        self.tau, self.sigma = tau, sigma
        self._x = rng.gauss(0.0, sigma / 2)

    def profile(self, t: datetime) -> float:
        h = t.hour + t.minute / 60 + t.second / 3600
        shape = (0.2 + 0.45 * math.exp(-((h - 7.5) / 1.3) ** 2)
                 + 0.25 * math.exp(-((h - 12.5) / 1.0) ** 2)
                 + 0.8 * math.exp(-((h - 19.5) / 2.0) ** 2))
        return self.base + (self.peak - self.base) * min(shape, 1.0)

    def step(self, t: datetime, dt: float) -> float:
        a = math.exp(-dt / self.tau)
        self._x = self._x * a + self.sigma * math.sqrt(1 - a * a) * self.rng.gauss(0.0, 1.0)
        p = self.profile(t) * math.exp(self._x) * (1 + 0.02 * self.rng.gauss(0.0, 1.0))
        return min(max(p, 0.02 * self.limit), 0.9 * self.limit)


class Window:
    """Running mean of a quantity over fixed clock-aligned periods (10 min, 30 min...)."""

    def __init__(self, period: float, initial: float, t: datetime):
        self.period = period
        self.last = initial
        self._bucket = self._bucket_of(t)
        self.last_end = self.start_of(self._bucket)
        self.history: deque[tuple[datetime, float]] = deque(maxlen=6)
        self._sum = 0.0
        self._dt = 0.0

    _EPOCH = datetime(2000, 1, 1)

    def _bucket_of(self, t: datetime) -> int:
        return int((t - self._EPOCH).total_seconds() // self.period)

    def start_of(self, bucket: int) -> datetime:
        return self._EPOCH + timedelta(seconds=bucket * self.period)

    @property
    def running(self) -> float:
        return self._sum / self._dt if self._dt else self.last

    @property
    def running_sum(self) -> float:
        """Integral of the quantity since the start of the current period (value x seconds)."""
        return self._sum

    def add(self, t: datetime, value: float, dt: float) -> bool:
        """Account ``value`` over the ``dt`` seconds ending at ``t``; True when a period closed."""
        b = self._bucket_of(t)
        if b != self._bucket:
            if self._dt:
                self.last = self._sum / self._dt
            self.last_end = self.start_of(b)
            self.history.appendleft((self.last_end, self.last))
            self._bucket = b
            self._sum = self._dt = 0.0
            self._sum += value * dt
            self._dt += dt
            return True
        self._sum += value * dt
        self._dt += dt
        return False


# --- base meter -------------------------------------------------------------------------------

def _sep_name(separator) -> str:
    if separator in (None, ""):
        return ""
    if isinstance(separator, int):
        separator = {0x20: "SP", 0x09: "HT"}.get(separator, "?")
    s = str(separator).upper()
    s = {" ": "SP", "\t": "HT", "SPACE": "SP", "TAB": "HT"}.get(str(separator), s)
    if s not in SEPARATORS:
        raise ValueError("separator must be SP or HT, not %r" % separator)
    return s


class Meter:
    """Common base: identity, line settings, simulated clock, load, corruption.

    Subclasses implement ``groups()`` (the (label, value[, horodate]) tuples of the next frame at
    the current clock) and may override ``_plan()`` (which kind of frame comes next and how much
    simulated time it takes) and ``_tick()`` (per-step bookkeeping).
    """

    family = ""
    modes: tuple[str, ...] = (HISTORIC,)
    #: labels whose numbers never decrease (energy indexes); checked by the tests.
    index_labels: tuple[str, ...] = ()
    #: when set, ``index_labels`` are monotonic only while this label keeps its value.
    index_scope: str | None = None

    def __init__(self, mode: str | None = None, seed: int = 0, *, serial: str | None = None,
                 baud: int | None = None, separator=None, start: datetime | None = None,
                 interval: float | None = None, corruption: "Corruption | str | None" = None,
                 eight_bit: bool = False, phases: int = 1):
        mode = mode or self.modes[0]
        if mode not in self.modes:
            raise ValueError("%s has no %r mode (modes: %s)" % (self.family, mode,
                                                              ", ".join(self.modes)))
        self.mode = mode
        self.seed = seed
        defaults = FAMILY_DEFAULTS[self.family][mode]
        self.baud = int(baud or defaults.baud)
        self.separator = _sep_name(separator) or defaults.separator
        if mode == STANDARD and self.separator != "HT":
            raise ValueError("standard mode needs the HT separator")
        #: codec mode used to encode groups: SP -> mode 1 checksum, HT -> mode 2 checksum
        self.wire_mode = HISTORIC if self.separator == "SP" else STANDARD
        if phases not in (1, 3):
            raise ValueError("phases must be 1 or 3")
        self.phases = phases
        self.rng = random.Random(seed)
        self._crng = random.Random("corrupt:%d" % seed)
        self.serial = serial or self._default_serial(
            random.Random("serial:%s:%d" % (self.family, seed)))
        if len(self.serial) != 12 or not self.serial.isdigit():
            raise ValueError("a meter address has 12 digits: %r" % self.serial)
        self.clock = start or DEFAULT_START
        self.elapsed = 0.0
        self.interval = float(interval) if interval else (
            STANDARD_INTERVAL if mode == STANDARD else HISTORIC_INTERVAL)
        self.corruption = Corruption.parse(corruption)
        self.injected = Injected()
        self.eight_bit = eight_bit
        self.calendar = Calendar(seed)
        self.frame_count = 0
        self.last_groups: list[tuple] = []
        self.last_kind = "long"
        # overload: [start, end) in elapsed seconds, phases concerned; optional periodic trigger
        self._ov_start: float | None = None
        self._ov_end: float | None = None
        self.overload_phases: tuple[int, ...] = (1,)
        self.overload_every: float | None = None
        self.overload_duration = 30.0
        self._next_ov: float | None = None
        # electrical state (filled by _electrical)
        self.pf = 0.93
        self.power = 0.0                         # W, total active
        self.phase_va = [0.0] * phases           # VA per phase
        self.voltage = [230.0] * phases          # V per phase
        self.energy: dict[str, float] = {}       # Wh per register
        self._shares = self._phase_shares()
        self.load = self._make_load()
        self.power = self.load.step(self.clock, 1.0)
        self._electrical()

    # -- identity ---------------------------------------------------------------------------
    def type_code(self) -> int:
        return TYPE_CODES[self.family]

    def _default_serial(self, r: random.Random) -> str:
        mfr = r.choice((2, 3, 4)) if self.family == LINKY else r.choice((2, 3, 6))
        year = r.randint(15, 23) if self.family == LINKY else r.randint(5, 13)
        return "%02d%02d%02d%06d" % (mfr, year, self.type_code(), r.randrange(10 ** 6))

    # -- load ---------------------------------------------------------------------------------
    #: (base W, peak W, limit VA) of the default load; subclasses set their own.
    def _make_load(self) -> Load:
        return Load(self.rng, 300.0, 3500.0, 6000.0)

    @property
    def limit_va(self) -> float:
        return self.load.limit

    def _phase_shares(self) -> list[float]:
        if self.phases == 1:
            return [1.0]
        w = [0.8 + 0.4 * self.rng.random() for _ in range(3)]
        s = sum(w)
        return [x / s for x in w]

    # -- overload -----------------------------------------------------------------------------
    def overload(self, duration: float = 30.0, phases: tuple[int, ...] = (1,)) -> None:
        """Start an overload now for ``duration`` simulated seconds on ``phases``."""
        self._ov_start = self.elapsed
        self._ov_end = self.elapsed + duration
        self.overload_phases = tuple(sorted(p for p in phases if 1 <= p <= self.phases)) or (1,)

    def schedule_overloads(self, every: float, duration: float = 30.0) -> None:
        """Trigger an overload every ``every`` simulated seconds (first one after ``every``)."""
        self.overload_every = every
        self.overload_duration = duration
        self._next_ov = self.elapsed + every

    @property
    def overloaded(self) -> bool:
        return (self._ov_end is not None and self._ov_start is not None
                and self._ov_start <= self.elapsed < self._ov_end)

    @property
    def overload_window(self) -> bool:
        """Overload active or ended less than one minute ago (CBETM short-frame cycle)."""
        return (self._ov_end is not None and self._ov_start is not None
                and self._ov_start <= self.elapsed < self._ov_end + 60.0)

    def _overload_current(self) -> float:
        """Current (A) drawn on an overloaded phase."""
        return self.limit_va / self.phases / 230.0 * 1.2

    # -- time ---------------------------------------------------------------------------------
    def advance(self, seconds: float) -> None:
        """Let simulated time pass without sending frames (energy keeps growing)."""
        remaining = float(seconds)
        while remaining > 1e-9:
            step = min(remaining, 60.0)
            self._step(step)
            remaining -= step

    def _step(self, dt: float) -> None:
        p_prev = self.power
        self.clock += timedelta(seconds=dt)
        self.elapsed += dt
        if self._next_ov is not None and self.elapsed >= self._next_ov:
            self.overload(self.overload_duration,
                          (self.rng.randint(1, self.phases),))
            self._next_ov += self.overload_every
        self.power = self.load.step(self.clock, dt)
        self.pf = min(0.99, max(0.80, 0.93 + 0.01 * self.rng.gauss(0.0, 1.0)))
        self._electrical()
        wh = (p_prev + self.power) / 2 * dt / 3600.0
        for reg, share in self._registers(wh):
            self.energy[reg] = self.energy.get(reg, 0.0) + share
        self._tick(dt)

    def _electrical(self) -> None:
        """Derive per-phase VA and voltages from the active power, applying any overload."""
        va = self.power / self.pf
        self.phase_va = [va * s * (1 + 0.03 * self.rng.gauss(0.0, 1.0)) for s in self._shares]
        self.phase_va = [max(v, 10.0) for v in self.phase_va]
        self.voltage = [231.0 + 2.5 * math.sin(self.elapsed / 700.0 + i)
                        + 0.7 * self.rng.gauss(0.0, 1.0) for i in range(self.phases)]
        if self.overloaded:
            for p in self.overload_phases:
                self.phase_va[p - 1] = self._overload_current() * self.voltage[p - 1]
            self.power = sum(self.phase_va) * self.pf

    @property
    def apparent(self) -> float:
        return sum(self.phase_va)

    def currents(self) -> list[int]:
        return [int(round(va / v)) for va, v in zip(self.phase_va, self.voltage)]

    def _registers(self, wh: float) -> list[tuple[str, float]]:
        """Where the energy of a step goes: [(register, Wh)]."""
        return []

    def _tick(self, dt: float) -> None:
        """Per-step bookkeeping of a family (maxima, averages)."""

    # -- frames -------------------------------------------------------------------------------
    def _plan(self) -> tuple[str, float]:
        """The kind of the next frame and its duration in simulated seconds."""
        return "long", self.interval

    def groups(self, kind: str = "long") -> list[tuple]:
        raise NotImplementedError

    def next_frame(self) -> bytes:
        """Advance simulated time by one frame interval and return the next frame's bytes."""
        kind, dt = self._plan()
        self.advance(dt)
        self.last_kind = kind
        groups = self.groups(kind)
        self.last_groups = groups
        self.frame_count += 1
        return self._wire(groups)

    def frames(self, n: int) -> list[bytes]:
        return [self.next_frame() for _ in range(n)]

    def _wire(self, groups: list[tuple]) -> bytes:
        c, inj, r = self.corruption, self.injected, self._crng
        parts = [b"\x02"]
        spans: list[tuple[int, int]] = []   # (end offset, corrupted?) of each group
        pos = 1
        for g in groups:
            bad = bool(c.checksum) and r.random() < c.checksum
            enc = encode_group(g[0], g[1], g[2] if len(g) > 2 else None, self.wire_mode,
                               corrupt_checksum=bad)
            parts.append(enc)
            pos += len(enc)
            spans.append((pos, bad))
        parts.append(b"\x03")
        data = b"".join(parts)
        inj.frames += 1
        inj.groups += len(groups)
        cut = len(data)
        if c.eot and r.random() < c.eot:
            cut = r.randrange(1, len(data) - 1)
            data = data[:cut] + b"\x04"
            inj.eots += 1
        inj.bad_checksums += sum(1 for end, bad in spans if bad and end <= cut)
        if c.lost:
            kept = bytearray()
            for b in data:
                if r.random() < c.lost:
                    inj.lost_bytes += 1
                else:
                    kept.append(b)
            data = bytes(kept)
        if self.eight_bit:
            data = with_parity(data)
        if c.parity:
            buf = bytearray(data)
            for i in range(len(buf)):
                if r.random() < c.parity:
                    buf[i] = (buf[i] ^ 0x80) if self.eight_bit else 0
                    inj.parity_errors += 1
            data = bytes(buf)
        if c.noise and r.random() < c.noise:
            noise = bytes(r.randrange(0x20, 0x7F) for _ in range(r.randint(1, 16)))
            if self.eight_bit:
                noise = with_parity(noise)
            inj.noise_bursts += 1
            inj.noise_bytes += len(noise)
            data = noise + data
        inj.bytes += len(data)
        return data

    def describe(self) -> str:
        return "%s %s %d bd %s serial %s" % (self.family, self.mode, self.baud, self.separator,
                                             self.serial)

    def __repr__(self) -> str:
        return "<%s %s>" % (type(self).__name__, self.describe())


# --- historic "Bleu" meters: CBEMM, CBEMM-ICC, CBETM, Linky historic --------------------------

OPTARIF = {"BASE": "BASE", "HC": "HC..", "EJP": "EJP.", "TEMPO": "BBR("}
HHPHC = {"BASE": "A", "HC": "C", "EJP": "A", "TEMPO": "Y"}
HISTORIC_REGISTERS = {
    "BASE": ("BASE",),
    "HC": ("HCHC", "HCHP"),
    "EJP": ("EJPHN", "EJPHPM"),
    "TEMPO": ("BBRHCJB", "BBRHPJB", "BBRHCJW", "BBRHPJW", "BBRHCJR", "BBRHPJR"),
}
PTEC_REGISTER = {"TH..": "BASE", "HC..": "HCHC", "HP..": "HCHP", "HN..": "EJPHN",
                 "PM..": "EJPHPM", "HCJB": "BBRHCJB", "HPJB": "BBRHPJB", "HCJW": "BBRHCJW",
                 "HPJW": "BBRHPJW", "HCJR": "BBRHCJR", "HPJR": "BBRHPJR"}
_COLOUR_LETTER = {BLEU: "B", BLANC: "W", ROUGE: "R"}


class _TariffMixin:
    """Tariff option shared by historic and Linky meters."""

    tariff: str
    calendar: Calendar
    clock: datetime

    def period(self) -> str:
        """The PTEC value for the current clock."""
        t = self.clock
        if self.tariff == "BASE":
            return "TH.."
        if self.tariff == "HC":
            return "HC.." if is_offpeak(t) else "HP.."
        if self.tariff == "EJP":
            return "PM.." if self.calendar.ejp_peak(t) else "HN.."
        hc = "HC" if is_offpeak(t) else "HP"
        return hc + "J" + _COLOUR_LETTER[self.calendar.tempo_today(t)]

    def set_tempo(self, today: str | None = None, tomorrow: str | None = None) -> None:
        """Force the colour of the current Tempo day and/or the next one (BLEU/BLAN/ROUG)."""
        d = self.calendar.tempo_day(self.clock)
        for day, colour in ((d, today), (d + timedelta(days=1), tomorrow)):
            if colour is not None:
                colour = colour.upper()[:4]
                if colour not in TEMPO_CODE:
                    raise ValueError("Tempo colour must be BLEU, BLAN or ROUG")
                self.calendar.tempo[day] = colour


class HistoricMeter(_TariffMixin, Meter):
    """The CBEMM / CBEMM-ICC / CBETM label sets (reference section 2.1), single or three phase.

    Options: ``tariff`` (BASE, HC, EJP, TEMPO), ``isousc`` (A per phase).
    """

    has_papp = False
    short_frames = False       # CBETM overload cycle: 20 short frames then 1 long
    default_tariff = "HC"
    default_phases = 1

    def __init__(self, mode: str | None = None, seed: int = 0, *, tariff: str | None = None,
                 isousc: int | None = None, phases: int | None = None, **kw):
        self.tariff = (tariff or self.default_tariff).upper()
        if self.tariff not in TARIFFS:
            raise ValueError("tariff must be one of %s" % ", ".join(TARIFFS))
        phases = phases or self.default_phases
        self.isousc = int(isousc or (30 if phases == 1 else 20))
        super().__init__(mode, seed, phases=phases, **kw)
        self._cycle = 0
        r = random.Random("index:%d" % seed)
        for reg in HISTORIC_REGISTERS[self.tariff]:
            self.energy[reg] = float(r.randrange(1_000_000, 30_000_000))
        self.imax = [max(c, int(self.isousc * 0.9)) for c in self.currents()]
        self.pmax = int(self.power)
        self.index_labels = HISTORIC_REGISTERS[self.tariff]

    def _make_load(self) -> Load:
        limit = self.isousc * 200.0 * self.phases
        return Load(self.rng, 0.05 * limit, 0.55 * limit, limit)

    def _registers(self, wh: float):
        return [(PTEC_REGISTER[self.period()], wh)]

    def _tick(self, dt: float) -> None:
        self.imax = [max(a, b) for a, b in zip(self.imax, self.currents())]
        self.pmax = max(self.pmax, int(self.power))

    def _plan(self) -> tuple[str, float]:
        if self.short_frames and self.overload_window:
            pos = self._cycle % 21
            self._cycle += 1
            if pos < 20:
                return "short", SHORT_INTERVAL
            return "long", self.interval
        self._cycle = 0
        return "long", self.interval

    def _imax_values(self) -> list[str]:
        return ["%03d" % min(i, 999) for i in self.imax]

    def groups(self, kind: str = "long") -> list[tuple]:
        cur = ["%03d" % min(i, 999) for i in self.currents()]
        if kind == "short":
            g: list[tuple] = [("ADIR%d" % p, cur[p - 1]) for p in self.overload_phases]
            g.append(("ADCO", self.serial))
            g += [("IINST%d" % (i + 1), cur[i]) for i in range(3)]
            return g
        t = self.clock
        g = [("ADCO", self.serial), ("OPTARIF", OPTARIF[self.tariff]),
             ("ISOUSC", "%02d" % self.isousc)]
        g += [(reg, "%09d" % int(self.energy[reg])) for reg in HISTORIC_REGISTERS[self.tariff]]
        if self.tariff == "EJP" and self.calendar.ejp_notice(t):
            g.append(("PEJP", "30"))
        g.append(("PTEC", self.period()))
        if self.tariff == "TEMPO":
            g.append(("DEMAIN", self.calendar.tempo_tomorrow(t) or "----"))
        imax = self._imax_values()
        if self.phases == 1:
            g.append(("IINST", cur[0]))
            if self.overloaded:
                g.append(("ADPS", cur[0]))
            g.append(("IMAX", imax[0]))
        else:
            g += [("IINST%d" % (i + 1), cur[i]) for i in range(3)]
            g += [("IMAX%d" % (i + 1), imax[i]) for i in range(3)]
            g.append(("PMAX", "%05d" % min(self.pmax, 99999)))
        if self.has_papp:
            g.append(("PAPP", "%05d" % min(int(round(self.apparent / 10.0)) * 10, 99990)))
        g.append(("HHPHC", HHPHC[self.tariff]))
        g.append(("MOTDETAT", "000000"))
        if self.phases == 3:
            g.append(("PPOT", "00"))
        return g


class Cbemm(HistoricMeter):
    """Single-phase electronic meter, without PAPP."""

    family = CBEMM
    default_tariff = "HC"


class CbemmIcc(HistoricMeter):
    """Single-phase "évolution ICC": the CBEMM set plus PAPP."""

    family = CBEMM_ICC
    has_papp = True
    default_tariff = "TEMPO"


class Cbetm(HistoricMeter):
    """Three-phase meter: IINST1..3, IMAX1..3, PMAX, PAPP, PPOT, and overload short frames."""

    family = CBETM
    has_papp = True
    short_frames = True
    default_tariff = "EJP"
    default_phases = 3

    def __init__(self, mode: str | None = None, seed: int = 0, **kw):
        if kw.get("phases", 3) != 3:
            raise ValueError("a CBETM is three-phase")
        kw["phases"] = 3
        super().__init__(mode, seed, **kw)


class LinkyHistoric(HistoricMeter):
    """Linky in historic mode: the CBEMM-ICC set (single phase, IMAX 090) or the CBETM set
    (three phase, IMAX1..3 060), with ADCO = the meter's ADSC (type 60-76)."""

    family = LINKY
    modes = (HISTORIC, STANDARD)
    has_papp = True
    default_tariff = "BASE"

    def __init__(self, mode: str | None = HISTORIC, seed: int = 0, **kw):
        super().__init__(mode or HISTORIC, seed, **kw)

    def type_code(self) -> int:
        return LINKY_TYPE[self.phases]

    def _imax_values(self) -> list[str]:
        return ["090"] if self.phases == 1 else ["060"] * 3


# --- Linky standard -----------------------------------------------------------------------

NGTF = {"BASE": "      BASE      ", "HC": "H PLEINE/CREUSE ", "EJP": "      EJP       ",
        "TEMPO": "     TEMPO      "}
_COLOUR_WORD = {BLEU: "BLEU", BLANC: "BLANC", ROUGE: "ROUGE"}
MSG1 = "PAS DE          MESSAGE         "


class LinkyStandard(_TariffMixin, Meter):
    """Linky in standard mode (NOI-CPT_54E): 9600 bd, HT, horodates, STGE.

    Supplier indexes (NTARF = EASF index): BASE 01; HC 01 HC, 02 HP; EJP 01 HN, 02 PM; TEMPO
    01 HCJB, 02 HPJB, 03 HCJW, 04 HPJW, 05 HCJR, 06 HPJR. Distributor indexes (our convention):
    EASD01 HP high season, 02 HC high season, 03 HP low season, 04 HC low season.
    Options: ``tariff``, ``pref`` (kVA), ``phases``.
    """

    family = LINKY
    modes = (STANDARD, HISTORIC)
    index_labels = ("EAST",) + tuple("EASF%02d" % i for i in range(1, 11)) + tuple(
        "EASD%02d" % i for i in range(1, 5))

    def __init__(self, mode: str | None = STANDARD, seed: int = 0, *, tariff: str | None = None,
                 pref: int | None = None, phases: int = 1, **kw):
        self.tariff = (tariff or "TEMPO").upper()
        if self.tariff not in TARIFFS:
            raise ValueError("tariff must be one of %s" % ", ".join(TARIFFS))
        self.pref = int(pref or (9 if phases == 1 else 12))
        super().__init__(mode or STANDARD, seed, phases=phases, **kw)
        if self.mode != STANDARD:
            raise ValueError("LinkyStandard is the standard mode; use LinkyHistoric")
        r = random.Random("index:%d" % seed)
        for i in range(1, 11):
            self.energy["EASF%02d" % i] = 0.0
        for i in range(1, 5):
            self.energy["EASD%02d" % i] = 0.0
        n = {"BASE": 1, "HC": 2, "EJP": 2, "TEMPO": 6}[self.tariff]
        total = 0.0
        for i in range(1, n + 1):
            v = float(r.randrange(500_000, 9_000_000))
            self.energy["EASF%02d" % i] = v
            total += v
        for i, share in enumerate((0.45, 0.2, 0.25, 0.1), start=1):
            self.energy["EASD%02d" % i] = total * share
        self.prm = "%014d" % r.randrange(10 ** 13, 10 ** 14)
        t = self.clock
        va = self.apparent
        self.smax = (va, t)
        self.smax_phase = [(v, t) for v in self.phase_va]
        y = datetime.combine(t.date() - timedelta(days=1), time(19, 12, 4))
        self.smax_y = (self.limit_va * (0.4 + 0.3 * r.random()), y)
        self.smax_y_phase = [(self.smax_y[0] / self.phases, y)] * self.phases
        self.cca = Window(1800.0, self.power, t)
        self.cca.history.append((self.cca.last_end, self.power))
        self._cca_before = (self.cca.last_end - timedelta(minutes=30), self.power * 0.9)
        self.umoy = [Window(600.0, v, t) for v in self.voltage]

    def type_code(self) -> int:
        return LINKY_TYPE[self.phases]

    def _make_load(self) -> Load:
        limit = self.pref * 1000.0
        return Load(self.rng, 0.04 * limit, 0.5 * limit, limit)

    @property
    def limit_va(self) -> float:
        return self.pref * 1000.0

    def ntarf(self) -> int:
        p = self.period()
        if self.tariff == "BASE":
            return 1
        if self.tariff in ("HC", "EJP"):
            return 1 if p in ("HC..", "HN..") else 2
        return {"HCJB": 1, "HPJB": 2, "HCJW": 3, "HPJW": 4, "HCJR": 5, "HPJR": 6}[p]

    def distributor_index(self) -> int:
        off = is_offpeak(self.clock)
        high = winter(self.clock.date())
        return (2 if off else 1) if high else (4 if off else 3)

    def _registers(self, wh: float):
        return [("EASF%02d" % self.ntarf(), wh), ("EASD%02d" % self.distributor_index(), wh)]

    def _tick(self, dt: float) -> None:
        t = self.clock
        va = self.apparent
        if t.date() != self.smax[1].date():
            self.smax_y, self.smax = self.smax, (va, t)
            self.smax_y_phase = self.smax_phase
            self.smax_phase = [(v, t) for v in self.phase_va]
        if va > self.smax[0]:
            self.smax = (va, t)
        self.smax_phase = [(v, t) if v > m[0] else m for v, m in zip(self.phase_va,
                                                                     self.smax_phase)]
        self.cca.add(t, self.power, dt)
        for w, v in zip(self.umoy, self.voltage):
            w.add(t, v, dt)

    def ltarf(self) -> str:
        p = self.period()
        if self.tariff == "BASE":
            text = "BASE"
        elif self.tariff == "HC":
            text = "HEURE  CREUSE" if p == "HC.." else "HEURE  PLEINE"
        elif self.tariff == "EJP":
            text = "HEURE  NORMALE" if p == "HN.." else "HEURE  POINTE"
        else:
            text = "%s  %s" % (p[:2], _COLOUR_WORD[self.calendar.tempo_today(self.clock)])
        return text.center(16)

    def stge(self) -> str:
        tempo = self.tariff == "TEMPO"
        tomorrow = self.calendar.tempo_tomorrow(self.clock) if tempo else None
        return encode_stge(
            dry_contact_open=1,
            overload=int(self.overloaded),
            supplier_tariff_index=self.ntarf() - 1,
            distributor_tariff_index=self.distributor_index() - 1,
            standard_mode=1,
            euridis=3,
            cpl_status=1,
            tempo_today=TEMPO_CODE[self.calendar.tempo_today(self.clock)] if tempo else 0,
            tempo_tomorrow=TEMPO_CODE[tomorrow] if tomorrow else 0,
        )

    def pjourf_next(self) -> str:
        """Next-day profile: 11 blocks ``hhmmSSSS`` (or NONUTILE), SSSS = 40 + NTARF."""
        if self.tariff == "BASE":
            switches = [(0, 1)]
        elif self.tariff in ("HC", "EJP"):
            switches = [(0, 1), (6 * 60, 2), (22 * 60, 1)]
        else:
            d = self.calendar.tempo_day(self.clock) + timedelta(days=1)
            base = {BLEU: 1, BLANC: 3, ROUGE: 5}[self.calendar.tempo_colour(d)]
            switches = [(0, base), (6 * 60, base + 1), (22 * 60, base)]
        blocks = ["%02d%02d40%02d" % (m // 60, m % 60, n) for m, n in switches]
        blocks += ["NONUTILE"] * (11 - len(blocks))
        return " ".join(blocks)

    def groups(self, kind: str = "long") -> list[tuple]:
        t = self.clock
        ph = range(1, self.phases + 1)
        east = sum(int(self.energy["EASF%02d" % i]) for i in range(1, 11))
        g: list[tuple] = [("ADSC", self.serial), ("VTIC", "02"), ("DATE", "", horodate(t)),
                          ("NGTF", NGTF[self.tariff]), ("LTARF", self.ltarf()),
                          ("EAST", "%09d" % int(east))]
        g += [("EASF%02d" % i, "%09d" % int(self.energy["EASF%02d" % i])) for i in range(1, 11)]
        g += [("EASD%02d" % i, "%09d" % int(self.energy["EASD%02d" % i])) for i in range(1, 5)]
        cur = self.currents()
        g += [("IRMS%d" % i, "%03d" % min(cur[i - 1], 999)) for i in ph]
        g += [("URMS%d" % i, "%03d" % int(round(self.voltage[i - 1]))) for i in ph]
        g += [("PREF", "%02d" % self.pref), ("PCOUP", "%02d" % self.pref),
              ("SINSTS", "%05d" % min(int(self.apparent), 99999))]
        if self.phases == 3:
            g += [("SINSTS%d" % i, "%05d" % int(self.phase_va[i - 1])) for i in ph]
        g.append(("SMAXSN", "%05d" % int(self.smax[0]), horodate(self.smax[1])))
        if self.phases == 3:
            g += [("SMAXSN%d" % i, "%05d" % int(self.smax_phase[i - 1][0]),
                   horodate(self.smax_phase[i - 1][1])) for i in ph]
        g.append(("SMAXSN-1", "%05d" % int(self.smax_y[0]), horodate(self.smax_y[1])))
        if self.phases == 3:
            g += [("SMAXSN%d-1" % i, "%05d" % int(self.smax_y_phase[i - 1][0]),
                   horodate(self.smax_y_phase[i - 1][1])) for i in ph]
        g.append(("CCASN", "%05d" % int(self.cca.last), horodate(self.cca.last_end)))
        end, value = self.cca.history[1] if len(self.cca.history) > 1 else self._cca_before
        g.append(("CCASN-1", "%05d" % int(value), horodate(end)))
        g += [("UMOY%d" % i, "%03d" % int(round(self.umoy[i - 1].last)),
               horodate(self.umoy[i - 1].last_end)) for i in ph]
        g.append(("STGE", self.stge()))
        if self.tariff == "TEMPO":
            # mobile peak window of today, with the blank season letter seen in real captures
            day = self.calendar.tempo_day(t)
            start = datetime.combine(day, time(6))
            g.append(("DPM1", "00", horodate(start, " ")))
            g.append(("FPM1", "00", horodate(start + timedelta(days=1), " ")))
        g += [("MSG1", MSG1), ("PRM", self.prm), ("RELAIS", "000"),
              ("NTARF", "%02d" % self.ntarf()), ("NJOURF", "00"), ("NJOURF+1", "00"),
              ("PJOURF+1", self.pjourf_next())]
        return g


class Linky:
    """Factory: ``Linky(mode="historic"|"standard", ...)`` returns the class for the mode."""

    def __new__(cls, mode: str | None = None, seed: int = 0, **kw):
        if (mode or HISTORIC) == STANDARD:
            return LinkyStandard(STANDARD, seed, **kw)
        return LinkyHistoric(HISTORIC, seed, **kw)


# --- CJE, ICE, PME-PMI --------------------------------------------------------------------

def _class_code(t: datetime) -> str:
    """Jaune / Emeraude 4-class calendar: HP/HC in high (winter) or low season."""
    off = is_offpeak(t)
    if winter(t.date()):
        return "HCH" if off else "HPH"
    return "HCE" if off else "HPE"


CLASSES = ("HPH", "HCH", "HPE", "HCE")


class Cje(Meter):
    """Compteur Jaune Electronique (reference section 2.3, Watteco value layouts).

    JAUNE ``hh:mn:jj:mm:pt:dp:abcde:kp``: pt = tariff period code (11 HP winter, 12 HC winter,
    21 HP summer, 22 HC summer, after the Bernaerts list), dp = 00, abcde = mean power over the
    last 10 minutes in kW, kp = power factor in percent (our reading of the undocumented fields).
    ENERG: registers 1-4 = kWh per period (same order), 5 = reactive kvarh, 6 = spare (0).
    """

    family = CJE
    index_labels = ("ENERG",)
    PERIOD_CODE = {"HPH": "11", "HCH": "12", "HPE": "21", "HCE": "22"}

    def __init__(self, mode: str | None = None, seed: int = 0, *, psousc: int = 60, **kw):
        self.psousc = int(psousc)
        super().__init__(mode, seed, **kw)
        r = random.Random("index:%d" % seed)
        for i in range(1, 7):
            self.energy["R%d" % i] = float(r.randrange(10_000, 400_000) * 1000) if i < 6 else 0.0
        self.pmax = {c: 0.0 for c in CLASSES}
        self.tdepa = {c: 0.0 for c in CLASSES}   # minutes above PSOUSC
        self.pmax_prev = [int(self.psousc * (0.6 + 0.3 * r.random())) for _ in CLASSES]
        self.p10 = Window(600.0, self.power, self.clock)

    def _make_load(self) -> Load:
        limit = self.psousc * 1000.0 * 1.1
        return Load(self.rng, 0.15 * limit, 0.7 * limit, limit)

    def _overload_current(self) -> float:
        return self.psousc * 1000.0 * 1.15 / 230.0 / self.phases

    def _registers(self, wh: float):
        reg = "R%d" % (CLASSES.index(_class_code(self.clock)) + 1)
        return [(reg, wh), ("R5", wh * 0.3)]

    def _tick(self, dt: float) -> None:
        c = _class_code(self.clock)
        self.pmax[c] = max(self.pmax[c], self.power)
        if self.power > self.psousc * 1000.0:
            self.tdepa[c] += dt / 60.0
        self.p10.add(self.clock, self.power, dt)

    def groups(self, kind: str = "long") -> list[tuple]:
        t = self.clock
        c = _class_code(t)
        kw10 = int(self.p10.last / 1000.0)
        jaune = "%02d:%02d:%02d:%02d:%s:00:%05d:%02d" % (
            t.hour, t.minute, t.day, t.month, self.PERIOD_CODE[c], kw10,
            min(int(self.pf * 100), 99))
        energ = ":".join("%06d" % (int(self.energy["R%d" % i] / 1000.0) % 10 ** 6)
                         for i in range(1, 7))
        period_start = "%02d:%02d:00:01" % (1, t.month)
        prev_month = (t.replace(day=1) - timedelta(days=1)).month
        four = lambda vals: ":".join("%05d" % min(int(v), 99999) for v in vals)  # noqa: E731
        return [
            ("ADS", self.serial),
            ("JAUNE", jaune),
            ("ENERG", energ),
            ("PERCC", period_start),
            ("PMAXC", four(self.pmax[k] / 1000.0 for k in CLASSES)),
            ("TDEPA", four(self.tdepa[k] for k in CLASSES)),
            ("PERCP", "%02d:%02d:00:01" % (1, prev_month)),
            ("PMAXP", four(self.pmax_prev)),
            ("PSOUSC", four([self.psousc] * 4)),
            ("PSOUSP", four([self.psousc] * 4)),
            ("FCOU", "00:00:00"),
        ]


class Ice(Meter):
    """Interface Clientèle Emeraude, 2 quadrants (reference section 2.4).

    Contract ``BT 4 SUP36`` (classes HPH, HCH, HPE, HCE). Values carry their unit suffix; dates
    are ``JJ/MM/AA HH/MM/SS`` (17 characters, with a space); TGPHI uses a decimal comma. The
    period tables use the Watteco label spelling (``EApHPH``, ``ERPpHPH``; ``p1`` = previous
    period). Lengths not given by the reference (7-digit energies) are ours.
    """

    family = ICE
    index_labels = ("EA", "ERP")
    four_quadrants = False

    def __init__(self, mode: str | None = None, seed: int = 0, *, ps: int = 800, **kw):
        self.ps = int(ps)   # subscribed power, kW, same for every class
        super().__init__(mode, seed, **kw)
        r = random.Random("index:%d" % seed)
        for c in CLASSES:
            self.energy["EA" + c] = float(r.randrange(100_000, 900_000) * 1000)
            self.energy["ERP" + c] = self.energy["EA" + c] * 0.3
            self.energy["ERN" + c] = self.energy["EA" + c] * 0.02
        # energy already counted since the start of the billing period (the 1st of the month)
        month = (self.clock - datetime.combine(self.clock.date().replace(day=1), time(0)))
        frac = month.total_seconds() / (31 * 86400.0)
        self.period_start = {k: v * (1 - 0.08 * frac * (0.8 + 0.4 * r.random()))
                             for k, v in self.energy.items()}
        self.prev_period = {k: v * 0.08 for k, v in self.energy.items()}
        self.p1 = Window(60.0, self.power, self.clock)
        self.p10 = Window(600.0, self.power, self.clock)
        self.q1 = Window(60.0, self.power * 0.3, self.clock)
        self.q10 = Window(600.0, self.power * 0.3, self.clock)
        self.u10 = Window(600.0, self.voltage[0], self.clock)
        for i in range(6):
            self.p10.history.append((self.p10.last_end - timedelta(minutes=10 * i),
                                     self.power * (0.9 + 0.2 * r.random())))

    def _make_load(self) -> Load:
        limit = self.ps * 1000.0 * 1.1
        return Load(self.rng, 0.15 * limit, 0.7 * limit, limit)

    def _overload_current(self) -> float:
        return self.ps * 1000.0 * 1.15 / 230.0 / self.phases

    def type_code(self) -> int:
        return TYPE_CODES[ICE_4Q if self.four_quadrants else ICE]

    def _registers(self, wh: float):
        c = _class_code(self.clock)
        q = 0.3 + 0.05 * math.sin(self.elapsed / 900.0)
        return [("EA" + c, wh), ("ERP" + c, wh * q), ("ERN" + c, wh * 0.02)]

    def _tick(self, dt: float) -> None:
        t = self.clock
        self.p1.add(t, self.power, dt)
        self.p10.add(t, self.power, dt)
        self.q1.add(t, self.power * 0.3, dt)
        self.q10.add(t, self.power * 0.3, dt)
        self.u10.add(t, self.voltage[0], dt)

    @staticmethod
    def _date(t: datetime) -> str:
        return t.strftime("%d/%m/%y %H/%M/%S")

    def groups(self, kind: str = "long") -> list[tuple]:
        t = self.clock
        kwh = lambda wh: "%07dkWh" % (int(wh / 1000.0) % 10 ** 7)            # noqa: E731
        kvarh = lambda varh: "%07dkvarh" % (int(varh / 1000.0) % 10 ** 7)    # noqa: E731
        kw = lambda w: "%05dkW" % min(int(w / 1000.0), 99999)                 # noqa: E731
        kvar = lambda var: "%+06dkvar" % int(var / 1000.0)                    # noqa: E731
        ea = sum(self.energy["EA" + c] for c in CLASSES)
        erp = sum(self.energy["ERP" + c] for c in CLASSES)
        tgphi = erp / ea if ea else 0.0
        g: list[tuple] = [("ADS", self.serial), ("CONTRAT", "BT 4 SUP36"),
                          ("DATECOUR", self._date(t)), ("EA", kwh(ea)), ("ERP", kvarh(erp))]
        if self.four_quadrants:
            g.append(("ERN", kvarh(sum(self.energy["ERN" + c] for c in CLASSES))))
        g.append(("PTCOUR", _class_code(t)))
        for i, (end, value) in enumerate(list(self.p10.history)[:6], start=1):
            g += [("DATEPA%d" % i, self._date(end)), ("PA%d" % i, kw(value))]
        g += [("KDC", "100%"), ("KDCD", "100%"), ("TGPHI", ("%08.2f" % tgphi).replace(".", ","))]
        g += [("PS" + c, "%05dkW" % self.ps) for c in CLASSES]
        g += [("PA1MN", kw(self.p1.last)), ("PA10MN", kw(self.p10.last)),
              ("PREA1MN", kvar(self.q1.last)), ("PREA10MN", kvar(self.q10.last)),
              ("U10MN", "%06dV" % int(round(self.u10.last)))]
        start = datetime.combine(t.date().replace(day=1), time(0))
        g += [("DEBUTp", self._date(start))]
        g += [("EAp" + c, kwh(self.energy["EA" + c] - self.period_start["EA" + c]))
              for c in CLASSES]
        g += [("ERPp" + c, kvarh(self.energy["ERP" + c] - self.period_start["ERP" + c]))
              for c in CLASSES]
        if self.four_quadrants:
            g += [("ERNp" + c, kvarh(self.energy["ERN" + c] - self.period_start["ERN" + c]))
                  for c in CLASSES]
        prev_start = datetime.combine((start - timedelta(days=1)).replace(day=1), time(0))
        g += [("DEBUTp1", self._date(prev_start)), ("FINp1", self._date(start))]
        g += [("EAp1" + c, kwh(self.prev_period["EA" + c])) for c in CLASSES]
        if self.four_quadrants:
            g += [("ERNp1" + c, kvarh(self.prev_period["ERN" + c])) for c in CLASSES]
        return g


class Ice4q(Ice):
    """ICE 4 quadrants: the ICE set plus negative reactive energy (ERN*), ADS type 34."""

    family = ICE_4Q
    index_labels = ("EA", "ERP", "ERN")
    four_quadrants = True


class PmePmi(Meter):
    """PME-PMI (reference section 2.7, tic2json ``ticv01pme``): SP separator, checksum mode 1.

    DATE/DATEPAx/DebP... are ``dd/mm/yy hh:mm:ss``. ``EA_s``/``ER+_s``/``EAPP_s`` are Wh, varh,
    VAh since the last 10-minute top (they restart at each top); ``EAP_s``/``ER+P_s`` are kWh and
    kvarh of the current billing period for the current tariff class (PTCOUR1). Digit counts are
    ours (unconfirmed). No injection: the ``_i`` values stay 0.
    """

    family = PME_PMI
    index_labels = ("EAP_s", "ER+P_s")
    index_scope = "PTCOUR1"

    def __init__(self, mode: str | None = None, seed: int = 0, *, ps: int = 600, **kw):
        self.ps = int(ps)
        super().__init__(mode, seed, **kw)
        r = random.Random("index:%d" % seed)
        for c in CLASSES:
            self.energy["EA" + c] = float(r.randrange(1_000, 90_000) * 1000)
            self.energy["ER" + c] = self.energy["EA" + c] * 0.3
        self.prev = {c: r.randrange(5_000, 90_000) for c in CLASSES}
        self.pmax = {c: 0.0 for c in CLASSES}
        self.td = Window(600.0, self.power, self.clock)
        self.p1 = Window(60.0, self.power, self.clock)
        for i in range(6):
            self.td.history.append((self.td.last_end - timedelta(minutes=10 * i),
                                    self.power * (0.9 + 0.2 * r.random())))

    def _make_load(self) -> Load:
        limit = self.ps * 1000.0 * 1.1
        return Load(self.rng, 0.15 * limit, 0.7 * limit, limit)

    def _overload_current(self) -> float:
        return self.ps * 1000.0 * 1.15 / 230.0 / self.phases

    def _registers(self, wh: float):
        c = _class_code(self.clock)
        return [("EA" + c, wh), ("ER" + c, wh * 0.3)]

    def _tick(self, dt: float) -> None:
        c = _class_code(self.clock)
        self.pmax[c] = max(self.pmax[c], self.power)
        self.td.add(self.clock, self.power, dt)
        self.p1.add(self.clock, self.power, dt)

    @staticmethod
    def _date(t: datetime) -> str:
        return t.strftime("%d/%m/%y %H:%M:%S")

    def groups(self, kind: str = "long") -> list[tuple]:
        t = self.clock
        c = _class_code(t)
        wh_td = self.td.running_sum / 3600.0
        g: list[tuple] = [
            ("ADS", self.serial), ("MESURES1", "BT 4 SUP36"), ("DATE", self._date(t)),
            ("EA_s", "%06d" % int(wh_td)), ("ER+_s", "%06d" % int(wh_td * 0.3)),
            ("ER-_s", "000000"), ("EAPP_s", "%06d" % int(wh_td / self.pf)),
            ("EA_i", "000000"), ("ER+_i", "000000"), ("ER-_i", "000000"), ("EAPP_i", "000000"),
            ("PTCOUR1", c), ("TARIFDYN", "SANS"), ("CONFIG", "CONSO"),
        ]
        for i, (end, value) in enumerate(list(self.td.history)[:6], start=1):
            g += [("DATEPA%d" % i, self._date(end)), ("PA%d_s" % i, "%05d" % int(value / 1000)),
                  ("PA%d_i" % i, "00000")]
        start = datetime.combine(t.date().replace(day=1), time(0))
        prev_start = datetime.combine((start - timedelta(days=1)).replace(day=1), time(0))
        g += [("DebP", self._date(start)),
              ("EAP_s", "%07d" % int(self.energy["EA" + c] / 1000)), ("EAP_i", "0000000"),
              ("ER+P_s", "%07d" % int(self.energy["ER" + c] / 1000)), ("ER-P_s", "0000000"),
              ("ER+P_i", "0000000"), ("ER-P_i", "0000000"),
              ("DebP-1", self._date(prev_start)), ("FinP-1", self._date(start)),
              ("EaP-1_s", "%07d" % self.prev[c]), ("EaP-1_i", "0000000"),
              ("PS", "%05d" % self.ps)]
        if self.overloaded:
            g.append(("PREAVIS", "DEP"))
        g += [("PA1MN", "%05d" % int(self.p1.last / 1000)),
              ("PMAX_s", "%05d" % int(self.pmax[c] / 1000)), ("PMAX_i", "00000")]
        return g


# --- factory ------------------------------------------------------------------------------

METER_CLASSES = {CBEMM: Cbemm, CBEMM_ICC: CbemmIcc, CBETM: Cbetm, CJE: Cje, ICE: Ice,
                 ICE_4Q: Ice4q, PME_PMI: PmePmi}


def normalise_family(family: str) -> str:
    f = family.strip().upper().replace("_", "-")
    aliases = {"CBEMMICC": CBEMM_ICC, "CBEMM-EVOLUTION": CBEMM_ICC, "ICE4Q": ICE_4Q,
               "ICE-2Q": ICE, "PMEPMI": PME_PMI, "PME": PME_PMI}
    f = aliases.get(f, f)
    if f not in FAMILIES:
        raise ValueError("unknown meter family %r (known: %s)" % (family, ", ".join(FAMILIES)))
    return f


def make_meter(family: str, mode: str | None = None, seed: int = 0, **kw) -> Meter:
    """Build the simulator of ``family`` (see ``FAMILIES``); ``mode`` matters for LINKY only
    (historic, the default, or standard). Other keywords go to the class: serial, baud,
    separator, start, interval, corruption (a ``Corruption`` or its spec string), eight_bit,
    tariff, phases, isousc, pref, psousc, ps."""
    f = normalise_family(family)
    if f == LINKY:
        if (mode or HISTORIC) == STANDARD:
            return LinkyStandard(STANDARD, seed, **kw)
        if mode not in (None, HISTORIC):
            raise ValueError("LINKY mode must be historic or standard")
        return LinkyHistoric(HISTORIC, seed, **kw)
    if mode not in (None, HISTORIC):
        raise ValueError("%s has only the historic mode" % f)
    return METER_CLASSES[f](HISTORIC, seed, **kw)


# --- line model (shared by the pty server and the ticsim:// URL handler) ---------------------

class LinePacer:
    """Schedules a meter's bytes on a line: frames back to back at ``baud / 10 * speed`` bytes
    per second (7E1: 10 bits per character), with a silence of ``gap`` seconds between frames
    (the spec says 16.7-33.4 ms). ``take(now)`` returns the bytes fully sent by ``now``.

    If nobody asked for a long time (more than ``max_lag`` seconds of line time), the schedule
    jumps forward instead of producing the whole backlog: the meter was not heard meanwhile.
    """

    def __init__(self, meter: Meter, speed: float = 1.0, gap: float = 0.025,
                 max_lag: float = 2.0):
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.meter = meter
        self.speed = speed
        self.rate = meter.baud / 10.0 * speed
        self.gap = gap / speed
        self.max_lag = max_lag
        self._frame = b""
        self._pos = 0
        self._t0: float | None = None    # time at which _frame[0] starts
        self.frames = 0

    def restart(self, now: float) -> None:
        """Drop the rest of the current frame; the next frame starts at ``now``."""
        self._frame, self._pos, self._t0 = b"", 0, now

    def _next(self) -> None:
        assert self._t0 is not None
        self._t0 += len(self._frame) / self.rate + (self.gap if self._frame else 0.0)
        self._frame = self.meter.next_frame()
        self._pos = 0
        self.frames += 1

    def take(self, now: float) -> bytes:
        if self._t0 is None:
            self.restart(now)
        assert self._t0 is not None
        lag = now - (self._t0 + self._pos / self.rate)
        if lag > self.max_lag:
            self._t0 += lag - self.max_lag
        out = bytearray()
        while True:
            if self._pos >= len(self._frame):
                nxt = self._t0 + len(self._frame) / self.rate + (self.gap if self._frame else 0.0)
                if nxt > now:
                    break
                self._next()
            done = min(len(self._frame), int((now - self._t0) * self.rate))
            if done > self._pos:
                out += self._frame[self._pos:done]
                self._pos = done
            if self._pos < len(self._frame):
                break
        return bytes(out)

    def seconds_for(self, nbytes: int) -> float:
        """Roughly how long until ``nbytes`` more bytes are on the line."""
        return max(nbytes, 1) / self.rate


class LineView:
    """What a reader's UART delivers from a 7E1 line at ``baud`` given its own settings.

    - right speed, 7 data bits, even parity: the bytes as sent;
    - right speed, 8 data bits, no parity: the parity bit lands in bit 7 (``with_parity``);
    - anything else (wrong speed, odd parity, ...): deterministic garbage, about as many bytes as
      characters fit at the reader's speed, mostly bytes with bit 7 set and odd 8-bit parity so no
      decoder (7-bit or 8-bit) finds STX/ETX/LF/CR in them, plus some printable bytes.
    """

    def __init__(self, baud: int, seed: int = 0):
        self.baud = baud
        self.rng = random.Random("garbage:%d" % seed)
        self._frac = 0.0
        self.garbage_bytes = 0

    def view(self, data: bytes, baud: int | None, bytesize: int = 7, parity: str = "E") -> bytes:
        if not data:
            return data
        if baud == self.baud:
            if bytesize == 7 and parity == "E":
                return data
            if bytesize == 8 and parity == "N":
                return with_parity(data)
        return self.garbage(len(data), baud or self.baud)

    def garbage(self, n: int, baud: int) -> bytes:
        ratio = min(max(baud / self.baud, 0.05), 8.0)
        self._frac += n * ratio
        k = int(self._frac)
        self._frac -= k
        r = self.rng
        out = bytearray()
        for _ in range(k):
            if r.random() < 0.9:
                b = 0x80 | r.randrange(128)
                if bin(b).count("1") % 2 == 0:
                    b ^= 0x01
            else:
                b = r.randrange(0x20, 0x7F)
            out.append(b)
        self.garbage_bytes += k
        return bytes(out)
