"""Why a connection step failed, in one short French row for the *Connexion* table (issue 8).

The manual's error rows (*Erreur de connexion FTP*, *Erreur de dépôt du fichier ...*) say what
failed, not why; the reason was in the process log, which an installer does not see. The phases
journal the manual's row first, verbatim, then :func:`reason` of the error: what to fix, with the
server's own reply where there is one.

    self.journal("Erreur de connexion FTP")
    self.journal(reason(error))   # "Connexion refusée par le serveur : 530 Login incorrect."
"""
from __future__ import annotations

import errno
import socket
import ssl

from .ftp import (FtpConnectError, FtpDirectoryMissing, FtpError, FtpFileMissing, FtpNoSpace,
                  FtpTlsError, FtpTooLarge, FtpTransferError)

#: The verifier's words (OpenSSL) in French, for the usual cases.
_TLS_WHY = {
    "self-signed certificate": "certificat auto-signé",
    "self signed certificate": "certificat auto-signé",
    "self-signed certificate in certificate chain": "chaîne de certificats auto-signée",
    "certificate has expired": "certificat expiré",
    "certificate is not yet valid": "certificat pas encore valide",
    "unable to get local issuer certificate": "autorité de certification inconnue",
    "unable to verify the first certificate": "autorité de certification inconnue",
}

#: Words in a login refusal that mean "use TLS".
_WANTS_TLS = ("encrypt", "tls", "ssl", "secure")


def reason(err: BaseException, *, tls: bool | None = None) -> str:
    """One row saying why ``err`` happened and, where it helps, which setting to look at.
    ``tls``: whether FTPS was configured (a refusal asking for encryption then says so)."""
    if isinstance(err, FtpTlsError):
        return _tls(err)
    if isinstance(err, FtpDirectoryMissing):
        return "Répertoire %s absent du serveur FTP (paramètre %s)" % (err.path, err.setting)
    if isinstance(err, FtpNoSpace):
        return "Serveur FTP plein : %s" % (err.reply or err)
    if isinstance(err, FtpTooLarge):
        return "Fichier %s refusé : %d octets, au plus %d" % (err.path, err.size, err.limit)
    if isinstance(err, FtpFileMissing):
        return "Fichier %s absent du serveur FTP" % err.path
    if isinstance(err, FtpError) and err.reply:
        return _refusal(err, tls)
    cause = _root(err)
    if cause is not err and not isinstance(cause, FtpError):
        return reason(cause, tls=tls)
    return _network(err)


def _tls(err: FtpTlsError) -> str:
    if err.why == "fingerprint":
        return ("TLS refusé : le certificat du serveur n'a pas l'empreinte FTP_TlsFingerprint "
                "(empreinte SHA-256 reçue %s)" % err.fingerprint)
    if err.why == "refused":
        return "TLS refusé par le serveur : %s (paramètre FTP_Tls)" % err.reply
    if err.why == "cafile":
        return "Fichier FTP_TlsCaFile illisible : %s" % (err.__cause__ or err)
    why = err.why or ""
    if "mismatch" in why.lower():
        text = "nom du serveur absent du certificat"
    else:
        text = _TLS_WHY.get(why.lower(), why)
    seen = (" ; empreinte SHA-256 du serveur %s (à vérifier, puis FTP_TlsFingerprint)"
            % err.fingerprint) if err.fingerprint else ""
    return "TLS refusé : %s%s" % (text, seen)


def _refusal(err: FtpError, tls: bool | None) -> str:
    reply = err.reply
    if isinstance(err, FtpConnectError):
        hint = ""
        if tls is False and any(w in reply.lower() for w in _WANTS_TLS):
            hint = " (le serveur exige TLS : paramètre FTP_Tls)"
        elif reply.startswith("530"):
            hint = " (paramètres FTP_Login et FTP_Password)"
        return "Connexion refusée par le serveur : %s%s" % (reply, hint)
    if reply.startswith("4"):
        return "Transfert interrompu par le serveur FTP : %s" % reply
    return "Refus du serveur FTP : %s" % reply


def _root(err: BaseException) -> BaseException:
    seen = err
    while seen.__cause__ is not None:
        seen = seen.__cause__
    return seen


def _network(err: BaseException) -> str:
    if isinstance(err, (TimeoutError, socket.timeout)):
        return "Pas de réponse du serveur FTP (délai dépassé, paramètre FTP_Timeout)"
    if isinstance(err, socket.gaierror):
        return "Serveur FTP introuvable : nom inconnu (paramètre FTP_Server)"
    if isinstance(err, ConnectionRefusedError):
        return "Serveur FTP injoignable : connexion refusée (paramètres FTP_Server et FTP_Port)"
    if isinstance(err, (ConnectionResetError, BrokenPipeError, EOFError)):
        return "Connexion coupée par le serveur FTP"
    if isinstance(err, ssl.SSLError):
        return "TLS refusé : %s" % (err.reason or err)
    if isinstance(err, OSError) and err.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return "Serveur FTP injoignable : pas de route vers l'hôte (réseau)"
    if isinstance(err, FtpTransferError) and err.error is not None:
        return _network(err.error)
    text = str(err) or type(err).__name__
    return "Erreur FTP : %s" % text
