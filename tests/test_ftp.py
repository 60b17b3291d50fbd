"""The uplink's FTP client against a real pyftpdlib server (sim.ftp_server), faults included."""
from __future__ import annotations

import dataclasses
import os
import re
import time

import pytest

from services.uplink.ftp import (FtpConnectError, FtpTlsError, FtpDirectoryMissing, FtpFileMissing,
                                 FtpNoSpace, FtpSession, FtpSettings, FtpTransferError,
                                 RemoteFile)
from ftpd import fingerprint_of
from sim.ftp_server import FtpTestServer

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def server():
    with FtpTestServer() as srv:
        yield srv


@pytest.fixture
def payload(tmp_path):
    path = tmp_path / "SITE_TIC_261123_101500.csv.gz"
    path.write_bytes(os.urandom(50_000))
    return path


def session(srv: FtpTestServer, **overrides) -> FtpSession:
    overrides.setdefault("timeout", 5.0)
    return FtpSession(FtpSettings(**srv.client_settings(**overrides)))


def listing(srv: FtpTestServer, remote_dir: str) -> list[str]:
    return sorted(p.name for p in srv.path(remote_dir).iterdir())


class Retries:
    def __init__(self):
        self.calls = []

    def __call__(self, attempt, tries, error):
        self.calls.append((attempt, tries, error))

    @property
    def counts(self):
        return [(a, t) for a, t, _ in self.calls]


# ------------------------------------------------------------------------------ upload
def test_upload_goes_as_tmp_then_rename_and_arrives_whole(server, payload):
    before = payload.read_bytes()
    with session(server) as ftp:
        assert ftp.upload("DATA", payload) == len(before)
    assert server.path("/DATA/" + payload.name).read_bytes() == before
    assert listing(server, "/DATA") == [payload.name]        # no .tmp left behind
    stor = [c for c in server.commands if c.startswith(("STOR", "RNFR", "RNTO"))]
    assert stor == [f"STOR /DATA/{payload.name}.tmp", f"RNFR /DATA/{payload.name}.tmp",
                    f"RNTO /DATA/{payload.name}"]
    assert payload.read_bytes() == before                    # the spool file is untouched


def test_upload_with_remote_name_replaces_a_stale_tmp(server, payload):
    server.path("/CONFIG/SITE_config.ini.tmp").write_bytes(b"half a file")
    with session(server) as ftp:
        ftp.upload("CONFIG", payload, remote_name="SITE_config.ini")
    assert listing(server, "/CONFIG") == ["SITE_config.ini"]
    assert server.path("/CONFIG/SITE_config.ini").read_bytes() == payload.read_bytes()


def test_silently_truncated_upload_is_caught_by_the_size_check_and_retried(server, payload):
    server.fail_next_stor(1, "truncate", after_bytes=2000)   # server says 226 anyway
    retries = Retries()
    with session(server) as ftp:
        ftp.upload("DATA", payload, on_retry=retries)
    assert retries.counts == [(1, 3)]
    assert "2000" in str(retries.calls[0][2]) and "50000" in str(retries.calls[0][2])
    assert server.path("/DATA/" + payload.name).read_bytes() == payload.read_bytes()
    assert listing(server, "/DATA") == [payload.name]
    # The short copy was never renamed to the real name: one rename only, after the good STOR.
    assert [c for c in server.commands if c.startswith("RNTO")] == [f"RNTO /DATA/{payload.name}"]
    assert server.transfers[0][3] == 50_000 and server.transfers[1][2] is True


def test_dropped_data_connection_fails_one_try_and_the_next_succeeds(server, payload):
    server.fail_next_stor(1, "drop", after_bytes=4096)
    retries = Retries()
    with session(server) as ftp:
        assert ftp.upload("DATA", payload, on_retry=retries) == 50_000
        assert ftp.stats["connects"] == 1   # the control channel stayed usable
    assert retries.counts == [(1, 3)]
    assert server.path("/DATA/" + payload.name).read_bytes() == payload.read_bytes()
    assert listing(server, "/DATA") == [payload.name]


