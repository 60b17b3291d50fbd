"""The uplink's connection machine with the acquisition beside it (both in this process, on a
real broker, a real FTP server and a simulated meter): an exception in every callback of the
chart ends the connection as a failed one and the next one completes; a connection has a
deadline; a connection refused while a detection runs starts as soon as it ends; a burst of
alarms makes one connection; a row the acquisition journals reaches the uploaded log."""
import gzip
import os
import threading

import pytest
import zmq

import sim
import statecharts
from bus import endpoints as eps
from bus.client import CommandClient, Publisher
from bus.tasklock import TaskLock
from bus.testing import FakeClock, short_run_dir, start_broker, stop_process, wait_for
from driven import Driven, raise_once
from gateway_helpers import Events, Threaded, configure
from services.acquisition.service import AcquisitionService
from services.uplink.service import DEADLINE_ROW, FAULT_ROW, ConnectionModel, UplinkService
from sim.ftp_server import FtpTestServer
from statecharts import connection
from ticgw.config import ConfigStore

sim.register()          # ticsim:// in this process


@pytest.fixture
def gw(tmp_path):
    run = short_run_dir(tmp_path)
    data = tmp_path / "data"
    server = FtpTestServer(tmp_path / "srv")
    server.start()
    configure(data, {1: "ticsim://CBEMM-ICC?speed=10&seed=7"}, DAQ_Period=0, DAQ_PeriodSec=1,
              **{"TIC_Baud[1]": 1200, "FTP_Server": "127.0.0.1", "FTP_Port": server.port,
                 "FTP_Login": server.user, "FTP_Password": server.password, "FTP_Timeout": 10,
                 "NTP_Server1": "", "NTP_Server2": "", "Connection_Timeout": 1})
    broker = start_broker(run)
    events = Events(run)
    ctx = zmq.Context()
    client = CommandClient(ctx, eps.resolve(run), src="test")
    running = []

    class Gateway:
        pass

    g = Gateway()
    g.run, g.data, g.server, g.events, g.client = run, data, server, events, client

    def acquisition(**kw):
        a = Threaded(AcquisitionService(ConfigStore(data), run_dir=run, probe_scale=0.5, **kw))
        running.append(a)
        return a

    def uplink():
        u = Threaded(UplinkService(ConfigStore(data), run_dir=run))
        running.append(u)
        return u

    g.acquisition, g.uplink = acquisition, uplink
    yield g
    for r in reversed(running):
        r.stop()
    client.close()
    ctx.term()
    events.close()
    stop_process(broker)
    server.close()


def ended(events, task="Connexion"):
    return [e for e in events.of("task.ended") if e["data"]["task"] == task]


def rows(events):
    return [e["data"]["message"] for e in events.of("journal")]


def boot(g):
    g.acquisition()
    up = g.uplink()
    wait_for(lambda: ended(g.events, "Détection"), 30, message="detection at start-up")
    wait_for(lambda: g.events.of("spool.written"), 30, message="a record")
    return up


@pytest.mark.parametrize("callback", [name for _, name in statecharts.callbacks(connection)])
def test_an_exception_in_any_connection_callback_ends_it_and_the_next_one_works(
        gw, monkeypatch, callback):
    calls = raise_once(monkeypatch, ConnectionModel, callback)
    up = boot(gw)
    gw.client.call("uplink", "connect", timeout=5, reason="test")
    wait_for(lambda: ended(gw.events), 60, message="the first connection ends")
    assert calls, "%s was never called" % callback
    # the lock is free, the acquisition resumed; a connection cut short says so
    first = ended(gw.events)[0]["data"]
    wait_for(lambda: "Reprise de l'acquisition de données..." in rows(gw.events), 10)
    if callback == "connection_over":       # the connection itself had ended well
        assert first["outcome"] == "ok" and FAULT_ROW not in rows(gw.events)
    else:
        assert first["outcome"] == "failed" and FAULT_ROW in rows(gw.events)
    wait_for(lambda: TaskLock(gw.run).current() is None, 10, message="task lock released")
    wait_for(lambda: gw.client.call("acquisition", "status")["paused"] is False, 10)
    assert up.svc.machines.last_fault["error"] == "RuntimeError: injected fault"
    # the next connection completes and delivers what was sampled meanwhile
    written = len(gw.events.of("spool.written"))
    wait_for(lambda: len(gw.events.of("spool.written")) > written, 20)
    n = len(rows(gw.events))
    gw.client.call("uplink", "connect", timeout=5, reason="test")
    wait_for(lambda: len(ended(gw.events)) == 2, 60, message="the second connection ends")
    assert ended(gw.events)[1]["data"]["outcome"] == "ok"
    second = rows(gw.events)[n:]
    assert second[0] == "Demande de connexion..." and "Connexion terminée" in second
    assert any(r.startswith("Dépôt du fichier de données ") for r in second)
    assert list(gw.server.path("/DATA").glob("WEBDYN_TIC_*.csv.gz"))


