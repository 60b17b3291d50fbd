"""The acquisition service driven on a fake clock over a real pty meter: the tic_input machine
governs (loss, re-probe, recovery, unplug), an exception injected into every callback of the
chart leaves the service usable, detection keeps the meter in the _daq.ini file, the front
panel's LEDs follow, and a different meter on the same input gets its own definition."""
import pytest

import statecharts
from bus.testing import FakeClock, short_run_dir, start_broker, stop_process, wait_for
from driven import Driven, raise_once
from gateway_helpers import Events, configure, sealed_rows
from services.acquisition.detection import choose_definition
from services.acquisition.inputs import TicInput
from services.acquisition.line import Detection
from services.acquisition.service import AcquisitionService
from sim.meters import make_meter
from sim.pty_meter import PtyMeter
from statecharts import tic_input
from tic.families import Identity
from ticgw.config import ConfigStore

LOST_DELAY = 60
PERIOD = 10


@pytest.fixture
def gw(tmp_path):
    run = short_run_dir(tmp_path)
    data = tmp_path / "data"
    broker = start_broker(run)
    events = Events(run)
    meter = PtyMeter(make_meter("CBEMM-ICC", seed=4), link=str(tmp_path / "ttyTIC1"), speed=6)
    meter.start()
    store = configure(data, {1: meter.path}, DAQ_Period=0, DAQ_PeriodSec=PERIOD,
                      TIC_LostDelay=LOST_DELAY, **{"TIC_Baud[1]": 1200})
    clock = FakeClock()
    drivens = []

    def start():
        svc = AcquisitionService(ConfigStore(data), run_dir=run, probe_scale=0.5, clock=clock)
        d = Driven(svc, clock)
        drivens.append(d)
        return d

    yield start, meter, events, data, run
    for d in drivens:
        d.close()
    meter.stop()
    events.close()
    stop_process(broker)


def state(d, n=1):
    return d.svc.inputs[n].state


def listening(d, n=1):
    """The line is being read (a stream job runs, and was not cancelled for a probe)."""
    worker = d.svc.inputs[n].line.worker
    job = worker.current
    return job is not None and job.name == "stream" and not job.cancelled and not worker._inbox


def codes(events, topic):
    return [e["data"]["code"] for e in events.of(topic)]


def test_loss_reprobe_and_recovery_on_a_fake_clock(gw):
    start, meter, events, data, run = gw
    d = start()
    inp = d.svc.inputs[1]
    d.run_until(lambda: state(d) == "reading", 30, tick=0.05, what="reading")
    serial = inp.serial
    # the meter stops talking, the line stays plugged: a whole loss delay of silence
    meter.mute()
    d.run_for(0.5)                                 # the frames already on the line
    d.advance(LOST_DELAY + 1)
    assert state(d) == "lost"
    # entering `lost` said so once, raised the alarm once (on disk first), and probes again
    d.run_until(lambda: events.of("tic.1.lost") and "COMPTEUR_PERDU" in codes(events,
                "alarm.raised"), 10, what="lost event and alarm")
    d.run_until(lambda: listening(d), 20, what="probe over, listening")
    # a Détection while the meter is lost probes again without leaving `lost`
    d.svc.cmd_detect({})
    d.run_until(lambda: listening(d) and not d.svc.detection, 30, what="detection over")
    assert state(d) == "lost"
    # a while later, still nothing: probed again (the reprobe timer), still lost
    d.advance(inp.timeout("lost") + 1)
    d.run_until(lambda: listening(d), 20)
    assert state(d) == "lost"
    # the meter talks again: found, once
    meter.unmute()
    d.run_until(lambda: state(d) == "reading", 20, what="reading again")
    d.run_until(lambda: "COMPTEUR_RETROUVE" in codes(events, "alarm.cleared"), 10)
    assert len(events.of("tic.1.lost")) == 1 and len(events.of("tic.1.found")) == 1
    assert codes(events, "alarm.raised").count("COMPTEUR_PERDU") == 1
    assert events.of("tic.1.found")[0]["data"]["since"] == events.of("tic.1.lost")[0][
        "data"]["since"]
    # the states the machine went through, in order, published
    states = [e["data"]["state"] for e in events.of("acquisition.state")
              if e["data"]["machine"] == "tic_input.1" and e["data"]["trigger"] != "republish"]
    # (back by a valid frame while listening, or by a probe that finds it)
    assert states[:5] == ["opening", "detecting", "identified", "reading", "lost"]
    assert states[5] in ("reading", "identified")
    # both alarms reach the sealed alarm file, with the meter's serial
    d.svc.cmd_seal({})
    d.run_until(lambda: not d.svc.sealing, 10)
    (alarm_file,) = (data / "outbox" / "ALARM").glob("*.csv.gz")
    import gzip
    rows = gzip.decompress(alarm_file.read_bytes()).decode().split("\r\n")
    names = [r.split(";")[3] for r in rows if r]
    assert names.count("COMPTEUR_PERDU") == 1 and names.count("COMPTEUR_RETROUVE") == 1
    assert all(r.split(";")[5] == serial for r in rows if "COMPTEUR" in r)


