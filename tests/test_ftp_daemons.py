"""The uplink's FTP client against real Debian FTP daemons: vsftpd (no MLST/MLSD) and proftpd
(MLST/MLSD), both requiring explicit FTPS with a self-signed certificate whose name is only in
its CN (no subjectAltName), as integrators' servers often have. The daemons come from
tests/setup/system.sh (run by ``make test``) and are started by sim/ftp_daemons.py.
"""
from __future__ import annotations

import os
import time

import pytest

from ftpd import self_signed_cert
from services.uplink.ftp import (FtpConnectError, FtpDirectoryMissing, FtpError, FtpSession,
                                 FtpSettings)
from sim.ftp_daemons import KINDS, FtpDaemon

pytestmark = pytest.mark.timeout(60)


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    """(cert_path, key_path, sha256 hex) of a self-signed certificate, CN=localhost, no SAN."""
    return self_signed_cert(tmp_path_factory.mktemp("cert"))


@pytest.fixture(scope="module", params=KINDS)
def server(request, cert):
    """One daemon of each kind for the whole file: explicit FTPS required, chrooted."""
    path, key, _ = cert
    with FtpDaemon(request.param, tls=True, cert=path, key=key) as srv:
        yield srv


@pytest.fixture(scope="module", params=KINDS)
def plain_server(request):
    """One daemon of each kind without TLS and without chroot (relative directories)."""
    with FtpDaemon(request.param, tls=False, chroot=False) as srv:
        yield srv


@pytest.fixture
def payload(tmp_path):
    path = tmp_path / "SITE_TIC_261130_101500.csv.gz"
    path.write_bytes(os.urandom(70_000))   # several TLS records and data blocks
    return path


def settings(srv: FtpDaemon, **overrides) -> FtpSettings:
    return FtpSettings(**srv.client_settings(**overrides))


def round_trip(srv: FtpDaemon, ftp: FtpSession, payload, tmp_path) -> None:
    """Upload, list, stat, download, delete one file, checking each against the disk."""
    data = payload.read_bytes()
    on_disk = srv.path(srv.dirs()["DATA"]) / payload.name
    assert ftp.upload("DATA", payload) == len(data)
    assert on_disk.read_bytes() == data
    assert sorted(p.name for p in on_disk.parent.iterdir()) == [payload.name]  # no .tmp left

    files = ftp.listdir("DATA")
    assert [(f.name, f.size) for f in files] == [(payload.name, len(data))]
    # MLSD gives the time to the second; LIST (vsftpd) to the minute, in UTC.
    slack = 2 if srv.has_mlst else 61
    assert files[0].mtime is not None
    assert abs(files[0].mtime - on_disk.stat().st_mtime) < slack

    size, _mtime = ftp.stat("DATA", payload.name)
    assert size == len(data)

    back = tmp_path / "back" / payload.name
    got = ftp.download("DATA", payload.name, back)
    assert got[0] == len(data)
    assert back.read_bytes() == data

    assert ftp.delete("DATA", payload.name) is True
    assert not on_disk.exists()
    assert ftp.stat("DATA", payload.name) is None


def commands_since(srv: FtpDaemon, before: int, at_least: int = 1,
                   wait: float = 3.0) -> list[str]:
    """The commands the daemon logged after its first ``before`` ones, once there are at least
    ``at_least`` (or ``wait`` seconds passed) and a moment later (to see any extra one).

    QUITs are left out: the client sends QUIT and closes without waiting for the goodbye, so
    a daemon may log it late or not at all (proftpd sometimes does not), and a late one could
    fall into the next test's window. The tests compare what a session sent before its QUIT."""
    def read():
        return [c for c in srv.commands()[before:] if not c.startswith("QUIT")]

    deadline = time.monotonic() + wait
    while len(read()) < at_least and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    return read()


def assert_no_login_sent(srv: FtpDaemon, before: int) -> None:
    """The client stopped at AUTH TLS: neither the login nor the password left it."""
    seen = commands_since(srv, before)
    assert seen and all(c.startswith("AUTH") for c in seen), seen


# ------------------------------------------------------------------ trust (issue 8)
def test_cafile_trusts_a_self_signed_certificate_named_in_its_cn_only(server, cert):
    path, _, _ = cert
    # Reached by the name the certificate holds (in its CN): "localhost".
    with FtpSession(settings(server, host="localhost", tls_cafile=str(path))) as ftp:
        assert ftp.connected
        assert ftp.listdir("CONFIG") == []   # the data connection is trusted too


def test_cafile_still_checks_the_name(server, cert):
    path, _, _ = cert
    # The same certificate reached by an address it does not name.
    ftp = FtpSession(settings(server, host="127.0.0.1", tls_cafile=str(path)))
    with pytest.raises(FtpConnectError) as caught:
        ftp.connect()
    assert "certificate" in str(caught.value).lower()
    assert "127.0.0.1" in str(caught.value)


def test_fingerprint_pins_the_certificate(server, cert):
    _, _, fingerprint = cert
    with FtpSession(settings(server, tls_fingerprint=fingerprint)) as ftp:
        assert ftp.connected
        assert ftp.listdir("CONFIG") == []


