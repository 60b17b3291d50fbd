"""ticgw.config: defaults, parsing, validation, the store on disk, and `ticgw config`."""
from __future__ import annotations

import argparse
import io
import os
import re

import pytest

from ticgw import gateway, registry
from ticgw.cli import config as config_cmd
from ticgw.config import (BY_NAME, DECLARED, DEFAULT_PASSWORD_HASH, KEYS, KINDS, MASK, ConfigError,
                          ConfigStore, check_password, defaults, describe, hash_password,
                          key_table_markdown, load, render, write_atomic)
from ticgw.config import store as store_mod
from ticgw.config.settings import build, file_name


def cfgdir(tmp_path):
    d = tmp_path / "config"
    d.mkdir(exist_ok=True)
    return d


def write(tmp_path, name, text, encoding="utf-8"):
    p = cfgdir(tmp_path) / name
    p.write_bytes(text.encode(encoding))
    return p


def problems_of(tmp_path):
    with pytest.raises(ConfigError) as ei:
        load(tmp_path)
    return ei.value


def listing(d):
    return sorted(os.listdir(d))


# ---- defaults and the key table ------------------------------------------------------------------

def test_defaults_without_any_file(tmp_path):
    s = load(tmp_path)          # no config/ at all
    assert s.site_id == "WEBDYN"
    assert (s.ftp_dir_config, s.ftp_dir_def, s.ftp_dir_data, s.ftp_dir_alarm, s.ftp_dir_cmd,
            s.ftp_dir_log, s.ftp_dir_bin) == ("/CONFIG", "/DEF", "/DATA", "/ALARM", "/CMD",
                                              "/LOG", "/BIN")
    assert s.gprs_number == "*99***1#"
    assert s.web_user == "userhigh"
    assert check_password("high", s.web_password_hash)
    assert s.daq_period == 10 and s.daq_interval_s == 600
    assert (s.eth_address, s.eth_mask) == ("192.168.1.12", "255.255.255.0")
    assert s.ntp_server1 == "pool.ntp.org"
    assert (s.connection_period, s.connection_hour, s.connection_minute) == (0, 1, 0)
    assert s.web_service_enable is False and s.ftp_passive is True and s.ftp_timeout == 30
    assert s.tic_lost_delay == 60 and s.spool_max_mb == 50
    assert s.web_listen == "127.0.0.1:8080"
    assert [i.index for i in s.inputs] == [1, 2, 3]
    assert not any(i.used for i in s.inputs)
    assert s.inputs[0].mode == "auto" and s.inputs[0].baud == "auto"
    assert s.file_names() == {"config": "WEBDYN_config.ini", "daq": "WEBDYN_daq.ini",
                              "var": "WEBDYN_var.ini"}
    assert s == defaults()


def test_default_password_hash_is_the_documented_one():
    assert hash_password("high", salt=b"ticgw-default") == DEFAULT_PASSWORD_HASH
    assert not check_password("High", DEFAULT_PASSWORD_HASH)
    assert not check_password("high", "not-a-hash")
    assert not check_password("high", "md5$1$00$00")
    h1, h2 = hash_password("s3cret"), hash_password("s3cret")
    assert h1 != h2 and check_password("s3cret", h1) and check_password("s3cret", h2)
    assert BY_NAME["Web_PasswordHash"].type.parse(h1) == h1


def test_key_table_is_complete_and_consistent():
    names = [k.name for k in KEYS]
    assert len(names) == len(set(names))
    for k in KEYS:
        assert k.kind in KINDS and k.help and k.group
        assert k.type.format(k.type.parse(k.default)) == k.default   # defaults are canonical
    for required in ("Site_Id", "Site_IdAuto", "Connection_Mode", "ETH_Address", "ETH_Mask",
                     "ETH_Gateway", "ETH_Dns", "Modem_Port", "SIM_Pin", "GPRS_Number", "GPRS_Apn",
                     "GPRS_Login", "GPRS_Password", "FTP_Server", "FTP_Port", "FTP_Login",
                     "FTP_Password", "FTP_Tls", "FTP_Passive", "FTP_Timeout", "FTP_EuroDateFormat",
                     "NTP_Server1", "NTP_Server2", "WebService_Enable", "WebService_Url",
                     "BIN_FileName", "BIN_Checksum", "BIN_PublicKey", "Web_Listen", "Web_User",
                     "Web_PasswordHash", "Bus_Xsub", "Bus_Xpub", "Bus_CurvePublicKey",
                     "Bus_CurveSecretKey", *(spec.config_key for spec in registry.BUILTIN)):
        assert BY_NAME[required].kind == "config", required
    for required in ("DAQ_Period", "DAQ_PeriodSec", "DAQ_HeaderOption", "TIC_LostDelay",
                     "Spool_MaxMB", "TIC_Port[3]", "TIC_Mode[1]", "TIC_Baud[2]", "TIC_Serial[3]",
                     "TIC_FileDefName[1]"):
        assert BY_NAME[required].kind == "daq", required
    for required in ("Connection_Period", "Connection_PeriodMin", "Connection_Hour",
                     "Connection_Minute", "Connection_Hour4", "Connection_Minute4",
                     "Connection_OnDataAcquisition", "Connection_CheckConfigPeriod",
                     "Connection_Timeout", "ALM_Delay"):
        assert BY_NAME[required].kind == "var", required
    secrets = {k.name for k in KEYS if k.secret}
    assert secrets == {"SIM_Pin", "GPRS_Password", "FTP_Password", "Web_PasswordHash",
                       "Bus_CurveSecretKey"}


