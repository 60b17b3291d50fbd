"""The command file on local disk, from the moment it is fetched until it is acknowledged (issue 8).

A command file is deleted on the server once fetched (manual 10.3.2). Deleted first and run
after, a crash in between would lose the file, its commands and its ACK; so the file is kept here
first, and every step leaves a state the next connection can finish from:

1. ``take``: the content, the server's size and time of the file, and the ACK's name (its stamp
   taken now, so a re-run writes the same ACK, never a second one) are written (``taken.json``
   last: it is what makes the file "taken").
2. ``deleted``: the server copy is gone. A crash before this: the next connection finds the same
   file (same size and time) on the server, deletes it and does not take it again.
3. ``progress`` after each line: its ACK line and what the file asked for so far; a crash runs
   only the lines after the last recorded one.
4. ``finish``: the ACK file is written into the outbox (under the name chosen at step 1), the
   file's effects (connect again, reboot, detect...) into ``state/command_effects.json`` until
   the service has applied them, then the file is marked finished. A crash between: the ACK is
   already in the outbox under its name, so finishing again rewrites the same file.
5. ``deleted`` may come after ``finish`` when the server refused the delete: what is kept of the
   last file (``last``) tells that file from a new one at the next connection.

Disk work: from the connection's worker only.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ticgw.files import fsync_dir, write_atomic

from .commands import Effects


@dataclass
class Taken:
    name: str                       # the command file's name on the server
    content: bytes
    remote: tuple                   # (size, mtime) on the server when it was fetched
    ack_name: str
    deleted: bool = False
    finished: bool = False
    acks: list[str] = field(default_factory=list)
    effects: Effects = field(default_factory=Effects)


class CommandInbox:
    def __init__(self, state_dir: Path):
        self.state_dir = Path(state_dir)
        self.dir = self.state_dir / "commands"
        self.meta = self.dir / "taken.json"
        self.effects_path = self.state_dir / "command_effects.json"

    # --- reading ----------------------------------------------------------------------------

    def pending(self) -> Taken | None:
        """The file taken and not yet acknowledged, if a connection left one."""
        meta = self._meta()
        if meta is None or meta.get("finished"):
            return None
        try:
            content = (self.dir / "content").read_bytes()
        except FileNotFoundError:
            return None
        return Taken(name=meta["name"], content=content, remote=tuple(meta["remote"]),
                     ack_name=meta["ack_name"], deleted=bool(meta.get("deleted")),
                     acks=list(meta.get("acks", [])),
                     effects=Effects.from_dict(meta.get("effects")))

    def last(self) -> dict | None:
        """What is known of the last file taken, finished or not: its name, the server's size
        and time of it, its content's hash and whether its server copy was deleted. A file on
        the server that matches it is that file again, left by a failed delete: it is deleted,
        not run twice."""
        return self._meta()

    def _meta(self) -> dict | None:
        try:
            meta = json.loads(self.meta.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return meta if isinstance(meta, dict) else None

    # --- the steps --------------------------------------------------------------------------

    def take(self, name: str, content: bytes, remote: tuple, ack_name: str) -> Taken:
        self.dir.mkdir(parents=True, exist_ok=True)
        write_atomic(self.dir / "content", content)
        taken = Taken(name=name, content=content, remote=tuple(remote), ack_name=ack_name)
        self._save(taken)
        return taken

    def deleted(self, taken: Taken | None = None) -> None:
        """The server copy of ``taken`` (default: the last file taken) is gone."""
        if taken is None:
            meta = self._meta()
            if meta is None or meta.get("deleted"):
                return
            meta["deleted"] = True
            write_atomic(self.meta, json.dumps(meta).encode())
            return
        taken.deleted = True
        self._save(taken)

    def progress(self, taken: Taken, acks: list[str], effects: Effects) -> None:
        taken.acks, taken.effects = list(acks), effects
        self._save(taken)

    def finish(self, taken: Taken, ack_path: Path, ack_bytes: bytes) -> None:
        """The ACK into the outbox, the effects kept until applied, then the inbox emptied."""
        ack_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(ack_path, ack_bytes)
        if taken.effects:
            self.save_effects(taken.effects)
        taken.finished = True
        self._save(taken)
        try:
            (self.dir / "content").unlink()
        except FileNotFoundError:
            pass
        fsync_dir(self.dir)

    # --- effects awaiting the end of the connection ----------------------------------------

    def save_effects(self, effects: Effects) -> None:
        merged = Effects.from_dict({**self.load_effects().as_dict(),
                                    **{k: v for k, v in effects.as_dict().items() if v}})
        write_atomic(self.effects_path, json.dumps(merged.as_dict()).encode())

    def load_effects(self) -> Effects:
        try:
            return Effects.from_dict(json.loads(self.effects_path.read_text()))
        except (FileNotFoundError, ValueError):
            return Effects()

    def effects_applied(self) -> None:
        try:
            self.effects_path.unlink()
        except FileNotFoundError:
            return
        fsync_dir(self.state_dir)

    def _save(self, taken: Taken) -> None:
        write_atomic(self.meta, json.dumps({
            "name": taken.name, "remote": list(taken.remote), "ack_name": taken.ack_name,
            "sha": hashlib.sha256(taken.content).hexdigest(), "deleted": taken.deleted,
            "finished": taken.finished, "acks": [] if taken.finished else taken.acks,
            "effects": taken.effects.as_dict()}).encode())
