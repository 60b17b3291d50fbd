"""The packet data link on a real device: Debian's ``pppd`` dialling with ``chat``.

What is built from the configuration (``GPRS_Number``, ``GPRS_Apn``, ``GPRS_Login``,
``GPRS_Password``, ``Modem_Port``):

* :func:`chat_script`: the chat script (ABORT strings, ``AT``, ``ATE0``, ``AT+CGDCONT``, the
  optional ``AT+CGAUTH``, ``ATD<number>``, ``CONNECT``). Every configured value is checked before
  it is written: double quotes, backslashes, control characters and non-ASCII characters are
  refused with a :class:`PppConfigError` naming the key, so that a value can neither inject chat
  syntax nor break the AT string; spaces and ``^`` are escaped for chat.
* :func:`pppd_args`: pppd's command line. The password never appears on it: it goes to an
  options file created with mode 0600 (``file <path>``).
* :class:`PppLink`: one pppd run (``start``, ``wait_up``, ``supervise``, ``stop``), with the
  files it needs (chat script, options, ``ip-up``/``ip-down`` hooks) in a private run directory
  (mode 0700). pppd does not redial (no ``persist``, ``maxfail 1``): the modem service supervises
  and decides.
* :func:`ppp_available`: ``None`` when pppd can run here, else why not; the modem service uses its
  simulated data phase then.

pppd's exit status is turned into a :class:`PppError` with its meaning in English and a short
French text for the gateway's journal (``PPP_EXIT``). Everything here blocks (subprocess waits,
file writes): call it from a worker thread, not from a service loop.
"""
from __future__ import annotations

import collections
import errno
import os
import re
import shlex
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable

__all__ = [
    "PPPD", "CHAT", "CHAT_ABORTS", "PPP_EXIT", "PppError", "PppConfigError", "chat_script",
    "chat_exit_meaning", "check_value", "pppd_args", "write_options", "ip_up_script",
    "ip_down_script", "ppp_available", "PppLink",
]

PPPD = "/usr/sbin/pppd"
CHAT = "/usr/sbin/chat"
DEV_PPP = "/dev/ppp"

#: ABORT strings of the chat script, in order: chat exits with 4 + the index of the one seen.
CHAT_ABORTS = ("BUSY", "NO CARRIER", "NO DIALTONE", "NO ANSWER", "ERROR", "+CGATT: 0")

#: pppd exit status (man pppd, EXIT STATUS) -> (meaning in English, text for the journal).
PPP_EXIT: dict[int, tuple[str, str]] = {
    0: ("the link was set up and terminated normally",
        "Lien PPP terminé"),
    1: ("fatal error in pppd",
        "Erreur fatale de pppd"),
    2: ("error in the pppd options",
        "Options pppd invalides"),
    3: ("pppd is not running as root",
        "pppd doit être lancé en root"),
    4: ("the kernel has no PPP support",
        "PPP absent du noyau"),
    5: ("pppd was terminated by a signal (SIGINT, SIGTERM or SIGHUP)",
        "pppd arrêté par un signal"),
    6: ("the serial port could not be locked",
        "Port série du modem verrouillé"),
    7: ("the serial port could not be opened",
        "Ouverture du port série du modem impossible"),
    8: ("the connect script failed",
        "Script de connexion en échec"),
    9: ("the pty command could not be run",
        "Commande pty en échec"),
    10: ("the PPP negotiation failed",
         "Négociation PPP en échec"),
    11: ("the peer failed to authenticate itself",
         "Le correspondant ne s'est pas authentifié"),
    12: ("the link was terminated because it was idle",
         "Lien PPP coupé pour inactivité"),
    13: ("the link was terminated because the connect time limit was reached",
         "Durée maximale de connexion atteinte"),
    14: ("callback was negotiated; an incoming call should arrive shortly",
         "Rappel négocié"),
    15: ("the link was terminated because the peer is not answering LCP echo requests "
         "(dead link)",
         "Lien mort : pas de réponse aux échos LCP"),
    16: ("the link was terminated by the modem hanging up",
         "Le modem a raccroché"),
    17: ("the PPP negotiation failed because serial loopback was detected",
         "Boucle détectée sur la ligne série"),
    18: ("the init script failed",
         "Script d'initialisation en échec"),
    19: ("we failed to authenticate ourselves to the peer",
         "Authentification PPP refusée (GPRS_Login, GPRS_Password)"),
}

