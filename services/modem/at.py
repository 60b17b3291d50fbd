"""The AT channel: one serial port to a 27.007 modem, commands one at a time, URCs apart.

A reader thread owns every read of the port. It splits the input into lines (on CR or LF,
blank lines dropped) and sorts each one:

1. in data mode (after CONNECT) only ``NO CARRIER`` (the network dropped the call: a URC) and
   the ``OK`` answering our ``+++`` escape mean something; every byte also goes to ``on_data``;
2. the echo of the pending command (echo on or off: ``ATE0`` itself comes back echoed), and
   any stray ``AT...`` line when nothing is pending, are dropped;
3. known unsolicited result codes (``URC_PATTERNS``) are taken out, wherever they fall (before,
   inside or after an answer), and handed to ``on_urc`` from the reader thread;
4. final result codes end the pending command (OK, CONNECT, ERROR, +CME/+CMS ERROR, NO CARRIER,
   BUSY, NO ANSWER, NO DIALTONE, Huawei's COMMAND NOT SUPPORT);
5. anything else is an information line of the pending command (or logged and dropped).

Solicited or unsolicited? Several prefixes are both an answer and a URC (``+CREG``, ``+CGREG``,
``+CEREG``, ``+CPIN``, ``+CFUN``...). A line with such a prefix is an answer only while a command
with the same prefix is pending in a form that answers (read ``AT+CREG?``, test ``AT+CREG=?``
or execute ``AT+CPIN``), or whose ``expect`` names that prefix; a set command (``AT+CREG=2``,
``AT+CPIN="1234"``) never has that line as its answer, so a ``+CPIN: READY`` arriving before
its OK is a URC. For the registration prefixes the line must also have the read answer's shape
(``<n>,<stat>...``: a bare integer second field): a ``+CREG: 2`` or
``+CREG: 1,"1A2B","01A2B3C4",7`` in the middle of ``AT+CREG?``'s answer is a URC, the
``+CREG: 0,1`` next to it is the answer. Use ``answers.parse_registration([urc.line],
solicited=False)`` on a registration URC.

Timing: a command ends at its final result code, or ``quiet`` (0.3 s) after its expected line
when the final OK never comes (old Wavecom ``+CPIN``), or raises AtTimeout. ``on_urc`` (and
``on_data``, ``on_gone``) run on the reader thread and must not call ``command``: hop to your
own loop. When the port fails (unplugged USB modem, closed pty), the pending command raises
ModemGone, ``on_gone`` is called once, and ``open()`` may be tried again later.

Hang-up from data mode: drop DTR where the port has the line (a pty has none: pyserial raises
OSError 25), else the Hayes escape: ``guard`` seconds of silence, ``+++`` without CR, up to
``guard`` + 2 s for OK; then ``ATH``. No answer to either is tolerated.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Callable

import serial

from . import answers

# -- errors ---------------------------------------------------------------------------------------


#: Commands whose arguments are secrets (the SIM's PIN and PUK, the APN's password).
_SECRET = re.compile(r"^(AT\s*(?:\+CPIN|\+CPWD|\+CGAUTH)\s*=).*$", re.I | re.S)


def redact(text: str) -> str:
    """A command line as it may be logged: the arguments of secret-carrying commands hidden."""
    return _SECRET.sub(r"\1<hidden>", text or "")


class AtError(Exception):
    """A command ended on a failure result: "ERROR" (also Huawei's COMMAND NOT SUPPORT),
    "CME" (+CME ERROR, ``cme`` set when the code is known, numeric or verbose), "CMS"
    (+CMS ERROR, ``cms``), "NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE"; "DATA MODE" for a
    command refused locally because the channel is in data mode; "TIMEOUT" (AtTimeout)."""

    def __init__(self, result: str, cme: int | None = None, meaning: str = "",
                 command: str = "", line: str = ""):
        self.result = result
        self.cme = cme
        self.meaning = meaning or (answers.cme_meaning(cme) if cme is not None else result)
        self.command = redact(command)
        self.line = line or result
        self.cms: int | None = None
        super().__init__("%s -> %s (%s)" % (self.command or "?", self.line, self.meaning))

    @property
    def held(self) -> bool:
        """True when retrying cannot help (answers.CME_HELD); only CME errors can be held."""
        return self.result == "CME" and answers.cme_class(self.cme) == "held"


class AtTimeout(AtError):
    """No final result code within the command's timeout."""

    def __init__(self, command: str = "", timeout: float = 0.0):
        super().__init__("TIMEOUT", None, "no answer within %g s" % timeout, command, "TIMEOUT")


class ModemGone(OSError):
    """The port vanished (USB unplug, closed pty) or could not be opened."""


# -- URCs -----------------------------------------------------------------------------------------


@dataclass
class Urc:
    name: str          # "+CREG", "RING", "NO CARRIER", "RDY", ...
    args: list[str]    # the comma-separated fields after "name:", quotes removed
    line: str          # the whole line as received (stripped)


#: Known URCs (regex on the stripped line). Prefixed ones ("+XXX:") may also be answers: see
#: the module doc. ``AtChannel.add_urc`` adds more.
URC_PATTERNS: list[str] = [
    r"\+CREG:", r"\+CGREG:", r"\+CEREG:", r"\+C5GREG:",
    r"\+CPIN:", r"\+CFUN:", r"\+CGEV:", r"\+CIEV:", r"\+CMTI:", r"\+CDSI:", r"\+CBM:",
    r"\+CRING:", r"\+CLIP:", r"\+CUSD:", r"\+CTZV:", r"\+CTZE:", r"\+CTZR:",
    r"\+QUSIM:", r"\+QIND:", r"\+QSTK:", r"\+CPSI:", r"\*PSUTTZ:", r"\+UUPSDD:", r"\+UUSIMSTAT:",
    r"\^SYSSTART", r"\^SIMST:", r"\^MODE:", r"\^RSSI:", r"\^BOOT:", r"\+STIN:",
    r"RING$", r"NO CARRIER$", r"RDY$", r"Call Ready$", r"SMS Ready$", r"\+PBREADY$",
    r"PB DONE$", r"NORMAL POWER DOWN$", r"POWERED DOWN$", r"\+SIM READY$",
]

_FINAL_ERRORS = {"ERROR", "NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE", "NO DIAL TONE",
                 "COMMAND NOT SUPPORT"}
_CMD_RE = re.compile(r"^AT\s*([+^$%#!*][A-Z0-9]+)(.*)$", re.I)
_DIALLING_RE = re.compile(r"^AT\s*[DOA]", re.I)


def _prefix_of(line: str) -> str | None:
    m = re.match(r"^([+^$%#!*]?[A-Za-z0-9]+)\s*:", line)
    return m.group(1).upper() if m else None


class _Pending:
    def __init__(self, cmd: str, expect: str | None, kind: str):
        self.cmd = cmd
        self.kind = kind                      # "cmd", "dial" (ATD/ATO/ATA) or "escape"
        self.expect = expect.strip().rstrip(":").strip().upper() if expect else None
        m = _CMD_RE.match(cmd.strip())
        self.prefix = m.group(1).upper() if m else None
        rest = m.group(2).strip() if m else ""
        # read ("?"), test ("=?") and execute ("") forms answer with their prefix; set does not
        self.answers_prefix = bool(m) and (rest in ("", "?", "=?") or rest.startswith("?"))
        self.test_form = rest == "=?"
        self.lines: list[str] = []
        self.echo_seen = False
        self.got_expected = False
        self.last_rx = time.monotonic()
        self.final: str | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()


# -- the channel ----------------------------------------------------------------------------------


class AtChannel:
    """See the module doc. ``url`` is a pyserial URL or device path; ``opener(url, baudrate=,
    timeout=, write_timeout=)`` returns a pyserial-like port (default serial_for_url).
    Extra callbacks, all on the reader thread: ``on_data(bytes)`` in data mode, ``on_gone(exc)``
    once when the port fails (before the pending command raises ModemGone)."""

    quiet = 0.3        # missing final OK after the expected line: end after this much silence
    read_tick = 0.05   # the reader's read timeout (how fast close() is noticed)

    def __init__(self, url: str, *, baudrate: int = 115200, opener=serial.serial_for_url,
                 on_urc: Callable[[Urc], None] | None = None, log_name: str = "modem.at",
                 on_data: Callable[[bytes], None] | None = None,
                 on_gone: Callable[[BaseException], None] | None = None):
        self.url = url
        self.baudrate = baudrate
        self.opener = opener
        self.on_urc = on_urc
        self.on_data = on_data
        self.on_gone = on_gone
        self.log = logging.getLogger(log_name)
        self._urc_res = [re.compile(p, re.I) for p in URC_PATTERNS]
        self._port = None
        self._reader: threading.Thread | None = None
        self._lock = threading.RLock()        # one command at a time
        self._state = threading.Lock()        # pending / mode, shared with the reader
        self._pending: _Pending | None = None
        self._data_mode = False
        self._hanging_up = False
        self._closing = False
        self._buf = bytearray()
        self._last_write = 0.0
        self.gone: BaseException | None = None

    # -- lifecycle --------------------------------------------------------------------------------
    def open(self) -> None:
        with self._lock:
            if self.is_open:
                return
            self._shutdown_port()
            try:
                port = self.opener(self.url, baudrate=self.baudrate, timeout=self.read_tick,
                                   write_timeout=5.0)
            except (serial.SerialException, OSError) as e:
                raise ModemGone("cannot open %s: %s" % (self.url, e)) from e
            try:
                port.reset_input_buffer()
            except (serial.SerialException, OSError):
                pass
            self._buf = bytearray()
            self._data_mode = False
            self.gone = None
            self._closing = False
            self._port = port
            self._reader = threading.Thread(target=self._read_loop, args=(port,),
                                            name="at-reader", daemon=True)
            self._reader.start()
            self.log.debug("opened %s", self.url)

    def close(self) -> None:
        with self._lock:
            self._shutdown_port()
            self._fail_pending(ModemGone("channel closed"))

    def _shutdown_port(self) -> None:
        self._closing = True
        port, self._port = self._port, None
        if port is not None:
            try:
                port.cancel_read()
            except Exception:  # noqa: BLE001 - not every URL handler has it
                pass
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(timeout=2.0)
        self._reader = None
        if port is not None:
            try:
                port.close()
            except Exception:  # noqa: BLE001
                pass
        self._data_mode = False

    @property
    def is_open(self) -> bool:
        port = self._port
        return port is not None and bool(getattr(port, "is_open", False)) and self.gone is None

    @property
    def in_data_mode(self) -> bool:
        return self._data_mode

    def add_urc(self, pattern: str) -> None:
        """Treat lines matching ``pattern`` (regex, matched at the start) as URCs too."""
        self._urc_res.append(re.compile(pattern, re.I))

    def __enter__(self) -> "AtChannel":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- commands ---------------------------------------------------------------------------------
    def command(self, cmd: str, *, expect: str | None = None, timeout: float = 5.0) -> list[str]:
        """Send ``cmd`` + CR; the information lines (with ``expect``, those starting with it)."""
        kind = "dial" if _DIALLING_RE.match(cmd.strip()) else "cmd"
        with self._lock:
            p = self._run(cmd, expect, kind, timeout)
            lines = p.lines
            if p.expect:
                lines = [ln for ln in lines if ln.upper().startswith(p.expect)]
            if p.final and p.final.upper().startswith("CONNECT"):
                lines = lines + [p.final]
            return lines

    def dial(self, number: str, timeout: float = 60.0) -> str:
        """``ATD<number>`` (e.g. ``*99***1#``); the CONNECT line; data mode on success."""
        cmd = number if number.upper().startswith("ATD") else "ATD" + number
        with self._lock:
            p = self._run(cmd, None, "dial", timeout)
            if not (p.final or "").upper().startswith("CONNECT"):
                raise AtError("ERROR", None, "dial ended with %r, not CONNECT" % p.final, cmd,
                              p.final or "")
            return p.final or "CONNECT"

    def hangup(self, guard: float = 1.0) -> None:
        """Leave data mode (DTR drop, else guarded ``+++``) and send ATH; no answer tolerated."""
        with self._lock:
            self._hanging_up = True
            try:
                if self._data_mode:
                    if not self._drop_dtr():
                        self._escape(guard)
                    with self._state:
                        self._data_mode = False
                if self._port is None or self.gone is not None:
                    raise ModemGone("port gone during hang-up")
                try:
                    self._run("ATH", None, "cmd", max(5.0, guard + 2.0))
                except AtError as e:
                    self.log.info("ATH: %s (ignored)", e)
            finally:
                self._hanging_up = False

    def write_data(self, data: bytes) -> None:
        """Write raw bytes (data mode)."""
        self._write(data)

    # -- internals: sending -----------------------------------------------------------------------
    def _run(self, cmd: str, expect: str | None, kind: str, timeout: float) -> _Pending:
        if self._port is None or self.gone is not None:
            raise ModemGone("port not open: %s" % self.url)
        if self._data_mode and kind != "escape":
            raise AtError("DATA MODE", None, "in data mode: hang up first", cmd, "DATA MODE")
        p = _Pending(cmd, expect, kind)
        with self._state:
            self._pending = p
        payload = cmd.encode("latin-1") + (b"" if kind == "escape" else b"\r")
        self.log.debug("-> %r", redact(payload.decode("latin-1")))
        try:
            self._write(payload)
            deadline = time.monotonic() + timeout
            while not p.done.wait(0.02):
                now = time.monotonic()
                if p.expect and p.got_expected and now - p.last_rx >= self.quiet:
                    self.log.debug("%s: no final result after %r; taken as OK", cmd, p.lines[-1])
                    p.final = ""
                    break
                if now >= deadline:
                    raise AtTimeout(cmd, timeout)
        finally:
            with self._state:
                if self._pending is p:
                    self._pending = None
        if p.error is not None:
            raise p.error
        return p

    def _write(self, data: bytes) -> None:
        port = self._port
        if port is None or self.gone is not None:
            raise ModemGone("port not open: %s" % self.url)
        try:
            port.write(data)
            port.flush()
        except serial.SerialTimeoutException as e:
            raise AtTimeout("write", 5.0) from e
        except (serial.SerialException, OSError, TypeError, AttributeError) as e:
            self._lost(e, port)
            raise ModemGone("write failed: %s" % e) from e
        self._last_write = time.monotonic()

    def _drop_dtr(self) -> bool:
        port = self._port
        try:
            port.dtr = False
        except (OSError, serial.SerialException, AttributeError, TypeError,
                NotImplementedError) as e:
            self.log.debug("no DTR on %s (%s): escape with +++", self.url, e)
            return False
        time.sleep(0.5)
        try:
            port.dtr = True
        except (OSError, serial.SerialException):
            pass
        return True

    def _escape(self, guard: float) -> None:
        wait = self._last_write + guard - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        time.sleep(0.05 + guard * 0.1)  # comfortably more than the guard time
        try:
            self._run("+++", None, "escape", guard + 2.0)
        except AtTimeout:
            self.log.info("no OK to +++ (ignored)")
        except AtError as e:
            self.log.info("+++: %s (ignored)", e)

    # -- internals: reading -----------------------------------------------------------------------
    def _read_loop(self, port) -> None:
        while True:
            if self._closing or port is not self._port:
                return
            try:
                n = port.in_waiting
                data = port.read(n or 1)
            except Exception as e:  # noqa: BLE001 - pyserial raises many kinds once gone
                if self._closing or port is not self._port:
                    return
                self._lost(e, port)
                return
            if data:
                try:
                    self._feed(data)
                except Exception:  # noqa: BLE001 - never let the reader die on a bad line
                    self.log.exception("reader: bad input %r", data)

    def _lost(self, exc: BaseException, port) -> None:
        with self._state:
            if self.gone is not None or port is not self._port:
                return
            self.gone = exc
            self._data_mode = False
        self.log.warning("modem port %s gone: %s", self.url, exc)
        try:
            port.close()
        except Exception:  # noqa: BLE001
            pass
        if self.on_gone is not None:  # before the pending command raises
            try:
                self.on_gone(exc)
            except Exception:  # noqa: BLE001
                self.log.exception("on_gone failed")
        self._fail_pending(ModemGone("modem gone: %s" % exc))

    def _fail_pending(self, exc: BaseException) -> None:
        with self._state:
            p = self._pending
        if p is not None and not p.done.is_set():
            p.error = exc
            p.done.set()

    def _feed(self, data: bytes) -> None:
        if self._data_mode and self.on_data is not None:
            self._deliver_data(bytes(data))
        self._buf += data
        while True:
            m = re.search(rb"[\r\n]", self._buf)
            if m is None:
                break
            raw = bytes(self._buf[:m.start()])
            del self._buf[:m.end()]
            was_data = self._data_mode
            if raw.strip():
                self._line(raw.decode("latin-1").strip())
            if self._data_mode and not was_data and self._buf and self.on_data is not None:
                self._deliver_data(bytes(self._buf))  # data right behind CONNECT
        if len(self._buf) > 4096:  # binary data without line ends
            del self._buf[:-256]

    def _deliver_data(self, data: bytes) -> None:
        try:
            self.on_data(data)
        except Exception:  # noqa: BLE001
            self.log.exception("on_data failed")

    def _line(self, s: str) -> None:
        self.log.debug("<- %r", redact(s))
        with self._state:
            p = self._pending
            if p is not None:
                p.last_rx = time.monotonic()
        up = s.upper()
        if self._data_mode:
            if up == "NO CARRIER":
                with self._state:
                    self._data_mode = False
                if p is not None and p.kind == "escape":
                    self._finish(p, error=AtError("NO CARRIER", None, "", p.cmd, s))
                if not self._hanging_up:
                    self._emit(Urc("NO CARRIER", [], s))
            elif up == "OK" and p is not None and p.kind == "escape":
                with self._state:
                    self._data_mode = False
                self._finish(p, final=s)
            return
        # echo of the pending command, or a stray echo
        if p is not None and not p.echo_seen and up == p.cmd.strip().upper():
            p.echo_seen = True
            return
        if p is None and up.startswith("AT"):
            self.log.debug("stray echo %r dropped", s)
            return
        urc = self._as_urc(s, p)
        if urc is not None:
            self._emit(urc)
            return
        if p is not None and self._final(s, up, p):
            return
        if p is not None:
            p.lines.append(s)
            if p.expect and up.startswith(p.expect):
                p.got_expected = True
            return
        self.log.debug("unsolicited line %r dropped (not a known URC)", s)

    def _as_urc(self, s: str, p: _Pending | None) -> Urc | None:
        if not any(r.match(s) for r in self._urc_res):
            return None
        prefix = _prefix_of(s)
        if prefix is None:  # bare words: RING, RDY, NO CARRIER, Call Ready...
            if s.upper() == "NO CARRIER" and p is not None and p.kind == "dial":
                return None  # the dial's own final result
            return Urc(s, [], s)
        if p is not None and (p.expect == prefix or (p.prefix == prefix and p.answers_prefix)):
            if prefix not in answers.REG_PREFIXES or p.test_form:
                return None
            if answers.registration_is_solicited(s):
                return None
        value = s.split(":", 1)[1].strip()
        return Urc(prefix, answers.fields(value) if value else [], s)

    def _final(self, s: str, up: str, p: _Pending) -> bool:
        if up == "OK":
            self._finish(p, final=s)
            return True
        if up.startswith("CONNECT"):
            with self._state:
                self._data_mode = True
            self._finish(p, final=s)
            return True
        m = re.match(r"^\+(CME|CMS) ERROR\s*:\s*(.*)$", s, re.I)
        if m:
            kind, arg = m.group(1).upper(), m.group(2).strip()
            if kind == "CME":
                code = answers.cme_from_text(arg)
                err = AtError("CME", code, answers.cme_meaning(code, arg), p.cmd, s)
            else:
                code = int(arg) if arg.isdigit() else None
                err = AtError("CMS", None, "CMS error %s" % arg, p.cmd, s)
                err.cms = code
            self._finish(p, error=err)
            return True
        if up in _FINAL_ERRORS:
            result = "ERROR" if up == "COMMAND NOT SUPPORT" else (
                "NO DIALTONE" if up == "NO DIAL TONE" else up)
            self._finish(p, error=AtError(result, None, result.lower(), p.cmd, s))
            return True
        return False

    def _finish(self, p: _Pending, final: str | None = None,
                error: BaseException | None = None) -> None:
        if p.done.is_set():
            return
        p.final = final
        p.error = error
        p.done.set()

    def _emit(self, urc: Urc) -> None:
        self.log.debug("URC %s %s", urc.name, urc.args)
        if self.on_urc is None:
            return
        try:
            self.on_urc(urc)
        except Exception:  # noqa: BLE001
            self.log.exception("on_urc failed for %r", urc.line)
