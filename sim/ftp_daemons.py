"""vsftpd and proftpd from Debian on loopback, plain FTP, chrooted: the benchmark's real servers.

    with LoopbackFtpd("proftpd") as srv:     # RuntimeError if it cannot start (with its log)
        ... log in on srv.host:srv.port as srv.user / srv.password; /DATA etc. exist
        srv.commands()                      # every command line received so far, in order

Nothing is installed here. ``tests/setup/system.sh`` (run by ``make test`` and ``make bench``)
unpacks both packages under ``.venv/debian/`` (apt cannot install both: they conflict), creates
the login account and vsftpd's PAM service; :func:`unavailable` says what is missing. The
daemons must be started as root: they switch to the login account for each session.

Each daemon runs in the foreground, in a process group of its own (sessions included), in a
temp directory holding its configuration, its logs and the served tree; the client's ``/`` is
that tree, which holds ``CONFIG DEF DATA ALARM CMD LOG BIN`` (the gateway's default
directories). Passive ports are left to the kernel. vsftpd has no MLST/MLSD; proftpd has them.
``tests/ftpd.py`` is the tests' richer launcher (TLS, no chroot, fault hooks); this one is the
smallest that serves a connection.
"""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

#: Where tests/setup/system.sh unpacks the two packages.
DEBIAN = Path(__file__).resolve().parents[1] / ".venv" / "debian"
#: The login account and vsftpd's PAM service, made by tests/setup/system.sh (same values).
LOGIN, PASSWORD, PAM_SERVICE = "ticgw-ftp", "ticgw-ftp-test", "ticgw-ftp"
KINDS = ("vsftpd", "proftpd")
DIRS = ("CONFIG", "DEF", "DATA", "ALARM", "CMD", "LOG", "BIN")
SETUP = "run `sudo bash tests/setup/system.sh` (make test and make bench do)"


def binary(kind: str) -> Path:
    return DEBIAN / "usr" / "sbin" / kind


def unavailable(kind: str) -> str | None:
    """None if ``kind`` can be started here, else why not (one line)."""
    if kind not in KINDS:
        return "unknown FTP daemon %r" % kind
    if os.geteuid() != 0:
        return "not root (the daemon switches to the login account per session)"
    if not binary(kind).exists():
        return "%s is missing: %s" % (binary(kind), SETUP)
    try:
        pwd.getpwnam(LOGIN)
    except KeyError:
        return "no account %s: %s" % (LOGIN, SETUP)
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


