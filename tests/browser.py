"""Browser tests' shared parts: Debian's chromium driven by Playwright, and a whole gateway (the
demo under honcho, its web page on a free port) to point it at.

Import the fixtures into a test module (``from browser import browser, gateway, ...  # noqa``):

- ``browser``: one chromium per test process (``executable_path=/usr/bin/chromium``, no
  network beyond loopback, no first-run, no component updates);
- ``gateway``: the demo for the module (meters, modem, server, every service, the page);
  yields a :class:`Gateway` with its ``url``, ``env``, ``events`` (bus), ``output``;
- ``page``: a fresh browser context and page, already logged in with the gateway's password
  (the factory one is changed once, on the module's first login).

Screenshots go under ``var/test-output/screenshots/`` (:func:`shot`), for a person to look at.
"""
from __future__ import annotations

import atexit
import json
import re
from pathlib import Path

import pytest

from bus.testing import REPO, wait_for
from demo_helpers import answer, call, free_port, running_demo

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--disable-default-apps", "--mute-audio"]
SHOTS = REPO / "var" / "test-output" / "screenshots"
USER = "userhigh"
FACTORY_PASSWORD = "high"
PASSWORD = "Compteur-2026!"


class Gateway:
    def __init__(self, base: Path, env: dict, events, output: list, port: int):
        self.base, self.env, self.events, self.output = base, env, events, output
        self.run = str(base / "run")
        self.data = base / "data"
        self.url = "http://127.0.0.1:%d" % port
        self.password = FACTORY_PASSWORD

    def call(self, service, method, *params):
        return call(self.env, self.run, service, method, *params)

    def answer(self, service, method, *params):
        return answer(self.env, self.run, service, method, *params)

    def config_text(self, kind: str = "config") -> str:
        return (self.data / "config" / ("WEBDYN_%s.ini" % kind)).read_text()

    def tail(self, n: int = 40) -> str:
        return "".join(self.output[-n:])


_CHROMIUM: list = []


def _chromium():
    """One Playwright and one chromium per test process, whichever modules import the
    fixture (each import registers it anew; a second Playwright in a process fails)."""
    if not _CHROMIUM:
        from playwright.sync_api import sync_playwright

        playwright = sync_playwright().start()
        _CHROMIUM.append((playwright, playwright.chromium.launch(executable_path=CHROMIUM,
                                                                 args=ARGS)))

        def close():
            playwright_, browser_ = _CHROMIUM.pop()
            browser_.close()
            playwright_.stop()
        atexit.register(close)
    return _CHROMIUM[0][1]


@pytest.fixture(scope="session")
def browser():
    yield _chromium()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    port = free_port()
    base = tmp_path_factory.mktemp("gw") / "d"
    with running_demo(base, DAQ_PeriodSec=5, Connection_PeriodMin=0, Connection_Hour=0,
                      Connection_Minute=0, Web_Listen="127.0.0.1:%d" % port,
                      BIN_HealthTimeout=30) as (base, env, events, output):
        gw = Gateway(base, env, events, output, port)
        wait_for(lambda: all((gw.answer(s, "status") or {}).get("activity") == "operational"
                             for s in ("acquisition", "modem", "uplink", "update", "web")),
                 90, interval=0.5, message=gw.tail())
        yield gw


def login(page, gw: Gateway, password: str | None = None) -> None:
    """Log in on the login page; with the factory password, change it (the forced page)."""
    page.goto(gw.url + "/connexion")
    page.fill('input[name="user"]', USER)
    page.fill('input[name="password"]', password or gw.password)
    page.click("form button")
    if gw.password == FACTORY_PASSWORD and password is None:
        page.wait_for_url(re.compile(r".*/mot-de-passe$"))
        page.fill('input[name="current"]', FACTORY_PASSWORD)
        page.fill('input[name="new"]', PASSWORD)
        page.fill('input[name="again"]', PASSWORD)
        page.click("form button")
        page.wait_for_url(gw.url + "/")
        gw.password = PASSWORD
    else:
        page.wait_for_url(gw.url + "/")


@pytest.fixture
def page(browser, gateway):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="fr-FR")
    p = context.new_page()
    login(p, gateway)
    yield p
    context.close()


def shot(page, name: str) -> Path:
    """A full-page screenshot under var/test-output/screenshots/<name>.png."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / ("%s.png" % name)
    page.screenshot(path=str(path), full_page=True)
    return path


def csrf_of(page) -> str:
    return page.get_attribute('meta[name="csrf"]', "content")


def as_json(text: str):
    return json.loads(text)


# --- configuration files and secrets (the Réseau and Système tests) -------------------------

#: Secrets unlike anything else in the demo (its own are "demo", "sfr", "1234": also its
#: logins and a PIN), put in the files once the gateway runs.
SECRETS = {"FTP_Password": "Ftp-S3cret-Zq81", "GPRS_Password": "Apn-S3cret-Wv27",
           "SIM_Pin": "73915286"}


@pytest.fixture(scope="module")
def secrets(gateway):
    # the detection at start writes the meters' serials into the _daq file: once it has, the
    # files change only when a test changes them
    wait_for(lambda: all(ini_value(gateway, "TIC_Serial[%d]" % n, "daq") for n in (1, 2, 3)),
             120, interval=0.5, message="the start-up detection did not identify the meters")
    from ticgw.config import ConfigStore
    ConfigStore(gateway.data).update(SECRETS, by="test")
    return SECRETS


def config_bytes(gw) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((gw.data / "config").glob("*.ini"))}


def ini_value(gw, key: str, kind: str = "config") -> str:
    m = re.search(r"(?m)^%s=(.*)$" % re.escape(key), gw.config_text(kind))
    assert m, "%s not in the %s file" % (key, kind)
    return m.group(1)


def every_secret(gw) -> list[str]:
    """The configured secrets: the test's, and the password hash the login set."""
    return list(SECRETS.values()) + [ini_value(gw, "Web_PasswordHash")]
