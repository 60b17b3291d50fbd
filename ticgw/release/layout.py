"""Where releases live and which one runs: the ``current`` link, swapped atomically.

::

    <root>/                          $TICGW_RELEASES, else <data dir>/releases
      0.1.1-3fa2b9c0/                a release: venv/ and release.json (written last)
      0.1.2-77d01e5a/
      current -> 0.1.2-77d01e5a      absent: the base install runs (the one that was set up
                                     first, which also holds the launcher and the broker)
      update.json                    the update record (record.py)
      .lock                          flock around every change of the link or the record
      .tmp-0.1.3-xxxxxxxx/           an install in progress; removed at the next start

A release directory is complete once its ``release.json`` is there: an install builds it
under a hidden temporary name and renames it into place after that file is fsync'd, so a kill
leaves either no release or a complete one. The link is replaced with ``os.replace`` of a
fresh symlink, and the directory fsync'd: a power cut leaves the old link or the new one.

Standard library only: the launcher imports this before any service code.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ticgw.files import fsync_dir, locked, write_atomic

CURRENT = "current"
RECORD = "update.json"
LOCK = ".lock"
TEMP_PREFIX = ".tmp-"
MARK = "release.json"
#: The name a record gives the base install (no ``current`` link).
BASE = None


def root(data_dir=None) -> Path:
    """The releases root: ``$TICGW_RELEASES``, else ``<data dir>/releases``."""
    env = os.environ.get("TICGW_RELEASES")
    if env:
        return Path(env)
    if data_dir is None:
        data_dir = os.environ.get("TICGW_DATA") or "var/data"
    return Path(data_dir) / "releases"


def release_name(version: str, sha256: str) -> str:
    """A release's directory name: the version and the package's hash, so the same version
    built twice (a repair) never lands on a directory in use."""
    return "%s-%s" % (version, sha256[:8])


class Releases:
    def __init__(self, path):
        self.path = Path(path)

    # --- reading -------------------------------------------------------------------------

    def current(self) -> str | None:
        """The release the link names, or None (the base install)."""
        try:
            target = os.readlink(self.path / CURRENT)
        except (FileNotFoundError, NotADirectoryError):
            return BASE
        return os.path.basename(target.rstrip("/"))

    def is_complete(self, name: str | None) -> bool:
        if name is BASE:
            return True
        return (self.path / name / MARK).is_file() and self.python(name).exists()

    def python(self, name: str | None, through_link: bool = False) -> Path:
        """A release's interpreter; ``through_link``: by way of ``current``, so a process that
        re-executes itself later follows the link to whatever runs then."""
        return self.path / (CURRENT if through_link else name) / "venv" / "bin" / "python"

    def info(self, name: str | None) -> dict:
        """What ``release.json`` says (version, sha256, build date, installed at)."""
        if name is BASE:
            return {}
        try:
            return json.loads((self.path / name / MARK).read_text())
        except (OSError, ValueError):
            return {}

    def installed(self) -> list[str]:
        """Complete releases on disk, by name."""
        if not self.path.is_dir():
            return []
        return sorted(p.name for p in self.path.iterdir()
                      if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")
                      and self.is_complete(p.name))

    # --- changing ----------------------------------------------------------------------------

    def lock(self):
        """The flock every change of the link or the record is made under."""
        self.path.mkdir(parents=True, exist_ok=True)
        return locked(self.path / LOCK)

    def switch(self, name: str | None) -> None:
        """Point ``current`` at release ``name`` (None: the base install), atomically."""
        if name is not BASE and not self.is_complete(name):
            raise FileNotFoundError("release %s is not complete" % name)
        link = self.path / CURRENT
        if name is BASE:
            try:
                os.unlink(link)
            except FileNotFoundError:
                return
        else:
            tmp = self.path / (".%s.%s" % (CURRENT, os.urandom(4).hex()))
            os.symlink(name, tmp)
            os.replace(tmp, link)
        fsync_dir(self.path)

    def temp_dir(self, name: str) -> Path:
        return self.path / ("%s%s-%s" % (TEMP_PREFIX, name, os.urandom(4).hex()))

    def put_in_place(self, temp: Path, name: str, info: dict) -> None:
        """Finish an install: ``release.json`` into ``temp`` (fsync'd), then ``temp`` renamed
        to ``name``. A complete release of that name already there is kept as it is."""
        write_atomic(temp / MARK, (json.dumps(info, indent=1, sort_keys=True) + "\n").encode())
        target = self.path / name
        if target.exists():
            if self.is_complete(name):
                shutil.rmtree(temp, ignore_errors=True)
                return
            shutil.rmtree(target)
        os.rename(temp, target)
        fsync_dir(self.path)

    def remove_temps(self) -> list[str]:
        """Remove installs a kill interrupted (hidden temporary directories)."""
        gone = []
        if not self.path.is_dir():
            return gone
        for p in self.path.iterdir():
            if p.name.startswith(TEMP_PREFIX) or (p.name.startswith(".%s." % CURRENT)
                                                 and p.is_symlink()):
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
                gone.append(p.name)
        return gone

    def purge(self, keep) -> list[str]:
        """Remove every release but those in ``keep`` (the running one and the previous)."""
        keep = {k for k in keep if k is not BASE} | {self.current()}
        gone = []
        for name in self.installed():
            if name not in keep:
                self.remove(self.path / name)
                gone.append(name)
        return gone

    def remove(self, directory: Path) -> None:
        """Remove a directory so that a kill half-way leaves a temporary name (removed at the
        next start), never a half-deleted release."""
        doomed = self.path / ("%sgone-%s" % (TEMP_PREFIX, os.urandom(4).hex()))
        os.rename(directory, doomed)
        fsync_dir(self.path)
        shutil.rmtree(doomed, ignore_errors=True)

    def free_bytes(self) -> int:
        self.path.mkdir(parents=True, exist_ok=True)
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize
