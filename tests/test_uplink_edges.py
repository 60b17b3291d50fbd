"""The uplink at its edges (issue 8), against pyftpdlib: a command file that survives kill -9 at
every step, a refused delete, peers that do not answer, names never reused, a journal that goes
into exactly one LOG file whatever the instant of a crash, same-size edits within a minute on
servers without MLST, relative directories, size limits and odd bytes.
"""
from __future__ import annotations

import gzip
import os
import signal
import time

import pytest

from bus.errors import BusTimeout
from services.uplink import inbox as inbox_module
from services.uplink.ftp import FtpSession
from services.uplink.phases import MAX_BYTES, _Handlers
from sim.ftp_server import FtpTestServer
from ticgw.config import ConfigStore
# The harness's fixtures (ftp_server, ntp_server, gw) are imported to be found by pytest.
from uplink_harness import (SITE, Gateway, ftp_server, gw, ntp_server,  # noqa: F401
                            run_connection, set_remote)

CMD = "/CMD/%s_CMD.csv" % SITE
COMMANDS = b"1;CONFIG;Connection_Timeout=45\r\n2;GETPARAMS\r\n3;CONNECT\r\n"
ACKED = ["1;CONFIG;Connection_Timeout=45;OK", "2;GETPARAMS;OK", "3;CONNECT;OK"]


def acks_on_server(gw) -> dict[str, list[str]]:
    out = {}
    for name in gw.server_files("/CMD"):
        if "_ACK_" in name:
            lines = gw.ftp.path("/CMD/" + name).read_text().splitlines()
            out[name] = [line.split(";", 1)[1] for line in lines]
    return out


def param_files(gw) -> int:
    return len(gw.outbox("PARAM"))


# ============================================================== the command file and kill -9

class _Killer:
    """In a forked child: SIGKILL itself at the n-th step (before or after a write, a delete,
    an upload, a command's effect), as a power cut or kill -9 would."""

    def __init__(self, n: int):
        self.n, self.seen = n, 0

    def step(self):
        if self.seen == self.n:
            os.kill(os.getpid(), signal.SIGKILL)
        self.seen += 1

    def wrap(self, owner, attr):
        real = getattr(owner, attr)

        def wrapped(*args, **kwargs):
            self.step()
            result = real(*args, **kwargs)
            self.step()
            return result
        setattr(owner, attr, wrapped)


def _commands_killed_at(gw, n: int) -> bool:
    """Run the command phase in a child killed at step n; True if it was killed."""
    pid = os.fork()
    if pid == 0:                                          # the child
        try:
            killer = _Killer(n)
            killer.wrap(inbox_module, "write_atomic")
            killer.wrap(FtpSession, "delete")
            killer.wrap(FtpSession, "upload")
            killer.wrap(_Handlers, "config_update")
            killer.wrap(_Handlers, "params")
            gw.connection().commands()
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def test_command_file_survives_kill_9_at_every_step(tmp_path, ntp_server):
    steps = 0
    while True:
        with FtpTestServer() as srv:
            gw = Gateway(tmp_path / str(steps), srv, ntp_server)
            set_remote(srv, CMD, COMMANDS)
            if not _commands_killed_at(gw, steps):
                break                                      # no step left to be killed at
            # the next connection finishes the work
            conn = gw.connection()
            conn.commands()
            assert not srv.path(CMD).exists(), steps
            # acknowledged once, every line once and in order
            (lines,) = acks_on_server(gw).values()
            assert lines == ACKED, steps
            assert gw.outbox("CMD") == [], steps
            assert ConfigStore(gw.data).settings.connection_timeout == 45   # as on disk
            # run once; the line a kill interrupted may run again (GETPARAMS: 2 files)
            assert param_files(gw) in (1, 2), steps
            # what the file asked for survives the kill too
            assert conn.effects.connect_again or conn.inbox.load_effects().connect_again
            # and a third connection finds nothing to do
            gw.connection().commands()
            assert gw.messages()[-1] == "Pas de fichier de commandes disponible...", steps
            assert len(acks_on_server(gw)) == 1
        steps += 1
    assert steps > 15                                     # every step was tried


def test_a_refused_delete_does_not_run_the_file_twice(gw):
    set_remote(gw.ftp, CMD, COMMANDS)
    gw.ftp.fail_next_command("DELE", "550 Permission denied.")
    conn = gw.connection()
    assert conn.commands() == "done"
    assert "Erreur de suppression du fichier %s_CMD.csv" % SITE in gw.messages()
    assert gw.ftp.path(CMD).exists() and len(acks_on_server(gw)) == 1
    n = len(gw.messages())
    assert gw.connection().commands() == "done"
    assert gw.new_messages(n) == ["Gestion des fichiers de commandes ...",
                                  "Pas de fichier de commandes disponible..."]
    assert not gw.ftp.path(CMD).exists()
    assert len(acks_on_server(gw)) == 1 and param_files(gw) == 1
    # a new file with other commands is a new file
    set_remote(gw.ftp, CMD, b"1;DETECT\r\n")
    assert gw.connection().commands() == "done"
    assert ["1;DETECT;OK"] in acks_on_server(gw).values()


