"""Shared parts of tests/test_release.py: real packages and real installs made once per run
(shared by the pytest-xdist workers under a lock), fresh release roots and data dirs built
from them, and the kill harness (a forked child SIGKILLed at its n-th disk-changing step)."""
from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from ticgw import __version__
from ticgw.config import ConfigStore
from ticgw.pak import build, keygen, verify, wheelhouse
from ticgw.pak.build import copy_source, source_tree
from ticgw.release import configs, install, record
from ticgw.release.layout import RECORD, Releases

REPO = Path(__file__).resolve().parent.parent

OLD_VERSION = "0.1.0.post1"          # a plain package of the tree
NEW_VERSION = "0.1.0.post2"          # the tree with one configuration migration
MIGRATION_ID = "2099-01-test-migration"
#: The address the test migration writes into <site>_config.ini (the default is another).
MIGRATED_ADDRESS = b"ETH_Address=10.99.99.99"
#: A file of <data>/config the migration makes.
ADDED_FILE = "migration_added.ini"
#: In the data dir (not in config/, so never copied or restored): the migration refuses.
REFUSE_MARK = "REFUSE_MIGRATION"
#: In the data dir: one line per run of the migration (sys.prefix of the interpreter).
RUNS_LOG = "migration-runs.log"

MIGRATION_SOURCE = '''
def _test_migration(data: Path) -> None:
    """Only in the package tests/test_release.py builds: a value rewritten, a file added."""
    import re as _re
    import sys as _sys
    with open(data / %(runs)r, "a") as f:
        f.write(_sys.prefix + "\\n")
    config = data / "config"
    ini = sorted(config.glob("*_config.ini"))[0]
    text = _re.sub(rb"(?m)^ETH_Address=.*$", %(address)r, ini.read_bytes())
    write_atomic(ini, text)
    write_atomic(config / %(added)r, b"# made by the test migration\\n")
    if (data / %(refuse)r).exists():
        raise RuntimeError("refused on purpose by the test package")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(%(id)r, "test: ETH_Address rewritten, a file added", _test_migration),)
''' % {"runs": RUNS_LOG, "address": MIGRATED_ADDRESS, "added": ADDED_FILE,
       "refuse": REFUSE_MARK, "id": MIGRATION_ID}


# --- packages and installs, once per run ------------------------------------------------------

@dataclass
class Artifacts:
    private_key: bytes
    public_key: str
    old_pak: Path
    new_pak: Path
    old_facts: object
    new_facts: object
    store: Path                       # a releases root holding both installs
    old: str                          # release names
    new: str
    install_seconds: float


def migrating_source(dest: Path) -> Path:
    """A copy of the tree whose ticgw/migrate.py has the test migration."""
    tree = copy_source(source_tree(), dest)
    path = tree / "ticgw" / "migrate.py"
    text = path.read_text(encoding="utf-8")
    empty = "MIGRATIONS: tuple[Migration, ...] = ()\n"
    assert text.count(empty) == 1, "ticgw/migrate.py: no empty MIGRATIONS line to replace"
    path.write_text(text.replace(empty, MIGRATION_SOURCE), encoding="utf-8")
    return tree


def _make(d: Path) -> None:
    d.mkdir(parents=True)
    private, public = keygen()
    (d / "key.pem").write_bytes(private)
    house = wheelhouse.ensure(Path(sys.prefix) / "wheelhouse")
    build(d / "old.pak", key=private, version=OLD_VERSION, wheels_from=house)
    build(d / "new.pak", key=private, version=NEW_VERSION, wheels_from=house,
          source=migrating_source(d / "src-new"))
    store = Releases(d / "store")
    names, took = {}, []
    for which in ("old", "new"):
        facts = verify(d / ("%s.pak" % which), public, running_version=__version__)
        t = time.monotonic()
        names[which] = install.install(d / ("%s.pak" % which), facts, store)
        took.append(time.monotonic() - t)
    (d / "ready.json").write_text(json.dumps({"public": public, "names": names,
                                              "install_seconds": max(took)}))


