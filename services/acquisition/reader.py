"""One worker thread per TIC input: open the line, detect the meter, read frames, survive unplugs.

Everything blocking (opening the port, reading it, probing speeds) happens here, off the service's
loop; the thread reports back through `report(kind, payload)`, which the service wraps so that the
call runs on its loop. Kinds: "opened", "open_failed", "closed", "detecting", "detected",
"no_meter", "frame", "stats".

Detection (manual 10.3.1, issue 3): probe 9600 then 1200 baud, 7 data bits, even parity, one
stop bit (plus 19200 for CJE/ICE meters, whose speed is not confirmed), and keep the first speed
that yields a whole frame whose groups all verify; then identify the family and serial number from
the frames read. A configured speed or mode skips the probing of the other ones.

After an unplug or a read error the port is closed and reopened with a capped backoff, and each
step is reported: peers' users have to replug or restart by hand; this reader says what happens
and recovers on its own.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import serial

from tic.codec import AUTO, FrameDecoder
from tic.families import Identity, identify

log = logging.getLogger("acquisition.reader")

PROBE_BAUDS = (9600, 1200, 19200)
BACKOFF = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
MAX_PROBE_FACTOR = 8


def register_url_handlers() -> None:
    """Let serial_for_url open ticsim:// (simulated meters) like any port."""
    try:
        import sim
        sim.register()
    except ImportError:  # a gateway installed without the simulators
        pass


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


