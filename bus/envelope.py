"""The envelope: the one wire format of the bus (DESIGN.md section 3).

An envelope is a msgpack map with string keys. The header comes first, the body last:

=========  ======================================================================
``v``      protocol major version (:data:`PROTOCOL`), kept apart from the package
           version; a peer with another major is rejected before its body is read
``kind``   ``"event"``, ``"request"`` or ``"reply"``
``src``    the sending service (``acquisition``, ``cli``...)
``topic``  events: dotted topic (``tic.1.frame``)
``method`` requests and replies: the command (``status``)
``id``     requests: a request id; replies: the id of the request they answer
``ts``     epoch seconds (float) when it was made
``seq``    per-source counter (events: per source and topic; see ``client.Publisher``)
``ok``     replies: true with ``result``, false with ``error``
``data``   events: the fields declared in ``messages``
``params`` requests: the parameters
``result`` replies: the result
``error``  failed replies: ``{"code": ..., "message": ...}``
=========  ======================================================================

Events travel as two frames ``[topic, envelope]``; requests and replies as ``[envelope]``.
msgpack only: string keys, tuples come back as lists, times as epoch numbers, a bounded
buffer, never pickle. The codec round-trips a sample at import, so a broken one fails at once.
"""
from __future__ import annotations

import time

import msgpack

from .errors import BadMessage, ProtocolMismatch

#: Major version of the bus protocol. Bump it only for incompatible changes.
PROTOCOL = 1

#: Largest envelope accepted (bytes); a TIC frame with every group is a few kilobytes.
MAX_MESSAGE = 4 * 1024 * 1024

KINDS = ("event", "request", "reply")
HEADER = ("v", "kind", "src", "topic", "method", "id", "ts", "seq", "ok")
BODY = ("data", "params", "result", "error")


def pack(env: dict) -> bytes:
    """Encode an envelope; the header keys are written first so a reader can stop early."""
    if not isinstance(env, dict):
        raise TypeError("an envelope is a dict, not %s" % type(env).__name__)
    ordered = {k: env[k] for k in HEADER if k in env}
    for k, value in env.items():
        if k not in ordered:
            if not isinstance(k, str):
                raise TypeError("envelope keys are strings, not %r" % (k,))
            ordered[k] = value
    try:
        return msgpack.packb(ordered, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as e:
        raise TypeError("cannot encode envelope %s: %s" % (_name(env), e)) from e


def _unpacker(data: bytes) -> msgpack.Unpacker:
    if len(data) > MAX_MESSAGE:
        raise BadMessage("envelope of %d bytes exceeds the %d byte limit"
                         % (len(data), MAX_MESSAGE))
    u = msgpack.Unpacker(raw=False, strict_map_key=True, max_buffer_size=MAX_MESSAGE)
    u.feed(data)
    return u


def unpack(data: bytes) -> dict:
    """Decode an envelope; raise ProtocolMismatch for another major ``v`` (before the body)."""
    try:
        u = _unpacker(data)
        n = u.read_map_header()
        env: dict = {}
        for _ in range(n):
            key = u.unpack()
            if not isinstance(key, str):
                raise BadMessage("envelope key %r is not a string" % (key,))
            env[key] = u.unpack()
            if key == "v":
                _check_version(env["v"])
        leftover = u.tell() != len(data)
    except (ProtocolMismatch, BadMessage):
        raise
    except Exception as e:          # msgpack raises a zoo of exceptions for bad input
        raise BadMessage("undecodable envelope: %s" % e) from e
    if leftover:
        raise BadMessage("trailing bytes after the envelope")
    if "v" not in env:
        raise BadMessage("envelope without a version")
    if env.get("kind") not in KINDS:
        raise BadMessage("envelope of unknown kind %r" % (env.get("kind"),))
    return env


def peek_header(data: bytes) -> dict:
    """The header fields of an envelope, skipping its body, whatever its version.

    Used to answer a request from a peer that speaks another protocol (its id is needed).
    Returns {} when the bytes are not a msgpack map.
    """
    try:
        u = _unpacker(data)
        n = u.read_map_header()
        out = {}
        for _ in range(n):
            key = u.unpack()
            if key in HEADER:
                out[key] = u.unpack()
            else:
                u.skip()
        return out
    except Exception:
        return {}


def _check_version(v) -> None:
    if v != PROTOCOL:
        raise ProtocolMismatch(PROTOCOL, v)


def _name(env: dict) -> str:
    return str(env.get("topic") or env.get("method") or "?")


# --- builders ---------------------------------------------------------------------------------

def make_event(src: str, topic: str, seq: int, data: dict, ts: float | None = None) -> dict:
    return {"v": PROTOCOL, "kind": "event", "src": src, "topic": topic, "ts": _ts(ts),
            "seq": seq, "data": data}


def make_request(src: str, method: str, id: str, params: dict | None, seq: int = 0,
                 ts: float | None = None, v: int = PROTOCOL) -> dict:
    return {"v": v, "kind": "request", "src": src, "method": method, "id": id, "ts": _ts(ts),
            "seq": seq, "params": params or {}}


def make_reply(src: str, request: dict, result=None, error: tuple[str, str] | None = None,
               ts: float | None = None) -> dict:
    """The reply to ``request`` (a dict holding at least its ``id`` and ``method``)."""
    env = {"v": PROTOCOL, "kind": "reply", "src": src, "method": request.get("method"),
           "id": request.get("id"), "ts": _ts(ts), "seq": 0, "ok": error is None}
    if error is None:
        env["result"] = result
    else:
        env["error"] = {"code": str(error[0]), "message": str(error[1])}
    return env


def _ts(ts: float | None) -> float:
    return float(time.time() if ts is None else ts)


# --- start-up self test -------------------------------------------------------------------------

def _selftest() -> None:
    sample = make_event("selftest", "tic.1.frame", 7, {
        "input": 1, "mode": "historic", "ratio": 0.5, "ok": True, "none": None,
        "groups": [["ADCO", "021528603314", None, True], ["PAPP", "00750", None, True]],
        "text": "compteur détecté", "blob": b"\x00\xff", "nested": {"a": [1, -2, 3.25]}},
        ts=1700000000.125)
    back = unpack(pack(sample))
    if back != sample or list(back)[:2] != ["v", "kind"]:
        raise RuntimeError("bus codec self-test failed: %r != %r" % (back, sample))


_selftest()
