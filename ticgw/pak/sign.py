"""Ed25519 keys and signatures for `.pak` manifests (the `cryptography` package).

The private key is a PKCS#8 PEM file (unencrypted: keep it off the gateways); the public key
is 64 hex digits, the form of the configuration key ``BIN_PublicKey``.
"""
from __future__ import annotations

# cryptography is imported where it is used: it costs a process about 7 MiB of resident memory,
# and the update service needs it only while it checks a package.


def _ed25519():
    from cryptography.hazmat.primitives.asymmetric import ed25519
    return ed25519


def keygen() -> tuple[bytes, str]:
    """A new key pair: (private key as PEM bytes, public key as 64 hex digits)."""
    from cryptography.hazmat.primitives import serialization
    key = _ed25519().Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return pem, public_hex(key)


def load_private(private_key):
    """An Ed25519 private key from PEM bytes/str or a key object; ValueError otherwise."""
    from cryptography.hazmat.primitives import serialization
    Ed25519PrivateKey = _ed25519().Ed25519PrivateKey
    if isinstance(private_key, Ed25519PrivateKey):
        return private_key
    if isinstance(private_key, str):
        private_key = private_key.encode("ascii")
    key = serialization.load_pem_private_key(private_key, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 private key")
    return key


def public_hex(private_key) -> str:
    from cryptography.hazmat.primitives import serialization
    raw = load_private(private_key).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw.hex()


def load_public(public_key_hex: str):
    """The public key from 64 hex digits; ValueError if it is not that."""
    text = (public_key_hex or "").strip()
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ValueError("a public key is 64 hex digits, got %r" % public_key_hex)
    return _ed25519().Ed25519PublicKey.from_public_bytes(raw)


def sign(manifest_bytes: bytes, private_key) -> bytes:
    """The 64-byte Ed25519 signature of ``manifest_bytes``."""
    return load_private(private_key).sign(manifest_bytes)


def verify_signature(manifest_bytes: bytes, signature: bytes, public_key_hex: str) -> bool:
    """True if ``signature`` is the key's signature of ``manifest_bytes`` (False for a wrong
    key, a changed manifest or a malformed signature); ValueError for a malformed key."""
    from cryptography.exceptions import InvalidSignature
    key = load_public(public_key_hex)
    try:
        key.verify(signature, manifest_bytes)
    except InvalidSignature:
        return False
    return True
