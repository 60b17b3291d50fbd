"""Workers: long-lived threads that do the blocking work of a service (a serial line, an FTP
session, HTTP calls, disk writes), one job at a time, in order, and report back on the loop.

A job is ``fn(job, *args)``; it may call ``job.report(callback, *args)`` as often as it likes
(a frame read, a line error) and its return value (or exception) goes to ``on_done(outcome)``.
Every report and outcome runs on the service's loop, never in the worker, and is dropped when the
job was cancelled meanwhile, so a late answer can never be taken for the current one. Jobs
that block check ``job.cancelled`` or register ``job.on_cancel(hook)`` (close the socket, cancel
the read): ``cancel()`` calls the hooks from the loop's thread.
"""
from __future__ import annotations

import collections
import itertools
import logging
import threading

log = logging.getLogger("runtime.worker")

_ids = itertools.count(1)


class Cancelled(Exception):
    """Raised by a job that noticed it was cancelled (its outcome is dropped anyway)."""


class Job:
    __slots__ = ("id", "fn", "args", "on_done", "worker", "_cancel", "_hooks", "_lock", "name")

    def __init__(self, worker: "Worker", fn, args: tuple, on_done, name: str):
        self.id = next(_ids)
        self.fn = fn
        self.args = args
        self.on_done = on_done
        self.worker = worker
        self.name = name
        self._cancel = threading.Event()
        self._hooks: list = []
        self._lock = threading.Lock()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True if the job was cancelled meanwhile."""
        return self._cancel.wait(seconds)

    def check(self) -> None:
        """Raise :class:`Cancelled` if the job was cancelled."""
        if self._cancel.is_set():
            raise Cancelled(self.name)

    def on_cancel(self, hook) -> None:
        """Call ``hook()`` (from the cancelling thread) when the job is cancelled."""
        with self._lock:
            if not self._cancel.is_set():
                self._hooks.append(hook)
                return
        _call_hook(hook)

    def cancel(self) -> None:
        with self._lock:
            if self._cancel.is_set():
                return
            self._cancel.set()
            hooks, self._hooks = self._hooks, []
        for hook in hooks:
            _call_hook(hook)

    def report(self, callback, *args) -> None:
        """Run ``callback(*args)`` on the loop, unless the job is cancelled by then."""
        self.worker.loop.post(self._deliver, callback, args)

    def _deliver(self, callback, args) -> None:
        if not self._cancel.is_set():
            callback(*args)

    def __repr__(self) -> str:
        return "<Job %d %s%s>" % (self.id, self.name, " cancelled" if self.cancelled else "")


def _call_hook(hook) -> None:
    try:
        hook()
    except Exception:
        log.debug("cancel hook %r failed", hook, exc_info=True)


class Worker:
    """One thread, an inbox of jobs. ``submit()`` and ``cancel()`` are called from the loop."""

    def __init__(self, loop, name: str):
        self.loop = loop
        self.name = name
        self._inbox: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self._halt = False
        self._halt_when_idle = False
        self.current: Job | None = None
        self.last: Job | None = None        # the last job run (its outcome may be on its way)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn, *args, on_done=None, replace: bool = False, name: str | None = None
               ) -> Job:
        """Queue ``fn(job, *args)``; ``replace`` cancels what runs and what waits first."""
        job = Job(self, fn, args, on_done, name or getattr(fn, "__name__", "job"))
        with self._cond:
            if replace:
                self._cancel_locked()
            self._inbox.append(job)
            self._cond.notify()
        return job

    def cancel(self) -> None:
        """Cancel the running job and drop the waiting ones."""
        with self._cond:
            self._cancel_locked()

    def _cancel_locked(self) -> None:
        for job in self._inbox:
            job.cancel()
        self._inbox.clear()
        if self.current is not None:
            self.current.cancel()
        if self.last is not None:           # its outcome, still on its way to the loop, is
            self.last.cancel()              # stale from now on

    def drain(self, timeout: float = 1.0) -> bool:
        """Let the waiting jobs run (a clean stop flushes what was queued), then end the thread;
        True if all of it ended within ``timeout``."""
        with self._cond:
            self._halt_when_idle = True
            self._cond.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        if self._thread.is_alive():
            return self.stop(0.2) and False
        return True

    def stop(self, timeout: float = 1.0) -> bool:
        """Cancel everything and end the thread; True if it ended within ``timeout``."""
        with self._cond:
            self._halt = True
            self._cancel_locked()
            self._cond.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._inbox and not self._halt and not self._halt_when_idle:
                    self._cond.wait()
                if self._halt or not self._inbox:
                    return
                job = self.current = self._inbox.popleft()
            try:
                outcome = job.fn(job, *job.args)
            except BaseException as e:        # reported to on_done, not raised in the thread
                outcome = e
                if job.on_done is None and not isinstance(e, Cancelled) and not job.cancelled:
                    log.error("%s: job %s failed", self.name, job.name, exc_info=e)
            with self._cond:
                self.current = None
                self.last = job
            if job.on_done is not None:
                job.report(job.on_done, outcome)
