"""The uplink's connection phases against real Debian FTP daemons (issue 8).

vsftpd (no MLST/MLSD: SIZE, MDTM and LIST) and proftpd (MLST/MLSD), both requiring explicit FTPS
with a self-signed certificate whose name is only in its CN (no subjectAltName), as integrators'
servers often have. The daemons come from tests/setup/system.sh (run by ``make test``) and are
started by sim/ftp_daemons.py; the gateway is the phase tests' harness (tests/uplink_harness.py),
set up with the configuration keys an installer uses (FTP_Tls, FTP_TlsFingerprint, FTP_TlsCaFile,
FTP_Pipelining, FTP_Dir*). Journal rows are the manual's, verbatim, each error followed by its
reason row (services/uplink/reasons.py); what reached the server is checked on the daemon's disk.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import pwd
import re
import threading
import time
from pathlib import Path

import pytest

from ftpd import self_signed_cert
from sim.ftp_daemons import DIRS, FTP_USER, KINDS, FtpDaemon
from statecharts.connection import PHASES
# The harness's ntp_server fixture is imported to be found by pytest.
from uplink_harness import (DEF_NAME, DEFINITION, SITE, Gateway, ntp_server,  # noqa: F401
                            run_connection)

pytestmark = pytest.mark.timeout(120)

CMD_NAME = SITE + "_CMD.csv"
CONFIG_NAMES = [SITE + "_config.ini", SITE + "_daq.ini", SITE + "_var.ini"]
PAK = b"\x1f\x8b ticgw package " * 600
ROW_TIME = r"\d\d/\d\d/\d\d-\d\d:\d\d:\d\d"


# ------------------------------------------------------------------------------ daemons
@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    """(cert_path, key_path, sha256 hex) of a self-signed certificate, CN=localhost, no SAN."""
    return self_signed_cert(tmp_path_factory.mktemp("cert"))


@pytest.fixture(scope="module", params=KINDS)
def daemon(request, cert):
    """One daemon of each kind for the whole file: explicit FTPS required, chrooted."""
    path, key, _ = cert
    with FtpDaemon(request.param, tls=True, cert=path, key=key) as srv:
        yield srv


@pytest.fixture
def server(daemon):
    """The module's daemon, its served directories emptied before and after the test."""
    _empty(daemon)
    yield daemon
    _empty(daemon)


def _empty(srv: FtpDaemon) -> None:
    for d in DIRS:
        for p in (srv.files / d).iterdir():
            p.unlink()


# ------------------------------------------------------------------------------ helpers
def colons(hex_digits: str) -> str:
    """AB:CD:... as openssl prints a fingerprint."""
    h = hex_digits.upper()
    return ":".join(h[i:i + 2] for i in range(0, len(h), 2))


def gateway(tmp_path: Path, srv: FtpDaemon, ntp, cert, **settings) -> Gateway:
    """The harness's gateway pointed at ``srv`` over FTPS, the certificate pinned by its
    fingerprint (``settings`` override any key)."""
    gw = Gateway(tmp_path, srv, ntp)
    values = {"FTP_Tls": "1", "FTP_TlsFingerprint": cert[2]}
    values.update(settings)
    gw.store.update(values)
    return gw


def connect(gw: Gateway, **kw):
    return gw.connection(settings=gw.store.settings, **kw)


def put(srv: FtpDaemon, remote: str, data: bytes, mtime: float | None = None) -> Path:
    """A file put on the server by its operator (owned by the FTP account)."""
    p = srv.path(remote)
    p.write_bytes(data)
    account = pwd.getpwnam(FTP_USER)
    os.chown(p, account.pw_uid, account.pw_gid)
    if mtime is not None:
        os.utime(p, (mtime, mtime))
    return p


def served(srv: FtpDaemon) -> list[Path]:
    return [p for p in srv.home.rglob("*") if p.is_file()]


def tmp_left(srv: FtpDaemon) -> list[str]:
    return [p.name for p in served(srv) if p.name.endswith(".tmp")]


