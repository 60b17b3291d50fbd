"""What the tests of Debian's FTP daemons add to ``sim.ftp_daemons`` (which starts them): the
certificate they serve, with the fingerprint a client pins.

Not a test file: a helper for fixtures.

    crt, key, fingerprint = self_signed_cert(tmp_path)
    with FtpDaemon("vsftpd", tls=True, cert=crt, key=key) as srv:    # sim.ftp_daemons
        ...
"""
from __future__ import annotations

import hashlib
import os
import ssl
from pathlib import Path

from sim.ftp_server import make_self_signed_cert


def self_signed_cert(directory: str | os.PathLike) -> tuple[Path, Path, str]:
    """A self-signed certificate for ``localhost`` with the name in its CN only (no
    subjectAltName), as integrators' servers often have, written in ``directory``.

    Returns (cert_path, key_path, sha256 fingerprint of the certificate's DER, lower-case hex
    without colons).
    """
    cert, key = make_self_signed_cert(directory, san=False)
    return cert, key, fingerprint_of(cert)


def fingerprint_of(cert_path: str | os.PathLike) -> str:
    """SHA-256 of a PEM certificate's DER, lower-case hex without colons."""
    der = ssl.PEM_cert_to_DER_cert(Path(cert_path).read_text())
    return hashlib.sha256(der).hexdigest()
