"""End to end through Procfile.demo, as `make demo` runs it: three pty meters, the demo server,
the broker, acquisition and uplink under honcho. `ticgw bus tap` shows the three meters' frames,
and after a connection the server holds data files whose rows are exactly what was sampled."""
import subprocess
import sys
import time

import pytest

from bus.testing import REPO, wait_for
from demo_helpers import answer, call, running_demo, ticgw
from gateway_helpers import sealed_rows


@pytest.fixture
def demo_gateway(tmp_path):
    with running_demo(tmp_path / "d", DAQ_PeriodSec=3, Connection_PeriodMin=0,
                      Connection_Hour=0, Connection_Minute=0) as running:
        yield running


def test_bus_tap_shows_three_meters_and_server_gets_what_was_sampled(demo_gateway):
    base, env, events, output = demo_gateway
    run = str(base / "run")
    # 1. `ticgw bus tap` shows frames from all three meters
    tap = subprocess.Popen([sys.executable, "-m", "ticgw.cli", "bus", "--run", run, "tap"],
                           env=env, cwd=str(REPO), stdout=subprocess.PIPE, text=True)
    seen = set()
    deadline = time.monotonic() + 90
    try:
        for line in tap.stdout:
            for n in (1, 2, 3):
                if " tic.%d.frame " % n in line:
                    seen.add(n)
            if seen == {1, 2, 3} or time.monotonic() > deadline:
                break
    finally:
        tap.terminate()
        tap.wait(5)
    assert seen == {1, 2, 3}, "".join(output[-40:])
    families = {e["data"]["input"]: e["data"]["family"] for e in events.of("tic.")
                if e["topic"].endswith(".detected")}
    assert families == {1: "CBEMM-ICC", 2: "CBETM", 3: "LINKY"}

    # 2. records for every meter, then a connection delivers them
    wait_for(lambda: {e["data"]["input"] for e in events.of("spool.written")} == {1, 2, 3}, 60)
    r = ticgw(env, "bus", "--run", run, "call", "uplink", "connect", "reason=test")
    assert r.returncode == 0, r.stdout + r.stderr
    events.wait("task.ended", timeout=60, where=lambda e: e["data"]["task"] == "Connexion")
    journal = [e["data"]["message"] for e in events.of("journal")]
    # the detections at start-up saved each meter in the _daq.ini file, then the connection
    assert journal[:3] == ["Sauvegarde de la configuration..."] * 3
    assert journal[3] == "Demande de connexion..." and "Connexion terminée" in journal
    assert any(m.startswith("Dépôt du fichier de données ") for m in journal)
    # through the simulated modem (Modem mode): its link up, its signal, then down
    wan = journal.index("Connexion modem GPRS...")
    assert journal[wan + 1] == "Connexion établie"
    assert journal[wan + 2] == "Modem : signal 18, RSRP -95 dBm, SINR 10 dB, LTE, Orange F"
    assert journal.index("Déconnexion modem...") < journal.index("Connexion terminée")

    # 3. the server's data files hold exactly the sampled rows reported before the connection
    started = next(e["ts"] for e in events.of("task.started")
                   if e["data"]["task"] == "Connexion")
    reported = {(e["data"]["input"], e["data"]["time"]): e["data"]["columns"]
                for e in events.of("spool.written") if e["ts"] < started}
    rows = sealed_rows(base / "server" / "DATA")
    assert reported and set(reported) <= set(rows)
    for key, cols in reported.items():
        assert rows[key] == [cols]
    assert list((base / "server" / "LOG").glob("WEBDYN_*.log.gz"))
    # the demo's command file was run and acknowledged, the parameters file deposited
    acks = list((base / "server" / "CMD").glob("WEBDYN_ACK_*.csv"))
    assert len(acks) == 1 and not (base / "server" / "CMD" / "WEBDYN_CMD.csv").exists()
    assert [l.split(";")[2:] for l in acks[0].read_text().splitlines()] == [
        ["GETPARAMS", "OK"], ["LOG", "OK"], ["FOO", "ERROR", "unknown command FOO"]]
    assert list((base / "server" / "DATA").glob("WEBDYN_TIC_P_*.csv.gz"))
    assert list((base / "server" / "LOG").glob("WEBDYN_*_debug.log.gz"))


def test_front_panel_install_button_and_whole_gateway_restart(demo_gateway):
    base, env, events, output = demo_gateway
    run = str(base / "run")
    # the panel: every service operational, the three meters read
    leds = wait_for(lambda: (lambda l: l if l and l["ACTIVITY"] == "slow" and all(
        l["TIC%d" % n] == "flicker" for n in (1, 2, 3)) else None)(
        (answer(env, run, "acquisition", "leds") or {}).get("leds")), 60, interval=0.5,
        message="".join(output[-40:]))
    assert set(leds) == {"ACTIVITY", "TIC1", "TIC2", "TIC3"}
    pids = {s: call(env, run, s, "ping")["pid"] for s in ("acquisition", "uplink")}
    wait_for(lambda: {e["data"]["input"] for e in events.of("spool.written")} == {1, 2, 3}, 60)

    # INSTALL, short press: a connection that also deposits the parameters file
    assert call(env, run, "acquisition", "button", "press=short") == {"action": "connect"}
    started = events.wait("task.started", 30, where=lambda e: e["data"]["task"] == "Connexion")
    assert started["data"]["reason"] == "install"
    events.wait("task.ended", 60, where=lambda e: e["data"]["task"] == "Connexion")
    assert list((base / "server" / "DATA").glob("WEBDYN_TIC_P_*.csv.gz"))

    # INSTALL, long press: the LEDs go dark, every service restarts (in the registry's order,
    # the one asked last), the manual's row is journaled, honcho keeps the same processes
    assert call(env, run, "acquisition", "button", "press=long") == {"action": "reboot"}
    events.wait("journal", 10, where=lambda e: e["data"]["message"].startswith(
        "Veuillez attendre le redémarrage de la passerelle"))
    events.wait("gateway.leds", 10, where=lambda e: set(e["data"]["leds"].values()) == {"off"})

    def back():
        try:
            return all(call(env, run, s, "status")["uptime"] < 20 and
                       call(env, run, s, "status")["activity"] == "operational"
                       for s in pids)
        except AssertionError:
            return False
    wait_for(back, 60, interval=0.5, message="".join(output[-40:]))
    assert {s: call(env, run, s, "ping")["pid"] for s in pids} == pids   # execv: same pids
    names = ("acquisition", "modem", "uplink", "update", "web")

    def restarted_now():
        # honcho relays each process's lines from its own thread: wait for all five
        found = [next((s for s in names if s in l), "?") for l in output if "restarting: " in l]
        return found if len(found) >= len(names) else None
    restarted = wait_for(restarted_now, 30, interval=0.5, message="".join(output[-60:]))
    text = "".join(output)
    # every other service, then the one asked (the acquisition) last
    assert sorted(restarted[:-1]) == ["modem", "update", "uplink", "web"]
    assert restarted[-1] == "acquisition"
    assert "exited with code" not in text           # honcho never saw a process end
