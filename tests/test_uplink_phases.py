"""The uplink's connection phases (services.uplink.phases) against a real FTP server.

Every test drives `Connection` phase methods directly, as the uplink service's worker thread
does, against pyftpdlib (sim.ftp_server.FtpTestServer on a free port), a local SNTP responder and,
for the site ID, the demo server's Web Services. Outbox files are made by the acquisition's own
Spool, so names and contents are the real ones. The journal messages checked are the manual's
(section 10.3.2), verbatim.
"""
from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from services.acquisition.spool import Spool
from services.uplink import ntp
from services.uplink.ftp import FtpConnectError, FtpError, FtpSession, FtpSettings
from services.uplink.journal import Journal
from services.uplink.phases import Connection
from services.uplink.webservices import WebServices
from sim.ftp_server import FtpTestServer
from sim.ntp_server import NtpResponder
from sim.server import DemoServer
from statecharts.connection import PHASES
from ticgw.clock import GatewayClock
from ticgw.config import ConfigStore

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
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            self.t += 1.0
            return self.t


class Bus:
    """Stands in for the bus: records each call; seals the spool, writes parameters files."""

    def __init__(self, spool: Spool):
        self.spool = spool
        self.calls: list[tuple[str, str, dict]] = []
        self.fail: set[tuple[str, str]] = set()

    def __call__(self, service, method, timeout=5.0, **params):
        self.calls.append((service, method, params))
        if (service, method) in self.fail:
            raise RuntimeError("%s.%s: no answer" % (service, method))
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
        for i in range(n_rows):
            self.spool.append_record(1, "021528603314", DEF_NAME, self.wall.t + i,
                                     ["%09d" % (1000 + i), "%03d" % i])
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


class Scripted:
    """An HTTP server answering every POST with ``status`` and ``body``."""

    def __init__(self, status: int, body: str):
        outer = self
        self.status, self.body = status, body

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                data = outer.body.encode()
                self.send_response(outer.status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d/" % self.httpd.server_address[1]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


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


def make_gateway(tmp_path, ftp, ntp_server) -> Gateway:
    return Gateway(tmp_path, ftp, ntp_server)
