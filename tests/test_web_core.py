"""The page's core in a real browser (Debian's chromium, Playwright) against a whole running
gateway (the demo): the login and the forced change of the factory password, the session gate
(every route, without a session), the origin and CSRF checks, the login back-off, the session
cookie and logout, *Accueil*, *Installation* (*Connexion*, *Détection des compteurs*), the
initialisation banner, the front panel (LEDs, INSTALL), *Redémarrer*, many open tabs.

The tests run in file order: the first one changes the factory password (the ``page`` fixture
logs in with the new one afterwards); *Redémarrer* restarts the whole gateway and comes last but
one. Screenshots: var/test-output/screenshots/core-*.png.
"""
from __future__ import annotations

import contextlib
import http.client
import http.server
import re
import threading
import time
from urllib.parse import urlsplit

import pytest
import zmq
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

import test_web_auth
from browser import (FACTORY_PASSWORD, PASSWORD, USER, browser, csrf_of, gateway,  # noqa: F401
                     login, page, shot)
from bus import endpoints as eps
from bus.client import Publisher
from bus.testing import wait_for
from services.web import auth
from services.web.texts import T
from ticgw import __version__, registry

SERVICES = [s.name for s in registry.BUILTIN]     # not a service a test registered
BUSY_DETECTION = ("Une tâche 'Détection' est déjà en cours d'exécution. "
                  "Veuillez réessayer dans quelques instants.")
DATE = re.compile(r"\d\d/\d\d/\d\d")
HOUR = re.compile(r"\d\d:\d\d:\d\d")


# --- helpers ---------------------------------------------------------------------------------

@contextlib.contextmanager
def fresh(browser):  # noqa: F811
    """A browser context of its own (no cookie), and a page in it."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="fr-FR")
    try:
        yield context.new_page()
    finally:
        context.close()


def submit_login(p, gw, user: str, password: str) -> None:
    p.goto(gw.url + "/connexion")
    p.fill('input[name="user"]', user)
    p.fill('input[name="password"]', password)
    with p.expect_navigation():
        p.click("form button")


def plain(gw, method: str, path: str, headers=None, body: str | None = None):
    """One plain HTTP request (no redirect followed): (status, headers, body bytes)."""
    u = urlsplit(gw.url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def mark(gw) -> int:
    """Where the bus events are now: :func:`since` gives those after."""
    with gw.events._lock:
        return len(gw.events.items)


def since(gw, at: int, topic: str, **match) -> list[dict]:
    with gw.events._lock:
        items = gw.events.items[at:]
    return [env for t, env in items if t == topic
            and all((env.get("data") or {}).get(k) == v for k, v in match.items())]


def task_free(gw, timeout: float = 90) -> None:
    """Wait until no task (Détection, Connexion) holds the lock."""
    def free():
        d = gw.answer("acquisition", "status") or {}
        u = gw.answer("uplink", "status") or {}
        return d.get("activity") == "operational" and not d.get("detection") \
            and (u.get("machines") or {}).get("connection", "idle") == "idle"
    wait_for(free, timeout, interval=0.5, message="a task still runs\n" + gw.tail())


def click_until_accepted(p, selector: str, timeout: float = 90) -> None:
    """Click a form's button until the gateway does not refuse it as busy (a task runs)."""
    deadline = time.monotonic() + timeout
    while True:
        with p.expect_navigation():
            p.click(selector)
        if p.locator(".banner.busy").count() == 0:
            return
        assert time.monotonic() < deadline, "still refused as busy after %.0f s" % timeout
        time.sleep(1.0)


def start_detection(gw, timeout: float = 90) -> None:
    """A detection asked on the bus, retried while another task runs."""
    wait_for(lambda: gw.answer("acquisition", "detect"), timeout, interval=0.5,
             message="no detection accepted\n" + gw.tail())


def observe(p, selector: str, attribute: str) -> None:
    """Record every change of ``attribute`` on the elements of ``selector`` (read back with
    :func:`observed`): the page is never reloaded meanwhile, or the record is gone."""
    p.evaluate("""([selector, attribute]) => {
        window.__seen = window.__seen || [];
        document.querySelectorAll(selector).forEach((e) => {
            new MutationObserver(() => window.__seen.push(
                [e.getAttribute('data-led') || e.id || e.getAttribute('data-service') || '',
                 attribute, e.getAttribute(attribute), e.textContent]))
              .observe(e, {attributes: true, attributeFilter: [attribute]});
        });
    }""", [selector, attribute])


