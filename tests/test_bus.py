"""The bus: codec over every declared message, the loop, pub/sub through a broker subprocess,
request/reply with every error path, CURVE on tcp://, and recovery from a broker restart."""
import json
import signal
import threading
import time

import msgpack
import pytest
import zmq

from bus import endpoints as eps
from bus import envelope, messages, sockets
from bus.client import (CommandClient, CommandServer, Deferred, Publisher, Subscriber, in_worker)
from bus.errors import (BadMessage, BusTimeout, CommandRefused, ProtocolMismatch, RemoteError)
from bus.loop import Loop
from bus.testing import (FakeClock, leaked_threads, open_fds, short_run_dir, start_broker,
                         stop_process, threads_now, wait_for)
from ticgw import registry  # noqa: F401 (declares the services and their messages)


@pytest.fixture
def run_dir(tmp_path):
    return short_run_dir(tmp_path)


@pytest.fixture
def ctx():
    c = zmq.Context()
    yield c
    c.destroy(linger=0)


# --- envelope and declarations ------------------------------------------------------------------

@pytest.mark.parametrize("pattern", sorted(messages.TOPICS))
def test_every_topic_round_trips(pattern):
    t = messages.TOPICS[pattern]
    topic = messages.concrete(pattern)
    data = messages.sample_data(t)
    env = messages.event(topic, "acquisition", 42, **data)
    back = envelope.unpack(envelope.pack(env))
    assert back == env
    assert back["v"] == envelope.PROTOCOL and back["kind"] == "event" and back["seq"] == 42
    assert messages.lookup_topic(topic) is t
    line = messages.describe(back)
    assert topic in line and "#42" in line


@pytest.mark.parametrize("service,method", sorted(
    (s, m) for s, cmds in messages.COMMANDS.items() for m in cmds))
def test_every_command_round_trips(service, method):
    c = messages.COMMANDS[service][method]
    req = envelope.make_request("cli", method, "id-1", {k: 1 for k in c.params}, 3)
    assert envelope.unpack(envelope.pack(req)) == req
    rep = envelope.make_reply(service, req, {k: [1, "x"] for k in c.result})
    back = envelope.unpack(envelope.pack(rep))
    assert back == rep and back["ok"] is True and back["id"] == "id-1"
    err = envelope.make_reply(service, req, error=("busy", "occupé"))
    back = envelope.unpack(envelope.pack(err))
    assert back["ok"] is False and back["error"] == {"code": "busy", "message": "occupé"}


def test_header_first_and_tuples_become_lists():
    env = messages.event("tic.3.lost", "acquisition", 1, input=3, since=12.5)
    raw = envelope.pack({**env, "data": {"input": (1, 2)}})
    u = msgpack.Unpacker(raw=False)
    u.feed(raw)
    assert u.read_map_header() >= 7 and u.unpack() == "v"
    assert envelope.unpack(raw)["data"]["input"] == [1, 2]


def test_other_major_rejected_before_the_body():
    good = envelope.pack(messages.event("journal", "uplink", 1, message="x"))
    header = msgpack.packb({"v": 2, "kind": "event"})   # a map of 2 entries...
    # ...announcing 3 entries, the third one cut short: only a reader that stops at `v` is happy.
    raw = b"\x83" + header[1:] + msgpack.packb("data")[:-1] + b"\xc1"
    with pytest.raises(ProtocolMismatch) as e:
        envelope.unpack(raw)
    assert "v1" in str(e.value) and "v2" in str(e.value)
    assert e.value.local == 1 and e.value.remote == 2
    assert envelope.unpack(good)["topic"] == "journal"


@pytest.mark.parametrize("raw", [b"", b"\x01", msgpack.packb([1, 2]),
                                 msgpack.packb({1: "int key", "v": 1}),
                                 msgpack.packb({"v": 1, "kind": "gossip"}),
                                 envelope.pack({"v": 1, "kind": "event"}) + b"\x00"])
def test_bad_envelopes(raw):
    with pytest.raises(BadMessage):
        envelope.unpack(raw)


