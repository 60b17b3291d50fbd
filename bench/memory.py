"""Resident memory of each gateway process after ~10 s of steady running.

Method: ``bench.meter_farm`` serves 3 simulated meters (Linky historic, Linky standard, CBEMM) at
real line rate; the broker, ``python -m services.acquisition`` (those 3 inputs, speed and mode
fixed) and ``python -m services.uplink`` (default configuration: idle, no connection scheduled)
run as they do under the Procfile. ``STEADY`` seconds after every input published
``tic.<n>.detected``, VmRSS (resident now) and VmHWM (peak resident) are read from
/proc/<pid>/status, PSS and private pages from /proc/<pid>/smaps_rollup. A bare interpreter (``python -c`` waiting on stdin) is measured alongside as
the floor every Python process pays.
"""
from __future__ import annotations

import json
import time

from bus.testing import child_env, short_run_dir, wait_for
from tests.gateway_helpers import configure

from .acq_runner import Processes, machine, smaps_kb, status_kb
from .inputs import FARM_TICK, FrameLog

STEADY = 10.0
TARGET_MB = 30


def run() -> tuple[list, list]:
    rows = []
    notes = []
    with Processes() as ps:
        links = ps.tmp / "links"
        links.mkdir()
        ps.start("meter_farm", ["python", "-m", "bench.meter_farm", "3", str(links),
                                "--tick", str(FARM_TICK)], ready="ready", stdin=True)
        manifest = json.loads((links / "farm.json").read_text())["inputs"]
        run_dir = short_run_dir(ps.tmp)
        if run_dir.parent != ps.tmp:
            ps.dirs.append(run_dir)
        data = ps.tmp / "data"
        keys = {}
        for r in manifest:
            keys.update({"TIC_Baud[%d]" % r["index"]: r["baud"],
                         "TIC_Mode[%d]" % r["index"]: r["mode"]})
        configure(data, {r["index"]: r["link"] for r in manifest}, **keys)
        bare = ps.start("python (bare)", ["python", "-c", "import sys; sys.stdin.read()"],
                        stdin=True)
        broker = ps.start("broker", ["python", "-m", "bus.broker"], env=child_env(run_dir),
                          ready="bus broker:")
        events = FrameLog(run_dir)
        try:
            env = child_env(run_dir, TICGW_DATA=data)
            acq = ps.start("acquisition", ["python", "-m", "services.acquisition"], env=env)
            uplink = ps.start("uplink", ["python", "-m", "services.uplink"], env=env)
            try:
                wait_for(lambda: ps.check_alive() or len(events.detected | events.no_meter) >= 3,
                         30.0, interval=0.1)
            except AssertionError:
                notes.append("detected after 30 s: %s" % sorted(events.detected))
            time.sleep(STEADY)
            procs = [bare, broker, acq]
            if uplink.poll() is None:
                procs.append(uplink)
            else:
                notes.append("uplink exited (%s): %s" % (uplink.returncode,
                                                         " | ".join(uplink.output[-5:])))
            for p in procs:
                sm = smaps_kb(p.pid)
                private = sm.get("Private_Clean", 0) + sm.get("Private_Dirty", 0)
                rows.append((p.name, status_kb(p.pid, "VmRSS") / 1024.0,
                             status_kb(p.pid, "VmHWM") / 1024.0, sm.get("Pss", 0) / 1024.0,
                             private / 1024.0, status_kb(p.pid, "Threads")))
            for p in (acq, uplink):
                bad = [line for line in p.output if " ERROR " in line or "Traceback" in line]
                if bad:
                    notes.append("%s logged errors: %s" % (p.name, " | ".join(bad[:3])))
        finally:
            events.close()
    return rows, notes


def main() -> None:
    print("== memory: resident set of each process after %.0f s of steady running "
          "(target <= %d MB each) ==" % (STEADY, TARGET_MB))
    for line in machine():
        print(line)
    print("broker, python -m services.acquisition (3 inputs at line rate), "
          "python -m services.uplink (idle); VmRSS and VmHWM (peak) from /proc/<pid>/status; "
          "1 MiB = 1.048576 MB")
    rows, notes = run()
    print("%-16s %8s %8s %9s %8s %12s %8s" % ("process", "RSS MiB", "RSS MB", "peak MiB",
                                              "PSS MiB", "private MiB", "threads"))
    for name, rss, hwm, pss, private, threads in rows:
        print("%-16s %8.1f %8.1f %9.1f %8.1f %12.1f %8d" % (name, rss, rss * 1.048576, hwm, pss,
                                                         private, threads))
    print("RSS counts every mapped page, shared libraries included (libpython, libzmq, "
          "libcrypto); PSS splits shared pages between the processes mapping them (the sum of "
          "PSS is what the processes cost together); private = pages no other process maps")
    for note in notes:
        print("note: %s" % note)


if __name__ == "__main__":
    main()
