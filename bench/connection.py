"""A daily connection with 3 meters and a day of 10-minute data, per kind of FTP server: duration,
FTP commands, round trips, bytes.

    python -m bench connection              (or python -m bench.connection [--frames-per-sample N]
                                             [--servers pyftpdlib,vsftpd,proftpd] [--no-slow])

Issues 4 and 8's benchmark; printed, not asserted. Targets: a daily connection under 15 s on a
40 kbit/s uplink with 600 ms of round trip, whatever the server; at most 3 KB per meter-day.

1. The day. Three simulated meters (sim.meters: CBEMM-ICC, CBETM, Linky in standard mode), each
   with the family's shipped definition (definitions.default_for). For 24 h of simulated time,
   every 10 minutes: ``FRAMES_PER_SAMPLE`` frames spread over the period are decoded by the
   acquisition's FrameDecoder and fed to its Sampler, then ``row()`` goes to a Spool record
   stamped at the period's end, and the Sampler's alarms to the spool's alarm records. The
   connection's ``requesting`` phase seals them, so the data and alarm files are exactly the
   gateway's. The per meter-day size is the sealed data file divided by 3; a side run seals each
   meter alone. Three such days are simulated, one per run (below).
2. The servers. pyftpdlib (``sim.ftp_server.FtpTestServer``, MLST), and Debian's vsftpd (no
   MLST: LIST, SIZE, MDTM) and proftpd (MLST), run by ``sim.ftp_daemons`` (root only; unpacked
   by tests/setup/system.sh). All plain FTP: the delay proxy must read the 227 replies.
3. The runs. ``bench.connection_runner`` (a subprocess) runs every phase of
   ``statecharts.connection.PHASES`` on a ``services.uplink.phases.Connection``, then
   ``closing()``, with ``sim.ntp_server.NtpResponder`` as NTP server; the bus is a fake that
   seals the spool. Against each server, a gateway of its own: "first", a new gateway and an
   empty server, so the configuration and definition files are uploaded too; "steady", the same
   gateway the next day, nothing changed but the new day of data; "steady" again a day later
   with FTP pipelining off. Commands, round trips, connections and bytes are the client's
   ``FtpSession.stats``; the verbs per run are counted from the server's own log.
4. The slow link (root needed; without root, loopback only and pyftpdlib only): a network
   namespace and a veth pair; tbf shapes the gateway's egress to ``UP_KBIT`` (and the server
   side's to ``DOWN_KBIT``); the runner runs inside the namespace (``ip netns exec``). Latency:
   netem is not in this kernel, so a userspace delay proxy (``DelayProxy``, in the root
   namespace on the veth address) holds every chunk ``DELAY_S`` in each direction on the FTP
   control connection, on each passive data connection (it rewrites the 227/229 replies to its
   own listeners) and on NTP's UDP. TCP handshakes are not delayed (the proxy's kernel accepts
   at once): the real link adds one RTT per TCP connection, added to the "estimated" duration.
   The namespace and interfaces are removed at the end, even on error; the runner is killed
   after ``RUN_TIMEOUT_S``.

Addresses: 10.200.N.0/30 on the veth pair only (the namespace's side .2, the root side .1).
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import json
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
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from tic import definitions
from tic.codec import FrameDecoder
from services.acquisition.sampler import Sampler
from services.acquisition.spool import Spool
from sim import ftp_daemons
from sim.ftp_server import FtpTestServer
from sim.meters import make_meter
from sim.ntp_server import NtpResponder
from ticgw.config import ConfigStore

REPO = Path(__file__).resolve().parents[1]

METERS = (("CBEMM-ICC", None), ("CBETM", None), ("LINKY", "standard"))
DAY0 = datetime(2024, 5, 1, tzinfo=timezone.utc)  # the first simulated day (UTC midnight)
PERIOD_S = 600                  # DAQ period: 10 minutes
SAMPLES = 144                   # a day of periods
FRAMES_PER_SAMPLE = 10          # frames decoded per period, spread over it
CONNECT_AFTER_S = 30            # the daily connection starts 30 s after midnight

UP_KBIT = 40                    # gateway -> server
DOWN_KBIT = 80                  # server -> gateway (GPRS downlinks are faster than uplinks)
TBF = "burst 1600 limit 3000"   # tbf's bucket and queue (bytes)
DELAY_S = 0.3                   # one-way latency added by the delay proxy
RUN_TIMEOUT_S = 240             # a connection that takes longer is killed
SIZE_TARGET = 3000              # bytes per meter-day
DURATION_TARGET_S = 15.0        # on the slow link


# ============================================================================ the day's data

@dataclass
class Day:
    records: list[tuple] = field(default_factory=list)   # append_record arguments
    alarms: list[tuple] = field(default_factory=list)    # append_alarm arguments
    frames: int = 0


def simulate(days: int, site: str, frames_per_sample: int = FRAMES_PER_SAMPLE) -> list[Day]:
    """``days`` consecutive days of the three meters, as the acquisition service records them."""
    out = [Day() for _ in range(days)]
    start = DAY0.replace(tzinfo=None)
    for input_no, (family, mode) in enumerate(METERS, 1):
        meter = make_meter(family, mode, seed=input_no, start=start)
        definition = definitions.default_for(site, family, mode)
        sampler = Sampler(definition, "TIC%d" % input_no)
        decoder = FrameDecoder()
        serial = meter.serial
        step = PERIOD_S / frames_per_sample
        for d, day in enumerate(out):
            t_day = DAY0.timestamp() + d * 86400
            for k in range(SAMPLES):
                t_period = t_day + k * PERIOD_S
                for j in range(frames_per_sample):
                    meter.advance(max(step - meter.interval, 0.0))
                    t = t_period + (j + 1) * step
                    for frame in decoder.feed(meter.next_frame()):
                        day.frames += 1
                        values = frame.values()
                        if not values:
                            continue
                        for a in sampler.add(values, t):
                            day.alarms.append((a.time, a.source, a.definition, a.name, a.index,
                                               a.value))
                row = sampler.row()
                if row is not None:
                    day.records.append((input_no, serial, definition.name, t_period + PERIOD_S,
                                        row, definition.columns()))
    for day in out:
        day.alarms.sort(key=lambda a: a[0])
    return out


def load_day(data_dir: Path, site: str, day: Day) -> None:
    """Write the day's records into the gateway's spool (unsealed, as at the connection)."""
    spool = Spool(data_dir, site)
    try:
        events = ([(r[3], 0, "r", r) for r in day.records]
                  + [(a[0], 1, "a", a) for a in day.alarms])
        for _, _, kind, args in sorted(events, key=lambda e: (e[0], e[1])):
            if kind == "r":
                spool.append_record(*args[:5], header=args[5])
            else:
                spool.append_alarm(*args)
    finally:
        spool.close()


def meter_sizes(day: Day, site: str) -> dict[str, int]:
    """Each meter's day sealed alone: bytes of its .csv.gz."""
    sizes = {}
    with tempfile.TemporaryDirectory(prefix="ticgw-bench-size-") as tmp:
        for input_no, (family, mode) in enumerate(METERS, 1):
            spool = Spool(Path(tmp) / str(input_no), site, clock=lambda: DAY0.timestamp() + 86400)
            for r in day.records:
                if r[0] == input_no:
                    spool.append_record(*r[:5], header=r[5])
            (path,) = [p for p in spool.seal() if p.parent.name == "DATA"]
            sizes[family + (" " + mode if mode else "")] = path.stat().st_size
            spool.close()
    return sizes


