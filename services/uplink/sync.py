"""Configuration and definition file sync with the server (DESIGN 7).

At each connection, per file:
- missing on the server: upload the local one;
- changed on the server (size or modification time differ from what the last sync saw): download,
  validate, apply: the server wins (manual 10: "La configuration serveur est toujours prioritaire");
- changed locally since the last sync (its hash differs) while the server's did not: upload;
- otherwise nothing.
The marks of the last sync live in ``<data dir>/state/sync.json``. A downloaded file that does not
validate changes no mark, so it is tried (and reported) again at the next connection.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ticgw.files import write_atomic

UPLOAD, DOWNLOAD, NOTHING = "upload", "download", "nothing"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Remote:
    size: int
    mtime: float


def decide(name: str, local: bytes | None, remote: Remote | None, mark: dict | None) -> str:
    if remote is None:
        return UPLOAD if local is not None else NOTHING
    if mark is None or mark.get("size") != remote.size or mark.get("mtime") != remote.mtime:
        return DOWNLOAD
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

    def set(self, kind: str, name: str, remote: Remote, content: bytes) -> None:
        self.data.setdefault(kind, {})[name] = {"size": remote.size, "mtime": remote.mtime,
                                                "sha": sha(content)}
        write_atomic(self.path, json.dumps(self.data, indent=1, sort_keys=True).encode())
