"""The service runtime, on the smallest complete service (tests/echo_service.py, added with one
registry entry): what the entry derives, states published, status answered while workers block,
the fault path (an exception in a callback, a start-up that fails and is retried, commands
refused meanwhile), signals, restart by execv."""
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import zmq

import echo_service
from gateway_helpers import Threaded
import statecharts
from bus import endpoints as eps
from bus import messages
from bus.client import CommandClient, Publisher, Subscriber
from bus.errors import BusTimeout, RemoteError
from bus.testing import (REPO, child_env, leaked_threads, short_run_dir, start_broker,
                         stop_process, threads_now, wait_for)
from ticgw import gateway, registry
from ticgw.config import defaults

ECHO = Path(echo_service.__file__).resolve()


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


def answers(client, service="echo", method="ping", **params):
    """The result of a call, or None while the service does not answer yet."""
    try:
        return client.call(service, method, timeout=0.3, **params)
    except BusTimeout:
        return None


class Watch:
    """Collects ``echo.*`` events; ``step()`` reads for a moment and re-asks status (late
    joiner: the service re-publishes its states when asked)."""

    def __init__(self, ctx, e, client):
        self.sub = Subscriber(ctx, e.xpub, ["echo."])
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
                if topic == "echo.state" and env["data"]["machine"] == machine]

    def close(self):
        self.sub.close()


def test_one_registry_entry_is_all_a_new_service_needs():
    # declarations: its commands and its topics; its chart; its endpoint; its Procfile line
    assert messages.lookup_command("echo", "say").service == "echo"
    assert messages.lookup_command("echo", "reboot").service == "*"
    assert messages.lookup_topic("echo.state").pattern == "<svc>.state"
    assert "echo" in statecharts.charts() and "```mermaid" in statecharts.mermaid("echo")
    assert registry.restart_order()[-1] == "echo"
    assert "echo: python -m ticgw.launch tests.echo_service\n" in registry.procfile()
    e = gateway.endpoints(defaults(), "/tmp/r")
    assert e.command("echo") == "ipc:///tmp/r/echo.cmd"
    # its configuration key, in a process that loads the configuration after the entry
    out = subprocess.run([sys.executable, str(ECHO), "--derived"], capture_output=True,
                         text=True, timeout=60, env=child_env("/tmp/r"), cwd=str(REPO))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["key Bus_Echo", "procfile echo: python -m ticgw.launch tests.echo_service",
                                       "charts activity,tic_input,modem,connection,install,echo"]


def test_service_in_process(ctx, run_dir, broker, tmp_path):
    e = eps.resolve(run_dir)
    before = threads_now()
    svc = echo_service.Echo(run_dir=run_dir, ctx=ctx, data_dir=tmp_path / "data")
    running = Threaded(svc)
    client = CommandClient(ctx, e, "cli")
    watch = Watch(ctx, e, client)
    pub = Publisher(ctx, e.xsub, "uplink")
    try:
        wait_for(lambda: "operational" in watch.states("activity"), 10.0, step=watch.step)
        snap = client.call("echo", "status", timeout=2.0)
        assert snap["service"] == "echo" and snap["activity"] == "operational"
        assert snap["led"] == "slow" and snap["pid"] == os.getpid() and snap["protocol"] == 1
        assert snap["machines"] == {"activity": "operational", "echo": "quiet"}
        assert snap["faults"] == 0 and snap["last_fault"] is None
        assert client.call("echo", "ping")["pong"] is True
        # the chart governs: saying, then back to quiet once the worker has spoken
        assert client.call("echo", "say", text="bonjour") == {"said": "bonjour"}
        wait_for(lambda: watch.states("echo")[-2:] == ["saying", "quiet"], 10.0,
                 step=watch.step)
        # subscriptions reach on_event
        wait_for(lambda: pub.publish("journal", message="Connexion réussie") and svc.heard_rows,
                 10.0, interval=0.05)
        assert svc.heard_rows[0] == "Connexion réussie"
        # the periodic status carries the subclass's fields
        wait_for(lambda: any(t == "echo.status" and env["data"].get("spoken") == 1
                             for t, env in watch.events), 10.0, step=watch.step)
    finally:
        running.stop()
        assert running.codes == [0]
        assert (run_dir / "stopped").exists()
        assert leaked_threads(before) == []
        watch.close()
        client.close()
        pub.close()


class Flaky(echo_service.Echo):
    """Its start-up fails twice, then works; its `say` work raises once."""

    failures = 2
    say_raises = 1

    def initialise(self):
        if Flaky.failures:
            Flaky.failures -= 1
            raise OSError("the port is not there yet")
        return True

    def say(self, event):
        if Flaky.say_raises:
            Flaky.say_raises -= 1
            raise RuntimeError("the voice is gone")
        super().say(event)


