"""Making a `.pak`: the ticgw wheel, the wheel of every runtime dependency, a hash-locked
requirements file, the manifest and its signature, in one gzip'd tar written atomically.

The ticgw wheel is built from a temporary copy of the source tree, at the version asked: the
tree itself is never written to (no ``build/``, no ``*.egg-info``)."""
from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from fnmatch import fnmatchcase
from pathlib import Path

from ticgw.files import sha256_file

from .manifest import (MANIFEST, MODEL, NAME, REQUIREMENTS, SIGNATURE, WHEELS_DIR, Manifest,
                       parse_version, utc_stamp)
from .sign import load_private, sign

#: A wheel file name: name-version(-build)?-python-abi-platform.whl (PEP 427).
WHEEL_NAME = re.compile(r"(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl")


class BuildError(Exception):
    pass


def source_tree() -> Path:
    """The source tree ticgw runs from (holding pyproject.toml)."""
    return Path(__file__).resolve().parent.parent.parent


def wheel_info(path) -> tuple[str, str]:
    """(distribution name, version) from a wheel's file name."""
    m = WHEEL_NAME.fullmatch(Path(path).name)
    if not m:
        raise BuildError("%s: not a wheel file name" % Path(path).name)
    return m.group("name"), m.group("version")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pyproject(source: Path) -> dict:
    """The tree's pyproject.toml, parsed."""
    import tomllib
    path = Path(source) / "pyproject.toml"
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise BuildError("%s: %s" % (path, e)) from None


def runtime_dependencies(source: Path) -> list[str]:
    return list(pyproject(source).get("project", {}).get("dependencies", []))


def package_dirs(source: Path) -> list[Path]:
    """The top-level package directories of the tree that setuptools' ``packages.find``
    (``include``, ``exclude``) picks: directories with an ``__init__.py``."""
    find = pyproject(source).get("tool", {}).get("setuptools", {}).get("packages", {})
    find = find.get("find", {}) if isinstance(find, dict) else {}
    include, exclude = find.get("include", ["*"]), find.get("exclude", [])
    return sorted(d for d in Path(source).iterdir()
                  if d.is_dir() and (d / "__init__.py").is_file()
                  and any(fnmatchcase(d.name, p) for p in include)
                  and not any(fnmatchcase(d.name, p) for p in exclude))


