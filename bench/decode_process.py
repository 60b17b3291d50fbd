"""``ticgw decode`` as a whole process against python-teleinfo 1.3.1 as a whole process.

Both sides get the same capture file (many frames, built as ``bench.codec`` builds its streams)
and write one JSON object per frame to stdout (``/dev/null`` here); each run is a new process,
timed from its start to its exit (interpreter start-up and imports included):

- ``python -m ticgw.cli decode FILE``: every group checked, ``ticgw decode``'s full object per
  frame (mode, family, complete, groups with label, horodate, value, checksum, checksum_ok,
  errors);
- ``python PEER FILE``: the small script below, python-teleinfo's ``Parser`` over the file's
  characters, ``json.dumps`` of each frame it returns (a label -> value dict), one per line.

python-teleinfo skips the file's first frame (its constructor consumes the first STX), so it
writes n - 1 lines where ticgw writes n; figures are frames written per second. It checks
historic checksums only and cannot split standard (HT) groups: on the standard stream it writes
an empty object per frame, so its figure there is framing and output speed, not decoding.
Interleaved runs, the best of each side; start-up alone (an empty file) is shown apart.

Both run as a user runs them: stdout buffered and bytecode cached. The children's environment
drops ``PYTHONUNBUFFERED`` (one write per line would cost the peer more than ticgw, which writes
a block at a time) and ``PYTHONDONTWRITEBYTECODE`` (ticgw would compile its own modules at every
start where python-teleinfo's installed ones are cached); ``PYTHONPYCACHEPREFIX`` points into the
benchmark's temporary directory, so nothing is written into the tree, and runs before the timed
ones fill it.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bus.testing import REPO

from .acq_runner import machine
from .codec import historic_stream, standard_stream

#: (name, stream builder, frames): 3.4 MB of historic frames (11 groups, 170 bytes: 8 hours of a
#: meter at 1200 bd), 4.3 MB of standard ones (38 groups, 865 bytes: 75 minutes at 9600 bd).
STREAMS = (("historic", historic_stream, 20000), ("standard", standard_stream, 5000))
RUNS = 7

#: The python-teleinfo side: its Parser reads a vendor object one character at a time.
PEER = '''\
"""python-teleinfo 1.3.1 as a whole process: FILE in, one json.dumps line per frame out."""
import json
import logging
import sys

from teleinfo.base_vendor import BASE_vendor
from teleinfo.parser import Parser

logging.getLogger("teleinfo").setLevel(logging.CRITICAL)  # it logs every standard frame


class FileReader(BASE_vendor):
    """The file's characters, one read_char() at a time (python-teleinfo's vendor interface)."""

    def __init__(self, text):
        self.read_char = iter(text).__next__


def main(path):
    with open(path, "rb") as f:
        reader = FileReader(f.read().decode("ascii"))
    write = sys.stdout.write
    try:
        parser = Parser(reader)  # consumes the first STX: frames 2..n follow
        while True:
            write(json.dumps(parser.get_frame()) + "\\n")
    except (StopIteration, RuntimeError):  # end of input (RuntimeError: in a generator)
        pass
    sys.stdout.flush()


main(sys.argv[1])
'''


def commands(peer: Path, path: Path) -> dict[str, list[str]]:
    return {"ticgw": [sys.executable, "-m", "ticgw.cli", "decode", str(path)],
            "teleinfo 1.3.1": [sys.executable, str(peer), str(path)]}


def environment(tmp: Path) -> dict[str, str]:
    """The children's environment: buffered stdout, bytecode cached under `tmp`."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE")}
    env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    return env


def timed(argv: list[str], env: dict[str, str]) -> float:
    """Seconds from the start of the process to its exit, stdout to /dev/null."""
    t0 = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO,
                   env=env, check=True)
    return time.perf_counter() - t0


def lines_of(argv: list[str], env: dict[str, str]) -> list[str]:
    """The process's output lines (a run apart from the timed ones, to check what it writes)."""
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=REPO,
                       env=env, check=True)
    return r.stdout.decode().splitlines()


def check_output(name: str, side: str, lines: list[str], n: int) -> None:
    """Both sides write what they should: one JSON object per frame."""
    objects = [json.loads(line) for line in lines]
    if side == "ticgw":
        assert len(objects) == n, (side, name, len(objects))
        assert all(o["complete"] and not o["errors"] for o in objects), (side, name)
        assert all(g["checksum_ok"] for o in objects for g in o["groups"]), (side, name)
    else:
        assert len(objects) == n - 1, (side, name, len(objects))
        assert all(o if name == "historic" else o == {} for o in objects), (side, name)


def main() -> None:
    print("== decode_process: whole processes, the same file, one JSON line per frame to "
          "/dev/null; interleaved, best of %d ==" % RUNS)
    for line in machine():
        print(line)
    with tempfile.TemporaryDirectory(prefix="ticgw-bench-decode-") as tmp:
        tmp = Path(tmp)
        peer = tmp / "teleinfo_decode.py"
        peer.write_text(PEER, encoding="utf-8")
        empty = tmp / "empty.bin"
        empty.write_bytes(b"")
        env = environment(tmp)
        for argv in commands(peer, empty).values():  # fills the bytecode cache
            timed(argv, env)
        start = {side: [] for side in commands(peer, empty)}
        for _ in range(RUNS):
            for side, argv in commands(peer, empty).items():
                start[side].append(timed(argv, env))
        print("start-up alone (empty file): %s" % ", ".join(
            "%s %.0f ms" % (side, min(t) * 1e3) for side, t in start.items()))
        print("%-10s %-16s %10s %8s %8s %9s" % ("stream", "process", "frames/s", "MB/s",
                                                "best s", "frames"))
        for name, make, n in STREAMS:
            stream, _ = make(n)
            path = tmp / ("%s.bin" % name)
            path.write_bytes(stream)
            cmds = commands(peer, path)
            frames = {}
            for side, argv in cmds.items():
                lines = lines_of(argv, env)
                check_output(name, side, lines, n)
                frames[side] = len(lines)
            times = {side: [] for side in cmds}
            for _ in range(RUNS):  # interleaved: the machine is shared and noisy
                for side, argv in cmds.items():
                    times[side].append(timed(argv, env))
            rate = {}
            for side in cmds:
                best = min(times[side])
                rate[side] = frames[side] / best
                print("%-10s %-16s %10.0f %8.2f %8.3f %9d" % (
                    name, side, rate[side], len(stream) / best / 1e6, best, frames[side]))
            print("%-10s ratio ticgw/teleinfo: %.2fx frames/s (%d bytes, %d frames)" % (
                name, rate["ticgw"] / rate["teleinfo 1.3.1"], len(stream), n))
        print("commands (in %s; FILE: the stream's file; stdout to /dev/null; environment "
              "without PYTHONUNBUFFERED and PYTHONDONTWRITEBYTECODE, PYTHONPYCACHEPREFIX in the "
              "temporary directory):" % REPO)
        for side, argv in commands(Path("PEER"), Path("FILE")).items():
            print("    %-16s %s" % (side, shlex.join(argv)))
        print("PEER:")
        print("\n".join(("    " + line).rstrip() for line in PEER.splitlines()))


if __name__ == "__main__":
    main()
