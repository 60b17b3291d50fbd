"""The acquisition service: reads every TIC input, samples, raises alarms, fills the spool, and
drives the front panel.

Its table of contents is its machines: ``activity`` (every service) and one ``tic_input.<n>`` per
input (statecharts/tic_input.py, modelled by inputs.py). Each input's line has its own worker
(line.py); the spool's disk work goes through the spool writer (writer.py) and the sealer; the
loop only decides, numbers records and publishes what is on disk.

Sampling follows slots of the gateway clock (slots.py): the loop looks at the clock every few
seconds, samples a slot once at most, journals a clock step with its size, and never samples
before the slots of the spool are known (the last one sampled, read back at start).
"""
from __future__ import annotations

import json
import logging

import serial

from bus.client import Deferred
from bus.errors import CommandRefused
from bus.tasklock import TaskBusy
from services.runtime import Service, Worker
from ticgw.config import BY_NAME
from ticgw.files import row_time, write_atomic

from .detection import TASK, DetectionTask
from .inputs import TicInput
from .line import Line
from .panel import FrontPanel
from .poller import LinePoller
from .sampler import Alarm
from .slots import (RECHECK, Due, Slots, StepWatch, latest_boundary, load_last_slot,
                    save_last_slot, step_message)
from .spool import Spool
from .writer import SpoolWriter

log = logging.getLogger("acquisition")

#: Seconds a detection (task 'Détection') may last at most.
DETECTION_TIMEOUT = 90.0


