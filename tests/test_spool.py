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
            sp.append_record(1, "1", "D.ini", T0 + 50 * k + i, [os.urandom(40).hex()])
        sp.seal()
    files = sp.files("DATA")
    assert len(files) == 4
    budget = sp.size() - files[0].stat().st_size
    dropped = sp.enforce_budget(budget)
    assert dropped == [files[0].name]
    assert sp.files("DATA") == files[1:]


# --- issue 8: no row twice for one meter and time, no name twice ---------------------------------

def rows_of(sp, extra=()):
    """(input, time, last column) of every sealed data row, file by file, in file order (the
    outbox's, and ``extra`` files)."""
    out = []
    for p in sorted(list(sp.files("DATA")) + [p for p in extra if "_TIC_" in p.name]):
        inp = None
        for line in lines(p):
            if line.startswith("SNTIC;"):
                inp = int(line.split(";")[2])
            elif not line.startswith("TypeTIC;"):
                out.append((inp, line.split(";")[0], line.split(";")[-1]))
    return out


def upload(root, server):
    """What the uplink does: the outbox's data and alarm files leave for the server."""
    server.mkdir(exist_ok=True)
    for kind in ("DATA", "ALARM"):
        for p in (root / "outbox" / kind).iterdir():
            assert not (server / p.name).exists(), "%s delivered twice" % p.name
            os.replace(p, server / p.name)
    return sorted(server.iterdir())


def test_rows_are_in_time_order_within_a_section_and_a_time_is_sealed_once(tmp_path, caplog):
    sp = make(tmp_path)
    for t, v in [(T0 + 600, "b"), (T0, "a"), (T0 + 600, "b again"), (T0 + 1200, "c")]:
        sp.append_record(1, "1", "D.ini", t, [v])
    sp.append_record(2, "2", "D.ini", T0 + 600, ["other meter"])
    sp.seal()
    assert rows_of(sp) == [(1, row_time(T0), "a"), (1, row_time(T0 + 600), "b"),
                           (1, row_time(T0 + 1200), "c"), (2, row_time(T0 + 600), "other meter")]
    assert "TIC1: 1 record(s) dropped at seal" in caplog.text


def test_a_time_already_sealed_is_never_sealed_again(tmp_path):
    sp = make(tmp_path)
    sp.append_record(1, "1", "D.ini", T0 + 1200, ["first"])
    sp.append_record(2, "2", "D.ini", T0, ["meter 2"])
    sp.seal()
    # a clock stepped back: rows at or before the last one sealed for input 1 go nowhere
    sp.append_record(1, "1", "D.ini", T0 + 600, ["earlier"])
    sp.append_record(1, "1", "D.ini", T0 + 1200, ["same time"])
    sp.append_record(1, "1", "D.ini", T0 + 1800, ["later"])
    sp.append_record(2, "2", "D.ini", T0 + 600, ["meter 2 later"])
    sp.seal()
    assert [r[2] for r in rows_of(sp)] == ["first", "meter 2", "later", "meter 2 later"]
    # the marks survive a restart
    sp2 = make(tmp_path)
    sp2.append_record(1, "1", "D.ini", T0 + 1800, ["again"])
    assert [p for p in sp2.seal() if p.parent.name == "DATA"] == []
    assert sp2.last_sampled() == T0 + 1800


def test_two_seals_within_a_second_and_after_a_backward_step_have_new_names(tmp_path):
    times = iter([T0, T0, T0 + 0.5, T0 - 3600, T0 + 1])
    sp = Spool(tmp_path, "SITE", clock=lambda: next(times))
    names = []
    for i in range(5):
        sp.append_record(1, "1", "D.ini", T0 + 600 * i, [str(i)])
        sp.append_alarm(T0 + 600 * i, "TIC1", "D.ini", "PTEC", 1, str(i))
        made = sp.seal()
        assert sorted(p.parent.name for p in made) == ["ALARM", "DATA"]
        names.append([p.name for p in made if p.parent.name == "DATA"][0])
        for p in made:
            p.unlink()                       # uploaded: the outbox no longer shows the name
    assert names == sorted(set(names)) and len(names) == 5
    assert names[0] == "SITE_TIC_251123_121320.csv.gz"
    # parameters files too: within a second, and after a step back
    times = iter([T0, T0, T0 - 60])
    sp = Spool(tmp_path, "SITE", clock=lambda: next(times))
    params = [sp.write_parameters([(1, "1", "D.ini", [(1, "1")])]) for _ in range(3)]
    assert [p.name for p in params] == sorted({p.name for p in params})


