"""`ticgw bus ...`: watch and poke the bus (DESIGN.md sections 3 and 11).

- ``tap [TOPIC...] [--json]``: one readable line per event (or one JSON object per line);
- ``call SERVICE METHOD [key=value...]``: a command; prints its result as JSON, exit 1 on error;
- ``stats [--seconds N]``: events per topic, rates, and gaps seen by sequence number;
- ``record FILE [--seconds N]``: raw envelopes to FILE (a msgpack stream of [time, topic, bytes]);
- ``replay FILE [--speed X]``: publish a recording again with its original timing.

The run dir comes from ``--run`` or ``$TICGW_RUN`` (default ``var/run``).
"""
from __future__ import annotations

import collections
import contextlib
import json
import sys
import time

import msgpack
import zmq

from bus import endpoints as eps
from bus import envelope, messages
from ticgw import gateway
from bus.client import CommandClient, Publisher, Subscriber
from bus.errors import BadMessage, BusError, BusTimeout, ProtocolMismatch

#: Seconds a fresh publisher waits for the broker to forward subscriptions (replay only:
#: PUB drops what it sends before they arrive).
SETTLE = 0.5


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("bus", help="watch and poke the bus (tap, call, stats, record, "
                                          "replay), run its broker")
    p.add_argument("--run", help="run dir (default $TICGW_RUN or var/run)")
    sub = p.add_subparsers(dest="bus_action", metavar="ACTION")
    sub.required = True

    s = sub.add_parser("broker", help="run the event broker with the endpoints of the gateway's "
                                      "configuration (the Procfile's 'bus' process)")
    s.add_argument("--stats-period", type=float, default=60.0,
                   help="seconds between counter logs at DEBUG (0: never)")
    s.set_defaults(func=cmd_broker)

    s = sub.add_parser("tap", help="print events as they pass")
    s.add_argument("topics", nargs="*", metavar="TOPIC", help="topic prefixes (default: all)")
    s.add_argument("--json", action="store_true", help="one JSON object per line")
    s.add_argument("--count", type=int, help="stop after this many events")
    s.add_argument("--seconds", type=float, help="stop after this many seconds")
    s.set_defaults(func=cmd_tap)

    s = sub.add_parser("call", help="call a service's command")
    s.add_argument("service", metavar="SERVICE")
    s.add_argument("method", metavar="METHOD")
    s.add_argument("params", nargs="*", metavar="key=value",
                   help="parameters; values that look like numbers, true/false/null or JSON "
                        "are parsed")
    s.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    s.set_defaults(func=cmd_call)

    s = sub.add_parser("stats", help="event rates and gaps per topic")
    s.add_argument("topics", nargs="*", metavar="TOPIC", help="topic prefixes (default: all)")
    s.add_argument("--seconds", type=float, default=10.0, help="listen this long (default 10)")
    s.set_defaults(func=cmd_stats)

    s = sub.add_parser("record", help="record raw events to a file")
    s.add_argument("file", metavar="FILE")
    s.add_argument("topics", nargs="*", metavar="TOPIC", help="topic prefixes (default: all)")
    s.add_argument("--seconds", type=float, help="stop after this many seconds")
    s.add_argument("--count", type=int, help="stop after this many events")
    s.set_defaults(func=cmd_record)

    s = sub.add_parser("replay", help="publish a recording again")
    s.add_argument("file", metavar="FILE")
    s.add_argument("--speed", type=float, default=1.0, help="time factor (2: twice as fast; "
                                                            "0: as fast as possible)")
    s.set_defaults(func=cmd_replay)


def _endpoints(args) -> eps.Endpoints:
    return gateway.endpoints_from_environment(args.run)


def _deadline(seconds):
    return None if seconds is None else time.monotonic() + seconds


