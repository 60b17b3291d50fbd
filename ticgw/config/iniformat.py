"""The INI text of the configuration files, and atomic writes.

Format: flat ``key=value`` lines; ``#`` or ``;`` starts a comment line (whole lines only: a ``;``
inside a value is part of the value, passwords may hold one); blank lines; ``[section]`` lines are
tolerated and ignored; keys are case-sensitive; keys and values are stripped of surrounding
whitespace. Files are read as UTF-8, or as Latin-1 when they are not valid UTF-8, and written as
Latin-1 when every character allows it (the server side expects ANSI files), else as UTF-8.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ParsedIni", "decode", "encode", "parse_ini", "write_atomic", "is_temp_name"]

_TEMP_SUFFIX = ".tmp"


def decode(data: bytes) -> str:
    """Bytes of a file as text: UTF-8 (with or without BOM), else Latin-1."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def encode(text: str) -> bytes:
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


@dataclass
class ParsedIni:
    values: dict[str, str] = field(default_factory=dict)
    #: (line number, reason): lines that are not key=value; these make the file invalid.
    errors: list[tuple[int, str]] = field(default_factory=list)
    #: (key, reason): tolerated oddities (a key given twice).
    warnings: list[tuple[str, str]] = field(default_factory=list)


def parse_ini(text: str) -> ParsedIni:
    """Split a file's text into key/value strings; no knowledge of the keys themselves."""
    out = ParsedIni()
    if text.startswith("\ufeff"):
        text = text[1:]
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s[0] in "#;":
            continue
        if s.startswith("[") and s.endswith("]"):
            continue
        key, sep, value = s.partition("=")
        key, value = key.strip(), value.strip()
        if not sep:
            out.errors.append((n, "line %d is not key=value: %s" % (n, _clip(s))))
            continue
        if not key:
            out.errors.append((n, "line %d has no key before '=': %s" % (n, _clip(s))))
            continue
        if key in out.values and out.values[key] != value:
            out.warnings.append((key, "given twice (line %d); the last value, %s, is used"
                                 % (n, value or "empty")))
        out.values[key] = value
    return out


def _clip(s: str, n: int = 60) -> str:
    return s if len(s) <= n else s[:n] + "..."


def is_temp_name(name: str) -> bool:
    """Names write_atomic uses for its temporary files (and hidden files): never configuration."""
    return name.startswith(".") or name.endswith(_TEMP_SUFFIX)


def write_atomic(path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves either the old or the new file.

    A temporary file in the same directory is written, flushed and fsync'd, renamed over the
    target, and the directory is fsync'd so the rename itself is durable.
    """
    path = Path(path)
    tmp = path.with_name(".%s.%s%s" % (path.name, os.urandom(4).hex(), _TEMP_SUFFIX))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)


def fsync_dir(directory) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
