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
"""
from __future__ import annotations

import gzip
import json
import logging
import os
import time
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger("acquisition.spool")

KINDS = ("ALARM", "DATA", "LOG", "CMD", "PARAM")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def name_stamp(t: float) -> str:
    """YYMMDD_hhmmss, UTC: a name sort is a time sort (DESIGN 6)."""
    return datetime.fromtimestamp(t, timezone.utc).strftime("%y%m%d_%H%M%S")


def row_time(t: float, euro: bool = True) -> str:
    """DD/MM/YY-hh:mm:ss UTC, or YY/MM/DD-hh:mm:ss when FTP_EuroDateFormat=0."""
    fmt = "%d/%m/%y-%H:%M:%S" if euro else "%y/%m/%d-%H:%M:%S"
    return datetime.fromtimestamp(t, timezone.utc).strftime(fmt)


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
        f = self._open()
        f.write(json.dumps(record, separators=(",", ":")).encode() + b"\n")
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
    """Records in, sealed files out. All methods run on the service's loop thread."""

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
        self.seq = self._last_seq()

    # --- records -------------------------------------------------------------------------

    def _log(self, name: str) -> AppendLog:
        lg = self._logs.get(name)
        if lg is None:
            lg = self._logs[name] = AppendLog(self.records_dir / (name + ".jsonl"))
        return lg

    def append_record(self, input_no: int, serial: str, definition: str, t: float,
                      columns: list[str], header: list[str] | None = None) -> dict:
        """Write one sample row; once this returns, the record is on disk.

        `header` (the column indexes) is kept only when DAQ_HeaderOption asks for the
        `nbVariable` line."""
        self.seq += 1
        rec = {"seq": self.seq, "t": t, "input": input_no, "serial": serial, "def": definition,
               "cols": columns}
        if self.header_option and header:
            rec["hdr"] = header
        self._log("TIC%d" % input_no).append(rec)
        return rec

    def append_alarm(self, t: float, source: str, definition: str, name: str, index: int,
                     value: str) -> dict:
        self.seq += 1
        rec = {"seq": self.seq, "t": t, "source": source, "def": definition, "name": name,
               "index": index, "value": value}
        self._log("alarms").append(rec)
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
        stamp = self._free_stamp()
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

    def _free_stamp(self) -> str:
        t = self.clock()
        while True:
            stamp = name_stamp(t)
            taken = (self.records_dir / ("seal-" + stamp)).exists() or any(
                (self.outbox / k / n).exists() for k, n in (
                    ("DATA", self.data_name(stamp)), ("ALARM", self.alarm_name(stamp))))
            if not taken:
                return stamp
            t += 1

    def data_name(self, stamp: str) -> str:
        return "%s_TIC_%s.csv.gz" % (self.site, stamp)

    def alarm_name(self, stamp: str) -> str:
        return "%s_AL_%s.csv.gz" % (self.site, stamp)

    def _finish(self, work: Path) -> list[Path]:
        stamp = work.name[len("seal-"):]
        targets = {"DATA": self.data_name(stamp), "ALARM": self.alarm_name(stamp)}
        ready = work / "READY"
        if not ready.exists():
            for p in work.glob("*.gz*"):
                p.unlink()
            data_recs, alarm_recs = [], []
            for p in sorted(work.glob("*.jsonl")):
                (alarm_recs if p.name == "alarms.jsonl" else data_recs).extend(read_records(p))
            if data_recs:
                write_atomic(work / targets["DATA"], self._data_file(data_recs))
            if alarm_recs:
                write_atomic(work / targets["ALARM"], self._alarm_file(alarm_recs))
            seqs = [r["seq"] for r in data_recs + alarm_recs]
            if seqs:
                write_atomic(self.state_dir / "seq", str(max(max(seqs), self.seq)).encode())
            write_atomic(ready, b"")
        made = []
        for kind, name in targets.items():
            p = work / name
            if p.exists():
                os.replace(p, self.outbox / kind / name)
                fsync_dir(self.outbox / kind)
                made.append(self.outbox / kind / name)
        for p in work.iterdir():  # only files live here (shutil would load bz2 and lzma)
            p.unlink()
        work.rmdir()
        fsync_dir(self.records_dir)
        return made

    def _data_file(self, recs: list[dict]) -> bytes:
        """Per meter a section: SNTIC;<serial>;<input>, TypeTIC;<definition>, rows."""
        lines: list[str] = []
        sections: dict[tuple, list[dict]] = {}
        for r in sorted(recs, key=lambda r: (r["input"], r["seq"])):
            sections.setdefault((r["input"], r["serial"], r["def"]), []).append(r)
        for (inp, serial, definition), rows in sections.items():
            lines.append("SNTIC;%s;%03d" % (serial, inp))
            lines.append("TypeTIC;%s" % definition)
            if self.header_option and rows:
                lines.append("nbVariable;%s" % ";".join(rows[0].get("hdr") or
                                                       [str(i + 1) for i in range(len(rows[0]["cols"]))]))
            for r in rows:
                lines.append(";".join([row_time(r["t"], self.euro)] + list(r["cols"])))
        return gzip.compress(("\r\n".join(lines) + "\r\n").encode("ascii", "replace"), mtime=0)

    def _alarm_file(self, recs: list[dict]) -> bytes:
        lines = [";".join([row_time(r["t"], self.euro), r["source"], r["def"], r["name"],
                           str(r["index"]), r["value"]]) for r in sorted(recs, key=lambda r: r["seq"])]
        return gzip.compress(("\r\n".join(lines) + "\r\n").encode("ascii", "replace"), mtime=0)

    # --- parameters and outbox --------------------------------------------------------------

    def write_parameters(self, sections: list[tuple[int, str, str, list[tuple[int, str]]]]) -> Path:
        """The action-1 snapshot: per meter (input, serial, definition, [(index, value)])."""
        t = self.clock()
        lines = []
        for inp, serial, definition, values in sections:
            lines.append("SNTIC;%s;%03d" % (serial, inp))
            lines.append("TypeTIC;%s" % definition)
            lines.append("nbVariable;%s" % ";".join(str(i) for i, _ in values))
            lines.append(";".join([row_time(t, self.euro)] + [v for _, v in values]))
        name = "%s_TIC_P_%s.csv.gz" % (self.site, name_stamp(t))
        path = self.outbox / "PARAM" / name
        write_atomic(path, gzip.compress(("\r\n".join(lines) + "\r\n").encode("ascii", "replace"),
                                         mtime=0))
        return path

    def files(self, kind: str) -> list[Path]:
        """Sealed files of a kind, oldest first (names sort by time)."""
        return sorted(p for p in (self.outbox / kind).iterdir() if not p.name.endswith(".tmp"))

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

    def close(self) -> None:
        for lg in self._logs.values():
            lg.close()
