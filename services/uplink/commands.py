"""Command files from the server (DESIGN 6): `<site>_CMD.csv` in, `<site>_ACK_<ts>.csv` out.

One command per line, ``index;TYPE;params...``; each line is acknowledged, in order, as
``date-time;index;TYPE;params...;OK`` or ``...;ERROR;reason``. An unknown or malformed line gets
ERROR with its reason and the next lines still run.

Types:
  CONNECT                  connect again once this connection is over
  REBOOT                   restart the gateway once this connection is over
  DETECT                   run a meter detection once this connection is over
  CONFIG;key=value[;...]   change configuration keys (validated; applied after the connection)
  GETPARAMS                deposit the parameters file (action-1 variables) in this connection
  LOG                      upload the debug log in this connection
  UPDATE;package;checksum  fetch and verify a firmware package from /BIN (BIN_FileName/Checksum)
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Callable

_HEX64 = re.compile(r"[0-9A-Fa-f]{64}\Z")
#: Lines end at CR, LF or CRLF only: str.splitlines() would also split on \v, \f, \x1c-\x1e,
#: \x85 and U+2028, which a command file may carry inside a value.
_EOL = re.compile(r"\r\n|\r|\n")
#: Bytes that have no place in a command line; such a line is refused, not run.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass
class Effects:
    """What the command file asks of the rest of the connection and after it."""

    connect_again: bool = False
    reboot: bool = False
    detect: bool = False
    debug_log: bool = False
    config_changed: bool = False
    params_requested: bool = False

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> "Effects":
        known = {k: bool(v) for k, v in (data or {}).items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def __bool__(self) -> bool:
        return any(self.as_dict().values())


@dataclass
class Outcome:
    acks: list[str] = field(default_factory=list)
    effects: Effects = field(default_factory=Effects)
    ok: int = 0
    errors: int = 0


class CommandError(Exception):
    """A command that cannot run; its message is the ACK's reason."""


def parse_lines(text: str) -> list[list[str]]:
    return [line.split(";") for line in _EOL.split(text) if line.strip()]


def run(text: str, now_text: str, handlers, *, done: list[str] | None = None,
        effects: Effects | None = None,
        on_line: Callable[[list[str], Effects], None] | None = None) -> Outcome:
    """Run the lines of a command file; `handlers` provides config_update(dict) and params().

    To resume a file a crash interrupted: ``done`` holds the ACK lines of the lines already run
    (they are not run again) and ``effects`` what they asked for. ``on_line(acks, effects)`` is
    called after each line, to record the progress."""
    out = Outcome(acks=list(done or ()), effects=effects or Effects())
    for number, fields in enumerate(parse_lines(text)):
        if number < len(out.acks):
            continue
        fields = [f.strip(" \t") for f in fields]
        try:
            if any(_CONTROL.search(f) for f in fields):
                fields = [_visible(f) for f in fields]
                raise CommandError("control characters in the line")
            _run_one(fields, handlers, out.effects)
            out.acks.append(";".join([now_text] + fields + ["OK"]))
            out.ok += 1
        except CommandError as e:
            reason = _visible(str(e)).replace(";", ",")
            out.acks.append(";".join([now_text] + fields + ["ERROR", reason]))
            out.errors += 1
        if on_line is not None:
            on_line(out.acks, out.effects)
    return out


def _visible(text: str) -> str:
    """Control characters written as \\xNN, so an ACK line stays one line of text."""
    return _CONTROL.sub(lambda m: "\\x%02x" % ord(m.group()), text.replace("\t", " "))


def _run_one(fields: list[str], handlers, effects: Effects) -> None:
    if len(fields) < 2 or not fields[1]:
        raise CommandError("malformed line: expected index;TYPE;params")
    index, kind, params = fields[0], fields[1].upper(), fields[2:]
    if not index.isdigit():
        raise CommandError("index %r is not a number" % index)
    if kind in ("CONNECT", "REBOOT", "DETECT", "GETPARAMS", "LOG") and params and any(params):
        raise CommandError("%s takes no parameter" % kind)
    if kind == "CONNECT":
        effects.connect_again = True
    elif kind == "REBOOT":
        effects.reboot = True
    elif kind == "DETECT":
        effects.detect = True
    elif kind == "LOG":
        effects.debug_log = True
    elif kind == "GETPARAMS":
        try:
            handlers.params()
        except Exception as e:
            raise CommandError("parameters unavailable: %s" % e) from e
        effects.params_requested = True
    elif kind == "CONFIG":
        changes = {}
        for p in params:
            key, eq, value = p.partition("=")
            if not eq or not key.strip():
                raise CommandError("expected key=value, got %r" % p)
            changes[key.strip()] = value.strip()
        if not changes:
            raise CommandError("CONFIG needs at least one key=value")
        _config(handlers, changes)
        effects.config_changed = True
    elif kind == "UPDATE":
        if len(params) != 2 or not params[0]:
            raise CommandError("UPDATE needs package;checksum")
        if not _HEX64.match(params[1]):
            raise CommandError("checksum must be the package's SHA-256 (64 hex digits)")
        _config(handlers, {"BIN_FileName": params[0], "BIN_Checksum": params[1].lower()})
        effects.config_changed = True
    else:
        raise CommandError("unknown command %s" % fields[1])


def _config(handlers, changes: dict) -> None:
    try:
        handlers.config_update(changes)
    except Exception as e:
        raise CommandError(str(e).splitlines()[0] if str(e) else type(e).__name__) from e
