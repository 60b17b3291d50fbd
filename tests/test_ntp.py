"""NTP sync (services.uplink.ntp) against the local SNTP responder (sim.ntp_server)."""
from __future__ import annotations

import socket
import struct
import time

import ntplib
import pytest

from services.uplink.ntp import NtpError, NtpResult, parse_server, sync
from sim.ntp_server import NtpResponder, build_reply, from_ntp, to_ntp

TOLERANCE = 0.05  # seconds


@pytest.fixture
def responder():
    started = []

    def make(**kw):
        r = NtpResponder(**kw).start()
        started.append(r)
        return r

    yield make
    for r in started:
        r.stop()


@pytest.mark.parametrize("offset", [90.0, -3.5])
def test_sync_measures_the_server_offset(responder, offset):
    r = responder(offset=offset)
    result = sync([r.address], timeout=2)
    assert isinstance(result, NtpResult)
    assert result.server == r.address
    assert result.offset == pytest.approx(offset, abs=TOLERANCE)
    assert 0 <= result.delay < 0.5
    assert r.requests == 1


def test_offset_can_change_while_running(responder):
    r = responder(offset=0.0)
    assert abs(sync([r.address], timeout=2).offset) < TOLERANCE
    r.offset = 1234.25
    assert sync([r.address], timeout=2).offset == pytest.approx(1234.25, abs=TOLERANCE)


def test_default_port_applies_to_a_bare_host(responder):
    r = responder(offset=7.0)
    result = sync(["127.0.0.1"], timeout=2, port=r.port)
    assert result.server == "127.0.0.1"
    assert result.offset == pytest.approx(7.0, abs=TOLERANCE)


def test_first_silent_then_second_answers(responder):
    silent = responder(behaviour="silent")
    good = responder(offset=-3.5)
    t0 = time.monotonic()
    result = sync(["", silent.address, good.address], timeout=0.3)
    elapsed = time.monotonic() - t0
    assert result.server == good.address
    assert result.offset == pytest.approx(-3.5, abs=TOLERANCE)
    assert silent.requests == 1  # it was asked, and stayed silent
    assert 0.25 < elapsed < 2.0  # waited for the first one's timeout, not more


def test_both_fail_names_both_servers(responder):
    a = responder(behaviour="silent")
    b = responder(behaviour="silent")
    t0 = time.monotonic()
    with pytest.raises(NtpError) as info:
        sync([a.address, b.address], timeout=0.2)
    assert time.monotonic() - t0 < 2.0
    text = str(info.value)
    assert a.address in text and b.address in text
    assert "no answer within 0.2 s" in text
    assert [s for s, _ in info.value.failures] == [a.address, b.address]


@pytest.mark.parametrize("behaviour, reason", [
    ("short", "too short or malformed"),
    ("wrong_mode", "mode 3"),
    ("unsynchronised", "not synchronised"),
])
def test_garbage_reply_is_an_error(responder, behaviour, reason):
    r = responder(offset=90.0, behaviour=behaviour)
    with pytest.raises(NtpError) as info:
        sync([r.address], timeout=1)
    assert r.address in str(info.value)
    assert reason in str(info.value)


def test_garbage_first_then_good(responder):
    bad = responder(behaviour="wrong_mode")
    good = responder(offset=2.0)
    assert sync([bad.address, good.address], timeout=1).server == good.address


def test_no_server_configured():
    with pytest.raises(NtpError, match="no NTP server configured"):
        sync(["", "  "])


def test_bad_address_is_reported_and_skipped(responder):
    good = responder()
    result = sync(["127.0.0.1:notaport", good.address], timeout=1)
    assert result.server == good.address
    with pytest.raises(NtpError, match=r"127\.0\.0\.1:99999: invalid server address"):
        sync(["127.0.0.1:99999"], timeout=1)


@pytest.mark.parametrize("text, expected", [
    ("pool.ntp.org", ("pool.ntp.org", 123)),
    (" 10.0.0.1:12300 ", ("10.0.0.1", 12300)),
    ("::1", ("::1", 123)),
    ("[::1]", ("::1", 123)),
    ("[::1]:5123", ("::1", 5123)),
])
def test_parse_server(text, expected):
    assert parse_server(text) == expected


@pytest.mark.parametrize("text", ["", ":123", "host:0", "host:x", "[::1", "[::1]x"])
def test_parse_server_rejects(text):
    with pytest.raises(ValueError):
        parse_server(text)


def test_timestamp_conversion_round_trip():
    now = time.time()
    assert from_ntp(to_ntp(now)) == pytest.approx(now, abs=1e-6)
    assert to_ntp(0.0) >> 32 == 2_208_988_800  # 1970 in seconds since 1900


def test_reply_format():
    request = ntplib.NTPPacket(mode=3, version=3, tx_timestamp=ntplib.system_to_ntp_time(
        1_700_000_000.25)).to_data()
    reply = build_reply(request, 1_700_000_100.0, 1_700_000_100.5, stratum=2)
    assert len(reply) == 48
    first, stratum = reply[0], reply[1]
    assert (first >> 6, (first >> 3) & 7, first & 7) == (0, 3, 4)  # LI 0, version echoed, server
    assert stratum == 2
    assert reply[24:32] == request[40:48]  # originate = the client's transmit timestamp
    receive, transmit = struct.unpack("!QQ", reply[32:48])
    assert from_ntp(receive) == pytest.approx(1_700_000_100.0, abs=1e-6)
    assert from_ntp(transmit) == pytest.approx(1_700_000_100.5, abs=1e-6)


def test_responder_ignores_non_client_packets(responder):
    r = responder()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        s.sendto(b"\x24" + bytes(47), ("127.0.0.1", r.port))  # mode 4: not a request
        with pytest.raises(socket.timeout):
            s.recvfrom(512)
        # a real request on the same socket is still answered
        s.sendto(ntplib.NTPPacket(mode=3, version=4).to_data(), ("127.0.0.1", r.port))
        data, _ = s.recvfrom(512)
    assert len(data) == 48 and data[0] & 7 == 4
    assert r.requests == 1
