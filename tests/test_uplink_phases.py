"""The uplink's connection phases (services.uplink.phases) against a real FTP server.

Every test drives `Connection` phase methods directly, as the uplink service's worker thread
does, against pyftpdlib (sim.ftp_server.FtpTestServer on a free port), a local SNTP responder and,
for the site ID, the demo server's Web Services. Outbox files are made by the acquisition's own
Spool, so names and contents are the real ones. The journal messages checked are the manual's
(section 10.3.2), verbatim.
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import re
import time
from pathlib import Path

import pytest

from services.uplink.ftp import FtpSession, FtpSettings
from services.uplink.webservices import WebServices
from sim.ftp_server import FtpTestServer
from sim.ntp_server import NtpResponder
from sim.server import DemoServer
from gateway_helpers import Scripted
from statecharts.connection import PHASES
from ticgw.clock import GatewayClock

# The harness's fixtures (ftp_server, ntp_server, gw) are imported to be found by pytest.
from uplink_harness import (DEF_NAME, DEFINITION, MAC, SITE, T0, Gateway,  # noqa: F401
                            big_data_file, ftp_server, gunzip_lines, gw, no_tmp_left,
                            ntp_server, outbox_data_file, run_connection, run_phase,
                            set_remote, stored)


# ================================================================== requesting, WAN, closing

def test_requesting_pauses_and_seals(gw):
    gw.spool.append_record(1, "021528603314", DEF_NAME, T0, ["000001000", "001"])
    conn = gw.connection()
    assert conn.requesting() == "done"
    assert gw.messages() == ["Demande de connexion...", "Arrêt de l'acquisition de données..."]
    assert gw.bus.methods() == [("acquisition", "pause"), ("acquisition", "seal")]
    assert len(gw.outbox("DATA")) == 1  # the pending record was sealed into a data file


def test_requesting_with_the_install_button_asks_for_the_parameters_file(gw):
    conn = gw.connection(install=True)
    assert conn.requesting() == "done"
    assert ("acquisition", "params") in gw.bus.methods()
    assert len(gw.outbox("PARAM")) == 1


def test_requesting_goes_on_when_acquisition_does_not_answer(gw):
    gw.bus.fail.add(("acquisition", "seal"))
    assert gw.connection().requesting() == "done"
    assert gw.messages()[-1] == "Arrêt de l'acquisition de données..."


def test_wan_ethernet(gw):
    assert gw.connection().wan() == "done"
    assert gw.messages() == ["Connexion établie"]
    assert gw.bus.calls == []


def test_wan_modem_ok_then_disconnect_at_closing(gw):
    gw.store.update({"Connection_Mode": "modem", "Modem_Port": "/dev/ttyUSB3"})
    conn = gw.connection()
    assert conn.wan() == "done"
    conn.closing()
    assert gw.messages() == ["Connexion modem GPRS...", "Connexion établie",
                             "Modem : signal inconnu", "Déconnexion modem...",
                             "Connexion terminée", "Reprise de l'acquisition de données..."]
    assert gw.bus.methods() == [("modem", "connect"), ("modem", "disconnect"),
                                ("acquisition", "resume")]


def test_wan_modem_failure_aborts_the_connection(gw):
    gw.store.update({"Connection_Mode": "modem", "Modem_Port": "/dev/ttyUSB3"})
    gw.bus.fail.add(("modem", "connect"))
    gw.data_file()
    outcomes = run_connection(gw.connection())
    assert outcomes["wan"] == "abort" and list(outcomes)[-1] == "wan"
    msgs = gw.messages()
    assert msgs[msgs.index("Connexion modem GPRS...") + 1] == "Erreur de connexion WAN"
    assert "Synchronisation NTP..." not in msgs
    assert len(gw.outbox("DATA")) == 1
    assert gw.ftp.commands == []  # the FTP server was never contacted


# ========================================================================================= NTP

def test_ntp_sets_the_gateway_clock_offset(gw):
    conn = gw.connection()
    assert conn.ntp() == "done"
    assert gw.messages() == ["Synchronisation NTP...", "Synchronisation NTP OK"]
    assert gw.clock.offset == pytest.approx(42.0, abs=0.1)
    # kept on disk for the other services (and the next start)
    assert GatewayClock(gw.state).offset == pytest.approx(42.0, abs=0.1)


def test_ntp_second_server_when_the_first_is_silent(gw):
    with NtpResponder(behaviour="silent") as silent:
        gw.store.update({"NTP_Server1": silent.address, "NTP_Server2": gw.ntp.address})
        assert gw.connection().ntp() == "done"
    assert gw.messages()[-1] == "Synchronisation NTP OK"
    assert gw.clock.offset == pytest.approx(42.0, abs=0.1)


def test_ntp_none_answering_fails_and_the_next_phases_run(gw):
    with NtpResponder(behaviour="silent") as a, NtpResponder(behaviour="wrong_mode") as b:
        gw.store.update({"NTP_Server1": a.address, "NTP_Server2": b.address})
        gw.clock.set_offset(1.5)
        gw.data_file()
        t = time.monotonic()
        outcomes = run_connection(gw.connection())
        assert time.monotonic() - t < 10
    assert outcomes["ntp"] == "failed"
    msgs = gw.messages()
    i = msgs.index("Synchronisation NTP...")
    assert msgs[i + 1] == "Erreur de synchronisation NTP"
    assert "Synchronisation NTP OK" not in msgs
    assert gw.clock.offset == 1.5  # the last measured offset stays in use
    assert msgs[i + 2] == "Gestion des alarmes ..."
    assert all(o != "abort" for o in outcomes.values()) and "firmware" in outcomes
    assert gw.outbox("DATA") == []  # data still went


# ===================================================================================== site ID

def test_site_id_from_web_services(gw, tmp_path):
    with DemoServer(tmp_path / "demo") as demo:
        # the manual: tick "automatique" and leave the Site field empty
        gw.store.update({"Site_IdAuto": "1", "Site_Id": "", "WebService_Enable": "1",
                         "WebService_Url": demo.web_service_url})
        assert gw.store.settings.site_id == "" and gw.store.settings.site == "WEBDYN"
        assert gw.store.file_path("config").name == "WEBDYN_config.ini"
        conn = gw.connection(webservices=WebServices(demo.web_service_url))
        assert conn.site_id() == "done"
        assert gw.messages() == ["Récupération ID site...", "Sauvegarde de la configuration...",
                                 "ID Site TICGW-334455"]
        assert gw.store.settings.site_id == "TICGW-334455"
        assert conn.site == "TICGW-334455" and conn.restart_needed
        assert gw.store.file_path("config").name == "TICGW-334455_config.ini"
        assert gw.store.file_path("config").exists()
        # the rest of the connection uses the new site: its command file, its config files
        set_remote(gw.ftp, "/CMD/TICGW-334455_CMD.csv", b"1;DETECT\r\n")
        assert conn.commands() == "done"
        assert "Récupération du fichier TICGW-334455_CMD.csv" in gw.messages()
        assert conn.config() == "done"
        assert "TICGW-334455_config.ini" in gw.server_files("/CONFIG")


def test_version_is_announced_once_after_a_start(gw, tmp_path):
    with DemoServer(tmp_path / "demo") as demo:
        gw.store.update({"WebService_Enable": "1", "WebService_Url": demo.web_service_url})
        first = gw.connection(webservices=WebServices(demo.web_service_url), send_version=True)
        assert first.site_id() == "done"
        later = gw.connection(webservices=WebServices(demo.web_service_url))
        assert later.site_id() == "done"
        rows = [r for r in demo.read_log() if r["service"] == "confirm"]
        assert [(r["action"], r["action_comp"].split()[0]) for r in rows] == [("VERSION", "ticgw")]


def test_site_id_skipped_unless_automatic_with_web_services(gw, tmp_path):
    with DemoServer(tmp_path / "demo") as demo:
        gw.store.update({"WebService_Enable": "1", "WebService_Url": demo.web_service_url})
        conn = gw.connection(webservices=WebServices(demo.web_service_url))
        assert conn.site_id() == "done"
    assert gw.messages() == []
    assert gw.store.settings.site_id == SITE


def test_site_id_server_error(gw):
    bad = Scripted(500, "oops")
    try:
        gw.store.update({"Site_IdAuto": "1", "WebService_Enable": "1", "WebService_Url": bad.url + "/"})
        before = gw.store.file_path("config").read_bytes()
        conn = gw.connection(webservices=WebServices(bad.url + "/", timeout=2))
        assert conn.site_id() == "failed"
    finally:
        bad.close()
    assert gw.messages() == ["Récupération ID site...", "Erreur de récupération de l'ID site"]
    assert gw.store.settings.site_id == SITE
    assert gw.store.file_path("config").read_bytes() == before
    assert not conn.restart_needed


# ====================================================================================== alarms

def test_alarms_none(gw):
    assert gw.connection().alarms() == "done"
    assert gw.messages() == ["Gestion des alarmes ...", "Aucune alarme en cours..."]


def test_alarms_deposited_and_removed_locally(gw):
    path = gw.alarm_file()
    content = path.read_bytes()
    assert gw.connection().alarms() == "done"
    assert gw.messages() == ["Gestion des alarmes ...", "Dépôt du fichier d'alarme %s" % path.name]
    assert not path.exists()
    assert gw.ftp.path("/ALARM/" + path.name).read_bytes() == content
    assert gunzip_lines(gw.ftp.path("/ALARM/" + path.name))[0].endswith(";TIC1;%s;IINST;3;012"
                                                                        % DEF_NAME)


def test_alarm_directory_missing_keeps_the_files_and_later_phases_run(tmp_path, ntp_server):
    with FtpTestServer(omit=("/ALARM",)) as srv:
        gw = Gateway(tmp_path, srv, ntp_server)
        alarm = gw.alarm_file()
        data = gw.data_file()
        outcomes = run_connection(gw.connection())
        assert outcomes["alarms"] == "failed"
        msgs = gw.messages()
        i = msgs.index("Erreur de dépôt du fichier d'alarme %s" % alarm.name)
        assert msgs[i + 1] == "Répertoire /ALARM absent du serveur FTP (paramètre FTP_DirAlarm)"
        assert alarm.exists()
        assert "Dépôt du fichier de données %s" % data.name in msgs
        assert gw.server_files("/DATA") == [data.name]
        assert outcomes["logs"] == "done" and outcomes["firmware"] == "done"
        assert not srv.path("/ALARM").exists()  # the gateway never creates directories


# ==================================================================================== commands

def test_commands_none(gw):
    assert gw.connection().commands() == "done"
    assert gw.messages() == ["Gestion des fichiers de commandes ...",
                             "Pas de fichier de commandes disponible..."]
    assert gw.server_files("/CMD") == []


def test_command_file_fetched_deleted_and_acknowledged(gw):
    set_remote(gw.ftp, "/CMD/WEBDYN_CMD.csv", b"1;DETECT\r\n2;CONNECT\r\n")
    conn = gw.connection()
    assert conn.commands() == "done"
    (ack,) = gw.server_files("/CMD")
    assert ack.startswith("WEBDYN_ACK_") and ack.endswith(".csv")
    assert gw.messages() == ["Gestion des fichiers de commandes ...",
                             "Récupération du fichier WEBDYN_CMD.csv",
                             "Dépôt du fichier %s" % ack]
    lines = gw.ftp.path("/CMD/" + ack).read_text().splitlines()
    assert [l.split(";", 1)[1] for l in lines] == ["1;DETECT;OK", "2;CONNECT;OK"]
    assert gw.outbox("CMD") == []
    assert conn.effects.detect and conn.effects.connect_again
    # executed once: the next connection finds no command file
    assert gw.connection().commands() == "done"
    assert gw.messages()[-1] == "Pas de fichier de commandes disponible..."


def test_command_directory_missing(tmp_path, ntp_server):
    with FtpTestServer(omit=("/CMD",)) as srv:
        gw = Gateway(tmp_path, srv, ntp_server)
        assert gw.connection().commands() == "failed"
        assert gw.messages() == ["Gestion des fichiers de commandes ...",
                                 "Erreur de récupération du fichier WEBDYN_CMD.csv",
                                 "Répertoire /CMD absent du serveur FTP (paramètre FTP_DirCmd)"]


def test_command_lines_good_unknown_and_malformed(gw):
    pak = b"ticgw package payload\n" * 100
    digest = hashlib.sha256(pak).hexdigest()
    set_remote(gw.ftp, "/BIN/ticgw-2.0.pak", pak)
    lines = [
        "1;CONNECT",
        "2;REBOOT",
        "3;DETECT",
        "4;CONFIG;DAQ_Period=5",
        "5;CONFIG;DAQ_Period=99",
        "6;GETPARAMS",
        "7;LOG",
        "8;UPDATE;ticgw-2.0.pak;" + digest.upper(),
        "9;FOO;bar",
        "10",
        "11;CONFIG;novalue",
        "x;DETECT",
        "12;REBOOT;now",
        "13;UPDATE;ticgw-2.0.pak;1234",
    ]
    set_remote(gw.ftp, "/CMD/WEBDYN_CMD.csv", ("\r\n".join(lines) + "\r\n").encode())
    conn = gw.connection()
    assert conn.commands() == "failed"  # some lines were refused; all were acknowledged
    assert not gw.ftp.path("/CMD/WEBDYN_CMD.csv").exists()
    (ack,) = gw.server_files("/CMD")
    acks = gw.ftp.path("/CMD/" + ack).read_text().splitlines()
    assert len(acks) == len(lines)
    date = acks[0].split(";", 1)[0]
    assert all(a.startswith(date + ";") for a in acks)
    body = [a.split(";", 1)[1] for a in acks]
    ok = ["1;CONNECT;OK", "2;REBOOT;OK", "3;DETECT;OK", "4;CONFIG;DAQ_Period=5;OK",
          "6;GETPARAMS;OK", "7;LOG;OK", "8;UPDATE;ticgw-2.0.pak;%s;OK" % digest.upper()]
    for expected in ok:
        assert expected in body
    by_index = {b.split(";", 1)[0]: b for b in body}
    assert [b.split(";", 1)[0] for b in body] == [l.split(";", 1)[0] for l in lines]  # in order
    for idx, words in [("5", "DAQ_Period"), ("9", "unknown command FOO"), ("10", "malformed"),
                       ("11", "key=value"), ("x", "not a number"), ("12", "no parameter"),
                       ("13", "SHA-256")]:
        fields = by_index[idx].split(";")
        assert "ERROR" in fields, by_index[idx]
        reason = ";".join(fields[fields.index("ERROR") + 1:])
        assert words in reason, by_index[idx]
    # effects
    settings = gw.store.settings
    assert settings.daq_period == 5  # the valid CONFIG applied, the invalid one did not
    assert settings.bin_file_name == "ticgw-2.0.pak" and settings.bin_checksum == digest
    assert ("acquisition", "params") in gw.bus.methods()
    eff = conn.effects
    assert eff.connect_again and eff.reboot and eff.detect and eff.debug_log
    assert eff.params_requested and eff.config_changed and conn.restart_needed
    # the rest of this connection acts on them
    assert conn.parameters() == "done"
    (param,) = [n for n in gw.server_files("/DATA") if "_TIC_P_" in n]
    assert "Dépôt du fichier de paramètres %s" % param in gw.messages()
    assert conn.logs() == "done"
    debug = [n for n in gw.server_files("/LOG") if n.endswith("_debug.log.gz")]
    assert len(debug) == 1 and "Dépôt du fichier de debug %s" % debug[0] in gw.messages()
    assert conn.firmware() == "done"
    assert (gw.data / "firmware" / "ticgw-2.0.pak").read_bytes() == pak
    conn.closing()
    # the service restarts the gateway after the connection (it journals the manual's row)
    assert gw.messages()[-1] == "Reprise de l'acquisition de données..."


# ================================================================================== parameters

def test_parameters_none(gw):
    assert gw.connection().parameters() == "done"
    assert gw.messages() == ["Gestion des fichiers de paramètres ..."]
    assert gw.server_files("/DATA") == []


def test_parameters_file_deposited_in_the_data_directory(gw):
    gw.bus("acquisition", "params")
    (name,) = gw.outbox("PARAM")
    content = (gw.data / "outbox" / "PARAM" / name).read_bytes()
    assert gw.connection().parameters() == "done"
    assert gw.messages() == ["Gestion des fichiers de paramètres ...",
                             "Dépôt du fichier de paramètres %s" % name]
    assert gw.ftp.path("/DATA/" + name).read_bytes() == content
    assert gw.outbox("PARAM") == []


# ======================================================================================== data

def test_data_none(gw):
    assert gw.connection().data() == "done"
    assert gw.messages() == ["Gestion des fichiers de données ..."]


def test_data_files_go_oldest_first(gw):
    # sealed out of time order, so that neither creation order nor directory order is the answer
    made = [outbox_data_file(gw, T0 + 3600), outbox_data_file(gw, T0),
            outbox_data_file(gw, T0 + 60)]
    contents = {p.name: p.read_bytes() for p in made}
    oldest_first = sorted(contents)
    assert oldest_first != [p.name for p in made]
    assert gw.connection().data() == "done"
    assert [s.rsplit("/", 1)[1] for s in stored(gw.ftp)] == [n + ".tmp" for n in oldest_first]
    assert gw.messages() == ["Gestion des fichiers de données ..."] + [
        "Dépôt du fichier de données %s" % n for n in oldest_first]
    for name, data in contents.items():
        assert gw.ftp.path("/DATA/" + name).read_bytes() == data
    assert gw.outbox("DATA") == []
    assert no_tmp_left(gw.ftp)


# ===================================================================================== faults

def _all_outbox(gw):
    return {k: gw.outbox(k) for k in ("ALARM", "DATA", "PARAM")}


@pytest.mark.parametrize("fault", ["down", "login"])
def test_ftp_unreachable_aborts_and_keeps_everything(gw, fault):
    gw.alarm_file()
    gw.data_file()
    gw.bus("acquisition", "params")
    before = _all_outbox(gw)
    if fault == "down":
        gw.ftp.stop()
    else:
        gw.ftp.refuse_login = True
    outcomes = run_connection(gw.connection())
    assert outcomes["alarms"] == "abort" and list(outcomes)[-1] == "alarms"
    why = {"down": "Serveur FTP injoignable : connexion refusée (paramètres FTP_Server et "
                   "FTP_Port)",
           "login": "Connexion refusée par le serveur : 530 Login refused by test server. "
                    "(paramètres FTP_Login et FTP_Password)"}[fault]
    assert gw.messages()[-6:] == ["Synchronisation NTP OK", "Gestion des alarmes ...",
                                  "Erreur de connexion FTP", why, "Connexion terminée",
                                  "Reprise de l'acquisition de données..."]
    assert _all_outbox(gw) == before
    assert all(before.values())


@pytest.mark.parametrize("mode", ["drop", "truncate"])
def test_transfer_cut_midway_is_retried(gw, mode):
    path = big_data_file(gw)
    content = path.read_bytes()
    gw.ftp.fail_next_stor(1, mode, after_bytes=1000)
    assert gw.connection().data() == "done"
    assert gw.messages() == ["Gestion des fichiers de données ...",
                             "Erreur de transfert FTP : 1 sur 3",
                             "Dépôt du fichier de données %s" % path.name]
    assert gw.server_files("/DATA") == [path.name]
    assert gw.ftp.path("/DATA/" + path.name).read_bytes() == content
    assert no_tmp_left(gw.ftp)
    assert len(stored(gw.ftp)) == 2
    assert not path.exists()


def test_three_failures_keep_the_file_and_the_next_one_is_tried(gw):
    first = big_data_file(gw)
    gw.wall.t += 10
    second = big_data_file(gw)
    assert first.name < second.name
    gw.ftp.fail_next_stor(3, "drop", after_bytes=1000)
    conn = gw.connection()
    assert conn.data() == "failed"
    assert gw.messages() == ["Gestion des fichiers de données ...",
                             "Erreur de transfert FTP : 1 sur 3",
                             "Erreur de transfert FTP : 2 sur 3",
                             "Erreur de transfert FTP : 3 sur 3",
                             "Erreur de dépôt du fichier de données %s" % first.name,
                             "Transfert interrompu par le serveur FTP : 426 Data connection "
                             "closed by test server; transfer aborted.",
                             "Dépôt du fichier de données %s" % second.name]
    assert first.exists() and not second.exists()
    # Nothing partial under a final name; the last broken try may leave its ".tmp" (DESIGN 5:
    # "a partial file only ever exists as .tmp"), removed by the next upload of that file.
    assert [n for n in gw.server_files("/DATA") if not n.endswith(".tmp")] == [second.name]
    assert conn.stats["failed"] == 1 and conn.stats["uploaded"] == 1
    # the next connection sends it
    assert gw.connection().data() == "done"
    assert gw.server_files("/DATA") == sorted([first.name, second.name])
    assert gw.ftp.path("/DATA/" + first.name).stat().st_size > 4000
    assert no_tmp_left(gw.ftp)


@pytest.mark.parametrize("mode", ["full", "enospc"])
def test_disk_full_stops_uploading(gw, mode):
    files = [big_data_file(gw, 300) for _ in range(3)]
    gw.ftp.fail_next_stor(1, mode, after_bytes=1000, code=452)
    assert gw.connection().data() == "failed"
    assert gw.messages()[:2] == ["Gestion des fichiers de données ...",
                                 "Erreur de dépôt du fichier de données %s" % files[0].name]
    assert gw.messages()[2].startswith("Serveur FTP plein : 452 ")
    assert len(gw.messages()) == 3
    assert all(p.exists() for p in files)
    assert len(stored(gw.ftp)) == 1  # the others were not tried
    assert gw.server_files("/DATA") == []


def test_whole_server_slower_than_the_timeout(gw):
    assert gw.store.settings.ftp_timeout == 5
    gw.data_file()
    gw.alarm_file()
    before = _all_outbox(gw)
    gw.ftp.delay_replies(8.0)
    t = time.monotonic()
    outcomes = run_connection(gw.connection())
    elapsed = time.monotonic() - t
    assert 4.5 < elapsed < 8.0
    assert outcomes["alarms"] == "abort"
    assert "Erreur de connexion FTP" in gw.messages()
    assert _all_outbox(gw) == before


def test_transfers_slower_than_the_timeout(gw):
    """Only STOR is slow: each try times out, the file stays, the session is dropped cleanly."""
    path = gw.data_file()
    gw.ftp.delay_replies(2.0, commands={"STOR"})

    def factory(s):
        return FtpSession(dataclasses.replace(FtpSettings.from_settings(s), timeout=0.4))

    conn = gw.connection(ftp_factory=factory)
    t = time.monotonic()
    assert conn.data() == "failed"
    assert time.monotonic() - t < 4.0
    conn.closing()
    msgs = gw.messages()
    assert msgs[:5] == ["Gestion des fichiers de données ...",
                        "Erreur de transfert FTP : 1 sur 3",
                        "Erreur de transfert FTP : 2 sur 3",
                        "Erreur de transfert FTP : 3 sur 3",
                        "Erreur de dépôt du fichier de données %s" % path.name]
    assert path.exists()
    assert gw.server_files("/DATA") == []


# ============================================================================== configuration

CONFIG_NAMES = ["WEBDYN_config.ini", "WEBDYN_daq.ini", "WEBDYN_var.ini"]


def _local(gw, kind):
    return gw.store.file_path(kind).read_bytes()


def _first_sync(gw):
    """A connection's config phase that leaves server and gateway in step."""
    assert gw.connection().config() == "done"
    return len(gw.messages())


