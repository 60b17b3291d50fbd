"""Releases, their install and the moves of the ``current`` link, with real parts: packages
built from the tree, real offline installs, the launcher run for real, configuration
migrations run by the release's own interpreter, and SIGKILL at every disk-changing step of
every move (issue 10: a power cut at any instant leaves a gateway that starts).

Packages and installs are made once per run (tests/release_helpers.py, shared by the xdist
workers under a lock); each test works in its own releases root holding copies of them.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from release_helpers import (ADDED_FILE, MIGRATED_ADDRESS, MIGRATION_ID, NEW_VERSION,
                             OLD_VERSION, REFUSE_MARK, REPO, RUNS_LOG, artifacts,
                             config_differs, config_snapshot, fresh_data, group_processes,
                             hidden_leftovers, is_subsequence, load_record, make_template,
                             place, reset_root, run_child, running_version, set_value,
                             wait_until)
from services.update.steps import INTERRUPTED_INSTALL, INTERRUPTED_SWITCH, Steps
from ticgw import __version__, launch
from ticgw.pak import verify
from ticgw.release import configs, install, moves, record
from ticgw.release.install import InstallError
from ticgw.release.layout import BASE, Releases, release_name


# --- fixtures ---------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def art(tmp_path_factory):
    """Keys, the two packages (plain, and with a migration) and their installs."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    return artifacts(shared)


@pytest.fixture(scope="session")
def template(tmp_path_factory):
    """A data dir holding the configuration files a first start writes."""
    return make_template(tmp_path_factory.mktemp("template"))


@pytest.fixture(scope="session")
def original(template):
    return config_snapshot(template)


@pytest.fixture(scope="session")
def migrated(art, template, tmp_path_factory):
    """The configuration after the new release's migration, run for real on a copy."""
    data = fresh_data(template, tmp_path_factory.mktemp("migrated") / "data")
    assert configs.migrate(Releases(art.store).python(art.new), data) is None
    return config_snapshot(data)


class World:
    """A releases root with copies of both releases, a data dir, the update steps."""

    def __init__(self, art, template, tmp_path, names=None):
        self.art = art
        self.root = tmp_path / "releases"
        names = names if names is not None else {art.old: art.old, art.new: art.new}
        self.releases = reset_root(self.root, art.store, names)
        self.data = fresh_data(template, tmp_path / "data")
        self.steps = Steps(self.releases, self.data)

    def record(self):
        return load_record(self.releases)

    def switched(self, from_old=True):
        """The new release installed and switched to (from the old one, or the base)."""
        if from_old:
            self.releases.switch(self.art.old)
        self.steps.begin(self.art.new_facts, "test")
        rec = self.steps.switch()
        assert rec.state == "verifying" and self.releases.current() == self.art.new
        return rec

    def settle(self, module):
        return launch.settle(self.releases, module, self.data)

    def runs(self) -> list[str]:
        path = self.data / RUNS_LOG
        return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def world(art, template, tmp_path):
    return World(art, template, tmp_path)


def fake_release(root: Path, name: str, complete: bool = True) -> Path:
    """A directory shaped like a release (an interpreter file, release.json when complete)."""
    (root / name / "venv" / "bin").mkdir(parents=True)
    (root / name / "venv" / "bin" / "python").write_text("")
    if complete:
        (root / name / "release.json").write_text(json.dumps({"version": name}))
    return root / name


