"""The uplink's FTP client: one session per connection, files moved safely, errors named by reaction.

Everything here blocks; the uplink service calls it from a worker thread.

    settings = FtpSettings.from_settings(config)
    with FtpSession(settings) as ftp:                         # FtpConnectError: stop the phase
        ftp.upload("DATA", spool_file, on_retry=journal_retry) # FtpTransferError: file stays
        for f in ftp.listdir("CMD"): ...
        ftp.download("CMD", "SITE_CMD.csv", local)
        ftp.delete("CMD", "SITE_CMD.csv")
        print(ftp.stats)

What the errors mean for the caller:

- :class:`FtpConnectError`: the server cannot be reached or refuses the login (the manual's
  "Erreur de connexion FTP"); the connection phase should stop.
- :class:`FtpDirectoryMissing`: a configured directory does not exist on the server. The gateway
  never creates directories; the message names the directory and the setting to fix.
- :class:`FtpNoSpace`: the server is out of space (452/552, "disk full", quota): stop uploading
  for this connection; the file stays in the spool.
- :class:`FtpTransferError`: one file failed after its retries; it stays in the spool, the next
  file can be tried.
- :class:`FtpFileMissing`: the remote file to fetch or delete is not there.

Uploads go as ``name.tmp``, whose size on the server is checked before it is renamed to ``name``
(a rename does not change the size), so a partial file only ever exists as ``.tmp``.

Round trips are what a connection costs on a slow link (~600 ms each on GPRS), so each command
here has a reason to exist: no CWD (paths are joined to the configured directories, absolute or
relative to the login directory); the session stays in binary mode (listings too); FEAT is read
once per session, in the login's round trip with TYPE I; commands that do not depend on each
other are pipelined (``FtpSettings.pipelining``): SIZE with RNFR after a STOR, the MLST (or SIZE
and MDTM) of several files; and configured directories are not checked up front: only when an
operation in one of them fails with "not found" is the directory itself looked at, to tell "the
directory is missing" (FtpDirectoryMissing) from "the file is", and a directory seen by an
earlier session (:meth:`FtpSession.remember`) is not looked at for a missing file. An upload is
PASV, STOR, SIZE+RNFR, RNTO. Remote metadata comes from MLST/MLSD (exact size, UTC time to the
second) when the server has them, else from SIZE and MDTM, else from ``LIST`` parsed by
ftputil's parsers (minutes, or days for old files; ftp_facts.py).

Trust (ftp_tls.py): the system's authorities plus ``tls_cafile``, or a pinned SHA-256
fingerprint; either way the certificate is checked before the password is sent.

``stats`` counts what the session cost on the link: FTP commands sent (every command line,
including login, TYPE, PASV, QUIT) and bytes. ``ctrl_*`` bytes are the command and reply lines,
``data_*`` the payload of transfers and listings; with TLS these are the plaintext sizes (the
wire adds handshakes and record overhead).
"""
from __future__ import annotations

import ftplib
import os
import socket
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ticgw.files import fsync_dir

from .ftp_errors import (DIR_SETTINGS, FtpConnectError, FtpDirectoryMissing, FtpError,
                         FtpFileMissing, FtpNoSpace, FtpTlsError, FtpTooLarge, FtpTransferError,
                         SizeMismatch, describe, is_no_space, reply_code, reply_of)
from .ftp_facts import (STATUS_LINE, RemoteFile, is_regular, mlst_facts, mlst_file, parse_list,
                        parse_mlst_time, pwd_path, size_mdtm_file)
from .ftp_tls import (certificate_fingerprint, colons, fingerprint_hex, presented_fingerprint,
                      trust_context)

__all__ = [
    "KINDS", "DEFAULT_DIRS", "DIR_SETTINGS", "FtpSettings", "FtpSession", "RemoteFile",
    "FtpError", "FtpConnectError", "FtpTlsError", "FtpDirectoryMissing", "FtpTransferError",
    "FtpNoSpace", "FtpFileMissing", "FtpTooLarge", "presented_fingerprint",
]

KINDS = ("CONFIG", "DEF", "DATA", "ALARM", "CMD", "LOG", "BIN")
DEFAULT_DIRS = {kind: "/" + kind for kind in KINDS}

TMP_SUFFIX = ".tmp"
BLOCK = 8192
#: Slowest link we plan for when waiting for the end of an upload (bytes/s; ~8 kbit/s, a poor
#: GPRS link). See FtpSession._stor.
MIN_LINK_RATE = 1000.0
#: How long to wait for the reply that explains a data connection that broke.
BROKEN_DATA_REPLY_WAIT = 5.0

#: Replies meaning "command not implemented / not for this argument": fall back to another way.
_UNSUPPORTED = ("500", "502", "504")
#: Replies by which a server refuses a path it cannot use: 550 (proftpd, pyftpdlib, most) or 553
#: (vsftpd's "Could not create file" for a STOR into a missing directory or without the right).
_REFUSED = ("550", "553")

RetryCallback = Callable[[int, int, BaseException], None]


# ----------------------------------------------------------------------------- settings
@dataclass
class FtpSettings:
    host: str
    port: int = 21
    login: str = ""
    password: str = ""
    tls: bool = False            # explicit FTPS (AUTH TLS), data channel protected (PROT P)
    passive: bool = True
    timeout: float = 30.0        # seconds without an answer before an operation fails
    dirs: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_DIRS))
    tls_cafile: str | None = None  # extra trust anchors (a CA, or the server's own certificate)
    tls_fingerprint: str = ""      # SHA-256 of the one certificate to accept (pinning), hex
    tls_verify: bool = True        # False accepts any certificate (encryption without identity)
    pipelining: bool = True        # send side-effect-free commands back to back (see _pipeline)

    @classmethod
    def from_settings(cls, settings) -> "FtpSettings":
        """From the gateway's configuration (:class:`ticgw.config.settings.Settings`)."""
        return cls(
            host=settings.ftp_server,
            port=int(settings.ftp_port),
            login=settings.ftp_login,
            password=settings.ftp_password,
            tls=bool(settings.ftp_tls),
            tls_cafile=settings.ftp_tls_ca_file or None,
            tls_fingerprint=settings.ftp_tls_fingerprint or "",
            passive=bool(settings.ftp_passive),
            pipelining=bool(settings.ftp_pipelining),
            timeout=float(settings.ftp_timeout),
            dirs={
                "CONFIG": settings.ftp_dir_config,
                "DEF": settings.ftp_dir_def,
                "DATA": settings.ftp_dir_data,
                "ALARM": settings.ftp_dir_alarm,
                "CMD": settings.ftp_dir_cmd,
                "LOG": settings.ftp_dir_log,
                "BIN": settings.ftp_dir_bin,
            },
        )

    def dir(self, kind: str) -> str:
        try:
            return self.dirs.get(kind) or DEFAULT_DIRS[kind]
        except KeyError:
            raise ValueError(f"unknown FTP directory kind {kind!r} (one of {KINDS})") from None


