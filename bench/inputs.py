"""CPU share of the acquisition process and frames lost, with 3 and with 100 inputs at line rate.

Method: ``bench.meter_farm`` serves N simulated meters (families mixed, real line rate) on ptys
from its own process; the acquisition service runs in ``bench.acq_runner`` (the configuration
declares 3 inputs: the runner gives the same service N), every input's speed and mode fixed so
detection only listens at that speed; a broker carries the events to a subscriber in this
process. Frames received are counted from the ``tic.<n>.frame`` events. Once every input
has published ``tic.<n>.detected``, CPU time (utime + stime of all the process's threads, from
/proc/<pid>/stat) is read over a steady window. Frames are numbered by the farm (a ``BENCHSEQ``
group): lost = frames the farm wrote entirely inside the window (first byte due after its start,
last byte written before its end) minus those that reached the subscriber as complete frames
with every group valid (events may arrive up to ``GRACE`` seconds after the window).
"""
from __future__ import annotations

import json
import threading
import time

import zmq

from bus import endpoints as eps
from bus.client import Subscriber
from bus.testing import child_env, short_run_dir, wait_for
from sim.gateway import configure

from .acq_runner import (Processes, context_switches, cpu_by_thread, cpu_seconds,
                         cpu_user_system, machine, threads_of)

RUNS = (3, 100)
WINDOW = 25.0           # seconds of steady running measured
GRACE = 3.0             # seconds allowed for the window's last frames to reach the subscriber
DETECT_TIMEOUT = 60.0   # an ICE sends a ~1000-byte frame every ~9 s at 1200 bd; two are needed
#: Writer period of each simulated meter: bytes reach the pty in chunks every 16 ms, as from a
#: USB serial adapter (FTDI's default latency timer is 16 ms; an on-board 16550 UART delivers
#: 8-byte FIFO loads, every ~67 ms at 1200 bd). PtyMeter's 5 ms default would cost the farm
#: more than a core with 100 meters, on the same 2 cores as the process measured.
FARM_TICK = 0.016


class FrameLog:
    """Subscriber thread: per input, the numbers of the complete valid frames, and the
    detections."""

    def __init__(self, run_dir):
        self.ctx = zmq.Context()
        self.sub = Subscriber(self.ctx, eps.resolve(run_dir).xpub, ("tic.", "acquisition.state"))
        self.detected: set[int] = set()
        self.no_meter: set[int] = set()     # detection gave up (state change, trigger no_meter)
        self.received: dict[int, dict[int, float]] = {}   # input -> seq -> receive time
        self.invalid = 0
        self.events = 0
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="frame-log")
        self._thread.start()

    def _run(self) -> None:
        while not self._halt.is_set():
            got = self.sub.recv(timeout=0.1)
            if got is None:
                continue
            topic, env = got
            now = time.monotonic()
            if topic == "acquisition.state":
                data = env["data"]
                if data["machine"].startswith("tic_input.") and data["trigger"] == "no_meter":
                    self.no_meter.add(int(data["machine"].split(".")[1]))
                continue
            parts = topic.split(".")
            if len(parts) != 3:
                continue
            n = int(parts[1])
            if parts[2] == "detected":
                self.detected.add(n)
                self.no_meter.discard(n)
            elif parts[2] == "frame":
                self.events += 1
                data = env["data"]
                seq = next((int(g[1]) for g in data["groups"] if g[0] == "BENCHSEQ"), None)
                valid = data["complete"] and not data["errors"] \
                    and all(g[3] for g in data["groups"])
                if seq is None or not valid:
                    self.invalid += 1
                    continue
                self.received.setdefault(n, {})[seq] = now

    def close(self) -> None:
        self._halt.set()
        self._thread.join(2)
        self.sub.close()
        self.ctx.term()


