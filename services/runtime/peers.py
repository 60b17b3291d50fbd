"""What the other services' machines are in, kept up to date, for a service that shows them.

Late joiners never rely on having seen an event (DESIGN 3): subscribe to ``<peer>.state`` first,
then ask each peer ``status`` (its reply holds every machine's state); after that, follow the
events. When a sequence gap shows that events were missed, or a peer restarted, or a peer has not
answered yet, ask again (every ``refresh`` seconds until it answers).
"""
from __future__ import annotations

import logging

log = logging.getLogger("runtime.peers")


class Peers:
    def __init__(self, service, names, on_change=None, refresh: float = 2.0):
        self.service = service
        self.names = tuple(names)
        self.on_change = on_change          # (peer, machine, state) on the loop
        self.refresh = refresh
        self.states: dict[str, dict[str, str]] = {n: {} for n in self.names}
        self.answered: set[str] = set()
        self._seq: dict[str, int] = {}
        self._asking: set[str] = set()
        for n in self.names:
            service.follow("%s.state" % n, self._on_state)

    def start(self) -> None:
        """Ask every peer once now, then again every ``refresh`` s while it stays silent."""
        for n in self.names:
            self.ask(n)
        self.service.loop.call_every(self.refresh, self._ask_silent)

    def activity(self, peer: str) -> str | None:
        """The peer's activity state, None while unknown."""
        return self.states.get(peer, {}).get("activity")

    def ask(self, peer: str) -> None:
        if peer in self._asking:
            return
        self._asking.add(peer)
        self.service.call(peer, "status", on_reply=lambda r, p=peer: self._on_status(p, r),
                          timeout=max(1.0, self.refresh))

    def _ask_silent(self) -> None:
        for n in self.names:
            if n not in self.answered:
                self.ask(n)

    def _on_status(self, peer: str, reply) -> None:
        self._asking.discard(peer)
        if isinstance(reply, Exception):
            if peer in self.answered:
                log.info("%s does not answer (%s)", peer, reply)
            self.answered.discard(peer)
            self._set(peer, "activity", None)
            return
        self.answered.add(peer)
        for machine, state in (reply.get("machines") or {}).items():
            self._set(peer, machine, state)

    def _on_state(self, topic: str, env: dict) -> None:
        peer = env.get("src")
        if peer not in self.states:
            return
        data = env.get("data") or {}
        seq = env.get("seq")
        last = self._seq.get(peer)
        self._seq[peer] = seq if isinstance(seq, int) else 0
        if isinstance(seq, int) and last is not None and (seq > last + 1 or seq < last):
            self.ask(peer)                  # missed events, or the peer restarted
        self._set(peer, data.get("machine"), data.get("state"))

    def _set(self, peer: str, machine, state) -> None:
        if not machine:
            return
        states = self.states.setdefault(peer, {})
        if states.get(machine) == state:
            return
        if state is None:
            states.pop(machine, None)
        else:
            states[machine] = state
        if self.on_change is not None:
            self.on_change(peer, machine, state)