def test_key_table_markdown_lists_every_declared_key_once():
    md = key_table_markdown()
    lines = md.splitlines()
    assert lines[0] == "| key | file | default | help |"
    assert len(lines) == 2 + len(DECLARED)
    for k in DECLARED:
        shown = "`%s[n]`" % k.name if k.count else "`%s`" % k.name
        assert sum(1 for line in lines if line.startswith("| " + shown + " |")) == 1
    assert "| `DAQ_Period` | `_daq.ini` | `10` |" in md
    assert "hash of `high`" in md and DEFAULT_PASSWORD_HASH not in md


# ---- file format and round trip ------------------------------------------------------------------

def test_render_then_load_round_trips(tmp_path):
    texts = {
        "config": {"Site_Id": "SITE-7", "FTP_Server": "ftp.example.org", "FTP_Port": "2121",
                   "FTP_Password": "p;a=ss word", "Connection_Mode": "modem",
                   "Modem_Port": "/dev/ttyACM0", "SIM_Pin": "1234", "GPRS_Apn": "m2minetnat",
                   "FTP_Tls": "1", "FTP_EuroDateFormat": "0", "NTP_Server2": "192.0.2.1",
                   "BIN_FileName": "ticgw-1.2.pak", "BIN_Checksum": "AB" * 32},
        "daq": {"DAQ_Period": "0", "DAQ_PeriodSec": "15", "TIC_Port[1]": "/dev/ttyUSB0",
                "TIC_Mode[1]": "historic", "TIC_Baud[1]": "1200",
                "TIC_Port[3]": "socket://127.0.0.1:7000", "TIC_Serial[3]": "041676011381",
                "TIC_FileDefName[3]": "SITE-7_TIC_CBEMM-ICC.ini"},
        "var": {"Connection_Period": "7", "Connection_Minute": "25", "ALM_Delay": "1"},
    }
    s, problems = build(texts, {k: file_name("SITE-7", k) for k in KINDS})
    assert problems == []
    assert s.bin_checksum == "ab" * 32          # normalised
    assert s.daq_interval_s == 15
    for kind in KINDS:
        write(tmp_path, file_name("SITE-7", kind), render(s, kind))
    again = load(tmp_path)
    assert again == s
    assert again.warnings == ()
    assert render(again, "config") == render(s, "config")       # deterministic


def test_render_has_every_key_grouped_with_comments():
    s = defaults()
    text = render(s, "var")
    keys = [line.split("=", 1)[0] for line in text.splitlines()
            if line and not line.startswith("#")]
    assert keys == [k.name for k in KEYS if k.kind == "var"]
    assert "\n# Schedule\nConnection_Period=0\n" in text
    assert text.startswith("# WEBDYN_var.ini")


def test_parser_tolerates_comments_sections_spaces_crlf_bom(tmp_path):
    text = ("\ufeff# comment\r\n; other comment\r\n[daq]\r\n  DAQ_Period =  5 \r\n\r\n"
            "TIC_Port[2]= /dev/ttyUSB1\r\n")
    write(tmp_path, "WEBDYN_daq.ini", text)
    s = load(tmp_path)
    assert s.daq_period == 5
    assert s.inputs[1].port == "/dev/ttyUSB1" and s.inputs[1].used
    assert s.warnings == ()


def test_latin1_file_is_read_with_fallback(tmp_path):
    write(tmp_path, "WEBDYN_config.ini", "GPRS_Apn=réseau\nGPRS_Password=a;b#c\n", "latin-1")
    s = load(tmp_path)
    assert s.gprs_apn == "réseau"
    assert s.gprs_password == "a;b#c"        # ; and # inside a value are kept


