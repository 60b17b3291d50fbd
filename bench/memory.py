"""Resident memory of each gateway process after ~10 s of steady running, and of the uplink after
it has run connections as in the demo.

Method: ``bench.meter_farm`` serves 3 simulated meters (Linky historic, Linky standard, CBEMM) at
real line rate; the demo remote server (``sim.server.DemoServer``: FTP, Web Services, NTP) runs
in this process with the demo's command file in its CMD directory; the data dir gets the demo's
configuration (``sim.demo.prepare``: 20 s samples, FTP, NTP, ``WebService_Enable=1``), the
farm's 3 inputs (speed and mode fixed) and no scheduled connection (``Connection_PeriodMin=0``:
the default daily time). The broker (``python -m ticgw.cli bus broker``, as the Procfile runs
it), ``python -m services.acquisition`` and ``python -m services.uplink`` run as they do under
the Procfile. ``STEADY`` seconds after every input published ``tic.<n>.detected``, every process
is measured ("uplink idle": no connection yet). Then the uplink is asked ``CONNECTIONS`` times
for a connection (``uplink connect`` on the bus, as ``ticgw bus call uplink connect`` does),
``GAP`` seconds apart (so each has a new sample to send, as the demo's connections every 2
minutes do), each one waited for until its ``task.ended``; ``STEADY`` seconds after the last,
the uplink is measured again ("uplink after N connections").

Readings: VmRSS (resident now) and VmHWM (peak resident) from /proc/<pid>/status, PSS and
private pages from /proc/<pid>/smaps_rollup; "loaded" names the costly parts a process has
mapped (``LOADED``: ssl with OpenSSL, asyncio, unicodedata, requests' charset_normalizer),
from /proc/<pid>/maps: they explain most differences between runs and processes. A
bare interpreter (``python -c`` waiting on stdin) is measured alongside as the floor every
Python process pays. Every process runs with its bytecode cached, as on an installed gateway
(see :func:`bytecode_env`).

    python -m bench memory                       (or python -m bench.memory)
    python -m bench.memory --web-services off    the default configuration's WebService_Enable=0
    python -m bench.memory --journal-kb 900      a gateway that has run a while: the journal
                                                 (state/journal.log, all sent) holds 900 KB
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import threading
import time

import zmq

from bus import endpoints as eps
from bus.client import CommandClient, Subscriber
from bus.testing import REPO, short_run_dir, wait_for
from sim import demo
from sim.server import DemoServer

from .acq_runner import Processes, machine, smaps_kb, status_kb
from .inputs import FARM_TICK, FrameLog

STEADY = 10.0
TARGET_MB = 30
CONNECTIONS = 4          # connections asked of the uplink after the idle measurement
GAP = 20.0               # seconds between two connections (the demo's DAQ_PeriodSec)
CONNECTION_TIMEOUT = 60.0
#: What "loaded" reports: a name, and a piece of the path of the shared object that shows it.
LOADED = (("ssl", "/_ssl."), ("asyncio", "/_asyncio."), ("unicodedata", "/unicodedata."),
          ("requests", "charset_normalizer/"))
#: The file the demo server holds for the first connection (GETPARAMS, LOG, an unknown command:
#: the first connection's `commands` phase ends "failed", as in the demo).
COMMAND_FILE = REPO / "sim" / "demo_files" / "WEBDYN_CMD.csv"
#: What the measured processes import, at start or later (a service's first connection to the
#: broker, a connection to the server, a chart loaded by name): compiled before the measurement
#: (see bytecode_env); the table's notes name any module compiled during the run.
WARM_UP = ("bus.broker", "ticgw.cli", "ticgw.cli.__main__", "ticgw.cli.bus",
           "services.acquisition.__main__", "services.acquisition.service",
           "services.uplink.__main__", "services.uplink.service", "services.uplink.ftp",
           "services.uplink.ntp", "services.uplink.webservices", "statecharts.activity",
           "statecharts.connection", "statecharts.tic_input", "zmq.utils.monitor", "requests",
           "http.client", "netrc", "shlex", "_strptime")


def bytecode_env(tmp) -> dict:
    """The environment the measured processes run in: bytecode cached, as on an installed
    gateway (pip compiles what it installs; a source tree gets its __pycache__ at the first
    run). Where PYTHONDONTWRITEBYTECODE is set (CI, containers), each process would compile the
    project's sources at every start, which leaves a few MiB of the compiler's garbage in its
    heap. The bytecode goes to a private cache (PYTHONPYCACHEPREFIX, under ``tmp``: the source
    tree is not written to), filled by one process importing ``WARM_UP`` first."""
    env = dict(os.environ, PYTHONPYCACHEPREFIX=str(tmp / "pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    subprocess.run([sys.executable, "-W", "ignore", "-c", _WARM_UP_CODE, *WARM_UP],
                   cwd=str(REPO), env=env, check=True)
    return env


#: Imports each module named (its imports get cached too); a ``__main__`` is compiled, not run.
_WARM_UP_CODE = """
import importlib, importlib.util, py_compile, sys
for name in sys.argv[1:]:
    if name.endswith(".__main__"):
        py_compile.compile(importlib.util.find_spec(name).origin, doraise=True)
    else:
        importlib.import_module(name)
