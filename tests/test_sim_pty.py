"""Meters served on pseudo-terminals, read through pyserial like a real port."""
import os
import termios
import time

import pytest
import serial

from tic.codec import FrameDecoder
from tic.families import identify
from sim.meters import make_meter
from sim.pty_meter import PtyMeter, reader_settings


def open_port(path, baud):
    return serial.Serial(path, baudrate=baud, bytesize=7, parity="E", stopbits=1, timeout=0.1)


def read_frames(port, until, deadline_s, decoder=None):
    """Decode from ``port`` until ``until(ok_frames)`` or the monotonic deadline."""
    decoder = decoder or FrameDecoder()
    ok = []
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline and not until(ok):
        for f in decoder.feed(port.read(512)):
            if f.ok and f.groups:
                ok.append(f)
    return ok, decoder


def test_historic_meter_at_real_line_rate():
    meter = make_meter("CBEMM-ICC", seed=1, tariff="BASE")
    with PtyMeter(meter) as pm:
        with open_port(pm.path, 1200) as port:
            t0 = time.monotonic()
            ok, dec = read_frames(port, lambda ok: len(ok) >= 1, 5.0)
            elapsed = time.monotonic() - t0
    assert ok, dec.stats
    ident = identify(ok[0].values(), ok[0].mode)
    assert ident.family == "CBEMM-ICC" and ident.serial == meter.serial
    # real rate: a ~160-byte frame needs more than 1.2 s at 120 bytes/s
    assert elapsed > 1.2
    assert dec.stats.checksum_errors == 0 and dec.stats.line_errors == 0


def test_linky_standard_at_9600():
    meter = make_meter("LINKY", "standard", seed=2)
    with PtyMeter(meter, speed=3) as pm:
        with open_port(pm.path, 9600) as port:
            assert reader_settings(pm.slave)[0] == 9600
            ok, dec = read_frames(port, lambda ok: len(ok) >= 3, 5.0)
    assert len(ok) >= 3, dec.stats
    assert all(identify(f.values(), f.mode).family == "LINKY" and f.mode == "standard"
               for f in ok)
    assert dec.stats.groups_bad == 0


@pytest.mark.parametrize("family,mode,right,wrong", [("CBEMM-ICC", None, 1200, 9600),
                                                     ("LINKY", "standard", 9600, 1200)])
def test_wrong_baud_gives_no_valid_frame(family, mode, right, wrong):
    meter = make_meter(family, mode, seed=1)
    with PtyMeter(meter, speed=20) as pm:
        with open_port(pm.path, wrong) as port:
            ok, dec = read_frames(port, lambda ok: False, 1.0)
            assert not ok and dec.stats.frames_ok == 0
            assert dec.stats.line_errors > 0.5 * dec.stats.bytes > 0
            # the same port reconfigured to the right speed reads frames again
            port.baudrate = right
            port.reset_input_buffer()
            ok, _ = read_frames(port, lambda ok: len(ok) >= 2, 5.0)
    assert len(ok) >= 2
    assert pm.stats.garbage_chunks > 0


def test_unplug_and_replug_at_the_same_link(tmp_path):
    link = str(tmp_path / "ttyTIC0")
    meter = make_meter("LINKY", "historic", seed=4)
    pm = PtyMeter(meter, link=link, speed=20).start()
    try:
        assert pm.path == link and os.path.islink(link)
        port = open_port(link, 1200)
        ok, _ = read_frames(port, lambda ok: len(ok) >= 2, 5.0)
        assert len(ok) >= 2
        frames_before = meter.frame_count
        pm.unplug()
        assert not os.path.lexists(link)
        with pytest.raises(serial.SerialException):
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:
                port.read(512)        # the device went away: EIO / no data on a ready fd
        port.close()
        with pytest.raises(serial.SerialException):
            open_port(link, 1200)
        pm.replug()
        assert os.path.islink(link) and pm.stats.plugs == 2
        with open_port(link, 1200) as port:
            ok, _ = read_frames(port, lambda ok: len(ok) >= 2, 5.0)
        assert len(ok) >= 2 and ok[0].values()["ADCO"] == meter.serial
        assert meter.frame_count > frames_before
    finally:
        pm.stop()
    assert not os.path.lexists(link)


def wait_for(predicate, deadline_s):
    deadline = time.monotonic() + deadline_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def clocal_cleared(pm):
    return not termios.tcgetattr(pm.slave)[2] & termios.CLOCAL


def test_reader_can_close_and_reopen():
    meter = make_meter("LINKY", "historic", seed=5)
    with PtyMeter(meter, speed=10) as pm:
        for _ in range(3):             # the master never sees EIO; every reopen configures
            assert wait_for(lambda: clocal_cleared(pm), 2.0)
            with open_port(pm.path, 1200) as port:
                ok, _ = read_frames(port, lambda ok: len(ok) >= 1, 5.0)
                assert ok
        assert pm.running and pm.stats.bytes_dropped == 0


def test_nobody_reading_never_blocks():
    meter = make_meter("LINKY", "standard", seed=5)
    with PtyMeter(meter, speed=300) as pm:
        # nobody reading at 288 kB/s: the slave queue fills, the writer drops and goes on
        assert wait_for(lambda: pm.stats.bytes_dropped > 100_000, 10.0)
        assert pm.stats.full > 0 and pm.running
        chunks = pm.stats.chunks
        assert wait_for(lambda: pm.stats.chunks > chunks + 5, 5.0)
        assert wait_for(lambda: clocal_cleared(pm), 2.0)
        with open_port(pm.path, 9600) as port:   # pyserial flushes stale input on open
            ok, _ = read_frames(port, lambda ok: len(ok) >= 1, 5.0)
        assert ok
    assert not pm.running and pm.master is None