#: chat exit status (man chat, TERMINATION CODES) below the ABORT codes.
_CHAT_EXIT = {
    0: "the script ran to its end (CONNECT received)",
    1: "bad parameters or a chat script error",
    2: "I/O error or signal while talking to the modem",
    3: "timeout: the modem did not answer what was expected",
}

_DIAL = re.compile(r"[0-9*#+]{1,32}\Z")
_PEER = re.compile(r"[A-Za-z0-9_.-]{1,32}\Z")


class PppConfigError(ValueError):
    """A configured value cannot be used for the data link (``key`` names it)."""

    def __init__(self, key: str, reason: str):
        self.key = key
        self.reason = reason
        super().__init__("%s %s" % (key, reason))


class PppError(Exception):
    """pppd ended (or never came up): ``status`` is its exit status (``None`` for a timeout,
    negative for a signal that killed it), ``meaning`` the English meaning, ``journal`` the
    French text for the gateway's journal, ``detail`` what pppd's log adds (e.g. chat's
    ``NO CARRIER``), ``log`` the last lines of that log."""

    def __init__(self, status: int | None, *, detail: str = "", log: list[str] | None = None,
                 meaning: str | None = None, journal: str | None = None):
        self.status = status
        if status is None:
            default = ("the link did not come up in time", "Lien PPP non établi")
        elif status < 0:
            name = _signal_name(-status)
            default = ("pppd was killed by %s" % name, "pppd tué (%s)" % name)
        else:
            default = PPP_EXIT.get(status, ("unknown pppd exit status %d" % status,
                                            "Erreur pppd %d" % status))
        self.meaning = meaning or default[0]
        self.detail = detail
        self.log = list(log or [])
        base = journal or default[1]
        self.journal = "%s (%s)" % (base, detail) if detail else base
        if status is None:
            text = "pppd: " + self.meaning
        elif status < 0:
            text = self.meaning
        else:
            text = "pppd exited with status %d: %s" % (status, self.meaning)
        super().__init__(text + (" (%s)" % detail if detail else ""))


def _signal_name(n: int) -> str:
    try:
        return signal.Signals(n).name
    except ValueError:
        return "signal %d" % n


def chat_exit_meaning(code: int) -> str:
    """What chat's exit status means for the script of :func:`chat_script`."""
    if code in _CHAT_EXIT:
        return _CHAT_EXIT[code]
    k = code - 4
    if 0 <= k < len(CHAT_ABORTS):
        return "the modem answered %s" % CHAT_ABORTS[k]
    return "unknown chat exit status %d" % code


# ---- checked values -----------------------------------------------------------------------------

def check_value(key: str, value: str) -> str:
    """``value`` if it can go inside a quoted AT string and a chat script, else
    :class:`PppConfigError`: printable ASCII only, without double quotes or backslashes."""
    for ch in value:
        if ch == '"':
            raise PppConfigError(key, "contains a double quote (\"), which cannot be sent to the "
                                      "modem safely: remove it")
        if ch == "\\":
            raise PppConfigError(key, "contains a backslash (\\), which cannot be sent to the "
                                      "modem safely: remove it")
        if ord(ch) < 0x20 or ord(ch) == 0x7f:
            raise PppConfigError(key, "contains a control character (0x%02x): remove it"
                                 % ord(ch))
        if ord(ch) > 0x7e:
            raise PppConfigError(key, "contains %r, outside printable ASCII, which a modem's "
                                      "command line does not accept: remove it" % ch)
    return value


def _chat_escape(text: str) -> str:
    """An already checked text as an unquoted chat word: spaces and ``^`` (chat's control
    character prefix) escaped."""
    return text.replace("^", "\\^").replace(" ", "\\s")


