"""A wheelhouse: a directory holding the wheel of every runtime dependency of ticgw (never
ticgw's own), built once by pip and reused while the dependency list is unchanged.

A stamp file in it holds the sha256 of the sorted dependency list (and of the interpreter the
wheels are for); another list is built into a fresh sibling directory and swapped in. Several
processes may call :func:`ensure` at once (pytest-xdist workers): a lock file next to the
directory serialises them, and a half-built wheelhouse is never seen under its name."""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path

from .build import (BuildError, normalise, run_pip, runtime_dependencies, source_tree,
                    wheel_info)
from .manifest import NAME

#: The stamp file, in the wheelhouse.
STAMP = "dependencies.sha256"


def stamp(dependencies) -> str:
    """The sha256 of the sorted dependency list, for this interpreter and platform."""
    text = "\n".join(sorted(dependencies) + [
        "# %s %s" % (sys.implementation.cache_tag, sysconfig.get_platform())])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def current_stamp(directory: Path) -> str | None:
    """The stamp a wheelhouse was built with (None: no wheelhouse there)."""
    try:
        return (Path(directory) / STAMP).read_text(encoding="utf-8").split("\n", 1)[0]
    except (OSError, UnicodeDecodeError):
        return None


def ensure(directory, source=None) -> Path:
    """The wheelhouse at ``directory`` for the dependencies of ``source`` (default: the tree
    ticgw runs from), built by pip if it is missing or was made for another dependency list.

    A directory there that is not empty and holds no stamp is not ours: BuildError, it is
    left alone. A pip failure is a BuildError with pip's stderr; the old wheelhouse stays."""
    directory = Path(directory).absolute()
    deps = runtime_dependencies(Path(source) if source else source_tree())
    want = stamp(deps)
    directory.parent.mkdir(parents=True, exist_ok=True)
    with open(directory.with_name(directory.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)           # released when the file is closed
        have = current_stamp(directory)
        if have == want:
            return directory
        if have is None and directory.exists() and any(directory.iterdir()):
            raise BuildError("%s: not empty and not a wheelhouse (no %s): left alone"
                             % (directory, STAMP))
        _clean_leftovers(directory)
        fresh = Path(tempfile.mkdtemp(prefix=".%s.new-" % directory.name, dir=directory.parent))
        try:
            if deps:
                run_pip("wheel", "-w", str(fresh), *deps)
            ours = [w.name for w in fresh.glob("*.whl") if normalise(wheel_info(w)[0]) == NAME]
            if ours:
                raise BuildError("a dependency brought a ticgw wheel: %s" % ", ".join(ours))
            listing = "".join(d + "\n" for d in sorted(deps))
            (fresh / STAMP).write_text(want + "\n" + listing, encoding="utf-8")
            os.chmod(fresh, 0o755)
            _swap(fresh, directory)
        except BaseException:
            shutil.rmtree(fresh, ignore_errors=True)
            raise
    return directory


def _swap(fresh: Path, directory: Path) -> None:
    """Put ``fresh`` in the place of ``directory`` (under the lock)."""
    if not directory.exists():
        os.rename(fresh, directory)
        return
    old = Path(tempfile.mkdtemp(prefix=".%s.old-" % directory.name, dir=directory.parent))
    os.rename(directory, old / directory.name)
    os.rename(fresh, directory)
    shutil.rmtree(old, ignore_errors=True)


def _clean_leftovers(directory: Path) -> None:
    """Remove what a process killed while building left next to ``directory`` (under the
    lock, nobody else is building)."""
    for prefix in (".%s.new-" % directory.name, ".%s.old-" % directory.name):
        for p in directory.parent.glob(prefix + "*"):
            shutil.rmtree(p, ignore_errors=True)
