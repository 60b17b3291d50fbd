"""Configuration and definition file sync with the server (DESIGN 7, issue 8).

At each connection, per file:
- missing on the server: upload the local one;
- changed on the server: download, validate, apply: the server wins (manual 10: "La configuration
  serveur est toujours prioritaire");
- changed locally since the last sync (its hash differs) while the server's did not: upload;
- otherwise nothing.

"Changed on the server" must never be missed. MLSD gives the size and the time to the second,
which settles it. ``LIST`` gives the time to the minute (to the day for old files): a same-size
edit within the minute of the last sync looks unchanged. So a mark remembers the listing's own
value, its precision and when it was taken (``seen``); while the file's minute (or day) may still
hide an edit made after that look, the answer is :data:`VERIFY`: the caller asks MDTM (seconds)
where the server has it and the mark knows the exact time, else fetches the file and compares its
content with the mark's hash (the fingerprint). Once the listing's unit is long over at the time
of a look (:data:`SETTLE` covers a server whose listings are in local time), the listing alone
decides again. The cost: one MDTM, or one download of a small file, per connection and per file
changed in the last hours.

The marks of the last sync live in ``<data dir>/state/sync.json``. A downloaded file that does not
validate changes no mark, so it is tried (and reported) again at the next connection.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

from ticgw.files import write_atomic

UPLOAD, DOWNLOAD, NOTHING, VERIFY = "upload", "download", "nothing", "verify"

#: Seconds after the end of a listing's time unit before that unit cannot hide an edit any more:
#: the unit itself plus any time-zone offset of a server that lists local time (up to 14 h).
SETTLE = 15 * 3600


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Remote:
    size: int
    mtime: float | None
    precision: int = 1       # 1: exact (MLSD, MDTM); 60 or 86400: a LIST's minute or day


def settled(mtime: float, precision: int, seen: float | None) -> bool:
    """True when a look at ``seen`` came after the listing's time unit could still change."""
    if seen is None:
        return False
    unit_end = math.floor(mtime / precision) * precision + precision
    return seen >= unit_end + SETTLE


def decide(name: str, local: bytes | None, remote: Remote | None, mark: dict | None) -> str:
    if remote is None:
        return UPLOAD if local is not None else NOTHING
    if mark is None or mark.get("size") != remote.size:
        return DOWNLOAD
    if remote.precision <= 1:
        if mark.get("mtime") != remote.mtime:
            return DOWNLOAD
    else:
        listed = mark.get("listed")
        if listed is None or listed[1] != remote.precision:
            return VERIFY            # never listed this way: look closer once
        if listed[0] != remote.mtime:
            return DOWNLOAD
        if not settled(remote.mtime, remote.precision, mark.get("seen")):
            return VERIFY
    if local is not None and sha(local) != mark.get("sha"):
        return UPLOAD
    return NOTHING


class Marks:
    def __init__(self, state_dir: Path):
        self.path = Path(state_dir) / "sync.json"
        try:
            self.data = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            self.data = {}

    def get(self, kind: str, name: str) -> dict | None:
        return self.data.get(kind, {}).get(name)

    def set(self, kind: str, name: str, content: bytes, *, size: int,
            mtime: float | None = None, listed: Remote | None = None,
            seen: float | None = None) -> None:
        """What the server's file was like when it held ``content``: its size, its exact time
        if known (MLSD, MLST, MDTM), its LIST entry if that is how the server lists (time and
        precision), and when we looked (``seen``, gateway time)."""
        mark = {"size": size, "sha": sha(content), "mtime": mtime, "seen": seen}
        if listed is not None and listed.precision > 1:
            mark["listed"] = [listed.mtime, listed.precision]
        self.data.setdefault(kind, {})[name] = mark
        write_atomic(self.path, json.dumps(self.data, indent=1, sort_keys=True).encode())

    def set_seen(self, kind: str, name: str, listed: Remote, exact: float | None, seen: float,
                 content_sha: str) -> None:
        """The file was found unchanged at ``seen``: remember how it is listed now."""
        mark = dict(self.get(kind, name) or {}, size=listed.size, sha=content_sha, seen=seen)
        if exact is not None:
            mark["mtime"] = exact
        if listed.precision > 1:
            mark["listed"] = [listed.mtime, listed.precision]
        else:
            mark["mtime"] = listed.mtime
        self.data.setdefault(kind, {})[name] = mark
        write_atomic(self.path, json.dumps(self.data, indent=1, sort_keys=True).encode())