def commands_since(srv: FtpDaemon, before: int, at_least: int = 1,
                   wait: float = 3.0) -> list[str]:
    """The commands the daemon logged after its first ``before`` ones, QUIT left out (the
    client does not wait for its reply: a daemon may log it late or not at all), once there
    are ``at_least`` (or ``wait`` s passed), and a moment later (to see any extra one)."""
    def read():
        return [c for c in srv.commands()[before:] if not c.upper().startswith("QUIT")]

    deadline = time.monotonic() + wait
    while len(read()) < at_least and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.15)
    return read()


def verbs(commands: list[str]) -> list[str]:
    return [c.split(" ", 1)[0].upper() for c in commands]


def check_rows(rows: list[str], patterns: list[str]) -> None:
    assert len(rows) == len(patterns), "\n".join(rows)
    for pattern, row in zip(patterns, rows):
        assert re.fullmatch(pattern, row), (pattern, row, rows)


def ack_lines(srv: FtpDaemon, name: str) -> list[str]:
    """An ACK's lines on the server, the date checked and left out."""
    lines = srv.path("/CMD/" + name).read_text().splitlines()
    for line in lines:
        assert re.match(ROW_TIME + ";", line), line
    return [line.split(";", 1)[1] for line in lines]


def log_rows(path: Path) -> list[str]:
    """The messages of an uploaded journal (LOG) file."""
    return [line.split("\t")[2] for line in gzip.decompress(path.read_bytes()).decode()
            .splitlines()]


# ================================================================== 1. a whole connection

FIRST = [
    r"Demande de connexion\.\.\.",
    r"Arrêt de l'acquisition de données\.\.\.",
    r"Connexion établie",
    r"Synchronisation NTP\.\.\.",
    r"Synchronisation NTP OK",
    r"Gestion des alarmes \.\.\.",
    r"Dépôt du fichier d'alarme WEBDYN_AL_\d{6}_\d{6}\.csv\.gz",
    r"Gestion des fichiers de commandes \.\.\.",
    r"Récupération du fichier WEBDYN_CMD\.csv",
    r"Sauvegarde de la configuration\.\.\.",          # 2;CONFIG;FTP_Timeout=7
    r"Dépôt du fichier WEBDYN_ACK_\d{6}_\d{6}\.csv",
    r"Gestion des fichiers de paramètres \.\.\.",
    r"Gestion des fichiers de données \.\.\.",
    r"Dépôt du fichier de données WEBDYN_TIC_\d{6}_\d{6}\.csv\.gz",
    r"Gestion des fichiers de configuration \.\.\.",
    r"Dépôt du fichier de configuration WEBDYN_config\.ini",
    r"Dépôt du fichier de configuration WEBDYN_daq\.ini",
    r"Dépôt du fichier de configuration WEBDYN_var\.ini",
    r"Gestion des fichiers de définition\.\.\.",
    r"Dépôt du fichier de définition WEBDYN_TIC_CBEMM-ICC\.ini",
    r"Gestion des fichiers de logs \.\.\.",
    r"Dépôt du fichier journal de bord WEBDYN_240430_120000\.log\.gz",
    r"Dépôt du fichier journal de bord WEBDYN_\d{6}_\d{6}\.log\.gz",
    r"Gestion du firmware\.\.\.",
    r"Firmware ticgw-2\.1\.pak vérifié : installation en fin de connexion",
    r"Connexion terminée",
    r"Reprise de l'acquisition de données\.\.\.",
]

NEXT_DAY = [
    r"Demande de connexion\.\.\.",
    r"Arrêt de l'acquisition de données\.\.\.",
    r"Connexion établie",
    r"Synchronisation NTP\.\.\.",
    r"Synchronisation NTP OK",
    r"Gestion des alarmes \.\.\.",
    r"Aucune alarme en cours\.\.\.",
    r"Gestion des fichiers de commandes \.\.\.",
    r"Pas de fichier de commandes disponible\.\.\.",
    r"Gestion des fichiers de paramètres \.\.\.",
    r"Gestion des fichiers de données \.\.\.",
    r"Gestion des fichiers de configuration \.\.\.",
    r"Pas de changement de fichiers de configuration\.",
    r"Gestion des fichiers de définition\.\.\.",
    r"Pas de changement de fichiers de définition\.",
    r"Gestion des fichiers de logs \.\.\.",
    r"Dépôt du fichier journal de bord WEBDYN_\d{6}_\d{6}\.log\.gz",
    r"Gestion du firmware\.\.\.",
    r"Connexion terminée",
    r"Reprise de l'acquisition de données\.\.\.",
]


def test_every_phase_then_a_quiet_connection_the_next_day(server, cert, ntp_server, tmp_path):
    """The same two connections with FTP_Pipelining=1 then 0 (the server emptied between), so
    that what pipelining saves is measured on the same work."""
    counts = {}
    for pipelining in (1, 0):
        _empty(server)
        counts[pipelining] = _every_phase_then_next_day(server, cert, ntp_server,
                                                        tmp_path / str(pipelining), pipelining)
    for pipelining, (first, second) in counts.items():
        print("\n%s FTP_Pipelining=%d: every phase: %d commands, %d round trips; "
              "the next day: %d commands, %d round trips"
              % (server.kind, pipelining, first["ftp_commands"], first["round_trips"],
                 second["ftp_commands"], second["round_trips"]))
    (on_first, on_next), (off_first, off_next) = counts[1], counts[0]
    # A quiet connection is mostly commands: pipelined, fewer round trips than commands.
    assert on_next["round_trips"] < on_next["ftp_commands"], counts
    # The same work costs fewer round trips pipelined. (Not fewer round trips than commands
    # on the first connection: round_trips also counts each data connection's TCP connect and
    # TLS handshake, 2 per transfer over FTPS, and that connection makes 11 transfers.)
    assert on_first["round_trips"] < off_first["round_trips"], counts
    assert on_next["round_trips"] < off_next["round_trips"], counts


def _every_phase_then_next_day(server, cert, ntp_server, root, pipelining):
    """Every phase with work to do, then, the next day, a connection with nothing to do; the
    journal and the server checked after each. Returns both connections' stats."""
    gw = gateway(root, server, ntp_server, cert, FTP_Pipelining=str(pipelining),
                 BIN_FileName="ticgw-2.1.pak", BIN_Checksum=hashlib.sha256(PAK).hexdigest())
    gw.wall.t = time.time()                    # the gateway's clock is the server's
    alarm = gw.alarm_file()
    data = gw.data_file(n_rows=20)
    sent = {alarm.name: alarm.read_bytes(), data.name: data.read_bytes()}
    old_log = gw.data / "outbox" / "LOG" / ("%s_240430_120000.log.gz" % SITE)
    old_log.parent.mkdir(parents=True, exist_ok=True)
    old_log.write_bytes(gzip.compress(b"left by an earlier connection\n"))
    (gw.data / "def").mkdir(parents=True, exist_ok=True)
    (gw.data / "def" / DEF_NAME).write_text(DEFINITION)
    put(server, "/CMD/" + CMD_NAME, b"1;DETECT\r\n2;CONFIG;FTP_Timeout=7\r\n")
    put(server, "/BIN/ticgw-2.1.pak", PAK)

    conn = connect(gw)
    outcomes = run_connection(conn)
    first = dict(conn.stats)

    assert outcomes == {p: "done" for p in PHASES}
    check_rows(gw.messages(), FIRST)
    # on the server under their names, nothing left behind
    assert gw.server_files("/ALARM") == [alarm.name]
    assert gw.server_files("/DATA") == [data.name]
    for name, content in sent.items():
        assert server.path("/%s/%s" % ("ALARM" if "_AL_" in name else "DATA", name)
                           ).read_bytes() == content
    (ack,) = gw.server_files("/CMD")                # the command file is gone, its ACK there
    assert re.fullmatch(r"WEBDYN_ACK_\d{6}_\d{6}\.csv", ack)
    assert ack_lines(server, ack) == ["1;DETECT;OK", "2;CONFIG;FTP_Timeout=7;OK"]
    assert gw.store.settings.ftp_timeout == 7
    assert gw.server_files("/CONFIG") == CONFIG_NAMES
    assert b"FTP_Timeout=7" in server.path("/CONFIG/%s_config.ini" % SITE).read_bytes()
    assert server.path("/CONFIG/%s_config.ini" % SITE).read_bytes() == \
        gw.store.file_path("config").read_bytes()
    assert gw.server_files("/DEF") == [DEF_NAME]
    logs = gw.server_files("/LOG")
    assert len(logs) == 2 and old_log.name in logs
    assert log_rows(server.path("/LOG/" + logs[1]))[0] == "Demande de connexion..."
    assert (gw.data / "firmware" / "ticgw-2.1.pak").read_bytes() == PAK
    assert tmp_left(server) == []
    for kind in ("ALARM", "DATA", "PARAM", "CMD", "LOG"):
        assert gw.outbox(kind) == [], kind
    assert conn.effects.detect and conn.restart_needed

    # The next day: nothing to do but the journal (the update service has taken the package).
    gw.bus.answers[("update", "status")] = {
        "record": {"state": "committed", "sha256": hashlib.sha256(PAK).hexdigest()}}
    gw.wall.t += 86400
    n = len(gw.messages())
    before = len(server.commands())
    conn = connect(gw)
    outcomes = run_connection(conn)
    second = dict(conn.stats)
    seen = commands_since(server, before, at_least=second["ftp_commands"] - 1)
    assert outcomes == {p: "done" for p in PHASES}
    check_rows(gw.new_messages(n), NEXT_DAY)
    assert len(gw.server_files("/LOG")) == 3 and gw.server_files("/CMD") == [ack]
    assert "RETR" not in verbs(seen)                     # nothing fetched again

    return first, second


