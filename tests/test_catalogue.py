"""Tests for the label catalogue (services/acquisition/catalogue.py)."""
from __future__ import annotations

import dataclasses

import pytest

from tic import catalogue as cat
from tic.catalogue import (
    FAMILIES,
    FAMILY_DESCRIPTIONS,
    HISTORIC_LINKY_SET,
    HORODATE_LABELS,
    LabelInfo,
    describe,
    labels,
)

REAL_FAMILIES = [f for f in FAMILIES if f != "UNKNOWN"]


def all_tables():
    """(family, mode, table) for every catalogued family and mode."""
    for family in REAL_FAMILIES:
        modes = ("historic", "standard") if family == "LINKY" else (None,)
        for mode in modes:
            yield family, mode, labels(family, mode)


# --- families ----------------------------------------------------------------------------------

def test_families_in_order():
    assert FAMILIES == ("CBEMM", "CBEMM-ICC", "CBETM", "CJE", "ICE", "ICE-4Q", "PME-PMI",
                        "LINKY", "UNKNOWN")


def test_every_family_has_a_description():
    assert set(FAMILY_DESCRIPTIONS) == set(FAMILIES)
    for family in FAMILIES:
        assert FAMILY_DESCRIPTIONS[family].startswith("Compteur")
    # Verbatim from the WebdynTIC manual, section 10.3.1.
    assert FAMILY_DESCRIPTIONS["CBEMM-ICC"] == "Compteur Bleu monophasé (évolution ICC)"
    assert FAMILY_DESCRIPTIONS["UNKNOWN"] == "Compteur non reconnu"


# --- labels() ----------------------------------------------------------------------------------

@pytest.mark.parametrize("family", REAL_FAMILIES)
def test_real_family_is_non_empty_and_well_formed(family):
    table = labels(family)
    assert len(table) >= 10
    for key, info in table.items():
        assert isinstance(info, LabelInfo)
        assert info.label == key
        assert info.action in {0, 1, 2, 4, 8}, key
        assert info.description, key
        assert info.unit in cat.UNITS, (key, info.unit)
        assert info.length is None or (isinstance(info.length, int) and info.length >= 0)


def test_all_modes_well_formed():
    seen = 0
    for family, mode, table in all_tables():
        for key, info in table.items():
            assert info.action in cat.ACTIONS, (family, mode, key)
            assert info.description, (family, mode, key)
            seen += 1
    assert seen > 400


def test_unknown_family_is_empty_and_bad_names_raise():
    assert labels("UNKNOWN") == {}
    with pytest.raises(ValueError):
        labels("COMPTEUR-BIDON")
    with pytest.raises(ValueError):
        labels("LINKY", "turbo")


def test_labels_returns_a_fresh_dict():
    first = labels("CBEMM-ICC")
    first.pop("ADCO")
    assert "ADCO" in labels("CBEMM-ICC")


def test_order_follows_emission():
    # Real CBEMM-ICC frame (manual 10.3.1 / captures): ADCO OPTARIF ISOUSC HCHC HCHP PTEC IINST
    # IMAX PAPP HHPHC MOTDETAT.
    keys = list(labels("CBEMM-ICC"))
    frame = ["ADCO", "OPTARIF", "ISOUSC", "HCHC", "HCHP", "PTEC", "IINST", "IMAX", "PAPP",
             "HHPHC", "MOTDETAT"]
    assert [k for k in keys if k in frame] == frame
    std = list(labels("LINKY"))
    assert std[:3] == ["ADSC", "VTIC", "DATE"]
    assert std.index("EAST") < std.index("EASF01") < std.index("EASF10") < std.index("EASD01")
    assert std[-1] == "PPOINTE"


