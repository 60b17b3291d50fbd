"""Demo of the meter simulators through the decoder: ``python -m sim.demo_stream``.

For each family (and Linky in both modes): build a meter, generate a few frames, decode them with
``FrameDecoder`` and print one line per frame: family expected and identified, mode, number of
groups, validity and a few label=value pairs.
"""
from __future__ import annotations

import sys

from tic.codec import FrameDecoder
from tic.families import identify

from .meters import FAMILIES, HISTORIC, LINKY, STANDARD, make_meter

#: A few telling labels per family (the first present ones are shown).
HIGHLIGHTS = {
    "CBEMM": ("ADCO", "PTEC", "HCHC", "HCHP", "IINST"),
    "CBEMM-ICC": ("ADCO", "PTEC", "DEMAIN", "IINST", "PAPP"),
    "CBETM": ("ADCO", "PTEC", "IINST1", "IINST2", "IINST3", "PAPP", "ADIR1"),
    "CJE": ("ADS", "JAUNE", "ENERG"),
    "ICE": ("ADS", "CONTRAT", "DATECOUR", "EA", "PTCOUR", "TGPHI"),
    "ICE-4Q": ("ADS", "CONTRAT", "EA", "ERN", "PTCOUR"),
    "PME-PMI": ("ADS", "DATE", "PTCOUR1", "EAP_s", "PA1MN"),
    "LINKY": ("ADCO", "ADSC", "PTEC", "PAPP", "LTARF", "EAST", "SINSTS", "STGE"),
}


def cases() -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for f in FAMILIES:
        if f == LINKY:
            out += [(LINKY, HISTORIC), (LINKY, STANDARD)]
        else:
            out.append((f, None))
    return out


def describe(expected: str, frame, max_pairs: int = 5) -> str:
    values = frame.values()
    ident = identify(values, frame.mode)
    pairs = []
    for label in HIGHLIGHTS.get(expected, ()):
        if label in values:
            pairs.append("%s=%s" % (label, values[label].strip() or "''"))
        if len(pairs) >= max_pairs:
            break
    return "%-9s -> %-9s %-8s groups=%-3d %s%s  %s" % (
        expected, ident.family, frame.mode or "?", len(frame.groups),
        "ok" if frame.ok else "BAD", " short" if ident.short_frame else "", " ".join(pairs))


def main(argv: list[str] | None = None, frames: int = 3, out=None) -> int:
    out = out or sys.stdout
    for family, mode in cases():
        meter = make_meter(family, mode, seed=1)
        decoder = FrameDecoder()
        print("# %s" % meter.describe(), file=out)
        for _ in range(frames):
            for frame in decoder.feed(meter.next_frame()):
                print("  " + describe(family, frame), file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