class AcquisitionService(Service):
    name = "acquisition"
    #: Alarms other services raise (the modem at its recovery cap) go into the alarm file too.
    subscriptions = ("alarm.raised",)

    def __init__(self, config, *, probe_scale: float = 1.0, opener=serial.serial_for_url,
                 inputs=None, **kw):
        super().__init__(config, **kw)
        s = self.settings
        self.def_dir = self.data_dir / "def"
        self.period = float(s.daq_interval_s)
        self.lost_delay = float(s.tic_lost_delay)
        self.budget = int(s.spool_max_mb) * 1024 * 1024
        self.probe_scale = probe_scale
        self.opener = opener
        self.paused = False
        self.sealing = False
        self.detection: DetectionTask | None = None
        self.spool = Spool(self.data_dir, s.site, euro_dates=bool(s.ftp_euro_date_format),
                           header_option=bool(s.daq_header_option), clock=self.gateway_clock.now)
        self.writer = SpoolWriter(self.loop, self.spool)
        self.sealer = Worker(self.loop, "sealer")
        self.slots: Slots | None = None          # known once the spool is recovered
        self._look_timer = None
        self.steps = StepWatch()
        self._start_floor: float | None = None
        self.poller: LinePoller | None = None
        self.inputs: dict[int, TicInput] = {}
        for tic in (inputs if inputs is not None else s.inputs):
            if tic.port:
                line = Line(self.loop, tic.index, tic.port, mode=tic.mode, baud=tic.baud,
                            opener=opener, poller=self._poller(), probe_scale=probe_scale)
                self.inputs[tic.index] = TicInput(self, tic, line)
        self.panel = FrontPanel(self, self.inputs)

    def _poller(self) -> LinePoller:
        if self.poller is None:
            self.poller = LinePoller()
        return self.poller

    # --- commands (bus) ----------------------------------------------------------------------

    def commands(self) -> dict:
        return {"detect": self.cmd_detect, "seal": self.cmd_seal, "pause": self.cmd_pause,
                "resume": self.cmd_resume, "details": self.cmd_details,
                "params": self.cmd_params, "button": self.cmd_button, "leds": self.cmd_leds}

    def cmd_detect(self, params: dict) -> dict:
        """Détection: probe every input again (task lock 'Détection')."""
        self.start_detection("command")
        for inp in self.inputs.values():
            inp.fire("detect")
        return {"started": True, "inputs": sorted(self.inputs)}

    def cmd_seal(self, params: dict):
        """Close the current records into upload files (start of a connection). The record files
        are switched by the spool writer after the records queued before; the files are built by
        the sealer; the reply comes when they are in the outbox."""
        if self.sealing:
            raise CommandRefused("busy", "a seal is already being made")
        self.sealing = True
        reply = Deferred()

        def begun(works):
            if isinstance(works, BaseException):
                return finished(works)
            self.sealer.submit(lambda job: self._finish_seal(works), on_done=finished,
                               name="seal")

        def finished(outcome):
            self.sealing = False
            if isinstance(outcome, BaseException):
                log.error("seal failed: %s (the records stay in the spool)", outcome)
                reply.reject(outcome)
                return
            made, dropped = outcome
            if dropped:
                self._disk_full(dropped)
            reply.resolve({"files": [p.name for p in made]})

        self.writer.call(self.spool.begin_seal, on_done=begun)
        return reply

    def _finish_seal(self, works):
        """In the sealer: build the files, then keep the spool within its budget."""
        made = self.spool.finish_seals(works)
        return made, self.spool.enforce_budget(self.budget)

    def cmd_pause(self, params: dict) -> dict:
        """Arrêt de l'acquisition de données: sampling goes on; records wait in the spool."""
        self.paused = True
        return {"paused": True}

    def cmd_resume(self, params: dict) -> dict:
        self.paused = False
        return {"paused": False}

    def cmd_details(self, params: dict) -> dict:
        """The manual's Détection table and Détails per input."""
        return {"inputs": {str(i.index): i.summary(details=True) for i in self.inputs.values()}}

    def cmd_params(self, params: dict):
        """Write the parameters file (action-1 variables) into the outbox (by the spool writer);
        the reply names it."""
        sections = []
        for inp in self.inputs.values():
            if inp.sampler is None or inp.detection is None:
                continue
            values = [(v.index, inp.sampler.params.get(v.label,
                                                       inp.detection.values.get(v.label, "")))
                      for v in inp.definition.parameters()]
            sections.append((inp.index, inp.serial, inp.definition.name, values))
        if not sections:
            return {"file": None}
        reply = Deferred()

        def written(outcome):
            if isinstance(outcome, BaseException):
                reply.reject(outcome)
            else:
                reply.resolve({"file": outcome.name})
        self.writer.call(self.spool.write_parameters, sections, on_done=written)
        return reply

    def cmd_button(self, params: dict):
        """The INSTALL button (manual section 11)."""
        press = str(params.get("press", "short")).lower()
        if press == "long":
            log.warning("INSTALL button held: the gateway restarts")
            self.panel.all_off()
            self.loop.post(self.restart_gateway, "INSTALL button")
            return {"action": "reboot"}
        if press != "short":
            raise CommandRefused("bad_request", "press is short or long, not %r" % press)
        reply = Deferred()

        def answered(outcome):
            if isinstance(outcome, Exception):
                reply.reject(outcome)
            else:
                reply.resolve({"action": "connect"})
        self.call("uplink", "connect", {"reason": "install", "install": True},
                  on_reply=answered, timeout=5.0)
        return reply

    def cmd_leds(self, params: dict) -> dict:
        return {"leds": self.panel.compute()}

    # --- life ----------------------------------------------------------------------------------

    def on_start(self) -> None:
        if self.poller is not None:
            self.poller.start()
        # first the temporary files a crash left (before anything writes there), then the seals
        self.writer.call(self.spool.remove_stale_temps, on_done=self._temps_removed)
        if not self.inputs:
            log.warning("no TIC input configured (TIC_Port[1..3] in the _daq.ini file)")
        self.start_detection("boot")
        for inp in self.inputs.values():
            log.info("%s: reading %s", inp.source, inp.url)
            inp.fire("retry")
        self._start_floor = latest_boundary(self.gateway_clock.now(), self.period)
        self._look()
        self.panel.start()

    def _temps_removed(self, outcome) -> None:
        if isinstance(outcome, BaseException):
            log.error("stale temporary files not removed: %s", outcome)
        self.sealer.submit(lambda job: self._recover(), on_done=self._recovered,
                           name="recover")

    def _recover(self):
        """In the sealer, at start: finish the seals a crash interrupted, read the last slot
        sampled and what the last detections found (shown until the meters are detected
        again)."""
        self.def_dir.mkdir(parents=True, exist_ok=True)
        made = self.spool.recover()
        sampled = [t for t in (load_last_slot(self.spool.state_dir), self.spool.last_sampled())
                   if t is not None]
        previous = {}
        for n in self.inputs:
            try:
                previous[n] = json.loads((self.data_dir / "state" /
                                          ("detection_%d.json" % n)).read_text())
            except (FileNotFoundError, ValueError):
                pass
        return made, max(sampled, default=None), previous

    def _recovered(self, outcome) -> None:
        if isinstance(outcome, BaseException):
            self._start_slots(None)          # sampling goes on; the seal still drops repeats
            self.failed("the spool cannot be recovered: %s" % outcome)
            return
        made, last_sampled, previous = outcome
        if made:
            log.info("finished %d sealed files left by an interrupted seal", len(made))
        self._start_slots(last_sampled)
        for n, summary in previous.items():
            if n in self.inputs and self.inputs[n].detection is None:
                self.inputs[n].previous = summary

    def on_stop(self) -> None:
        for inp in self.inputs.values():
            inp.line.stop(timeout=0.5)
        if self.poller is not None:
            self.poller.stop()
            self.poller.join(timeout=1.0)
        self.writer.close(1.0)
        self.sealer.drain(1.0)
        self.spool.close()

    def status(self) -> dict:
        return {
            "inputs": {str(i.index): i.summary() for i in self.inputs.values()},
            "paused": self.paused,
            "period_s": self.period,
            "last_slot": self.slots.last if self.slots is not None else None,
            "last_record_seq": self.spool.seq,
            "records_waiting": self.writer.pending,
            "spool_error": self.writer.error,
            "detection": bool(self.detection),
            "leds": self.panel.leds,
        }

    def _state_changed(self, machine, previous, state, trigger, error) -> None:
        super()._state_changed(machine, previous, state, trigger, error)
        self.panel.update()

    # --- detection ------------------------------------------------------------------------------

    def start_detection(self, reason: str) -> None:
        """Begin the task 'Détection' (raises TaskBusy, a refusal, when another task runs)."""
        if self.detection is not None:
            raise TaskBusy(TASK)
        pending = [n for n, inp in self.inputs.items()
                   if reason == "boot" or inp.state not in ("absent", "opening")]
        self.detection = DetectionTask(self, reason, pending,
                                       DETECTION_TIMEOUT * max(self.probe_scale, 0.2),
                                       on_end=self._detection_over)

    def detection_done(self, index: int) -> None:
        if self.detection is not None:
            self.detection.done(index)

    def _detection_over(self, task) -> None:
        if self.detection is task:
            self.detection = None

    def tic_settings(self, index: int):
        """The settings of input ``index`` (those it was started with: a benchmark may give
        more inputs than the configuration holds)."""
        return self.inputs[index].config

    def meter_identified(self, inp: TicInput) -> None:
        """A meter is identified on ``inp``: keep what was found (state/detection_<n>.json, and
        TIC_Serial[n], TIC_FileDefName[n] in the _daq.ini file, which the Compteurs page
        reads), then count the input as answered."""
        summary = inp.summary(details=True)
        changes = {key: value for key, value in (
            ("TIC_Serial[%d]" % inp.index, inp.serial),
            ("TIC_FileDefName[%d]" % inp.index, inp.definition_name)) if key in BY_NAME}
        path = self.data_dir / "state" / ("detection_%d.json" % inp.index)

        def save(job):
            write_atomic(path, json.dumps(summary).encode())
            if self.store is not None and changes:
                self.store.update(changes, by="detection")
                return self.store.settings
            return None

        def saved(outcome):
            if isinstance(outcome, BaseException):
                log.error("%s: detection not saved: %s", inp.source, outcome)
            elif outcome is not None:
                self.settings = outcome
        self.disk.submit(save, on_done=saved, name="detection")
        self.detection_done(inp.index)

    # --- sampling and alarms ----------------------------------------------------------------------

    def _start_slots(self, last_sampled: float | None) -> None:
        """Sampling starts after the last slot sampled (before a restart, or before a backward
        step that came with it) and after the boundary before this start."""
        now = self.gateway_clock.now()
        # the time the spool's recovery took is not "periods without a sample": nothing was
        # being sampled yet, and the first row takes what was read meanwhile
        since_recovery = latest_boundary(now, self.period) - self.period
        floor = max(t for t in (self._start_floor, last_sampled, since_recovery)
                    if t is not None)
        self.slots = Slots(self.period, floor)
        self._rearm_look(self.slots.wait(now))
        if self.slots.held(now):
            log.warning("the clock (%s) is before the last sample (%s): no sample until it has "
                        "passed it", row_time(now), row_time(floor))

    def _look(self) -> None:
        """Every few seconds, and at each boundary: journal a clock step, sample a slot due."""
        now = self.gateway_clock.now()
        try:
            step = self.steps.look(self.clock.monotonic(), now)
            due = self.slots.due(now) if self.slots is not None else None
            if step is not None:
                self._clock_stepped(step, now, due)
            elif due is not None and due.skipped:
                # the loop was late (a loaded machine): the process log says so; the journal
                # is for what an installer acts on (clock steps, journaled above)
                log.warning("%d sampling period(s) went by without a sample (the service was "
                            "late); the next row covers them", due.skipped)
            if due is not None:
                self._sample(due)
        finally:                             # whatever happened, look again
            self._rearm_look(self.slots.wait(now) if self.slots is not None else RECHECK)

    def _rearm_look(self, wait: float) -> None:
        if self._look_timer is not None:
            self._look_timer.cancel()
        self._look_timer = self.loop.call_later(wait, self._look)

    def _clock_stepped(self, step: float, now: float, due: Due | None) -> None:
        skipped = due.skipped if due is not None else 0
        log.warning("the gateway clock stepped by %+.0f s (now %s)%s", step, row_time(now),
                    ", %d sampling period(s) jumped over" % skipped if skipped else "")
        if self.slots is not None and self.slots.held(now):
            log.warning("no sample until the clock passes the last one (%s)",
                        row_time(self.slots.last))
        self.journal(step_message(step, skipped))

    def _sample(self, due: Due) -> None:
        """Sample slot ``due``: one row per input read, stamped with the slot; the slot is kept
        on disk after the rows (by the spool writer), so a restart never samples it again."""
        self.slots.taken(due)
        sampled = False
        for inp in self.inputs.values():
            if inp.sampler is None:
                continue
            row = inp.sampler.row()
            if row is None:
                continue
            rec = self.spool.record(inp.index, inp.serial, inp.definition.name, due.slot, row,
                                    header=inp.definition.columns())
            self.writer.append(rec, self._record_written)
            sampled = True
        if sampled:
            self.writer.call(save_last_slot, self.spool.state_dir, due.slot)

    def _record_written(self, rec: dict) -> None:
        self.publish("spool.written", input=rec["input"], seq=rec["seq"],
                     time=row_time(rec["t"], self.spool.euro), columns=rec["cols"])

    def on_event(self, topic: str, env: dict) -> None:
        if topic == "alarm.raised" and env.get("src") != self.name:
            data = env.get("data") or {}
            self.raise_alarm(Alarm(self.gateway_clock.now(), str(data.get("source", "GATEWAY")),
                                   "", str(data.get("code", "ALARME")), 0,
                                   str(data.get("detail", ""))), publish=False)

    def raise_alarm(self, alarm: Alarm, publish: bool = True) -> None:
        """Write the alarm; once it is on disk, publish it."""
        rec = self.spool.alarm(alarm.time, alarm.source, alarm.definition, alarm.name,
                               alarm.index, alarm.value)

        def written(rec):
            if publish:                         # another service's alarm was published by it
                self.publish("alarm.raised" if alarm.raised else "alarm.cleared",
                             code=alarm.name, source=alarm.source, detail=alarm.value,
                             seq=rec["seq"])
        self.writer.append(rec, written)

    def frame_pulse(self, inp: TicInput) -> None:
        self.panel.pulse(inp.index)

    def _disk_full(self, dropped: list) -> None:
        self.raise_alarm(Alarm(self.gateway_clock.now(), "GATEWAY", "", "ESPACE_DISQUE", 0,
                               "%d fichiers supprimés" % len(dropped)))
        self.journal("Espace disque plein : %d fichier(s) de données supprimé(s)" % len(dropped))
