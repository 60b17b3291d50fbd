"""Family identification, horodates and STGE on real values."""
from datetime import datetime, timezone

import pytest

from tic.families import identify, type_code
from tic.horodate import decode_stge, encode_stge, parse_horodate

CBE = {"ADCO": "021528603314", "OPTARIF": "HC..", "ISOUSC": "45", "IINST": "009"}


@pytest.mark.parametrize("values,family,phases", [
    (CBE, "CBEMM", 1),
    (dict(CBE, PAPP="02150"), "CBEMM-ICC", 1),
    ({"ADCO": "021528603314", "OPTARIF": "BASE", "ISOUSC": "20", "IINST1": "001", "IINST2": "002",
      "IINST3": "000", "PPOT": "00", "PMAX": "06000"}, "CBETM", 3),
    ({"ADCO": "041876012345", "OPTARIF": "BASE", "IINST": "002", "PAPP": "00450"}, "LINKY", 1),
    ({"ADSC": "041876012345", "VTIC": "02"}, "LINKY", None),
    ({"JAUNE": "08:15:20:11:HP:00:01234:45"}, "CJE", None),
    ({"CONTRAT": "BT 4 SUP36", "EA": "0012345"}, "ICE", None),
    ({"CONTRAT": "BT 4 SUP36", "ERNPP": "0000012"}, "ICE-4Q", None),
    ({"ADS": "041834012345", "CONTRAT": "HTA 5"}, "ICE-4Q", None),
    ({"ADS": "041836012345", "DATE": "01/01/23 18:12:35"}, "PME-PMI", None),
    ({"ADCO": "021528603314"}, "UNKNOWN", None),
    ({"FOO": "1"}, "UNKNOWN", None),
])
def test_identify(values, family, phases):
    ident = identify(values)
    assert ident.family == family
    assert ident.phases == phases


def test_cbetm_short_frame():
    ident = identify({"ADIR1": "051", "ADCO": "021528603314", "IINST1": "051", "IINST2": "002",
                      "IINST3": "000"})
    assert ident.family == "CBETM" and ident.short_frame


def test_type_code():
    assert type_code("041876012345") == 76
    assert type_code("0418") is None


def test_horodate():
    h = parse_horodate("H250122222926")
    assert h.season == "H" and not h.degraded
    assert h.utc == datetime(2025, 1, 22, 21, 29, 26, tzinfo=timezone.utc)
    assert parse_horodate("e250722222926").degraded
    assert parse_horodate(" 250123060000").utc is None
    with pytest.raises(ValueError):
        parse_horodate("X250122222926")


def test_stge_real_values():
    # Values checked against real captures (tic-protocol.md, STGE bits).
    blue = decode_stge("013A0501")
    assert blue["producer"] and blue["supplier_tariff"] == 2 and blue["tempo_today"] == "bleu"
    assert blue["standard_mode"]
    red = decode_stge("9B3A9000")
    assert red["supplier_tariff"] == 5 and red["tempo_today"] == "rouge"
    inj = decode_stge("003AC701")
    assert inj["producer"] and inj["negative_active_energy"]
    assert decode_stge("00000080")["overload"]


def test_stge_round_trip():
    v = encode_stge(supplier_tariff_index=4, tempo_today=3, standard_mode=1, overload=1)
    d = decode_stge(v)
    assert d["supplier_tariff"] == 5 and d["tempo_today"] == "rouge" and d["overload"]
    with pytest.raises(ValueError):
        decode_stge("12")


def test_linky_standard_without_its_adsc():
    ident = identify({"VTIC": "02", "EAST": "012345678", "SINSTS": "00450"}, "standard")
    assert ident.family == "LINKY" and ident.serial is None
    assert identify({"EAST": "012345678"}, "historic").family == "UNKNOWN"