def copy_source(source: Path, dest: Path) -> Path:
    """Copy what the ticgw wheel is built from into ``dest``: pyproject.toml, README.md,
    LICENSE and the package directories, without ``__pycache__`` or ``*.pyc``."""
    source = Path(source)
    if not (source / "pyproject.toml").is_file():
        raise BuildError("%s: no pyproject.toml, not a source tree" % source)
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (source / name).is_file():
            shutil.copy2(source / name, dest / name)
    for d in package_dirs(source):
        shutil.copytree(d, dest / d.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


#: The line of ticgw/__init__.py that holds the version (pyproject.toml reads it).
VERSION_LINE = re.compile(r"""^__version__[ \t]*=[ \t]*(["'])[^"'\n]*\1[ \t]*$""", re.M)


def checked_version(version: str) -> str:
    """``version`` in its normal form (PEP 440), or BuildError."""
    try:
        parsed = parse_version(version)
    except ValueError:
        raise BuildError("invalid version: %r" % version) from None
    return version.strip() if isinstance(parsed, tuple) else str(parsed)


def set_version(tree: Path, version: str) -> None:
    """Rewrite the ``__version__ = "..."`` line of ``tree``'s ticgw/__init__.py."""
    init = Path(tree) / NAME / "__init__.py"
    text = init.read_text(encoding="utf-8") if init.is_file() else ""
    text, found = VERSION_LINE.subn('__version__ = "%s"' % checked_version(version), text, 1)
    if not found:
        raise BuildError("%s: no __version__ = \"...\" line" % init)
    init.write_text(text, encoding="utf-8")


def run_pip(*args) -> None:
    """``python -m pip ARGS --quiet``; BuildError with the tail of pip's stderr if it fails."""
    r = subprocess.run([sys.executable, "-m", "pip", *args, "--quiet",
                        "--disable-pip-version-check"], capture_output=True, text=True)
    if r.returncode:
        raise BuildError("pip %s failed:\n%s" % (args[0], (r.stderr or r.stdout)[-2000:]))


def build_ticgw_wheel(work: Path, source: Path, version: str | None = None) -> Path:
    """Build the ticgw wheel into ``work`` from a temporary copy of ``source`` (so nothing is
    written into the tree), at ``version`` if given, else at the tree's."""
    with tempfile.TemporaryDirectory(prefix="ticgw-src-") as tmp:
        tree = copy_source(source, Path(tmp) / "src")
        if version is not None:
            set_version(tree, version)
        before = set(work.glob("*.whl"))
        run_pip("wheel", "--no-deps", "-w", str(work), str(tree))
    made = [w for w in set(work.glob("*.whl")) - before if normalise(wheel_info(w)[0]) == NAME]
    if len(made) != 1:
        raise BuildError("pip made %d ticgw wheels, expected one" % len(made))
    return made[0]


def collect_wheels(work: Path, source: Path, wheels_from=None,
                   version: str | None = None) -> list[Path]:
    """Every wheel the package carries, in ``work``: ticgw's and its dependencies'.

    With ``wheels_from``, its wheels are taken as they are (a ticgw wheel among them is used
    too, otherwise one is built from the source tree at ``version``); without, pip builds the
    ticgw wheel and fetches or builds the wheel of every runtime dependency (needs an index)."""
    work.mkdir(parents=True, exist_ok=True)
    if wheels_from is not None:
        found = sorted(Path(wheels_from).glob("*.whl"))
        if not found:
            raise BuildError("%s: no wheel in it" % wheels_from)
        for w in found:
            shutil.copy2(w, work / w.name)
    if not any(normalise(wheel_info(w)[0]) == NAME for w in work.glob("*.whl")):
        build_ticgw_wheel(work, source, version)
    if wheels_from is None:
        deps = runtime_dependencies(source)
        if deps:
            run_pip("wheel", "-w", str(work), *deps)
    wheels = sorted(work.glob("*.whl"))
    names: dict[str, Path] = {}
    for w in wheels:
        n = normalise(wheel_info(w)[0])
        if n in names:
            raise BuildError("two wheels of %s: %s and %s" % (n, names[n].name, w.name))
        names[n] = w
    return wheels


def _load_key(key):
    if isinstance(key, (str, Path)) and not str(key).lstrip().startswith("-----BEGIN"):
        key = Path(key).read_bytes()
    try:
        return load_private(key)
    except (ValueError, TypeError) as e:
        raise BuildError("the signing key is not an Ed25519 private key in PEM: %s" % e) from None


def build(out_path, *, key, version: str | None = None, wheels_from=None,
          min_version: str = "0", downgrade_allowed_from=(), model: str = MODEL,
          source=None, build_date: str | None = None) -> Manifest:
    """Build a signed `.pak` at ``out_path`` and return its manifest.

    ``key``: the Ed25519 private key (a PEM file's path, PEM bytes or a key object).
    ``version``: the version to build: the ticgw wheel is built from a copy of ``source``
    (default: the tree ticgw runs from) whose ``__version__`` is set to it; a ticgw wheel
    taken from ``wheels_from`` must have it. Default: the tree's (or that wheel's).
    ``wheels_from``: a directory of prebuilt wheels (offline builds, tests, a wheelhouse).
    ``min_version``: the oldest running version this package may replace.
    ``downgrade_allowed_from``: versions it may replace although they are newer (signed)."""
    private = _load_key(key)
    source = Path(source) if source else source_tree()
    out_path = Path(out_path)
    if version is not None:
        version = checked_version(version)
    for v in (min_version, *downgrade_allowed_from):
        parse_version(v)
    with tempfile.TemporaryDirectory(prefix="ticgw-pak-") as tmp:
        wheels = collect_wheels(Path(tmp) / "wheels", source, wheels_from, version)
        ours = [w for w in wheels if normalise(wheel_info(w)[0]) == NAME]
        wheel_version = wheel_info(ours[0])[1]
        if version is not None and parse_version(version) != parse_version(wheel_version):
            raise BuildError("version %s asked, the ticgw wheel is %s" % (version, wheel_version))
        members: dict[str, dict] = {}
        lines = []
        for w in wheels:
            digest = sha256_file(w)
            name, v = wheel_info(w)
            lines.append("%s==%s --hash=sha256:%s\n" % (name, v, digest))
            members["%s/%s" % (WHEELS_DIR, w.name)] = {"sha256": digest,
                                                       "size": w.stat().st_size}
        requirements = "".join(lines).encode("ascii")
        members[REQUIREMENTS] = {"sha256": hashlib.sha256(requirements).hexdigest(),
                                 "size": len(requirements)}
        manifest = Manifest(version=wheel_version, build_date=build_date or utc_stamp(),
                            model=model, min_version=min_version,
                            downgrade_allowed_from=list(downgrade_allowed_from),
                            members=dict(sorted(members.items())))
        manifest_bytes = manifest.to_bytes()
        signature = sign(manifest_bytes, private)

        out_path.parent.mkdir(parents=True, exist_ok=True)
        part = out_path.with_name(".%s.%s.tmp" % (out_path.name, os.urandom(4).hex()))
        mtime = int(time.time())
        try:
            with open(part, "wb") as f:
                with tarfile.open(fileobj=f, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
                    def add(name, data=None, path=None):
                        info = tarfile.TarInfo(name)
                        info.size = len(data) if data is not None else path.stat().st_size
                        info.mtime, info.mode = mtime, 0o644
                        info.uid = info.gid = 0
                        info.uname = info.gname = ""
                        if data is not None:
                            tar.addfile(info, io.BytesIO(data))
                        else:
                            with open(path, "rb") as src:
                                tar.addfile(info, src)
                    add(MANIFEST, manifest_bytes)
                    add(SIGNATURE, signature)
                    add(REQUIREMENTS, requirements)
                    for w in wheels:
                        add("%s/%s" % (WHEELS_DIR, w.name), path=w)
                f.flush()
                os.fsync(f.fileno())
            os.replace(part, out_path)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        try:
            fd = os.open(out_path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            pass
    return manifest