@pytest.mark.parametrize(
    ("family", "label", "unit"),
    [
        ("CBEMM", "BASE", "Wh"),
        ("CBEMM-ICC", "HCHC", "Wh"),
        ("CBEMM-ICC", "PAPP", "VA"),
        ("CBEMM-ICC", "IINST", "A"),
        ("CBETM", "IINST2", "A"),
        ("CBETM", "PMAX", "W"),
        ("CBEMM", "PEJP", "min"),
        ("LINKY", "URMS1", "V"),
        ("LINKY", "PREF", "kVA"),
        ("LINKY", "SINSTS", "VA"),
        ("LINKY", "EAST", "Wh"),
        ("LINKY", "ERQ1", "VArh"),
        ("LINKY", "CCASN", "W"),
        ("ICE", "EA", "kWh"),
        ("ICE", "ERP", "kvarh"),
        ("ICE", "PA1MN", "kW"),
        ("ICE", "KDC", "%"),
        ("LINKY", "PTEC", ""),
    ],
)
def test_known_units(family, label, unit):
    table = labels(family, "historic" if label == "PTEC" else None)
    assert table[label].unit == unit


def test_known_lengths():
    linky = labels("LINKY")
    assert linky["ADSC"].length == 12
    assert linky["PRM"].length == 14
    assert linky["MSG1"].length == 32
    assert linky["PJOURF+1"].length == 98
    assert linky["DATE"].length == 0
    cbe = labels("CBETM")
    assert cbe["ADCO"].length == 12
    assert cbe["BASE"].length == 9
    assert cbe["IINST1"].length == 3
    assert cbe["MOTDETAT"].length == 6


def test_brief_descriptions():
    assert labels("CBEMM")["HCHC"].description == "Index heures creuses"
    assert labels("CBETM")["IINST1"].description == "Intensité instantanée phase 1"
    assert labels("CBEMM-ICC")["PAPP"].description == "Puissance apparente"


def test_cbe_family_differences():
    cbemm, icc, tri = labels("CBEMM"), labels("CBEMM-ICC"), labels("CBETM")
    # PAPP is the ICC marker.
    assert "PAPP" not in cbemm and "PAPP" in icc and "PAPP" in tri
    assert "IINST" in cbemm and "IINST1" not in cbemm
    assert {"IINST1", "IINST2", "IINST3", "IMAX1", "IMAX2", "IMAX3", "PMAX", "PPOT"} <= set(tri)
    # Short-frame labels.
    assert {"ADIR1", "ADIR2", "ADIR3"} <= set(tri)
    assert "IINST" not in tri and "ADPS" not in tri
    for t in (cbemm, icc, tri):
        assert {"BBRHCJB", "BBRHPJB", "BBRHCJW", "BBRHPJW", "BBRHCJR", "BBRHPJR", "PEJP",
                "DEMAIN", "EJPHN", "EJPHPM"} <= set(t)


def test_cje_ice_pme_sets():
    cje = labels("CJE")
    assert {"JAUNE", "ENERG", "PERCC", "PMAXC", "TDEPA", "PERCP", "PMAXP", "PSOUSC", "PSOUSP",
            "FCOU"} == set(cje)
    ice, ice4q = labels("ICE"), labels("ICE-4Q")
    assert {"CONTRAT", "DATECOUR", "EA", "ERP", "PTCOUR", "PA1MN", "U10MN", "PSHPH",
            "DEBUTp", "FINp1", "EApP", "EAp1DSM", "ERPpHPH", "DATEPA6", "PA6"} <= set(ice)
    ern = {k for k in ice4q if k.startswith("ERN") or k.startswith("DATEERN")}
    assert ern and not (ern & set(ice))
    assert set(ice4q) == set(ice) | ern
    assert {"ERNpP", "ERNp1DSM"} <= ern
    assert all(ice4q[k].unit == "kvarh" for k in ern if k.startswith("ERN"))
    pme = labels("PME-PMI")
    assert {"TRAME", "ADS", "MESURES1", "MESURES2", "EA_s", "ER+_s", "ER-_i", "EAPP_i",
            "PTCOUR1", "PTCOUR2", "PA6_i", "DebP-1", "EaP-1_s2", "TGPHI_i"} <= set(pme)


