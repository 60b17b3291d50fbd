"""One TIC input: the model of its ``tic_input`` machine (statecharts/tic_input.py).

The chart is the table of contents: each method below is the work of a state (``on_enter``) or
of a transition (``after``), named there, or the handler of one fact the line's worker reports
(port opened, probe result, frame, line error), which fires the trigger the chart names. Every
handler runs on the service's loop; the blocking work is the line's (line.py).
"""
from __future__ import annotations

import logging

from services.runtime import Backoff
from tic.definitions import Definition

from .detection import choose_definition
from .line import Detection, Line, LineError, max_probe_seconds
from .sampler import Alarm, Sampler

log = logging.getLogger("acquisition")

#: Seconds an open may take before it counts as failed (rfc2217:// or socket:// may hang).
OPEN_TIMEOUT = 15.0
#: Seconds between two probes of a line without a meter (lost or silent), at most.
REPROBE_MAX = 30.0


class TicInput:
    def __init__(self, service, config, line: Line):
        self.svc = service
        self.config = config                     # ticgw.config.TicInput
        self.index = config.index
        self.url = config.port
        self.line = line
        self.name = "tic_input.%d" % self.index
        self.backoff = Backoff(1.0, 30.0)
        self.detection: Detection | None = None
        self.definition: Definition | None = None
        self.sampler: Sampler | None = None
        self.lost_since: float | None = None
        self.frames = 0
        self.valid_frames = 0
        self.decoder_stats: dict = {}
        self.error: str | None = None
        self.previous: dict | None = None        # the last detection before this start (shown)
        self._open_failures = 0
        service.machine(self.name, self, chart="tic_input")

    @property
    def source(self) -> str:
        return "TIC%d" % self.index

    def fire(self, trigger: str, *args) -> bool:
        return self.svc.fire(self.name, trigger, *args)

    # --- how long each timed state lasts ----------------------------------------------------------

    def timeout(self, state: str):
        scale = self.svc.probe_scale
        if state == "absent":
            return self.backoff.next()
        if state == "opening":
            return OPEN_TIMEOUT
        if state == "detecting":
            return max_probe_seconds(self.line.bauds, scale)
        if state in ("identified", "reading"):
            return self.svc.lost_delay
        if state in ("lost", "silent"):
            # the next probe, once the line has been listened to for a while: never before the
            # current probe can have ended (a probe is not cut short by the next one)
            return min(self.svc.lost_delay, REPROBE_MAX) + max_probe_seconds(self.line.bauds,
                                                                              scale)
        return None

    # --- the work of states and transitions ----------------------------------------------------

    def close_port(self, event) -> None:
        self.line.close()
        self.svc.detection_done(self.index)

    def open_port(self, event) -> None:
        self.line.open(on_done=self._opened)

    def port_ok(self, event) -> None:
        self.backoff.reset()
        self._open_failures = 0

    def probe(self, event) -> None:
        self.line.probe(on_done=self._probed)

    def start_reading(self, event) -> None:
        det, definition = self.detection, self.definition
        ident = det.identity
        self.sampler = Sampler(definition, self.source)
        log.info("%s: %s meter detected (%s mode, %d bd), serial %s, definition %s",
                 self.source, ident.family, ident.mode, det.baud, ident.serial, definition.name)
        self.svc.publish("tic.%d.detected" % self.index, input=self.index, family=ident.family,
                         mode=ident.mode, baud=det.baud, serial=ident.serial,
                         definition=definition.name, variables=det.labels)
        self.svc.meter_identified(self)
        self.line.stream(self._frame, self._stats, on_done=self._stream_ended)

    def listen(self, event) -> None:
        """Read the line between probes (a meter coming back shows up as a valid frame)."""
        self.svc.machines.rearm(self.name)
        self.line.stream(self._frame, self._stats, on_done=self._stream_ended)

    def meter_lost(self, event) -> None:
        self.lost_since = self.svc.gateway_clock.now()
        log.warning("%s: no valid frame for %.0f s: meter lost", self.source, self.svc.lost_delay)
        self.svc.publish("tic.%d.lost" % self.index, input=self.index, since=self.lost_since)
        self.svc.raise_alarm(Alarm(self.lost_since, self.source, self.definition_name,
                                   "COMPTEUR_PERDU", 0, self.serial))
        self.probe(event)

    def meter_back(self, event) -> None:
        log.info("%s: valid frames again: meter found", self.source)
        self.svc.publish("tic.%d.found" % self.index, input=self.index, since=self.lost_since)
        self.lost_since = None
        self.svc.raise_alarm(Alarm(self.svc.gateway_clock.now(), self.source,
                                   self.definition_name, "COMPTEUR_RETROUVE", 0, self.serial,
                                   raised=False))

    def rearm(self, event) -> None:
        self.svc.machines.rearm(self.name)

    # --- facts reported by the line's worker -------------------------------------------------

    def _opened(self, outcome) -> None:
        if isinstance(outcome, BaseException):
            self.error = str(outcome)
            self._open_failures += 1
            if self._open_failures == 1 or self._open_failures % 10 == 0:
                log.warning("%s: cannot open %s (%s); retrying in a moment", self.source,
                            self.url, self.error)
            self.fire("open_failed")
            return
        self.error = None
        log.info("%s: %s open", self.source, self.url)
        self.fire("opened")

    def _probed(self, outcome) -> None:
        if isinstance(outcome, Detection):
            cfg = self.svc.tic_settings(self.index)
            self.line.worker.submit(
                lambda job: choose_definition(self.svc.def_dir, self.svc.settings.site,
                                              self.index, outcome, cfg.def_file, cfg.serial),
                on_done=lambda d: self._identified(outcome, d), name="definition")
            return
        if isinstance(outcome, BaseException):
            self._line_failed(outcome)
        else:
            log.warning("%s: no meter found at %s bd", self.source,
                        "/".join(str(b) for b in self.line.bauds))
            self.fire("no_meter")
        self.svc.detection_done(self.index)

    def _identified(self, detection: Detection, definition) -> None:
        if isinstance(definition, BaseException):
            log.error("%s: no definition for the meter (%s: %s); starting the line again",
                      self.source, type(definition).__name__, definition)
            self.fire("fault")
            return
        self.detection, self.definition = detection, definition
        self.fire("meter_found")

    def _frame(self, frame) -> None:
        self.frames += 1
        self.svc.publish("tic.%d.frame" % self.index, input=self.index, mode=frame.mode,
                         complete=frame.complete,
                         groups=[[g.label, g.value, g.horodate, g.ok] for g in frame.groups],
                         checksum_errors=frame.n_bad, errors=frame.errors)
        values = frame.values()
        if not (frame.complete and values):
            return
        self.valid_frames += 1
        self.fire("frame")
        if self.state == "reading" and self.sampler is not None:
            self.svc.frame_pulse(self)
            for alarm in self.sampler.add(values, self.svc.gateway_clock.now()):
                self.svc.raise_alarm(alarm)

    def _stats(self, stats: dict) -> None:
        self.decoder_stats = stats

    def _stream_ended(self, outcome) -> None:
        if isinstance(outcome, BaseException):
            self._line_failed(outcome)

    def _line_failed(self, exc: BaseException) -> None:
        self.error = str(exc)
        if not isinstance(exc, LineError):
            log.error("%s: %s: %s", self.source, type(exc).__name__, exc)
        log.warning("%s: line lost (%s); reopening", self.source, self.error)
        self.fire("port_closed")

    # --- what is known -------------------------------------------------------------------------

    @property
    def serial(self) -> str:
        return (self.detection.identity.serial or "") if self.detection else ""

    @property
    def definition_name(self) -> str:
        return self.definition.name if self.definition else ""

    def summary(self, details: bool = False) -> dict:
        d = {"input": self.index, "port": self.url, "state": self.state, "error": self.error,
             "frames": self.frames, "valid_frames": self.valid_frames,
             "decoder": self.decoder_stats, "lost_since": self.lost_since}
        if self.detection is not None:
            from tic import catalogue
            ident = self.detection.identity
            d.update(family=ident.family,
                     description=catalogue.FAMILY_DESCRIPTIONS.get(ident.family, ""),
                     mode=ident.mode, serial=ident.serial, baud=self.detection.baud,
                     definition=self.definition_name or None)
            if details:
                d["details"] = [[label, self.detection.values[label]]
                                for label in self.detection.labels]
        elif self.previous is not None:
            d["previous"] = self.previous
        return d