def _waits(sub, deadline, step: float = 0.25):
    """Seconds to wait for each next event, until ``deadline`` (None: for ever); before each
    wait, the subscription says once when no broker answers."""
    while True:
        wait = step if deadline is None else min(step, deadline - time.monotonic())
        if wait <= 0:
            return
        sub.watch.check()
        yield wait


def _json_default(value):
    if isinstance(value, bytes):
        return value.hex()
    return repr(value)


#: Seconds without a connection to the broker before the tools say where they looked.
NO_BROKER_HINT_AFTER = 1.0


class BrokerWatch:
    """Tells the user, once, when no broker answers at the address tried, and how to point the
    tool at the right gateway (a tap that prints nothing is no help)."""

    def __init__(self, sock: zmq.Socket, endpoint: str, run_dir):
        self.endpoint = endpoint
        self.run_dir = run_dir
        self.monitor = sock.get_monitor_socket(zmq.EVENT_CONNECTED)
        self.sock = sock
        self.connected = False
        self.hinted = False
        self.started = time.monotonic()

    def check(self) -> None:
        while not self.connected:
            try:
                msg = self.monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            if msg:
                self.connected = True
                if self.hinted:
                    print("connected to the bus broker at %s" % self.endpoint, file=sys.stderr)
        if not self.connected and not self.hinted and \
                time.monotonic() - self.started >= NO_BROKER_HINT_AFTER:
            self.hinted = True
            print(hint_no_broker(self.endpoint, self.run_dir), file=sys.stderr)

    def close(self) -> None:
        try:
            self.sock.disable_monitor()
        except zmq.ZMQError:
            pass
        self.monitor.close(linger=0)


def hint_no_broker(endpoint: str, run_dir) -> str:
    return ("no bus broker answers at %s (run dir %s): is the gateway running? Point at it "
            "with --run DIR or TICGW_RUN=DIR (the demo's is var/demo/run); a gateway whose bus "
            "is on tcp:// is found through its configuration (TICGW_DATA). Still waiting..."
            % (endpoint, run_dir))


@contextlib.contextmanager
def _subscription(args):
    """A subscriber to the topics named on the command line (all when none), closed after;
    ``sub.watch`` says once when no broker answers (see :func:`_waits`)."""
    e = _endpoints(args)
    ctx = zmq.Context()
    sub = Subscriber(ctx, e.xpub, args.topics or [""], e.keys_for(e.xpub))
    sub.watch = BrokerWatch(sub.sock, e.xpub, e.run_dir)
    try:
        yield sub
    finally:
        sub.watch.close()
        sub.close()
        ctx.destroy(linger=0)


# --- broker -----------------------------------------------------------------------------------

def cmd_broker(args) -> int:
    from bus import broker

    argv = ["--stats-period", str(args.stats_period)]
    return broker.main(argv, endpoints=_endpoints(args))


# --- tap ------------------------------------------------------------------------------------

def cmd_tap(args) -> int:
    deadline = _deadline(args.seconds)
    n = 0
    with _subscription(args) as sub:
        try:
            for wait in _waits(sub, deadline):
                if args.count is not None and n >= args.count:
                    break
                got = sub.recv(timeout=wait)
                if got is None:
                    continue
                topic, env = got
                n += 1
                if args.json:
                    line = json.dumps(env, ensure_ascii=False, default=_json_default)
                else:
                    line = messages.describe(env)
                print(line, flush=True)
        except KeyboardInterrupt:
            pass
    return 0


# --- call -----------------------------------------------------------------------------------

