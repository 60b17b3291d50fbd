"""The update service as a real process (through the launcher, as the Procfile starts it) on a
real broker, fed real packages: what it says when it checks a package, every refusal reported
the same way (the reply, the journal row, the outcome event, the record, nothing installed),
the task lock, and a whole install that switches, restarts the process into the new release,
fails its health check (no other service runs) and rolls itself back."""
from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest
import zmq

from bus.client import CommandClient
from bus.errors import BusTimeout, RemoteError
from bus.tasklock import TaskLock
from bus.testing import REPO, child_env, short_run_dir, start_broker, stop_process, wait_for
from gateway_helpers import Events
from services.runtime import RESTART_MESSAGE
from ticgw import __version__, gateway, registry
from ticgw.config import ConfigStore
from ticgw.journal import parse_rows
from ticgw.pak import MODEL, build, inspect, keygen, parse_version, wheelhouse
from ticgw.pak.sign import sign
from ticgw.release import record
from ticgw.release.layout import release_name

GOOD = "%s.post1" % __version__
OLD = "0.0.9"
assert parse_version(OLD) < parse_version(__version__) < parse_version(GOOD)

BUSY = ("Une tâche 'Détection' est déjà en cours d'exécution. "
        "Veuillez réessayer dans quelques instants.")
NO_KEY = "Paquet refusé : clé publique BIN_PublicKey non configurée"
CHECKSUM = "Paquet refusé : somme de contrôle différente de BIN_Checksum"
FACT_KEYS = {"version", "build_date", "size", "sha256", "model"}
#: The reason of the rollback when no other service ever answers: every other service of the
#: registry, in its order ("acquisition (muet), modem (muet), uplink (muet), ...").
SILENT = "services non opérationnels après 30 s : %s" % ", ".join(
    "%s (muet)" % s.name for s in registry.BUILTIN if s.name != "update")


# --- packages, built once for the whole run (shared by the xdist workers) ----------------------

