"""The ticsim:// pyserial URL handler."""
import time

import pytest
import serial

import sim
from tic.codec import FrameDecoder
from tic.families import identify
from sim.protocol_ticsim import parse_url

sim.register()


def read_until(port, until, deadline_s, decoder=None):
    decoder = decoder or FrameDecoder()
    frames = []
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline and not until(frames, decoder):
        frames += decoder.feed(port.read(1024))
    return frames, decoder


def test_register_is_idempotent():
    sim.register()
    sim.register()
    assert serial.protocol_handler_packages.count("sim") == 1


def test_linky_standard_round_trip():
    port = serial.serial_for_url(
        "ticsim://LINKY?mode=standard&seed=3&corrupt=checksum=0.01&speed=50&serial=041876012345",
        baudrate=9600, bytesize=7, parity="E", timeout=0.5)
    try:
        assert port.is_open and port.meter.corruption.checksum == 0.01
        frames, dec = read_until(port, lambda fr, d: d.stats.frames >= 20, 10.0)
    finally:
        port.close()
    assert dec.stats.frames >= 20 and dec.stats.frames_ok >= 10
    ok = [f for f in frames if f.ok]
    ident = identify(ok[0].values(), ok[0].mode)
    assert (ident.family, ident.mode, ident.serial) == ("LINKY", "standard", "041876012345")
    # every checksum error seen was injected
    assert 0 < dec.stats.checksum_errors <= port.meter.injected.bad_checksums


@pytest.mark.parametrize("url,baud,family", [
    ("ticsim://cbetm?seed=1&speed=40", 1200, "CBETM"),
    ("ticsim://CBEMM?tariff=TEMPO&speed=40", 1200, "CBEMM"),
    ("ticsim://ICE-4Q?speed=100", 1200, "ICE-4Q"),
    ("ticsim://PME-PMI?speed=100&baud=9600", 9600, "PME-PMI"),
    ("ticsim://LINKY?speed=40&start=2025-01-15T21:58:00", 1200, "LINKY"),
])
def test_families_by_url(url, baud, family):
    with serial.serial_for_url(url, baudrate=baud, bytesize=7, parity="E", timeout=0.5) as port:
        frames, _ = read_until(port, lambda fr, d: any(f.ok for f in fr), 10.0)
    ok = [f for f in frames if f.ok]
    assert ok and identify(ok[0].values(), ok[0].mode).family == family


def test_paced_at_line_rate_and_timeout_honoured():
    with serial.serial_for_url("ticsim://CBEMM", baudrate=1200, bytesize=7, parity="E",
                               timeout=0.3) as port:
        t0 = time.monotonic()
        data = port.read(100_000)
        elapsed = time.monotonic() - t0
    assert 0.25 <= elapsed < 1.0
    assert abs(len(data) - 120 * elapsed) <= 15     # 1200 bd 7E1: 120 bytes/s
    assert data.startswith(b"\x02")        # the line starts with a frame when the port opens


@pytest.mark.parametrize("settings", [dict(baudrate=9600, bytesize=7, parity="E"),
                                      dict(baudrate=1200, bytesize=7, parity="O"),
                                      dict(baudrate=1200, bytesize=8, parity="E")])
def test_wrong_settings_give_garbage(settings):
    with serial.serial_for_url("ticsim://CBEMM-ICC?speed=20", timeout=0.2, **settings) as port:
        data = b""
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            data += port.read(4096)
    for eight in (False, True):
        dec = FrameDecoder(eight_bit=eight)
        frames = dec.feed(data)
        assert not any(f.ok for f in frames)
        assert dec.stats.line_errors > 0.5 * len(data) > 0


def test_eight_bit_read_of_a_7e1_line():
    with serial.serial_for_url("ticsim://CBEMM?speed=20", baudrate=1200, bytesize=8, parity="N",
                               timeout=0.2) as port:
        frames, dec = read_until(port, lambda fr, d: d.stats.frames_ok >= 2, 5.0,
                                 FrameDecoder(eight_bit=True))
        assert dec.stats.frames_ok >= 2
        # switching the port to 7E1 gives the plain bytes
        port.bytesize, port.parity = 7, "E"
        port.reset_input_buffer()
        frames, dec = read_until(port, lambda fr, d: d.stats.frames_ok >= 2, 5.0)
        assert dec.stats.frames_ok >= 2


def test_write_ignored_in_waiting_and_reset():
    with serial.serial_for_url("ticsim://CBEMM?speed=50", baudrate=1200, bytesize=7, parity="E",
                               timeout=0.2) as port:
        assert port.write(b"hello") == 5
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and port.in_waiting < 100:
            time.sleep(0.01)
        assert port.in_waiting >= 100
        port.reset_input_buffer()
        assert port.in_waiting < 100
    assert not port.is_open
    with pytest.raises(serial.PortNotOpenError):
        port.read(1)


def test_bad_urls():
    for url in ("ticsim://NOPE", "ticsim://CBEMM?bogus=1", "ticsim://CBEMM?corrupt=lost=9",
                "ticsim://CBEMM?speed=0", "ticsim://CBEMM?mode=standard", "ticsim://"):
        with pytest.raises(serial.SerialException):
            serial.serial_for_url(url)
    kw, speed = parse_url("ticsim://linky?mode=standard&seed=3&sep=HT&corrupt=eot=0.1,noise=0.2")
    assert kw["family"] == "linky" and kw["mode"] == "standard" and kw["seed"] == 3
    assert kw["corruption"].eot == 0.1 and kw["corruption"].noise == 0.2 and speed == 1.0
