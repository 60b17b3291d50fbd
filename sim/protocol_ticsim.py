"""pyserial URL handler ``ticsim://``: a simulated meter opened in-process like a real port.

    import sim; sim.register()
    port = serial.serial_for_url(
        "ticsim://LINKY?mode=standard&seed=3&corrupt=checksum=0.01&speed=50",
        baudrate=9600, bytesize=7, parity="E", timeout=1)

URL: ``ticsim://FAMILY[?param=value&...]``, family in the host part (CBEMM, CBEMM-ICC, CBETM,
CJE, ICE, ICE-4Q, PME-PMI, LINKY; case-insensitive). Parameters:

    mode     historic | standard (LINKY only)
    seed     integer seed of the meter (default 0)
    baud     the meter's line speed (default: the family's)
    sep      SP | HT (separator; default: the family's)
    corrupt  corruption spec, e.g. checksum=0.05,lost=0.01 (see ``sim.meters.Corruption``)
    speed    time multiplier of the line (default 1 = real time)
    serial   12-digit address override
    tariff   BASE | HC | EJP | TEMPO (historic and Linky meters)
    phases   1 | 3 (Linky)
    start    simulated start time, ISO format (2025-01-15T21:58:00)

Bytes appear at the meter's line rate times ``speed``, from the moment the port is opened.
The port's own settings are compared with the meter's at each read: baudrate, 7 data bits and
even parity give the frames; 8N1 at the right speed gives the 8-bit view (parity in bit 7);
anything else gives garbage (``sim.meters.LineView``). Writes are accepted and ignored.
"""
from __future__ import annotations

import time
import urllib.parse
from datetime import datetime

from serial.serialutil import (PARITY_EVEN, PARITY_NONE, PARITY_ODD, SEVENBITS, EIGHTBITS,
                               PortNotOpenError, SerialBase, SerialException)

from .meters import Corruption, LinePacer, LineView, make_meter

#: Bytes kept when nobody reads (a UART driver's buffer), at least one second of line time;
#: older bytes are dropped and counted in ``overruns``.
MAX_BUFFER = 4096

_PARITY = {PARITY_EVEN: "E", PARITY_ODD: "O", PARITY_NONE: "N"}


def parse_url(url: str) -> tuple[dict, float]:
    """The ``make_meter`` keywords and the speed encoded in a ``ticsim://`` URL."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() != "ticsim":
        raise SerialException('expected a string in the form "ticsim://FAMILY[?options]": not '
                              'starting with ticsim:// (%r)' % parts.scheme)
    family = urllib.parse.unquote(parts.netloc or parts.path.lstrip("/")).strip()
    if not family:
        raise SerialException("ticsim:// needs a meter family, e.g. ticsim://LINKY")
    kw: dict = {"family": family}
    speed = 1.0
    try:
        for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
            name = name.lower()
            if name == "mode":
                kw["mode"] = value.lower() or None
            elif name == "seed":
                kw["seed"] = int(value)
            elif name == "baud":
                kw["baud"] = int(value)
            elif name == "sep":
                kw["separator"] = value.upper()
            elif name == "corrupt":
                kw["corruption"] = Corruption.parse(value)
            elif name == "speed":
                speed = float(value)
                if speed <= 0:
                    raise ValueError("speed must be > 0")
            elif name == "serial":
                kw["serial"] = value
            elif name == "tariff":
                kw["tariff"] = value.upper()
            elif name == "phases":
                kw["phases"] = int(value)
            elif name == "start":
                kw["start"] = datetime.fromisoformat(value)
            else:
                raise ValueError("unknown option %r" % name)
    except ValueError as e:
        raise SerialException('expected a string in the form "ticsim://FAMILY[?options]": %s'
                              % e) from e
    return kw, speed


class Serial(SerialBase):
    """A simulated meter behind pyserial's API (read-only line)."""

    def open(self) -> None:
        if self._port is None:
            raise SerialException("Port must be configured before it can be used.")
        if self.is_open:
            raise SerialException("Port is already open.")
        self.from_url(self.portstr)
        self.is_open = True
        self._buf = bytearray()
        self.overruns = 0
        self.pacer.restart(time.monotonic())

    def from_url(self, url: str) -> None:
        kw, speed = parse_url(url)
        family = kw.pop("family")
        mode = kw.pop("mode", None)
        seed = kw.pop("seed", 0)
        try:
            self.meter = make_meter(family, mode, seed, **kw)
        except ValueError as e:
            raise SerialException("ticsim: %s" % e) from e
        self.pacer = LinePacer(self.meter, speed=speed)
        self.view = LineView(self.meter.baud, self.meter.seed)

    def close(self) -> None:
        self.is_open = False

    def _reconfigure_port(self, force_update: bool = False) -> None:
        """Nothing to do: the settings are read at each read."""

    # -- input ---------------------------------------------------------------------------------
    def _pump(self) -> None:
        data = self.pacer.take(time.monotonic())
        if not data:
            return
        parity = _PARITY.get(self._parity, "?")
        size = {SEVENBITS: 7, EIGHTBITS: 8}.get(self._bytesize, self._bytesize)
        self._buf += self.view.view(data, self._baudrate, size, parity)
        cap = max(MAX_BUFFER, int(self.pacer.rate))
        if len(self._buf) > cap:
            extra = len(self._buf) - cap
            self.overruns += extra
            del self._buf[:extra]

    @property
    def in_waiting(self) -> int:
        if not self.is_open:
            raise PortNotOpenError()
        self._pump()
        return len(self._buf)

    def read(self, size: int = 1) -> bytes:
        if not self.is_open:
            raise PortNotOpenError()
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        while True:
            self._pump()
            if len(self._buf) >= size:
                break
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            wait = min(self.pacer.seconds_for(size - len(self._buf)), 0.05)
            if deadline is not None:
                wait = min(wait, deadline - now)
            time.sleep(max(wait, 0.0005))   # pacing: the line produces bytes over time
        data = bytes(self._buf[:size])
        del self._buf[:size]
        return data

    def reset_input_buffer(self) -> None:
        if not self.is_open:
            raise PortNotOpenError()
        self._pump()
        self._buf.clear()

    # -- output (ignored: a TIC line is one-way) ---------------------------------------------------
    def write(self, data) -> int:
        if not self.is_open:
            raise PortNotOpenError()
        return len(memoryview(data).tobytes())

    def reset_output_buffer(self) -> None:
        if not self.is_open:
            raise PortNotOpenError()

    @property
    def out_waiting(self) -> int:
        return 0

    # modem lines: a TIC interface has none; report a quiet line
    @property
    def cts(self) -> bool:
        return True

    @property
    def dsr(self) -> bool:
        return True

    @property
    def ri(self) -> bool:
        return False

    @property
    def cd(self) -> bool:
        return True

    def _update_dtr_state(self) -> None:
        pass

    def _update_rts_state(self) -> None:
        pass

    def _update_break_state(self) -> None:
        pass