def test_three_failures_raise_transfer_error_and_leave_the_local_file(server, payload):
    before = payload.read_bytes()
    mtime = payload.stat().st_mtime_ns
    server.fail_next_stor(3, "drop", after_bytes=1000)
    retries = Retries()
    with session(server) as ftp:
        with pytest.raises(FtpTransferError) as info:
            ftp.upload("DATA", payload, on_retry=retries)
    assert retries.counts == [(1, 3), (2, 3), (3, 3)]
    assert info.value.attempts == 3 and info.value.name == payload.name
    assert info.value.reply and info.value.reply.startswith("426")
    assert payload.read_bytes() == before and payload.stat().st_mtime_ns == mtime
    assert payload.name not in listing(server, "/DATA")      # at most a .tmp, never the name


@pytest.mark.parametrize("mode, code, reply", [
    ("full", 552, "552"), ("full", 452, "452"), ("enospc", 552, "452")])
def test_disk_full_raises_no_space_without_retrying(server, payload, mode, code, reply):
    server.fail_next_stor(1, mode, code=code, after_bytes=3000)
    retries = Retries()
    with session(server) as ftp:
        with pytest.raises(FtpNoSpace) as info:
            ftp.upload("DATA", payload, on_retry=retries)
        assert ftp.connected   # the session is still usable for other phases
        assert ftp.listdir("DATA") == []
    assert info.value.reply.startswith(reply)
    assert retries.calls == []
    assert listing(server, "/DATA") == []


def test_control_connection_lost_mid_upload_reconnects_for_the_next_try(server, payload):
    server.drop_connection_on("STOR")
    retries = Retries()
    with session(server) as ftp:
        ftp.upload("DATA", payload, on_retry=retries)
        assert ftp.stats["connects"] == 2
    assert retries.counts == [(1, 3)]
    assert server.path("/DATA/" + payload.name).read_bytes() == payload.read_bytes()


def test_rename_refused_over_an_existing_file_replaces_it(server, payload):
    server.path("/CONFIG/SITE_var.ini").write_bytes(b"old")
    server.fail_next_command("RNTO", "550 Target exists.")
    with session(server) as ftp:
        ftp.upload("CONFIG", payload, remote_name="SITE_var.ini")
    assert server.path("/CONFIG/SITE_var.ini").read_bytes() == payload.read_bytes()
    assert listing(server, "/CONFIG") == ["SITE_var.ini"]


def test_slow_link_upload_waits_for_the_end_instead_of_truncating(server, tmp_path):
    # The server drains the data connection at 64 kB/s, so its final reply comes well after the
    # client has handed everything to the kernel and after the session timeout: ftputil's
    # FTPFile would give up after 5 s and report success on a truncated file.
    data = os.urandom(160_000)
    local = tmp_path / "big.bin"
    local.write_bytes(data)
    server.fail_next_stor(1, "slow", rate=64_000)
    with session(server, timeout=1.0) as ftp:
        started = time.monotonic()
        ftp.upload("LOG", local)
        elapsed = time.monotonic() - started
    assert elapsed > 1.0
    assert server.path("/LOG/big.bin").read_bytes() == data


# ------------------------------------------------------------------- connection errors
def test_server_down_is_a_connect_error_and_back_up_works(server):
    port = server.port
    server.stop()
    with pytest.raises(FtpConnectError) as info:
        session(server).connect()
    assert "refused" in str(info.value).lower()
    server.start()
    assert server.port == port
    with session(server) as ftp:
        assert ftp.check_dir("DATA") == "/DATA"


def test_login_refused_is_a_connect_error_with_the_reply(server):
    server.refuse_login = True
    with pytest.raises(FtpConnectError) as info:
        session(server).connect()
    assert info.value.reply == "530 Login refused by test server."
    assert "530" in str(info.value)


def test_wrong_password_is_a_connect_error(server):
    with pytest.raises(FtpConnectError) as info:
        session(server, password="nope").connect()
    assert info.value.reply.startswith("530")


