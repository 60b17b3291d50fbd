"""Latency from a frame's last byte on the line to its ``tic.<n>.frame`` event at a subscriber.

Method: a broker and ``python -m services.acquisition`` run as subprocesses; the configuration
gives input 1 a pty carrying a Linky standard-mode frame (~900 bytes, 9600 bd) and input 2 a pty
carrying a Linky historic frame (~150 bytes, 1200 bd), speed and mode fixed (detection only
listens at that speed). This
process owns the ptys' master sides and writes the frames itself, alternating between the two
inputs; each frame carries its number in a value (EAST or HCHP, 9 digits). A subscriber thread in
this process stamps each event as it is received. Both stamps are ``time.monotonic_ns()``
(CLOCK_MONOTONIC is system-wide on Linux, so stamps from two processes compare).

- ``paced``: the frame's head goes in one write, then its last ``TAIL`` seconds of bytes are
  written at line rate (a byte every 1.04 ms at 9600 bd, 8.3 ms at 1200 bd) as a UART would
  deliver them. The reader's state when the ETX arrives (blocked on the first byte, or inside
  its batching wait) then matches a real line; pacing the whole frame would only take longer.
  The stamp is taken right after the ``os.write`` that carried the ETX returned.
- ``burst``: the whole frame in one write: the floor (decode, loop, publish, broker, subscriber)
  without the reader's batching wait.

Frames are sent after both inputs published ``tic.<n>.detected``; a gap of 30-50 ms separates
a frame's end from the next frame's head.
"""
from __future__ import annotations

import os
import pty
import random
import sys
import termios
import threading
import time
import tty

import zmq

from bus import endpoints as eps
from bus.client import Subscriber
from bus.testing import child_env, short_run_dir, wait_for
from sim.gateway import configure
from tic.codec import HISTORIC, STANDARD, encode_frame

from . import codec as codec_bench
from .acq_runner import Processes, machine, percentile

N_PACED = 150          # per input: 300 paced frames in all
N_BURST = 40           # per input
TAIL = 0.1             # seconds of each paced frame written at line rate
GAP = (0.03, 0.05)     # seconds between a frame's end and the next frame
GRACE = 1.0            # seconds allowed for the last events after the last frame
INPUTS = {1: ("standard", STANDARD, 9600), 2: ("historic", HISTORIC, 1200)}


def standard_frame(seq: int) -> bytes:
    """The codec benchmark's Linky standard frame, numbered by `seq` in EAST."""
    return codec_bench.standard_frame(seq, 12000000 + seq, east_value=seq)


def historic_frame(seq: int) -> bytes:
    return encode_frame([
        ("ADCO", "031575769152"), ("OPTARIF", "HC.."), ("ISOUSC", "45"),
        ("HCHC", "%09d" % (723392 + seq)), ("HCHP", "%09d" % seq), ("PTEC", "HP.."),
        ("IINST", "%03d" % (seq % 40)), ("IMAX", "090"), ("PAPP", "%05d" % (seq % 9000)),
        ("HHPHC", "A"), ("MOTDETAT", "000000")], HISTORIC)


SEQ_LABEL = {1: "EAST", 2: "HCHP"}
MAKE = {1: standard_frame, 2: historic_frame}


class PtyLine:
    """The master side of a pty whose slave (kept open, linked at ``link``) the service opens.

    The slave is set up as ``sim.pty_meter`` does: raw, 7E1 at the line's speed, CLOCAL off
    (so pyserial's configuration of the port is a real change; see that module's doc)."""

    def __init__(self, link: str, baud: int):
        self.master, self.slave = pty.openpty()
        tty.setraw(self.slave)
        attrs = termios.tcgetattr(self.slave)
        attrs[2] = (attrs[2] & ~(termios.CSIZE | termios.PARODD | termios.CSTOPB
                                 | termios.CLOCAL)) | termios.CS7 | termios.PARENB | termios.CREAD
        attrs[4] = attrs[5] = getattr(termios, "B%d" % baud)
        termios.tcsetattr(self.slave, termios.TCSANOW, attrs)
        os.set_blocking(self.master, False)
        os.symlink(os.ttyname(self.slave), link)
        self.rate = baud / 10.0           # 7E1: 10 bits per character
        self.short_writes = 0

    def write(self, data: bytes) -> bool:
        """Write without blocking; False when the slave's queue was full (nobody reading)."""
        try:
            n = os.write(self.master, data)
        except BlockingIOError:
            n = 0
        if n < len(data):
            self.short_writes += 1
        return n == len(data)

    def send_paced(self, frame: bytes, tail: float) -> tuple[bool, int]:
        """Head at once, then the last ``tail`` seconds of bytes at line rate. Returns (whole,
        monotonic_ns right after the write carrying the last byte)."""
        head = max(0, len(frame) - int(tail * self.rate))
        ok = self.write(frame[:head]) if head else True
        t0 = time.monotonic()
        pos = head
        while pos < len(frame):
            due = head + int((time.monotonic() - t0) * self.rate)
            if due > pos:
                end = min(due, len(frame))
                ok = self.write(frame[pos:end]) and ok
                pos = end
                if pos == len(frame):
                    break
            time.sleep(max(0.0, t0 + (pos + 1 - head) / self.rate - time.monotonic()))
        return ok, time.monotonic_ns()

    def send_burst(self, frame: bytes) -> tuple[bool, int]:
        ok = self.write(frame)
        return ok, time.monotonic_ns()

    def close(self) -> None:
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


