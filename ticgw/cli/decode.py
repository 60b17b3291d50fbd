"""`ticgw decode`: raw TIC bytes in, one JSON object per frame out, counters on stderr."""
from __future__ import annotations

import json
import sys

from tic.codec import AUTO, MODES, FrameDecoder
from tic.families import identify

CHUNK = 65536


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "decode", help="decode raw TIC bytes into JSON frames",
        description="Read raw TIC bytes (a capture, a serial dump) and print one JSON object per "
                    "frame; a summary of counters goes to stderr.")
    p.add_argument("--mode", choices=MODES, default=AUTO,
                   help="historic (SP, checksum mode 1), standard (HT, mode 2) or auto (per group "
                        "separator); default auto")
    p.add_argument("--eight-bit", action="store_true",
                   help="the bytes were read 8N1 from a 7E1 line: check and strip the parity bit")
    p.add_argument("file", nargs="?", default="-", help="input file, or - for stdin (default)")
    p.set_defaults(func=run)


def frame_json(frame) -> dict:
    return {
        "mode": frame.mode,
        "family": identify(frame.values(), frame.mode).family,
        "complete": frame.complete,
        "groups": [g.to_dict() for g in frame.groups],
        "errors": frame.errors,
    }


def run(args) -> int:
    dec = FrameDecoder(mode=args.mode, eight_bit=args.eight_bit)
    src = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")
    out = sys.stdout
    try:
        while True:
            chunk = src.read1(CHUNK) if hasattr(src, "read1") else src.read(CHUNK)
            if not chunk:
                break
            for frame in dec.feed(chunk):
                out.write(json.dumps(frame_json(frame), ensure_ascii=False) + "\n")
        for frame in dec.flush():
            out.write(json.dumps(frame_json(frame), ensure_ascii=False) + "\n")
        out.flush()
    except BrokenPipeError:
        return 0
    finally:
        if src is not sys.stdin.buffer:
            src.close()
    s = dec.stats
    print("decode: %d bytes, %d frames (%d complete, %d valid, %d interrupted, %d truncated), "
          "%d groups valid, %d invalid (%d checksum), %d bytes skipped, %d line errors"
          % (s.bytes, s.frames, s.frames_complete, s.frames_ok, s.frames_interrupted,
             s.frames_truncated, s.groups_ok, s.groups_bad, s.checksum_errors, s.bytes_skipped,
             s.line_errors), file=sys.stderr)
    return 0
