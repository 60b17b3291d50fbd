"""The worker of one TIC input: everything that blocks on its serial line, one job at a time.

It decides nothing: the input's machine (statecharts/tic_input.py) asks for a job and the job
reports facts back to the loop.

- ``open``: open the port at the meters' line settings (7E1; the speed being probed or fixed).
  Outcome: nothing (opened) or the exception.
- ``probe``: try the line speeds (9600, then 1200, then 19200 baud for CJE/ICE meters whose
  speed is not confirmed; only the configured one when fixed) and keep the first that yields two
  frames whose groups all verify; identify the family and serial number from them (manual
  10.3.1). Outcome: a :class:`Detection`, None (no meter), or the line's exception.
- ``stream``: read frames until cancelled: each frame is reported as it is decoded, the
  decoder's counters every few seconds. Lines with a file descriptor are read by the shared
  :class:`LinePoller` (one thread for every line); the others (pyserial URL handlers) by this
  worker. Outcome: the line's exception when it fails (unplugged...).
- ``close``.

The port is opened with ``opener`` (``serial.serial_for_url`` unless a test or a service gives
another).
"""
from __future__ import annotations

import logging
import termios
import threading
import time
from dataclasses import dataclass, field

import serial

from services.runtime import Worker
from tic.codec import AUTO, FrameDecoder
from tic.families import Identity, identify

log = logging.getLogger("acquisition.line")

PROBE_BAUDS = (9600, 1200, 19200)
MAX_PROBE_FACTOR = 8
STATS_PERIOD = 5.0
#: After a chunk that does not end a frame, wait this long for more bytes before reading again.
BATCH_WAIT = 0.01


@dataclass
class Detection:
    """What detection found on an input: the manual's Type / Description / Détails."""

    identity: Identity
    baud: int
    labels: list[str] = field(default_factory=list)       # in the order the meter sends them
    values: dict[str, str] = field(default_factory=dict)  # the table shown by *Détails*
    frames: int = 0

    def to_dict(self) -> dict:
        d = self.identity.to_dict()
        d.update(baud=self.baud, labels=self.labels, values=self.values, frames=self.frames)
        return d


def probe_window(baud: int) -> float:
    """Long enough to see two whole frames: ~1.5 s apart at 1200 bd, ~1 s at 9600."""
    return 4.5 if baud <= 1200 else 3.0


def max_probe_seconds(bauds, scale: float = 1.0) -> float:
    """The longest a probe of ``bauds`` may take (a long frame may extend each window)."""
    return sum(probe_window(b) * MAX_PROBE_FACTOR for b in bauds) * scale + 5.0


class LineError(Exception):
    """The line failed (unplugged, closed under us): close it and open it again."""


