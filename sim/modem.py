"""A 3GPP TS 27.007 cellular modem on a pseudo-terminal, for tests and the demo.

The DTE (the gateway's AT channel, Debian's ``chat``, python-gsmmodem...) opens the pty's slave
side (``path``: the ``link=`` symlink if given); the simulator keeps its own slave fd open, as
``sim.pty_meter`` does, so a DTE closing and reopening the port never makes the master fail.
One thread reads the master, echoes (``ATE1``, the boot default, as real modules do), splits
command lines on CR and answers them from a small state machine:

- identity: ATI, +CGMI/+CGMM/+CGMR/+CGSN (+GMI...), +CIMI (needs the PIN), per ``dialect``;
- SIM: +CPIN? / +CPIN="pin" (3 wrong -> SIM PUK) / +CPIN="puk","newpin" (10 wrong -> SIM
  blocked: state "ERROR", +CME ERROR: 13) / no SIM ("ABSENT", +CME ERROR: 10); PIN attempts
  per dialect (quectel +QPINC, simcom +SPIC, ublox +UPINCNT, generic 27.007 +CPINR); ICCID per
  dialect (quectel +QCCID, simcom/ublox +CCID, generic only +CRSM=176,12258,0,0,10, which all
  dialects answer, nibble-swapped and F-padded);
- radio: +CSQ (signal 99 settable), +CESQ, +CREG?/+CGREG?/+CEREG? with their URC modes
  (=1: ``+CREG: <stat>``, =2: ``+CREG: <stat>,"<lac>","<ci>",<AcT>``), +COPS? (only
  ``+COPS: 0`` when not registered), +COPS=3,<format>, +CGATT?, +CFUN? / =0 / =1 / =4 / =1,1
  (reset: silent for ``boot_time``, then the dialect's boot noise such as RDY and
  ``+CPIN: READY`` ``cpin_delay`` later; echo back on, CMEE 0, URC modes off, a SIM with a PIN
  locked again);
- data: +CGDCONT, +CGAUTH, ATD -> ``CONNECT 150000000`` when the SIM is READY, the radio on,
  registered, and the dial outcome "connect"; else NO CARRIER / ERROR / BUSY / NO ANSWER per
  ``dial`` ("timeout": no answer at all). In data mode everything is swallowed until a guarded
  ``+++`` (``guard`` seconds of silence before and after) -> OK (online command mode, call up);
  ATH hangs up, ATO goes back to data mode;
- framing: ATV1/ATV0, AT+CMEE=0/1/2 (ERROR / +CME ERROR: <n> / +CME ERROR: <text>), basic
  commands chained (``ATE0V1``), extended ones separated by ";". An unknown ``AT+X=?`` answers
  ERROR, an unknown set command OK (what python-gsmmodem needs), an unknown read or execute
  command ERROR.

AcT per ``tech``: LTE 7, LTE-M 7 (8 in the quectel dialect, like the BG96), NB-IoT 9, 3G 2, 2G 0
(see services/modem/answers.py).

Everything in ``ModemState`` is settable at start (``PtyModem(link=..., signal=5)``) and while it
runs (``.set(reg=2)``: registration changes send their URCs to a DTE that enabled them). Faults:
``drop_carrier()``, ``urc(text, inside_answer=True)``, ``mute()``/``unmute()``,
``vanish()``/``reappear()``, ``fail_next``/``fail_cme`` (the next N commands fail, e.g. CME 14
SIM busy), ``no_ok`` (information answers without their final OK, like an old Wavecom),
``delay`` (slow answers). ``commands`` lists every command line received.
"""
from __future__ import annotations

import dataclasses
import errno
import logging
import os
import re
import select
import threading
import time
from dataclasses import dataclass

from .pty_port import PtyPort

log = logging.getLogger(__name__)

SIM_STATES = ("READY", "PIN", "PUK", "ERROR", "ABSENT")
TECHS = ("LTE", "LTE-M", "NB-IoT", "3G", "2G")
DIAL_OUTCOMES = ("connect", "no-carrier", "error", "busy", "no-answer", "timeout")
DIALECTS = ("quectel", "simcom", "ublox", "generic")

