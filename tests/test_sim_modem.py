"""The simulated 27.007 modem (sim/modem.py, `ticgw sim modem`) as raw bytes on a real pty,
through its control socket, and driven by Debian's `chat` with the stock gprs script."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
import serial

from sim.modem import PtyModem

# verbose final results, or a numeric one (ATV0) at the start or after a line's LF (so that
# an echoed "ATE0\r" is not taken for the numeric result "0\r")
FINAL = re.compile(rb"(\r\n(OK|ERROR|NO CARRIER|BUSY|NO ANSWER|CONNECT[^\r]*|\+CME ERROR: [^\r]*)"
                   rb"\r\n|(^|\n)[0-9]\r)$")
CHAT = shutil.which("chat") or "/usr/sbin/chat"


def raw(port, cmd: bytes, timeout=2.0, final=FINAL) -> bytes:
    """Send ``cmd`` + CR; every byte until a final result code (or the timeout)."""
    port.write(cmd + b"\r")
    out = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        out += port.read(port.in_waiting or 1)
        if final.search(out):
            break
    return out


def read_for(port, seconds) -> bytes:
    out = b""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        out += port.read(port.in_waiting or 1)
    return out


@pytest.fixture
def modem(tmp_path):
    m = PtyModem(link=str(tmp_path / "ttyMODEM"), guard=0.2, boot_time=0.1, cpin_delay=0.05)
    m.start()
    yield m
    m.stop()


@pytest.fixture
def port(modem):
    p = serial.Serial(modem.path, 115200, timeout=0.05)
    yield p
    p.close()


def test_the_reference_session_byte_for_byte(port, modem):
    assert raw(port, b"AT") == b"AT\r\r\nOK\r\n"                 # echo on at boot
    assert raw(port, b"ATE0") == b"ATE0\r\r\nOK\r\n"             # ATE0 itself echoed
    assert raw(port, b"AT+CMEE=2") == b"\r\nOK\r\n"
    assert raw(port, b"ATI") == (b"\r\nQuectel\r\n\r\nEC25\r\n\r\nRevision: EC25EFAR06A06M4G"
                                 b"\r\n\r\nOK\r\n")
    assert raw(port, b"AT+CGSN") == b"\r\n867962041234567\r\n\r\nOK\r\n"
    assert raw(port, b"AT+QCCID") == b"\r\n+QCCID: 89330123456789012345\r\n\r\nOK\r\n"
    assert raw(port, b"AT+CPIN?") == b"\r\n+CPIN: READY\r\n\r\nOK\r\n"
    assert raw(port, b"AT+CSQ") == b"\r\n+CSQ: 18,99\r\n\r\nOK\r\n"
    assert raw(port, b"AT+CREG?") == b"\r\n+CREG: 0,1\r\n\r\nOK\r\n"
    assert raw(port, b"AT+COPS?") == b'\r\n+COPS: 0,0,"Orange F",7\r\n\r\nOK\r\n'
    assert raw(port, b'AT+CGDCONT=1,"IP","internet"') == b"\r\nOK\r\n"
    assert raw(port, b'AT+CGAUTH=1,1,"user","secret"') == b"\r\nOK\r\n"
    assert raw(port, b"AT+CGDCONT?") == (b'\r\n+CGDCONT: 1,"IP","internet","0.0.0.0",0,0\r\n'
                                         b"\r\nOK\r\n")
    assert modem.auth[1] == (1, "user", "secret")
    assert raw(port, b"ATD*99***1#") == b"\r\nCONNECT 150000000\r\n"
    assert modem.data_mode
    port.write(b"\x7e\xff\x03ATH\r\x7e")                       # data, even "ATH": swallowed
    time.sleep(0.3)
    port.write(b"+++")
    assert read_for(port, 0.1) == b""                          # not before the guard time
    assert read_for(port, 0.4) == b"\r\nOK\r\n"
    assert not modem.data_mode and modem.online                # online command mode
    assert raw(port, b"ATO") == b"\r\nCONNECT\r\n"
    time.sleep(0.25)
    port.write(b"+++")
    assert read_for(port, 0.5) == b"\r\nOK\r\n"
    assert raw(port, b"ATH") == b"\r\nOK\r\n"
    assert not modem.online
    assert raw(port, b"ATO") == b"\r\nNO CARRIER\r\n"
    assert modem.commands[-4:] == ["ATD*99***1#", "ATO", "ATH", "ATO"]


def test_error_formats_verbose_numeric_and_chained(port, modem):
    modem.set(sim="ABSENT")
    assert raw(port, b"AT+CPIN?").endswith(b"\r\nERROR\r\n")
    assert raw(port, b"AT+CMEE=1;+CPIN?").endswith(b"\r\n+CME ERROR: 10\r\n")
    assert raw(port, b"AT+CMEE=2").endswith(b"OK\r\n")
    assert raw(port, b"AT+CPIN?").endswith(b"\r\n+CME ERROR: SIM not inserted\r\n")
    modem.set(sim="READY")
    assert raw(port, b"ATE0V1") == b"ATE0V1\r\r\nOK\r\n"
    assert raw(port, b"AT+FOO=?") == b"\r\nERROR\r\n"             # unknown test: ERROR
    assert raw(port, b"AT+FOO=1") == b"\r\nOK\r\n"                # unknown set: OK
    assert raw(port, b"AT+FOO?") == b"\r\nERROR\r\n"
    assert raw(port, b"AT+CPMS=?").startswith(b'\r\n+CPMS: ("SM"')
    assert raw(port, b"ATV0") == b"0\r"                            # numeric results
    assert raw(port, b"AT+CSQ") == b"+CSQ: 18,99\r\n0\r"
    assert raw(port, b"ATV1") == b"\r\nOK\r\n"
    modem.set(fail_next=2, fail_cme=515)
    assert raw(port, b"AT+CSQ") == b"\r\n+CME ERROR: Please wait, init or command processing" \
                                   b" in progress.\r\n"
    assert raw(port, b"AT+CSQ").endswith(b"+CME ERROR: Please wait, init or command processing"
                                         b" in progress.\r\n")
    assert raw(port, b"AT+CSQ") == b"\r\n+CSQ: 18,99\r\n\r\nOK\r\n"


def test_pin_three_wrong_then_puk_then_blocked(port, tmp_path):
    with PtyModem(link=str(tmp_path / "m2"), sim="PIN", pin="4321") as m, \
            serial.Serial(m.path, 115200, timeout=0.05) as p:
        raw(p, b"ATE0")
        raw(p, b"AT+CMEE=1")
        assert raw(p, b"AT+CPIN?") == b"\r\n+CPIN: SIM PIN\r\n\r\nOK\r\n"
        assert raw(p, b"AT+CIMI") == b"\r\n+CME ERROR: 11\r\n"
        for _ in range(3):
            assert raw(p, b'AT+CPIN="0000"') == b"\r\n+CME ERROR: 16\r\n"
        assert m.pin_attempts_used == 3
        assert raw(p, b"AT+CPIN?") == b"\r\n+CPIN: SIM PUK\r\n\r\nOK\r\n"
        assert raw(p, b'AT+QPINC="SC"') == b'\r\n+QPINC: "SC",0,10\r\n\r\nOK\r\n'
        assert raw(p, b'AT+CPIN="4321"') == b"\r\n+CME ERROR: 12\r\n"   # a PIN is no PUK
        for _ in range(10):
            assert raw(p, b'AT+CPIN="00000000","1111"') == b"\r\n+CME ERROR: 16\r\n"
        assert m.puk_attempts_used == 10
        assert raw(p, b"AT+CPIN?") == b"\r\n+CME ERROR: 13\r\n"          # blocked
        m.set(sim="PIN")                                                  # a new SIM
        assert raw(p, b'AT+CPIN="4321"') == b"\r\nOK\r\n"
        assert read_for(p, 0.2) == b"\r\n+CPIN: READY\r\n"               # URC after the OK
        assert raw(p, b'AT+CPIN="4321"') == b"\r\n+CME ERROR: 3\r\n"      # none pending


def test_puk_entry_sets_a_new_pin(tmp_path):
    with PtyModem(link=str(tmp_path / "m3"), sim="PUK", puk="87654321") as m, \
            serial.Serial(m.path, 115200, timeout=0.05) as p:
        raw(p, b"AT+CMEE=1")
        assert raw(p, b'AT+CPIN="87654321","2468"').endswith(b"\r\nOK\r\n")
        assert m.state.sim == "READY" and m.state.pin == "2468"


def test_registration_urc_modes_and_radio(port, modem):
    raw(port, b"ATE0")
    assert raw(port, b"AT+CREG=1;+CEREG=2") == b"\r\nOK\r\n"
    modem.set(reg=2)
    urcs = read_for(port, 0.2)
    assert b"\r\n+CREG: 2\r\n" in urcs and b"\r\n+CEREG: 2\r\n" in urcs
    assert b"CGREG" not in urcs                                  # its URCs are off
    modem.set(reg=5, tech="LTE-M")
    urcs = read_for(port, 0.2)
    assert b'\r\n+CEREG: 5,"1A2B","01A2B3C4",8\r\n' in urcs      # quectel: Cat-M1 is AcT 8
    assert raw(port, b"AT+CEREG?") == b'\r\n+CEREG: 2,5,"1A2B","01A2B3C4",8\r\n\r\nOK\r\n'
    assert raw(port, b"AT+CGATT?") == b"\r\n+CGATT: 1\r\n\r\nOK\r\n"
    assert raw(port, b"AT+CFUN=0") == b"\r\nOK\r\n"
    urcs = read_for(port, 0.2)
    assert b"\r\n+CEREG: 0\r\n" in urcs
    assert raw(port, b"AT+CSQ") == b"\r\n+CSQ: 99,99\r\n\r\nOK\r\n"
    assert raw(port, b"AT+COPS?") == b"\r\n+COPS: 0\r\n\r\nOK\r\n"
    assert raw(port, b"AT+CGATT?") == b"\r\n+CGATT: 0\r\n\r\nOK\r\n"
    assert raw(port, b"ATD*99#") == b"\r\nNO CARRIER\r\n"
    assert raw(port, b"AT+CFUN=1") == b"\r\nOK\r\n"
    assert b"\r\n+CREG: 5\r\n" in read_for(port, 0.2)             # after the OK
    assert raw(port, b"AT+CFUN?") == b"\r\n+CFUN: 1\r\n\r\nOK\r\n"
    modem.set(tech="NB-IoT", rsrp=-110, rsrq=-12.5)
    assert read_for(port, 0.2) == b'\r\n+CEREG: 5,"1A2B","01A2B3C4",9\r\n'
    assert raw(port, b"AT+COPS?") == b'\r\n+COPS: 0,0,"Orange F",9\r\n\r\nOK\r\n'
    assert raw(port, b"AT+CESQ") == b"\r\n+CESQ: 99,99,255,255,15,31\r\n\r\nOK\r\n"


def test_lte_m_act_per_dialect(tmp_path):
    with PtyModem(link=str(tmp_path / "s"), dialect="simcom", tech="LTE-M") as m, \
            serial.Serial(m.path, 115200, timeout=0.05) as p:
        assert raw(p, b"AT+COPS?").endswith(b'+COPS: 0,0,"Orange F",7\r\n\r\nOK\r\n')
        assert raw(p, b"AT+CCID").endswith(b"+CCID: 89330123456789012345\r\n\r\nOK\r\n")
        assert raw(p, b"AT+SPIC").endswith(b"+SPIC: 3,10,3,10\r\n\r\nOK\r\n")
        assert raw(p, b"AT+QCCID").endswith(b"\r\nERROR\r\n")


def test_reset_boot_noise_and_relock(tmp_path):
    with PtyModem(link=str(tmp_path / "r"), sim="PIN", boot_time=0.2, cpin_delay=0.1) as m, \
            serial.Serial(m.path, 115200, timeout=0.05) as p:
        raw(p, b"ATE0")
        raw(p, b"AT+CMEE=2")
        assert raw(p, b'AT+CPIN="1234"') == b"\r\nOK\r\n"
        assert read_for(p, 0.2) == b"\r\n+CPIN: READY\r\n"
        assert raw(p, b"AT+CFUN=1,1") == b"\r\nOK\r\n"
        assert raw(p, b"AT", timeout=0.1) == b""                    # silent while booting
        noise = read_for(p, 0.5)
        assert noise == b"\r\nRDY\r\n\r\n+CPIN: SIM PIN\r\n\r\n+QUSIM: 1\r\n\r\n+QIND: SMS DONE\r\n"
        assert raw(p, b"AT") == b"AT\r\r\nOK\r\n"                   # echo back on
        assert raw(p, b"AT+CPIN?").endswith(b"+CPIN: SIM PIN\r\n\r\nOK\r\n")   # locked again
        assert raw(p, b"AT+CIMI").endswith(b"\r\nERROR\r\n")        # CMEE back to 0


def test_urc_injection_mute_and_drop_carrier(port, modem):
    raw(port, b"ATE0")
    modem.urc("+CREG: 2")
    assert raw(port, b"AT+CSQ") == b"\r\n+CSQ: 18,99\r\n\r\n+CREG: 2\r\n\r\nOK\r\n"
    modem.urc("RING")
    assert raw(port, b"AT") == b"\r\nRING\r\n\r\nOK\r\n"            # no info line: before OK
    modem.urc("+CMTI: \"SM\",1", inside_answer=False)
    assert read_for(port, 0.1) == b'\r\n+CMTI: "SM",1\r\n'
    modem.mute()
    assert raw(port, b"AT+CSQ", timeout=0.3) == b""
    modem.unmute()
    assert raw(port, b"AT+CSQ") == b"\r\n+CSQ: 18,99\r\n\r\nOK\r\n"
    assert modem.commands[-2:] == ["AT+CSQ", "AT+CSQ"]              # both were received
    assert raw(port, b"ATD*99#") == b"\r\nCONNECT 150000000\r\n"
    modem.drop_carrier()
    assert read_for(port, 0.1) == b"\r\nNO CARRIER\r\n"
    assert raw(port, b"AT") == b"\r\nOK\r\n"


def test_vanish_and_reappear_behind_the_same_link(modem):
    link = modem.path
    first = os.readlink(link)
    p = serial.Serial(link, 115200, timeout=0.05)
    assert raw(p, b"AT").endswith(b"OK\r\n")
    modem.vanish()
    assert not os.path.lexists(link)
    with pytest.raises(serial.SerialException):
        for _ in range(5):
            p.write(b"AT\r")
            p.read(10)
    p.close()
    with pytest.raises(serial.SerialException):
        serial.Serial(link, 115200)
    modem.reappear()
    assert os.path.islink(link) and modem.running
    time.sleep(0.3)                                                  # boot
    with serial.Serial(link, 115200, timeout=0.05) as p2:
        assert raw(p2, b"AT") == b"AT\r\r\nOK\r\n"
    assert os.readlink(link) == first or os.readlink(link) != ""   # a new pty, same path


# -- the CLI and its control socket -----------------------------------------------------------

def start_cli(tmp_path, *args):
    link, sock = str(tmp_path / "ttyCLI"), str(tmp_path / "modem.sock")
    proc = subprocess.Popen([sys.executable, "-m", "ticgw.cli", "sim", "modem", "--link", link,
                             "--control", sock, "--guard", "0.2", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    assert line == link, proc.stderr.read() if proc.poll() is not None else line
    end = time.monotonic() + 5
    while not os.path.exists(sock) and time.monotonic() < end:
        time.sleep(0.02)
    return proc, link, sock


class Control:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.f = self.s.makefile("rwb")

    def __call__(self, **msg):
        self.f.write((json.dumps(msg) + "\n").encode())
        self.f.flush()
        return json.loads(self.f.readline())

    def close(self):
        self.f.close()
        self.s.close()


def test_cli_control_socket(tmp_path):
    proc, link, sock = start_cli(tmp_path, "--sim", "PIN", "--pin", "1111", "--signal", "7",
                                 "--tech", "3G", "--operator", "SFR", "--dialect", "simcom",
                                 "--reg", "5")
    ctl = Control(sock)
    try:
        with serial.Serial(link, 115200, timeout=0.05) as p:
            raw(p, b"ATE0")
            assert raw(p, b"AT+CSQ") == b"\r\n+CSQ: 7,99\r\n\r\nOK\r\n"
            assert raw(p, b"AT+CPIN?") == b"\r\n+CPIN: SIM PIN\r\n\r\nOK\r\n"
            assert raw(p, b'AT+CPIN="1111"') == b"\r\nOK\r\n"
            read_for(p, 0.1)
            assert raw(p, b"AT+COPS?") == b'\r\n+COPS: 0,0,"SFR",2\r\n\r\nOK\r\n'
            assert raw(p, b"AT+CGMI") == b"\r\nSIMCOM INCORPORATED\r\n\r\nOK\r\n"
            assert ctl(set={"signal": 5}) == {"ok": True}
            assert raw(p, b"AT+CSQ") == b"\r\n+CSQ: 5,99\r\n\r\nOK\r\n"
            assert ctl(urc="+CEREG: 2") == {"ok": True}
            assert read_for(p, 0.1) == b"\r\n+CEREG: 2\r\n"
            assert ctl(urc="RING", inside_answer=True) == {"ok": True}
            assert raw(p, b"AT") == b"\r\nRING\r\n\r\nOK\r\n"
            assert raw(p, b"ATD*99#") == b"\r\nCONNECT 150000000\r\n"
            assert ctl(drop_carrier=True) == {"ok": True}
            assert read_for(p, 0.1) == b"\r\nNO CARRIER\r\n"
            assert ctl(mute=True) == {"ok": True}
            assert raw(p, b"AT", timeout=0.3) == b""
            assert ctl(mute=False) == {"ok": True}
            assert raw(p, b"AT") == b"\r\nOK\r\n"
            bad = ctl(set={"sim": "LOST"})
            assert bad["ok"] is False and "sim must be one of" in bad["error"]
            assert ctl(nonsense=1)["ok"] is False
            state = ctl(state=True)
            assert state["state"]["signal"] == 5 and state["state"]["dialect"] == "simcom"
            assert "ATD*99#" in state["commands"] and state["pin_attempts_used"] == 0
            assert ctl(vanish=True) == {"ok": True}
            assert not os.path.lexists(link)
        assert ctl(reappear=True) == {"ok": True}
        assert os.path.islink(link)
        time.sleep(0.6)
        with serial.Serial(link, 115200, timeout=0.05) as p:
            assert raw(p, b"AT") == b"AT\r\r\nOK\r\n"
    finally:
        ctl.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
    assert not os.path.lexists(link) and not os.path.exists(sock)


# -- Debian's chat with the stock gprs script -------------------------------------------------

def run_chat(link, timeout=30):
    with open(link, "rb", buffering=0) as fin, open(link, "wb", buffering=0) as fout:
        return subprocess.run([CHAT, "-s", "-v", "-f", "/etc/chatscripts/gprs", "-T", "internet"],
                              stdin=fin, stdout=fout, stderr=subprocess.PIPE, text=True,
                              timeout=timeout)


def test_chat_gprs_script_connects(modem):
    assert os.path.exists(CHAT) and os.path.exists("/etc/chatscripts/gprs")
    r = run_chat(modem.path)
    assert r.returncode == 0, r.stderr
    assert "CONNECT" in r.stderr
    assert modem.commands == ["AT", "ATH", "ATE1", 'AT+CGDCONT=1,"IP","internet","",0,0',
                              "ATD*99#"]
    assert modem.contexts[1] == ("IP", "internet") and modem.data_mode


@pytest.mark.parametrize("setting, code", [({"reg": 2}, 6), ({"dial": "no-carrier"}, 6),
                                           ({"dial": "busy"}, 4), ({"dial": "error"}, 11)])
def test_chat_gprs_script_failures(tmp_path, setting, code):
    # exit 4 + k for the (k+1)-th ABORT string: BUSY 4, NO CARRIER 6, ERROR 11
    with PtyModem(link=str(tmp_path / "c"), **setting) as m:
        r = run_chat(m.path)
        assert r.returncode == code, r.stderr
        assert m.commands[-1] == "ATD*99#"


def test_chat_through_the_cli(tmp_path):
    proc, link, sock = start_cli(tmp_path, "--dial", "no-carrier")
    try:
        assert run_chat(link).returncode == 6
        ctl = Control(sock)
        assert ctl(set={"dial": "connect"}) == {"ok": True}
        ctl.close()
        assert run_chat(link).returncode == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
