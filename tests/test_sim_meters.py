"""Meter simulators: generator -> decoder round trips, evolving values, overloads, corruption."""
import io
import re
from datetime import datetime

import pytest

from tic.codec import HISTORIC, STANDARD, FrameDecoder
from tic.families import identify, type_code
from tic.horodate import decode_stge, parse_horodate
from sim import demo_stream
from sim.meters import (BLANC, BLEU, FAMILIES, FAMILY_DEFAULTS, LINKY, ROUGE, Corruption, Injected,
                        Meter, make_meter, season)

CASES = demo_stream.cases()
IDS = ["%s-%s" % (f, m or "default") for f, m in CASES]


def decode_all(meter: Meter, n: int, decoder: FrameDecoder | None = None):
    decoder = decoder or FrameDecoder()
    frames = []
    for _ in range(n):
        frames += decoder.feed(meter.next_frame())
    return frames, decoder


def numbers(value: str) -> list[int]:
    return [int(x) for x in re.findall(r"\d+", value)]


@pytest.mark.parametrize("family,mode", CASES, ids=IDS)
def test_round_trip_identify_and_monotonic_indexes(family, mode):
    meter = make_meter(family, mode, seed=7)
    frames, dec = decode_all(meter, 100)
    assert len(frames) == 100
    assert dec.stats.frames_ok == 100 and dec.stats.groups_bad == 0
    expected_mode = STANDARD if meter.separator == "HT" else HISTORIC
    last: dict = {}
    for f in frames:
        assert f.ok and f.mode == expected_mode
        values = f.values()
        ident = identify(values, f.mode)
        assert ident.family == family
        assert ident.serial == meter.serial
        for g in f.groups:
            assert all(0x20 <= ord(c) <= 0x7E for c in g.label + g.value)
        scope = values.get(meter.index_scope) if meter.index_scope else None
        for label in meter.index_labels:
            if label in values:
                now = numbers(values[label])
                before = last.get((scope, label))
                if before is not None:
                    assert all(a >= b for a, b in zip(now, before)), (label, before, now)
                last[(scope, label)] = now
    assert last, "no index label seen"
    # the simulated clock moved by the family's frame interval
    assert meter.elapsed == pytest.approx(100 * meter.interval)


@pytest.mark.parametrize("family,mode", CASES, ids=IDS)
def test_line_defaults_and_address_type(family, mode):
    meter = make_meter(family, mode, seed=3)
    d = FAMILY_DEFAULTS[family][meter.mode]
    assert (meter.baud, meter.separator) == (d.baud, d.separator)
    if family == LINKY:
        assert meter.baud == (9600 if mode == STANDARD else 1200)
        assert 60 <= type_code(meter.serial) <= 76
    else:
        assert meter.baud == 1200 and meter.separator == "SP"
        want = {"CJE": 10, "ICE": 7, "ICE-4Q": 34, "PME-PMI": 36}.get(family)
        if want is not None:
            assert type_code(meter.serial) == want
        else:
            assert type_code(meter.serial) not in range(60, 77)


def test_same_seed_same_bytes_and_settable_lines():
    a = make_meter("CBEMM-ICC", seed=5).frames(20)
    b = make_meter("CBEMM-ICC", seed=5).frames(20)
    c = make_meter("CBEMM-ICC", seed=6).frames(20)
    assert a == b and a != c
    cje = make_meter("CJE", seed=1, separator="HT", baud=9600)
    frames, _ = decode_all(cje, 5)
    assert cje.baud == 9600 and all(f.ok and f.mode == STANDARD for f in frames)
    assert identify(frames[-1].values(), frames[-1].mode).family == "CJE"
    with pytest.raises(ValueError):
        make_meter("LINKY", "standard", separator="SP")
    with pytest.raises(ValueError):
        make_meter("NOPE")
    with pytest.raises(ValueError):
        make_meter("CBEMM", "standard")


HISTORIC_LENGTHS = {"ADCO": 12, "OPTARIF": 4, "ISOUSC": 2, "PTEC": 4, "DEMAIN": 4, "IINST": 3,
                    "IMAX": 3, "PAPP": 5, "HHPHC": 1, "MOTDETAT": 6, "PMAX": 5, "PPOT": 2,
                    "IINST1": 3, "IMAX1": 3, "ADPS": 3, "ADIR1": 3, "PEJP": 2, "BASE": 9,
                    "HCHC": 9, "HCHP": 9, "EJPHN": 9, "EJPHPM": 9, "BBRHPJB": 9}


