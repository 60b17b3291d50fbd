"""Real Debian FTP daemons (vsftpd, proftpd) for tests: started on loopback, in the foreground.

Not a test file: helpers for fixtures. ``tests/setup/system.sh`` (run by ``make test``) unpacks
the daemons into ``.venv/debian/`` and creates the login account; the daemons run as root (as
in CI) and drop privileges to that account for each session.

    cert, key, fingerprint = self_signed_cert(tmp_path)          # CN=localhost, no SAN
    with FtpDaemon("vsftpd", cert=cert, key=key) as srv:         # explicit FTPS required
        FtpSettings(**srv.client_settings(tls_verify=False))
        srv.path("/DATA/x.csv")                                  # the file on disk
        srv.commands()                                           # what it received, in order
        srv.kill()                                               # SIGKILL, sessions included

The served tree holds ``CONFIG DEF DATA ALARM CMD LOG BIN``. With ``chroot=True`` (default) the
client's ``/`` is :attr:`FtpDaemon.root`, so the directories are ``/DATA`` etc.; with
``chroot=False`` the session starts in :attr:`FtpDaemon.home` (a directory somewhere on the real
file system) and the directories are reached by relative paths (``DATA``).

vsftpd has no MLST/MLSD (``500 Unknown command.``); proftpd has them (mod_facts). A daemon that
cannot start raises RuntimeError with its log (:meth:`FtpDaemon.log`).
"""
from __future__ import annotations

import hashlib
import os
import pwd
import random
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEBIAN = REPO / ".venv" / "debian"          # where tests/setup/system.sh unpacks the daemons
#: The account the daemons log in (created by tests/setup/system.sh, which repeats these).
FTP_USER = "ticgw-ftp"
FTP_PASSWORD = "ticgw-ftp-test"
#: vsftpd's PAM service (file written by tests/setup/system.sh).
PAM_SERVICE = "ticgw-ftp"

KINDS = ("vsftpd", "proftpd")
DIRS = ("CONFIG", "DEF", "DATA", "ALARM", "CMD", "LOG", "BIN")
SETUP_HINT = "run `sudo bash tests/setup/system.sh` (what `make test` does first)"


# ------------------------------------------------------------------------ certificates
def self_signed_cert(directory: str | os.PathLike, cn: str = "localhost",
                     san: bool = False) -> tuple[Path, Path, str]:
    """A self-signed RSA certificate made with the ``openssl`` command: the host name only in
    the subject's CN, or also in a subjectAltName with ``san=True``.

    Returns (cert_path, key_path, sha256 fingerprint of the certificate's DER, lower-case hex
    without colons). The files are named after ``cn`` (and ``-san``) inside ``directory``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stem = cn + ("-san" if san else "")
    cert, key = directory / f"{stem}.crt", directory / f"{stem}.key"
    cmd = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
           "-days", "365", "-keyout", str(key), "-out", str(cert)]
    if san:
        cmd += ["-addext", f"subjectAltName=DNS:{cn}"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr}")
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    return cert, key, hashlib.sha256(der).hexdigest()


# ---------------------------------------------------------------------------- helpers
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_range_free(low: int, high: int) -> bool:
    for port in range(low, high + 1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def passive_range(size: int = 16) -> tuple[int, int]:
    """A range of ``size`` ports, all free right now, outside the kernel's ephemeral range (so
    clients' own ports do not land there)."""
    for _ in range(200):
        low = random.randrange(20000, 32000 - size)
        if _port_range_free(low, low + size - 1):
            return low, low + size - 1
    raise RuntimeError("no free range of passive ports found")


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc), parents first."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
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


