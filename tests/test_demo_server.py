"""The demo remote server (sim.server): FTP tree, Web Services, listing, NTP, and the CLI."""
from __future__ import annotations

import argparse
import ftplib
import io
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import ntplib
import pytest
import requests

from services.uplink.ntp import sync
from sim import server_cli
from sim.server import DIRECTORIES, DemoServer

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def demo(tmp_path):
    with DemoServer(tmp_path / "srv", user="gw", password="secret", ntp_offset=42.0) as srv:
        yield srv


def ftp_login(srv, user="gw", password="secret") -> ftplib.FTP:
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", srv.ftp_port, timeout=5)
    ftp.login(user, password)
    return ftp


def test_ports_are_bound_and_distinct(demo):
    ports = {demo.ftp_port, demo.http_port, demo.ntp_port}
    assert len(ports) == 3 and all(p > 0 for p in ports)
    assert demo.web_service_url == "http://127.0.0.1:%d/" % demo.http_port
    assert demo.ntp_address == "127.0.0.1:%d" % demo.ntp_port


def test_directory_tree_is_created(demo):
    assert sorted(p.name for p in demo.root.iterdir() if p.is_dir()) == sorted(DIRECTORIES)


def test_existing_root_is_kept(tmp_path):
    root = tmp_path / "srv"
    (root / "DATA").mkdir(parents=True)
    (root / "DATA" / "old.csv.gz").write_bytes(b"old")
    with DemoServer(root):
        assert (root / "DATA" / "old.csv.gz").read_bytes() == b"old"
        assert all((root / d).is_dir() for d in DIRECTORIES)


def test_ftp_upload_rename_list_and_delete(demo):
    payload = os.urandom(5000)
    ftp = ftp_login(demo)
    try:
        assert sorted(n.rsplit("/", 1)[-1] for n in ftp.nlst("/")) == sorted(DIRECTORIES)
        ftp.cwd("/DATA")
        ftp.storbinary("STOR SITE_TIC_240101_000000.csv.gz.tmp", io.BytesIO(payload))
        ftp.rename("SITE_TIC_240101_000000.csv.gz.tmp", "SITE_TIC_240101_000000.csv.gz")
        assert ftp.nlst() == ["SITE_TIC_240101_000000.csv.gz"]
        ftp.voidcmd("TYPE I")
        assert ftp.size("SITE_TIC_240101_000000.csv.gz") == len(payload)
        # the command file cycle: fetch it, then delete it on the server
        (demo.root / "CMD" / "SITE_CMD.csv").write_text("1;REBOOT\n")
        got = io.BytesIO()
        ftp.retrbinary("RETR /CMD/SITE_CMD.csv", got.write)
        assert got.getvalue() == b"1;REBOOT\n"
        ftp.delete("/CMD/SITE_CMD.csv")
    finally:
        ftp.quit()
    assert (demo.root / "DATA" / "SITE_TIC_240101_000000.csv.gz").read_bytes() == payload
    assert not (demo.root / "CMD" / "SITE_CMD.csv").exists()


def test_ftp_wrong_password_is_refused(demo):
    with pytest.raises(ftplib.error_perm, match="530"):
        ftp_login(demo, password="wrong")