def observe_text(p, selector: str) -> None:
    p.evaluate("""(selector) => {
        window.__seen = window.__seen || [];
        document.querySelectorAll(selector).forEach((e) => {
            new MutationObserver(() => window.__seen.push(
                [e.getAttribute('data-service') || e.id || '', 'text', null, e.textContent]))
              .observe(e, {childList: true, characterData: true, subtree: true});
        });
    }""", selector)


def observed(p) -> list:
    return p.evaluate("() => window.__seen || null")


def publish_journal(gw, message: str) -> None:
    """A row of the Connexion table, as the services publish it (only the pages see it)."""
    ctx = zmq.Context.instance()
    pub = Publisher(ctx, eps.resolve(gw.run).xsub, "uplink")
    try:
        time.sleep(0.3)                          # the broker learns the new publisher
        pub.publish("journal", time=time.time(), message=message)
        time.sleep(0.2)
    finally:
        pub.sock.close(linger=1000)


def restart(gw, service: str) -> int:
    """Restart one service; the mark of the events from just before. The reply to `restart`
    is sometimes lost as the process re-executes: the restart is known by its event."""
    at = mark(gw)
    gw.answer(service, "restart")
    wait_for(lambda: since(gw, at, "%s.state" % service, machine="activity",
                           state="stopping"), 15, interval=0.05,
             message="%s did not restart\n%s" % (service, gw.tail()))
    return at


def stored_hash(gw) -> str:
    return re.search(r"^Web_PasswordHash=(.*)$", gw.config_text(), re.M).group(1).strip()


def all_operational(gw) -> bool:
    return all((gw.answer(s, "status") or {}).get("activity") == "operational"
               for s in SERVICES)


# --- the login and the forced password change ------------------------------------------------

def test_factory_login_leads_only_to_the_password_change(browser, gateway, tmp_path):  # noqa: F811
    assert gateway.password == FACTORY_PASSWORD, "this test must be the module's first login"
    gets = [test_web_auth.visitable(p)
            for m, p in test_web_auth.app_routes(tmp_path) if m == "GET"]
    with fresh(browser) as p:
        p.goto(gateway.url + "/")
        assert p.url == gateway.url + "/connexion"
        expect(p.locator("h1")).to_have_text(T["login.title"])
        shot(p, "core-login")
        submit_login(p, gateway, USER, FACTORY_PASSWORD)
        assert p.url == gateway.url + "/mot-de-passe"
        expect(p.locator(".banner.warn")).to_have_text(T["password.forced"])
        assert p.locator("nav.menu").count() == 0        # no menu: nowhere else to go
        shot(p, "core-password-forced")
        # no other page, stream, asset nor form while the factory password is in force
        for path in gets + ["/connexion", "/reseau"]:
            p.goto(gateway.url + path)
            assert p.url == gateway.url + "/mot-de-passe", path
        at = mark(gateway)
        token = p.get_attribute('input[name="csrf"]', "value")
        r = p.request.post(gateway.url + "/installation/connexion", form={"csrf": token},
                           headers={"Origin": gateway.url}, max_redirects=0)
        assert r.status == 302 and r.headers["location"] == "/mot-de-passe"
        p.goto(gateway.url + "/mot-de-passe")

        def change(current, new, again):
            p.fill('input[name="current"]', current)
            p.fill('input[name="new"]', new)
            p.fill('input[name="again"]', again)
            with p.expect_navigation():
                p.click("form button")

        # the browser itself holds a too-short password back (minlength); the gateway
        # refuses it too, next to its field
        p.fill('input[name="new"]', "court")
        assert p.locator('input[name="new"]').evaluate("e => e.validity.tooShort")
        p.locator("main form").evaluate("f => f.noValidate = true")
        change(FACTORY_PASSWORD, "court", "court")
        new_field = p.locator('label.field:has(input[name="new"])')
        expect(new_field.locator(".error")).to_have_text(T["password.too_short"])
        assert new_field.get_attribute("class") == "field bad"
        assert p.locator(".error").count() == 1
        change(FACTORY_PASSWORD, PASSWORD, PASSWORD + "x")
        again_field = p.locator('label.field:has(input[name="again"])')
        expect(again_field.locator(".error")).to_have_text(T["password.mismatch"])
        assert p.locator(".error").count() == 1
        change("pas-le-bon-mot", PASSWORD, PASSWORD)
        expect(p.locator('label.field:has(input[name="current"]) .error')).to_have_text(
            T["password.wrong"])
        assert p.url == gateway.url + "/mot-de-passe"
        shot(p, "core-password-refused")
        factory_hash = stored_hash(gateway)
        assert auth.is_factory(factory_hash)          # nothing refused was written
        change(FACTORY_PASSWORD, PASSWORD, PASSWORD)
        assert p.url == gateway.url + "/"
        gateway.password = PASSWORD
        expect(p.locator(".banner.info")).to_have_text(T["password.done"])
        expect(p.locator("nav.menu")).to_be_visible()
        assert not since(gateway, at, "task.started", reason="web")   # the POST did nothing
        new_hash = stored_hash(gateway)                # hashed (salted), never in clear
        assert not auth.is_factory(new_hash) and PASSWORD not in gateway.config_text()
        assert auth.check_password(PASSWORD, new_hash)
    with fresh(browser) as p:
        submit_login(p, gateway, USER, FACTORY_PASSWORD)       # the old one no longer works
        assert p.url == gateway.url + "/connexion"
        expect(p.locator(".banner.error")).to_have_text(T["login.failed"])
        submit_login(p, gateway, USER, PASSWORD)
        assert p.url == gateway.url + "/"