def test_missing_directory_names_the_dir_and_the_setting(payload):
    with FtpTestServer(omit=("/ALARM",)) as srv:
        retries = Retries()
        with session(srv) as ftp:
            with pytest.raises(FtpDirectoryMissing) as info:
                ftp.upload("ALARM", payload, on_retry=retries)
            assert ftp.check_dir("DATA") == "/DATA"
        assert info.value.kind == "ALARM" and info.value.path == "/ALARM"
        assert "/ALARM" in str(info.value) and "FTP_DirAlarm" in str(info.value)
        assert retries.calls == []
        assert not srv.path("/ALARM").exists()               # never created


def test_missing_directory_is_checked_only_when_the_upload_fails(payload):
    with FtpTestServer(omit=("/ALARM",)) as srv:
        with session(srv) as ftp:
            ftp.upload("DATA", payload)
            with pytest.raises(FtpDirectoryMissing) as info:
                ftp.upload("ALARM", payload)
            # a second upload finds out the same way (a missing directory is not remembered)
            with pytest.raises(FtpDirectoryMissing):
                ftp.upload("ALARM", payload)
        assert info.value.setting == "FTP_DirAlarm"
        # No directory check before the DATA upload; for ALARM, one after the refused STOR.
        alarm = [c for c in srv.commands if "/ALARM" in c]
        tmp = f"/ALARM/{payload.name}.tmp"
        assert alarm == ["STOR " + tmp, "MLST /ALARM", "STOR " + tmp, "MLST /ALARM"]
        assert not any(c.startswith(("MLST /DATA", "CWD")) for c in srv.commands)
        assert not srv.path("/ALARM").exists()


def test_missing_directory_on_download_stat_list_and_delete(tmp_path):
    with FtpTestServer(omit=("/BIN", "/CMD", "/DEF")) as srv:
        retries = Retries()
        with session(srv) as ftp:
            with pytest.raises(FtpDirectoryMissing) as info:
                ftp.download("BIN", "fw.bin", tmp_path / "fw.bin", on_retry=retries)
            assert (info.value.kind, info.value.path) == ("BIN", "/BIN")
            assert "FTP_DirBin" in str(info.value)
            with pytest.raises(FtpDirectoryMissing) as info:
                ftp.stat("CMD", "SITE_CMD.csv")
            assert info.value.setting == "FTP_DirCmd"
            with pytest.raises(FtpDirectoryMissing) as info:
                ftp.delete("CMD", "SITE_CMD.csv", missing_ok=True)
            with pytest.raises(FtpDirectoryMissing) as info:
                ftp.listdir("DEF")
            assert info.value.setting == "FTP_DirDef"
            # a missing file in a directory that exists is still just a missing file
            with pytest.raises(FtpFileMissing):
                ftp.download("CONFIG", "SITE_config.ini", tmp_path / "c.ini")
            assert ftp.stat("CONFIG", "SITE_config.ini") is None
        assert retries.calls == []
        assert not (tmp_path / "fw.bin").exists()
        assert not any(srv.path(d).exists() for d in ("/BIN", "/CMD", "/DEF"))


def test_missing_directory_without_mlst_is_found_by_cwd(payload):
    with FtpTestServer(omit=("/ALARM", "/DEF")) as srv:
        for verb in ("MLST", "MLSD"):
            srv.fail_next_command(verb, "502 Command not implemented.", n=50)
        with session(srv) as ftp:
            with pytest.raises(FtpDirectoryMissing):
                ftp.upload("ALARM", payload)
            with pytest.raises(FtpDirectoryMissing):
                ftp.listdir("DEF")
            assert ftp.listdir("CONFIG") == []
            ftp.upload("DATA", payload)
        assert srv.path("/DATA/" + payload.name).read_bytes() == payload.read_bytes()


def test_server_slower_than_the_timeout_fails_cleanly(server):
    server.delay_replies(3.0)                      # even the greeting is late
    started = time.monotonic()
    with pytest.raises(FtpConnectError) as info:
        session(server, timeout=0.5).connect()
    assert time.monotonic() - started < 2.0
    assert "timed out" in str(info.value)


