"""The acquisition service: reads every TIC input, samples, raises alarms, fills the spool.

Its table of contents is its machines: the gateway-activity machine (runtime) and one
`tic_input.<n>` machine per input (statecharts/tic_input.py). Readers run in worker threads
(reader.py) and report to the loop; everything here runs on the loop and stays short.
"""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import statecharts
from bus.client import Deferred
from bus.errors import CommandRefused
from bus.tasklock import TaskBusy, TaskLock
from services.runtime import Service
from ticgw.clock import GatewayClock
from ticgw.config import Settings

from tic import catalogue, definitions
from tic.definitions import Definition, DefinitionError
from .poller import LinePoller
from .reader import Detection, InputReader, register_url_handlers
from .sampler import Alarm, Sampler
from .spool import Spool, row_time, write_atomic

log = logging.getLogger("acquisition")

DETECTION_TIMEOUT = 60.0


@dataclass
class Input:
    """One TIC input: its machine, its reader and what is known of its meter."""

    index: int
    url: str
    machine_model: object
    reader: InputReader | None = None
    detection: Detection | None = None
    definition: Definition | None = None
    sampler: Sampler | None = None
    last_valid: float | None = None      # monotonic time of the last valid frame
    lost_since: float | None = None      # wall time the meter was declared lost
    frames: int = 0
    decoder_stats: dict = field(default_factory=dict)
    error: str | None = None
    previous: dict | None = None         # the last detection before this start (shown only)

    @property
    def source(self) -> str:
        return "TIC%d" % self.index

    @property
    def state(self) -> str:
        return self.machine_model.state


class _Model:
    """A bare model object for a transitions machine."""