def test_unknown_keys_are_warnings_and_kept_out(tmp_path):
    write(tmp_path, "WEBDYN_daq.ini",
          "DAQ_Period=5\ndaq_period=7\nTIC_Port[4]=/dev/ttyS4\nFoo=1\nConnection_Hour=3\n")
    s = load(tmp_path)
    assert s.daq_period == 5
    assert s.connection_hour == 1            # belongs to _var.ini: ignored here
    by_key = {w.key: w.reason for w in s.warnings}
    assert "did you mean DAQ_Period" in by_key["daq_period"]
    assert "inputs are numbered 1..3" in by_key["TIC_Port[4]"]
    assert by_key["Foo"] == "ignored: unknown key"
    assert "<site>_var.ini" in by_key["Connection_Hour"]
    assert all(w.file == "WEBDYN_daq.ini" for w in s.warnings)
    assert not hasattr(s, "foo")


def test_malformed_line_is_a_problem_with_its_line_number(tmp_path):
    write(tmp_path, "WEBDYN_var.ini", "Connection_Hour=2\nthis line is garbage\n=5\n")
    err = problems_of(tmp_path)
    reasons = [p.reason for p in err.problems]
    assert any(r.startswith("line 2 is not key=value") for r in reasons)
    assert any(r.startswith("line 3 has no key") for r in reasons)
    assert all(p.file == "WEBDYN_var.ini" for p in err.problems)


# ---- validation ----------------------------------------------------------------------------------

BAD = [
    ("daq", "DAQ_Period", "75", "75 is out of range 0..59"),
    ("daq", "DAQ_Period", "", "is empty; expected whole number 0..59"),
    ("daq", "DAQ_PeriodSec", "ten", "ten is not a whole number (expected 1..3600)"),
    ("daq", "TIC_LostDelay", "2", "2 is out of range 5..3600"),
    ("config", "FTP_Port", "70000", "70000 is out of range 1..65535"),
    ("config", "FTP_Tls", "yes", "yes is not 0 or 1"),
    ("config", "Connection_Mode", "wifi", "wifi is not one of: ethernet, modem"),
    ("config", "ETH_Address", "300.1.1.1", "300.1.1.1 is not an IPv4 address"),
    ("config", "ETH_Mask", "255.0.255.0", "is not a network mask"),
    ("config", "FTP_Server", "bad_host!", "is not a host name or IP address"),
    ("config", "NTP_Server1", "1.2.3", "is not a host name or IP address"),
    ("config", "WebService_Url", "ftp://x.org/", "is not an http:// or https:// URL"),
    ("config", "FTP_DirData", "DATA//IN", "must not contain"),
    ("config", "FTP_TlsFingerprint", "AB:CD", "is not SHA-256 of the server's certificate"),
    ("config", "FTP_TlsCaFile", "ca.pem", "must be an absolute path"),
    ("config", "FTP_DirLog", "/LOG/../etc", "must not contain"),
    ("config", "Site_Id", "MY SITE", "is not valid"),
    ("config", "SIM_Pin", "12a4", "expected 4 to 8 digits"),
    ("config", "GPRS_Number", "call me", "expected digits"),
    ("config", "Bus_Xsub", "tcp://host", "is not ipc://PATH or tcp://HOST:PORT"),
    ("config", "Bus_CurvePublicKey", "short", "is not a CURVE key"),
    ("config", "BIN_PublicKey", "xyz", "64 hexadecimal digits"),
    ("config", "BIN_FileName", "../evil.pak", "plain file name"),
    ("config", "Web_Listen", "8080", "is not HOST:PORT"),
    ("config", "Web_PasswordHash", "high", "is not a password hash"),
    ("config", "GPRS_Apn", "x" * 101, "at most 100"),
    ("config", "FTP_Login", "tab\there", "control characters"),
    ("daq", "TIC_Port[2]", "ttyUSB0", "neither a device path"),
    ("daq", "TIC_Mode[3]", "linky", "linky is not one of: auto, historic, standard"),
    ("daq", "TIC_Baud[1]", "300", "300 is not auto or one of 1200, 2400"),
    ("daq", "TIC_FileDefName[1]", "/etc/passwd", "plain file name"),
    ("var", "Connection_Period", "24", "24 is out of range 0..23"),
    ("var", "Connection_Minute3", "60", "60 is out of range 0..59"),
    ("var", "ALM_Delay", "2", "2 is not 0 or 1"),
]


