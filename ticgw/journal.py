"""The gateway's journal: the manual's *Connexion* table (section 10.3.2), shared by every service.

One file, ``<data dir>/state/journal.log``, one row per line, ``DD/MM/YY<TAB>hh:mm:ss<TAB>message``
(GMT, the table's columns). Any service appends to it (the uplink's connection phases, the
acquisition's disk-full row, the modem's *Type de modem inconnu*...) and then publishes the row
as a ``journal`` event; the uplink uploads what was written since the last upload as
``<site>_<ts>.log.gz``. Processes share the file under ``fcntl.flock`` on ``journal.lock``: an
append, the upload mark and the cut-back of the part already sent never interleave.

Every method does disk work: call them from a worker, never from a service's loop.
"""
from __future__ import annotations

import os
import re
import time
from datetime import datetime, timezone
from pathlib import Path

from .files import locked, write_atomic

#: Characters that must not reach a row as they are: they would split it (CR, LF, and what
#: str.splitlines() also takes for a line end: \v, \f, \x1c-\x1e, NEL, U+2028/9), shift the
#: table (TAB) or garble the upload. They are written visibly as \xNN / \uNNNN instead.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
MAX_MESSAGE = 500


def stamp(t: float) -> tuple[str, str]:
    d = datetime.fromtimestamp(t, timezone.utc)
    return d.strftime("%d/%m/%y"), d.strftime("%H:%M:%S")


def escape_controls(text: str) -> str:
    """``text`` with its control characters written visibly (``\x1b``, ``\u2028``)."""
    return _CONTROL.sub(_visible, text)


def _visible(m) -> str:
    code = ord(m.group())
    return "\\x%02x" % code if code < 0x100 else "\\u%04x" % code


def clean(message: str) -> str:
    """One row's text: control characters escaped, at most MAX_MESSAGE characters."""
    text = escape_controls(str(message).strip())
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE - 3] + "..."


def parse_rows(text: str) -> list[list[str]]:
    return [line.split("\t", 2) for line in text.splitlines() if line.count("\t") >= 2]


class Journal:
    #: The journal is cut back (its sent part) once it grows past this size.
    MAX_BYTES = 1_000_000
    KEEP_SENT = 200

    def __init__(self, state_dir, clock=time.time, on_entry=None):
        self.dir = Path(state_dir)
        self.path = self.dir / "journal.log"
        self.mark_path = self.dir / "journal.mark"
        self.lock_path = self.dir / "journal.lock"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self.on_entry = on_entry            # told of each row appended (publish it)

    def _locked(self):
        return locked(self.lock_path)

    def append(self, message: str, t: float | None = None) -> dict:
        """Write one row (fsync'd) and return it as ``{time, date, hour, message}``."""
        t = self.clock() if t is None else t
        date, hour = stamp(t)
        text = clean(message)
        line = ("%s\t%s\t%s\n" % (date, hour, text)).encode("utf-8")
        with self._locked():
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
        entry = {"time": t, "date": date, "hour": hour, "message": text}
        if self.on_entry is not None:
            self.on_entry(entry)
        return entry

    __call__ = append

    def tail(self, n: int = 50) -> list[list[str]]:
        """The last n rows as [date, hour, message] (only the end of the file is read)."""
        want = n * (MAX_MESSAGE + 32)
        try:
            with open(self.path, "rb") as f:
                size = f.seek(0, 2)
                f.seek(max(0, size - want))
                data = f.read()
        except FileNotFoundError:
            return []
        if size > want:                     # the first line may be cut: drop it
            data = data[data.find(b"\n") + 1:]
        return parse_rows(data.decode("utf-8", "replace"))[-n:]

    def unsent(self) -> tuple[bytes, int]:
        """The rows written since the last upload, and the offset to mark once they are sent."""
        with self._locked():
            try:
                data = self.path.read_bytes()
            except FileNotFoundError:
                return b"", 0
            start = self._mark()
        if start > len(data):  # the journal was cut back or truncated under us
            start = 0
        return data[start:], len(data)

    def mark_sent(self, offset: int, note: str = "") -> None:
        """Rows up to ``offset`` are in an upload (``note``: its name, see :meth:`mark_note`).
        Once the file passes MAX_BYTES, the part already sent is cut down to its last KEEP_SENT
        rows (what the web page shows)."""
        with self._locked():
            size = self.path.stat().st_size if self.path.exists() else 0
            if size > self.MAX_BYTES and offset <= size:
                data = self.path.read_bytes()
                sent, unsent = data[:offset], data[offset:]
                kept = b"".join(sent.splitlines(keepends=True)[-self.KEEP_SENT:])
                # The mark goes back to the start before the file is cut: killed between the
                # writes, rows are sent again (from a line's start), never skipped.
                write_atomic(self.mark_path, b"0")
                write_atomic(self.path, kept + unsent)
                offset = len(kept)
            write_atomic(self.mark_path, ("%d %s" % (offset, note)).strip().encode())

    def _read_mark(self) -> tuple[int, str]:
        try:
            text = self.mark_path.read_text().strip()
        except FileNotFoundError:
            return 0, ""
        number, _, note = text.partition(" ")
        try:
            return int(number or 0), note
        except ValueError:
            return 0, ""

    def _mark(self) -> int:
        return self._read_mark()[0]

    def mark_note(self) -> str:
        """The note of the last :meth:`mark_sent`: the name of the file the rows went into."""
        return self._read_mark()[1]
