"""Issue 10, done as the issue says: in the demo (`make demo`, Procfile.demo under honcho), a
package built from the tree installs through /BIN and the version on the bus changes; a
broken one rolls back by itself. The outcome reaches the server with the next connection, not
before."""
from __future__ import annotations

import gzip
import json
import subprocess
import sys

from bus.testing import REPO, wait_for
from demo_helpers import answer, call, running_demo
from ticgw import __version__
from ticgw.pak import parse_version

SERVICES = ("acquisition", "modem", "uplink", "update")
#: the whole gateway restarts twice per update, each service in turn
WAIT = 240


def versions(env, run) -> dict:
    out = {}
    for s in SERVICES:
        r = answer(env, run, s, "status")
        out[s] = (r["version"], r["activity"]) if r else None
    return out


def all_on(env, run, version: str):
    return lambda: versions(env, run) == {s: (version, "operational") for s in SERVICES}


def demo_update(base, env, *args):
    r = subprocess.run([sys.executable, "-m", "sim.demo_update", "--demo", str(base), *args],
                       env=env, cwd=str(REPO), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def connect(env, run, events):
    n = len([e for e in events.of("task.ended") if e["data"]["task"] == "Connexion"])
    # a detection (at start, after a restart) holds the task lock for a while
    wait_for(lambda: answer(env, run, "uplink", "connect", "reason=test"), 120, interval=1.0)
    wait_for(lambda: len([e for e in events.of("task.ended")
                          if e["data"]["task"] == "Connexion"]) > n, 120, interval=0.2)


def running_argv(pid: int) -> list[str]:
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return f.read().decode().rstrip("\0").split("\0")


def log_rows(server) -> list[list[str]]:
    """Each LOG file on the server, in name (time) order, as its messages."""
    out = []
    for path in sorted((server / "LOG").glob("*.log.gz")):
        if not path.name.endswith("_debug.log.gz"):
            out.append([line.split("\t")[2] for line in
                        gzip.decompress(path.read_bytes()).decode("utf-8").splitlines()])
    return out


def test_update_through_bin_then_a_broken_one_rolls_back(tmp_path):
    next_version = "%s.post1" % __version__
    broken_version = "%s.post2" % __version__
    assert parse_version(broken_version) > parse_version(next_version) > parse_version(__version__)
    with running_demo(tmp_path / "d", DAQ_PeriodSec=5, Connection_PeriodMin=0, Connection_Hour=0,
                      Connection_Minute=0, BIN_HealthTimeout=30) as (base, env, events, output):
        run, server = str(base / "run"), base / "server"
        wait_for(all_on(env, run, __version__), 90, interval=0.5,
                 message="".join(output[-40:]))

        # 1. a package of the tree, one version up, through /BIN (UPDATE command, connection)
        said = demo_update(base, env, "--version", next_version, "--no-connect")
        assert "ticgw-%s.pak" % next_version in said
        connect(env, run, events)
        journal = [e["data"]["message"] for e in events.of("journal")]
        assert "Firmware ticgw-%s.pak vérifié : installation en fin de connexion" \
            % next_version in journal
        outcome = events.wait("update.outcome", WAIT)["data"]
        assert outcome["state"] == "committed", outcome
        assert (outcome["version"], outcome["from_version"]) == (next_version, __version__)
        wait_for(all_on(env, run, next_version), 60, interval=0.5,
                 message=json.dumps(versions(env, run)))
        status = call(env, run, "update", "status")
        assert status["record"]["state"] == "committed"
        assert status["release"].startswith(next_version + "-")
        assert (base / "data" / "releases" / "current").resolve().name == status["release"]
        # the version is the release's own: its services run from its environment
        for s in SERVICES:
            argv = running_argv(call(env, run, s, "ping")["pid"])
            assert argv[0].endswith("/releases/current/venv/bin/python"), argv
            assert argv[1:4] == ["-P", "-m", "services." + s], argv
        # the connection that fetched it did not report the outcome; the next one does
        assert not any("Mise à jour installée" in m for rows in log_rows(server) for m in rows)
        connect(env, run, events)
        assert ("Mise à jour installée : version %s (précédente %s)" % (next_version, __version__)
                in log_rows(server)[-1])

        # 2. a broken package: its acquisition never becomes operational; rolled back
        demo_update(base, env, "--version", broken_version, "--broken", "--no-connect")
        connect(env, run, events)
        outcome = events.wait("update.outcome", WAIT,
                              where=lambda e: e["data"]["version"] == broken_version)["data"]
        assert outcome["state"] == "rolled_back", outcome
        assert "acquisition (fault)" in outcome["reason"]
        wait_for(all_on(env, run, next_version), 90, interval=0.5,
                 message=json.dumps(versions(env, run)))
        status = call(env, run, "update", "status")
        assert status["record"]["state"] == "rolled_back"
        assert status["release"].startswith(next_version + "-")
        # the alarm and the journal row go to the server with the next connection
        events.wait("alarm.raised", 30, where=lambda e: e["data"]["code"] == "MISE_A_JOUR_ANNULEE")
        connect(env, run, events)
        rows = log_rows(server)[-1]
        assert any(m.startswith("Mise à jour annulée : retour à la version %s (services non "
                                "opérationnels" % next_version) for m in rows), rows
        alarms = b"".join(gzip.decompress(p.read_bytes()) for p in (server / "ALARM").glob("*"))
        assert b"MISE_A_JOUR_ANNULEE" in alarms
        assert "exited with code" not in "".join(output)      # honcho never saw a process end
