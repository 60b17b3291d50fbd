"""The event broker: an XSUB/XPUB proxy (``python -m bus.broker``; the gateway starts it as
``ticgw bus broker``, which takes its endpoints from the configuration).

Publishers connect to the XSUB side, subscribers to the XPUB side; subscriptions flow upstream
so publishers only send what someone wants. The proxy runs on the bus loop rather than in
``zmq.proxy`` so it can count events per topic (logged at exit and every ``--stats-period``
seconds at DEBUG) and stop on SIGTERM/SIGINT at once (exit 0).

The broker keeps no state: killed and restarted, it is re-joined by every peer (ZeroMQ
reconnects; subscribers re-send their subscriptions).
"""
from __future__ import annotations

import argparse
import collections
import logging
import os
import signal
import sys

import zmq

from . import endpoints as eps
from . import sockets
from .loop import Loop

log = logging.getLogger("bus.broker")

BROKER_HWM = 100000


class Broker:
    def __init__(self, ctx: zmq.Context, endpoints: eps.Endpoints, loop: Loop | None = None):
        self.loop = loop or Loop()
        self.endpoints = endpoints
        self.xsub = sockets.bound(ctx, zmq.XSUB, endpoints.xsub,
                                  endpoints.keys_for(endpoints.xsub), hwm=BROKER_HWM)
        try:
            self.xpub = sockets.bound(ctx, zmq.XPUB, endpoints.xpub,
                                      endpoints.keys_for(endpoints.xpub), hwm=BROKER_HWM)
        except BaseException:
            self.xsub.close()
            raise
        self.events: collections.Counter = collections.Counter()
        self.bytes = 0
        self.subscriptions = 0
        self.loop.add_reader(self.xsub, self._events)
        self.loop.add_reader(self.xpub, self._subscriptions)

    def _events(self) -> None:
        for _ in range(1000):
            try:
                frames = self.xsub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.events[frames[0].decode("utf-8", "replace")] += 1
            self.bytes += sum(len(f) for f in frames)
            self.xpub.send_multipart(frames, zmq.NOBLOCK)   # XPUB drops for slow subscribers

    def _subscriptions(self) -> None:
        for _ in range(1000):
            try:
                frames = self.xpub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if frames and frames[0][:1] == b"\x01":
                self.subscriptions += 1
                log.debug("subscribe %r", frames[0][1:])
            self.xsub.send_multipart(frames, zmq.NOBLOCK)

    def summary(self) -> str:
        total = sum(self.events.values())
        top = ", ".join("%s=%d" % kv for kv in self.events.most_common(8))
        return "%d events (%d bytes), %d subscriptions; %s" % (total, self.bytes,
                                                               self.subscriptions, top or "-")

    def run(self) -> None:
        self.loop.run_forever()

    def stop(self) -> None:
        self.loop.stop()

    def close(self) -> None:
        self.loop.remove_reader(self.xsub)
        self.loop.remove_reader(self.xpub)
        self.xsub.close()
        self.xpub.close()


def _setup_logging() -> None:
    level = os.environ.get("TICGW_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(level=getattr(logging, level, logging.INFO),
                        format="%(asctime)s bus %(levelname)-5s %(message)s",
                        datefmt="%Y-%m-%d %H:%M:%S")


def main(argv=None, endpoints: eps.Endpoints | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bus.broker", description=__doc__.splitlines()[0])
    p.add_argument("--run", help="run dir (default $TICGW_RUN or var/run)")
    p.add_argument("--xsub", help="XSUB endpoint (publishers connect)")
    p.add_argument("--xpub", help="XPUB endpoint (subscribers connect)")
    p.add_argument("--stats-period", type=float, default=60.0,
                   help="seconds between counter logs at DEBUG (0: never)")
    args = p.parse_args(argv)
    _setup_logging()
    if endpoints is None:
        curve = None
        pub = os.environ.get("TICGW_BUS_CURVE_PUBLIC")
        sec = os.environ.get("TICGW_BUS_CURVE_SECRET")
        if pub and sec:
            curve = eps.CurveKeys(pub, sec)
        # the bare bus: the run dir's ipc:// defaults unless told otherwise (the gateway's own
        # entry, `ticgw bus broker`, reads the Bus_* keys of its configuration)
        endpoints = eps.resolve(args.run, {"xsub": args.xsub, "xpub": args.xpub}, curve)
    ctx = zmq.Context()
    loop = Loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, loop.stop)
    try:
        broker = Broker(ctx, endpoints, loop)
    except zmq.ZMQError as e:
        log.error("cannot bind the bus (%s, %s): %s", endpoints.xsub, endpoints.xpub, e)
        loop.close()
        ctx.term()
        return 1
    if args.stats_period > 0:
        loop.call_every(args.stats_period, lambda: log.debug("%s", broker.summary()))
    log.info("bus broker: publishers -> %s, subscribers -> %s (pid %d)", endpoints.xsub,
             endpoints.xpub, os.getpid())
    try:
        broker.run()
    finally:
        log.info("bus broker stopping: %s", broker.summary())
        broker.close()
        loop.close()
        sockets.stop_authenticator(ctx)
        ctx.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())
