"""The update service: the `install` machine (statecharts/install.py) and what its states do.

Packages are read from ``<data>/firmware`` (the uplink's /BIN downloads, the page's uploads)
and become releases under ``<releases>`` (ticgw/release). Every step that changes the disk runs
in the worker (:mod:`.steps`) and is written to the update record first; the loop only decides.
"""
from __future__ import annotations

import logging
from pathlib import Path

from bus.client import Deferred
from bus.errors import CommandRefused
from bus.tasklock import BUSY_MESSAGE, TaskLock
from services.runtime import Service, Worker
from ticgw import __version__, registry
from ticgw.pak import PakError, verify
from ticgw.pak.manifest import MODEL
from ticgw.release import install as release_install
from ticgw.release import layout
from ticgw.release.install import InstallError
from ticgw.release.record import Record

from .steps import Steps

log = logging.getLogger("update")

TASK = "Mise à jour"
#: Seconds a verified package waits for the installer's confirmation.
OFFER_TIMEOUT = 900.0
#: Seconds an outcome found at start waits for the acquisition (which writes alarms).
ANNOUNCE_WAIT = 30.0
ALARM_ROLLED_BACK = "MISE_A_JOUR_ANNULEE"
NO_KEY = "Paquet refusé : clé publique BIN_PublicKey non configurée"


def outcome_row(rec: Record) -> str:
    """The journal row of an outcome (French, as the page and the LOG file show it)."""
    if rec.state == "committed":
        return "Mise à jour installée : version %s (précédente %s)" % (rec.version,
                                                                      rec.from_version)
    if rec.state == "rolled_back":
        return "Mise à jour annulée : retour à la version %s (%s)" % (rec.from_version,
                                                                     rec.reason)
    return "Échec de la mise à jour%s : %s" % (" %s" % rec.version if rec.version else "",
                                              rec.reason)


class InstallModel:
    """The model of the `install` machine: one method per callback the chart names."""

    def __init__(self, service: "UpdateService"):
        self.svc = service

    def timeout(self, state: str):
        return self.svc.timeout(state)

    def check_package(self, event):
        self.svc.check_package()

    def offer_package(self, event):
        self.svc.offer_package()

    def install_release(self, event):
        self.svc.install_release()

    def switch_release(self, event):
        self.svc.switch_release()

    def restart_into_release(self, event):
        self.svc.restart_into_release()

    def watch_health(self, event):
        self.svc.watch_health()

    def stop_watching(self, event):
        self.svc.watching = False

    def commit_release(self, event):
        self.svc.commit_release()

    def roll_back(self, event):
        self.svc.roll_back()

    def after_rollback(self, event):
        self.svc.after_rollback()

    def install_failed(self, event):
        self.svc.install_failed(event)


class UpdateService(Service):
    name = "update"

    def on_start(self) -> None:
        self.releases = layout.Releases(layout.root(self.data_dir))
        self.steps = Steps(self.releases, self.data_dir)
        self.inbox = (self.data_dir / "firmware").resolve()
        self.worker = Worker(self.loop, "update-work")
        self.model = InstallModel(self)
        self.machine("install", self.model)
        self.record = Record()
        self.running = {"release": "base", "installed": []}
        self.package: Path | None = None
        self.facts = None
        self.origin = "web"
        self.expected_sha256: str | None = None
        self.auto_confirm = False
        self.waiters: list[Deferred] = []
        self.failure: str | None = None
        self.rollback_reason: str | None = None
        self.progress: dict = {}
        self.task = None
        self.watching = False
        self.asked_restart: set[str] = set()
        self.peers: dict[str, dict] = {}
        self._announce_timer = None
        for spec in registry.SERVICES:
            if spec.name != self.name:
                self.follow("%s.status" % spec.name, self._on_peer_status)
        self.worker.submit(lambda job: (self.steps.resume(), self.steps.running()),
                           on_done=self._resumed)

    def on_stop(self) -> None:
        self.worker.cancel()
        self._release_task("stopped")

    def commands(self) -> dict:
        return {"verify": self.cmd_verify, "install": self.cmd_install,
                "discard": self.cmd_discard}

    def timeout(self, state: str):
        if state == "verified":
            return None if self.auto_confirm else OFFER_TIMEOUT
        if state == "verifying":
            return float(self.settings.bin_health_timeout)
        return None

    def status(self) -> dict:
        return {"state": self.machines.states().get("install"), "version": __version__,
                "release": self.running["release"], "installed": self.running["installed"],
                "record": self.record.to_dict(), "progress": dict(self.progress),
                "package": self._facts_summary()}

    # --- start ---------------------------------------------------------------------------------

    def _job_failed(self, error: BaseException) -> None:
        """A job of the worker raised what it should not have: the machine's fault path (a
        state never waits for a job that is over)."""
        log.error("%s in %s: %s", type(error).__name__, self.state, error)
        self.failure = self.failure or "Erreur interne (%s : %s)" % (type(error).__name__, error)
        self.fire("install", "fault")

    def _resumed(self, outcome) -> None:
        if isinstance(outcome, BaseException):
            return self._job_failed(outcome)
        (self.record, trigger), self.running = outcome
        if trigger == "resume_rollback":
            self.rollback_reason = self.record.reason or (
                "version en cours %s au lieu de %s" % (__version__, self.record.version))
        self.fire("install", trigger)
        if trigger == "resume_idle" and not self.record.announced:
            # the acquisition writes the alarm file: give it a moment to be there
            self._announce_timer = self.loop.call_later(ANNOUNCE_WAIT, self.announce)

    # --- commands ------------------------------------------------------------------------------

    def cmd_verify(self, params: dict):
        return self._take(params, origin=str(params.get("origin") or "web"), confirm=False)

    def cmd_install(self, params: dict):
        if params.get("path"):
            return self._take(params, origin=str(params.get("origin") or "command"),
                              confirm=True)
        if self.state != "verified":
            raise CommandRefused("nothing", "Aucun paquet vérifié à installer")
        self._acquire_task(self.origin)
        self.fire("install", "confirm")
        return self._facts_summary()

    def cmd_discard(self, params: dict) -> dict:
        if self.state != "verified":
            raise CommandRefused("nothing", "Aucun paquet vérifié à abandonner")
        self.fire("install", "discard")
        return {"discarded": True}

    @property
    def state(self) -> str:
        return self.machines.states().get("install")

    def _take(self, params: dict, origin: str, confirm: bool):
        if self.state not in ("idle", "verified", "committed", "rolled_back", "failed") \
                or self.record.pending:
            raise CommandRefused("busy", BUSY_MESSAGE % TASK)
        path = Path(str(params["path"])).resolve() if params.get("path") else None
        if path is None or path.parent != self.inbox:
            raise CommandRefused("bad-path", "the package must be a file in %s" % self.inbox)
        if confirm:
            self._acquire_task(origin)
        self.package, self.origin, self.auto_confirm = path, origin, confirm
        self.expected_sha256 = (str(params.get("sha256") or "").lower() or None)
        self.facts = None
        reply = Deferred()
        self.waiters.append(reply)
        self.fire("install", "upload")
        return reply

    def _acquire_task(self, origin: str) -> None:
        if self.task is None:
            self.task = TaskLock(self.run_dir).acquire(TASK)    # TaskBusy: the refusal
            self.publish("task.started", task=TASK, reason=origin)

    def _release_task(self, outcome: str, detail: str | None = None) -> None:
        if self.task is not None:
            self.task.release()
            self.task = None
            self.publish("task.ended", task=TASK, outcome=outcome, detail=detail)

    def _answer(self, error: tuple[str, str] | None = None) -> None:
        waiters, self.waiters = self.waiters, []
        for w in waiters:
            if error:
                w.fail(*error)
            else:
                w.resolve(self._facts_summary())

    # --- the machine's work ------------------------------------------------------------------

    def _progress(self, step: str, percent: int, version: str | None = None) -> None:
        """``version``: the package's, once it is known (None while a new one is checked)."""
        self.progress = {"step": step, "percent": percent,
                         "version": version or (self.facts.version if self.facts else None)}
        self.publish("update.progress", **self.progress)

    def check_package(self) -> None:
        self._progress("vérification", 0)
        key = self.settings.bin_public_key
        path, expected = self.package, self.expected_sha256

        def check(job):
            if not key:
                raise PakError("no-key", "BIN_PublicKey is empty", NO_KEY)
            facts = verify(path, key, running_version=__version__, model=MODEL)
            if expected and facts.sha256 != expected:
                raise PakError("checksum", "sha256 %s, expected %s" % (facts.sha256, expected),
                               "Paquet refusé : somme de contrôle différente de BIN_Checksum")
            release_install.check_space(self.releases, facts)
            return facts

        self.worker.submit(check, on_done=self._checked)

    def _checked(self, outcome) -> None:
        if isinstance(outcome, PakError):
            log.warning("package %s refused: %s", self.package, outcome.message)
            self.failure = outcome.french
            self._answer((outcome.code, outcome.french))
            self.fire("install", "refused")
            return
        if isinstance(outcome, BaseException):
            return self._job_failed(outcome)
        self.facts = outcome
        self.fire("install", "checked")

    def offer_package(self) -> None:
        self.publish("update.facts", from_version=__version__, **self._facts_summary())
        self._answer()
        if self.auto_confirm:
            self.fire("install", "confirm")

    def install_release(self) -> None:
        facts, pak, origin = self.facts, self.package, self.origin
        self._progress("extraction", 0)

        def progress(step, percent):
            self.loop.post(self._progress, step, percent)

        def work(job):
            self.steps.begin(facts, origin)
            name = self.steps.install(job, pak, facts, progress)
            pak.unlink(missing_ok=True)
            return name

        self.worker.submit(work, on_done=self._installed)

    def _installed(self, outcome) -> None:
        if isinstance(outcome, (InstallError, PakError)):
            log.error("install failed: %s", outcome)
            self.failure = outcome.french
            self.fire("install", "refused")
            return
        if isinstance(outcome, BaseException):
            return self._job_failed(outcome)
        self.fire("install", "installed")

    def switch_release(self) -> None:
        self._progress("basculement", 95)
        self.worker.submit(lambda job: (self.steps.switch(), self.steps.running()),
                           on_done=self._switched)

    def _switched(self, outcome) -> None:
        if isinstance(outcome, BaseException):
            return self._job_failed(outcome)
        self.record, self.running = outcome
        self.fire("install", "switched")

    def restart_into_release(self) -> None:
        self._progress("redémarrage", 100, self.record.version)
        log.warning("release %s is current: restarting the gateway into it",
                    self.record.release)
        self.restart_gateway("Mise à jour %s" % self.record.version)

    def watch_health(self) -> None:
        """Every other service must report operational, running the new version."""
        self.watching = True
        self._progress("contrôle de santé", 0, self.record.version)
        for name in self.peers_to_watch():
            self.call(name, "status", on_reply=lambda r, n=name: self._on_status_reply(n, r),
                      timeout=5.0)
        self.check_health()

    def peers_to_watch(self) -> list[str]:
        return [s.name for s in registry.SERVICES if s.name != self.name]

    def _on_status_reply(self, name: str, reply) -> None:
        if not isinstance(reply, Exception):
            self._on_peer(name, reply)

    def _on_peer_status(self, topic: str, env: dict) -> None:
        self._on_peer(topic.split(".", 1)[0], env.get("data") or env)

    def _on_peer(self, name: str, data: dict) -> None:
        self.peers[name] = {"activity": data.get("activity"), "version": data.get("version")}
        if self.watching:
            self.check_health()
        elif (self.state in ("idle", "committed", "rolled_back", "failed")
              and data.get("version") not in (None, __version__)
              and name not in self.asked_restart and not self.record.pending):
            # a service still on another release than the current one (the launcher rolled
            # back a release that could not start, restarting only the update service)
            self.asked_restart.add(name)
            log.warning("%s runs %s, the current release is %s: restarting it", name,
                        data.get("version"), __version__)
            self.call(name, "restart")
        elif (name == "acquisition" and data.get("activity") == "operational"
              and not self.record.announced and self._announce_timer is not None):
            self._announce_timer.cancel()
            self._announce_timer = None
            self.announce()

    def check_health(self) -> None:
        target = self.record.version
        waiting = []
        for name in self.peers_to_watch():
            p = self.peers.get(name)
            if p and p["version"] not in (None, target) and name not in self.asked_restart:
                # started before the switch and never restarted: it must run the new release
                self.asked_restart.add(name)
                log.warning("%s runs %s, not %s: restarting it", name, p["version"], target)
                self.call(name, "restart")
            if not p or p["activity"] != "operational" or p["version"] != target:
                waiting.append(name)
        if not waiting:
            self.fire("install", "healthy")

    def health_failure(self) -> str:
        """Why the health check failed: each service that was not there, and how."""
        target = self.record.version
        parts = []
        for name in self.peers_to_watch():
            p = self.peers.get(name)
            if not p:
                parts.append("%s (muet)" % name)
            elif p["version"] != target:
                parts.append("%s (version %s)" % (name, p["version"]))
            elif p["activity"] != "operational":
                parts.append("%s (%s)" % (name, p["activity"]))
        return ("services non opérationnels après %d s : %s"
                % (self.settings.bin_health_timeout, ", ".join(parts) or "aucun"))

    def commit_release(self) -> None:
        self.worker.submit(lambda job: (self.steps.commit(), self.steps.running()),
                           on_done=self._committed)

    def _committed(self, outcome) -> None:
        if isinstance(outcome, BaseException):
            return self._job_failed(outcome)
        self.record, self.running = outcome
        log.info("release %s committed", self.record.release)
        self.announce()

    def roll_back(self) -> None:
        reason = self.rollback_reason or self.health_failure()
        self.rollback_reason = None
        log.error("rolling back %s: %s", self.record.version, reason)
        self.worker.submit(lambda job: (self.steps.roll_back(reason), self.steps.running()),
                           on_done=self._rolled_back)

    def _rolled_back(self, outcome) -> None:
        if isinstance(outcome, BaseException):
            return self._job_failed(outcome)
        self.record, self.running = outcome
        self.fire("install", "rolled")

    def after_rollback(self) -> None:
        """Restart into the previous release; its update service announces the outcome (the
        journal row and the alarm, written by services that run)."""
        self.restart_gateway("retour à la version %s" % self.record.from_version)

    def install_failed(self, event) -> None:
        error = getattr(event, "error", None)
        reason = self.failure or ("Erreur interne (%s)" % type(error).__name__ if error
                                  else "Erreur interne")
        self.failure = None
        facts, origin, sha256 = self.facts, self.origin, self.expected_sha256
        self._answer(("refused", reason))
        self._release_task("failed", reason)
        if self.record.state == "rolling_back":
            # the rollback failed half-way: the launcher finishes it at the next start, which
            # a whole-gateway restart brings now
            self.restart_gateway("retour arrière à terminer")
            return
        self.worker.submit(lambda job: self.steps.failed(reason, facts, origin, sha256),
                           on_done=self._failure_recorded)

    def _failure_recorded(self, outcome) -> None:
        if isinstance(outcome, BaseException):
            log.error("the failure could not be recorded: %s", outcome)
            return
        self.record = outcome
        self.announce()

    # --- outcomes ------------------------------------------------------------------------------

    def announce(self) -> None:
        """The outcome's journal row, its event, and for a rollback the alarm; once."""
        rec = self.record
        if rec.announced or rec.state not in ("committed", "rolled_back", "failed"):
            return
        # the outcome event once its row is in the journal: a service that acts on it (the
        # uplink's owed restart) journals after it
        self.journal(outcome_row(rec), on_written=lambda: self.publish(
            "update.outcome", state=rec.state, version=rec.version,
            from_version=rec.from_version, reason=rec.reason))
        if rec.state == "rolled_back":
            self.publish("alarm.raised", code=ALARM_ROLLED_BACK, source="GATEWAY",
                         detail="%s -> %s" % (rec.version, rec.from_version))
        if rec.state in ("committed", "rolled_back") and self.state == rec.state:
            self._release_task("ok" if rec.state == "committed" else "failed", rec.reason)
        self.worker.submit(lambda job: self.steps.announced(), on_done=self._announced)

    def _announced(self, outcome) -> None:
        if not isinstance(outcome, BaseException):
            self.record = outcome

    def _facts_summary(self) -> dict:
        f = self.facts
        if f is None:
            return {}
        return {"version": f.version, "build_date": f.build_date, "size": f.size,
                "sha256": f.sha256, "model": f.model}