def parse_value(text: str):
    """``12`` -> 12, ``1.5`` -> 1.5, ``true``/``false``/``null``, JSON lists/maps/strings;
    anything else stays text."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("null", "none"):
        return None
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    if text[:1] in ("[", "{", '"'):
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


def parse_params(items) -> dict:
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError("parameter %r is not key=value" % item)
        params[key] = parse_value(value)
    return params


def cmd_call(args) -> int:
    try:
        params = parse_params(args.params)
    except ValueError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    e = _endpoints(args)
    ctx = zmq.Context()
    client = CommandClient(ctx, e, "cli")
    try:
        result = client.request(args.service, args.method, params, timeout=args.timeout)
    except BusError as err:
        print("error: %s" % err, file=sys.stderr)
        if isinstance(err, BusTimeout):
            print("(asked at %s, run dir %s; point at another gateway with --run DIR or "
                  "TICGW_RUN=DIR)" % (e.command(args.service), e.run_dir), file=sys.stderr)
        return 1
    finally:
        client.close()
        ctx.destroy(linger=0)
    print(json.dumps(result, ensure_ascii=False, indent=2, default=_json_default))
    return 0


# --- stats ------------------------------------------------------------------------------------

def cmd_stats(args) -> int:
    counts: collections.Counter = collections.Counter()
    sources: dict = {}
    t0 = time.monotonic()
    deadline = _deadline(args.seconds)
    with _subscription(args) as sub:
        try:
            for wait in _waits(sub, deadline):
                got = sub.recv(timeout=wait)
                if got is not None:
                    counts[got[0]] += 1
                    sources[got[0]] = got[1].get("src")
        except KeyboardInterrupt:
            pass
        elapsed = max(time.monotonic() - t0, 1e-9)
    print("%-28s %-12s %8s %8s %6s" % ("topic", "source", "events", "per s", "gaps"))
    for topic in sorted(counts):
        print("%-28s %-12s %8d %8.2f %6d" % (topic, sources.get(topic) or "?", counts[topic],
                                             counts[topic] / elapsed,
                                             sub.gaps_by_topic.get(topic, 0)))
    print("%d events in %.1f s; %d missed (by sequence number), %d rejected"
          % (sum(counts.values()), elapsed, sum(sub.gaps.values()), sub.rejected))
    return 0


# --- record / replay -----------------------------------------------------------------------------

def cmd_record(args) -> int:
    deadline = _deadline(args.seconds)
    n = 0
    with _subscription(args) as sub, open(args.file, "wb") as f:
        try:
            for wait in _waits(sub, deadline):
                if args.count is not None and n >= args.count:
                    break
                if not sub.sock.poll(int(wait * 1000) + 1):
                    continue
                got = sub.recv_raw_nowait()
                if got is None:
                    continue
                f.write(msgpack.packb([time.time(), got[0], got[1]], use_bin_type=True))
                f.flush()
                n += 1
        except KeyboardInterrupt:
            pass
    print("recorded %d events to %s" % (n, args.file), file=sys.stderr)
    return 0


def read_recording(path):
    """Yield ``(time, topic, raw envelope)`` from a recording."""
    with open(path, "rb") as f:
        u = msgpack.Unpacker(f, raw=False, max_buffer_size=envelope.MAX_MESSAGE * 2)
        for item in u:
            t, topic, raw = item
            yield float(t), str(topic), bytes(raw)


def cmd_replay(args) -> int:
    e = _endpoints(args)
    ctx = zmq.Context()
    pub = Publisher(ctx, e.xsub, "replay", e.keys_for(e.xsub))
    n = skipped = 0
    try:
        time.sleep(SETTLE)       # pacing, not synchronisation: let subscriptions reach the PUB
        start = first = None
        for t, topic, raw in read_recording(args.file):
            try:
                envelope.unpack(raw)
            except (BadMessage, ProtocolMismatch) as err:
                skipped += 1
                print("skipping %s: %s" % (topic, err), file=sys.stderr)
                continue
            if first is None:
                start, first = time.monotonic(), t
            elif args.speed > 0:
                due = start + (t - first) / args.speed
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
            pub.send_raw(topic, raw)
            n += 1
    except KeyboardInterrupt:
        pass
    finally:
        pub.close()
        ctx.term()
    print("replayed %d events (%d skipped, %d dropped)" % (n, skipped, pub.dropped),
          file=sys.stderr)
    return 0
