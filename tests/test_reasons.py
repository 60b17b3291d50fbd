"""The reason row after a manual error row (services.uplink.reasons): real failures of a real
client, each turned into one French row that names what to fix."""
from __future__ import annotations

import socket

import pytest

from services.uplink.ftp import FtpConnectError, FtpSession, FtpSettings
from services.uplink.reasons import reason
from sim.ftp_server import FtpTestServer


def failure(**settings) -> FtpConnectError:
    settings.setdefault("timeout", 1.0)
    with pytest.raises(FtpConnectError) as info:
        FtpSession(FtpSettings(**settings)).connect()
    return info.value


def test_refused_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]          # bound, not listening: the connection is refused
        err = failure(host="127.0.0.1", port=port)
    assert reason(err) == ("Serveur FTP injoignable : connexion refusée (paramètres FTP_Server "
                           "et FTP_Port)")


def test_unknown_host():
    err = failure(host="no-such-host.invalid")
    assert reason(err) == "Serveur FTP introuvable : nom inconnu (paramètre FTP_Server)"


def test_silent_server():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)                        # accepts in the kernel, never says 220
        err = failure(host="127.0.0.1", port=s.getsockname()[1], timeout=0.5)
    assert reason(err) == "Pas de réponse du serveur FTP (délai dépassé, paramètre FTP_Timeout)"


def test_wrong_password_and_plain_ftp_on_a_tls_server():
    with FtpTestServer() as srv:
        err = failure(**srv.client_settings(password="wrong"))
        assert reason(err, tls=False).startswith("Connexion refusée par le serveur : 530 ")
        assert reason(err, tls=False).endswith("(paramètres FTP_Login et FTP_Password)")
    with FtpTestServer(tls=True) as srv:
        err = failure(**srv.client_settings(tls=False))
        assert reason(err, tls=False) == (
            "Connexion refusée par le serveur : 550 SSL/TLS required on the control channel. "
            "(le serveur exige TLS : paramètre FTP_Tls)")
        err = failure(**srv.client_settings(tls_cafile=None))
        text = reason(err, tls=True)
        assert text.startswith("TLS refusé : certificat auto-signé ; empreinte SHA-256 du "
                               "serveur ") and text.endswith("(à vérifier, puis FTP_TlsFingerprint)")
