"""The uplink service: runs connections to the remote server (DESIGN 5).

Its table of contents is the `connection` machine (statecharts/connection.py), whose model is
:class:`ConnectionModel`: entering a phase submits that phase's work (phases.py) to the
connection's worker, whose outcome fires the next trigger on the loop; entering `closing` closes
the session; entering `idle` ends the task whatever happened (the lock is released in a
`finally`). Connections are started by the `connect` command (web button, INSTALL button), the
schedule (`_var.ini`), an alarm (`ALM_Delay`) or a command file (CONNECT); one at a time, under
the cross-process task lock "Connexion". A connection refused because another task runs (a
detection) starts as soon as that task ends.
"""
from __future__ import annotations

import collections
import logging
import threading
import time

from bus.client import CommandClient
from bus.errors import BusTimeout, CommandRefused, RemoteError
from bus.tasklock import TaskBusy, TaskLock
from services.runtime import Service, Worker
from ticgw import files
from ticgw import journal as journal_rows
from ticgw.files import write_atomic

from . import ntp, schedule
from .inbox import CommandInbox
from .phases import Connection

log = logging.getLogger("uplink")

#: Seconds to wait after an alarm before connecting (so a burst of alarms makes one connection).
ALARM_DEBOUNCE = 10.0
#: Seconds `closing` may take (closing the session, resuming the acquisition).
CLOSING_TIMEOUT = 60.0
#: Rows of the Connexion table kept in memory for the status and the `journal` command.
TAIL = 200
#: The journal rows of a connection cut short (not in the manual, which has no such case).
FAULT_ROW = "Erreur interne de la passerelle : connexion interrompue"
DEADLINE_ROW = "Connexion interrompue : durée maximale dépassée"
LINK_LOST_ROW = "Connexion interrompue : perte de la liaison modem"
#: Seconds the update service gets to check a fetched package before it says it takes it.
FIRMWARE_WAIT = 120.0
#: Seconds a restart owed for a new configuration waits for the update's outcome at most.
OUTCOME_WAIT = 900.0
#: Refusals of the update service that it does not journal itself.
NOT_JOURNALED_BY_UPDATE = ("busy", "bad-path", "fault", "unavailable")


class ConnectionModel:
    """The model of the `connection` machine: one method per callback the chart names."""

    def __init__(self, service: "UplinkService"):
        self.svc = service

    def timeout(self, state: str):
        return CLOSING_TIMEOUT if state == "closing" else None

    def arm_deadline(self, event) -> None:
        self.svc.arm_deadline()

    def run_phase(self, event) -> None:
        self.svc.run_phase(event.state.name)

    def close_connection(self, event) -> None:
        self.svc.close_connection(event.event.name)

    def connection_over(self, event) -> None:
        self.svc.connection_over()


