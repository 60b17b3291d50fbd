"""Checking a `.pak` before anything is installed: read safely, say precisely what is wrong.

The archive is read once, as a stream, and nothing is extracted: every member is hashed in
memory-bounded chunks. Links, devices, FIFOs and paths escaping the release directory
(absolute, ``..``) are refused, as are more members or bytes than a package may hold (a gzip
bomb stops at the limit). Then, in this order: the manifest and its signature are present, the
signature is the key's, the manifest is well formed, every member is the manifest's (same
sha256, same size, none missing, none extra), the model is ours, and the version may replace
the running one (not older unless the signed manifest allows it, ``min_version`` not above it).
"""
from __future__ import annotations

import gzip
import hashlib
import posixpath
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from .manifest import (MANIFEST, MODEL, NAME, REQUIREMENTS, SIGNATURE, WHEELS_DIR, Manifest,
                       PakError, parse_version)
from .sign import verify_signature

MAX_MEMBERS = 1000
MAX_MEMBER_SIZE = 256 << 20
MAX_TOTAL_SIZE = 1 << 30
MAX_MANIFEST_SIZE = 1 << 20
MAX_SIGNATURE_SIZE = 4096
CHUNK = 1 << 16


@dataclass
class Facts:
    """What a verified package is: what a page shows before the installer confirms."""
    name: str
    version: str
    build_date: str
    model: str
    min_version: str
    downgrade_allowed_from: list[str]
    size: int                          # of the .pak file, bytes
    sha256: str                        # of the .pak file (BIN_Checksum)
    members: dict[str, dict] = field(default_factory=dict)   # path -> {"sha256", "size"}
    signature_checked: bool = False

    @property
    def wheels(self) -> list[str]:
        return sorted(p for p in self.members if p.startswith(WHEELS_DIR + "/"))

    def to_dict(self) -> dict:
        return {"name": self.name, "version": self.version, "build_date": self.build_date,
                "model": self.model, "min_version": self.min_version,
                "downgrade_allowed_from": list(self.downgrade_allowed_from),
                "size": self.size, "sha256": self.sha256, "members": dict(self.members),
                "signature_checked": self.signature_checked}


@dataclass
class _Read:
    size: int
    sha256: str
    files: dict[str, dict]             # every regular member but manifest and signature
    manifest: bytes | None
    signature: bytes | None


def _refuse(code, message, french):
    return PakError(code, message, "Paquet refusé : " + french)


class _HashingReader:
    """A raw file that hashes and counts what is read from it."""

    def __init__(self, f):
        self.f, self.h, self.n = f, hashlib.sha256(), 0

    def read(self, n=-1):
        data = self.f.read(n)
        self.h.update(data)
        self.n += len(data)
        return data


def check_member_path(name: str) -> str:
    """The member's path if it stays inside the release directory; PakError otherwise."""
    clean = name[2:] if name.startswith("./") else name
    clean = clean.rstrip("/")
    if (not clean or clean.startswith("/") or "\\" in clean or "\x00" in clean
            or ".." in clean.split("/") or posixpath.normpath(clean) != clean
            or (len(clean) > 1 and clean[1] == ":")):
        raise _refuse("unsafe-path", "member %r: its path escapes the package (absolute, "
                      "'..' or not normalised)" % name, "chemin de fichier interdit")
    return clean


def _read(path) -> _Read:
    path = Path(path)
    try:
        f = open(path, "rb")
    except OSError as e:
        raise _refuse("unreadable", "%s: cannot be read (%s)" % (path, e.strerror or e),
                      "fichier illisible") from None
    with f:
        if f.read(2) != b"\x1f\x8b":
            raise _refuse("not-a-package", "%s is not a package: not a gzip file" % path,
                          "ce n'est pas un paquet")
        f.seek(0)
        raw = _HashingReader(f)
        gz = gzip.GzipFile(fileobj=raw, mode="rb")
        files: dict[str, dict] = {}
        special: dict[str, bytes] = {}
        seen: set[str] = set()
        total = 0
        try:
            with tarfile.open(fileobj=gz, mode="r|") as tar:
                for count, info in enumerate(tar, 1):
                    if count > MAX_MEMBERS:
                        raise _refuse("too-many-members", "more than %d members" % MAX_MEMBERS,
                                      "trop de fichiers")
                    name = check_member_path(info.name)
                    if info.isdir():
                        continue
                    if not info.isreg():
                        kind = ("a symbolic link" if info.issym() else "a hard link"
                                if info.islnk() else "a device" if info.isdev() else
                                "a FIFO" if info.isfifo() else "not a regular file")
                        raise _refuse("member-type", "member %r is %s: only regular files are "
                                      "allowed" % (info.name, kind),
                                      "lien ou fichier spécial interdit")
                    if name in seen:
                        raise _refuse("duplicate-member", "member %r appears twice" % name,
                                      "fichier en double")
                    seen.add(name)
                    limit = {MANIFEST: MAX_MANIFEST_SIZE,
                             SIGNATURE: MAX_SIGNATURE_SIZE}.get(name, MAX_MEMBER_SIZE)
                    total += info.size
                    if info.size > limit or total > MAX_TOTAL_SIZE:
                        raise _refuse("too-large", "member %r is too large (%d bytes)"
                                      % (name, info.size), "fichier trop gros")
                    member = tar.extractfile(info)
                    h, n, keep = hashlib.sha256(), 0, []
                    while True:
                        chunk = member.read(CHUNK)
                        if not chunk:
                            break
                        h.update(chunk)
                        n += len(chunk)
                        if name in (MANIFEST, SIGNATURE):
                            keep.append(chunk)
                    if n != info.size:
                        raise _refuse("truncated", "%s is truncated (member %r is cut short)"
                                      % (path, name), "paquet tronqué")
                    if name in (MANIFEST, SIGNATURE):
                        special[name] = b"".join(keep)
                    else:
                        files[name] = {"sha256": h.hexdigest(), "size": n}
            # the rest of the gzip stream: the tar's padding, then the gzip trailer (CRC)
            drained = 0
            while gz.read(CHUNK):
                drained += CHUNK
                if drained > MAX_TOTAL_SIZE:
                    raise _refuse("too-large", "%s: too much data after the archive" % path,
                                  "paquet trop gros")
            if raw.read(1):
                raise _refuse("trailing-data", "%s: data after the end of the package" % path,
                              "données en trop")
        except EOFError:
            raise _refuse("truncated", "%s is truncated (the compressed data ends early)"
                          % path, "paquet tronqué") from None
        except (gzip.BadGzipFile, zlib.error) as e:
            raise _refuse("corrupt", "%s is damaged: bad compressed data (%s)" % (path, e),
                          "paquet endommagé") from None
        except tarfile.ReadError as e:
            if "unexpected end" in str(e):
                raise _refuse("truncated", "%s is truncated (the archive ends early)" % path,
                              "paquet tronqué") from None
            raise _refuse("not-a-package", "%s is not a package: not a tar archive (%s)"
                          % (path, e), "ce n'est pas un paquet") from None
        except tarfile.TarError as e:
            raise _refuse("not-a-package", "%s is not a package: %s" % (path, e),
                          "ce n'est pas un paquet") from None
        return _Read(size=raw.n, sha256=raw.h.hexdigest(), files=files,
                     manifest=special.get(MANIFEST), signature=special.get(SIGNATURE))


def _contents(read: _Read) -> Manifest:
    """The manifest, checked against the members actually present."""
    if read.manifest is None:
        raise _refuse("missing-manifest", "the package has no %s" % MANIFEST,
                      "manifeste absent")
    manifest = Manifest.from_bytes(read.manifest)
    if manifest.name != NAME:
        raise _refuse("wrong-name", "the package is %r, not %r" % (manifest.name, NAME),
                      "ce n'est pas un paquet ticgw")
    listed, present = set(manifest.members), set(read.files)
    for name in sorted(listed):
        check_member_path(name)
    if present - listed:
        raise _refuse("unlisted-member", "member %r is not in the manifest"
                      % sorted(present - listed)[0], "fichier non déclaré")
    if listed - present:
        raise _refuse("missing-member", "member %r of the manifest is missing"
                      % sorted(listed - present)[0], "fichier manquant")
    for name in sorted(listed):
        want, got = manifest.members[name], read.files[name]
        if want["size"] != got["size"]:
            raise _refuse("member-mismatch", "member %r is %d bytes, the manifest says %d"
                          % (name, got["size"], want["size"]), "fichier modifié")
        if want["sha256"] != got["sha256"]:
            raise _refuse("member-mismatch", "member %r has sha256 %s, the manifest says %s"
                          % (name, got["sha256"], want["sha256"]), "fichier modifié")
    if REQUIREMENTS not in listed:
        raise _refuse("missing-member", "the package has no %s" % REQUIREMENTS,
                      "fichier manquant")
    if not any(n.startswith(WHEELS_DIR + "/%s-" % NAME) and n.endswith(".whl") for n in listed):
        raise _refuse("missing-member", "the package has no %s wheel" % NAME,
                      "fichier manquant")
    return manifest


def _facts(read: _Read, manifest: Manifest, signed: bool) -> Facts:
    return Facts(name=manifest.name, version=manifest.version, build_date=manifest.build_date,
                 model=manifest.model, min_version=manifest.min_version,
                 downgrade_allowed_from=list(manifest.downgrade_allowed_from),
                 size=read.size, sha256=read.sha256, members=dict(manifest.members),
                 signature_checked=signed)


def inspect(path) -> Facts:
    """The facts of a well-formed package whose members match its manifest, without checking
    the signature, the model or the versions (``ticgw pak info``); PakError otherwise."""
    read = _read(path)
    return _facts(read, _contents(read), signed=False)


def check_replaces(manifest, running_version: str) -> None:
    """PakError unless a package of this manifest may replace ``running_version``."""
    try:
        running = parse_version(running_version)
    except ValueError:
        raise _refuse("bad-version", "running version %r is not a version" % running_version,
                      "version en cours illisible") from None
    if parse_version(manifest.min_version) > running:
        raise _refuse("min-version", "version %s replaces %s or later only, %s is running"
                      % (manifest.version, manifest.min_version, running_version),
                      "version en cours trop ancienne (minimum %s)" % manifest.min_version)
    if parse_version(manifest.version) < running:
        allowed = set()
        for v in manifest.downgrade_allowed_from:
            try:
                allowed.add(parse_version(v))
            except ValueError:
                pass
        if running not in allowed:
            raise _refuse("downgrade", "version %s is older than the running %s and the "
                          "manifest does not allow a downgrade from it"
                          % (manifest.version, running_version),
                          "retour à une version antérieure interdit")


def verify(path, public_key_hex: str | None, *, running_version: str | None,
           model: str = MODEL) -> Facts:
    """The facts of a package this gateway may install, or PakError saying what is wrong.

    ``public_key_hex`` empty or None: the signature is not checked (``BIN_PublicKey`` empty);
    ``running_version`` None: the versions are not compared."""
    read = _read(path)
    if read.manifest is None:
        raise _refuse("missing-manifest", "the package has no %s" % MANIFEST,
                      "manifeste absent")
    signed = bool(public_key_hex)
    if signed:
        if read.signature is None:
            raise _refuse("missing-signature", "the package has no %s" % SIGNATURE,
                          "signature absente")
        try:
            ok = verify_signature(read.manifest, read.signature, public_key_hex)
        except ValueError as e:
            raise _refuse("bad-key", str(e), "clé publique invalide") from None
        if not ok:
            raise _refuse("bad-signature", "signature invalid: the manifest was not signed "
                          "with this key, or it was changed after signing",
                          "signature invalide")
    manifest = _contents(read)
    if manifest.model != model:
        raise _refuse("wrong-model", "the package is for model %r, this gateway is %r"
                      % (manifest.model, model), "modèle incompatible (%s)" % manifest.model)
    if running_version is not None:
        check_replaces(manifest, running_version)
    return _facts(read, manifest, signed)