def _number(settings) -> str:
    number = settings.gprs_number
    if not _DIAL.match(number or ""):
        raise PppConfigError("GPRS_Number", "%r is not a number to dial: expected 1 to 32 "
                                            "digits, '*', '#' or '+'" % (number,))
    return number


def _credentials(settings) -> tuple[str, str]:
    """(login, password), checked; both empty when no login is set (a password alone is
    of no use to PAP and is ignored)."""
    login = check_value("GPRS_Login", settings.gprs_login or "")
    if not login:
        return "", ""
    return login, check_value("GPRS_Password", settings.gprs_password or "")


# ---- chat script --------------------------------------------------------------------------------

def chat_script(settings, *, timeout: int = 10, dial_timeout: int = 60) -> str:
    """The chat script dialling the data link of ``settings``: ABORT strings (see
    ``CHAT_ABORTS`` for chat's exit codes), then ``AT``, ``ATE0`` (so the modem stops echoing,
    before the password is sent), the PDP context with the APN, ``AT+CGAUTH`` when a login is set
    (its line is hidden from chat's log with ``\\q``), ``ATD<GPRS_Number>`` and ``CONNECT``.
    ``timeout`` bounds each AT answer and ``dial_timeout`` the wait for ``CONNECT`` (seconds).
    Raises :class:`PppConfigError` for a value that cannot be written safely."""
    apn = check_value("GPRS_Apn", settings.gprs_apn or "")
    login, password = _credentials(settings)
    number = _number(settings)
    lines = ["# Chat script generated by ticgw from the configuration: do not edit."]
    lines += ['ABORT %s' % ('"%s"' % a if " " in a else a) for a in CHAT_ABORTS]
    lines += [
        "TIMEOUT %d" % int(timeout),
        '"" AT',
        "OK ATE0",
        'OK AT+CGDCONT=1,"IP","%s"' % _chat_escape(apn),
    ]
    if login:
        lines.append('OK \\qAT+CGAUTH=1,1,"%s","%s"'
                     % (_chat_escape(login), _chat_escape(password)))
    lines += [
        "OK ATD%s" % number,
        "TIMEOUT %d" % int(dial_timeout),
        'CONNECT ""',
    ]
    return "\n".join(lines) + "\n"


# ---- pppd command line --------------------------------------------------------------------------

def _pppd_word(text: str) -> str:
    """A word for a pppd options file, quoted (pppd's getword: backslash escapes)."""
    if re.search(r"[\x00-\x1f\x7f]", text):
        raise ValueError("control character in a pppd option value")
    return '"%s"' % text.replace("\\", "\\\\").replace('"', '\\"')


def _write_private(path: Path, text: str, mode: int) -> None:
    """Write ``text`` to ``path`` atomically; the file has ``mode`` from its creation on."""
    tmp = path.with_name(".%s.tmp" % path.name)
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)         # whatever the umask
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_options(settings, path) -> Path:
    """The options file holding the PAP password (mode 0600: it is read by pppd as root, by
    no one else). Written even without a login (then it holds no password)."""
    path = Path(path)
    _, password = _credentials(settings)
    text = "# pppd options generated by ticgw: do not edit.\nhide-password\n"
    if password:
        text += "password %s\n" % _pppd_word(password)
    _write_private(path, text, 0o600)
    return path


def _device(settings) -> str:
    port = settings.modem_port or ""
    if not port.startswith("/"):
        raise PppConfigError("Modem_Port", "%r is not a serial device path: pppd needs one "
                                           "(/dev/ttyUSB0...)" % (port,))
    if not port.startswith("/dev/"):
        # pppd prefixes names outside /dev with /dev/: give it the device a symlink points to
        port = os.path.realpath(port)
        if not port.startswith("/dev/"):
            raise PppConfigError("Modem_Port", "%r is not under /dev, which pppd requires"
                                 % (settings.modem_port,))
    return port