#: Verbose CME texts as modules print them with AT+CMEE=2 (the driver normalises them).
CME_TEXT = {
    3: "operation not allowed", 4: "operation not supported", 10: "SIM not inserted",
    11: "SIM PIN required", 12: "SIM PUK required", 13: "SIM failure", 14: "SIM busy",
    16: "incorrect password", 30: "no network service", 50: "Incorrect parameters",
    100: "unknown", 515: "Please wait, init or command processing in progress.",
}

_IDENTITY = {
    "quectel": ("Quectel", "EC25", "EC25EFAR06A06M4G"),
    "simcom": ("SIMCOM INCORPORATED", "SIMCOM_SIM7600E-H", "LE20B04SIM7600M22"),
    "ublox": ("u-blox", "SARA-R410M-02B", "L0.0.00.00.05.12"),
    "generic": ("ticgw", "SIM-27007", "1.0"),
}

_BOOT_NOISE = {
    "quectel": (["RDY"], ["+CPIN: {cpin}", "+QUSIM: 1", "+QIND: SMS DONE"]),
    "simcom": (["RDY"], ["+CPIN: {cpin}", "Call Ready", "SMS Ready"]),
    "ublox": ([], ["+CPIN: {cpin}"]),
    "generic": (["RDY"], ["+CPIN: {cpin}"]),
}


class _CmeErr(Exception):
    def __init__(self, code: int | None):  # None: a plain ERROR whatever CMEE says
        super().__init__(code)
        self.code = code


@dataclass
class ModemState:
    """What a test or the CLI may set (at start or while running)."""
    sim: str = "READY"             # READY | PIN | PUK | ERROR (blocked/failed) | ABSENT
    pin: str = "1234"
    puk: str = "12345678"
    pin_tries: int = 3             # PIN tries left
    puk_tries: int = 10            # PUK tries left
    signal: int = 18               # +CSQ rssi, 0..31 or 99
    ber: int = 99
    rsrp: int = -95                # dBm, for +CESQ (LTE techs)
    rsrq: float = -10.0            # dB
    sinr: float = 10.0             # dB, for Quectel's +QCSQ
    tech: str = "LTE"
    reg: int = 1                   # <stat> for every domain...
    creg: int | None = None        # ...unless set per domain
    cgreg: int | None = None
    cereg: int | None = None
    operator: str = "Orange F"
    operator_short: str = "Orange"
    plmn: str = "20801"
    lac: str = "1A2B"
    ci: str = "01A2B3C4"
    dial: str = "connect"          # connect | no-carrier | error | busy | no-answer | timeout
    dial_delay: float = 0.05
    connect_text: str = "CONNECT 150000000"
    dialect: str = "quectel"
    imei: str = "867962041234567"
    imsi: str = "208011234567890"
    iccid: str = "89330123456789012345"
    guard: float = 1.0             # +++ escape guard time (S12)
    boot_time: float = 0.3         # silence after a reset
    cpin_delay: float = 0.2        # then the boot noise; +CPIN: READY this much later
    delay: float = 0.0             # answer delay (slow modem)
    no_ok: bool = False            # information answers lack their final OK
    fail_next: int = 0             # the next N commands (bare AT excepted) fail...
    fail_cme: int = 14             # ...with this CME error