class Paks:
    """Signed packages kept in one directory; each built once, under its own lock."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.house = wheelhouse.ensure(Path(sys.prefix) / "wheelhouse")

    def _locked(self, name: str):
        f = open(self.dir / (name + ".lock"), "a")
        fcntl.flock(f, fcntl.LOCK_EX)
        return f                                   # unlocked when closed

    def keys(self) -> dict:
        """{"pem": the signing key, "pub": its public half, "other_pem": another key}."""
        with self._locked("keys"):
            path = self.dir / "keys.json"
            if not path.exists():
                (pem, pub), (other, _) = keygen(), keygen()
                path.write_text(json.dumps({"pem": pem.decode(), "pub": pub,
                                            "other_pem": other.decode()}))
            return json.loads(path.read_text())

    def get(self, name: str) -> Path:
        """The package ``name``: good (one version up), model (for another model), old (a
        downgrade), old-allowed (a downgrade the manifest allows from the running version)."""
        key = self.keys()["pem"].encode()
        with self._locked(name):
            out = self.dir / (name + ".pak")
            if not out.exists():
                if name == "good":
                    build(out, key=key, version=GOOD, wheels_from=self.house)
                elif name == "model":
                    build(out, key=key, version=GOOD, model="other",
                          wheels_from=self.wheels_of("good"))
                elif name == "old":
                    build(out, key=key, version=OLD, wheels_from=self.house)
                elif name == "old-allowed":
                    build(out, key=key, version=OLD, downgrade_allowed_from=[__version__],
                          wheels_from=self.wheels_of("old"))
                else:
                    raise KeyError(name)
            return out

    def wheels_of(self, name: str) -> Path:
        """The wheels a package carries (its ticgw wheel among them), to build variants of it
        without building that wheel again."""
        pak = self.get(name)
        with self._locked("wheels-" + name):
            d = self.dir / ("wheels-" + name)
            if not d.exists():
                tmp = self.dir / (".wheels-%s-%d" % (name, os.getpid()))
                tmp.mkdir()
                with tarfile.open(pak, "r:gz") as t:
                    for m in t.getmembers():
                        if m.isfile() and m.name.startswith("wheels/"):
                            (tmp / Path(m.name).name).write_bytes(t.extractfile(m).read())
                os.rename(tmp, d)
            return d


@pytest.fixture(scope="session")
def paks(tmp_path_factory) -> Paks:
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent                         # the run's directory, shared by the workers
    return Paks(root / "update-paks")


def rewrite(src: Path, dst: Path, change) -> Path:
    """Copy a package, each (TarInfo, data) through ``change``."""
    with tarfile.open(src, "r:gz") as t:
        members = [(m, t.extractfile(m).read()) for m in t.getmembers()]
    with tarfile.open(dst, "w:gz", compresslevel=1) as t:
        for m, data in members:
            m, data = change(m, data)
            m.size = len(data)
            t.addfile(m, io.BytesIO(data))
    return dst


def signed_by_another_key(paks: Paks, dst: Path) -> Path:
    other = paks.keys()["other_pem"].encode()
    manifest = {}

    def change(m, data):
        if m.name == "manifest.json":
            manifest["bytes"] = data
        if m.name == "manifest.sig":
            data = sign(manifest["bytes"], other)
        return m, data
    return rewrite(paks.get("good"), dst, change)


def with_a_wheel_changed(paks: Paks, dst: Path) -> Path:
    def change(m, data):
        if m.name.startswith("wheels/ticgw-"):
            middle = len(data) // 2
            data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]
        return m, data
    return rewrite(paks.get("good"), dst, change)


def truncated(paks: Paks, dst: Path) -> Path:
    data = paks.get("good").read_bytes()
    dst.write_bytes(data[:len(data) // 2])
    return dst


def copy(src: Path, dst: Path) -> Path:
    shutil.copyfile(src, dst)
    return dst


def not_a_package(paks: Paks, dst: Path) -> Path:
    dst.write_bytes(b"\x00" + os.urandom(8191))
    return dst


# --- a gateway: broker + the update service through the launcher -----------------------------

class Gateway:
    """A broker, an events collector, and ``python -m ticgw.launch services.update``."""

    def __init__(self, base: Path, public_key: str = ""):
        self.data = base / "data"
        self.run = short_run_dir(base)
        self.firmware = self.data / "firmware"
        self.firmware.mkdir(parents=True)
        self.releases = self.data / "releases"
        store = ConfigStore(self.data)
        store.ensure_files()
        store.update({"BIN_PublicKey": public_key, "BIN_HealthTimeout": "30"})
        self.broker = start_broker(self.run)
        self.events = Events(self.run)
        env = child_env(self.run, TICGW_DATA=self.data, PYTHONUNBUFFERED="1")
        for k in ("TICGW_RELEASES", "TICGW_LAUNCH", "TICGW_BASE_PYTHON", "TICGW_RELEASE"):
            env.pop(k, None)
        self.proc = subprocess.Popen([sys.executable, "-m", "ticgw.launch", "services.update"],
                                     env=env, cwd=str(REPO), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self.output: list[str] = []
        threading.Thread(target=lambda: [self.output.append(l.decode("utf-8", "replace"))
                                         for l in self.proc.stdout], daemon=True).start()
        self.ctx = zmq.Context()
        self.client = CommandClient(self.ctx, gateway.endpoints_from_environment(
            self.run, self.data), "test")
        try:
            wait_for(lambda: (self.try_status() or {}).get("state") == "idle", 30,
                     interval=0.1, message=self.tail())
        except BaseException:
            self.close()                 # a start that fails stops what it started, too
            raise

    def tail(self) -> str:
        return "service output:\n" + "".join(self.output[-40:])

    def call(self, method: str, timeout: float = 60.0, **params):
        return self.client.call("update", method, timeout=timeout, **params)

    def refusal(self, method: str, **params) -> RemoteError:
        with pytest.raises(RemoteError) as e:
            self.call(method, **params)
        return e.value

    def status(self) -> dict:
        return self.call("status", timeout=10.0)

    def try_status(self):
        try:
            return self.client.call("update", "status", timeout=1.0)
        except BusTimeout:
            return None

    def put(self, pak: Path, name: str) -> Path:
        """A copy of ``pak`` in <data>/firmware."""
        dst = self.firmware / name
        shutil.copyfile(pak, dst)
        return dst

    def mark(self) -> int:
        return len(self.events.of(""))

    def since(self, mark: int, prefix: str) -> list[dict]:
        return [e for e in self.events.of("")[mark:] if e["topic"].startswith(prefix)]

    def wait(self, mark: int, prefix: str, timeout: float = 30.0, where=lambda d: True) -> dict:
        return wait_for(lambda: next((e for e in self.since(mark, prefix) if where(e["data"])),
                                     None), timeout, interval=0.05,
                        message="no %s event within %.0f s\n%s" % (prefix, timeout, self.tail()))

    def journal_rows(self) -> list[str]:
        path = self.data / "state" / "journal.log"
        return [r[2] for r in parse_rows(path.read_text("utf-8"))] if path.exists() else []

    def record_on_disk(self) -> dict:
        return json.loads((self.releases / "update.json").read_text())

    def release_dirs(self) -> list[str]:
        """Every directory under the releases root (releases and temporary ones)."""
        if not self.releases.is_dir():
            return []
        return sorted(p.name for p in self.releases.iterdir()
                      if p.is_dir() and not p.is_symlink())

    def close(self):
        stop_process(self.proc, 10)
        self.client.close()
        self.ctx.destroy(linger=0)
        self.events.close()
        stop_process(self.broker)


def cmdline(pid: int) -> list[str]:
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return f.read().decode().rstrip("\0").split("\0")


@pytest.fixture
def fresh(tmp_path):
    """Start gateways of this test (each with its own broker), stopped at the end."""
    made = []

    def start(public_key: str = "") -> Gateway:
        made.append(Gateway(tmp_path / ("g%d" % len(made)), public_key))
        return made[-1]
    yield start
    for g in made:
        g.close()


@pytest.fixture(scope="module")
def shared(tmp_path_factory, paks):
    """One gateway, signed with the packages' key, shared by the tests that install nothing."""
    g = Gateway(tmp_path_factory.mktemp("shared"), paks.keys()["pub"])
    yield g
    g.close()