# --- the gate --------------------------------------------------------------------------------

def test_every_route_without_a_session_gets_only_the_login(browser, gateway, tmp_path):  # noqa: F811
    routes = test_web_auth.app_routes(tmp_path)
    assert len(routes) >= 12
    at = mark(gateway)
    menu_pages = {"/", "/installation/detection", "/installation/connexion", "/redemarrer",
                  "/mot-de-passe"}
    for method, pattern in routes:
        path = test_web_auth.visitable(pattern)
        if method == "GET":
            status, headers, body = plain(gateway, "GET", path)
        else:                                     # a form from the page, but no session
            status, headers, body = plain(
                gateway, "POST", path, {"Origin": gateway.url, "Content-Type":
                                        "application/x-www-form-urlencoded"},
                "csrf=x&press=short&user=userhigh")
        where = "%s %s" % (method, path)
        if path == "/connexion":
            assert status == (200 if method == "GET" else 401), where   # the login itself
            assert b'name="password"' in body
            continue
        if method == "POST" or path.startswith("/events") or path.startswith("/static/"):
            assert (status, body) == (401, b"Session requise"), where
        elif path in menu_pages:
            assert (status, headers.get("location"), body) == (302, "/connexion", b""), where
        else:                                     # a download without a dot, say
            assert (status, body) in ((401, b"Session requise"), (302, b"")), where
            assert status == 401 or headers.get("location") == "/connexion", where
    with fresh(browser) as p:
        for method, pattern in routes:
            if method != "GET":
                continue
            path = test_web_auth.visitable(pattern)
            r = p.goto(gateway.url + path)
            if p.url == gateway.url + "/connexion":
                expect(p.locator('input[name="password"]')).to_be_visible()
                assert "menu" not in p.content().split("<body", 1)[1], path
            else:
                assert r.status == 401 and p.inner_text("body") == "Session requise", path
    assert not since(gateway, at, "task.started")       # no POST did anything


def test_cookie_httponly_strict_and_logout_ends_the_session(browser, gateway, page):  # noqa: F811
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "ticgw_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    assert "ticgw_session" not in page.evaluate("() => document.cookie")
    with page.expect_navigation():
        page.click("form.logout button")
    assert page.url == gateway.url + "/connexion"
    assert not [c for c in page.context.cookies() if c["name"] == "ticgw_session"]
    status, headers, _ = plain(gateway, "GET", "/", {"Cookie": "ticgw_session=" + cookie["value"]})
    assert (status, headers.get("location")) == (302, "/connexion")
    with fresh(browser) as p:                     # the old cookie, put back: nothing
        p.context.add_cookies([{k: cookie[k] for k in ("name", "value", "domain", "path")}])
        p.goto(gateway.url + "/installation/connexion")
        assert p.url == gateway.url + "/connexion"