@pytest.mark.parametrize("family,tariff", [("CBEMM", "HC"), ("CBEMM-ICC", "TEMPO"),
                                           ("CBETM", "EJP"), ("LINKY", "BASE")])
def test_historic_label_sets_and_lengths(family, tariff):
    meter = make_meter(family, seed=2, tariff=tariff)
    frames, _ = decode_all(meter, 3)
    values = frames[-1].values()
    assert ("PAPP" in values) == (family != "CBEMM")
    if family == "CBETM":
        assert {"IINST1", "IINST2", "IINST3", "IMAX1", "IMAX3", "PMAX", "PPOT"} <= set(values)
        assert "IINST" not in values
    else:
        assert "IINST" in values and "IINST1" not in values
    if family == "LINKY":
        assert values["IMAX"] == "090"
    for label, value in values.items():
        if label in HISTORIC_LENGTHS:
            assert len(value) == HISTORIC_LENGTHS[label], (label, value)


def test_linky_historic_three_phase():
    meter = make_meter("LINKY", "historic", seed=1, phases=3)
    frames, _ = decode_all(meter, 2)
    values = frames[-1].values()
    assert type_code(values["ADCO"]) == 76
    assert [values["IMAX%d" % i] for i in (1, 2, 3)] == ["060"] * 3
    assert identify(values).family == "LINKY" and identify(values).phases == 3


def test_hc_hp_switch_at_fixed_hours():
    meter = make_meter("CBEMM", seed=1, tariff="HC", start=datetime(2025, 1, 15, 21, 58, 30))
    frames, _ = decode_all(meter, 100)
    seq = [f.values() for f in frames]
    periods = [v["PTEC"] for v in seq]
    assert periods[0] == "HP.." and periods[-1] == "HC.."
    switch = periods.index("HC..")
    assert set(periods[switch:]) == {"HC.."}
    # after 22:00 only HCHC grows
    assert seq[-1]["HCHP"] == seq[switch]["HCHP"]
    assert int(seq[-1]["HCHC"]) > int(seq[switch]["HCHC"])


def test_ejp_notice_and_peak():
    start = datetime(2025, 1, 15, 6, 29, 0)
    meter = make_meter("CBETM", seed=1, tariff="EJP", start=start)
    meter.calendar.ejp[start.date()] = True
    frames, _ = decode_all(meter, 40)
    assert "PEJP" not in frames[0].values()
    assert frames[-1].values()["PEJP"] == "30" and frames[-1].values()["PTEC"] == "HN.."
    meter.advance(30 * 60)
    frames, _ = decode_all(meter, 2)
    assert frames[-1].values()["PTEC"] == "PM.."


def test_tempo_colours_over_days_and_settable():
    meter = make_meter("CBEMM-ICC", seed=1, tariff="TEMPO", start=datetime(2025, 1, 1, 12, 0))
    seen, demain = set(), set()
    for _ in range(60):
        frames, _ = decode_all(meter, 1)
        seen.add(frames[-1].values()["PTEC"][-1])
        meter.advance(9 * 3600)            # 21:00: tomorrow announced
        frames, _ = decode_all(meter, 1)
        demain.add(frames[-1].values()["DEMAIN"])
        meter.advance(15 * 3600 - 2 * meter.interval)
    assert seen == {"B", "W", "R"}
    assert demain == {BLEU, BLANC, ROUGE}
    meter = make_meter("CBEMM-ICC", seed=1, tariff="TEMPO", start=datetime(2025, 1, 15, 20, 30))
    meter.set_tempo(today="ROUG", tomorrow="BLAN")
    values = decode_all(meter, 1)[0][-1].values()
    assert values["PTEC"] == "HPJR" and values["DEMAIN"] == "BLAN"
    meter.advance(2 * 3600)
    values = decode_all(meter, 1)[0][-1].values()
    assert values["PTEC"] == "HCJR"


