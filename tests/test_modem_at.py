"""The AT channel (services/modem/at.py) and the answer parsers (answers.py), against the
simulated modem on a real pseudo-terminal (sim/modem.py)."""
import threading
import time

import pytest
import serial

from services.modem import answers
from services.modem.answers import (
    ACT_NAMES, CME, REG_STATES, act_name, cme_class, cme_from_text, iccid_from_crsm,
    parse_cesq, parse_cops, parse_cpin, parse_csq, parse_iccid, parse_pin_attempts,
    parse_plain, parse_puk_attempts, parse_registration, rssi_dbm)
from services.modem.at import AtChannel, AtError, AtTimeout, ModemGone, Urc
from sim.modem import PtyModem


@pytest.fixture
def modem(tmp_path):
    m = PtyModem(link=str(tmp_path / "ttyMODEM"), guard=0.2, boot_time=0.1, cpin_delay=0.05)
    m.start()
    yield m
    m.stop()


class Recorder:
    def __init__(self):
        self.urcs: list[Urc] = []
        self.gone: list[BaseException] = []
        self.event = threading.Event()

    def urc(self, u):
        self.urcs.append(u)
        self.event.set()

    def wait(self, pred, timeout=2.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if pred():
                return True
            time.sleep(0.01)
        return pred()

    def names(self):
        return [u.name for u in self.urcs]


@pytest.fixture
def rec():
    return Recorder()


@pytest.fixture
def chan(modem, rec):
    ch = AtChannel(modem.path, on_urc=rec.urc, on_gone=rec.gone.append)
    ch.open()
    yield ch
    ch.close()


# -- the dialogue ---------------------------------------------------------------------------------

def test_echo_on_then_off(chan, modem):
    assert modem.echo                        # real modules boot with echo on
    assert chan.command("AT") == []
    assert chan.command("AT+CSQ") == ["+CSQ: 18,99"]     # echo stripped
    assert chan.command("ATE0") == []                     # ATE0 itself comes back echoed
    assert not modem.echo
    assert chan.command("AT+CSQ", expect="+CSQ:") == ["+CSQ: 18,99"]
    assert chan.command("ATI") == ["Quectel", "EC25", "Revision: EC25EFAR06A06M4G"]
    assert chan.command("ATE1") == []
    assert chan.command("AT+CGSN") == ["867962041234567"]
    assert modem.commands == ["AT", "AT+CSQ", "ATE0", "AT+CSQ", "ATI", "ATE1", "AT+CGSN"]


def test_every_parser_on_the_simulators_answers(chan, modem):
    chan.command("AT+CMEE=1")
    assert parse_plain(chan.command("AT+CGMI")) == "Quectel"
    assert parse_plain(chan.command("AT+CGMM")) == "EC25"
    assert parse_plain(chan.command("AT+CIMI")) == "208011234567890"
    assert parse_cpin(chan.command("AT+CPIN?", expect="+CPIN:")) == "READY"
    assert parse_iccid(chan.command("AT+QCCID")) == "89330123456789012345"
    assert iccid_from_crsm(chan.command("AT+CRSM=176,12258,0,0,10")) == "89330123456789012345"
    assert parse_csq(chan.command("AT+CSQ")) == (18, None)
    assert rssi_dbm(18) == -77
    cesq = parse_cesq(chan.command("AT+CESQ"))
    assert cesq["rsrp_dbm"] == -95 and cesq["rsrq_db"] == -10.0 and cesq["rscp_dbm"] is None
    assert parse_registration(chan.command("AT+CREG?", expect="+CREG:")) == (1, None)
    assert parse_registration(chan.command("AT+CGREG?")) == (1, None)
    chan.command("AT+CEREG=2")
    assert parse_registration(chan.command("AT+CEREG?", expect="+CEREG:")) == (1, 7)
    assert parse_cops(chan.command("AT+COPS?")) == ("Orange F", 7)
    chan.command("AT+COPS=3,2")
    assert parse_cops(chan.command("AT+COPS?")) == ("20801", 7)
    assert parse_pin_attempts(chan.command('AT+QPINC="SC"')) == 3
    assert parse_puk_attempts(chan.command('AT+QPINC="SC"')) == 10

    modem.set(signal=99, reg=2)
    assert parse_csq(chan.command("AT+CSQ")) == (None, None)   # 99 is not >= 10
    assert rssi_dbm(None) is None and rssi_dbm(99) is None
    assert parse_cesq(chan.command("AT+CESQ"))["rsrp_dbm"] is None
    assert parse_registration(chan.command("AT+CEREG?", expect="+CEREG:")) == (2, None)
    assert parse_cops(chan.command("AT+COPS?")) == (None, None)   # only "+COPS: 0"


@pytest.mark.parametrize("dialect, cmd, expected_attempts", [
    ("simcom", "AT+SPIC", 2), ("ublox", "AT+UPINCNT", 2), ("generic", 'AT+CPINR="SIM PIN"', 2),
])
def test_dialects_iccid_and_pin_attempts(tmp_path, dialect, cmd, expected_attempts):
    with PtyModem(link=str(tmp_path / "m"), dialect=dialect, sim="PIN",
                  iccid="8933012345678901234") as m:       # 19 digits: F-padded in EF_ICCID
        with AtChannel(m.path) as ch:
            ch.command("AT+CMEE=1")
            with pytest.raises(AtError) as e:
                ch.command('AT+CPIN="0000"')
            assert e.value.cme == 16
            assert parse_pin_attempts(ch.command(cmd)) == expected_attempts
            crsm = ch.command("AT+CRSM=176,12258,0,0,10")
            assert crsm[0].endswith('F4"')                 # the padding nibble, swapped
            assert iccid_from_crsm(crsm) == "8933012345678901234"
            if dialect == "generic":
                with pytest.raises(AtError):               # no vendor ICCID command
                    ch.command("AT+CCID")
            else:
                assert parse_iccid(ch.command("AT+CCID")) == "8933012345678901234"
                with pytest.raises(AtError) as e:
                    ch.command("AT+QCCID")
                assert e.value.result == "CME" or e.value.result == "ERROR"


def test_cme_numeric_and_verbose(chan, modem):
    modem.set(sim="ABSENT")
    with pytest.raises(AtError) as e:
        chan.command("AT+CPIN?")
    assert e.value.result == "ERROR" and e.value.cme is None      # CMEE=0: bare ERROR
    chan.command("AT+CMEE=1")
    with pytest.raises(AtError) as e:
        chan.command("AT+CPIN?")
    assert (e.value.result, e.value.cme, e.value.meaning) == ("CME", 10, "SIM not inserted")
    assert e.value.held
    chan.command("AT+CMEE=2")
    with pytest.raises(AtError) as e:
        chan.command("AT+CPIN?", expect="+CPIN:")
    assert e.value.line == "+CME ERROR: SIM not inserted"
    assert (e.value.result, e.value.cme) == ("CME", 10)
    modem.set(sim="READY", fail_next=1, fail_cme=14)
    with pytest.raises(AtError) as e:
        chan.command("AT+CPIN?")
    assert e.value.cme == 14 and e.value.meaning == "SIM busy" and not e.value.held
    modem.set(fail_next=1, fail_cme=515)
    with pytest.raises(AtError) as e:
        chan.command("AT+CPIN?")
    assert e.value.cme == 515 and not e.value.held
    assert chan.command("AT+CPIN?") == ["+CPIN: READY"]


def test_urcs_inside_an_answer_are_taken_out(chan, modem, rec):
    modem.urc("+CREG: 2")                                  # between +CSQ's line and OK
    assert chan.command("AT+CSQ", expect="+CSQ:") == ["+CSQ: 18,99"]
    modem.urc("RING")
    modem.urc('+CEREG: 5,"1A2B","01A2B3C4",7')
    assert chan.command("AT+CSQ") == ["+CSQ: 18,99"]
    assert rec.names() == ["+CREG", "RING", "+CEREG"]
    assert rec.urcs[0].args == ["2"] and rec.urcs[0].line == "+CREG: 2"
    assert parse_registration([rec.urcs[2].line], solicited=False) == (5, 7)
    # the same prefix as the pending read command: the URC forms are URCs, the read form the
    # answer, whichever comes first
    modem.urc("+CREG: 3")
    modem.urc('+CREG: 1,"1A2B","01A2B3C4",7')
    lines = chan.command("AT+CREG?", expect="+CREG:")
    assert lines == ["+CREG: 0,1"]
    assert [u.line for u in rec.urcs[3:]] == ["+CREG: 3", '+CREG: 1,"1A2B","01A2B3C4",7']
    assert parse_registration(lines) == (1, None)
    # the test form's one-field answer is an answer
    assert chan.command("AT+CREG=?") == ["+CREG: (0-2)"]
    # +CPIN: READY is the answer to AT+CPIN?, a URC otherwise (even during another command)
    modem.urc("+CPIN: READY")
    assert chan.command("AT+CGSN") == ["867962041234567"]
    assert rec.urcs[-1].name == "+CPIN" and rec.urcs[-1].args == ["READY"]
    n = len(rec.urcs)
    assert chan.command("AT+CPIN?") == ["+CPIN: READY"]
    assert len(rec.urcs) == n
    # idle URCs (set by the network while nothing is pending)
    chan.command("AT+CEREG=2")
    chan.command("AT+CREG=1")
    modem.set(reg=5)
    assert rec.wait(lambda: len(rec.urcs) >= n + 2)
    got = {u.name: u for u in rec.urcs[n:]}
    assert got["+CREG"].line == "+CREG: 5"
    assert got["+CEREG"].line == '+CEREG: 5,"1A2B","01A2B3C4",7'
    assert parse_registration([got["+CEREG"].line], solicited=False) == (5, 7)
    assert parse_registration([got["+CREG"].line], solicited=False) == (5, None)
    assert parse_registration([got["+CREG"].line]) == (5, None)     # shape guess


def test_timeout(chan, modem):
    modem.mute()
    t0 = time.monotonic()
    with pytest.raises(AtTimeout) as e:
        chan.command("AT+CSQ", timeout=0.4)
    assert 0.35 < time.monotonic() - t0 < 1.5
    assert e.value.result == "TIMEOUT" and isinstance(e.value, AtError)
    modem.unmute()
    assert chan.command("AT+CSQ") == ["+CSQ: 18,99"]


def test_missing_final_ok_ends_after_a_quiet_time(chan, modem):
    modem.set(no_ok=True)                 # an old Wavecom: +CPIN: READY and no OK
    t0 = time.monotonic()
    assert chan.command("AT+CPIN?", expect="+CPIN:", timeout=5) == ["+CPIN: READY"]
    assert time.monotonic() - t0 < 1.5
    modem.set(no_ok=False)
    assert chan.command("AT+CSQ") == ["+CSQ: 18,99"]


def test_slow_answer_within_timeout(chan, modem):
    modem.set(delay=0.4)
    assert chan.command("AT+CSQ", timeout=2) == ["+CSQ: 18,99"]


def test_modem_gone_mid_command_and_back(chan, modem, rec):
    modem.mute()
    result = {}

    def run():
        try:
            chan.command("AT+COPS?", timeout=10)
        except BaseException as e:  # noqa: BLE001
            result["e"] = e
    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    modem.vanish()
    t.join(5)
    assert isinstance(result.get("e"), ModemGone)
    assert time.monotonic() - t0 < 1.0                 # not the command's 10 s timeout
    assert rec.gone and not chan.is_open
    with pytest.raises(ModemGone):
        chan.command("AT")
    with pytest.raises(ModemGone):
        chan.open()                                    # the link is gone too
    modem.reappear()
    modem.unmute()
    chan.open()
    assert chan.is_open
    for _ in range(20):                  # the module reboots: probe with AT until it answers
        try:
            chan.command("AT", timeout=0.2)
            break
        except AtTimeout:
            pass
    assert parse_cops(chan.command("AT+COPS?")) == ("Orange F", 7)


def test_dial_outcomes_data_mode_and_hangup(chan, modem, rec):
    chan.command('AT+CGDCONT=1,"IP","internet"')
    assert modem.contexts[1] == ("IP", "internet")
    assert chan.dial("*99***1#") == "CONNECT 150000000"
    assert chan.in_data_mode and modem.data_mode
    with pytest.raises(AtError) as e:
        chan.command("AT")                            # not while in data mode
    assert e.value.result == "DATA MODE"
    t0 = time.monotonic()
    chan.hangup(guard=0.3)
    took = time.monotonic() - t0
    assert not chan.in_data_mode and not modem.online
    assert 0.45 <= took < 3.0     # our guard 0.3, +++, the modem's guard 0.2, OK, ATH
    assert modem.commands[-2:] == ["ATD*99***1#", "ATH"]
    assert "NO CARRIER" not in rec.names()
    assert chan.command("AT") == []

    modem.set(dial="busy")
    with pytest.raises(AtError) as e:
        chan.dial("*99***1#")
    assert e.value.result == "BUSY" and not chan.in_data_mode
    modem.set(dial="no-carrier")
    with pytest.raises(AtError) as e:
        chan.dial("*99***1#")
    assert e.value.result == "NO CARRIER"
    assert "NO CARRIER" not in rec.names()            # the dial's own result, not a URC
    modem.set(dial="connect", reg=2)                  # searching: no carrier
    with pytest.raises(AtError) as e:
        chan.dial("*99***1#")
    assert e.value.result == "NO CARRIER"
    modem.set(reg=1, dial="timeout")
    with pytest.raises(AtTimeout):
        chan.dial("*99***1#", timeout=0.3)
    modem.set(dial="error")
    with pytest.raises(AtError) as e:
        chan.dial("*99***1#")
    assert e.value.result == "ERROR"
    chan.hangup(guard=0.2)                            # not in data mode: just ATH
    assert modem.commands[-1] == "ATH"


def test_unsolicited_no_carrier_in_data_mode(chan, modem, rec):
    assert chan.dial("*99#").startswith("CONNECT")
    modem.drop_carrier()
    assert rec.wait(lambda: "NO CARRIER" in rec.names())
    assert not chan.in_data_mode
    assert chan.command("AT+CSQ") == ["+CSQ: 18,99"]


def test_data_after_connect_goes_to_on_data(modem):
    got = []
    with AtChannel(modem.path, on_data=got.append) as ch:
        ch.dial("*99#")
        modem.send_data(b"~\x7d\x23PPP-ish")              # the module's side of the data phase
        deadline = time.monotonic() + 2
        while b"PPP-ish" not in b"".join(got) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert b"PPP-ish" in b"".join(got)
        ch.hangup(guard=0.2)
        assert not ch.in_data_mode


def test_hangup_drops_dtr_where_the_port_has_it(modem, rec):
    class DtrSerial(serial.Serial):      # a port with modem-control lines (a pty has none)
        changes = []

        def _update_dtr_state(self):
            self.changes.append(self._dtr_state)
            if not self._dtr_state:
                modem.drop_carrier()     # AT&D2: DTR off hangs up (and says NO CARRIER)

    with AtChannel(modem.path, opener=lambda url, **kw: DtrSerial(url, **kw),
                   on_urc=rec.urc) as ch:
        ch.dial("*99#")
        t0 = time.monotonic()
        ch.hangup(guard=3.0)
        assert time.monotonic() - t0 < 2.0            # no guard times: no +++ escape
        assert DtrSerial.changes[-2:] == [False, True]
        assert not ch.in_data_mode and not modem.online
        assert modem.commands[-1] == "ATH"
        assert "NO CARRIER" not in rec.names()        # our own hang-up is no URC
        assert ch.command("AT") == []


def test_escape_without_guard_is_data(chan, modem):
    chan.dial("*99#")
    chan.write_data(b"abc+++def")                   # no silence around: not an escape
    time.sleep(0.5)
    assert modem.data_mode
    chan.hangup(guard=0.25)
    assert not modem.data_mode and not chan.in_data_mode


def test_pin_flow_and_puk(tmp_path, rec):
    with PtyModem(link=str(tmp_path / "m"), sim="PIN", pin="4321") as m:
        with AtChannel(m.path, on_urc=rec.urc) as ch:
            ch.command("AT+CMEE=2")
            assert parse_cpin(ch.command("AT+CPIN?")) == "SIM PIN"
            for left in (2, 1, 0):
                with pytest.raises(AtError) as e:
                    ch.command('AT+CPIN="0000"')
                assert e.value.cme == 16 and e.value.meaning == "incorrect password"
                if left:
                    assert parse_pin_attempts(ch.command('AT+QPINC="SC"')) == left
            assert m.pin_attempts_used == 3
            assert parse_cpin(ch.command("AT+CPIN?")) == "SIM PUK"
            with pytest.raises(AtError) as e:
                ch.command("AT+CIMI")
            assert e.value.cme == 12 and e.value.held
            ch.command('AT+CPIN="12345678","1111"')
            assert rec.wait(lambda: "+CPIN" in rec.names())
            assert parse_cpin(ch.command("AT+CPIN?")) == "READY"
            assert m.state.pin == "1111"


def test_boot_noise_after_reset_is_urcs(chan, modem, rec):
    chan.command("ATE0")
    chan.command("AT+CFUN=1,1")
    assert rec.wait(lambda: {"RDY", "+CPIN", "+QUSIM"} <= set(rec.names()), timeout=3)
    assert modem.echo                              # echo back on after the reset
    assert chan.command("AT+CSQ") == ["+CSQ: 18,99"]
    assert chan.command("AT+CFUN?") == ["+CFUN: 1"]


def test_open_missing_port():
    with pytest.raises(ModemGone):
        AtChannel("/nonexistent/ttyUSB9").open()


# -- pure parsers: vendor variants not produced by the simulator ----------------------------------

def test_iccid_variants():
    assert parse_iccid(["+CCID: 89330123456789012345"]) == "89330123456789012345"
    assert parse_iccid(['+CCID: "8933012345678901234F"']) == "8933012345678901234"
    assert parse_iccid(["^ICCID: 89860012345678901234"]) == "89860012345678901234"
    assert parse_iccid(["ICCID: 8949012345678901234"]) == "8949012345678901234"
    assert parse_iccid(["89330123456789012345"]) == "89330123456789012345"   # bare digits
    assert parse_iccid(["OK"]) is None
    assert iccid_from_crsm(['+CRSM: 144,0,"98942000008036496082"']) == "89490200000863940628"
    assert iccid_from_crsm(['+CRSM: 106,130,""']) is None


def test_registration_forms():
    assert parse_registration(["+CREG: 0,1"]) == (1, None)
    assert parse_registration(['+CREG: 2,5,"1A2B","01A2B3C4",7']) == (5, 7)
    assert parse_registration(['+CGREG: 2,1,"1A2B","01A2B3C4",2,"01"']) == (1, 2)
    assert parse_registration(["+CEREG: 3"]) == (3, None)
    assert parse_registration(['+CEREG: 1,"1A2B","01A2B3C4",9']) == (1, 9)
    assert parse_registration(["+CEREG: 2,,,"], solicited=False) == (2, None)
    assert parse_registration(["+CEREG: 4,0"]) == (0, None)      # read form, n=4
    with pytest.raises(ValueError):
        parse_registration(["+CSQ: 1,2"])
    assert REG_STATES[3] == "registration denied" and REG_STATES[5] == "registered, roaming"


def test_act_names_and_lte_m():
    assert ACT_NAMES[0] == "2G" and ACT_NAMES[2] == "3G" and ACT_NAMES[7] == "LTE"
    assert ACT_NAMES[9] == "NB-IoT" and ACT_NAMES[8] == "2G"      # 27.007: EC-GSM-IoT
    assert act_name(8, "quectel") == "LTE-M" and act_name(7, "simcom") == "LTE"
    assert act_name(None) is None


def test_cme_table():
    for code in (10, 12, 13, 15, 16, 18, 103, 106, 107, 111, 133, 149):
        assert cme_class(code) == "held", code
    for code in (14, 30, 31, 100, 148, 515, 9999):
        assert cme_class(code) == "transient", code
    assert cme_from_text("SIM not inserted") == 10
    assert cme_from_text("Incorrect Password") == 16
    assert cme_from_text("  14 ") == 14
    assert cme_from_text("PDP authentication failure") == 149
    assert cme_from_text("something new") is None
    assert CME[107] == "GPRS services not allowed"


def test_misc_parsers():
    assert parse_csq(["+CSQ: 0,0"]) == (0, 0) and rssi_dbm(0) == -113 and rssi_dbm(31) == -51
    with pytest.raises(ValueError):
        parse_csq(["OK"])
    assert parse_cops(['+COPS: 0,2,"20801",7']) == ("20801", 7)
    assert parse_cops(['+COPS: 1,0,"SFR"']) == ("SFR", None)
    assert parse_cpin(["+CPIN:SIM PIN"]) == "SIM PIN"
    assert parse_cpin(["+CPIN: PH-SIM PIN"]) == "PH-SIM PIN"
    assert parse_pin_attempts(['+QPINC: "SC",2,10']) == 2
    assert parse_pin_attempts(["+SPIC: 1,10,3,10"]) == 1
    assert parse_pin_attempts(["+UPINCNT: 3,3,10,10"]) == 3
    assert parse_pin_attempts(["OK"]) is None
    assert parse_plain([" WAVECOM MODEM"]) == "WAVECOM MODEM"
    assert parse_plain(["+CGMR: LE20B04SIM7600M22"]) == "LE20B04SIM7600M22"
    c = parse_cesq(["+CESQ: 40,0,255,255,255,255"])
    assert c["rxlev_dbm"] == -71 and c["ber"] == 0 and c["rsrp_dbm"] is None
    assert answers.is_registered(5) and not answers.is_registered(99)


def test_qcsq_lte_family_only():
    from services.modem import answers
    q = answers.parse_qcsq(['+QCSQ: "LTE",-69,-102,150,-12'])
    assert q == {"rssi_dbm": -69, "rsrp_dbm": -102, "sinr_db": 10.0, "rsrq_db": -12}
    assert answers.parse_qcsq(['+QCSQ: "CAT-M1",-80,-110,100,-14'])["sinr_db"] == 0.0
    assert answers.parse_qcsq(['+QCSQ: "WCDMA",-70,-80,-6']) == {}       # not these quantities
    assert answers.parse_qcsq(['+QCSQ: "NOSERVICE"']) == {}
    assert answers.parse_qcsq([]) == {}
