"""The spool: records fsync'd, sealed exactly once, crash recovery at every step, budget."""
import gzip
import os

import pytest

from services.acquisition import spool as spool_mod
from services.acquisition.spool import Spool
from ticgw.files import row_time

T0 = 1763900000.0  # 2025-11-23 12:13:20 UTC


def lines(p):
    return gzip.decompress(p.read_bytes()).decode().split("\r\n")[:-1]


def make(tmp_path, **kw):
    clock = iter(T0 + i for i in range(10_000))
    return Spool(tmp_path, "SITE", clock=lambda: next(clock), **kw)


def test_seal_formats(tmp_path):
    sp = make(tmp_path)
    sp.append_record(1, "021528603314", "SITE_TIC_CBEMM-ICC.ini", T0, ["000723392", "HP.."])
    sp.append_record(2, "041876012345", "SITE_TIC_LINKY.ini", T0, ["012345678"])
    sp.append_record(1, "021528603314", "SITE_TIC_CBEMM-ICC.ini", T0 + 600, ["000723400", "HC.."])
    sp.append_alarm(T0 + 5, "TIC1", "SITE_TIC_CBEMM-ICC.ini", "PTEC", 6, "HC..")
    made = sp.seal()
    names = sorted(p.name for p in made)
    assert names == ["SITE_AL_251123_121321.csv.gz", "SITE_TIC_251123_121321.csv.gz"] or \
        all(n.startswith(("SITE_AL_", "SITE_TIC_")) for n in names)
    data = next(p for p in made if "_TIC_" in p.name)
    assert lines(data) == [
        "SNTIC;021528603314;001", "TypeTIC;SITE_TIC_CBEMM-ICC.ini",
        "23/11/25-12:13:20;000723392;HP..", "23/11/25-12:23:20;000723400;HC..",
        "SNTIC;041876012345;002", "TypeTIC;SITE_TIC_LINKY.ini", "23/11/25-12:13:20;012345678"]
    alarm = next(p for p in made if "_AL_" in p.name)
    assert lines(alarm) == ["23/11/25-12:13:25;TIC1;SITE_TIC_CBEMM-ICC.ini;PTEC;6;HC.."]
    assert sp.seal() == []  # nothing new


def test_date_formats():
    assert row_time(T0) == "23/11/25-12:13:20"
    assert row_time(T0, euro=False) == "25/11/23-12:13:20"


def test_header_option(tmp_path):
    sp = make(tmp_path, header_option=True)
    sp.append_record(1, "1", "D.ini", T0, ["a", "b", "c"], header=["4 min", "4 max", "4 avg"])
    (data,) = [p for p in sp.seal()]
    assert lines(data)[2] == "nbVariable;4 min;4 max;4 avg"


def test_torn_line_dropped_and_seq_continues(tmp_path):
    sp = make(tmp_path)
    sp.append_record(1, "1", "D.ini", T0, ["x"])
    sp.close()
    with open(tmp_path / "records" / "TIC1.jsonl", "ab") as f:
        f.write(b'{"seq":2,"t":')  # the process died mid-write: never reported
    sp2 = make(tmp_path)
    assert sp2.seq == 1
    sp2.append_record(1, "1", "D.ini", T0 + 1, ["y"])
    (data,) = sp2.seal()
    assert [l.split(";")[-1] for l in lines(data)[2:]] == ["x", "y"]


@pytest.mark.parametrize("crash_at", ["after_rename", "after_build", "after_ready",
                                      "after_first_move"])
def test_crash_at_every_seal_step_gives_exactly_once(tmp_path, monkeypatch, crash_at):
    sp = make(tmp_path)
    for i in range(5):
        sp.append_record(1, "1", "D.ini", T0 + i, [str(i)])
    sp.append_alarm(T0, "TIC1", "D.ini", "PTEC", 1, "HC..")

    class Crash(Exception):
        pass

    real_replace, real_write = os.replace, spool_mod.write_atomic
    moves = []

    def replace(a, b):
        real_replace(a, b)
        if "outbox" in str(b):
            moves.append(b)
            if crash_at == "after_first_move":
                raise Crash

    def write_atomic(path, data):
        real_write(path, data)
        if path.name == "READY" and crash_at == "after_ready":
            raise Crash
        if path.name.endswith(".csv.gz") and crash_at == "after_build":
            raise Crash

    monkeypatch.setattr(spool_mod.os, "replace", replace)
    monkeypatch.setattr(spool_mod, "write_atomic", write_atomic)
    if crash_at == "after_rename":
        monkeypatch.setattr(Spool, "_finish", lambda self, work: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        sp.seal()
    monkeypatch.undo()
    sp2 = make(tmp_path)
    sp2.append_record(1, "1", "D.ini", T0 + 10, ["10"])
    sp2.seal()
    rows = []
    for p in sp2.files("DATA"):
        rows += [l.split(";")[-1] for l in lines(p)[2:]]
    assert sorted(rows, key=int) == ["0", "1", "2", "3", "4", "10"]
    alarms = [l for p in sp2.files("ALARM") for l in lines(p)]
    assert len(alarms) == 1
    assert not list((tmp_path / "records").glob("seal-*"))


def test_parameters_file(tmp_path):
    sp = make(tmp_path)
    p = sp.write_parameters([(1, "021528603314", "D.ini", [(1, "021528603314"), (2, "HC..")])])
    assert p.parent.name == "PARAM" and p.name.startswith("SITE_TIC_P_")
    assert lines(p)[2:] == ["nbVariable;1;2", "23/11/25-12:13:20;021528603314;HC.."]


def test_budget_drops_oldest_data(tmp_path):
    sp = make(tmp_path)
    for k in range(4):
        for i in range(50):
            sp.append_record(1, "1", "D.ini", T0 + i, [os.urandom(40).hex()])
        sp.seal()
    files = sp.files("DATA")
    assert len(files) == 4
    budget = sp.size() - files[0].stat().st_size
    dropped = sp.enforce_budget(budget)
    assert dropped == [files[0].name]
    assert sp.files("DATA") == files[1:]