def launch_run(world, *args, extra_env=None):
    """``python -m ticgw.launch ARGS`` as a Procfile line runs it, from the repository."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("TICGW_BASE_PYTHON", "TICGW_RELEASE", "TICGW_LAUNCH")}
    env.update(TICGW_RELEASES=str(world.root), TICGW_DATA=str(world.data),
               PYTHONPATH=str(REPO))
    env.update(extra_env or {})
    return subprocess.run([sys.executable, "-m", "ticgw.launch", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60)


# --- 1. layout --------------------------------------------------------------------------------

def test_switch_to_a_release_and_back_to_the_base(tmp_path):
    """The link is made, replaced atomically (no temporary link left), removed for the base
    install; an incomplete or missing release is refused and the link left as it was."""
    r = Releases(tmp_path / "rel")
    for name in ("a", "b"):
        fake_release(r.path, name)
    fake_release(r.path, "c", complete=False)
    assert r.current() is BASE and r.is_complete(BASE)
    r.switch("a")
    assert os.readlink(r.path / "current") == "a" and r.current() == "a"
    r.switch("b")
    assert os.readlink(r.path / "current") == "b"
    assert sorted(p.name for p in r.path.iterdir()) == ["a", "b", "c", "current"]
    for bad in ("c", "missing"):
        with pytest.raises(FileNotFoundError):
            r.switch(bad)
        assert r.current() == "b"
    assert r.python("b", through_link=True) == r.path / "current" / "venv" / "bin" / "python"
    r.switch(BASE)
    assert not os.path.lexists(r.path / "current") and r.current() is BASE
    r.switch(BASE)                                  # already the base: nothing to do
    assert sorted(p.name for p in r.path.iterdir()) == ["a", "b", "c"]
    assert r.info("a") == {"version": "a"} and r.info(BASE) == {} and r.info("c") == {}


def test_put_in_place_writes_the_mark_then_renames(tmp_path):
    """A release appears complete or not at all, at every kill point of put_in_place (its
    release.json is written into the hidden directory, then that is renamed); an existing
    complete release of that name is kept, an incomplete one replaced."""
    r = Releases(tmp_path / "rel")
    r.path.mkdir()
    seen = []
    kill_at = 0
    while True:
        for p in list(r.path.iterdir()):
            shutil.rmtree(p)
        temp = r.temp_dir("x")
        assert temp.name.startswith(".tmp-x-")
        (temp / "venv" / "bin").mkdir(parents=True)
        (temp / "venv" / "bin" / "python").write_text("")
        killed = run_child(lambda: r.put_in_place(temp, "x", {"version": "x"}), kill_at,
                           tmp_path / "report")
        installed = r.installed()
        assert installed in ([], ["x"]), installed
        if installed:
            assert r.info("x") == {"version": "x"}
        else:
            assert not (r.path / "x").exists()
        seen.append(bool(installed))
        r.remove_temps()
        assert hidden_leftovers(r.path) == [] and r.installed() == installed
        if not killed:
            break
        kill_at += 1
    assert seen[0] is False and seen[-1] is True and kill_at >= 2

    other = r.temp_dir("x")                         # the same name again: kept as it was
    fake_release(other.parent, other.name, complete=False)
    r.put_in_place(other, "x", {"version": "other"})
    assert r.info("x") == {"version": "x"} and not other.exists()

    fake_release(r.path, "y", complete=False)       # an incomplete one: replaced
    (r.path / "y" / "stale").write_text("")
    temp = r.temp_dir("y")
    fake_release(temp.parent, temp.name, complete=False)
    r.put_in_place(temp, "y", {"version": "y"})
    assert r.info("y") == {"version": "y"} and not (r.path / "y" / "stale").exists()
    assert r.installed() == ["x", "y"] and hidden_leftovers(r.path) == []


def test_remove_temps_and_installed(tmp_path):
    """remove_temps removes hidden install directories and temporary links, nothing else;
    installed() lists complete releases only (not the link, hidden or incomplete ones)."""
    r = Releases(tmp_path / "rel")
    assert r.remove_temps() == [] and r.installed() == []
    fake_release(r.path, "a")
    fake_release(r.path, "b", complete=False)
    r.switch("a")
    temp = r.temp_dir("c")
    fake_release(temp.parent, temp.name)            # complete inside, but hidden
    (r.path / ".tmp-file").write_text("")
    os.symlink("a", r.path / ".current.0badcafe")
    (r.path / ".current.notalink").write_text("")   # not a link: not ours to remove
    (r.path / "update.json").write_text("{}")
    with r.lock():
        pass
    assert r.installed() == ["a"]
    assert sorted(r.remove_temps()) == sorted([temp.name, ".tmp-file", ".current.0badcafe"])
    assert sorted(p.name for p in r.path.iterdir()) == [
        ".current.notalink", ".lock", "a", "b", "current", "update.json"]
    assert r.current() == "a" and r.installed() == ["a"]


def test_purge_keeps_current_and_the_previous(tmp_path):
    """purge removes every complete release but those kept and the one the link names."""
    r = Releases(tmp_path / "rel")
    for name in ("a", "b", "c", "d"):
        fake_release(r.path, name)
    fake_release(r.path, "e", complete=False)
    r.switch("c")
    assert sorted(r.purge(keep=("b", BASE))) == ["a", "d"]
    assert r.installed() == ["b", "c"] and (r.path / "e").is_dir()
    assert r.purge(keep=(BASE,)) == ["b"]
    assert r.installed() == ["c"] and r.current() == "c"


def test_record_round_trip_and_unreadable(tmp_path):
    """The record is idle when absent, read back as saved (unknown keys ignored), and an
    unreadable one is a failure to announce, not an exception."""
    path = tmp_path / "update.json"
    assert record.load(path) == record.Record()
    rec = record.Record(state="verifying", version="9", release="9-abc", tries_left=2,
                        migrated=True)
    record.save(path, rec, clock=lambda: 42.0)
    data = json.loads(path.read_text())
    assert data["state"] == "verifying" and data["at"] == 42.0
    data["unknown"] = 1
    path.write_text(json.dumps(data))
    assert record.load(path) == rec and record.load(path).pending
    path.write_text("{not json")
    bad = record.load(path)
    assert bad.state == "failed" and bad.announced is False
    assert bad.reason.startswith("Enregistrement de mise à jour illisible")


# --- 2. install -------------------------------------------------------------------------------

def test_install_makes_a_release_that_runs_through_the_link(art, tmp_path):
    """A verified package becomes a complete release (release.json says what it is, no wheels
    or temporary directory left); a copy of it elsewhere, run through ``current`` with -P from
    the repository (whose tree would shadow it), imports ticgw at the package's version."""
    store = Releases(art.store)
    assert store.installed() == sorted([art.old, art.new])
    assert hidden_leftovers(store.path) == []
    for name, facts in ((art.old, art.old_facts), (art.new, art.new_facts)):
        assert name == release_name(facts.version, facts.sha256)
        info = store.info(name)
        assert (info["version"], info["sha256"], info["size"]) == (
            facts.version, facts.sha256, facts.size)
        assert not (store.path / name / "wheels").exists()
    steps = []
    assert install.install(art.old_pak, art.old_facts, store,
                           progress=lambda s, p: steps.append((s, p))) == art.old
    assert steps == [("installation", 100)]         # already there: nothing done

    r = Releases(tmp_path / "rel")
    place(art.store, r.path, art.old, hardlinks=False)
    r.switch(art.old)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = "import sys, ticgw; print(ticgw.__version__); print(ticgw.__file__); print(sys.prefix)"
    out = subprocess.run([str(r.python(art.old, through_link=True)), "-P", "-c", code],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    version, module_file, prefix = out.stdout.split("\n")[:3]
    assert version == OLD_VERSION
    assert module_file.startswith(str(r.path / "current" / "venv") + "/"), module_file
    assert prefix == str(r.path / "current" / "venv")
    # the same without -P imports the tree's: the check above can tell them apart
    out = subprocess.run([str(r.python(art.old, through_link=True)), "-c", code],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.split("\n")[0] == __version__ != OLD_VERSION


def _rewrite(pak: Path, change) -> None:
    """Rewrite ``pak`` in place, each member through ``change(name, data)`` (None: dropped)."""
    with tarfile.open(pak, "r:gz") as t:
        members = [(m, t.extractfile(m).read()) for m in t.getmembers()]
    with tarfile.open(pak, "w:gz") as t:
        for m, data in members:
            data = change(m.name, data)
            if data is not None:
                m.size = len(data)
                t.addfile(m, io.BytesIO(data))


def _flip_wheel(name, data):
    if name.startswith("wheels/ticgw-"):
        return data[:100] + bytes([data[100] ^ 1]) + data[101:]
    return data


def _drop_wheel(name, data):
    return None if name.startswith("wheels/ticgw-") else data


@pytest.mark.parametrize("change, french", [
    ("flip", "Paquet modifié depuis sa vérification"),
    ("drop", "Paquet modifié depuis sa vérification"),
    ("truncate", "Lecture du paquet impossible"),
])
def test_install_refuses_a_package_changed_after_verify(art, tmp_path, change, french):
    """The file installed is hashed again: changed, shortened or missing a member since it
    was verified, it is refused (InstallError) and leaves no directory behind."""
    pak = tmp_path / "p.pak"
    shutil.copy2(art.old_pak, pak)
    facts = verify(pak, art.public_key, running_version=__version__)
    if change == "flip":
        _rewrite(pak, _flip_wheel)
    elif change == "drop":
        _rewrite(pak, _drop_wheel)
    else:
        with open(pak, "r+b") as f:
            f.truncate(pak.stat().st_size // 2)
    r = Releases(tmp_path / "rel")
    with pytest.raises(InstallError) as e:
        install.install(pak, facts, r)
    assert e.value.french == french
    assert list(r.path.iterdir()) == []


def _die(*_):
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.parametrize("point", ["extraction", "pip", "contrôle", "before the rename"])
def test_install_killed_leaves_only_a_temp_dir_that_resume_removes(art, template, tmp_path,
                                                                   point):
    """An install SIGKILLed (its whole process group, pip included) at any point leaves only
    a hidden temporary directory, no release; the next start removes it and the record says
    the install was interrupted."""
    r = Releases(tmp_path / "rel")
    data = fresh_data(template, tmp_path / "data")
    steps = Steps(r, data)
    steps.begin(art.old_facts, "test")
    name = art.old

    def operation():
        if point == "extraction":
            real = tarfile.TarFile.extractfile
            count = [0]

            def extractfile(self, member):
                count[0] += 1
                if count[0] == 3:                   # two members written, a third next
                    _die()
                return real(self, member)
            tarfile.TarFile.extractfile = extractfile
        elif point == "before the rename":
            real_rename = os.rename

            def rename(src, dst, *a, **k):
                if Path(dst) == r.path / name:
                    _die()
                return real_rename(src, dst, *a, **k)
            os.rename = rename
        install.install(art.old_pak, art.old_facts, r,
                        progress=lambda step, pct: _die() if (step, point) == ("contrôle",) * 2
                        else None)

    child = {}

    def watch(pid):
        child["pid"] = pid
        if point != "pip":
            return

        def pip_at_work():
            written = list(r.path.glob(".tmp-*/venv/lib/python3*/site-packages/*"))
            return written and [c for c in group_processes(pid) if " pip " in c]
        wait_until(pip_at_work, 120, "pip installing", interval=0.01)
        os.killpg(pid, signal.SIGKILL)

    assert run_child(operation, None, tmp_path / "report", watch=watch)
    wait_until(lambda: not group_processes(child["pid"]), 10, "the process group to be gone")
    entries = sorted(p.name for p in r.path.iterdir())
    temps = [e for e in entries if e.startswith(".tmp-%s-" % name)]
    assert len(temps) == 1 and (r.path / temps[0]).is_dir(), entries
    assert sorted(set(entries) - set(temps)) == [".lock", "update.json"]
    assert r.installed() == [] and r.current() is BASE
    temp = r.path / temps[0]
    assert not (temp / "release.json").exists() or point == "before the rename"
    if point == "extraction":
        assert 0 < len(list((temp / "wheels").iterdir())) < len(art.old_facts.wheels)
        assert not (temp / "venv").exists()
    if point == "pip":
        assert list(temp.glob("venv/lib/python3*/site-packages/*"))
    if point == "contrôle":
        assert len(list(temp.glob("venv/lib/python3*/site-packages/ticgw/*.py"))) > 5
    if point == "before the rename":
        assert json.loads((temp / "release.json").read_text())["version"] == OLD_VERSION
    rec, trigger = steps.resume()
    assert (rec.state, rec.reason, rec.announced, trigger) == (
        "failed", INTERRUPTED_INSTALL, False, "resume_idle")
    assert load_record(r).state == "failed"
    assert sorted(p.name for p in r.path.iterdir()) == [".lock", "update.json"]


def test_resume_converges_each_record(world, art, original):
    """resume() at the update service's start: an install in progress fails, a switch whose
    link did not move fails, one whose link moved goes on verifying (with its migration run
    by the launcher; a rollback trigger if another version runs)."""
    w = world
    w.releases.switch(art.old)
    w.steps.begin(art.new_facts, "test")
    rec, trigger = w.steps.resume()
    assert (rec.state, rec.reason, trigger) == ("failed", INTERRUPTED_INSTALL, "resume_idle")

    w.steps.begin(art.new_facts, "test")
    assert run_child(w.steps.switch, "after record.write_atomic",
                     w.root.parent / "report")      # after "switching"
    rec, trigger = w.steps.resume()
    assert (rec.state, rec.reason, trigger) == ("failed", INTERRUPTED_SWITCH, "resume_idle")
    assert w.releases.current() == art.old

    w.steps.begin(art.new_facts, "test")
    # killed after the link moved, before "verifying" was written
    assert run_child(w.steps.switch, "after os.replace", w.root.parent / "report")
    assert (w.record().state, w.releases.current()) == ("switching", art.new)
    assert w.settle("services.update") == art.new
    rec, trigger = w.steps.resume(NEW_VERSION)
    assert (rec.state, rec.migrated, trigger) == ("verifying", True, "resume_verifying")
    assert w.steps.resume(OLD_VERSION)[1] == "resume_rollback"
    assert w.record().state == "verifying" and config_snapshot(w.data) != original


def test_resume_of_a_release_abandoned_while_verifying_restores_the_configuration(
        world, art, original):
    """A record still verifying while the link names another release (moved back outside
    moves.py, by hand) is closed as rolled back by resume(): the release that runs then is
    the old one, so the configuration must be the one it had, not the migrated one."""
    w = world
    w.switched()
    assert w.settle("services.update") == art.new and w.record().migrated
    w.releases.switch(art.old)
    rec, trigger = w.steps.resume(OLD_VERSION)
    assert (rec.state, rec.announced, trigger) == ("rolled_back", False, "resume_idle")
    assert rec.reason == "Version %s abandonnée" % NEW_VERSION
    assert config_differs(config_snapshot(w.data), original) == [], \
        "the old release runs with the new release's migrated configuration"


# --- 3. the launcher --------------------------------------------------------------------------

def test_settle_counts_tries_only_for_update_while_pending(world, art):
    """Only the update service's starts take a try, only while the record is pending and the
    link names the release it is about: a switch killed before the link moved counts
    nothing and runs no migration; a committed release counts nothing either."""
    w = world
    w.releases.switch(art.old)
    w.steps.begin(art.new_facts, "test")
    # killed right after the "switching" mark, before anything else (a real SIGKILL)
    assert run_child(w.steps.switch, "after record.write_atomic",
                     w.root.parent / "report")
    rec = w.record()
    assert (rec.state, w.releases.current()) == ("switching", art.old)
    assert w.settle("services.update") == art.old
    rec = w.record()
    assert (rec.state, rec.tries_left, rec.migrated) == ("switching", record.TRIES, False)
    assert w.runs() == []

    w.steps.switch()
    assert w.settle("services.acquisition") == art.new
    assert (w.record().tries_left, w.record().migrated) == (record.TRIES, True)
    assert w.settle("services.uplink") == art.new
    assert w.record().tries_left == record.TRIES
    for left in range(record.TRIES - 1, record.TRIES - 3, -1):
        assert w.settle("services.update") == art.new
        assert (w.record().state, w.record().tries_left) == ("verifying", left)
    w.steps.commit()
    left = w.record().tries_left
    assert w.settle("services.update") == art.new
    assert (w.record().state, w.record().tries_left) == ("committed", left)


@pytest.mark.parametrize("came_from", ["old", "base", "old, since removed"])
def test_settle_rolls_back_when_no_try_is_left(world, art, original, came_from):
    """A release whose update service started TRIES times without committing is rolled back
    by the launcher at the next start: back to the release it replaced, or to the base when
    it replaced the base or that release is gone; the configuration as it was."""
    w = world
    w.switched(from_old=came_from != "base")
    if came_from == "old, since removed":
        shutil.rmtree(w.root / art.old)
    back = art.old if came_from == "old" else BASE
    for _ in range(record.TRIES):
        assert w.settle("services.update") == art.new
    assert w.record().tries_left == 0 and config_snapshot(w.data) != original
    assert w.settle("services.update") == back
    rec = w.record()
    assert (rec.state, rec.announced) == ("rolled_back", False)
    assert rec.reason == "La version %s n'a pas démarré (%d essais)" % (NEW_VERSION,
                                                                         record.TRIES)
    assert w.releases.current() == back
    assert os.path.lexists(w.root / "current") == (back is not BASE)
    assert config_snapshot(w.data) == original
    assert w.settle("services.update") == back and w.record().state == "rolled_back"


@pytest.mark.parametrize("how", ["settle", "exec"])
def test_an_interrupted_rollback_is_finished_by_any_service_launcher(world, art, original,
                                                                     how):
    """A rollback SIGKILLed right after its mark is finished by the launcher of whatever
    service starts next (not only the update service's), in process or run for real."""
    w = world
    w.switched()
    assert w.settle("services.acquisition") == art.new
    reason = "Mise à jour annulée : test"
    assert run_child(lambda: w.steps.roll_back(reason), "after record.write_atomic",
                     w.root.parent / "report")
    assert (w.record().state, w.releases.current()) == ("rolling_back", art.new)
    if how == "settle":
        assert w.settle("services.uplink") == art.old
    else:
        out = launch_run(w, "ticgw.cli", "--version")
        assert out.returncode == 0, out.stderr
        assert out.stdout == "ticgw %s\n" % OLD_VERSION
        assert out.stderr.startswith("launch: rolled back to %s: %s" % (art.old, reason))
    rec = w.record()
    assert (rec.state, rec.reason, rec.announced) == ("rolled_back", reason, False)
    assert w.releases.current() == art.old and config_snapshot(w.data) == original


def test_an_incomplete_current_starts_the_base(world, art):
    """A link naming a release without release.json (or nothing at all) starts the base
    install, in process and run for real (stdout is the service's alone)."""
    w = world
    broken = place(art.store, w.root, art.old, as_name="0.9.9-broken")
    (broken / "release.json").unlink()
    os.symlink(broken.name, w.root / "current")
    assert w.settle("services.acquisition") is BASE
    argv, _ = launch.command(w.releases, BASE, "services.acquisition", [])
    assert argv[1:] == ["-m", "services.acquisition"]
    out = launch_run(w, "ticgw.cli", "--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "ticgw %s\n" % __version__
    assert out.stderr == "launch: release 0.9.9-broken is incomplete: starting the base install\n"
    os.unlink(w.root / "current")
    os.symlink("gone", w.root / "current")
    assert w.settle("services.acquisition") is BASE


def test_command_argv_and_environment(world, art, monkeypatch):
    """A release runs as <root>/current/venv/bin/python -P -m MODULE, without PYTHONPATH, with
    TICGW_RELEASE, TICGW_BASE_PYTHON and TICGW_LAUNCH (the launcher again, as JSON argv); the
    base as the base interpreter; the launcher's own environment is left alone."""
    w = world
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("TICGW_RELEASE", "stale")
    monkeypatch.delenv("TICGW_BASE_PYTHON", raising=False)
    before = dict(os.environ)
    argv, env = launch.command(w.releases, art.new, "services.modem", ["--x", "1"])
    assert argv == [str(w.root / "current" / "venv" / "bin" / "python"), "-P", "-m",
                    "services.modem", "--x", "1"]
    assert "PYTHONPATH" not in env and env["TICGW_RELEASE"] == art.new
    assert env["TICGW_BASE_PYTHON"] == sys.executable
    assert json.loads(env["TICGW_LAUNCH"]) == [sys.executable, "-m", "ticgw.launch",
                                               "services.modem", "--x", "1"]
    assert dict(os.environ) == before

    monkeypatch.setenv("TICGW_BASE_PYTHON", "/opt/base/bin/python")
    argv, env = launch.command(w.releases, BASE, "services.modem", [])
    assert argv == ["/opt/base/bin/python", "-m", "services.modem"]
    assert "TICGW_RELEASE" not in env
    assert json.loads(env["TICGW_LAUNCH"]) == ["/opt/base/bin/python", "-m", "ticgw.launch",
                                               "services.modem"]


def test_launcher_execs_the_release(world, art):
    """``python -m ticgw.launch MODULE`` from the repository, with PYTHONPATH naming the tree,
    runs the module of the release the link names (its version, its sys.path: no tree, no
    working directory) and writes nothing to stdout itself."""
    w = world
    w.releases.switch(art.old)
    out = launch_run(w, "ticgw.cli", "--version")
    assert (out.returncode, out.stdout, out.stderr) == (0, "ticgw %s\n" % OLD_VERSION, "")
    out = launch_run(w, "site")
    assert out.returncode == 0, out.stderr
    paths = [line.strip().rstrip(",").strip("'") for line in
             out.stdout.split("sys.path = [\n", 1)[1].split("]\n", 1)[0].splitlines()]
    lib = "python%d.%d" % sys.version_info[:2]
    assert str(w.root / "current" / "venv" / "lib" / lib / "site-packages") in paths, paths
    assert str(REPO) not in paths and "" not in paths and os.getcwd() not in paths
    assert launch.main(["--version"]) == 2 and launch.main([]) == 2


# --- 4. migrations ----------------------------------------------------------------------------

def test_migration_runs_once_and_a_commit_keeps_it(world, art, original, migrated):
    """The first service of a new release runs its migration once, with the release's own
    interpreter (applied id in state/migrations.json, the configuration changed); later starts
    do not run it again; a commit drops the copy and keeps the migrated configuration."""
    w = world
    w.switched()
    assert config_snapshot(w.data) == original and w.runs() == []
    assert configs.has_backup(w.root)
    assert w.settle("services.acquisition") == art.new
    assert w.record().migrated
    assert json.loads((w.data / "state" / "migrations.json").read_text()) == [MIGRATION_ID]
    snap = config_snapshot(w.data)
    assert snap == migrated and snap != original
    ini = [k for k in snap if k.endswith("_config.ini")][0]
    assert MIGRATED_ADDRESS in snap[ini] and MIGRATED_ADDRESS not in original[ini]
    assert "config/" + ADDED_FILE in snap and "config/" + ADDED_FILE not in original
    assert len(w.runs()) == 1 and w.runs()[0].endswith("/%s/venv" % art.new)
    for module in ("services.acquisition", "services.update", "services.uplink"):
        assert w.settle(module) == art.new
    assert len(w.runs()) == 1 and config_snapshot(w.data) == migrated

    rec = w.steps.commit()
    assert rec.state == "committed" and not (w.root / configs.BACKUP).exists()
    assert config_snapshot(w.data) == migrated
    assert w.settle("services.update") == art.new and len(w.runs()) == 1


def test_concurrent_first_starts_run_the_migration_once(world, art, migrated):
    """Every service starts at once after a switch (honcho): the launchers, real processes,
    take turns under the lock; one runs the migration, all run the new release."""
    w = world
    w.switched()
    env = {k: v for k, v in os.environ.items()
           if k not in ("TICGW_BASE_PYTHON", "TICGW_RELEASE", "TICGW_LAUNCH")}
    env.update(TICGW_RELEASES=str(w.root), TICGW_DATA=str(w.data), PYTHONPATH=str(REPO))
    procs = [subprocess.Popen([sys.executable, "-m", "ticgw.launch", "ticgw.cli", "--version"],
                              env=env, cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [o for o, _ in outs] == ["ticgw %s\n" % NEW_VERSION] * 4, outs
    assert len(w.runs()) == 1 and config_snapshot(w.data) == migrated
    rec = w.record()
    assert (rec.state, rec.migrated, rec.tries_left) == ("verifying", True, record.TRIES)


def test_a_rollback_restores_the_configuration_byte_for_byte(world, art, original):
    """After the migration ran, a rollback puts every configuration file back as it was,
    removes the file the migration created and the migrations it recorded."""
    w = world
    w.switched()
    assert w.settle("services.update") == art.new and config_snapshot(w.data) != original
    rec = w.steps.roll_back("Mise à jour annulée : test")
    assert rec.state == "rolled_back" and w.releases.current() == art.old
    assert config_snapshot(w.data) == original
    assert not (w.data / "config" / ADDED_FILE).exists()
    assert not (w.data / "state" / "migrations.json").exists()


def test_a_migration_that_raises_rolls_the_release_back(world, art, original):
    """A migration that fails (after changing a file) rolls the release back at the launcher,
    with the configuration as it was and the migration's error in the reason."""
    w = world
    (w.data / REFUSE_MARK).write_text("")
    w.switched()
    assert w.settle("services.update") == art.old
    rec = w.record()
    assert rec.state == "rolled_back" and rec.announced is False
    assert rec.reason.startswith("Migration de la configuration impossible (")
    assert "refused on purpose by the test package" in rec.reason
    assert len(w.runs()) == 1                    # it did run, and changed files, then raised
    assert w.releases.current() == art.old and config_snapshot(w.data) == original


# --- 5. SIGKILL at every step -----------------------------------------------------------------

EXTRA = "0.0.9-0badc0de"                          # an older release a commit removes

#: Per operation: the calls it must be seen to make (in this order), the states a restart
#: may leave after a kill, and the state once it completed.
OPERATIONS = {
    "switch_to": (["record.write_atomic", "shutil.copy2", "shutil.rmtree", "os.rename",
                   "os.symlink", "os.replace", "record.write_atomic"],
                  {"failed", "verifying"}, "verifying"),
    "first_start": (["configs.write_atomic", "record.write_atomic"],
                    {"verifying"}, "verifying"),
    "roll_back": (["record.write_atomic", "configs.write_atomic", "os.unlink", "os.symlink",
                   "os.replace", "record.write_atomic"], {"verifying", "rolled_back"},
                  "rolled_back"),
    "commit": (["record.write_atomic", "shutil.rmtree", "shutil.rmtree"],
               {"verifying", "committed"}, "committed"),
    "tries_exhausted": (["record.write_atomic", "configs.write_atomic", "os.unlink",
                         "os.symlink", "os.replace", "record.write_atomic"],
                        {"rolled_back"}, "rolled_back"),
}


def _start(op, w, stale):
    """The state the operation starts from, made by the real steps."""
    w.releases.switch(w.art.old)
    if op == "switch_to":
        configs.backup(w.root, stale)               # a copy an earlier update left
    w.steps.begin(w.art.new_facts, "test")
    if op == "switch_to":
        return
    w.steps.switch()
    if op == "first_start":
        return
    assert w.settle("services.acquisition") == w.art.new          # the migration
    if op == "tries_exhausted":
        for _ in range(record.TRIES):
            assert w.settle("services.update") == w.art.new
        assert w.record().tries_left == 0


def _operation(op, w):
    if op == "switch_to":
        return w.steps.switch
    if op == "first_start":
        def first_start():
            with w.releases.lock():
                moves.first_start(w.releases, w.record(), w.data)
        return first_start
    if op == "roll_back":
        return lambda: w.steps.roll_back("Mise à jour annulée : test")
    if op == "commit":
        return w.steps.commit
    return lambda: w.settle("services.update")


def _converged(op, w, original, migrated) -> list[str]:
    """What is wrong once a restart (launcher, then the update service's resume) is done."""
    problems = []
    current = w.releases.current()
    if not (current is BASE or w.releases.is_complete(current)):
        problems.append("current names %s, not a complete release" % current)
    rec = w.record()
    if rec.state not in OPERATIONS[op][1]:
        problems.append("record %s (reason %s)" % (rec.state, rec.reason))
    if rec.state == "verifying" and not (current == rec.release and rec.migrated):
        problems.append("verifying, current %s, migrated %s" % (current, rec.migrated))
    snap = config_snapshot(w.data)
    if current == w.art.new:
        if not rec.migrated or snap != migrated:
            problems.append("the new release runs, migrated %s, configuration %s" % (
                rec.migrated, "migrated" if snap == migrated else "NOT the migrated one"))
    elif current == w.art.old:
        if snap != original:
            problems.append("the old release runs with a configuration not the original")
    else:
        problems.append("%s runs" % current)
    left = hidden_leftovers(w.root)
    if left:
        problems.append("left in the releases root: %s" % ", ".join(left))
    return problems


@pytest.mark.parametrize("op", list(OPERATIONS))
def test_sigkill_at_every_step(op, art, template, original, migrated, tmp_path):
    """SIGKILL before and after every disk-changing call of each move of the link, then a
    restart (the launcher's settle, the update service's resume): the link names a complete
    release or the base, the record is settled (verifying only with the link on the new,
    migrated release) and the configuration is the original for the old release, the migrated
    one for the new, with no temporary directory or link left."""
    names = {art.old: art.old, art.new: art.new}
    if op == "commit":
        names[EXTRA] = art.old
    stale = fresh_data(template, tmp_path / "stale")
    ini = sorted((stale / "config").glob("*_config.ini"))[0]
    set_value(ini, "ETH_Address", b"172.16.0.1")
    wanted, _, final = OPERATIONS[op]
    problems, kill_at = [], 0
    while True:
        w = World(art, template, tmp_path, names)
        _start(op, w, stale)
        killed = run_child(_operation(op, w), kill_at, tmp_path / "report")
        assert w.settle("services.update") in (w.art.old, w.art.new, BASE)
        Steps(w.releases, w.data).resume(running_version(w.releases))
        problems += ["kill point %d: %s" % (kill_at, p)
                     for p in _converged(op, w, original, migrated)]
        if not killed:
            break
        kill_at += 1
        assert kill_at < 200
    calls = (tmp_path / "report").read_text().split()
    print("kill points: %s: %d (%d calls: %s)" % (op, kill_at, len(calls), " ".join(calls)))
    assert kill_at == 2 * len(calls) and is_subsequence(wanted, calls), calls
    rec = w.record()
    assert rec.state == final, rec
    if op == "commit":
        assert not (w.root / configs.BACKUP).exists() and not (w.root / EXTRA).exists()
        assert w.releases.installed() == sorted([art.old, art.new])
    if op == "tries_exhausted":
        assert NEW_VERSION in rec.reason
    labels = {2 * i + j: "%s %s" % (("before", "after")[j], c)
              for i, c in enumerate(calls) for j in (0, 1)}
    assert not problems, "\n".join(
        "%s (%s)" % (p, labels.get(int(p.split()[2].rstrip(":")), "completed"))
        for p in problems)
