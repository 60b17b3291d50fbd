"""Web Services client (services.uplink.webservices) against the demo server and bad servers."""
from __future__ import annotations

import json
import re
import socket
import threading
import time

import pytest
import requests

from services.uplink.webservices import (WebServiceError, WebServices, encode_form, gateway_mac,
                                         parse_reply, service_url)
from sim.server import DemoServer

from gateway_helpers import Scripted

MAC = "00:1A:2B:3C:4D:5E"


@pytest.fixture
def scripted():
    servers = []

    def make(status=200, body="00"):
        s = Scripted(status, body)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


@pytest.fixture
def demo(tmp_path):
    with DemoServer(tmp_path / "srv") as srv:
        yield srv


# -- pure helpers ----------------------------------------------------------------------------

@pytest.mark.parametrize("base, expected", [
    ("http://h:8081", "http://h:8081/confirm.php"),
    ("http://h:8081/", "http://h:8081/confirm.php"),
    ("http://h/ws", "http://h/ws/confirm.php"),
    ("http://h/ws//", "http://h/ws/confirm.php"),
    ("h.example.com/ws/", "http://h.example.com/ws/confirm.php"),
    ("https://h/ws?key=1", "https://h/ws/confirm.php?key=1"),
])
def test_service_url(base, expected):
    assert service_url(base, "confirm.php") == expected


def test_encode_form_keeps_order_and_literal_separators():
    body = encode_form([("NSITE", "S1"), ("ACTION", "VERSION"),
                        ("ACTION-COMP", "2.03.01 Aug 1 2011 & co"), ("RC", "0"), ("RC-COMP", "")])
    assert body == "NSITE=S1&ACTION=VERSION&ACTION-COMP=2.03.01+Aug+1+2011+%26+co&RC=0&RC-COMP="


@pytest.mark.parametrize("text, expected", [
    ("00##SITE1##", ("00", ["SITE1"])),
    ("\ufeff 00##SITE1##\r\n", ("00", ["SITE1"])),
    ("13####", ("13", [])),
    ("-1", ("-1", [])),
    ("0", ("00", [])),
])
def test_parse_reply(text, expected):
    assert parse_reply(text) == expected


@pytest.mark.parametrize("text", ["", "<html>", "OK##SITE##", "##00##"])
def test_parse_reply_rejects(text):
    with pytest.raises(ValueError):
        parse_reply(text)


def test_gateway_mac_format():
    mac = gateway_mac()
    assert re.fullmatch(r"([0-9A-F]{2}:){5}[0-9A-F]{2}", mac)
    assert gateway_mac() == mac


# -- against the demo server ------------------------------------------------------------------

def test_initialisation_default_site(demo):
    ws = WebServices(demo.web_service_url, timeout=5)
    assert ws.initialisation(MAC) == "TICGW-3C4D5E"


def test_initialisation_from_the_site_table(demo):
    (demo.root / "ws_sites.json").write_text(json.dumps({MAC.lower(): "PARIS_12"}))
    ws = WebServices(demo.web_service_url.rstrip("/"), timeout=5)  # no trailing slash
    assert ws.initialisation(MAC) == "PARIS_12"


def test_confirm_is_logged(demo):
    ws = WebServices(demo.web_service_url, timeout=5)
    ws.confirm("PARIS_12", "CONFIGGLOBAL", "PARIS_12_config.ini;PARIS_12_var.ini;")
    ws.confirm("PARIS_12", "UPLOADDATA", "", rc=1, rc_comp="timeout")
    rows = [r for r in demo.read_log() if r["service"] == "confirm"]
    assert [(r["site"], r["action"], r["action_comp"], r["rc"], r["rc_comp"], r["return_code"])
            for r in rows] == [
        ("PARIS_12", "CONFIGGLOBAL", "PARIS_12_config.ini;PARIS_12_var.ini;", "0", "", "00"),
        ("PARIS_12", "UPLOADDATA", "", "1", "timeout", "00")]


def test_confirm_unknown_action_is_code_11(demo):
    ws = WebServices(demo.web_service_url, timeout=5)
    with pytest.raises(WebServiceError) as info:
        ws.confirm("S", "DANCE")
    assert info.value.code == "11"
    assert "action unknown" in str(info.value)


def test_malformed_mac_is_code_13(demo):
    with pytest.raises(WebServiceError) as info:
        WebServices(demo.web_service_url, timeout=5).initialisation("not-a-mac")
    assert info.value.code == "13"
    assert "MAC address" in info.value.message


def test_a_given_session_is_used(demo):
    session = requests.Session()
    calls = []
    session.hooks["response"].append(lambda r, *a, **k: calls.append(r.url))
    WebServices(demo.web_service_url, timeout=5, session=session).confirm("S", "CMD")
    assert calls == [demo.web_service_url + "confirm.php"]