def run(n: int) -> dict:
    with Processes() as ps:
        links = ps.tmp / "links"
        links.mkdir()
        farm = ps.start("meter_farm", ["python", "-m", "bench.meter_farm", str(n), str(links),
                                        "--tick", str(FARM_TICK)],
                        ready="ready", stdin=True, timeout=30.0)
        manifest = json.loads((links / "farm.json").read_text())
        run_dir = short_run_dir(ps.tmp)
        if run_dir.parent != ps.tmp:
            ps.dirs.append(run_dir)
        data = ps.tmp / "data"
        configure(data, {})
        ps.start("broker", ["python", "-m", "bus.broker"], env=child_env(run_dir),
                 ready="bus broker:")
        frames = FrameLog(run_dir)
        try:
            runner = ps.start("acq_runner", ["python", "-m", "bench.acq_runner",
                                             str(links / "farm.json")],
                              env=child_env(run_dir, TICGW_DATA=data, TICGW_LOG_LEVEL="WARNING"))
            t_start = time.monotonic()
            try:
                wait_for(lambda: ps.check_alive() or len(frames.detected | frames.no_meter) >= n,
                         DETECT_TIMEOUT, interval=0.1)
            except AssertionError:
                pass                      # measured anyway; the table says how many were found
            detect_s = time.monotonic() - t_start
            detected = len(frames.detected)
            no_meter = sorted(frames.no_meter)
            time.sleep(1.0)               # let the last detections' definition files be written
            ev0 = frames.events
            sw0, us0, th0 = (context_switches(runner.pid), cpu_user_system(runner.pid),
                             cpu_by_thread(runner.pid))
            t0, cpu0, farm0 = time.monotonic(), cpu_seconds(runner.pid), cpu_seconds(farm.pid)
            time.sleep(WINDOW)
            t1, cpu1, farm1 = time.monotonic(), cpu_seconds(runner.pid), cpu_seconds(farm.pid)
            sw1, us1, th1 = (context_switches(runner.pid), cpu_user_system(runner.pid),
                             cpu_by_thread(runner.pid))
            ev1 = frames.events
            threads = threads_of(runner.pid)
            time.sleep(GRACE)
            ps.check_alive()
            farm.stdin.write(b"stop\n")
            farm.stdin.flush()
            wait_for(lambda: (links / "frames.json").exists() or farm.poll() is not None, 15.0,
                     interval=0.05)
            written_log = json.loads((links / "frames.json").read_text())
            gaps = sum(frames.sub.gaps.values())
            errors = [line for line in runner.output if " ERROR " in line or "Traceback" in line]
            invalid = frames.invalid
        finally:
            frames.close()
        inside = [(int(i), seq, clean) for i, rows in written_log["inputs"].items()
                  for seq, start, end, clean in rows if t0 <= start and end <= t1]
        written = {(i, seq) for i, seq, clean in inside if clean}
        dirty = sum(1 for _, _, clean in inside if not clean)
        deadline = t1 + GRACE
        received = {(i, seq) for i, seqs in frames.received.items()
                    for seq, t in seqs.items() if t <= deadline}
        late = {(i, seq) for i, seqs in frames.received.items()
                for seq, t in seqs.items() if t > deadline}
        lost = written - received
        when = {(int(i), seq): end for i, rows in written_log["inputs"].items()
                for seq, start, end, clean in rows}
        lost_detail = ["input %d (%s) frame %d, written %.2f s before the window's end%s" % (
            i, manifest["inputs"][i - 1]["family"], seq, t1 - when[(i, seq)],
            ", arrived late" if (i, seq) in late else "") for i, seq in sorted(lost)]
        by_family: dict[str, int] = {}
        for i, _seq in lost:
            fam = manifest["inputs"][i - 1]["family"]
            by_family[fam] = by_family.get(fam, 0) + 1
        dropped = sum(s["bytes_dropped"] for s in written_log["stats"].values())
        no_meter = ["%d (%s)" % (i, manifest["inputs"][i - 1]["family"]) for i in no_meter]
        return {"n": n, "detected": detected, "no_meter": no_meter, "detect_s": detect_s,
                "window": t1 - t0,
                "cpu": (cpu1 - cpu0) / (t1 - t0), "farm_cpu": (farm1 - farm0) / (t1 - t0),
                "written": len(written), "received": len(written & received),
                "lost": len(lost), "lost_by_family": by_family, "lost_detail": lost_detail,
                "dirty": dirty,
                "invalid": invalid, "bus_gaps": gaps, "threads": threads, "errors": errors,
                "bytes_dropped_total": dropped,
                "user": (us1[0] - us0[0]) / (t1 - t0), "system": (us1[1] - us0[1]) / (t1 - t0),
                "switches": (sw1 - sw0) / (t1 - t0), "events": (ev1 - ev0) / (t1 - t0),
                "by_thread": {k: (th1[k] - th0[k]) / (t1 - t0) for k in th0},
                "bytes_per_s": sum(r["baud"] / 10.0 for r in manifest["inputs"]),
                "families": _count(r["family"] + ("/std" if r["mode"] == "standard" else "")
                                   for r in manifest["inputs"])}