def test_web_services_are_logged(demo):
    url = demo.web_service_url
    r = requests.post(url + "initialisation.php", data="MAC-ADR=00:1A:2B:3C:4D:5E", timeout=5,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and r.text == "00##TICGW-3C4D5E##"
    r = requests.post(url + "confirm.php", timeout=5, data=[
        ("NSITE", "TICGW-3C4D5E"), ("ACTION", "UPLOADDATA"),
        ("ACTION-COMP", "a.csv.gz;b.csv.gz;"), ("RC", "0"), ("RC-COMP", "")])
    assert r.text == "00"
    r = requests.post(url + "confirm.php", data={"NSITE": "X", "ACTION": "CMD", "RC": "x"},
                      timeout=5)
    assert r.text == "12"
    rows = demo.read_log()
    assert [(r["service"], r["mac"], r["site"], r["action"], r["action_comp"], r["return_code"])
            for r in rows] == [
        ("initialisation", "00:1A:2B:3C:4D:5E", "TICGW-3C4D5E", "", "", "00"),
        ("confirm", "", "TICGW-3C4D5E", "UPLOADDATA", "a.csv.gz;b.csv.gz;", "00"),
        ("confirm", "", "X", "CMD", "", "12"),
    ]
    assert all(r["client"] == "127.0.0.1" for r in rows)
    assert demo.log_path.read_text().splitlines()[0].startswith("time;client;service;")


def test_web_services_under_a_prefix(demo):
    r = requests.post(demo.web_service_url + "ws/confirm.php", timeout=5,
                      data={"NSITE": "S", "ACTION": "VERSION", "ACTION-COMP": "0.1.0", "RC": "0"})
    assert r.text == "00"
    assert demo.read_log()[-1]["action_comp"] == "0.1.0"


def test_unreadable_site_table_falls_back_to_the_default(demo):
    (demo.root / "ws_sites.json").write_text("{not json")
    r = requests.post(demo.web_service_url + "initialisation.php",
                      data={"MAC-ADR": "aa:bb:cc:dd:ee:ff"}, timeout=5)
    assert r.text == "00##TICGW-DDEEFF##"


def test_listing_shows_delivered_files(demo):
    ftp = ftp_login(demo)
    try:
        ftp.storbinary("STOR /ALARM/SITE_AL_240101_000000.csv.gz", io.BytesIO(b"12345"))
    finally:
        ftp.quit()
    r = requests.get(demo.web_service_url, timeout=5)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    text = r.text
    for d in DIRECTORIES:
        assert "/%s (" % d in text
    assert "/ALARM (1 file)" in text
    assert re.search(r"^  SITE_AL_240101_000000\.csv\.gz +5  \d{4}-", text, re.M)
    assert requests.get(demo.web_service_url + "nothing", timeout=5).status_code == 404


def test_ntp_answers_with_the_offset(demo):
    stats = ntplib.NTPClient().request("127.0.0.1", port=demo.ntp_port, version=4, timeout=2)
    assert stats.mode == 4
    assert stats.offset == pytest.approx(42.0, abs=0.05)
    assert sync([demo.ntp_address], timeout=2).offset == pytest.approx(42.0, abs=0.05)


def test_stop_releases_the_ports(tmp_path):
    srv = DemoServer(tmp_path).start()
    ftp_port, http_port = srv.ftp_port, srv.http_port
    srv.stop()
    for port in (ftp_port, http_port):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_cli_parser_defaults():
    parser = argparse.ArgumentParser(prog="ticgw")
    sub = parser.add_subparsers()
    server_cli.add_parser(sub)
    args = parser.parse_args(["server", "--root", "x"])
    assert (args.root, args.ftp_port, args.http_port, args.ntp_port, args.user, args.password) \
        == ("x", 2121, 8081, 12300, "ticgw", "ticgw")
    assert args.func is server_cli.run
    with pytest.raises(SystemExit):
        parser.parse_args(["server", "--root", "x", "--ftp-port", "70000"])


def test_main_runs_until_sigterm(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim.server", "--root", str(tmp_path / "srv"), "--ftp-port", "0",
         "--http-port", "0", "--ntp-port", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in proc.stdout:  # the URLs, then "root ..." once everything is up
            lines.append(line)
            if line.startswith("root"):
                break
        text = "".join(lines)
        url = re.search(r"Web Services\s+(http://\S+)", text).group(1)
        assert re.search(r"FTP\s+ftp://ticgw@127\.0\.0\.1:\d+/", text)
        assert re.search(r"NTP\s+127\.0\.0\.1:\d+", text)
        assert "/DATA (0 files)" in requests.get(url, timeout=5).text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
