"""Every message of the bus, declared once, with its fields (DESIGN.md section 3).

This module holds the declaration machinery and the messages every service shares: its machines'
states, its status, journal rows, configuration changes, tasks, alarms, and the commands every
service answers. A service's own topics and commands are declared in its entry of the service
registry (``ticgw/registry.py``), which hands them to :func:`declare` when it is imported; the bus
itself knows no service by name.

Senders build events with :func:`event` (which checks the field names), receivers and ``ticgw bus
tap`` read them with :func:`lookup_topic` and :func:`describe`. Topic patterns may hold
placeholders: ``<svc>`` (a declared service) and ``<n>`` (a TIC input number), e.g.
``tic.<n>.frame`` matches ``tic.2.frame``. A field's doc says what it holds; every field is
optional unless the topic lists it in ``required``. ``open`` topics (``<svc>.status``) accept any
field: their content is the service's own snapshot.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field

from . import envelope


@dataclass(frozen=True)
class Topic:
    pattern: str
    doc: str
    fields: dict
    src: tuple = ()
    required: tuple = ()
    open: bool = False


@dataclass(frozen=True)
class Command:
    service: str                 # "*" for the commands every service answers
    method: str
    doc: str
    params: dict = field(default_factory=dict)
    result: dict = field(default_factory=dict)


def topic(pattern, doc, fields, src=(), required=(), open=False) -> Topic:
    """A topic declaration (``src``: who publishes it, ``()`` for any service)."""
    return Topic(pattern, doc, dict(fields), tuple(src), tuple(required), open)


_t = topic

#: Services declared so far (their names match ``<svc>``), in declaration order.
SERVICES: list[str] = []

TOPICS: dict[str, Topic] = {t.pattern: t for t in (
    _t("<svc>.state", "a state machine of the service changed state (or was re-published)",
       {"machine": "machine name: activity, tic_input.1, modem, connection...",
        "state": "state entered", "previous": "state left (None when re-published)",
        "trigger": "trigger that fired ('republish' when re-published)",
        "error": "the exception that sent the machine to its fault path, if it did"},
       required=("machine", "state")),
    _t("<svc>.status", "periodic snapshot of what the service's supervision page shows",
       {"service": "service name", "activity": "gateway-activity state",
        "led": "ACTIVITY LED pattern", "pid": "process id", "uptime": "seconds since start",
        "version": "ticgw version", "protocol": "bus protocol major"},
       open=True),
    _t("alarm.raised", "an alarm was raised (and is on disk)",
       {"code": "alarm code", "source": "TIC1..3, GATEWAY, MODEM...", "detail": "value or text",
        "seq": "record sequence number in the spool"}, required=("code",)),
    _t("alarm.cleared", "an alarm was cleared (and is on disk)",
       {"code": "alarm code", "source": "TIC1..3, GATEWAY, MODEM...", "detail": "value or text",
        "seq": "record sequence number in the spool"}, required=("code",)),
    _t("journal", "a row of the manual's Connexion table, verbatim (already in the journal file)",
       {"time": "epoch seconds (shown as GMT)", "message": "the row's text (French)"},
       required=("message",)),
    _t("config.changed", "configuration files were written",
       {"files": "file names written", "by": "who wrote them (web, server, command, detection)"},
       required=("files",)),
    _t("task.started", "a task began (Détection, Connexion, Mise à jour)",
       {"task": "task name", "reason": "why it started (button, schedule, alarm, command, boot)"},
       required=("task",)),
    _t("task.ended", "a task ended",
       {"task": "task name", "outcome": "ok, failed, nothing...", "detail": "why, if not ok"},
       required=("task",)),
)}

_COMMON = (
    Command("*", "status", "the service's status snapshot; also re-publishes its machines' "
            "states as <svc>.state", {}, {"*": "the same fields as <svc>.status"}),
    Command("*", "restart", "reply, stop cleanly, then re-execute the process (os.execv)",
            {}, {"restarting": "true"}),
    Command("*", "reboot", "restart the whole gateway: every service, in the registry's order, "
            "this one last (the manual's Redémarrer)", {"reason": "who asks"},
            {"restarting": "service names asked to restart"}),
    Command("*", "ping", "liveness and version check", {},
            {"pong": "true", "service": "service name", "pid": "process id",
             "version": "ticgw version", "protocol": "bus protocol major"}),
)

COMMANDS: dict[str, dict[str, Command]] = {"*": {c.method: c for c in _COMMON}}


def declare(service: str, commands=(), topics=()) -> None:
    """Declare a service, its own commands and the topics it publishes (the registry does)."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", service):
        raise ValueError("service name %r: lower-case letters, digits and '_'" % service)
    if service not in SERVICES:
        SERVICES.append(service)
    for c in commands:
        if c.service != service:
            raise ValueError("command %s.%s declared under %s" % (c.service, c.method, service))
        COMMANDS.setdefault(service, {})[c.method] = c
    for t in topics:
        old = TOPICS.get(t.pattern)
        if old is not None and old != t:
            raise ValueError("topic %s declared twice, differently" % t.pattern)
        TOPICS[t.pattern] = t
    _recompile()


# --- lookups ------------------------------------------------------------------------------------

def _regex(pattern: str) -> re.Pattern:
    parts = []
    for piece in re.split(r"(<svc>|<n>)", pattern):
        if piece == "<svc>":
            parts.append("(?:%s)" % "|".join(map(re.escape, SERVICES)) if SERVICES else "(?!)")
        elif piece == "<n>":
            parts.append(r"[0-9]+")
        else:
            parts.append(re.escape(piece))
    return re.compile("".join(parts) + r"\Z")


_MATCHERS: list = []


def _recompile() -> None:
    _MATCHERS[:] = [(_regex(p), t) for p, t in TOPICS.items()]


_recompile()


def lookup_topic(topic: str) -> Topic:
    """The declaration of a concrete topic (``tic.2.frame`` -> ``tic.<n>.frame``)."""
    t = TOPICS.get(topic)
    if t is not None:
        return t
    for rx, t in _MATCHERS:
        if rx.match(topic):
            return t
    raise ValueError("undeclared topic %r (declare it in the service's registry entry, "
                     "ticgw/registry.py)" % topic)


def lookup_command(service: str, method: str) -> Command:
    c = COMMANDS.get(service, {}).get(method) or COMMANDS["*"].get(method)
    if c is None:
        raise ValueError("undeclared command %s.%s (declare it in the service's registry entry, "
                         "ticgw/registry.py)" % (service, method))
    return c


def commands_of(service: str) -> dict[str, Command]:
    """Every command ``service`` answers (the common ones included)."""
    return {**COMMANDS["*"], **COMMANDS.get(service, {})}


def check_data(topic: str, data: dict) -> Topic:
    """Raise ValueError if ``data`` does not fit the declaration of ``topic``."""
    t = lookup_topic(topic)
    if not t.open:
        unknown = sorted(set(data) - set(t.fields))
        if unknown:
            raise ValueError("topic %r has no field %s (declared: %s)"
                             % (topic, ", ".join(unknown), ", ".join(t.fields)))
    missing = [f for f in t.required if f not in data]
    if missing:
        raise ValueError("topic %r needs field %s" % (topic, ", ".join(missing)))
    return t


def event(topic: str, src: str, seq: int, ts: float | None = None, /, **data) -> dict:
    """A checked event envelope (unknown topic or field -> ValueError).

    The arguments before ``**data`` are positional-only, so a data field may be named ``seq``.
    """
    check_data(topic, data)
    return envelope.make_event(src, topic, seq, data, ts=ts)


def sample_data(t: Topic) -> dict:
    """A plausible value for every field of ``t`` (codec tests, docs)."""
    return {name: "x" for name in t.fields}


def concrete(pattern: str, service: str | None = None) -> str:
    """An example topic for a pattern (``tic.<n>.frame`` -> ``tic.1.frame``)."""
    svc = service or (SERVICES[0] if SERVICES else "svc")
    return pattern.replace("<n>", "1").replace("<svc>", svc)


# --- rendering for people -------------------------------------------------------------------------

def _show(value) -> str:
    if isinstance(value, (list, tuple)):
        return str(len(value))
    if isinstance(value, dict):
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=repr)
        return text if len(text) <= 80 else text[:77] + "..."
    if isinstance(value, float):
        return "%.3f" % value if abs(value) < 1e6 else "%.1f" % value
    if isinstance(value, bytes):
        return "<%d bytes>" % len(value)
    text = "None" if value is None else str(value)
    if not text or any(c.isspace() for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


def _clock(ts) -> str:
    try:
        t = float(ts)
    except (TypeError, ValueError):
        return "--:--:--.---"
    return time.strftime("%H:%M:%S", time.localtime(t)) + ".%03d" % int((t % 1) * 1000)


def describe(env: dict) -> str:
    """One readable line: ``12:03:04.512 acquisition tic.1.frame #1234 mode=historic groups=11``.

    Lists are shown by their length, dicts as short JSON.
    """
    head = "%s %s" % (_clock(env.get("ts")), env.get("src", "?"))
    kind = env.get("kind")
    if kind == "event":
        body = env.get("data") or {}
        head += " %s #%s" % (env.get("topic"), env.get("seq"))
    elif kind == "request":
        body = env.get("params") or {}
        head += " -> %s() id=%s" % (env.get("method"), env.get("id"))
    elif kind == "reply":
        head += " <- %s() id=%s" % (env.get("method"), env.get("id"))
        if env.get("ok"):
            body = env.get("result")
            body = body if isinstance(body, dict) else {"result": body}
        else:
            err = env.get("error") or {}
            body = {"error": err.get("code"), "message": err.get("message")}
    else:
        body = {}
    parts = ["%s=%s" % (k, _show(v)) for k, v in body.items()]
    return " ".join([head] + parts)
