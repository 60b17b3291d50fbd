"""Run the acquisition service on any number of inputs, and what the benchmarks share.

    TICGW_DATA=... TICGW_RUN=... python -m bench.acq_runner MANIFEST [--profile FILE]

The configuration declares ``N_INPUTS`` (3) inputs; to measure 100, this runner loads the
configuration as ``python -m services.acquisition`` does, then gives ``AcquisitionService`` one
``TicInput`` per row of ``MANIFEST`` instead of the configured inputs (its ``inputs=``;
``farm.json`` written by ``bench.meter_farm``: index, link, mode, baud; speed and mode fixed, so
only that speed is tried). ``--profile FILE``: profile the service's loop thread, the line
poller and the worker threads with cProfile and dump the merged statistics to FILE at exit
(analysis only: profiling slows the process down).

The helpers below (processes with drained output, /proc readings, the machine's description)
are used by ``bench.latency``, ``bench.inputs`` and ``bench.memory``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from bus.testing import REPO, child_env, stop_process

CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- /proc -----------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far, from /proc/<pid>/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK     # utime, stime (fields 14, 15)


def status_kb(pid: int, key: str) -> int:
    """A ``kB`` line of /proc/<pid>/status (VmRSS, VmHWM...)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def smaps_kb(pid: int) -> dict[str, int]:
    """The ``kB`` totals of /proc/<pid>/smaps_rollup (Rss, Pss, Private_Dirty...); empty if
    the kernel has none."""
    out = {}
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[2] == "kB":
                    out[parts[0].rstrip(":")] = int(parts[1])
    except OSError:
        pass
    return out


def cpu_by_thread(pid: int) -> dict[str, float]:
    """CPU seconds per kind of thread: ``main`` (the service's loop), ``zmq`` (libzmq's
    ``ZMQbg/*`` threads) and ``other`` (the line poller and the workers: each line's, the spool
    writer, the sealer...; Python 3.11 does not name them for the kernel)."""
    out = {"main": 0.0, "zmq": 0.0, "other": 0.0}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                comm = f.read().strip()
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:                 # the thread ended meanwhile
            continue
        kind = "main" if int(tid) == pid else "zmq" if comm.startswith("ZMQ") else "other"
        out[kind] += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def cpu_user_system(pid: int) -> tuple[float, float]:
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def context_switches(pid: int) -> int:
    """Voluntary + involuntary context switches of all the process's threads so far."""
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


def threads_of(pid: int) -> int:
    return status_kb(pid, "Threads")


def machine() -> list[str]:
    """What the README should quote with the figures."""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f
                          if line.startswith("model name")), "")
    except OSError:
        pass
    load = os.getloadavg()
    return ["machine: %d cores%s, Linux %s; Python %s; load average %.2f %.2f %.2f at start"
            % (os.cpu_count() or 0, " (%s)" % model if model else "", platform.release(),
               platform.python_version(), *load)]


# --- processes -------------------------------------------------------------------------------

class Processes:
    """A temp dir and the child processes of one benchmark run; ``close()`` (or leaving the
    ``with`` block, even on an error) stops them all, in reverse order, and removes the dirs."""

    def __init__(self, prefix: str = "ticgw-bench-"):
        self.tmp = Path(tempfile.mkdtemp(prefix=prefix))
        self.dirs = [self.tmp]
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> "Processes":
        return self

    def __exit__(self, *exc) -> None:
        self.close(show_output=exc[0] is not None)

    def start(self, name: str, argv: list[str], env: dict | None = None, ready: str | None = None,
              timeout: float = 15.0, stdin: bool = False) -> subprocess.Popen:
        """Start ``argv`` (``python`` is this interpreter); its output lines go to ``p.output``.
        With ``ready``, wait until a line contains it (RuntimeError after ``timeout``)."""
        if argv[0] == "python":
            argv = [sys.executable, *argv[1:]]
        p = subprocess.Popen(argv, env=env or child_env(self.tmp), cwd=str(REPO),
                             stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        p.name = name
        p.output = []
        p.seen = threading.Event()
        self.procs.append(p)

        def drain():
            for line in p.stdout:
                text = line.decode("utf-8", "replace").rstrip()
                p.output.append(text)
                if ready is not None and ready in text:
                    p.seen.set()
            p.seen.set()

        threading.Thread(target=drain, daemon=True, name="%s-output" % name).start()
        if ready is not None and (not p.seen.wait(timeout) or p.poll() is not None):
            raise RuntimeError("%s did not start (exit %s):\n%s" % (
                name, p.poll(), "\n".join(p.output[-20:])))
        return p

    def check_alive(self) -> None:
        for p in self.procs:
            if p.poll() is not None:
                raise RuntimeError("%s exited (%s):\n%s" % (p.name, p.returncode,
                                                            "\n".join(p.output[-20:])))

    def close(self, show_output: bool = False) -> None:
        for p in reversed(self.procs):
            try:
                stop_process(p, timeout=5.0)
            except Exception:
                pass
            if show_output:
                print("--- last output of %s (exit %s) ---" % (p.name, p.returncode))
                print("\n".join(p.output[-15:]))
            if p.stdin is not None:
                try:
                    p.stdin.close()
                except OSError:
                    pass
            if p.stdout is not None:
                p.stdout.close()
        self.procs = []
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)


def percentile(sorted_values: list, p: float):
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, int(round(p / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


# --- the runner ------------------------------------------------------------------------------

def _profiled(make_service, path: str) -> None:
    """Profile the loop (this thread), the line poller (the thread that reads every line with a
    descriptor) and every worker thread (each line's open/probe/stream jobs, the spool writer,
    the sealer...); merge and dump at exit. The threads' entry points are patched before the
    service is built (a Worker starts its thread in its constructor)."""
    import cProfile
    import pstats

    from services.acquisition.poller import LinePoller
    from services.runtime.worker import Worker

    profiles = []
    lock = threading.Lock()

    def profiling(original):
        def run(self):
            prof = cProfile.Profile()
            with lock:
                profiles.append(prof)
            prof.runcall(original, self)
        return run

    LinePoller.run = profiling(LinePoller.run)
    Worker._run = profiling(Worker._run)
    svc = make_service()
    main_prof = cProfile.Profile()
    profiles.append(main_prof)
    try:
        main_prof.runcall(svc.run)
    finally:
        with lock:
            stats = pstats.Stats(*profiles)
        stats.dump_stats(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.acq_runner")
    ap.add_argument("manifest", type=Path)
    ap.add_argument("--profile", metavar="FILE")
    args = ap.parse_args(argv)

    from services.acquisition.service import AcquisitionService as cls
    from services.runtime import load_configuration, setup_logging
    from ticgw.config import TicInput

    log = setup_logging("acquisition")
    store = load_configuration(log)          # $TICGW_DATA, as python -m services.acquisition
    rows = json.loads(args.manifest.read_text())["inputs"]
    inputs = [TicInput(r["index"], r["link"], r["mode"], r["baud"], "", "") for r in rows]
    log.info("bench runner: %d inputs", len(inputs))
    if args.profile:
        _profiled(lambda: cls(store, inputs=inputs), args.profile)
        return 0
    return cls(store, inputs=inputs).run()


if __name__ == "__main__":
    sys.exit(main())