# ============================================================================ the gateway

def prepare_gateway(data_dir: Path, ftp_host: str, ftp_port: int, user: str, password: str,
                    ntp_address: str) -> str:
    """A gateway's data dir: configuration files, three inputs, their definition files."""
    store = ConfigStore(data_dir)
    store.ensure_files()
    site = store.settings.site_id
    changes = {"FTP_Server": ftp_host, "FTP_Port": str(ftp_port), "FTP_Login": user,
               "FTP_Password": password, "NTP_Server1": ntp_address, "NTP_Server2": ""}
    def_dir = data_dir / "def"
    def_dir.mkdir(parents=True, exist_ok=True)
    for n, (family, mode) in enumerate(METERS, 1):
        d = definitions.default_for(site, family, mode)
        (def_dir / d.name).write_text(d.render(), encoding="utf-8")
        changes["TIC_Port[%d]" % n] = "/dev/ttyS%d" % (n - 1)
        changes["TIC_FileDefName[%d]" % n] = d.name
    store.update(changes)
    return site


def run_connection(data_dir: Path, wall_start: float, netns: str | None = None,
                   pipelining: bool = True) -> dict:
    """bench.connection_runner in a subprocess (inside ``netns`` if given); its JSON result."""
    args = json.dumps({"data_dir": str(data_dir), "wall_start": wall_start,
                       "pipelining": pipelining})
    argv = [sys.executable, "-m", "bench.connection_runner", args]
    if netns:
        argv = ["ip", "netns", "exec", netns] + argv
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    p = subprocess.run(argv, cwd=str(REPO), env=env, capture_output=True, text=True,
                       timeout=RUN_TIMEOUT_S)
    if p.returncode != 0 or not p.stdout.strip():
        raise RuntimeError("connection runner failed (rc %d):\n%s" % (p.returncode, p.stderr))
    result = json.loads(p.stdout.strip().splitlines()[-1])
    result["stderr"] = p.stderr
    return result


# ============================================================================ the slow link

def _sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=20, check=check)


class SlowLink:
    """A namespace behind a veth pair, tbf on both ends; removed again by close()."""

    def __init__(self, up_kbit: int = UP_KBIT, down_kbit: int = DOWN_KBIT, tbf: str = TBF):
        tag = os.getpid() % 100000
        self.ns = "ticgw-bconn%d" % tag
        self.host_if, self.ns_if = "tgbc%dh" % tag, "tgbc%dg" % tag
        self.up_kbit, self.down_kbit, self.tbf = up_kbit, down_kbit, tbf
        self.host_ip = self.ns_ip = ""

    @staticmethod
    def available() -> str | None:
        """None if this machine can make the link, else why not."""
        if os.geteuid() != 0:
            return "not root"
        for tool in ("ip", "tc"):
            if shutil.which(tool) is None:
                return "no %s command" % tool
        return None

    def _free_subnet(self) -> int:
        used = _sh("ip", "-4", "-o", "addr", "show").stdout
        for n in range(os.getpid() % 200 + 20, 256):
            if "10.200.%d." % n not in used:
                return n
        raise RuntimeError("no free 10.200.N.0/30 subnet")

    def __enter__(self) -> "SlowLink":
        try:
            n = self._free_subnet()
            self.host_ip, self.ns_ip = "10.200.%d.1" % n, "10.200.%d.2" % n
            ns = ("ip", "netns", "exec", self.ns)
            _sh("ip", "netns", "add", self.ns)
            _sh("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
            _sh("ip", "link", "set", self.ns_if, "netns", self.ns)
            _sh("ip", "addr", "add", self.host_ip + "/30", "dev", self.host_if)
            _sh("ip", "link", "set", self.host_if, "up")
            _sh(*ns, "ip", "addr", "add", self.ns_ip + "/30", "dev", self.ns_if)
            _sh(*ns, "ip", "link", "set", self.ns_if, "up")
            _sh(*ns, "ip", "link", "set", "lo", "up")
            _sh(*ns, "tc", "qdisc", "add", "dev", self.ns_if, "root", "tbf",
                "rate", "%dkbit" % self.up_kbit, *self.tbf.split())
            _sh("tc", "qdisc", "add", "dev", self.host_if, "root", "tbf",
                "rate", "%dkbit" % self.down_kbit, *self.tbf.split())
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        # Deleting the namespace removes the veth end inside it, and with it its peer.
        _sh("ip", "netns", "del", self.ns, check=False)
        if _sh("ip", "link", "show", self.host_if, check=False).returncode == 0:
            _sh("ip", "link", "del", self.host_if, check=False)

    def drops(self) -> tuple[int, int]:
        """Packets tbf dropped so far because its queue was full: (up, down)."""
        up = _sh("ip", "netns", "exec", self.ns, "tc", "-s", "qdisc", "show", "dev", self.ns_if)
        down = _sh("tc", "-s", "qdisc", "show", "dev", self.host_if)
        return tuple(int(m.group(1)) if (m := re.search(r"dropped (\d+)", p.stdout)) else 0
                     for p in (up, down))

    def counters(self) -> tuple[int, int]:
        """(bytes up, bytes down) on the wire so far, Ethernet frames included."""
        base = Path("/sys/class/net") / self.host_if / "statistics"
        return (int((base / "rx_bytes").read_text()), int((base / "tx_bytes").read_text()))


# ============================================================================ the delay proxy

_PASV = re.compile(rb"^227 .*?(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)")
_EPSV = re.compile(rb"^229 .*?\(\|\|\|(\d+)\|\)")


class DelayProxy:
    """Adds ``delay`` seconds each way to an FTP server (control and passive data connections)
    and to an NTP server (UDP), listening on ``host``. asyncio in a thread of its own."""

    def __init__(self, host: str, ftp: tuple[str, int], ntp: tuple[str, int], delay: float):
        self.host, self.ftp, self.ntp, self.delay = host, ftp, ntp, delay
        self.ftp_port = self.ntp_port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self._udp_socks: list[socket.socket] = []

    def __enter__(self) -> "DelayProxy":
        self._thread = threading.Thread(target=self._run, name="delay-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._error:
            self.close()
            raise RuntimeError("delay proxy did not start: %s" % self._error)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._start())
        except BaseException as e:  # noqa: BLE001 - reported to __enter__
            self._error = e
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            for s in self._servers:
                s.close()
            for sock in self._udp_socks:
                try:
                    loop.remove_reader(sock)
                except Exception:  # noqa: BLE001
                    pass
                sock.close()
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:  # gather() of nothing would look for this thread's (absent) current loop
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.close()

    async def _start(self) -> None:
        server = await asyncio.start_server(self._control, self.host, 0)
        self._servers.append(server)
        self.ftp_port = server.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _UdpRelay(self), local_addr=(self.host, 0))
        self.ntp_port = transport.get_extra_info("sockname")[1]

    async def _control(self, creader, cwriter) -> None:
        await self._relay(creader, cwriter, self.ftp, rewrite=True)

    async def _relay(self, creader, cwriter, target, rewrite=False) -> None:
        writers = [cwriter]
        try:
            sreader, swriter = await asyncio.open_connection(*target)
            writers.append(swriter)
            await asyncio.gather(self._pump(creader, swriter),
                                 self._pump(sreader, cwriter, self._rewrite if rewrite else None),
                                 return_exceptions=True)
        except (OSError, asyncio.CancelledError):
            # Cancelled: the proxy is stopping. Returning normally rather than re-raising keeps
            # Python 3.11's stream callback (task.exception() on a cancelled task) quiet.
            pass
        finally:
            for w in writers:
                w.close()

    async def _pump(self, reader, writer, transform=None) -> None:
        """Copy reader to writer, each chunk ``delay`` seconds after it arrived, then EOF."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()

        async def deliver():
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if data is None:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()

        sender = asyncio.create_task(deliver())
        pending = b""
        due = loop.time() + self.delay
        try:
            while True:
                data = await reader.read(65536)
                due = loop.time() + self.delay
                if not data:
                    break
                if transform is not None:  # whole lines only: replies are rewritten by line
                    pending += data
                    cut = pending.rfind(b"\n") + 1
                    data, pending = pending[:cut], pending[cut:]
                    if data:
                        data = await transform(data)
                if data:
                    queue.put_nowait((due, data))
        except OSError:
            pass
        if pending:
            queue.put_nowait((due, pending))
        queue.put_nowait((due, None))
        try:
            await sender
        except OSError:
            pass

    async def _rewrite(self, data: bytes) -> bytes:
        """Point 227 and 229 replies at a listener of ours that relays to the server's port."""
        out = []
        for line in data.splitlines(keepends=True):
            m = _PASV.match(line)
            if m:
                ip = ".".join(g.decode() for g in m.groups()[:4])
                port = int(m.group(5)) * 256 + int(m.group(6))
                mine = await self._data_listener((ip, port))
                line = b"227 Entering Passive Mode (%s,%d,%d).\r\n" % (
                    self.host.replace(".", ",").encode(), mine // 256, mine % 256)
            else:
                m = _EPSV.match(line)
                if m:
                    mine = await self._data_listener((self.ftp[0], int(m.group(1))))
                    line = b"229 Entering extended passive mode (|||%d|).\r\n" % mine
            out.append(line)
        return b"".join(out)

    async def _data_listener(self, target: tuple[str, int]) -> int:
        """A one-connection listener relaying to ``target``; closed after use or 120 s."""
        server = None

        async def handle(reader, writer):
            server.close()
            await self._relay(reader, writer, target)

        server = await asyncio.start_server(handle, self.host, 0)
        self._servers.append(server)
        asyncio.get_running_loop().call_later(120, server.close)
        return server.sockets[0].getsockname()[1]


class _UdpRelay(asyncio.DatagramProtocol):
    """NTP through the proxy: each datagram forwarded after ``delay``, each reply likewise."""

    def __init__(self, proxy: DelayProxy):
        self.proxy = proxy
        self.upstream: dict[tuple, socket.socket] = {}

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data, addr) -> None:
        asyncio.get_running_loop().call_later(self.proxy.delay, self._forward, data, addr)

    def _forward(self, data, addr) -> None:
        sock = self.upstream.get(addr)
        if sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.connect(self.proxy.ntp)
            self.upstream[addr] = sock
            self.proxy._udp_socks.append(sock)
            asyncio.get_running_loop().add_reader(sock, self._reply, sock, addr)
        try:
            sock.send(data)
        except OSError:
            pass

    def _reply(self, sock, addr) -> None:
        try:
            data = sock.recv(4096)
        except OSError:
            return
        asyncio.get_running_loop().call_later(self.proxy.delay, self.transport.sendto, data, addr)


# ============================================================================ the servers

SERVER_KINDS = ("pyftpdlib", "vsftpd", "proftpd")
HAS_MLST = {"pyftpdlib": True, "vsftpd": False, "proftpd": True}
#: The runs against each server: (scenario, day of data, pipelining). "first" is a new gateway
#: and an empty server; each "steady" is the same gateway a day later, nothing else changed.
RUNS = (("first", 0, True), ("steady", 1, True), ("steady", 2, False))


def server_unavailable(kind: str) -> str | None:
    """None if the server ``kind`` can run here, else why not."""
    if kind == "pyftpdlib":
        return None
    return ftp_daemons.unavailable(kind)


def server_version(kind: str) -> str:
    if kind == "pyftpdlib":
        try:
            import pyftpdlib
            return pyftpdlib.__ver__
        except (ImportError, AttributeError):
            return ""
    return ftp_daemons.version(kind)


class Server:
    """One kind of FTP server, plain FTP on loopback: where to log in, and the commands it
    received, one run at a time (:meth:`take`)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._impl = FtpTestServer() if kind == "pyftpdlib" else ftp_daemons.FtpDaemon(kind)
        self._seen = 0

    def __enter__(self) -> "Server":
        self._impl.__enter__()
        if self.kind != "pyftpdlib":
            # The daemon's readiness probe (a greeting, then QUIT) is no part of any run; its
            # session process may log the QUIT a moment after the probe has gone.
            end = time.monotonic() + 2.0
            while not self._impl.commands() and time.monotonic() < end:
                time.sleep(0.02)
        self.take()
        return self

    def __exit__(self, *exc) -> None:
        self._impl.__exit__(*exc)

    @property
    def host(self) -> str:
        return self._impl.host

    @property
    def port(self) -> int:
        return self._impl.port

    @property
    def user(self) -> str:
        return self._impl.user

    @property
    def password(self) -> str:
        return self._impl.password

    def take(self) -> collections.Counter:
        """The verbs of the command lines received since the last call, counted."""
        lines = self._impl.commands
        lines = list(lines) if isinstance(lines, list) else lines()
        new, self._seen = lines[self._seen:], len(lines)
        return collections.Counter(c.split(" ", 1)[0].upper() for c in new if c.strip())


# ============================================================================ scenarios

@dataclass
class Outcome:
    link: str                 # "loopback" or "slow"
    server: str               # a SERVER_KINDS
    scenario: str             # "first" or "steady"
    pipelining: bool
    result: dict              # the runner's JSON
    verbs: collections.Counter = field(default_factory=collections.Counter)  # server side
    wire: tuple[int, int] | None = None   # bytes up, down on the veth (slow link only)
    drops: tuple[int, int] | None = None  # packets tbf dropped, up, down (slow link only)

    @property
    def label(self) -> str:
        return "%-8s %-9s %-6s %-3s" % (self.link, self.server, self.scenario,
                                        "on" if self.pipelining else "off")

    @property
    def ftp(self) -> dict:
        return self.result["ftp"]

    @property
    def handshakes(self) -> int:
        """TCP connections opened: the control connection(s) and each passive data connection."""
        return self.ftp.get("connects", 0) + self.ftp.get("data_connections", 0)

    def estimate(self, rtt: float) -> float:
        """The duration on a real link of that RTT: the proxy's kernel completes every TCP
        handshake at once, a real link takes one round trip for each."""
        return self.result["duration_s"] + self.handshakes * rtt


def _series(link: str, srv: Server, data_dir: Path, site: str, days: list[Day],
            slow_link: SlowLink | None = None) -> list[Outcome]:
    """The RUNS against one server: each loads its day into the spool and connects once."""
    out = []
    settle = DELAY_S + 0.3 if slow_link else 0.2
    for scenario, d, pipelining in RUNS:
        load_day(data_dir, site, days[d])
        wall = DAY0.timestamp() + (d + 1) * 86400 + CONNECT_AFTER_S
        w0, d0 = (slow_link.counters(), slow_link.drops()) if slow_link else (None, None)
        result = run_connection(data_dir, wall, slow_link.ns if slow_link else None, pipelining)
        # QUIT is sent without waiting for its reply: let it reach the server (through the
        # proxy's delay) so that it is counted with this run.
        time.sleep(settle)
        o = Outcome(link, srv.kind, scenario, pipelining, result, srv.take())
        if slow_link:
            w1, d1 = slow_link.counters(), slow_link.drops()
            o.wire = (w1[0] - w0[0], w1[1] - w0[1])
            o.drops = (d1[0] - d0[0], d1[1] - d0[1])
        out.append(o)
    return out


def loopback(days: list[Day], root: Path, kinds: tuple[str, ...]
             ) -> tuple[list[Outcome], list[str]]:
    """The runs against each server kind on loopback; and notes on the kinds that did not run."""
    outcomes, notes = [], []
    for kind in kinds:
        why = server_unavailable(kind)
        if why:
            notes.append("%s not run: %s" % (kind, why))
            continue
        try:
            with Server(kind) as srv, NtpResponder() as ntp:
                data_dir = root / ("loopback-" + kind)
                site = prepare_gateway(data_dir, srv.host, srv.port, srv.user, srv.password,
                                       ntp.address)
                outcomes += _series("loopback", srv, data_dir, site, days)
        except (RuntimeError, subprocess.SubprocessError) as e:
            notes.append("%s on loopback failed: %s" % (kind, str(e).strip()[:2000]))
    return outcomes, notes


def slow(days: list[Day], root: Path, kinds: tuple[str, ...], tbf: str = TBF
         ) -> tuple[list[Outcome], str, list[str]]:
    """The runs through the namespace link and the delay proxy; how the link was made (or why
    it was not); notes on server kinds that failed."""
    why_not = SlowLink.available()
    if why_not is not None:
        return [], "skipped (%s: the network namespace and tc need root)" % why_not, []
    link = SlowLink(tbf=tbf)
    try:
        link.__enter__()   # removes what it made if a step fails
    except (OSError, subprocess.SubprocessError) as e:
        return [], "skipped (network namespace set-up failed: %s)" % (
            getattr(e, "stderr", "") or e), []
    how = ("netns + veth, tbf %d kbit/s up / %d kbit/s down (%s), delay proxy %.0f ms each way "
           "(RTT %.0f ms)" % (UP_KBIT, DOWN_KBIT, tbf, DELAY_S * 1000, 2 * DELAY_S * 1000))
    outcomes, notes = [], []
    # SIGTERM too must leave no namespace behind: make it unwind through the finally.
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        for kind in kinds:
            try:
                with Server(kind) as srv, NtpResponder() as ntp, \
                        DelayProxy(link.host_ip, (srv.host, srv.port), (ntp.host, ntp.port),
                                   DELAY_S) as proxy:
                    data_dir = root / ("slow-" + kind)
                    site = prepare_gateway(data_dir, link.host_ip, proxy.ftp_port, srv.user,
                                           srv.password,
                                           "%s:%d" % (link.host_ip, proxy.ntp_port))
                    outcomes += _series("slow", srv, data_dir, site, days, link)
            except (RuntimeError, subprocess.SubprocessError) as e:
                notes.append("%s on the slow link failed: %s" % (kind, str(e).strip()[:2000]))
        return outcomes, how, notes
    finally:
        link.close()
        signal.signal(signal.SIGTERM, previous)


# ============================================================================ report

def _machine() -> list[str]:
    try:
        from bench.acq_runner import machine
        return machine()
    except Exception:  # noqa: BLE001 - the context line is a nicety
        import platform
        return ["machine: %d cores, Linux %s; Python %s" % (os.cpu_count() or 0,
                                                           platform.release(),
                                                           platform.python_version())]


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def report(outcomes: list[Outcome], how: str, sizes: dict[str, int], day: Day,
           frames_per_sample: int, kinds: tuple[str, ...], notes: list[str]) -> None:
    rtt, up_rate, down_rate = 2 * DELAY_S, UP_KBIT * 1000 / 8, DOWN_KBIT * 1000 / 8
    ran = [k for k in kinds if any(o.server == k for o in outcomes)]
    print("\nservers (all on 127.0.0.1, the client's / holding CONFIG DEF DATA ALARM CMD LOG BIN):")
    for k in ran:
        origin = "sim.ftp_server.FtpTestServer" if k == "pyftpdlib" else \
            "Debian's, sim.ftp_daemons, chrooted"
        print("  %-9s %-7s %s; %s" % (k, server_version(k) or "?", origin,
                                      "MLST/MLSD" if HAS_MLST[k] else "no MLST (LIST, SIZE, MDTM)"))
    for n in notes:
        print("  " + n)
    print("  plain FTP only: the slow link's delay proxy reads and rewrites the 227/229 passive "
          "replies, which TLS would hide (loopback is plain too, to compare like with like)")
    print("link (slow): " + how)
    print("runs per server: first (new gateway, empty server), steady (the next day), steady "
          "again with pipelining off\n  (FtpSettings.pipelining=False in the runner: what "
          "FTP_Pipelining=0 does, the configuration files left alone)")

    print("\n%-8s %-9s %-6s %-3s %10s %10s %6s %6s %5s %7s" % (
        "link", "server", "run", "pip", "duration s", "estimated", "FTP", "round", "files",
        "target"))
    print("%-8s %-9s %-6s %-3s %10s %10s %6s %6s %5s %7s" % (
        "", "", "", "", "measured", "s", "cmds", "trips", "", "15 s"))
    for o in outcomes:
        is_slow = o.link == "slow"
        est = o.estimate(rtt)
        print("%s %10.2f %10s %6d %6d %5d %7s" % (
            o.label, o.result["duration_s"], "%.1f" % est if is_slow else "-",
            o.ftp.get("commands", 0), o.ftp.get("round_trips", 0), o.ftp.get("uploads", 0),
            _verdict(est < DURATION_TARGET_S) if is_slow else "-"))
    print("  pip: FTP pipelining. estimated: measured + one RTT (%.1f s) per TCP connection "
          "(control + passive data connections,\n  FtpSession.stats connects + data_connections), "
          "which the proxy's kernel accepts at once; slow link only. FTP cmds: command lines\n"
          "  sent (FtpSession.stats commands, QUIT included). round trips: FtpSession.stats "
          "round_trips = commands - pipelined - unanswered\n  + connects + data connections "
          "(+ TLS handshakes: none here); NTP's one exchange not included. files: uploads "
          "completed.\n  target: estimated under %.0f s on the slow link (the goal is for the "
          "daily, steady connection)." % (rtt, DURATION_TARGET_S))

    slow_steady = [o for o in outcomes if o.link == "slow" and o.scenario == "steady"
                   and o.pipelining]
    if slow_steady:
        print("\ngoal, a daily connection under %.0f s on the slow link with every kind of "
              "server (steady, pipelining on, estimated): %s" % (
                  DURATION_TARGET_S, _verdict(all(o.estimate(rtt) < DURATION_TARGET_S
                                                  for o in slow_steady))))
        print("  estimated: " + ", ".join(
            "%s %.1f s %s" % (o.server, o.estimate(rtt),
                              _verdict(o.estimate(rtt) < DURATION_TARGET_S))
            for o in slow_steady))
        print("  measured (TCP handshakes not delayed): " + ", ".join(
            "%s %.1f s %s" % (o.server, o.result["duration_s"],
                              _verdict(o.result["duration_s"] < DURATION_TARGET_S))
            for o in slow_steady))
    elif not any(o.link == "slow" for o in outcomes):
        print("\ngoal (a daily connection under %.0f s on the slow link): not measured, the "
              "slow link was %s" % (DURATION_TARGET_S, how))

    print("\n%-29s %10s %9s %9s %10s %8s %10s %13s %9s" % (
        "bytes and connections", "bytes sent", "received", "pipelined", "unanswered",
        "connects", "data conns", "wire up/down", "tbf drops"))
    for o in outcomes:
        f = o.ftp
        print("%s %10d %9d %9d %10d %8d %10d %13s %9s" % (
            o.label, f.get("bytes_sent", 0), f.get("bytes_received", 0), f.get("pipelined", 0),
            f.get("unanswered", 0), f.get("connects", 0), f.get("data_connections", 0),
            "%d/%d" % o.wire if o.wire else "-", "%d/%d" % o.drops if o.drops else "-"))
    print("  bytes: FTP command and reply lines + file and listing payload (FtpSession.stats); "
          "wire: veth bytes incl. TCP/IP headers and NTP")

    first = outcomes[0].result
    data = [s for k, n, s in first["sealed"] if k == "DATA"]
    alarm = [s for k, n, s in first["sealed"] if k == "ALARM"]
    per = sum(data) / len(METERS)
    print("\nper meter-day: %d B (the day's data file %d B / %d meters; target %d B: %s); "
          "alarm file %d B"
          % (per, sum(data), len(METERS), SIZE_TARGET, _verdict(per <= SIZE_TARGET), sum(alarm)))
    print("  each meter sealed alone: " + ", ".join("%s %d B" % kv for kv in sizes.items()))
    print("  %d rows per meter, %d frames decoded per meter-day (%d per 10-min period), "
          "%d alarms" % (SAMPLES, day.frames // len(METERS), frames_per_sample, len(day.alarms)))

    print("\nFTP commands by verb (server side, from its own log):")
    for o in outcomes:
        print("  %s  %s" % (o.label, " ".join("%s %d" % kv for kv in sorted(
            o.verbs.items(), key=lambda kv: (-kv[1], kv[0])))))

    shown = [o for o in outcomes if o.link == "slow"] or outcomes
    print("\nphase times, s (%s):" % shown[0].link)
    phases = list(shown[0].result["phase_s"])
    print("  %-29s " % "" + " ".join("%8s" % p[:8] for p in phases))
    for o in shown:
        print("  %s " % o.label + " ".join("%8.2f" % o.result["phase_s"].get(p, 0)
                                              for p in phases))
    for o in outcomes:
        bad = {p: v for p, v in o.result["outcomes"].items() if v != "done"}
        if bad:
            print("  %s: phases not done: %s" % (o.label, bad))

    slow_runs = [o for o in outcomes if o.link == "slow"]
    if not slow_runs:
        return
    print("\nwhere the time goes on the slow link (RTT %.1f s, %.0f B/s up, %.0f B/s down): "
          "the round trips the proxy delays\n(round trips - TCP handshakes, + NTP's one) x RTT, "
          "+ the veth's bytes up and down at the tbf rates (headers, retransmissions\n"
          "and NTP included):" % (rtt, up_rate, down_rate))
    for o in slow_runs:
        delayed = o.ftp.get("round_trips", 0) - o.handshakes
        if o.result["outcomes"].get("ntp") == "done":
            delayed += 1
        up, down = o.wire or (0, 0)
        model = delayed * rtt + up / up_rate + down / down_rate
        print("  %s %5.1f s measured ~ %2d x %.1f = %4.1f s + %5d B up %.1f s + %5d B down "
              "%.1f s = %4.1f s" % (o.label, o.result["duration_s"], delayed, rtt,
                                    delayed * rtt, up, up / up_rate, down, down / down_rate,
                                    model))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.connection", description=__doc__.split(
        "\n", 1)[0])
    ap.add_argument("--frames-per-sample", type=int, default=FRAMES_PER_SAMPLE)
    ap.add_argument("--no-slow", action="store_true", help="loopback only")
    ap.add_argument("--servers", default=",".join(SERVER_KINDS),
                    help="server kinds, comma-separated (default %(default)s)")
    ap.add_argument("--tbf", default=TBF, help="tbf options after the rate (default %(default)r)")
    args = ap.parse_args(argv if argv is not None else [])
    kinds = tuple(k.strip() for k in args.servers.split(",") if k.strip())
    unknown = [k for k in kinds if k not in SERVER_KINDS]
    if unknown:
        ap.error("unknown server kind(s) %s (from %s)" % (", ".join(unknown),
                                                          ", ".join(SERVER_KINDS)))
    print("== connection: a daily connection, 3 meters, a day of 10-minute data, per FTP "
          "server kind ==")
    for line in _machine():
        print(line)
    t = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ticgw-bench-conn-") as tmp:
        root = Path(tmp)
        # The site ID (file name prefix) of a new gateway, for the definitions' names.
        site = ConfigStore(root / "probe").settings.site_id
        days = simulate(len(RUNS), site, args.frames_per_sample)
        sizes = meter_sizes(days[0], site)
        print("simulated %d days x 3 meters in %.1f s" % (len(days), time.perf_counter() - t))
        outcomes, notes = loopback(days, root, kinds)
        how = "not run (--no-slow)"
        if not args.no_slow:
            ran = tuple(k for k in kinds if any(o.server == k for o in outcomes))
            slow_outcomes, how, slow_notes = slow(days, root, ran, args.tbf)
            outcomes += slow_outcomes
            notes += slow_notes
    if not outcomes:
        print("no connection ran:\n  " + "\n  ".join(notes))
        return
    report(outcomes, how, sizes, days[0], args.frames_per_sample, kinds, notes)
    print("\nbench connection: %.0f s in all" % (time.perf_counter() - t))


if __name__ == "__main__":
    main(sys.argv[1:])