def test_message_declarations_checked():
    with pytest.raises(ValueError, match="undeclared topic"):
        messages.event("tic.1.gossip", "acquisition", 1)
    with pytest.raises(ValueError, match="no field"):
        messages.event("tic.1.frame", "acquisition", 1, input=1, colour="red")
    with pytest.raises(ValueError, match="needs field"):
        messages.event("alarm.raised", "acquisition", 1, source="TIC1")
    assert messages.lookup_topic("tic.12.frame").pattern == "tic.<n>.frame"
    assert messages.lookup_topic("uplink.state").pattern == "<svc>.state"
    with pytest.raises(ValueError):
        messages.lookup_topic("nobody.state")
    # open topics take any field
    messages.event("uplink.status", "uplink", 1, signal=-71, operator="Orange")
    assert messages.lookup_command("acquisition", "detect").service == "acquisition"
    assert messages.lookup_command("uplink", "ping").service == "*"
    with pytest.raises(ValueError):
        messages.lookup_command("modem", "detect")


def test_describe_is_one_readable_line():
    env = messages.event("tic.1.frame", "acquisition", 1234, 1700000000.512, input=1,
                         mode="historic", groups=[["ADCO", "1", None, True]] * 11, errors=[])
    line = messages.describe(env)
    assert line.endswith("acquisition tic.1.frame #1234 input=1 mode=historic groups=11 errors=0")
    assert line[:12].count(":") == 2 and line[8:12] == ".512"
    j = messages.describe(messages.event("journal", "uplink", 2, message="Connexion réussie"))
    assert 'message="Connexion réussie"' in j
    rep = envelope.make_reply("modem", {"id": "a", "method": "connect"}, error=("x", "why"))
    assert "<- connect()" in messages.describe(rep) and "error=x" in messages.describe(rep)


# --- endpoints -----------------------------------------------------------------------------------

def test_endpoints_defaults_and_overrides(tmp_path, monkeypatch):
    monkeypatch.setenv("TICGW_RUN", str(tmp_path / "r"))
    e = eps.resolve()
    assert (tmp_path / "r").is_dir()
    assert e.xsub == "ipc://%s/bus-xsub" % (tmp_path / "r").resolve()
    assert e.command("uplink").endswith("/uplink.cmd")
    e = eps.resolve(tmp_path / "x", {"Bus_Xpub": "ipc:///tmp/elsewhere", "Bus_Modem": ""})
    assert e.xpub == "ipc:///tmp/elsewhere" and e.command("modem").endswith("/x/modem.cmd")
    with pytest.raises(ValueError, match="CURVE"):
        eps.resolve(tmp_path, {"Bus_Acquisition": "tcp://127.0.0.1:5555"})
    with pytest.raises(ValueError, match="unknown"):
        eps.resolve(tmp_path, {"Bus_Printer": "ipc://x"}, services=("acquisition", "uplink"))
    # the bus knows no service by name: any may be asked for, on the run dir's defaults
    assert eps.resolve(tmp_path).command("printer").endswith("/printer.cmd")
    keys = eps.CurveKeys(*[k.decode() for k in zmq.curve_keypair()])
    assert "secret='****'" in repr(keys)
    e = eps.resolve(tmp_path, {"xsub": "tcp://127.0.0.1:5555"}, keys)
    assert e.keys_for(e.xsub) is keys and e.keys_for(e.xpub) is None


# --- loop ----------------------------------------------------------------------------------------

def test_loop_timers_on_a_fake_clock():
    clock = FakeClock()
    loop = Loop(clock=clock)
    seen = []
    loop.call_later(2.0, seen.append, "b")
    loop.call_later(1.0, seen.append, "a")
    cancelled = loop.call_later(1.5, seen.append, "never")
    every = loop.call_every(1.0, seen.append, "tick")
    cancelled.cancel()
    assert loop.next_deadline() == clock.now + 1.0
    loop.run_once(0)
    assert seen == []
    clock.advance(1.0)
    loop.run_once(0)
    assert seen == ["a", "tick"]
    clock.advance(1.0)
    loop.run_once(0)
    assert seen == ["a", "tick", "b", "tick"]
    every.cancel()
    clock.advance(10.0)
    loop.run_once(0)
    assert seen == ["a", "tick", "b", "tick"] and loop.next_deadline() is None
    loop.close()