class UplinkService(Service):
    name = "uplink"
    subscriptions = ("alarm.raised", "spool.written", "task.ended", "journal", "modem.state",
                     "update.outcome")

    def __init__(self, config, **kw):
        super().__init__(config, **kw)
        self.conn_model = ConnectionModel(self)
        self.machine("connection", self.conn_model)
        self.session = Worker(self.loop, "uplink-session")
        self.current: Connection | None = None
        self.lock = None
        self.last = None                # {"start", "end", "reason", "outcome", stats...}
        self.pending_reason: str | None = None
        self.alarm_pending = False
        self.alarm_timer = None
        self.deadline_timer = None
        self.next_scheduled: float | None = None
        self._sched_timer = None
        self._version_sent = False
        self.restart_owed = False
        self._config_checked: float | None = None
        self.tail: collections.deque = collections.deque(maxlen=TAIL)
        self.inbox = CommandInbox(self.data_dir / "state")

    # --- commands ----------------------------------------------------------------------------

    def commands(self) -> dict:
        return {"connect": self.cmd_connect, "journal": self.cmd_journal}

    def cmd_connect(self, params: dict) -> dict:
        """Start a connection now (Connexion task)."""
        reason = str(params.get("reason") or "button")
        self.start_connection(reason, install=bool(params.get("install")))
        return {"started": True}

    def cmd_journal(self, params: dict) -> dict:
        """The last rows of the Connexion table, [date, hour GMT, message]."""
        n = max(0, int(params.get("n", 50)))
        return {"rows": list(self.tail)[-n:] if n else []}

    # --- life --------------------------------------------------------------------------------

    def on_start(self) -> None:
        self.disk.submit(self._read_state, on_done=self._state_read, name="state")
        self._schedule_next()

    def _read_state(self, job):
        """In the disk worker: the journal's tail, the last configuration check, what a
        command file asked for that a crash kept from being done; and the temp files a crash
        left in the uplink's part of the outbox are removed."""
        try:
            checked = float((self.data_dir / "state" / "config_checked").read_text())
        except (FileNotFoundError, ValueError):
            checked = None
        for stale in remove_stale_temp_files(self.data_dir):
            log.warning("removed %s, left by an interrupted write", stale)
        return self.journal_file.tail(TAIL), checked, self.inbox.load_effects()

    def _state_read(self, outcome) -> None:
        if isinstance(outcome, BaseException):
            log.error("state not read: %s", outcome)
            return
        rows, self._config_checked, effects = outcome
        seen = list(self.tail)
        self.tail.clear()
        self.tail.extend(rows)
        self.tail.extend(r for r in seen if r not in rows)
        if effects:
            log.warning("a command file's requests were not carried out before a stop: %s",
                        ", ".join(k for k, v in effects.as_dict().items() if v))
            self._effects_due(effects, restart=effects.config_changed)

    def status(self) -> dict:
        return {"connection": self.conn_model.state,
                "reason": self.current.reason if self.current else None, "last": self.last,
                "next_scheduled": self.next_scheduled, "pending": self.pending_reason,
                "journal": list(self.tail)[-12:]}

    def on_event(self, topic: str, env: dict) -> None:
        data = env.get("data") or {}
        if topic == "journal":
            date, hour = journal_rows.stamp(float(data.get("time") or env.get("ts") or 0))
            self.tail.append([date, hour, str(data.get("message", ""))])
        elif topic == "alarm.raised":
            if int(self.settings.alm_delay) == 0:
                self._alarm_soon(ALARM_DEBOUNCE)
            else:
                self.alarm_pending = True        # after the next acquisition point
        elif topic == "spool.written":
            if self.alarm_pending:
                self.alarm_pending = False
                self._alarm_soon(1.0)
            elif int(self.settings.connection_on_data_acquisition):
                self.loop.call_later(1.0, self.try_connect, "acquisition")
        elif topic == "modem.state":
            self._modem_state(data)
        elif topic == "update.outcome":
            self._on_update_outcome(data)
        elif topic == "task.ended":
            if self.pending_reason and self.conn_model.state == "idle":
                self.loop.call_later(0.2, self._start_pending)

    def _modem_state(self, data: dict) -> None:
        """The modem's data link dropped while a connection used it: cut the connection short
        (files stay queued for the next one)."""
        conn = self.current
        if (conn is None or not getattr(conn, "modem_up", False)
                or data.get("machine") != "modem" or data.get("previous") != "connected"
                or data.get("state") == "disconnecting"):
            return
        if self.conn_model.state not in ("idle", "closing"):
            log.warning("the modem's link dropped (%s): connection cut short", data.get("state"))
            self.fire("connection", "link_lost")

    def on_stop(self) -> None:
        if self.current is not None:
            self.current.abort()
        self.session.cancel()
        self.session.submit(_close_client, name="close")
        self.session.drain(1.0)

    # --- starting a connection --------------------------------------------------------------

    def _alarm_soon(self, delay: float) -> None:
        """One connection for a burst of alarms: the first arms the timer, the others join it."""
        if self.alarm_timer is None:
            self.alarm_timer = self.loop.call_later(delay, self._alarm_connect)

    def _alarm_connect(self) -> None:
        self.alarm_timer = None
        self.try_connect("alarm")

    def try_connect(self, reason: str) -> None:
        """Connect now, or as soon as the task running ends."""
        try:
            self.start_connection(reason)
        except CommandRefused as e:
            log.info("connection (%s) postponed: %s", reason, e)
            self.pending_reason = self.pending_reason or reason

    def _start_pending(self) -> None:
        reason, self.pending_reason = self.pending_reason, None
        if reason:
            self.try_connect(reason)

    def start_connection(self, reason: str, install: bool = False) -> None:
        if self.conn_model.state != "idle":
            raise TaskBusy("Connexion")
        self.lock = TaskLock(self.run_dir).acquire("Connexion")   # TaskBusy: a refusal
        try:
            self.settings = self.store.settings if self.store is not None else self.settings
            self.current = Connection(
                settings=self.settings, store=self.store, data_dir=self.data_dir,
                journal=self.journal_file, clock=self.gateway_clock, bus_call=self._worker_call,
                ntp_sync=ntp.sync, webservices=self._webservices(), reason=reason,
                install=install, check_config=self._config_check_due(),
                send_version=not self._version_sent)
        except BaseException:
            self.lock.release()
            self.lock = None
            raise
        self._version_sent = True
        self.current.started = time.time()
        if self.alarm_timer is not None:       # this connection sends the alarms too
            self.alarm_timer.cancel()
            self.alarm_timer = None
        log.info("connection started (%s)", reason)
        self.publish("task.started", task="Connexion", reason=reason)
        self.fire("connection", "start")

    def _webservices(self):
        if not int(self.settings.web_service_enable) or not self.settings.web_service_url:
            return None
        from .webservices import WebServices
        return WebServices(self.settings.web_service_url)

    def _config_check_due(self) -> bool:
        days = int(self.settings.connection_check_config_period)
        if days == 0 or self._config_checked is None:
            return True
        return time.time() - self._config_checked >= days * 86400

    # --- the machine's work ------------------------------------------------------------------

    def arm_deadline(self) -> None:
        minutes = int(self.settings.connection_timeout)
        self.deadline_timer = self.loop.call_later(minutes * 60.0, self._deadline, self.current)

    def _deadline(self, conn) -> None:
        if conn is self.current and self.conn_model.state not in ("idle", "closing"):
            log.error("connection (%s) still running after %d min: cut short", conn.reason,
                      int(self.settings.connection_timeout))
            self.fire("connection", "deadline")

    def run_phase(self, phase: str) -> None:
        conn = self.current
        job = self.session.submit(lambda job: self._phase_job(job, conn, phase),
                                  on_done=lambda outcome: self._phase_done(phase, outcome),
                                  name=phase)
        job.on_cancel(conn.abort)

    @staticmethod
    def _phase_job(job, conn: Connection, phase: str):
        return getattr(conn, phase)()

    def _phase_done(self, phase: str, outcome) -> None:
        if self.conn_model.state != phase:
            return                               # the connection moved on (deadline, fault)
        if isinstance(outcome, BaseException):
            from .ftp import FtpConnectError, FtpError
            if isinstance(outcome, FtpConnectError):
                trigger = "abort"
            elif isinstance(outcome, FtpError):
                log.warning("phase %s: %s", phase, outcome)
                trigger = "failed"
            else:
                log.error("phase %s crashed: %r", phase, outcome, exc_info=outcome)
                trigger = "failed"
            detail = str(outcome)
        else:
            trigger, detail = outcome, None
        self.publish("connection.phase", phase=phase,
                     outcome={"done": "ok"}.get(trigger, trigger), detail=detail)
        self.fire("connection", trigger)

    def close_connection(self, trigger: str) -> None:
        conn = self.current
        failure = {"fault": FAULT_ROW, "deadline": DEADLINE_ROW,
                   "link_lost": LINK_LOST_ROW}.get(trigger)
        if failure:
            conn.failed = True
        self.session.cancel()                    # a phase still running is cut short
        self.session.submit(lambda job: conn.closing(failure),
                            on_done=lambda outcome: self._closing_done(conn, outcome),
                            name="closing")

    def _closing_done(self, conn: Connection, outcome) -> None:
        if isinstance(outcome, BaseException):
            log.error("closing: %r", outcome)
        conn.closed = True
        if conn is self.current and self.conn_model.state == "closing":
            self.fire("connection", "finished")

    def connection_over(self) -> None:
        """Entering `idle`: the task ends whatever happened."""
        conn, self.current = self.current, None
        try:
            if self.deadline_timer is not None:
                self.deadline_timer.cancel()
                self.deadline_timer = None
            if conn is None:
                return
            if not getattr(conn, "closed", False):
                # `closing` did not finish (its work raised, or hung past its deadline): close
                # the session and resume the acquisition all the same, and say so
                conn.failed = True
                self.session.cancel()
                self.session.submit(lambda job: conn.closing(FAULT_ROW), name="closing")
            failed = getattr(conn, "failed", False) or bool(conn.stats["failed"])
            self.last = {"start": conn.started, "end": time.time(), "reason": conn.reason,
                         "outcome": "failed" if failed else "ok", **conn.stats}
            log.info("connection over (%s): %d files sent, %d failed, %d bytes", conn.reason,
                     conn.stats["uploaded"], conn.stats["failed"], conn.stats["bytes"])
            if conn.check_config and not getattr(conn, "failed", False):
                self._config_checked = time.time()
                self.disk.submit(self._mark_config_checked, self._config_checked,
                                 name="config_checked")
        finally:
            if self.lock is not None:
                self.lock.release()
                self.lock = None
        self.publish("task.ended", task="Connexion", outcome=self.last["outcome"])
        self._after(conn)

    def _mark_config_checked(self, job, when: float) -> None:
        write_atomic(self.data_dir / "state" / "config_checked", str(when).encode())

    def _after(self, conn: Connection) -> None:
        """What the connection asked for once it is over."""
        if conn.effects or conn.restart_needed or conn.firmware_package:
            self._effects_due(conn.effects, conn.restart_needed, conn.firmware_package)
        elif self.pending_reason:
            self.loop.call_later(1.0, self._start_pending)

    def _effects_due(self, effects, restart: bool, firmware: dict | None = None) -> None:
        """Forget a command file's requests on disk, then carry them out: a stop in between
        loses a request (a REBOOT is not repeated for ever), never doubles one."""
        self.disk.submit(lambda job: self.inbox.effects_applied(),
                         on_done=lambda _: self._carry_out(effects, restart, firmware),
                         name="effects")

    def _carry_out(self, effects, restart: bool, firmware: dict | None = None) -> None:
        if effects.detect:
            self.call("acquisition", "detect")
        if firmware:
            # last in the connection: the update service installs it and restarts the gateway
            # (which a restart asked for here would cut short: it is owed until the outcome)
            self.call("update", "install", dict(firmware, origin="bin"), timeout=FIRMWARE_WAIT,
                      on_reply=lambda r: self._firmware_taken(r, effects, restart))
            return
        if restart or effects.reboot:
            self.restart_gateway("new configuration" if restart else "REBOOT")
            return
        if effects.connect_again or self.pending_reason:
            if effects.connect_again:
                self.pending_reason = "command"
            self.loop.call_later(1.0, self._start_pending)

    def _firmware_taken(self, reply, effects, restart: bool) -> None:
        # a timeout is not a refusal: the update service may still be checking a large
        # package; its outcome comes as update.outcome
        refused_here = isinstance(reply, Exception) and not isinstance(reply, BusTimeout) and (
            not isinstance(reply, RemoteError) or reply.code in NOT_JOURNALED_BY_UPDATE)
        if refused_here:
            # a refusal to look at the package (busy, in fault) or silence: the update service
            # journals nothing, the package waits for the next connection
            log.warning("firmware not taken: %s", reply)
            self.journal("Mise à jour reportée : %s" % getattr(reply, "message", reply))
            self._carry_out(effects, restart)
            return
        if isinstance(reply, Exception):
            log.warning("firmware refused: %s", reply)     # journaled by the update service
        else:
            log.info("firmware %s taken by the update service", reply.get("version"))
        # the update service restarts the gateway, or says why it did not (update.outcome):
        # a restart owed for a new configuration waits for that, so that neither cuts the
        # other short
        if restart or effects.reboot:
            self.restart_owed = True
            self.loop.call_later(OUTCOME_WAIT, self._owed_restart_due)
        if effects.connect_again:
            self.pending_reason = "command"

    def _on_update_outcome(self, data: dict) -> None:
        if data.get("state") == "failed":
            self._owed_restart_due()

    def _owed_restart_due(self) -> None:
        if self.restart_owed:
            self.restart_owed = False
            self.restart_gateway("new configuration")

    # --- scheduling ------------------------------------------------------------------------------

    def _schedule_next(self) -> None:
        now = self.gateway_clock.now()
        self.next_scheduled = schedule.next_connection(self.settings, now)
        delay = max(self.next_scheduled - now, 0.0)
        log.info("next scheduled connection in %.0f s", delay)
        self._sched_timer = self.loop.call_later(delay, self._scheduled)

    def _scheduled(self) -> None:
        self.try_connect("schedule")
        self._schedule_next()

    # --- helpers -----------------------------------------------------------------------------

    def _worker_call(self, service: str, method: str, timeout: float = 5.0, **params):
        """A blocking bus call from the session's worker (its own sockets: zmq sockets are not
        shared between threads)."""
        client = getattr(_local, "client", None)
        if client is None:
            client = _local.client = CommandClient(self.ctx, self.endpoints, src=self.name)
        return client.call(service, method, timeout=timeout, **params)


_local = threading.local()

#: Where the uplink writes (the acquisition cleans its own kinds, DATA, ALARM and PARAM).
OWN_DIRS = ("outbox/CMD", "outbox/LOG", "firmware", "state/commands")


def remove_stale_temp_files(data_dir) -> list:
    """Temp files (``files.is_temp_name``) a crash left where the uplink writes. Called at
    start, before any connection: none of them can be in use."""
    removed = []
    for sub in OWN_DIRS:
        d = data_dir / sub
        if not d.is_dir():
            continue
        for p in d.iterdir():
            if p.is_file() and files.is_temp_name(p.name):
                p.unlink()
                removed.append(p)
    return removed


def _close_client(job) -> None:
    """In the session's worker, last: close its bus client (sockets die with their thread)."""
    client = getattr(_local, "client", None)
    if client is not None:
        client.close()
        _local.client = None
