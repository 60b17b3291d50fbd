"""Typed, validated settings built from the key/value text of the three files.

:class:`Settings` is generated from the key table (one field per scalar key, snake_case of its
name, plus ``inputs``), so adding a key to ``keys.py`` is the only step needed.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Mapping

from . import types as t
from .iniformat import encode
from .keys import BY_NAME, DECLARED, INPUT_ATTRS, KEYS, KINDS, N_INPUTS, Key, keys_of
from .password import DEFAULT_PASSWORD_HASH

__all__ = ["ConfigProblem", "ConfigError", "TicInput", "Settings", "build", "defaults",
           "describe", "render", "render_bytes", "key_table_markdown", "file_name", "MASK",
           "DEFAULT_SITE"]

MASK = "****"
DEFAULT_SITE = BY_NAME["Site_Id"].default

@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong in the configuration: which file, which key, why (for an installer)."""
    file: str
    key: str
    reason: str

    def __str__(self) -> str:
        return ": ".join(p for p in (self.file, self.key, self.reason) if p)


class ConfigError(Exception):
    """The configuration cannot be used as it is; ``problems`` says every reason at once."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def file_name(site: str, kind: str) -> str:
    return "%s_%s.ini" % (site, kind)


@dataclass(frozen=True)
class TicInput:
    """One TIC input (1-based ``index``); unused when ``port`` is empty."""
    index: int
    port: str
    mode: str               # auto, historic, standard
    baud: int | str         # "auto" or a rate in bauds
    serial: str
    def_file: str

    @property
    def used(self) -> bool:
        return bool(self.port)


class _SettingsMethods:
    """Helpers of :class:`Settings` (the fields themselves come from the key table)."""

    @property
    def daq_interval_s(self) -> int:
        """Seconds between two samples: DAQ_Period minutes, or DAQ_PeriodSec when it is 0."""
        return self.daq_period * 60 if self.daq_period else self.daq_period_sec

    @property
    def site(self) -> str:
        """The prefix of file names: Site_Id, or WEBDYN while an automatic one is not known."""
        return self.site_id or DEFAULT_SITE

    def file_names(self) -> dict[str, str]:
        """kind -> file name, e.g. ``{"config": "WEBDYN_config.ini", ...}``."""
        return {kind: file_name(self.site, kind) for kind in KINDS}

    def get(self, key: str):
        """The typed value of one key by its file name (``DAQ_Period``, ``TIC_Port[2]``)."""
        k = BY_NAME[key]
        if k.index:
            return getattr(self.inputs[k.index - 1], k.attr)
        return getattr(self, k.attr)

    def text(self, key: str) -> str:
        """The value of one key as written in its file."""
        return BY_NAME[key].type.format(self.get(key))

    def raw(self, kind: str) -> dict[str, str]:
        """Every key of one file with its value as text, in file order."""
        return {k.name: k.type.format(self.get(k.name)) for k in keys_of(kind)}

    def all_raw(self) -> dict[str, dict[str, str]]:
        return {kind: self.raw(kind) for kind in KINDS}


def _py_type(vt: t.ValueType):
    if isinstance(vt, t.Bool):
        return bool
    if isinstance(vt, t.Int):
        return int
    if isinstance(vt, t.Baud):
        return int | str
    return str


Settings = dataclasses.make_dataclass(
    "Settings",
    [(k.attr, _py_type(k.type)) for k in KEYS if not k.index]
    + [("inputs", tuple[TicInput, ...]),
       ("warnings", tuple[ConfigProblem, ...], field(default=(), compare=False, repr=False))],
    bases=(_SettingsMethods,), frozen=True)
Settings.__module__ = __name__
Settings.__doc__ = (
    "The effective configuration, typed and validated. One field per key, named in snake_case "
    "(Site_Id -> site_id, FTP_DirData -> ftp_dir_data, ...); the TIC_*[n] array keys are in "
    "``inputs`` (always %d TicInput). ``warnings``: tolerated oddities found while loading "
    "(unknown keys...), not part of equality." % N_INPUTS)


# ---- building -------------------------------------------------------------------------------------

def build(texts: Mapping[str, Mapping[str, str]], file_names: Mapping[str, str],
          warnings=()) -> tuple[object | None, list[ConfigProblem]]:
    """Typed settings from ``texts[kind][key]`` (missing keys take their defaults).

    Returns ``(settings, [])``, or ``(None, problems)`` listing every bad value and every failed
    cross-key check. Keys that are not declared must have been removed by the caller.
    """
    problems: list[ConfigProblem] = []
    typed: dict[str, object] = {}
    for k in KEYS:
        text = texts.get(k.kind, {}).get(k.name)
        if text is None:
            typed[k.name] = k.type.parse(k.default)
            continue
        try:
            typed[k.name] = k.type.parse(text)
        except t.BadValue as e:
            problems.append(ConfigProblem(file_names[k.kind], k.name, str(e)))
    if not problems:
        problems += _cross_checks(typed, file_names)
    if problems:
        return None, problems
    inputs = tuple(
        TicInput(i, **{a: typed["%s[%d]" % (_BASE_OF_ATTR[a], i)] for a in INPUT_ATTRS})
        for i in range(1, N_INPUTS + 1))
    fields = {k.attr: typed[k.name] for k in KEYS if not k.index}
    return Settings(**fields, inputs=inputs, warnings=tuple(warnings)), []


_BASE_OF_ATTR = {k.attr: k.name for k in DECLARED if k.count}


def _cross_checks(v: dict, files: Mapping[str, str]) -> list[ConfigProblem]:
    out = []

    def bad(key, reason):
        out.append(ConfigProblem(files[BY_NAME[key].kind], key, reason))

    if not v["Site_Id"] and not v["Site_IdAuto"]:
        bad("Site_Id", "is empty: give the site identifier, or set Site_IdAuto=1 to have the "
                       "Web Services give one")
    if v["Site_IdAuto"] and not v["WebService_Enable"]:
        bad("Site_IdAuto", "an automatic site identifier needs the Web Services: "
                           "set WebService_Enable=1 (and WebService_Url)")
    if v["WebService_Enable"] and not v["WebService_Url"]:
        bad("WebService_Url", "is empty, but WebService_Enable=1 needs the Web Services URL")
    if v["Connection_Mode"] == "modem" and not v["Modem_Port"]:
        bad("Modem_Port", "is empty, but Connection_Mode=modem needs the modem's serial port")
    if v["BIN_FileName"] and not v["BIN_Checksum"]:
        bad("BIN_Checksum", "is empty, but BIN_FileName=%s needs the package's SHA-256"
            % v["BIN_FileName"])
    tcp = [k.name for k in KEYS if k.name.startswith("Bus_") and isinstance(k.type, t.Endpoint)
           and str(v[k.name]).startswith("tcp://")]
    if tcp:
        for key in ("Bus_CurvePublicKey", "Bus_CurveSecretKey"):
            if not v[key]:
                bad(key, "is empty, but %s use%s tcp://, which needs CURVE keys"
                    % (", ".join(tcp), "s" if len(tcp) == 1 else ""))
    if v["Bus_CurvePublicKey"] and v["Bus_CurveSecretKey"]:
        if not _curve_pair_ok(v["Bus_CurvePublicKey"], v["Bus_CurveSecretKey"]):
            bad("Bus_CurvePublicKey", "does not belong to Bus_CurveSecretKey "
                                      "(make both with zmq.curve_keypair())")
    return out


def _curve_pair_ok(public: str, secret: str) -> bool:
    try:
        import zmq
        return zmq.curve_public(secret.encode("ascii")) == public.encode("ascii")
    except ImportError:
        return True
    except Exception:       # libzmq without CURVE, or a key it cannot decode
        return False


def defaults(site: str | None = None):
    """Settings with every default (and ``site`` as Site_Id when given)."""
    texts = {"config": {"Site_Id": site}} if site else {}
    s, problems = build(texts, {kind: file_name(site or DEFAULT_SITE, kind) for kind in KINDS})
    if problems:
        raise ConfigError(problems)
    return s


# ---- showing and writing --------------------------------------------------------------------------

def describe(settings) -> list[str]:
    """The effective configuration as ``key=value`` lines, secrets masked (start-up log)."""
    out = []
    for k in KEYS:
        value = settings.text(k.name)
        out.append("%s=%s" % (k.name, MASK if k.secret and value else value))
    return out


_TITLES = {
    "config": "gateway configuration: site, network, server, web page, bus",
    "daq": "acquisition: sampling period and TIC inputs",
    "var": "schedule of connections and alarms",
}


def render(settings, kind: str) -> str:
    """The whole INI text of one file: every key (defaults included), grouped, fixed order."""
    if kind not in KINDS:
        raise ValueError("unknown configuration file kind %r" % kind)
    lines = ["# %s: %s" % (file_name(settings.site, kind), _TITLES[kind]),
             "# One key=value per line; keys are case-sensitive. List: ticgw config keys"]
    group = None
    for k in keys_of(kind):
        if k.group != group:
            group = k.group
            lines += ["", "# " + group]
        lines.append("%s=%s" % (k.name, settings.text(k.name)))
    return "\n".join(lines) + "\n"


def render_bytes(settings, kind: str) -> bytes:
    return encode(render(settings, kind))


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("*", "\\*")


def _default_md(k: Key) -> str:
    if k.default == DEFAULT_PASSWORD_HASH:
        return "hash of `high`"
    return "`%s`" % k.default if k.default else "(empty)"


def key_table_markdown() -> str:
    """Every key as a Markdown table (key, file, default, help), arrays shown once as KEY[n]."""
    rows = ["| key | file | default | help |", "|---|---|---|---|"]
    for k in DECLARED:
        name = "%s[n]" % k.name if k.count else k.name
        help_ = "%s. Values: %s.%s%s" % (
            k.help, k.type.values_doc(),
            " n = 1..%d." % k.count if k.count else "",
            " Secret: masked in logs." if k.secret else "")
        rows.append("| `%s` | `_%s.ini` | %s | %s |" % (name, k.kind, _default_md(k), _md(help_)))
    return "\n".join(rows) + "\n"