@pytest.mark.parametrize("kind,key,value,reason", BAD, ids=["%s=%s" % (b[1], b[2][:12]) for b in BAD])
def test_bad_value_names_file_key_and_reason(tmp_path, kind, key, value, reason):
    write(tmp_path, "WEBDYN_%s.ini" % kind, "%s=%s\n" % (key, value))
    err = problems_of(tmp_path)
    assert len(err.problems) == 1
    p = err.problems[0]
    assert (p.file, p.key) == ("WEBDYN_%s.ini" % kind, key)
    assert reason in p.reason
    assert str(err) == "WEBDYN_%s.ini: %s: %s" % (kind, key, p.reason)


def test_all_problems_are_reported_at_once(tmp_path):
    write(tmp_path, "WEBDYN_config.ini", "FTP_Port=0\nETH_Mask=1.2.3.4\n")
    write(tmp_path, "WEBDYN_daq.ini", "DAQ_Period=75\nTIC_Baud[3]=115200\n")
    write(tmp_path, "WEBDYN_var.ini", "Connection_Hour=99\n")
    err = problems_of(tmp_path)
    assert {(p.file, p.key) for p in err.problems} == {
        ("WEBDYN_config.ini", "FTP_Port"), ("WEBDYN_config.ini", "ETH_Mask"),
        ("WEBDYN_daq.ini", "DAQ_Period"), ("WEBDYN_daq.ini", "TIC_Baud[3]"),
        ("WEBDYN_var.ini", "Connection_Hour")}
    lines = str(err).splitlines()
    assert len(lines) == 5
    assert "WEBDYN_daq.ini: DAQ_Period: 75 is out of range 0..59" in lines


def test_cross_key_checks(tmp_path):
    write(tmp_path, "WEBDYN_config.ini",
          "Site_IdAuto=1\nConnection_Mode=modem\nBus_Uplink=tcp://10.0.0.2:5555\n"
          "BIN_FileName=new.pak\n")
    err = problems_of(tmp_path)
    by_key = {p.key: p.reason for p in err.problems}
    assert "WebService_Enable=1" in by_key["Site_IdAuto"]
    assert "Connection_Mode=modem" in by_key["Modem_Port"]
    assert "Bus_Uplink" in by_key["Bus_CurvePublicKey"] and "CURVE" in by_key["Bus_CurveSecretKey"]
    assert "BIN_FileName=new.pak" in by_key["BIN_Checksum"]
    assert all(p.file == "WEBDYN_config.ini" for p in err.problems)


def test_web_services_url_required_when_enabled(tmp_path):
    write(tmp_path, "WEBDYN_config.ini", "WebService_Enable=1\nSite_IdAuto=1\n")
    err = problems_of(tmp_path)
    assert [(p.key, "needs the Web Services URL" in p.reason) for p in err.problems] == [
        ("WebService_Url", True)]


def test_tcp_bus_with_matching_curve_keys_is_accepted(tmp_path):
    import zmq

    assert zmq.has("curve"), "pyzmq's bundled libzmq has CURVE: the bus needs it for tcp://"
    public, secret = (k.decode() for k in zmq.curve_keypair())
    other_public, _ = (k.decode() for k in zmq.curve_keypair())
    base = "Bus_Xsub=tcp://*:6000\nBus_Xpub=tcp://broker.lan:6001\nBus_CurveSecretKey=%s\n" % secret
    write(tmp_path, "WEBDYN_config.ini", base + "Bus_CurvePublicKey=%s\n" % public)
    s = load(tmp_path)
    e = gateway.endpoints(s, tmp_path / "run")
    assert e.xpub == "tcp://broker.lan:6001"
    assert e.command("uplink") == "ipc://%s/uplink.cmd" % (tmp_path / "run").resolve()
    write(tmp_path, "WEBDYN_config.ini", base + "Bus_CurvePublicKey=%s\n" % other_public)
    err = problems_of(tmp_path)
    assert [p.key for p in err.problems] == ["Bus_CurvePublicKey"]
    assert "does not belong to Bus_CurveSecretKey" in err.problems[0].reason


def test_endpoint_defaults(monkeypatch, tmp_path):
    s = defaults()
    e = gateway.endpoints(s, tmp_path / "r")
    r = (tmp_path / "r").resolve()
    assert e.xsub == "ipc://%s/bus-xsub" % r and e.xpub == "ipc://%s/bus-xpub" % r
    assert e.command("acquisition") == "ipc://%s/acquisition.cmd" % r
    monkeypatch.setenv("TICGW_RUN", str(tmp_path / "srv"))
    assert gateway.endpoints(s).command("uplink") == "ipc://%s/uplink.cmd" % (
        tmp_path / "srv").resolve()
    # one Bus_<Service> key per service of the registry, and only those
    assert sorted(k.name for k in KEYS if k.name.startswith("Bus_") and k.group == "Bus"
                  and k.name not in ("Bus_Xsub", "Bus_Xpub", "Bus_CurvePublicKey",
                                     "Bus_CurveSecretKey")) == sorted(
        spec.config_key for spec in registry.BUILTIN)


