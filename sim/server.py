"""The demo remote server (DESIGN section 9): FTP, Web Services over HTTP, and NTP, on loopback.

    with DemoServer("/tmp/srv") as srv:
        srv.ftp_port, srv.http_port, srv.ntp_port    # the bound ports (0 asks for free ones)
        srv.web_service_url                          # what WebService_Url should hold

- FTP (pyftpdlib, in a thread): one user with full rights on ``root``, where the directories
  /CONFIG /DEF /DATA /ALARM /CMD /LOG /BIN are created if missing (the gateway never creates them).
- HTTP (http.server, in a thread):
  ``POST initialisation.php`` (``MAC-ADR=...``) answers ``00##<site>##`` with the site from
  ``root/ws_sites.json`` (``{"AA:BB:CC:DD:EE:FF": "SITE1", ...}``), or ``TICGW-`` and the last six
  hex digits of the MAC when it is not listed; a missing or malformed MAC gets ``13##``.
  ``POST confirm.php`` answers ``00`` (``10`` without NSITE, ``11`` for an unknown ACTION, ``12``
  for a non-numeric RC). Both are appended to ``root/ws_log.csv``. Paths may have a prefix
  (``/ws/confirm.php``), so ``WebService_Url`` may name a sub-directory.
  ``GET /`` is a plain-text listing of the files in each directory, to look at in a browser.
- NTP: :class:`sim.ntp_server.NtpResponder` with ``ntp_offset``.

``main()`` runs it as ``ticgw sim server --root DIR`` until SIGINT/SIGTERM.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import re
import signal
import sys
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from .ntp_server import NtpResponder

log = logging.getLogger(__name__)

DIRECTORIES = ("CONFIG", "DEF", "DATA", "ALARM", "CMD", "LOG", "BIN")
SITES_FILE = "ws_sites.json"
LOG_FILE = "ws_log.csv"
LOG_HEADER = ("time", "client", "service", "mac", "site", "action", "action_comp", "rc",
              "rc_comp", "return_code")
#: ACTION values confirm.php accepts (webdyn-server-protocol 3.7).
ACTIONS = ("UPLOADDATA", "UPLOADALARM", "UPLOADGLOBAL", "CONFIGGLOBAL", "UPLOADDEF", "CONFIGDEF",
           "CONFIGINV", "CMD", "CONFIGBIN", "VERSION")
_MAC = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")
#: Every right: list, read, write, append, delete, rename, mkdir, chmod, set mtime.
FTP_PERMS = "elradfmwMT"


def default_site(mac: str) -> str:
    return "TICGW-" + mac.replace(":", "").upper()[-6:]


class DemoServer:
    """FTP + Web Services + NTP on ``host``; a context manager (``start()``/``stop()``)."""

    def __init__(self, root, ftp_port: int = 0, http_port: int = 0, ntp_port: int = 0,
                 user: str = "ticgw", password: str = "ticgw", host: str = "127.0.0.1",
                 ntp_offset: float = 0.0):
        self.root = Path(root).resolve()
        self.user, self.password, self.host = user, password, host
        self._ports = {"ftp": ftp_port, "http": http_port, "ntp": ntp_port}
        self.ntp = NtpResponder(offset=ntp_offset, host=host, port=ntp_port)
        self._ftpd = None
        self._ftp_thread: threading.Thread | None = None
        self._ftp_stop = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._http_thread: threading.Thread | None = None
        self._log_lock = threading.Lock()

    # -- ports and addresses ---------------------------------------------------------------

    @property
    def ftp_port(self) -> int:
        if self._ftpd is None:
            raise RuntimeError("demo server not started")
        return self._ftpd.address[1]

    @property
    def http_port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("demo server not started")
        return self._httpd.server_address[1]

    @property
    def ntp_port(self) -> int:
        return self.ntp.port

    @property
    def ftp_url(self) -> str:
        return "ftp://%s@%s:%d/" % (self.user, self.host, self.ftp_port)

    @property
    def web_service_url(self) -> str:
        return "http://%s:%d/" % (self.host, self.http_port)

    @property
    def ntp_address(self) -> str:
        return "%s:%d" % (self.host, self.ntp_port)

    @property
    def log_path(self) -> Path:
        return self.root / LOG_FILE

    # -- life ------------------------------------------------------------------------------

    def start(self) -> "DemoServer":
        self.root.mkdir(parents=True, exist_ok=True)
        for name in DIRECTORIES:
            (self.root / name).mkdir(exist_ok=True)
        try:
            self._start_ftp()
            self._start_http()
            self.ntp.start()
        except BaseException:
            self.stop()
            raise
        log.info("demo server: FTP %s, Web Services %s, NTP %s, root %s",
                 self.ftp_url, self.web_service_url, self.ntp_address, self.root)
        return self

    def stop(self) -> None:
        self.ntp.stop()
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
            self._http_thread.join(timeout=5)
        if self._ftp_thread is not None:
            self._ftp_stop.set()
            self._ftp_thread.join(timeout=5)
            self._ftp_thread = None
        self._ftpd = None

    def __enter__(self) -> "DemoServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _start_ftp(self) -> None:
        from pyftpdlib.authorizers import DummyAuthorizer
        from pyftpdlib.handlers import FTPHandler
        from pyftpdlib.ioloop import IOLoop
        from pyftpdlib.servers import FTPServer

        authorizer = DummyAuthorizer()
        authorizer.add_user(self.user, self.password, str(self.root), perm=FTP_PERMS)
        handler = type("DemoFTPHandler", (FTPHandler,), {
            "authorizer": authorizer, "banner": "ticgw demo server ready.",
            "auth_failed_timeout": 0.5})  # pyftpdlib's 3 s anti-brute-force delay: a demo
        # A private IO loop, so that several servers (and tests) do not share pyftpdlib's global.
        self._ftpd = FTPServer((self.host, self._ports["ftp"]), handler, ioloop=IOLoop())
        self._ftp_stop.clear()
        self._ftp_thread = threading.Thread(target=self._serve_ftp, name="demo-ftp", daemon=True)
        self._ftp_thread.start()

    def _serve_ftp(self) -> None:
        ftpd = self._ftpd
        try:
            while not self._ftp_stop.is_set():
                ftpd.ioloop.loop(timeout=0.05, blocking=False)
        finally:
            ftpd.close_all()

    def _start_http(self) -> None:
        handler = type("DemoHTTPHandler", (_HttpHandler,), {"demo": self})
        self._httpd = ThreadingHTTPServer((self.host, self._ports["http"]), handler)
        self._httpd.daemon_threads = True
        self._http_thread = threading.Thread(target=self._httpd.serve_forever,
                                             kwargs={"poll_interval": 0.05},
                                             name="demo-http", daemon=True)
        self._http_thread.start()

    # -- Web Services ----------------------------------------------------------------------

    def sites(self) -> dict[str, str]:
        """The MAC -> site table from ``ws_sites.json`` (keys uppercased); {} when absent."""
        path = self.root / SITES_FILE
        try:
            table = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            log.warning("%s unreadable (%s); using default site IDs", path, e)
            return {}
        if not isinstance(table, dict):
            log.warning("%s is not a JSON object; using default site IDs", path)
            return {}
        return {str(k).upper(): v for k, v in table.items() if isinstance(v, str) and v}

    def initialisation(self, form: dict[str, str], client: str) -> str:
        mac = form.get("MAC-ADR", "").strip()
        if not _MAC.match(mac):
            self._log(client, "initialisation", mac=mac, return_code="13")
            return "13####"
        mac = mac.upper()
        site = self.sites().get(mac) or default_site(mac)
        self._log(client, "initialisation", mac=mac, site=site, return_code="00")
        return "00##%s##" % site

    def confirm(self, form: dict[str, str], client: str) -> str:
        site, action = form.get("NSITE", "").strip(), form.get("ACTION", "").strip()
        rc = form.get("RC", "").strip()
        if not site:
            code = "10"
        elif action not in ACTIONS:
            code = "11"
        elif not re.fullmatch(r"-?\d+", rc):
            code = "12"
        else:
            code = "00"
        self._log(client, "confirm", site=site, action=action,
                  action_comp=form.get("ACTION-COMP", ""), rc=rc,
                  rc_comp=form.get("RC-COMP", ""), return_code=code)
        return code

    def _log(self, client: str, service: str, **fields) -> None:
        row = {k: "" for k in LOG_HEADER}
        row.update(fields, client=client, service=service,
                   time=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
        buf = io.StringIO()
        writer = csv.writer(buf, delimiter=";", lineterminator="\n")
        with self._log_lock:
            new = not self.log_path.exists()
            if new:
                writer.writerow(LOG_HEADER)
            writer.writerow([row[k] for k in LOG_HEADER])
            with open(self.log_path, "a", encoding="utf-8", newline="") as f:
                f.write(buf.getvalue())

    def read_log(self) -> list[dict[str, str]]:
        """The rows of ws_log.csv as dicts (for tests and tools)."""
        try:
            text = self.log_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return list(csv.DictReader(io.StringIO(text), delimiter=";"))

    def listing(self) -> str:
        """Plain-text listing of the files in each server directory."""
        lines = ["ticgw demo server - %s" % self.root, ""]
        for name in DIRECTORIES:
            base = self.root / name
            files = sorted(p for p in base.rglob("*") if p.is_file()) if base.is_dir() else []
            lines.append("/%s (%d file%s)" % (name, len(files), "" if len(files) == 1 else "s"))
            for p in files:
                st = p.stat()
                when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(st.st_mtime))
                lines.append("  %-48s %10d  %s UTC" % (p.relative_to(base).as_posix(),
                                                      st.st_size, when))
            lines.append("")
        return "\n".join(lines)


class _HttpHandler(BaseHTTPRequestHandler):
    demo: DemoServer  # set on the per-server subclass
    server_version = "ticgw-demo/1"
    MAX_BODY = 64 * 1024

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path in ("/", "/index.txt"):
            self._reply(200, self.demo.listing())
        else:
            self._reply(404, "not found\n")

    def do_POST(self) -> None:
        service = urlsplit(self.path).path.rsplit("/", 1)[-1]
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= self.MAX_BODY:
            self._reply(400, "bad Content-Length\n")
            return
        body = self.rfile.read(length).decode("utf-8", errors="replace")
        form = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
        client = self.client_address[0]
        if service == "initialisation.php":
            self._reply(200, self.demo.initialisation(form, client))
        elif service in ("confirm.php", "confirmation.php"):
            self._reply(200, self.demo.confirm(form, client))
        else:
            self._reply(404, "-1##unknown service##")

    def _reply(self, status: int, text: str) -> None:
        data = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args) -> None:
        log.debug("http %s: %s", self.client_address[0], fmt % args)


def run(args) -> int:
    """Run the server from parsed arguments (see :mod:`sim.server_cli`) until a signal."""
    stop = threading.Event()

    def on_signal(signum, frame):  # only record the request; the main thread stops
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        server = DemoServer(args.root, ftp_port=args.ftp_port, http_port=args.http_port,
                            ntp_port=args.ntp_port, user=args.user, password=args.password,
                            host=args.host, ntp_offset=args.ntp_offset)
        try:
            server.start()
        except OSError as e:
            print("ticgw sim server: cannot start: %s" % e, file=sys.stderr)
            return 1
        command_file = getattr(args, "command_file", None)
        if command_file:
            src = Path(command_file)
            (Path(server.root) / "CMD" / src.name).write_bytes(src.read_bytes())
        try:
            print("FTP            %s  (user %s)" % (server.ftp_url, server.user))
            print("Web Services   %s  (WebService_Url)" % server.web_service_url)
            print("Files          %s" % server.web_service_url)
            print("NTP            %s  (NTP_Server1)" % server.ntp_address)
            print("root           %s" % server.root, flush=True)
            while not stop.wait(0.5):
                pass
        finally:
            server.stop()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    from . import server_cli

    parser = argparse.ArgumentParser(prog="ticgw sim server", description=server_cli.DESCRIPTION)
    server_cli.add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
