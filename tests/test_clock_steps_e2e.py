"""Issue 8 end to end: a real NTP server (Debian's chronyd under libfaketime, tests/chrony.py)
whose clock is stepped forward, then back, while the whole gateway runs as real processes (the
bus broker, the acquisition reading the demo's simulated meters on pseudo-terminals, the uplink
syncing its clock by NTP at each connection and uploading to an FTP server). Whatever the steps,
the data files the server receives hold no (meter, time) row twice and no row out of order, their
names grow in delivery order, and the journal tells each step with its size and each NTP sync.

Scenario (DAQ_PeriodSec=1, the smallest period the configuration accepts):

1. connection with the server at real time (offset ~0); a few periods sampled;
2. the server steps FORWARD s ahead; connection: its NTP phase sets the gateway clock offset, the
   acquisition sees the step within a couple of seconds (``Horloge avancée de N s``); periods go;
3. the server goes back to BACK s (behind real time): the gateway clock now reads before slots
   already sampled; connection; the acquisition journals ``Horloge reculée de N s`` and samples
   nothing until its clock has passed the last slot sampled, then samples again;
4. a last connection delivers what is left.

Each connection seals the spool before its NTP phase (the ``requesting`` phase), so the rows of a
clock are delivered by the connection after the one that set it. Run with ``-s`` to see where the
time goes.
"""
from __future__ import annotations

import gzip
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import zmq

from bus import endpoints as eps
from bus.client import CommandClient
from bus.errors import RemoteError
from bus.testing import REPO, child_env, short_run_dir, start_broker, stop_process, wait_for
from chrony import ChronyServer
from gateway_helpers import Events, configure, start_service
from sim.ftp_server import FtpTestServer

#: Seconds between two samples: the smallest DAQ_PeriodSec (DAQ_Period=0 selects it).
PERIOD = 1
#: The server's clock goes this far ahead of real time (6 periods)...
FORWARD = 6.0
#: ...then this far behind it: a step back of FORWARD - BACK, to before slots already sampled.
BACK = -3.0
#: The demo's simulated meters (Procfile.demo's meter1 and meter2), without their overloads (an
#: overload is an alarm, and an alarm starts a connection of its own); their line runs this many
#: times faster than real time, as in the other pty tests, so detection takes seconds.
METERS = ((1, "CBEMM-ICC", 1), (2, "CBETM", 2))
METER_SPEED = 6

ROW_TIME = "%d/%m/%y-%H:%M:%S"          # FTP_EuroDateFormat=1 (the default)
STEP_ROW = re.compile(r"^Horloge (avancée|reculée) de (\d+) s\b")


class Timer:
    """Where the wall time goes: printed as it goes, and summed up at the end (``-s``)."""

    def __init__(self):
        self.t0 = self.last = time.monotonic()
        self.laps: list[tuple[str, float]] = []

    def lap(self, what: str) -> None:
        now = time.monotonic()
        self.laps.append((what, now - self.last))
        print("[%6.2f s] +%5.2f s  %s" % (now - self.t0, now - self.last, what), flush=True)
        self.last = now

    def total(self) -> float:
        return time.monotonic() - self.t0


def start_meter(run: Path, log: Path, index: int, family: str,
                seed: int) -> tuple[subprocess.Popen, str]:
    """``ticgw sim meter`` as the demo runs it, its pty published at ``<run>/ttyTIC<index>``
    (its output in ``log``)."""
    link = str(run / ("ttyTIC%d" % index))
    with open(log, "ab") as out:
        p = subprocess.Popen([sys.executable, "-m", "ticgw.cli", "sim", "meter",
                              "--family", family, "--seed", str(seed),
                              "--speed", str(METER_SPEED), "--link", link],
                             env=child_env(run), cwd=str(REPO), stdin=subprocess.DEVNULL,
                             stdout=out, stderr=subprocess.STDOUT)
    return p, link


