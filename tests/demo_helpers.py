"""The demo as `make demo` runs it (Procfile.demo under honcho), for end-to-end tests, and the
`ticgw` command line against it."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading

from bus.testing import REPO
from gateway_helpers import Events
from sim import demo


def free_port(kind=socket.SOCK_STREAM) -> int:
    # Bind to 0 and read the port back; released just before honcho starts the server (a
    # small race, acceptable here: the services take their ports from the configuration).
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_demo(base, **settings):
    """The demo in ``base``: yields (base, env, events, output lines)."""
    ports = {"ftp": free_port(), "http": free_port(), "ntp": free_port(socket.SOCK_DGRAM)}
    env = demo.prepare(base, ports, **settings)
    events = Events(base / "run")
    p = subprocess.Popen(demo.honcho_command(env), env=env, cwd=str(REPO),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    output: list[str] = []
    threading.Thread(target=lambda: [output.append(l.decode("utf-8", "replace"))
                                     for l in p.stdout], daemon=True).start()
    try:
        yield base, env, events, output
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        events.close()


def ticgw(env, *args, timeout=30):
    return subprocess.run([sys.executable, "-m", "ticgw.cli", *args], env=env, cwd=str(REPO),
                          capture_output=True, timeout=timeout, text=True)


def call(env, run, service, method, *params):
    r = ticgw(env, "bus", "--run", run, "call", service, method, *params)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def answer(env, run, service, method, *params):
    """The result, or None while the service does not answer (yet)."""
    try:
        return call(env, run, service, method, *params)
    except AssertionError:
        return None