class PtyModem:
    """The simulated modem (see the module doc). ``path`` is the link if given."""

    def __init__(self, link: str | None = None, **state):
        self.link = link
        self._port = PtyPort(link)
        self.state = ModemState()
        self._check(state)
        for k, v in state.items():
            setattr(self.state, k, v)
        self._pin_enabled = self.state.sim in ("PIN", "PUK")
        self.commands: list[str] = []
        self.pin_attempts_used = 0     # wrong PINs entered so far (tries burned)
        self.puk_attempts_used = 0
        self.master: int | None = None
        self.slave: int | None = None
        self.slave_name: str | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.RLock()   # state
        self._wlock = threading.Lock()   # writes to the master
        self._muted = False
        self._inject: list[str] = []
        self._timers: list[tuple[float, object]] = []
        self._reset_runtime()

    # -- settable state ---------------------------------------------------------------------------
    @staticmethod
    def _check(state: dict) -> None:
        names = {f.name for f in dataclasses.fields(ModemState)}
        for k, v in state.items():
            if k not in names:
                raise ValueError("unknown modem setting %r" % k)
        if "sim" in state and state["sim"] not in SIM_STATES:
            raise ValueError("sim must be one of %s" % ", ".join(SIM_STATES))
        if "tech" in state and state["tech"] not in TECHS:
            raise ValueError("tech must be one of %s" % ", ".join(TECHS))
        if "dial" in state and state["dial"] not in DIAL_OUTCOMES:
            raise ValueError("dial must be one of %s" % ", ".join(DIAL_OUTCOMES))
        if "dialect" in state and state["dialect"] not in DIALECTS:
            raise ValueError("dialect must be one of %s" % ", ".join(DIALECTS))

    def set(self, **state) -> None:
        """Change the modem while it runs; registration changes send their URCs."""
        self._check(state)
        with self._lock:
            before = self._reg_snapshot()
            for k, v in state.items():
                setattr(self.state, k, v)
            if state.get("sim") in ("PIN", "PUK"):
                self._pin_enabled = True
                if state["sim"] == "PIN" and "pin_tries" not in state:
                    self.state.pin_tries = 3
                if state["sim"] == "PUK" and "puk_tries" not in state:
                    self.state.puk_tries = 10
            self._reg_urcs(before)

    def _reset_runtime(self) -> None:
        self.echo = True
        self.verbose = True
        self.cmee = 0
        self.urc_mode = {"+CREG": 0, "+CGREG": 0, "+CEREG": 0}
        self.cops_format = 0
        self.contexts: dict[int, tuple[str, str]] = {}
        self.auth: dict[int, tuple[int, str, str]] = {}
        self.cfun = 1
        self.data_mode = False
        self.online = False           # a call is up (data mode or online command mode)
        self.booting = False
        self._line = bytearray()
        self._esc_n = 0
        self._esc_at: float | None = None
        self._last_rx = time.monotonic()

    # -- lifecycle --------------------------------------------------------------------------------
    @property
    def path(self) -> str:
        return self._port.path

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> "PtyModem":
        with self._lock:
            if self.running:
                return self
            self._open()
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="pty-modem", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering, close the pty and remove the link."""
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout=5.0)
        self._thread = None
        with self._lock:
            self._close()

    def vanish(self) -> None:
        """The module disappears (USB unplug): the pty is closed, the link removed."""
        self.stop()

    def reappear(self, boot: bool = True) -> "PtyModem":
        """A new pty behind the same link; with ``boot`` the module has restarted (echo on,
        settings reset, SIM locked again if it has a PIN, boot noise)."""
        self.stop()
        self.start()
        if boot:
            with self._lock:
                self._reboot()
        return self

    def mute(self) -> None:
        """Stop answering (a wedged module): input is read and dropped, nothing is sent."""
        self._muted = True

    def unmute(self) -> None:
        self._muted = False

    def __enter__(self) -> "PtyModem":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _open(self) -> None:
        self._port.open()
        self.master, self.slave, self.slave_name = (self._port.master, self._port.slave,
                                                    self._port.slave_name)
        log.info("modem (%s) on %s", self.state.dialect, self.path)

    def _close(self) -> None:
        self._port.close()
        self.master = self.slave = None
        self.data_mode = self.online = False

    # -- faults -----------------------------------------------------------------------------------
    def drop_carrier(self) -> None:
        """The network drops the data call: unsolicited NO CARRIER, back to command mode."""
        with self._lock:
            if not self.online:
                return
            self.data_mode = self.online = False
            self._esc_n, self._esc_at = 0, None
            self._send_final("NO CARRIER")

    def urc(self, text: str, inside_answer: bool = True) -> None:
        """Send a URC; with ``inside_answer`` it goes into the middle of the next answer
        (after its first information line, or before its final result)."""
        with self._lock:
            if inside_answer:
                self._inject.append(text)
            else:
                self._send_urc(text)

    def send_data(self, data: bytes) -> None:
        """The network's side of the data phase: raw bytes to the DTE (data mode only)."""
        with self._lock:
            if self.data_mode:
                self._out(data)

    def reset(self) -> None:
        """Restart the module now (what AT+CFUN=1,1 does)."""
        with self._lock:
            self._reboot()

    # -- derived state ----------------------------------------------------------------------------
    def act(self) -> int:
        t = self.state.tech
        if t == "LTE-M":
            return 8 if self.state.dialect == "quectel" else 7
        return {"LTE": 7, "NB-IoT": 9, "3G": 2, "2G": 0}[t]

    def stat(self, prefix: str) -> int:
        """Effective <stat> of a domain ("+CREG", "+CGREG", "+CEREG")."""
        s = self.state
        if self.booting or self.cfun != 1 or s.sim != "READY":
            return 0
        own = {"+CREG": s.creg, "+CGREG": s.cgreg, "+CEREG": s.cereg}[prefix]
        return s.reg if own is None else own

    def registered(self) -> bool:
        lte = self.state.tech in ("LTE", "LTE-M", "NB-IoT")
        data = ("+CEREG", "+CGREG") if lte else ("+CGREG",)
        return any(self.stat(p) in (1, 5) for p in data)

    def _reg_snapshot(self) -> dict:
        return {p: (self.stat(p), self.act()) for p in self.urc_mode}

    def _reg_line(self, prefix: str, n: int, read: bool) -> str:
        stat = self.stat(prefix)
        parts = [str(n)] if read else []
        parts.append(str(stat))
        if n >= 2 and stat in (1, 5):
            lac = self.state.lac if prefix != "+CEREG" else self.state.lac
            parts += ['"%s"' % lac, '"%s"' % self.state.ci, str(self.act())]
        return "%s: %s" % (prefix, ",".join(parts))

    def _reg_urcs(self, before: dict) -> None:
        after = self._reg_snapshot()
        for p, n in self.urc_mode.items():
            # n=1 reports <stat> changes; n=2 also cell/technology changes
            if (n == 1 and after[p][0] != before[p][0]) or (n >= 2 and after[p] != before[p]):
                self._send_urc(self._reg_line(p, n, read=False))

    # -- output -----------------------------------------------------------------------------------
    def _out(self, data: bytes) -> None:
        with self._wlock:
            fd = self.master
            if fd is None or not data:
                return
            end = time.monotonic() + 1.0
            while data and time.monotonic() < end:
                try:
                    n = os.write(fd, data)
                    data = data[n:]
                except BlockingIOError:
                    select.select([], [fd], [], 0.05)
                except OSError as e:
                    if e.errno in (errno.EAGAIN, errno.EIO):
                        return
                    raise

    def _fmt_info(self, line: str) -> str:
        return ("\r\n%s\r\n" if self.verbose else "%s\r\n") % line

    def _fmt_final(self, word: str) -> str:
        if self.verbose:
            return "\r\n%s\r\n" % word
        codes = {"OK": 0, "CONNECT": 1, "RING": 2, "NO CARRIER": 3, "ERROR": 4,
                 "NO DIALTONE": 6, "BUSY": 7, "NO ANSWER": 8}
        code = codes.get(word.split(" ")[0] if word.startswith("CONNECT") else word)
        return "%s\r" % (code if code is not None else word)

    def _send_final(self, word: str) -> None:
        if not self._muted:
            self._out(self._fmt_final(word).encode("latin-1"))

    def _send_urc(self, text: str) -> None:
        if self._muted or self.data_mode:
            return   # a real module would buffer it; dropped here
        self._out(("\r\n%s\r\n" % text).encode("latin-1"))

    def _error_text(self, code: int | None) -> str:
        if code is None or self.cmee == 0:
            return "ERROR"
        if self.cmee == 1:
            return "+CME ERROR: %d" % code
        return "+CME ERROR: %s" % CME_TEXT.get(code, str(code))

    def _respond(self, info: list[str], final: str | None) -> None:
        """Send an answer: info lines, any URC injected for it, the final result."""
        if self._muted:
            return
        if self.state.delay > 0:
            time.sleep(self.state.delay)
        chunks = [self._fmt_info(x) for x in info]
        inject, self._inject = self._inject, []
        urcs = ["\r\n%s\r\n" % u for u in inject]
        pos = 1 if chunks else 0
        chunks[pos:pos] = urcs
        if final is not None and not (self.state.no_ok and info and final == "OK"):
            chunks.append("\r\n%s\r\n" % final if final.startswith("+CME")
                          else self._fmt_final(final))
        self._out("".join(chunks).encode("latin-1"))

    # -- the reader -------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            fd = self.master
            if fd is None:
                return
            self._run_timers()
            try:
                r, _, _ = select.select([fd], [], [], 0.01)
            except (OSError, ValueError):
                return
            with self._lock:
                self._check_escape()
            if not r:
                continue
            try:
                data = os.read(fd, 4096)
            except BlockingIOError:
                continue
            except OSError as e:
                if e.errno == errno.EIO:   # no DTE has the slave open (cannot happen: we do)
                    time.sleep(0.01)
                    continue
                log.warning("modem pty read failed: %s", e)
                return
            if data:
                with self._lock:
                    self._receive(data)

    def _run_timers(self) -> None:
        now = time.monotonic()
        with self._lock:
            due = [t for t in self._timers if t[0] <= now]
            self._timers = [t for t in self._timers if t[0] > now]
        for _, fn in sorted(due, key=lambda t: t[0]):
            with self._lock:
                fn()

    def _after(self, delay: float, fn) -> None:
        self._timers.append((time.monotonic() + delay, fn))

    def _receive(self, data: bytes) -> None:
        now = time.monotonic()
        if self.data_mode:
            for b in data:
                if b == 0x2B and self._esc_n < 3 and (
                        self._esc_n > 0 or now - self._last_rx >= self.state.guard):
                    self._esc_n += 1
                    self._esc_at = now if self._esc_n == 3 else None
                else:
                    self._esc_n, self._esc_at = 0, None
                self._last_rx = now
            return
        self._last_rx = now
        if self._muted or self.booting:
            for b in data:   # lines still recorded, never answered
                if b == 0x0D:
                    if self._line:
                        self.commands.append(self._line.decode("latin-1"))
                    self._line = bytearray()
                elif b != 0x0A:
                    self._line.append(b)
            return
        for b in data:
            if self.echo:
                self._out(bytes([b]))
            if b == 0x0D:
                line, self._line = self._line.decode("latin-1"), bytearray()
                self._command_line(line)
                if self.data_mode:
                    return   # the rest of the chunk is data
            elif b == 0x0A:
                continue
            elif b in (0x08, 0x7F):
                del self._line[-1:]
            else:
                self._line.append(b)

    def _check_escape(self) -> None:
        if self.data_mode and self._esc_n == 3 and self._esc_at is not None \
                and time.monotonic() - self._esc_at >= self.state.guard:
            self.data_mode = False   # online command mode; the call stays up
            self._esc_n, self._esc_at = 0, None
            self._send_final("OK")

    # -- commands ---------------------------------------------------------------------------------
    def _command_line(self, line: str) -> None:
        s = line.strip()
        if not s:
            return
        self.commands.append(s)
        if not s[:2].upper() == "AT":
            return
        body = s[2:]
        if self.state.fail_next > 0 and body.strip():
            self.state.fail_next -= 1
            self._respond([], self._error_text(self.state.fail_cme))
            return
        info: list[str] = []
        try:
            final = self._execute(body, info)
        except _CmeErr as e:
            self._respond(info, self._error_text(e.code))
            return
        if final is None:
            return      # answered later (dial) or not at all
        self._respond(info, final)

    def _execute(self, body: str, info: list[str]) -> str | None:
        i = 0
        while i < len(body):
            c = body[i]
            if c in " ;":
                i += 1
                continue
            if c in "+^$%#!*":
                m = re.match(r"[+^$%#!*][A-Za-z0-9]+", body[i:])
                if not m:
                    raise _CmeErr(None)
                name = m.group(0).upper()
                j = i + len(name)
                k, inq = j, False
                while k < len(body) and (inq or body[k] != ";"):
                    if body[k] == '"':
                        inq = not inq
                    k += 1
                self._extended(name, body[j:k], info)
                i = k + 1
                continue
            u = c.upper()
            if u == "D":
                self._dial(body[i + 1:])
                return None
            if u == "&":
                m = re.match(r"&[A-Za-z]\d*", body[i:])
                i += len(m.group(0)) if m else 1
                continue
            if u == "S":
                m = re.match(r"[Ss](\d+)(=\d*|\?)?", body[i:])
                if not m:
                    raise _CmeErr(None)
                if m.group(2) == "?":
                    info.append("%03d" % (int(self.state.guard * 50) if m.group(1) == "12"
                                          else 0))
                i += len(m.group(0))
                continue
            m = re.match(r"([A-Za-z])(\d*)", body[i:])
            if not m:
                raise _CmeErr(None)
            i += len(m.group(0))
            letter, arg = m.group(1).upper(), m.group(2)
            if letter == "E":
                self.echo = arg != "0"
            elif letter == "V":
                self.verbose = arg != "0"
            elif letter == "I":
                man, model, rev = _IDENTITY[self.state.dialect]
                info += [man, model, "Revision: %s" % rev]
            elif letter == "H":
                self.online = self.data_mode = False
            elif letter == "Z":
                self.echo, self.verbose, self.cmee = True, True, 0
            elif letter == "O":
                if self.online:
                    self.data_mode = True
                    self._esc_n, self._esc_at = 0, None
                    return "CONNECT"
                return "NO CARRIER"
            elif letter == "A":
                return "NO CARRIER"
            elif letter in "QXLMTP":
                pass
            else:
                raise _CmeErr(None)
        return "OK"

    # each returns nothing (OK) or appends to info; raises _CmeErr for errors
    def _extended(self, name: str, rest: str, info: list[str]) -> None:
        rest = rest.strip()
        test, read = rest == "=?", rest == "?"
        args = _split_args(rest[1:]) if rest.startswith("=") and not test else []
        s = self.state
        dialect = s.dialect
        man, model, rev = _IDENTITY[dialect]
        if name == "+CMEE":
            if test:
                info.append("+CMEE: (0-2)")
            elif read:
                info.append("+CMEE: %d" % self.cmee)
            elif args and args[0] in ("0", "1", "2"):
                self.cmee = int(args[0])
            else:
                raise _CmeErr(50)
        elif name in ("+CGMI", "+GMI"):
            info.append(man)
        elif name in ("+CGMM", "+GMM"):
            info.append(model)
        elif name in ("+CGMR", "+GMR"):
            info.append(rev if dialect != "simcom" else "+CGMR: %s" % rev)
        elif name in ("+CGSN", "+GSN"):
            info.append(s.imei)
        elif name == "+CIMI":
            self._need_sim(pin=True)
            info.append(s.imsi)
        elif name == "+QCCID" and dialect == "quectel":
            self._need_sim()
            info.append("+QCCID: %s" % s.iccid)
        elif name == "+CCID" and dialect in ("simcom", "ublox"):
            self._need_sim()
            info.append("+CCID: %s" % s.iccid)
        elif name == "+CRSM":
            if test:
                return
            self._need_sim()
            if args[:2] != ["176", "12258"]:
                info.append("+CRSM: 106,130,\"\"")   # file not found
                return
            digits = s.iccid + "F" * (20 - len(s.iccid) if len(s.iccid) < 20 else 0)
            if len(digits) % 2:
                digits += "F"
            swapped = "".join(digits[k + 1] + digits[k] for k in range(0, len(digits), 2))
            info.append('+CRSM: 144,0,"%s"' % swapped)
        elif name == "+CPIN":
            self._cpin(test, read, args, info)
        elif name == "+QPINC" and dialect == "quectel":
            self._need_sim(pin=False)
            if test:
                info.append('+QPINC: ("SC","P2")')
            elif read or not args or args[0].upper() == "SC":
                info.append('+QPINC: "SC",%d,%d' % (s.pin_tries, s.puk_tries))
                if read:
                    info.append('+QPINC: "P2",3,10')
            else:
                info.append('+QPINC: "P2",3,10')
        elif name == "+SPIC" and dialect == "simcom":
            self._need_sim(pin=False)
            info.append("+SPIC: %d,%d,3,10" % (s.pin_tries, s.puk_tries))
        elif name == "+UPINCNT" and dialect == "ublox":
            self._need_sim(pin=False)
            info.append("+UPINCNT: %d,3,%d,10" % (s.pin_tries, s.puk_tries))
        elif name == "+CPINR" and dialect == "generic":
            self._need_sim(pin=False)
            info.append("+CPINR: SIM PIN,%d,3" % s.pin_tries)
            info.append("+CPINR: SIM PUK,%d,10" % s.puk_tries)
        elif name == "+CSQ":
            if test:
                info.append("+CSQ: (0-31,99),(0-7,99)")
            elif self.cfun != 1:
                info.append("+CSQ: 99,99")
            else:
                info.append("+CSQ: %d,%d" % (s.signal, s.ber))
        elif name == "+QCSQ" and dialect == "quectel":
            # Quectel: "<sysmode>",<rssi dBm>,<rsrp dBm>,<sinr in 1/5 dB from -20 dB>,<rsrq dB>
            mode = {"LTE": "LTE", "LTE-M": "CAT-M1", "NB-IoT": "CAT-NB1", "3G": "WCDMA",
                    "2G": "GSM"}[s.tech]
            if self.cfun != 1 or s.signal == 99 or not self.registered():
                info.append('+QCSQ: "NOSERVICE"')
            elif mode in ("LTE", "CAT-M1", "CAT-NB1"):
                raw = max(0, min(250, int(round((s.sinr + 20) * 5))))
                info.append('+QCSQ: "%s",%d,%d,%d,%d' % (mode, -113 + 2 * s.signal, s.rsrp, raw,
                                                        int(round(s.rsrq))))
            else:
                info.append('+QCSQ: "%s",%d' % (mode, -113 + 2 * s.signal))
        elif name == "+CESQ":
            if test:
                info.append("+CESQ: (0-63,99),(0-7,99),(0-96,255),(0-49,255),(0-34,255),"
                            "(0-97,255)")
            elif self.cfun != 1 or s.signal == 99:
                info.append("+CESQ: 99,99,255,255,255,255")
            elif s.tech in ("LTE", "LTE-M", "NB-IoT"):
                rsrq = max(0, min(34, int(round((s.rsrq + 20) * 2))))
                rsrp = max(0, min(97, s.rsrp + 141))
                info.append("+CESQ: 99,99,255,255,%d,%d" % (rsrq, rsrp))
            elif s.tech == "3G":
                info.append("+CESQ: 99,99,%d,30,255,255" % max(0, min(96, s.signal * 2 + 8)))
            else:
                info.append("+CESQ: %d,%d,255,255,255,255" % (min(63, s.signal * 2 + 2),
                                                              s.ber))
        elif name in ("+CREG", "+CGREG", "+CEREG"):
            if test:
                info.append("%s: (0-2)" % name)
            elif read:
                info.append(self._reg_line(name, self.urc_mode[name], read=True))
            elif args and args[0] in ("0", "1", "2"):
                self.urc_mode[name] = int(args[0])
            else:
                raise _CmeErr(50)
        elif name == "+COPS":
            if test:
                info.append('+COPS: (2,"%s","%s","%s",%d),,(0-4),(0-2)'
                            % (s.operator, s.operator_short, s.plmn, self.act()))
            elif read:
                if not self.registered() and self.stat("+CREG") not in (1, 5):
                    info.append("+COPS: 0")
                else:
                    oper = {0: s.operator, 1: s.operator_short, 2: s.plmn}[self.cops_format]
                    info.append('+COPS: 0,%d,"%s",%d' % (self.cops_format, oper, self.act()))
            elif len(args) >= 2 and args[0] == "3" and args[1] in ("0", "1", "2"):
                self.cops_format = int(args[1])
            elif args and args[0] in ("0", "1", "2", "3", "4"):
                pass
            else:
                raise _CmeErr(50)
        elif name == "+CGATT":
            if read:
                info.append("+CGATT: %d" % (1 if self.registered() else 0))
            elif test:
                info.append("+CGATT: (0,1)")
        elif name == "+CGDCONT":
            if test:
                info.append('+CGDCONT: (1-16),"IP",,,(0-2),(0-4)')
            elif read:
                for cid, (pdp, apn) in sorted(self.contexts.items()):
                    info.append('+CGDCONT: %d,"%s","%s","0.0.0.0",0,0' % (cid, pdp, apn))
            elif args and args[0].isdigit():
                cid = int(args[0])
                if len(args) == 1:
                    self.contexts.pop(cid, None)
                else:
                    self.contexts[cid] = (args[1], args[2] if len(args) > 2 else "")
            else:
                raise _CmeErr(50)
        elif name == "+CGAUTH":
            if test:
                info.append("+CGAUTH: (1-16),(0-2),,")
            elif read:
                for cid, (prot, user, _pw) in sorted(self.auth.items()):
                    info.append('+CGAUTH: %d,%d,"%s"' % (cid, prot, user))
            elif args and args[0].isdigit():
                cid = int(args[0])
                prot = int(args[1]) if len(args) > 1 and args[1].isdigit() else 0
                self.auth[cid] = (prot, args[2] if len(args) > 2 else "",
                                  args[3] if len(args) > 3 else "")
            else:
                raise _CmeErr(50)
        elif name == "+CFUN":
            if test:
                info.append("+CFUN: (0,1,4),(0,1)")
            elif read:
                info.append("+CFUN: %d" % self.cfun)
            elif args and args[0] in ("0", "1", "4"):
                before = self._reg_snapshot()
                if len(args) > 1 and args[1] == "1":
                    self._after(0.0, self._reboot)   # after the OK
                    return
                self.cfun = int(args[0])
                self._after(0.01, lambda: self._reg_urcs(before))   # after the OK
            else:
                raise _CmeErr(50)
        elif name == "+CPMS" and test:
            info.append('+CPMS: ("SM","ME"),("SM","ME"),("SM","ME")')
        elif test or read or not rest.startswith("="):
            raise _CmeErr(None)   # unknown test/read/execute: plain ERROR
        # unknown set command: OK (python-gsmmodem sends many)

    def _need_sim(self, pin: bool = False) -> None:
        s = self.state
        if self.booting:
            raise _CmeErr(14)
        if s.sim == "ABSENT":
            raise _CmeErr(10)
        if s.sim == "ERROR":
            raise _CmeErr(13)
        if pin and s.sim == "PIN":
            raise _CmeErr(11)
        if pin and s.sim == "PUK":
            raise _CmeErr(12)

    def _cpin(self, test: bool, read: bool, args: list[str], info: list[str]) -> None:
        s = self.state
        if test:
            return
        self._need_sim()
        if read or not args:
            info.append("+CPIN: %s" % {"READY": "READY", "PIN": "SIM PIN",
                                       "PUK": "SIM PUK"}[s.sim])
            return
        before = self._reg_snapshot()
        if s.sim == "READY":
            raise _CmeErr(3)
        if s.sim == "PIN":
            if args[0] == s.pin:
                s.sim, s.pin_tries = "READY", 3
                self._after(0.02, lambda: self._send_urc("+CPIN: READY"))
                self._after(0.05, lambda: self._reg_urcs(before))
                return
            s.pin_tries -= 1
            self.pin_attempts_used += 1
            if s.pin_tries <= 0:
                s.pin_tries, s.sim = 0, "PUK"
            raise _CmeErr(16)
        # SIM PUK: AT+CPIN="<puk>","<newpin>"
        if len(args) < 2:
            raise _CmeErr(12)
        if args[0] == s.puk:
            s.sim, s.pin, s.pin_tries, s.puk_tries = "READY", args[1], 3, 10
            self._after(0.02, lambda: self._send_urc("+CPIN: READY"))
            self._after(0.05, lambda: self._reg_urcs(before))
            return
        s.puk_tries -= 1
        self.puk_attempts_used += 1
        if s.puk_tries <= 0:
            s.puk_tries, s.sim = 0, "ERROR"
        raise _CmeErr(16)

    def _dial(self, number: str) -> None:
        s = self.state
        outcome = s.dial
        if outcome == "connect" and not (s.sim == "READY" and self.cfun == 1
                                         and self.registered()):
            outcome = "no-carrier"
        if outcome == "timeout":
            return

        def answer():
            if outcome == "connect":
                self.online = self.data_mode = True
                self._esc_n, self._esc_at = 0, None
                self._respond([], s.connect_text)
            else:
                word = {"no-carrier": "NO CARRIER", "error": "ERROR", "busy": "BUSY",
                        "no-answer": "NO ANSWER"}[outcome]
                self._respond([], word)
        self._after(s.dial_delay, answer)

    def _reboot(self) -> None:
        """Module restart: silence, then boot noise; runtime settings back to defaults."""
        before_online = self.online
        self._reset_runtime()
        self._inject = []
        if self._pin_enabled and self.state.sim == "READY":
            self.state.sim = "PIN"
        self.booting = True
        del before_online
        early, late = _BOOT_NOISE[self.state.dialect]
        cpin = {"READY": "READY", "PIN": "SIM PIN", "PUK": "SIM PUK"}

        def booted():
            self.booting = False
            for text in early:
                self._send_urc(text)

        def sim_ready():
            if self.booting or self.state.sim not in cpin:
                return
            for text in late:
                self._send_urc(text.format(cpin=cpin[self.state.sim]))
        self._after(self.state.boot_time, booted)
        self._after(self.state.boot_time + self.state.cpin_delay, sim_ready)


def _split_args(text: str) -> list[str]:
    """Arguments of a set command: comma-separated, quotes removed."""
    out, cur, inq = [], [], False
    for ch in text:
        if ch == '"':
            inq = not inq
        elif ch == "," and not inq:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur).strip())
    return out if out != [""] else []