class Attacker:
    """A page on another origin (another port of the same host) whose form posts to the
    gateway by itself as soon as it is loaded."""

    def __init__(self, html: str):
        body = html.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_cross_origin_post_is_refused(gateway, page):  # noqa: F811
    page.goto(gateway.url + "/installation/connexion")
    token = csrf_of(page)
    # even with the page's token (leaked, say), a form from elsewhere is refused
    evil = Attacker('<!doctype html><form id="f" method="post" action="%s/installation/connexion">'
                    '<input type="hidden" name="csrf" value="%s"></form>'
                    '<script>document.getElementById("f").submit()</script>'
                    % (gateway.url, token))
    at = mark(gateway)
    try:
        with page.expect_response(lambda r: r.url == gateway.url + "/installation/connexion"
                                  and r.request.method == "POST") as got:
            page.goto(evil.url)
        r = got.value
        assert r.request.header_value("origin") == evil.url.rstrip("/")
        assert r.status == 403                   # 403, not 401: the cookie went along
        expect(page.locator("body")).to_have_text(T["csrf"])
    finally:
        evil.close()
    # from the page itself, but without the token
    page.goto(gateway.url + "/installation/connexion")
    page.locator('main form[action="/installation/connexion"] input[name="csrf"]').evaluate(
        "e => e.remove()")
    with page.expect_response(lambda r: r.request.method == "POST") as got:
        page.click("#connect")
    assert got.value.status == 403 and got.value.request.header_value("origin") == gateway.url
    expect(page.locator("body")).to_have_text(T["csrf"])
    # the same through fetch: the header's token is checked as the field's
    r = page.request.post(gateway.url + "/installation/connexion",
                          headers={"Origin": gateway.url, "X-CSRF-Token": token + "x"})
    assert r.status == 403
    time.sleep(2.0)
    assert not since(gateway, at, "task.started", task="Connexion"), gateway.tail()
    page.goto(gateway.url + "/installation/connexion")     # the session lives on
    assert page.url == gateway.url + "/installation/connexion"


# --- Accueil, the banner -------------------------------------------------------------------

def test_home_welcome_version_and_services_live(gateway, page):  # noqa: F811
    page.goto(gateway.url + "/")
    expect(page.locator(".welcome")).to_have_text(T["home.welcome"])
    version = page.inner_text("#version")
    assert re.fullmatch(re.escape(__version__) + r" \d{4}-\d\d-\d\d\S*", version), version
    for name in SERVICES:
        expect(page.locator('#services tr[data-service="%s"] td' % name).nth(1)).to_have_text(
            "operational")
    expect(page.locator("#banner-init")).to_be_hidden()
    shot(page, "core-home")
    observe(page, "#banner-init", "hidden")
    observe_text(page, '#services tr[data-service="modem"]')
    page.evaluate("() => { window.__same_page = true; }")
    at = restart(gateway, "modem")
    wait_for(lambda: since(gateway, at, "modem.state", machine="activity",
                           state="operational", trigger="ready"), 60, interval=0.2,
             message=gateway.tail())
    expect(page.locator("#banner-init")).to_be_hidden()
    seen = observed(page)
    assert page.evaluate("() => window.__same_page") is True        # live: never reloaded
    banner = [v for who, attr, v, _ in seen if who == "banner-init"]
    # shown (no hidden attribute) while the modem was not operational, hidden after
    assert None in banner and banner[-1] == "", seen
    rows = [text for who, attr, _, text in seen if who == "modem"]
    assert any("operational" not in t for t in rows), \
        "the modem's row never showed it was not operational: %r" % seen
    expect(page.locator('#services tr[data-service="modem"] td').nth(1)).to_have_text(
        "operational")


def test_banner_exactly_while_a_service_is_not_operational(gateway, page):  # noqa: F811
    page.goto(gateway.url + "/installation/connexion")
    expect(page.locator("#banner-init")).to_be_hidden()
    expect(page.locator("#banner-init")).to_have_text(
        "La passerelle est en cours d'initialisation.")
    observe(page, "#banner-init", "hidden")
    at = restart(gateway, "modem")
    wait_for(lambda: since(gateway, at, "modem.state", machine="activity",
                           state="operational", trigger="ready"), 60, interval=0.1)
    expect(page.locator("#banner-init")).to_be_hidden()
    banner = [v for who, _, v, _ in observed(page) if who == "banner-init"]
    assert banner and banner[0] is None and banner[-1] == "", banner   # shown, then hidden
    # a page rendered while a service is down shows the banner from the start
    cookie = {"Cookie": "ticgw_session=" + next(c["value"] for c in page.context.cookies()
                                                if c["name"] == "ticgw_session")}
    samples, halt = [], threading.Event()

    def poll():
        while not halt.is_set():
            status, _, body = plain(gateway, "GET", "/redemarrer", cookie)
            init = re.search(rb'<p class="banner init" id="banner-init"( hidden)?>', body)
            samples.append((status, init is not None and init.group(1) is None))
            time.sleep(0.02)
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        wait_for(lambda: len(samples) >= 3, 10)
        at = restart(gateway, "modem")
        wait_for(lambda: since(gateway, at, "modem.state", machine="activity",
                               state="operational", trigger="ready"), 60, interval=0.1)
        time.sleep(1.0)
    finally:
        halt.set()
        poller.join(5)
    assert all(status == 200 for status, _ in samples)
    shown = [yes for _, yes in samples]
    assert not shown[0] and not shown[-1] and any(shown), shown


