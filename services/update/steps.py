"""The update's steps that change the disk, each under the releases lock and each written to
the update record before (or as) it acts, so that a kill at any point is finished or undone
at the next start (:func:`resume`). Blocking: the service runs them in its worker.
"""
from __future__ import annotations

import logging
from pathlib import Path

from ticgw import __version__
from ticgw.release import configs, install, moves, record
from ticgw.release.install import InstallError
from ticgw.release.layout import BASE, RECORD, Releases, release_name
from ticgw.release.record import Record

log = logging.getLogger("update")

#: The record's reasons (French: the journal and the page show them).
INTERRUPTED_INSTALL = record.INTERRUPTED + " pendant l'installation"
INTERRUPTED_SWITCH = record.INTERRUPTED + " avant le basculement"


class Steps:
    def __init__(self, releases: Releases, data_dir: Path):
        self.releases = releases
        self.data = Path(data_dir)
        self.path = releases.path / RECORD

    def load(self) -> Record:
        return record.load(self.path)

    def _save(self, rec: Record) -> None:
        record.save(self.path, rec)

    def resume(self, running_version: str = __version__) -> tuple[Record, str]:
        """Finish or undo what a kill interrupted; the record and the machine's ``resume_*``
        trigger (``resume_idle``, ``resume_verifying``, ``resume_rollback``)."""
        with self.releases.lock():
            gone = self.releases.remove_temps()
            if gone:
                log.warning("removed what an interrupted install left: %s", ", ".join(gone))
            rec = self.load()
            current = self.releases.current()
            if rec.state == "installing":
                self._fail(rec, INTERRUPTED_INSTALL)
            elif rec.state == "switching":
                if current == rec.release and current is not BASE:
                    rec.state = "verifying"             # the link moved: go on
                    self._save(rec)
                else:
                    self._fail(rec, INTERRUPTED_SWITCH)
            if rec.state == "verifying":
                if current != rec.release:
                    # the link was moved by something else than a rollback: the release that
                    # runs gets back the configuration it had
                    configs.restore(self.releases.path, self.data)
                    rec.state, rec.announced = "rolled_back", False
                    rec.reason = rec.reason or "Version %s abandonnée" % rec.version
                    self._save(rec)
                elif running_version != rec.version:
                    return rec, "resume_rollback"
                else:
                    return rec, "resume_verifying"
            if rec.state == "rolling_back":
                return rec, "resume_rollback"
            return rec, "resume_idle"

    def _fail(self, rec: Record, reason: str) -> None:
        rec.state, rec.reason, rec.announced = "failed", reason, False
        self._save(rec)

    def begin(self, facts, origin: str) -> Record:
        """The record of an install about to start (nothing else is touched yet)."""
        with self.releases.lock():
            if self.load().pending:
                raise InstallError("an install is pending (%s)" % self.load().state,
                                   "Une mise à jour est déjà en cours")
            current = self.releases.current()
            rec = Record(state="installing", version=facts.version,
                         release=release_name(facts.version, facts.sha256),
                         sha256=facts.sha256, build_date=facts.build_date, origin=origin,
                         from_version=__version__, from_release=current,
                         tries_left=record.TRIES, announced=False)
            self._save(rec)
            return rec

    def install(self, job, pak, facts, progress) -> str:
        return install.install(pak, facts, self.releases, progress=progress,
                               cancelled=lambda: job.cancelled)

    def failed(self, reason: str, facts=None, origin: str | None = None,
               sha256: str | None = None) -> Record:
        """A package refused or an install that failed: nothing that runs was touched. A record
        that is pending (a switch not committed) is left to the launcher and to resume()."""
        with self.releases.lock():
            rec = self.load()
            if rec.pending:
                log.error("not recorded as failed (%s): the record is %s", reason, rec.state)
                return rec
            if facts is not None and rec.sha256 != facts.sha256:
                rec = Record(version=facts.version, sha256=facts.sha256,
                             build_date=facts.build_date, origin=origin,
                             from_version=__version__, from_release=self.releases.current())
            elif facts is None and rec.state in record.FINAL + ("idle",):
                # refused before its facts were read: known by the checksum it was sent with
                rec = Record(origin=origin, sha256=sha256, from_version=__version__,
                             from_release=self.releases.current())
            self._fail(rec, reason)
            return rec

    def switch(self) -> Record:
        """The pending mark first, the configuration copied aside, then the link: the launcher
        counts the new release's starts from here, and rolls it back when they run out."""
        with self.releases.lock():
            return moves.switch_to(self.releases, self.load(), self.data)

    def commit(self) -> Record:
        with self.releases.lock():
            rec, gone = moves.commit(self.releases, self.load())
            if gone:
                log.info("removed older releases: %s", ", ".join(gone))
            return rec

    def roll_back(self, reason: str) -> Record:
        with self.releases.lock():
            return moves.roll_back(self.releases, self.load(), self.data, reason)

    def announced(self) -> Record:
        with self.releases.lock():
            rec = self.load()
            rec.announced = True
            self._save(rec)
            return rec

    def running(self) -> dict:
        """What runs and what is on disk, for the status."""
        current = self.releases.current()
        return {"release": current or "base", "installed": self.releases.installed()}
