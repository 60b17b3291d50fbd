"""Services driven by the test's own thread on a fake clock, and exceptions injected into
callbacks."""
from __future__ import annotations

import time

from bus.testing import FakeClock


class Driven:
    """A service whose loop the test steps (``loop.run_once``), its clock a :class:`FakeClock`
    that moves only when the test says (``advance``, or ``tick`` fake seconds per step while
    waiting). Commands are called directly: the test's thread is the loop's."""

    def __init__(self, svc, clock: FakeClock):
        self.svc = svc
        self.clock = clock
        svc.begin()

    def step(self, seconds: float = 0.01) -> None:
        self.svc.loop.run_once(seconds)

    def run_until(self, predicate, timeout: float = 30.0, tick: float = 0.0, what: str = ""):
        """Step until ``predicate()`` is true (``timeout`` real seconds), moving the fake clock
        by ``tick`` at each step."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError("not reached within %.0f s: %s" % (
                    timeout, what or getattr(predicate, "__name__", predicate)))
            self.step()
            if tick:
                self.clock.advance(tick)

    def run_for(self, seconds: float) -> None:
        """Step for ``seconds`` real seconds without moving the fake clock."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.step()

    def advance(self, seconds: float) -> None:
        """Move the fake clock and run what fell due."""
        self.clock.advance(seconds)
        self.step(0)
        self.step(0)

    def close(self) -> None:
        self.svc.stop()
        self.svc.finish()


def raise_once(monkeypatch, cls, name: str, message: str = "injected fault"):
    """Make ``cls.name`` raise RuntimeError(message) at its first call, then behave; returns
    the list of calls (to check it was reached)."""
    original = getattr(cls, name)
    calls = []

    def injected(self, *args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise RuntimeError(message)
        return original(self, *args, **kwargs)

    injected.__name__ = name
    monkeypatch.setattr(cls, name, injected)
    return calls