def test_silence_has_one_owner(gw):
    """The old race: the line's reader had its own silence timer and re-probed by itself, so its
    "detecting" report could reach the loop first and the input went to `lost` without
    `tic.<n>.lost` or COMPTEUR_PERDU. Now only the machine's timer decides, however the
    reports interleave: frames short of the loss delay never lose the meter, and a loss always
    says so."""
    start, meter, events, data, run = gw
    d = start()
    d.run_until(lambda: state(d) == "reading", 30, tick=0.05)
    for _ in range(5):                          # silences shorter than the delay
        meter.mute()
        d.run_for(0.3)
        d.advance(LOST_DELAY - 5)
        assert state(d) == "reading"
        meter.unmute()
        d.run_until(lambda: d.svc.inputs[1].valid_frames > 0 and state(d) == "reading", 10)
        frames = d.svc.inputs[1].valid_frames
        d.run_until(lambda: d.svc.inputs[1].valid_frames > frames, 10)
    assert not events.of("tic.1.lost")
    meter.mute()
    d.run_for(0.3)
    d.advance(LOST_DELAY + 1)
    d.run_until(lambda: events.of("tic.1.lost") and "COMPTEUR_PERDU" in codes(
        events, "alarm.raised"), 10)
    assert state(d) == "lost"


def test_detection_keeps_the_meter_in_the_daq_file_and_lights_the_panel(gw):
    start, meter, events, data, run = gw
    d = start()
    d.run_until(lambda: state(d) == "reading", 30, tick=0.05)
    d.run_until(lambda: ConfigStore(data).settings.inputs[0].serial, 10, what="daq saved")
    tic = ConfigStore(data).settings.inputs[0]
    assert tic.serial == meter.meter.serial and tic.def_file == "WEBDYN_TIC_CBEMM-ICC.ini"
    # the save is journaled (the manual's row) and announced
    d.run_until(lambda: events.of("config.changed"), 10)
    assert events.of("config.changed")[0]["data"] == {"files": ["WEBDYN_daq.ini"],
                                                      "by": "detection"}
    assert "Sauvegarde de la configuration..." in [e["data"]["message"]
                                                   for e in events.of("journal")]
    # the detection at start-up was the task 'Détection'
    started = events.wait("task.started", where=lambda e: e["data"]["task"] == "Détection")
    assert started["data"]["reason"] == "boot"
    events.wait("task.ended", where=lambda e: e["data"]["task"] == "Détection")
    # LEDs: TIC1 follows its input (flicker while read, a pulse per frame), TIC2 and TIC3 off
    leds = d.run_until(lambda: next((e["data"] for e in reversed(events.of("gateway.leds"))
                                     if e["data"].get("pulse") == "TIC1"), None), 10)
    assert leds["leds"]["TIC1"] == "flicker"
    assert leds["leds"]["TIC2"] == leds["leds"]["TIC3"] == "off"
    assert d.svc.cmd_leds({})["leds"]["TIC1"] == "flicker"
    # ACTIVITY: the uplink does not answer here, so the gateway is not fully up
    assert d.svc.cmd_leds({})["leds"]["ACTIVITY"] == "fast"