def assert_refused(g: Gateway, mark: int, err: RemoteError, code: str, french: str,
                   version: str | None = None):
    """The service refused a package: said in the reply, the journal, update.outcome and the
    record; nothing installed, the ``current`` link untouched."""
    assert (err.code, err.message) == (code, french)
    row = "Échec de la mise à jour%s : %s" % (" " + version if version else "", french)
    outcome = g.wait(mark, "update.outcome")["data"]
    assert outcome == {"state": "failed", "version": version, "from_version": __version__,
                       "reason": french}
    g.wait(mark, "journal", where=lambda d: d["message"] == row)
    assert [e["data"]["message"] for e in g.since(mark, "journal")] == [row]
    assert g.journal_rows()[-1] == row
    st = wait_for(lambda: (lambda s: s if s["record"]["announced"] else None)(g.status()), 10)
    assert st["state"] == "failed" and st["package"] == {}
    assert (st["record"]["state"], st["record"]["reason"]) == ("failed", french)
    assert (st["release"], st["installed"]) == ("base", [])
    on_disk = g.record_on_disk()
    assert (on_disk["state"], on_disk["reason"], on_disk["from_version"]) == (
        "failed", french, __version__)
    assert g.release_dirs() == []
    assert not os.path.lexists(g.releases / "current")
    assert TaskLock(g.run).current() is None


# --- the tests -----------------------------------------------------------------------------------
# The whole install first: it is the longest, xdist starts it at once on one worker.