def _join(directory: str, name: str) -> str:
    if "/" in name or name in ("", ".", ".."):
        raise ValueError(f"{name!r} is not a plain file name")
    return directory.rstrip("/") + "/" + name


# ------------------------------------------------------------------- ftplib sessions
class _CountingMixin:
    """Counts commands and control bytes; remembers the transfer TYPE so it is sent only on change."""

    stats: dict
    _type: str | None = None

    def putcmd(self, line):
        self.stats["commands"] += 1
        super().putcmd(line)

    def putline(self, line):
        self.stats["ctrl_bytes_sent"] += len((line + "\r\n").encode(self.encoding, "replace"))
        super().putline(line)

    def getline(self):
        line = super().getline()
        self.stats["ctrl_bytes_received"] += len(line.encode(self.encoding, "replace")) + 2
        return line

    def _type_cached(self, cmd: str) -> bool:
        return cmd.upper().startswith("TYPE ") and cmd[5:].strip().upper() == self._type

    def _note_type(self, cmd: str) -> None:
        if cmd.upper().startswith("TYPE "):
            self._type = cmd[5:].strip().upper()

    def sendcmd(self, cmd):
        if self._type_cached(cmd):
            return "200 Type unchanged."
        resp = super().sendcmd(cmd)
        self._note_type(cmd)
        return resp

    def voidcmd(self, cmd):
        if self._type_cached(cmd):
            return "200 Type unchanged."
        resp = super().voidcmd(cmd)
        self._note_type(cmd)
        return resp

    #: Send PASV and the transfer command back to back (FtpSettings.pipelining): the server
    #: takes the data connection made after the transfer command, as RFC 959 allows.
    pipeline_transfers = False

    def ntransfercmd(self, cmd, rest=None):
        self.stats["data_connections"] += 1
        if not (self.pipeline_transfers and self.passiveserver and rest is None):
            return ftplib.FTP.ntransfercmd(self, cmd, rest)
        passive = "PASV" if self.af == socket.AF_INET else "EPSV"
        self.putcmd(passive)
        self.putcmd(cmd)
        self.stats["pipelined"] += 1
        try:
            reply = self.getresp()
        except ftplib.Error:
            self._drain_reply()                 # the transfer command's, to stay in step
            raise
        if passive == "PASV":
            host, port = ftplib.parse227(reply)
            if not self.trust_server_pasv_ipv4_address:
                host = self.sock.getpeername()[0]
        else:
            host, port = ftplib.parse229(reply, self.sock.getpeername())
        try:
            conn = socket.create_connection((host, port), self.timeout,
                                            source_address=self.source_address)
        except OSError:
            # The server may have refused the transfer command at once (550: no such
            # directory) and closed its listener: its reply says why better than the socket.
            self.getresp()
            raise
        try:
            resp = self.getresp()
            if resp[0] == "2":                  # a stray 200 before the 150 (see ftplib)
                resp = self.getresp()
            if resp[0] != "1":
                raise ftplib.error_reply(resp)
        except BaseException:
            conn.close()
            raise
        return conn, ftplib.parse150(resp) if resp[:3] == "150" else None

    def _drain_reply(self) -> None:
        try:
            self.getresp()
        except ftplib.Error:
            pass

    def retrlines(self, cmd, callback=None):
        # Listings (LIST, MLSD) are data too.
        inner = callback if callback is not None else ftplib.print_line

        def counting(line):
            self.stats["data_bytes_received"] += len(line.encode(self.encoding, "replace")) + 2
            inner(line)

        return super().retrlines(cmd, counting)


class _PlainSession(_CountingMixin, ftplib.FTP):
    pass


class _TlsSession(_CountingMixin, ftplib.FTP_TLS):
    pin = ""   # SHA-256 hex the server's certificate must have, when pinned

    def ntransfercmd(self, cmd, rest=None):
        # ftplib.FTP_TLS starts a fresh TLS session on every data connection; vsftpd
        # (require_ssl_reuse, its default) and proftpd refuse that. Resume the control
        # connection's session instead, which servers that do not care accept as well.
        conn, size = _CountingMixin.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            try:
                conn = self.context.wrap_socket(conn, server_hostname=self.host,
                                                session=self.sock.session)
                self.stats["tls_handshakes"] += 1
                if self.pin and certificate_fingerprint(conn) != self.pin:
                    raise ssl.SSLError("data connection: certificate is not the pinned one")
            except BaseException:
                conn.close()
                raise
        return conn, size