@pytest.mark.parametrize("callback", [name for _, name in statecharts.callbacks(tic_input)])
def test_an_exception_in_any_tic_input_callback_leaves_the_service_usable(gw, monkeypatch,
                                                                        callback):
    start, meter, events, data, run = gw
    calls = raise_once(monkeypatch, TicInput, callback)
    d = start()
    svc = d.svc
    # 1. detection and reading, a few frames
    d.run_until(lambda: state(d) == "reading", 40, tick=0.05, what="reading")
    seen = svc.inputs[1].valid_frames
    d.run_until(lambda: state(d) == "reading" and svc.inputs[1].valid_frames > seen + 2, 40,
                tick=0.05, what="frames read")
    # 2. a loss (what is still on the line drained first)
    meter.mute()
    d.run_for(1.0)
    d.advance(LOST_DELAY + 1)
    d.run_until(lambda: state(d) in ("lost", "silent") and listening(d), 40, tick=0.05,
                what="listening after the loss")
    # 3. the meter back
    meter.unmute()
    d.run_until(lambda: state(d) == "reading", 40, tick=0.05, what="reading after the loss")
    # 4. unplugged and plugged again
    meter.replug()
    d.run_until(lambda: state(d) == "absent" or calls and svc.machines.faults, 20, tick=0.05)
    d.run_until(lambda: state(d) == "reading", 40, tick=0.05, what="reading after replug")
    # 5. a detection on demand runs and ends
    d.run_until(lambda: not svc.detection, 60, tick=0.05, what="no detection running")
    svc.cmd_detect({})
    d.run_until(lambda: not svc.detection and state(d) == "reading", 60, tick=0.05,
                what="detection on demand over")
    # 6. records are still written
    written = len(events.of("spool.written"))
    d.advance(PERIOD)
    d.run_until(lambda: len(events.of("spool.written")) > written, 20, tick=0.5)
    # the injected fault happened, and it was visible
    assert calls, "%s was never called" % callback
    assert svc.machines.faults >= 1
    assert svc.machines.last_fault["error"] == "RuntimeError: injected fault"
    assert any(e["data"].get("error") == "RuntimeError: injected fault"
               for e in events.of("acquisition.state"))


def test_a_different_meter_on_the_same_input_gets_its_own_definition(tmp_path):
    def det(serial, labels):
        return Detection(Identity("UNKNOWN", "historic", serial, None), 1200, labels,
                         {label: "1" for label in labels})
    def_dir = tmp_path / "def"
    first = choose_definition(def_dir, "SITE", 1, det("111111111111", ["ADCO", "FOO", "BAR"]),
                              "", "")
    assert first.name == "SITE_TIC_UNKNOWN-111111111111.ini"
    assert [v.label for v in first.variables] == ["ADCO", "FOO", "BAR"]
    # the _daq.ini file now names the first meter and its file; another unknown meter comes
    second = choose_definition(def_dir, "SITE", 1, det("222222222222", ["ADCO", "BAZ"]),
                               first.name, "111111111111")
    assert second.name == "SITE_TIC_UNKNOWN-222222222222.ini"
    assert [v.label for v in second.variables] == ["ADCO", "BAZ"]
    # the first meter, back, finds its own (possibly edited) file again
    (def_dir / first.name).write_text((def_dir / first.name).read_text().replace(";4\n", ";8\n"))
    again = choose_definition(def_dir, "SITE", 1, det("111111111111", ["ADCO", "FOO", "BAR"]),
                              second.name, "222222222222")
    assert again.name == first.name
    assert 8 in {v.action for v in again.variables} and 4 not in {v.action for v in again.variables}
    # a configured file is kept for the meter it was set for
    kept = choose_definition(def_dir, "SITE", 1, det("222222222222", ["ADCO", "BAZ"]),
                             first.name, "222222222222")
    assert kept.name == first.name