class Receiver:
    """Subscriber thread: receive stamp of each frame event, by (input, number)."""

    def __init__(self, run_dir):
        self.ctx = zmq.Context()
        self.sub = Subscriber(self.ctx, eps.resolve(run_dir).xpub, ("tic.",))
        self.detected: set[int] = set()
        self.stamps: dict[tuple[int, int], int] = {}
        self.bad = 0
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="receiver")
        self._thread.start()

    def _run(self) -> None:
        while not self._halt.is_set():
            got = self.sub.recv(timeout=0.1)
            if got is None:
                continue
            t = time.monotonic_ns()
            topic, env = got
            _, n, kind = topic.split(".", 2)
            n = int(n)
            if kind == "detected":
                self.detected.add(n)
            elif kind == "frame" and n in SEQ_LABEL:
                data = env["data"]
                if not (data["complete"] and all(g[3] for g in data["groups"])):
                    self.bad += 1
                    continue
                seq = next((int(g[1]) for g in data["groups"] if g[0] == SEQ_LABEL[n]), None)
                if seq is not None:
                    self.stamps[(n, seq)] = t

    def close(self) -> None:
        self._halt.set()
        self._thread.join(2)
        self.sub.close()
        self.ctx.term()


def run() -> dict:
    results: dict = {}
    with Processes() as ps:
        run_dir = short_run_dir(ps.tmp)
        if run_dir.parent != ps.tmp:
            ps.dirs.append(run_dir)
        data = ps.tmp / "data"
        lines = {}
        receiver = None
        try:
            for n, (_name, _mode, baud) in INPUTS.items():
                lines[n] = PtyLine(str(ps.tmp / ("tty%d" % n)), baud)
            keys = {}
            for n, (name, _mode, baud) in INPUTS.items():
                keys.update({"TIC_Baud[%d]" % n: baud, "TIC_Mode[%d]" % n: name})
            configure(data, {n: str(ps.tmp / ("tty%d" % n)) for n in INPUTS}, **keys)
            ps.start("broker", ["python", "-m", "bus.broker"], env=child_env(run_dir),
                     ready="bus broker:")
            receiver = Receiver(run_dir)
            ps.start("acquisition", ["python", "-m", "services.acquisition"],
                           env=child_env(run_dir, TICGW_DATA=data, TICGW_LOG_LEVEL="WARNING"))
            # detection needs two whole frames per input: send whole frames until it is done
            seq = 0
            deadline = time.monotonic() + 30.0
            while receiver.detected != set(INPUTS):
                ps.check_alive()
                if time.monotonic() > deadline:
                    raise RuntimeError("inputs not detected within 30 s: %s"
                                       % sorted(set(INPUTS) - receiver.detected))
                for n, line in lines.items():
                    seq += 1
                    line.send_burst(MAKE[n](seq))
                time.sleep(0.25)
            time.sleep(0.5)            # the detection's definition files are written
            sent: dict[str, list] = {"paced": [], "burst": []}
            rng = random.Random(3)
            for kind, count in (("paced", N_PACED), ("burst", N_BURST)):
                for _ in range(count):
                    for n, line in lines.items():
                        seq += 1
                        frame = MAKE[n](seq)
                        ok, t = line.send_paced(frame, TAIL) if kind == "paced" \
                            else line.send_burst(frame)
                        if ok:
                            sent[kind].append((n, seq, t))
                        time.sleep(rng.uniform(*GAP))
            try:
                wait_for(lambda: all((n, s) in receiver.stamps for k in sent.values()
                                     for n, s, *_ in k), GRACE, interval=0.05)
            except AssertionError:
                pass                        # some frames never arrived: counted below
        finally:
            if receiver is not None:
                receiver.close()
            for line in lines.values():
                line.close()
        for kind, items in sent.items():
            for n in INPUTS:
                lat = sorted((receiver.stamps[(i, s)] - t) / 1e6 for i, s, t in items
                             if i == n and (i, s) in receiver.stamps)
                results[(kind, n)] = (sum(1 for i, _, _ in items if i == n), lat)
            lat = sorted((receiver.stamps[(i, s)] - t) / 1e6 for i, s, t in items
                         if (i, s) in receiver.stamps)
            results[(kind, 0)] = (len(items), lat)
        results["bad"] = receiver.bad
    return results


def main() -> None:
    print("== latency: last byte written to a pty -> tic.<n>.frame event at a bus subscriber ==")
    for line in machine():
        print(line)
    print("broker + python -m services.acquisition as subprocesses; frames written by this "
          "process on ptys (input 1: Linky standard 9600 bd, input 2: Linky historic 1200 bd), "
          "alternating; paced = last %.0f ms of each frame at line rate, burst = whole frame in "
          "one write; CLOCK_MONOTONIC stamps after the write / at receive" % (TAIL * 1000))
    results = run()
    print("%-7s %-22s %6s %6s %8s %8s %8s %8s" % ("writes", "frames", "sent", "got", "p50 ms",
                                                   "p90 ms", "p99 ms", "max ms"))
    for kind in ("paced", "burst"):
        for n in (1, 2, 0):
            count, lat = results[(kind, n)]
            label = "all" if n == 0 else "%d: %s %d bd" % (n, INPUTS[n][0], INPUTS[n][2])
            print("%-7s %-22s %6d %6d %8.2f %8.2f %8.2f %8.2f" % (
                kind, label, count, len(lat), percentile(lat, 50), percentile(lat, 90),
                percentile(lat, 99), lat[-1] if lat else float("nan")))
    if results["bad"]:
        print("frame events with invalid groups: %d" % results["bad"])
    sys.stdout.flush()


if __name__ == "__main__":
    main()
