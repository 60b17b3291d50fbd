"""Bus endpoints as objects: events (Publisher, Subscriber) and commands (CommandServer,
CommandClient, Deferred).

Events go through the broker: a Publisher connects to its XSUB, a Subscriber to its XPUB; the
wire is ``[topic, envelope]``. Commands go DEALER -> ROUTER, wire ``[envelope]`` both ways; a
reply always comes (unknown method, refusal, handler crash, other protocol version: an error
reply with a code). Clients match reply ids and drop stale replies; after a timeout the DEALER is
recreated, so a late reply cannot be taken for the answer to a later request, and a request
queued for an absent server is discarded rather than run much later.

Sockets are not thread-safe: each object here belongs to the thread (the loop) that made it.
Worker threads report through ``Loop.post`` or settle a ``Deferred`` (which posts for them).
"""
from __future__ import annotations

import collections
import logging
import os
import threading
import time
import uuid

import zmq

from . import envelope, messages, sockets
from .endpoints import CurveKeys, Endpoints
from .errors import (BadMessage, BusTimeout, CommandRefused, ProtocolMismatch, RemoteError)

log = logging.getLogger("bus.client")

#: Seconds between two attempts to send an async request while its server is not connected.
ASYNC_RETRY = 0.02

# --- events ---------------------------------------------------------------------------------

class Publisher:
    """Publishes checked events to the broker. ``seq`` counts per source and topic.

    Nothing blocks: at the high-water mark (broker gone for long) events are dropped and counted.
    """

    def __init__(self, ctx: zmq.Context, endpoint: str, src: str, keys: CurveKeys | None = None,
                 clock=time.time, validate: bool = True):
        self.src = src
        self.endpoint = endpoint
        self.clock = clock
        self.validate = validate
        self.sock = sockets.publisher(ctx, endpoint, keys)
        self._seq: collections.Counter = collections.Counter()
        self.sent = 0
        self.dropped = 0

    def publish(self, topic: str, /, **data) -> dict:
        """Publish one event; returns its envelope. Unknown topic or field -> ValueError."""
        self._seq[topic] += 1
        if self.validate:
            env = messages.event(topic, self.src, self._seq[topic], self.clock(), **data)
        else:
            env = envelope.make_event(self.src, topic, self._seq[topic], data, ts=self.clock())
        self.send_raw(topic, envelope.pack(env))
        return env

    def send_raw(self, topic: str, raw: bytes) -> bool:
        """Send an already packed envelope (replay). False if dropped at the high-water mark."""
        try:
            self.sock.send_multipart([topic.encode("utf-8"), raw], zmq.NOBLOCK)
        except zmq.Again:
            self.dropped += 1
            return False
        self.sent += 1
        return True

    def close(self) -> None:
        self.sock.close()


