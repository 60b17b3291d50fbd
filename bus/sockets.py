"""Socket factories with the options every bus socket needs.

- a short linger (200 ms): infinite linger hangs at exit, zero loses the last state message;
- bounded high-water marks; IPv6 off; reconnect every 100 ms backing off to 2 s;
- ROUTER_MANDATORY on ROUTERs, so a reply to a vanished peer is an error, not silence;
- CURVE on tcp:// endpoints: the binding side is the CURVE server and runs a ZAP authenticator
  (one per context) that admits only the gateway's public key; the connecting side is a client
  with the same keypair.
"""
from __future__ import annotations

import logging
import threading

import zmq

from .endpoints import CurveKeys, is_tcp

log = logging.getLogger("bus.sockets")

LINGER_MS = 200
HWM = 10000
RECONNECT_IVL_MS = 100
RECONNECT_IVL_MAX_MS = 2000

_auth_lock = threading.Lock()
_authenticators: dict[int, object] = {}


def _base(sock: zmq.Socket, hwm: int = HWM) -> zmq.Socket:
    sock.setsockopt(zmq.LINGER, LINGER_MS)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.RCVHWM, hwm)
    sock.setsockopt(zmq.IPV6, 0)
    sock.setsockopt(zmq.RECONNECT_IVL, RECONNECT_IVL_MS)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, RECONNECT_IVL_MAX_MS)
    return sock


def _need_keys(endpoint: str, keys: CurveKeys | None) -> CurveKeys:
    if keys is None:
        raise ValueError("%s is tcp://, which needs CURVE keys" % endpoint)
    if not zmq.has("curve"):
        raise RuntimeError("libzmq was built without CURVE; tcp:// bus endpoints need it")
    return keys


def start_authenticator(ctx: zmq.Context, keys: CurveKeys):
    """Start (once per context) a ZAP authenticator admitting only ``keys.public``."""
    from zmq.auth.thread import ThreadAuthenticator

    with _auth_lock:
        auth = _authenticators.get(id(ctx))
        if auth is not None:
            return auth
        allowed = keys.public.encode("ascii")

        class _OnlyOurKey:
            def callback(self, domain, key):
                ok = key == allowed
                if not ok:
                    log.warning("CURVE: refused a peer with an unknown public key %s",
                                key.decode("ascii", "replace"))
                return ok

        auth = ThreadAuthenticator(ctx)
        auth.start()
        auth.configure_curve_callback(domain="*", credentials_provider=_OnlyOurKey())
        _authenticators[id(ctx)] = auth
        return auth


def stop_authenticator(ctx: zmq.Context) -> None:
    with _auth_lock:
        auth = _authenticators.pop(id(ctx), None)
    if auth is not None:
        auth.stop()


def _curve_server(ctx, sock, endpoint, keys) -> None:
    if is_tcp(endpoint):
        k = _need_keys(endpoint, keys)
        start_authenticator(ctx, k)
        sock.curve_server = True
        sock.curve_secretkey = k.secret.encode("ascii")
        sock.curve_publickey = k.public.encode("ascii")


def _curve_client(sock, endpoint, keys) -> None:
    if is_tcp(endpoint):
        k = _need_keys(endpoint, keys)
        sock.curve_serverkey = k.public.encode("ascii")
        sock.curve_publickey = k.public.encode("ascii")
        sock.curve_secretkey = k.secret.encode("ascii")


def bound(ctx: zmq.Context, kind: int, endpoint: str, keys: CurveKeys | None = None,
          hwm: int = HWM) -> zmq.Socket:
    """A socket of ``kind`` bound to ``endpoint`` (CURVE server on tcp://)."""
    sock = _base(ctx.socket(kind), hwm)
    try:
        if kind == zmq.ROUTER:
            sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        _curve_server(ctx, sock, endpoint, keys)
        sock.bind(endpoint)
    except BaseException:
        sock.close(linger=0)
        raise
    return sock


def connected(ctx: zmq.Context, kind: int, endpoint: str, keys: CurveKeys | None = None,
              hwm: int = HWM) -> zmq.Socket:
    """A socket of ``kind`` connected to ``endpoint`` (CURVE client on tcp://)."""
    sock = _base(ctx.socket(kind), hwm)
    try:
        _curve_client(sock, endpoint, keys)
        sock.connect(endpoint)
    except BaseException:
        sock.close(linger=0)
        raise
    return sock


def publisher(ctx, endpoint, keys=None) -> zmq.Socket:
    """PUB connected to the broker's XSUB."""
    return connected(ctx, zmq.PUB, endpoint, keys)


def subscriber(ctx, endpoint, prefixes=("",), keys=None) -> zmq.Socket:
    """SUB connected to the broker's XPUB, subscribed to each prefix."""
    sock = connected(ctx, zmq.SUB, endpoint, keys)
    for p in prefixes:
        sock.setsockopt(zmq.SUBSCRIBE, p.encode("utf-8"))
    return sock


def router(ctx, endpoint, keys=None) -> zmq.Socket:
    """ROUTER bound for a service's commands (ROUTER_MANDATORY on)."""
    return bound(ctx, zmq.ROUTER, endpoint, keys)


def dealer(ctx, endpoint, keys=None) -> zmq.Socket:
    """DEALER connected to a service's command endpoint.

    IMMEDIATE is on: a request is only queued on a live connection, so nothing waits in a pipe
    for an absent server (to be run much later); the socket is writable (POLLOUT) once
    connected.
    """
    sock = _base(ctx.socket(zmq.DEALER))
    try:
        sock.setsockopt(zmq.IMMEDIATE, 1)
        _curve_client(sock, endpoint, keys)
        sock.connect(endpoint)
    except BaseException:
        sock.close(linger=0)
        raise
    return sock
