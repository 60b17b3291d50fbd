"""The spool: records safe on disk, sealed into the files the server receives (DESIGN 6 and 10).

Layout under the data dir:

    records/TIC<n>.jsonl      append-only, one JSON record per line, fsync'd before it is reported
    records/alarms.jsonl      the same for alarms
    records/seal-<ts>/        a seal in progress (see below)
    outbox/DATA, outbox/ALARM, outbox/PARAM, ...   sealed files, named as on the server

Sealing is crash-safe and exactly-once. The record files are renamed into a fresh
``records/seal-<ts>/`` (new records go to new files meanwhile); the data and alarm files are built
there (``.tmp``, fsync, rename); a ``READY`` marker is written; the files are renamed into the
outbox; the directory is removed. After a crash, ``recover()`` finishes any seal directory: without
READY it rebuilds the files from the records it holds, with READY it moves what is left. A record
therefore ends in exactly one sealed file, under one name, whatever instant the process died.
A partial last line (a record being written when the process died, never reported) is dropped.

No row twice for one meter and time (issue 8): a data file's rows are in time order within each
meter's section, and a record whose time is not later than the last one sealed for its input is
dropped (with a log line). The last times sealed are ``state/sealed.json``; a seal's own marks are
the content of its ``READY`` file and reach ``state/sealed.json`` only after it, so a seal re-run
after a crash filters with the marks it was first built with and gives the same file.

Names only grow, per kind (``ticgw.stamps``): a seal's stamp and a parameters file's come from the
gateway's stamp book, so no name is handed out twice, whatever the clock does.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from ticgw import files
from ticgw.files import fsync_dir, write_atomic
from ticgw.stamps import StampBook

from .slots import LAST_SLOT_FILE

log = logging.getLogger("acquisition.spool")

KINDS = ("ALARM", "DATA", "LOG", "CMD", "PARAM")
#: The outbox kinds the acquisition writes (the uplink owns the others, CMD and LOG).
OWN_KINDS = ("ALARM", "DATA", "PARAM")
#: Per input, the time of the last row sealed, under the state directory.
SEALED_FILE = "sealed.json"
#: The state files the spool writes (their stale temporary files are the spool's to remove).
OWN_STATE = ("seq", SEALED_FILE, LAST_SLOT_FILE)


class AppendLog:
    """An append-only file of JSON lines, each fsync'd; a torn last line is cut at open."""

    def __init__(self, path: Path):
        self.path = path
        self._f = None

    def _open(self):
        if self._f is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _cut_torn_tail(self.path)
            self._f = open(self.path, "ab")
        return self._f

    def append(self, record: dict) -> None:
        self.append_many([record])

    def append_many(self, records: list[dict]) -> None:
        """Append records with one write and one fsync; once this returns they are on disk."""
        f = self._open()
        f.write(b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in records))
        f.flush()
        os.fsync(f.fileno())

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def _cut_torn_tail(path: Path) -> None:
    try:
        with open(path, "rb+") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)
                f.flush()
                os.fsync(f.fileno())
                log.warning("%s: dropped a partial record left by a crash", path.name)
    except FileNotFoundError:
        pass


def read_records(path: Path) -> list[dict]:
    out = []
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return out
    for line in data.split(b"\n"):
        if not line:
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            log.warning("%s: unreadable record skipped", path.name)
    return out