class AcquisitionService(Service):
    name = "acquisition"

    def __init__(self, settings: Settings, data_dir: Path, probe_scale: float = 1.0, **kw):
        super().__init__(settings=settings, **kw)
        self.data_dir = Path(data_dir)
        self.clock = GatewayClock(self.data_dir / "state")
        self.def_dir = self.data_dir / "def"
        self.def_dir.mkdir(parents=True, exist_ok=True)
        self.spool = Spool(self.data_dir, settings.site_id, euro_dates=bool(settings.ftp_euro_date_format),
                           header_option=bool(settings.daq_header_option), clock=self.clock.now)
        self.period = float(settings.daq_interval_s)
        self.lost_delay = float(settings.tic_lost_delay)
        self.budget = int(settings.spool_max_mb) * 1024 * 1024
        self.probe_scale = probe_scale
        self.paused = False
        self.sealing = False
        self.detect_lock = None
        self.detect_pending: set[int] = set()
        self.inputs: dict[int, Input] = {}
        for tic in settings.inputs:
            if not tic.port:
                continue
            model = _Model()
            self.machine("tic_input.%d" % tic.index, model, chart="tic_input")
            self.inputs[tic.index] = Input(tic.index, tic.port, model)

    # --- commands (bus) ----------------------------------------------------------------------

    def commands(self) -> dict:
        return {"detect": self.cmd_detect, "seal": self.cmd_seal, "pause": self.cmd_pause,
                "resume": self.cmd_resume, "details": self.cmd_details,
                "params": self.cmd_params}

    def cmd_detect(self, params: dict) -> dict:
        """Détection: probe every input again (task lock 'Détection')."""
        try:
            self.detect_lock = TaskLock(self.run_dir).acquire("Détection")
        except TaskBusy as e:
            raise CommandRefused("busy", str(e)) from e
        self.detect_pending = set(self.inputs)
        self.publish("task.started", task="Détection")
        for inp in self.inputs.values():
            if inp.reader is not None:
                inp.reader.request_detection()
        self.loop.call_later(DETECTION_TIMEOUT * self.probe_scale, self._detection_over)
        if not self.detect_pending:
            self._detection_over()
        return {"started": True, "inputs": sorted(self.inputs)}

    def cmd_seal(self, params: dict):
        """Close the current records into upload files (start of a connection). The record
        files are switched on the loop; the files are built in a worker, and the reply comes
        when they are in the outbox."""
        if self.sealing:
            raise CommandRefused("busy", "a seal is already being made")
        works = self.spool.begin_seal()
        self.sealing = True
        reply = Deferred()

        def done(outcome):
            self.sealing = False
            if isinstance(outcome, BaseException):
                log.error("seal failed: %s (the records stay in the spool)", outcome)
                reply.reject(outcome)
                return
            self._enforce_budget()
            reply.resolve({"files": [p.name for p in outcome]})

        self.run_in_thread(self.spool.finish_seals, works, on_done=done, name="seal")
        return reply

    def cmd_pause(self, params: dict) -> dict:
        """Arrêt de l'acquisition de données: sampling goes on; records wait in the spool."""
        self.paused = True
        return {"paused": True}

    def cmd_resume(self, params: dict) -> dict:
        self.paused = False
        return {"paused": False}

    def cmd_details(self, params: dict) -> dict:
        """The manual's Détection table and Détails per input."""
        out = {}
        for inp in self.inputs.values():
            out[str(inp.index)] = self._input_summary(inp, details=True)
        return {"inputs": out}

    def cmd_params(self, params: dict) -> dict:
        """Write the parameters file (action-1 variables) into the outbox."""
        sections = []
        for inp in self.inputs.values():
            if inp.sampler is None or inp.detection is None:
                continue
            values = [(v.index, inp.sampler.params.get(v.label, inp.detection.values.get(v.label, "")))
                      for v in inp.definition.parameters()]
            sections.append((inp.index, inp.detection.identity.serial or "", inp.definition.name,
                             values))
        if not sections:
            return {"file": None}
        return {"file": self.spool.write_parameters(sections).name}

    # --- life ----------------------------------------------------------------------------------

    def on_start(self) -> None:
        register_url_handlers()
        self.poller = LinePoller()
        self.poller.start()
        made = self.spool.recover()
        if made:
            log.info("finished %d sealed files left by an interrupted seal", len(made))
        for inp in self.inputs.values():
            self._restore_detection(inp)
            inp.reader = InputReader(
                inp.index, inp.url, self._reporter(inp), mode=self._tic(inp).mode,
                baud=self._tic(inp).baud, probe_scale=self.probe_scale,
                redetect_after=max(self.lost_delay, 5.0), poller=self.poller)
            inp.reader.start()
            log.info("%s: reading %s", inp.source, inp.url)
        if not self.inputs:
            log.warning("no TIC input configured (TIC_Port[1..3] in the _daq.ini file)")
        self._schedule_sample()
        self.loop.call_every(1.0, self._check_silence)

    def on_stop(self) -> None:
        for inp in self.inputs.values():
            if inp.reader is not None:
                inp.reader.stop()
        for inp in self.inputs.values():
            if inp.reader is not None:
                inp.reader.join(timeout=1.0)
        if getattr(self, "poller", None) is not None:
            self.poller.stop()
            self.poller.join(timeout=1.0)
        self.spool.close()

    def status(self) -> dict:
        return {
            "inputs": {str(i.index): self._input_summary(i) for i in self.inputs.values()},
            "paused": self.paused,
            "period_s": self.period,
            "last_record_seq": self.spool.seq,
            "outbox": {k: len(self.spool.files(k)) for k in ("DATA", "ALARM", "PARAM")},
        }

    # --- reader reports (run on the loop) ----------------------------------------------------

    def _reporter(self, inp: Input):
        def report(kind, payload):
            self.loop.post(self._on_report, inp, kind, payload)
        return report

    def _on_report(self, inp: Input, kind: str, payload) -> None:
        handler = getattr(self, "_on_" + kind, None)
        if handler is not None:
            handler(inp, payload)

    def _on_opened(self, inp, payload) -> None:
        inp.error = None
        statecharts.fire(inp.machine_model, "port_opened")

    def _on_open_failed(self, inp, payload) -> None:
        inp.error = payload["error"]
        if payload["attempt"] == 1 or payload["attempt"] % 10 == 0:
            log.warning("%s: cannot open %s (%s); retrying in %.0f s", inp.source, inp.url,
                        payload["error"], payload["retry_in"])

    def _on_closed(self, inp, payload) -> None:
        inp.error = payload.get("error")
        log.warning("%s: line lost (%s); reopening", inp.source, inp.error)
        statecharts.fire(inp.machine_model, "port_closed")

    def _on_detecting(self, inp, payload) -> None:
        if inp.state != "detecting":
            statecharts.fire(inp.machine_model, "detect")

    def _on_detected(self, inp, det: Detection) -> None:
        inp.detection = det
        inp.definition = self._definition_for(inp, det)
        inp.sampler = Sampler(inp.definition, inp.source)
        ident = det.identity
        log.info("%s: %s meter detected (%s mode, %d bd), serial %s, definition %s", inp.source,
                 ident.family, ident.mode, det.baud, ident.serial, inp.definition.name)
        self._persist_detection(inp)
        statecharts.fire(inp.machine_model, "meter_found")
        inp.last_valid = time.monotonic()
        self.publish("tic.%d.detected" % inp.index, input=inp.index, family=ident.family,
                     mode=ident.mode, baud=det.baud, serial=ident.serial,
                     definition=inp.definition.name, variables=det.labels)
        self._detection_done(inp)

    def _on_no_meter(self, inp, payload) -> None:
        log.warning("%s: no meter found at %s bd", inp.source,
                    "/".join(str(b) for b in payload["bauds"]))
        statecharts.fire(inp.machine_model, "no_meter")
        self._detection_done(inp)

    def _on_frame(self, inp, frame) -> None:
        inp.frames += 1
        values = frame.values()
        self.publish("tic.%d.frame" % inp.index, input=inp.index, mode=frame.mode,
                     complete=frame.complete,
                     groups=[[g.label, g.value, g.horodate, g.ok] for g in frame.groups],
                     checksum_errors=frame.n_bad, errors=frame.errors)
        if not values or inp.sampler is None:
            return
        inp.last_valid = time.monotonic()
        if inp.state in ("identified", "lost"):
            was_lost = inp.state == "lost" and inp.lost_since is not None
            statecharts.fire(inp.machine_model, "frame")
            if was_lost:
                self._meter_found(inp)
        for alarm in inp.sampler.add(values, self.clock.now()):
            self._raise(alarm)

    def _on_stats(self, inp, stats) -> None:
        inp.decoder_stats = stats

    def _on_stopped(self, inp, payload) -> None:
        pass

    # --- sampling, silence, alarms ---------------------------------------------------------------

    def _schedule_sample(self) -> None:
        now = self.clock.now()
        boundary = math.floor(now / self.period + 1) * self.period
        self.loop.call_later(max(boundary - now, 0.0), self._sample, boundary)

    def _sample(self, boundary: float) -> None:
        for inp in self.inputs.values():
            if inp.sampler is None:
                continue
            row = inp.sampler.row()
            if row is None:
                continue
            rec = self.spool.append_record(inp.index, inp.detection.identity.serial or "",
                                           inp.definition.name, boundary, row,
                                           header=inp.definition.columns())
            self.publish("spool.written", input=inp.index, seq=rec["seq"],
                         time=row_time(boundary, self.spool.euro), columns=row)
        self._schedule_sample()

    def _check_silence(self) -> None:
        now = time.monotonic()
        for inp in self.inputs.values():
            if inp.state in ("identified", "reading") and inp.last_valid is not None \
                    and now - inp.last_valid > self.lost_delay:
                statecharts.fire(inp.machine_model, "silence")
                inp.lost_since = self.clock.now()
                log.warning("%s: no valid frame for %.0f s: meter lost", inp.source,
                            now - inp.last_valid)
                self.publish("tic.%d.lost" % inp.index, input=inp.index, since=inp.lost_since)
                self._raise(Alarm(inp.lost_since, inp.source, self._def_name(inp),
                                  "COMPTEUR_PERDU", 0, self._serial(inp)))

    def _meter_found(self, inp: Input) -> None:
        log.info("%s: valid frames again: meter found", inp.source)
        self.publish("tic.%d.found" % inp.index, input=inp.index, since=inp.lost_since)
        inp.lost_since = None
        self._raise(Alarm(self.clock.now(), inp.source, self._def_name(inp), "COMPTEUR_RETROUVE",
                          0, self._serial(inp), raised=False))

    def _raise(self, alarm: Alarm) -> None:
        rec = self.spool.append_alarm(alarm.time, alarm.source, alarm.definition, alarm.name,
                                      alarm.index, alarm.value)
        self.publish("alarm.raised" if alarm.raised else "alarm.cleared", code=alarm.name,
                     source=alarm.source, detail=alarm.value, seq=rec["seq"])

    def _enforce_budget(self) -> None:
        dropped = self.spool.enforce_budget(self.budget)
        if dropped:
            self._raise(Alarm(self.clock.now(), "GATEWAY", "", "ESPACE_DISQUE", 0,
                              "%d fichiers supprimés" % len(dropped)))
            self.publish("journal", time=self.clock.now(),
                         message="Espace disque plein : %d fichier(s) de données supprimé(s)"
                                 % len(dropped))

    # --- detection helpers ---------------------------------------------------------------------

    def _detection_done(self, inp: Input) -> None:
        self.detect_pending.discard(inp.index)
        if self.detect_lock is not None and not self.detect_pending:
            self._detection_over()

    def _detection_over(self) -> None:
        if self.detect_lock is not None:
            self.detect_lock.release()
            self.detect_lock = None
            self.detect_pending = set()
            self.publish("task.ended", task="Détection", outcome="ok")

    def _tic(self, inp: Input):
        return next(t for t in self.settings.inputs if t.index == inp.index)

    def _definition_for(self, inp: Input, det: Detection) -> Definition:
        """The configured definition file if it exists, else the family's, else a generated one."""
        site = self.settings.site_id
        wanted = self._tic(inp).def_file
        if wanted:
            path = self.def_dir / wanted
            if path.exists():
                try:
                    return definitions.load(path)
                except DefinitionError as e:
                    log.error("%s: %s; using the default definition instead", inp.source, e)
            else:
                log.warning("%s: definition file %s not found; using the default", inp.source,
                            wanted)
        ident = det.identity
        if ident.family in catalogue.FAMILIES and ident.family != "UNKNOWN":
            d = definitions.default_for(site, ident.family, ident.mode)
        else:
            d = definitions.generate(site, det.labels, inp.index)
        path = self.def_dir / d.name
        if path.exists():
            try:
                return definitions.load(path)
            except DefinitionError as e:
                log.error("%s: %s; rewriting it with defaults", inp.source, e)
        write_atomic(path, d.render().encode("utf-8"))
        return d

    def _persist_detection(self, inp: Input) -> None:
        path = self.data_dir / "state" / ("detection_%d.json" % inp.index)
        write_atomic(path, json.dumps(self._input_summary(inp, details=True)).encode())

    def _restore_detection(self, inp: Input) -> None:
        """Nothing is sampled before a fresh detection; the last result is only shown."""
        path = self.data_dir / "state" / ("detection_%d.json" % inp.index)
        try:
            inp.previous = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            inp.previous = None

    def _serial(self, inp: Input) -> str:
        return (inp.detection.identity.serial or "") if inp.detection else ""

    def _def_name(self, inp: Input) -> str:
        return inp.definition.name if inp.definition else ""

    def _input_summary(self, inp: Input, details: bool = False) -> dict:
        d = {"input": inp.index, "port": inp.url, "state": inp.state, "error": inp.error,
             "frames": inp.frames, "decoder": inp.decoder_stats}
        if inp.detection is not None:
            ident = inp.detection.identity
            d.update(family=ident.family, description=catalogue.FAMILY_DESCRIPTIONS.get(
                ident.family, ""), mode=ident.mode, serial=ident.serial, baud=inp.detection.baud,
                definition=inp.definition.name if inp.definition else None)
            if details:
                d["details"] = [[label, inp.detection.values[label]]
                                for label in inp.detection.labels]
        return d