def test_install_switches_restarts_then_rolls_back_when_no_other_service_answers(fresh, paks):
    """With the task lock busy an install is refused with the manual's sentence; once free, an
    install by path runs every step (progress events), builds a complete release, switches the
    link and restarts the same process (execv through the launcher) into the new release, which
    verifies; no other service ever answers, so after BIN_HealthTimeout it rolls back, restarts
    into the base install and announces it: record rolled_back naming the silent services,
    the link gone again, the configuration as it was, the restart rows and the rollback row in
    the journal, update.outcome and the MISE_A_JOUR_ANNULEE alarm published by the restarted
    process."""
    g = fresh(paks.keys()["pub"])
    pak = g.put(paks.get("good"), "ticgw-%s.pak" % GOOD)
    facts = inspect(pak)
    name = release_name(GOOD, facts.sha256)
    pid = g.proc.pid
    assert g.call("ping")["pid"] == pid
    config_before = {p.name: p.read_bytes() for p in (g.data / "config").iterdir()}

    # busy: refused, nothing started
    mark = g.mark()
    with TaskLock(g.run).acquire("Détection"):
        err = g.refusal("install", path=str(pak))
        assert (err.code, err.message) == ("busy", BUSY)
        assert g.status()["state"] == "idle"
    assert g.since(mark, "task.") == [] and g.since(mark, "update.progress") == []
    assert [e for e in g.since(mark, "update.state") if e["data"]["machine"] == "install"
            and e["data"]["trigger"] != "republish"] == []
    assert pak.exists() and g.release_dirs() == []

    # free: installed at once (the reply once checked, the install goes on)
    mark = g.mark()
    reply = g.call("install", path=str(pak))
    assert reply == {"version": GOOD, "build_date": facts.build_date, "size": facts.size,
                     "sha256": facts.sha256, "model": MODEL}
    assert g.wait(mark, "task.started")["data"] == {"task": "Mise à jour", "reason": "command"}
    g.wait(mark, "update.progress", 240, where=lambda d: d["step"] == "redémarrage")
    progress = [e["data"] for e in g.since(mark, "update.progress")]
    steps = [d["step"] for d in progress]
    steps = [s for i, s in enumerate(steps) if i == 0 or steps[i - 1] != s]
    assert steps[:8] == ["vérification", "extraction", "environnement", "installation",
                         "contrôle", "installation", "basculement", "redémarrage"], progress
    assert all(d["version"] == GOOD for d in progress[1:]), progress
    # a complete release, the link on it, the package consumed
    info = json.loads((g.releases / name / "release.json").read_text())
    assert (info["version"], info["sha256"], info["size"]) == (GOOD, facts.sha256, facts.size)
    assert (g.releases / name / "venv" / "bin" / "python").exists()
    assert g.release_dirs() == sorted([name, "config-before"])     # no temporary one left
    assert not pak.exists()
    g.wait(mark, "journal", 30, where=lambda d: d["message"] == RESTART_MESSAGE)

    # the same process, restarted into the new release, checks its health
    st = wait_for(lambda: (lambda s: s if s and s["version"] == GOOD else None)(g.try_status()),
                  60, interval=0.2, message=g.tail())
    assert st["pid"] == pid and g.proc.poll() is None
    assert (st["state"], st["release"], st["record"]["state"]) == ("verifying", name,
                                                                   "verifying")
    assert os.readlink(g.releases / "current") == name
    argv = cmdline(pid)
    assert argv[0] == str(g.releases / "current" / "venv" / "bin" / "python"), argv
    assert argv[1:4] == ["-P", "-m", "services.update"], argv
    rec = g.record_on_disk()
    assert (rec["state"], rec["version"], rec["release"], rec["from_version"],
            rec["from_release"], rec["origin"]) == ("verifying", GOOD, name, __version__, None,
                                                     "command")
    assert rec["tries_left"] == record.TRIES - 1 and rec["migrated"] is True
    assert g.wait(mark, "task.ended")["data"]["outcome"] == "stopped"
    g.wait(mark, "update.progress", 10, where=lambda d: d["step"] == "contrôle de santé")

    # no other service answers: rolled back, restarted into the base, announced
    outcome = g.wait(mark, "update.outcome", 150)
    assert outcome["data"] == {"state": "rolled_back", "version": GOOD,
                               "from_version": __version__, "reason": SILENT}
    alarm = g.wait(mark, "alarm.raised", 10)
    assert alarm["data"] == {"code": "MISE_A_JOUR_ANNULEE", "source": "GATEWAY",
                             "detail": "%s -> %s" % (GOOD, __version__)}
    row = "Mise à jour annulée : retour à la version %s (%s)" % (__version__, SILENT)
    g.wait(mark, "journal", 10, where=lambda d: d["message"] == row)
    journal = g.since(mark, "journal")
    assert [e["data"]["message"] for e in journal] == [RESTART_MESSAGE, RESTART_MESSAGE, row]
    assert alarm["ts"] > journal[1]["ts"] and alarm["src"] == "update"   # after the 2nd restart
    assert g.journal_rows()[-3:] == [RESTART_MESSAGE, RESTART_MESSAGE, row]
    st = wait_for(lambda: (lambda s: s if s["record"]["announced"] else None)(g.status()), 10)
    assert (st["pid"], st["version"], st["release"], st["installed"]) == (
        pid, __version__, "base", [name])
    assert (st["state"], st["record"]["state"], st["record"]["reason"]) == (
        "idle", "rolled_back", SILENT)
    assert not os.path.lexists(g.releases / "current")
    argv = cmdline(pid)
    assert argv[0] == sys.executable and argv[1:3] == ["-m", "services.update"], argv
    assert {p.name: p.read_bytes() for p in (g.data / "config").iterdir()} == config_before
    assert not (g.data / "state" / "migrations.json").exists()
    assert TaskLock(g.run).current() is None
    assert g.proc.poll() is None
    # announced once
    assert len(g.since(mark, "update.outcome")) == 1 and len(g.since(mark, "alarm.")) == 1


