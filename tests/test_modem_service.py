"""The modem service against the simulated modem on a pseudo-terminal (sim/modem.py), its loop
stepped by the test on a fake clock (tests/driven.py): every state and message of the manual's
*Modem* page, the PIN that can never lock the SIM, the recovery ladder to its daily cap."""
from __future__ import annotations

import pytest

from bus.testing import FakeClock, short_run_dir, start_broker, stop_process
from driven import Driven
from gateway_helpers import Events, configure
from services.modem.recovery import ROWS
from services.modem.service import ModemService
from sim.modem import PtyModem
from ticgw.config import ConfigStore
from ticgw.journal import Journal

PIN = "1234"


class Gateway:
    def __init__(self, tmp_path):
        self.run = short_run_dir(tmp_path)
        self.data = tmp_path / "data"
        self.broker = start_broker(self.run)
        self.events = Events(self.run)
        self.modem = PtyModem(link=str(tmp_path / "ttyMODEM"), pin=PIN)
        self.clock = FakeClock()
        self.drivens: list[Driven] = []
        configure(self.data, {}, Connection_Mode="modem", Modem_Port=self.modem.path,
                  GPRS_Apn="m2minetnat", GPRS_Login="sfr", GPRS_Password="sfr",
                  Modem_RecoveryMax=3)

    def settings(self, **keys) -> None:
        configure(self.data, {}, **keys)

    def start(self, **state) -> Driven:
        if state:
            self.modem.set(**state)
        if not self.modem.running:
            self.modem.start()
        svc = ModemService(ConfigStore(self.data), run_dir=self.run, clock=self.clock)
        d = Driven(svc, self.clock)
        self.drivens.append(d)
        return d

    def journal(self) -> list[str]:
        return [r[2] for r in Journal(self.data / "state").tail(1000)]

    def close(self):
        for d in self.drivens:
            try:
                d.close()
            except Exception:
                pass
        self.modem.stop()
        self.events.close()
        stop_process(self.broker)


@pytest.fixture
def gw(tmp_path):
    g = Gateway(tmp_path)
    yield g
    g.close()


def journaled(gw, d, row: str) -> bool:
    """The row reaches the journal (written by the service's disk worker)."""
    d.run_until(lambda: row in gw.journal(), what="journal row %r" % row, timeout=10)
    return True


def reach(d, *states, timeout=20.0, tick=0.0):
    d.run_until(lambda: d.svc.state in states, timeout=timeout, tick=tick,
                what="modem state in %s (now %s)" % (states, d.svc.state))
    return d.svc.state


def call(d, method: str):
    """A command as the uplink sends it: (result, None) or (None, (code, message))."""
    from bus.errors import CommandRefused
    try:
        reply = getattr(d.svc, "cmd_" + method)({})
    except CommandRefused as e:
        return None, (e.code, e.message)
    if isinstance(reply, dict):
        return reply, None
    d.run_until(lambda: reply.done, tick=0.5, what="%s reply" % method)
    result, error = reply._outcome
    return result, error


def test_standby_with_the_page_fields(gw):
    d = gw.start()
    assert reach(d, "standby") == "standby"
    st = d.svc.status()
    assert st["state"] == "Standby" and st["mm_state"] == "registered"
    assert st["type"].startswith("Quectel") and st["imei"] == "867962041234567"
    assert st["iccid"] == "89330123456789012345" and st["sim"] == "READY"
    assert st["signal"] == 18 and st["signal_ok"] and st["technology"] == "LTE"
    assert st["operator"] == "Orange F" and st["registration"] == "home"
    assert st["rsrp_dbm"] is not None and st["warning"] is None


