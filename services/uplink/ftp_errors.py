"""The FTP client's errors, named by what the caller should do (see ftp.py), and the helpers
that read a server's reply out of an ftplib error."""
from __future__ import annotations

import ftplib
import socket

#: kind -> the configuration key that names its directory (for messages)
DIR_SETTINGS = {"CONFIG": "FTP_DirConfig", "DEF": "FTP_DirDef", "DATA": "FTP_DirData",
                "ALARM": "FTP_DirAlarm", "CMD": "FTP_DirCmd", "LOG": "FTP_DirLog",
                "BIN": "FTP_DirBin"}


class FtpError(Exception):
    """Base of the FTP client's errors. ``reply`` is the server's reply text when there was one."""

    reply: str | None = None


class FtpConnectError(FtpError):
    """Cannot connect or log in ("Erreur de connexion FTP"): stop the connection phase."""

    def __init__(self, message: str, reply: str | None = None):
        super().__init__(message)
        self.reply = reply


class FtpTlsError(FtpConnectError):
    """The TLS session could not be set up or its certificate is not trusted.

    ``why``: the verifier's message ("self-signed certificate", "Hostname mismatch, ..."),
    "fingerprint" (not the pinned one), "refused" (AUTH TLS refused: ``reply``) or "cafile";
    ``fingerprint``: SHA-256 of the certificate the server presented, AB:CD:... as openssl prints
    it, for the installer to check and copy into FTP_TlsFingerprint (None if unknown)."""

    def __init__(self, message: str, *, why: str, fingerprint: str | None = None,
                 reply: str | None = None):
        super().__init__(message, reply=reply)
        self.why, self.fingerprint = why, fingerprint


class FtpDirectoryMissing(FtpError):
    """A configured directory does not exist on the server (the gateway never creates it)."""

    def __init__(self, kind: str, path: str, reply: str | None = None):
        self.kind, self.path, self.reply = kind, path, reply
        self.setting = DIR_SETTINGS.get(kind, "FTP_Dir*")
        super().__init__(
            f"FTP directory {path} ({kind}) does not exist on the server"
            + (f" ({reply})" if reply else "")
            + f": create it on the server or change {self.setting}; "
              "the gateway never creates directories")


class FtpTransferError(FtpError):
    """A transfer or file operation failed (after its retries): the local file is untouched."""

    def __init__(self, message: str, *, name: str | None = None, attempts: int = 1,
                 error: BaseException | None = None):
        super().__init__(message)
        self.name, self.attempts, self.error = name, attempts, error
        self.reply = reply_of(error) if error is not None else None


class FtpNoSpace(FtpError):
    """The server has no room (452/552, disk full, quota): stop uploading for this connection."""

    def __init__(self, message: str, reply: str | None = None):
        super().__init__(message)
        self.reply = reply


class FtpTooLarge(FtpError):
    """The remote file is larger than the caller accepts: it is not fetched."""

    def __init__(self, kind: str, path: str, size: int, limit: int):
        self.kind, self.path, self.size, self.limit = kind, path, size, limit
        super().__init__(f"{path} is {size} bytes, more than the {limit} accepted")


class FtpFileMissing(FtpError):
    """The remote file to fetch, delete or rename is not on the server."""

    def __init__(self, kind: str, path: str, reply: str | None = None):
        self.kind, self.path, self.reply = kind, path, reply
        super().__init__(f"{path} is not on the FTP server" + (f" ({reply})" if reply else ""))


class SizeMismatch(FtpError):
    """The server's size of a transferred file differs from what was sent or announced."""


def reply_of(err: BaseException | None) -> str | None:
    if isinstance(err, ftplib.Error):
        return str(err).strip()
    return None


def reply_code(err: BaseException) -> str:
    text = reply_of(err) or ""
    return text[:3] if text[:3].isdigit() else ""


NO_SPACE_WORDS = ("no space", "disk full", "quota", "storage allocation", "insufficient storage")


def is_no_space(err: BaseException) -> bool:
    if not isinstance(err, ftplib.Error):
        return False
    text = str(err).lower()
    return reply_code(err) in ("452", "552") or any(word in text for word in NO_SPACE_WORDS)


def describe(err: BaseException) -> str:
    reply = reply_of(err)
    if reply:
        return reply
    if isinstance(err, (TimeoutError, socket.timeout)):
        return "timed out"
    if isinstance(err, EOFError):
        return "connection closed by the server"
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