# --- Installation ----------------------------------------------------------------------------

def test_connection_refused_while_detecting_then_rows_live(gateway, page):  # noqa: F811
    page.goto(gateway.url + "/installation/connexion")
    assert page.locator("#journal th").all_inner_texts() == [
        T["connection.date"], T["connection.hour"], T["connection.message"]]
    assert T["connection.hour"] == "Heure GMT"
    expect(page.locator("#connect")).to_have_text("Connecter")
    # a detection holds the task lock: Connecter is refused with the manual's sentence
    task_free(gateway)
    at = mark(gateway)
    start_detection(gateway)
    with page.expect_navigation():
        page.click("#connect")
    refused = page.locator(".banner.busy")
    expect(refused).to_have_text(BUSY_DETECTION)
    assert since(gateway, at, "task.ended", task="Détection") == [], \
        "the detection ended before Connecter was clicked: the test proves nothing"
    assert not since(gateway, at, "task.started", task="Connexion")
    # once it is over, Connecter is accepted: no refusal, and the rows come live
    wait_for(lambda: since(gateway, at, "task.ended", task="Détection"), 90, interval=0.2)
    task_free(gateway)
    at = mark(gateway)
    with page.expect_navigation():
        page.click("#connect")
    expect(page.locator(".banner.info")).to_have_text(T["connection.started"])
    assert page.locator(".banner.busy").count() == 0
    page.evaluate("() => { window.__same_page = true; }")
    done = page.locator("#journal tbody tr", has_text="Connexion terminée")
    before = len(since(gateway, 0, "journal", message="Connexion terminée")) - len(
        since(gateway, at, "journal", message="Connexion terminée"))
    # the rows of this connection, from the request to the end, without a reload
    done.nth(before).wait_for(timeout=60000)
    assert page.evaluate("() => window.__same_page") is True
    rows = page.locator("#journal tbody tr")
    texts = [r for r in rows.all_inner_texts()]
    start = max(i for i, t in enumerate(texts) if t.endswith("Demande de connexion..."))
    end = max(i for i, t in enumerate(texts) if t.endswith("Connexion terminée"))
    assert start < end, texts[-40:]
    for i in (start, end):
        cells = rows.nth(i).locator("td").all_inner_texts()
        assert DATE.fullmatch(cells[0]) and HOUR.fullmatch(cells[1]), cells
    assert since(gateway, at, "task.started", task="Connexion", reason="web")
    shot(page, "core-connection")


def test_detection_running_then_the_table(gateway, page):  # noqa: F811
    page.goto(gateway.url + "/installation/detection")
    detecting = page.locator("#detecting")
    expect(detecting).to_have_text("Détection en cours")
    task_free(gateway)
    expect(detecting).to_be_hidden()
    at = mark(gateway)
    with page.expect_navigation():
        page.click("#detect")
    if page.locator(".banner.busy").count():            # a scheduled task came first
        task_free(gateway)
        click_until_accepted(page, "#detect")
    expect(detecting).to_be_visible()                   # while it runs
    assert wait_for(lambda: since(gateway, at, "task.started", task="Détection"), 10)
    shot(page, "core-detection-running")
    wait_for(lambda: since(gateway, at, "task.ended", task="Détection"), 90, interval=0.2,
             message=gateway.tail())
    expect(detecting).to_be_hidden(timeout=20000)       # the page reloaded itself
    page.wait_for_load_state()
    heads = page.locator("#detection > thead th").all_inner_texts()
    assert heads[-3:] == ["Type", "Description", "Détails"], heads
    details = gateway.call("acquisition", "details")["inputs"]
    assert sorted(details) == ["1", "2", "3"]
    families = []
    for key in ("1", "2", "3"):
        row = page.locator('#detection tr[data-input="%s"]' % key)
        cells = row.locator(":scope > td")
        families.append(cells.nth(1).inner_text())
        expect(cells.nth(2)).to_have_text(details[key]["description"])
        row.locator("summary").click()
        inner = row.locator("details table")
        expect(inner).to_be_visible()
        assert inner.locator("th").all_inner_texts() == ["Etiquette", "Valeur"]
        got = [r.locator("td").all_text_contents() for r in inner.locator("tbody tr").all()]
        assert got == [list(x) for x in details[key]["details"]]
        assert [details[key]["serial"]] in [[v] for k, v in got if k in ("ADCO", "ADSC")]
    assert families == ["CBEMM-ICC", "CBETM", "LINKY"]
    shot(page, "core-detection")


