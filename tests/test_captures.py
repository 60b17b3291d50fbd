"""Real public captures (tests/fixtures/captures, sources in SOURCES.md) through `ticgw decode`'s
decoder: labels, values, horodates, checksum verdicts, family; alone and inside noisy, arbitrarily
split streams."""
import json
import random
from pathlib import Path

import pytest

from tic.codec import FrameDecoder
from tic.families import identify

HERE = Path(__file__).parent / "fixtures" / "captures"
EXPECTED = json.loads((HERE / "expected.json").read_text())


def decode(data: bytes, cuts=()):
    d = FrameDecoder()
    frames = []
    pos = 0
    for c in sorted(cuts):
        frames += d.feed(data[pos:c])
        pos = c
    frames += d.feed(data[pos:]) + d.flush()
    return frames, d.stats


def summary(frames):
    complete = [f for f in frames if f.complete]
    first = [[g.label, g.value, g.horodate] for g in complete[0].groups if g.ok]
    return len(complete), first


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_capture(name):
    exp = EXPECTED[name]
    data = (HERE / name).read_bytes()
    frames, stats = decode(data)
    complete, first = summary(frames)
    assert complete == exp["complete_frames"]
    assert first == exp["first_frame_groups"]
    # Groups before the first STX belong to a frame whose start was not seen: skipped.
    assert stats.groups_ok == exp["groups_ok"] - exp.get("groups_before_first_stx", 0)
    assert stats.groups_bad == exp["groups_bad"]
    whole = [f for f in frames if f.complete]
    assert {f.mode for f in whole} == {exp["mode"]}
    # The family: ask the whole capture's valid groups, as detection does.
    seen = {}
    for f in whole:
        for label, value in f.values().items():
            seen.setdefault(label, value)
    assert identify(seen, exp["mode"]).family == exp["family"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_capture_in_noise_split_anywhere(name):
    data = (HERE / name).read_bytes()
    ref, ref_stats = decode(data)
    ref_complete = [f.groups for f in ref if f.complete]
    rng = random.Random(name)
    for _ in range(20):
        # Noise of printable junk and line bytes (no STX/ETX/EOT) before and after; the capture's
        # own partial frames at both ends may absorb some of it, the complete frames may not.
        noise = bytes(rng.choice(b"ABC 019\t\r\n\x00\xff") for _ in range(rng.randint(0, 64)))
        stream = noise + b"\x03" + data + b"\x04" + noise
        cuts = [rng.randint(0, len(stream)) for _ in range(rng.randint(0, 12))]
        frames, _ = decode(stream, cuts)
        got = [f.groups for f in frames if f.complete]
        assert got == ref_complete


def test_known_corruption_is_reported():
    # linky_standard_tri_corrupt: bytes lost in transmission (VTIC, IRMS1..3 missing, DATE with
    # one HT, truncated EASD01, UMOY1 without checksum...). Each bad group is reported with a
    # reason and never appears among the values.
    frames, stats = decode((HERE / "linky_standard_tri_corrupt_tinfo_replay.bin").read_bytes())
    bad = [g for f in frames for g in f.groups if not g.ok]
    assert len(bad) == EXPECTED["linky_standard_tri_corrupt_tinfo_replay.bin"]["groups_bad"]
    assert all(g.error for g in bad)
    for f in frames:
        values = f.values()
        for g in f.groups:
            if not g.ok and g.label in values:
                assert any(o.ok and o.label == g.label for o in f.groups)