def test_a_path_outside_the_firmware_directory_is_refused_without_a_trace(shared, paks):
    """A package anywhere but directly in <data>/firmware (beside it, in a subdirectory, by
    '..', through a symbolic link, or no path at all) is refused with bad-path at once: no
    journal row, no outcome, the record and the state unchanged."""
    g = shared
    good = paks.get("good")
    outside = g.data / "outside.pak"
    shutil.copyfile(good, outside)
    (g.firmware / "sub").mkdir(exist_ok=True)
    sub = g.firmware / "sub" / "x.pak"
    shutil.copyfile(good, sub)
    link = g.firmware / "link.pak"
    if not link.is_symlink():
        link.symlink_to(outside)
    before = g.status()
    record_before = (g.releases / "update.json").read_bytes() \
        if (g.releases / "update.json").exists() else None
    mark = g.mark()
    inbox = (g.data / "firmware").resolve()
    for method in ("verify", "install"):
        for path in (outside, sub, g.firmware / ".." / "outside.pak", link, None):
            err = g.refusal(method, **({"path": str(path)} if path is not None else {}))
            if method == "install" and path is None:
                # install without a path: the verified package, and there is none
                assert (err.code, err.message) == ("nothing",
                                                   "Aucun paquet vérifié à installer")
            else:
                assert (err.code, err.message) == (
                    "bad-path", "the package must be a file in %s" % inbox), path
    after = g.status()
    assert (after["state"], after["record"]) == (before["state"], before["record"])
    assert record_before == ((g.releases / "update.json").read_bytes()
                             if (g.releases / "update.json").exists() else None)
    # a refusal after them: its row is the only one (the journal writes in order)
    bad = not_a_package(paks, g.firmware / "after-bad-paths.pak")
    err = g.refusal("verify", path=str(bad))
    assert_refused(g, mark, err, "not-a-package", "Paquet refusé : ce n'est pas un paquet")
    assert g.since(mark, "task.") == []
    assert outside.exists() and sub.exists()