def test_connect_then_disconnect(gw):
    d = gw.start()
    reach(d, "standby")
    link, error = call(d, "connect")
    assert error is None and link["state"] == "Connecté" and link["technology"] == "LTE"
    assert d.svc.state == "connected" and d.svc.status()["state"] == "Connecté"
    assert 'AT+CGDCONT=1,"IP","m2minetnat"' in gw.modem.commands
    assert any(c.startswith("ATD*99***1#") for c in gw.modem.commands)
    result, error = call(d, "disconnect")
    assert error is None and d.svc.state == "standby"


def test_no_answer_is_type_de_modem_inconnu_once_then_it_comes_back(gw):
    gw.modem.start()
    gw.modem.mute()
    d = gw.start()
    assert reach(d, "no_answer", tick=1.0) == "no_answer"
    assert d.svc.status()["mm_state"] == "failed"
    # a connection asking: tried again at once; still no answer: that is the answer
    result, error = call(d, "connect")
    assert error == ("no_answer", "Type de modem inconnu")
    # retried on a backoff: still no answer, and the row is not journaled again
    reach(d, "probing", tick=1.0)
    reach(d, "no_answer", tick=1.0)
    assert gw.journal().count("Type de modem inconnu") == 1
    gw.modem.unmute()
    assert reach(d, "standby", tick=1.0, timeout=30) == "standby"


def test_no_sim_is_sim_error_and_held(gw):
    d = gw.start(sim="ABSENT")
    assert reach(d, "sim_error") == "sim_error"
    st = d.svc.status()
    assert st["sim"] == "SIM ERROR" and st["mm_failed_reason"] == "sim-missing"
    assert d.svc.timeout("sim_error") is None            # held: no retry
    assert journaled(gw, d, "Modem : SIM ERROR (carte SIM absente ou inutilisable)")


def test_pin_needed_and_right(gw):
    gw.settings(SIM_Pin=PIN)
    d = gw.start(sim="PIN")
    assert reach(d, "standby") == "standby"
    assert gw.modem.commands.count('AT+CPIN="%s"' % PIN) == 1
    assert d.svc.status()["sim"] == "READY"


def test_pin_needed_and_none_configured(gw):
    d = gw.start(sim="PIN")
    assert reach(d, "sim_pin") == "sim_pin"
    assert not [c for c in gw.modem.commands if c.startswith('AT+CPIN="')]
    assert d.svc.status()["mm_state"] == "locked"


def test_a_wrong_pin_is_sent_once_never_again(gw):
    gw.settings(SIM_Pin="0000")
    d = gw.start(sim="PIN")
    assert reach(d, "pin_refused") == "pin_refused"
    assert gw.modem.pin_attempts_used == 1
    assert journaled(gw, d, "Modem : code PIN refusé par la carte SIM (paramètre SIM_Pin)")
    d.close()
    gw.drivens.remove(d)
    # a restart (the same configuration): the PIN is not sent again
    d = gw.start()
    assert reach(d, "sim_pin") == "sim_pin"
    assert gw.modem.pin_attempts_used == 1
    assert "refused" in d.svc.reason
    # a new PIN in the configuration is tried, once
    gw.settings(SIM_Pin=PIN)
    d.close()
    gw.drivens.remove(d)
    d = gw.start()
    assert reach(d, "standby") == "standby"
    assert gw.modem.pin_attempts_used == 1


def test_one_attempt_left_the_pin_is_not_sent(gw):
    gw.settings(SIM_Pin=PIN)
    d = gw.start(sim="PIN", pin_tries=1)
    assert reach(d, "sim_pin") == "sim_pin"
    assert d.svc.status()["pin_attempts"] == 1
    assert not [c for c in gw.modem.commands if c.startswith('AT+CPIN="')]
    assert "1 attempt left" in d.svc.reason


def test_puk(gw):
    gw.settings(SIM_Pin=PIN)
    d = gw.start(sim="PUK")
    assert reach(d, "sim_puk") == "sim_puk"
    assert d.svc.status()["sim"] == "SIM PUK"
    assert not [c for c in gw.modem.commands if c.startswith('AT+CPIN="')]