def test_the_commands_counted_are_those_the_daemon_received(server, cert, ntp_server,
                                                            tmp_path):
    """conn.stats["ftp_commands"] is what the connection cost in commands: every command line
    sent, the QUIT included (FtpSession.stats counts it, see services/uplink/ftp.py)."""
    gw = gateway(tmp_path, server, ntp_server, cert)
    gw.data_file()
    before = len(server.commands())
    conn = connect(gw)
    assert conn.data() == "done"
    conn.closing()
    # QUIT is sent without waiting for its reply: the daemon may log it late or not at all,
    # so what it received is compared before the QUIT, plus that one QUIT
    seen = commands_since(server, before, at_least=conn.stats["ftp_commands"] - 1)
    assert len(seen) + 1 == conn.stats["ftp_commands"], (conn.stats, seen)


# ========================================================================== 2. trust

REFUSED_PIN = ("TLS refusé : le certificat du serveur n'a pas l'empreinte FTP_TlsFingerprint "
               "(empreinte SHA-256 reçue %s)")
REFUSED_NAME = ("TLS refusé : nom du serveur absent du certificat ; empreinte SHA-256 du "
                "serveur %s (à vérifier, puis FTP_TlsFingerprint)")
REFUSED_SELF_SIGNED = ("TLS refusé : certificat auto-signé ; empreinte SHA-256 du serveur %s "
                       "(à vérifier, puis FTP_TlsFingerprint)")


def _wrong(fingerprint: str) -> str:
    return fingerprint[:-2] + ("00" if fingerprint[-2:] != "00" else "11")


@pytest.mark.parametrize("case", ["pin", "pin-with-colons", "cafile-by-name"])
def test_trusted_certificate_connects(server, cert, ntp_server, tmp_path, case):
    path, _, fingerprint = cert
    settings = {
        "pin": {"FTP_TlsFingerprint": fingerprint},
        "pin-with-colons": {"FTP_TlsFingerprint": colons(fingerprint)},
        # the name the certificate holds, in its CN only
        "cafile-by-name": {"FTP_TlsFingerprint": "", "FTP_Server": "localhost",
                           "FTP_TlsCaFile": str(path)},
    }[case]
    gw = gateway(tmp_path, server, ntp_server, cert, **settings)
    data = gw.data_file()
    conn = connect(gw)
    assert conn.alarms() == "done"
    assert conn.data() == "done"                 # the data connection is trusted too
    conn.closing()
    assert gw.messages() == ["Gestion des alarmes ...", "Aucune alarme en cours...",
                             "Gestion des fichiers de données ...",
                             "Dépôt du fichier de données %s" % data.name,
                             "Connexion terminée", "Reprise de l'acquisition de données..."]
    assert gw.server_files("/DATA") == [data.name]