def test_linky_standard_horodates_lengths_and_stge():
    meter = make_meter("LINKY", "standard", seed=4, start=datetime(2025, 1, 15, 21, 55))
    meter.set_tempo(today="BLAN", tomorrow="ROUG")
    frames, _ = decode_all(meter, 400)   # 21:55 -> ~22:02: HP then HC, tomorrow announced
    ntarfs = set()
    for f in frames:
        assert f.ok
        v = f.valid_groups()
        date = v["DATE"]
        assert date.value == "" and parse_horodate(date.horodate).season == "H"
        for g in f.groups:
            if g.horodate is not None:
                parse_horodate(g.horodate)
        assert len(v["NGTF"].value) == 16 and len(v["LTARF"].value) == 16
        assert len(v["MSG1"].value) == 32 and len(v["PRM"].value) == 14
        blocks = v["PJOURF+1"].value.split(" ")
        assert len(v["PJOURF+1"].value) == 98 and len(blocks) == 11
        assert all(len(b) == 8 for b in blocks)
        stge = decode_stge(v["STGE"].value)
        ntarf = int(v["NTARF"].value)
        ntarfs.add(ntarf)
        assert stge["supplier_tariff"] == ntarf and stge["standard_mode"]
        assert stge["tempo_today"] == "blanc" and stge["tempo_tomorrow"] == "rouge"
        assert v["LTARF"].value.strip() == ("HP  BLANC" if ntarf == 4 else "HC  BLANC")
        assert int(v["EAST"].value) == sum(int(v["EASF%02d" % i].value) for i in range(1, 11))
        for label in ("IRMS1", "URMS1", "UMOY1"):
            assert len(v[label].value) == 3
        for label in ("SINSTS", "SMAXSN", "SMAXSN-1", "CCASN", "CCASN-1"):
            assert len(v[label].value) == 5
    assert ntarfs == {3, 4}
    assert season(datetime(2025, 7, 1)) == "E"
    summer = make_meter("LINKY", "standard", seed=4, start=datetime(2025, 7, 1, 12, 0))
    assert decode_all(summer, 1)[0][0].valid_groups()["DATE"].horodate.startswith("E25070112")


def test_linky_standard_three_phase_and_smax_rollover():
    meter = make_meter("LINKY", "standard", seed=2, phases=3, tariff="BASE",
                       start=datetime(2025, 1, 15, 23, 59, 0))
    frames, _ = decode_all(meter, 60)
    v = frames[-1].values()
    assert {"IRMS3", "URMS2", "SINSTS1", "SMAXSN3", "SMAXSN1-1", "UMOY3"} <= set(v)
    assert identify(v).phases == 3 and type_code(v["ADSC"]) == 76
    smax = frames[-1].valid_groups()["SMAXSN-1"]
    assert parse_horodate(smax.horodate).local.date() == datetime(2025, 1, 15).date()


def test_cbetm_overload_cycle_20_short_1_long():
    meter = make_meter("CBETM", seed=1)
    frames, _ = decode_all(meter, 3)
    assert not any(identify(f.values()).short_frame for f in frames)
    meter.overload(duration=30.0, phases=(2,))
    kinds, shorts = [], []
    dec = FrameDecoder()
    while meter.overload_window:
        (f,) = dec.feed(meter.next_frame())
        ident = identify(f.values())
        assert ident.family == "CBETM" and f.ok
        kinds.append("S" if ident.short_frame else "L")
        if ident.short_frame:
            shorts.append(f)
    assert "".join(kinds).startswith("S" * 20 + "L" + "S" * 20 + "L")
    for i, k in enumerate(kinds):
        assert k == ("S" if i % 21 < 20 else "L")
    # the cycle lasts the overload + 1 minute
    assert meter.elapsed >= 90.0
    labels = [g.label for g in shorts[0].groups]
    assert labels == ["ADIR2", "ADCO", "IINST1", "IINST2", "IINST3"]
    assert int(shorts[0].values()["ADIR2"]) > meter.isousc
    after, _ = decode_all(meter, 5, dec)
    assert not any(identify(f.values()).short_frame for f in after)
    assert all("ISOUSC" in f.values() for f in after)


@pytest.mark.parametrize("family", ["CBEMM", "CBEMM-ICC"])
def test_adps_while_overloaded(family):
    meter = make_meter(family, seed=1)
    assert "ADPS" not in decode_all(meter, 2)[0][-1].values()
    meter.overload(duration=10.0)
    v = decode_all(meter, 1)[0][-1].values()
    assert v["ADPS"] == v["IINST"] and int(v["IINST"]) > meter.isousc
    meter.advance(15)
    assert "ADPS" not in decode_all(meter, 1)[0][-1].values()


def test_periodic_overloads_and_linky_stge_overload_bit():
    meter = make_meter("CBEMM-ICC", seed=1)
    meter.schedule_overloads(every=60.0, duration=5.0)
    frames, _ = decode_all(meter, 200)      # 300 s: four or five overloads
    with_adps = [i for i, f in enumerate(frames) if "ADPS" in f.values()]
    assert with_adps and with_adps[-1] - with_adps[0] > 100
    linky = make_meter("LINKY", "standard", seed=1)
    linky.overload(duration=5.0)
    v = decode_all(linky, 1)[0][-1].values()
    assert decode_stge(v["STGE"])["overload"]
    assert int(v["SINSTS"]) > linky.pref * 1000