def test_registration_denied_then_granted(gw):
    d = gw.start(reg=3)
    assert reach(d, "registration_denied") == "registration_denied"
    assert journaled(gw, d, "Modem : enregistrement refusé par le réseau")
    gw.modem.set(reg=1)
    assert reach(d, "standby", tick=2.0, timeout=30) == "standby"


def test_no_network(gw):
    d = gw.start(reg=2)
    reach(d, "registering")
    d.run_until(lambda: d.svc.facts.registration == "searching", what="searching")
    d.advance(91.0)                       # the registration's deadline
    assert reach(d, "no_network") == "no_network"
    assert d.svc.status()["registration"] == "searching"


def test_signal_99_is_unknown_never_good(gw):
    d = gw.start(signal=99)
    reach(d, "standby")
    st = d.svc.status()
    assert st["signal"] is None and st["signal_text"] == "inconnu" and not st["signal_ok"]


def test_signal_below_ten_is_shown_as_insufficient(gw):
    d = gw.start(signal=7)
    reach(d, "standby")
    assert d.svc.status()["signal_text"] == "7 : insuffisant (au moins 10)"


def test_2g_warns_of_the_switch_off(gw):
    d = gw.start(tech="2G")
    reach(d, "standby")
    st = d.svc.status()
    assert st["technology"] == "2G" and "2G" in st["warning"]


def test_dial_refused(gw):
    d = gw.start(dial="no-carrier")
    reach(d, "standby")
    result, error = call(d, "connect")
    assert error[0] == "dial_refused" and "NO CARRIER" in error[1]
    assert d.svc.state == "dial_refused"


def test_carrier_lost_mid_connection_climbs_the_ladder_and_comes_back(gw):
    d = gw.start()
    reach(d, "standby")
    call(d, "connect")
    gw.modem.drop_carrier()
    reach(d, "recovering", "probing", "sim_check", "registering", "standby", timeout=10)
    assert reach(d, "standby", timeout=30) == "standby"
    assert journaled(gw, d, "Modem : perte de la porteuse (NO CARRIER)")
    assert journaled(gw, d, "Modem : nouvelle tentative de connexion")


def test_urc_inside_an_answer_leaves_the_facts_right(gw):
    d = gw.start()
    reach(d, "standby")
    gw.modem.urc("+CEREG: 1", inside_answer=True)
    d.advance(31.0)                       # a poll: CSQ, CESQ, COPS, CEREG...
    d.run_for(0.5)
    st = d.svc.status()
    assert st["signal"] == 18 and st["operator"] == "Orange F" and d.svc.state == "standby"


def test_modem_gone_and_back(gw):
    d = gw.start()
    reach(d, "standby")
    gw.modem.vanish()
    d.advance(31.0)
    assert reach(d, "no_answer", tick=0.5) == "no_answer"
    gw.modem.reappear()
    assert reach(d, "standby", tick=1.0, timeout=30) == "standby"


def test_the_recovery_ladder_stops_at_its_daily_cap(gw):
    d = gw.start(dial="no-carrier")
    reach(d, "standby")
    for _ in range(3):                        # Modem_RecoveryMax=3
        call(d, "connect")
        reach(d, "dial_refused")
        reach(d, "recovering", tick=5.0)
        reach(d, "standby", tick=1.0, timeout=30)
    journaled(gw, d, "Modem : redémarrage du module (AT+CFUN=1,1)")
    steps = [r for r in gw.journal() if r in ROWS.values()]
    assert steps == ["Modem : nouvelle tentative de connexion",
                     "Modem : radio coupée puis rallumée (AT+CFUN=0/1)",
                     "Modem : redémarrage du module (AT+CFUN=1,1)"]
    call(d, "connect")
    reach(d, "dial_refused")
    # small ticks: the cap is read in the disk worker (a thread), which a loaded machine may
    # not run before large fake-clock steps have fired the transient retry
    assert reach(d, "held", tick=0.5, timeout=60) == "held"
    assert journaled(gw, d, "Modem : limite quotidienne de 3 relances atteinte, modem en attente")
    assert d.svc.status()["recoveries_today"] == 3
    # the next day (UTC) it tries again, with a new count
    d.advance(d.svc.timeout("held"))
    assert reach(d, "standby", tick=1.0, timeout=30) == "standby"
    assert d.svc.status()["recoveries_today"] == 0


