"""Web password hashing: PBKDF2-HMAC-SHA256 stored as one text value.

Stored format (the value of ``Web_PasswordHash``)::

    pbkdf2_sha256$<iterations>$<salt, hex>$<derived key, 32 bytes, hex>

``hash_password`` draws a random 16-byte salt. The factory default is the hash of the manual's
password ``high`` with the fixed salt ``ticgw-default`` (hex ``74696367772d64656661756c74``), so
the default is the same on every gateway, exactly as the manual's factory password is.
"""
from __future__ import annotations

import os

# hashlib and hmac are imported where used: loading libcrypto costs every service ~3.7 MiB of
# resident memory, and only the web page checks passwords.

__all__ = ["hash_password", "check_password", "DEFAULT_PASSWORD_HASH", "ITERATIONS"]

ITERATIONS = 100_000
_SCHEME = "pbkdf2_sha256"

#: hash_password("high", salt=b"ticgw-default"); a test checks it.
DEFAULT_PASSWORD_HASH = (
    "pbkdf2_sha256$100000$74696367772d64656661756c74$"
    "510369538905ace19e3a41ce4f96f27064f5ead3e8f7b90f80ce455bfd9cd520")


def hash_password(password: str, *, salt: bytes | None = None,
                  iterations: int = ITERATIONS) -> str:
    """The stored form of ``password``; a random salt unless one is given."""
    if salt is None:
        salt = os.urandom(16)
    import hashlib

    key = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return "%s$%d$%s$%s" % (_SCHEME, iterations, salt.hex(), key.hex())


def check_password(password: str, stored: str) -> bool:
    """True when ``password`` matches ``stored``; False for a wrong password or a malformed hash."""
    try:
        scheme, iterations, salt_hex, key_hex = stored.split("$")
        if scheme != _SCHEME:
            return False
        salt, want, n = bytes.fromhex(salt_hex), bytes.fromhex(key_hex), int(iterations)
    except ValueError:
        return False
    if n < 1 or not want:
        return False
    import hashlib
    import hmac

    got = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, n)
    return hmac.compare_digest(got, want)
