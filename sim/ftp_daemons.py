"""Debian's vsftpd and proftpd on loopback, in the foreground: the real servers of the tests and
of the benchmark.

    with FtpDaemon("proftpd") as srv:                        # plain FTP, chrooted
        ... log in on srv.host:srv.port as srv.user / srv.password; /DATA etc. exist
    with FtpDaemon("vsftpd", tls=True, cert=crt, key=key, chroot=False) as srv:
        FtpSettings(**srv.client_settings(tls_verify=False))  # the uplink's settings for it
        srv.path("DATA/x.csv")                              # the file on disk
        srv.commands()                                      # every command received, in order
        srv.kill()                                          # SIGKILL, sessions included
        srv.restart()                                       # back on the same files, new port

A daemon that cannot start raises RuntimeError with its log (:meth:`FtpDaemon.log`).

Nothing is installed here. ``tests/setup/system.sh`` (run by ``make test`` and ``make bench``)
unpacks both packages under ``.venv/debian/`` (apt cannot install both: they conflict), creates
the login account and vsftpd's PAM service; :func:`unavailable` says what is missing. The
daemons must be started as root: they switch to the login account for each session.

Each daemon runs in a process group of its own (sessions included), in a temp directory: ``run/``
holds its configuration and logs, ``files/`` the served tree, which holds ``CONFIG DEF DATA ALARM
CMD LOG BIN`` (the gateway's default directories). With ``chroot=True`` (default) the client's
``/`` is :attr:`FtpDaemon.root`, so the directories are ``/DATA`` etc.; with ``chroot=False`` the
session starts in :attr:`FtpDaemon.home` (a directory somewhere on the real file system) and the
directories are reached by relative paths (``DATA``). The listening port is one the kernel found
free, the passive ports are left to the kernel. vsftpd has no MLST/MLSD (``500 Unknown
command.``); proftpd has them (mod_facts).
"""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

#: Where tests/setup/system.sh unpacks the two packages.
DEBIAN = Path(__file__).resolve().parents[1] / ".venv" / "debian"
#: The account the daemons log in, and vsftpd's PAM service: made by tests/setup/system.sh.
FTP_USER, FTP_PASSWORD, PAM_SERVICE = "ticgw-ftp", "ticgw-ftp-test", "ticgw-ftp"
KINDS = ("vsftpd", "proftpd")
DIRS = ("CONFIG", "DEF", "DATA", "ALARM", "CMD", "LOG", "BIN")
SETUP = "run `sudo bash tests/setup/system.sh` (make test and make bench do)"
#: id-ecPublicKey (OID 1.2.840.10045.2.1) in DER: in the public key info of an EC certificate.
EC_KEY_OID = bytes.fromhex("06072a8648ce3d0201")


def binary(kind: str) -> Path:
    return DEBIAN / "usr" / "sbin" / kind


def unavailable(kind: str) -> str | None:
    """None if ``kind`` can be started here, else why not (one line)."""
    if kind not in KINDS:
        return "unknown FTP daemon %r" % kind
    if os.geteuid() != 0:
        return "not root (the daemon switches to %s for each session)" % FTP_USER
    if not binary(kind).exists():
        return "%s is missing: %s" % (binary(kind), SETUP)
    try:
        pwd.getpwnam(FTP_USER)
    except KeyError:
        return "no account %s: %s" % (FTP_USER, SETUP)
    if kind == "vsftpd" and not Path("/etc/pam.d", PAM_SERVICE).exists():
        return "no PAM service /etc/pam.d/%s: %s" % (PAM_SERVICE, SETUP)
    return None


def version(kind: str) -> str:
    """The daemon's own version number, '' if it does not say."""
    # vsftpd -v writes to its file descriptor 0, so stdin is one end of a socket pair.
    mine, theirs = socket.socketpair()
    try:
        p = subprocess.run([str(binary(kind)), "-v"], stdin=theirs, capture_output=True,
                           text=True, timeout=5)
        theirs.close()
        mine.settimeout(0.5)
        try:
            said = mine.recv(4096).decode("utf-8", "replace")
        except OSError:
            said = ""
    except (OSError, subprocess.SubprocessError):
        return ""
    finally:
        theirs.close()
        mine.close()
    words = (said + " " + p.stdout + " " + p.stderr).split()
    # "vsftpd: version 3.0.3", "ProFTPD Version 1.3.8 ...": the word after "version"
    for i, w in enumerate(words[:-1]):
        if w.lower() == "version":
            return words[i + 1]
    return ""


