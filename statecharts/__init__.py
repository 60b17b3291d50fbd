"""State machines as data: one module per machine, loaded by the services with `transitions`.

Each chart module defines:

- ``NAME``, ``DOC``, ``INITIAL``;
- ``STATES``: names, or dicts ``{"name", "on_enter", "on_exit"}`` whose callbacks are the
  model's method names (entering a state does that state's work);
- ``TRANSITIONS``: transitions' dict form (guards by name, ``conditions``/``unless``;
  ``before``/``after`` by name; ``"dest": None`` for an internal transition);
- ``TIMEOUTS``: state -> trigger fired when the state has lasted ``model.timeout(state)``
  seconds (a loop timer, armed on entry, cancelled on exit, re-armed by the service);
- ``FAULT``: the trigger the service fires when a callback raises (the fault path); it must be
  allowed from every state (a test checks).

The declaration is the single source of truth: the services build their machines from it, and
`ticgw statecharts` renders it as Mermaid into statecharts/<NAME>.md (a test fails when a
rendering is stale).

Rules taken from transitions' own advice (STYLE.md): auto_transitions=False (no to_X() jumps),
queued=True (a trigger fired inside a callback runs after the current transition), on_exception
routed to the fault path, and an invalid trigger is logged with state and trigger rather than
silently ignored.
"""
from __future__ import annotations

import importlib
import logging
from pathlib import Path
from types import ModuleType

from transitions import Machine, MachineError

log = logging.getLogger("statecharts")

HERE = Path(__file__).parent

#: Transition keys whose values name model callbacks.
_CALLBACK_KEYS = ("prepare", "conditions", "unless", "before", "after")


def charts() -> tuple[str, ...]:
    """Every chart the registered services run (``ticgw.registry``), ``activity`` first."""
    from ticgw import registry
    return registry.charts()


def chart(name: str) -> ModuleType:
    return importlib.import_module("statecharts." + name)


def state_names(c) -> list[str]:
    return [s["name"] if isinstance(s, dict) else s for s in c.STATES]


def timeouts(c) -> dict:
    return dict(getattr(c, "TIMEOUTS", {}))


def callbacks(c) -> list[tuple[str, str]]:
    """Every model callback the chart names, as (where, method name): the fault path must cover
    each of them (a test injects an exception into every one)."""
    out = []
    for s in c.STATES:
        if isinstance(s, dict):
            for key in ("on_enter", "on_exit"):
                names = s.get(key) or []
                for n in ([names] if isinstance(names, str) else names):
                    out.append(("%s %s" % (key, s["name"]), n))
    for t in c.TRANSITIONS:
        for key in _CALLBACK_KEYS:
            names = t.get(key) or []
            for n in ([names] if isinstance(names, str) else names):
                out.append(("%s %s" % (key, t["trigger"]), n))
    seen, unique = set(), []
    for where, n in out:
        if n not in seen:
            seen.add(n)
            unique.append((where, n))
    return unique


def build(name: str, model, on_change=None, on_exception=None) -> Machine:
    """Build the machine `name` on `model`.

    `on_change(previous, state, trigger)` is called after every transition that enters a state
    (reflexive ones included, internal ones not); `on_exception(event)` when a callback raises
    (`event.error`), instead of raising.
    """
    c = chart(name)
    kw = {"on_exception": [on_exception]} if on_exception is not None else {}
    m = Machine(model=model, states=[dict(s) if isinstance(s, dict) else s for s in c.STATES],
                transitions=[dict(t) for t in c.TRANSITIONS], initial=c.INITIAL,
                auto_transitions=False, queued=True, send_event=True, model_attribute="state",
                **kw)
    if on_change is not None:
        def after(event):
            t = event.transition
            if t is not None and t.dest is not None:
                on_change(t.source, t.dest, event.event.name)
        m.after_state_change = [after]
    return m


def fire(model, trigger: str, *args, **kwargs) -> bool:
    """Fire `trigger` on `model`; an invalid one is logged with the state, not raised."""
    try:
        return bool(getattr(model, trigger)(*args, **kwargs))
    except MachineError as e:
        log.warning("invalid trigger %r in state %r: %s", trigger, getattr(model, "state", "?"), e)
        return False


def mermaid(name: str) -> str:
    """The chart rendered as a Markdown page with a Mermaid diagram."""
    from transitions.extensions.diagrams import GraphMachine

    logging.getLogger("transitions.extensions.diagrams").setLevel(logging.WARNING)

    c = chart(name)

    class _Model:
        pass

    gm = GraphMachine(model=_Model(), states=[dict(s) if isinstance(s, dict) else s
                                              for s in c.STATES],
                      transitions=[dict(t) for t in c.TRANSITIONS], initial=c.INITIAL,
                      auto_transitions=False, graph_engine="mermaid", show_conditions=True,
                      title=c.NAME)
    source = gm.get_graph().draw(None)
    facts = []
    work = ["`%s`: %s" % (n, where) for where, n in callbacks(c)]
    if work:
        facts.append("Work (model callbacks): " + "; ".join(work) + ".")
    if timeouts(c):
        facts.append("Timeouts (loop timers, `model.timeout(state)` seconds): " + "; ".join(
            "`%s` fires `%s`" % kv for kv in timeouts(c).items()) + ".")
    if getattr(c, "FAULT", None):
        facts.append("Fault path: an exception in any callback fires `%s`." % c.FAULT)
    return ("# State machine `%s`\n\n%s\n\n%s\n\nGenerated by `ticgw statecharts` from "
            "`statecharts/%s.py`; do not edit.\n\n```mermaid\n%s\n```\n"
            % (c.NAME, c.DOC.strip(), "\n\n".join(facts), name, source.strip()))


def render_all(directory: Path = HERE) -> list[Path]:
    """Write every chart's Markdown; return the paths written."""
    out = []
    for name in charts():
        p = directory / ("%s.md" % name)
        p.write_text(mermaid(name), encoding="utf-8")
        out.append(p)
    return out