# --------------------------------------------------------------------------- session
class FtpSession:
    """One FTP connection to the server, reopened on demand if the link drops."""

    def __init__(self, settings: FtpSettings):
        self.settings = settings
        self._ftp: ftplib.FTP | None = None
        self._dead = False
        # Kinds whose directory is known to exist on the server: checked, or used successfully
        # in this session. A "not found" in one of them is then about the file, not the dir.
        self._known_dirs: set[str] = set()
        self._remembered: set[str] = set()   # kinds whose directory an earlier session saw
        self._features: set[str] | None = None  # FEAT, read at the first login
        self._has_mlst: bool | None = None   # None: not known yet
        self._has_size: bool | None = None
        self._has_mdtm: bool | None = None
        self._home: str | None = None        # PWD after login, asked only when needed
        self._remembered_features: set[str] | None = None
        self._prefetch_pairs: list[tuple[str, str]] = []
        self.prefetched: dict | None = None
        self._stats = {
            "connects": 0, "commands": 0, "data_connections": 0, "tls_handshakes": 0,
            "unanswered": 0, "pipelined": 0,
            "ctrl_bytes_sent": 0, "ctrl_bytes_received": 0,
            "data_bytes_sent": 0, "data_bytes_received": 0,
            "uploads": 0, "downloads": 0, "failed_tries": 0,
        }

    # ---------------------------------------------------------------- life
    def __enter__(self) -> "FtpSession":
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def stats(self) -> dict:
        s = dict(self._stats)
        s["bytes_sent"] = s["ctrl_bytes_sent"] + s["data_bytes_sent"]
        s["bytes_received"] = s["ctrl_bytes_received"] + s["data_bytes_received"]
        # What a slow link pays: a command is a round trip, so is opening a data connection
        # (TCP) and each TLS handshake (at least one more; TLS 1.3 resumption takes one).
        s["round_trips"] = s["commands"] - s["unanswered"] - s["pipelined"] + s["connects"] \
            + s["data_connections"] + s["tls_handshakes"]
        return s

    @property
    def connected(self) -> bool:
        return self._ftp is not None and not self._dead

    def connect(self) -> None:
        """Open the control connection, secure it (FTPS), log in and read the server's features.

        FtpConnectError with the reply when the server refuses; FtpTlsError when its certificate
        is not trusted (before the password is sent)."""
        if self.connected:
            return
        self._drop()
        st = self.settings
        where = f"{st.host}:{st.port}"
        ftp: ftplib.FTP | None = None
        try:
            if st.tls:
                ftp = _TlsSession(context=self._tls_context(), encoding="utf-8",
                                  timeout=st.timeout)
                ftp.pin = fingerprint_hex(st.tls_fingerprint)
            else:
                ftp = _PlainSession(encoding="utf-8", timeout=st.timeout)
            ftp.stats = self._stats
            ftp.pipeline_transfers = bool(st.pipelining)
            self._opening = ftp                  # abort() reaches a session still logging in
            self._stats["connects"] += 1
            ftp.connect(st.host, st.port, timeout=st.timeout)
            if st.tls:
                self._secure(ftp)
            ftp.set_pasv(st.passive)
            self._ftp = ftp
            self._login(ftp)
        except FtpError:
            if ftp is not None:
                ftp.close()
            self._ftp = None
            raise
        except (ftplib.all_errors + (ssl.SSLError,)) as err:
            if ftp is not None:
                ftp.close()
            self._ftp = None
            raise FtpConnectError(f"FTP connection to {where} failed: {describe(err)}",
                                  reply=reply_of(err)) from err
        self._opening = None
        if self._aborted:
            ftp.close()
            raise FtpConnectError("the connection was cut short during the login")
        self._ftp, self._dead = ftp, False

    def _secure(self, ftp: "_TlsSession") -> None:
        """AUTH TLS, then check the certificate against the pin if one is set: all before the
        login, so the password only ever goes to a trusted server."""
        st = self.settings
        try:
            ftp.auth()
        except ssl.SSLCertVerificationError as err:
            raise FtpTlsError(
                f"TLS to {st.host}:{st.port}: certificate not trusted: {err.verify_message}",
                why=err.verify_message or str(err),
                fingerprint=presented_fingerprint(st.host, st.port, st.timeout)) from err
        except ftplib.error_perm as err:
            raise FtpTlsError(f"TLS refused by {st.host}:{st.port}: {reply_of(err)}",
                              why="refused", reply=reply_of(err)) from err
        self._stats["tls_handshakes"] += 1
        got = certificate_fingerprint(ftp.sock)
        if ftp.pin and got != ftp.pin:
            raise FtpTlsError(
                f"TLS to {st.host}:{st.port}: certificate fingerprint {colons(got)} is not "
                f"FTP_TlsFingerprint", why="fingerprint", fingerprint=colons(got))

    def _login(self, ftp: ftplib.FTP) -> None:
        """Log in, protect the data channel (FTPS), read FEAT and set TYPE I: in one round trip
        where it is safe. Under TLS the whole login is pipelined (the password is protected);
        in plain FTP, USER goes alone first, so a server that demands TLS refuses it before the
        password is sent in clear. When the server's features are known from an earlier
        session, the stats asked by :meth:`prefetch` ride in the same round trip."""
        st = self.settings
        login: list[str] = []
        if not st.pipelining:
            ftp.login(st.login, st.password)
            if st.tls:
                ftp.prot_p()
        elif st.tls:
            login = ["USER " + st.login, "PASS " + st.password, "PBSZ 0", "PROT P"]
        else:
            if ftp.sendcmd("USER " + st.login)[0] == "3":
                login = ["PASS " + st.password]
        features = ["FEAT", "TYPE I"] if self._features is None else []
        use_mlst = self._prefetch_plan() if features else None
        extra = self._stat_lines(self._prefetch_pairs, use_mlst) if use_mlst is not None else []
        replies = self._pipeline(login + features + extra)
        self._check_login(ftp, login, replies[:len(login)])
        if features:
            feat, type_i = replies[len(login):len(login) + 2]
            self._read_features(feat)
            if not isinstance(type_i, BaseException):
                ftp._type = "I"
        if extra and use_mlst == bool(self._has_mlst) and (use_mlst or self._has_mdtm):
            self.prefetched = self._stat_parse(self._prefetch_pairs,
                                               replies[len(login) + 2:], use_mlst)

    @staticmethod
    def _check_login(ftp: ftplib.FTP, lines: list[str], replies: list) -> None:
        """The replies to a pipelined login: the first refusal is the error (USER's, PASS's);
        a USER answered 230 needs no PASS (its 503 is not an error)."""
        user_done = False
        for line, reply in zip(lines, replies):
            verb = line.split(" ", 1)[0]
            if verb == "USER" and isinstance(reply, str) and reply[0] == "2":
                user_done = True
                continue
            if verb == "PASS" and user_done:
                continue
            if isinstance(reply, BaseException):
                raise reply
            if verb == "PROT":
                ftp._prot_p = True

    def _prefetch_plan(self) -> bool | None:
        """How to stat the prefetched files in the login's round trip: MLST (True), SIZE and
        MDTM (False), or not at all (None), from the features remembered."""
        feats = self._remembered_features
        if not (self._prefetch_pairs and self.settings.pipelining and feats):
            return None
        if "MLST" in feats:
            return True
        if "SIZE" in feats and "MDTM" in feats:
            return False
        return None

    def prefetch(self, pairs: list[tuple[str, str]]) -> None:
        """(kind, name) of files to stat at login, in the login's round trip when the server's
        features are remembered (:meth:`remember`); the result is :attr:`prefetched` (None if
        it could not be done that way)."""
        self._prefetch_pairs = list(pairs)

    def _read_features(self, resp) -> None:
        """FEAT's reply, once per session: which of MLST, SIZE and MDTM the server has (RFC
        2389). ``resp`` is the reply, or the error a server without FEAT answered."""
        if isinstance(resp, BaseException):
            if not isinstance(resp, ftplib.Error):
                raise resp
            self._features = set()     # no FEAT: each is found out by trying
            return
        feats = set()
        for line in resp.splitlines()[1:]:
            word = line.strip().split(" ", 1)[0].upper()
            if word and not STATUS_LINE.match(line):
                feats.add(word)
        self._features = feats
        self._has_mlst = "MLST" in feats
        self._has_size = True if "SIZE" in feats else None
        self._has_mdtm = "MDTM" in feats

    @property
    def features(self) -> set[str]:
        """The server's FEAT answer (upper-case first words); empty before the first login."""
        return set(self._features or ())

    def remember(self, known_paths=(), features=None) -> None:
        """What an earlier session learnt of this server: the directories it found
        (:attr:`known_paths`), so a file missing there is taken for a missing file without
        looking at the directory (the usual "no command file"; errors still check); and its
        features (:attr:`features`), so :meth:`prefetch` can ride on the login's round trip.
        FEAT is still asked at every session and decides."""
        known = set(known_paths)
        self._remembered = {k for k in KINDS if self.settings.dir(k) in known}
        self._remembered_features = set(features) if features else None

    @property
    def known_paths(self) -> set[str]:
        """Directories known to exist on the server, for the next session (``known_paths``)."""
        kinds = self._known_dirs | self._remembered
        return {self.settings.dir(k) for k in kinds}

    def close(self) -> None:
        """Say QUIT and close, without waiting for the goodbye (a round trip on a slow link
        for nothing: everything is done). Safe to call twice."""
        ftp = self._ftp
        if ftp is not None and not self._dead:
            try:
                if ftp.sock is not None:
                    ftp.sock.settimeout(min(self.settings.timeout, 5.0))
                ftp.putcmd("QUIT")
                self._stats["unanswered"] += 1
            except (ftplib.all_errors + (ssl.SSLError,)):
                pass
        self._drop()

    def abort(self) -> None:
        """From another thread: shut the control connection down, so that a command waiting
        for its reply fails at once (a transfer fails at its socket timeout at the latest)."""
        ftp = self._ftp or self._opening
        sock = getattr(ftp, "sock", None) if ftp is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._dead = True
        self._aborted = True                 # and no reconnection: the connection is over

    def _drop(self) -> None:
        if self._ftp is not None:
            self._ftp.close()
        self._ftp = None
        self._dead = False

    def _tls_context(self) -> ssl.SSLContext:
        st = self.settings
        return trust_context(st.tls_cafile, st.tls_fingerprint, st.tls_verify)

    _aborted = False
    _opening = None

    def _ensure(self) -> ftplib.FTP:
        """The live ftplib session; reconnects if the previous one died (not after abort())."""
        if self._aborted:
            raise FtpConnectError("the connection was cut short: no new FTP session")
        if not self.connected:
            self.connect()
        return self._ftp

    def _failed(self, err: BaseException) -> None:
        """After an error: if the control connection cannot be trusted any more, forget it."""
        dead = isinstance(err, (OSError, EOFError, ftplib.error_reply,
                                ftplib.error_proto)) or reply_code(err) == "421"
        if dead:
            self._dead = True

    # ------------------------------------------------------------- directories
    def check_dir(self, kind: str) -> str:
        """The remote directory of ``kind``; FtpDirectoryMissing if the server has no such dir.

        The other operations do not call this up front (a round trip per directory): they call
        :meth:`_require_dir` when the server answers "not found" in that directory."""
        path = self.settings.dir(kind)
        if kind in self._known_dirs:
            return path
        self._op(f"check {path}", self._check_dir, kind, path)
        self._known_dirs.add(kind)
        return path

    def _require_dir(self, kind: str) -> None:
        """After a "not found" in ``kind``'s directory: FtpDirectoryMissing if the directory
        itself is missing; returns if it exists (so the reply was about the file)."""
        if kind not in self._known_dirs:
            self.check_dir(kind)

    def _check_dir(self, kind: str, path: str) -> None:
        ftp = self._ensure()
        if self._has_mlst is not False:
            try:
                facts = self._mlst(path)
            except _NotSupported:
                pass
            else:
                if facts is None:
                    raise FtpDirectoryMissing(kind, path, self._last_missing_reply)
                kind_fact = facts.get("type", "").lower()
                if kind_fact in ("dir", "cdir"):
                    return
                if kind_fact:
                    raise FtpDirectoryMissing(kind, path, f"{path} is not a directory")
                # no type fact: ask with CWD below
        # No MLST: CWD into it and back to the login directory (PWD, asked once), so relative
        # paths keep meaning "from the login directory". Only on this error path.
        if self._home is None:
            self._home = pwd_path(ftp.sendcmd("PWD"))
        try:
            ftp.cwd(path)
        except ftplib.error_perm as err:
            raise FtpDirectoryMissing(kind, path, reply_of(err)) from err
        ftp.cwd(self._home)

    # ----------------------------------------------------------------- listing
    def listdir(self, kind: str) -> list[RemoteFile]:
        """The regular files in ``kind``'s directory, sorted by name."""
        path = self.settings.dir(kind)
        files = self._op(f"list {path}", self._listdir, kind, path)
        self._known_dirs.add(kind)
        return files

    def _listdir(self, kind: str, path: str) -> list[RemoteFile]:
        self._ensure()
        files: list[RemoteFile] = []
        if self._has_mlst is not False:
            try:
                entries = self._mlsd(path)
            except ftplib.error_perm as err:
                if reply_code(err) not in _UNSUPPORTED:
                    # Listing the directory was refused (550, or 501 from pyftpdlib): is it
                    # there at all? FtpDirectoryMissing if not, else this refusal stands.
                    self._require_dir(kind)
                    raise
                self._has_mlst = False
            else:
                for name, facts in entries:
                    name = name.rsplit("/", 1)[-1]  # a few servers give full paths
                    if facts.get("type", "").lower() == "file" and name:
                        files.append(RemoteFile(name, int(facts.get("size", -1)),
                                                parse_mlst_time(facts.get("modify"))))
                return sorted(files)
        # No MLSD: one LIST of the directory itself (no CWD), parsed by ftputil's parsers.
        try:
            entries = self._list(path)
        except (ftplib.error_perm, ftplib.error_temp):   # proftpd: 450 for a missing dir
            self._require_dir(kind)
            raise
        if not entries and kind not in self._remembered:
            # vsftpd lists a missing directory as empty, with success: look once
            self._require_dir(kind)
        for name, st in entries:
            if is_regular(st.st_mode):
                files.append(RemoteFile(name, int(st.st_size), st.st_mtime,
                                        st._st_mtime_precision or 60))
        return sorted(files)

    def _list(self, path: str) -> list[tuple[str, object]]:
        """``LIST path`` as (name, ftputil StatResult) pairs: Unix style, else MS-DOS style.

        Received in binary mode like MLSD (see :meth:`_mlsd`). A server that lists a missing
        directory as empty (vsftpd does) gives []: the callers tell "missing" by other means.
        Times are taken as UTC (no time shift); LIST gives minutes, or days for old files
        (``_st_mtime_precision``)."""
        chunks: list[bytes] = []
        self._receive("LIST " + path, chunks.append)
        return parse_list(b"".join(chunks).decode(self._ftp.encoding, "replace"))

    def _mlsd(self, path: str) -> list[tuple[str, dict[str, str]]]:
        """MLSD ``path`` as (name, facts) pairs, facts with lower-case keys.

        Received like a file, in binary mode, rather than with ftplib's mlsd(): its retrlines()
        sends TYPE A first, and the next upload TYPE I again, two round trips per listing for
        nothing (MLSD's format does not depend on the TYPE; lines end in CRLF either way)."""
        chunks: list[bytes] = []
        self._receive("MLSD " + path, chunks.append)
        entries = []
        for line in b"".join(chunks).decode(self._ftp.encoding, "replace").split("\n"):
            line = line.rstrip("\r")
            if not line:
                continue
            # RFC 3659: "fact=value;fact=value; name" (the name may contain spaces)
            facts_text, _, name = line.partition(" ")
            facts = {}
            for fact in facts_text.split(";"):
                key, sep, value = fact.partition("=")
                if sep:
                    facts[key.strip().lower()] = value
            entries.append((name, facts))
        return entries

    def stat(self, kind: str, name: str, with_time: bool = True
             ) -> tuple[int, float | None] | None:
        """(size, mtime) of a regular file, None if there is no such file. Without MLST the
        time costs an MDTM: ``with_time=False`` when only presence and size matter.
        FtpDirectoryMissing if the whole directory is missing."""
        path = _join(self.settings.dir(kind), name)

        def stat_():
            facts = self._file_facts(path, with_time)
            if facts is None and kind not in self._remembered:
                self._require_dir(kind)  # "no such file" may mean "no such directory"
            return facts

        return self._op(f"stat {path}", stat_)

    def mdtm(self, kind: str, name: str) -> float | None:
        """The file's modification time to the second (UTC): MLST's, else MDTM's; None if the
        server tells neither. FtpFileMissing if the file is not there."""
        path = _join(self.settings.dir(kind), name)

        def mdtm_():
            facts = self._file_facts(path, want_time=True)
            if facts is None:
                self._require_dir(kind)
                raise FtpFileMissing(kind, path, self._last_missing_reply)
            return facts[1]

        return self._op(f"mdtm {path}", mdtm_)

    @property
    def exact_times(self) -> bool:
        """True when listings give times to the second (MLSD), so no MDTM is ever needed."""
        return bool(self._has_mlst)

    def _file_facts(self, path: str, want_time: bool = False
                    ) -> tuple[int, float | None] | None:
        self._ensure()
        if self._has_mlst is not False:
            try:
                facts = self._mlst(path)
            except _NotSupported:
                pass
            else:
                if facts is None:
                    return None
                if "type" in facts and "size" in facts:
                    if facts["type"].lower() != "file":
                        return None
                    return int(facts["size"]), parse_mlst_time(facts.get("modify"))
                # facts we cannot use: ask below
        return self._size_and_time(path, want_time)

    def _size_and_time(self, path: str, want_time: bool) -> tuple[int, float | None] | None:
        """Without MLST: SIZE (one round trip), and MDTM when the time is wanted; a server
        with neither: a LIST of the parent directory."""
        ftp = self._ftp
        if self._has_size is not False:
            ftp.voidcmd("TYPE I")  # some servers refuse SIZE in ASCII mode (cached)
            try:
                size = ftp.size(path)
            except ftplib.error_perm as err:
                if reply_code(err) not in _UNSUPPORTED:
                    self._last_missing_reply = reply_of(err)
                    return None
                self._has_size = False
            else:
                if size is not None:
                    self._has_size = True
                    mtime = self._mdtm(path) if want_time else None
                    return size, mtime
        parent, _, name = path.rpartition("/")
        for entry, st in self._list(parent or "."):
            if entry == name and is_regular(st.st_mode):
                return int(st.st_size), st.st_mtime
        return None

    def _mdtm(self, path: str) -> float | None:
        """MDTM (RFC 3659: UTC, to the second); None if the server has no MDTM."""
        if self._has_mdtm is False:
            return None
        try:
            resp = self._ftp.sendcmd("MDTM " + path)
        except ftplib.error_perm as err:
            if reply_code(err) in _UNSUPPORTED:
                self._has_mdtm = False
                return None
            raise
        self._has_mdtm = True
        return parse_mlst_time(resp[4:].strip())

    _last_missing_reply: str | None = None

    def _mlst(self, path: str) -> dict[str, str] | None:
        """MLST facts of one path (lower-case keys); None if the server says it is not there."""
        if self._has_mlst is False:
            raise _NotSupported
        try:
            resp = self._ftp.sendcmd("MLST " + path)
        except ftplib.error_perm as err:
            if reply_code(err) in _UNSUPPORTED:
                self._has_mlst = False
                raise _NotSupported from err
            self._last_missing_reply = reply_of(err)
            return None
        self._has_mlst = True
        return mlst_facts(resp)

    def _pipeline(self, lines: list[str]) -> list:
        """Send ``lines`` back to back, then read their replies in order: one round trip for
        all, where none changes what another does (FEAT and TYPE; SIZE and RNFR; MLST, SIZE or
        MDTM of several files). Each item is the reply text or the ftplib.Error it was; another
        error (the link) is raised. With ``pipelining`` off (FTP_Pipelining=0, for a server or
        a router that mishandles it), one command at a time."""
        ftp = self._ftp
        out: list = []
        if not lines:
            return out
        if not self.settings.pipelining or len(lines) == 1:
            for line in lines:
                try:
                    out.append(ftp.sendcmd(line))
                except ftplib.Error as err:
                    out.append(err)
            return out
        for line in lines:
            ftp.putcmd(line)
        self._stats["pipelined"] += len(lines) - 1
        for _ in lines:
            try:
                out.append(ftp.getresp())
            except ftplib.Error as err:
                out.append(err)
        return out

    @property
    def can_stat_many(self) -> bool:
        """True when :meth:`stat_many` costs one round trip: pipelining, and MLST or
        SIZE with MDTM. Else a listing of the directory is cheaper."""
        return bool(self.settings.pipelining) and bool(
            self._has_mlst or (self._has_size is not False and self._has_mdtm))

    def stat_many(self, kind: str, names: list[str]) -> dict[str, RemoteFile | None] | None:
        """Size and exact time of several files of ``kind``'s directory in one round trip
        (pipelined MLST, or SIZE and MDTM); None for a file that is not there. None for all
        when the server turned out not to have those commands (list the directory instead).
        FtpDirectoryMissing if none is there because the directory is missing."""
        found = self.stat_files([(kind, n) for n in names])
        if found is None:
            return None
        if names and not any(found.values()) and kind not in self.known_kinds:
            self._op(f"check {self.settings.dir(kind)}", self._require_dir, kind)
        return {n: found[(kind, n)] for n in names}

    @property
    def known_kinds(self) -> set[str]:
        """Kinds whose directory is known to exist: seen in this session or remembered."""
        return self._known_dirs | self._remembered

    def stat_files(self, pairs: list[tuple[str, str]]
                   ) -> dict[tuple[str, str], RemoteFile | None] | None:
        """:meth:`stat_many` across directories, in one round trip, without looking at a
        directory where nothing was found (the caller decides); None when the server has no
        command for it. A directory where a file was found is known to exist."""

        def stat_all():
            self._ensure()
            use_mlst = bool(self._has_mlst)
            if not use_mlst:
                self._ftp.voidcmd("TYPE I")        # SIZE in binary mode (cached)
            replies = self._pipeline(self._stat_lines(pairs, use_mlst))
            return self._stat_parse(pairs, replies, use_mlst)

        return self._op("stat", stat_all)

    def _stat_lines(self, pairs, use_mlst: bool) -> list[str]:
        paths = [_join(self.settings.dir(k), n) for k, n in pairs]
        if use_mlst:
            return ["MLST " + p for p in paths]
        return [c + p for p in paths for c in ("SIZE ", "MDTM ")]

    def _stat_parse(self, pairs, replies, use_mlst: bool):
        """The replies to :meth:`_stat_lines`; None if the server lacks the commands."""
        if any(isinstance(r, ftplib.Error) and reply_code(r) in _UNSUPPORTED for r in replies):
            if use_mlst:
                self._has_mlst = False
            else:
                self._has_mdtm = False
            return None                              # the caller lists the directory instead
        if use_mlst:
            files = [mlst_file(n, r) for (_, n), r in zip(pairs, replies)]
        else:
            files = [size_mdtm_file(n, replies[2 * i], replies[2 * i + 1])
                     for i, (_, n) in enumerate(pairs)]
        for (kind, _), f in zip(pairs, files):
            if f is not None:
                self._known_dirs.add(kind)
        return dict(zip(pairs, files))

    def _remote_size(self, path: str) -> int | None:
        """Size the server reports for ``path`` (SIZE, else MLST/LIST); None if missing."""
        if self._has_size is not False:
            facts = self._size_and_time(path, want_time=False)
            if self._has_size is not False:
                return None if facts is None else facts[0]
        facts = self._file_facts(path)
        return None if facts is None else facts[0]

    # ------------------------------------------------------------------ upload
    def upload(self, kind: str, local_path: str | os.PathLike, remote_name: str | None = None,
               tries: int = 3, on_retry: RetryCallback | None = None) -> int:
        """Deposit a local file in ``kind``'s directory, safely; returns its size.

        Each try: STOR ``name.tmp``, check its size on the server (SIZE), rename it to ``name``
        (RNFR, RNTO). A failed try calls ``on_retry(attempt, tries, error)`` (for "Erreur de
        transfert FTP : 1 sur 3"); the next try reconnects first if the control connection died.
        After ``tries`` failures: FtpTransferError. Out of space: FtpNoSpace at once (not
        retried). Directory missing: FtpDirectoryMissing at once. The local file is never
        modified.
        """
        local_path = Path(local_path)
        name = remote_name or local_path.name
        remote = _join(self.settings.dir(kind), name)
        size = local_path.stat().st_size  # FileNotFoundError: the caller's problem, not FTP's
        tries = max(1, tries)
        last: BaseException | None = None
        for attempt in range(1, tries + 1):
            try:
                self._ensure()  # may reconnect; FtpConnectError stops here
                self._upload_once(kind, local_path, remote, size)
                self._stats["uploads"] += 1
                return size
            except FtpNoSpace:
                raise
            except FtpTransferError as err:   # from a directory check on a broken link
                last = err.error or err
            except (SizeMismatch,) + ftplib.all_errors as err:
                self._failed(err)
                last = err
            self._stats["failed_tries"] += 1
            if on_retry is not None:
                on_retry(attempt, tries, last)
        raise FtpTransferError(
            f"upload of {name} to {self.settings.dir(kind)} failed after {tries} tries: "
            f"{describe(last)}", name=name, attempts=tries, error=last) from last

    def _upload_once(self, kind: str, local_path: Path, remote: str, size: int) -> None:
        tmp = remote + TMP_SUFFIX
        # 1. The data goes to name.tmp: a transfer cut short leaves at most a partial .tmp,
        #    never a partial file under the real name. A .tmp left by an earlier try is simply
        #    overwritten by the STOR (no DELE first, see _stor_tmp).
        try:
            self._stor_tmp(kind, local_path, tmp, size)
        except ftplib.Error as err:
            if is_no_space(err):
                self._delete_quiet(tmp)
                raise FtpNoSpace(f"no space on the FTP server for {remote}: {err}",
                                 reply=reply_of(err)) from err
            raise
        self._known_dirs.add(kind)  # a STOR worked there: the directory exists
        # 2. The server's size of the .tmp must be what we sent: a "226" alone does not prove
        #    the file arrived whole (a lossy link, a careless server). This is the one size
        #    check of the upload: the rename below does not change the size.
        #    SIZE goes with RNFR in one round trip (RNFR alone changes nothing: a DELE after
        #    it, on a mismatch, makes the server forget it).
        got, renaming = self._size_then_rnfr(tmp)
        if got != size:
            self._delete_quiet(tmp)
            raise SizeMismatch(f"{tmp}: server has {got} bytes, sent {size}")
        # 3. Only a complete file gets the real name.
        try:
            if renaming:
                self._ftp.voidcmd("RNTO " + remote)
            else:
                self._rename(tmp, remote)
        except ftplib.error_perm:
            # Some servers refuse to rename over an existing file: one left by an earlier try
            # whose end we did not see, the same file (the same size). Remove it and rename
            # once more; a different file under that name is never replaced.
            there = self._remote_size(remote)
            if there != size:
                raise
            self._delete_quiet(remote)
            self._rename(tmp, remote)

    def _size_then_rnfr(self, tmp: str) -> tuple[int | None, bool]:
        """The server's size of ``tmp``, and whether an RNFR of it is pending (pipelined)."""
        if self._has_size is False:
            return self._remote_size(tmp), False
        size_reply, rnfr_reply = self._pipeline(["SIZE " + tmp, "RNFR " + tmp])
        if isinstance(size_reply, ftplib.Error):
            if reply_code(size_reply) in _UNSUPPORTED:
                self._has_size = False
                return self._remote_size(tmp), False   # RNFR forgotten: renamed afresh
            return None, False
        self._has_size = True
        try:
            got = int(size_reply[3:].strip())
        except ValueError:
            got = None
        pending = isinstance(rnfr_reply, str) and rnfr_reply.startswith("3")
        return got, pending

    def _stor_tmp(self, kind: str, local_path: Path, tmp: str, size: int) -> None:
        """STOR ``tmp``; if the server refuses it, find out why (at most once per try)."""
        try:
            self._stor(local_path, tmp, size)
            return
        except ftplib.error_perm as err:
            if is_no_space(err) or reply_code(err) not in _REFUSED:
                raise
            refused = err
        # Refused: the directory may be missing. It is checked now rather than before every
        # upload (FtpDirectoryMissing if so, which is not retried).
        self._require_dir(kind)
        # The directory exists: maybe a stale .tmp from an earlier try that we may not
        # overwrite (some servers give overwriting and deleting separate rights). Remove it
        # and store once more, within this same try; if it cannot be removed either, the
        # refusal stands.
        try:
            self._ftp.delete(tmp)
        except ftplib.error_perm:
            raise refused from None
        self._stor(local_path, tmp, size)

    def _stor(self, local_path: Path, remote: str, size: int) -> None:
        # Why not ftputil's FTPHost.upload(): ftputil 5.2's FTPFile.close() waits only
        # _close_timeout = 5 s for the server's final reply and silently ignores "timed out".
        # On a slow link the tail of the file is still in the socket buffers then, the session
        # is torn down and the server keeps a truncated file while upload() reports success.
        # We STOR with ftplib and wait for the final reply for the normal timeout plus the time
        # the whole file could take at MIN_LINK_RATE (the size check then catches anything else).
        ftp = self._ftp
        ftp.voidcmd("TYPE I")  # sent once per session: the session never leaves binary mode
        with open(local_path, "rb") as fh:
            conn = ftp.transfercmd("STOR " + remote)
            data_error = None
            try:
                while chunk := fh.read(BLOCK):
                    conn.sendall(chunk)
                    self._stats["data_bytes_sent"] += len(chunk)
                if isinstance(conn, ssl.SSLSocket):
                    conn.unwrap()
            except OSError as err:
                data_error = err
            finally:
                conn.close()
        self._finish_transfer(data_error, self.settings.timeout + size / MIN_LINK_RATE)

    def _receive(self, cmd: str, write: Callable[[bytes], object],
                 limit: int | None = None) -> int:
        """Run a transfer from the server (RETR, MLSD) in binary mode, passing the data to
        ``write``; returns the byte count once the server confirmed the end. More than
        ``limit`` bytes: the transfer is cut (SizeMismatch), the excess never written."""
        ftp = self._ftp
        ftp.voidcmd("TYPE I")  # cached: no command once the session is binary
        received = 0
        conn = ftp.transfercmd(cmd)
        data_error = None
        try:
            while data := conn.recv(BLOCK):
                received += len(data)
                self._stats["data_bytes_received"] += len(data)
                if limit is not None and received > limit:
                    conn.close()
                    self._dead = True   # the reply to the cut transfer is not worth waiting for
                    raise SizeMismatch(f"{cmd}: more than the {limit} bytes announced")
                write(data)
            if isinstance(conn, ssl.SSLSocket):
                conn.unwrap()
        except OSError as err:
            data_error = err
        finally:
            conn.close()
        self._finish_transfer(data_error, self.settings.timeout)
        return received

    def _finish_transfer(self, data_error: BaseException | None, wait: float) -> None:
        """Read the transfer's final reply; after a broken data connection, read it briefly
        (it says why, e.g. "452 ... No space left") and keep the control channel in step."""
        ftp = self._ftp
        if data_error is not None:
            wait = min(wait, BROKEN_DATA_REPLY_WAIT)
        ftp.sock.settimeout(wait)
        try:
            ftp.voidresp()
        except ftplib.Error:
            raise  # the reply explains the failure better than the socket error
        except (OSError, EOFError):
            self._dead = True
            if data_error is not None:
                raise data_error from None
            raise
        finally:
            if ftp.sock is not None:
                ftp.sock.settimeout(self.settings.timeout)
        if data_error is not None:
            raise data_error

    def _rename(self, src: str, dst: str) -> None:
        resp = self._ftp.sendcmd("RNFR " + src)
        if not resp.startswith("3"):
            raise ftplib.error_reply(resp)
        self._ftp.voidcmd("RNTO " + dst)

    def _delete_quiet(self, path: str) -> None:
        try:
            self._ftp.delete(path)
        except ftplib.error_perm:
            pass

    # ---------------------------------------------------------------- download
    def download(self, kind: str, remote_name: str, local_path: str | os.PathLike,
                 tries: int = 3, on_retry: RetryCallback | None = None,
                 max_bytes: int | None = None) -> tuple[int, float | None]:
        """Fetch a file to ``local_path`` atomically; returns the server's (size, mtime).

        The data goes to a temp file beside ``local_path``; its size must equal the size the
        server announced; it is fsynced and renamed over ``local_path`` (and the directory
        fsynced). FtpFileMissing if the file is not on the server, FtpDirectoryMissing if its
        directory is not; FtpTransferError after ``tries`` failed tries (``on_retry`` as for
        upload). ``local_path`` is untouched on failure. ``max_bytes``: a larger file is refused
        (FtpTooLarge) before it is fetched, and a transfer is cut once it passes the size
        announced.
        """
        local_path = Path(local_path)
        path = _join(self.settings.dir(kind), remote_name)
        tries = max(1, tries)
        last: BaseException | None = None
        for attempt in range(1, tries + 1):
            try:
                self._ensure()
                # The announced size, for the size check of what arrives.
                facts = self._file_facts(path)
                if facts is None:
                    self._require_dir(kind)  # FtpDirectoryMissing if the dir is the problem
                    raise FtpFileMissing(kind, path, self._last_missing_reply)
                self._known_dirs.add(kind)
                if max_bytes is not None and facts[0] > max_bytes:
                    raise FtpTooLarge(kind, path, facts[0], max_bytes)
                self._retr(path, local_path, facts[0])
                self._stats["downloads"] += 1
                return facts
            except FtpTransferError as err:
                last = err.error or err
            except (SizeMismatch,) + ftplib.all_errors as err:
                self._failed(err)
                last = err
            self._stats["failed_tries"] += 1
            if on_retry is not None:
                on_retry(attempt, tries, last)
        raise FtpTransferError(
            f"download of {remote_name} from {self.settings.dir(kind)} failed after {tries} "
            f"tries: {describe(last)}", name=remote_name, attempts=tries, error=last) from last

    def _retr(self, remote: str, local_path: Path, expected: int) -> None:
        local_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=local_path.parent, prefix=f".{local_path.name}.",
                                        suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                received = self._receive("RETR " + remote, out.write,
                                         limit=expected if expected >= 0 else None)
                out.flush()
                os.fsync(out.fileno())
            if expected >= 0 and received != expected:
                raise SizeMismatch(f"{remote}: received {received} bytes, server announced "
                                    f"{expected}")
            os.replace(tmp_name, local_path)
            tmp_name = None
            fsync_dir(local_path.parent)
        finally:
            if tmp_name is not None:
                try:
                    os.unlink(tmp_name)
                except FileNotFoundError:
                    pass

    # ------------------------------------------------------------ delete/rename
    def delete(self, kind: str, name: str, missing_ok: bool = False) -> bool:
        """Remove a remote file. False if it was not there and ``missing_ok``; else
        FtpFileMissing (FtpDirectoryMissing if its directory is missing). A refusal (e.g. no
        delete right) is FtpTransferError."""
        path = _join(self.settings.dir(kind), name)

        def dele():
            ftp = self._ensure()
            try:
                ftp.delete(path)
            except ftplib.error_perm as err:
                if self._file_facts(path) is None:
                    self._require_dir(kind)
                    if missing_ok:
                        return False
                    raise FtpFileMissing(kind, path, reply_of(err)) from err
                raise
            self._known_dirs.add(kind)
            return True

        return self._op(f"delete {path}", dele)

    def rename(self, kind: str, old: str, new: str) -> None:
        """Rename a file inside ``kind``'s directory (over ``new`` if the server allows)."""
        directory = self.settings.dir(kind)
        src, dst = _join(directory, old), _join(directory, new)

        def ren():
            ftp = self._ensure()
            try:
                ftp.rename(src, dst)
            except ftplib.error_perm as err:
                if reply_code(err) == "550" and self._file_facts(src) is None:
                    self._require_dir(kind)
                    raise FtpFileMissing(kind, src, reply_of(err)) from err
                raise
            self._known_dirs.add(kind)

        self._op(f"rename {src} to {dst}", ren)

    # ---------------------------------------------------------------- plumbing
    def _op(self, what: str, fn, *args):
        """Run one non-retried operation; map low-level errors to FtpTransferError."""
        try:
            return fn(*args)
        except FtpError:
            raise
        except ftplib.all_errors as err:
            self._failed(err)
            raise FtpTransferError(f"FTP {what} failed: {describe(err)}", error=err) from err


class _NotSupported(Exception):
    pass