def pppd_args(settings, chat_path, peer_name: str = "ticgw", *, options_path=None,
              ip_up=None, ip_down=None, chat: str = CHAT, pppd: str = PPPD,
              log_fd: int = 2, lcp_echo_interval: int = 30,
              lcp_echo_failure: int = 4) -> list[str]:
    """pppd's command line for ``settings``, dialling with the chat script at ``chat_path``.

    No redial (``maxfail 1``, no ``persist``): the caller supervises. A dead link is detected
    without modem-control lines by LCP echoes (``lcp-echo-interval``/``lcp-echo-failure``).
    The login goes on the command line (``user``); the password does not: it is written to
    ``options_path`` (default: ``<peer_name>.options`` next to the chat script), mode 0600,
    which the command line reads with ``file``. ``ip_up``/``ip_down`` are hook scripts pppd
    runs instead of /etc/ppp/ip-up and ip-down; ``peer_name`` is passed to them (``ipparam``)
    and names the link (``linkname``: /run/ppp-<peer_name>.pid). Log lines go to ``log_fd``.
    """
    if not _PEER.match(peer_name):
        raise ValueError("peer name %r: letters, digits, '_', '.' or '-' only" % peer_name)
    device = _device(settings)
    login, _ = _credentials(settings)
    chat_script(settings)                       # every value checked before anything is run
    chat_path = Path(chat_path)
    options_path = Path(options_path) if options_path else \
        chat_path.with_name(peer_name + ".options")
    write_options(settings, options_path)
    args = [
        pppd, device,
        "file", str(options_path),
        "connect", "%s -v -s -f %s" % (shlex.quote(chat), shlex.quote(str(chat_path))),
        "nodetach",
        "logfd", str(int(log_fd)),
        "noauth",
        "defaultroute",
        "usepeerdns",
        "noipdefault",
        "nopersist",
        "maxfail", "1",
        "lcp-echo-interval", str(int(lcp_echo_interval)),
        "lcp-echo-failure", str(int(lcp_echo_failure)),
        "linkname", peer_name,
        "ipparam", peer_name,
    ]
    if login:
        args += ["user", login]
    if ip_up:
        args += ["ip-up-script", str(ip_up)]
    if ip_down:
        args += ["ip-down-script", str(ip_down)]
    return args


# ---- hook scripts -------------------------------------------------------------------------------

def ip_up_script(marker) -> str:
    """The ``ip-up`` hook: pppd runs it with ``iface tty speed local remote ipparam`` (and
    DNS1/DNS2 with usepeerdns) once IPCP is up; it writes ``marker`` (key=value lines)."""
    m = shlex.quote(str(marker))
    return f"""#!/bin/sh
# ip-up hook generated by ticgw: the link is up; tell the gateway through a marker file.
umask 077
tmp={m}.tmp
{{
  printf 'iface=%s\\n' "$1"
  printf 'tty=%s\\n' "$2"
  printf 'local=%s\\n' "$4"
  printf 'remote=%s\\n' "$5"
  printf 'dns1=%s\\n' "${{DNS1:-}}"
  printf 'dns2=%s\\n' "${{DNS2:-}}"
}} > "$tmp" && mv -f "$tmp" {m}
"""


def ip_down_script(marker) -> str:
    """The ``ip-down`` hook: removes ``marker`` (the link is no longer up)."""
    return ("#!/bin/sh\n# ip-down hook generated by ticgw: the link is down.\nrm -f %s\n"
            % shlex.quote(str(marker)))


# ---- availability -------------------------------------------------------------------------------

def ppp_available(*, pppd: str = PPPD, dev: str = DEV_PPP,
                  proc_devices: str = "/proc/devices") -> str | None:
    """``None`` when pppd can run here, else why not (in English, for the process log)."""
    if not (os.path.isfile(pppd) and os.access(pppd, os.X_OK)):
        return "pppd is not installed (%s missing; Debian package ppp)" % pppd
    if os.geteuid() != 0:
        return "pppd needs root (running as uid %d)" % os.geteuid()
    try:
        fd = os.open(dev, os.O_RDWR)
    except FileNotFoundError:
        try:
            with open(proc_devices) as f:
                registered = any(line.split()[1:] == ["ppp"] for line in f)
        except OSError:
            registered = False
        if registered:
            return "no %s device node (mknod %s c 108 0)" % (dev, dev)
        return "the kernel has no PPP support (no %s, no ppp in %s)" % (dev, proc_devices)
    except OSError as e:
        if e.errno in (errno.ENXIO, errno.ENODEV):
            return "the kernel has no PPP support (%s: %s)" % (dev, os.strerror(e.errno))
        return "%s cannot be opened: %s" % (dev, os.strerror(e.errno or 0))
    os.close(fd)
    return None


