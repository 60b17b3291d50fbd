"""The modem service: the cellular module, its SIM, its signal, and the data link a connection in
*Modem* mode asks for (DESIGN 2, issue 9).

Its table of contents is the `modem` machine (statecharts/modem.py), modelled by
:class:`ModemModel`: entering a state submits that state's AT dialogue (dialogue.py) to the
modem's worker, whose outcome fires the next trigger on the loop. URCs from the module (a dropped
carrier, a registration change) come from the AT channel's reader thread and are posted to the
loop. `connect` answers once the link is up (or says why it cannot be); `disconnect` once it is
down.
"""
from __future__ import annotations

import collections
import logging
import time

import serial

from bus.client import Deferred
from bus.errors import CommandRefused
from services.runtime import Backoff, Service, Worker
from statecharts import modem as chart

from . import dialogue, ppp
from .facts import ModemFacts
from .pin_guard import PinGuard
from .recovery import CAPPED_ROW, ROWS, Ladder

log = logging.getLogger("modem")

#: The manual's rows (10.3.2) and ours, journaled when a failure state is entered.
FAILURE_ROWS = {
    "no_answer": "Type de modem inconnu",
    "sim_error": "Modem : SIM ERROR (carte SIM absente ou inutilisable)",
    "sim_pin": "Modem : SIM PIN (code PIN absent ou non envoyé : %s)",
    "sim_puk": "Modem : SIM PUK (code PUK requis après trois codes PIN erronés)",
    "pin_refused": "Modem : code PIN refusé par la carte SIM (paramètre SIM_Pin)",
    "registration_denied": "Modem : enregistrement refusé par le réseau",
    "no_network": "Modem : pas de réseau",
    "dial_refused": "Modem : appel refusé (%s)",
    "access_refused": "Modem : APN ou authentification refusés par le réseau (%s ; paramètres "
                      "GPRS_Apn, GPRS_Login, GPRS_Password)",
    "held": CAPPED_ROW,
}
#: Seconds each working state may last.
STATE_TIMEOUTS = {"probing": 30.0, "registering": 90.0, "attaching": 30.0, "dialing": 90.0,
                  "disconnecting": 20.0, "recovering": 60.0}
#: Seconds a connect request is answered within (the uplink waits a little longer); a link that
#: comes up after that, with nobody waiting, is hung up.
CONNECT_WAIT = 280.0
#: Seconds between two looks at the signal and registration.
POLL = 30.0
SIGNAL_HISTORY = 24 * 3600 // 60            # one point a minute over 24 h


class ModemModel:
    """The model of the `modem` machine: one method per callback the chart names."""

    def __init__(self, service: "ModemService"):
        self.svc = service

    def timeout(self, state: str):
        return self.svc.timeout(state)

    def probe(self, event):
        self.svc.work("probe", dialogue.probe)

    def check_sim(self, event):
        self.svc.work("check_sim", dialogue.check_sim)

    def enter_pin(self, event):
        self.svc.work("enter_pin", dialogue.enter_pin)

    def register(self, event):
        self.svc.work("register", dialogue.register)

    def supervise(self, event):
        self.svc.machines.rearm("modem")        # the next poll (a poll is an internal transition)
        self.svc.supervised()
        self.svc.work("supervise", dialogue.supervise)

    def attach(self, event):
        self.svc.work("attach", dialogue.attach)

    def dial(self, event):
        self.svc.work("dial", dialogue.dial)

    def link_up(self, event):
        self.svc.link_up()

    def watch_link(self, event):
        self.svc.machines.rearm("modem")
        self.svc.work("watch_link", dialogue.watch_link)

    def hang_up(self, event):
        self.svc.work("hang_up", dialogue.hang_up)

    def recover(self, event):
        self.svc.recover()

    def failed(self, event):
        self.svc.failed(event.state.name)