class InputReader(threading.Thread):
    def __init__(self, index: int, url: str, report, mode: str = AUTO, baud: str | int = "auto",
                 opener=serial.serial_for_url, probe_scale: float = 1.0,
                 redetect_after: float = 60.0, clock=time.monotonic, poller=None):
        super().__init__(name="TIC%d-reader" % index, daemon=True)
        self.index = index
        self.url = url
        self.report = report
        self.mode = mode
        self.fixed_baud = None if str(baud) == "auto" else int(baud)
        self.opener = opener
        self.probe_scale = probe_scale          # tests with fast simulators shorten the probes
        self.redetect_after = redetect_after
        self.clock = clock
        self.baud: int | None = self.fixed_baud
        self._halt = threading.Event()
        self._detect = threading.Event()        # set at each (re)open: manual 10.3.1 detects
                                                # at start-up, and a replugged line may hold
                                                # another meter
        self._port = None
        self.decoder = FrameDecoder(mode=mode)
        self.poller = poller                    # reads lines that have a descriptor
        self._wake = threading.Event()          # detection asked, line error, stop
        self._line_error: Exception | None = None
        self._last_valid = clock()

    # --- control, from the loop thread ---------------------------------------------------

    def request_detection(self) -> None:
        self._detect.set()
        self._wake.set()

    def stop(self) -> None:
        self._halt.set()
        self._wake.set()
        port = self._port
        if port is not None:
            try:
                port.cancel_read()
            except Exception:
                pass

    # --- the thread ------------------------------------------------------------------------

    def run(self) -> None:
        failures = 0
        while not self._halt.is_set():
            try:
                self._port = self._open(self.baud or PROBE_BAUDS[0])
            except (serial.SerialException, OSError, ValueError) as e:
                delay = BACKOFF[min(failures, len(BACKOFF) - 1)]
                failures += 1
                self.report("open_failed", {"error": str(e), "retry_in": delay,
                                            "attempt": failures})
                self._halt.wait(delay)
                continue
            failures = 0
            self._detect.set()
            self.report("opened", {"port": self.url})
            try:
                self._serve()
            except (serial.SerialException, OSError) as e:
                self.report("closed", {"error": str(e)})
            finally:
                self._close()
            if not self._halt.is_set():
                self._halt.wait(BACKOFF[0])
        self.report("stopped", {})

    def _open(self, baud: int):
        port = self.opener(self.url, do_not_open=True)
        port.baudrate = baud
        port.bytesize = serial.SEVENBITS
        port.parity = serial.PARITY_EVEN
        port.stopbits = serial.STOPBITS_ONE
        port.timeout = 0.2
        port.open()
        _report_parity_errors_as_nul(port)
        return port

    def _close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except Exception:
                pass

    def _serve(self) -> None:
        fd = _fileno(self._port) if self.poller is not None else None
        if fd is not None:
            return self._serve_polled(fd)
        last_valid = self.clock()
        last_stats = self.clock()
        while not self._halt.is_set():
            if self._detect.is_set():
                self._detect.clear()
                if not self._run_detection():
                    continue
                last_valid = self.clock()
            data = _read_available(self._port)
            if data:
                for frame in self.decoder.feed(data):
                    if frame.complete and frame.n_bad < len(frame.groups):
                        last_valid = self.clock()
                    self.report("frame", frame)
            now = self.clock()
            if now - last_stats >= 5.0:
                last_stats = now
                self.report("stats", self.decoder.stats.to_dict())
            if now - last_valid > self.redetect_after:
                # A meter switched between historic and standard changes speed: probe again.
                log.info("TIC%d: no valid frame for %.0f s, probing line speeds again",
                         self.index, now - last_valid)
                self._detect.set()

    def _serve_polled(self, fd: int) -> None:
        """Steady reading by the shared poller; this thread only handles detection, errors,
        counters and silence."""
        last_stats = self._last_valid = self.clock()
        self._line_error = None
        while not self._halt.is_set():
            if self._detect.is_set():
                self._detect.clear()
                self.poller.remove(fd)
                if not self._run_detection():
                    continue
                self._last_valid = self.clock()
                self._wake.clear()
                self.poller.add(fd, self._feed, self._on_line_error)
            self._wake.wait(1.0)
            self._wake.clear()
            if self._line_error is not None:
                self.poller.remove(fd)
                raise serial.SerialException(str(self._line_error))
            now = self.clock()
            if now - last_stats >= 5.0:
                last_stats = now
                self.report("stats", self.decoder.stats.to_dict())
            if now - self._last_valid > self.redetect_after:
                log.info("TIC%d: no valid frame for %.0f s, probing the line again",
                         self.index, now - self._last_valid)
                self._detect.set()
        self.poller.remove(fd)

    def _feed(self, data: bytes) -> None:
        """In the poller thread: decode and report."""
        for frame in self.decoder.feed(data):
            if frame.complete and frame.n_bad < frame.n_groups:
                self._last_valid = self.clock()
            self.report("frame", frame)

    def _on_line_error(self, exc: Exception) -> None:
        self._line_error = exc
        self._wake.set()

    def _run_detection(self) -> bool:
        bauds = (self.fixed_baud,) if self.fixed_baud else PROBE_BAUDS
        self.report("detecting", {"bauds": list(bauds)})
        for baud in bauds:
            if self._halt.is_set():
                return False
            result = self._probe(baud)
            if result is not None:
                self.baud = baud
                self.report("detected", result)
                return True
        self.report("no_meter", {"bauds": list(bauds)})
        self.baud = self.fixed_baud or PROBE_BAUDS[0]
        self._port.baudrate = self.baud
        return True

    def _probe(self, baud: int) -> Detection | None:
        port = self._port
        port.baudrate = baud
        port.reset_input_buffer()
        decoder = FrameDecoder(mode=self.mode)
        start = self.clock()
        window = probe_window(baud) * self.probe_scale
        good = []
        while not self._halt.is_set():
            now = self.clock()
            # A long frame (an ICE sends ~100 groups) may need more than the window: keep
            # listening while a clean frame is arriving, up to MAX_PROBE_FACTOR windows.
            # The port may also open just after a frame's start, and a long frame then takes
            # most of the window to end: listening goes on while a clean TIC stream arrives
            # (bytes, no line error, no bad group).
            st = decoder.stats
            clean_stream = st.bytes > 0 and st.line_errors == 0 and st.groups_bad == 0
            if now - start > window and not (clean_stream and
                                             now - start < window * MAX_PROBE_FACTOR):
                break
            data = _read_available(port)
            for frame in decoder.feed(data):
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
        self.decoder = FrameDecoder(mode=self.mode)
        return Detection(identify(values, good[0].mode), baud, labels, values, len(good))


#: After a chunk that does not end a frame, wait this long for more bytes before reading again,
#: so a thread wakes ~100 times a second at most instead of once per byte (100 inputs at line rate
#: stay cheap). A chunk that ends with ETX is decoded at once: the frame's latency stays low.
BATCH_WAIT = 0.01


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
