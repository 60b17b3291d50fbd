"""Serve N simulated meters on ptys at real line rate, each frame numbered, for the benchmarks.

    python -m bench.meter_farm N DIR [--tick SECONDS]

Input n is served on the link ``DIR/tty<n>`` by a ``sim.pty_meter.PtyMeter`` (speed 1: real
line rate, bytes paced by ``LinePacer``), families mixed as on a real site (``FAMILY_MIX``).
Each frame carries one extra group ``BENCHSEQ <9-digit number>`` (16 bytes) so a subscriber can
tell exactly which frames reached the bus. The farm writes ``DIR/farm.json`` (one row per input:
index, link, family, mode, baud), prints ``ready``, then waits for ``stop`` on stdin (or EOF, or
SIGTERM). It then stops every meter, writes ``DIR/frames.json`` and prints ``done``.

``frames.json``: ``{"inputs": {n: [[seq, start, end, clean], ...]}, "stats": {n: PtyStats}}``:
``start`` is when the frame was generated (its first byte is due within one tick), ``end`` right
after the write that carried its last byte (ETX) returned, both ``time.monotonic()`` (system-wide
on Linux, so comparable with the benchmark's clock); ``clean`` is False when some byte of the
frame was dropped (the pty's input queue was full: nobody reading).
"""
from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from sim.meters import make_meter
from sim.pty_meter import PtyMeter

ETX = 0x03
SEQ_LABEL = "BENCHSEQ"

#: (family, mode, weight): what a site with many inputs could hold. Mostly Linky (historic mode,
#: the default at delivery, and some switched to standard), older CBE meters, a few long-frame
#: C5/HTA meters (ICE, PME-PMI: ~900-1200 bytes at 1200 bd, a frame every ~8-10 s).
FAMILY_MIX = (
    ("LINKY", "historic", 40), ("LINKY", "standard", 20), ("CBEMM", None, 10),
    ("CBEMM-ICC", None, 10), ("CBETM", None, 6), ("CJE", None, 4), ("PME-PMI", None, 4),
    ("ICE", None, 3), ("ICE-4Q", None, 3),
)


def families(n: int) -> list[tuple[str, str | None]]:
    """The family of each of ``n`` inputs: the mix spread evenly (3 inputs: Linky historic,
    Linky standard, CBEMM)."""
    if n <= 3:
        return [("LINKY", "historic"), ("LINKY", "standard"), ("CBEMM", None)][:n]
    total = sum(w for _, _, w in FAMILY_MIX)
    out: list[tuple[str, str | None]] = []
    for family, mode, weight in FAMILY_MIX:
        out += [(family, mode)] * max(1, round(n * weight / total))
    out = out[:n]
    while len(out) < n:
        out.append(("LINKY", "historic"))
    # interleave so neighbouring inputs differ (no block of identical meters)
    return [out[(i * 7) % n] for i in range(n)] if n % 7 else out


class NumberedPtyMeter(PtyMeter):
    """A PtyMeter whose frames carry a sequence number and whose completed frames are logged."""

    def __init__(self, meter, link: str, counter, tick: float):
        super().__init__(meter, link=link, speed=1.0, tick=tick)
        self.pending: collections.deque = collections.deque()   # (seq, start), ETX not sent
        self.completed: list[list] = []                     # [seq, start, end, clean]
        self._dirty = False
        groups = meter.groups

        def numbered(kind="long"):
            seq = next(counter)
            self.pending.append((seq, time.monotonic()))
            return list(groups(kind)) + [(SEQ_LABEL, "%09d" % seq)]

        meter.groups = numbered

    def _send(self, data: bytes) -> None:
        dropped = self.stats.bytes_dropped
        super()._send(data)
        t = time.monotonic()
        if self.stats.bytes_dropped != dropped:
            self._dirty = True
        for _ in range(data.count(ETX)):
            if self.pending:
                seq, start = self.pending.popleft()
                self.completed.append([seq, start, t, not self._dirty])
            self._dirty = False


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.meter_farm", description=__doc__.split(
        "\n\n")[0])
    ap.add_argument("n", type=int, help="number of meters")
    ap.add_argument("dir", type=Path, help="where the links and the result files go")
    ap.add_argument("--tick", type=float, default=0.005,
                    help="writer period of each meter in seconds (PtyMeter's default: 0.005)")
    args = ap.parse_args(argv)
    halt = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: halt.set())
    counter = itertools.count(1)      # next() is atomic under the GIL: numbers are unique
    meters: dict[int, NumberedPtyMeter] = {}
    rows = []
    try:
        for i, (family, mode) in enumerate(families(args.n), 1):
            m = make_meter(family, mode, seed=i)
            pm = NumberedPtyMeter(m, str(args.dir / ("tty%d" % i)), counter, args.tick)
            meters[i] = pm
            rows.append({"index": i, "link": pm.link, "family": family,
                         "mode": m.mode, "baud": m.baud})
        for pm in meters.values():
            pm.start()
        (args.dir / "farm.json").write_text(json.dumps({"inputs": rows, "pid": os.getpid()}))
        print("ready", flush=True)

        def wait_stdin():
            for line in sys.stdin:
                if line.strip() == "stop":
                    break
            halt.set()

        threading.Thread(target=wait_stdin, daemon=True, name="stdin").start()
        halt.wait()
    finally:
        for pm in meters.values():
            pm.stop()
    result = {"inputs": {str(i): pm.completed for i, pm in meters.items()},
              "stats": {str(i): pm.stats.to_dict() for i, pm in meters.items()}}
    tmp = args.dir / "frames.json.tmp"
    tmp.write_text(json.dumps(result))
    os.replace(tmp, args.dir / "frames.json")
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
