"""The front panel of the gateway: its LEDs and its INSTALL button (manual sections 11 and 12),
hosted by the acquisition service, which owns the TIC inputs.

- ACTIVITY shows the whole gateway, from every service's ``activity`` machine (this one's, and
  the others' through :class:`Peers`): *Allumée* (on) while a service starts, *Clignote
  rapidement* (fast) while one initialises, is in fault or does not answer, *Clignote lentement*
  (slow) when all are operational, off while the gateway restarts.
- TIC1..TIC3 show the inputs: fast while detecting, on when a meter is read, off otherwise;
  ``flicker`` while frames arrive (*Bagote*), with a ``pulse`` event per valid frame.

The LEDs are published as one state, ``gateway.leds``, on every change and with each pulse, so a
web page or a driver of real LEDs follows one topic.

The INSTALL button: a short press (about 1 s) starts a connection that also deposits the
parameters file; a long press (about 10 s) restarts the gateway.
"""
from __future__ import annotations

import logging

from services.runtime import Peers
from statecharts import tic_input as tic_chart
from ticgw import registry
from ticgw.config import N_INPUTS

log = logging.getLogger("acquisition.panel")


def activity_led(states: list) -> str:
    """ACTIVITY from the activity states of every service (None: not answering)."""
    if any(s == "stopping" for s in states):
        return "off"
    if any(s in (None, "initialising", "fault") for s in states):
        return "fast"
    if any(s == "starting" for s in states):
        return "on"
    return "slow"


class FrontPanel:
    def __init__(self, service, inputs: dict):
        self.svc = service
        self.inputs = inputs
        self.peers = Peers(service, [n for n in registry.names() if n != service.name],
                           on_change=lambda *_: self.update())
        self.leds: dict[str, str] = {}
        self.dark = False                      # the gateway is restarting

    def start(self) -> None:
        self.peers.start()
        self.update()

    def compute(self) -> dict[str, str]:
        if self.dark:
            return {name: "off" for name in self.leds or self._names()}
        states = [self.svc.activity] + [self.peers.activity(n) for n in self.peers.names]
        leds = {"ACTIVITY": activity_led(states)}
        for n in self._inputs():
            inp = self.inputs.get(n)
            leds["TIC%d" % n] = tic_chart.LED.get(inp.state, "off") if inp else "off"
        return leds

    def _inputs(self) -> list[int]:
        return sorted(set(range(1, N_INPUTS + 1)) | set(self.inputs))

    def _names(self) -> list[str]:
        return ["ACTIVITY"] + ["TIC%d" % n for n in self._inputs()]

    def update(self) -> None:
        leds = self.compute()
        if leds != self.leds:
            self.leds = leds
            self.svc.publish("gateway.leds", leds=leds)

    def pulse(self, index: int) -> None:
        """One valid frame on input ``index``: its LED blinks once."""
        self.svc.publish("gateway.leds", leds=self.leds, pulse="TIC%d" % index)

    def all_off(self) -> None:
        self.dark = True
        self.update()