class Spool:
    """Records in, sealed files out. The methods do disk work: the service calls them from its
    spool writer (appends, the start of a seal, parameters) and its sealer (the rest of a
    seal), never from its loop. ``next_seq()`` is the only one the loop calls."""

    def __init__(self, data_dir: Path, site: str, euro_dates: bool = True,
                 header_option: bool = False, clock=time.time):
        self.root = Path(data_dir)
        self.site = site
        self.euro = euro_dates
        self.header_option = header_option
        self.clock = clock
        self.records_dir = self.root / "records"
        self.outbox = self.root / "outbox"
        self.state_dir = self.root / "state"
        for d in [self.records_dir, self.state_dir] + [self.outbox / k for k in KINDS]:
            d.mkdir(parents=True, exist_ok=True)
        self._logs: dict[str, AppendLog] = {}
        self.stamps = StampBook(self.state_dir)
        self.seq = self._last_seq()

    # --- records -------------------------------------------------------------------------

    def _log(self, name: str) -> AppendLog:
        lg = self._logs.get(name)
        if lg is None:
            lg = self._logs[name] = AppendLog(self.records_dir / (name + ".jsonl"))
        return lg

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def record(self, input_no: int, serial: str, definition: str, t: float,
               columns: list[str], header: list[str] | None = None) -> dict:
        """A sample row, numbered (not written yet: see :meth:`append_batch`).

        `header` (the column indexes) is kept only when DAQ_HeaderOption asks for the
        `nbVariable` line."""
        rec = {"seq": self.next_seq(), "t": t, "input": input_no, "serial": serial,
               "def": definition, "cols": columns}
        if self.header_option and header:
            rec["hdr"] = header
        return rec

    def alarm(self, t: float, source: str, definition: str, name: str, index: int,
              value: str) -> dict:
        """An alarm row, numbered (not written yet)."""
        return {"seq": self.next_seq(), "t": t, "source": source, "def": definition,
                "name": name, "index": index, "value": value}

    @staticmethod
    def file_of(rec: dict) -> str:
        return "TIC%d" % rec["input"] if "input" in rec else "alarms"

    def append_batch(self, records: list[dict]) -> None:
        """Write records (samples and alarms) with one fsync per record file; once this returns,
        every one of them is on disk."""
        by_file: dict[str, list[dict]] = {}
        for rec in records:
            by_file.setdefault(self.file_of(rec), []).append(rec)
        for name, recs in by_file.items():
            self._log(name).append_many(recs)

    def append_record(self, input_no: int, serial: str, definition: str, t: float,
                      columns: list[str], header: list[str] | None = None) -> dict:
        """Number and write one sample row at once (tools and tests)."""
        rec = self.record(input_no, serial, definition, t, columns, header)
        self.append_batch([rec])
        return rec

    def append_alarm(self, t: float, source: str, definition: str, name: str, index: int,
                     value: str) -> dict:
        rec = self.alarm(t, source, definition, name, index, value)
        self.append_batch([rec])
        return rec

    def _last_seq(self) -> int:
        best = 0
        try:
            best = int((self.state_dir / "seq").read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            pass
        for p in self.records_dir.rglob("*.jsonl"):
            for rec in read_records(p):
                best = max(best, int(rec.get("seq", 0)))
        return best

    def pending_records(self) -> int:
        return sum(len(read_records(p)) for p in self.records_dir.glob("*.jsonl"))

    # --- sealing -------------------------------------------------------------------------

    def seal(self) -> list[Path]:
        """Turn the current records into outbox files; return the files made."""
        return self.finish_seals(self.begin_seal())

    def begin_seal(self) -> list[Path]:
        """The quick part, on the loop: move the current record files into a seal directory
        (new records go to new files from here on). Returns the seal directories to finish:
        this one and any a crash left."""
        pending = sorted(p for p in self.records_dir.glob("seal-*") if p.is_dir())
        sources = [p for p in sorted(self.records_dir.glob("*.jsonl")) if p.stat().st_size]
        if not sources:
            return pending
        for lg in self._logs.values():
            lg.close()
        stamp = self.stamps.take("seal", self.clock(), taken=self._stamp_taken)
        work = self.records_dir / ("seal-" + stamp)
        work.mkdir()
        for p in sources:
            os.replace(p, work / p.name)
        fsync_dir(self.records_dir)
        fsync_dir(work)
        return pending + [work]

    def finish_seals(self, works: list[Path]) -> list[Path]:
        """The slow part (reading, compressing, fsync), safe in a worker thread while the loop
        appends new records: build each seal directory's files and move them to the outbox."""
        made = []
        for work in works:
            if work.is_dir():   # a seal left by a crash may have been finished by recover()
                made += self._finish(work)
        return made

    def recover(self) -> list[Path]:
        """Finish the seals a crash interrupted."""
        made = []
        for work in sorted(self.records_dir.glob("seal-*")):
            if work.is_dir():
                log.info("finishing interrupted seal %s", work.name)
                made += self._finish(work)
        return made

    def _stamp_taken(self, stamp: str) -> bool:
        """A seal stamp already in use here (the stamp book's own record aside)."""
        return (self.records_dir / ("seal-" + stamp)).exists() or any(
            (self.outbox / k / n).exists() for k, n in (
                ("DATA", self.data_name(stamp)), ("ALARM", self.alarm_name(stamp))))

    def data_name(self, stamp: str) -> str:
        return files.data_name(self.site, stamp)

    def alarm_name(self, stamp: str) -> str:
        return files.alarm_name(self.site, stamp)

    def _finish(self, work: Path) -> list[Path]:
        """Finish one seal directory, from wherever a crash left it: build its files and mark it
        READY (unless it is), record what it sealed, move its files into the outbox, remove it."""
        stamp = work.name[len("seal-"):]
        targets = {"DATA": self.data_name(stamp), "ALARM": self.alarm_name(stamp)}
        ready = work / "READY"
        if not ready.exists():
            self._build(work, targets, ready)
        self._keep_marks(_read_marks(ready))
        made = []
        for kind, name in targets.items():
            p = work / name
            if p.exists():
                os.replace(p, self.outbox / kind / name)
                fsync_dir(self.outbox / kind)
                made.append(self.outbox / kind / name)
        _remove_seal_dir(work, ready)
        fsync_dir(self.records_dir)
        return made

    def _build(self, work: Path, targets: dict, ready: Path) -> None:
        """Build a seal's files from its records (again, after a crash: the same files, since
        the marks they are filtered with change only after READY), then write READY with the
        marks this seal brings."""
        for p in work.iterdir():        # files half-built by an interrupted seal
            if not p.name.endswith(".jsonl"):
                p.unlink()
        data_recs, alarm_recs = [], []
        for p in sorted(work.glob("*.jsonl")):
            (alarm_recs if p.name == "alarms.jsonl" else data_recs).extend(read_records(p))
        marks = self.sealed_marks()
        rows = rows_to_seal(data_recs, marks)
        if rows:
            write_atomic(work / targets["DATA"], self._data_file(rows))
        if alarm_recs:
            write_atomic(work / targets["ALARM"], self._alarm_file(alarm_recs))
        seqs = [r["seq"] for r in data_recs + alarm_recs]
        if seqs:
            write_atomic(self.state_dir / "seq", str(max(max(seqs), self.seq)).encode())
        write_atomic(ready, json.dumps(_marks_after(marks, rows), sort_keys=True).encode())

    # --- what was sealed -------------------------------------------------------------------

    def sealed_marks(self) -> dict[str, float]:
        """Per input (its number, as text), the time of the last row sealed."""
        return _read_marks(self.state_dir / SEALED_FILE)

    def _keep_marks(self, marks: dict[str, float]) -> None:
        """Merge a seal's marks into ``state/sealed.json`` (again after a crash: no change)."""
        kept = self.sealed_marks()
        merged = {k: max(v, kept.get(k, v)) for k, v in {**kept, **marks}.items()}
        if merged != kept:
            write_atomic(self.state_dir / SEALED_FILE, json.dumps(merged, sort_keys=True).encode())

    def last_sampled(self) -> float | None:
        """The latest time of a row this spool holds or sealed (a restart samples after it)."""
        times = list(self.sealed_marks().values())
        for p in self.records_dir.glob("*.jsonl"):
            times += [float(r["t"]) for r in read_records(p) if "input" in r]
        return max(times) if times else None

    def _data_file(self, recs: list[dict]) -> bytes:
        return files.data_file(recs, self.euro, self.header_option)

    def _alarm_file(self, recs: list[dict]) -> bytes:
        return files.alarm_file(recs, self.euro)

    # --- parameters and outbox --------------------------------------------------------------

    def write_parameters(self, sections: list[tuple[int, str, str, list[tuple[int, str]]]]) -> Path:
        """The action-1 snapshot: per meter (input, serial, definition, [(index, value)])."""
        t = self.clock()
        path = self.outbox / "PARAM" / files.parameters_name(self.site,
                                                              self.stamps.take("params", t))
        write_atomic(path, files.parameters_file(sections, t, self.euro))
        return path

    def files(self, kind: str) -> list[Path]:
        """Sealed files of a kind, oldest first (names sort by time)."""
        return sorted(p for p in (self.outbox / kind).iterdir() if not files.is_temp_name(p.name))

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file()
                   and (self.records_dir in p.parents or self.outbox in p.parents))

    def enforce_budget(self, max_bytes: int) -> list[str]:
        """Drop the oldest data files until the spool fits; return the names dropped."""
        dropped = []
        data = self.files("DATA")
        while data and self.size() > max_bytes:
            p = data.pop(0)
            p.unlink()
            dropped.append(p.name)
            log.warning("disk budget reached: dropped %s", p.name)
        return dropped

    def remove_stale_temps(self) -> list[Path]:
        """Remove the temporary files a crash left where the acquisition writes: its outbox
        kinds, the record files' directory, its own state files (the uplink cleans CMD and LOG;
        seal directories clean themselves). Call it at start, before anything is written there."""
        stale = [p for d in [self.outbox / k for k in OWN_KINDS] + [self.records_dir]
                 for p in d.iterdir() if p.is_file() and files.is_temp_name(p.name)]
        stale += [p for p in self.state_dir.iterdir() if p.is_file() and any(
            p.name.startswith("." + name + ".") and p.name.endswith(files.TEMP_SUFFIX)
            for name in OWN_STATE)]
        for p in stale:
            p.unlink()
            log.info("removed %s, a temporary file left by a crash", p.name)
        return stale

    def close(self) -> None:
        for lg in self._logs.values():
            lg.close()


