"""The uplink's connection phases against real servers: what the phase tests share.

`Gateway` is a data dir with its configuration, spool, journal and clock, pointed at pyftpdlib
(sim.ftp_server.FtpTestServer on a free port) and a local SNTP responder; `Bus` stands in for the
other services. Outbox files are made by the acquisition's own Spool, so names and contents are
the real ones.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import os
import threading
from pathlib import Path

import pytest

from services.acquisition.spool import Spool
from services.runtime import CONFIG_SAVED_MESSAGE
from services.uplink import ntp
from services.uplink.ftp import FtpConnectError, FtpError
from services.uplink.phases import Connection
from ticgw import files
from sim.ftp_server import FtpTestServer
from sim.ntp_server import NtpResponder
from statecharts.connection import PHASES
from ticgw.clock import GatewayClock
from ticgw.config import ConfigStore
from ticgw.journal import Journal

MAC = "00:11:22:33:44:55"
SITE = "WEBDYN"
T0 = 1_714_564_800.0  # 2024-05-01 12:00:00 UTC
DEF_NAME = SITE + "_TIC_CBEMM-ICC.ini"
DEFINITION = (
    "# index;label;description;unit;action\n"
    "1;ADCO;Adresse du compteur;;1\n"
    "2;BASE;Index option base;Wh;4\n"
    "3;IINST;Intensite instantanee;A;8\n")
#: A short NTP timeout, so that "no server answers" costs a fraction of a second.
NTP_SYNC = functools.partial(ntp.sync, timeout=0.3)


# -- helpers -------------------------------------------------------------------------------------

class Wall:
    """A wall clock for the gateway that moves one second at each reading: every journal entry
    and every file name stamp differs, without waiting."""

    def __init__(self, t: float = T0):
        self.t = t
        self.step = 1.0         # 0: a clock that stands still
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            self.t += self.step
            return self.t


class Bus:
    """Stands in for the bus: records each call; seals the spool, writes parameters files."""

    def __init__(self, spool: Spool):
        self.spool = spool
        self.calls: list[tuple[str, str, dict]] = []
        self.fail: set[tuple[str, str]] = set()
        #: fixed answers, as another service would give them: (service, method) -> result
        self.answers: dict[tuple[str, str], dict] = {}

    def __call__(self, service, method, timeout=5.0, **params):
        self.calls.append((service, method, params))
        if (service, method) in self.fail:
            raise RuntimeError("%s.%s: no answer" % (service, method))
        if (service, method) in self.answers:
            return self.answers[service, method]
        if (service, method) == ("acquisition", "seal"):
            return {"files": [p.name for p in self.spool.seal()]}
        if (service, method) == ("acquisition", "params"):
            p = self.spool.write_parameters([(1, "021528603314", DEF_NAME, [(1, "021528603314")])])
            return {"file": p.name}
        return {}

    def methods(self) -> list[tuple[str, str]]:
        return [(s, m) for s, m, _ in self.calls]


class Gateway:
    """A data dir with its configuration, spool, journal and clock, pointed at the servers."""

    def __init__(self, root: Path, ftp: FtpTestServer, ntp_server: NtpResponder):
        self.root = root
        self.ftp = ftp
        self.ntp = ntp_server
        self.data = root / "data"
        self.state = self.data / "state"
        self.wall = Wall()
        self.store = ConfigStore(self.data)
        self.store.ensure_files()
        self.store.update({
            "FTP_Server": "127.0.0.1", "FTP_Port": str(ftp.port), "FTP_Login": ftp.user,
            "FTP_Password": ftp.password, "FTP_Timeout": "5",
            "NTP_Server1": ntp_server.address, "NTP_Server2": "",
        })
        self.clock = GatewayClock(self.state, wall=self.wall)
        self.journal = Journal(self.state, clock=self.clock.now)
        # as the service runtime does for every save (test_runtime.py), for the saves a
        # connection makes; the tests' own set-up saves (by="web") stay out of the journal
        self.store.on_change = lambda files, by: (
            self.journal(CONFIG_SAVED_MESSAGE) if by in ("server", "command") else None)
        self.spool = Spool(self.data, SITE, clock=self.wall)
        self.bus = Bus(self.spool)

    def connection(self, **kw) -> Connection:
        args = dict(settings=self.store.settings, store=self.store, data_dir=self.data,
                    journal=self.journal, clock=self.clock, bus_call=self.bus,
                    ntp_sync=NTP_SYNC, webservices=None, reason="test", ftp_factory=None,
                    check_config=True, mac=MAC)
        args.update(kw)
        return Connection(**args)

    # journal
    def messages(self) -> list[str]:
        return [row[2] for row in self.journal.tail(10_000)]

    def new_messages(self, since: int) -> list[str]:
        return self.messages()[since:]

    # outbox
    def outbox(self, kind: str) -> list[str]:
        d = self.data / "outbox" / kind
        return sorted(p.name for p in d.iterdir()) if d.is_dir() else []

    def data_file(self, n_rows: int = 2, at: float | None = None) -> Path:
        """One sealed data file (stamped `at`), made by the spool."""
        if at is not None:
            self.wall.t = at
        t0 = self.wall.t
        for i in range(n_rows):
            self.spool.append_record(1, "021528603314", DEF_NAME, t0 + i,
                                     ["%09d" % (1000 + i), "%03d" % i])
        self.wall.t = max(self.wall.t, t0 + n_rows)   # the meter's next rows come later
        made = self.spool.seal()
        (path,) = [p for p in made if p.parent.name == "DATA"]
        return path

    def alarm_file(self) -> Path:
        self.spool.append_alarm(self.wall.t, "TIC1", DEF_NAME, "IINST", 3, "012")
        made = self.spool.seal()
        (path,) = [p for p in made if p.parent.name == "ALARM"]
        return path

    def server_files(self, remote_dir: str) -> list[str]:
        return sorted(p.name for p in self.ftp.path(remote_dir).iterdir())


def run_connection(conn: Connection) -> dict[str, str]:
    """What the uplink service does: each phase in the machine's order, an FtpConnectError is
    "abort", another exception "failed"; stop at "abort"; then closing()."""
    outcomes = {}
    for phase in PHASES:
        try:
            outcome = getattr(conn, phase)()
        except FtpConnectError:
            outcome = "abort"
        except FtpError:
            outcome = "failed"
        outcomes[phase] = outcome
        if outcome == "abort":
            break
    conn.closing()
    return outcomes


def run_phase(conn: Connection, phase: str) -> str:
    try:
        return getattr(conn, phase)()
    except FtpConnectError:
        return "abort"


def gunzip_lines(path: Path) -> list[str]:
    return gzip.decompress(path.read_bytes()).decode().splitlines()


def stored(server: FtpTestServer) -> list[str]:
    """Remote paths of the STORs the server received, in order."""
    return [c.split(" ", 1)[1] for c in server.commands if c.upper().startswith("STOR ")]


def no_tmp_left(server: FtpTestServer) -> bool:
    return not [p for p in server.root.rglob("*") if p.name.endswith(".tmp")]


# -- fixtures ------------------------------------------------------------------------------------

@pytest.fixture
def ftp_server():
    with FtpTestServer() as srv:
        yield srv


@pytest.fixture
def ntp_server():
    with NtpResponder(offset=42.0) as r:
        yield r


@pytest.fixture
def gw(tmp_path, ftp_server, ntp_server):
    return Gateway(tmp_path, ftp_server, ntp_server)



def big_data_file(gw: Gateway, rows: int = 400) -> Path:
    """A data file of a few kilobytes even once gzipped (values that do not compress well)."""
    t0 = gw.wall.t
    for i in range(rows):
        gw.spool.append_record(1, "021528603314", DEF_NAME, t0 + i,
                               [hashlib.sha256(b"%d" % i).hexdigest()[:24], "%03d" % (i % 90)])
    gw.wall.t = max(gw.wall.t, t0 + rows)
    (path,) = [p for p in gw.spool.seal() if p.parent.name == "DATA"]
    assert path.stat().st_size > 4000
    return path


def outbox_data_file(gw: Gateway, at: float) -> Path:
    """A data file put in the outbox directly, named after ``at`` (files the spool would make
    in another order than their names)."""
    path = gw.data / "outbox" / "DATA" / files.data_name(SITE, files.name_stamp(at))
    path.parent.mkdir(parents=True, exist_ok=True)
    rec = {"input": 1, "serial": "021528603314", "def": DEF_NAME, "t": at, "seq": 1,
           "cols": ["000001000", "001"]}
    path.write_bytes(files.data_file([rec]))
    return path


def set_remote(server: FtpTestServer, remote: str, data: bytes, mtime: float | None = None):
    """Put a file on the server as an operator would; `mtime` pins its modification time (a
    change within the same second is seen by the gateway only through the size otherwise)."""
    p = server.path(remote)
    p.write_bytes(data)
    if mtime is not None:
        os.utime(p, (mtime, mtime))
