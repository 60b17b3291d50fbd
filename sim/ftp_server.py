"""An in-process FTP/FTPS server for tests and the demo, with fault hooks.

``FtpTestServer`` runs pyftpdlib in a background thread on 127.0.0.1 (port 0 by default: the
kernel picks a free port, read back as ``server.port``). Its root holds the seven directories the
gateway expects (``/CONFIG /DEF /DATA /ALARM /CMD /LOG /BIN``; ``omit=`` leaves some out), one
user with full rights, and optionally explicit FTPS (``tls=True``: AUTH TLS required on the
control channel, PROT P required on the data channel; a self-signed certificate for 127.0.0.1
and localhost is generated in a temp dir, ``server.certfile`` is what a client should trust).

    with FtpTestServer() as srv:
        srv.fail_next_stor(1, "drop", after_bytes=1000)
        ...  # client on srv.host:srv.port, login srv.user / srv.password
        assert srv.path("/DATA/x.csv.gz").read_bytes() == payload

Fault hooks (all thread-safe, take effect for the next matching command):

- ``fail_next_stor(n, mode, ...)``: the next ``n`` STOR commands misbehave:
  ``"drop"`` closes the data connection after ``after_bytes`` (the file keeps that many bytes,
  reply 426); ``"truncate"`` silently keeps only ``after_bytes`` and still replies 226 (what a
  lossy link plus a careless client looks like: only a size check can tell); ``"full"`` replies
  ``code`` (552 by default, or 452) to the STOR itself; ``"enospc"`` keeps ``after_bytes`` then closes the data
  connection and replies ``452 Transfer aborted. No space left on device`` (proftpd's reply to
  a full disk; pyftpdlib's own reply to ENOSPC loses the reason: "426 None"); ``"slow"`` throttles the data channel to ``rate`` bytes/s.
- ``fail_next_retr(n, after_bytes=...)``: the next ``n`` RETR send only the first bytes of the
  file and still reply 226 (a short download only a size check can tell).
- ``fail_next_command(verb, reply, n)``: answer the next ``n`` ``verb`` commands with ``reply``
  instead of running them (e.g. ``("RNTO", "550 Rename refused.")``).
- ``drop_connection_on(verb, n)``: close the control connection when ``verb`` arrives (a link
  that dies mid-session).
- ``refuse_login``: attribute; when true every login gets ``530 Login refused by test server.``
- ``delay_replies(seconds, commands=None)``: the server waits ``seconds`` before greeting and
  before handling each command (or only the verbs in ``commands``); 0 turns it off.
- ``stop()`` / ``start()``: server down / back up on the same port.
- ``without=("MLST", "MLSD", "MDTM")``: a server that lacks these commands (as vsftpd lacks
  MLST and MLSD), absent from its FEAT.
- ``clear_faults()``.

Observations: ``commands`` (every command line received, PASS masked, in order) and
``transfers`` (``(cmd, path, completed, bytes)`` for every finished data transfer).
"""
from __future__ import annotations

import collections
import datetime
import ipaddress
import logging
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from pyftpdlib.authorizers import AuthenticationFailed, DummyAuthorizer
from pyftpdlib.handlers import DTPHandler, FTPHandler
from pyftpdlib.ioloop import IOLoop
from pyftpdlib.servers import FTPServer

KIND_DIRS = ("/CONFIG", "/DEF", "/DATA", "/ALARM", "/CMD", "/LOG", "/BIN")
STOR_MODES = ("drop", "truncate", "full", "enospc", "slow")

log = logging.getLogger(__name__)


