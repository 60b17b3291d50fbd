"""The uplink service as a process on the bus: connection on command, refusal while another task
runs, a connection started by an alarm, and the restart after a new configuration from the server
(announced with the manual's message)."""
import os
import subprocess
import sys
import time

import pytest
import zmq

from bus import endpoints as eps
from bus.client import CommandClient, Publisher
from bus.errors import RemoteError
from bus.tasklock import TaskLock
from bus.testing import REPO, short_run_dir, start_broker, stop_process, wait_for
from gateway_helpers import Events, configure, start_service
from sim.ftp_server import FtpTestServer

RESTART_MSG = ("Veuillez attendre le redémarrage de la passerelle, puis vous reconnecter au "
               "serveur Web ...")


@pytest.fixture
def gateway(tmp_path):
    run = short_run_dir(tmp_path)
    data = tmp_path / "data"
    server = FtpTestServer(tmp_path / "srv")
    server.start()
    configure(data, {1: "ticsim://CBEMM-ICC?speed=10&seed=7"}, DAQ_Period=0, DAQ_PeriodSec=2,
              **{"TIC_Baud[1]": 1200, "FTP_Server": "127.0.0.1", "FTP_Port": server.port,
                 "FTP_Login": server.user, "FTP_Password": server.password, "FTP_Timeout": 10,
                 "NTP_Server1": "", "NTP_Server2": ""})
    broker = start_broker(run)
    events = Events(run)
    procs = [start_service("acquisition", run, data), start_service("uplink", run, data)]
    ctx = zmq.Context()
    client = CommandClient(ctx, eps.resolve(run), src="test")
    try:                                 # a set-up that fails stops what it started, too
        wait_for(lambda: pings(client, "uplink"), 30)
        # the detection at start-up is the task 'Détection': wait for it to end
        events.wait("task.ended", timeout=60, where=lambda e: e["data"]["task"] == "Détection")
        yield run, data, server, events, client, procs
    finally:
        client.close()
        ctx.term()
        for p in procs:
            stop_process(p)
        events.close()
        stop_process(broker)
        server.close()


def pings(client, service) -> bool:
    """The service answers (a process still importing on a loaded machine does not yet)."""
    try:
        return bool(client.call(service, "ping", timeout=1.0))
    except Exception:
        return False


def journal(events):
    return [e["data"]["message"] for e in events.of("journal")]


def connect_and_wait(client, events, n):
    client.call("uplink", "connect", timeout=5, reason="test")
    wait_for(lambda: len([e for e in events.of("task.ended")
                          if e["data"]["task"] == "Connexion"]) >= n, 60)


def test_refused_while_another_task_runs(gateway):
    run, data, server, events, client, procs = gateway
    with TaskLock(run).acquire("Détection"):
        with pytest.raises(RemoteError) as e:
            client.call("uplink", "connect", timeout=5)
    assert str(e.value.message) == ("Une tâche 'Détection' est déjà en cours d'exécution. "
                                    "Veuillez réessayer dans quelques instants.")
    connect_and_wait(client, events, 1)  # free again: it runs
    rows = journal(events)
    # the detection at start-up saved the meter's serial and definition in the _daq.ini file
    assert rows[0] == "Sauvegarde de la configuration..."
    start = rows.index("Demande de connexion...")
    assert rows[start + 1] == "Arrêt de l'acquisition de données..."


def test_alarm_starts_a_connection(gateway):
    run, data, server, events, client, procs = gateway
    ctx = zmq.Context()
    pub = Publisher(ctx, eps.resolve(run).xsub, "acquisition")
    try:
        # PUB/SUB drops what is sent before the subscription lands: publish until it is seen
        wait_for(lambda: events.of("alarm.raised"), 10,
                 step=lambda: (pub.publish("alarm.raised", code="PTEC", source="TIC1",
                                           detail="HC.."), time.sleep(0.05)))
        started = events.wait("task.started", timeout=40,
                              where=lambda e: e["data"]["task"] == "Connexion")
        assert started["data"]["reason"] == "alarm"
    finally:
        pub.close()
        ctx.term()


