"""When the next scheduled connection is due (services.uplink.schedule), from the _var.ini keys."""
from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

import pytest

from services.uplink.schedule import daily_times, next_connection
from ticgw.config import ConfigStore
from ticgw.config.settings import defaults


def at(text: str) -> float:
    """'2024-05-01 07:25:00' (UTC) as epoch seconds."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp()


def show(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def settings(**values):
    return dataclasses.replace(defaults(), **values)


def chain(s, start: str, n: int) -> list[str]:
    """The next n connections from `start`, each computed from the previous one."""
    out, t = [], at(start)
    for _ in range(n):
        t = next_connection(s, t)
        out.append(show(t))
    return out


# -- Connection_PeriodMin ------------------------------------------------------------------------

@pytest.mark.parametrize("now, expected", [
    ("2024-05-01 12:07:30", "2024-05-01 12:15:00"),
    ("2024-05-01 12:15:00", "2024-05-01 12:30:00"),   # strictly after now
    ("2024-05-01 23:59:59", "2024-05-02 00:00:00"),
])
def test_period_in_minutes(now, expected):
    s = settings(connection_period_min=15)
    assert show(next_connection(s, at(now))) == expected


def test_period_in_minutes_wins_over_the_hourly_schedule():
    s = settings(connection_period_min=2, connection_period=7, connection_minute=25)
    assert chain(s, "2024-05-01 10:00:30", 3) == [
        "2024-05-01 10:02:00", "2024-05-01 10:04:00", "2024-05-01 10:06:00"]


def test_fractional_now_is_strictly_before_the_result():
    s = settings(connection_period_min=1)
    now = at("2024-05-01 10:00:00") + 59.999
    assert next_connection(s, now) == at("2024-05-01 10:01:00")


# -- Connection_Period + Connection_Minute -------------------------------------------------------

def test_every_seven_hours_at_25_restarts_each_day():
    """The manual's example: Period=7, Minute=25 gives 00:25, 07:25, 14:25, 21:25."""
    s = settings(connection_period=7, connection_minute=25)
    assert chain(s, "2024-05-01 00:00:00", 6) == [
        "2024-05-01 00:25:00", "2024-05-01 07:25:00", "2024-05-01 14:25:00",
        "2024-05-01 21:25:00", "2024-05-02 00:25:00", "2024-05-02 07:25:00"]


@pytest.mark.parametrize("now, expected", [
    ("2024-05-01 07:25:00", "2024-05-01 14:25:00"),
    ("2024-05-01 07:24:59", "2024-05-01 07:25:00"),
    ("2024-05-01 21:25:01", "2024-05-02 00:25:00"),   # not 04:25: the cycle starts at 00:25
    ("2024-12-31 22:00:00", "2025-01-01 00:25:00"),
    ("2024-02-28 23:59:00", "2024-02-29 00:25:00"),
])
def test_every_seven_hours_from_any_time(now, expected):
    s = settings(connection_period=7, connection_minute=25)
    assert show(next_connection(s, at(now))) == expected


def test_every_hour():
    s = settings(connection_period=1, connection_minute=0)
    assert chain(s, "2024-05-01 22:30:00", 3) == [
        "2024-05-01 23:00:00", "2024-05-02 00:00:00", "2024-05-02 01:00:00"]


# -- fixed daily hours -----------------------------------------------------------------------------

def test_default_is_once_a_day_at_01_00():
    s = defaults()
    assert show(next_connection(s, at("2024-05-01 00:59:59"))) == "2024-05-01 01:00:00"
    assert show(next_connection(s, at("2024-05-01 01:00:00"))) == "2024-05-02 01:00:00"


def test_fixed_hours_with_the_four_extra_times():
    s = settings(connection_hour=6, connection_minute=30,
                 connection_hour1=12, connection_minute1=0,
                 connection_hour2=18, connection_minute2=45,
                 connection_hour3=3, connection_minute3=15)
    assert daily_times(s) == [(3, 15), (6, 30), (12, 0), (18, 45)]   # 4th unused (00:00)
    assert chain(s, "2024-05-01 05:00:00", 6) == [
        "2024-05-01 06:30:00", "2024-05-01 12:00:00", "2024-05-01 18:45:00",
        "2024-05-02 03:15:00", "2024-05-02 06:30:00", "2024-05-02 12:00:00"]


def test_fixed_midnight_as_the_main_time():
    s = settings(connection_hour=0, connection_minute=0, connection_hour4=0,
                 connection_minute4=30)
    assert daily_times(s) == [(0, 0), (0, 30)]
    assert chain(s, "2024-05-01 23:00:00", 3) == [
        "2024-05-02 00:00:00", "2024-05-02 00:30:00", "2024-05-03 00:00:00"]


def test_from_the_var_file(tmp_path):
    """The keys as written in _var.ini reach the schedule."""
    store = ConfigStore(tmp_path)
    store.ensure_files()
    store.update({"Connection_Period": "7", "Connection_Minute": "25"})
    assert show(next_connection(store.settings, at("2024-05-01 08:00:00"))) == "2024-05-01 14:25:00"
    store.update({"Connection_Period": "0", "Connection_Hour": "9", "Connection_Minute": "5",
                  "Connection_Hour2": "17", "Connection_Minute2": "0"})
    assert chain(store.settings, "2024-05-01 08:00:00", 3) == [
        "2024-05-01 09:05:00", "2024-05-01 17:00:00", "2024-05-02 09:05:00"]
