"""A daily connection with 3 meters and a day of 10-minute data: duration, bytes, FTP commands.

    python -m bench connection              (or python -m bench.connection [--frames-per-sample N])

Issue 4's benchmark; printed, not asserted. Targets: under 15 s on a 40 kbit/s uplink, at most
3 KB per meter-day.

1. The day. Three simulated meters (sim.meters: CBEMM-ICC, CBETM, Linky in standard mode), each
   with the family's shipped definition (definitions.default_for). For 24 h of simulated time,
   every 10 minutes: ``FRAMES_PER_SAMPLE`` frames spread over the period are decoded by the
   acquisition's FrameDecoder and fed to its Sampler, then ``row()`` goes to a Spool record
   stamped at the period's end, and the Sampler's alarms to the spool's alarm records. The
   connection's ``requesting`` phase seals them, so the data and alarm files are exactly the
   gateway's. The per meter-day size is the sealed data file divided by 3; a side run seals each
   meter alone.
2. The connection. ``bench.connection_runner`` (a subprocess) runs every phase of
   ``statecharts.connection.PHASES`` on a ``services.uplink.phases.Connection``, then
   ``closing()``, against ``sim.ftp_server.FtpTestServer`` and ``sim.ntp_server.NtpResponder``;
   the bus is a fake that seals the spool. "first": a new gateway and an empty server, so the
   configuration and definition files are uploaded too; "steady": the same gateway the next
   day, nothing changed but the new day of data.
3. The slow link (root needed): a network namespace and a veth pair; tbf shapes the gateway's
   egress to ``UP_KBIT`` (and the server side's to ``DOWN_KBIT``); the runner runs inside the
   namespace (``ip netns exec``). Latency: netem is not in this kernel, so a userspace delay
   proxy (``DelayProxy``, in the root namespace on the veth address) holds every chunk
   ``DELAY_S`` in each direction on the FTP control connection, on each passive data connection
   (it rewrites the 227/229 replies to its own listeners) and on NTP's UDP. TCP handshakes are
   not delayed (the proxy's kernel accepts at once): the real link adds about one RTT per TCP
   connection, reported as "+handshakes". Without root or ip/tc, the fallback is the FTP
   server's own throttle (STOR data at UP_KBIT) and delayed replies on loopback, and the table
   says so. The namespace and interfaces are removed at the end, even on error; the runner is
   killed after ``RUN_TIMEOUT_S``.

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


def run_connection(data_dir: Path, wall_start: float, netns: str | None = None) -> dict:
    """bench.connection_runner in a subprocess (inside ``netns`` if given); its JSON result."""
    args = json.dumps({"data_dir": str(data_dir), "wall_start": wall_start})
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


# ============================================================================ scenarios

@dataclass
class Outcome:
    scenario: str
    result: dict
    commands: collections.Counter
    stors: int
    retrs: int
    wire: tuple[int, int] | None = None  # bytes up, down on the veth (slow link only)
    drops: tuple[int, int] | None = None  # packets tbf dropped, up, down (slow link only)


def _server_counts(srv: FtpTestServer) -> tuple[collections.Counter, int, int]:
    verbs = collections.Counter(c.split(" ", 1)[0].upper() for c in srv.commands)
    stors = sum(1 for c, _, ok, _ in srv.transfers if c == "STOR" and ok)
    retrs = sum(1 for c, _, ok, _ in srv.transfers if c == "RETR" and ok)
    return verbs, stors, retrs


def _connect_twice(label: str, data_dir: Path, site: str, days: list[Day], srv: FtpTestServer,
                   netns: str | None = None, link: SlowLink | None = None,
                   before_each=None) -> list[Outcome]:
    out = []
    for d, (kind, day) in enumerate(zip(("first", "steady"), days)):
        load_day(data_dir, site, day)
        srv.commands.clear()
        srv.transfers.clear()
        if before_each is not None:
            before_each(srv)
        wall = DAY0.timestamp() + (d + 1) * 86400 + CONNECT_AFTER_S
        w0, d0 = (link.counters(), link.drops()) if link else (None, None)
        result = run_connection(data_dir, wall, netns)
        wire = drops = None
        if link:
            w1, d1 = link.counters(), link.drops()
            wire = (w1[0] - w0[0], w1[1] - w0[1])
            drops = (d1[0] - d0[0], d1[1] - d0[1])
        verbs, stors, retrs = _server_counts(srv)
        out.append(Outcome("%s %s" % (label, kind), result, verbs, stors, retrs, wire, drops))
    return out


def loopback(days: list[Day], root: Path) -> list[Outcome]:
    with FtpTestServer() as srv, NtpResponder() as ntp:
        data_dir = root / "loopback"
        site = prepare_gateway(data_dir, srv.host, srv.port, srv.user, srv.password, ntp.address)
        return _connect_twice("loopback", data_dir, site, days, srv)


def slow(days: list[Day], root: Path, tbf: str = TBF) -> tuple[list[Outcome], str]:
    """Through the namespace link with the delay proxy; or the fallback. Also says which."""
    why_not = SlowLink.available()
    link = None
    if why_not is None:
        link = SlowLink(tbf=tbf)
        try:
            link.__enter__()   # removes what it made if a step fails
        except (OSError, subprocess.SubprocessError) as e:
            why_not = "network namespace set-up failed: %s" % (getattr(e, "stderr", "") or e)
            link = None
    if link is not None:
        # SIGTERM too must leave no namespace behind: make it unwind through the finally.
        previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        try:
            with FtpTestServer() as srv, NtpResponder() as ntp, \
                    DelayProxy(link.host_ip, (srv.host, srv.port), (ntp.host, ntp.port),
                               DELAY_S) as proxy:
                data_dir = root / "slow"
                site = prepare_gateway(data_dir, link.host_ip, proxy.ftp_port, srv.user,
                                       srv.password, "%s:%d" % (link.host_ip, proxy.ntp_port))
                how = ("netns + veth, tbf %d kbit/s up / %d kbit/s down (%s), delay proxy "
                       "%.0f ms each way (RTT %.0f ms)"
                       % (UP_KBIT, DOWN_KBIT, tbf, DELAY_S * 1000, 2 * DELAY_S * 1000))
                return _connect_twice("slow", data_dir, site, days, srv, link.ns, link), how
        finally:
            link.close()
            signal.signal(signal.SIGTERM, previous)
    # Fallback: the FTP server throttles STOR data and delays every reply; loopback otherwise.
    rate = UP_KBIT * 1000 / 8

    def degrade(srv):
        srv.clear_faults()
        srv.fail_next_stor(100, "slow", rate=rate)
        srv.delay_replies(2 * DELAY_S)

    with FtpTestServer() as srv, NtpResponder() as ntp:
        data_dir = root / "slow"
        site = prepare_gateway(data_dir, srv.host, srv.port, srv.user, srv.password, ntp.address)
        how = ("FALLBACK (%s): loopback, server-side STOR throttle %.0f B/s, replies delayed "
               "%.0f ms" % (why_not, rate, 2 * DELAY_S * 1000))
        return _connect_twice("slow", data_dir, site, days, srv, before_each=degrade), how


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


def report(outcomes: list[Outcome], how: str, sizes: dict[str, int], day: Day,
           frames_per_sample: int) -> None:
    print("\nlink (slow): " + how)
    print("\n%-17s %10s %11s %10s %7s %7s %12s" % ("scenario", "duration s", "bytes sent",
                                                 "FTP cmds", "files", "fetched", "wire up/down"))
    for o in outcomes:
        r = o.result
        wire = "%d/%d" % o.wire if o.wire else "-"
        print("%-17s %10.2f %11d %10d %7d %7d %12s" % (
            o.scenario, r["duration_s"], r["ftp"].get("bytes_sent", 0),
            r["ftp"].get("commands", 0), o.stors, o.retrs, wire))
    print("  bytes sent: FTP command lines + file payload (FtpSession.stats); files: STORs "
          "completed; fetched: RETRs; wire: veth bytes incl. TCP/IP headers and NTP")

    first = outcomes[0].result
    data = [s for k, n, s in first["sealed"] if k == "DATA"]
    alarm = [s for k, n, s in first["sealed"] if k == "ALARM"]
    per = sum(data) / len(METERS)
    print("\nper meter-day: %d B (the day's data file %d B / %d meters; target %d B: %s); "
          "alarm file %d B"
          % (per, sum(data), len(METERS), SIZE_TARGET, "met" if per <= SIZE_TARGET else "MISSED",
             sum(alarm)))
    print("  each meter sealed alone: " + ", ".join("%s %d B" % kv for kv in sizes.items()))
    print("  %d rows per meter, %d frames decoded per meter-day (%d per 10-min period), "
          "%d alarms" % (SAMPLES, day.frames // len(METERS), frames_per_sample, len(day.alarms)))

    print("\nFTP commands by verb (server side):")
    for o in outcomes:
        print("  %-17s %s" % (o.scenario, " ".join("%s %d" % kv for kv in sorted(
            o.commands.items(), key=lambda kv: (-kv[1], kv[0])))))

    print("\nphase times, s:")
    phases = list(outcomes[0].result["phase_s"])
    print("  %-17s " % "" + " ".join("%8s" % p[:8] for p in phases))
    for o in outcomes:
        print("  %-17s " % o.scenario + " ".join("%8.2f" % o.result["phase_s"].get(p, 0)
                                                 for p in phases))
    for o in outcomes:
        bad = {p: v for p, v in o.result["outcomes"].items() if v != "done"}
        if bad:
            print("  %s: phases not done: %s" % (o.scenario, bad))

    slow_runs = [o for o in outcomes if o.scenario.startswith("slow")]
    if not slow_runs:
        return
    rtt, rate = 2 * DELAY_S, UP_KBIT * 1000 / 8
    print("\nwhere the time goes on the slow link (RTT %.1f s, %.0f B/s up):" % (rtt, rate))
    for o in slow_runs:
        r = o.result
        # Every command waits for its reply; a transfer (STOR, RETR, listing) waits once more,
        # for its final 226 after the data.
        waits = r["ftp"].get("commands", 0) + sum(o.commands.get(v, 0) for v in (
            "STOR", "RETR", "MLSD", "LIST", "NLST"))
        if r["outcomes"].get("ntp") == "done":
            waits += 1
        payload = r["ftp"].get("data_bytes_sent", 0)
        print("  %-17s %.1f s measured ~ %d waits for a reply x %.1f s = %.1f s + %d B of file "
              "data at %.0f B/s = %.1f s%s" % (
                  o.scenario, r["duration_s"], waits, rtt, waits * rtt, payload, rate,
                  payload / rate,
                  "; tbf drops up/down %d/%d" % o.drops if o.drops is not None else ""))
        stors = o.commands.get("STOR", 0)
        if stors:
            # PASV, STOR and its 226 per file, then the safe-upload commands around it
            per_file = 3 * stors + sum(o.commands.get(v, 0) for v in (
                "DELE", "SIZE", "RNFR", "RNTO"))
            print("  %-17s   of which %d files uploaded at ~%.0f waits each (PASV, STOR, 226, "
                  "SIZE .tmp, RNFR, RNTO; TYPE when it changes)"
                  % ("", stors, per_file / stors))
    if "netns" in how:
        print("\nslow link: +handshakes = one RTT (%.1f s) per TCP connection (control + "
              "each passive data connection), which the proxy does not delay:" % rtt)
        for o in slow_runs:
            conns = 1 + o.commands.get("PASV", 0) + o.commands.get("EPSV", 0)
            est = o.result["duration_s"] + conns * rtt
            print("  %-17s %d TCP connections -> about %.1f s on a real %.0f ms RTT link "
                  "(target %.0f s: %s)" % (o.scenario, conns, est, rtt * 1000,
                                            DURATION_TARGET_S,
                                            "met" if est < DURATION_TARGET_S else "MISSED"))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.connection", description=__doc__.split(
        "\n", 1)[0])
    ap.add_argument("--frames-per-sample", type=int, default=FRAMES_PER_SAMPLE)
    ap.add_argument("--no-slow", action="store_true", help="loopback only")
    ap.add_argument("--tbf", default=TBF, help="tbf options after the rate (default %(default)r)")
    args = ap.parse_args(argv if argv is not None else [])
    print("== connection: a daily connection, 3 meters, a day of 10-minute data ==")
    for line in _machine():
        print(line)
    t = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ticgw-bench-conn-") as tmp:
        root = Path(tmp)
        # The site ID (file name prefix) of a new gateway, for the definitions' names.
        site = ConfigStore(root / "probe").settings.site_id
        days = simulate(2, site, args.frames_per_sample)
        sizes = meter_sizes(days[0], site)
        print("simulated 2 days x 3 meters in %.1f s" % (time.perf_counter() - t))
        outcomes = loopback(days, root)
        how = "not run"
        if not args.no_slow:
            slow_outcomes, how = slow(days, root, args.tbf)
            outcomes += slow_outcomes
    report(outcomes, how, sizes, days[0], args.frames_per_sample)


if __name__ == "__main__":
    main(sys.argv[1:])