def _edited(data: bytes, key: str, value: str) -> bytes:
    lines = data.decode("latin-1").splitlines()
    out = [("%s=%s" % (key, value)) if l.startswith(key + "=") else l for l in lines]
    assert out != lines, key
    return ("\r\n".join(out) + "\r\n").encode("latin-1")


def test_config_missing_on_the_server_is_uploaded(gw):
    conn = gw.connection()
    assert conn.config() == "done"
    assert gw.messages() == ["Gestion des fichiers de configuration ..."] + [
        "Dépôt du fichier de configuration %s" % n for n in CONFIG_NAMES]
    for kind, name in zip(("config", "daq", "var"), CONFIG_NAMES):
        assert gw.ftp.path("/CONFIG/" + name).read_bytes() == _local(gw, kind)
    assert not conn.restart_needed
    # in step: nothing to do next time
    n = len(gw.messages())
    assert gw.connection().config() == "done"
    assert gw.new_messages(n) == ["Gestion des fichiers de configuration ...",
                                  "Pas de changement de fichiers de configuration."]


def test_config_changed_on_the_server_is_downloaded_and_applied(gw):
    n = _first_sync(gw)
    remote = gw.ftp.path("/CONFIG/WEBDYN_var.ini")
    new = _edited(remote.read_bytes(), "Connection_Period", "7")
    set_remote(gw.ftp, "/CONFIG/WEBDYN_var.ini", new, mtime=remote.stat().st_mtime - 3600)
    conn = gw.connection()
    assert conn.config() == "done"
    assert gw.new_messages(n) == ["Gestion des fichiers de configuration ...",
                                  "Sauvegarde de la configuration...",
                                  "Récupération du fichier de configuration WEBDYN_var.ini"]
    assert gw.store.settings.connection_period == 7
    assert conn.settings.connection_period == 7
    assert _local(gw, "var") == new
    assert conn.restart_needed
    n = len(gw.messages())
    assert gw.connection().config() == "done"
    assert gw.new_messages(n)[-1] == "Pas de changement de fichiers de configuration."