def test_slow_reply_after_login_fails_the_operation_then_reconnects(server):
    server.path("/CMD/SITE_CMD.csv").write_bytes(b"1;CONNECT\r\n")
    with session(server, timeout=0.5) as ftp:
        ftp.check_dir("CMD")
        server.delay_replies(3.0, commands={"MLSD"})
        started = time.monotonic()
        with pytest.raises(FtpTransferError) as info:
            ftp.listdir("CMD")
        assert time.monotonic() - started < 2.0
        assert "timed out" in str(info.value)
        server.delay_replies(0)
        assert [f.name for f in ftp.listdir("CMD")] == ["SITE_CMD.csv"]
        assert ftp.stats["connects"] == 2


# ------------------------------------------------------------------------ download etc.
def test_download_is_atomic_and_size_checked(server, tmp_path):
    content = os.urandom(30_000)
    server.path("/CONFIG/SITE_config.ini").write_bytes(content)
    remote_mtime = int(server.path("/CONFIG/SITE_config.ini").stat().st_mtime)
    local = tmp_path / "cfg" / "SITE_config.ini"
    with session(server) as ftp:
        size, mtime = ftp.download("CONFIG", "SITE_config.ini", local)
        assert (size, mtime) == (30_000, remote_mtime)
        assert local.read_bytes() == content

        # A short transfer (server sends 1000 bytes and says 226) never replaces the file.
        server.path("/CONFIG/SITE_config.ini").write_bytes(b"new" * 5000)
        server.fail_next_retr(3, after_bytes=1000)
        retries = Retries()
        with pytest.raises(FtpTransferError) as info:
            ftp.download("CONFIG", "SITE_config.ini", local, on_retry=retries)
        assert retries.counts == [(1, 3), (2, 3), (3, 3)]
        assert "1000" in str(info.value) and "15000" in str(info.value)
        assert local.read_bytes() == content
        assert os.listdir(local.parent) == ["SITE_config.ini"]     # no temp file left

        with pytest.raises(FtpFileMissing):
            ftp.download("CONFIG", "SITE_daq.ini", tmp_path / "x.ini")
        assert not (tmp_path / "x.ini").exists()


def test_delete_and_rename(server):
    server.path("/CMD/SITE_CMD.csv").write_bytes(b"1;REBOOT\r\n")
    with session(server) as ftp:
        ftp.rename("CMD", "SITE_CMD.csv", "SITE_CMD.old")
        assert listing(server, "/CMD") == ["SITE_CMD.old"]
        assert ftp.delete("CMD", "SITE_CMD.old") is True
        assert listing(server, "/CMD") == []
        assert ftp.delete("CMD", "SITE_CMD.old", missing_ok=True) is False
        with pytest.raises(FtpFileMissing):
            ftp.delete("CMD", "SITE_CMD.old")
        with pytest.raises(FtpFileMissing):
            ftp.rename("CMD", "nothing.csv", "other.csv")


def _fill_def_dir(srv):
    srv.path("/DEF/SITE_TIC_B.ini").write_bytes(b"b" * 20)
    srv.path("/DEF/SITE_TIC_A.ini").write_bytes(b"a" * 10)
    srv.path("/DEF/sub").mkdir()
    old = time.time() - 3 * 86400
    os.utime(srv.path("/DEF/SITE_TIC_A.ini"), (old, old))
    return int(old), int(srv.path("/DEF/SITE_TIC_B.ini").stat().st_mtime)


def test_listdir_and_stat(server):
    old, new = _fill_def_dir(server)
    with session(server) as ftp:
        files = ftp.listdir("DEF")
        assert files == [RemoteFile("SITE_TIC_A.ini", 10, old), RemoteFile("SITE_TIC_B.ini", 20, new)]
        assert [(n, s) for n, s, *_ in files] == [("SITE_TIC_A.ini", 10), ("SITE_TIC_B.ini", 20)]
        assert ftp.stat("DEF", "SITE_TIC_A.ini") == (10, old)
        assert ftp.stat("DEF", "missing.ini") is None
        assert ftp.stat("DEF", "sub") is None
        assert ftp.listdir("BIN") == []