def test_fault_path_retries_and_refuses_commands_meanwhile(ctx, run_dir, broker, tmp_path):
    e = eps.resolve(run_dir)
    svc = Flaky(run_dir=run_dir, ctx=ctx, data_dir=tmp_path / "data")
    running = Threaded(svc)
    client = CommandClient(ctx, e, "cli")
    watch = Watch(ctx, e, client)
    try:
        # in fault: the status says why, its own commands are refused with the reason
        snap = wait_for(lambda: (answers(client, method="status") or {}).get("activity") ==
                        "fault" and client.call("echo", "status"), 10.0)
        assert "OSError: the port is not there yet" in snap["fault"]
        assert snap["led"] == "fast" and snap["last_fault"]["machine"] == "activity"
        with pytest.raises(RemoteError) as refused:
            client.call("echo", "say", text="x", timeout=2.0)
        assert refused.value.code == "fault" and "the port is not there yet" in refused.value.message
        # retried on a backoff timer until it works
        wait_for(lambda: (answers(client, method="status") or {}).get("activity") ==
                 "operational", 20.0)
        assert client.call("echo", "status")["faults"] == 2
        # an exception in a machine's callback: the machine's fault path, then usable again
        client.call("echo", "say", text="un")
        wait_for(lambda: any(env["data"].get("error") == "RuntimeError: the voice is gone"
                             for _, env in watch.events), 10.0, step=watch.step)
        assert client.call("echo", "status")["machines"]["echo"] == "quiet"
        client.call("echo", "say", text="deux")
        wait_for(lambda: client.call("echo", "status")["spoken"] == 1, 10.0)
    finally:
        running.stop()
        watch.close()
        client.close()
    assert running.codes == [0]


def start_echo(run_dir, data):
    log = open(run_dir / "echo.log", "ab")
    p = subprocess.Popen([sys.executable, str(ECHO)], env=child_env(run_dir, TICGW_DATA=data),
                         cwd=str(REPO), stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return p


def test_service_process_life(ctx, run_dir, broker, tmp_path):
    e = eps.resolve(run_dir)
    client = CommandClient(ctx, e, "cli")
    watch = Watch(ctx, e, client)
    p = start_echo(run_dir, tmp_path / "data")
    try:
        pong = wait_for(lambda: answers(client), 10.0)
        assert pong["pid"] == p.pid and pong["service"] == "echo"
        wait_for(lambda: "operational" in watch.states("activity"), 10.0, step=watch.step)

        # status within 100 ms while a worker blocks for 2 s, and while a deferred reply waits
        assert client.call("echo", "block", seconds=2.0) == {"started": True}
        slow = []
        other = CommandClient(ctx, e, "cli2")
        t = threading.Thread(target=lambda: slow.append(
            other.call("echo", "slow", timeout=5.0, seconds=0.5)))
        t.start()
        worst = 0.0
        for _ in range(10):
            t0 = time.monotonic()
            snap = client.call("echo", "status", timeout=1.0)
            worst = max(worst, time.monotonic() - t0)
        assert worst < 0.1, "status took %.3f s while a worker was busy" % worst
        assert snap["jobs_done"] == 0          # the 2 s job is still running
        t.join(5)
        other.close()
        assert slow == [{"slept": 0.5}]

        # restart: the reply comes first, then the same pid comes back with fresh code
        assert client.call("echo", "restart", timeout=2.0) == {"restarting": True}
        wait_for(lambda: len((run_dir / "boots").read_text().split()) == 2, 10.0)
        pong = wait_for(lambda: answers(client), 10.0)
        assert pong["pid"] == p.pid and p.poll() is None
        assert (run_dir / "boots").read_text().split() == [str(p.pid)] * 2
        assert client.call("echo", "status")["uptime"] < 10.0

        # SIGTERM: stopping is a state, on_stop runs, exit 0 within 5 s
        (run_dir / "stopped").unlink(missing_ok=True)
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        assert p.wait(5) == 0
        assert time.monotonic() - t0 < 5.0
        assert (run_dir / "stopped").read_text().strip() == str(p.pid)
        log = (run_dir / "echo.log").read_text()
        assert "activity: operational -> stopping (stop)" in log and "Traceback" not in log
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        watch.close()
        client.close()


@pytest.mark.parametrize("callback", [name for _, name in statecharts.callbacks(
    statecharts.chart("activity"))])
def test_an_exception_in_any_activity_callback_leaves_the_service_usable(
        ctx, run_dir, broker, tmp_path, monkeypatch, callback):
    from driven import raise_once
    from services.runtime.service import _Activity

    class StartsLate(echo_service.Echo):
        """Its start-up fails once, so that `fault` is entered too."""
        failed_once = False

        def initialise(self):
            if not StartsLate.failed_once:
                StartsLate.failed_once = True
                raise OSError("not yet")
            return True

    calls = raise_once(monkeypatch, _Activity, callback)
    e = eps.resolve(run_dir)
    svc = StartsLate(run_dir=run_dir, ctx=ctx, data_dir=tmp_path / "data")
    running = Threaded(svc)
    client = CommandClient(ctx, e, "cli")
    try:
        wait_for(lambda: (answers(client, method="status") or {}).get("activity") ==
                 "operational", 30.0, message="operational after the fault")
        client.call("echo", "say", text="encore")
        wait_for(lambda: client.call("echo", "status")["spoken"] == 1, 10.0)
    finally:
        running.stop()
        client.close()
    assert running.codes == [0]     # it stops cleanly, even when stopping raised
    assert calls, "%s was never called" % callback
    assert svc.machines.faults >= 1