def test_a_command_file_too_large_is_refused_and_left_on_the_server(gw):
    set_remote(gw.ftp, CMD, b"1;DETECT\r\n" * (MAX_BYTES["CMD"] // 10 + 1))
    assert gw.connection().commands() == "failed"
    assert gw.messages()[-2:] == [
        "Erreur de récupération du fichier %s_CMD.csv" % SITE,
        "Fichier %s_CMD.csv refusé : %d octets, au plus %d" % (
            SITE, gw.ftp.path(CMD).stat().st_size, MAX_BYTES["CMD"])]
    assert gw.ftp.path(CMD).exists() and acks_on_server(gw) == {}


def test_command_lines_end_at_cr_and_lf_only_and_control_bytes_are_refused(gw):
    set_remote(gw.ftp, CMD, b"1;DETECT\x0b2;REBOOT\r\n3;CONNECT\x1c\r\n4;LOG\n")
    assert gw.connection().commands() == "failed"
    (lines,) = acks_on_server(gw).values()
    assert lines == ["1;DETECT\\x0b2;REBOOT;ERROR;control characters in the line",
                     "3;CONNECT\\x1c;ERROR;control characters in the line",
                     "4;LOG;OK"]


# ============================================================================ bounded waits

def test_getparams_with_the_acquisition_stopped_waits_once(gw):
    waited = []

    def dead_acquisition(service, method, timeout=5.0, **params):
        waited.append((service, method, timeout))
        raise BusTimeout("no reply from %s within %.1f s" % (service, timeout))

    set_remote(gw.ftp, CMD, b"".join(b"%d;GETPARAMS\r\n" % i for i in range(1, 21)))
    gw.data_file()
    conn = gw.connection(bus_call=dead_acquisition)
    assert conn.requesting() == "done"                   # pause: no answer; seal not asked
    assert conn.commands() == "failed"
    assert conn.data() == "done"                          # the data did not wait behind
    assert waited == [("acquisition", "pause", 5.0)]
    (lines,) = acks_on_server(gw).values()
    assert len(lines) == 20
    assert all(line.endswith(";ERROR;parameters unavailable: the acquisition service does "
                             "not answer") for line in lines)


# ============================================================================ names

def test_two_connections_in_the_same_second_use_new_names(gw):
    gw.wall.step = 0.0                                   # the clock stands still
    for _ in range(2):
        set_remote(gw.ftp, CMD, b"1;DETECT\r\n")
        conn = gw.connection()
        assert conn.commands() == "done"
        assert conn.logs() == "done"
    acks = list(acks_on_server(gw))
    logs = gw.server_files("/LOG")
    assert len(acks) == 2 and len(set(acks)) == 2
    assert len(logs) == 2 and logs[0] < logs[1]
    rows = [gzip.decompress(gw.ftp.path("/LOG/" + n).read_bytes()).decode() for n in logs]
    assert "Gestion des fichiers de logs ..." in rows[1]


# ============================================================================ the journal upload

@pytest.mark.parametrize("kill_at", ["after_pending", "after_file", "after_mark"])
def test_journal_rows_go_into_one_log_file_whatever_the_crash(gw, monkeypatch, kill_at):
    for i in range(5):
        gw.journal("row %d" % i)
    conn = gw.connection()
    real_write = conn.journal.mark_sent.__func__
    from services.uplink import phases as phases_module
    real_atomic = phases_module.write_atomic
    calls = []

    def atomic(path, data):
        real_atomic(path, data)
        calls.append(path.name)
        if kill_at == "after_pending" and path.name == "log_pending.json":
            raise SystemExit("killed")
        if kill_at == "after_file" and path.name.endswith(".log.gz"):
            raise SystemExit("killed")

    def mark(self, offset, note=""):
        real_write(self, offset, note)
        if kill_at == "after_mark":
            raise SystemExit("killed")

    monkeypatch.setattr(phases_module, "write_atomic", atomic)
    monkeypatch.setattr(type(conn.journal), "mark_sent", mark)
    with pytest.raises(SystemExit):
        conn.logs()
    monkeypatch.undo()
    gw.journal("after the crash")
    assert gw.connection().logs() == "done"
    text = "".join(gzip.decompress(gw.ftp.path("/LOG/" + n).read_bytes()).decode()
                   for n in gw.server_files("/LOG"))
    for i in range(5):
        assert text.count("\trow %d\n" % i) == 1, text
    assert text.count("\tafter the crash\n") == 1


def test_control_bytes_are_escaped_in_the_journal_and_its_upload(gw):
    gw.journal("Fichier X refusé : bad\x1b[31m\tvalue\u2028next\r\nline")
    assert gw.connection().logs() == "done"
    (name,) = gw.server_files("/LOG")
    text = gzip.decompress(gw.ftp.path("/LOG/" + name).read_bytes()).decode()
    row = [line for line in text.splitlines() if "Fichier X" in line]
    assert row == [row[0]] and row[0].split("\t")[2] == (
        "Fichier X refusé : bad\\x1b[31m\\x09value\\u2028next\\x0d\\x0aline")


# ============================================================================ servers

def test_relative_directories_are_taken_from_the_login_directory(tmp_path, ntp_server):
    with FtpTestServer(dirs=("home/gw/DATA", "home/gw/CMD", "home/gw/LOG")) as srv:
        srv.path("/home/gw").mkdir(parents=True, exist_ok=True)
        gw = Gateway(tmp_path, srv, ntp_server)
        gw.store.update({"FTP_DirData": "home/gw/DATA", "FTP_DirCmd": "home/gw/CMD",
                         "FTP_DirLog": "home/gw/LOG"})
        path = gw.data_file()
        conn = gw.connection()
        assert conn.data() == "done" and conn.commands() == "done"
        assert srv.path("/home/gw/DATA/" + path.name).exists()
        assert "STOR home/gw/DATA/%s.tmp" % path.name in srv.commands
        assert not [c for c in srv.commands if c.startswith("CWD")]


@pytest.mark.parametrize("without", [("MLST", "MLSD"), ("MLST", "MLSD", "MDTM")],
                         ids=["list+mdtm", "list-only"])
def test_same_size_edit_within_the_minute_is_seen(tmp_path, ntp_server, without):
    """LIST shows the minute: an edit of the same size in the minute of the last sync looks
    unchanged there. MDTM, else the content's hash, tells."""
    with FtpTestServer(without=without) as srv:
        gw = Gateway(tmp_path, srv, ntp_server)
        gw.wall.t = time.time()                           # the gateway's clock is the server's
        conn = gw.connection()
        assert conn.config() == "done"                    # uploads the three files
        name = "%s_config.ini" % SITE
        local = gw.store.file_path("config").read_bytes()
        edited = local.replace(b"FTP_Timeout=5", b"FTP_Timeout=6")
        assert len(edited) == len(local) and edited != local
        uploaded = int(srv.path("/CONFIG/" + name).stat().st_mtime)
        later_in_that_minute = uploaded + 1 if uploaded % 60 < 59 else uploaded - 1
        set_remote(srv, "/CONFIG/" + name, edited, mtime=later_in_that_minute)
        n = len(gw.messages())
        conn = gw.connection()
        assert conn.config() == "done"
        assert "Récupération du fichier de configuration %s" % name in gw.new_messages(n)
        assert gw.store.settings.ftp_timeout == 6
        # and then it is in step
        n = len(gw.messages())
        assert gw.connection().config() == "done"
        assert gw.new_messages(n)[-1] == "Pas de changement de fichiers de configuration."


def test_plain_ftp_against_a_tls_only_server_says_why(tmp_path, ntp_server):
    with FtpTestServer(tls=True) as srv:
        gw = Gateway(tmp_path, srv, ntp_server)
        conn = gw.connection()
        with pytest.raises(Exception):
            conn.alarms()
        assert gw.messages()[-2] == "Erreur de connexion FTP"
        assert gw.messages()[-1].startswith("Connexion refusée par le serveur : 550 SSL/TLS")
        gw.store.update({"FTP_Tls": "1"})
        conn = gw.connection(settings=gw.store.settings)
        with pytest.raises(Exception):
            conn.alarms()
        why = gw.messages()[-1]
        assert why.startswith("TLS refusé : certificat auto-signé ; empreinte SHA-256 du "
                              "serveur "), why
        fingerprint = why.split("serveur ")[1].split(" ")[0]
        gw.store.update({"FTP_TlsFingerprint": fingerprint})
        conn = gw.connection(settings=gw.store.settings)
        assert conn.alarms() == "done"
        conn.close()



def test_directories_seen_once_are_not_looked_at_again(gw):
    """No command file is the usual case: the first session checks that /CMD exists, later
    ones remember it (a round trip saved per connection); an error still checks."""
    for _ in range(2):
        gw.ftp.commands.clear()
        conn = gw.connection()
        assert conn.commands() == "done"
        conn.close()
    assert "MLST /CMD" not in gw.ftp.commands
    assert "MLST /CMD/%s_CMD.csv" % SITE in gw.ftp.commands
    gw.store.update({"FTP_DirCmd": "/ELSEWHERE"})         # a directory never seen
    conn = gw.connection(settings=gw.store.settings)
    assert conn.commands() == "failed"
    assert gw.messages()[-1] == ("Répertoire /ELSEWHERE absent du serveur FTP (paramètre "
                                 "FTP_DirCmd)")


def test_command_file_killed_before_its_delete_on_a_server_without_times(tmp_path, ntp_server):
    """Neither MLST nor MDTM: the server copy left by a kill is known by its size and content,
    and is not run twice."""
    with FtpTestServer(without=("MLST", "MLSD", "MDTM")) as srv:
        gw = Gateway(tmp_path, srv, ntp_server)
        set_remote(srv, CMD, COMMANDS)
        # steps: the inbox's two writes (content, taken.json), before and after each; the 5th
        # step is just before the server copy's delete
        assert _commands_killed_at(gw, 4)
        assert srv.path(CMD).exists()
        conn = gw.connection()
        conn.commands()
        assert not srv.path(CMD).exists()
        (lines,) = acks_on_server(gw).values()
        assert lines == ACKED
        assert param_files(gw) == 1