"""


def cached(tmp) -> set[str]:
    """The modules in the bytecode cache (as paths of their sources)."""
    root = tmp / "pycache"
    return {os.path.join(d[len(str(root)):], f.split(".")[0])
            for d, _, names in os.walk(root) for f in names}


class Tasks:
    """Subscriber thread: the ``task.*`` and ``connection.phase`` events, in order."""

    def __init__(self, run_dir):
        self.ctx = zmq.Context()
        self.sub = Subscriber(self.ctx, eps.resolve(run_dir).xpub, ("task.", "connection.phase"))
        self.events: list[tuple[float, str, dict]] = []
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="tasks")
        self._thread.start()

    def _run(self) -> None:
        while not self._halt.is_set():
            got = self.sub.recv(timeout=0.1)
            if got is not None:
                topic, env = got
                with self._lock:
                    self.events.append((time.monotonic(), topic, env.get("data") or {}))

    def since(self, n: int) -> list[tuple[float, str, dict]]:
        with self._lock:
            return self.events[n:]

    def __len__(self) -> int:
        with self._lock:
            return len(self.events)

    def close(self) -> None:
        self._halt.set()
        self._thread.join(2)
        self.sub.close()
        self.ctx.term()


def reading(name: str, pid: int) -> tuple:
    """(name, RSS MiB, peak RSS MiB, PSS MiB, private MiB, threads, loaded) of a live
    process."""
    sm = smaps_kb(pid)
    private = sm.get("Private_Clean", 0) + sm.get("Private_Dirty", 0)
    with open("/proc/%d/maps" % pid) as f:
        maps = f.read()
    loaded = ",".join(label for label, piece in LOADED if piece in maps) or "-"
    return (name, status_kb(pid, "VmRSS") / 1024.0, status_kb(pid, "VmHWM") / 1024.0,
            sm.get("Pss", 0) / 1024.0, private / 1024.0, status_kb(pid, "Threads"), loaded)


def fill_journal(state_dir, kb: int) -> None:
    """A journal of ``kb`` KB of rows already sent, as a gateway that has run a while has."""
    row = ("30/11/2026\t10:00:00\tDépôt du fichier de données "
           "WEBDYN_TIC_261130_100000.csv.gz\n").encode("utf-8")
    data = row * (kb * 1024 // len(row))
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "journal.log").write_bytes(data)
    (state_dir / "journal.mark").write_text(str(len(data)))


def connect(client: CommandClient, tasks: Tasks, uplink_pid: int) -> dict:
    """Ask the uplink for a connection and wait for its end; what it did and the RSS after."""
    mark = len(tasks)
    t0 = time.monotonic()
    client.call("uplink", "connect", timeout=5.0, reason="bench")

    def ended():
        return next((data for _, topic, data in tasks.since(mark)
                     if topic == "task.ended" and data.get("task") == "Connexion"), None)
    try:
        wait_for(lambda: ended() is not None, CONNECTION_TIMEOUT, interval=0.05)
    except AssertionError:
        pass
    end = ended()
    phases = [data for _, topic, data in tasks.since(mark) if topic == "connection.phase"]
    return {"duration": time.monotonic() - t0,
            "outcome": end.get("outcome") if end else "no task.ended within %.0f s"
            % CONNECTION_TIMEOUT,
            "phases": len(phases),
            "not_ok": ["%s: %s" % (p.get("phase"), p.get("detail") or p.get("outcome"))
                       for p in phases if p.get("outcome") != "ok"],
            "rss": status_kb(uplink_pid, "VmRSS") / 1024.0}


def run(web_services: bool = True, journal_kb: int = 0) -> tuple[list, list, list]:
    rows, notes, conns = [], [], []
    with Processes() as ps:
        links = ps.tmp / "links"
        links.mkdir()
        ps.start("meter_farm", ["python", "-m", "bench.meter_farm", "3", str(links),
                                "--tick", str(FARM_TICK)], ready="ready", stdin=True)
        manifest = json.loads((links / "farm.json").read_text())["inputs"]
        run_dir = short_run_dir(ps.tmp)
        if run_dir.parent != ps.tmp:
            ps.dirs.append(run_dir)
        base = bytecode_env(ps.tmp)
        warm = cached(ps.tmp)
        site = ps.tmp / "demo"
        # pyftpdlib logs every command to stderr unless logging is set up: only its warnings
        ftp_log = logging.getLogger("pyftpdlib")
        ftp_log.setLevel(logging.WARNING)
        if not ftp_log.handlers:
            ftp_log.addHandler(logging.NullHandler())
        with DemoServer(site / "server", user="demo", password="demo") as server:
            (server.root / "CMD" / COMMAND_FILE.name).write_bytes(COMMAND_FILE.read_bytes())
            keys = {"Connection_PeriodMin": 0, "WebService_Enable": int(web_services)}
            for r in manifest:
                keys.update({"TIC_Port[%d]" % r["index"]: r["link"],
                             "TIC_Baud[%d]" % r["index"]: r["baud"],
                             "TIC_Mode[%d]" % r["index"]: r["mode"]})
            data = site / "data"
            demo.prepare(site, ports={"ftp": server.ftp_port, "http": server.http_port,
                                      "ntp": server.ntp_port}, **keys)
            if journal_kb:
                fill_journal(data / "state", journal_kb)
            env = dict(base, TICGW_RUN=str(run_dir), TICGW_DATA=str(data))
            bare = ps.start("python (bare)", ["python", "-c", "import sys; sys.stdin.read()"],
                            env=env, stdin=True)
            broker = ps.start("broker", ["python", "-m", "ticgw.cli", "bus", "broker"], env=env,
                              ready="bus broker:")
            events = FrameLog(run_dir)
            tasks = Tasks(run_dir)
            ctx = zmq.Context()
            client = CommandClient(ctx, eps.resolve(run_dir), src="bench")
            try:
                acq = ps.start("acquisition", ["python", "-m", "services.acquisition"], env=env)
                uplink = ps.start("uplink", ["python", "-m", "services.uplink"], env=env)
                try:
                    wait_for(lambda: ps.check_alive() or len(events.detected | events.no_meter)
                             >= 3, 30.0, interval=0.1)
                except AssertionError:
                    notes.append("detected after 30 s: %s" % sorted(events.detected))
                time.sleep(STEADY)
                ps.check_alive()
                early = [data for _, topic, data in tasks.since(0) if topic == "task.started"
                         and data.get("task") == "Connexion"]
                if early:
                    notes.append("the uplink connected before its idle reading (%s)" % ", ".join(
                        str(d.get("reason")) for d in early))
                for p in (bare, broker, acq):
                    rows.append(reading(p.name, p.pid))
                rows.append(reading("uplink idle", uplink.pid))
                for i in range(CONNECTIONS):
                    if i:
                        time.sleep(GAP)
                    conns.append(connect(client, tasks, uplink.pid))
                time.sleep(STEADY)
                ps.check_alive()
                rows.append(reading("uplink after %d" % CONNECTIONS, uplink.pid))
                for p in (broker, acq, uplink):
                    bad = [line for line in p.output if " ERROR " in line or "Traceback" in line]
                    if bad:
                        notes.append("%s logged errors: %s" % (p.name, " | ".join(bad[:3])))
                compiled = sorted(cached(ps.tmp) - warm)
                if compiled:
                    notes.append("compiled during the run (not in WARM_UP): %s" % ", ".join(
                        compiled))
                delivered = {d: len(list((server.root / d).iterdir()))
                             for d in ("DATA", "ALARM", "LOG", "CONFIG", "DEF")}
                notes.append("the server received: %s; Web Services calls: %d" % (
                    ", ".join("%s %d" % kv for kv in delivered.items()),
                    len(server.read_log())))
            finally:
                client.close()
                ctx.term()
                tasks.close()
                events.close()
    return rows, notes, conns


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.split(
        "\n\n")[0])
    ap.add_argument("--web-services", choices=("on", "off"), default="on",
                    help="WebService_Enable (the demo's: on)")
    ap.add_argument("--journal-kb", type=int, default=0, metavar="KB",
                    help="start with a journal of KB kilobytes, all sent (default: empty)")
    args = ap.parse_args(argv if argv is not None else [])
    print("== memory: resident set of each process after %.0f s of steady running, and of the "
          "uplink after %d connections (target <= %d MB each) ==" % (STEADY, CONNECTIONS,
                                                                     TARGET_MB))
    for line in machine():
        print(line)
    print("the demo's configuration (Web Services %s%s) on 3 simulated meters at line rate and "
          "a local demo server (FTP, Web Services, NTP); ticgw bus broker, python -m "
          "services.acquisition, python -m services.uplink (idle, then after %d connections "
          "asked %.0f s apart); bytecode cached; VmRSS and VmHWM (peak) from /proc/<pid>/status; "
          "1 MiB = 1.048576 MB" % (args.web_services, ", a %d KB journal" % args.journal_kb
                                   if args.journal_kb else "", CONNECTIONS, GAP))
    rows, notes, conns = run(args.web_services == "on", args.journal_kb)
    print("%-16s %7s %7s %8s %7s %7s %8s %7s  %s" % (
        "process", "RSS MiB", "RSS MB", "peak MiB", "PSS MiB", "PSS MB", "priv MiB", "threads",
        "loaded"))
    for name, rss, hwm, pss, private, threads, loaded in rows:
        print("%-16s %7.1f %7.1f %8.1f %7.1f %7.1f %8.1f %7d  %s" % (
            name, rss, rss * 1.048576, hwm, pss, pss * 1.048576, private, threads, loaded))
    print("RSS counts every mapped page, shared libraries included (libpython, libzmq, "
          "libcrypto); PSS splits shared pages between the processes mapping them (the sum of "
          "PSS is what the processes cost together); priv = pages no other process maps")
    for i, c in enumerate(conns, 1):
        print("connection %d: %s in %.2f s, %d phases%s; uplink RSS %.1f MiB just after" % (
            i, c["outcome"], c["duration"], c["phases"],
            " (not ok: %s)" % "; ".join(c["not_ok"]) if c["not_ok"] else "", c["rss"]))
    for note in notes:
        print("note: %s" % note)


if __name__ == "__main__":
    main(sys.argv[1:])