def test_servers_without_mlst_fall_back_to_list(server, payload):
    old, new = _fill_def_dir(server)
    for verb in ("MLST", "MLSD"):
        server.fail_next_command(verb, "502 Command not implemented.", n=50)
    with session(server) as ftp:
        files = ftp.listdir("DEF")
        assert [(f.name, f.size) for f in files] == [("SITE_TIC_A.ini", 10), ("SITE_TIC_B.ini", 20)]
        # LIST gives a day for files older than six months, the minute for recent ones.
        assert abs(files[0].mtime - old) < 86400 and abs(files[1].mtime - new) < 61
        # LIST says the minute; stat asks MDTM, which says the second.
        assert files[1].precision == 60
        assert ftp.stat("DEF", "SITE_TIC_B.ini") == (20, new)
        assert ftp.stat("DEF", "SITE_TIC_B.ini", with_time=False) == (20, None)
        assert ftp.stat("DEF", "nope") is None
        ftp.settings.dirs["LOG"] = "/NOPE"
        with pytest.raises(FtpDirectoryMissing):
            ftp.check_dir("LOG")                            # CWD answered 550
        ftp.upload("DATA", payload)
    assert server.path("/DATA/" + payload.name).read_bytes() == payload.read_bytes()


# ------------------------------------------------------------------------------ FTPS
def test_explicit_ftps_upload_and_download(payload, tmp_path, monkeypatch):
    from services.uplink import ftp as ftp_module

    resumed = []
    real = ftp_module._TlsSession.ntransfercmd

    def spy(self, cmd, rest=None):
        conn, size = real(self, cmd, rest)
        resumed.append(conn.session_reused)
        return conn, size

    monkeypatch.setattr(ftp_module._TlsSession, "ntransfercmd", spy)
    with FtpTestServer(tls=True) as srv:
        with session(srv) as ftp:
            ftp.upload("DATA", payload)
            local = tmp_path / "back.bin"
            assert ftp.download("DATA", payload.name, local)[0] == 50_000
        assert local.read_bytes() == payload.read_bytes()
        assert srv.path("/DATA/" + payload.name).read_bytes() == payload.read_bytes()
        # Data connections resume the control connection's TLS session (vsftpd, proftpd need it).
        assert resumed and all(resumed)
        assert srv.commands[:3] == ["AUTH TLS", "USER gw", "PASS ******"]
        assert "PROT P" in srv.commands

        with pytest.raises(FtpConnectError) as info:          # plain FTP is refused
            session(srv, tls=False).connect()
        assert info.value.reply.startswith("550")
        with pytest.raises(FtpTlsError) as info:              # an untrusted certificate
            session(srv, tls_cafile=None).connect()
        assert info.value.why == "self-signed certificate"
        # the fingerprint the server presented, as openssl prints it, to check and pin
        assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", info.value.fingerprint)
        assert "PASS ******" not in srv.commands[3:]         # no password to an untrusted server


# ------------------------------------------------------------------------------ stats
def test_stats_count_commands_and_bytes(server, payload, tmp_path):
    with session(server) as ftp:
        ftp.upload("DATA", payload)
        after_upload = ftp.stats
        assert after_upload["commands"] == len(server.commands)
        assert after_upload["data_bytes_sent"] == 50_000
        ftp.download("DATA", payload.name, tmp_path / "back.bin")
    stats = ftp.stats
    wait_for_quit(server)
    assert stats["commands"] == len(server.commands)   # QUIT included
    assert stats["unanswered"] == 1                    # QUIT: its reply is not waited for
    assert stats["data_bytes_received"] == 50_000
    assert stats["uploads"] == 1 and stats["downloads"] == 1 and stats["connects"] == 1
    assert stats["bytes_sent"] == stats["data_bytes_sent"] + stats["ctrl_bytes_sent"]
    ctrl_sent = sum(len(c) + 2 for c in server.commands) - len("******") + len(server.password)
    assert stats["ctrl_bytes_sent"] == ctrl_sent
    assert 200 < stats["ctrl_bytes_received"] < 3000