class FtpDaemon:
    """One vsftpd or proftpd on 127.0.0.1, on a port the kernel found free, in its own temp
    directory.

    ``tls=True``: explicit FTPS required (AUTH TLS; plain logins refused), with ``cert`` and
    ``key`` (PEM paths); ``tls=False`` (default): plain FTP only. ``chroot``: see the module's
    docstring. ``extra``: more configuration lines, appended as they are.
    """

    def __init__(self, kind: str, *, tls: bool = False, cert: str | os.PathLike | None = None,
                 key: str | os.PathLike | None = None, chroot: bool = True,
                 extra: tuple[str, ...] = ()):
        if kind not in KINDS:
            raise ValueError("unknown FTP daemon %r (one of %s)" % (kind, ", ".join(KINDS)))
        if tls and (cert is None or key is None):
            raise ValueError("tls=True needs cert= and key=")
        self.kind = kind
        self.has_mlst = kind == "proftpd"
        self.tls, self.chroot = tls, chroot
        self.cert = Path(cert) if cert is not None else None
        self.key = Path(key) if key is not None else None
        self.extra = tuple(extra)
        self.user, self.password = FTP_USER, FTP_PASSWORD
        self.host, self.port = "127.0.0.1", 0
        self.proc: subprocess.Popen | None = None
        self.dir: Path | None = None    # the temp dir: run/ (config, logs) and files/
        self.files: Path | None = None  # the served tree (holds CONFIG DEF DATA ...)

    # ------------------------------------------------------------------ paths
    @property
    def root(self) -> Path:
        """The directory on disk that the client's ``/`` is (``/`` itself without chroot)."""
        self._started()
        return self.files if self.chroot else Path("/")

    @property
    def home(self) -> Path:
        """The directory on disk where a session starts (where relative paths begin)."""
        self._started()
        return self.files

    def path(self, remote: str) -> Path:
        """The file on disk for a client's path: absolute (``/DATA/x``) or relative (``DATA/x``)."""
        if remote.startswith("/"):
            return self.root / remote.lstrip("/")
        return self.home / remote

    def dirs(self) -> dict[str, str]:
        """The uplink's ``FtpSettings.dirs`` for this server: ``/DATA`` with chroot, else
        ``DATA``."""
        return {d: ("/" + d if self.chroot else d) for d in DIRS}

    def client_settings(self, **overrides) -> dict:
        """Keyword arguments of the uplink's ``FtpSettings`` to reach this server."""
        values = dict(host=self.host, port=self.port, login=self.user, password=self.password,
                      tls=self.tls, dirs=self.dirs(), timeout=10.0)
        values.update(overrides)
        return values

    def _started(self) -> None:
        if self.files is None:
            raise RuntimeError("FtpDaemon not started")

    # ------------------------------------------------------------------ what it saw
    def commands(self) -> list[str]:
        """Every command line the daemon received so far, all sessions, in order (proftpd
        hides PASS's argument), from its log: for counting what a client sent."""
        if self.dir is None:
            return []
        run = self.dir / "run"
        if self.kind == "proftpd":
            return _lines(run / "commands.log")
        # vsftpd: '... [pid 12] [ticgw-ftp] FTP command: Client "127.0.0.1", "STOR /DATA/x"'
        out = []
        for line in _lines(run / "vsftpd.log"):
            _, found, rest = line.partition("] FTP command: Client ")
            if found and '", "' in rest:
                out.append(rest.split('", "', 1)[1].removesuffix('"'))
        return out

    def log(self) -> str:
        """The end of everything the daemon wrote (its output and its log files), for failure
        messages."""
        if self.dir is None:
            return ""
        return "\n".join("--- %s\n%s" % (p.name, "\n".join(_lines(p))[-6000:])
                         for p in sorted((self.dir / "run").glob("*.log")))

    # ------------------------------------------------------------------ life
    def __enter__(self) -> "FtpDaemon":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout: float = 10.0) -> "FtpDaemon":
        """Make the temp directory and start the daemon; returns once it greets with ``220``
        (RuntimeError with its log if not)."""
        if self.dir is not None:
            raise RuntimeError("%r already started (restart() starts it again)" % self)
        why = unavailable(self.kind)
        if why:
            raise RuntimeError("%s cannot run: %s" % (self.kind, why))
        self._prepare()
        return self._launch(timeout)

    def restart(self, *, extra: tuple[str, ...] | None = None,
                timeout: float = 10.0) -> "FtpDaemon":
        """Start the daemon again on the same served tree, with what a killed one left there
        (a partial upload included), as a server that comes back; on a new free port.
        ``extra``: replaces the additional configuration lines (None: the same ones)."""
        self._started()
        self._end(signal.SIGTERM)
        if extra is not None:
            self.extra = tuple(extra)
        return self._launch(timeout)

    def kill(self) -> None:
        """SIGKILL the daemon and its sessions at once (a server dying mid-transfer). The temp
        directory stays, for looking at what arrived and for :meth:`restart`; :meth:`stop`
        removes it."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        """Stop the daemon and its sessions and remove its temp directory. Safe to call twice."""
        self._end(signal.SIGTERM)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = self.files = None

    def _prepare(self) -> None:
        account = pwd.getpwnam(FTP_USER)
        self.dir = Path(tempfile.mkdtemp(prefix="ticgw-%s-" % self.kind))
        self.dir.chmod(0o755)  # the session user walks through it without chroot
        (self.dir / "run").mkdir(mode=0o755)    # configuration, logs, pid: root's
        (self.dir / "empty").mkdir(mode=0o755)  # vsftpd's secure_chroot_dir: empty, root's
        self.files = self.dir / "files"
        self.files.mkdir()
        for d in DIRS:
            (self.files / d).mkdir()
        for p in (self.files, *(self.files / d for d in DIRS)):
            os.chown(p, account.pw_uid, account.pw_gid)
            p.chmod(0o755)

    def _launch(self, timeout: float) -> "FtpDaemon":
        run = self.dir / "run"
        why = ""
        for _ in range(3):   # a port found free may be taken before the daemon binds it
            self.port = _free_port()
            conf = run / ("%s.conf" % self.kind)
            conf.write_text("\n".join(self._conf() + list(self.extra)) + "\n")
            conf.chmod(0o600)
            argv = [str(binary(self.kind)), str(conf)] if self.kind == "vsftpd" else \
                [str(binary(self.kind)), "--nodaemon", "--config", str(conf)]
            with open(run / "daemon.log", "ab") as out:
                self.proc = subprocess.Popen(argv, cwd=run, stdin=subprocess.DEVNULL,
                                             stdout=out, stderr=subprocess.STDOUT,
                                             start_new_session=True)
            why = self._wait_ready(timeout)
            if not why:
                return self
            exited = self.proc.poll() is not None
            self._end(signal.SIGKILL)
            if not exited:   # it ran but did not greet: another port would not help
                break
        log = self.log()
        self.stop()
        raise RuntimeError("%s did not start (%s); command %s\n%s" % (self.kind, why, argv, log))

    def _wait_ready(self, timeout: float) -> str:
        """'' once the port greets with 220; else why not."""
        deadline = time.monotonic() + timeout
        why = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return "exited with status %d" % self.proc.returncode
            try:
                with socket.create_connection((self.host, self.port), timeout=2) as s:
                    s.settimeout(2)
                    greeting = s.makefile("rb").readline().decode("utf-8", "replace")
                    s.sendall(b"QUIT\r\n")
                if greeting.startswith("220"):
                    return ""
                why = "greeting %r" % greeting.strip()
            except OSError as err:
                why = str(err)
            time.sleep(0.05)
        return "no 220 within %.0f s: %s" % (timeout, why)

    def _end(self, sig: int) -> None:
        """Signal the daemon and every process it forked (its sessions), then reap it."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            _signal_all(_tree(proc.pid), sig)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                _signal_all(_tree(proc.pid), signal.SIGKILL)
                proc.wait(5)
        # Sessions that outlived the listener are still in its process group (start_new_session).
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    # ------------------------------------------------------------------ configuration
    def _conf(self) -> list[str]:
        run = self.dir / "run"
        if self.kind == "vsftpd":
            lines = [
                "listen=YES", "listen_ipv6=NO", "background=NO",
                "listen_address=%s" % self.host, "listen_port=%d" % self.port,
                "seccomp_sandbox=NO",                  # its seccomp filter fails in containers
                "anonymous_enable=NO", "local_enable=YES", "write_enable=YES",
                "local_umask=022", "pam_service_name=%s" % PAM_SERVICE,
                "userlist_enable=NO", "tcp_wrappers=NO", "delay_failed_login=0",
                "local_root=%s" % self.files, "secure_chroot_dir=%s" % (self.dir / "empty"),
                "chroot_local_user=%s" % ("YES" if self.chroot else "NO"),
                "allow_writeable_chroot=YES", "pasv_enable=YES",
                # Every command line to vsftpd.log (needs xferlog on, in vsftpd's own format).
                "syslog_enable=NO", "xferlog_enable=YES", "xferlog_std_format=NO",
                "log_ftp_protocol=YES", "vsftpd_log_file=%s" % (run / "vsftpd.log"),
            ]
            if not self.tls:
                return lines + ["ssl_enable=NO"]
            return lines + [
                "ssl_enable=YES", "rsa_cert_file=%s" % self.cert,
                "rsa_private_key_file=%s" % self.key, "allow_anon_ssl=NO",
                "force_local_logins_ssl=YES", "force_local_data_ssl=YES",
                "require_ssl_reuse=YES",       # the default, said out loud
                "ssl_ciphers=HIGH",            # vsftpd 3.0.3's default (DES-CBC3-SHA) is gone
            ]
        lines = [
            "ServerType standalone", 'ServerName "ticgw proftpd"',
            "DefaultAddress %s" % self.host, "Port %d" % self.port, "SocketBindTight on",
            "UseIPv6 off", "UseReverseDNS off", "DelayEngine off", "WtmpLog off",
            "User nobody", "Group nogroup",        # the daemon's own identity between sessions
            "PidFile %s" % (run / "proftpd.pid"), "ScoreboardFile %s" % (run / "proftpd.score"),
            "SystemLog %s" % (run / "proftpd.log"), "TransferLog %s" % (run / "xfer.log"),
            # Every command received, one a line: the verb and its argument (see commands()).
            'LogFormat ticgw_cmd "%m %J"', "ExtendedLog %s ALL ticgw_cmd" % (run / "commands.log"),
            "ModulePath %s" % (DEBIAN / "usr" / "lib" / "proftpd"),
            # Logins: the Unix account (shadow password), no PAM, no shell or ftpusers check.
            "AuthOrder mod_auth_unix.c", "AuthPAM off", "RequireValidShell off",
            "UseFtpUsers off", "Umask 022", "AllowOverwrite on", "MaxInstances 50",
            ("DefaultRoot %s" if self.chroot else "DefaultChdir %s") % self.files,
        ]
        if not self.tls:
            return lines
        return lines + [
            "LoadModule mod_tls.c",
            "<IfModule mod_tls.c>",
            "  TLSEngine on", "  TLSRequired on", "  TLSLog %s" % (run / "tls.log"),
            "  TLSProtocol TLSv1.2 TLSv1.3",
            # TLSRSA... or TLSEC...: proftpd takes each kind of key with its own directives.
            "  TLS%sCertificateFile %s" % (_key_kind(self.cert), self.cert),
            "  TLS%sCertificateKeyFile %s" % (_key_kind(self.cert), self.key),
            "  TLSVerifyClient off",
            # TLSOptions NoSessionReuseRequired is NOT set: data connections must resume the
            # control connection's TLS session (proftpd's default), like vsftpd's.
            "</IfModule>",
        ]

    def __repr__(self) -> str:
        return "<FtpDaemon %s %s:%d tls=%s chroot=%s>" % (self.kind, self.host, self.port,
                                                          self.tls, self.chroot)


def _key_kind(cert: Path) -> str:
    """'EC' or 'RSA': the kind of key of a PEM certificate."""
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    return "EC" if EC_KEY_OID in der else "RSA"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc), parents first."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as fh:
                # "pid (comm) state ppid ...": comm may hold spaces, so split after its ')'
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def _signal_all(pids: list[int], sig: int) -> None:
    for p in pids:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass
