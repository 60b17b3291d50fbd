"""A tiny SNTP responder (RFC 4330, server mode) for tests and the demo server.

It answers client requests (mode 3) on UDP with the system time plus ``offset`` seconds, so a
client measures an offset of about ``offset``. ``behaviour`` selects a failure for error tests:

- ``"normal"``: a valid server reply (mode 4, stratum ``stratum``);
- ``"silent"``: read requests and never answer (the client times out);
- ``"short"``: a 20-byte datagram, too short to be an NTP header;
- ``"wrong_mode"``: a 48-byte reply whose mode is 3 (client) instead of 4;
- ``"unsynchronised"``: leap indicator 3 and stratum 0, as a server with no time source.

``offset`` and ``behaviour`` may be changed while it runs. Usage::

    with NtpResponder(offset=90.0) as ntp:
        ntplib.NTPClient().request("127.0.0.1", port=ntp.port)

Packet layout (RFC 4330 section 4), 48 bytes, big-endian::

    0  LI(2) VN(3) Mode(3) | Stratum | Poll | Precision (signed)
    4  Root Delay (16.16)      8  Root Dispersion (16.16)      12  Reference Identifier
    16 Reference Timestamp    24 Originate Timestamp   32 Receive Timestamp   40 Transmit Timestamp

Timestamps are 32.32 fixed point seconds since 1900-01-01 00:00 UTC.
"""
from __future__ import annotations

import logging
import socket
import struct
import threading
import time

log = logging.getLogger(__name__)

HEADER_SIZE = 48
NTP_UNIX_DELTA = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01
_HEADER = struct.Struct("!BBbbII4sQQQQ")
BEHAVIOURS = ("normal", "silent", "short", "wrong_mode", "unsynchronised")
MODE_CLIENT, MODE_SERVER = 3, 4


def to_ntp(unix_time: float) -> int:
    """Unix time (float seconds) to a 64-bit NTP timestamp (era 0 wraps in 2036)."""
    t = unix_time + NTP_UNIX_DELTA
    seconds = int(t)
    fraction = int((t - seconds) * (1 << 32)) & 0xFFFFFFFF
    return ((seconds & 0xFFFFFFFF) << 32) | fraction


def from_ntp(timestamp: int) -> float:
    """A 64-bit NTP timestamp (era 0) to Unix time."""
    return (timestamp >> 32) - NTP_UNIX_DELTA + (timestamp & 0xFFFFFFFF) / (1 << 32)


def build_reply(request: bytes, received: float, transmit: float, *, stratum: int = 1,
                mode: int = MODE_SERVER, leap: int = 0, ref_id: bytes = b"TICS") -> bytes:
    """The 48-byte reply to ``request``, stamped with the given (already offset) Unix times."""
    first = request[0]
    version = (first >> 3) & 0x7
    if version not in (3, 4):
        version = 4
    poll = request[2] if request[2] < 128 else 6
    originate = request[40:48]  # the client's transmit timestamp, copied unchanged
    root_dispersion = 1 << 6  # about 1 ms, 16.16 fixed point
    packed = _HEADER.pack(
        (leap << 6) | (version << 3) | mode, stratum, poll, -20,  # precision 2**-20 s, ~1 us
        0, root_dispersion, ref_id[:4].ljust(4, b"\x00"),
        to_ntp(received - 16.0),  # reference: "last set" shortly before
        0, to_ntp(received), to_ntp(transmit))
    # originate goes in bytes 24..32
    return packed[:24] + originate + packed[32:]


class NtpResponder:
    """A UDP SNTP server in a daemon thread; ``port`` is the bound port (``port=0`` picks one)."""

    def __init__(self, offset: float = 0.0, host: str = "127.0.0.1", port: int = 0,
                 behaviour: str = "normal", stratum: int = 1):
        if behaviour not in BEHAVIOURS:
            raise ValueError("behaviour must be one of %s" % ", ".join(BEHAVIOURS))
        self.offset = float(offset)
        self.behaviour = behaviour
        self.stratum = stratum
        self.requests = 0  # requests received (counted even when silent)
        self._host, self._port = host, port
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def port(self) -> int:
        if self._sock is None:
            raise RuntimeError("NTP responder not started")
        return self._sock.getsockname()[1]

    @property
    def host(self) -> str:
        return self._host

    @property
    def address(self) -> str:
        """``host:port``, as ``NTP_Server1`` would hold it."""
        return "%s:%d" % (self._host, self.port)

    def start(self) -> "NtpResponder":
        if self._sock is not None:
            return self
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((self._host, self._port))
        except OSError:
            sock.close()
            raise
        sock.settimeout(1.0)  # a safety net only: stop() wakes the thread with a datagram
        self._sock = sock
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="ntp-responder", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        self._stop.set()
        try:  # wake the blocked recvfrom with an empty datagram (ignored by _serve)
            with socket.socket(sock.family, socket.SOCK_DGRAM) as poke:
                poke.sendto(b"", sock.getsockname()[:2])
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        sock.close()

    def __enter__(self) -> "NtpResponder":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _serve(self) -> None:
        sock = self._sock
        while not self._stop.is_set():
            try:
                data, peer = sock.recvfrom(512)
            except socket.timeout:
                continue
            except OSError:
                break
            received = time.time()
            if self._stop.is_set():
                break
            if len(data) < HEADER_SIZE or data[0] & 0x7 != MODE_CLIENT:
                continue  # not a client request (or the wake-up datagram)
            self.requests += 1
            reply = self._reply(data, received)
            if reply is None:
                continue
            try:
                sock.sendto(reply, peer)
            except OSError as e:
                log.debug("NTP reply to %s failed: %s", peer, e)

    def _reply(self, request: bytes, received: float) -> bytes | None:
        behaviour, offset = self.behaviour, self.offset
        if behaviour == "silent":
            return None
        if behaviour == "short":
            return b"\x24" + bytes(19)
        kw = {"stratum": self.stratum}
        if behaviour == "wrong_mode":
            kw["mode"] = MODE_CLIENT
        elif behaviour == "unsynchronised":
            kw.update(leap=3, stratum=0, ref_id=b"INIT")
        return build_reply(request, received + offset, time.time() + offset, **kw)