@pytest.fixture
def gateway(tmp_path):
    """chronyd, the FTP server, two pty meters, the broker, acquisition and uplink; everything
    stopped on the way out, whatever happened."""
    timer = Timer()
    run = short_run_dir(tmp_path)
    data = tmp_path / "data"
    procs: list[subprocess.Popen] = []
    ntp = ChronyServer(offset=0.0, directory=tmp_path / "chrony")
    server = FtpTestServer(tmp_path / "srv")
    broker = events = ctx = client = None
    try:
        # started from this (the test's) thread: chronyd dies with it (setpriv --pdeathsig)
        ntp.start()
        server.start()
        links = {}
        for index, family, seed in METERS:
            p, links[index] = start_meter(run, tmp_path / ("meter%d.log" % index), index,
                                          family, seed)
            procs.append(p)
        wait_for(lambda: all(Path(l).exists() for l in links.values()), 15,
                 message="the simulated meters' ptys did not appear")
        # no scheduled connection during the test: the daily one twelve hours from now
        far = datetime.now(timezone.utc) + timedelta(hours=12)
        configure(data, links, DAQ_Period=0, DAQ_PeriodSec=PERIOD,
                  Connection_Period=0, Connection_PeriodMin=0,
                  Connection_Hour=far.hour, Connection_Minute=0,
                  FTP_Server="127.0.0.1", FTP_Port=server.port, FTP_Login=server.user,
                  FTP_Password=server.password, FTP_Timeout=10,
                  NTP_Server1=ntp.address, NTP_Server2="",
                  **{"TIC_Baud[%d]" % n: 1200 for n in links})
        broker = start_broker(run)
        events = Events(run)
        procs.append(start_service("acquisition", run, data))
        procs.append(start_service("uplink", run, data))
        ctx = zmq.Context()
        client = CommandClient(ctx, eps.resolve(run), src="test")
        wait_for(lambda: _answers(client, "uplink") and _answers(client, "acquisition"), 20,
                 interval=0.1, message="the services do not answer")
        timer.lap("chronyd, FTP server, 2 meters, broker, acquisition, uplink started")
        yield {"run": run, "data": data, "ntp": ntp, "server": server, "events": events,
               "client": client, "procs": procs, "timer": timer}
    finally:
        try:
            if client is not None:
                client.close()
            if ctx is not None:
                ctx.term()
        finally:
            for p in reversed(procs):           # uplink, acquisition, then the meters
                stop_process(p)
            if events is not None:
                events.close()
            if broker is not None:
                stop_process(broker)
            server.close()
            ntp.stop()
            print("total %.1f s" % timer.total(), flush=True)


def _answers(client, service: str) -> bool:
    try:
        client.call(service, "ping", timeout=1.0)
        return True
    except Exception:
        return False


# --- reading what the gateway did -----------------------------------------------------------------

def parse_row_time(text: str) -> float:
    return datetime.strptime(text, ROW_TIME).replace(tzinfo=timezone.utc).timestamp()


def journal_rows(data: Path) -> list[str]:
    """The messages of the shared journal (state/journal.log), in order."""
    path = data / "state" / "journal.log"
    if not path.exists():
        return []
    return [line.split("\t", 2)[2] for line in path.read_text("utf-8").splitlines()
            if line.count("\t") >= 2]


def server_log_rows(server_dir: Path) -> list[str]:
    """The messages of the journal files uploaded to /LOG (the debug logs left out)."""
    out = []
    for p in sorted(server_dir.glob("*.log.gz")):
        if p.name.endswith("_debug.log.gz"):
            continue
        for line in gzip.decompress(p.read_bytes()).decode("utf-8", "replace").splitlines():
            parts = line.split("\t", 2)
            if len(parts) == 3:
                out.append(parts[2])
    return out


def data_sections(path: Path) -> list[dict]:
    """The meter sections of one data file: serial, input, definition, [(row time, columns)]."""
    sections = []
    for line in gzip.decompress(path.read_bytes()).decode("ascii").split("\r\n"):
        if not line:
            continue
        if line.startswith("SNTIC;"):
            _, serial, inp = line.split(";")
            sections.append({"file": path.name, "serial": serial, "input": int(inp),
                             "definition": None, "rows": []})
        elif line.startswith("TypeTIC;"):
            sections[-1]["definition"] = line.split(";", 1)[1]
        elif line.startswith("nbVariable;"):
            continue
        else:
            assert sections, "%s: a row before any SNTIC line: %r" % (path.name, line)
            t, *cols = line.split(";")
            sections[-1]["rows"].append((t, cols))
    return sections


def delivered_names(server: FtpTestServer, directory: str, keep) -> list[str]:
    """The names of the files of ``directory`` (``DATA``, ``LOG``) that ``keep`` accepts, in the
    order the server got them (an upload ends with its RNTO)."""
    names = []
    for line in list(server.commands):
        m = re.match(r"RNTO\s+(\S+)$", line)
        if not m:
            continue
        path = "/" + m.group(1).lstrip("/")
        folder, _, name = path.rpartition("/")
        if folder == "/" + directory and keep(name):
            names.append(name)
    return names


def is_data_file(name: str) -> bool:
    return "_TIC_" in name and "_TIC_P_" not in name and name.endswith(".csv.gz")


def is_journal_file(name: str) -> bool:
    return name.endswith(".log.gz") and not name.endswith("_debug.log.gz")


