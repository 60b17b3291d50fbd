"""NTP sync (services.uplink.ntp) and the gateway clock against a real NTP server: Debian's
chronyd, its clock stepped forward and back under libfaketime (tests/chrony.py, issue 8)."""
from __future__ import annotations

import time

import pytest

from chrony import ChronyServer
from services.uplink.ntp import NtpError, NtpResult, parse_server, query, sync
from ticgw.clock import GatewayClock

TIMEOUT = 2.0  # seconds per server for a live one
DEAD_TIMEOUT = 0.5  # seconds per server for a dead one


@pytest.fixture
def chrony(tmp_path):
    """A factory of started chronyd servers (each in its own directory), all stopped at the end.
    A server that cannot start raises ChronyError with its configuration and log."""
    started = []

    def make(offset: float = 0.0) -> ChronyServer:
        server = ChronyServer(offset=offset, directory=tmp_path / ("chrony%d" % len(started)))
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.stop()


def measured(server: ChronyServer, **kw) -> NtpResult:
    """sync() against this one server, with its log in the message when it fails."""
    try:
        return sync([server.address], timeout=kw.pop("timeout", TIMEOUT), **kw)
    except NtpError as e:
        pytest.fail("sync against chronyd failed: %s\n%s" % (e, server.describe()))


def test_address_is_what_the_config_accepts(chrony):
    server = chrony()
    assert parse_server(server.address) == ("127.0.0.1", server.port)
    assert server.running and server.offset == 0.0


def test_offset_is_zero_without_a_fake_offset(chrony):
    server = chrony()
    # the module's own checks accept chronyd's reply as it comes
    stats = query("127.0.0.1", server.port, TIMEOUT)
    assert stats.leap == 0 and stats.stratum == 1 and stats.mode == 4
    result = measured(server)
    assert result.server == server.address
    assert abs(result.offset) < 0.5, server.describe()
    assert 0 <= result.delay < 0.5


def test_step_forward_one_hour(chrony):
    server = chrony()
    assert abs(measured(server).offset) < 0.5
    server.step(+3600, wait=False)  # synced at once: chronyd follows on its next request
    assert server.offset == 3600
    result = measured(server)
    assert result.offset == pytest.approx(3600, abs=1), server.describe()
    # and it stays there (no drift back, no "unsynchronised" replies later)
    time.sleep(0.3)
    assert measured(server).offset == pytest.approx(3600, abs=1)


def test_step_forward_then_back(chrony):
    server = chrony()
    server.step(+3600, wait=False)
    assert measured(server).offset == pytest.approx(3600, abs=1)
    server.set_offset(-1800, wait=False)  # 90 minutes back: chronyd sees its clock go backward
    assert server.offset == -1800
    result = measured(server)
    assert result.offset == pytest.approx(-1800, abs=1), server.describe()
    assert "Backward time jump detected" in server.log()
    server.step(+1800)  # back to the real time, waiting until served (the helper's default)
    assert abs(measured(server).offset) < 0.5


def test_a_server_started_with_an_offset_serves_it_from_the_first_answer(chrony):
    server = chrony(offset=-86400.25)
    assert measured(server).offset == pytest.approx(-86400.25, abs=1)


def test_a_stopped_server_gives_the_module_error_within_its_timeout(chrony):
    server = chrony()
    address = server.address
    measured(server)  # it did answer while running
    server.stop()
    assert not server.running
    t0 = time.monotonic()
    with pytest.raises(NtpError) as info:
        sync([address], timeout=DEAD_TIMEOUT)
    elapsed = time.monotonic() - t0
    assert elapsed < DEAD_TIMEOUT + 1.0
    assert info.value.failures == [(address, "no answer within %g s" % DEAD_TIMEOUT)]
    assert str(info.value) == "NTP synchronisation failed: %s: no answer within %g s" % (
        address, DEAD_TIMEOUT)


def test_first_server_dead_the_second_answers(chrony):
    dead = chrony()
    dead_address = dead.address
    dead.stop()
    live = chrony(offset=+42)
    t0 = time.monotonic()
    result = sync([dead_address, live.address], timeout=DEAD_TIMEOUT)
    elapsed = time.monotonic() - t0
    assert result.server == live.address
    assert result.offset == pytest.approx(42, abs=1), live.describe()
    assert DEAD_TIMEOUT * 0.8 < elapsed < DEAD_TIMEOUT + 1.5  # waited for the dead one, once


def test_two_live_servers_are_independent_and_the_first_wins(chrony):
    first, second = chrony(offset=+10), chrony(offset=-10)
    assert first.port != second.port
    result = sync([first.address, second.address], timeout=TIMEOUT)
    assert result.server == first.address
    assert result.offset == pytest.approx(10, abs=1)
    first.step(+3600)  # moving one server's clock leaves the other alone
    assert measured(first).offset == pytest.approx(3610, abs=1)
    assert measured(second).offset == pytest.approx(-10, abs=1)


def test_gateway_clock_follows_the_stepped_server(chrony, tmp_path):
    state = tmp_path / "state"
    server = chrony()
    server.step(+3600)
    result = measured(server)
    clock = GatewayClock(state)
    clock.set_offset(result.offset)  # what the uplink does after its NTP phase
    assert clock.now() == pytest.approx(time.time() + result.offset, abs=0.05)
    assert clock.now() == pytest.approx(time.time() + 3600, abs=1)
    # the gateway's time is now the server's time
    assert (time.time() + server.measure()) - clock.now() == pytest.approx(0, abs=0.5)
    # another service reads the stored offset
    assert (state / "clock_offset").read_text().strip() == "%.6f" % result.offset
    assert GatewayClock(state).now() == pytest.approx(time.time() + 3600, abs=1)

    server.set_offset(-1800)
    result = measured(server)
    clock.set_offset(result.offset)
    assert clock.now() == pytest.approx(time.time() - 1800, abs=1)
    assert GatewayClock(state).now() == pytest.approx(time.time() - 1800, abs=1)
