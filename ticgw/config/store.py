"""The configuration files on disk: finding, loading, checking, writing, renaming.

Layout: ``<data dir>/config/<site>_config.ini``, ``<site>_daq.ini``, ``<site>_var.ini``. The one
``*_config.ini`` decides the site; with none, every key takes its default and the site is
``WEBDYN``; a missing daq or var file means defaults for its keys.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .iniformat import decode, encode, fsync_dir, is_temp_name, parse_ini, write_atomic
from .keys import BY_NAME, KINDS, N_INPUTS
from .settings import (DEFAULT_SITE, ConfigError, ConfigProblem, build, defaults,
                       file_name, render_bytes)

__all__ = ["load", "load_dir", "read_dir", "config_dir_of", "ConfigStore", "Loaded"]

log = logging.getLogger("ticgw.config")

_SUFFIX = "_config.ini"


def config_dir_of(path) -> Path:
    """The config directory for ``path``: a data dir (holding ``config/``) or a config dir."""
    p = Path(path)
    return p / "config" if (p / "config").is_dir() or not p.exists() else p


@dataclass
class Loaded:
    """What :func:`read_dir` found: the settings (None when invalid) and everything said."""
    settings: object | None
    problems: list[ConfigProblem]
    warnings: list[ConfigProblem]
    site: str                                              # prefix of the files on disk
    files: dict[str, str] = field(default_factory=dict)    # kind -> name, files that exist


def _find(config_dir: Path) -> tuple[str, list[ConfigProblem]]:
    warnings = []
    try:
        names = sorted(n for n in os.listdir(config_dir)
                       if not is_temp_name(n) and (config_dir / n).is_file())
    except FileNotFoundError:
        return DEFAULT_SITE, []
    configs = [n for n in names if n.endswith(_SUFFIX) and len(n) > len(_SUFFIX)]
    if not configs:
        site = DEFAULT_SITE
    else:
        chosen = max(configs, key=lambda n: ((config_dir / n).stat().st_mtime_ns, n))
        site = chosen[:-len(_SUFFIX)]
        for other in configs:
            if other != chosen:
                warnings.append(ConfigProblem(other, "", "ignored: %s is newer (left over from "
                                              "a change of site identifier?)" % chosen))
    ours = {file_name(site, kind) for kind in KINDS}
    for n in names:
        if n not in ours and (n.endswith("_daq.ini") or n.endswith("_var.ini")):
            warnings.append(ConfigProblem(n, "", "ignored: the site is %s" % site))
    return site, warnings


def _parse_file(name: str, text: str, problems: list, warnings: list) -> dict[str, str]:
    """Key/value text of one file restricted to its own declared keys; the rest reported."""
    kind = name.rsplit("_", 1)[-1][:-len(".ini")]
    parsed = parse_ini(text)
    for _, reason in parsed.errors:
        problems.append(ConfigProblem(name, "", reason))
    for key, reason in parsed.warnings:
        warnings.append(ConfigProblem(name, key, reason))
    values = {}
    for key, value in parsed.values.items():
        k = BY_NAME.get(key)
        if k is not None and k.kind == kind:
            values[key] = value
        else:
            warnings.append(ConfigProblem(name, key, _unknown(key, kind)))
    return values


def _unknown(key: str, kind: str) -> str:
    k = BY_NAME.get(key)
    if k is not None:
        return "ignored: this key belongs in the %s file" % file_name("<site>", k.kind)
    base, _, rest = key.partition("[")
    if rest and any(b.name.startswith(base + "[") for b in BY_NAME.values()):
        return "ignored: inputs are numbered 1..%d" % N_INPUTS
    for name in BY_NAME:
        if name.lower() == key.lower():
            return "ignored: unknown key (keys are case-sensitive: did you mean %s?)" % name
    return "ignored: unknown key"


def _read_texts(config_dir: Path, site: str) -> dict[str, bytes]:
    out = {}
    for kind in KINDS:
        try:
            out[kind] = (config_dir / file_name(site, kind)).read_bytes()
        except FileNotFoundError:
            pass
    return out


def _evaluate(site: str, data: dict[str, bytes], extra_texts=None) -> Loaded:
    """Settings from file contents (``data[kind]``) and already-split values (``extra_texts``)."""
    problems: list[ConfigProblem] = []
    warnings: list[ConfigProblem] = []
    names = {kind: file_name(site, kind) for kind in KINDS}
    texts: dict[str, dict[str, str]] = dict(extra_texts or {})
    for kind, raw in data.items():
        texts[kind] = _parse_file(names[kind], decode(raw), problems, warnings)
    config = texts.setdefault("config", {})
    config.setdefault("Site_Id", site)
    if (config["Site_Id"] or DEFAULT_SITE) != site and "config" in data:
        warnings.append(ConfigProblem(names["config"], "Site_Id",
                                      "is %s but the file is named %s: the files will be "
                                      "renamed" % (config["Site_Id"], names["config"])))
    settings, bad = build(texts, names, warnings)
    problems += bad
    return Loaded(settings if not problems else None, problems, warnings, site,
                  {kind: names[kind] for kind in data})


def read_dir(config_dir) -> Loaded:
    """Read and check the files of a config directory; never raises for a bad configuration."""
    config_dir = Path(config_dir)
    site, warnings = _find(config_dir)
    loaded = _evaluate(site, _read_texts(config_dir, site))
    loaded.warnings[:0] = warnings
    if loaded.settings is not None and warnings:
        loaded.settings = _with_warnings(loaded.settings, loaded.warnings)
    return loaded


def _with_warnings(settings, warnings):
    return dataclasses.replace(settings, warnings=tuple(warnings))


def load_dir(config_dir):
    """Settings from a config directory; :class:`ConfigError` lists every problem."""
    loaded = read_dir(config_dir)
    for w in loaded.warnings:
        log.warning("configuration: %s", w)
    if loaded.problems:
        raise ConfigError(loaded.problems)
    return loaded.settings


def load(data_dir):
    """Settings from ``<data_dir>/config/``; :class:`ConfigError` lists every problem."""
    return load_dir(Path(data_dir) / "config")


class ConfigStore:
    """The configuration of one data dir, as a process uses and changes it.

    ``settings`` is the configuration in force: the last one that loaded without problems (the
    defaults, for the site named by the files, when none ever did; ``problems`` then says why).
    Every write is atomic per file and made under an exclusive lock on ``config/.lock`` so that
    processes sharing the data dir do not interleave; ``on_change(file_names, by)`` is called
    after each successful write, with who wrote (``by``: web, server, command, detection...), in
    the writing thread (journal *Sauvegarde de la configuration...* and publish
    ``config.changed`` from it).
    """

    def __init__(self, data_dir, *, on_change: Callable[[list[str], str], None] | None = None):
        self.data_dir = Path(data_dir)
        self.dir = self.data_dir / "config"
        self.on_change = on_change
        self.problems: list[ConfigProblem] = []
        self.warnings: list[ConfigProblem] = []
        self._disk_site = DEFAULT_SITE
        self._good = False
        self.settings = defaults()
        self.reload()

    # ---- locking --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _lock(self, exclusive: bool):
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    # ---- reading --------------------------------------------------------------------------------

    def reload(self, by: str = "gateway") -> list[ConfigProblem]:
        """Read the files again. On success the new settings replace the old ones and ``[]`` is
        returned; otherwise the settings in force stay and the problems are returned."""
        with self._lock(exclusive=False):
            loaded = read_dir(self.dir)
        written = []
        if loaded.settings is not None and loaded.settings.site != loaded.site:
            # Site_Id edited inside the config file: move the files to the new prefix
            with self._lock(exclusive=True):
                loaded = read_dir(self.dir)
                if loaded.settings is not None and loaded.settings.site != loaded.site:
                    self._disk_site = loaded.site
                    written = self._write(loaded.settings.site, {})
                    loaded = read_dir(self.dir)
        self._take(loaded)
        self._notify(written, by)
        return list(loaded.problems)

    def _take(self, loaded: Loaded) -> None:
        self._disk_site = loaded.site
        self.warnings = list(loaded.warnings)
        for w in loaded.warnings:
            log.warning("configuration: %s", w)
        self.problems = list(loaded.problems)
        if loaded.settings is not None:
            self.settings = loaded.settings
            self._good = True
            return
        for p in loaded.problems:
            log.error("configuration: %s", p)
        if not self._good and _site_ok(loaded.site):
            self.settings = defaults(loaded.site)   # nothing good yet: defaults, disk's site
        log.error("configuration: %d problem(s); the %s configuration stays in force",
                  len(loaded.problems), "previous" if self._good else "default")

    def file_path(self, kind: str) -> Path:
        return self.dir / file_name(self.settings.site, kind)

    # ---- checking -------------------------------------------------------------------------------

    def validate_text(self, kind: str, text) -> list[ConfigProblem]:
        """Problems of a whole file of ``kind`` (e.g. just downloaded), as if it replaced the
        local one: its keys (missing ones at their defaults) over the current other files."""
        return self._candidate(kind, text).problems

    def _candidate(self, kind: str, text) -> Loaded:
        if kind not in KINDS:
            raise ValueError("unknown configuration file kind %r" % kind)
        data = text if isinstance(text, bytes) else encode(text)
        others = {k: self.settings.raw(k) for k in KINDS if k != kind}
        return _evaluate(self.settings.site, {kind: data}, others)

    # ---- writing --------------------------------------------------------------------------------

    def apply_text(self, kind: str, text, by: str = "server"):
        """Accept a whole file (str or bytes, kept byte for byte): validate, write atomically,
        reload. Raises :class:`ConfigError` and touches nothing when it does not validate."""
        data = text if isinstance(text, bytes) else encode(text)
        with self._lock(exclusive=True):
            cand = self._candidate(kind, data)
            if cand.problems:
                raise ConfigError(cand.problems)
            for w in cand.warnings:
                log.warning("configuration: %s", w)
            written = self._write(cand.settings.site, {kind: data})
            loaded = read_dir(self.dir)
        self._take(loaded)
        self._notify(written, by)
        if loaded.problems:
            raise ConfigError(loaded.problems)
        return self.settings

    def update(self, changes: dict, by: str = "web"):
        """Edits: ``{key: value}`` (text, int or bool) merged over the configuration on disk
        (another process may have written since this one read it; when the disk's does not
        load, over the settings in force); the result is validated whole, then the affected
        files are rewritten. Raises :class:`ConfigError` naming each unknown key or bad value;
        nothing is written then. Values equal to the current ones write nothing."""
        unknown = [ConfigProblem("", key, "unknown key") for key in changes if key not in BY_NAME]
        if unknown:
            raise ConfigError(unknown)
        with self._lock(exclusive=True):
            current = read_dir(self.dir)
            base = current.settings if current.settings is not None else self.settings
            texts = base.all_raw()
            changes = {k: v for k, v in changes.items()
                       if texts[BY_NAME[k].kind].get(k) != _as_text(v)}
            if not changes:
                if current.settings is not None:
                    self._take(current)
                return self.settings
            kinds = []
            for key, value in changes.items():
                k = BY_NAME[key]
                texts[k.kind][key] = _as_text(value)
                if k.kind not in kinds:
                    kinds.append(k.kind)
            site = texts["config"]["Site_Id"] or DEFAULT_SITE
            names = {kind: file_name(site, kind) for kind in KINDS}
            settings, problems = build(texts, names)
            if problems:
                raise ConfigError(problems)
            written = self._write(settings.site,
                                  {kind: render_bytes(settings, kind) for kind in kinds})
            loaded = read_dir(self.dir)
        self._take(loaded)
        self._notify(written, by)
        if loaded.problems:
            raise ConfigError(loaded.problems)
        return self.settings

    def ensure_files(self, by: str = "gateway") -> list[str]:
        """Write each missing file with the settings in force (first start). Returns the names
        written."""
        with self._lock(exclusive=True):
            missing = {kind: render_bytes(self.settings, kind) for kind in KINDS
                       if not self.file_path(kind).exists()}
            written = self._write(self.settings.site, missing) if missing else []
            loaded = read_dir(self.dir)
        self._take(loaded)
        self._notify(written, by)
        return written

    def _write(self, site: str, contents: dict[str, bytes]) -> list[str]:
        """Write ``contents`` (kind -> bytes) as ``site``'s files; when the site changes, carry
        the other files over to the new names and remove the old ones. Caller holds the lock.

        Order keeps every instant loadable: new daq and var first, then the new config (which
        makes the new site win), then the old config, then the old daq and var are removed."""
        old = self._disk_site
        written = []
        if site == old:
            for kind in KINDS:
                if kind in contents:
                    write_atomic(self.dir / file_name(site, kind), contents[kind])
                    written.append(file_name(site, kind))
            return written
        log.info("configuration: site identifier %s -> %s, renaming the files", old, site)
        for kind in ("daq", "var", "config"):
            new_path = self.dir / file_name(site, kind)
            data = contents.get(kind)
            if data is None:
                try:
                    data = (self.dir / file_name(old, kind)).read_bytes()
                except FileNotFoundError:
                    data = None
            if data is not None:
                write_atomic(new_path, data)
                written.append(new_path.name)
            elif new_path.exists():         # stale, from an earlier interrupted change
                new_path.unlink()
        for kind in ("config", "daq", "var"):
            with contextlib.suppress(FileNotFoundError):
                (self.dir / file_name(old, kind)).unlink()
        fsync_dir(self.dir)
        self._disk_site = site
        return written

    def _notify(self, written: list[str], by: str) -> None:
        if written and self.on_change is not None:
            self.on_change(list(written), by)


def _site_ok(site: str) -> bool:
    try:
        BY_NAME["Site_Id"].type.parse(site)
        return True
    except ValueError:
        return False


def _as_text(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if value is None:
        return ""
    return str(value).strip()