def test_verify_offers_the_facts_then_discard_returns_to_idle(shared, paks):
    """verify of a good package replies with its facts (version, build date, size, sha256,
    model), publishes update.facts with the running version, and rests in `verified` with the
    facts in the status; discard goes back to idle. Nothing is installed, nothing journaled,
    no task taken, the package left where it is."""
    g = shared
    pak = g.put(paks.get("good"), "verify-good.pak")
    data = pak.read_bytes()
    facts = inspect(pak)
    expected = {"version": GOOD, "build_date": facts.build_date, "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(), "model": MODEL}
    mark = g.mark()
    reply = g.call("verify", path=str(pak))
    assert reply == expected
    assert g.wait(mark, "update.facts")["data"] == dict(expected, from_version=__version__)
    st = g.status()
    assert (st["state"], st["package"], st["machines"]["install"]) == (
        "verified", expected, "verified")
    assert st["progress"]["step"] == "vérification"
    assert (st["release"], st["installed"]) == ("base", [])
    assert g.call("discard") == {"discarded": True}
    st = g.status()
    assert (st["state"], st["release"], st["installed"]) == ("idle", "base", [])
    err = g.refusal("discard")
    assert (err.code, err.message) == ("nothing", "Aucun paquet vérifié à abandonner")
    assert g.release_dirs() == [] and not os.path.lexists(g.releases / "current")
    assert pak.read_bytes() == data
    assert g.since(mark, "journal") == [] and g.since(mark, "task.") == []
    assert g.since(mark, "update.outcome") == []


REFUSALS = {
    # case: (make the package, PakError code, the French reason)
    "signed-by-another-key": (signed_by_another_key, "bad-signature",
                              "Paquet refusé : signature invalide"),
    "member-changed": (with_a_wheel_changed, "member-mismatch",
                       "Paquet refusé : fichier modifié"),
    "truncated": (truncated, "truncated", "Paquet refusé : paquet tronqué"),
    "not-a-package": (not_a_package, "not-a-package", "Paquet refusé : ce n'est pas un paquet"),
    "other-model": (lambda paks, dst: copy(paks.get("model"), dst), "wrong-model",
                    "Paquet refusé : modèle incompatible (other)"),
    "downgrade": (lambda paks, dst: copy(paks.get("old"), dst), "downgrade",
                  "Paquet refusé : retour à une version antérieure interdit"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_bad_package_is_refused_and_reported(shared, paks, case):
    """A package the service must not install (signed with another key than BIN_PublicKey, a
    member changed, truncated, not a package, for another model, an older version without
    permission) is refused: the reply is the PakError's code and French reason, the journal
    gets "Échec de la mise à jour : <reason>", update.outcome says failed, the record is
    failed with that reason, no release directory is made and `current` is untouched."""
    g = shared
    make, code, french = REFUSALS[case]
    pak = make(paks, g.firmware / ("%s.pak" % case))
    mark = g.mark()
    err = g.refusal("verify", path=str(pak))
    assert_refused(g, mark, err, code, french)
    assert g.since(mark, "update.facts") == []


def test_install_with_a_wrong_checksum_is_refused_and_frees_the_task(shared, paks):
    """install path=... sha256=<another checksum> takes the task, checks the package and
    refuses it with code checksum ("... BIN_Checksum"), journals and records it, frees the
    task (task.ended failed) and installs nothing."""
    g = shared
    pak = g.put(paks.get("good"), "checksum.pak")
    mark = g.mark()
    err = g.refusal("install", path=str(pak), sha256="AB" * 32)
    assert_refused(g, mark, err, "checksum", CHECKSUM)
    assert g.wait(mark, "task.started")["data"] == {"task": "Mise à jour", "reason": "command"}
    assert g.wait(mark, "task.ended")["data"] == {"task": "Mise à jour", "outcome": "failed",
                                                  "detail": CHECKSUM}
    assert pak.exists()


def test_a_downgrade_the_manifest_allows_is_verified(shared, paks):
    """An older version whose signed manifest allows a downgrade from the running version
    verifies: its facts are offered (update.facts), nothing refused."""
    g = shared
    pak = g.put(paks.get("old-allowed"), "old-allowed.pak")
    mark = g.mark()
    reply = g.call("verify", path=str(pak))
    assert reply["version"] == OLD and reply["model"] == MODEL
    assert reply["sha256"] == hashlib.sha256(pak.read_bytes()).hexdigest()
    facts = g.wait(mark, "update.facts")["data"]
    assert (facts["version"], facts["from_version"]) == (OLD, __version__)
    assert g.status()["state"] == "verified"
    assert g.call("discard") == {"discarded": True}
    assert g.since(mark, "update.outcome") == [] and g.release_dirs() == []


def test_busy_task_lock_refuses_install_then_the_install_takes_it(shared, paks):
    """While another task holds the lock, install (by path, or of the verified package) is
    refused with code busy and the manual's sentence, and nothing changes (verify needs no
    lock). Once it is free, the install of the verified package takes the task (task.started
    Mise à jour); here the package vanished after its check, so the install fails reading it:
    record failed with its version, the journal row, the task freed, no release left."""
    g = shared
    pak = g.put(paks.get("good"), "busy.pak")
    facts = inspect(pak)
    mark = g.mark()
    with TaskLock(g.run).acquire("Détection"):
        before = g.status()
        err = g.refusal("install", path=str(pak))
        assert (err.code, err.message) == ("busy", BUSY)
        after = g.status()
        assert (after["state"], after["record"]) == (before["state"], before["record"])
        assert g.call("verify", path=str(pak))["sha256"] == facts.sha256
        err = g.refusal("install")
        assert (err.code, err.message) == ("busy", BUSY)
        assert g.status()["state"] == "verified"
        assert TaskLock(g.run).current() == "Détection"
    assert g.since(mark, "task.") == [] and g.since(mark, "journal") == []
    pak.unlink()
    mark = g.mark()
    reply = g.call("install")
    assert reply["version"] == GOOD and reply["sha256"] == facts.sha256
    assert g.wait(mark, "task.started")["data"] == {"task": "Mise à jour", "reason": "web"}
    why = "Lecture du paquet impossible"
    outcome = g.wait(mark, "update.outcome")["data"]
    assert outcome == {"state": "failed", "version": GOOD, "from_version": __version__,
                       "reason": why}
    row = "Échec de la mise à jour %s : %s" % (GOOD, why)
    g.wait(mark, "journal", where=lambda d: d["message"] == row)
    assert g.wait(mark, "task.ended")["data"] == {"task": "Mise à jour", "outcome": "failed",
                                                  "detail": why}
    rec = g.record_on_disk()
    assert (rec["state"], rec["version"], rec["reason"]) == ("failed", GOOD, why)
    assert g.release_dirs() == [] and not os.path.lexists(g.releases / "current")
    assert TaskLock(g.run).current() is None


def test_without_bin_public_key_every_package_is_refused(fresh, paks):
    """BIN_PublicKey empty: a good package is refused (verify, and install by path, which
    frees the task again) with no-key and "Paquet refusé : clé publique BIN_PublicKey non
    configurée", journaled, failed outcome and record, nothing installed."""
    g = fresh("")
    pak = g.put(paks.get("good"), "good.pak")
    mark = g.mark()
    assert_refused(g, mark, g.refusal("verify", path=str(pak)), "no-key", NO_KEY)
    mark = g.mark()
    assert_refused(g, mark, g.refusal("install", path=str(pak)), "no-key", NO_KEY)
    assert g.wait(mark, "task.ended")["data"]["outcome"] == "failed"


def test_status_says_version_release_installed_record_and_progress(fresh, paks):
    """A fresh update service answers status (also through `ticgw bus call`) with the running
    version, release "base" (no install yet), no installed release, an idle record, no
    progress and no package, its install machine idle."""
    g = fresh(paks.keys()["pub"])
    st = g.status()
    assert (st["service"], st["activity"], st["pid"]) == ("update", "operational", g.proc.pid)
    assert (st["version"], st["release"], st["installed"]) == (__version__, "base", [])
    assert (st["state"], st["machines"]["install"]) == ("idle", "idle")
    assert st["record"] == record.Record().to_dict()
    assert (st["progress"], st["package"]) == ({}, {})
    env = child_env(g.run, TICGW_DATA=g.data)
    r = subprocess.run([sys.executable, "-m", "ticgw.cli", "bus", "--run", str(g.run), "call",
                        "update", "status"], env=env, cwd=str(REPO), capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    cli = json.loads(r.stdout)
    assert {k: cli[k] for k in ("version", "release", "installed", "record", "progress")} == {
        "version": __version__, "release": "base", "installed": [],
        "record": record.Record().to_dict(), "progress": {}}


def test_the_progress_of_a_new_check_names_no_earlier_package(shared, paks):
    """update.progress's version is "the version being installed": while a new package is
    being checked, its version is not known yet, so no version may be named; in particular not
    the version of an earlier install that failed (the record's)."""
    g = shared
    pak = g.put(paks.get("good"), "earlier.pak")
    assert g.call("verify", path=str(pak))["version"] == GOOD
    pak.unlink()                                   # the earlier install fails reading it
    mark = g.mark()
    g.call("install")
    assert g.wait(mark, "update.outcome")["data"]["version"] == GOOD
    assert g.record_on_disk()["version"] == GOOD
    bad = not_a_package(paks, g.firmware / "after-earlier.pak")
    mark = g.mark()
    err = g.refusal("verify", path=str(bad))
    assert err.code == "not-a-package"
    g.wait(mark, "update.outcome")
    checking = [e["data"] for e in g.since(mark, "update.progress")]
    assert checking == [{"step": "vérification", "percent": 0, "version": None}]
    assert g.status()["progress"] == {"step": "vérification", "percent": 0, "version": None}