class _Faults:
    """Fault settings shared between the test thread and the server's IO thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        with self.lock:
            self.stor: collections.deque[dict] = collections.deque()
            self.retr: collections.deque[int] = collections.deque()
            self.replies: dict[str, collections.deque[str]] = {}
            self.drops: dict[str, int] = {}
            self.refuse_login = False
            self.delay = 0.0
            self.delay_commands: frozenset[str] | None = None

    def pop_stor(self, phases: tuple[str, ...]) -> dict | None:
        with self.lock:
            if self.stor and self.stor[0]["mode"] in phases:
                return self.stor.popleft()
            return None

    def pop_retr(self) -> int | None:
        with self.lock:
            return self.retr.popleft() if self.retr else None

    def pop_reply(self, verb: str) -> str | None:
        with self.lock:
            queue = self.replies.get(verb)
            return queue.popleft() if queue else None

    def pop_drop(self, verb: str) -> bool:
        with self.lock:
            left = self.drops.get(verb, 0)
            if left:
                self.drops[verb] = left - 1
                return True
            return False

    def delay_for(self, verb: str | None) -> float:
        with self.lock:
            if self.delay <= 0:
                return 0.0
            if self.delay_commands is None or (verb is not None and verb in self.delay_commands):
                return self.delay
            return 0.0


class _FaultyWriter:
    """Wraps the file a STOR writes to: keeps only the first ``limit`` bytes."""

    def __init__(self, raw, limit: int) -> None:
        self._raw = raw
        self._limit = limit
        self.written = 0
        self.hit_limit = False

    def write(self, data: bytes) -> int:
        room = max(0, self._limit - self.written)
        if len(data) > room:
            self.hit_limit = True
            data = data[:room]
        self._raw.write(data)
        self.written += len(data)
        return len(data)

    def __getattr__(self, name):
        return getattr(self._raw, name)


class _FaultyDTP(DTPHandler):
    """Data channel that applies the STOR faults (drop, truncate, enospc, slow)."""

    faults: _Faults  # set on the per-server subclass

    def enable_receiving(self, type, cmd):  # noqa: A002 (pyftpdlib's signature)
        self._fault_rate = 0.0
        self._fault_drop = False
        self._fault_wake = None
        if cmd == "STOR":
            fault = self.faults.pop_stor(("drop", "truncate", "enospc", "slow"))
            if fault is not None:
                mode = fault["mode"]
                if mode == "slow":
                    self._fault_rate = float(fault["rate"])
                    # Small reads so the throttle is smooth rather than one big burst.
                    self.ac_in_buffer_size = max(512, min(self.ac_in_buffer_size,
                                                          int(self._fault_rate / 8)))
                else:
                    self.file_obj = _FaultyWriter(self.file_obj, fault["after_bytes"])
                    self._fault_drop = {
                        "drop": "426 Data connection closed by test server; transfer aborted.",
                        # proftpd's words for a write that hit a full disk
                        "enospc": "452 Transfer aborted. No space left on device",
                    }.get(mode)
        return super().enable_receiving(type, cmd)

    def handle_read(self):
        before = self.tot_bytes_received
        super().handle_read()
        if self._closed:
            return
        drop = getattr(self, "_fault_drop", None)
        if drop and self.file_obj.hit_limit:
            self._resp = (drop, log.info)
            self.close()
            return
        got = self.tot_bytes_received - before
        rate = getattr(self, "_fault_rate", 0.0)
        if rate and got and self.receive:
            # Stop reading for as long as these bytes "take" at the configured rate.
            self.del_channel()
            self._fault_wake = self.ioloop.call_later(got / rate, self._fault_resume,
                                                      _errback=self.handle_error)

    def handle_read_event(self):
        # DTPHandler aliases handle_read_event to its own handle_read; route through ours.
        self.handle_read()

    def _fault_resume(self):
        if not self._closed:
            self.add_channel(events=self.ioloop.READ)

    def close(self):
        wake = getattr(self, "_fault_wake", None)
        if wake is not None and not wake.cancelled:
            wake.cancel()
        super().close()


class _FaultyControl(FTPHandler):
    """Control channel with reply delays, canned replies, dropped connections, recording."""

    faults: _Faults
    recorder: "FtpTestServer"
    auth_failed_timeout = 0.05  # pyftpdlib waits 3 s before a 530 by default

    def handle(self):
        delay = self.faults.delay_for(None)
        if delay:
            self.ioloop.call_later(delay, self._delayed_greeting, _errback=self.handle_error)
        else:
            super().handle()

    def _delayed_greeting(self):
        if not self._closed:
            super().handle()

    def pre_process_command(self, line, cmd, arg):
        self.recorder.commands.append("PASS ******" if cmd == "PASS" else line)
        delay = self.faults.delay_for(cmd)
        if delay:
            self.ioloop.call_later(delay, self._delayed_command, line, cmd, arg,
                                   _errback=self.handle_error)
            return
        self._run_command(line, cmd, arg)

    def _delayed_command(self, line, cmd, arg):
        if not self._closed:
            self._run_command(line, cmd, arg)

    def _run_command(self, line, cmd, arg):
        if self.faults.pop_drop(cmd):
            self.close()
            return
        reply = self.faults.pop_reply(cmd)
        if reply is not None:
            self.respond(reply)
            return
        if cmd == "RETR" and self.authenticated:
            cut = self.faults.pop_retr()
            if cut is not None:
                self._short_retr(arg, cut)
                return
        if cmd == "STOR" and self.authenticated:
            fault = self.faults.pop_stor(("full",))
            if fault is not None:
                text = ("Insufficient storage space." if fault["code"] == 452
                        else "Exceeded storage allocation (disk full).")
                self.respond(f"{fault['code']} {text}")
                return
        super().pre_process_command(line, cmd, arg)

    def _short_retr(self, arg: str, cut: int) -> None:
        """Send only the first ``cut`` bytes of the file, then a normal 226."""
        try:
            path = self.fs.ftp2fs(arg)
            with self.fs.open(path, "rb") as fh:
                head = fh.read(cut)
        except OSError as err:
            self.respond(f"550 {err.strerror}.")
            return
        self.push_dtp_data(head, isproducer=False, cmd="RETR")

    def log_transfer(self, cmd, filename, receive, completed, elapsed, bytes):  # noqa: A002
        self.recorder.transfers.append((cmd, filename, bool(completed), bytes))
        super().log_transfer(cmd, filename, receive, completed, elapsed, bytes)


class _Authorizer(DummyAuthorizer):
    faults: _Faults

    def validate_authentication(self, username, password, handler):
        if self.faults.refuse_login:
            raise AuthenticationFailed("login refused by test server.")
        super().validate_authentication(username, password, handler)


def make_self_signed_cert(directory: str | os.PathLike, cn: str = "localhost", *,
                          san: bool = True) -> tuple[Path, Path]:
    """Write ``cert.pem`` and ``key.pem`` (EC P-256, valid for localhost and 127.0.0.1) in
    ``directory``: the project's one certificate generator, for pyftpdlib here and for Debian's
    vsftpd and proftpd (``sim.ftp_daemons``) in the tests.

    ``san=False``: the name only in the CN, no subjectAltName and no CA extensions, as many
    integrators' servers have (``openssl req -x509 -subj /CN=host`` on older OpenSSL).

    Uses the ``cryptography`` package when importable, else the ``openssl`` command line.
    """
    directory = Path(directory)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        openssl = shutil.which("openssl")
        if openssl is None:
            raise RuntimeError(
                "a self-signed certificate needs the 'cryptography' package or the openssl "
                "command line") from None
        subprocess.run(
            [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", str(key_path), "-out", str(cert_path), "-days", "2",
             "-subj", f"/CN={cn}"]
            + (["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"] if san else []),
            check=True, capture_output=True)
        return cert_path, key_path

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    builder = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
    )
    if san:
        builder = (
            builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                           critical=False))
    cert = builder.sign(key, hashes.SHA256())
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class FtpTestServer:
    """pyftpdlib in a thread, on ``host``/``port`` (0: any free port), with fault hooks."""

    def __init__(self, root: str | os.PathLike | None = None, *, user: str = "gw",
                 password: str = "gwpass", dirs: tuple[str, ...] = KIND_DIRS,
                 omit: tuple[str, ...] = (), tls: bool = False, cert_san: bool = True,
                 without: tuple[str, ...] = (), host: str = "127.0.0.1",
                 port: int = 0, banner: str = "ticgw test FTP server ready.") -> None:
        self._tmp = tempfile.mkdtemp(prefix="ftptest-")
        self.root = Path(root) if root is not None else Path(self._tmp) / "root"
        self.root.mkdir(parents=True, exist_ok=True)
        omitted = {d.strip("/").upper() for d in omit}
        for d in dirs:
            if d.strip("/").upper() not in omitted:
                (self.root / d.strip("/")).mkdir(parents=True, exist_ok=True)
        self.user, self.password = user, password
        self.host, self.port = host, port
        self.tls = tls
        self.cert_san = cert_san
        self.without = {verb.upper() for verb in without}
        self.certfile: Path | None = None
        self.keyfile: Path | None = None
        self.commands: list[str] = []
        self.transfers: list[tuple[str, str, bool, int]] = []
        self._faults = _Faults()
        self._server: FTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._handler = self._build_handler(banner)

    # ----------------------------------------------------------------- set-up
    def _build_handler(self, banner: str):
        authorizer = type("TestAuthorizer", (_Authorizer,), {"faults": self._faults})()
        authorizer.add_user(self.user, self.password, str(self.root), perm="elradfmwMT")
        attrs = {"faults": self._faults, "recorder": self, "authorizer": authorizer,
                 "banner": banner}
        if self.without:
            # a server without these commands: "500 Command not understood", absent from FEAT
            attrs["proto_cmds"] = {k: v for k, v in _FaultyControl.proto_cmds.items()
                                   if k not in self.without}
        dtp_attrs = {"faults": self._faults}
        if not self.tls:
            dtp = type("TestDTP", (_FaultyDTP,), dtp_attrs)
            return type("TestFTPHandler", (_FaultyControl,), {**attrs, "dtp_handler": dtp})
        try:
            from pyftpdlib.handlers import TLS_DTPHandler, TLS_FTPHandler
        except ImportError:
            raise RuntimeError("FtpTestServer(tls=True) needs pyOpenSSL (pip install pyopenssl), "
                               "which pyftpdlib's FTPS support is built on") from None
        self.certfile, self.keyfile = make_self_signed_cert(self._tmp, san=self.cert_san)
        # TLS first in the MRO so its event handlers run before (and call into) the faulty ones.
        dtp = type("TestTlsDTP", (TLS_DTPHandler, _FaultyDTP), dtp_attrs)
        return type("TestTlsFTPHandler", (TLS_FTPHandler, _FaultyControl), {
            **attrs, "dtp_handler": dtp, "certfile": str(self.certfile),
            "keyfile": str(self.keyfile), "ssl_context": None,
            "tls_control_required": True, "tls_data_required": True})

    # ------------------------------------------------------------ life cycle
    def start(self) -> "FtpTestServer":
        if self._thread is not None:
            return self
        ioloop = IOLoop()
        self._server = FTPServer((self.host, self.port), self._handler, ioloop=ioloop)
        self.port = self._server.address[1]  # port 0 -> the real one; kept for restarts
        self._stopping.clear()
        self._thread = threading.Thread(target=self._serve, args=(self._server,),
                                        name=f"ftp-test-{self.port}", daemon=True)
        self._thread.start()
        return self

    def _serve(self, server: FTPServer) -> None:
        # The IO loop's own poll and scheduler, not serve_forever()/loop(): those log a start
        # line per call and configure the process's logging on first use.
        ioloop = server.ioloop
        try:
            while not self._stopping.is_set():
                ioloop.poll(0.02)
                ioloop.sched.poll()
        finally:
            server.close_all()

    def stop(self) -> None:
        """Server down: stop listening and cut every open connection."""
        if self._thread is None:
            return
        self._stopping.set()
        self._thread.join(timeout=10)
        self._thread = None
        self._server = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> "FtpTestServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._thread is not None

    # ----------------------------------------------------------------- faults
    def fail_next_stor(self, n: int = 1, mode: str = "drop", *, after_bytes: int = 1024,
                       code: int = 552, rate: float = 32768) -> None:
        if mode not in STOR_MODES:
            raise ValueError(f"mode must be one of {STOR_MODES}, not {mode!r}")
        if mode == "full" and code not in (452, 552):
            raise ValueError("a disk-full reply is 452 or 552")
        with self._faults.lock:
            for _ in range(n):
                self._faults.stor.append({"mode": mode, "after_bytes": after_bytes,
                                          "code": code, "rate": rate})

    def fail_next_retr(self, n: int = 1, *, after_bytes: int = 1024) -> None:
        """The next ``n`` RETR send only ``after_bytes`` of the file, then reply 226 anyway."""
        with self._faults.lock:
            self._faults.retr.extend([after_bytes] * n)

    def fail_next_command(self, verb: str, reply: str, n: int = 1) -> None:
        with self._faults.lock:
            queue = self._faults.replies.setdefault(verb.upper(), collections.deque())
            queue.extend([reply] * n)

    def drop_connection_on(self, verb: str, n: int = 1) -> None:
        with self._faults.lock:
            self._faults.drops[verb.upper()] = self._faults.drops.get(verb.upper(), 0) + n

    def delay_replies(self, seconds: float, commands: set[str] | None = None) -> None:
        with self._faults.lock:
            self._faults.delay = float(seconds)
            self._faults.delay_commands = (None if commands is None
                                           else frozenset(c.upper() for c in commands))

    @property
    def refuse_login(self) -> bool:
        return self._faults.refuse_login

    @refuse_login.setter
    def refuse_login(self, value: bool) -> None:
        with self._faults.lock:
            self._faults.refuse_login = bool(value)

    def clear_faults(self) -> None:
        self._faults.clear()

    # ---------------------------------------------------------------- helpers
    def path(self, remote: str) -> Path:
        """Local path of a remote path such as ``/DATA/x.csv.gz``."""
        return self.root / remote.lstrip("/")

    def client_settings(self, **overrides) -> dict:
        """What a client needs to reach this server (TLS: the certificate to trust), as the
        keyword arguments of the uplink's ``FtpSettings``."""
        values = dict(host=self.host, port=self.port, login=self.user, password=self.password,
                      tls=self.tls, tls_cafile=str(self.certfile) if self.certfile else None)
        values.update(overrides)
        return values
