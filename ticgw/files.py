"""The files the gateway writes, in one place: how they are written (atomically), how they are
named (DESIGN section 6) and what is in them (data, alarm, parameters, acknowledgement).

The acquisition builds data, alarm and parameters files with these writers, the uplink the
acknowledgement and log files, the configuration store writes its INI files with
:func:`write_atomic`; the names come from here, so a name sort is a time sort everywhere.
"""
from __future__ import annotations

import contextlib
import fcntl
import gzip
import os
import re
from datetime import datetime, timezone
from pathlib import Path

TEMP_SUFFIX = ".tmp"


# --- writing ------------------------------------------------------------------------------------

def fsync_dir(directory) -> None:
    """Make a rename or an unlink in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves either the old or the new file.

    A temporary file in the same directory (a hidden name ending in ``.tmp``, which no reader
    takes for a real file) is written, flushed and fsync'd, renamed over the target, and the
    directory is fsync'd so the rename itself is durable.
    """
    path = Path(path)
    tmp = path.with_name(".%s.%s%s" % (path.name, os.urandom(4).hex(), TEMP_SUFFIX))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)


@contextlib.contextmanager
def locked(lock_path):
    """Hold an exclusive ``flock`` on ``lock_path`` (made if missing): what processes sharing a
    file (the journal, the stamp book) take around a read-modify-write."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def sha256_file(path) -> str:
    """The SHA-256 (hex) of a file, read in chunks (a firmware package, a wheel)."""
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def is_temp_name(name: str) -> bool:
    """Names :func:`write_atomic` uses for its temporary files (and hidden files)."""
    return name.startswith(".") or name.endswith(TEMP_SUFFIX)


# --- names ----------------------------------------------------------------------------------------

def name_stamp(t: float) -> str:
    """YYMMDD_hhmmss, UTC: a name sort is a time sort (DESIGN 6)."""
    return datetime.fromtimestamp(t, timezone.utc).strftime("%y%m%d_%H%M%S")


def row_time(t: float, euro: bool = True) -> str:
    """DD/MM/YY-hh:mm:ss UTC, or YY/MM/DD-hh:mm:ss when FTP_EuroDateFormat=0."""
    fmt = "%d/%m/%y-%H:%M:%S" if euro else "%y/%m/%d-%H:%M:%S"
    return datetime.fromtimestamp(t, timezone.utc).strftime(fmt)


def data_name(site: str, stamp: str) -> str:
    return "%s_TIC_%s.csv.gz" % (site, stamp)


def alarm_name(site: str, stamp: str) -> str:
    return "%s_AL_%s.csv.gz" % (site, stamp)


def parameters_name(site: str, stamp: str) -> str:
    return "%s_TIC_P_%s.csv.gz" % (site, stamp)


def command_name(site: str) -> str:
    return "%s_CMD.csv" % site


def ack_name(site: str, stamp: str) -> str:
    return "%s_ACK_%s.csv" % (site, stamp)


def log_name(site: str, stamp: str) -> str:
    return "%s_%s.log.gz" % (site, stamp)


def debug_log_name(site: str, stamp: str) -> str:
    return "%s_%s_debug.log.gz" % (site, stamp)


_STAMP = re.compile(r"_(\d{6}_\d{6})")


def time_order(path) -> tuple:
    """Sort key: oldest first by the YYMMDD_hhmmss stamp in the name, whatever the site prefix
    (it may have changed between two files)."""
    name = Path(path).name
    m = _STAMP.search(name)
    return (m.group(1) if m else "", name)


# --- contents ---------------------------------------------------------------------------------

def _csv_gz(lines: list[str]) -> bytes:
    """CRLF lines, ASCII (a value from a meter is ASCII; anything else is replaced), gzip with no
    time in its header (the same records always give the same bytes)."""
    return gzip.compress(("\r\n".join(lines) + "\r\n").encode("ascii", "replace"), mtime=0)


def data_file(records: list[dict], euro: bool = True, header_option: bool = False) -> bytes:
    """Per meter a section: ``SNTIC;<serial>;<input>``, ``TypeTIC;<definition>``, optionally
    ``nbVariable;<indexes>``, then one ``date-time;v1;...`` row per record.

    A record is ``{"seq", "t", "input", "serial", "def", "cols"[, "hdr"]}``."""
    lines: list[str] = []
    sections: dict[tuple, list[dict]] = {}
    for r in sorted(records, key=lambda r: (r["input"], r["t"], r["seq"])):  # rows in time order
        sections.setdefault((r["input"], r["serial"], r["def"]), []).append(r)
    for (inp, serial, definition), rows in sections.items():
        lines.append("SNTIC;%s;%03d" % (serial, inp))
        lines.append("TypeTIC;%s" % definition)
        if header_option and rows:
            header = rows[0].get("hdr") or [str(i + 1) for i in range(len(rows[0]["cols"]))]
            lines.append("nbVariable;%s" % ";".join(header))
        for r in rows:
            lines.append(";".join([row_time(r["t"], euro)] + list(r["cols"])))
    return _csv_gz(lines)


def alarm_file(records: list[dict], euro: bool = True) -> bytes:
    """``date-time;source;definition;name;index;value`` per alarm, in record order."""
    lines = [";".join([row_time(r["t"], euro), r["source"], r["def"], r["name"],
                       str(r["index"]), r["value"]])
             for r in sorted(records, key=lambda r: r["seq"])]
    return _csv_gz(lines)


def parameters_file(sections, t: float, euro: bool = True) -> bytes:
    """The action-1 snapshot: per meter ``(input, serial, definition, [(index, value)...])``."""
    lines = []
    for inp, serial, definition, values in sections:
        lines.append("SNTIC;%s;%03d" % (serial, inp))
        lines.append("TypeTIC;%s" % definition)
        lines.append("nbVariable;%s" % ";".join(str(i) for i, _ in values))
        lines.append(";".join([row_time(t, euro)] + [v for _, v in values]))
    return _csv_gz(lines)


def ack_file(acks: list[str]) -> bytes:
    """The acknowledgement of a command file: one line per command, CRLF, UTF-8."""
    return "".join(a + "\r\n" for a in acks).encode("utf-8")
