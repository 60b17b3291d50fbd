"""The gateway as the page sees it, kept from the bus: each service's status and machines, the
journal's last rows, the task running, the front panel, what each input shows, the power over
the last hours, the update's progress.

:meth:`View.apply` runs on the bus loop for each event and returns what the live pages must be
told (event name, data); the HTTP thread reads :meth:`View.snapshot`. A lock keeps the two
apart; both hold it for microseconds.
"""
from __future__ import annotations

import collections
import threading
import time

from ticgw import journal as journal_rows

JOURNAL_ROWS = 500
#: One point of power a minute per input, over this many hours.
POWER_HOURS = 12
POWER_STEP = 60.0
#: The labels that give the apparent power, historic then standard mode.
POWER_LABELS = ("PAPP", "SINSTS")


def power_of(groups) -> float | None:
    values = {g[0]: g[1] for g in groups or () if isinstance(g, (list, tuple)) and len(g) >= 2}
    for label in POWER_LABELS:
        try:
            return float(str(values[label]).strip())
        except (KeyError, ValueError):
            continue
    return None


class View:
    def __init__(self, services, clock=time.time):
        self.clock = clock
        self.lock = threading.Lock()
        self.services = list(services)
        self.status: dict[str, dict] = {}
        self.machines: dict[str, dict[str, str]] = {s: {} for s in self.services}
        self.journal: collections.deque = collections.deque(maxlen=JOURNAL_ROWS)
        self.task: dict | None = None
        self.leds: dict[str, str] = {}
        self.detected: dict[int, dict] = {}
        self.values: dict[int, dict] = {}
        self.power: dict[int, collections.deque] = {}
        self.update: dict = {}
        self.alarms: collections.deque = collections.deque(maxlen=50)
        #: the number of the last event given to the pages: a page rendered from a snapshot
        #: asks its stream for the events after the snapshot's
        self.seq = 0

    # --- reading (HTTP thread) -------------------------------------------------------------

    def initialising(self) -> bool:
        """The manual's banner: some service has not reported *operational* (yet)."""
        with self.lock:
            return any((self.status.get(s) or {}).get("activity") != "operational"
                       for s in self.services)

    def snapshot(self) -> dict:
        with self.lock:
            return {"status": {k: dict(v) for k, v in self.status.items()},
                    "machines": {k: dict(v) for k, v in self.machines.items()},
                    "journal": list(self.journal), "task": self.task, "leds": dict(self.leds),
                    "detected": dict(self.detected), "values": dict(self.values),
                    "update": dict(self.update), "alarms": list(self.alarms),
                    "seq": self.seq}

    def power_series(self, index: int) -> list[tuple[float, float]]:
        with self.lock:
            return list(self.power.get(index, ()))

    # --- feeding (bus loop) ------------------------------------------------------------------

    def seed_journal(self, rows) -> None:
        with self.lock:
            if not self.journal:
                self.journal.extend(list(r) for r in rows)

    def apply(self, topic: str, env: dict) -> list[tuple[str, dict, int]]:
        """Take one bus event in; the (event, data, number) the live pages get, numbered in
        the same lock as the change, so a snapshot's ``seq`` splits them exactly."""
        with self.lock:
            out = self._apply(topic, env)
            numbered = []
            for event, data in out:
                self.seq += 1
                numbered.append((event, data, self.seq))
            return numbered

    def _apply(self, topic: str, env: dict) -> list[tuple[str, dict]]:
        data = env.get("data") or {}
        head, _, tail = topic.partition(".")
        if topic == "journal":
            date, hour = journal_rows.stamp(float(data.get("time") or env.get("ts") or 0))
            row = [date, hour, str(data.get("message", ""))]
            self.journal.append(row)
            return [("journal", {"row": row})]
        if topic in ("task.started", "task.ended"):
            self.task = ({"task": data.get("task"), "reason": data.get("reason")}
                         if topic == "task.started" else None)
            return [("task", {"phase": tail, **data})]
        if topic == "gateway.leds":
            self.leds = dict(data.get("leds") or {})
            return [("leds", {"leds": self.leds, "pulse": data.get("pulse")})]
        if tail == "status" and head in self.machines:
            before = (self.status.get(head) or {}).get("activity")
            self.status[head] = data
            out = [("status", {"service": head, "activity": data.get("activity"),
                               "version": data.get("version")})]
            if head == "modem":
                out.append(("modem", _modem_fields(data)))
            if before != data.get("activity"):
                out.append(("banner", {"init": self._initialising()}))
            return out
        if tail == "state" and head in self.machines:
            self.machines[head][str(data.get("machine"))] = str(data.get("state"))
            out = [("state", {"service": head, "machine": data.get("machine"),
                              "state": data.get("state")})]
            if data.get("machine") == "activity":
                (self.status.setdefault(head, {}))["activity"] = data.get("state")
                out.append(("banner", {"init": self._initialising()}))
            return out
        if head == "tic":
            return self._tic(tail, data, env)
        if head == "update":
            self.update[tail] = data
            return [("update", {"kind": tail, **data})]
        if topic == "alarm.raised":
            self.alarms.append({**data, "time": env.get("ts")})
            return [("alarm", data)]
        if topic == "config.changed":
            return [("config", {"files": data.get("files"), "by": data.get("by")})]
        return []

    def _initialising(self) -> bool:
        return any((self.status.get(s) or {}).get("activity") != "operational"
                   for s in self.services)

    def _tic(self, tail: str, data: dict, env: dict) -> list:
        index = int(data.get("input") or 0)
        kind = tail.rpartition(".")[2]
        if kind == "detected":
            self.detected[index] = data
            return [("detected", data)]
        if kind in ("lost", "found"):
            self.values.setdefault(index, {})["state"] = kind
            return [("input", {"input": index, "state": kind})]
        if kind != "frame":
            return []
        groups = data.get("groups") or []
        t = float(env.get("ts") or self.clock())
        self.values[index] = {"time": t, "state": "found",
                              "groups": [[g[0], g[1]] for g in groups
                                         if isinstance(g, (list, tuple)) and len(g) >= 2]}
        out = [("values", {"input": index, "groups": self.values[index]["groups"]})]
        watts = power_of(groups)
        if watts is not None:
            series = self.power.setdefault(
                index, collections.deque(maxlen=int(POWER_HOURS * 3600 / POWER_STEP)))
            if not series or t - series[-1][0] >= POWER_STEP:
                series.append((t, watts))
                out.append(("power", {"input": index, "t": t, "w": watts}))
        return out


def _modem_fields(data: dict) -> dict:
    keys = ("type", "imei", "iccid", "sim", "signal", "state", "technology", "operator",
            "registration", "rsrp_dbm", "rsrq_db", "sinr_db", "warning", "failure")
    return {k: data.get(k) for k in keys if k in data}