def test_wrong_fingerprint_is_refused(server, cert):
    _, _, fingerprint = cert
    wrong = fingerprint[:-2] + ("00" if fingerprint[-2:] != "00" else "11")
    before = len(server.commands())
    ftp = FtpSession(settings(server, tls_fingerprint=wrong))
    with pytest.raises(FtpConnectError):
        ftp.connect()
    assert not ftp.connected
    assert_no_login_sent(server, before)


def test_self_signed_certificate_without_trust_setting_is_refused(server):
    before = len(server.commands())
    ftp = FtpSession(settings(server))      # tls=True, verification on, no CA, no pin
    with pytest.raises(FtpConnectError) as caught:
        ftp.connect()
    assert "certificate" in str(caught.value).lower()
    assert not ftp.connected
    assert_no_login_sent(server, before)


# ------------------------------------------------------------------- TLS required
def test_plain_login_is_refused_by_a_tls_required_server(server):
    before = len(server.commands())
    ftp = FtpSession(settings(server, tls=False))
    with pytest.raises(FtpConnectError) as caught:
        ftp.connect()
    reply = caught.value.reply or ""
    print(f"{server.kind}: {reply}")
    if server.kind == "vsftpd":
        assert reply.startswith("530 Non-anonymous sessions must use encryption")
    else:
        assert reply.startswith("550 SSL/TLS required on the control channel")
    assert not ftp.connected
    # Refused at USER: the password never went over the plain connection.
    seen = commands_since(server, before)
    assert [c.split(" ", 1)[0] for c in seen] == ["USER"], seen


# ---------------------------------------------------------------- files over FTPS
def test_round_trip_over_ftps(server, payload, tmp_path):
    with FtpSession(settings(server, tls_verify=False)) as ftp:
        round_trip(server, ftp, payload, tmp_path)


def test_round_trip_over_plain_ftp_without_chroot(plain_server, payload, tmp_path):
    srv = plain_server
    assert srv.dirs()["DATA"] == "DATA"     # relative to the login directory
    assert srv.path("DATA") == srv.home / "DATA"
    with FtpSession(settings(srv)) as ftp:
        round_trip(srv, ftp, payload, tmp_path)


def test_stat_in_a_missing_directory(server):
    missing = {**server.dirs(), "DATA": "/NO_SUCH_DIR"}
    with FtpSession(settings(server, tls_verify=False, dirs=missing)) as ftp:
        with pytest.raises(FtpDirectoryMissing) as caught:
            ftp.stat("DATA", "x.csv")
    assert caught.value.path == "/NO_SUCH_DIR"
    assert caught.value.setting == "FTP_DirData"


def test_listdir_of_a_missing_directory(server):
    missing = {**server.dirs(), "DATA": "/NO_SUCH_DIR"}
    with FtpSession(settings(server, tls_verify=False, dirs=missing)) as ftp:
        with pytest.raises(FtpDirectoryMissing) as caught:
            ftp.listdir("DATA")
    assert caught.value.path == "/NO_SUCH_DIR"


def test_upload_to_a_missing_directory(server, payload):
    missing = {**server.dirs(), "DATA": "/NO_SUCH_DIR"}
    with FtpSession(settings(server, tls_verify=False, dirs=missing)) as ftp:
        with pytest.raises(FtpDirectoryMissing):
            ftp.upload("DATA", payload)
    assert not (server.root / "NO_SUCH_DIR").exists()   # the gateway never creates it


# ------------------------------------------------------------------------- costs
def test_command_counts_of_a_short_connection(server, payload):
    """connect + listdir CONFIG and DEF + one upload + QUIT: what the client counts, checked
    against what the daemon received (no exact count asserted: the client may change)."""
    before = len(server.commands())
    steps = {}
    ftp = FtpSession(settings(server, tls_verify=False))
    ftp.connect()
    steps["connect"] = ftp.stats["commands"]
    ftp.listdir("CONFIG")
    ftp.listdir("DEF")
    steps["listdirs"] = ftp.stats["commands"] - steps["connect"]
    ftp.upload("DATA", payload)
    sent = ftp.stats["commands"]
    steps["upload"] = sent - steps["connect"] - steps["listdirs"]

    seen = commands_since(server, before, at_least=sent)
    assert len(seen) == sent, "\n".join(seen)
    verbs = [c.split(" ", 1)[0] for c in seen]
    assert ("MLSD" if server.has_mlst else "LIST") in verbs, seen

    ftp.close()
    total = ftp.stats["commands"]
    steps["quit"] = total - sent
    print(f"{server.kind}: {total} commands: {steps}")
    assert all(n > 0 for n in steps.values()), steps
    server.path(server.dirs()["DATA"] + "/" + payload.name).unlink()


# ------------------------------------------------------------- the helper itself
@pytest.mark.parametrize("kind", KINDS)
def test_kill_ends_open_sessions_too(kind, cert):
    path, key, _ = cert
    with FtpDaemon(kind, tls=True, cert=path, key=key) as srv:
        ftp = FtpSession(settings(srv, tls_verify=False, timeout=5.0))
        ftp.connect()
        assert ftp.listdir("DATA") == []
        srv.kill()
        with pytest.raises(FtpError):   # the session's process is gone, not only the listener
            ftp.listdir("DATA")
        with pytest.raises(FtpConnectError):
            FtpSession(settings(srv, tls_verify=False, timeout=5.0)).connect()
        ftp.close()
