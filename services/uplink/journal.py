"""The connection journal: the manual's *Connexion* table (section 10.3.2), kept and uploaded.

Each entry is the manual's message, verbatim, with its GMT date and time, one line per entry in
``<data dir>/state/journal.log`` (``DD/MM/YY<TAB>hh:mm:ss<TAB>message``, the table's columns).
The part written since the last upload is what the logs phase sends as ``<site>_<ts>.log.gz``;
the web page shows the last entries.
"""
from __future__ import annotations

import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path


def stamp(t: float) -> tuple[str, str]:
    d = datetime.fromtimestamp(t, timezone.utc)
    return d.strftime("%d/%m/%y"), d.strftime("%H:%M:%S")


class Journal:
    """Thread-safe: phases write from their worker thread; `on_entry` is told of each entry."""

    #: The journal is cut back (its sent part) once it grows past this size.
    MAX_BYTES = 1_000_000
    KEEP_SENT = 200

    def __init__(self, state_dir: Path, clock=time.time, on_entry=None):
        self.path = Path(state_dir) / "journal.log"
        self.mark_path = Path(state_dir) / "journal.mark"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self.on_entry = on_entry
        self._lock = threading.Lock()

    def __call__(self, message: str) -> dict:
        t = self.clock()
        date, hour = stamp(t)
        line = "%s\t%s\t%s\n" % (date, hour, message)
        with self._lock:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
        entry = {"time": t, "date": date, "hour": hour, "message": message}
        if self.on_entry is not None:
            self.on_entry(entry)
        return entry

    def tail(self, n: int = 50) -> list[list[str]]:
        """The last n entries as [date, hour, message]."""
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        return [l.split("\t", 2) for l in lines[-n:] if l.count("\t") >= 2]

    def unsent(self) -> tuple[bytes, int]:
        """The bytes written since the last upload, and the offset to mark once it is sent."""
        with self._lock:
            try:
                data = self.path.read_bytes()
            except FileNotFoundError:
                return b"", 0
        start = self._mark()
        if start > len(data):  # the journal was rotated or truncated
            start = 0
        return data[start:], len(data)

    def mark_sent(self, offset: int) -> None:
        """Entries up to `offset` have reached the server. Once the file passes MAX_BYTES, the
        part already sent is cut down to its last KEEP_SENT entries (the web page's table)."""
        with self._lock:
            size = self.path.stat().st_size if self.path.exists() else 0
            if size > self.MAX_BYTES and offset <= size:
                data = self.path.read_bytes()
                sent, unsent = data[:offset], data[offset:]
                kept = b"".join(sent.splitlines(keepends=True)[-self.KEEP_SENT:])
                tmp = self.path.with_name(self.path.name + ".tmp")
                tmp.write_bytes(kept + unsent)
                os.replace(tmp, self.path)
                offset = len(kept)
            tmp = self.mark_path.with_name(self.mark_path.name + ".tmp")
            tmp.write_text(str(offset))
            os.replace(tmp, self.mark_path)

    def _mark(self) -> int:
        try:
            return int(self.mark_path.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0