def artifacts(shared: Path) -> Artifacts:
    """The packages and installs in ``shared`` (made by the first worker that gets there)."""
    d = shared / "release-artifacts"
    with open(shared / "release-artifacts.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (d / "ready.json").is_file():
            shutil.rmtree(d, ignore_errors=True)
            _make(d)
    ready = json.loads((d / "ready.json").read_text())
    public = ready["public"]
    return Artifacts(
        private_key=(d / "key.pem").read_bytes(), public_key=public,
        old_pak=d / "old.pak", new_pak=d / "new.pak",
        old_facts=verify(d / "old.pak", public, running_version=__version__),
        new_facts=verify(d / "new.pak", public, running_version=__version__),
        store=d / "store", old=ready["names"]["old"], new=ready["names"]["new"],
        install_seconds=ready["install_seconds"])


# --- roots and data dirs ----------------------------------------------------------------------

def place(store: Path, root: Path, name: str, as_name: str | None = None,
          hardlinks: bool = True) -> Path:
    """A copy of release ``name`` of ``store`` in ``root`` (hard links: nothing writes into a
    release's files, and it is quick; ``hardlinks=False``: a real copy)."""
    root.mkdir(parents=True, exist_ok=True)
    target = root / (as_name or name)
    shutil.copytree(store / name, target, symlinks=True,
                    copy_function=os.link if hardlinks else shutil.copy2)
    return target


def reset_root(root: Path, store: Path, names) -> Releases:
    """``root`` holding exactly the releases ``names`` ({name in root: name in store}) and
    nothing else (no link, no record, no copy): the releases are kept from the last time."""
    root.mkdir(parents=True, exist_ok=True)
    for p in root.iterdir():
        if p.name in names and p.is_dir() and not p.is_symlink():
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
    for as_name, name in names.items():
        if not (root / as_name).exists():
            place(store, root, name, as_name)
    return Releases(root)


def make_template(d: Path) -> Path:
    """A data dir with the configuration a first start writes."""
    assert ConfigStore(d).ensure_files()
    return d


def fresh_data(template: Path, d: Path) -> Path:
    if d.exists():
        shutil.rmtree(d)
    shutil.copytree(template, d, symlinks=True)
    return d


def config_snapshot(data: Path) -> dict:
    """Every configuration file the copy covers, by relative path: its bytes."""
    out = {}
    config = data / "config"
    for p in sorted(config.iterdir()) if config.is_dir() else ():
        if p.is_file() and not p.name.startswith("."):
            out["config/" + p.name] = p.read_bytes()
    m = data / "state" / configs.MIGRATIONS_FILE
    if m.is_file():
        out["state/" + m.name] = m.read_bytes()
    return out


def config_differs(a: dict, b: dict) -> list[str]:
    """The files of two snapshots that differ (or are in one only)."""
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def load_record(releases: Releases):
    return record.load(releases.path / RECORD)


def running_version(releases: Releases) -> str:
    """The version of what the launcher would run now."""
    return releases.info(releases.current()).get("version") or __version__


def hidden_leftovers(root: Path) -> list[str]:
    """Hidden entries of a releases root (temp dirs, temp links, temp files), the lock aside."""
    return sorted(p.name for p in root.iterdir() if p.name.startswith(".") and p.name != ".lock")


# --- the kill harness -------------------------------------------------------------------------

#: What changes the disk, as the code under test reaches it: (label, module, attribute).
WATCHED = (("record.write_atomic", record, "write_atomic"),
           ("configs.write_atomic", configs, "write_atomic"),
           ("os.replace", os, "replace"), ("os.rename", os, "rename"),
           ("os.unlink", os, "unlink"), ("os.symlink", os, "symlink"),
           ("shutil.rmtree", shutil, "rmtree"), ("shutil.copy2", shutil, "copy2"))


def _arm(kill_at) -> list[str]:
    """In the child only: wrap every watched function so that the process SIGKILLs itself
    at kill point ``kill_at``, a point being just before and just after each call: its
    number (0, 1, ...) or its name (``"after os.replace"``: the first such point). A call
    made inside another watched call (rmtree's unlinks, write_atomic's replace) is part of
    it and makes no point. Returns the list the calls are appended to."""
    calls: list[str] = []
    state = {"points": 0, "depth": 0}

    def point(name):
        if state["points"] == kill_at or name == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        state["points"] += 1

    def wrap(label, real):
        def wrapper(*args, **kwargs):
            if state["depth"]:
                return real(*args, **kwargs)
            point("before " + label)
            calls.append(label)
            state["depth"] += 1
            try:
                result = real(*args, **kwargs)
            finally:
                state["depth"] -= 1
            point("after " + label)
            return result
        return wrapper

    for label, module, attr in WATCHED:
        setattr(module, attr, wrap(label, getattr(module, attr)))
    return calls


def run_child(operation, kill_at, report: Path, watch=None) -> bool:
    """Run ``operation()`` in a forked child (leader of its own process group) armed to die at
    kill point ``kill_at`` (see :func:`_arm`; None: never); ``watch(pid)``, if given, runs in
    the parent meanwhile (it may SIGKILL the group). True if the child was SIGKILLed; False if it
    finished (its calls are then in ``report``, one a line); an exception in it fails the
    test with its traceback."""
    report.unlink(missing_ok=True)
    pid = os.fork()
    if pid == 0:                                      # the child
        code = 70
        try:
            os.setpgid(0, 0)
            calls = _arm(kill_at if kill_at is not None else -1)
            operation()
            report.write_text("".join(c + "\n" for c in calls))
            code = 0
        except BaseException:
            try:
                report.write_text("EXCEPTION\n" + traceback.format_exc())
            finally:
                code = 71
        finally:
            os._exit(code)
    try:
        os.setpgid(pid, pid)                          # whichever of the two runs first
    except OSError:
        pass
    if watch is not None:
        try:
            watch(pid)
        except BaseException:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL, status
        return True
    text = report.read_text() if report.exists() else "(no report)"
    assert os.WEXITSTATUS(status) == 0, "the child failed:\n" + text
    return False


def group_processes(pgid: int) -> list[str]:
    """Live (not zombie) processes of process group ``pgid``: their command lines."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                out.append((d / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, ValueError):
            continue
    return out


def wait_until(predicate, timeout: float, what: str, interval: float = 0.005):
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(interval)


def is_subsequence(wanted, seen) -> bool:
    it = iter(seen)
    return all(any(w == s for s in it) for w in wanted)


def set_value(ini: Path, key: str, value: bytes) -> None:
    """Rewrite ``key=...`` in an INI file of ours (test set-up)."""
    text = ini.read_bytes()
    new, n = re.subn(rb"(?m)^%s=.*$" % key.encode(), key.encode() + b"=" + value, text)
    assert n == 1
    ini.write_bytes(new)

