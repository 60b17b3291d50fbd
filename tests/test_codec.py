"""The codec: checksum rules, framing, resynchronisation, splits, line errors, and properties."""
import pytest
from hypothesis import given, settings, strategies as st

from tic.codec import (
    HISTORIC, STANDARD, FrameDecoder, checksum, encode_frame, encode_group, parse_group,
    with_parity,
)

HIST = encode_frame([("ADCO", "021528603314"), ("OPTARIF", "HC.."), ("ISOUSC", "45"),
                     ("HCHC", "000723392"), ("HCHP", "001065703"), ("PTEC", "HP.."),
                     ("IINST", "009"), ("IMAX", "042"), ("PAPP", "02150"), ("HHPHC", "D"),
                     ("MOTDETAT", "000000")], HISTORIC)
STD = encode_frame([("ADSC", "041876012345"), ("VTIC", "02"), ("DATE", "", "H250122222926"),
                    ("NGTF", "      BASE      "), ("LTARF", "      BASE      "),
                    ("EAST", "012345678"), ("SMAXSN", "04230", "H250122061012"),
                    ("STGE", "003A0001"), ("DPM1", "00", " 250123060000"),
                    ("PJOURF+1", "00004001 06004002 22004001 NONUTILE NONUTILE NONUTILE "
                                 "NONUTILE NONUTILE NONUTILE NONUTILE NONUTILE")], STANDARD)


def decode_all(data, **kw):
    d = FrameDecoder(**kw)
    frames = d.feed(data) + d.flush()
    return frames, d.stats


# --- checksum rules -----------------------------------------------------------------------

def test_checksum_formula():
    assert checksum(b"ADCO 021528603314") == ord(":")


def test_mode_chosen_by_separator_never_either():
    # "OT 00 #": a real line that lost "PP" from "PPOT 00 #"; it passes mode 2 by coincidence,
    # so a decoder that accepts either mode would take it. SP means mode 1, and mode 1 fails.
    g = parse_group(b"OT 00 #")
    assert g.mode == HISTORIC and not g.checksum_ok and g.error == "checksum"
    assert checksum(b"OT 00 ") == ord("#")  # the coincidence is real


def test_checksum_space_is_kept():
    g = parse_group(b"IINST 009  ")
    assert (g.label, g.value, g.checksum, g.ok) == ("IINST", "009", " ", True)
    g = parse_group(b"HCHC 000723392  ")
    assert g.ok and g.value == "000723392"


def test_standard_horodate_and_empty_date_value():
    g = parse_group(b"DATE\tH250122222926\t\tD")
    assert (g.label, g.horodate, g.value, g.ok) == ("DATE", "H250122222926", "", True)
    g = parse_group(b"DPM1\t 250123060000\t00\t ")  # season space, checksum space
    assert (g.horodate, g.value, g.checksum, g.ok) == (" 250123060000", "00", " ", True)


@pytest.mark.parametrize("season", "EeHh ")
def test_every_season_letter(season):
    raw = encode_group("SMAXSN", "04230", season + "250122061012", STANDARD)
    g = parse_group(raw[1:-1])
    assert g.ok and g.horodate[0] == season


def test_bad_horodate_is_an_error():
    raw = encode_group("SMAXSN", "04230", "X250122061012", STANDARD)
    assert parse_group(raw[1:-1]).error == "malformed: horodate"


def test_values_with_spaces_split_on_ht_only():
    raw = encode_group("MSG1", "PAS DE          MESSAGE         ", None, STANDARD)
    g = parse_group(raw[1:-1])
    assert g.ok and g.value == "PAS DE          MESSAGE         "


def test_historic_value_with_spaces():
    raw = encode_group("DATE", "01/01/23 18:12:35", None, HISTORIC)  # PME-PMI style
    g = parse_group(raw[1:-1])
    assert g.ok and g.value == "01/01/23 18:12:35"


def test_fixed_mode_rejects_other_separator():
    raw = encode_group("ADSC", "041876012345", None, STANDARD)[1:-1]
    g = parse_group(raw, HISTORIC)
    assert not g.ok and "separator" in g.error
    assert parse_group(raw, STANDARD).ok


def test_one_bit_changes_detected():
    raw = bytearray(encode_group("EAST", "012345678", None, STANDARD)[1:-1])
    raw[6] ^= 0x01
    assert parse_group(bytes(raw)).error == "checksum"


def test_malformed_groups_reported_not_raised():
    for body in (b"", b"A", b"ADCO", b"ADCO0214", b"\t\t\t\tX", b"A\tB\tC\tD\tE\tF"):
        g = parse_group(body)
        assert not g.ok and g.error


def test_invalid_character_is_an_error():
    body = bytearray(encode_group("PTEC", "HP..", None, HISTORIC)[1:-1])
    body[5] = 0x00
    assert parse_group(bytes(body)).error == "invalid character"


# --- framing ------------------------------------------------------------------------------

def test_frames_decode():
    frames, s = decode_all(HIST + STD)
    assert [f.mode for f in frames] == [HISTORIC, STANDARD]
    assert all(f.ok for f in frames)
    assert frames[0].values()["HCHC"] == "000723392"
    assert frames[1].valid_groups()["DATE"].horodate == "H250122222926"
    assert s.frames_ok == 2 and s.groups_bad == 0


def test_leading_tail_is_skipped_and_first_whole_frame_kept():
    frames, s = decode_all(HIST[20:] + HIST)
    assert len(frames) == 1 and frames[0].ok
    assert s.bytes_skipped == len(HIST) - 20


