"""Test helpers for running gateway services against a real broker and real pty meters."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import zmq

from bus import endpoints as eps
from bus.client import Subscriber
from bus.testing import REPO, child_env, start_broker, stop_process, wait_for
from sim.gateway import SERIAL_HANDLERS, configure


class Events:
    """Collects bus events in a background thread (its own socket)."""

    def __init__(self, run_dir: Path, prefixes=("",)):
        self.ctx = zmq.Context()
        self.sub = Subscriber(self.ctx, eps.resolve(run_dir).xpub, prefixes)
        self.items: list[tuple[str, dict]] = []
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="events")
        self._thread.start()

    def _run(self):
        while not self._halt.is_set():
            got = self.sub.recv(timeout=0.05)
            if got is not None:
                with self._lock:
                    self.items.append(got)

    def of(self, prefix: str) -> list[dict]:
        with self._lock:
            return [env for topic, env in self.items if topic.startswith(prefix)]

    def topics(self) -> set[str]:
        with self._lock:
            return {t for t, _ in self.items}

    def wait(self, prefix: str, timeout: float = 30.0, where=lambda env: True) -> dict:
        return wait_for(lambda: next((e for e in self.of(prefix) if where(e)), None), timeout,
                        interval=0.02, message="no %s event within %.0f s" % (prefix, timeout))

    def close(self):
        self._halt.set()
        self._thread.join(2)
        self.sub.close()
        self.ctx.term()


class Threaded:
    """A service running in a thread of the test process (its own loop, the real clock)."""

    def __init__(self, svc):
        self.svc = svc
        self.codes: list = []               # what run() returned
        self.thread = threading.Thread(
            target=lambda: self.codes.append(svc.run(install_signals=False)), daemon=True)
        self.thread.start()

    def stop(self):
        self.svc.loop.post(self.svc.stop)
        self.thread.join(10)
        assert not self.thread.is_alive()


def start_service(name: str, run_dir: Path, data_dir: Path, **env) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-m", "services.%s" % name],
                         env=child_env(run_dir, TICGW_DATA=data_dir, **{**SERIAL_HANDLERS, **env}),
                         cwd=str(REPO),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    p.output = []

    def drain():
        for line in p.stdout:
            p.output.append(line.decode("utf-8", "replace").rstrip())

    threading.Thread(target=drain, daemon=True).start()
    return p


def sealed_rows(data_dir: Path) -> dict:
    """(input, time) -> [columns, ...] from every data file in a DATA directory (the gateway's
    outbox or the server's), parameters files left out."""
    import gzip

    rows: dict = {}
    for p in sorted(Path(data_dir).glob("*.csv.gz")):
        if "_TIC_P_" in p.name:
            continue
        inp = None
        for line in gzip.decompress(p.read_bytes()).decode().split("\r\n"):
            if line.startswith("SNTIC;"):
                inp = int(line.split(";")[2])
            elif line and not line.startswith(("TypeTIC;", "nbVariable;")):
                t, *cols = line.split(";")
                rows.setdefault((inp, t), []).append(cols)
    return rows


class Scripted:
    """An HTTP server answering every POST with ``status`` and ``body``; records the requests
    (a Web Services server that misbehaves on purpose)."""

    def __init__(self, status: int = 200, body: str = "00"):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.status, self.body = status, body
        self.requests: list[tuple[str, str, str]] = []  # (path, content type, body)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                outer.requests.append((self.path, self.headers.get("Content-Type"),
                                       self.rfile.read(n).decode()))
                data = outer.body.encode()
                self.send_response(outer.status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self.httpd.server_address[1]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


__all__ = ["Threaded", "Scripted", "sealed_rows", "Events", "configure", "start_service", "start_broker", "stop_process", "wait_for"]