def test_array_keys_for_three_inputs(tmp_path):
    write(tmp_path, "WEBDYN_daq.ini",
          "TIC_Port[1]=/dev/ttyUSB0\nTIC_Mode[1]=historic\nTIC_Baud[1]=1200\n"
          "TIC_Port[2]=rfc2217://10.0.0.5:4001\nTIC_Mode[2]=standard\nTIC_Baud[2]=9600\n"
          "TIC_Serial[2]=021861348497\nTIC_FileDefName[2]=WEBDYN_TIC_LINKY.ini\n"
          "TIC_Port[3]=\n")
    s = load(tmp_path)
    one, two, three = s.inputs
    assert (one.index, one.port, one.mode, one.baud) == (1, "/dev/ttyUSB0", "historic", 1200)
    assert (two.port, two.mode, two.baud, two.serial, two.def_file) == (
        "rfc2217://10.0.0.5:4001", "standard", 9600, "021861348497", "WEBDYN_TIC_LINKY.ini")
    assert (three.index, three.used, three.baud) == (3, False, "auto")
    assert s.get("TIC_Baud[2]") == 9600 and s.text("TIC_Baud[3]") == "auto"
    assert s.raw("daq")["TIC_Port[2]"] == "rfc2217://10.0.0.5:4001"


def test_daq_interval_uses_seconds_when_period_is_zero(tmp_path):
    write(tmp_path, "WEBDYN_daq.ini", "DAQ_Period=0\nDAQ_PeriodSec=20\n")
    assert load(tmp_path).daq_interval_s == 20
    write(tmp_path, "WEBDYN_daq.ini", "DAQ_Period=2\nDAQ_PeriodSec=20\n")
    assert load(tmp_path).daq_interval_s == 120


def test_describe_masks_secrets():
    secret = "Q" * 40
    texts = {"config": {"FTP_Password": "ftp-s3cret", "SIM_Pin": "4321",
                        "GPRS_Password": "gprs-s3cret", "Bus_CurveSecretKey": secret,
                        "FTP_Login": "operator"}}
    s, problems = build(texts, {k: file_name("WEBDYN", k) for k in KINDS})
    assert problems == []
    lines = describe(s)
    joined = "\n".join(lines)
    for value in ("ftp-s3cret", "4321", "gprs-s3cret", secret, DEFAULT_PASSWORD_HASH):
        assert value not in joined
    for key in ("FTP_Password", "SIM_Pin", "GPRS_Password", "Bus_CurveSecretKey",
                "Web_PasswordHash"):
        assert "%s=%s" % (key, MASK) in lines
    assert "FTP_Login=operator" in lines
    assert "Bus_CurvePublicKey=" in lines      # empty: nothing to hide
    assert len(lines) == len(KEYS)


# ---- atomic writes -------------------------------------------------------------------------------

def test_write_atomic_replaces_and_leaves_no_temp(tmp_path):
    p = tmp_path / "f.ini"
    write_atomic(p, b"one\n")
    write_atomic(p, b"two\n")
    assert p.read_bytes() == b"two\n"
    assert listing(tmp_path) == ["f.ini"]


def test_write_atomic_failure_keeps_old_file_and_cleans_temp(tmp_path, monkeypatch):
    p = tmp_path / "f.ini"
    write_atomic(p, b"old\n")

    def boom(src, dst):
        raise OSError("disk on fire")
    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_atomic(p, b"new\n")
    assert p.read_bytes() == b"old\n"
    assert listing(tmp_path) == ["f.ini"]


def test_partial_temp_file_from_a_crash_is_ignored(tmp_path):
    write(tmp_path, "WEBDYN_daq.ini", "DAQ_Period=5\n")
    write(tmp_path, ".WEBDYN_daq.ini.1a2b3c4d.tmp", "DAQ_Period=9\nTIC_Po")      # torn write
    write(tmp_path, ".OTHER_config.ini.deadbeef.tmp", "Site_Id=OTHER\n")
    s = load(tmp_path)
    assert s.site_id == "WEBDYN" and s.daq_period == 5
    assert s.warnings == ()


# ---- the store -----------------------------------------------------------------------------------