class Line:
    def __init__(self, loop, index: int, url: str, mode: str = AUTO, baud="auto",
                 opener=serial.serial_for_url, poller=None, probe_scale: float = 1.0):
        self.index = index
        self.url = url
        self.mode = mode
        self.fixed_baud = None if str(baud) == "auto" else int(baud)
        self.opener = opener
        self.poller = poller
        self.probe_scale = probe_scale
        self.baud: int = self.fixed_baud or PROBE_BAUDS[0]
        self.port = None                    # touched in the worker thread only
        self.worker = Worker(loop, "TIC%d-line" % index)

    @property
    def bauds(self) -> tuple:
        return (self.fixed_baud,) if self.fixed_baud else PROBE_BAUDS

    # --- from the loop ------------------------------------------------------------------------

    def open(self, on_done) -> None:
        self.worker.submit(self._open, on_done=on_done, replace=True, name="open")

    def probe(self, on_done) -> None:
        self.worker.submit(self._probe, on_done=on_done, replace=True, name="probe")

    def stream(self, on_frame, on_stats, on_done) -> None:
        self.worker.submit(self._stream, on_frame, on_stats, on_done=on_done, replace=True,
                           name="stream")

    def close(self) -> None:
        self.worker.submit(self._close, replace=True, name="close")

    def stop(self, timeout: float = 1.0) -> None:
        self.worker.cancel()
        self.worker.submit(self._close, name="close")
        self.worker.drain(timeout)

    # --- jobs (in the worker) -------------------------------------------------------------------

    def _open(self, job) -> None:
        self._close(job)
        port = self.opener(self.url, do_not_open=True)
        port.baudrate = self.baud
        port.bytesize = serial.SEVENBITS
        port.parity = serial.PARITY_EVEN
        port.stopbits = serial.STOPBITS_ONE
        port.timeout = 0.2
        port.open()
        _report_parity_errors_as_nul(port)
        self.port = port

    def _close(self, job) -> None:
        port, self.port = self.port, None
        if port is not None:
            try:
                port.close()
            except Exception:
                pass

    def _need_port(self):
        if self.port is None:
            raise LineError("the port is not open")
        return self.port

    def _probe(self, job) -> Detection | None:
        port = self._need_port()
        job.on_cancel(lambda: _cancel_read(port))
        try:
            for baud in self.bauds:
                job.check()
                result = self._probe_at(job, port, baud)
                if result is not None:
                    self.baud = baud
                    return result
            self.baud = self.fixed_baud or PROBE_BAUDS[0]
            _set_baud(port, self.baud)
            return None
        except LINE_ERRORS as e:
            raise LineError(str(e)) from e

    def _probe_at(self, job, port, baud: int) -> Detection | None:
        _set_baud(port, baud)
        port.reset_input_buffer()
        decoder = FrameDecoder(mode=self.mode)
        start = time.monotonic()
        window = probe_window(baud) * self.probe_scale
        good = []
        while not job.cancelled:
            elapsed = time.monotonic() - start
            # A long frame (an ICE sends ~100 groups) may need more than the window; the port may
            # also open just after a frame's start: listening goes on while a clean TIC stream
            # arrives (bytes, no line error, no bad group), up to MAX_PROBE_FACTOR windows.
            st = decoder.stats
            clean = st.bytes > 0 and st.line_errors == 0 and st.groups_bad == 0
            if elapsed > window and not (clean and elapsed < window * MAX_PROBE_FACTOR):
                break
            for frame in decoder.feed(_read_available(port)):
                if frame.ok:
                    good.append(frame)
            if len(good) >= 2:
                break
        if not good:
            return None
        labels: list[str] = []
        values: dict[str, str] = {}
        for frame in good:
            for label, value in frame.values().items():
                if label not in values:
                    labels.append(label)
                    values[label] = value
        return Detection(identify(values, good[0].mode), baud, labels, values, len(good))

    def _stream(self, job, on_frame, on_stats) -> None:
        port = self._need_port()
        decoder = FrameDecoder(mode=self.mode)
        fd = _fileno(port) if self.poller is not None else None
        try:
            if fd is not None:
                self._stream_polled(job, fd, decoder, on_frame, on_stats)
            else:
                self._stream_read(job, port, decoder, on_frame, on_stats)
        except LINE_ERRORS as e:
            raise LineError(str(e)) from e

    def _stream_polled(self, job, fd: int, decoder, on_frame, on_stats) -> None:
        failed: list = []
        wake = threading.Event()

        def feed(data: bytes) -> None:            # in the poller's thread
            for frame in decoder.feed(data):
                job.report(on_frame, frame)

        def error(exc: Exception) -> None:         # in the poller's thread
            failed.append(exc)
            wake.set()

        job.on_cancel(wake.set)
        self.poller.add(fd, feed, error)
        try:
            while not job.cancelled:
                wake.wait(STATS_PERIOD)
                if failed:
                    raise LineError(str(failed[0]))
                job.report(on_stats, decoder.stats.to_dict())
        finally:
            self.poller.remove(fd)

    def _stream_read(self, job, port, decoder, on_frame, on_stats) -> None:
        job.on_cancel(lambda: _cancel_read(port))
        last_stats = time.monotonic()
        while not job.cancelled:
            for frame in decoder.feed(_read_available(port)):
                job.report(on_frame, frame)
            if time.monotonic() - last_stats >= STATS_PERIOD:
                last_stats = time.monotonic()
                job.report(on_stats, decoder.stats.to_dict())


#: What a failing line raises (termios.error is not an OSError).
LINE_ERRORS = (serial.SerialException, OSError, termios.error)


def _set_baud(port, baud: int) -> None:
    """Change the speed only when it differs: pyserial reconfigures the whole port on every
    assignment, and some ptys refuse a reconfiguration with EINVAL."""
    if port.baudrate != baud:
        port.baudrate = baud


def _cancel_read(port) -> None:
    try:
        port.cancel_read()
    except Exception:
        pass


def _fileno(port) -> int | None:
    """The line's descriptor, when it has one the poller can wait on."""
    try:
        fd = port.fileno()
    except (AttributeError, NotImplementedError, OSError, serial.SerialException):
        return None
    return fd if isinstance(fd, int) and fd >= 0 else None


def _read_available(port) -> bytes:
    """What the line holds now: block for the first byte (up to the port's timeout), then take
    everything already received."""
    data = port.read(1)
    if not data:
        return data
    waiting = port.in_waiting
    if waiting:
        data += port.read(waiting)
    if data[-1] not in (0x03, 0x04):
        time.sleep(BATCH_WAIT)
        waiting = port.in_waiting
        if waiting:
            data += port.read(waiting)
    return data


def _report_parity_errors_as_nul(port) -> None:
    """pyserial clears INPCK, so a byte received with a parity error passes unchanged; turn
    parity checking on (INPCK, IGNPAR and PARMRK off) so the kernel delivers it as NUL, which the
    decoder counts as a line error. Ports without a termios fd (URL handlers, ptys that refuse
    the change) are left as they are."""
    fd = getattr(port, "fd", None)
    if fd is None:
        return
    try:
        import termios
        attrs = termios.tcgetattr(fd)
        attrs[0] = (attrs[0] | termios.INPCK) & ~(termios.IGNPAR | termios.PARMRK | termios.ISTRIP)
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
    except (ImportError, OSError, termios.error):
        pass
