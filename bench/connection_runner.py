"""One daily connection of a prepared gateway data dir, timed: the gateway side of bench.connection.

    python -m bench.connection_runner '{"data_dir": ..., "wall_start": ..., "pipelining": true}'

Runs in its own process so that ``bench.connection`` can start it inside a network namespace
behind a slow link (``ip netns exec NS python -m bench.connection_runner ...``); on loopback it is
started the same way, without the namespace, so both scenarios are measured alike.

The data dir holds what ``bench.connection`` prepared: the configuration (FTP server, NTP server,
the three TIC inputs and their definition files) and the day's records, not sealed yet. This
process does what the uplink service does for one connection: every phase of
``statecharts.connection.PHASES`` in order on a ``services.uplink.phases.Connection`` (an
``FtpConnectError`` is "abort" and ends the phases, another ``FtpError`` is "failed"), then
``closing()``. The bus is a fake: ``acquisition.seal`` seals the spool (so the data and alarm
files are made exactly as the acquisition service makes them), every other call is a no-op.

``"pipelining": false`` turns ``FtpSettings.pipelining`` off for this run only, as
``FTP_Pipelining=0`` would, but without touching the configuration files (which the connection
compares with the server's copies, so an edited file would be uploaded again and change what is
measured). Absent or true: the configuration's value (on by default).

It prints one JSON line: total and per-phase wall time, phase outcomes, the FtpSession's
``stats`` summed over its sessions (commands, round trips, pipelined and unanswered commands,
connects, data connections, bytes sent and received, uploads), ``Connection.stats`` and the
sealed files.
"""
from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path

from services.acquisition.spool import Spool
from services.uplink import ntp
from services.uplink.ftp import FtpConnectError, FtpError, FtpSession, FtpSettings
from ticgw.journal import Journal
from services.uplink.phases import Connection
from statecharts.connection import PHASES
from ticgw.clock import GatewayClock
from ticgw.config import ConfigStore

MAC = "00:11:22:33:44:55"


class FakeBus:
    """``bus_call``: seals the spool on ``acquisition.seal`` and remembers the files made."""

    def __init__(self, spool: Spool):
        self.spool = spool
        self.calls: list[str] = []
        self.sealed: list[tuple[str, str, int]] = []

    def __call__(self, service, method, timeout=5.0, **params):
        self.calls.append("%s.%s" % (service, method))
        if (service, method) == ("acquisition", "seal"):
            made = self.spool.seal()
            self.sealed += [(p.parent.name, p.name, p.stat().st_size) for p in made]
            return {"files": [p.name for p in made]}
        return {}


def run(data_dir: str | Path, wall_start: float, ntp_timeout: float = 3.0,
        pipelining: bool | None = None) -> dict:
    data = Path(data_dir)
    t_real = time.time()

    def wall() -> float:
        # The gateway's wall clock starts at wall_start (just after the simulated day) and
        # then moves with real time, so file stamps and journal times are those of the day.
        return wall_start + (time.time() - t_real)

    store = ConfigStore(data)
    settings = store.settings
    clock = GatewayClock(data / "state", wall=wall)
    journal = Journal(data / "state", clock=clock.now)
    spool = Spool(data, settings.site_id, euro_dates=bool(settings.ftp_euro_date_format),
                  clock=clock.now)
    bus = FakeBus(spool)
    sessions: list[FtpSession] = []

    def ftp_factory(s):
        ftp_settings = FtpSettings.from_settings(s)
        if pipelining is not None:
            ftp_settings.pipelining = pipelining
        session = FtpSession(ftp_settings)
        sessions.append(session)  # kept so that its stats can be read after closing()
        return session

    conn = Connection(settings=settings, store=store, data_dir=data, journal=journal,
                      clock=clock, bus_call=bus,
                      ntp_sync=functools.partial(ntp.sync, timeout=ntp_timeout),
                      webservices=None, reason="bench", ftp_factory=ftp_factory,
                      check_config=True, mac=MAC)
    journal_before = len(journal.tail(100_000))
    outcomes: dict[str, str] = {}
    phase_s: dict[str, float] = {}
    t0 = time.perf_counter()
    for phase in PHASES:
        tp = time.perf_counter()
        try:
            outcome = getattr(conn, phase)()
        except FtpConnectError:
            outcome = "abort"
        except FtpError:
            outcome = "failed"
        phase_s[phase] = time.perf_counter() - tp
        outcomes[phase] = outcome
        if outcome == "abort":
            break
    tp = time.perf_counter()
    conn.closing()
    phase_s["closing"] = time.perf_counter() - tp
    duration = time.perf_counter() - t0
    ftp_stats: dict[str, int] = {}
    for s in sessions:
        for k, v in s.stats.items():
            ftp_stats[k] = ftp_stats.get(k, 0) + v
    spool.close()
    return {
        "duration_s": duration,
        "phase_s": phase_s,
        "outcomes": outcomes,
        "ftp": ftp_stats,
        "conn": conn.stats,
        "sealed": bus.sealed,
        "journal": [row[2] for row in journal.tail(100_000)[journal_before:]],
    }


def main(argv: list[str]) -> None:
    args = json.loads(argv[0])
    pipelining = args.get("pipelining")
    result = run(args["data_dir"], float(args["wall_start"]),
                 float(args.get("ntp_timeout", 3.0)),
                 None if pipelining is None else bool(pipelining))
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