def test_config_changed_locally_is_uploaded(gw):
    n = _first_sync(gw)
    gw.store.update({"DAQ_Period": "5"})
    conn = gw.connection()
    assert conn.config() == "done"
    assert gw.new_messages(n) == ["Gestion des fichiers de configuration ...",
                                  "Dépôt du fichier de configuration WEBDYN_daq.ini"]
    assert gw.ftp.path("/CONFIG/WEBDYN_daq.ini").read_bytes() == _local(gw, "daq")
    assert b"DAQ_Period=5" in _local(gw, "daq")
    assert not conn.restart_needed


def test_config_changed_on_both_sides_the_server_wins(gw):
    n = _first_sync(gw)
    gw.store.update({"DAQ_Period": "5"})
    remote = gw.ftp.path("/CONFIG/WEBDYN_daq.ini")
    new = _edited(remote.read_bytes(), "DAQ_Period", "15")
    set_remote(gw.ftp, "/CONFIG/WEBDYN_daq.ini", new, mtime=remote.stat().st_mtime + 60)
    conn = gw.connection()
    assert conn.config() == "done"
    assert "Récupération du fichier de configuration WEBDYN_daq.ini" in gw.new_messages(n)
    assert not [m for m in gw.new_messages(n) if m.startswith("Dépôt")]
    assert gw.store.settings.daq_period == 15
    assert _local(gw, "daq") == new == remote.read_bytes()
    assert conn.restart_needed