def test_a_second_upload_costs_five_commands(server, payload):
    with session(server) as ftp:
        ftp.upload("DATA", payload, remote_name="one")
        before = ftp.stats["commands"]
        ftp.upload("DATA", payload, remote_name="two")
        # PASV, STOR, SIZE of the .tmp, RNFR, RNTO (TYPE I is sent once per session)
        assert ftp.stats["commands"] - before == 5


def wait_for_quit(srv: FtpTestServer, within: float = 5.0) -> None:
    """The client does not wait for QUIT's reply: wait until the server has read it."""
    deadline = time.monotonic() + within
    while "QUIT" not in srv.commands:
        assert time.monotonic() < deadline, srv.commands
        time.sleep(0.01)


def _after_login(srv: FtpTestServer) -> list[str]:
    """The commands after USER/PASS and FEAT (once per session), without the final QUIT."""
    cmds = srv.commands[srv.commands.index("PASS ******") + 1:]
    cmds = cmds[1:] if cmds and cmds[0] == "FEAT" else cmds
    return cmds[:-1] if cmds and cmds[-1] == "QUIT" else cmds


def test_one_upload_costs_at_most_six_commands(server, payload):
    with session(server) as ftp:
        ftp.upload("DATA", payload)
    cmds = _after_login(server)
    assert len(cmds) <= 6
    tmp = f"/DATA/{payload.name}.tmp"
    assert cmds == ["TYPE I", "PASV", "STOR " + tmp, "SIZE " + tmp, "RNFR " + tmp,
                    f"RNTO /DATA/{payload.name}"]


def test_a_steady_connection_costs_few_commands(server, tmp_path):
    # What the daily connection does when nothing but the day's files changed: an alarm file,
    # no command file, the data file, the config and definition listings, the journal.
    _fill_def_dir(server)
    files = {}
    for kind in ("ALARM", "DATA", "LOG"):
        files[kind] = tmp_path / f"SITE_{kind}_261123_101500.csv.gz"
        files[kind].write_bytes(os.urandom(2000))
    with session(server) as ftp:
        ftp.upload("ALARM", files["ALARM"])
        assert ftp.stat("CMD", "SITE_CMD.csv") is None
        ftp.upload("DATA", files["DATA"])
        assert ftp.listdir("CONFIG") == []
        assert len(ftp.listdir("DEF")) == 2
        ftp.upload("LOG", files["LOG"])
        per_upload = ftp.stats["commands"]
        ftp.upload("DATA", files["DATA"], remote_name="again.csv.gz")
        per_upload = ftp.stats["commands"] - per_upload
    wait_for_quit(server)
    verbs = [c.split(" ", 1)[0] for c in _after_login(server)]
    assert per_upload <= 6
    # USER, PASS, FEAT, TYPE I; 4 uploads x 5; MLST of the command file then of /CMD (not found:
    # is the directory there?); 2 listings x (PASV, MLSD); QUIT
    assert len(server.commands) == 2 + 2 + 4 * 5 + 2 + 2 * 2 + 1
    assert verbs.count("TYPE") == 1                      # listings stay in binary mode
    for verb in ("CWD", "PWD", "DELE", "LIST"):
        assert verb not in verbs
    # the only directory looked at is the one where something was not found
    assert [c for c in server.commands if c.startswith("MLST")] == [
        "MLST /CMD/SITE_CMD.csv", "MLST /CMD"]


def test_mlsd_listing_is_received_in_binary_mode(server):
    _fill_def_dir(server)
    with session(server) as ftp:
        ftp.listdir("DEF")
        ftp.listdir("DEF")
        assert ftp.stats["data_bytes_received"] > 0
    assert "TYPE A" not in server.commands
    assert _after_login(server) == ["TYPE I", "PASV", "MLSD /DEF", "PASV", "MLSD /DEF"]