def test_a_generic_module_gives_its_iccid_through_crsm_and_its_pin_attempts_by_cpinr(gw):
    gw.settings(SIM_Pin=PIN)
    d = gw.start(dialect="generic", sim="PIN", pin_tries=2)
    reach(d, "standby")
    st = d.svc.status()
    assert st["iccid"] == "89330123456789012345"          # nibble-swapped in +CRSM
    assert "AT+CRSM=176,12258,0,0,10" in gw.modem.commands
    assert gw.modem.commands.count('AT+CPIN="%s"' % PIN) == 1


def test_signal_history_for_the_chart(gw):
    d = gw.start()
    reach(d, "standby")
    for signal in (12, 25):
        gw.modem.set(signal=signal)
        d.advance(61.0)                   # a poll a minute later
        d.run_until(lambda: d.svc.history and d.svc.history[-1][1] == signal,
                    what="signal %d in the history" % signal)
    points, error = call(d, "history")
    assert error is None
    assert [p[1] for p in points["points"]][-2:] == [12, 25]
    assert all(p[2] == "LTE" for p in points["points"])


def test_lte_signal_rsrp_rsrq_and_sinr_where_the_vendor_offers_it(gw):
    d = gw.start(rsrp=-97, rsrq=-11.0, sinr=12.4)
    reach(d, "standby")
    st = d.svc.status()
    assert (st["rsrp_dbm"], st["rsrq_db"]) == (-97, -11.0)
    assert st["sinr_db"] == pytest.approx(12.4, abs=0.2)      # Quectel's +QCSQ, 1/5 dB steps
    assert "AT+QCSQ" in gw.modem.commands


def test_no_sinr_from_a_module_without_a_command_for_it(gw):
    d = gw.start(dialect="simcom")
    reach(d, "standby")
    st = d.svc.status()
    assert st["rsrp_dbm"] is not None and st["sinr_db"] is None
    assert "AT+QCSQ" not in gw.modem.commands


def test_apn_or_authentication_refused_is_held(gw):
    d = gw.start()
    reach(d, "standby")
    gw.modem.set(fail_next=50, fail_cme=149)         # every command: PDP authentication failure
    result, error = call(d, "connect")
    assert error[0] == "access_refused"
    assert "GPRS_Apn, GPRS_Login, GPRS_Password" in error[1]
    assert d.svc.state == "access_refused" and d.svc.timeout("access_refused") is None


def test_a_link_that_comes_up_after_the_caller_gave_up_is_hung_up(gw):
    d = gw.start(dial_delay=0.5)
    reach(d, "standby")
    reply = d.svc.cmd_connect({})
    reply.expires = 0.0                          # the uplink stopped waiting
    assert reach(d, "connected", "disconnecting", "standby", timeout=10) in (
        "connected", "disconnecting", "standby")
    assert reach(d, "standby", timeout=20) == "standby"
    assert "ATH" in gw.modem.commands or "+++" in "".join(gw.modem.commands)


def test_pin_guard_remembers_every_refused_pin(tmp_path):
    from services.modem.pin_guard import PinGuard
    g = PinGuard(tmp_path)
    for pin in ("1111", "2222"):
        g.sending(pin, "boot1")
        g.outcome(pin, accepted=False)
    again = PinGuard(tmp_path)
    assert "refused" in again.may_send("1111", "boot2", None)
    assert "refused" in again.may_send("2222", "boot2", None)
    assert again.may_send("3333", "boot2", 3) is None