@pytest.mark.parametrize("content, reason", [
    (None, "DAQ_Period"),                                     # a bad value: 99 minutes
    (b"\x00\xffthis is not an ini file\r\n<html>500</html>\r\n", "not key=value"),
])
def test_config_malformed_on_the_server_is_rejected_whole(gw, content, reason):
    n = _first_sync(gw)
    remote = gw.ftp.path("/CONFIG/WEBDYN_daq.ini")
    if content is None:
        # also carries a valid change, which must not be applied either
        content = _edited(_edited(remote.read_bytes(), "DAQ_Period", "99"), "DAQ_PeriodSec", "30")
    set_remote(gw.ftp, "/CONFIG/WEBDYN_daq.ini", content, mtime=remote.stat().st_mtime + 60)
    before = {k: _local(gw, k) for k in ("config", "daq", "var")}
    conn = gw.connection()
    assert conn.config() == "failed"
    msgs = gw.new_messages(n)
    assert msgs[:2] == ["Gestion des fichiers de configuration ...",
                        "Erreur de récupération du fichier de configuration WEBDYN_daq.ini"]
    assert reason in " ".join(msgs[2:])
    assert "Sauvegarde de la configuration..." not in msgs
    assert {k: _local(gw, k) for k in ("config", "daq", "var")} == before
    assert gw.store.settings.daq_period == 10 and gw.store.settings.daq_period_sec == 60
    assert gw.ftp.path("/CONFIG/WEBDYN_daq.ini").read_bytes() == content  # server file kept
    assert not conn.restart_needed
    # reported again at the next connection, until the server file is fixed
    n = len(gw.messages())
    assert gw.connection().config() == "failed"
    assert "Erreur de récupération du fichier de configuration WEBDYN_daq.ini" in gw.new_messages(n)