def test_stale_tmp_without_overwrite_right_is_removed_within_the_same_try(server, payload):
    tmp = f"/DATA/{payload.name}.tmp"
    server.path(tmp).write_bytes(b"half a file")
    server.fail_next_command("STOR", "550 Permission denied: overwrite.")
    retries = Retries()
    with session(server) as ftp:
        assert ftp.upload("DATA", payload, on_retry=retries) == 50_000
    assert retries.calls == []
    assert server.path("/DATA/" + payload.name).read_bytes() == payload.read_bytes()
    assert listing(server, "/DATA") == [payload.name]
    cmds = [c for c in _after_login(server) if c.split(" ", 1)[0] in ("STOR", "DELE", "MLST")]
    assert cmds == ["STOR " + tmp, "MLST /DATA", "DELE " + tmp, "STOR " + tmp]


def test_stor_refused_and_tmp_not_removable_fails_the_try(server, payload):
    server.fail_next_command("STOR", "550 Permission denied.")
    server.fail_next_command("DELE", "550 Permission denied.")
    retries = Retries()
    with session(server) as ftp:
        ftp.upload("DATA", payload, on_retry=retries)
    assert retries.counts == [(1, 3)]
    assert str(retries.calls[0][2]).startswith("550 Permission denied.")
    assert server.path("/DATA/" + payload.name).read_bytes() == payload.read_bytes()


# --------------------------------------------------------------------------- settings
def test_settings_from_the_gateway_configuration():
    from ticgw.config.settings import defaults

    base = defaults()
    cfg = dataclasses.replace(base, ftp_server="ftp.example.test", ftp_port=2121,
                              ftp_login="gw", ftp_password="pw", ftp_tls=True,
                              ftp_passive=False, ftp_timeout=45, ftp_dir_data="/site/DATA")
    st = FtpSettings.from_settings(cfg)
    assert (st.host, st.port, st.login, st.password) == ("ftp.example.test", 2121, "gw", "pw")
    assert (st.tls, st.passive, st.timeout) == (True, False, 45.0)
    assert st.dir("DATA") == "/site/DATA" and st.dir("BIN") == "/BIN" and st.dir("CONFIG") == "/CONFIG"
    assert set(st.dirs) == {"CONFIG", "DEF", "DATA", "ALARM", "CMD", "LOG", "BIN"}


def test_active_mode_works(server, payload):
    with session(server, passive=False) as ftp:
        ftp.upload("DATA", payload)
    assert "PORT" in " ".join(server.commands) or "EPRT" in " ".join(server.commands)
    assert server.path("/DATA/" + payload.name).read_bytes() == payload.read_bytes()


def test_tls_trust_cn_only_certificate_ca_file_and_pinning(payload, tmp_path):
    """An integrator's server: self-signed, its name only in the CN (no subjectAltName)."""
    with FtpTestServer(tls=True, cert_san=False) as srv:
        # the CA file holding the server's own certificate; the name matched on the CN
        with session(srv, host="localhost") as ftp:
            ftp.upload("DATA", payload)
        assert srv.path("/DATA/" + payload.name).read_bytes() == payload.read_bytes()
        # ... but the name must still match
        with pytest.raises(FtpTlsError) as info:
            session(srv, host="127.0.0.1").connect()
        assert "mismatch" in info.value.why.lower()

        fingerprint = fingerprint_of(srv.certfile)
        openssl_style = ":".join(fingerprint[i:i + 2] for i in range(0, 64, 2)).upper()
        # pinned: accepted whatever the chain and the name; no CA file needed
        for pin in (fingerprint, openssl_style):
            with session(srv, tls_cafile=None, tls_fingerprint=pin) as ftp:
                ftp.listdir("DATA")
        # a wrong pin: refused, before the password, with the fingerprint presented
        srv.commands.clear()
        with pytest.raises(FtpTlsError) as info:
            session(srv, tls_cafile=None, tls_fingerprint="00" * 32).connect()
        assert info.value.why == "fingerprint"
        assert info.value.fingerprint == openssl_style
        assert "PASS ******" not in srv.commands
        # a pin wins over a CA file that would trust the certificate
        with pytest.raises(FtpTlsError):
            session(srv, host="localhost", tls_fingerprint="ab" * 32).connect()
        # an unreadable CA file says so
        with pytest.raises(FtpTlsError) as info:
            session(srv, tls_cafile=str(tmp_path / "missing.pem")).connect()
        assert info.value.why == "cafile" and "missing.pem" in str(info.value)


