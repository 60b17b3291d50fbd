"""The web service's parts without a browser: sessions, login back-off, the origin and CSRF
checks, the new password's rules (services/web/auth.py); the view's numbered events and the
hub's replay (view.py, bridge.py); the gate of the HTTP application (app.py), through
Microdot's test client with a stub gateway behind it.

:func:`app_routes` lists every route of a built application (its ``url_map``): the browser
crawl (tests/test_web_core.py) visits each one without a session.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import re
import threading
import types

import pytest
from microdot.test_client import TestClient

from bus.testing import FakeClock
from services.web import app as web_app
from services.web import auth
from services.web.bridge import REPLAY, STREAM_BACKLOG, Hub
from services.web.texts import T
from services.web.view import View
from ticgw.config import ConfigStore

#: A value for each route parameter, so that every route can be visited: a parameterised
#: route whose parameter is not here fails test_every_route_can_be_visited (add its sample).
SAMPLES = {"name": "app.js"}
PARAM = re.compile(r"<(?:[a-z]+:)?([A-Za-z_][A-Za-z0-9_]*)>")


# --- the application's routes --------------------------------------------------------------

class StubBridge:
    """Commands fail as if the bus did not answer; disk jobs run at once."""

    def __init__(self):
        self.calls = []

    async def call(self, service, method, params=None, timeout=5.0):
        self.calls.append((service, method, params))
        raise TimeoutError("no bus in this test")

    async def disk(self, fn, *args):
        return fn(*args)


def stub_web(data_dir, clock=None):
    """A real :class:`services.web.app.Web` over a stub service: real settings (the default
    configuration in ``data_dir``), a real view and hub, no bus."""
    store = ConfigStore(data_dir)
    store.ensure_files()
    from ticgw import registry
    service = types.SimpleNamespace(store=store, settings=store.settings, data_dir=data_dir,
                                    release_info=lambda: {"version": "0", "date": ""})
    view = View([s.name for s in registry.BUILTIN])
    web = web_app.Web(service, view, Hub(), StubBridge())
    if clock is not None:
        web.sessions = auth.Sessions(clock)
        web.throttle = auth.Throttle(clock)
    return web


def app_routes(data_dir) -> list[tuple[str, str]]:
    """(method, pattern) of every route of an application built as the service builds it."""
    app = web_app.build(stub_web(data_dir))
    out = []
    for methods, pattern, *_ in app.url_map:
        for m in methods:
            out.append((m, pattern.url_pattern))
    return sorted(set(out))


def visitable(pattern: str) -> str:
    """A path for ``pattern``, its parameters given their sample."""
    return PARAM.sub(lambda m: SAMPLES[m.group(1)], pattern)


def test_every_route_can_be_visited(tmp_path):
    routes = app_routes(tmp_path)
    methods = {m for m, _ in routes}
    assert methods <= {"GET", "POST"}, routes
    paths = {p for _, p in routes}
    # the frame's own routes and the pages this file knows of are all there
    for p in ("/connexion", "/deconnexion", "/mot-de-passe", "/events", "/static/<name>", "/",
              "/installation/detection", "/installation/connexion", "/redemarrer", "/bouton"):
        assert p in paths, p
    for _, p in routes:
        missing = [n for n in PARAM.findall(p) if n not in SAMPLES]
        assert not missing, "route %s: give its parameter(s) %s a sample in SAMPLES" % (p, missing)
        assert "<" not in visitable(p)


# --- sessions ------------------------------------------------------------------------------

def test_sessions_idle_expiry_and_idle_clock_restarted_by_use():
    clock = FakeClock()
    sessions = auth.Sessions(clock)
    s = sessions.open("userhigh", must_change_password=False)
    for _ in range(4):                         # each use restarts the idle clock
        clock.advance(auth.IDLE - 1)
        assert sessions.get(s.token) is s
    assert sessions.count() == 1
    clock.advance(auth.IDLE + 1)
    assert sessions.count() == 0
    assert sessions.get(s.token) is None
    assert s.token not in sessions.by_token     # dropped, not only hidden


def test_sessions_absolute_expiry_even_when_used():
    clock = FakeClock()
    sessions = auth.Sessions(clock)
    s = sessions.open("userhigh", must_change_password=False)
    used = 0.0
    while used + auth.IDLE / 2 <= auth.ABSOLUTE:
        clock.advance(auth.IDLE / 2)
        used += auth.IDLE / 2
        assert sessions.get(s.token) is s, used
    clock.advance(auth.ABSOLUTE - used + 1)
    assert clock() - s.created > auth.ABSOLUTE
    assert sessions.get(s.token) is None


def test_sessions_new_token_at_each_login_and_close():
    sessions = auth.Sessions(FakeClock())
    a = sessions.open("userhigh", must_change_password=True)
    b = sessions.open("userhigh", must_change_password=False)
    assert a.token != b.token and a.csrf != b.csrf and a.token != a.csrf
    assert len(a.token) >= 43 and len(a.csrf) >= 32          # 32 and 24 random bytes
    assert a.must_change_password and not b.must_change_password
    sessions.close(a.token)
    assert sessions.get(a.token) is None and sessions.get(b.token) is b
    sessions.close(None)                       # nothing to close: no error
    assert sessions.get(None) is None and sessions.get("") is None
    assert sessions.get("not-a-token") is None


def test_sessions_close_all_keeps_only_the_one_asked():
    sessions = auth.Sessions(FakeClock())
    a, b, c = (sessions.open("userhigh", False) for _ in range(3))
    sessions.close_all(keep=b.token)
    assert [sessions.get(x.token) for x in (a, b, c)] == [None, b, None]
    sessions.close_all()
    assert sessions.get(b.token) is None and sessions.count() == 0


# --- login back-off ------------------------------------------------------------------------

def test_throttle_free_failures_then_doubling_then_capped():
    clock = FakeClock()
    t = auth.Throttle(clock)
    for n in range(1, auth.FREE_FAILURES):
        t.failed("10.0.0.1", "userhigh")
        assert t.wait("10.0.0.1") == 0, n
    waits = []
    for _ in range(14):
        t.failed("10.0.0.1", "userhigh")
        waits.append(t.wait("10.0.0.1"))
    assert waits[0] == auth.FIRST_WAIT                       # the 5th failure: 2 s
    assert waits[1:4] == [2 * auth.FIRST_WAIT, 4 * auth.FIRST_WAIT, 8 * auth.FIRST_WAIT]
    assert all(b == min(auth.MAX_WAIT, 2 * a) for a, b in zip(waits, waits[1:]))
    assert waits[-1] == auth.MAX_WAIT and max(waits) == auth.MAX_WAIT
    assert t.wait("10.0.0.2") == 0                           # per address
    clock.advance(auth.MAX_WAIT - 1)
    assert t.wait("10.0.0.1") == pytest.approx(1)
    clock.advance(1)
    assert t.wait("10.0.0.1") == 0
    t.succeeded("10.0.0.1")
    t.failed("10.0.0.1", "userhigh")                         # counting starts over
    assert t.wait("10.0.0.1") == 0 and t.failures["10.0.0.1"] == 1


# --- origin, CSRF, passwords ---------------------------------------------------------------

@pytest.mark.parametrize("host, ok", [
    ("192.168.1.10:8080", True), ("127.0.0.1:8080", True), ("[fe80::1]:80", True),
    ("localhost:8080", True), ("192.168.1.10", True),
    ("evil.example:8080", False), ("gw.local", False), ("", False), (None, False),
    ("192.168.1.10.evil.example", False)])
def test_the_page_is_served_only_by_address(host, ok):
    """DNS rebinding: a page of another site whose name now resolves to the gateway sends
    requests whose Origin and Host agree; refusing every name stops it."""
    assert auth.host_allowed(host) is ok


def test_a_name_gets_421_even_for_the_login(tmp_path):
    web = stub_web(tmp_path, FakeClock())

    async def main():
        c = Client(web_app.build(web), host="evil.example:8080")
        r = await c.get("/connexion")
        assert r.status_code == 421
        r = await c.post("/connexion", headers={**FORM, "Origin": "http://evil.example:8080"},
                         body="user=userhigh&password=high")
        assert r.status_code == 421 and auth.COOKIE not in c.cookies
    asyncio.run(main())


@pytest.mark.parametrize("headers, host, ok", [
    ({"Origin": "http://192.168.1.10:8080"}, "192.168.1.10:8080", True),
    ({"Origin": "http://GW.local"}, "gw.local", True),
    ({"Referer": "http://192.168.1.10:8080/reseau?x=1"}, "192.168.1.10:8080", True),
    ({"Origin": "http://192.168.1.10:8081"}, "192.168.1.10:8080", False),       # other port
    ({"Origin": "http://evil.example"}, "192.168.1.10:8080", False),
    ({"Origin": "http://192.168.1.10:8080.evil.example"}, "192.168.1.10:8080", False),
    ({"Origin": "http://evil.example/?192.168.1.10:8080"}, "192.168.1.10:8080", False),
    ({"Origin": "http://evil.example", "Referer": "http://192.168.1.10:8080/"},
     "192.168.1.10:8080", False),                    # the Origin is what counts when given
    ({"Origin": "null"}, "192.168.1.10:8080", False),       # sandboxed frame, file://
    ({}, "192.168.1.10:8080", False),                       # neither header
    ({"Origin": "http://192.168.1.10:8080"}, None, False),  # no Host
    ({"Origin": "http://192.168.1.10:8080"}, "", False),
])
def test_same_origin(headers, host, ok):
    assert auth.same_origin(headers, host) is ok


def test_csrf_ok():
    s = auth.Sessions(FakeClock()).open("userhigh", False)
    assert auth.csrf_ok(s, s.csrf)
    for bad in (None, "", s.csrf[:-1], s.csrf + "x", s.token, " " + s.csrf):
        assert not auth.csrf_ok(s, bad), bad


def test_new_password_problems():
    good = "Compteur-2026!"
    assert auth.new_password_problems(good, good) == {}
    assert auth.new_password_problems("x" * auth.MIN_PASSWORD, "x" * auth.MIN_PASSWORD) == {}
    short = "x" * (auth.MIN_PASSWORD - 1)
    assert auth.new_password_problems(short, short) == {"new": "password.too_short"}
    assert auth.new_password_problems("", "") == {"new": "password.too_short"}
    assert auth.new_password_problems(good, good + "x") == {"again": "password.mismatch"}
    assert auth.new_password_problems(good, "") == {"again": "password.mismatch"}
    # the factory password is never accepted, whatever the reason given
    assert auth.new_password_problems(auth.FACTORY_PASSWORD, auth.FACTORY_PASSWORD)
    for problems in ({"new": "password.too_short"}, {"again": "password.mismatch"}):
        for key in problems.values():
            assert T[key]                                    # a French text for each


def test_factory_hash_and_login_ok(tmp_path):
    store = ConfigStore(tmp_path)
    store.ensure_files()
    settings = store.settings
    assert auth.is_factory(settings.web_password_hash)
    assert auth.login_ok("userhigh", "high", settings)
    assert not auth.login_ok("userhigh", "High", settings)
    assert not auth.login_ok("userlow", "high", settings)
    digest = auth.make_hash("Compteur-2026!")
    assert not auth.is_factory(digest) and "Compteur-2026!" not in digest
    assert auth.check_password("Compteur-2026!", digest)
    assert not auth.check_password("high", digest)


# --- the view: numbered events -------------------------------------------------------------

def _status(service, activity):
    return ("%s.status" % service, {"src": service, "ts": 1.0,
                                    "data": {"activity": activity, "version": "1.2"}})


def test_view_numbers_every_event_and_the_snapshot_splits_them():
    view = View(["acquisition", "web"])
    assert view.initialising() and view.snapshot()["seq"] == 0
    out = view.apply(*_status("acquisition", "operational"))
    # a status, and the banner (the activity changed); numbered 1, 2
    assert [(e, n) for e, _, n in out] == [("status", 1), ("banner", 2)]
    assert out[0][1] == {"service": "acquisition", "activity": "operational", "version": "1.2"}
    assert out[1][1] == {"init": True}                        # web has not reported yet
    assert view.snapshot()["seq"] == 2
    out = view.apply(*_status("acquisition", "operational"))  # no change: no banner
    assert [(e, n) for e, _, n in out] == [("status", 3)]
    out = view.apply(*_status("web", "operational"))
    assert [(e, d, n) for e, d, n in out][-1] == ("banner", {"init": False}, 5)
    assert not view.initialising()
    snap = view.snapshot()
    assert snap["seq"] == 5 and snap["status"]["web"]["activity"] == "operational"
    # a machine's activity state: the banner comes back at once
    out = view.apply("web.state", {"data": {"machine": "activity", "state": "stopping"}})
    assert [(e, n) for e, _, n in out] == [("state", 6), ("banner", 7)]
    assert out[1][1] == {"init": True} and view.initialising()
    assert view.snapshot()["machines"]["web"] == {"activity": "stopping"}
    # what the page does not show is not numbered
    assert view.apply("connection.phase", {"data": {}}) == []
    assert view.snapshot()["seq"] == 7
    # a snapshot is a copy
    snap = view.snapshot()
    snap["status"]["web"]["activity"] = "changed"
    assert view.snapshot()["status"]["web"]["activity"] == "stopping"


def test_view_journal_task_leds_detected_values():
    view = View(["acquisition"])
    out = view.apply("journal", {"ts": 0, "data": {"time": 1767225600.0,
                                                    "message": "Demande de connexion..."}})
    assert out == [("journal", {"row": ["01/01/26", "00:00:00", "Demande de connexion..."]}, 1)]
    out = view.apply("task.started", {"data": {"task": "Détection", "reason": "command"}})
    assert out[0][:2] == ("task", {"phase": "started", "task": "Détection",
                                   "reason": "command"})
    assert view.snapshot()["task"] == {"task": "Détection", "reason": "command"}
    view.apply("task.ended", {"data": {"task": "Détection"}})
    assert view.snapshot()["task"] is None
    out = view.apply("gateway.leds", {"data": {"leds": {"TIC1": "on"}, "pulse": "ACTIVITY"}})
    assert out[0][:2] == ("leds", {"leds": {"TIC1": "on"}, "pulse": "ACTIVITY"})
    view.apply("tic.2.detected", {"data": {"input": 2, "family": "CBETM"}})
    out = view.apply("tic.2.frame", {"ts": 1000.0, "data": {
        "input": 2, "groups": [["ADCO", "021230121193"], ["PAPP", "01230"]]}})
    assert [e for e, _, _ in out] == ["values", "power"]
    assert out[1][1] == {"input": 2, "t": 1000.0, "w": 1230.0}
    out = view.apply("tic.2.frame", {"ts": 1010.0, "data": {"input": 2, "groups": [
        ["PAPP", "01240"]]}})
    assert [e for e, _, _ in out] == ["values"]       # a power point a minute at most
    snap = view.snapshot()
    assert snap["detected"][2]["family"] == "CBETM"
    assert snap["values"][2]["groups"] == [["PAPP", "01240"]]
    assert view.power_series(2) == [(1000.0, 1230.0)]
    assert snap["seq"] == 8
    assert [r[2] for r in snap["journal"]] == ["Demande de connexion..."]


def test_view_numbers_concurrent_events_without_gaps():
    view = View(["acquisition"])
    seen = []
    lock = threading.Lock()

    def feed():
        for i in range(500):
            got = view.apply("journal", {"data": {"time": 0, "message": str(i)}})
            with lock:
                seen.extend(n for _, _, n in got)
    threads = [threading.Thread(target=feed) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seen) == list(range(1, 2001)) and view.snapshot()["seq"] == 2000


# --- the hub: live streams, replay after a snapshot ------------------------------------------

def _run(coro):
    """Run ``coro`` in a loop of its own, in a thread of its own (a browser test in the same
    process keeps Playwright's loop running in the main thread)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, asyncio.wait_for(coro, 10)).result()


def test_hub_replays_the_events_after_a_snapshot():
    async def main():
        hub = Hub()
        hub.loop = asyncio.get_running_loop()
        early = hub.open()                       # a stream open before: gets them live
        for n in range(1, 6):
            hub.broadcast(("journal", {"n": n}, n))
        await asyncio.sleep(0.05)
        assert [(await early.get(1))[2] for _ in range(5)] == [1, 2, 3, 4, 5]
        assert await early.get(0.05) is None     # nothing more: a keep-alive
        s = hub.open(since=3)                    # a page rendered from snapshot 3
        assert [(await s.get(1))[2] for _ in range(2)] == [4, 5]
        assert not hub.open(since=5).queue        # rendered from the last: nothing to replay
        # from another thread, as the bus loop does
        threading.Thread(target=hub.broadcast, args=(("leds", {}, 6),)).start()
        assert (await s.get(5))[2] == 6 and (await early.get(5))[2] == 6
        s.close()
        assert s not in hub.streams and early in hub.streams
    _run(main())


def test_hub_asks_for_a_reload_when_the_events_since_are_gone():
    async def main():
        hub = Hub()
        hub.loop = asyncio.get_running_loop()
        for n in range(1, REPLAY + 11):
            hub.broadcast(("journal", {}, n))
        await asyncio.sleep(0.05)
        assert hub.recent[0][2] == 11                # the oldest kept
        assert hub.open(since=5) is None             # 6..10 are gone: render again
        assert hub.open(since=9) is None
        s = hub.open(since=10)                       # 11.. are all kept
        # more than a stream holds: it keeps the newest and says it lost some (a reload)
        assert s is not None and len(s.queue) == STREAM_BACKLOG and s.dropped
        assert s.queue[-1][2] == REPLAY + 10
        fresh = Hub()
        assert fresh.open(since=42) is not None      # nothing broadcast yet: nothing lost
    _run(main())


def test_slow_stream_loses_its_oldest_and_is_told():
    async def main():
        hub = Hub()
        hub.loop = asyncio.get_running_loop()
        slow, fast = hub.open(), hub.open()
        for n in range(1, STREAM_BACKLOG + 2):
            hub.broadcast(("journal", {}, n))
            if n % 50 == 0:
                await asyncio.sleep(0)
                while fast.queue:
                    await fast.get(0)
        await asyncio.sleep(0.05)
        assert slow.dropped and len(slow.queue) == STREAM_BACKLOG
        assert slow.queue[0][2] == 2                 # the first was dropped
        assert not fast.dropped
    _run(main())


def test_broadcast_without_a_loop_is_harmless():
    hub = Hub()
    hub.broadcast(("journal", {}, 1))                # before the HTTP thread started
    loop = asyncio.new_event_loop()
    hub.loop = loop
    loop.close()
    hub.broadcast(("journal", {}, 2))                # after it stopped
    assert not hub.recent


# --- the gate, through Microdot's test client ---------------------------------------------

HOST = "192.0.2.7:8080"        # the gateway asked by address (a name is refused: DNS rebinding)
ORIGIN = {"Origin": "http://" + HOST}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _client(web):
    return Client(web_app.build(web), host=HOST)


class Client(TestClient):
    """Microdot's test client, taking the session cookie from the response as a browser does
    (the app adds Set-Cookie with ``headers.setdefault``, which Microdot's case-insensitive
    dictionary does not index: its own client does not see it)."""

    async def request(self, *args, **kwargs):
        r = await super().request(*args, **kwargs)
        r.set_cookie = []
        for key, values in list(r.headers.items()):
            if key.lower() == "set-cookie":
                r.set_cookie += values if isinstance(values, list) else [values]
        for cookie in r.set_cookie:
            name, _, rest = cookie.partition("=")
            value, *options = rest.split(";")
            if any(o.strip().lower() == "max-age=0" for o in options):
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return r


def test_login_gate_and_forced_change(tmp_path):
    web = stub_web(tmp_path)

    async def main():
        c = _client(web)
        r = await c.get("/")
        assert r.status_code == 302 and r.headers["Location"] == "/connexion"
        r = await c.get("/events")
        assert r.status_code == 401
        r = await c.post("/connexion", headers={**FORM},
                         body="user=userhigh&password=high")
        assert r.status_code == 403                          # no Origin
        r = await c.post("/connexion", headers={**FORM, **ORIGIN},
                         body="user=userhigh&password=high")
        assert r.status_code == 302 and r.headers["Location"] == "/mot-de-passe"
        (cookie,) = r.set_cookie
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        first = c.cookies[auth.COOKIE]
        assert web.sessions.get(first).must_change_password
        for path in ("/", "/installation/connexion", "/redemarrer", "/events"):
            r = await c.get(path)
            assert (r.status_code, r.headers.get("Location")) == (302, "/mot-de-passe"), path
        r = await c.get("/mot-de-passe")
        assert r.status_code == 200 and T["password.forced"].replace("'", "&#x27;") in r.text
        # a new login makes a new token; the old one ends
        r = await c.post("/connexion", headers={**FORM, **ORIGIN},
                         body="user=userhigh&password=high")
        second = c.cookies[auth.COOKIE]
        assert second != first and web.sessions.get(first) is None
        # a POST with the session but without the token, or from elsewhere
        csrf = web.sessions.get(second).csrf
        body = "current=high&new=Compteur-2026%21&again=Compteur-2026%21"
        r = await c.post("/mot-de-passe", headers={**FORM, **ORIGIN}, body=body)
        assert r.status_code == 403 and r.text == T["csrf"]
        r = await c.post("/mot-de-passe", headers={**FORM, "Origin": "http://evil.test"},
                         body=body + "&csrf=" + csrf)
        assert r.status_code == 403
        r = await c.post("/mot-de-passe", headers={**FORM, **ORIGIN, "X-CSRF-Token": csrf},
                         body=body)
        assert r.status_code == 302 and r.headers["Location"] == "/"
        assert web.sessions.get(second) is None              # every session ends
        assert not auth.is_factory(web.service.store.settings.web_password_hash)
        r = await c.get("/")
        assert r.status_code == 200 and T["password.done"] in r.text
        # the factory password no longer opens anything
        r = await c.post("/connexion", headers={**FORM, **ORIGIN},
                         body="user=userhigh&password=high")
        assert r.status_code == 401 and T["login.failed"] in r.text
    _run(main())


def test_logout_ends_the_session(tmp_path):
    web = stub_web(tmp_path)
    web.service.store.update({"Web_PasswordHash": auth.make_hash("Compteur-2026!")}, by="test")
    web.service.settings = web.service.store.settings

    async def main():
        c = _client(web)
        r = await c.post("/connexion", headers={**FORM, **ORIGIN},
                         body="user=userhigh&password=Compteur-2026%21")
        assert r.status_code == 302 and r.headers["Location"] == "/"
        token = c.cookies[auth.COOKIE]
        csrf = web.sessions.get(token).csrf
        r = await c.post("/deconnexion", headers={**FORM, **ORIGIN}, body="csrf=" + csrf)
        assert r.status_code == 302 and r.headers["Location"] == "/connexion"
        assert auth.COOKIE not in c.cookies and web.sessions.get(token) is None
        r = await c.get("/", headers={"Cookie": "%s=%s" % (auth.COOKIE, token)})
        assert r.status_code == 302 and r.headers["Location"] == "/connexion"
    _run(main())


def test_login_back_off_over_http(tmp_path):
    clock = FakeClock()
    web = stub_web(tmp_path, clock)

    async def main():
        c = _client(web)
        texts = []
        for _ in range(auth.FREE_FAILURES + 1):
            r = await c.post("/connexion", headers={**FORM, **ORIGIN},
                             body="user=userhigh&password=faux")
            texts.append((r.status_code, r.text))
        for status, text in texts[:auth.FREE_FAILURES]:
            assert status == 401 and T["login.failed"] in text
        status, text = texts[-1]
        assert status == 429 and T["login.wait"].split(":")[0].replace("'", "&#x27;") in text
        r = await c.post("/connexion", headers={**FORM, **ORIGIN},
                         body="user=userhigh&password=high")
        assert r.status_code == 429 and auth.COOKIE not in c.cookies   # even the right one
        clock.advance(auth.FIRST_WAIT + 0.1)
        r = await c.post("/connexion", headers={**FORM, **ORIGIN},
                         body="user=userhigh&password=high")
        assert r.status_code == 302 and auth.COOKIE in c.cookies
        assert web.throttle.failures == {}
    _run(main())


# --- sessions kept across a restart of the process ------------------------------------------

def test_sessions_saved_and_loaded_with_their_ages(tmp_path):
    import json
    import os
    import stat

    before = FakeClock(start=5000.0)
    old = auth.Sessions(before)
    fresh = old.open("userhigh", must_change_password=False)
    before.advance(auth.IDLE - 10)
    assert old.get(fresh.token)
    forced = old.open("userhigh", must_change_password=True)
    gone = old.open("userhigh", False)
    before.advance(auth.IDLE - 10)
    assert old.get(fresh.token) and old.get(forced.token)       # used; gone is not
    before.advance(20)                                            # gone: idle too long
    path = tmp_path / "web-sessions.json"
    old.save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert gone.token not in path.read_text()

    after = FakeClock(start=10.0)                                 # a new process's clock
    new = auth.Sessions(after)
    assert new.load(path) == 2 and not path.exists()              # read once, removed
    s, f = new.get(fresh.token), new.get(forced.token)
    assert s.csrf == fresh.csrf and s.user == "userhigh" and not s.must_change_password
    assert f.must_change_password and f.csrf == forced.csrf
    assert new.get(gone.token) is None
    # the age goes on: the absolute limit counts from the first login
    left = auth.ABSOLUTE - (before() - fresh.created)
    while left > 60:                                  # used all along: only its age ends it
        step = min(auth.IDLE / 2, left - 30)
        after.advance(step)
        left -= step
        assert new.get(fresh.token) is not None, left
    after.advance(left + 1)
    assert new.get(fresh.token) is None

    # the time the process was away counts as idle time
    for away, kept in ((auth.IDLE - 60, 1), (auth.IDLE + 1, 0)):
        one = auth.Sessions(FakeClock())
        one.open("userhigh", False)
        one.save(path)
        saved = json.loads(path.read_text())
        assert len(saved) == 1
        saved[0]["saved_at"] -= away
        path.write_text(json.dumps(saved))
        assert auth.Sessions(FakeClock()).load(path) == kept, away


def test_sessions_load_nothing_from_a_bad_or_missing_file(tmp_path):
    path = tmp_path / "web-sessions.json"
    assert auth.Sessions(FakeClock()).load(path) == 0
    for text in ("not json", "{}", '[{"token": "t"}]', '[{"token": "t", "user": "u", '
                 '"csrf": "c", "age": "x", "idle": 0, "saved_at": 0}]'):
        path.write_text(text)
        assert auth.Sessions(FakeClock()).load(path) == 0, text
        assert not path.exists()


def test_tries_sent_in_parallel_do_not_slip_past_the_back_off(tmp_path):
    """Twelve wrong passwords at once from one address: each waits for the verdict on the one
    before, so only the first five are checked and the others are told to wait."""
    web = stub_web(tmp_path, FakeClock())

    async def main():
        c = _client(web)
        replies = await asyncio.gather(*(
            c.post("/connexion", headers={**FORM, **ORIGIN}, body="user=userhigh&password=faux")
            for _ in range(12)))
        statuses = sorted(r.status_code for r in replies)
        assert statuses == [401] * auth.FREE_FAILURES + [429] * (12 - auth.FREE_FAILURES)
        assert web.throttle.snapshot() == {"127.0.0.1": auth.FREE_FAILURES}
    asyncio.run(main())


def test_a_body_without_its_length_is_refused(tmp_path):
    """A chunked body, or a multipart one announced as empty, would be read without limit."""
    web = stub_web(tmp_path, FakeClock())

    async def main():
        c = _client(web)
        r = await c.post("/connexion", headers={**FORM, **ORIGIN, "Transfer-Encoding": "chunked"},
                         body="user=userhigh&password=high")
        assert r.status_code == 411
        r = await c.post("/systeme/restauration", headers={
            **ORIGIN, "Content-Type": "multipart/form-data; boundary=x", "Content-Length": "0"})
        assert r.status_code == 411
    asyncio.run(main())