# --- corruption -------------------------------------------------------------------------------

def test_corruption_spec_parse():
    c = Corruption.parse("checksum=0.05,lost=0.01,eot=0.02,noise=0.1,parity=0.001")
    assert (c.checksum, c.lost, c.eot, c.noise, c.parity) == (0.05, 0.01, 0.02, 0.1, 0.001)
    assert Corruption.parse(str(c)) == c and c.active
    assert not Corruption.parse("").active and not Corruption.parse(None).active
    assert str(Corruption()) == "none"
    for bad in ("checksum", "bogus=0.1", "lost=2", "eot=x"):
        with pytest.raises(ValueError):
            Corruption.parse(bad)


@pytest.mark.parametrize("family,mode", [("CBEMM-ICC", None), ("LINKY", "standard"),
                                         ("ICE", None)])
@pytest.mark.parametrize("spec,stat,counter", [
    ("checksum=0.05", "checksum_errors", "bad_checksums"),
    ("eot=0.2", "frames_interrupted", "eots"),
    ("noise=0.3", "bytes_skipped", "noise_bytes"),
    ("parity=0.002", "line_errors", "parity_errors"),
])
def test_corruption_counters_match_decoder(family, mode, spec, stat, counter):
    meter = make_meter(family, mode, seed=11, corruption=spec)
    _, dec = decode_all(meter, 150)
    dec.flush()
    injected = getattr(meter.injected, counter)
    assert injected > 0
    assert getattr(dec.stats, stat) == injected
    assert dec.stats.bytes == meter.injected.bytes


def test_checksum_and_eot_together_count_only_delivered_groups():
    meter = make_meter("LINKY", "standard", seed=3, corruption="checksum=0.05,eot=0.3")
    _, dec = decode_all(meter, 100)
    assert meter.injected.eots == dec.stats.frames_interrupted > 0
    assert meter.injected.bad_checksums == dec.stats.checksum_errors > 0


def test_parity_errors_in_eight_bit_output():
    meter = make_meter("CBEMM", seed=2, eight_bit=True, corruption="parity=0.003")
    frames, dec = decode_all(meter, 100, FrameDecoder(eight_bit=True))
    assert meter.injected.parity_errors > 0
    assert dec.stats.line_errors == meter.injected.parity_errors
    clean = make_meter("CBEMM", seed=2, eight_bit=True)
    raw = clean.next_frame()
    assert any(b & 0x80 for b in raw)
    assert FrameDecoder(eight_bit=True).feed(raw)[0].ok
    seven = FrameDecoder()                      # read as 7 bits, bit 7 means line errors
    assert not any(f.ok for f in seven.feed(raw)) and seven.stats.line_errors > 0


def test_lost_bytes_and_values_unchanged_by_corruption():
    meter = make_meter("CBEMM-ICC", seed=9, corruption="lost=0.002")
    clean = make_meter("CBEMM-ICC", seed=9)
    frames, dec = decode_all(meter, 100)
    clean_frames, _ = decode_all(clean, 100)
    assert meter.injected.lost_bytes > 0
    assert dec.stats.frames_ok < 100
    assert dec.stats.bytes == meter.injected.bytes
    total = sum(len(f) for f in make_meter("CBEMM-ICC", seed=9).frames(100))
    assert meter.injected.bytes == total - meter.injected.lost_bytes
    # corruption draws from its own generator: the values of the intact frames are the clean ones
    by_adco_clean = [f.values() for f in clean_frames]
    intact = [f.values() for f in frames if f.ok]
    assert intact and all(v in by_adco_clean for v in intact)


def test_injected_counters_to_dict():
    inj = Injected(frames=2, bad_checksums=1)
    assert inj.to_dict()["frames"] == 2 and inj.to_dict()["bad_checksums"] == 1


def test_demo_stream_prints_every_family():
    out = io.StringIO()
    assert demo_stream.main(out=out) == 0
    text = out.getvalue()
    lines = [l for l in text.splitlines() if l.startswith("  ")]
    assert len(lines) == 3 * len(CASES)
    for family in FAMILIES:
        assert any(l.split()[0] == family and l.split()[2] == family for l in lines), family
    assert " BAD" not in text and "standard" in text