class LoopbackFtpd:
    """One vsftpd or proftpd on 127.0.0.1, a port the kernel found free, plain FTP, chrooted."""

    def __init__(self, kind: str):
        if kind not in KINDS:
            raise ValueError("unknown FTP daemon %r (one of %s)" % (kind, ", ".join(KINDS)))
        self.kind = kind
        self.has_mlst = kind == "proftpd"
        self.host, self.port = "127.0.0.1", 0
        self.user, self.password = LOGIN, PASSWORD
        self.workdir: Path | None = None   # temp dir: conf, logs, and the served tree
        self.tree: Path | None = None      # the client's "/"
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> "LoopbackFtpd":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ start and stop
    def start(self, timeout: float = 10.0) -> None:
        why = unavailable(self.kind)
        if why:
            raise RuntimeError("%s cannot run: %s" % (self.kind, why))
        owner = pwd.getpwnam(LOGIN)
        self.workdir = Path(tempfile.mkdtemp(prefix="ticgw-bench-%s-" % self.kind))
        self.tree = self.workdir / "tree"
        for d in (self.workdir, self.workdir / "empty", self.tree):
            d.mkdir(exist_ok=True)
            d.chmod(0o755)
        for name in DIRS:
            (self.tree / name).mkdir()
        for d in (self.tree, *(self.tree / name for name in DIRS)):
            os.chown(d, owner.pw_uid, owner.pw_gid)
        failure = ""
        for _ in range(3):   # a port found free may be taken before the daemon binds it
            self.port = _unused_port()
            conf = self.workdir / ("%s.conf" % self.kind)
            conf.write_text("\n".join(self._conf()) + "\n")
            conf.chmod(0o600)
            argv = [str(binary(self.kind)), str(conf)] if self.kind == "vsftpd" else \
                [str(binary(self.kind)), "--nodaemon", "--config", str(conf)]
            with open(self.workdir / "output.log", "ab") as out:
                self._proc = subprocess.Popen(argv, cwd=self.workdir, stdin=subprocess.DEVNULL,
                                              stdout=out, stderr=subprocess.STDOUT,
                                              start_new_session=True)
            failure = self._greeted(timeout)
            if not failure:
                return
            self._kill_group()
        logs = self.logs()
        self.stop()
        raise RuntimeError("%s did not start: %s\n%s" % (self.kind, failure, logs))

    def stop(self) -> None:
        """The daemon and its sessions ended, the temp directory removed; twice is harmless."""
        self._kill_group()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir = self.tree = None

    def _kill_group(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        # The daemon leads its own process group (start_new_session); its session processes
        # are in it too. TERM first, so that it can clean up, then KILL for what is left.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                continue
        if proc.poll() is None:
            proc.kill()
            proc.wait(3)

    def _greeted(self, timeout: float) -> str:
        """'' once the port greets with 220, else what went wrong."""
        end = time.monotonic() + timeout
        seen = "no answer"
        while time.monotonic() < end:
            if self._proc.poll() is not None:
                return "exited with status %d" % self._proc.returncode
            try:
                with socket.create_connection((self.host, self.port), timeout=2) as s:
                    s.settimeout(2)
                    first = s.recv(512).decode("latin-1")
                    s.sendall(b"QUIT\r\n")
                if first.startswith("220"):
                    return ""
                seen = "greeting %r" % first.strip()
            except OSError as e:
                seen = str(e)
            time.sleep(0.05)
        return "no 220 within %.0f s (%s)" % (timeout, seen)

    # ------------------------------------------------------------------ configuration
    def _conf(self) -> list[str]:
        w = self.workdir
        if self.kind == "vsftpd":
            return [
                "listen=YES", "listen_ipv6=NO", "background=NO",
                "listen_address=%s" % self.host, "listen_port=%d" % self.port,
                # vsftpd's seccomp sandbox is refused inside containers
                "seccomp_sandbox=NO",
                "anonymous_enable=NO", "local_enable=YES", "write_enable=YES",
                "local_umask=022", "pam_service_name=%s" % PAM_SERVICE,
                "chroot_local_user=YES", "allow_writeable_chroot=YES",
                "local_root=%s" % self.tree, "secure_chroot_dir=%s" % (w / "empty"),
                "pasv_enable=YES", "ssl_enable=NO",
                # Every command line to vsftpd.log (needs xferlog on, in vsftpd's own format).
                "syslog_enable=NO", "xferlog_enable=YES", "xferlog_std_format=NO",
                "log_ftp_protocol=YES", "vsftpd_log_file=%s" % (w / "vsftpd.log"),
            ]
        return [
            "ServerType standalone", 'ServerName "ticgw bench"',
            "DefaultAddress %s" % self.host, "Port %d" % self.port, "SocketBindTight on",
            "UseIPv6 off", "UseReverseDNS off", "DelayEngine off", "WtmpLog off",
            "User nobody", "Group nogroup",
            "PidFile %s" % (w / "proftpd.pid"), "ScoreboardFile %s" % (w / "proftpd.score"),
            "SystemLog %s" % (w / "proftpd.log"), "TransferLog %s" % (w / "xfer.log"),
            # Logins against the Unix account only: no PAM, no shell or ftpusers checks.
            "AuthOrder mod_auth_unix.c", "RequireValidShell off", "UseFtpUsers off",
            "DefaultRoot %s" % self.tree, "Umask 022", "AllowOverwrite on",
            # Every command to commands.log, one a line: the verb and its argument.
            'LogFormat bench_cmd "%m %J"', "ExtendedLog %s ALL bench_cmd" % (w / "commands.log"),
        ]

    # ------------------------------------------------------------------ what it saw
    def commands(self) -> list[str]:
        """Every command line received so far (all sessions, in order), from the daemon's log."""
        if self.workdir is None:
            return []
        if self.kind == "proftpd":
            return _lines(self.workdir / "commands.log")
        # vsftpd: '... FTP command: Client "127.0.0.1", "STOR /DATA/x"'
        out = []
        for line in _lines(self.workdir / "vsftpd.log"):
            head, sep, rest = line.partition("FTP command: ")
            if sep:
                out.append(rest.split('", "', 1)[-1].rstrip().rstrip('"'))
        return out

    def logs(self) -> str:
        """The tail of each of its log files, for a failure message."""
        if self.workdir is None:
            return ""
        return "\n".join("--- %s\n%s" % (p.name, "\n".join(_lines(p)[-40:]))
                         for p in sorted(self.workdir.glob("*.log")))


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