@pytest.mark.parametrize("case", ["wrong-pin", "cafile-by-address", "no-trust-setting"])
def test_untrusted_certificate_is_refused_before_the_login(server, cert, ntp_server, tmp_path,
                                                          case):
    path, _, fingerprint = cert
    settings, why = {
        "wrong-pin": ({"FTP_TlsFingerprint": _wrong(fingerprint)}, REFUSED_PIN),
        # the CA file trusts the certificate, but 127.0.0.1 is not the name it holds
        "cafile-by-address": ({"FTP_TlsFingerprint": "", "FTP_Server": "127.0.0.1",
                               "FTP_TlsCaFile": str(path)}, REFUSED_NAME),
        "no-trust-setting": ({"FTP_TlsFingerprint": ""}, REFUSED_SELF_SIGNED),
    }[case]
    gw = gateway(tmp_path, server, ntp_server, cert, **settings)
    data = gw.data_file()
    before = len(server.commands())
    outcomes = run_connection(connect(gw))
    assert outcomes["alarms"] == "abort" and list(outcomes)[-1] == "alarms"
    assert gw.messages()[-6:] == [
        "Synchronisation NTP OK", "Gestion des alarmes ...", "Erreur de connexion FTP",
        why % colons(fingerprint),           # the certificate the server presented
        "Connexion terminée", "Reprise de l'acquisition de données..."]
    assert gw.outbox("DATA") == [data.name] and gw.server_files("/DATA") == []
    # neither the login nor the password left the gateway
    seen = commands_since(server, before)
    assert seen and set(verbs(seen)) == {"AUTH"}, seen


# ================================================================ 3. plain FTP, TLS required

PLAIN_REFUSAL = {
    "vsftpd": "530 Non-anonymous sessions must use encryption.",
    "proftpd": "550 SSL/TLS required on the control channel",
}


def test_plain_ftp_against_a_tls_only_server_says_to_set_ftp_tls(server, cert, ntp_server,
                                                                 tmp_path):
    gw = gateway(tmp_path, server, ntp_server, cert, FTP_Tls="0", FTP_TlsFingerprint="")
    gw.data_file()
    before = len(server.commands())
    outcomes = run_connection(connect(gw))
    assert outcomes["alarms"] == "abort" and list(outcomes)[-1] == "alarms"
    assert gw.messages()[-5:] == [
        "Gestion des alarmes ...", "Erreur de connexion FTP",
        "Connexion refusée par le serveur : %s (le serveur exige TLS : paramètre FTP_Tls)"
        % PLAIN_REFUSAL[server.kind],
        "Connexion terminée", "Reprise de l'acquisition de données..."]
    assert len(gw.outbox("DATA")) == 1
    # refused at USER: the password never went over the plain connection
    seen = commands_since(server, before)
    assert verbs(seen) == ["USER"], seen


# ============================================================== 4. same-size edit in a minute

@pytest.mark.parametrize("pipelining", [1, 0], ids=["pipelining", "one-at-a-time"])
def test_same_size_edit_within_the_minute_of_the_sync_is_downloaded(server, cert, ntp_server,
                                                                    tmp_path, pipelining):
    gw = gateway(tmp_path, server, ntp_server, cert, FTP_Pipelining=str(pipelining))
    gw.wall.t = time.time()                      # the gateway's clock is the server's
    conn = connect(gw)
    assert conn.config() == "done"               # the three files uploaded
    conn.close()
    name = "%s_config.ini" % SITE
    remote = server.path("/CONFIG/" + name)
    local = gw.store.file_path("config").read_bytes()
    assert remote.read_bytes() == local
    edited = local.replace(b"FTP_Timeout=5", b"FTP_Timeout=6")
    assert len(edited) == len(local) and edited != local
    synced = int(remote.stat().st_mtime)
    # A second later (or earlier, at the minute's last second), in the same minute: a LIST
    # shows the very same line as at the sync.
    same_minute = synced + 1 if synced % 60 < 59 else synced - 1
    assert same_minute // 60 == synced // 60
    put(server, "/CONFIG/" + name, edited, mtime=same_minute)

    n = len(gw.messages())
    before = len(server.commands())
    conn = connect(gw)
    assert conn.config() == "done"
    conn.close()
    seen = commands_since(server, before, at_least=conn.stats["ftp_commands"] - 1)
    assert gw.new_messages(n) == ["Gestion des fichiers de configuration ...",
                                  "Sauvegarde de la configuration...",
                                  "Récupération du fichier de configuration %s" % name]
    assert gw.store.settings.ftp_timeout == 6
    assert gw.store.file_path("config").read_bytes() == edited
    if server.kind == "vsftpd" and not pipelining:
        assert "LIST" in verbs(seen), seen       # the listing to the minute was the source
    # and then in step
    n = len(gw.messages())
    conn = connect(gw)
    assert conn.config() == "done"
    conn.close()
    assert gw.new_messages(n) == ["Gestion des fichiers de configuration ...",
                                  "Pas de changement de fichiers de configuration."]
    assert remote.read_bytes() == edited


