"""The bus over tcp:// with CURVE, configured the way an installer does it (Bus_* keys in the
_config.ini): the broker, a service and `ticgw bus` all take their endpoints and keys from the
configuration; a client without the gateway's key is refused."""
import socket
import subprocess
import sys

import pytest
import zmq

from bus import endpoints as eps
from bus.client import CommandClient
from bus.errors import BusTimeout
from bus.testing import REPO, child_env, short_run_dir, stop_process, wait_for
from gateway_helpers import configure, start_service
from ticgw import gateway
from ticgw.config import ConfigStore


def free_port() -> int:
    # bind to 0 and read the port back; the broker binds it a moment later (small race)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tcp_bus_with_curve_from_the_configuration(tmp_path):
    run = short_run_dir(tmp_path)
    data = tmp_path / "data"
    public, secret = (k.decode() for k in zmq.curve_keypair())
    configure(data, {1: "ticsim://LINKY?mode=standard&speed=4"},
              **{"TIC_Baud[1]": 9600, "Bus_Xsub": "tcp://127.0.0.1:%d" % free_port(),
                 "Bus_Xpub": "tcp://127.0.0.1:%d" % free_port(),
                 "Bus_Acquisition": "tcp://127.0.0.1:%d" % free_port(),
                 "Bus_CurvePublicKey": public, "Bus_CurveSecretKey": secret})
    env = child_env(run, TICGW_DATA=data)
    broker = subprocess.Popen([sys.executable, "-m", "ticgw.cli", "bus", "broker"], env=env,
                              cwd=str(REPO),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    acq = start_service("acquisition", run, data)
    try:
        tap = subprocess.run([sys.executable, "-m", "ticgw.cli", "bus", "--run", str(run),
                              "tap", "tic.1.frame", "--count", "2", "--seconds", "40"],
                             env=env, cwd=str(REPO), capture_output=True, text=True, timeout=60)
        lines = [l for l in tap.stdout.splitlines() if " tic.1.frame " in l]
        assert len(lines) == 2, tap.stdout + tap.stderr + "\n".join(acq.output[-20:])
        call = subprocess.run([sys.executable, "-m", "ticgw.cli", "bus", "call", "acquisition",
                               "ping"], env=env, cwd=str(REPO), capture_output=True, text=True,
                              timeout=30)
        assert call.returncode == 0 and '"pong": true' in call.stdout
        # in this process too: the right keys are admitted, another key pair is not (ZAP)
        ctx = zmq.Context()
        good = gateway.endpoints(ConfigStore(data).settings, run)
        assert good.command("acquisition").startswith("tcp://127.0.0.1:")
        client = CommandClient(ctx, good, src="test")
        assert client.call("acquisition", "ping", timeout=5)["pong"]
        client.close()
        other = eps.resolve(run, {"acquisition": good.command("acquisition")},
                            eps.CurveKeys(*(k.decode() for k in zmq.curve_keypair())))
        intruder = CommandClient(ctx, other, src="intruder")
        with pytest.raises(BusTimeout):
            intruder.call("acquisition", "ping", timeout=1.5)
        intruder.close()
        ctx.term()
    finally:
        stop_process(acq)
        stop_process(broker)
