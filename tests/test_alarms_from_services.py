"""An alarm another service raises (the modem at its daily recovery cap) reaches the alarm file:
the acquisition, which writes the spool, follows alarm.raised from the other services."""
from __future__ import annotations

import gzip

import zmq

from bus import endpoints as eps
from bus.client import Publisher
from bus.testing import FakeClock, short_run_dir, start_broker, stop_process
from driven import Driven
from gateway_helpers import Events, configure
from services.acquisition.service import AcquisitionService
from ticgw.config import ConfigStore


def test_the_modems_alarm_is_written_into_the_alarm_file(tmp_path):
    run = short_run_dir(tmp_path)
    data = tmp_path / "data"
    broker = start_broker(run)
    events = Events(run)
    configure(data, {}, DAQ_Period=0, DAQ_PeriodSec=10)
    d = Driven(AcquisitionService(ConfigStore(data), run_dir=run, clock=FakeClock()),
               FakeClock())
    ctx = zmq.Context()
    pub = Publisher(ctx, eps.resolve(run).xsub, "modem")
    try:
        d.run_until(lambda: d.svc.slots is not None, 10, what="spool recovered")

        def published():
            pub.publish("alarm.raised", code="MODEM_EN_ATTENTE", source="MODEM",
                        detail="6 relances")
            d.run_for(0.2)
            return d.svc.spool.pending_records()
        d.run_until(published, 10, what="the alarm in the spool")
        made = d.svc.spool.seal()
        (alarm_file,) = [p for p in made if p.parent.name == "ALARM"]
        rows = gzip.decompress(alarm_file.read_bytes()).decode().splitlines()
        assert rows[0].split(";")[1:] == ["MODEM", "", "MODEM_EN_ATTENTE", "0", "6 relances"]
        # written, not published again under the acquisition's name (no second connection)
        assert not [e for e in events.of("alarm.raised") if e["src"] == "acquisition"]
    finally:
        pub.close()
        ctx.term()
        d.close()
        events.close()
        stop_process(broker)
