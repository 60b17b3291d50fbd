"""Firmware packages (`.pak`): a signed, offline-installable release of ticgw (issue 10).

A `.pak` is a gzip'd tar holding

- ``manifest.json``: name, version, build date (UTC), model, the oldest version it may replace
  (``min_version``), an optional signed downgrade permission (``downgrade_allowed_from``), and
  the sha256 and size of every other member; canonical JSON, the exact bytes that are signed;
- ``manifest.sig``: the raw 64-byte Ed25519 signature of ``manifest.json``;
- ``requirements.txt``: every wheel as ``name==version --hash=sha256:...`` (pip
  ``--no-index --require-hashes``), so a gateway without internet installs it;
- ``wheels/*.whl``: the ticgw wheel and the wheel of every runtime dependency.

:mod:`.manifest` (the manifest and versions), :mod:`.sign` (Ed25519 keys), :mod:`.build`
(making one), :mod:`.verify` (checking one, safely, before anything is touched).
"""
from __future__ import annotations

from .manifest import MODEL, NAME, Manifest, PakError, parse_version
from .sign import keygen, sign, verify_signature
from .verify import Facts, verify, inspect
from .build import BuildError, build
from . import wheelhouse

__all__ = ["MODEL", "NAME", "Manifest", "PakError", "parse_version", "keygen", "sign",
           "verify_signature", "Facts", "verify", "inspect", "build", "BuildError",
           "wheelhouse"]
