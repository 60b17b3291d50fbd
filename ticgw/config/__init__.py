"""Configuration of the gateway: the three INI files the server also holds, read into typed,
validated :class:`Settings`.

- ``keys``: every key declared once (file, type, default, secret, help).
- ``types``: value types (text <-> typed value, reasons in plain English).
- ``iniformat``: the flat ``key=value`` format and :func:`write_atomic`.
- ``settings``: :class:`Settings`, :class:`TicInput`, problems, rendering, :func:`describe`.
- ``store``: files on disk, :func:`load`, :class:`ConfigStore`.
- ``password``: :func:`hash_password` / :func:`check_password` for ``Web_PasswordHash``.
"""
from __future__ import annotations

from .iniformat import write_atomic
from .keys import BY_NAME, DECLARED, KEYS, KINDS, N_INPUTS, Key, keys_of
from .password import DEFAULT_PASSWORD_HASH, check_password, hash_password
from .settings import (MASK, ConfigError, ConfigProblem, Settings, TicInput, defaults, describe,
                       file_name, key_table_markdown, render)
from .store import ConfigStore, config_dir_of, load, load_dir, read_dir

__all__ = [
    "Settings", "TicInput", "ConfigProblem", "ConfigError", "ConfigStore",
    "load", "load_dir", "read_dir", "config_dir_of", "defaults", "render", "describe",
    "key_table_markdown", "write_atomic", "hash_password", "check_password", "file_name",
    "KEYS", "DECLARED", "BY_NAME", "KINDS", "N_INPUTS", "Key", "keys_of", "MASK",
    "DEFAULT_PASSWORD_HASH",
]
