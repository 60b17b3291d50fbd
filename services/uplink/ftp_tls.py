"""FTPS trust: the TLS context the settings ask for (system authorities plus a CA file, or a
pinned certificate fingerprint), and the fingerprints of certificates, as openssl prints them."""
from __future__ import annotations

import ftplib
import hashlib
import ssl

from .ftp_errors import FtpTlsError


def trust_context(tls_cafile: str | None, tls_fingerprint: str, tls_verify: bool
                  ) -> ssl.SSLContext:
    """A pinned fingerprint accepts that certificate and no other, whatever its chain and names
    (the session checks it after the handshake); else the system's CAs plus ``tls_cafile``, a
    certificate in that file being enough on its own (a self-signed server certificate), and a
    name only in the CN accepted when the certificate has no subjectAltName (common on
    integrators' servers). ``tls_verify=False``: encryption without identity (tests only)."""
    if tls_fingerprint or not tls_verify:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    ctx = ssl.create_default_context()
    ctx.hostname_checks_common_name = True
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    if tls_cafile:
        try:
            ctx.load_verify_locations(cafile=tls_cafile)
        except (OSError, ssl.SSLError) as err:
            raise FtpTlsError(f"cannot read FTP_TlsCaFile {tls_cafile}: {err}",
                              why="cafile") from err
    return ctx


def fingerprint_hex(text: str) -> str:
    return (text or "").replace(":", "").strip().lower()


def colons(hex_digits: str) -> str:
    h = hex_digits.upper()
    return ":".join(h[i:i + 2] for i in range(0, len(h), 2))


def certificate_fingerprint(sock) -> str:
    der = sock.getpeercert(binary_form=True)
    return hashlib.sha256(der).hexdigest() if der else ""


def presented_fingerprint(host: str, port: int, timeout: float) -> str | None:
    """SHA-256 (AB:CD:...) of the certificate an FTPS server presents, read on a connection of
    its own without checking it: for the journal when the certificate was not trusted, so the
    installer can compare it with the server's and pin it. None if it cannot be read."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    probe = ftplib.FTP_TLS(context=ctx, timeout=min(timeout, 10.0))
    try:
        probe.connect(host, port)
        probe.auth()
        return colons(certificate_fingerprint(probe.sock)) or None
    except (ftplib.all_errors + (ssl.SSLError,)):
        return None
    finally:
        probe.close()