def test_config_not_checked_this_time(gw):
    conn = gw.connection(check_config=False)
    assert conn.config() == "done" and conn.definitions() == "done"
    assert gw.messages() == ["Gestion des fichiers de configuration ...",
                             "Pas de changement de fichiers de configuration.",
                             "Gestion des fichiers de définition...",
                             "Pas de changement de fichiers de définition."]
    assert gw.server_files("/CONFIG") == []


# ================================================================================= definitions

def _local_def(gw, name=DEF_NAME, text=DEFINITION) -> Path:
    d = gw.data / "def"
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text(text)
    return d / name


def test_definition_generated_locally_is_uploaded(gw):
    path = _local_def(gw)
    conn = gw.connection()
    assert conn.definitions() == "done"
    assert gw.messages() == ["Gestion des fichiers de définition...",
                             "Dépôt du fichier de définition %s" % DEF_NAME]
    assert gw.ftp.path("/DEF/" + DEF_NAME).read_bytes() == path.read_bytes()
    n = len(gw.messages())
    assert gw.connection().definitions() == "done"
    assert gw.new_messages(n) == ["Gestion des fichiers de définition...",
                                  "Pas de changement de fichiers de définition."]


def test_definition_changed_on_the_server_is_downloaded(gw):
    path = _local_def(gw)
    assert gw.connection().definitions() == "done"
    n = len(gw.messages())
    remote = gw.ftp.path("/DEF/" + DEF_NAME)
    new = DEFINITION.replace("2;BASE;Index option base;Wh;4", "2;BASE;Index option base;Wh;0")
    set_remote(gw.ftp, "/DEF/" + DEF_NAME, new.encode(), mtime=remote.stat().st_mtime + 60)
    conn = gw.connection()
    assert conn.definitions() == "done"
    assert gw.new_messages(n) == ["Gestion des fichiers de définition...",
                                  "Récupération du fichier de définition %s" % DEF_NAME]
    assert path.read_text() == new
    assert conn.restart_needed


