"""Capped exponential backoff with jitter: the delay before the next try, for loop timers."""
from __future__ import annotations

import random


class Backoff:
    """``next()`` gives base, base*factor, ... up to ``cap`` seconds, each moved by up to
    ``jitter`` (a fraction) so that many gateways do not retry in step; ``reset()`` after a
    success."""

    def __init__(self, base: float = 1.0, cap: float = 60.0, factor: float = 2.0,
                 jitter: float = 0.1, rng=random.random):
        self.base = base
        self.cap = cap
        self.factor = factor
        self.jitter = jitter
        self.rng = rng
        self.attempts = 0

    def peek(self) -> float:
        return min(self.cap, self.base * self.factor ** self.attempts)

    def next(self) -> float:
        delay = self.peek()
        self.attempts += 1
        if self.jitter:
            delay *= 1.0 + self.jitter * (2.0 * self.rng() - 1.0)
        return max(0.0, delay)

    def reset(self) -> None:
        self.attempts = 0
