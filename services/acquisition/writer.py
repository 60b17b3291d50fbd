"""The spool's disk work, off the loop, in order, acknowledged once it is on disk.

Records and alarms are numbered on the loop (:meth:`Spool.record`, :meth:`Spool.alarm`) and handed
here; the writer appends everything waiting with one fsync per record file and then, on the loop,
calls each record's ``on_written(rec)``: only then does the service publish ``spool.written`` or
``alarm.raised``, so "reported" always means "on disk". Other spool operations (the start of a
seal, a parameters file) go through :meth:`call` and run after every append queued before them.

When the disk refuses a write, the records stay queued and the write is tried again after a
capped backoff; nothing is reported meanwhile.
"""
from __future__ import annotations

import logging
import threading

from services.runtime import Backoff, Worker

log = logging.getLogger("acquisition.writer")


class SpoolWriter:
    def __init__(self, loop, spool):
        self.loop = loop
        self.spool = spool
        self.worker = Worker(loop, "spool-writer")
        self._lock = threading.Lock()
        self._pending: list = []            # (record, on_written)
        self._flush_queued = False
        self._backoff = Backoff(0.5, 30.0)
        self.error: str | None = None

    def append(self, rec: dict, on_written=None) -> None:
        """Write ``rec`` (a numbered record or alarm); ``on_written(rec)`` on the loop once it is
        on disk."""
        with self._lock:
            self._pending.append((rec, on_written))
            if self._flush_queued:
                return
            self._flush_queued = True
        self.worker.submit(self._flush, name="append")

    def call(self, fn, *args, on_done=None):
        """Run ``fn(*args)`` after the appends queued so far; ``on_done(outcome)`` on the loop."""
        return self.worker.submit(lambda job: fn(*args), on_done=on_done,
                                  name=getattr(fn, "__name__", "spool"))

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def _flush(self, job) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
            self._flush_queued = False
        if not batch:
            return
        try:
            self.spool.append_batch([rec for rec, _ in batch])
        except OSError as e:
            with self._lock:                  # keep them, in order, before any newer ones
                self._pending[:0] = batch
                retry = not self._flush_queued
                self._flush_queued = True
            delay = self._backoff.next()
            job.report(self._failed, "%s: %s" % (type(e).__name__, e), delay, retry)
            return
        self._backoff.reset()
        job.report(self._acknowledge, batch)

    def _failed(self, error: str, delay: float, retry: bool) -> None:
        if self.error != error:
            log.error("records cannot be written (%s); %d waiting, trying again in %.0f s",
                      error, self.pending, delay)
        self.error = error
        if retry:
            self.loop.call_later(delay, self.worker.submit, self._flush)

    def _acknowledge(self, batch) -> None:
        if self.error is not None:
            log.info("records are written again (%d)", len(batch))
            self.error = None
        for rec, on_written in batch:
            if on_written is not None:
                on_written(rec)

    def close(self, timeout: float = 1.0) -> bool:
        """Write what is queued, then end the thread."""
        return self.worker.drain(timeout)
