"""Detection (manual 10.3.1): which definition file a detected meter gets, and the task
'Détection' that spans every input.

The definition file of an input:

1. the one named by ``TIC_FileDefName[n]``, when it exists and the meter is the one
   ``TIC_Serial[n]`` names (or no serial is recorded yet): a definition edited for a meter
   stays with that meter, not with the input;
2. else the shipped one of the meter's family (written to ``def/`` the first time);
3. else, for a meter whose family is unknown, one generated from the labels it sends, named
   after its serial number: a different unknown meter on the same input gets its own file, never
   the previous meter's.

The task holds the cross-process lock 'Détection' while inputs probe; it ends when every input
has an answer (a meter, no meter, or no port) or at its deadline.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

from bus.tasklock import TaskBusy, TaskLock
from tic import catalogue, definitions
from tic.definitions import Definition, DefinitionError
from ticgw.files import write_atomic

log = logging.getLogger("acquisition.detection")

TASK = "Détection"


def generated_name(site: str, serial: str | None, input_no: int) -> str:
    """``<site>_TIC_UNKNOWN-<serial>.ini`` (``UNKNOWN<n>`` when the meter gave no serial)."""
    safe = re.sub(r"[^0-9A-Za-z]", "", serial or "")
    family = "UNKNOWN-%s" % safe if safe else "UNKNOWN%d" % input_no
    return "%s_TIC_%s.ini" % (site, family)


def choose_definition(def_dir: Path, site: str, input_no: int, detection,
                      configured_file: str, configured_serial: str) -> Definition:
    """The definition for a meter just detected (see the module's docstring). Disk work: run it
    in a worker."""
    ident = detection.identity
    same_meter = not configured_serial or configured_serial == (ident.serial or "")
    if configured_file and same_meter:
        path = def_dir / configured_file
        if path.exists():
            try:
                return definitions.load(path)
            except DefinitionError as e:
                log.error("TIC%d: %s; using the default definition instead", input_no, e)
        else:
            log.warning("TIC%d: definition file %s not found; using the default", input_no,
                        configured_file)
    elif configured_file:
        log.info("TIC%d: a different meter (%s, was %s): %s is not used for it", input_no,
                 ident.serial, configured_serial, configured_file)
    if ident.family in catalogue.FAMILIES and ident.family != "UNKNOWN":
        wanted = definitions.default_for(site, ident.family, ident.mode)
    else:
        d = definitions.generate(site, detection.labels, input_no)
        wanted = Definition(generated_name(site, ident.serial, input_no), d.variables)
    path = def_dir / wanted.name
    if path.exists():
        try:
            return definitions.load(path)
        except DefinitionError as e:
            log.error("TIC%d: %s; rewriting it with defaults", input_no, e)
    def_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(path, wanted.render().encode("utf-8"))
    return wanted


class DetectionTask:
    """The task 'Détection' across inputs; ``on_end()`` runs when it is over."""

    def __init__(self, service, reason: str, inputs, timeout: float, on_end=None):
        self.service = service
        self.reason = reason
        self.pending = set(inputs)
        self.on_end = on_end
        self.lock = None
        self.over = False
        try:
            self.lock = TaskLock(service.run_dir).acquire(TASK)
        except TaskBusy:
            if reason != "boot":
                raise
            # At start-up another task may be running (a connection the other services
            # finish): the meters are detected anyway, without announcing the task.
            log.info("detection at start-up runs beside the task already running")
        if self.lock is not None:
            service.publish("task.started", task=TASK, reason=reason)
        self.timer = service.loop.call_later(timeout, self.end, "timeout")
        if not self.pending:
            service.loop.post(self.end, "ok")

    def done(self, input_no: int) -> None:
        """Input ``input_no`` has its answer."""
        self.pending.discard(input_no)
        if not self.pending and not self.over:
            self.end("ok")

    def end(self, outcome: str) -> None:
        if self.over:
            return
        self.over = True
        self.timer.cancel()
        if self.pending:
            log.warning("detection: no answer from %s in time",
                        ", ".join("TIC%d" % n for n in sorted(self.pending)))
        try:
            if self.lock is not None:
                self.lock.release()
                self.service.publish("task.ended", task=TASK, outcome=outcome)
        finally:
            self.lock = None
            if self.on_end is not None:
                self.on_end(self)
