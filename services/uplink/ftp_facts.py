"""What an FTP server says about its files, parsed: MLST/MLSD facts, SIZE and MDTM replies, LIST
lines (with ftputil's parsers), the directory in a PWD reply."""
from __future__ import annotations

import calendar
import ftplib
import re
import stat as stat_mod
import time
import warnings
from typing import NamedTuple

with warnings.catch_warnings():
    # ftputil 5.2 warns on import that its default path encoding changes in 6.0; only its LIST
    # parsers are used here, on text already decoded by the session.
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="ftputil")
    warnings.filterwarnings("ignore", message=".*default file path encoding.*")
    import ftputil.error
    import ftputil.stat

STATUS_LINE = re.compile(r"^\d{3}[ -]")


class RemoteFile(NamedTuple):
    name: str
    size: int
    mtime: float | None  # epoch seconds, UTC; None when the server does not say
    precision: int = 1   # seconds the time is rounded to: 1 (MLSD), 60 or 86400 (LIST)


def parse_mlst_time(value: str | None) -> float | None:
    """RFC 3659 ``YYYYMMDDHHMMSS[.sss]`` (UTC) to epoch seconds."""
    if not value or len(value) < 14:
        return None
    try:
        seconds = calendar.timegm(time.strptime(value[:14], "%Y%m%d%H%M%S"))
        fraction = float("0" + value[14:]) if value[14:15] == "." else 0.0
    except ValueError:
        return None
    return seconds + fraction


LIST_PARSERS = (ftputil.stat.UnixParser(), ftputil.stat.MSParser())


def pwd_path(resp: str) -> str:
    """The directory in a PWD reply: 257 "/home/gw" is the current directory."""
    m = re.search(r'"((?:[^"]|"")*)"', resp)
    return m.group(1).replace('""', '"') if m else "/"


def is_regular(mode: int | None) -> bool:
    return mode is None or stat_mod.S_ISREG(mode)


def mlst_facts(resp: str) -> dict[str, str]:
    """The facts of an MLST reply (lower-case keys). RFC 3659: "250-..." then
    " fact=value;...; /path" then "250 End". Lenient about the leading space; a reply without
    a type fact is "unknown" and callers fall back."""
    for line in resp.splitlines():
        text = line.strip()
        if STATUS_LINE.match(text) or "=" not in text:
            continue
        facts = {}
        for fact in text.split(" ", 1)[0].split(";"):
            key, sep, value = fact.partition("=")
            if sep:
                facts[key.strip().lower()] = value
        return facts
    return {}


def mlst_file(name: str, reply) -> RemoteFile | None:
    if isinstance(reply, ftplib.Error):
        return None
    facts = mlst_facts(reply)
    if facts.get("type", "file").lower() != "file" or "size" not in facts:
        return None
    return RemoteFile(name, int(facts["size"]), parse_mlst_time(facts.get("modify")))


def size_mdtm_file(name: str, size_reply, mdtm_reply) -> RemoteFile | None:
    if isinstance(size_reply, ftplib.Error):
        return None
    try:
        size = int(size_reply[3:].strip())
    except ValueError:
        return None
    mtime = None if isinstance(mdtm_reply, ftplib.Error) else parse_mlst_time(
        mdtm_reply[4:].strip())
    return RemoteFile(name, size, mtime, 1)


def parse_list(text: str) -> list[tuple[str, object]]:
    """The lines of a ``LIST`` reply as (name, ftputil StatResult) pairs: Unix style, else
    MS-DOS style (the first line that parses fixes the style). Times are taken as UTC (no time
    shift); LIST gives minutes, or days for old files (``_st_mtime_precision``)."""
    out = []
    parser = None
    for line in text.split("\n"):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        for candidate in ((parser,) if parser else LIST_PARSERS):
            if candidate.ignores_line(line):
                break
            try:
                st = candidate.parse_line(line, time_shift=0.0)
            except ftputil.error.ParserError:
                continue
            parser = candidate
            name = st._st_name.rsplit("/", 1)[-1]
            if name not in (".", ".."):
                out.append((name, st))
            break
    return out
