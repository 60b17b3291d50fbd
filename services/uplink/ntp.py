"""NTP time synchronisation for the connection sequence (DESIGN section 5, step 3).

:func:`sync` asks ``NTP_Server1`` then ``NTP_Server2`` (empty entries are skipped) and returns
the first valid answer as an :class:`NtpResult`; the measured ``offset`` (seconds, server clock
minus local clock) is what the gateway keeps to stamp its records until the next sync. It never
touches the system clock. It blocks (one UDP round trip per server, at most ``timeout`` seconds
each), so call it from a worker thread, not from a service loop.

A server may be written ``host``, ``host:port``, ``[v6addr]`` or ``[v6addr]:port``; a bare IPv6
address (more than one colon) is taken whole, on the default ``port``.

The journal texts of the manual (section 10.3.2) are given as ``JOURNAL_*`` constants.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass

import ntplib

#: Journal messages, verbatim from the manual.
JOURNAL_START = "Synchronisation NTP..."
JOURNAL_OK = "Synchronisation NTP OK"
JOURNAL_ERROR = "Erreur de synchronisation NTP"

NTP_VERSION = 4
_MODE_SERVER = 4
_LEAP_UNSYNCHRONISED = 3


@dataclass(frozen=True)
class NtpResult:
    """A successful exchange: the server that answered (as configured), the clock offset in
    seconds (positive when the server is ahead of this machine) and the round-trip delay."""

    server: str
    offset: float
    delay: float


class NtpError(Exception):
    """No configured server gave a usable answer. ``failures`` lists ``(server, reason)``."""

    def __init__(self, message: str, failures: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.failures = list(failures or [])


def parse_server(text: str, default_port: int = 123) -> tuple[str, int]:
    """Split ``host[:port]`` (or ``[v6]:port``) into host and port; raise ValueError if bad."""
    text = text.strip()
    if not text:
        raise ValueError("empty server name")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not host:
            raise ValueError("unbalanced brackets in %r" % text)
        if not rest:
            return host, default_port
        if not rest.startswith(":"):
            raise ValueError("unexpected text after ']' in %r" % text)
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        if not host:
            raise ValueError("missing host name in %r" % text)
    else:  # a plain name, an IPv4 address, or a bare IPv6 address
        return text, default_port
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError("invalid port %r in %r" % (port_text, text)) from None
    if not 0 < port < 65536:
        raise ValueError("port %d out of range in %r" % (port, text))
    return host, port


def _check(stats: ntplib.NTPStats) -> str | None:
    """Return why a reply cannot be trusted, or None when it is good."""
    if stats.mode != _MODE_SERVER:
        return "invalid reply (mode %d, expected %d: server)" % (stats.mode, _MODE_SERVER)
    if stats.leap == _LEAP_UNSYNCHRONISED:
        return "server clock not synchronised (leap indicator 3)"
    if stats.stratum == 0:
        return "server refused the request (stratum 0, kiss code %r)" % _kiss_code(stats)
    if stats.stratum > 15:
        return "server clock not synchronised (stratum %d)" % stats.stratum
    if stats.tx_timestamp == 0:
        return "invalid reply (no transmit timestamp)"
    return None


def _kiss_code(stats: ntplib.NTPStats) -> str:
    try:
        return stats.ref_id.to_bytes(4, "big").decode("ascii", "replace").strip("\x00")
    except (AttributeError, OverflowError, TypeError):
        return "?"


def query(host: str, port: int, timeout: float) -> ntplib.NTPStats:
    """One exchange with one server; raise NtpError(reason) when it fails or is not valid."""
    try:
        stats = ntplib.NTPClient().request(host, version=NTP_VERSION, port=port, timeout=timeout)
    except ntplib.NTPException as e:
        text = str(e)
        if text.startswith("No response"):
            raise NtpError("no answer within %g s" % timeout) from None
        raise NtpError("invalid reply (too short or malformed: %s)" % text.rstrip(".")) from None
    except socket.gaierror as e:
        raise NtpError("unknown host (%s)" % (e.strerror or e)) from None
    except OSError as e:  # e.g. ICMP port unreachable reported on recv, network down
        raise NtpError("network error (%s)" % (e.strerror or e)) from None
    reason = _check(stats)
    if reason:
        raise NtpError(reason)
    return stats


def sync(servers: list[str], timeout: float = 5.0, port: int = 123) -> NtpResult:
    """Query each non-empty server in order; return the first good answer.

    Raise :class:`NtpError` naming every server tried and why it failed (or saying that no
    server is configured)."""
    failures: list[tuple[str, str]] = []
    for server in servers:
        if server is None or not server.strip():
            continue
        server = server.strip()
        try:
            host, server_port = parse_server(server, port)
            stats = query(host, server_port, timeout)
        except ValueError as e:
            failures.append((server, "invalid server address (%s)" % e))
            continue
        except NtpError as e:
            failures.append((server, str(e)))
            continue
        return NtpResult(server=server, offset=stats.offset, delay=stats.delay)
    if not failures:
        raise NtpError("NTP synchronisation failed: no NTP server configured")
    detail = "; ".join("%s: %s" % f for f in failures)
    raise NtpError("NTP synchronisation failed: %s" % detail, failures)
