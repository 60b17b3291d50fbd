"""Making a `.pak`: the ticgw wheel, the wheel of every runtime dependency, a hash-locked
requirements file, the manifest and its signature, in one gzip'd tar written atomically."""
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
from pathlib import Path

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


def runtime_dependencies(source: Path) -> list[str]:
    import tomllib
    with open(source / "pyproject.toml", "rb") as f:
        return list(tomllib.load(f)["project"].get("dependencies", []))


def _pip(*args) -> None:
    r = subprocess.run([sys.executable, "-m", "pip", *args, "--quiet",
                        "--disable-pip-version-check"], capture_output=True, text=True)
    if r.returncode:
        raise BuildError("pip %s failed:\n%s" % (" ".join(args[:2]), (r.stderr or r.stdout)[-2000:]))


def collect_wheels(work: Path, source: Path, wheels_from=None) -> list[Path]:
    """Every wheel the package carries, in ``work``: ticgw's and its dependencies'.

    With ``wheels_from``, its wheels are taken as they are (a ticgw wheel among them is used
    too, otherwise the source tree's is built); without, pip builds the ticgw wheel and
    fetches or builds the wheel of every runtime dependency (needs an index)."""
    work.mkdir(parents=True, exist_ok=True)
    if wheels_from is not None:
        found = sorted(Path(wheels_from).glob("*.whl"))
        if not found:
            raise BuildError("%s: no wheel in it" % wheels_from)
        for w in found:
            shutil.copy2(w, work / w.name)
    if not any(normalise(wheel_info(w)[0]) == NAME for w in work.glob("*.whl")):
        _pip("wheel", "--no-deps", "-w", str(work), str(source))
    if wheels_from is None:
        deps = runtime_dependencies(source)
        if deps:
            _pip("wheel", "-w", str(work), *deps)
    wheels = sorted(work.glob("*.whl"))
    names: dict[str, Path] = {}
    for w in wheels:
        n = normalise(wheel_info(w)[0])
        if n in names:
            raise BuildError("two wheels of %s: %s and %s" % (n, names[n].name, w.name))
        names[n] = w
    return wheels


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


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
    ``version``: the version expected (default: the ticgw wheel's; they must agree).
    ``wheels_from``: a directory of prebuilt wheels (offline builds, tests).
    ``min_version``: the oldest running version this package may replace.
    ``downgrade_allowed_from``: versions it may replace although they are newer (signed)."""
    private = _load_key(key)
    source = Path(source) if source else source_tree()
    out_path = Path(out_path)
    for v in (min_version, *downgrade_allowed_from):
        parse_version(v)
    with tempfile.TemporaryDirectory(prefix="ticgw-pak-") as tmp:
        wheels = collect_wheels(Path(tmp) / "wheels", source, wheels_from)
        ours = [w for w in wheels if normalise(wheel_info(w)[0]) == NAME]
        wheel_version = wheel_info(ours[0])[1]
        if version is not None and parse_version(version) != parse_version(wheel_version):
            raise BuildError("version %s asked, the ticgw wheel is %s" % (version, wheel_version))
        members: dict[str, dict] = {}
        lines = []
        for w in wheels:
            digest = _sha256(w)
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