def test_ensure_files_writes_defaults_once(tmp_path):
    changed = []
    st = ConfigStore(tmp_path, on_change=lambda files, by: changed.append(files))
    assert st.problems == []
    written = st.ensure_files()
    assert sorted(written) == ["WEBDYN_config.ini", "WEBDYN_daq.ini", "WEBDYN_var.ini"]
    assert changed == [written]
    assert listing(cfgdir(tmp_path)) == [".lock", "WEBDYN_config.ini", "WEBDYN_daq.ini",
                                         "WEBDYN_var.ini"]
    assert st.ensure_files() == []
    assert load(tmp_path) == defaults()
    assert "DAQ_Period=10" in (cfgdir(tmp_path) / "WEBDYN_daq.ini").read_text()


def test_last_good_config_stays_after_a_bad_reload(tmp_path):
    write(tmp_path, "WEBDYN_daq.ini", "DAQ_Period=5\n")
    st = ConfigStore(tmp_path)
    assert st.settings.daq_period == 5
    write(tmp_path, "WEBDYN_daq.ini", "DAQ_Period=75\n")
    problems = st.reload()
    assert [(p.file, p.key) for p in problems] == [("WEBDYN_daq.ini", "DAQ_Period")]
    assert st.settings.daq_period == 5 and st.problems == problems
    write(tmp_path, "WEBDYN_daq.ini", "DAQ_Period=7\n")
    assert st.reload() == []
    assert st.settings.daq_period == 7 and st.problems == []


def test_store_starts_on_defaults_when_the_first_load_fails(tmp_path):
    write(tmp_path, "SITE9_config.ini", "FTP_Port=none\n")
    st = ConfigStore(tmp_path)
    assert [p.key for p in st.problems] == ["FTP_Port"]
    assert st.settings.site_id == "SITE9"
    assert st.settings.ftp_port == 21


def test_validate_text_rejects_a_bad_download_whole(tmp_path):
    write(tmp_path, "WEBDYN_var.ini", "Connection_Hour=4\n")
    st = ConfigStore(tmp_path)
    before = listing(cfgdir(tmp_path)), (cfgdir(tmp_path) / "WEBDYN_var.ini").read_bytes()
    bad = "Connection_Hour=5\nConnection_Minute=61\nALM_Delay=1\n"
    problems = st.validate_text("var", bad)
    assert [(p.file, p.key) for p in problems] == [("WEBDYN_var.ini", "Connection_Minute")]
    with pytest.raises(ConfigError) as ei:
        st.apply_text("var", bad)
    assert "Connection_Minute: 61 is out of range 0..59" in str(ei.value)
    after = listing(cfgdir(tmp_path)), (cfgdir(tmp_path) / "WEBDYN_var.ini").read_bytes()
    assert after == before
    assert st.settings.connection_hour == 4 and st.settings.alm_delay is False


def test_validate_text_checks_against_the_other_files(tmp_path):
    write(tmp_path, "WEBDYN_config.ini", "Connection_Mode=modem\nModem_Port=/dev/ttyACM0\n")
    st = ConfigStore(tmp_path)
    # a downloaded config without Modem_Port: the default (empty) applies, which modem mode refuses
    assert [p.key for p in st.validate_text("config", "Connection_Mode=modem\n")] == ["Modem_Port"]
    assert st.validate_text("daq", b"DAQ_Period=3\n") == []


def test_apply_text_writes_the_file_as_given_and_reloads(tmp_path):
    changed = []
    st = ConfigStore(tmp_path, on_change=lambda files, by: changed.append(files))
    st.ensure_files()
    changed.clear()
    text = "# from the server\nDAQ_Period=3\nTIC_Port[1]=/dev/ttyUSB0\n"
    s = st.apply_text("daq", text)
    assert s is st.settings and s.daq_period == 3 and s.inputs[0].port == "/dev/ttyUSB0"
    assert (cfgdir(tmp_path) / "WEBDYN_daq.ini").read_text() == text
    assert changed == [["WEBDYN_daq.ini"]]
    assert s.spool_max_mb == 50      # keys missing from the download take their defaults


def test_update_from_web_form(tmp_path):
    changed = []
    st = ConfigStore(tmp_path, on_change=lambda files, by: changed.append(files))
    s = st.update({"FTP_Server": "ftp.example.com", "FTP_Port": "2121", "FTP_Passive": False,
                   "TIC_Port[2]": " /dev/ttyUSB1 ", "Connection_Hour": 3})
    assert (s.ftp_server, s.ftp_port, s.ftp_passive) == ("ftp.example.com", 2121, False)
    assert s.inputs[1].port == "/dev/ttyUSB1" and s.connection_hour == 3
    assert changed == [["WEBDYN_config.ini", "WEBDYN_daq.ini", "WEBDYN_var.ini"]]
    assert "FTP_Passive=0" in (cfgdir(tmp_path) / "WEBDYN_config.ini").read_text()
    assert load(tmp_path) == s
    changed.clear()
    st.update({"ALM_Delay": "1"})
    assert changed == [["WEBDYN_var.ini"]]