def offset_file(data: Path) -> float | None:
    try:
        return float((data / "state" / "clock_offset").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


# --- driving ---------------------------------------------------------------------------------

def connect(gw, label: str, timeout: float = 45.0) -> dict:
    """Ask the uplink for a connection (reason ``label``); return its task.ended event once
    over. A connection already running (one an alarm started) is waited for first."""
    client, events = gw["client"], gw["events"]
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.call("uplink", "connect", timeout=5.0, reason=label)
            break
        except RemoteError as e:
            if "déjà en cours" not in str(getattr(e, "message", e)) \
                    or time.monotonic() > deadline:
                raise
            time.sleep(0.2)

    def ended():
        items = list(events.items)
        start = next((i for i, (topic, env) in enumerate(items) if topic == "task.started"
                      and env["data"].get("task") == "Connexion"
                      and env["data"].get("reason") == label), None)
        if start is None:
            return None
        return next((env for topic, env in items[start:] if topic == "task.ended"
                     and env["data"].get("task") == "Connexion"), None)
    return wait_for(ended, max(1.0, deadline - time.monotonic()), interval=0.05,
                    message="connection %r not over within %.0f s" % (label, timeout))


def written_times(events, after_index: int = 0) -> list[tuple[int, float]]:
    """(input, row time) of every spool.written event, from event number ``after_index``."""
    return [(env["data"]["input"], parse_row_time(env["data"]["time"]))
            for topic, env in list(events.items)[after_index:] if topic == "spool.written"]


def journal_event(events, prefix: str, timeout: float) -> str:
    env = events.wait("journal", timeout=timeout,
                      where=lambda e: str(e["data"].get("message", "")).startswith(prefix))
    return env["data"]["message"]


# --- the test -------------------------------------------------------------------------------------

def test_ntp_steps_forward_and_back_deliver_no_duplicate_and_no_out_of_order_row(gateway):
    gw = gateway
    data, ntp, server, events, timer = gw["data"], gw["ntp"], gw["server"], gw["events"], \
        gw["timer"]
    procs = gw["procs"]

    def context() -> str:
        """What to look at when something fails: the services' last lines, journal, chronyd."""
        parts = []
        for p in procs[-2:]:
            parts.append("--- %s ---\n%s" % (" ".join(p.args[-1:]),
                                              "\n".join(getattr(p, "output", [])[-40:])))
        parts.append("--- journal ---\n" + "\n".join(journal_rows(data)[-60:]))
        parts.append(ntp.describe())
        return "\n".join(parts)

    # 0. both meters detected and sampled
    events.wait("task.ended", timeout=60,
                where=lambda e: e["data"]["task"] == "Détection")
    wait_for(lambda: {i for i, _ in written_times(events)} == {1, 2}, 20, interval=0.05,
             message="no sample of both meters\n" + context())
    timer.lap("meters detected, both sampled")

    # 1. a first connection at real time: offset ~0, no step
    assert abs(ntp.measure()) < 0.5
    connect(gw, "e2e-1")
    assert abs(offset_file(data)) < 0.5, offset_file(data)
    timer.lap("connection 1 (NTP offset ~0)")
    n = len(events.items)
    wait_for(lambda: len({t for _, t in written_times(events, n)}) >= 3, 10, interval=0.05,
             message="fewer than 3 periods sampled after connection 1")
    timer.lap("3 periods sampled")

    # 2. the server steps FORWARD seconds ahead; the next connection brings the gateway along
    ntp.step(+FORWARD)
    assert abs(ntp.measure() - FORWARD) < 0.5
    connect(gw, "e2e-2")
    assert abs(offset_file(data) - FORWARD) < 0.5, offset_file(data)
    timer.lap("step +%.0f s, connection 2" % FORWARD)
    journal_event(events, "Horloge avancée de", timeout=5)
    timer.lap("the acquisition saw the forward step")
    n = len(events.items)
    wait_for(lambda: len({t for _, t in written_times(events, n)}) >= 3, 10, interval=0.05,
             message="fewer than 3 periods sampled after the forward step")
    sampled = [t for _, t in written_times(events)]
    last_before_back = max(sampled)
    timer.lap("3 periods sampled on the stepped clock")

    # 3. the server goes back to BACK seconds from real time: the gateway clock will read
    #    before the slots just sampled
    ntp.set_offset(BACK)
    assert abs(ntp.measure() - BACK) < 0.5
    connect(gw, "e2e-3")
    assert abs(offset_file(data) - BACK) < 0.5, offset_file(data)
    timer.lap("back to %+.0f s, connection 3" % BACK)
    journal_event(events, "Horloge reculée de", timeout=5)
    timer.lap("the acquisition saw the backward step")
    # nothing is sampled until the gateway clock has passed the last slot sampled; then again.
    # A connection meanwhile seals (and names files) on a clock that reads before the last one.
    n = len(events.items)
    connect(gw, "e2e-3b")
    assert (time.time() + BACK) < last_before_back, "the hold was over before connection 3b"
    timer.lap("connection 3b, during the hold")
    hold = (last_before_back - (time.time() + BACK)) + 2 * PERIOD + 5
    wait_for(lambda: any(t > last_before_back for _, t in written_times(events, n)),
             max(hold, 5), interval=0.05,
             message="no sample after the clock passed the last slot again\n" + context())
    timer.lap("the gateway clock passed the last slot sampled: sampling again")
    wait_for(lambda: len({t for _, t in written_times(events, n)}) >= 2, 5, interval=0.05)

    # 4. the last connection delivers what is left (what was sampled before it, at least)
    every_sample = written_times(events)
    connect(gw, "e2e-4")
    timer.lap("connection 4")

    # --- what the server got --------------------------------------------------------------------
    delivered = delivered_names(server, "DATA", is_data_file)
    on_server = sorted(p.name for p in server.path("/DATA").iterdir() if is_data_file(p.name))
    assert delivered, "no data file delivered\n" + context()
    assert sorted(delivered) == on_server, (delivered, on_server)
    # names strictly increase in delivery order (each delivered once)
    assert all(a < b for a, b in zip(delivered, delivered[1:])), delivered
    # so do the journal files' (one per connection), though the clock went back meanwhile
    logs = delivered_names(server, "LOG", is_journal_file)
    assert len(logs) >= 5, logs
    assert all(a < b for a, b in zip(logs, logs[1:])), logs

    seen: dict[tuple[int, str], str] = {}       # (input, row time) -> the file it is in
    duplicates = []
    last_of_meter: dict[int, tuple[float, str]] = {}
    out_of_order = []
    for name in delivered:
        for section in data_sections(server.path("/DATA/" + name)):
            inp, times = section["input"], [t for t, _ in section["rows"]]
            assert times, "%s: empty section for input %d" % (name, inp)
            epochs = [parse_row_time(t) for t in times]
            # within a section, rows strictly increase in time
            bad = [(a, b) for (a, b), (x, y) in zip(zip(times, times[1:]),
                                                    zip(epochs, epochs[1:])) if not x < y]
            assert not bad, "%s input %d: rows not strictly increasing: %s" % (name, inp, bad)
            for t in times:
                if (inp, t) in seen:
                    duplicates.append((inp, t, seen[inp, t], name))
                seen[inp, t] = name
            # and from one file to the next (delivery order), a meter's rows only go forward
            prev = last_of_meter.get(inp)
            if prev is not None and not epochs[0] > prev[0]:
                out_of_order.append((inp, times[0], name, "after", prev[1]))
            last_of_meter[inp] = (epochs[-1], "%s %s" % (name, times[-1]))
    assert not duplicates, "rows delivered twice: %s" % duplicates
    assert not out_of_order, "a meter's rows go back in time across files: %s" % out_of_order
    # what was sampled before the last connection was delivered (nothing lost to the steps)
    sampled_keys = {(i, datetime.fromtimestamp(t, timezone.utc).strftime(ROW_TIME))
                    for i, t in every_sample}
    delivered_keys = set(seen)
    assert sampled_keys <= delivered_keys, sorted(sampled_keys - delivered_keys)[:10]
    # rows from the three clocks: real time, FORWARD ahead, and after the clock came back
    assert {i for i, _ in seen} == {1, 2}

    # --- the journal ------------------------------------------------------------------------------
    rows = journal_rows(data)
    steps = [(m.group(1), int(m.group(2))) for m in (STEP_ROW.match(r) for r in rows) if m]
    forward = [size for way, size in steps if way == "avancée"]
    backward = [size for way, size in steps if way == "reculée"]
    assert len(forward) == 1 and abs(forward[0] - FORWARD) <= 1, (steps, rows)
    assert len(backward) == 1 and abs(backward[0] - (FORWARD - BACK)) <= 1, (steps, rows)
    # one NTP sync per connection, each one OK
    connections = [i for i, r in enumerate(rows) if r == "Demande de connexion..."]
    assert len(connections) >= 5, rows
    for start, end in zip(connections, connections[1:] + [len(rows)]):
        block = rows[start:end]
        assert "Synchronisation NTP OK" in block, block
        assert "Erreur de synchronisation NTP" not in block, block
    # the journal files on the server tell the same (the last connection's own end aside)
    uploaded = server_log_rows(server.path("/LOG"))
    assert any(r.startswith("Horloge avancée de %d s" % forward[0]) for r in uploaded)
    assert any(r.startswith("Horloge reculée de %d s" % backward[0]) for r in uploaded)
    assert uploaded.count("Synchronisation NTP OK") >= 5
    timer.lap("checked %d data files, %d rows" % (len(delivered), len(seen)))
    print("where the time went: " + ", ".join("%s %.1f s" % (w, s) for w, s in timer.laps))