# --- sealing, pure parts ----------------------------------------------------------------------

def rows_to_seal(records: list[dict], marks: dict[str, float]) -> list[dict]:
    """The data records a seal delivers: per input in time order, each later than the last one
    sealed for its input (``marks``) and than the one before it; the others are dropped, with a
    log line. Numbered again in that order (``files.data_file`` orders a section's rows by seq)."""
    kept, dropped = [], {}
    last = dict(marks)
    for r in sorted(records, key=lambda r: (r["input"], r["t"], r["seq"])):
        key = str(r["input"])
        if key in last and r["t"] <= last[key]:
            dropped.setdefault(key, []).append(r)
            continue
        last[key] = r["t"]
        kept.append(r)
    for key, recs in dropped.items():
        seqs = ", ".join(str(r["seq"]) for r in recs[:10]) + (", ..." if len(recs) > 10 else "")
        log.warning("TIC%s: %d record(s) dropped at seal (seq %s): a row of that time, or of a "
                    "later one, is already sealed", key, len(recs), seqs)
    return [dict(r, seq=n) for n, r in enumerate(kept, 1)]


def _marks_after(marks: dict[str, float], rows: list[dict]) -> dict[str, float]:
    """The marks once ``rows`` are sealed."""
    out = dict(marks)
    for r in rows:
        key = str(r["input"])
        out[key] = max(out.get(key, r["t"]), r["t"])
    return out


def _read_marks(path: Path) -> dict[str, float]:
    """Marks from a file (``state/sealed.json``, a READY file); an empty READY (a seal made
    before marks existed) has none."""
    try:
        data = json.loads(path.read_text() or "{}")
    except (FileNotFoundError, ValueError):
        return {}
    return {str(k): float(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _remove_seal_dir(work: Path, ready: Path) -> None:
    """Remove a finished seal directory, READY last: a crash on the way leaves READY with (some
    of) the records, never records without READY, which would be sealed again."""
    for p in work.iterdir():  # only files live here (shutil would load bz2 and lzma)
        if p != ready:
            p.unlink()
    ready.unlink(missing_ok=True)
    work.rmdir()
