"""The acquisition service over real pseudo-terminals and a real broker: detection of every family,
unplug and replug, corrupted streams, and records on disk."""
import pytest

from bus.testing import short_run_dir, start_broker, stop_process
from gateway_helpers import Events, Threaded, configure, wait_for
from services.acquisition.service import AcquisitionService
from sim.meters import make_meter
from sim.pty_meter import PtyMeter


@pytest.fixture
def gw(tmp_path):
    run = short_run_dir(tmp_path)
    data = tmp_path / "data"
    broker = start_broker(run)
    events = Events(run)
    yield run, data, events
    events.close()
    stop_process(broker)


def Running(store, data, run, probe_scale=0.5):
    """An AcquisitionService running in a thread of the test process."""
    return Threaded(AcquisitionService(store, data_dir=data, run_dir=run,
                                       probe_scale=probe_scale))


FAMILY_SETS = [
    [("CBEMM", None), ("CBEMM-ICC", None), ("CBETM", None)],
    [("LINKY", "historic"), ("LINKY", "standard"), ("PME-PMI", None)],
    [("CJE", None), ("ICE", None), ("ICE-4Q", None)],
]


@pytest.mark.parametrize("families", FAMILY_SETS, ids=lambda fs: "+".join(f for f, _ in fs))
def test_detection_of_every_family_over_ptys(gw, tmp_path, families):
    run, data, events = gw
    meters = []
    for n, (family, mode) in enumerate(families, 1):
        m = PtyMeter(make_meter(family, mode, seed=n), link=str(tmp_path / ("tty%d" % n)),
                     speed=6)
        m.start()
        meters.append(m)
    store = configure(data, {n: m.path for n, m in enumerate(meters, 1)},
                      DAQ_Period=0, DAQ_PeriodSec=1)
    svc = Running(store, data, run)
    try:
        for n, (family, mode) in enumerate(families, 1):
            det = events.wait("tic.%d.detected" % n, timeout=40)["data"]
            assert det["family"] == family
            assert det["serial"] == meters[n - 1].meter.serial
            assert det["mode"] == (mode or "historic")
            assert det["baud"] == meters[n - 1].meter.baud
            assert (data / "def" / det["definition"]).exists()
        # records reach the disk, and the Détails table is there for the web page
        events.wait("spool.written", timeout=20)
        details = svc.svc.cmd_details({})["inputs"]
        assert details["1"]["details"][0][0] in ("ADCO", "ADSC", "ADS", "JAUNE", "CONTRAT")
    finally:
        svc.stop()
        for m in meters:
            m.stop()


def test_unplug_and_replug_recovers(gw, tmp_path):
    run, data, events = gw
    link = str(tmp_path / "ttyTIC1")
    meter = PtyMeter(make_meter("CBEMM-ICC", seed=4), link=link, speed=6)
    meter.start()
    store = configure(data, {1: link}, DAQ_Period=0, DAQ_PeriodSec=1, TIC_LostDelay=5)
    svc = Running(store, data, run)
    try:
        events.wait("tic.1.detected", timeout=30)
        events.wait("acquisition.state", where=lambda e: e["data"]["machine"] == "tic_input.1"
                    and e["data"]["state"] == "reading")
        meter.unplug()
        events.wait("acquisition.state", timeout=15,
                    where=lambda e: e["data"]["machine"] == "tic_input.1"
                    and e["data"]["state"] == "absent")
        meter.replug()
        wait_for(lambda: len(events.of("tic.1.detected")) >= 2, 40)
        events.wait("acquisition.state", timeout=20,
                    where=lambda e: e["data"]["machine"] == "tic_input.1"
                    and e["data"]["state"] == "reading" and e is not None
                    and len(events.of("tic.1.detected")) >= 2)
    finally:
        svc.stop()
        meter.stop()


def test_corrupted_stream_is_counted_and_sampled(gw, tmp_path):
    run, data, events = gw
    link = str(tmp_path / "ttyTIC1")
    meter = PtyMeter(make_meter("LINKY", "standard", seed=5,
                                corruption="checksum=0.03,noise=0.3,eot=0.05,parity=0.0005"),
                     link=link, speed=3)
    meter.start()
    store = configure(data, {1: link}, DAQ_Period=0, DAQ_PeriodSec=1)
    svc = Running(store, data, run, probe_scale=1.0)
    try:
        assert events.wait("tic.1.detected", timeout=40)["data"]["family"] == "LINKY"
        wait_for(lambda: len(events.of("spool.written")) >= 3, 30)
        frames = events.of("tic.1.frame")
        assert any(f["data"]["checksum_errors"] or f["data"]["errors"] for f in frames)
        # every value written is a value the meter sent in a valid group (never a corrupt one)
        east = [e["data"]["columns"] for e in events.of("spool.written")]
        assert all(cols for cols in east)
        stats = wait_for(lambda: svc.svc.status()["inputs"]["1"]["decoder"] or None, 10)
        assert stats["bytes_skipped"] > 0
    finally:
        svc.stop()
        meter.stop()