class Subscriber:
    """Receives events whose topic starts with one of ``prefixes`` ("" for all).

    Gaps are tracked by ``seq`` per (source, topic): ``gaps[src]`` and ``gaps_by_topic[topic]``
    count the events missed (a seq going backwards means the source restarted: no gap).
    Undecodable envelopes and envelopes of another protocol are dropped and counted
    (``rejected``).
    """

    def __init__(self, ctx: zmq.Context, endpoint: str, prefixes=("",),
                 keys: CurveKeys | None = None):
        self.endpoint = endpoint
        self.prefixes = list(prefixes)
        self.sock = sockets.subscriber(ctx, endpoint, self.prefixes, keys)
        self.last_seq: dict = {}
        self.gaps: collections.Counter = collections.Counter()
        self.gaps_by_topic: collections.Counter = collections.Counter()
        self.received = 0
        self.rejected = 0
        self._warned: set = set()

    def subscribe(self, prefix: str) -> None:
        self.sock.setsockopt(zmq.SUBSCRIBE, prefix.encode("utf-8"))
        self.prefixes.append(prefix)

    def unsubscribe(self, prefix: str) -> None:
        self.sock.setsockopt(zmq.UNSUBSCRIBE, prefix.encode("utf-8"))
        self.prefixes.remove(prefix)

    def recv(self, timeout: float | None = None):
        """The next event as ``(topic, envelope)``, or None after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            got = self.recv_nowait()
            if got is not None:
                return got
            if deadline is None:
                self.sock.poll()
                continue
            wait = deadline - time.monotonic()
            if wait <= 0 or not self.sock.poll(max(1, int(wait * 1000))):
                return None

    def recv_raw_nowait(self):
        """``(topic, raw envelope bytes)`` or None, without decoding (record)."""
        try:
            frames = self.sock.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return None
        if len(frames) != 2:
            self.rejected += 1
            return None
        return frames[0].decode("utf-8", "replace"), frames[1]

    def recv_nowait(self):
        while True:
            got = self.recv_raw_nowait()
            if got is None:
                return None
            topic, raw = got
            try:
                env = envelope.unpack(raw)
            except (ProtocolMismatch, BadMessage) as e:
                self.rejected += 1
                key = (type(e).__name__, topic.split(".")[0])
                if key not in self._warned:
                    self._warned.add(key)
                    log.warning("dropping event %s: %s", topic, e)
                continue
            self.track(topic, env)
            return topic, env

    def track(self, topic: str, env: dict) -> int:
        """Account for one event's seq; returns the number of events missed before it."""
        self.received += 1
        key = (env.get("src"), topic)
        seq = env.get("seq")
        if not isinstance(seq, int):
            return 0
        last = self.last_seq.get(key)
        self.last_seq[key] = seq
        if last is None or seq <= last:
            return 0
        missed = seq - last - 1
        if missed:
            self.gaps[key[0]] += missed
            self.gaps_by_topic[topic] += missed
        return missed

    def drain(self, callback, limit: int = 1000) -> int:
        """Call ``callback(topic, env)`` for each waiting event (loop reader); returns the count."""
        n = 0
        while n < limit:
            got = self.recv_nowait()
            if got is None:
                break
            n += 1
            callback(*got)
        return n

    def close(self) -> None:
        self.sock.close()


# --- commands: server -------------------------------------------------------------------------