def test_update_rejects_unknown_keys_and_bad_values_without_writing(tmp_path):
    st = ConfigStore(tmp_path)
    st.ensure_files()
    snapshot = {n: (cfgdir(tmp_path) / n).read_bytes() for n in listing(cfgdir(tmp_path))}
    with pytest.raises(ConfigError) as ei:
        st.update({"FTP_Server": "ok.example.com", "Ftp_Port": "21", "Bogus": "1"})
    assert [p.key for p in ei.value.problems] == ["Ftp_Port", "Bogus"]
    assert "Bogus: unknown key" in str(ei.value)
    with pytest.raises(ConfigError) as ei:
        st.update({"FTP_Server": "ok.example.com", "DAQ_Period": "75", "ETH_Address": "1.2.3"})
    assert {(p.file, p.key) for p in ei.value.problems} == {
        ("WEBDYN_daq.ini", "DAQ_Period"), ("WEBDYN_config.ini", "ETH_Address")}
    with pytest.raises(ConfigError) as ei:
        st.update({"Connection_Mode": "modem"})
    assert [p.key for p in ei.value.problems] == ["Modem_Port"]
    assert {n: (cfgdir(tmp_path) / n).read_bytes() for n in listing(cfgdir(tmp_path))} == snapshot
    assert st.settings == defaults()


def test_site_change_through_update_renames_the_files(tmp_path):
    st = ConfigStore(tmp_path)
    st.update({"DAQ_Period": "4"})                 # only the daq file exists so far
    st.update({"Site_Id": "PARIS-12", "FTP_Server": "10.1.2.3"})
    assert listing(cfgdir(tmp_path)) == [".lock", "PARIS-12_config.ini", "PARIS-12_daq.ini"]
    assert st.settings.site_id == "PARIS-12"
    assert st.settings.file_names()["daq"] == "PARIS-12_daq.ini"
    assert st.file_path("config") == cfgdir(tmp_path) / "PARIS-12_config.ini"
    s = load(tmp_path)
    assert (s.site_id, s.daq_period, s.ftp_server) == ("PARIS-12", 4, "10.1.2.3")
    assert s.warnings == ()


def test_site_change_through_a_downloaded_config(tmp_path):
    st = ConfigStore(tmp_path)
    st.ensure_files()
    st.update({"Connection_Hour": "6"})
    text = "Site_Id=LYON\nFTP_Server=ftp.lyon.example\n"
    st.apply_text("config", text)
    assert listing(cfgdir(tmp_path)) == [".lock", "LYON_config.ini", "LYON_daq.ini",
                                         "LYON_var.ini"]
    assert (cfgdir(tmp_path) / "LYON_config.ini").read_text() == text
    assert (st.settings.site_id, st.settings.connection_hour) == ("LYON", 6)


def test_site_edited_by_hand_is_renamed_on_reload(tmp_path):
    write(tmp_path, "WEBDYN_config.ini", "Site_Id=NANTES\n")
    write(tmp_path, "WEBDYN_var.ini", "ALM_Delay=1\n")
    s = load(tmp_path)                               # plain load only warns
    assert s.site_id == "NANTES" and any(w.key == "Site_Id" for w in s.warnings)
    st = ConfigStore(tmp_path)
    assert listing(cfgdir(tmp_path)) == [".lock", "NANTES_config.ini", "NANTES_var.ini"]
    assert st.settings.alm_delay is True
    assert st.reload() == [] and st.warnings == []


def test_leftover_of_an_interrupted_site_change(tmp_path):
    old = write(tmp_path, "OLD_config.ini", "Site_Id=OLD\n")
    write(tmp_path, "OLD_var.ini", "ALM_Delay=0\n")
    new = write(tmp_path, "NEW_config.ini", "Site_Id=NEW\n")
    write(tmp_path, "NEW_var.ini", "ALM_Delay=1\n")
    os.utime(old, ns=(1_000_000_000, 1_000_000_000))
    os.utime(new, ns=(2_000_000_000, 2_000_000_000))
    s = load(tmp_path)
    assert (s.site_id, s.alm_delay) == ("NEW", True)
    assert {w.file for w in s.warnings} == {"OLD_config.ini", "OLD_var.ini"}