def test_a_connection_that_hangs_is_cut_at_its_deadline(gw):
    gw.acquisition()
    wait_for(lambda: ended(gw.events, "Détection"), 30)
    clock = FakeClock()
    up = Driven(UplinkService(ConfigStore(gw.data), run_dir=gw.run, clock=clock), clock)
    try:
        up.run_until(lambda: up.svc.activity == "operational", 10)
        gw.server.delay_replies(30.0, {"USER"})           # the login never answers in time
        up.svc.cmd_connect({"reason": "test"})
        up.run_until(lambda: up.svc.conn_model.state == "alarms", 20, what="in the FTP phases")
        up.advance(61)                                    # Connection_Timeout=1 (minute)
        up.run_until(lambda: up.svc.conn_model.state == "idle", 20, what="back to idle")
        wait_for(lambda: ended(gw.events), 10)
        assert ended(gw.events)[0]["data"]["outcome"] == "failed"
        wait_for(lambda: DEADLINE_ROW in rows(gw.events), 10)
        assert TaskLock(gw.run).current() is None
        assert any(e["data"]["trigger"] == "deadline" for e in gw.events.of("uplink.state"))
    finally:
        gw.server.clear_faults()
        up.close()


def test_a_connection_refused_during_a_detection_starts_when_it_ends(gw):
    gw.acquisition()
    up = gw.uplink()
    wait_for(lambda: ended(gw.events, "Détection"), 30)
    detection = TaskLock(gw.run).acquire("Détection")   # a detection is running
    up.svc.loop.post(up.svc.try_connect, "schedule")     # the schedule's turn comes
    wait_for(lambda: up.svc.pending_reason == "schedule", 10)
    assert not [e for e in gw.events.of("task.started") if e["data"]["task"] == "Connexion"]
    detection.release()
    Publisher_ = Publisher(zmq.Context.instance(), eps.resolve(gw.run).xsub, "acquisition")
    try:
        wait_for(lambda: [e for e in gw.events.of("task.started")
                          if e["data"]["task"] == "Connexion"], 20, step=lambda: (
            Publisher_.publish("task.ended", task="Détection", outcome="ok"),
            threading.Event().wait(0.2)), message="the connection starts after the detection")
    finally:
        Publisher_.close()
    started = [e for e in gw.events.of("task.started") if e["data"]["task"] == "Connexion"]
    assert started[0]["data"]["reason"] == "schedule"
    wait_for(lambda: ended(gw.events), 60)


def test_a_burst_of_alarms_makes_one_connection(gw):
    gw.acquisition()
    wait_for(lambda: ended(gw.events, "Détection"), 30)
    clock = FakeClock()
    up = Driven(UplinkService(ConfigStore(gw.data), run_dir=gw.run, clock=clock), clock)
    pub = Publisher(zmq.Context.instance(), eps.resolve(gw.run).xsub, "acquisition")
    try:
        up.run_until(lambda: up.svc.activity == "operational", 10)
        # publish until the uplink follows (PUB/SUB drops what comes before), then a burst
        def first_alarm():
            pub.publish("alarm.raised", code="PTEC", source="TIC1", detail="HC")
            up.run_for(0.05)
            return up.svc.alarm_timer is not None
        up.run_until(first_alarm, 10, what="alarm seen")
        for i in range(10):
            pub.publish("alarm.raised", code="PTEC", source="TIC1", detail="HC%d" % i)
        up.run_for(0.5)
        up.advance(11)                                    # the alarm debounce
        up.run_until(lambda: ended(gw.events), 60, what="the connection ends")
        up.advance(30)
        up.run_for(1.0)
        starts = [e for e in gw.events.of("task.started") if e["data"]["task"] == "Connexion"]
        assert len(starts) == 1 and starts[0]["data"]["reason"] == "alarm"
    finally:
        pub.close()
        up.close()


def test_a_row_the_acquisition_journals_reaches_the_uploaded_log(gw):
    # a spool over its budget: old data files are dropped, the journal says so
    outbox = gw.data / "outbox" / "DATA"
    outbox.mkdir(parents=True, exist_ok=True)
    for day in (1, 2):
        (outbox / ("WEBDYN_TIC_2401%02d_000000.csv.gz" % day)).write_bytes(os.urandom(700_000))
    ConfigStore(gw.data).update({"Spool_MaxMB": "1"}, by="setup")
    gw.acquisition()
    gw.uplink()
    wait_for(lambda: ended(gw.events, "Détection"), 30)
    wait_for(lambda: gw.events.of("spool.written"), 30)
    gw.client.call("uplink", "connect", timeout=5, reason="test")
    wait_for(lambda: ended(gw.events), 60)
    row = "Espace disque plein : 1 fichier(s) de données supprimé(s)"
    assert row in rows(gw.events)
    assert "ESPACE_DISQUE" in [e["data"]["code"] for e in gw.events.of("alarm.raised")]
    logs = list(gw.server.path("/LOG").glob("WEBDYN_*.log.gz"))
    text = "".join(gzip.decompress(p.read_bytes()).decode() for p in logs)
    assert row in text and "Demande de connexion..." in text
