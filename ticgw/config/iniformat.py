"""The INI text of the configuration files, and atomic writes.

Format: flat ``key=value`` lines; ``#`` or ``;`` starts a comment line (whole lines only: a ``;``
inside a value is part of the value, passwords may hold one); blank lines; ``[section]`` lines are
tolerated and ignored; keys are case-sensitive; keys and values are stripped of surrounding
whitespace. Files are read as UTF-8, or as Latin-1 when they are not valid UTF-8, and written as
Latin-1 when every character allows it (the server side expects ANSI files), else as UTF-8.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..files import fsync_dir, is_temp_name, write_atomic  # noqa: F401 (re-exported)

__all__ = ["ParsedIni", "decode", "encode", "parse_ini", "write_atomic", "is_temp_name"]

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