# --- the front panel -------------------------------------------------------------------------

def test_leds_live_and_install_short_press_connects(gateway, page):  # noqa: F811
    page.goto(gateway.url + "/")
    leds = page.locator(".panel [data-led]")
    assert [leds.nth(i).get_attribute("data-led") for i in range(leds.count())] == [
        "ACTIVITY", "TIC1", "TIC2", "TIC3"]
    assert page.locator(".panel .leds li").all_inner_texts() == [
        "ACTIVITY", "TIC1", "TIC2", "TIC3"]
    # the page shows what the acquisition says (asked again while they differ: a meter's
    # frames may turn TIC2 from on to flicker between the question and the look)
    def same():
        now = gateway.call("acquisition", "leds")["leds"]
        shown = {name: (page.get_attribute('[data-led="%s"]' % name, "class") or "")
                 .replace("pulse", "").split() for name in now}
        return all(shown[n] == ["led", state] for n, state in now.items()) or None
    wait_for(same, 20, interval=0.3)
    observe(page, "[data-led]", "class")
    page.evaluate("() => { window.__same_page = true; }")
    # each valid frame blinks its input's LED once, live
    wait_for(lambda: {w for w, _, v, _ in observed(page) or () if "pulse" in (v or "")}
             >= {"TIC1", "TIC2", "TIC3"}, 20, interval=0.2)
    # a detection: each input's LED blinks fast while it is probed, then shows its meter
    task_free(gateway)
    at = mark(gateway)
    start_detection(gateway)
    wait_for(lambda: since(gateway, at, "task.ended", task="Détection"), 90, interval=0.2)

    def states(name):
        out = []
        for who, _, value, _ in observed(page):
            state = (value or "").replace("pulse", "").split()[-1]
            if who == name and (not out or out[-1] != state):
                out.append(state)
        return out
    for name in ("TIC1", "TIC2", "TIC3"):             # fast (probing), on, flicker (frames)
        seen = wait_for(lambda: (lambda x: x if x and x[-1] == "flicker" and "fast" in x
                                 else None)(states(name)), 20, interval=0.2,
                        message="%s: %r" % (name, states(name)))
        assert seen.index("fast") < len(seen) - 1, (name, seen)
    assert page.evaluate("() => window.__same_page") is True
    # the INSTALL button, short press: a connection that deposits the parameters file
    task_free(gateway)
    at = mark(gateway)
    click_until_accepted(page, 'form.install button[value="short"]')
    assert page.url == gateway.url + "/"
    expect(page.locator(".banner.info")).to_have_text(T["connection.started"])
    started = wait_for(lambda: since(gateway, at, "task.started", task="Connexion"), 10)
    assert started[0]["data"]["reason"] == "install", started
    wait_for(lambda: since(gateway, at, "task.ended", task="Connexion"), 60, interval=0.2)


# --- the login back-off ----------------------------------------------------------------------