def test_frame_starting_with_stx_is_whole():
    frames, _ = decode_all(HIST)
    assert len(frames) == 1 and frames[0].ok


def test_eot_interrupts_then_resynchronises():
    frames, s = decode_all(HIST[:40] + b"\x04" + HIST)
    assert [f.complete for f in frames] == [False, True]
    assert "interrupted (EOT)" in frames[0].errors
    assert s.frames_interrupted == 1 and frames[1].ok


def test_lost_etx_truncates_previous_frame():
    frames, s = decode_all(HIST[:-1] + HIST)
    assert [f.complete for f in frames] == [False, True]
    assert s.frames_truncated == 1


def test_truncated_at_end_of_input():
    frames, s = decode_all(HIST + HIST[:30])
    assert [f.complete for f in frames] == [True, False]
    assert frames[1].errors == ["truncated (end of input)"]


def test_oversize_frame_dropped():
    d = FrameDecoder(max_frame=100)
    frames = d.feed(b"\x02" + b"\nX Y Z\r" * 40)
    assert frames and not frames[0].complete and d.stats.frames_truncated == 1
    assert [f.ok for f in d.feed(HIST)] == [True]


def test_bad_group_reported_never_merged():
    bad = HIST.replace(b"HCHP 001065703", b"HCHP 001065704")
    frames, s = decode_all(bad)
    f = frames[0]
    assert f.complete and not f.ok
    assert "HCHP" not in f.values()
    assert [g.label for g in f.groups if not g.ok] == ["HCHP"]
    assert s.checksum_errors == 1 and s.groups_ok == 10


def test_so_as_group_start_is_accepted():
    frames, _ = decode_all(HIST.replace(b"\nPTEC", b"\x0ePTEC"))
    assert frames[0].ok and frames[0].values()["PTEC"] == "HP.."


@pytest.mark.parametrize("stream", [HIST, STD, b"noise" + HIST + b"\x04junk" + STD + HIST[:33]])
def test_every_split_point_gives_the_same_result(stream):
    ref, _ = decode_all(stream)
    ref = [(f.complete, f.errors, f.groups) for f in ref]
    for k in range(len(stream) + 1):
        d = FrameDecoder()
        got = d.feed(stream[:k]) + d.feed(stream[k:]) + d.flush()
        assert [(f.complete, f.errors, f.groups) for f in got] == ref, k


def test_byte_by_byte():
    d = FrameDecoder()
    frames = [f for i in range(len(STD)) for f in d.feed(STD[i:i + 1])]
    assert len(frames) == 1 and frames[0].ok


# --- line errors ---------------------------------------------------------------------------

def test_eight_bit_parity_checked_and_stripped():
    line = with_parity(HIST)
    assert any(b & 0x80 for b in line)
    frames, s = decode_all(line, eight_bit=True)
    assert frames[0].ok and s.line_errors == 0
    damaged = bytearray(line)
    i = HIST.index(b"PAPP") + 1
    damaged[i] ^= 0x80
    frames, s = decode_all(bytes(damaged), eight_bit=True)
    assert s.line_errors == 1 and "PAPP" not in frames[0].values()
    assert len(frames[0].values()) == 10


def test_nul_from_uart_counts_as_line_error():
    damaged = bytearray(HIST)
    damaged[HIST.index(b"PTEC") + 1] = 0
    frames, s = decode_all(bytes(damaged))
    assert s.line_errors == 1 and "PTEC" not in frames[0].values()


def test_high_bytes_on_a_seven_bit_line_are_line_errors():
    frames, s = decode_all(b"\xff\xfe" + HIST)
    assert s.line_errors == 2 and frames[0].ok


def test_mode_locked_per_frame():
    mixed = encode_frame([("ADCO", "021528603314")], HISTORIC)[:-1] + \
        encode_group("EAST", "012345678", None, STANDARD) + b"\x03"
    frames, _ = decode_all(mixed)
    assert frames[0].mode == HISTORIC
    assert "separator" in frames[0].groups[1].error


# --- properties ---------------------------------------------------------------------------

@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=5))
def test_no_byte_stream_raises(data, cuts):
    d = FrameDecoder()
    pos = 0
    for c in sorted(cuts):
        d.feed(data[pos:c])
        pos = max(pos, c)
    d.feed(data[pos:])
    d.flush()
    s = d.stats
    assert s.bytes == len(data)
    assert s.frames == s.frames_complete + s.frames_interrupted + s.frames_truncated


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.binary(max_size=200), st.sampled_from([HIST, STD]),
       st.integers(0, 2000))
def test_valid_frame_in_noise_comes_out_intact(before, after, frame, cut):
    ref = decode_all(frame)[0][0]
    stream = before + frame + after
    d = FrameDecoder()
    cut = min(cut, len(stream))
    frames = d.feed(stream[:cut]) + d.feed(stream[cut:]) + d.flush()
    assert any(f.complete and f.groups == ref.groups for f in frames)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=8),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)),
    min_size=1, max_size=12), st.sampled_from([HISTORIC, STANDARD]))
def test_round_trip(groups, mode):
    if mode == HISTORIC:
        groups = [(l, v) for l, v in groups if v]  # a historic group needs a value
        if not groups:
            return
    frames, _ = decode_all(encode_frame(groups, mode), mode=mode)
    assert [(g.label, g.value) for g in frames[0].groups] == groups
    assert frames[0].ok


def test_empty_frame_is_not_ok():
    frames, s = decode_all(b"\x02\x03" + HIST)
    assert not frames[0].ok and frames[1].ok
    assert s.frames_complete == 2 and s.frames_ok == 1
