"""The acquisition service through clock steps (issue 8, items 5 and 7), driven on a fake clock
over a real pty meter: the gateway clock is stepped back, then forward (as an NTP sync does,
through state/clock_offset); no meter and time is sealed twice, rows stay in time order, each
step is journaled with its size, a restart after a backward step samples nothing again, and
sealed files get new names, later ones, within a second and after a step back."""
import gzip
import re
from datetime import datetime, timezone

import pytest

from bus.testing import FakeClock, short_run_dir, start_broker, stop_process
from driven import Driven
from gateway_helpers import Events, configure
from services.acquisition.sampler import Alarm
from services.acquisition.service import AcquisitionService
from sim.meters import make_meter
from sim.pty_meter import PtyMeter
from ticgw.clock import GatewayClock
from ticgw.config import ConfigStore
from ticgw.journal import Journal

PERIOD = 10


@pytest.fixture
def gw(tmp_path):
    run = short_run_dir(tmp_path)
    data = tmp_path / "data"
    broker = start_broker(run)
    events = Events(run)
    meter = PtyMeter(make_meter("CBEMM-ICC", seed=7), link=str(tmp_path / "ttyTIC1"), speed=6)
    meter.start()
    configure(data, {1: meter.path}, DAQ_Period=0, DAQ_PeriodSec=PERIOD, TIC_LostDelay=600,
              **{"TIC_Baud[1]": 1200})
    clock = FakeClock()
    running = []

    def start():
        svc = AcquisitionService(ConfigStore(data), run_dir=run, probe_scale=0.5, clock=clock)
        d = Driven(svc, clock)
        running.append(d)
        d.run_until(lambda: d.svc.inputs[1].state == "reading", 30, tick=0.05, what="reading")
        d.run_until(lambda: d.svc.slots is not None, 10, what="spool recovered")
        return d

    def stop(d):
        running.remove(d)
        d.close()

    yield start, stop, clock, data, events
    for d in running:
        d.close()
    meter.stop()
    events.close()
    stop_process(broker)


def go(d, seconds: float) -> None:
    """Let ``seconds`` of fake time pass, a second at a time, the meter talking meanwhile."""
    for _ in range(int(seconds)):
        d.run_for(0.03)
        d.advance(1.0)


def seal(d) -> list[str]:
    reply = d.svc.cmd_seal({})
    d.run_until(lambda: reply.done, 10, what="seal over")
    result, error = reply._outcome
    assert error is None, error
    return result["files"]


def sections(data) -> list[tuple[str, int, list[float]]]:
    """(file, input, [row times]) per meter section of every sealed data file, by name."""
    out = []
    for p in sorted((data / "outbox" / "DATA").glob("*.csv.gz")):
        for line in gzip.decompress(p.read_bytes()).decode().split("\r\n"):
            if line.startswith("SNTIC;"):
                out.append((p.name, int(line.split(";")[2]), []))
            elif line and not line.startswith(("TypeTIC;", "nbVariable;")):
                t = datetime.strptime(line.split(";")[0], "%d/%m/%y-%H:%M:%S")
                out[-1][2].append(t.replace(tzinfo=timezone.utc).timestamp())
    return out


def messages(data) -> list[str]:
    return [row[2] for row in Journal(data / "state").tail(1000)]


def to_mid_period(d) -> None:
    """Let fake time pass to the middle of a sampling period (a step taken there is seen
    before the next boundary of either clock)."""
    go(d, (PERIOD // 2 - d.svc.gateway_clock.now()) % PERIOD)


def test_steps_back_and_forward_seal_no_time_twice_and_are_journaled(gw):
    start, stop, clock, data, events = gw
    stale = data / "outbox" / "DATA" / ".WEBDYN_TIC_261130_000000.csv.gz.0a1b2c3d.tmp"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"half a file")
    d = start()
    assert not stale.exists()                     # removed at start
    offset = GatewayClock(data / "state", clock)
    go(d, 4 * PERIOD)
    # NTP sets the clock back 25 s: the slots already sampled come round again
    to_mid_period(d)
    offset.set_offset(-25)
    go(d, 6 * PERIOD)
    # then one hour ahead
    to_mid_period(d)
    before = d.svc.slots.last
    offset.set_offset(3600 - 25)
    go(d, 3)                                      # seen (the offset is read once a second)
    after = d.svc.slots.last
    go(d, 3 * PERIOD)
    seal(d)
    d.run_until(lambda: d.svc.writer.pending == 0, 5)

    # every row once, in time order, in the file and across files
    times = [t for _, inp, ts in sections(data) if inp == 1 for t in ts]
    assert len(times) >= 5
    assert times == sorted(set(times)), "a time sealed twice, or out of order"
    written = [(e["data"]["input"], e["data"]["time"]) for e in events.of("spool.written")]
    assert len(written) == len(set(written)) == len(times)
    # each row on a slot; after the step ahead, stamped with the new clock
    assert all(t % PERIOD == 0 for t in times)
    assert after == before + 3600 and max(times) > before + 3600
    # the steps journaled once each, with their size (and the slots the step ahead jumped)
    msgs = messages(data)
    assert msgs.count("Horloge reculée de 25 s") == 1
    assert [m for m in msgs if m.startswith("Horloge avancée")] == [
        "Horloge avancée de 3600 s : %d période(s) d'acquisition sans échantillon"
        % (3600 / PERIOD - 1)]

    # a restart after a step back of a whole minute samples no time it sampled before
    stop(d)
    offset.set_offset(3600 - 25 - 60)
    last = times[-1]
    d = start()
    go(d, 12 * PERIOD)
    seal(d)
    times = [t for _, inp, ts in sections(data) if inp == 1 for t in ts]
    assert times == sorted(set(times)) and times[-1] > last
    written = [(e["data"]["input"], e["data"]["time"]) for e in events.of("spool.written")]
    assert len(written) == len(set(written)) == len(times)


def test_seals_within_a_second_and_after_a_step_back_get_later_names(gw):
    start, stop, clock, data, events = gw
    d = start()
    go(d, 2 * PERIOD)

    def alarm():
        d.svc.raise_alarm(Alarm(d.svc.gateway_clock.now(), "GATEWAY", "", "TEST", 0, "x"))

    names = [seal(d)]
    for _ in range(2):                              # two more within the same fake second
        alarm()
        names.append(seal(d))
    GatewayClock(data / "state", clock).set_offset(-3600)
    go(d, 2)                                        # the service sees the offset
    alarm()
    names.append(seal(d))
    stamps = [re.search(r"_(\d{6}_\d{6})\.csv\.gz$", n[0]).group(1) for n in names]
    assert stamps == sorted(set(stamps)) and len(stamps) == 4, names
    d.run_until(lambda: "Horloge reculée de 3600 s" in messages(data), 5, what="journaled")