@pytest.mark.parametrize("pipelining", [True, False])
@pytest.mark.parametrize("without", [(), ("MLST", "MLSD")], ids=["mlst", "size+mdtm"])
def test_pipelined_commands_cost_one_round_trip(payload, tmp_path, pipelining, without):
    """PASS with FEAT and TYPE, PASV with STOR, SIZE with RNFR, the stats of several files: one
    round trip each when pipelined; the same answers one at a time (FTP_Pipelining=0)."""
    with FtpTestServer(without=without) as srv:
        srv.path("/CONFIG/a.ini").write_bytes(b"a" * 10)
        srv.path("/CONFIG/b.ini").write_bytes(b"b" * 20)
        mtime = int(srv.path("/CONFIG/b.ini").stat().st_mtime)
        with session(srv, pipelining=pipelining) as ftp:
            ftp.upload("DATA", payload)
            assert ftp.can_stat_many == pipelining
            found = ftp.stat_many("CONFIG", ["a.ini", "b.ini", "c.ini"])
            stats = ftp.stats
        assert found["b.ini"] == RemoteFile("b.ini", 20, mtime, 1)
        assert found["a.ini"].size == 10 and found["c.ini"] is None
        assert srv.path("/DATA/" + payload.name).read_bytes() == payload.read_bytes()
        wait_for_quit(srv)
        verbs = [c.split(" ", 1)[0] for c in srv.commands]
        assert verbs[2:4] == ["FEAT", "TYPE"]
        assert verbs[verbs.index("SIZE"):verbs.index("SIZE") + 3] == ["SIZE", "RNFR", "RNTO"]
        if pipelining:
            per_file = 1 if without == () else 2
            # PASS+FEAT+TYPE, PASV+STOR, SIZE+RNFR, the three stats
            assert stats["pipelined"] == 2 + 1 + 1 + 3 * per_file - 1
        else:
            assert stats["pipelined"] == 0
        assert stats["round_trips"] == (stats["commands"] - stats["unanswered"]
                                        - stats["pipelined"] + 1 + stats["data_connections"])


def test_a_different_file_under_the_name_is_never_replaced(server, payload):
    """A server that refuses to rename over a file: the file there is removed only when it is
    the same upload (an earlier try whose end was not seen), never when it is another file."""
    server.path("/DATA/" + payload.name).write_bytes(b"someone else's file")
    server.fail_next_command("RNTO", "553 File exists.", n=10)
    with session(server) as ftp:
        with pytest.raises(FtpTransferError):
            ftp.upload("DATA", payload, tries=1)
    assert server.path("/DATA/" + payload.name).read_bytes() == b"someone else's file"


def test_ftps_login_is_one_round_trip_and_the_password_waits_for_trust(payload):
    """Under TLS, USER, PASS, PBSZ, PROT, FEAT and TYPE go together once the certificate is
    trusted; a refused password is the error, whatever follows it."""
    with FtpTestServer(tls=True) as srv:
        with session(srv) as ftp:
            ftp.upload("DATA", payload)
            assert ftp.stats["pipelined"] >= 5
        assert srv.commands[:7] == ["AUTH TLS", "USER gw", "PASS ******", "PBSZ 0", "PROT P",
                                    "FEAT", "TYPE I"]
        with pytest.raises(FtpConnectError) as info:
            session(srv, password="wrong").connect()
        assert info.value.reply.startswith("530")


def test_plain_login_sends_user_alone_first():
    """In plain FTP, a server that demands TLS refuses USER: the password is never sent."""
    with FtpTestServer(tls=True) as srv:
        with pytest.raises(FtpConnectError):
            session(srv, tls=False).connect()
        assert srv.commands == ["USER gw"]
