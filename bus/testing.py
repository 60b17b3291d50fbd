"""Helpers for tests of the bus and the services: wait on conditions (never on sleeps), a fake
clock, a broker in a subprocess, short run dirs for ipc://, and cheap leak checks."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .endpoints import IPC_PATH_MAX

REPO = Path(__file__).resolve().parent.parent


def wait_for(predicate, timeout: float = 5.0, step=None, interval: float = 0.005,
             message: str | None = None):
    """Return ``predicate()``'s first truthy value, checking until ``timeout`` seconds.

    ``step()`` runs between checks (e.g. ``lambda: loop.run_once(0.01)`` or a publish);
    without one, the check is repeated every ``interval`` seconds. Raises AssertionError
    (with ``message``) at the deadline.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(message or "condition not met within %.1f s: %s"
                                 % (timeout, getattr(predicate, "__name__", predicate)))
        if step is not None:
            step()
        else:
            time.sleep(interval)


class FakeClock:
    """A clock that moves only when told: ``Loop(clock=...)`` and anything taking a monotonic
    ``clock=`` call it; a service taking a clock object reads ``monotonic()`` and ``time()``
    (wall time, ``wall`` seconds ahead of the monotonic reading)."""

    def __init__(self, start: float = 1000.0, wall: float = 1_800_000_000.0):
        self.now = float(start)
        self.wall_offset = float(wall) - float(start)

    def __call__(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now + self.wall_offset

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def short_run_dir(base=None) -> Path:
    """A run dir whose ipc:// paths fit the AF_UNIX limit (``base/run`` when short enough)."""
    if base is not None:
        p = Path(base) / "run"
        if len(str(p.resolve())) + len("/acquisition.cmd") < IPC_PATH_MAX - 8:
            p.mkdir(parents=True, exist_ok=True)
            return p
    return Path(tempfile.mkdtemp(prefix="ticgw-"))


def child_env(run_dir, **extra) -> dict:
    """Environment for a child process of the gateway: TICGW_RUN set, repo importable."""
    env = dict(os.environ)
    env["TICGW_RUN"] = str(run_dir)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def start_broker(run_dir, *args: str, timeout: float = 10.0) -> subprocess.Popen:
    """``python -m bus.broker`` in a subprocess on ``run_dir``; returns once it says it runs.

    Its output is drained by a daemon thread into ``p.output`` (a list of lines).
    """
    p = subprocess.Popen([sys.executable, "-m", "bus.broker", *args], env=child_env(run_dir),
                         cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    p.output = []
    ready = threading.Event()

    def drain():
        for line in p.stdout:
            text = line.decode("utf-8", "replace").rstrip()
            p.output.append(text)
            if "bus broker:" in text:
                ready.set()
        ready.set()

    threading.Thread(target=drain, daemon=True, name="broker-output").start()
    if not ready.wait(timeout) or p.poll() is not None:
        stop_process(p)
        raise RuntimeError("broker did not start (%s): %s" % (p.returncode, "\n".join(p.output)))
    return p


def stop_process(p: subprocess.Popen, timeout: float = 5.0) -> int:
    """SIGTERM, then SIGKILL after ``timeout``: the shutdown ladder. Returns the exit code."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return p.returncode


def threads_now() -> set:
    return {t for t in threading.enumerate() if t.is_alive()}


def leaked_threads(before: set, timeout: float = 2.0) -> list:
    """Threads started since ``before`` still alive after ``timeout`` (daemon workers too)."""
    deadline = time.monotonic() + timeout
    while True:
        extra = [t for t in threads_now() - before if t.is_alive()]
        if not extra or time.monotonic() >= deadline:
            return extra
        time.sleep(0.01)


def open_fds() -> int:
    """Number of open file descriptors of this process (Linux)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1