def test_definition_named_in_the_configuration_is_fetched(gw):
    name = SITE + "_TIC_LINKY.ini"
    gw.store.update({"TIC_Port[2]": "/dev/ttyUSB1", "TIC_FileDefName[2]": name})
    set_remote(gw.ftp, "/DEF/" + name, DEFINITION.encode())
    set_remote(gw.ftp, "/DEF/OTHER_TIC_X.ini", DEFINITION.encode())  # not ours: left alone
    assert gw.connection().definitions() == "done"
    assert gw.messages() == ["Gestion des fichiers de définition...",
                             "Récupération du fichier de définition %s" % name]
    assert (gw.data / "def" / name).read_text() == DEFINITION
    assert not (gw.data / "def" / "OTHER_TIC_X.ini").exists()


@pytest.mark.parametrize("bad", [
    "1;ADCO;Adresse;;1\n2;BASE;Index;Wh;5\n",          # action 5 does not exist
    "<html><body>Internal error</body></html>\n",
])
def test_definition_malformed_on_the_server_is_rejected(gw, bad):
    path = _local_def(gw)
    assert gw.connection().definitions() == "done"
    n = len(gw.messages())
    remote = gw.ftp.path("/DEF/" + DEF_NAME)
    set_remote(gw.ftp, "/DEF/" + DEF_NAME, bad.encode(), mtime=remote.stat().st_mtime + 60)
    conn = gw.connection()
    assert conn.definitions() == "failed"
    rows = gw.new_messages(n)
    assert rows[:2] == ["Gestion des fichiers de définition...",
                        "Erreur de récupération du fichier de définition %s" % DEF_NAME]
    assert len(rows) == 3 and rows[2].startswith("Fichier %s refusé : %s line " % (DEF_NAME,
                                                                                   DEF_NAME))
    assert path.read_text() == DEFINITION
    assert not conn.restart_needed
    assert not [p for p in path.parent.iterdir() if p.name != DEF_NAME]  # no temp left


# ======================================================================================== logs

def test_logs_hold_exactly_the_journal_since_the_previous_connection(gw):
    gw.journal("Demande de connexion...")  # a connection before this test's
    first = gw.connection()
    assert first.logs() == "done"
    (log1,) = gw.server_files("/LOG")
    assert log1.startswith("WEBDYN_") and log1.endswith(".log.gz")
    assert gw.messages()[-1] == "Dépôt du fichier journal de bord %s" % log1
    first.closing()
    gw.data_file()
    second = gw.connection()
    assert run_connection(second)["logs"] == "done"
    log2 = [n for n in gw.server_files("/LOG") if n != log1][0]
    text1 = gzip.decompress(gw.ftp.path("/LOG/" + log1).read_bytes())
    text2 = gzip.decompress(gw.ftp.path("/LOG/" + log2).read_bytes())
    journal = (gw.state / "journal.log").read_bytes()
    # the two logs are consecutive, non-overlapping slices of the journal, from its start
    assert journal.startswith(text1 + text2)
    lines1 = [l.split("\t")[2] for l in text1.decode().splitlines()]
    lines2 = [l.split("\t")[2] for l in text2.decode().splitlines()]
    assert lines1 == ["Demande de connexion...", "Gestion des fichiers de logs ..."]
    assert lines2[0] == "Dépôt du fichier journal de bord %s" % log1
    assert "Connexion terminée" in lines2 and "Demande de connexion..." in lines2
    assert lines2[-1] == "Gestion des fichiers de logs ..."
    # what is after it is the next connection's
    rest = journal[len(text1 + text2):].decode().splitlines()
    assert rest[0].split("\t")[2] == "Dépôt du fichier journal de bord %s" % log2


def test_log_upload_failure_keeps_it_for_the_next_connection(tmp_path, ntp_server):
    with FtpTestServer(omit=("/LOG",)) as srv:
        gw = Gateway(tmp_path, srv, ntp_server)
        gw.journal("Demande de connexion...")
        assert gw.connection().logs() == "failed"
        (name,) = gw.outbox("LOG")
        assert gw.messages()[-2:] == [
            "Erreur de dépôt du fichier journal de bord %s" % name,
            "Répertoire /LOG absent du serveur FTP (paramètre FTP_DirLog)"]
    with FtpTestServer() as srv:
        gw.store.update({"FTP_Port": str(srv.port)})
        gw.ftp = srv
        assert gw.connection().logs() == "done"
        assert gw.outbox("LOG") == []
        assert name in gw.server_files("/LOG") and len(gw.server_files("/LOG")) == 2
        old = gunzip_lines(srv.path("/LOG/" + name))
        assert [l.split("\t")[2] for l in old] == ["Demande de connexion...",
                                                   "Gestion des fichiers de logs ..."]


# ==================================================================================== firmware

PAK = b"\x1f\x8b fake package " * 500


def _firmware(gw, checksum):
    set_remote(gw.ftp, "/BIN/ticgw-2.1.pak", PAK)
    gw.store.update({"BIN_FileName": "ticgw-2.1.pak", "BIN_Checksum": checksum})


def test_firmware_none_configured(gw):
    assert gw.connection().firmware() == "done"
    assert gw.messages() == []


def test_firmware_fetched_and_verified(gw):
    _firmware(gw, hashlib.sha256(PAK).hexdigest())
    assert gw.connection().firmware() == "done"
    assert gw.messages() == ["Gestion du firmware...",
                             "Firmware ticgw-2.1.pak vérifié : installation en fin de connexion"]
    assert (gw.data / "firmware" / "ticgw-2.1.pak").read_bytes() == PAK
    # already verified: not fetched again
    retrs = sum(c.startswith("RETR") for c in gw.ftp.commands)
    assert gw.connection().firmware() == "done"
    assert sum(c.startswith("RETR") for c in gw.ftp.commands) == retrs


def test_firmware_wrong_checksum_keeps_nothing(gw):
    _firmware(gw, hashlib.sha256(b"another package").hexdigest())
    assert gw.connection().firmware() == "failed"
    assert gw.messages() == ["Gestion du firmware...",
                             "Erreur de somme de contrôle du firmware ticgw-2.1.pak"]
    fw = gw.data / "firmware"
    assert not fw.exists() or list(fw.iterdir()) == []
    assert not (gw.state / "firmware_verified").exists()


