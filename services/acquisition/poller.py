"""One thread that reads every TIC line having a file descriptor (serial devices, ptys, TCP).

A hundred reader threads each waking per byte cost most of a core (measured: `make bench`,
inputs). Here one thread waits on all the lines at once, reads what each has, and feeds it to
that line's decoder. After a wake in which some line delivered the middle of a frame, it waits
BATCH_WAIT before the next select, so one wake serves every line with bytes pending: the wake
rate no longer grows with the number of lines, and a frame's last byte (ETX) waits at most
BATCH_WAIT before it is decoded.

Lines without a descriptor (pyserial URL handlers such as rfc2217:// or ticsim://) keep a
reading loop in their line's worker (line.py).
"""
from __future__ import annotations

import logging
import os
import selectors
import threading
import time

log = logging.getLogger("acquisition.poller")

BATCH_WAIT = 0.002
_FRAME_ENDS = (0x03, 0x04)


class LinePoller(threading.Thread):
    def __init__(self, batch_wait: float = BATCH_WAIT):
        super().__init__(name="line-poller", daemon=True)
        self.batch_wait = batch_wait
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._ops: list = []
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self.wakes = 0

    # --- from any thread -------------------------------------------------------------------

    def add(self, fd: int, on_data, on_error) -> None:
        """Read `fd` from now on: `on_data(bytes)` and `on_error(exc)` run in the poller thread."""
        self._submit(("add", fd, (on_data, on_error), None))

    def remove(self, fd: int, timeout: float = 2.0) -> None:
        """Stop reading `fd`; returns once the poller no longer touches it."""
        done = threading.Event()
        self._submit(("remove", fd, None, done))
        if threading.current_thread() is not self:
            done.wait(timeout)

    def stop(self) -> None:
        self._halt.set()
        self._poke()

    def _submit(self, op) -> None:
        with self._lock:
            self._ops.append(op)
        self._poke()

    def _poke(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except (BlockingIOError, OSError):
            pass

    # --- the thread ------------------------------------------------------------------------

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                self._apply_ops()
                events = self._sel.select(timeout=1.0)
                self.wakes += 1
                partial = False
                for key, _ in events:
                    if key.data is None:
                        self._drain_wake()
                        continue
                    partial |= self._read(key.fd, key.data)
                if partial:
                    time.sleep(self.batch_wait)
        finally:
            self._sel.close()
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _read(self, fd: int, handlers) -> bool:
        on_data, on_error = handlers
        try:
            data = os.read(fd, 65536)
            if not data:
                raise OSError("end of file on the line")
        except BlockingIOError:
            return False
        except OSError as e:
            self._forget(fd)
            on_error(e)
            return False
        try:
            on_data(data)
        except Exception:
            log.exception("line handler failed")
        return data[-1] not in _FRAME_ENDS

    def _apply_ops(self) -> None:
        with self._lock:
            ops, self._ops = self._ops, []
        for kind, fd, handlers, done in ops:
            if kind == "add":
                self._forget(fd)
                try:
                    self._sel.register(fd, selectors.EVENT_READ, handlers)
                except (OSError, ValueError) as e:
                    handlers[1](e)
            else:
                self._forget(fd)
                done.set()

    def _forget(self, fd: int) -> None:
        try:
            self._sel.unregister(fd)
        except (KeyError, ValueError, OSError):
            pass

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass
