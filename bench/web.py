"""The web page's costs: the web process's resident memory idle and with 20 live pages open,
the time from a bus event to an open page, and the weight of the pages.

Method: the whole demo (``sim.demo.prepare`` and Procfile.demo under honcho, as ``make demo``:
three simulated meters at line rate, the simulated modem, the demo server, the broker, every
service, the page on a free port), in a temporary directory, every process with its bytecode
cached (see ``bench.memory.bytecode_env``). Once every service is operational, this process
logs in as a browser would: the factory login, then the forced password change, both posted
with the page's ``Origin`` and (for the change) the CSRF token read from the form.

- memory: VmRSS and VmHWM (peak) of the web process (its pid from ``web status``) from
  /proc/<pid>/status, ``SETTLE`` s after the login ("idle": the page served once, no stream
  open), then with ``STREAMS`` live pages: plain HTTP clients, each reading ``/events`` with the
  session's cookie on its own connection (what 20 open tabs cost the server); the other
  services of the same run are read alongside, the uplink first (a peer with no HTTP server);
- latency: ``EVENTS`` ``journal`` rows published on the bus by this process (a Publisher on
  the broker's XSUB, as a service publishes its rows), ``GAP`` s apart; each carries its
  number; every stream reader stamps the row when its ``data:`` line is read. Both stamps are
  ``time.perf_counter()`` of this process. Measured with one stream open, then with
  ``STREAMS`` (the figure "any stream" takes every stream's arrival);
- weight: the bytes of ``/``, ``app.js``, ``style.css`` and of each page of the menu, as
  served (no compression: the server has none), and of the page scripts each page loads.

    python -m bench web            (or python -m bench.web)
"""
from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import zmq

from bus import endpoints as eps
from bus.client import CommandClient, Publisher
from bus.errors import BusTimeout, RemoteError
from bus.testing import REPO, wait_for
from services.web import layout
from sim import demo
from ticgw import registry

from .acq_runner import machine, percentile, status_kb
from .memory import _WARM_UP_CODE, WARM_UP

STREAMS = 20
EVENTS = 200
GAP = 0.02             # seconds between two published rows
SETTLE = 10.0          # seconds of steady running before a memory reading
USER = "userhigh"
FACTORY_PASSWORD = "high"
PASSWORD = "Banc-d-essai-2026!"
#: What the web process imports beyond what bench.memory warms (compiled before the run).
WEB_WARM_UP = ("services.web.__main__", "services.web.service", "services.modem.__main__",
               "services.modem.service", "services.update.__main__", "services.update.service",
               "ticgw.launch", "microdot", "sim.cli", "sim.meters", "sim.modem", "sim.server")


def free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the demo --------------------------------------------------------------------------------

