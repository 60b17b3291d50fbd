"""One loop per process: it owns every socket and every timer.

The poll timeout is the time to the next timer's deadline (on ``time.monotonic()`` or an
injected clock). Worker threads never touch the loop's sockets: they report back with
:meth:`Loop.post`, which is safe from any thread and from signal handlers (a lock-free deque and
one byte written to a socketpair that the loop polls). ``run_once()`` lets tests step the loop.
An exception in a callback is logged with its traceback and the loop goes on.
"""
from __future__ import annotations

import collections
import heapq
import itertools
import logging
import signal
import socket
import threading
import time

import zmq

log = logging.getLogger("bus.loop")


class Timer:
    """A scheduled call; ``cancel()`` it any time before it runs (from the loop's thread)."""

    __slots__ = ("deadline", "fn", "args", "period", "cancelled")

    def __init__(self, deadline: float, fn, args: tuple, period: float | None = None):
        self.deadline = deadline
        self.fn = fn
        self.args = args
        self.period = period
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __repr__(self) -> str:
        return "<Timer %s at %.3f%s>" % (getattr(self.fn, "__name__", self.fn), self.deadline,
                                         " every %gs" % self.period if self.period else "")


class Loop:
    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._poller = zmq.Poller()
        self._readers: dict = {}           # socket or fd -> callback()
        self._timers: list = []            # heap of (deadline, n, Timer)
        self._count = itertools.count()
        self._posted: collections.deque = collections.deque()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._poller.register(self._wake_r.fileno(), zmq.POLLIN)
        self._stopping = False
        self._closed = False
        self.thread_id: int | None = None  # the thread running the loop, once it runs
        self._signals: dict = {}
        self._old_wakeup_fd = -1

    # --- readers ----------------------------------------------------------------------------

    def add_reader(self, sock, callback) -> None:
        """Call ``callback()`` whenever ``sock`` (a zmq socket or a file descriptor) is readable."""
        if sock in self._readers:
            raise ValueError("%r already has a reader" % (sock,))
        self._readers[sock] = callback
        self._poller.register(sock, zmq.POLLIN)

    def remove_reader(self, sock) -> None:
        if self._readers.pop(sock, None) is not None:
            self._poller.unregister(sock)

    # --- timers ----------------------------------------------------------------------------------

    def call_later(self, delay: float, fn, *args) -> Timer:
        if not callable(fn):
            raise TypeError("call_later() needs a callable, got %r" % (fn,))
        t = Timer(self.clock() + max(0.0, delay), fn, args)
        heapq.heappush(self._timers, (t.deadline, next(self._count), t))
        return t

    def call_every(self, period: float, fn, *args, first: float | None = None) -> Timer:
        """Call ``fn(*args)`` every ``period`` seconds (first after ``first``, default period)."""
        if period <= 0:
            raise ValueError("period must be positive")
        t = Timer(self.clock() + (period if first is None else max(0.0, first)), fn, args, period)
        heapq.heappush(self._timers, (t.deadline, next(self._count), t))
        return t

    def next_deadline(self) -> float | None:
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    # --- cross-thread -----------------------------------------------------------------------------

    def post(self, fn, *args) -> None:
        """Run ``fn(*args)`` on the loop soon. Safe from any thread and from signal handlers."""
        if not callable(fn):
            raise TypeError("post() needs a callable, got %r" % (fn,))
        self._posted.append((fn, args))
        self._wake()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, InterruptedError):
            pass                     # the pipe is full: the loop is already awake
        except OSError:
            pass                     # closed during shutdown

    def run_in_thread(self, fn, *args, on_done=None, name: str | None = None) -> threading.Thread:
        """Run blocking ``fn(*args)`` in a daemon thread; post ``on_done(result_or_exception)``."""
        def work():
            try:
                outcome = fn(*args)
            except BaseException as e:          # reported to on_done, not raised in the thread
                outcome = e
                if on_done is None:
                    log.error("worker %s failed", name or getattr(fn, "__name__", fn),
                              exc_info=e)
            if on_done is not None:
                self.post(on_done, outcome)

        th = threading.Thread(target=work, name=name or "worker-%s" % getattr(fn, "__name__", "fn"),
                              daemon=True)
        th.start()
        return th

    def add_signal_handler(self, signum: int, fn, *args) -> None:
        """On signal ``signum``, post ``fn(*args)`` to the loop (the handler does nothing else)."""
        def handler(_signum, _frame):
            self.post(fn, *args)
        if not self._signals:
            # A signal may land on any thread (libzmq's I/O threads too); the C-level handler
            # then writes to this fd, which wakes the poll, so the Python handler runs at once.
            self._old_wakeup_fd = signal.set_wakeup_fd(self._wake_w.fileno(),
                                                       warn_on_full_buffer=False)
        self._signals[signum] = signal.signal(signum, handler)

    def restore_signals(self) -> None:
        if not self._signals:
            return
        for signum, previous in self._signals.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._signals.clear()
        signal.set_wakeup_fd(self._old_wakeup_fd)

    # --- running ---------------------------------------------------------------------------------

    def run_once(self, timeout: float | None = None) -> int:
        """Wait for the next event (at most ``timeout`` s, or the next timer's deadline) and run
        what is due. Returns the number of callbacks run."""
        wait = timeout
        deadline = self.next_deadline()
        if self._posted:
            wait = 0.0
        elif deadline is not None:
            until = max(0.0, deadline - self.clock())
            wait = until if wait is None else min(wait, until)
        ms = None if wait is None else int(wait * 1000 + (0.999 if wait > 0 else 0))
        events = self._poller.poll(ms)
        ran = 0
        for sock, _ in events:
            if sock == self._wake_r.fileno():
                self._drain_wake()
                continue
            cb = self._readers.get(sock)
            if cb is not None:
                ran += self._call(cb, ())
        while self._posted:
            try:
                fn, args = self._posted.popleft()
            except IndexError:
                break
            ran += self._call(fn, args)
        now = self.clock()
        while self._timers and self._timers[0][0] <= now:
            _, _, t = heapq.heappop(self._timers)
            if t.cancelled:
                continue
            if t.period is not None:
                t.deadline += t.period
                if t.deadline <= now:                       # fell behind: skip, do not burst
                    t.deadline = now + t.period
                heapq.heappush(self._timers, (t.deadline, next(self._count), t))
            ran += self._call(t.fn, t.args)
        return ran

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _call(self, fn, args) -> int:
        try:
            fn(*args)
        except Exception:
            log.exception("callback %s failed", getattr(fn, "__qualname__", fn))
        return 1

    def run_forever(self) -> None:
        self.thread_id = threading.get_ident()
        self._stopping = False
        while not self._stopping:
            self.run_once()

    def stop(self) -> None:
        """Make ``run_forever`` return after the current iteration (safe from any thread)."""
        self._stopping = True
        self._wake()

    @property
    def stopping(self) -> bool:
        return self._stopping

    def close(self) -> None:
        """Forget readers and timers and close the wake-up pair (sockets belong to their owners)."""
        if self._closed:
            return
        self._closed = True
        self.restore_signals()
        for sock in list(self._readers):
            self.remove_reader(sock)
        self._timers.clear()
        self._poller.unregister(self._wake_r.fileno())
        self._wake_r.close()
        self._wake_w.close()