# ----------------------------------------------------------------------------- daemon
class FtpDaemon:
    """One vsftpd or proftpd on 127.0.0.1 (a free port), in its own temp directory.

    ``tls``: explicit FTPS required (AUTH TLS; plain logins refused), with ``cert``/``key``
    (PEM paths; see :func:`self_signed_cert`). ``tls=False``: plain FTP only.
    ``chroot``: see the module's docstring. ``pasv_ports``: (low, high), else a free range.
    ``extra``: more configuration lines, appended as they are.
    """

    def __init__(self, kind: str, *, tls: bool = True, cert: str | os.PathLike | None = None,
                 key: str | os.PathLike | None = None, chroot: bool = True,
                 pasv_ports: tuple[int, int] | None = None, extra: tuple[str, ...] = ()):
        if kind not in KINDS:
            raise ValueError(f"unknown FTP daemon {kind!r} (one of {KINDS})")
        if tls and (cert is None or key is None):
            raise ValueError("tls=True needs cert= and key=")
        self.kind = kind
        self.has_mlst = kind == "proftpd"
        self.tls, self.chroot = tls, chroot
        self.cert = Path(cert) if cert is not None else None
        self.key = Path(key) if key is not None else None
        self.pasv_ports = pasv_ports
        self.extra = tuple(extra)
        self.user, self.password = FTP_USER, FTP_PASSWORD
        self.host = "127.0.0.1"
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.dir: Path | None = None    # the temp dir: config, logs, and the served tree
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

    def log(self) -> str:
        """Everything the daemon wrote (its output and its log files), for failure messages."""
        if self.dir is None:
            return ""
        parts = []
        for f in sorted((self.dir / "run").glob("*.log")):
            try:
                text = f.read_text(errors="replace")
            except OSError:
                continue
            parts.append(f"--- {f.name}\n{text[-6000:]}")
        return "\n".join(parts)

    def commands(self) -> list[str]:
        """Every command line the daemon received so far, all sessions (PASS's argument
        hidden), from its log: for counting what a client sent."""
        if self.dir is None:
            return []
        run = self.dir / "run"
        if self.kind == "vsftpd":
            marker = '", "'
            out = []
            for line in _read_lines(run / "vsftpd.log"):
                if "] FTP command: Client " in line and marker in line:
                    out.append(line.split(marker, 1)[1].rstrip('"'))
            return out
        return _read_lines(run / "commands.log")

    def _started(self) -> None:
        if self.files is None:
            raise RuntimeError("FtpDaemon not started")

    # ------------------------------------------------------------------ life
    def __enter__(self) -> "FtpDaemon":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout: float = 10.0) -> "FtpDaemon":
        """Start the daemon; returns once it answers ``220`` (RuntimeError with its log if not)."""
        binary = DEBIAN / "usr" / "sbin" / self.kind
        if not binary.exists():
            raise RuntimeError(f"{binary} is missing: {SETUP_HINT}")
        if os.geteuid() != 0:
            raise RuntimeError(f"{self.kind} must be started as root (it switches to "
                               f"{FTP_USER} for each session)")
        try:
            account = pwd.getpwnam(FTP_USER)
        except KeyError:
            raise RuntimeError(f"no user {FTP_USER}: {SETUP_HINT}") from None
        self._prepare(account)
        last = ""
        for _ in range(3):  # the free port may be taken between the probe and the bind
            self.port = free_port()
            cmd = self._write_config(account)
            out = open(self.dir / "run" / "daemon.log", "ab")
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, cwd=self.dir / "run",
                                         start_new_session=True)
            out.close()
            last = self._wait_ready(timeout)
            if not last:
                return self
            self._end(signal.SIGKILL)
            if "in use" not in self.log().lower():
                break
        log = self.log()
        self.stop()
        raise RuntimeError(f"{self.kind} did not start ({last}); command {cmd}\n{log}")

    def _prepare(self, account) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"ticgw-{self.kind}-"))
        self.dir.chmod(0o755)  # the session user walks through it without chroot
        (self.dir / "run").mkdir(mode=0o755)    # config, logs, pid: root's
        (self.dir / "empty").mkdir(mode=0o755)  # vsftpd's secure_chroot_dir: empty, root's
        self.files = self.dir / "files"
        self.files.mkdir()
        for d in DIRS:
            (self.files / d).mkdir()
        for p in [self.files, *self.files.iterdir()]:
            os.chown(p, account.pw_uid, account.pw_gid)
            p.chmod(0o755)
        if self.pasv_ports is None:
            self.pasv_ports = passive_range()

    def _write_config(self, account) -> list[str]:
        run = self.dir / "run"
        conf = run / f"{self.kind}.conf"
        lines = self._vsftpd_conf() if self.kind == "vsftpd" else self._proftpd_conf(account)
        conf.write_text("\n".join(lines + list(self.extra)) + "\n")
        conf.chmod(0o600)
        binary = str(DEBIAN / "usr" / "sbin" / self.kind)
        if self.kind == "vsftpd":
            return [binary, str(conf)]
        return [binary, "-n", "-c", str(conf)]

    def _vsftpd_conf(self) -> list[str]:
        run = self.dir / "run"
        low, high = self.pasv_ports
        lines = [
            "listen=YES", "listen_ipv6=NO", f"listen_address={self.host}",
            f"listen_port={self.port}", "background=NO",
            "seccomp_sandbox=NO",                  # its seccomp filter fails in containers
            "anonymous_enable=NO", "local_enable=YES", "write_enable=YES", "local_umask=022",
            f"pam_service_name={PAM_SERVICE}", "userlist_enable=NO", "tcp_wrappers=NO",
            f"secure_chroot_dir={self.dir / 'empty'}",
            f"local_root={self.files}",
            f"chroot_local_user={'YES' if self.chroot else 'NO'}", "allow_writeable_chroot=YES",
            "pasv_enable=YES", f"pasv_min_port={low}", f"pasv_max_port={high}",
            "delay_failed_login=0",
            "syslog_enable=NO", "xferlog_enable=YES", "xferlog_std_format=NO",
            "log_ftp_protocol=YES", f"vsftpd_log_file={run / 'vsftpd.log'}",
        ]
        if self.tls:
            lines += [
                "ssl_enable=YES", f"rsa_cert_file={self.cert}",
                f"rsa_private_key_file={self.key}", "allow_anon_ssl=NO",
                "force_local_logins_ssl=YES", "force_local_data_ssl=YES",
                "require_ssl_reuse=YES",       # the default, said out loud
                "ssl_ciphers=HIGH",            # vsftpd 3.0.3's default (DES-CBC3-SHA) is gone
            ]
        else:
            lines.append("ssl_enable=NO")
        return lines

    def _proftpd_conf(self, account) -> list[str]:
        run = self.dir / "run"
        low, high = self.pasv_ports
        lines = [
            "ServerType standalone", 'ServerName "ticgw test proftpd"',
            f"Port {self.port}", f"DefaultAddress {self.host}", "SocketBindTight on",
            "UseIPv6 off", "UseReverseDNS off",
            "User nobody", "Group nogroup",        # the daemon's own identity between sessions
            f"PidFile {run / 'proftpd.pid'}", f"ScoreboardFile {run / 'proftpd.scoreboard'}",
            "DelayEngine off", "WtmpLog off",
            f"SystemLog {run / 'proftpd.log'}", f"TransferLog {run / 'xfer.log'}",
            # Every command received, one a line (see commands()).
            'LogFormat ticgw_cmd "%m %J"', f"ExtendedLog {run / 'commands.log'} ALL ticgw_cmd",
            f"ModulePath {DEBIAN / 'usr' / 'lib' / 'proftpd'}",
            # Logins: the Unix account (shadow password), no PAM, no shell or ftpusers check.
            "AuthOrder mod_auth_unix.c", "AuthPAM off", "RequireValidShell off",
            "UseFtpUsers off",
            f"PassivePorts {low} {high}",
            "Umask 022", "AllowOverwrite on", "MaxInstances 50",
        ]
        lines.append(f"DefaultRoot {self.files}" if self.chroot
                     else f"DefaultChdir {self.files}")
        if self.tls:
            lines += [
                "LoadModule mod_tls.c",
                "<IfModule mod_tls.c>",
                "  TLSEngine on", "  TLSRequired on", f"  TLSLog {run / 'tls.log'}",
                "  TLSProtocol TLSv1.2 TLSv1.3",
                f"  TLSRSACertificateFile {self.cert}",
                f"  TLSRSACertificateKeyFile {self.key}",
                "  TLSVerifyClient off",
                # TLSOptions NoSessionReuseRequired is NOT set: data connections must resume
                # the control connection's TLS session (proftpd's default), like vsftpd's.
                "</IfModule>",
            ]
        return lines

    def _wait_ready(self, timeout: float) -> str:
        """'' once the port answers 220; else why not."""
        deadline = time.monotonic() + timeout
        why = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return f"exited with code {self.proc.returncode}"
            try:
                with socket.create_connection((self.host, self.port), timeout=2) as s:
                    s.settimeout(2)
                    greeting = s.makefile("rb").readline().decode("utf-8", "replace")
                    s.sendall(b"QUIT\r\n")
                if greeting.startswith("220"):
                    return ""
                why = f"greeting {greeting.strip()!r}"
            except OSError as err:
                why = str(err)
            time.sleep(0.05)
        return f"not ready within {timeout:.0f} s: {why}"

    def _end(self, sig: int) -> None:
        """Signal the daemon and every process it forked (sessions), then reap it."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            _signal_all(_tree(proc.pid), sig)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                _signal_all(_tree(proc.pid), signal.SIGKILL)
                proc.wait(5)
        # Sessions that outlived the master are still in its process group.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def kill(self) -> None:
        """SIGKILL the daemon and its sessions at once (a server dying mid-transfer). The temp
        directory stays, for looking at what arrived; :meth:`stop` removes it."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        """Stop the daemon and its sessions and remove its temp directory. Safe to call twice."""
        self._end(signal.SIGTERM)
        self.proc = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = self.files = None

    def __repr__(self) -> str:
        return (f"<FtpDaemon {self.kind} {self.host}:{self.port} tls={self.tls} "
                f"chroot={self.chroot}>")
