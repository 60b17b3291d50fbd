"""The uplink service: runs connections to the remote server (DESIGN 5).

Its table of contents is the `connection` machine (statecharts/connection.py): entering a phase
starts that phase's work (phases.py) in a worker thread, whose outcome fires the next trigger on
the loop. Connections are started by the `connect` command (web button, install button), the
schedule (`_var.ini`), an alarm (`ALM_Delay`) or a command file (CONNECT); one at a time, under the
cross-process task lock "Connexion".
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import zmq

import statecharts
from bus.client import CommandClient
from bus.errors import CommandRefused
from bus.tasklock import TaskBusy, TaskLock
from services.runtime import Service
from statecharts.connection import PHASES
from ticgw.clock import GatewayClock

from . import ntp, schedule
from .journal import Journal
from .phases import Connection

log = logging.getLogger("uplink")

#: Seconds to wait after an alarm before connecting (so a burst of alarms makes one connection).
ALARM_DEBOUNCE = 10.0


class _Model:
    pass


class UplinkService(Service):
    name = "uplink"
    subscriptions = ("alarm.raised", "spool.written")

    def __init__(self, settings, store, data_dir: Path, **kw):
        super().__init__(settings=settings, **kw)
        self.store = store
        # Configuration written by a connection (server file, CONFIG command, site ID): say so.
        store.on_change = lambda files: self.loop.post(
            lambda: self.publish("config.changed", files=files, by="server"))
        self.data_dir = Path(data_dir)
        self.clock = GatewayClock(self.data_dir / "state")
        self.journal = Journal(self.data_dir / "state", clock=self.clock.now,
                               on_entry=self._journal_entry)
        self.conn_model = _Model()
        # transitions binds on_enter_<state> when the machine is built: set them first.
        for phase in PHASES:
            setattr(self.conn_model, "on_enter_" + phase, self._phase_entered)
        self.conn_model.on_enter_closing = self._closing_entered
        self.machine("connection", self.conn_model)
        self.current: Connection | None = None
        self.lock = None
        self.last = None                # {"start", "end", "reason", "outcome", stats...}
        self.pending_reason: str | None = None
        self.alarm_pending = False
        self.next_scheduled: float | None = None
        self._sched_timer = None
        self._version_sent = False

    # --- commands ----------------------------------------------------------------------------

    def commands(self) -> dict:
        return {"connect": self.cmd_connect, "journal": self.cmd_journal}

    def cmd_connect(self, params: dict) -> dict:
        """Start a connection now (Connexion task)."""
        reason = params.get("reason", "button")
        self._start_connection(reason, install=bool(params.get("install")))
        return {"started": True}

    def cmd_journal(self, params: dict) -> dict:
        """The last rows of the Connexion table, [date, hour GMT, message]."""
        return {"rows": self.journal.tail(int(params.get("n", 50)))}

    # --- life --------------------------------------------------------------------------------

    def on_start(self) -> None:
        self._schedule_next()

    def status(self) -> dict:
        return {"connection": self.conn_model.state, "reason": self.current.reason
                if self.current else None, "last": self.last,
                "next_scheduled": self.next_scheduled,
                "journal": self.journal.tail(12)}

    def on_event(self, topic: str, env: dict) -> None:
        if topic == "alarm.raised":
            if int(self.settings.alm_delay) == 0:
                self.loop.call_later(ALARM_DEBOUNCE, self._alarm_connect)
            else:
                self.alarm_pending = True        # after the next acquisition point
        elif topic == "spool.written":
            if self.alarm_pending:
                self.alarm_pending = False
                self.loop.call_later(1.0, self._alarm_connect)
            elif int(self.settings.connection_on_data_acquisition):
                self.loop.call_later(1.0, self._try_connect, "acquisition")

    def on_stop(self) -> None:
        if self.current is not None and self.current.ftp is not None:
            self.current.close()

    # --- starting a connection --------------------------------------------------------------

    def _alarm_connect(self) -> None:
        self._try_connect("alarm")

    def _try_connect(self, reason: str) -> None:
        try:
            self._start_connection(reason)
        except CommandRefused as e:
            # Another task runs (or a connection): ask again once it is over.
            log.info("connection (%s) postponed: %s", reason, e)
            self.pending_reason = self.pending_reason or reason

    def _start_connection(self, reason: str, install: bool = False) -> None:
        if self.conn_model.state != "idle":
            raise CommandRefused("busy", "Une tâche 'Connexion' est déjà en cours d'exécution. "
                                         "Veuillez réessayer dans quelques instants.")
        try:
            self.lock = TaskLock(self.run_dir).acquire("Connexion")
        except TaskBusy as e:
            raise CommandRefused("busy", str(e)) from e
        self.settings = self.store.settings
        self.current = Connection(
            settings=self.settings, store=self.store, data_dir=self.data_dir,
            journal=self.journal, clock=self.clock, bus_call=self._worker_call,
            ntp_sync=ntp.sync, webservices=self._webservices(), reason=reason, install=install,
            check_config=self._config_check_due(), mac=self._mac(),
            send_version=not self._version_sent)
        self._version_sent = True
        self.current.started = time.time()
        log.info("connection started (%s)", reason)
        self.publish("task.started", task="Connexion", reason=reason)
        statecharts.fire(self.conn_model, "start")

    def _webservices(self):
        if not int(self.settings.web_service_enable) or not self.settings.web_service_url:
            return None
        from .webservices import WebServices
        return WebServices(self.settings.web_service_url)

    def _mac(self) -> str:
        from .webservices import gateway_mac
        return gateway_mac()

    def _config_check_due(self) -> bool:
        days = int(self.settings.connection_check_config_period)
        if days == 0:
            return True
        mark = self.data_dir / "state" / "config_checked"
        try:
            last = float(mark.read_text())
        except (FileNotFoundError, ValueError):
            return True
        return time.time() - last >= days * 86400

    # --- the machine's phases ----------------------------------------------------------------

    def _phase_entered(self, event) -> None:
        phase = event.state.name
        conn = self.current
        self.run_in_thread(getattr(conn, phase), on_done=lambda outcome: self._phase_done(
            phase, outcome), name="uplink-" + phase)

    def _phase_done(self, phase: str, outcome) -> None:
        if isinstance(outcome, Exception):
            from .ftp import FtpConnectError, FtpError
            if isinstance(outcome, FtpConnectError):
                trigger = "abort"
            elif isinstance(outcome, FtpError):
                log.warning("phase %s: %s", phase, outcome)
                trigger = "failed"
            else:
                log.error("phase %s crashed: %r", phase, outcome)
                trigger = "failed"
            detail = str(outcome)
        else:
            trigger, detail = outcome, None
        self.publish("connection.phase", phase=phase,
                     outcome={"done": "ok"}.get(trigger, trigger), detail=detail)
        statecharts.fire(self.conn_model, trigger)

    def _closing_entered(self, event) -> None:
        self.run_in_thread(self.current.closing, on_done=self._connection_over, name="uplink-closing")

    def _connection_over(self, outcome) -> None:
        conn = self.current
        if isinstance(outcome, Exception):
            log.error("closing: %r", outcome)
        if conn.check_config:
            (self.data_dir / "state" / "config_checked").write_text(str(time.time()))
        self.last = {"start": conn.started, "end": time.time(), "reason": conn.reason,
                     **conn.stats}
        log.info("connection over (%s): %d files sent, %d failed, %d bytes", conn.reason,
                 conn.stats["uploaded"], conn.stats["failed"], conn.stats["bytes"])
        self.publish("task.ended", task="Connexion",
                     outcome="failed" if conn.stats["failed"] else "ok")
        effects, restart = conn.effects, conn.restart_needed or conn.effects.reboot
        self.current = None
        statecharts.fire(self.conn_model, "finished")
        if self.lock is not None:
            self.lock.release()
            self.lock = None
        if effects.detect:
            self.call("acquisition", "detect")
        if restart:
            self._restart_gateway()
            return
        if effects.connect_again or self.pending_reason:
            reason = "command" if effects.connect_again else self.pending_reason
            self.pending_reason = None
            self.loop.call_later(1.0, self._try_connect, reason)

    def _restart_gateway(self) -> None:
        """A new configuration or definition: every service restarts (re-executes itself)."""
        for svc in ("acquisition", "modem", "web"):
            self.call(svc, "restart", timeout=2.0)
        self.loop.call_later(0.5, self.restart)

    # --- scheduling ------------------------------------------------------------------------------

    def _schedule_next(self) -> None:
        now = self.clock.now()
        self.next_scheduled = schedule.next_connection(self.settings, now)
        delay = max(self.next_scheduled - now, 0.0)
        log.info("next scheduled connection in %.0f s", delay)
        self._sched_timer = self.loop.call_later(delay, self._scheduled)

    def _scheduled(self) -> None:
        self._try_connect("schedule")
        self._schedule_next()

    # --- helpers -----------------------------------------------------------------------------

    def _journal_entry(self, entry: dict) -> None:
        """Called from the phase's worker thread: publish on the loop."""
        self.loop.post(lambda: self.publish("journal", time=entry["time"],
                                            message=entry["message"]))

    def _worker_call(self, service: str, method: str, timeout: float = 5.0, **params):
        """A blocking bus call from a phase's worker thread (its own sockets: zmq sockets are
        not shared between threads)."""
        client = _thread_client(self)
        return client.call(service, method, timeout=timeout, **params)


_local = threading.local()


def _thread_client(svc: UplinkService) -> CommandClient:
    client = getattr(_local, "client", None)
    if client is None:
        client = _local.client = CommandClient(svc.ctx, svc.endpoints, src=svc.name)
    return client
