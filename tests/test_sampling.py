"""Definition files and sampling per action code; alarms on change and on overload."""
import pytest

from tic import definitions
from tic.definitions import Definition, DefinitionError, Variable, parse
from services.acquisition.sampler import Sampler

DEF = Definition("S_TIC_T.ini", (
    Variable(1, "ADCO", "Adresse", "", 1),
    Variable(2, "BASE", "Index", "Wh", 4),
    Variable(3, "IINST", "Intensité", "A", 2),
    Variable(4, "PTEC", "Période", "", 8),
    Variable(5, "MOTDETAT", "Etat", "", 0),
    Variable(6, "ADPS", "Dépassement", "A", 8),
))


def test_render_parse_round_trip():
    assert parse(DEF.name, DEF.render()) == DEF
    assert DEF.columns() == ["2", "3 min", "3 max", "3 avg", "4", "6"]


@pytest.mark.parametrize("text,reason", [
    ("1;ADCO;x;;3\n", "action"),
    ("a;ADCO;x;;1\n", "index"),
    ("1;ADCO;x;1\n", "5 fields"),
    ("1;ADCO;x;;1\n1;BASE;y;;4\n", "repeated"),
    ("# nothing\n", "no variable"),
])
def test_bad_definition_names_line_and_reason(text, reason):
    with pytest.raises(DefinitionError, match=reason):
        parse("X.ini", text)


def test_default_definition_for_every_family():
    for fam in ("CBEMM", "CBEMM-ICC", "CBETM", "CJE", "ICE", "ICE-4Q", "PME-PMI", "LINKY"):
        d = definitions.default_for("WEBDYN", fam)
        assert d.name == "WEBDYN_TIC_%s.ini" % fam
        assert d.sampled(), fam
        assert parse(d.name, d.render()) == d
    assert definitions.default_for("W", "LINKY", "historic").name == "W_TIC_LINKY-HIST.ini"
    g = definitions.generate("W", ["FOO", "BAR"], 2)
    assert g.name == "W_TIC_UNKNOWN2.ini" and [v.label for v in g.variables] == ["FOO", "BAR"]


def test_sampling_actions():
    s = Sampler(DEF, "TIC1")
    for i, (base, iinst, ptec) in enumerate([("000000100", "009", "HP.."),
                                             ("000000110", "012", "HP.."),
                                             ("000000120", "010", "HC..")]):
        alarms = s.add({"ADCO": "021528603314", "BASE": base, "IINST": iinst, "PTEC": ptec,
                        "MOTDETAT": "000000"}, 100.0 + i)
    assert [(a.name, a.index, a.value) for a in alarms] == [("PTEC", 4, "HC..")]
    assert s.row() == ["000000120", "009", "012", "010", "HC..", ""]
    assert s.params == {"ADCO": "021528603314"}
    assert s.row() is None  # reset after each period


def test_first_value_raises_no_alarm():
    s = Sampler(DEF, "TIC1")
    assert s.add({"PTEC": "HP.."}, 0) == []


def test_decimal_comma_mean():
    d = Definition("X.ini", (Variable(1, "TGPHI", "", "", 2),))
    s = Sampler(d, "TIC1")
    for v in ("00001,20", "00001,40"):
        s.add({"TGPHI": v}, 0)
    assert s.row() == ["00001,20", "00001,40", "1.30"]


def test_adps_overload_raised_and_cleared():
    s = Sampler(DEF, "TIC1")
    assert s.add({"IINST": "050"}, 0) == []
    (a,) = s.add({"IINST": "050", "ADPS": "050"}, 1)
    assert (a.name, a.value, a.raised) == ("ADPS", "050", True) and s.overloaded
    assert s.add({"IINST": "051", "ADPS": "051"}, 2) == []
    (a,) = s.add({"IINST": "020"}, 3)
    assert (a.name, a.raised) == ("ADPS", False) and not s.overloaded


def test_cbetm_short_long_cycle_is_one_overload():
    d = definitions.default_for("W", "CBETM")
    s = Sampler(d, "TIC2")
    short = {"ADIR1": "061", "ADCO": "1", "IINST1": "061", "IINST2": "000", "IINST3": "000"}
    long_ = {"ADCO": "1", "OPTARIF": "BASE", "ISOUSC": "20", "IINST1": "061", "IINST2": "000",
             "IINST3": "000"}
    raised = [a for _ in range(3) for f in [short] * 20 + [long_] for a in s.add(f, 0)]
    assert [(a.name, a.raised) for a in raised] == [("ADIR1", True)]
    cleared = s.add(long_, 1) + s.add(long_, 2)
    assert [(a.name, a.raised) for a in cleared] == [("ADIR1", False)]


def test_stge_overload_bit():
    d = definitions.default_for("W", "LINKY")
    s = Sampler(d, "TIC3")
    s.add({"STGE": "003A0001"}, 0)
    alarms = s.add({"STGE": "003A0081"}, 1)
    assert any(a.name == "STGE" and a.raised for a in alarms)
    alarms = s.add({"STGE": "003A0001"}, 2)
    assert any(a.name == "STGE" and not a.raised for a in alarms)