def _count(items) -> dict:
    out: dict = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return out


def main() -> None:
    print("== inputs: CPU of the acquisition process and frames lost, N inputs at line rate ==")
    for line in machine():
        print(line)
    print("meters: bench.meter_farm (PtyMeter, speed 1, one process); acquisition: "
          "bench.acq_runner (AcquisitionService, speed and mode fixed per input); CPU = "
          "utime+stime over a %.0f s window after every input's tic.<n>.detected; lost = frames "
          "the farm wrote entirely inside the window minus complete valid tic.<n>.frame events "
          "(matched by number)" % WINDOW)
    results = [run(n) for n in RUNS]
    print("%6s %9s %10s %9s %9s %9s %6s %8s %8s %8s" % (
        "inputs", "detected", "CPU % core", "written", "received", "lost", "bus gap",
        "threads", "line B/s", "farm CPU"))
    for r in results:
        print("%6d %9d %10.1f %9d %9d %9d %6d %8d %8.0f %7.0f%%" % (
            r["n"], r["detected"], 100 * r["cpu"], r["written"], r["received"], r["lost"],
            r["bus_gaps"], r["threads"], r["bytes_per_s"], 100 * r["farm_cpu"]))
    for r in results:
        print("%d inputs: %s; detection over after %.1f s; window %.1f s; invalid frame events "
              "%d; frames with dropped bytes %d (pty bytes dropped in the whole run, mostly "
              "before the ports opened: %d)%s" % (
                  r["n"], ", ".join("%s x%d" % kv for kv in sorted(r["families"].items())),
                  r["detect_s"], r["window"], r["invalid"], r["dirty"],
                  r["bytes_dropped_total"],
                  "; lost by family: %s" % r["lost_by_family"] if r["lost"] else ""))
        for line in r["lost_detail"][:10]:
            print("%d inputs: lost %s" % (r["n"], line))
        print("%d inputs, acquisition process: user %.1f%% + system %.1f%% of a core; by thread: "
              "loop %.1f%%, line poller and workers %.1f%%, zmq %.1f%%; %.0f context switches/s; "
              "%.1f frame events/s" % (r["n"], 100 * r["user"], 100 * r["system"],
                            100 * r["by_thread"]["main"], 100 * r["by_thread"]["other"],
                            100 * r["by_thread"]["zmq"], r["switches"], r["events"]))
        if r["errors"]:
            print("%d inputs: the acquisition logged %d errors, first: %s" % (
                r["n"], len(r["errors"]), " | ".join(r["errors"][:3])))
        if r["no_meter"]:
            print("%d inputs: detection gave up (no_meter) on %s; their frames are still "
                  "published and counted" % (r["n"], ", ".join(r["no_meter"])))


if __name__ == "__main__":
    main()
