"""The stamp book (ticgw.stamps): per kind, name stamps only grow, across processes and crashes."""
from __future__ import annotations

import multiprocessing

import pytest

from ticgw.files import name_stamp
from ticgw.stamps import StampBook, stamp_time

T = 1_714_564_800.0  # 2024-05-01 12:00:00 UTC


def test_the_clock_stamp_or_one_second_after_the_last(tmp_path):
    book = StampBook(tmp_path)
    assert book.take("ack", T) == "240501_120000"
    assert book.take("ack", T + 0.4) == "240501_120001"      # the same second: the next one
    assert book.take("ack", T - 3600) == "240501_120002"     # a backward clock step
    assert book.take("ack", T + 60) == "240501_120100"       # the clock is ahead again
    assert book.take("log", T) == "240501_120000"            # kinds are independent
    assert StampBook(tmp_path).last("ack") == "240501_120100"  # on disk


def test_taken_refuses_more(tmp_path):
    on_disk = {"240501_120000", "240501_120001"}
    assert StampBook(tmp_path).take("seal", T, taken=on_disk.__contains__) == "240501_120002"


def test_a_damaged_book_falls_back_to_the_clock(tmp_path):
    (tmp_path / "stamps.json").write_text("{not json")
    assert StampBook(tmp_path).take("log", T) == name_stamp(T)
    (tmp_path / "stamps.json").write_text('{"log": "garbage"}')
    assert StampBook(tmp_path).take("log", T) == name_stamp(T)


def test_unknown_kind_is_an_error(tmp_path):
    with pytest.raises(ValueError):
        StampBook(tmp_path).take("photo", T)


def _take_many(state_dir, n, out):
    book = StampBook(state_dir)
    out.put([book.take("seal", T) for _ in range(n)])


def test_processes_sharing_the_book_never_get_the_same_stamp(tmp_path):
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_take_many, args=(tmp_path, 40, out)) for _ in range(3)]
    for p in procs:
        p.start()
    stamps = [s for _ in procs for s in out.get(timeout=30)]
    for p in procs:
        p.join(10)
    assert len(stamps) == 120 and len(set(stamps)) == 120
    assert stamp_time(max(stamps)) - stamp_time(min(stamps)) == 119
