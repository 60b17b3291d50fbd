"""A service's state machines: built from ``statecharts/``, published, timed, and with a fault
path.

- Every state change is logged and handed to ``on_change`` (the service publishes
  ``<svc>.state``).
- ``TIMEOUTS`` of a chart become loop timers: entering a timed state arms one for
  ``model.timeout(state)`` seconds (None: no timer), leaving it cancels it; :meth:`rearm`
  starts the current one again (a frame re-arms the silence timer).
- An exception in any callback goes to the fault path: it is logged with its traceback, kept
  (``last_fault``), shown in the next state event (``error``), and the chart's ``FAULT``
  trigger is fired, which every chart allows from every state. When the recovery itself raises,
  the fault trigger is fired again after a capped backoff instead of at once, so a broken
  recovery cannot spin.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from transitions import MachineError

import statecharts

from .backoff import Backoff

log = logging.getLogger("runtime.machines")


@dataclass
class _Entry:
    name: str
    model: object
    chart: object
    machine: object
    timer: object = None
    fault_backoff: Backoff = field(default_factory=lambda: Backoff(1.0, 60.0))
    pending_error: str | None = None


class Machines:
    def __init__(self, loop, on_change, logger=None):
        self.loop = loop
        self.on_change = on_change          # (machine, previous, state, trigger, error)
        self.log = logger or log
        self._entries: dict[str, _Entry] = {}
        self.faults = 0
        self.last_fault: dict | None = None

    def build(self, name: str, model, chart: str | None = None):
        """Build ``chart`` (default: ``name`` up to its first dot) on ``model``."""
        c = statecharts.chart(chart or name.split(".", 1)[0])
        entry = _Entry(name, model, c, None)

        def changed(previous, state, trigger):
            self._changed(entry, previous, state, trigger)

        def failed(event):
            self._exception(entry, event)

        entry.machine = statecharts.build(c.__name__.rsplit(".", 1)[-1], model,
                                          on_change=changed, on_exception=failed)
        self._entries[name] = entry
        return entry.machine

    # --- reading ------------------------------------------------------------------------------

    def states(self) -> dict[str, str]:
        return {n: e.model.state for n, e in self._entries.items()}

    # --- driving ------------------------------------------------------------------------------

    def fire(self, name: str, trigger: str, *args) -> bool:
        return statecharts.fire(self._entries[name].model, trigger, *args)

    def rearm(self, name: str) -> None:
        """Start the current state's timeout again (from its full duration)."""
        entry = self._entries[name]
        self._arm(entry, entry.model.state)

    def cancel_timers(self) -> None:
        for entry in self._entries.values():
            if entry.timer is not None:
                entry.timer.cancel()
                entry.timer = None

    # --- inside -------------------------------------------------------------------------------

    def _changed(self, entry: _Entry, previous: str, state: str, trigger: str) -> None:
        error, entry.pending_error = entry.pending_error, None
        if trigger != getattr(entry.chart, "FAULT", None):
            entry.fault_backoff.reset()
        self._arm(entry, state)
        if previous != state:
            self.log.log(logging.WARNING if error else logging.INFO, "%s: %s -> %s (%s)%s",
                         entry.name, previous, state, trigger,
                         " after %s" % error if error else "")
            self.on_change(entry.name, previous, state, trigger, error)

    def _arm(self, entry: _Entry, state: str) -> None:
        if entry.timer is not None:
            entry.timer.cancel()
            entry.timer = None
        trigger = statecharts.timeouts(entry.chart).get(state)
        if trigger is None:
            return
        seconds = entry.model.timeout(state)
        if seconds is None:
            return
        entry.timer = self.loop.call_later(seconds, self._timed_out, entry, state, trigger)

    def _timed_out(self, entry: _Entry, state: str, trigger: str) -> None:
        entry.timer = None
        if entry.model.state == state:
            statecharts.fire(entry.model, trigger)

    def _exception(self, entry: _Entry, event) -> None:
        err = event.error
        if isinstance(err, MachineError):
            # not a fault: a fact that came too late (its state is gone) or a trigger the
            # state does not allow; the state decides, and says nothing happened
            self.log.warning("%s: ignored %r in state %r (not allowed there)", entry.name,
                             event.event.name, entry.model.state)
            return
        fault = getattr(entry.chart, "FAULT", None)
        state = entry.model.state
        text = "%s: %s" % (type(err).__name__, err)
        self.faults += 1
        self.last_fault = {"machine": entry.name, "state": state, "trigger": event.event.name,
                           "error": text, "time": time.time()}
        entry.pending_error = text
        self.log.error("%s: %s while in %s (trigger %s); fault path: %s", entry.name, text,
                       state, event.event.name, fault, exc_info=err)
        if fault is None:
            return
        if event.event.name == fault:
            delay = entry.fault_backoff.next()
            self.log.error("%s: its recovery failed too; trying it again in %.0f s",
                           entry.name, delay)
            self.loop.call_later(delay, statecharts.fire, entry.model, fault)
        else:
            statecharts.fire(entry.model, fault)