class ModemService(Service):
    name = "modem"

    def __init__(self, config, *, opener=serial.serial_for_url, **kw):
        super().__init__(config, **kw)
        s = self.settings
        self.opener = opener
        self.facts = ModemFacts()
        self.guard = PinGuard(self.data_dir / "state")
        self.ladder = Ladder(self.data_dir / "state", int(s.modem_recovery_max),
                             clock=self.clock.time)
        self.backoff = Backoff(5.0, 300.0)
        self.model = ModemModel(self)
        self.machine("modem", self.model)
        self.worker = Worker(self.loop, "modem-at")
        self.channel = None                  # the AT channel, made by dialogue.probe
        self.ppp = None                      # the pppd data link on a device (ppp.PppLink)
        # pppd carries the data where the kernel has PPP and the port is a device; on a
        # pseudo-terminal (the simulator) the dial stops at CONNECT
        self.use_ppp = ppp.ppp_available() is None and str(s.modem_port).startswith("/dev/")
        self.power_up = "%d" % time.time()   # a new value each time the module is seen booting
        self.reason = ""                     # why the last failure state was entered
        self.connect_waiters: list[Deferred] = []
        self.disconnect_waiters: list[Deferred] = []
        self.history: collections.deque = collections.deque(maxlen=SIGNAL_HISTORY)
        self._last_failure: str | None = None
        self._last_point = 0.0

    @property
    def state(self) -> str:
        return self.model.state

    # --- life --------------------------------------------------------------------------------

    def on_start(self) -> None:
        self.fire("modem", "start")

    def on_stop(self) -> None:
        self.worker.cancel()
        self.worker.submit(lambda job: dialogue.close(self), name="close")
        self.worker.drain(1.0)

    def timeout(self, state: str):
        if state in ("standby", "connected"):
            return POLL
        if state == "held":                      # the daily cap: until the next UTC day
            now = self.clock.time()
            return 86400.0 - now % 86400.0 + 1.0
        if state in chart.TRANSIENT:
            return self.backoff.next() if self.settings.modem_port else None
        return STATE_TIMEOUTS.get(state)

    # --- commands (bus) ----------------------------------------------------------------------

    def commands(self) -> dict:
        return {"connect": self.cmd_connect, "disconnect": self.cmd_disconnect,
                "history": self.cmd_history}

    def cmd_connect(self, params: dict):
        """Bring the data link up; the reply comes once it is up, or says why it cannot be."""
        if self.state == "connected":
            return self.link_facts()
        if self.state in chart.HELD:
            raise CommandRefused(self.state, self.failure_text())
        reply = Deferred()
        reply.expires = self.clock.monotonic() + CONNECT_WAIT
        self.connect_waiters.append(reply)
        if self.state in chart.TRANSIENT:
            # a connection asking is a reason to try again now rather than after the backoff;
            # if that try fails too, the failure answers this request
            self.backoff.reset()
            self.machines.rearm("modem")
        if self.state == "standby":
            self.fire("modem", "connect")
        return reply

    def cmd_disconnect(self, params: dict):
        """Hang the data link up; the reply comes once it is down."""
        if self.state not in ("connected", "attaching", "dialing", "disconnecting"):
            return {"state": chart.MANUAL[self.state]}
        reply = Deferred()
        self.disconnect_waiters.append(reply)
        self.fire("modem", "disconnect")
        return reply

    def cmd_history(self, params: dict) -> dict:
        """The signal over the last 24 h: [epoch s, rssi 0..31 or None, technology]."""
        return {"points": list(self.history)}

    # --- the machine's work --------------------------------------------------------------------

    def work(self, what: str, fn) -> None:
        """Run a dialogue step in the modem's worker; its trigger fires on the loop."""
        state = self.state
        self.worker.submit(lambda job: fn(self, job), name=what, replace=True,
                           on_done=lambda outcome: self._done(state, what, outcome))

    def _done(self, state: str, what: str, outcome) -> None:
        if self.state != state:
            return                              # the machine moved on (a timeout, a URC)
        if isinstance(outcome, BaseException):
            if isinstance(outcome, dialogue.Gone):
                self.power_up = "%d" % time.time()
                self.reason = str(outcome)
                self.fire("modem", "gone")
                return
            raise outcome                       # the fault path: recovering
        trigger, self.reason = outcome if isinstance(outcome, tuple) else (outcome, "")
        self.publish_facts()
        if trigger:
            self.fire("modem", trigger)

    def supervised(self) -> None:
        """Entering standby (or polling it): registered again."""
        self.backoff.reset()
        self._last_failure = None
        if self.connect_waiters:                # requests that waited for the initialisation
            self.loop.post(self._connect_if_waiting)
        waiters, self.disconnect_waiters = self.disconnect_waiters, []
        for reply in waiters:
            reply.resolve({"state": "Standby"})

    def _connect_if_waiting(self) -> None:
        if self.connect_waiters and self.state == "standby":
            self.fire("modem", "connect")

    def link_up(self) -> None:
        self.facts.link = "up"
        # the link works: the ladder starts over (its count is on disk: the disk worker)
        self.disk.submit(lambda job: self.ladder.succeeded(), name="ladder")
        self.publish_facts()
        waiters = self._live_waiters()
        self.connect_waiters = []
        for reply in waiters:
            reply.resolve(self.link_facts())
        self.backoff.reset()
        if not waiters:                         # asked for, then given up on: hang up
            log.warning("the data link came up with nobody waiting for it: hanging up")
            self.loop.post(self.fire, "modem", "disconnect")

    def _live_waiters(self) -> list:
        now = self.clock.monotonic()
        return [r for r in self.connect_waiters if getattr(r, "expires", now + 1) > now]

    def link_facts(self) -> dict:
        f = self.facts
        return {"state": "Connecté", "signal": f.signal, "technology": f.technology,
                "operator": f.operator, "rsrp": f.rsrp, "sinr": f.sinr, "warning": f.warning}

    def recover(self) -> None:
        """The ladder's count is on disk: the step is taken in the disk worker, not the loop."""
        self.disk.submit(lambda job: self.ladder.next_step(), on_done=self._recovery_step,
                         name="ladder")

    def _recovery_step(self, step) -> None:
        if isinstance(step, BaseException):
            raise step                          # the fault path
        if self.state != "recovering":
            return                              # the machine moved on meanwhile
        if step is None:
            self.journal(CAPPED_ROW % self.ladder.cap)
            # the acquisition writes it into the alarm file (it follows alarm.raised)
            self.publish("alarm.raised", code="MODEM_EN_ATTENTE", source="MODEM",
                         detail="%d relances" % self.ladder.cap)
            self.loop.post(self.fire, "modem", "capped")
            return
        self.journal(ROWS[step])
        self.work("recover", lambda svc, job: dialogue.recover(svc, job, step))

    def failed(self, state: str) -> None:
        """Entering a failure state: say so once (not at each retry), answer who waits."""
        if state == "no_answer" and not self.settings.modem_port:
            self.reason = "no modem port configured (Modem_Port)"
        self.worker.cancel()                     # the step that led here is over
        if self.ppp is not None:                 # a pppd the dial left behind
            link, self.ppp = self.ppp, None
            self.worker.submit(lambda job: link.stop(), name="ppp-stop")
        # a connection waiting for the link journals the reason itself (after *Erreur de
        # connexion WAN*); otherwise the modem says it, once per failure
        if (state != self._last_failure and self.settings.connection_mode == "modem"
                and not self._live_waiters()):
            row = FAILURE_ROWS[state]
            if "%s" in row:
                row = row % (self.reason or "?")
            elif "%d" in row:
                row = row % self.ladder.cap
            self.journal(row)
        self._last_failure = state
        log.warning("modem %s: %s", state, self.reason)
        text = self.failure_text()
        waiters, self.connect_waiters = self.connect_waiters, []
        for reply in waiters:
            reply.reject(CommandRefused(state, text))
        waiters, self.disconnect_waiters = self.disconnect_waiters, []
        for reply in waiters:
            reply.resolve({"state": chart.MANUAL[state]})
        self.publish_facts()

    def failure_text(self) -> str:
        row = FAILURE_ROWS.get(self.state, self.state)
        if "%s" in row:
            row = row % (self.reason or "?")
        elif "%d" in row:
            row = row % self.ladder.cap
        return row

    def on_ppp_down(self, error) -> None:
        """pppd ended while the link was up (from its waiting thread)."""
        self.loop.post(self._ppp_down, error)

    def _ppp_down(self, error) -> None:
        self.ppp = None
        if self.state == "connected":
            self.reason = getattr(error, "journal", str(error))
            self.journal("Modem : liaison PPP perdue (%s)" % self.reason)
            self.fire("modem", "link_lost")

    # --- URCs (from the AT channel's reader thread, posted here) ------------------------------

    def on_urc(self, urc) -> None:
        self.loop.post(self._urc, urc)

    def _urc(self, urc) -> None:
        if urc.name == "NO CARRIER" and self.state == "connected":
            self.reason = "carrier lost"
            self.journal("Modem : perte de la porteuse (NO CARRIER)")
            self.fire("modem", "link_lost")
        elif urc.name in ("+CREG", "+CGREG", "+CEREG"):
            self.facts.registration_urc(urc)
            if self.state == "standby" and not self.facts.registered:
                self.fire("modem", "unregistered")
        elif urc.name == "RDY":
            self.power_up = "%d" % time.time()
        self.publish_facts()

    # --- status ------------------------------------------------------------------------------

    def publish_facts(self) -> None:
        now = self.clock.time()
        if self.facts.signal_known and now - self._last_point >= 60:
            self._last_point = now
            self.history.append([round(now), self.facts.signal, self.facts.technology])

    def status(self) -> dict:
        mm_state, mm_reason = chart.MM.get(self.state, ("unknown", None))
        return {**self.facts.page(), "state": chart.MANUAL.get(self.state, "Initialisation"),
                "machine": self.state, "mm_state": mm_state, "mm_failed_reason": mm_reason,
                "reason": self.reason or None,
                "failure": self.failure_text() if self.state in chart.HELD + chart.TRANSIENT
                else None,
                "recoveries_today": self.ladder.used_today,
                "history": list(self.history)[-60:]}