def test_firmware_missing_on_the_server(gw):
    gw.store.update({"BIN_FileName": "nope.pak",
                     "BIN_Checksum": hashlib.sha256(PAK).hexdigest()})
    assert gw.connection().firmware() == "failed"
    assert gw.messages() == ["Gestion du firmware...", "Erreur de récupération du fichier nope.pak",
                             "Fichier /BIN/nope.pak absent du serveur FTP"]
    fw = gw.data / "firmware"
    assert not fw.exists() or list(fw.iterdir()) == []


def test_firmware_short_download_is_retried(gw):
    _firmware(gw, hashlib.sha256(PAK).hexdigest())
    gw.ftp.fail_next_retr(1, after_bytes=100)
    assert gw.connection().firmware() == "done"
    assert gw.messages() == ["Gestion du firmware...", "Erreur de transfert FTP : 1 sur 3",
                             "Firmware ticgw-2.1.pak vérifié : installation en fin de connexion"]
    assert (gw.data / "firmware" / "ticgw-2.1.pak").read_bytes() == PAK


def test_firmware_the_update_service_has_taken_is_not_fetched_again(gw):
    digest = hashlib.sha256(PAK).hexdigest()
    _firmware(gw, digest)
    for state in ("installing", "verifying", "committed", "rolled_back", "failed"):
        gw.bus.answers[("update", "status")] = {"record": {"state": state, "sha256": digest}}
        conn = gw.connection()
        assert conn.firmware() == "done" and conn.firmware_package is None, state
    assert not any(c.startswith("RETR") for c in gw.ftp.commands)
    assert set(gw.messages()) == {"Gestion du firmware..."}
    # another package (another checksum) is fetched
    gw.bus.answers[("update", "status")] = {"record": {"state": "committed",
                                                       "sha256": "0" * 64}}
    conn = gw.connection()
    assert conn.firmware() == "done"
    assert conn.firmware_package == {"path": str(gw.data / "firmware" / "ticgw-2.1.pak"),
                                     "sha256": digest}


def test_firmware_waits_when_the_update_service_does_not_answer(gw):
    _firmware(gw, hashlib.sha256(PAK).hexdigest())
    gw.bus.fail.add(("update", "status"))
    conn = gw.connection()
    assert conn.firmware() == "failed" and conn.firmware_package is None
    assert gw.messages() == ["Gestion du firmware...",
                             "Erreur de mise à jour : le service de mise à jour ne répond pas"]
    assert not any(c.startswith("RETR") for c in gw.ftp.commands)


# ======================================================= faults in the middle of a connection

def test_server_gone_midway_aborts_with_the_journal_right(gw):
    first, second = gw.data_file(), gw.data_file()
    conn = gw.connection()
    assert conn.alarms() == "done"  # the session is open
    gw.ftp.stop()
    assert run_phase(conn, "data") == "abort"
    msgs = gw.messages()
    assert msgs[-2:] == ["Erreur de connexion FTP",
                         "Serveur FTP injoignable : connexion refusée (paramètres FTP_Server et "
                         "FTP_Port)"]
    assert first.exists() and second.exists()
    conn.closing()
    assert gw.messages()[-2:] == ["Connexion terminée", "Reprise de l'acquisition de données..."]


def test_site_id_refused_by_the_configuration(gw):
    bad = Scripted(200, "00##%s##" % ("A" * 50))  # a fine ID for Web Services, too long for us
    try:
        gw.store.update({"Site_IdAuto": "1", "WebService_Enable": "1", "WebService_Url": bad.url + "/"})
        conn = gw.connection(webservices=WebServices(bad.url + "/", timeout=2))
        assert conn.site_id() == "failed"
    finally:
        bad.close()
    assert gw.messages() == ["Récupération ID site...", "Erreur de récupération de l'ID site"]
    assert gw.store.settings.site_id == SITE and conn.site == SITE
    assert not conn.restart_needed


def test_empty_command_file_gets_an_empty_acknowledgement(gw):
    set_remote(gw.ftp, "/CMD/WEBDYN_CMD.csv", b"")
    assert gw.connection().commands() == "done"
    (ack,) = gw.server_files("/CMD")
    assert gw.ftp.path("/CMD/" + ack).read_bytes() == b""


def test_acknowledgement_not_deposited_goes_at_the_next_connection(gw):
    set_remote(gw.ftp, "/CMD/WEBDYN_CMD.csv", b"1;DETECT\r\n")
    gw.ftp.fail_next_stor(3, "drop", after_bytes=0)
    assert gw.connection().commands() == "failed"
    (ack,) = gw.outbox("CMD")
    assert gw.messages()[-2:] == ["Erreur de dépôt du fichier %s" % ack,
                                  "Transfert interrompu par le serveur FTP : 426 Data connection closed by test "
                                  "server; transfer aborted."]
    assert not gw.ftp.path("/CMD/WEBDYN_CMD.csv").exists()  # fetched: not run a second time
    n = len(gw.messages())
    assert gw.connection().commands() == "done"
    assert gw.new_messages(n) == ["Gestion des fichiers de commandes ...",
                                  "Pas de fichier de commandes disponible...",
                                  "Dépôt du fichier %s" % ack]
    assert gw.server_files("/CMD") == [ack] and gw.outbox("CMD") == []
    assert gw.ftp.path("/CMD/" + ack).read_bytes().split(b";", 1)[1] == b"1;DETECT;OK\r\n"


def test_short_download_is_journaled_and_retried(gw):
    set_remote(gw.ftp, "/CMD/WEBDYN_CMD.csv", b"1;DETECT\r\n2;CONNECT\r\n" * 100)
    gw.ftp.fail_next_retr(1, after_bytes=10)
    conn = gw.connection()
    assert conn.commands() == "done"
    assert gw.messages()[1:3] == ["Erreur de transfert FTP : 1 sur 3",
                                  "Récupération du fichier WEBDYN_CMD.csv"]
    (ack,) = gw.server_files("/CMD")
    assert len(gw.ftp.path("/CMD/" + ack).read_text().splitlines()) == 200


