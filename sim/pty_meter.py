"""Serve a simulated meter on a pseudo-terminal, at line rate, with the family's line settings.

The slave side is what a reader opens (``serial.Serial(path, 1200, bytesize=7, parity="E")``).
The simulator keeps its own slave fd open, so a reader closing and reopening the port never
makes the master fail with EIO. ``link=`` publishes the slave under a stable path (a symlink)
so tests can unplug (close the pty, remove the link) and replug (new pty, same link).

Reader settings: before each chunk the writer reads the slave's termios. A reader whose speed
differs from the meter's baud, or that asks for odd parity, gets what a UART at those settings
would see: garbage (``LineView``). Linux ptys force CS8 and clear PARENB in the stored termios
whatever the reader asks (pty_set_termios), so on a pty only the speed and PARODD are
observable: a 7E1 and an 8N1 reader at the right speed both get the 7-bit bytes. The
``ticsim://`` URL handler, which sees pyserial's settings directly, honours all of them.

Reopening: a Linux pty coerces CS7/PARENB away, and (seen on kernel 6.18) a tcsetattr whose
request changes nothing after that coercion fails with EINVAL, so a second pyserial open of the
same pty at 7E1 would fail. The writer therefore keeps CLOCAL cleared on the slave (pyserial
always sets it), which makes every reader's configuration a real change. CLOCAL has no effect
on a pty's data path. The writer re-clears it every ``tick`` (5 ms), so a reader that closes
and reopens the same pty within one tick may still get EINVAL from the reopen.

Writes never block: the master is non-blocking and polled with select; when the slave's input
queue is full (nobody reading), what does not fit is dropped and counted. The queue is not
flushed by the simulator (that would race with a reader between its select and its read);
pyserial flushes it when it opens the port, a raw reader sees up to a queue of old bytes.
"""
from __future__ import annotations

import errno
import logging
import os
import select
import termios
import threading
import time
from dataclasses import dataclass

from .meters import LinePacer, LineView, Meter
from .pty_port import PtyPort

log = logging.getLogger(__name__)

_BAUDS = (50, 75, 110, 134, 150, 200, 300, 600, 1200, 1800, 2400, 4800, 9600, 19200, 38400,
          57600, 115200, 230400)
SPEED_CONST = {b: getattr(termios, "B%d" % b) for b in _BAUDS if hasattr(termios, "B%d" % b)}
BAUD_OF_CONST = {v: k for k, v in SPEED_CONST.items()}


@dataclass
class PtyStats:
    chunks: int = 0
    bytes_written: int = 0
    bytes_dropped: int = 0
    full: int = 0            # chunks that did not fit whole (slave queue full)
    garbage_chunks: int = 0
    plugs: int = 0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def reader_settings(fd: int) -> tuple[int | None, int, str]:
    """(baud, bytesize, parity) as stored in a tty's termios."""
    attrs = termios.tcgetattr(fd)
    cflag = attrs[2]
    size = {termios.CS5: 5, termios.CS6: 6, termios.CS7: 7, termios.CS8: 8}[cflag & termios.CSIZE]
    if cflag & termios.PARODD:
        parity = "O"
    elif cflag & termios.PARENB:
        parity = "E"
    else:
        parity = "N"
    return BAUD_OF_CONST.get(attrs[4]), size, parity


