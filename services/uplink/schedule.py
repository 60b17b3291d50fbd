"""When the next scheduled connection is due, from the `_var.ini` settings (DESIGN 7).

- `Connection_PeriodMin` > 0: every that many minutes (demos and tests).
- `Connection_Period` > 0: every N hours at `Connection_Minute`, counted from midnight UTC
  (WebdynPulse's example: Period=7, Minute=25 gives 00:25, 07:25, 14:25, 21:25).
- Otherwise the fixed daily times: `Connection_Hour`:`Connection_Minute`, plus
  `Connection_HourN`:`Connection_MinuteN` (N = 1..4) when one of them is not 00:00 (00:00 means
  unused for these four, as their default is 0).
Times are UTC, as every time the gateway writes.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone


def daily_times(s) -> list[tuple[int, int]]:
    times = [(int(s.connection_hour), int(s.connection_minute))]
    for n in range(1, 5):
        h = int(getattr(s, "connection_hour%d" % n))
        m = int(getattr(s, "connection_minute%d" % n))
        if (h, m) != (0, 0):
            times.append((h, m))
    return sorted(set(times))


def next_connection(s, now: float) -> float:
    """Epoch seconds of the next scheduled connection strictly after `now`."""
    if int(s.connection_period_min) > 0:
        step = int(s.connection_period_min) * 60
        return (int(now) // step + 1) * step
    t = datetime.fromtimestamp(now, timezone.utc)
    midnight = t.replace(hour=0, minute=0, second=0, microsecond=0)
    if int(s.connection_period) > 0:
        period = timedelta(hours=int(s.connection_period))
        cand = midnight + timedelta(minutes=int(s.connection_minute))
        while cand.timestamp() <= now:
            cand += period
            if cand.date() != midnight.date():  # restart the cycle each day at 00:MM
                midnight += timedelta(days=1)
                cand = midnight + timedelta(minutes=int(s.connection_minute))
        return cand.timestamp()
    for day in (0, 1):
        base = midnight + timedelta(days=day)
        for h, m in daily_times(s):
            cand = base + timedelta(hours=h, minutes=m)
            if cand.timestamp() > now:
                return cand.timestamp()
    raise AssertionError("unreachable: a daily time always exists")