class Deferred:
    """A reply that comes later. A handler returns one and settles it exactly once, with
    ``resolve(result)``, ``fail(code, message)`` or ``reject(exception)``, from any thread:
    when the server has a loop, the reply is posted to it.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._deliver = None
        self._outcome = None
        self.done = False

    def resolve(self, result=None) -> None:
        self._settle((result, None))

    def fail(self, code: str, message: str) -> None:
        self._settle((None, (code, message)))

    def reject(self, exc: BaseException) -> None:
        self._settle((None, _error_of(exc)))

    def _settle(self, outcome) -> None:
        with self._lock:
            if self.done:
                raise RuntimeError("this Deferred was already settled")
            self.done = True
            self._outcome = outcome
            deliver = self._deliver
        if deliver is not None:
            deliver(outcome)

    def _bind(self, deliver) -> None:
        with self._lock:
            self._deliver = deliver
            outcome = self._outcome if self.done else None
        if outcome is not None:
            deliver(outcome)


def in_worker(loop, fn, *args) -> Deferred:
    """Run blocking ``fn(*args)`` in a worker thread; a Deferred settled with its outcome.

    A handler can ``return in_worker(self.loop, self.slow_job, params)``.
    """
    d = Deferred()

    def done(outcome):
        if isinstance(outcome, BaseException):
            d.reject(outcome)
        else:
            d.resolve(outcome)

    loop.run_in_thread(fn, *args, on_done=done, name="cmd-%s" % getattr(fn, "__name__", "fn"))
    return d


def _error_of(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, CommandRefused):
        return exc.code, exc.message
    return "internal", "%s: %s" % (type(exc).__name__, exc)


class CommandServer:
    """A service's command socket: a ROUTER bound to ``endpoint``, answering every request.

    ``handlers`` maps a method to ``fn(params: dict) -> result``. A handler may raise
    ``CommandRefused(code, message)`` for a clean refusal, or return a :class:`Deferred` to
    answer later. Error codes: ``unknown_method``, ``bad_request``, ``protocol``, ``internal``,
    and whatever handlers refuse with.
    """

    def __init__(self, ctx: zmq.Context, endpoint: str, src: str, handlers: dict,
                 keys: CurveKeys | None = None, loop=None, clock=time.time):
        self.src = src
        self.endpoint = endpoint
        self.handlers = dict(handlers)
        self.loop = loop
        self.clock = clock
        self.sock = sockets.router(ctx, endpoint, keys)
        self.handled = 0
        self.lost_replies = 0
        self._check(self.handlers)
        if loop is not None:
            loop.add_reader(self.sock, self.handle)

    def add_handlers(self, handlers: dict) -> None:
        """Add (or replace) handlers; an undeclared method is logged (declare it in messages)."""
        self._check(handlers)
        self.handlers.update(handlers)

    def _check(self, handlers: dict) -> None:
        for method in handlers:
            try:
                messages.lookup_command(self.src, method)
            except ValueError as e:
                log.warning("%s", e)

    def handle(self) -> int:
        """Answer every waiting request (the loop's reader); returns how many."""
        n = 0
        while n < 100:
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            n += 1
            self._dispatch(frames)
        return n

    def _dispatch(self, frames: list) -> None:
        if len(frames) < 2:
            return
        route, raw = frames[:-1], frames[-1]
        try:
            env = envelope.unpack(raw)
        except ProtocolMismatch as e:
            log.warning("request from a peer of another protocol: %s", e)
            self._reply(route, envelope.peek_header(raw), error=("protocol", str(e)))
            return
        except BadMessage as e:
            hdr = envelope.peek_header(raw)
            log.warning("bad request: %s", e)
            if "id" in hdr:
                self._reply(route, hdr, error=("bad_request", str(e)))
            return
        self.handled += 1
        if env.get("kind") != "request":
            self._reply(route, env, error=("bad_request", "expected a request, got %s"
                                           % env.get("kind")))
            return
        method = env.get("method")
        fn = self.handlers.get(method)
        if fn is None:
            self._reply(route, env, error=("unknown_method", "%s has no command %r (known: %s)"
                                           % (self.src, method, ", ".join(sorted(self.handlers)))))
            return
        params = env.get("params") or {}
        if not isinstance(params, dict):
            self._reply(route, env, error=("bad_request", "params must be a map"))
            return
        try:
            result = fn(params)
        except CommandRefused as e:
            log.info("%s refused: %s", method, e.message)
            self._reply(route, env, error=(e.code, e.message))
            return
        except Exception as e:
            log.exception("command %s failed", method)
            self._reply(route, env, error=_error_of(e))
            return
        if isinstance(result, Deferred):
            header = {"id": env.get("id"), "method": method}

            def deliver(outcome, route=route, header=header):
                if self.loop is not None:
                    self.loop.post(self._reply, route, header, *outcome)
                else:
                    self._reply(route, header, *outcome)
            result._bind(deliver)
            return
        self._reply(route, env, result)

    def _reply(self, route: list, request: dict, result=None, error=None) -> None:
        rep = envelope.make_reply(self.src, request, result, error, ts=self.clock())
        try:
            raw = envelope.pack(rep)
        except TypeError as e:
            log.error("reply to %s cannot be encoded: %s", request.get("method"), e)
            raw = envelope.pack(envelope.make_reply(self.src, request, error=("internal", str(e))))
        try:
            self.sock.send_multipart(route + [raw], zmq.NOBLOCK)
        except zmq.ZMQError as e:     # EHOSTUNREACH (ROUTER_MANDATORY) or EAGAIN: peer gone
            self.lost_replies += 1
            log.warning("reply to %s (id %s) lost: %s", request.get("method"), request.get("id"), e)

    def close(self) -> None:
        if self.loop is not None:
            self.loop.remove_reader(self.sock)
        self.sock.close()


# --- commands: client ---------------------------------------------------------------------------

def _result_of(rep: dict, protocol: int):
    if rep.get("ok"):
        return rep.get("result")
    err = rep.get("error") or {}
    code, message = str(err.get("code", "internal")), str(err.get("message", ""))
    if code == "protocol":
        return ProtocolMismatch(protocol, rep.get("v"), message)
    return RemoteError(code, message)


class CommandClient:
    """Calls services' commands: one DEALER per target service.

    ``call()`` blocks (CLIs, tests, worker threads); ``call_async()`` runs on a loop. Use one
    client per thread.
    """

    #: Protocol major sent in requests (tests may change it to check version refusals).
    protocol = envelope.PROTOCOL

    def __init__(self, ctx: zmq.Context, endpoints, src: str = "cli",
                 keys: CurveKeys | None = None):
        self.ctx = ctx
        self.src = src
        if isinstance(endpoints, Endpoints):
            self._endpoint = endpoints.command
            self.keys = keys or endpoints.curve
        else:
            table = dict(endpoints)
            self._endpoint = table.__getitem__
            self.keys = keys
        self._sync: dict = {}
        self._async: dict = {}              # service -> (socket, loop)
        self._pending: dict = {}            # id -> (service, on_reply, timer)
        self._seq = 0
        self.stale = 0

    def _new_request(self, method: str, params: dict | None) -> dict:
        self._seq += 1
        return envelope.make_request(self.src, method, uuid.uuid4().hex, params, self._seq,
                                     v=self.protocol)

    def _dealer(self, service: str) -> zmq.Socket:
        return sockets.dealer(self.ctx, self._endpoint(service), self.keys)

    # --- blocking -----------------------------------------------------------------------------

    def call(self, service: str, method: str, timeout: float = 2.0, **params):
        """Call ``service.method(**params)`` and return its result.

        Raises BusTimeout (retry later), RemoteError(code, message) or ProtocolMismatch.
        """
        return self.request(service, method, params, timeout)

    def request(self, service: str, method: str, params: dict | None = None,
                timeout: float = 2.0):
        """Like :meth:`call` with the parameters as a dict."""
        sock = self._sync.get(service)
        if sock is None:
            sock = self._sync[service] = self._dealer(service)
        req = self._new_request(method, params)
        deadline = time.monotonic() + timeout
        try:
            if not sock.poll(max(1, int(timeout * 1000)), zmq.POLLOUT):
                raise zmq.Again()
            sock.send(envelope.pack(req), zmq.NOBLOCK)
        except zmq.Again:
            self._drop_sync(service)
            raise BusTimeout("no reply from %s to %r within %.1f s (not reachable: is it "
                             "running?); retry later" % (service, method, timeout)) from None
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not sock.poll(max(1, int(left * 1000))):
                self._drop_sync(service)
                raise BusTimeout("no reply from %s to %r within %.1f s (is it running?); "
                                 "retry later" % (service, method, timeout))
            raw = sock.recv_multipart()[-1]
            try:
                rep = envelope.unpack(raw)
            except ProtocolMismatch as e:
                hdr = envelope.peek_header(raw)
                if hdr.get("id") == req["id"]:
                    raise
                continue
            except BadMessage as e:
                log.warning("bad reply from %s: %s", service, e)
                continue
            if rep.get("kind") != "reply" or rep.get("id") != req["id"]:
                self.stale += 1
                log.debug("dropping stale reply %s from %s", rep.get("id"), service)
                continue
            outcome = _result_of(rep, self.protocol)
            if isinstance(outcome, Exception):
                raise outcome
            return outcome

    def _drop_sync(self, service: str) -> None:
        sock = self._sync.pop(service, None)
        if sock is not None:
            sock.close(linger=0)        # forget the request: no late reply, no late execution

    # --- on a loop -------------------------------------------------------------------------------

    def call_async(self, loop, service: str, method: str, params: dict | None, on_reply,
                   timeout: float = 2.0) -> str:
        """Send a request; later, on ``loop``, call ``on_reply(result_or_exception)``.

        The exception is a BusTimeout, RemoteError or ProtocolMismatch. Returns the request id.
        """
        if service not in self._async:
            sock = self._dealer(service)
            loop.add_reader(sock, lambda: self._on_async(service))
            self._async[service] = (sock, loop)
        req = self._new_request(method, params)
        timer = loop.call_later(timeout, self._async_timeout, req["id"], method, timeout)
        self._pending[req["id"]] = (service, on_reply, timer)
        self._async_send(service, envelope.pack(req), req["id"])
        return req["id"]

    def _async_send(self, service: str, raw: bytes, rid: str) -> None:
        entry = self._async.get(service)
        if entry is None or rid not in self._pending:
            return                      # timed out meanwhile
        sock, loop = entry
        try:
            sock.send(raw, zmq.NOBLOCK)
        except zmq.Again:               # not connected (yet): try again until the timeout
            loop.call_later(ASYNC_RETRY, self._async_send, service, raw, rid)

    def _on_async(self, service: str) -> None:
        entry = self._async.get(service)
        if entry is None:
            return
        sock = entry[0]
        for _ in range(100):
            try:
                raw = sock.recv_multipart(zmq.NOBLOCK)[-1]
            except zmq.Again:
                return
            try:
                rep = envelope.unpack(raw)
                outcome = _result_of(rep, self.protocol)
                rid = rep.get("id")
            except ProtocolMismatch as e:
                rid = envelope.peek_header(raw).get("id")
                outcome = e
            except BadMessage as e:
                log.warning("bad reply from %s: %s", service, e)
                continue
            pending = self._pending.pop(rid, None)
            if pending is None:
                self.stale += 1
                log.debug("dropping stale reply %s from %s", rid, service)
                continue
            pending[2].cancel()
            pending[1](outcome)

    def _async_timeout(self, rid: str, method: str, timeout: float) -> None:
        pending = self._pending.pop(rid, None)
        if pending is None:
            return
        service, on_reply, _ = pending
        if not any(p[0] == service for p in self._pending.values()):
            self._drop_async(service)   # nothing else in flight: discard what is still queued
        on_reply(BusTimeout("no reply from %s to %r within %.1f s; retry later"
                            % (service, method, timeout)))

    def _drop_async(self, service: str) -> None:
        entry = self._async.pop(service, None)
        if entry is not None:
            sock, loop = entry
            loop.remove_reader(sock)
            sock.close(linger=0)

    def close(self) -> None:
        for service in list(self._sync):
            self._drop_sync(service)
        for _, (_, _, timer) in list(self._pending.items()):
            timer.cancel()
        self._pending.clear()
        for service in list(self._async):
            self._drop_async(service)


def hello(client: CommandClient, service: str, timeout: float = 2.0) -> dict:
    """Ping ``service`` and check its protocol (ProtocolMismatch if it differs)."""
    info = client.call(service, "ping", timeout=timeout)
    if isinstance(info, dict) and info.get("protocol") not in (None, envelope.PROTOCOL):
        raise ProtocolMismatch(envelope.PROTOCOL, info.get("protocol"))
    return info


def ping_result(service: str, version: str = "unknown") -> dict:
    """What a service answers to ``ping`` (``version``: its software's)."""
    return {"pong": True, "service": service, "pid": os.getpid(),
            "version": version, "protocol": envelope.PROTOCOL}