def test_loop_post_from_threads_and_survives_errors(caplog):
    loop = Loop()
    got = []

    def boom():
        raise RuntimeError("callback failure")

    loop.post(boom)
    threads = [threading.Thread(target=loop.post, args=(got.append, i)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wait_for(lambda: len(got) == 20, step=lambda: loop.run_once(0.05))
    assert sorted(got) == list(range(20))
    assert "callback failure" in caplog.text
    outcomes = []
    loop.run_in_thread(lambda: 6 * 7, on_done=outcomes.append)
    loop.run_in_thread(lambda: 1 / 0, on_done=outcomes.append)
    wait_for(lambda: len(outcomes) == 2, step=lambda: loop.run_once(0.05))
    assert 42 in outcomes and any(isinstance(o, ZeroDivisionError) for o in outcomes)
    loop.close()


def test_loop_poll_timeout_is_next_deadline():
    loop = Loop()
    fired = []
    loop.call_later(0.05, fired.append, 1)
    t0 = time.monotonic()
    loop.run_once()                       # no timeout given: returns at the deadline
    assert fired == [1] and 0.04 <= time.monotonic() - t0 < 1.0
    stopper = threading.Thread(target=loop.stop)
    loop.call_later(0.01, stopper.start)
    loop.run_forever()                    # stop() from another thread wakes it
    assert loop.stopping
    loop.close()


# --- pub/sub through a broker subprocess ----------------------------------------------------------

def deliver(pub, sub, topic, **data):
    """Publish until the subscriber sees it (PUB/SUB drops what precedes the subscription)."""
    got = []

    def step():
        pub.publish(topic, **data)
        item = sub.recv(timeout=0.05)
        if item is not None:
            got.append(item)

    wait_for(lambda: any(t == topic for t, _ in got), timeout=10.0, step=step)
    return got


def test_pub_sub_through_broker(run_dir, ctx):
    broker = start_broker(run_dir)
    try:
        e = eps.resolve(run_dir)
        sub = Subscriber(ctx, e.xpub, ["tic.1.", "journal"])
        pub = Publisher(ctx, e.xsub, "acquisition")
        got = deliver(pub, sub, "tic.1.lost", input=1, since=1.5)
        topic, env = got[-1]
        assert env["src"] == "acquisition" and env["data"] == {"input": 1, "since": 1.5}
        # prefix filter: tic.2 is not for us, journal is
        pub.publish("tic.2.lost", input=2, since=0.0)
        pub.publish("journal", message="ok")
        item = sub.recv(timeout=5.0)
        assert item[0] == "journal"
        assert sub.gaps["acquisition"] == 0 and sub.rejected == 0
        # an event from a peer of another protocol is dropped and counted, the next one flows
        future = envelope.pack({**envelope.make_event("uplink", "journal", 1, {}), "v": 2})
        pub.send_raw("journal", future)
        pub.publish("journal", message="after")
        topic, env = sub.recv(timeout=5.0)
        assert env["data"] == {"message": "after"} and sub.rejected == 1
        pub.close()
        sub.close()
    finally:
        assert stop_process(broker) == 0


def test_subscriber_counts_gaps_and_restarts(ctx, run_dir):
    sub = Subscriber(ctx, eps.resolve(run_dir).xpub)       # no broker needed: bookkeeping only
    for seq in (1, 2, 5, 6):
        assert sub.track("journal", {"src": "uplink", "seq": seq}) == (2 if seq == 5 else 0)
    assert sub.gaps["uplink"] == 2 and sub.gaps_by_topic["journal"] == 2
    sub.track("journal", {"src": "uplink", "seq": 1})     # the source restarted
    sub.track("journal", {"src": "uplink", "seq": 2})
    sub.track("tic.1.frame", {"src": "acquisition", "seq": 10})
    assert sub.gaps["uplink"] == 2 and sub.gaps["acquisition"] == 0 and sub.received == 7
    sub.close()


def test_broker_killed_and_restarted(run_dir, ctx):
    broker = start_broker(run_dir)
    e = eps.resolve(run_dir)
    sub = Subscriber(ctx, e.xpub, ["journal"])
    pub = Publisher(ctx, e.xsub, "uplink")
    try:
        deliver(pub, sub, "journal", message="before")
        broker.send_signal(signal.SIGKILL)
        broker.wait(5)
        stop_process(broker)
        broker = start_broker(run_dir)
        got = deliver(pub, sub, "journal", message="after")
        assert got[-1][1]["data"]["message"] == "after"
        assert pub.dropped == 0
    finally:
        pub.close()
        sub.close()
        assert stop_process(broker) == 0


def test_broker_exits_promptly_on_sigterm_and_sigint(run_dir):
    for sig in (signal.SIGTERM, signal.SIGINT):
        broker = start_broker(run_dir)
        t0 = time.monotonic()
        broker.send_signal(sig)
        assert broker.wait(5) == 0
        assert time.monotonic() - t0 < 1.0
        stop_process(broker)


# --- commands -----------------------------------------------------------------------------------

class Served:
    """A CommandServer on its own loop in a thread (the test thread is the client)."""

    def __init__(self, ctx, endpoint, handlers, src="acquisition", keys=None):
        self.loop = Loop()
        self.server = CommandServer(ctx, endpoint, src, handlers, keys=keys, loop=self.loop)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.loop.stop()
        self.thread.join(5)
        self.server.close()
        self.loop.close()


def refuse(params):
    raise CommandRefused("busy", "occupé")


def crash(params):
    raise KeyError("gone")


@pytest.fixture
def served(ctx, run_dir):
    made = []

    def make(handlers, **kw):
        s = Served(ctx, eps.resolve(run_dir).command("acquisition"), handlers, **kw)
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()


def test_request_reply_and_errors(ctx, run_dir, served):
    s = served({"echo": lambda p: {"got": p}, "seal": refuse, "pause": crash})
    c = CommandClient(ctx, eps.resolve(run_dir), "cli")
    try:
        assert c.call("acquisition", "echo", x=1, y=[1, 2]) == {"got": {"x": 1, "y": [1, 2]}}
        with pytest.raises(RemoteError) as e:
            c.call("acquisition", "nosuch")
        assert e.value.code == "unknown_method" and "echo" in e.value.message
        with pytest.raises(RemoteError) as e:
            c.call("acquisition", "seal")
        assert (e.value.code, e.value.message) == ("busy", "occupé")
        with pytest.raises(RemoteError) as e:
            c.call("acquisition", "pause")
        assert e.value.code == "internal" and "KeyError" in e.value.message
        # the server lives on after a crash
        assert c.call("acquisition", "echo") == {"got": {}}
        assert s.server.handled == 5
    finally:
        c.close()


def test_protocol_mismatch_answered(ctx, run_dir, served):
    served({"echo": lambda p: p})
    c = CommandClient(ctx, eps.resolve(run_dir), "future")
    c.protocol = envelope.PROTOCOL + 1
    try:
        with pytest.raises(ProtocolMismatch) as e:
            c.call("acquisition", "echo", timeout=5.0)
        assert "v%d" % envelope.PROTOCOL in str(e.value)
    finally:
        c.close()


def test_timeout_when_absent_then_recovers(ctx, run_dir, served):
    c = CommandClient(ctx, eps.resolve(run_dir), "cli")
    try:
        t0 = time.monotonic()
        with pytest.raises(BusTimeout):
            c.call("acquisition", "echo", timeout=0.3, n=1)
        assert 0.25 < time.monotonic() - t0 < 2.0
        calls = []
        served({"echo": lambda p: calls.append(p) or p})
        assert c.call("acquisition", "echo", timeout=5.0, n=2) == {"n": 2}
        assert calls == [{"n": 2}]       # the timed-out request was discarded, not run late
    finally:
        c.close()


def test_stale_reply_is_dropped(ctx, run_dir):
    endpoint = eps.resolve(run_dir).command("uplink")
    router = sockets.router(ctx, endpoint)

    frames = []

    def serve():
        got = router.recv_multipart()
        req = envelope.unpack(got[-1])
        frames.append(req)
        stale = envelope.make_reply("uplink", {"id": "an-old-one", "method": "connect"}, "old")
        router.send_multipart(got[:-1] + [envelope.pack(stale)])
        router.send_multipart(got[:-1] + [envelope.pack(envelope.make_reply("uplink", req, "new"))])

    th = threading.Thread(target=serve)
    th.start()
    c = CommandClient(ctx, {"uplink": endpoint}, "cli")
    try:
        assert c.call("uplink", "connect", timeout=5.0) == "new"
        assert c.stale == 1 and frames[0]["v"] == envelope.PROTOCOL
    finally:
        th.join(5)
        c.close()
        router.close()


def test_deferred_and_in_worker(ctx, run_dir, served):
    holder = {}

    def later(params):
        d = Deferred()
        holder["d"] = d
        return d

    def work(params):
        return in_worker(holder["loop"], lambda: {"sum": params["a"] + params["b"]})

    def failing(params):
        return in_worker(holder["loop"], refuse, params)

    s = served({"later": later, "work": work, "fail": failing})
    holder["loop"] = s.loop
    c = CommandClient(ctx, eps.resolve(run_dir), "cli")
    try:
        assert c.call("acquisition", "work", a=2, b=3, timeout=5.0) == {"sum": 5}
        with pytest.raises(RemoteError, match="occupé"):
            c.call("acquisition", "fail", timeout=5.0)
        t = threading.Thread(target=lambda: (wait_for(lambda: "d" in holder),
                                             holder["d"].fail("nothing", "rien")))
        t.start()
        with pytest.raises(RemoteError) as e:
            c.call("acquisition", "later", timeout=5.0)
        t.join()
        assert e.value.code == "nothing"
        with pytest.raises(RuntimeError):
            holder["d"].resolve(1)
    finally:
        c.close()


def test_call_async_on_a_loop(ctx, run_dir, served):
    served({"echo": lambda p: p})
    e = eps.resolve(run_dir)
    loop = Loop()
    c = CommandClient(ctx, e, "web")
    outcomes = []
    try:
        c.call_async(loop, "acquisition", "echo", {"a": 1}, outcomes.append, timeout=5.0)
        c.call_async(loop, "modem", "status", {}, outcomes.append, timeout=0.2)   # absent
        wait_for(lambda: len(outcomes) == 2, timeout=5.0, step=lambda: loop.run_once(0.05))
        assert outcomes[0] == {"a": 1} and isinstance(outcomes[1], BusTimeout)
    finally:
        c.close()
        loop.close()


def test_reply_to_unknown_peer_is_an_error_not_silence(ctx, run_dir):
    server = CommandServer(ctx, eps.resolve(run_dir).command("web"), "web", {})
    server._reply([b"nobody-here"], {"id": "x", "method": "status"}, {"ok": 1})
    assert server.lost_replies == 1          # ROUTER_MANDATORY: EHOSTUNREACH, counted and logged
    server.close()


def test_curve_on_tcp_admits_only_our_key(ctx):
    ours = eps.CurveKeys(*[k.decode() for k in zmq.curve_keypair()])
    other = eps.CurveKeys(*[k.decode() for k in zmq.curve_keypair()])
    loop = Loop()
    server = CommandServer(ctx, "tcp://127.0.0.1:*", "modem", {"echo": lambda p: p}, keys=ours,
                           loop=loop)
    endpoint = server.sock.getsockopt(zmq.LAST_ENDPOINT).decode()
    th = threading.Thread(target=loop.run_forever, daemon=True)
    th.start()
    try:
        good = CommandClient(ctx, {"modem": endpoint}, "cli", keys=ours)
        assert good.call("modem", "echo", timeout=5.0, x=1) == {"x": 1}
        bad = CommandClient(ctx, {"modem": endpoint}, "cli", keys=other)
        with pytest.raises(BusTimeout):
            bad.call("modem", "echo", timeout=0.5)
        good.close()
        bad.close()
    finally:
        loop.stop()
        th.join(5)
        server.close()
        loop.close()
        sockets.stop_authenticator(ctx)


def test_no_leaks(run_dir):
    before_threads = threads_now()
    before_fds = open_fds()
    for _ in range(3):
        c = zmq.Context()
        s = Served(c, eps.resolve(run_dir).command("uplink"), {"echo": lambda p: p}, src="uplink")
        cl = CommandClient(c, eps.resolve(run_dir), "cli")
        assert cl.call("uplink", "echo", timeout=5.0, i=1) == {"i": 1}
        cl.close()
        s.close()
        c.term()
    assert leaked_threads(before_threads) == []
    assert open_fds() <= before_fds


# --- ticgw bus ... -------------------------------------------------------------------------------

def bus_cli(*argv):
    import argparse

    from ticgw.cli import bus as bus_cmd
    parser = argparse.ArgumentParser(prog="ticgw")
    bus_cmd.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    return args.func(args)


def test_cli_parses_values():
    from ticgw.cli.bus import parse_params
    assert parse_params(["a=1", "b=1.5", "c=true", "d=[1,2]", "e=hello world", "f=null",
                         'g={"k": "v"}', "h=0x1"]) == {
        "a": 1, "b": 1.5, "c": True, "d": [1, 2], "e": "hello world", "f": None,
        "g": {"k": "v"}, "h": "0x1"}
    with pytest.raises(ValueError):
        parse_params(["novalue"])


def test_cli_call(run_dir, served, capsys):
    served({"echo": lambda p: {"got": p}, "seal": refuse})
    assert bus_cli("bus", "--run", str(run_dir), "call", "acquisition", "echo", "n=3",
                   "on=true") == 0
    assert json.loads(capsys.readouterr().out) == {"got": {"n": 3, "on": True}}
    assert bus_cli("bus", "--run", str(run_dir), "call", "acquisition", "seal") == 1
    assert "occupé" in capsys.readouterr().err
    assert bus_cli("bus", "--run", str(run_dir), "call", "modem", "status",
                   "--timeout", "0.2") == 1
    assert "no reply from modem" in capsys.readouterr().err


def test_cli_record_replay_tap_stats(run_dir, ctx, tmp_path, capsys):
    broker = start_broker(run_dir)
    e = eps.resolve(run_dir)
    pub = Publisher(ctx, e.xsub, "uplink")
    rec = tmp_path / "rec.msgpack"
    threads = []

    def background(*argv):
        out = []
        t = threading.Thread(target=lambda: out.append(bus_cli("bus", "--run", str(run_dir),
                                                               *argv)))
        t.start()
        threads.append(t)
        return t, out

    try:
        t, out = background("record", str(rec), "journal", "--count", "3", "--seconds", "20")
        n = iter(range(10 ** 6))
        wait_for(lambda: not t.is_alive(), 20.0,
                 step=lambda: (pub.publish("journal", message="m%d" % next(n)), time.sleep(0.02)))
        assert out == [0]
        from ticgw.cli.bus import read_recording
        items = list(read_recording(rec))
        assert len(items) == 3 and all(topic == "journal" for _, topic, _ in items)
        assert envelope.unpack(items[0][2])["src"] == "uplink"

        t, out = background("tap", "journal", "--json", "--count", "1", "--seconds", "20")
        wait_for(lambda: not t.is_alive(), 20.0,
                 step=lambda: bus_cli("bus", "--run", str(run_dir), "replay", str(rec),
                                      "--speed", "0"))
        assert out == [0]
        line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("{")][0]
        assert json.loads(line)["topic"] == "journal"

        t, out = background("stats", "--seconds", "1")
        for i in range(30):
            pub.publish("tic.1.lost", input=1, since=float(i))
        t.join(10)
        text = capsys.readouterr().out
        assert out == [0] and "topic" in text and "missed" in text
    finally:
        for t in threads:
            t.join(20)
        pub.close()
        assert stop_process(broker) == 0


def test_cli_tap_without_a_gateway_says_where_it_looked(run_dir, capsys, monkeypatch):
    monkeypatch.setattr("ticgw.cli.bus.NO_BROKER_HINT_AFTER", 0.2)
    assert bus_cli("bus", "--run", str(run_dir), "tap", "--seconds", "0.8") == 0
    err = capsys.readouterr().err
    assert "no bus broker answers at ipc://%s/bus-xpub" % run_dir.resolve() in err
    assert "--run DIR" in err and "TICGW_RUN" in err
    # once the broker is there, nothing of the kind
    broker = start_broker(run_dir)
    try:
        assert bus_cli("bus", "--run", str(run_dir), "tap", "--seconds", "0.8") == 0
        assert "no bus broker" not in capsys.readouterr().err
    finally:
        stop_process(broker)
