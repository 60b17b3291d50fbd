"""Installing a verified `.pak` as a fresh release, offline: its own environment, every wheel
checked against its hash, nothing of the running release touched.

Blocking work (a worker runs it). The steps, each reported to ``progress(step, percent)``:

1. ``extraction``: the requirements file and the wheels, and only the manifest's members,
   are copied out of the archive into a hidden temporary directory, each hashed again on
   the way (the file verified may not be the file installed);
2. ``environnement``: ``python -m venv --without-pip`` with the base interpreter;
3. ``installation``: ``pip --python <venv> install --no-index --require-hashes`` from the
   extracted wheels: no network, no wheel that is not in the signed manifest;
4. ``contrôle``: the new interpreter imports ticgw and every service and says its version,
   which must be the manifest's;
5. the temporary directory is renamed to the release's name once ``release.json`` is in it
   (:meth:`Releases.put_in_place`).

A kill at any step leaves a hidden temporary directory, removed at the next start.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from ticgw.pak.manifest import REQUIREMENTS, WHEELS_DIR, PakError

from .layout import Releases, release_name

#: An environment takes about this many times its wheels' size once unpacked, plus a margin.
SPACE_FACTOR = 4
SPACE_MARGIN = 32 << 20
PIP_TIMEOUT = 900


class InstallError(Exception):
    """An install that failed, with a French reason for the journal and the page."""

    def __init__(self, message: str, french: str):
        super().__init__(message)
        self.french = french


def base_python() -> str:
    """The interpreter of the base install (it has pip), which the launcher names."""
    return os.environ.get("TICGW_BASE_PYTHON") or sys.executable


def needed_bytes(facts) -> int:
    wheels = sum(m["size"] for p, m in facts.members.items() if p.startswith(WHEELS_DIR + "/"))
    return SPACE_FACTOR * wheels + SPACE_MARGIN


def check_space(releases: Releases, facts) -> None:
    need, free = needed_bytes(facts), releases.free_bytes()
    if free < need:
        raise PakError("no-space", "%d MiB free under %s, %d MiB needed"
                       % (free >> 20, releases.path, need >> 20),
                       "Paquet refusé : espace disque insuffisant (%d Mo libres, %d Mo "
                       "nécessaires)" % (free >> 20, need >> 20))


def install(pak: Path, facts, releases: Releases, progress=None, cancelled=lambda: False,
            python: str | None = None) -> str:
    """Install the verified package ``pak`` (its :class:`Facts`) as a release; its name."""
    progress = progress or (lambda step, percent: None)
    name = release_name(facts.version, facts.sha256)
    if releases.is_complete(name):
        progress("installation", 100)
        return name
    python = python or base_python()
    temp = releases.temp_dir(name)
    temp.mkdir(parents=True)
    try:
        progress("extraction", 0)
        _extract(pak, facts, temp)
        _check(cancelled)
        progress("environnement", 30)
        _run([python, "-m", "venv", "--without-pip", str(temp / "venv")], "venv")
        _check(cancelled)
        progress("installation", 40)
        _run([python, "-m", "pip", "--python", str(temp / "venv" / "bin" / "python"),
              "install", "--no-index", "--require-hashes", "--no-cache-dir",
              "--disable-pip-version-check", "--quiet", "--find-links", str(temp / WHEELS_DIR),
              "-r", str(temp / REQUIREMENTS)], "pip install")
        _check(cancelled)
        progress("contrôle", 90)
        _relocate_scripts(temp, releases.path / name)
        _smoke(temp / "venv" / "bin" / "python", facts.version)
        shutil.rmtree(temp / WHEELS_DIR, ignore_errors=True)
        os.sync()                       # what pip wrote is on disk before the release is
        releases.put_in_place(temp, name, {
            "version": facts.version, "build_date": facts.build_date, "sha256": facts.sha256,
            "size": facts.size, "installed_at": time.time()})
        progress("installation", 100)
        return name
    except OSError as e:                 # a full or failing disk
        shutil.rmtree(temp, ignore_errors=True)
        raise InstallError("install failed: %s" % e,
                           "Échec de l'installation (%s)" % (e.strerror or e)) from None
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def _check(cancelled) -> None:
    if cancelled():
        raise InstallError("install cancelled", "Installation annulée")


def _extract(pak: Path, facts, temp: Path) -> None:
    wanted = {p: m for p, m in facts.members.items()
              if p == REQUIREMENTS or p.startswith(WHEELS_DIR + "/")}
    (temp / WHEELS_DIR).mkdir()
    seen = set()
    try:
        with tarfile.open(pak, mode="r:gz") as tar:
            for member in tar:
                if member.name not in wanted or not member.isfile():
                    continue
                target = temp / member.name
                digest = hashlib.sha256()
                with tar.extractfile(member) as src, open(target, "wb") as out:
                    for chunk in iter(lambda: src.read(1 << 16), b""):
                        digest.update(chunk)
                        out.write(chunk)
                if digest.hexdigest() != wanted[member.name]["sha256"]:
                    raise InstallError("%s changed since it was verified" % member.name,
                                       "Paquet modifié depuis sa vérification")
                seen.add(member.name)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise InstallError("cannot read the package: %s" % e,
                           "Lecture du paquet impossible") from None
    missing = sorted(set(wanted) - seen)
    if missing:
        raise InstallError("members missing: %s" % ", ".join(missing),
                           "Paquet modifié depuis sa vérification")


def _run(argv: list, what: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_INDEX_URL")}
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=PIP_TIMEOUT, env=env)
    except subprocess.TimeoutExpired:
        raise InstallError("%s took more than %d s" % (what, PIP_TIMEOUT),
                           "Installation trop longue (%s)" % what) from None
    except OSError as e:
        raise InstallError("%s could not run: %s" % (what, e),
                           "Échec de l'installation (%s)" % what) from None
    if r.returncode:
        tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
        raise InstallError("%s failed: %s" % (what, " / ".join(tail)),
                           "Échec de l'installation (%s)" % what)


def _relocate_scripts(temp: Path, final: Path) -> None:
    """Scripts pip wrote name the temporary path in their first line: name the final one."""
    old, new = str(temp).encode(), str(final).encode()
    for script in (temp / "venv" / "bin").iterdir():
        if script.is_symlink() or not script.is_file():
            continue
        data = script.read_bytes()
        if data.startswith(b"#!") and old in data:
            script.write_bytes(data.replace(old, new))


def _smoke(python: Path, version: str) -> None:
    """The new interpreter imports the launcher, the migrations and every service of its own
    registry (the new release's, not this one's)."""
    code = ("import importlib, ticgw\n"
            "from ticgw import registry\n"
            "for m in ['ticgw.launch', 'ticgw.migrate']"
            " + [s.module + '.service' for s in registry.BUILTIN]:\n"
            "    importlib.import_module(m)\n"
            "print(ticgw.__version__)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    try:
        r = subprocess.run([str(python), "-P", "-c", code], capture_output=True, text=True,
                           timeout=120, env=env, cwd="/")
    except (OSError, subprocess.TimeoutExpired) as e:
        raise InstallError("the new release could not be tried: %s" % e,
                           "La nouvelle version ne se charge pas") from None
    if r.returncode:
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:]
        raise InstallError("the new release does not import: %s" % " / ".join(tail),
                           "La nouvelle version ne se charge pas")
    if r.stdout.strip() != version:
        raise InstallError("the new release says it is %r, the manifest %r"
                           % (r.stdout.strip(), version),
                           "Version installée différente de celle du paquet")
