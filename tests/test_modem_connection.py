"""A connection in Modem mode with the real processes: the broker, the modem service over the
simulated modem (sim/modem.py on a pseudo-terminal), the uplink and a pyftpdlib server. The link
dropping in the middle of the data phase cuts the connection short, the files stay queued, the
next connection sends them."""
from __future__ import annotations


import pytest
import zmq

from bus import endpoints as eps
from bus.client import CommandClient
from bus.testing import short_run_dir, start_broker, stop_process, wait_for
from gateway_helpers import Events, configure, start_service
from sim.ftp_server import FtpTestServer
from sim.modem import PtyModem
from ticgw import files


def outbox_file(data, name: str, t: float) -> str:
    rec = {"input": 1, "serial": "021528603314", "def": "WEBDYN_TIC_CBEMM-ICC.ini", "t": t,
           "seq": 1, "cols": ["000001000", "001"]}
    path = data / "outbox" / "DATA" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(files.data_file([rec]))
    return path.name


@pytest.fixture
def gateway(tmp_path):
    run = short_run_dir(tmp_path)
    data = tmp_path / "data"
    server = FtpTestServer(tmp_path / "srv").start()
    modem = PtyModem(link=str(tmp_path / "ttyMODEM")).start()
    configure(data, {}, Connection_Mode="modem", Modem_Port=modem.path, GPRS_Apn="m2minetnat",
              FTP_Server="127.0.0.1", FTP_Port=server.port, FTP_Login=server.user,
              FTP_Password=server.password, FTP_Timeout=10, NTP_Server1="", NTP_Server2="")
    broker = start_broker(run)
    events = Events(run)
    procs = [start_service("modem", run, data), start_service("uplink", run, data)]
    ctx = zmq.Context()
    client = CommandClient(ctx, eps.resolve(run), src="test")
    try:                                 # a set-up that fails stops what it started, too
        wait_for(lambda: client.call("modem", "status", timeout=1.0)["state"] == "Standby", 30)
        yield run, data, server, modem, events, client
    finally:
        client.close()
        ctx.term()
        for p in procs:
            stop_process(p)
        events.close()
        stop_process(broker)
        modem.stop()
        server.close()


def journal(events) -> list[str]:
    return [e["data"]["message"] for e in events.of("journal")]


def connection(client, events, n: int, reason: str):
    client.call("uplink", "connect", timeout=5, reason=reason)
    wait_for(lambda: len([e for e in events.of("task.ended")
                          if e["data"]["task"] == "Connexion"]) >= n, 90)


def test_link_lost_mid_connection_keeps_the_files_for_the_next_one(gateway):
    run, data, server, modem, events, client = gateway
    names = [outbox_file(data, files.data_name("WEBDYN", "261130_10%02d00" % i), 1_796_000_000 + i)
             for i in range(3)]
    server.delay_replies(1.5, commands={"STOR"})      # a slow link: the data phase takes a while
    client.call("uplink", "connect", timeout=5, reason="test")
    wait_for(lambda: "Gestion des fichiers de données ..." in journal(events), 60)
    modem.drop_carrier()                               # the network drops the context
    wait_for(lambda: [e for e in events.of("task.ended") if e["data"]["task"] == "Connexion"],
             60)
    rows = journal(events)
    assert "Connexion modem GPRS..." in rows and "Connexion établie" in rows
    assert "Connexion interrompue : perte de la liaison modem" in rows
    assert rows[-1] == "Reprise de l'acquisition de données..."
    left = sorted(p.name for p in (data / "outbox" / "DATA").iterdir())
    assert left and set(left) <= set(names), "\n".join(rows)           # what was not delivered stays queued
    # the modem recovers by itself; the next connection sends the rest
    server.delay_replies(0)
    wait_for(lambda: client.call("modem", "status", timeout=1.0)["state"] == "Standby", 60)
    connection(client, events, 2, "again")
    assert sorted(p.name for p in server.path("/DATA").iterdir()) == sorted(names)
    assert not list((data / "outbox" / "DATA").iterdir())


def test_wan_error_says_why(gateway):
    run, data, server, modem, events, client = gateway
    modem.set(dial="no-carrier")
    connection(client, events, 1, "test")
    rows = journal(events)
    i = rows.index("Erreur de connexion WAN")
    assert rows[i - 1] == "Connexion modem GPRS..."
    assert rows[i + 1] == "Modem : appel refusé (NO CARRIER)"
    assert "Connexion établie" not in rows
