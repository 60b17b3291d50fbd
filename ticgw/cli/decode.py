"""`ticgw decode`: raw TIC bytes in, one JSON object per frame out, counters on stderr.

Each line is ``json.dumps(frame_json(frame), ensure_ascii=False)``. Nearly every frame of a
healthy capture comes whole through the decoder's fast path with every group valid
(``Frame.clean_columns()``); such a frame is written from pieces made once per sequence of labels
(``_Shape``: the JSON text around the values, labels already encoded, with a slot for each value,
checksum and horodate), which gives the same text without a dict per group. Its family is
``identify()``'s, remembered per sequence of labels and meter address (ADCO, ADS: all it depends
on besides the labels and the mode). Any other frame (a bad group, a truncated frame, a value
with a quote or a backslash to escape) takes the general path. The output is written one block
of input at a time.
"""
from __future__ import annotations

import json
import sys

from tic.codec import AUTO, MODES, FrameDecoder
from tic.families import identify

#: Bytes read at a time (a file gives whole blocks; a pipe or a line gives what it has). Small
#: enough that a block's frames are decoded and written while they are still in the CPU's cache:
#: on a long file, 16 KiB blocks took a sixth less time than 64 KiB ones, a third less than 1 MiB.
CHUNK = 16384

#: json.dumps(obj, ensure_ascii=False), without a new encoder at each call.
_encode = json.JSONEncoder(ensure_ascii=False).encode

#: A checksum character (printable ASCII) as it stands between quotes in JSON text.
_JSON_CHAR = {chr(c): _encode(chr(c))[1:-1] for c in range(0x20, 0x7F)}

#: Shapes and families kept at most (a noisy stream cannot make them grow without end).
MAX_SHAPES = 1024
MAX_ADDRESSES = 64


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


class _Shape:
    """What every clean frame with one sequence of labels (and, in standard mode, of groups with
    and without a horodate) shares: its line as a list of literal pieces with a slot for the
    family, then per group one for the horodate (standard mode), the value and the checksum, at
    a fixed stride; where its address labels are; its family per address."""

    __slots__ = ("parts", "stride", "adco", "ads", "families")

    def __init__(self, mode: str, labels: tuple, horodated: tuple | None):
        parts = ['{"mode": %s, "family": ' % _encode(mode), None]
        for i, label in enumerate(labels):
            head = ", " if i else ', "complete": true, "groups": ['
            if horodated is None:  # historic: label, value, checksum
                parts += [head + '{"label": %s, "horodate": null, "value": "' % _encode(label),
                          None, '", "checksum": "', None]
            else:  # standard: label, horodate, value, checksum
                quote = '"' if horodated[i] else ""
                parts += [head + '{"label": %s, "horodate": %s' % (_encode(label),
                                                                   quote or "null"),
                          None, quote + ', "value": "', None, '", "checksum": "', None]
            parts.append('", "checksum_ok": true}')
        parts[-1] += '], "errors": []}\n'
        self.parts = parts
        self.stride = 5 if horodated is None else 7
        # identify() reads the values of ADCO and ADS (first occurrence, as Frame.values() has it)
        self.adco = labels.index("ADCO") if "ADCO" in labels else -1
        self.ads = labels.index("ADS") if "ADS" in labels else -1
        self.families: dict[tuple, str] = {}


class LineRenderer:
    """Frames to JSON lines, as ``json.dumps(frame_json(frame), ensure_ascii=False) + "\\n"``."""

    def __init__(self):
        self._shapes: dict[tuple, _Shape] = {}

    def line(self, frame) -> str:
        cols = frame.clean_columns()
        if cols is None or not frame.complete or frame.errors:
            return _encode(frame_json(frame)) + "\n"
        labels, values, horodates, css = cols
        text = "".join(values)
        if '"' in text or "\\" in text:  # a value to escape: rare, the general path does it
            return _encode(frame_json(frame)) + "\n"
        mode = frame.mode
        horodated = None if horodates is None else tuple(map(bool, horodates))
        key = (mode, labels, horodated)
        shape = self._shapes.get(key)
        if shape is None:
            if len(self._shapes) >= MAX_SHAPES:
                self._shapes.clear()
            shape = self._shapes[key] = _Shape(mode, labels, horodated)
        address = (values[shape.adco] if shape.adco >= 0 else None,
                   values[shape.ads] if shape.ads >= 0 else None)
        family = shape.families.get(address)
        if family is None:
            if len(shape.families) >= MAX_ADDRESSES:
                shape.families.clear()
            family = shape.families[address] = _encode(identify(frame.values(), mode).family)
        if '"' in css or "\\" in css:
            css = tuple(map(_JSON_CHAR.__getitem__, css))
        parts = shape.parts.copy()
        parts[1] = family
        stride = shape.stride
        if horodates is None:
            parts[3::stride] = values
            parts[5::stride] = css
        else:
            parts[3::stride] = horodates
            parts[5::stride] = values
            parts[7::stride] = css
        return "".join(parts)


def run(args) -> int:
    dec = FrameDecoder(mode=args.mode, eight_bit=args.eight_bit)
    src = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")
    read = src.read1 if hasattr(src, "read1") else src.read
    render = LineRenderer().line
    out = sys.stdout
    try:
        while True:
            chunk = read(CHUNK)
            if not chunk:
                break
            frames = dec.feed(chunk)
            if frames:
                out.write("".join(map(render, frames)))
        frames = dec.flush()
        if frames:
            out.write("".join(map(render, frames)))
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
