"""Crash safety: `kill -9` the acquisition service at random instants, many times, while it
samples (and sometimes while it seals): every record it reported written is found exactly once in
the sealed data files, and no record is ever sealed twice."""
import random
import signal
import time

import zmq

from bus import endpoints as eps
from bus import envelope
from bus.client import CommandClient
from bus.testing import short_run_dir, start_broker, stop_process
from gateway_helpers import Events, configure, sealed_rows, start_service, wait_for

CYCLES = 10


def test_kill_9_never_loses_or_duplicates_a_reported_record(tmp_path):
    run = short_run_dir(tmp_path)
    data = tmp_path / "data"
    configure(data, {1: "ticsim://CBEMM-ICC?speed=10&seed=1",
                     2: "ticsim://LINKY?mode=standard&speed=4&seed=2"},
              DAQ_Period=0, DAQ_PeriodSec=1, **{"TIC_Baud[1]": 1200, "TIC_Baud[2]": 9600})
    broker = start_broker(run)
    events = Events(run, ("spool.written", "acquisition.state"))
    ctx = zmq.Context()
    client = CommandClient(ctx, eps.resolve(run), src="test")
    rng = random.Random(1234)
    try:
        for cycle in range(CYCLES):
            before = len(events.of("spool.written"))
            p = start_service("acquisition", run, data)
            wait_for(lambda: len(events.of("spool.written")) > before, 40,
                     message="no record in cycle %d: %s" % (cycle, "\n".join(p.output[-20:])))
            if cycle % 3 == 2:
                # ask for a seal without waiting, so the kill may land in the middle of it
                sock = ctx.socket(zmq.DEALER)
                sock.connect(eps.resolve(run).command("acquisition"))
                sock.send(envelope.pack(envelope.make_request("test", "seal", "x%d" % cycle, {})))
                sock.close(100)
            # The kill instant is random on purpose (this sleep is the experiment, not a wait
            # for something to happen): anywhere in the next sampling periods.
            time.sleep(rng.uniform(0.0, 2.5))
            p.send_signal(signal.SIGKILL)
            p.wait(10)
        # a last, clean run: it finishes what the crashes left and seals everything
        p = start_service("acquisition", run, data)
        wait_for(lambda: any(e["data"]["machine"] == "activity" and e["data"]["state"] ==
                             "operational" for e in events.of("acquisition.state")[-5:]), 30)
        client.call("acquisition", "seal", timeout=10)
        assert stop_process(p) == 0
        reported = {(e["data"]["input"], e["data"]["time"]): e["data"]["columns"]
                    for e in events.of("spool.written")}
        assert len(reported) >= CYCLES
        rows = sealed_rows(data / "outbox" / "DATA")
        dupes = {k: v for k, v in rows.items() if len(v) > 1}
        assert not dupes, "records sealed twice: %s" % list(dupes)[:5]
        missing = [k for k in reported if k not in rows]
        assert not missing, "reported records missing: %s" % missing[:5]
        for key, cols in reported.items():
            assert rows[key] == [cols]
        assert not list((data / "records").glob("seal-*"))
    finally:
        client.close()
        ctx.term()
        events.close()
        stop_process(broker)