def test_debug_file_not_deposited_goes_at_the_next_connection(tmp_path, ntp_server):
    with FtpTestServer(omit=("/LOG",)) as srv:
        gw = Gateway(tmp_path, srv, ntp_server)
        set_remote(srv, "/CMD/WEBDYN_CMD.csv", b"1;LOG\r\n")
        conn = gw.connection()
        conn.commands()
        assert conn.logs() == "failed"
        debug = [n for n in gw.outbox("LOG") if n.endswith("_debug.log.gz")]
        assert len(debug) == 1
        assert gw.messages()[-2] == "Erreur de dépôt du fichier de debug %s" % debug[0]
    with FtpTestServer() as srv:
        gw.store.update({"FTP_Port": str(srv.port)})
        gw.ftp = srv
        assert gw.connection().logs() == "done"
        assert gw.outbox("LOG") == []
        assert debug[0] in gw.server_files("/LOG")
        assert "Dépôt du fichier de debug %s" % debug[0] in gw.messages()


# ============================================================================ a whole connection

def test_full_sequence_journal_in_the_manuals_order(gw, tmp_path):
    """Every phase with work to do, run as the service runs them; the journal is the manual's
    messages in the manual's order, and everything reached the server."""
    with DemoServer(tmp_path / "demo") as demo:
        (demo.root / "ws_sites.json").write_text('{"%s": "SITE42"}' % MAC)
        gw.store.update({"Site_IdAuto": "1", "WebService_Enable": "1",
                         "WebService_Url": demo.web_service_url,
                         "BIN_FileName": "ticgw-2.1.pak",
                         "BIN_Checksum": hashlib.sha256(PAK).hexdigest()})
        set_remote(gw.ftp, "/BIN/ticgw-2.1.pak", PAK)
        set_remote(gw.ftp, "/CMD/SITE42_CMD.csv", b"1;GETPARAMS\r\n2;DETECT\r\n")
        _local_def(gw)
        gw.spool.append_alarm(gw.wall.t, "TIC1", DEF_NAME, "IINST", 3, "012")
        gw.spool.append_record(1, "021528603314", DEF_NAME, gw.wall.t, ["000001000", "001"])
        old_log = gw.data / "outbox" / "LOG" / "SITE42_240430_120000.log.gz"
        old_log.parent.mkdir(parents=True, exist_ok=True)
        old_log.write_bytes(gzip.compress(b"left by an earlier connection\n"))

        conn = gw.connection(webservices=WebServices(demo.web_service_url))
        outcomes = run_connection(conn)
        actions = [r["action"] for r in demo.read_log() if r["service"] == "confirm"]

    assert list(outcomes) == list(PHASES)
    assert set(outcomes.values()) == {"done"}, outcomes
    expected = [
        r"Demande de connexion\.\.\.",
        r"Arrêt de l'acquisition de données\.\.\.",
        r"Connexion établie",
        r"Synchronisation NTP\.\.\.",
        r"Synchronisation NTP OK",
        r"Récupération ID site\.\.\.",
        r"Sauvegarde de la configuration\.\.\.",
        r"ID Site SITE42",
        r"Gestion des alarmes \.\.\.",
        r"Dépôt du fichier d'alarme WEBDYN_AL_\d{6}_\d{6}\.csv\.gz",
        r"Gestion des fichiers de commandes \.\.\.",
        r"Récupération du fichier SITE42_CMD\.csv",
        r"Dépôt du fichier SITE42_ACK_\d{6}_\d{6}\.csv",
        r"Gestion des fichiers de paramètres \.\.\.",
        r"Dépôt du fichier de paramètres WEBDYN_TIC_P_\d{6}_\d{6}\.csv\.gz",
        r"Gestion des fichiers de données \.\.\.",
        r"Dépôt du fichier de données WEBDYN_TIC_\d{6}_\d{6}\.csv\.gz",
        r"Gestion des fichiers de configuration \.\.\.",
        r"Dépôt du fichier de configuration SITE42_config\.ini",
        r"Dépôt du fichier de configuration SITE42_daq\.ini",
        r"Dépôt du fichier de configuration SITE42_var\.ini",
        r"Gestion des fichiers de définition\.\.\.",
        r"Dépôt du fichier de définition WEBDYN_TIC_CBEMM-ICC\.ini",
        r"Gestion des fichiers de logs \.\.\.",
        r"Dépôt du fichier journal de bord SITE42_240430_120000\.log\.gz",
        r"Dépôt du fichier journal de bord SITE42_\d{6}_\d{6}\.log\.gz",
        r"Gestion du firmware\.\.\.",
        r"Firmware ticgw-2\.1\.pak vérifié : installation en fin de connexion",
        r"Connexion terminée",
        r"Reprise de l'acquisition de données\.\.\.",
    ]
    msgs = gw.messages()
    assert len(msgs) == len(expected), "\n".join(msgs)
    for pattern, message in zip(expected, msgs):
        assert re.fullmatch(pattern, message), (pattern, message)
    # each journal row carries its GMT date and time, in order
    rows = gw.journal.tail(100)
    assert all(re.fullmatch(r"\d\d/\d\d/\d\d", d) and re.fullmatch(r"\d\d:\d\d:\d\d", h)
               for d, h, _ in rows)
    # nothing left behind, everything on the server
    for kind in ("ALARM", "DATA", "PARAM", "CMD", "LOG"):
        assert gw.outbox(kind) == [], kind
    assert len(gw.server_files("/ALARM")) == 1 and len(gw.server_files("/LOG")) == 2
    assert len([n for n in gw.server_files("/DATA") if "_TIC_P_" in n]) == 1
    assert gw.server_files("/CONFIG") == ["SITE42_config.ini", "SITE42_daq.ini", "SITE42_var.ini"]
    assert no_tmp_left(gw.ftp)
    # the firmware phase asks the update service what it has taken already
    assert gw.bus.methods() == [("acquisition", "pause"), ("acquisition", "seal"),
                                ("acquisition", "params"), ("update", "status"),
                                ("acquisition", "resume")]
    assert conn.firmware_package == {"path": str(gw.data / "firmware" / "ticgw-2.1.pak"),
                                     "sha256": hashlib.sha256(PAK).hexdigest()}
    assert conn.effects.detect and conn.restart_needed
    assert conn.stats["uploaded"] >= 6 and conn.stats["failed"] == 0
    # Web Services were told of each step
    for action in ("UPLOADALARM", "CMD", "UPLOADDATA", "UPLOADGLOBAL", "CONFIGBIN"):
        assert action in actions, actions