def test_action_policy():
    linky, hist, ice = labels("LINKY"), labels("LINKY", "historic"), labels("ICE")
    for label in ("ADSC", "PREF", "PCOUP", "VTIC", "PRM", "NGTF"):
        assert linky[label].action == 1, label
    for label in ("ADCO", "OPTARIF", "ISOUSC", "HHPHC"):
        assert hist[label].action == 1, label
    assert ice["CONTRAT"].action == 1
    assert labels("CJE")["PSOUSC"].action == 1
    assert labels("PME-PMI")["ADS"].action == 1
    for label in ("BASE", "HCHC", "HCHP", "EJPHN", "BBRHPJR"):
        assert hist[label].action == 4, label
    for label in ("EAST", "EASF01", "EASD04", "EAIT", "ERQ4"):
        assert linky[label].action == 4, label
    assert ice["EA"].action == 4 and ice["ERP"].action == 4
    assert labels("CJE")["ENERG"].action == 4
    for label in ("IINST", "IINST3", "PAPP"):
        assert hist[label].action == 2, label
    for label in ("SINSTS", "SINSTS2", "IRMS1", "URMS3"):
        assert linky[label].action == 2, label
    assert ice["PA1MN"].action == 2
    for label in ("PTEC", "DEMAIN", "ADPS", "ADIR1", "ADIR3", "MOTDETAT"):
        assert hist[label].action == 8, label
    for label in ("LTARF", "NTARF", "STGE", "RELAIS"):
        assert linky[label].action == 8, label
    assert ice["PTCOUR"].action == 8
    for label in ("DATE", "MSG1", "MSG2", "PJOURF+1", "PPOINTE"):
        assert linky[label].action == 0, label


# --- horodates ---------------------------------------------------------------------------------

def test_horodate_labels_match_reference():
    expected = {"DATE", "SMAXSN", "SMAXSN1", "SMAXSN2", "SMAXSN3", "SMAXSN-1", "SMAXSN1-1",
                "SMAXSN2-1", "SMAXSN3-1", "SMAXIN", "SMAXIN-1", "CCASN", "CCASN-1", "CCAIN",
                "CCAIN-1", "UMOY1", "UMOY2", "UMOY3", "DPM1", "DPM2", "DPM3", "FPM1", "FPM2",
                "FPM3"}
    assert isinstance(HORODATE_LABELS, frozenset)
    assert HORODATE_LABELS == expected


def test_horodate_flag_consistent_with_standard_set():
    linky = labels("LINKY")
    assert HORODATE_LABELS <= set(linky)
    assert {k for k, v in linky.items() if v.horodate} == HORODATE_LABELS
    # No historic family carries a horodate in the standard-mode sense.
    for family in ("CBEMM", "CBEMM-ICC", "CBETM", "CJE", "ICE", "ICE-4Q", "PME-PMI"):
        assert not any(v.horodate for v in labels(family).values()), family


# --- LINKY modes -------------------------------------------------------------------------------

def test_linky_historic_vs_standard():
    std = labels("LINKY")
    assert labels("LINKY", "standard") == std
    hist = labels("LINKY", "historic")
    assert "ADSC" in std and "ADCO" not in std
    assert "ADCO" in hist and "ADSC" not in hist
    assert not set(std) & {"PAPP", "IINST", "PTEC", "OPTARIF"}
    # Union of the single-phase (CBEMM-ICC) and three-phase (CBETM) sets.
    assert set(hist) == set(labels("CBEMM-ICC")) | set(labels("CBETM"))
    assert set(hist) == HISTORIC_LINKY_SET
    assert {"IINST", "IINST1", "PAPP", "PMAX", "PPOT"} <= set(hist)
    # Only a concentrator CBEMM sends GAZ/AUTRE.
    assert "GAZ" not in hist
    assert hist["ISOUSC"].description == "Intensité souscrite"


def test_linky_standard_covers_reference_labels():
    std = set(labels("LINKY"))
    expected = {"ADSC", "VTIC", "DATE", "NGTF", "LTARF", "EAST", "EAIT", "PREF", "PCOUP",
                "SINSTS", "SINSTI", "SMAXIN", "SMAXIN-1", "STGE", "MSG1", "MSG2", "PRM",
                "RELAIS", "NTARF", "NJOURF", "NJOURF+1", "PJOURF+1", "PPOINTE"}
    expected |= {f"EASF{n:02d}" for n in range(1, 11)} | {f"EASD{n:02d}" for n in range(1, 5)}
    expected |= {f"ERQ{n}" for n in range(1, 5)}
    for n in (1, 2, 3):
        expected |= {f"IRMS{n}", f"URMS{n}", f"SINSTS{n}", f"DPM{n}", f"FPM{n}", f"UMOY{n}"}
    assert expected | HORODATE_LABELS == std