# ================================================================== 5. killed mid-upload

RATE_LIMIT = {"vsftpd": ("local_max_rate=100000",),          # bytes/s
              "proftpd": ("TransferRate STOR 100",)}         # KB/s


def _random_rows(gw: Gateway, rows: int) -> Path:
    """A data file from the spool, of values that do not compress."""
    t0 = gw.wall.t
    for i in range(rows):
        gw.spool.append_record(1, "021528603314", DEF_NAME, t0 + i,
                               [os.urandom(12).hex(), os.urandom(12).hex(), "%03d" % (i % 90)])
    gw.wall.t = max(gw.wall.t, t0 + rows)
    (path,) = [p for p in gw.spool.seal() if p.parent.name == "DATA"]
    return path


@pytest.mark.parametrize("kind", KINDS)
def test_server_killed_mid_upload_then_back(kind, cert, ntp_server, tmp_path):
    path, key, _ = cert
    # The transfer is slowed down by the server, so that it is surely under way at the kill.
    with FtpDaemon(kind, tls=True, cert=path, key=key, extra=RATE_LIMIT[kind]) as srv:
        gw = gateway(tmp_path, srv, ntp_server, cert)
        data = _random_rows(gw, 3000)
        content = data.read_bytes()
        assert len(content) > 80_000
        tmp_on_server = srv.path("/DATA/%s.tmp" % data.name)
        killed = threading.Event()

        def kill_at_the_tmp():
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if tmp_on_server.exists():
                    srv.kill()
                    killed.set()
                    return
                time.sleep(0.002)

        killer = threading.Thread(target=kill_at_the_tmp, daemon=True)
        killer.start()
        outcomes = run_connection(connect(gw))
        killer.join(5)
        assert killed.is_set()
        partial = tmp_on_server.stat().st_size if tmp_on_server.exists() else 0
        assert partial < len(content)

        assert outcomes["data"] in ("abort", "failed"), outcomes
        rows = gw.messages()
        i = rows.index("Gestion des fichiers de données ...")
        # the reconnection finds the port closed, or (a forked session of the daemon still
        # dying) a connection reset: the reason row says which
        assert rows[i + 1:i + 3] == ["Erreur de transfert FTP : 1 sur 3",
                                     "Erreur de connexion FTP"], rows[i:]
        assert rows[i + 3] in (
            "Serveur FTP injoignable : connexion refusée (paramètres FTP_Server et FTP_Port)",
            "Connexion coupée par le serveur FTP"), rows[i:]
        assert rows[i + 4:] == ["Connexion terminée",
                                "Reprise de l'acquisition de données..."], rows[i:]
        assert gw.outbox("DATA") == [data.name] and data.read_bytes() == content
        assert gw.server_files("/DATA") in ([], [data.name + ".tmp"])   # nothing final

        # The server comes back on the files it left (a partial .tmp included), on another
        # port as a restarted container would, and without the rate limit.
        srv.restart(extra=())
        gw.store.update({"FTP_Port": str(srv.port)})
        before = len(srv.commands())
        n = len(gw.messages())
        outcomes = run_connection(connect(gw))
        assert outcomes == {p: "done" for p in PHASES}
        assert "Dépôt du fichier de données %s" % data.name in gw.new_messages(n)
        assert gw.server_files("/DATA") == [data.name]
        assert srv.path("/DATA/" + data.name).read_bytes() == content
        assert gw.outbox("DATA") == [] and tmp_left(srv) == []
        seen = commands_since(srv, before, at_least=5)
        stors = [c for c in seen if c.upper().startswith("STOR") and data.name in c]
        assert len(stors) == 1, seen                  # delivered once
        assert [c for c in seen if c.upper().startswith("RNTO")
                and c.endswith("/" + data.name)] == ["RNTO /DATA/" + data.name], seen