# ---- one pppd run -------------------------------------------------------------------------------

_LOCAL_IP = re.compile(r"local\s+IP address\s+(\S+)")
_REMOTE_IP = re.compile(r"remote\s+IP address\s+(\S+)")
_CHAT_FAILED = re.compile(r"Failed \((.+)\)\s*$")


class PppLink:
    """One pppd run for the data link of ``settings``.

    ``start()`` writes the chat script, the options file and the hooks into ``run_dir``
    (created mode 0700) and starts pppd; ``wait_up(timeout)`` returns True once IPCP is up (the
    ip-up hook's marker, or pppd's ``local IP address`` log line) or raises :class:`PppError`;
    ``supervise(on_down)`` calls ``on_down(PppError)`` when pppd ends after the link was up and
    without ``stop()`` (a dead link); ``stop()`` ends pppd (SIGTERM, then SIGKILL after
    ``grace`` seconds). ``log(line)``, if given, receives each line pppd (and chat) log, from a
    reader thread. ``pppd``/``chat`` are the programs' paths; ``extra_args`` go at the end of
    pppd's command line.
    """

    def __init__(self, settings, run_dir, *, peer_name: str = "ticgw", pppd: str = PPPD,
                 chat: str = CHAT, grace: float = 5.0, extra_args=(),
                 log: Callable[[str], None] | None = None, timeout: int = 10,
                 dial_timeout: int = 60):
        self.settings = settings
        self.run_dir = Path(run_dir)
        self.peer_name = peer_name
        self.pppd = pppd
        self.chat = chat
        self.grace = grace
        self.extra_args = list(extra_args)
        self.timeout = timeout
        self.dial_timeout = dial_timeout
        self._log_cb = log
        self.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.run_dir, 0o700)
        self.chat_path = self.run_dir / (peer_name + ".chat")
        self.options_path = self.run_dir / (peer_name + ".options")
        self.ip_up_path = self.run_dir / "ip-up"
        self.ip_down_path = self.run_dir / "ip-down"
        self.marker = self.run_dir / (peer_name + ".up")
        self.lines: collections.deque[str] = collections.deque(maxlen=200)
        self.info: dict[str, str] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._proc: subprocess.Popen | None = None
        self._exited = threading.Event()
        self._status: int | None = None
        self._up = False
        self._was_up = False
        self._stopping = False
        self._on_down: Callable[[PppError], None] | None = None
        self._down_told = False
        self._reader: threading.Thread | None = None

    # ---- state ----------------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        """pppd is running."""
        return self._proc is not None and not self._exited.is_set()

    @property
    def exit_status(self) -> int | None:
        """pppd's exit status once it ended (negative: killed by that signal), else None."""
        return self._status

    @property
    def up(self) -> bool:
        """The link is up now (IPCP up and pppd still running)."""
        return self._up and self.alive

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def args(self) -> list[str]:
        """Write the run files and return pppd's command line."""
        self.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        script = chat_script(self.settings, timeout=self.timeout, dial_timeout=self.dial_timeout)
        _write_private(self.chat_path, script, 0o600)     # may hold the password
        _write_private(self.ip_up_path, ip_up_script(self.marker), 0o700)
        _write_private(self.ip_down_path, ip_down_script(self.marker), 0o700)
        return pppd_args(self.settings, self.chat_path, self.peer_name,
                         options_path=self.options_path, ip_up=self.ip_up_path,
                         ip_down=self.ip_down_path, chat=self.chat,
                         pppd=self.pppd) + self.extra_args

    # ---- running --------------------------------------------------------------------------------

    def start(self) -> None:
        """Start pppd (the run files are written first). One run per object."""
        if self._proc is not None:
            raise RuntimeError("this PppLink was already started")
        args = self.args()
        try:
            self.marker.unlink()
        except FileNotFoundError:
            pass
        self._proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            close_fds=True, start_new_session=True)
        self._reader = threading.Thread(target=self._read, name="pppd-log", daemon=True)
        self._reader.start()
        threading.Thread(target=self._wait, name="pppd-wait", daemon=True).start()

    def _read(self) -> None:
        for raw in self._proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if not line:
                continue
            with self._lock:
                self.lines.append(line)
                m = _LOCAL_IP.search(line)
                if m:
                    self.info.setdefault("local", m.group(1))
                    self._set_up()
                m = _REMOTE_IP.search(line)
                if m:
                    self.info.setdefault("remote", m.group(1))
            if self._log_cb is not None:
                try:
                    self._log_cb(line)
                except Exception:       # a broken logger must not stop the reader
                    pass

    def _set_up(self) -> None:          # with the lock
        if not self._up:
            self._up = self._was_up = True
            self._changed.notify_all()

    def _wait(self) -> None:
        status = self._proc.wait()
        if self._reader is not None:
            self._reader.join(1.0)      # the last log lines (a child may keep the pipe open)
        with self._lock:
            self._status = status
            self._up = False
            self._exited.set()
            self._changed.notify_all()
            tell = self._was_up and not self._stopping and not self._down_told
            cb = self._on_down if tell else None
            if cb is not None:
                self._down_told = True
        if cb is not None:
            cb(self.error())

    def _check_marker(self) -> None:    # with the lock
        if self._up or self._exited.is_set() or not self.marker.exists():
            return
        try:
            text = self.marker.read_text()
        except OSError:
            return
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep and value:
                self.info[key] = value
        self._set_up()

    def wait_up(self, timeout: float) -> bool:
        """True once the link is up; :class:`PppError` if pppd ends first (its exit status and
        meaning) or after ``timeout`` seconds (``status`` None; pppd is left running: call
        ``stop()``)."""
        if self._proc is None:
            raise RuntimeError("PppLink.wait_up() before start()")
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                self._check_marker()
                if self._up:
                    return True
                if self._exited.is_set():
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PppError(None, detail="no IP address after %g s" % timeout,
                                   log=list(self.lines))
                self._changed.wait(min(left, 0.1))   # the marker is polled
        raise self.error()

    def error(self) -> PppError:
        """The :class:`PppError` for how pppd ended (it must have ended)."""
        with_lines = list(self.lines)
        detail = ""
        if self._status == 8:
            # chat logs "Failed (NO CARRIER)" (-v -s); a timeout logs just "Failed"
            for line in reversed(with_lines):
                m = _CHAT_FAILED.search(line)
                if m:
                    detail = m.group(1)
                    break
        return PppError(self._status, detail=detail, log=with_lines)

    def supervise(self, on_down: Callable[[PppError], None]) -> None:
        """Call ``on_down(PppError)`` (from the waiting thread) when pppd ends after the link
        was up and ``stop()`` was not called: the link died. If that already happened, it is
        called now."""
        with self._lock:
            self._on_down = on_down
            now = (self._exited.is_set() and self._was_up and not self._stopping
                   and not self._down_told)
            if now:
                self._down_told = True
        if now:
            on_down(self.error())

    def stop(self, grace: float | None = None) -> int | None:
        """End pppd: SIGTERM (pppd hangs up and exits 5), then SIGKILL to its process group
        after ``grace`` seconds. Returns the exit status (None if it was never started)."""
        if self._proc is None:
            return None
        grace = self.grace if grace is None else grace
        with self._lock:
            self._stopping = True
        if not self._exited.is_set():
            try:
                self._proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            if not self._exited.wait(grace):
                try:
                    os.killpg(self._proc.pid, signal.SIGKILL)   # pppd and its connect script
                except (ProcessLookupError, PermissionError):
                    self._proc.kill()
                self._exited.wait(5.0)
        return self._status
