"""A real NTP server for tests: Debian's ``chronyd``, whose clock a test can step at run time.

Using it in an end-to-end clock-step test
-----------------------------------------
::

    from chrony import ChronyServer              # tests/ is on sys.path, as for gateway_helpers

    with ChronyServer() as ntp:                  # answers NTP on 127.0.0.1:<free port>
        configure(data, ports, NTP_Server1=ntp.address, NTP_Server2="", ...)  # sim.gateway
        ...start the broker, acquisition and uplink; let a first connection sync (offset ~0)...
        ntp.step(+3600)                          # the server's clock jumps one hour ahead
        ...ask the uplink to connect (``call uplink connect``); after its NTP phase
        ``<data>/state/clock_offset`` holds ~3600 and every service stamps records one hour
        ahead (GatewayClock re-reads the file at most once a second)...
        ntp.set_offset(-1800)                    # then half an hour behind real time
        ...connect again, check the stamps go back...

Only the server's clock is faked: the gateway's processes keep the real system time and learn the
difference from NTP, as they would in the field. ``ntp.measure()`` tells what the server serves
right now (server minus local time, from an NTP exchange that does not use the code under test).
A test can start several servers at once (e.g. a dead ``NTP_Server1`` and a live
``NTP_Server2``): each has its own port and temporary directory.

How it works
------------
``chronyd -d -x -U -f <dir>/chrony.conf`` runs in the foreground (``-d``, logging to
``<dir>/chronyd.log``), never touches the system clock (``-x``), and serves its own clock as a
stratum-1 source (``local stratum 1``) to 127.0.0.1 only. Every path it uses (pid file, drift
file, no command socket) is in its own directory. It runs under libfaketime (``LD_PRELOAD``) with
``FAKETIME_TIMESTAMP_FILE`` pointing at ``<dir>/offset``, read again on every clock reading
(``FAKETIME_NO_CACHE=1``): :meth:`ChronyServer.step` and :meth:`ChronyServer.set_offset` rewrite
that file (atomically). Only the wall clock is shifted (``FAKETIME_DONT_FAKE_MONOTONIC=1``).

Measured with chrony 4.3 and libfaketime 0.9.10 (Debian 12):

- chronyd answers about 50 ms after it is started (:meth:`start` returns in about 0.1 s),
  already synchronised (leap indicator 0, stratum 1): ``local stratum 1`` needs no
  ``orphan``/``manual`` and no settling time.
- After a step the served time follows on the very next request, forward and back, with no
  window of "unsynchronised" replies (200 random steps of up to 400 days, each checked by the
  first request after it: worst error under 0.1 ms). chronyd logs ``Backward time jump
  detected!`` for a step back (a step forward while it sleeps looks like a long sleep and is not
  even logged), and its local reference stays valid, so it keeps answering leap 0 / stratum 1.
  The receive and transmit timestamps in its replies are both shifted. ``makestep`` is
  irrelevant with ``-x``. :meth:`set_offset` still checks by default (``wait=True``) that the
  new offset is served before it returns.
- chronyd 4.3 refuses to start as non-root ("Not superuser") unless given ``-U``; with ``-U`` and
  ``user <current user>`` it runs as any user (it binds an unprivileged port).

If the parent thread that started chronyd dies (even by SIGKILL), chronyd gets SIGTERM
(``setpriv --pdeathsig``), so an interrupted test run leaves no daemon behind. Start the server
from the thread that lives as long as it should (the test's, or a fixture's).
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import ntplib

__all__ = ["ChronyServer", "ChronyError", "find_libfaketime", "find_chronyd"]

LIBFAKETIME_GLOBS = (
    "/usr/lib/*/faketime/libfaketime.so.1",  # Debian, Ubuntu (multiarch)
    "/usr/lib*/faketime/libfaketime.so.1",  # Fedora, Arch
    "/usr/local/lib*/faketime/libfaketime.so.1",  # built from source
)


class ChronyError(RuntimeError):
    """chronyd could not be started, or does not serve what it should (the message has its log)."""


def find_libfaketime() -> str:
    for pattern in LIBFAKETIME_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    raise ChronyError("libfaketime not found (%s); install the Debian package 'faketime'"
                      % ", ".join(LIBFAKETIME_GLOBS))


def find_chronyd() -> str:
    path = shutil.which("chronyd") or shutil.which("chronyd", path="/usr/sbin:/sbin")
    if not path:
        raise ChronyError("chronyd not found; install the Debian package 'chrony'")
    return path


def _free_udp_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _current_user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:  # a uid without a passwd entry (some containers)
        return str(os.geteuid())


class ChronyServer:
    """One chronyd serving its (faked) clock on ``host``:``port``.

    ``offset``: seconds added to the real time at start (the server is ahead when positive).
    ``directory``: where its files go (a fresh temporary directory, removed by :meth:`stop`, when
    None). ``start_timeout``: seconds :meth:`start` waits for a first good answer.
    """

    HOST = "127.0.0.1"
    #: Attempts at a free port (another process may take the one chosen before chronyd binds it).
    PORT_ATTEMPTS = 5

    def __init__(self, offset: float = 0.0, directory: str | os.PathLike | None = None,
                 start_timeout: float = 10.0):
        self._own_dir = directory is None
        self.dir = Path(directory) if directory is not None else None
        self.start_timeout = start_timeout
        self._offset = float(offset)
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self._log_text = ""

    # -- paths -----------------------------------------------------------------------------------

    @property
    def conf_path(self) -> Path:
        return self.dir / "chrony.conf"

    @property
    def log_path(self) -> Path:
        return self.dir / "chronyd.log"

    @property
    def offset_path(self) -> Path:
        return self.dir / "offset"

    @property
    def address(self) -> str:
        """``host:port``, as ``NTP_Server1`` holds it (services.uplink.ntp.parse_server)."""
        if self.port is None:
            raise ChronyError("chronyd is not started")
        return "%s:%d" % (self.HOST, self.port)

    # -- clock -----------------------------------------------------------------------------------

    @property
    def offset(self) -> float:
        """Seconds the server's clock is ahead of the real time (negative: behind)."""
        return self._offset

    def set_offset(self, seconds: float, wait: bool = True, tolerance: float = 0.5,
                   timeout: float = 5.0) -> None:
        """Put the server's clock ``seconds`` away from the real time. With ``wait``, return only
        once chronyd serves it (within ``tolerance``); it does on its next request."""
        self._offset = float(seconds)
        if self.dir is not None:
            self._write_offset()
        if wait and self.running:
            self._wait_serving(timeout, tolerance)

    def step(self, seconds: float, wait: bool = True, **kw) -> None:
        """Move the server's clock by ``seconds`` (forward when positive) from where it is."""
        self.set_offset(self._offset + seconds, wait=wait, **kw)

    def measure(self, timeout: float = 1.0) -> float:
        """The offset chronyd serves now (server minus local time), by one NTP exchange.

        Independent of services.uplink.ntp; raises ChronyError if the reply is not a good one."""
        stats = self._request(timeout)
        reason = self._bad_reply(stats)
        if reason:
            raise ChronyError("%s: %s\n%s" % (self.address, reason, self.describe()))
        return stats.offset

    # -- life cycle ------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> "ChronyServer":
        """Start chronyd and return once it gives a good NTP answer; raise ChronyError (with
        its configuration and log) if it does not within ``start_timeout``."""
        if self.running:
            raise ChronyError("chronyd is already running on %s" % self.address)
        chronyd, libfaketime = find_chronyd(), find_libfaketime()
        if self.dir is None:
            self.dir = Path(tempfile.mkdtemp(prefix="ticgw-chrony-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self._write_offset()
        for attempt in range(self.PORT_ATTEMPTS):
            self.port = _free_udp_port(self.HOST)
            self._write_conf()
            log_start = len(self.log())
            self._spawn(chronyd, libfaketime)
            try:
                self._wait_serving(self.start_timeout, None)
                return self
            except ChronyError:
                self._terminate()
                this_run = self.log()[log_start:]
                if "Could not open NTP socket" in this_run and attempt + 1 < self.PORT_ATTEMPTS:
                    continue  # the port was taken meanwhile: try another one
                self.stop()  # the error message already holds the configuration and the log
                raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Stop chronyd (SIGTERM, then SIGKILL) and remove its temporary directory. Idempotent;
        :meth:`log` still gives its log afterwards."""
        self._terminate()
        if self.dir is not None:
            self._log_text = self.log()
            if self._own_dir:
                shutil.rmtree(self.dir, ignore_errors=True)
                self.dir = None

    def __enter__(self) -> "ChronyServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log(self) -> str:
        if self.dir is not None and self.log_path.exists():
            return self.log_path.read_text(errors="replace")
        return self._log_text

    def describe(self) -> str:
        """Configuration, state and log, for a failure message."""
        has_conf = self.dir is not None and self.conf_path.exists()
        conf = self.conf_path.read_text() if has_conf else ""
        if self.running:
            state = "running, pid %d" % self.process.pid
        elif self.process is None:
            state = "never started"
        else:
            state = "exited with %s" % self.process.returncode
        return ("chronyd %s, offset %+.6f s\n--- chrony.conf ---\n%s--- chronyd log ---\n%s"
                % (state, self._offset, conf, self.log()))

    # -- internals -------------------------------------------------------------------------------

    def _write_offset(self) -> None:
        # libfaketime reads "+N" / "-N" (seconds, fractions allowed) as an offset from real time;
        # write then rename, so it never reads a half-written file.
        tmp = self.offset_path.with_suffix(".tmp")
        tmp.write_text("%+.6f\n" % self._offset)
        os.replace(tmp, self.offset_path)

    def _write_conf(self) -> None:
        d = self.dir
        self.conf_path.write_text("\n".join([
            "# Written by tests/chrony.py: a loopback NTP server serving its own (faked) clock.",
            "port %d" % self.port,
            "bindaddress %s" % self.HOST,
            "allow %s" % self.HOST,
            "local stratum 1",
            "cmdport 0",
            "bindcmdaddress /",
            "driftfile %s" % (d / "chronyd.drift"),
            "pidfile %s" % (d / "chronyd.pid"),
            "user %s" % _current_user(),
            "",
        ]))

    def _spawn(self, chronyd: str, libfaketime: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FAKETIME")}
        env.update(LD_PRELOAD=libfaketime, FAKETIME_TIMESTAMP_FILE=str(self.offset_path),
                   FAKETIME_NO_CACHE="1", FAKETIME_DONT_FAKE_MONOTONIC="1")
        cmd = [chronyd, "-d", "-x", "-U", "-f", str(self.conf_path)]
        setpriv = shutil.which("setpriv")
        if setpriv:
            cmd = [setpriv, "--pdeathsig", "TERM", "--"] + cmd
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, env=env, cwd=self.dir)

    def _terminate(self) -> None:
        p = self.process
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def _request(self, timeout: float) -> ntplib.NTPStats:
        try:
            return ntplib.NTPClient().request(self.HOST, version=4, port=self.port,
                                              timeout=timeout)
        except (ntplib.NTPException, OSError) as e:
            raise ChronyError("%s: no good answer (%s)\n%s" % (self.address, e, self.describe()))

    @staticmethod
    def _bad_reply(stats: ntplib.NTPStats) -> str | None:
        if stats.leap == 3:
            return "unsynchronised (leap indicator 3)"
        if not 1 <= stats.stratum <= 15:
            return "stratum %d" % stats.stratum
        return None

    def _wait_serving(self, timeout: float, tolerance: float | None) -> None:
        """Poll until a good answer (serving ``self.offset`` within ``tolerance`` unless None)."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            if not self.running:
                raise ChronyError("chronyd exited\n%s" % self.describe())
            try:
                stats = ntplib.NTPClient().request(self.HOST, version=4, port=self.port,
                                                   timeout=0.1)
            except (ntplib.NTPException, OSError) as e:
                last = "no answer (%s)" % e
            else:
                last = self._bad_reply(stats)
                if last is None and tolerance is not None \
                        and abs(stats.offset - self._offset) > tolerance:
                    last = "serves offset %+.3f s, expected %+.3f s" % (stats.offset, self._offset)
                if last is None:
                    return
            if time.monotonic() >= deadline:
                raise ChronyError("chronyd on %s: %s after %.1f s\n%s"
                                  % (self.address, last, timeout, self.describe()))
            time.sleep(0.01)