class Demo:
    """The demo under honcho in ``base`` (as tests/demo_helpers.running_demo starts it)."""

    def __init__(self, base: Path):
        self.base = base
        self.web_port = free_port()
        ports = {"ftp": free_port(), "http": free_port(), "ntp": free_port(socket.SOCK_DGRAM)}
        self.env = demo.prepare(base, ports, DAQ_PeriodSec=5, Connection_PeriodMin=0,
                                Connection_Hour=0, Connection_Minute=0,
                                Web_Listen="127.0.0.1:%d" % self.web_port,
                                BIN_HealthTimeout=30)
        # bytecode cached, as on an installed gateway (bench.memory.bytecode_env explains)
        self.env["PYTHONPYCACHEPREFIX"] = str(base / "pycache")
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO), self.env.get("PYTHONPATH")) if p)
        subprocess.run([sys.executable, "-W", "ignore", "-c", _WARM_UP_CODE, *WARM_UP,
                        *WEB_WARM_UP], cwd=str(REPO), env=self.env, check=True)
        self.run_dir = Path(self.env["TICGW_RUN"])
        self.url = "http://127.0.0.1:%d" % self.web_port
        self.output: list[str] = []
        self.proc = subprocess.Popen(demo.honcho_command(self.env), env=self.env, cwd=str(REPO),
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        threading.Thread(target=lambda: [self.output.append(line.decode("utf-8", "replace"))
                                         for line in self.proc.stdout], daemon=True).start()
        self.ctx = zmq.Context()
        self.client = CommandClient(self.ctx, eps.resolve(self.run_dir), src="bench")

    def status(self, service: str) -> dict | None:
        try:
            return self.client.call(service, "status", timeout=2.0)
        except (BusTimeout, RemoteError):
            return None

    def wait_operational(self, timeout: float = 120.0) -> dict[str, dict]:
        names = [s.name for s in registry.SERVICES]

        def all_up():
            got = {n: self.status(n) for n in names}
            return got if all((g or {}).get("activity") == "operational"
                              for g in got.values()) else None
        return wait_for(all_up, timeout, interval=0.5,
                        message="the demo did not come up:\n" + "".join(self.output[-40:]))

    def wait_no_task(self, timeout: float = 90.0) -> None:
        def free():
            a, u = self.status("acquisition") or {}, self.status("uplink") or {}
            return a.get("detection") is False and u.get("connection") == "idle"
        wait_for(free, timeout, interval=0.5, message="a task still runs")

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            self.ctx.term()
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:
            pass


# --- HTTP as a browser does it -------------------------------------------------------------

class Browser:
    """A cookie and the page's Origin on every request; redirects are not followed."""

    def __init__(self, url: str):
        self.url = url
        self.host, self.port = url.split("//")[1].split(":")
        self.port = int(self.port)
        self.cookie = ""

    def request(self, method: str, path: str, form: dict | None = None):
        c = http.client.HTTPConnection(self.host, self.port, timeout=30)
        headers = {"Origin": self.url}
        if self.cookie:
            headers["Cookie"] = self.cookie
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            c.request(method, path, body=body, headers=headers)
            r = c.getresponse()
            data = r.read()
            for value in r.headers.get_all("Set-Cookie") or ():
                pair = value.split(";", 1)[0]
                self.cookie = "" if "Max-Age=0" in value else pair
            return r.status, r.getheader("Location"), data
        finally:
            c.close()

    def log_in(self) -> None:
        """The factory login, then the forced password change (the token from the form)."""
        status, where, _ = self.request("POST", "/connexion",
                                        {"user": USER, "password": FACTORY_PASSWORD})
        if (status, where) != (302, "/mot-de-passe"):
            raise RuntimeError("the factory login gave %s %s" % (status, where))
        status, _, page = self.request("GET", "/mot-de-passe")
        token = re.search(rb'name="csrf" value="([^"]+)"', page)
        if status != 200 or token is None:
            raise RuntimeError("no password form (%s)" % status)
        status, where, _ = self.request("POST", "/mot-de-passe", {
            "csrf": token.group(1).decode(), "current": FACTORY_PASSWORD, "new": PASSWORD,
            "again": PASSWORD})
        if (status, where) != (302, "/"):
            raise RuntimeError("the password change gave %s %s" % (status, where))


class StreamReader:
    """One live page: ``/events`` on its own connection, each ``journal`` row of the bench
    stamped when its ``data:`` line is read."""

    def __init__(self, browser: Browser, tag: str):
        self.tag = tag
        self.arrivals: dict[int, float] = {}
        self.hello = threading.Event()
        self.sock = socket.create_connection((browser.host, browser.port), timeout=60)
        self.sock.sendall(("GET /events HTTP/1.1\r\nHost: %s:%d\r\nCookie: %s\r\n"
                           "Accept: text/event-stream\r\n\r\n"
                           % (browser.host, browser.port, browser.cookie)).encode())
        self.file = self.sock.makefile("rb")
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        pattern = re.compile(r'"%s (\d+)"' % re.escape(self.tag))
        event = ""
        try:
            for raw in self.file:
                now = time.perf_counter()
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if line.startswith("event: "):
                    event = line[7:]
                    if event == "hello":
                        self.hello.set()
                elif line.startswith("data: ") and event == "journal":
                    m = pattern.search(line)
                    if m:
                        self.arrivals.setdefault(int(m.group(1)), now)
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def latency(run_dir: Path, readers: list[StreamReader], tag: str) -> dict:
    """Publish EVENTS rows; the delay of each to the first stream and to every stream."""
    ctx = zmq.Context.instance()
    pub = Publisher(ctx, eps.resolve(run_dir).xsub, "uplink")
    sent: dict[int, float] = {}
    try:
        time.sleep(0.5)                      # the broker has the new publisher's connection
        for i in range(EVENTS):
            sent[i] = time.perf_counter()
            pub.publish("journal", time=time.time(), message="%s %d" % (tag, i))
            time.sleep(GAP)
        wait_for(lambda: all(len(r.arrivals) >= EVENTS for r in readers), 10.0, interval=0.05,
                 message="rows lost")
    except AssertionError:
        pass                                  # reported as lost below
    finally:
        pub.sock.close(linger=1000)
    first = sorted((readers[0].arrivals[i] - t) * 1000 for i, t in sent.items()
                   if i in readers[0].arrivals)
    every = sorted((r.arrivals[i] - t) * 1000 for r in readers for i, t in sent.items()
                   if i in r.arrivals)
    lost = EVENTS * len(readers) - len(every)
    return {"first": first, "every": every, "lost": lost}


def weights(browser: Browser) -> list[tuple[str, int, int, int]]:
    """(path, status, bytes, bytes of the page's own scripts) of each page of the menu and
    of the shared assets."""
    paths = []
    for path, _, children in layout.MENU:
        for p in [path] + [c for c, _ in children]:
            if p not in paths:
                paths.append(p)
    rows = []
    for asset in ("/static/app.js", "/static/style.css"):
        status, _, body = browser.request("GET", asset)
        rows.append((asset, status, len(body), 0))
    for p in paths:
        status, _, body = browser.request("GET", p)
        own = 0
        for script in re.findall(rb'<script src="(/static/[a-z0-9_-]+\.js)"', body):
            if script != b"/static/app.js":
                own += len(browser.request("GET", script.decode())[2])
        rows.append((p, status, len(body), own))
    return rows


def rss_row(name: str, pid: int) -> tuple[str, int, float, float]:
    return (name, pid, status_kb(pid, "VmRSS") / 1024.0, status_kb(pid, "VmHWM") / 1024.0)


def run() -> dict:
    base = Path(tempfile.mkdtemp(prefix="ticgw-bw-"))
    d = Demo(base)
    out: dict = {"notes": []}
    readers: list[StreamReader] = []
    try:
        statuses = d.wait_operational()
        pids = {n: s["pid"] for n, s in statuses.items()}
        d.wait_no_task()
        b = Browser(d.url)
        b.log_in()
        b.request("GET", "/")
        time.sleep(SETTLE)
        order = ["web", "uplink"] + [n for n in pids if n not in ("web", "uplink")]
        out["idle"] = [rss_row(n, pids[n]) for n in order]
        one = StreamReader(b, "banc-1")
        readers.append(one)
        if not one.hello.wait(10):
            raise RuntimeError("no live stream")
        out["lat1"] = latency(d.run_dir, [one], "banc-1")
        one.close()
        readers.clear()
        for _ in range(STREAMS):
            readers.append(StreamReader(b, "banc-20"))
        wait_for(lambda: all(r.hello.is_set() for r in readers), 30, interval=0.05,
                 message="the streams did not all open")
        time.sleep(SETTLE)
        out["streams_seen"] = d.client.call("web", "sessions", timeout=2.0).get("streams")
        out["busy"] = rss_row("web, %d streams" % STREAMS, pids["web"])
        out["lat20"] = latency(d.run_dir, readers, "banc-20")
        out["busy_after"] = rss_row("web, after %d rows" % EVENTS, pids["web"])
        for r in readers:
            r.close()
        readers.clear()
        out["weights"] = weights(b)
        errors = [line.strip() for line in d.output if " web " in line
                  and (" ERROR " in line or "Traceback" in line)]
        if errors:
            out["notes"].append("the web process logged errors: %s" % " | ".join(errors[:3]))
    finally:
        for r in readers:
            r.close()
        d.close()
        shutil.rmtree(base, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> None:
    print("== web: the page's memory (idle, %d live pages), bus event -> page latency, page "
          "weight ==" % STREAMS)
    for line in machine():
        print(line)
    print("the demo (Procfile.demo under honcho: 3 simulated meters, the simulated modem, the "
          "demo server, every service), bytecode cached; VmRSS / VmHWM (peak) from "
          "/proc/<pid>/status; live pages are plain HTTP clients reading /events with a "
          "logged-in cookie; %d journal rows published on the bus %.0f ms apart" % (
              EVENTS, GAP * 1000))
    out = run()
    print()
    print("%-24s %7s %8s %9s" % ("process", "pid", "RSS MiB", "peak MiB"))
    for name, pid, rss, hwm in out["idle"]:
        print("%-24s %7d %8.1f %9.1f" % (name + (" (idle)" if name == "web" else ""), pid, rss,
                                        hwm))
    for key in ("busy", "busy_after"):
        name, pid, rss, hwm = out[key]
        print("%-24s %7d %8.1f %9.1f" % (name, pid, rss, hwm))
    idle_web = out["idle"][0][2]
    print("%d streams cost the web process %+.1f MiB (%+.0f KiB each); the server counted %s "
          "open streams" % (STREAMS, out["busy"][2] - idle_web,
                            (out["busy"][2] - idle_web) * 1024 / STREAMS, out["streams_seen"]))
    print()
    print("%-28s %7s %7s %7s %7s %6s" % ("bus event -> page", "p50 ms", "p90 ms", "p99 ms",
                                          "max ms", "lost"))
    for label, key, part in (("1 stream", "lat1", "first"),
                             ("%d streams, the first" % STREAMS, "lat20", "first"),
                             ("%d streams, any" % STREAMS, "lat20", "every")):
        v = out[key][part]
        print("%-28s %7.2f %7.2f %7.2f %7.2f %6d" % (
            label, percentile(v, 50), percentile(v, 90), percentile(v, 99),
            v[-1] if v else float("nan"), out[key]["lost"]))
    print()
    print("%-26s %6s %9s %13s" % ("page weight", "status", "bytes", "+ own scripts"))
    for path, status, size, own in out["weights"]:
        print("%-26s %6d %9d %13s" % (path, status, size, own or ""))
    print("every page also loads /static/app.js and /static/style.css (cached 5 min); no "
          "compression")
    for note in out["notes"]:
        print("note: %s" % note)


if __name__ == "__main__":
    main(sys.argv[1:])