class PtyMeter:
    """A meter served on a pty by a writer thread.

    ``speed`` multiplies the line rate (1 = real time: 1200 bd is 120 bytes/s for 7E1).
    ``path`` is the link if given, else the slave device name.
    """

    def __init__(self, meter: Meter, link: str | None = None, speed: float = 1.0,
                 tick: float = 0.005):
        self.meter = meter
        self.link = link
        self._port = PtyPort(link)
        self.speed = speed
        self.tick = tick
        self.pacer = LinePacer(meter, speed=speed)
        self.view = LineView(meter.baud, meter.seed)
        self.stats = PtyStats()
        self.master: int | None = None
        self.slave: int | None = None
        self.slave_name: str | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._muted = threading.Event()
        self._lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------------------------
    @property
    def path(self) -> str:
        return self._port.path

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> "PtyMeter":
        with self._lock:
            if self.running:
                return self
            self._open()
            self._stop.clear()
            self.pacer.restart(time.monotonic())
            self._thread = threading.Thread(target=self._run, name="pty-meter-%s"
                                            % self.meter.family, daemon=True)
            self._thread.start()
            self.stats.plugs += 1
        return self

    def stop(self) -> None:
        """Stop writing, close the pty and remove the link (an "unplug")."""
        with self._lock:
            self._stop.set()
            if self._thread is not None:
                self._thread.join(timeout=5.0)
                self._thread = None
            self._close()

    unplug = stop

    def mute(self) -> None:
        """The meter stops talking while the line stays plugged (a cut wire on the meter's
        side): nothing is written until :meth:`unmute`; its clock goes on."""
        self._muted.set()

    def unmute(self) -> None:
        self._muted.clear()

    def replug(self) -> "PtyMeter":
        """A new pty behind the same link path; the meter carries on where it was."""
        self.stop()
        return self.start()

    def __enter__(self) -> "PtyMeter":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- pty -----------------------------------------------------------------------------------
    def _open(self) -> None:
        self._port.open(self._line_settings)
        self.master, self.slave, self.slave_name = (self._port.master, self._port.slave,
                                                    self._port.slave_name)
        log.info("meter %s on %s", self.meter.describe(), self.path)

    def _line_settings(self, slave: int) -> None:
        attrs = termios.tcgetattr(slave)
        # the meter's own settings, so a reader that does not configure the port reads frames
        attrs[2] = (attrs[2] & ~(termios.CSIZE | termios.PARODD | termios.CSTOPB
                                 | termios.CLOCAL)) | termios.CS7 | termios.PARENB | termios.CREAD
        const = SPEED_CONST.get(self.meter.baud)
        if const is not None:
            attrs[4] = attrs[5] = const
        termios.tcsetattr(slave, termios.TCSANOW, attrs)

    def _close(self) -> None:
        self._port.close()
        self.master = self.slave = None

    # -- writer ----------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            data = self.pacer.take(time.monotonic())
            try:
                self._clear_clocal()
                if data and not self._muted.is_set():
                    self._send(data)
            except (OSError, termios.error) as e:  # the pty went away under us: stop quietly
                log.warning("pty write failed: %s", e)
                return
            self._stop.wait(self.tick)

    def _clear_clocal(self) -> None:
        """Keep CLOCAL off so the next reader's tcsetattr is never a no-op (see module doc)."""
        assert self.slave is not None
        attrs = termios.tcgetattr(self.slave)
        if attrs[2] & termios.CLOCAL:
            attrs[2] &= ~termios.CLOCAL
            termios.tcsetattr(self.slave, termios.TCSANOW, attrs)

    def _send(self, data: bytes) -> None:
        assert self.master is not None and self.slave is not None
        baud, size, parity = reader_settings(self.slave)
        # ptys do not keep CS7/PARENB (see module doc): only speed and odd parity are judged
        if size == 8 and parity == "N":
            size, parity = 7, "E"
        out = self.view.view(data, baud, size, parity)
        if out is not data:
            self.stats.garbage_chunks += 1
        self.stats.chunks += 1
        n = self._write(out)
        if n < len(out):
            self.stats.full += 1
        self.stats.bytes_written += n
        self.stats.bytes_dropped += len(out) - n

    def _write(self, data: bytes) -> int:
        if not data:
            return 0
        _, writable, _ = select.select([], [self.master], [], 0.05)
        if not writable:
            return 0
        try:
            return os.write(self.master, data)
        except BlockingIOError:
            return 0
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EIO):
                return 0
            raise


def serve(meter: Meter, link: str | None = None, speed: float = 1.0) -> PtyMeter:
    """Start serving ``meter`` on a new pty; the caller stops it."""
    return PtyMeter(meter, link=link, speed=speed).start()