def test_new_configuration_from_server_restarts_the_gateway(gateway):
    run, data, server, events, client, procs = gateway
    connect_and_wait(client, events, 1)          # first sync: uploads the local files
    remote = server.path("/CONFIG/WEBDYN_daq.ini")
    text = remote.read_text(encoding="latin-1").replace("DAQ_PeriodSec=2", "DAQ_PeriodSec=7")
    assert "DAQ_PeriodSec=7" in text
    remote.write_text(text, encoding="latin-1")
    later = time.time() + 120
    os.utime(remote, (later, later))
    connect_and_wait(client, events, 2)
    # the restart (and its row) comes once the connection is over
    wait_for(lambda: RESTART_MSG in journal(events), 20)
    rows = journal(events)
    assert "Récupération du fichier de configuration WEBDYN_daq.ini" in rows
    assert rows[-1] == RESTART_MSG
    assert "DAQ_PeriodSec=7" in (data / "config" / "WEBDYN_daq.ini").read_text("latin-1")
    assert events.wait("config.changed")["data"]["files"] == ["WEBDYN_daq.ini"]
    # every service re-executes itself and comes back with the new configuration (its first
    # events may be lost while it reconnects to the broker: ask it, rather than count events)
    status = wait_for(lambda: _status(client), 40)
    assert status["period_s"] == 7.0
    assert all(p.poll() is None for p in procs)  # same processes (execv), still running


def _status(client):
    try:
        st = client.call("acquisition", "status", timeout=1.0)
    except Exception:
        return None
    return st if st.get("period_s") == 7.0 else None


def test_getparams_with_the_acquisition_stopped(gateway):
    """Twenty GETPARAMS lines while the acquisition is down: one wait for it, not twenty; each
    line acknowledged ERROR; the connection ends and the data waiting are not held back."""
    run, data, server, events, client, procs = gateway
    stop_process(procs[0])                              # the acquisition
    cmd = server.path("/CMD/WEBDYN_CMD.csv")
    cmd.write_bytes(b"".join(b"%d;GETPARAMS\r\n" % i for i in range(1, 21)))
    t = time.monotonic()
    connect_and_wait(client, events, 1)
    took = time.monotonic() - t
    (ack,) = [p for p in server.path("/CMD").iterdir() if "_ACK_" in p.name]
    lines = ack.read_text().splitlines()
    assert len(lines) == 20
    assert all(line.endswith(";GETPARAMS;ERROR;parameters unavailable: the acquisition "
                             "service does not answer") for line in lines)
    rows = journal(events)
    assert rows[-1] == "Reprise de l'acquisition de données..."
    print("connection with the acquisition stopped: %.1f s" % took)


def test_a_fetched_package_goes_to_the_update_service_once(gateway):
    """/BIN through an UPDATE command: at the end of the connection the package is handed to
    the update service, whose refusal (no BIN_PublicKey here) it journals itself, once; the
    uplink adds no row of its own, restarts the gateway for the new configuration once the
    outcome is known, and the package is known as taken by its checksum."""
    import hashlib

    run, data, server, events, client, procs = gateway
    procs.append(start_service("update", run, data))
    wait_for(lambda: pings(client, "update"), 30)
    package = b"not really a package " * 100
    digest = hashlib.sha256(package).hexdigest()
    server.path("/BIN").mkdir(parents=True, exist_ok=True)
    server.path("/BIN/ticgw-9.pak").write_bytes(package)
    server.path("/CMD").mkdir(parents=True, exist_ok=True)
    server.path("/CMD/WEBDYN_CMD.csv").write_bytes(b"1;UPDATE;ticgw-9.pak;%s\r\n"
                                                   % digest.encode())
    connect_and_wait(client, events, 1)
    refused = "Échec de la mise à jour : Paquet refusé : clé publique BIN_PublicKey non configurée"
    wait_for(lambda: refused in journal(events), 30, message="\n".join(journal(events)))
    rows = journal(events)
    assert "Firmware ticgw-9.pak vérifié : installation en fin de connexion" in rows
    assert not any(r.startswith("Mise à jour reportée") for r in rows)
    # the restart the new configuration needs comes after the refusal, not before
    wait_for(lambda: RESTART_MSG in journal(events), 30)
    assert journal(events).index(RESTART_MSG) > journal(events).index(refused)

    def back():
        try:
            return all(client.call(s, "status", timeout=1.0)["uptime"] < 60
                       for s in ("acquisition", "uplink", "update"))
        except Exception:
            return False
    wait_for(back, 40)
    record = client.call("update", "status", timeout=5)["record"]
    assert record["state"] == "failed" and record["sha256"] == digest
    # fetched once; the next connections do not fetch it again (the firmware phase's own
    # test, tests/test_uplink_phases.py, goes through that with the update service's answers)
    assert len([c for c in server.commands if c.startswith("RETR") and "ticgw-9" in c]) == 1
    assert journal(events).count(refused) == 1