# ---- ticgw config --------------------------------------------------------------------------------

def run_cli(argv):
    parser = argparse.ArgumentParser(prog="ticgw")
    config_cmd.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    out = io.StringIO()
    return args.func(args, out=out), out.getvalue()


def test_config_check_ok_prints_files_and_masked_settings(tmp_path):
    write(tmp_path, "WEBDYN_config.ini", "FTP_Password=hunter2\n")
    write(tmp_path, "WEBDYN_daq.ini", "DAQ_Period=5\n")
    for target in (tmp_path, cfgdir(tmp_path)):            # data dir or config dir
        code, out = run_cli(["config", "check", str(target)])
        assert code == 0
        lines = out.splitlines()
        assert lines[0] == "OK: WEBDYN_config.ini, WEBDYN_daq.ini"
        assert "DAQ_Period=5" in lines and "FTP_Password=****" in lines
        assert "hunter2" not in out


def test_config_check_empty_dir_is_ok_with_defaults(tmp_path):
    code, out = run_cli(["config", "check", str(tmp_path)])
    assert code == 0
    assert out.startswith("OK: no files, defaults for every key\n")
    assert "Site_Id=WEBDYN" in out.splitlines()


def test_config_check_reports_problems_with_exit_1(tmp_path):
    write(tmp_path, "WEBDYN_daq.ini", "DAQ_Period=75\nUnknown=1\n")
    write(tmp_path, "WEBDYN_var.ini", "ALM_Delay=x\n")
    code, out = run_cli(["config", "check", str(tmp_path)])
    assert code == 1
    lines = out.splitlines()
    assert "WEBDYN_daq.ini: DAQ_Period: 75 is out of range 0..59" in lines
    assert "WEBDYN_var.ini: ALM_Delay: x is not 0 or 1" in lines
    assert "warning: WEBDYN_daq.ini: Unknown: ignored: unknown key" in lines
    assert not any(line.startswith("OK") for line in lines)
    code, out = run_cli(["config", "check", str(tmp_path / "missing")])
    assert code == 1 and "not a directory" in out


def test_config_keys_prints_the_markdown_table():
    code, out = run_cli(["config", "keys"])
    assert code == 0 and out == key_table_markdown()
    assert re.search(r"^\| `TIC_Port\[n\]` \| `_daq.ini` \|", out, re.M)


def test_store_module_exports_load_helpers():
    assert store_mod.config_dir_of("/nonexistent/x").name == "config"


def test_an_automatic_site_id_may_be_left_empty(tmp_path):
    """The manual: tick *automatique* and leave the Site field empty; the files keep the
    default prefix until the Web Services give the identifier."""
    write(tmp_path, "WEBDYN_config.ini", "Site_Id=\nSite_IdAuto=1\nWebService_Enable=1\n"
                                         "WebService_Url=http://ws.example/\n")
    s = load(tmp_path)
    assert s.site_id == "" and s.site == "WEBDYN"
    assert s.file_names()["config"] == "WEBDYN_config.ini"
    st = ConfigStore(tmp_path)
    assert st.file_path("daq").name == "WEBDYN_daq.ini"
    st.update({"DAQ_Period": "5"})                  # a save keeps the files where they are
    assert sorted(p.name for p in cfgdir(tmp_path).glob("*.ini")) == [
        "WEBDYN_config.ini", "WEBDYN_daq.ini"]
    # without the automatic identifier, an empty one is refused, with the reason
    write(tmp_path, "WEBDYN_config.ini", "Site_Id=\n")
    err = problems_of(tmp_path)
    assert [p.key for p in err.problems] == ["Site_Id"]
    assert "Site_IdAuto=1" in err.problems[0].reason


def test_ftp_directories_relative_or_absolute_and_tls_trust_keys(tmp_path):
    store = ConfigStore(tmp_path)
    store.ensure_files()
    store.update({"FTP_DirData": "DATA", "FTP_DirLog": "gw/LOG/", "FTP_DirCmd": "/",
                  "FTP_TlsFingerprint": "AB:" * 31 + "CD", "FTP_TlsCaFile": "/etc/ftp-ca.pem"})
    s = store.settings
    assert (s.ftp_dir_data, s.ftp_dir_log, s.ftp_dir_cmd) == ("DATA", "gw/LOG/", "/")
    # stored as given, used as hex without colons
    assert s.ftp_tls_fingerprint == "ab" * 31 + "cd"
    assert s.ftp_tls_ca_file == "/etc/ftp-ca.pem"
