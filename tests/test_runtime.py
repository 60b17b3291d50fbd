"""The service runtime: states published, status answered while workers block, signals, restart
by execv. The service under test is the tiny ``Probe`` below; run as a script, this file is that
service's process (``python tests/test_runtime.py``, run dir from $TICGW_RUN)."""
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

if __name__ == "__main__":                       # the child process: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import statecharts
from bus.client import in_worker
from services.runtime import Service, setup_logging


class _Model:
    pass


class Probe(Service):
    name = "web"
    status_period = 0.3
    subscriptions = ("journal",)

    def __init__(self, **kw):
        super().__init__(**kw)
        self.journal = []
        self.jobs_done = 0
        self.input_model = _Model()
        self.machine("tic_input.1", self.input_model)

    def commands(self):
        return {"block": self.cmd_block, "slow": self.cmd_slow}

    def cmd_block(self, params):
        """A blocking job in a worker; the loop stays free."""
        self.run_in_thread(time.sleep, params.get("seconds", 2.0), on_done=self._job_done)
        return {"started": True}

    def _job_done(self, outcome):
        self.jobs_done += 1

    def cmd_slow(self, params):
        """A command answered later, from a worker."""
        seconds = params.get("seconds", 0.5)
        return in_worker(self.loop, lambda: (time.sleep(seconds), {"slept": seconds})[1])

    def on_start(self):
        with open(self.run_dir / "boots", "a") as f:
            f.write("%d\n" % os.getpid())
        statecharts.fire(self.input_model, "port_opened")

    def on_event(self, topic, env):
        self.journal.append(env["data"]["message"])

    def status(self):
        return {"journal": len(self.journal), "jobs_done": self.jobs_done}

    def on_stop(self):
        (self.run_dir / "stopped").write_text("%d\n" % os.getpid())


if __name__ == "__main__":
    setup_logging("web")
    sys.exit(Probe().run())


# --- tests ------------------------------------------------------------------------------------

import pytest  # noqa: E402
import zmq  # noqa: E402

from bus import endpoints as eps  # noqa: E402
from bus.client import CommandClient, Publisher, Subscriber  # noqa: E402
from bus.errors import BusTimeout  # noqa: E402
from bus.testing import (REPO, child_env, leaked_threads, short_run_dir,  # noqa: E402
                         start_broker, stop_process, threads_now, wait_for)


@pytest.fixture
def run_dir(tmp_path):
    return short_run_dir(tmp_path)


@pytest.fixture
def broker(run_dir):
    p = start_broker(run_dir)
    yield p
    assert stop_process(p) == 0


@pytest.fixture
def ctx():
    c = zmq.Context()
    yield c
    c.destroy(linger=0)


def answers(client, service="web", method="ping", **params):
    """The result of a call, or None while the service does not answer yet."""
    try:
        return client.call(service, method, timeout=0.3, **params)
    except BusTimeout:
        return None


class Watch:
    """Collects ``web.*`` events; ``step()`` reads for a moment and re-asks status (late
    joiner: the service re-publishes its states when asked)."""

    def __init__(self, ctx, e, client):
        self.sub = Subscriber(ctx, e.xpub, ["web."])
        self.client = client
        self.events = []
        self._asked = 0.0

    def step(self):
        if time.monotonic() - self._asked > 0.5:
            self._asked = time.monotonic()
            answers(self.client, method="status")
        got = self.sub.recv(timeout=0.05)
        if got:
            self.events.append(got)

    def states(self, machine):
        return [env["data"]["state"] for topic, env in self.events
                if topic == "web.state" and env["data"]["machine"] == machine]

    def close(self):
        self.sub.close()


def test_service_in_process(ctx, run_dir, broker):
    e = eps.resolve(run_dir)
    before = threads_now()
    svc = Probe(run_dir=run_dir, ctx=ctx)
    codes = []
    th = threading.Thread(target=lambda: codes.append(svc.run(install_signals=False)))
    th.start()
    client = CommandClient(ctx, e, "cli")
    watch = Watch(ctx, e, client)
    pub = Publisher(ctx, e.xsub, "uplink")
    try:
        wait_for(lambda: "operational" in watch.states("activity")
                 and "detecting" in watch.states("tic_input.1"), 10.0, step=watch.step)
        snap = client.call("web", "status", timeout=2.0)
        assert snap["service"] == "web" and snap["activity"] == "operational"
        assert snap["led"] == "slow" and snap["pid"] == os.getpid() and snap["protocol"] == 1
        assert snap["machines"] == {"activity": "operational", "tic_input.1": "detecting"}
        assert client.call("web", "ping")["pong"] is True
        # subscriptions reach on_event
        wait_for(lambda: pub.publish("journal", message="Connexion réussie") and svc.journal,
                 10.0, interval=0.05)
        assert svc.journal[0] == "Connexion réussie"
        # the periodic status carries the subclass's fields
        wait_for(lambda: any(t == "web.status" and env["data"].get("journal")
                             for t, env in watch.events), 10.0, step=watch.step)
    finally:
        svc.loop.post(svc.stop)
        th.join(5)
        assert codes == [0]
        assert (run_dir / "stopped").exists()
        assert leaked_threads(before) == []
        watch.close()
        client.close()
        pub.close()


def start_probe(run_dir):
    log = open(run_dir / "probe.log", "ab")
    p = subprocess.Popen([sys.executable, str(Path(__file__).resolve())], env=child_env(run_dir),
                         cwd=str(REPO), stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return p


def test_service_process_life(ctx, run_dir, broker):
    e = eps.resolve(run_dir)
    client = CommandClient(ctx, e, "cli")
    watch = Watch(ctx, e, client)
    p = start_probe(run_dir)
    try:
        pong = wait_for(lambda: answers(client), 10.0)
        assert pong["pid"] == p.pid and pong["service"] == "web"
        wait_for(lambda: "operational" in watch.states("activity"), 10.0, step=watch.step)

        # status within 100 ms while a worker blocks for 2 s, and while a deferred reply waits
        assert client.call("web", "block", seconds=2.0) == {"started": True}
        slow = []
        other = CommandClient(ctx, e, "cli2")
        t = threading.Thread(target=lambda: slow.append(
            other.call("web", "slow", timeout=5.0, seconds=0.5)))
        t.start()
        worst = 0.0
        for _ in range(10):
            t0 = time.monotonic()
            snap = client.call("web", "status", timeout=1.0)
            worst = max(worst, time.monotonic() - t0)
        assert worst < 0.1, "status took %.3f s while a worker was busy" % worst
        assert snap["jobs_done"] == 0          # the 2 s job is still running
        t.join(5)
        other.close()
        assert slow == [{"slept": 0.5}]

        # restart: the reply comes first, then the same pid comes back with fresh code
        assert client.call("web", "restart", timeout=2.0) == {"restarting": True}
        wait_for(lambda: len((run_dir / "boots").read_text().split()) == 2, 10.0)
        pong = wait_for(lambda: answers(client), 10.0)
        assert pong["pid"] == p.pid and p.poll() is None
        assert (run_dir / "boots").read_text().split() == [str(p.pid)] * 2
        assert client.call("web", "status")["uptime"] < 10.0

        # SIGTERM: stopping is a state, on_stop runs, exit 0 within 5 s
        (run_dir / "stopped").unlink(missing_ok=True)
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        assert p.wait(5) == 0
        assert time.monotonic() - t0 < 5.0
        assert (run_dir / "stopped").read_text().strip() == str(p.pid)
        log = (run_dir / "probe.log").read_text()
        assert "activity: operational -> stopping (stop)" in log and "Traceback" not in log
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        watch.close()
        client.close()
