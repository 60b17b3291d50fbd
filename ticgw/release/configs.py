"""The configuration across a release switch: kept as it was until the new release commits.

Configuration lives outside releases (``<data>/config``, and ``<data>/state/migrations.json``
which says what migrations it has been through). Before the ``current`` link moves, a copy of
both goes to ``<releases>/config-before/`` (made under a temporary name, then renamed: it is
complete or absent). A new release's migrations then run once (:func:`migrate`, from the
launcher, with the new release's interpreter). A rollback puts the copy back, file by file
(idempotent: a kill in the middle is finished by doing it again); a commit removes it.

Standard library only: the launcher uses it.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from ticgw.files import fsync_dir, write_atomic

from .layout import TEMP_PREFIX

BACKUP = "config-before"
MIGRATIONS_FILE = "migrations.json"
MIGRATE_TIMEOUT = 300


def data_dir() -> Path:
    return Path(os.environ.get("TICGW_DATA") or "var/data")


def _sources(data: Path) -> list[tuple[Path, str]]:
    """(file, name in the copy) of everything the copy holds."""
    out = []
    config = data / "config"
    if config.is_dir():
        out += [(p, "config/" + p.name) for p in sorted(config.iterdir())
                if p.is_file() and not p.name.startswith(".")]
    migrations = data / "state" / MIGRATIONS_FILE
    if migrations.is_file():
        out.append((migrations, "state/" + MIGRATIONS_FILE))
    return out


def backup(releases_path: Path, data: Path) -> Path:
    """Copy the configuration as it is now (replacing an older copy)."""
    target = releases_path / BACKUP
    temp = releases_path / ("%s%s-%s" % (TEMP_PREFIX, BACKUP, os.urandom(4).hex()))
    for sub in ("config", "state"):
        (temp / sub).mkdir(parents=True)
    for path, name in _sources(data):
        shutil.copy2(path, temp / name)
        with open(temp / name, "rb") as f:
            os.fsync(f.fileno())
    if target.exists():
        shutil.rmtree(target)
    os.rename(temp, target)
    fsync_dir(releases_path)
    return target


def has_backup(releases_path: Path) -> bool:
    return (releases_path / BACKUP).is_dir()


def restore(releases_path: Path, data: Path) -> bool:
    """Put the copy back: every file of it, and no configuration file it did not have."""
    copy = releases_path / BACKUP
    if not copy.is_dir():
        return False
    kept = set()
    for sub in ("config", "state"):
        for path in sorted((copy / sub).iterdir()) if (copy / sub).is_dir() else ():
            (data / sub).mkdir(parents=True, exist_ok=True)
            write_atomic(data / sub / path.name, path.read_bytes())
            kept.add("%s/%s" % (sub, path.name))
    for path, name in _sources(data):
        if name not in kept:
            path.unlink()
    return True


def drop(releases_path: Path) -> None:
    """Remove the copy (renamed first: a kill half-way leaves a temporary name)."""
    copy = releases_path / BACKUP
    if copy.exists():
        doomed = releases_path / ("%sgone-%s" % (TEMP_PREFIX, os.urandom(4).hex()))
        os.rename(copy, doomed)
        fsync_dir(releases_path)
        shutil.rmtree(doomed, ignore_errors=True)


def migrate(python: Path, data: Path) -> str | None:
    """Run the release's migrations (``python -P -m ticgw.migrate``); None, or why it failed."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TICGW_DATA"] = str(Path(data).resolve())
    try:
        r = subprocess.run([str(python), "-P", "-m", "ticgw.migrate"], env=env, cwd="/",
                           capture_output=True, text=True, timeout=MIGRATE_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "%s" % type(e).__name__
    if r.returncode:
        lines = (r.stderr or r.stdout).strip().splitlines()
        return lines[-1] if lines else "code %d" % r.returncode
    return None
