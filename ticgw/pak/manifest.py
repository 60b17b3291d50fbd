"""The manifest of a `.pak`, its canonical bytes, versions, and the error a refusal raises."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

#: The package name every `.pak` carries.
NAME = "ticgw"
#: The hardware/software model a package is built for; a gateway refuses another model's.
MODEL = "ticgw-linux"
#: Version of the package layout itself.
FORMAT = 1

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
REQUIREMENTS = "requirements.txt"
WHEELS_DIR = "wheels"


class PakError(Exception):
    """A package refused: ``code`` (a short id), ``message`` (English, precise) and ``french``
    (a short text for the journal and the web page)."""

    def __init__(self, code: str, message: str, french: str):
        super().__init__(message)
        self.code = code
        self.message = message
        self.french = french


def canonical_json(obj) -> bytes:
    """The one byte form of ``obj`` that is signed: sorted keys, no spaces, ASCII, newline."""
    return (json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
            + "\n").encode("ascii")


def utc_stamp(when: datetime | None = None) -> str:
    when = when or datetime.now(timezone.utc)
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Manifest:
    version: str
    build_date: str                    # ISO 8601 UTC, "2026-11-30T12:00:00Z"
    model: str = MODEL
    min_version: str = "0"
    downgrade_allowed_from: list[str] = field(default_factory=list)
    members: dict[str, dict] = field(default_factory=dict)   # path -> {"sha256", "size"}
    name: str = NAME
    format: int = FORMAT

    def to_dict(self) -> dict:
        return {"format": self.format, "name": self.name, "version": self.version,
                "build_date": self.build_date, "model": self.model,
                "min_version": self.min_version,
                "downgrade_allowed_from": list(self.downgrade_allowed_from),
                "members": {k: {"sha256": v["sha256"], "size": v["size"]}
                            for k, v in self.members.items()}}

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_dict())

    @classmethod
    def from_bytes(cls, data: bytes) -> "Manifest":
        """Parse and check the shape; raises PakError("bad-manifest") on anything odd."""
        def bad(why):
            return PakError("bad-manifest", "manifest.json is malformed: %s" % why,
                            "Paquet invalide : manifeste illisible")
        try:
            d = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise bad("not JSON (%s)" % e) from None
        if not isinstance(d, dict):
            raise bad("not an object")
        if d.get("format") != FORMAT:
            raise bad("format %r, expected %d" % (d.get("format"), FORMAT))
        for key in ("name", "version", "build_date", "model", "min_version"):
            if not isinstance(d.get(key), str) or not d[key]:
                raise bad("%s missing or not a string" % key)
        for key in ("version", "min_version"):
            try:
                parse_version(d[key])
            except ValueError:
                raise bad("%s %r is not a version" % (key, d[key])) from None
        down = d.get("downgrade_allowed_from") or []
        if not isinstance(down, list) or not all(isinstance(v, str) for v in down):
            raise bad("downgrade_allowed_from is not a list of versions")
        members = d.get("members")
        if not isinstance(members, dict) or not members:
            raise bad("members missing or empty")
        for path, m in members.items():
            if not (isinstance(m, dict) and isinstance(m.get("size"), int) and m["size"] >= 0
                    and isinstance(m.get("sha256"), str)
                    and re.fullmatch(r"[0-9a-f]{64}", m["sha256"])):
                raise bad("member %r has no valid sha256 and size" % path)
        return cls(version=d["version"], build_date=d["build_date"], model=d["model"],
                   min_version=d["min_version"], downgrade_allowed_from=list(down),
                   members=members, name=d["name"], format=d["format"])


_VERSION = re.compile(r"v?(\d+(?:\.\d+)*)(?:(a|b|rc)(\d+))?(?:\.post(\d+))?(?:\.dev(\d+))?")


def _simple_version(text: str):
    """A small PEP 440 subset (release, a/b/rc, post, dev), comparable as a tuple."""
    m = _VERSION.fullmatch(text.strip().lower())
    if not m:
        raise ValueError("invalid version: %r" % text)
    release = tuple(int(x) for x in m.group(1).split("."))
    while len(release) > 1 and release[-1] == 0:
        release = release[:-1]
    pre = ({"a": 0, "b": 1, "rc": 2}[m.group(2)], int(m.group(3))) if m.group(2) else (3, 0)
    if m.group(5) is not None and not m.group(2) and m.group(4) is None:
        pre = (-1, 0)                                  # 1.0.dev1 < 1.0a1
    post = int(m.group(4)) if m.group(4) is not None else -1
    dev = int(m.group(5)) if m.group(5) is not None else float("inf")
    return (release, pre, post, dev)


def parse_version(text: str):
    """A comparable version: ``packaging.version.Version`` if installed, else a small parser."""
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:
        return _simple_version(text)
    try:
        return Version(text)
    except InvalidVersion:
        raise ValueError("invalid version: %r" % text) from None