def test_a_seal_killed_at_any_write_loses_no_row_and_seals_none_twice(tmp_path, monkeypatch):
    """The process dies (SystemExit, and nothing runs after it) before each rename, unlink,
    mkdir or rmdir a seal makes; the next start removes the temporary files left, finishes
    the seal, and a later seal takes the rest: every record once, alarms once."""

    def fill(sp):
        for i in range(4):
            sp.append_record(1, "1", "D.ini", T0 + 600 * (3 - i), [str(i)])   # out of order
            sp.append_record(2, "2", "D.ini", T0 + 600 * i, ["m2-%d" % i])
        sp.append_alarm(T0, "TIC1", "D.ini", "PTEC", 1, "HC..")

    def seal_dying_at(root, kill_at):
        """Seal, the process dying at the `kill_at`-th disk change; the changes counted."""
        sp = make(root)
        fill(sp)
        count = [0]

        def dying(real):
            def call(*args, **kwargs):
                if kill_at is not None and count[0] >= kill_at:
                    count[0] += 1
                    raise SystemExit("killed")
                count[0] += 1
                return real(*args, **kwargs)
            return call

        with monkeypatch.context() as m:
            for name in ("replace", "unlink", "mkdir", "rmdir"):
                m.setattr(os, name, dying(getattr(os, name)))
            try:
                sp.seal()
            except SystemExit:
                pass
        return count[0]

    reference = tmp_path / "reference"
    writes = seal_dying_at(reference, None)
    expected = rows_of(make(reference))
    assert len(expected) == 8 and writes > 10
    for kill_at in range(writes):
        root = tmp_path / ("killed-%d" % kill_at)
        seal_dying_at(root, kill_at)
        server = root.parent / ("server-%d" % kill_at)
        upload(root, server)                              # what reached the outbox is sent
        sp = make(root)                                   # the next start
        sp.remove_stale_temps()
        sp.recover()
        sp.seal()
        delivered = upload(root, server)
        assert rows_of(sp, delivered) == expected, "killed at write %d" % kill_at
        assert [l for p in delivered if "_AL_" in p.name for l in lines(p)] == [
            row_time(T0) + ";TIC1;D.ini;PTEC;1;HC.."], "killed at write %d" % kill_at
        assert not list((root / "records").glob("seal-*"))
        left = [p for d in ("records", "outbox/DATA", "outbox/ALARM") for p in (root / d).iterdir()
                if p.name.startswith(".") or p.name.endswith(".tmp")]
        assert not left, "killed at write %d" % kill_at


def test_stale_temporary_files_are_removed_and_the_others_kept(tmp_path):
    sp = make(tmp_path)
    out = tmp_path / "outbox"
    ours = [out / "DATA" / ".SITE_TIC_251123_121320.csv.gz.1a2b3c4d.tmp",
            out / "ALARM" / "SITE_AL_251123_121320.csv.gz.tmp", out / "PARAM" / ".hidden",
            tmp_path / "records" / ".TIC1.jsonl.1a2b3c4d.tmp",
            tmp_path / "state" / ".seq.1a2b3c4d.tmp", tmp_path / "state" / ".sealed.json.0f.tmp",
            tmp_path / "state" / ".last_slot.0f.tmp"]
    kept = [out / "DATA" / "SITE_TIC_251123_121320.csv.gz",
            out / "ALARM" / "SITE_AL_251123_121320.csv.gz", tmp_path / "records" / "TIC1.jsonl",
            out / "CMD" / ".SITE_ACK_251123_121320.csv.1a2b3c4d.tmp",     # the uplink's
            out / "LOG" / "SITE_251123_121320.log.gz.tmp",
            tmp_path / "state" / ".journal.log.1a2b3c4d.tmp",              # another writer's
            tmp_path / "state" / ".stamps.json.1a2b3c4d.tmp"]
    for p in ours + kept:
        p.write_bytes(b"x")
    assert sorted(sp.remove_stale_temps()) == sorted(ours)
    assert all(p.exists() for p in kept) and not any(p.exists() for p in ours)