# ================================================================ 6. relative directories

@pytest.mark.parametrize("kind", KINDS)
def test_relative_directories_from_the_login_directory(kind, cert, ntp_server, tmp_path):
    path, key, _ = cert
    with FtpDaemon(kind, tls=True, cert=path, key=key, chroot=False) as srv:
        assert srv.root == Path("/") and srv.home != Path("/")
        gw = gateway(tmp_path, srv, ntp_server, cert,
                     **{"FTP_Dir" + k: d for k, d in (
                         ("Config", "CONFIG"), ("Def", "DEF"), ("Data", "DATA"),
                         ("Alarm", "ALARM"), ("Cmd", "CMD"), ("Log", "LOG"), ("Bin", "BIN"))})
        assert gw.store.settings.ftp_dir_data == "DATA"
        data = gw.data_file()
        put(srv, "CMD/" + CMD_NAME, b"1;DETECT\r\n")
        gw.journal("Demande de connexion...")
        before = len(srv.commands())
        conn = connect(gw)
        assert conn.data() == "done"
        assert conn.commands() == "done"
        assert conn.logs() == "done"
        conn.closing()
        seen = commands_since(srv, before, at_least=conn.stats["ftp_commands"] - 1)
        # in the login directory, on the daemon's disk
        assert sorted(p.name for p in (srv.home / "DATA").iterdir()) == [data.name]
        (ack,) = sorted(p.name for p in (srv.home / "CMD").iterdir())
        assert ack.startswith(SITE + "_ACK_")
        (log,) = sorted(p.name for p in (srv.home / "LOG").iterdir())
        assert "Dépôt du fichier journal de bord %s" % log in gw.messages()
        assert "Dépôt du fichier %s" % ack in gw.messages()
        assert "Récupération du fichier %s" % CMD_NAME in gw.messages()
        # relative paths in the commands, never a change of directory
        assert "STOR DATA/%s.tmp" % data.name in seen, seen
        assert not [c for c in seen if verbs([c])[0] in ("CWD", "XCWD", "CDUP", "XCUP")], seen
        assert not [c for c in seen if " /" in c], seen


# ========================================================= 7. two connections in one second

def test_two_connections_in_the_same_second_name_files_apart(server, cert, ntp_server,
                                                             tmp_path):
    gw = gateway(tmp_path, server, ntp_server, cert)
    gw.wall.step = 0.0                           # the clock stands still
    runs = [b"1;DETECT\r\n2;LOG\r\n", b"1;CONNECT\r\n2;LOG\r\n"]
    before = len(server.commands())
    for commands in runs:
        put(server, "/CMD/" + CMD_NAME, commands)
        outcomes = run_connection(connect(gw))
        assert outcomes == {p: "done" for p in PHASES}
    acks = [n for n in gw.server_files("/CMD")]
    assert len(acks) == 2 and all("_ACK_" in n for n in acks), acks
    assert ack_lines(server, acks[0]) == ["1;DETECT;OK", "2;LOG;OK"]
    assert ack_lines(server, acks[1]) == ["1;CONNECT;OK", "2;LOG;OK"]
    logs = [n for n in gw.server_files("/LOG") if not n.endswith("_debug.log.gz")]
    debug = [n for n in gw.server_files("/LOG") if n.endswith("_debug.log.gz")]
    assert len(logs) == 2 and len(debug) == 2, gw.server_files("/LOG")
    first, second = (log_rows(server.path("/LOG/" + n)) for n in logs)
    assert first.count("Demande de connexion...") == 1
    assert "Dépôt du fichier %s" % acks[0] in first
    assert second.count("Demande de connexion...") == 1
    assert second[0] == "Dépôt du fichier journal de bord %s" % logs[0]
    assert "Dépôt du fichier %s" % acks[1] in second
    assert gw.outbox("CMD") == [] and gw.outbox("LOG") == []
    # each name written once: no file replaced another
    seen = commands_since(server, before, at_least=10)
    targets = [c.split(" ", 1)[1] for c in seen if c.upper().startswith("RNTO")
               and c.split(" ", 1)[1].startswith(("/CMD/", "/LOG/"))]
    assert sorted(targets) == sorted(
        ["/CMD/" + n for n in acks] + ["/LOG/" + n for n in logs + debug]), seen