# --- describe() --------------------------------------------------------------------------------

def test_describe_exact_in_family_and_global():
    assert describe("BASE").unit == "Wh"
    assert describe("IINST").unit == "A"
    assert describe("PAPP", "CBEMM-ICC").description == "Puissance apparente"
    # The family is searched first: ISOUSC is per phase on a CBETM.
    assert describe("ISOUSC", "CBETM").description == "Intensité souscrite par phase"
    assert describe("ISOUSC").description == "Intensité souscrite"
    # A label from another family is still found.
    assert describe("EAST", "CBEMM").unit == "Wh"
    # DATE: horodate on a Linky, a plain date string on an ICE.
    assert describe("DATE").horodate is True
    assert describe("DATE", "LINKY").horodate is True
    assert describe("DATE", "ICE").horodate is False
    assert describe("DATE", "ICE").length == 17
    # LINKY family looks at both modes.
    assert describe("ADCO", "LINKY").action == 1
    assert describe("IRMS1", "LINKY").unit == "A"


@pytest.mark.parametrize(
    ("variant", "canonical"),
    [
        ("SMAXSN_1", "SMAXSN-1"),
        ("SMAXSN1_1", "SMAXSN1-1"),
        ("SMAXSN3_1", "SMAXSN3-1"),
        ("CCASN_1", "CCASN-1"),
        ("CCAIN_1", "CCAIN-1"),
        ("SMAXIN_1", "SMAXIN-1"),
        ("SINST1", "SINSTS"),
        ("SMAXN", "SMAXSN"),
        ("SMAXN-1", "SMAXSN-1"),
        ("SMAXN_1", "SMAXSN-1"),
    ],
)
def test_describe_variants(variant, canonical):
    info = describe(variant)
    ref = labels("LINKY")[canonical]
    assert info.label == variant  # the spelling received is kept
    assert dataclasses.replace(info, label=canonical) == ref
    assert describe(variant, "LINKY") == info


def test_describe_underscore_labels_of_pme_pmi_are_not_rewritten():
    info = describe("EA_s")
    assert info.description == "Energie active soutirée"
    assert info.unit == "Wh"
    assert describe("DebP_2").description == "Début de la période en cours (mesures 2)"
    assert describe("ER-P-1_i", "PME-PMI").unit == "kvarh"


@pytest.mark.parametrize(
    "label",
    [*(f"EASF{n:02d}" for n in range(1, 11)), "EASD01", "EASD04", "ERQ1", "ERQ4",
     "IRMS1", "IRMS3", "URMS2", "SINSTS3", "SMAXSN2", "SMAXSN2-1", "DPM1", "FPM3",
     "ADIR1", "ADIR2", "ADIR3", "IINST1", "IINST3", "IMAX1", "IMAX3", "BBRHCJB",
     "BBRHPJR", "PEJP", "DEMAIN", "GAZ", "AUTRE", "PPOT", "CONTRAT", "JAUNE", "ERNp1HPH"],
)
def test_describe_knows_reference_labels(label):
    info = describe(label)
    assert info.label == label
    assert info.description
    assert info.action in cat.ACTIONS


def test_describe_case_insensitive_fallback():
    info = describe("papp")
    assert info.label == "papp"
    assert info.unit == "VA"


def test_describe_unknown_and_odd_input_never_raises():
    assert describe("FOOBAR") == LabelInfo("FOOBAR", "", "", None, False, 4)
    assert describe("FOOBAR", "LINKY") == LabelInfo("FOOBAR", "", "", None, False, 4)
    assert describe("") == LabelInfo("", "", "", None, False, 4)
    assert describe("BASE", "NO-SUCH-FAMILY").unit == "Wh"
    assert describe("BASE", "UNKNOWN").unit == "Wh"
    assert describe("X_Y_Z").description == ""
    assert describe(None).description == ""  # type: ignore[arg-type]
    assert describe("BASE", 42).unit == "Wh"  # type: ignore[arg-type]


def test_labelinfo_is_frozen():
    info = describe("BASE")
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.unit = "kWh"  # type: ignore[misc]
    assert not hasattr(info, "__dict__")  # slots