def test_sixth_wrong_password_waits(browser, gateway):  # noqa: F811
    with fresh(browser) as p:
        texts = []
        submit_login(p, gateway, USER, gateway.password)     # a success: counting starts
        assert p.url == gateway.url + "/"
        p.context.clear_cookies()
        for _ in range(6):
            submit_login(p, gateway, USER, "mauvais-mot-de-passe")
            texts.append(p.inner_text(".banner.error"))
        assert texts[:5] == [T["login.failed"]] * 5, texts
        wait = re.compile(re.escape(T["login.wait"]).replace("%d", r"\d+"))
        # the fifth failure imposes the first wait (2 s): the sixth try is told to wait
        assert wait.fullmatch(texts[5]), texts
        submit_login(p, gateway, USER, gateway.password)       # even the right one waits
        assert p.url == gateway.url + "/connexion"
        assert wait.fullmatch(p.inner_text(".banner.error"))
        assert not [c for c in p.context.cookies() if c["name"] == "ticgw_session"]
        failures = gateway.call("web", "sessions")["failures"]
        assert failures.get("127.0.0.1") == 5, failures
        time.sleep(2.5)                                         # the wait is over
        submit_login(p, gateway, USER, gateway.password)
        assert p.url == gateway.url + "/"
        assert gateway.call("web", "sessions")["failures"] == {}


# --- Redémarrer ------------------------------------------------------------------------------

def test_reboot_with_confirmation(gateway, page):  # noqa: F811
    page.goto(gateway.url + "/redemarrer")
    button = page.locator("#reboot")
    expect(button).to_have_text("Redémarrer")
    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    asked = []

    def dismiss(d):
        asked.append(d.message)
        d.dismiss()
    page.once("dialog", dismiss)
    at = mark(gateway)
    button.click()
    time.sleep(1.5)
    assert asked == [T["reboot.confirm"]] and posts == []     # dismissed: nothing
    assert page.url == gateway.url + "/redemarrer"
    assert not since(gateway, at, "uplink.state", machine="activity", state="stopping")

    def accept(d):
        asked.append(d.message)
        d.accept()
    page.once("dialog", accept)
    with page.expect_navigation():
        button.click()
    assert len(asked) == 2 and posts == [gateway.url + "/redemarrer"]
    expect(page.locator("#restarting")).to_have_text(T["banner.restart_needed"])
    # every service restarts, the uplink last
    wait_for(lambda: since(gateway, at, "uplink.state", machine="activity",
                           state="operational", trigger="ready"), 120, interval=0.5, message=gateway.tail())
    for name in SERVICES:
        assert since(gateway, at, "%s.state" % name, machine="activity", state="stopping"), name
    assert since(gateway, at, "journal", message=T["banner.restart_needed"])  # the manual's row
    # the page comes back by itself, logged in still (the sessions are kept across the
    # restart) or on the login
    page.wait_for_url(re.compile(re.escape(gateway.url) + "/(connexion)?$"), timeout=60000)
    if page.url.endswith("/connexion"):
        login(page, gateway)
    expect(page.locator(".welcome")).to_have_text(T["home.welcome"])
    wait_for(lambda: all_operational(gateway), 90, interval=0.5, message=gateway.tail())


# --- many tabs -------------------------------------------------------------------------------

def test_twenty_open_tabs_never_block_the_page(browser, gateway):  # noqa: F811
    context = browser.new_context(viewport={"width": 1024, "height": 700}, locale="fr-FR")
    try:
        first = context.new_page()
        login(first, gateway)
        tabs = [first]
        first.goto(gateway.url + "/installation/connexion")
        for i in range(19):
            t = context.new_page()
            try:
                t.goto(gateway.url + "/installation/connexion", timeout=30000)
            except PlaywrightTimeout:
                pytest.fail("tab %d never loaded: the %s live streams of the tabs before hold "
                            "the browser's connections to the gateway (chromium opens 6 per "
                            "host over HTTP/1.1)" % (i + 2, gateway.call("web", "sessions")[
                                "streams"]))
            tabs.append(t)
        # every tab is live: a row published on the bus shows up in each
        marker = "Essai de 20 onglets %d" % time.time()
        publish_journal(gateway, marker)
        for i, t in enumerate(tabs):
            t.locator("#journal tbody tr", has_text=marker).first.wait_for(timeout=30000)
        # one live channel per tab (WebSockets do not use up the six HTTP connections)
        assert gateway.call("web", "sessions")["streams"] >= 20
        # a 21st tab: a page and a form still answer
        extra = context.new_page()
        extra.goto(gateway.url + "/", timeout=60000)
        expect(extra.locator(".welcome")).to_have_text(T["home.welcome"])
        extra.goto(gateway.url + "/installation/detection", timeout=60000)
        with extra.expect_navigation(timeout=60000):
            extra.click("#detect")
        assert extra.url == gateway.url + "/installation/detection"
        expect(extra.locator(".banner.busy").or_(extra.locator("#detecting"))).to_be_visible(
            timeout=30000)
    finally:
        context.close()