# -- the wire format ---------------------------------------------------------------------------

def test_request_bodies_on_the_wire(scripted):
    srv = scripted(body="00##SITE9##")
    ws = WebServices(srv.url + "/ws/", timeout=5)
    assert ws.initialisation(MAC) == "SITE9"
    srv.body = "00"
    ws.confirm("SITE9", "CONFIGGLOBAL", "SITE9_config.ini;SITE9_var.ini;")
    assert srv.requests == [
        ("/ws/initialisation.php", "application/x-www-form-urlencoded", "MAC-ADR=" + MAC),
        ("/ws/confirm.php", "application/x-www-form-urlencoded",
         "NSITE=SITE9&ACTION=CONFIGGLOBAL&ACTION-COMP=SITE9_config.ini;SITE9_var.ini;&RC=0"
         "&RC-COMP="),
    ]


# -- errors --------------------------------------------------------------------------------------

def test_http_500(scripted):
    srv = scripted(status=500, body="oops")
    with pytest.raises(WebServiceError) as info:
        WebServices(srv.url, timeout=5).initialisation(MAC)
    assert info.value.code is None
    assert "HTTP 500" in str(info.value)
    assert srv.url + "/initialisation.php" in str(info.value)


def test_http_404_on_confirm(scripted):
    srv = scripted(status=404, body="not found")
    with pytest.raises(WebServiceError, match="HTTP 404"):
        WebServices(srv.url, timeout=5).confirm("S", "CMD")


@pytest.mark.parametrize("body", ["SITE1", "00", "<html><body>It works</body></html>"])
def test_reply_without_separator(scripted, body):
    srv = scripted(body=body)
    with pytest.raises(WebServiceError) as info:
        WebServices(srv.url, timeout=5).initialisation(MAC)
    assert info.value.code is None
    assert "unexpected reply" in str(info.value)
    assert body[:20] in str(info.value)


def test_garbage_reply_to_confirm(scripted):
    srv = scripted(body="<html>")
    with pytest.raises(WebServiceError, match="unexpected reply"):
        WebServices(srv.url, timeout=5).confirm("S", "CMD")


@pytest.mark.parametrize("body, code, meaning", [
    ("13####", "13", "MAC address missing or not registered"),
    ("-1##", "-1", "internal error of the server"),
    ("42##X##", "42", "unknown return code"),
])
def test_error_codes_on_initialisation(scripted, body, code, meaning):
    srv = scripted(body=body)
    with pytest.raises(WebServiceError) as info:
        WebServices(srv.url, timeout=5).initialisation(MAC)
    assert info.value.code == code
    assert "code %s (%s" % (code, meaning) in str(info.value)


@pytest.mark.parametrize("body, code", [("10", "10"), ("12##", "12"), ("-1", "-1")])
def test_error_codes_on_confirm(scripted, body, code):
    srv = scripted(body=body)
    with pytest.raises(WebServiceError) as info:
        WebServices(srv.url, timeout=5).confirm("S", "UPLOADALARM")
    assert info.value.code == code
    assert "could not confirm UPLOADALARM" in str(info.value)


@pytest.mark.parametrize("body, reason", [("00####", "no site ID"),
                                          ("00##../etc##", "unusable site ID")])
def test_bad_site_id(scripted, body, reason):
    srv = scripted(body=body)
    with pytest.raises(WebServiceError, match=reason):
        WebServices(srv.url, timeout=5).initialisation(MAC)


def test_server_that_never_answers_is_bounded_by_the_timeout():
    with socket.socket() as listener:  # accepts connections (backlog) but never replies
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        url = "http://127.0.0.1:%d/" % listener.getsockname()[1]
        t0 = time.monotonic()
        with pytest.raises(WebServiceError) as info:
            WebServices(url, timeout=0.5).initialisation(MAC)
        elapsed = time.monotonic() - t0
    assert info.value.code is None
    assert "no answer from %sinitialisation.php within 0.5 s" % url in str(info.value)
    assert 0.4 < elapsed < 3.0


def test_server_that_stalls_mid_reply_is_bounded():
    release = threading.Event()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def serve():
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n00#")
                release.wait(10)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        t0 = time.monotonic()
        try:
            with pytest.raises(WebServiceError, match="within 0.5 s"):
                WebServices("http://127.0.0.1:%d" % listener.getsockname()[1],
                            timeout=0.5).initialisation(MAC)
            assert time.monotonic() - t0 < 3.0
        finally:
            release.set()
            thread.join(5)


def test_connection_refused():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(WebServiceError) as info:
        WebServices("http://127.0.0.1:%d" % port, timeout=2).confirm("S", "CMD")
    assert "cannot reach" in str(info.value) and "connection refused" in str(info.value)


def test_no_url_configured():
    with pytest.raises(WebServiceError, match="WebService_Url is empty"):
        WebServices("  ").initialisation(MAC)
