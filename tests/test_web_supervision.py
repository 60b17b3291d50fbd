"""The *Supervision* pages (manual 10.4) in a real browser against the whole demo: the modem
(its signal changed through the simulated modem's control socket, seen live), the meters (the
definition file in red once a connection found the server's DEF directory without it), the live
values with the power chart and its CSV, the journal with its filter and download."""
from __future__ import annotations

import csv
import io
import json
import re
import socket
import time

from playwright.sync_api import expect

from browser import browser, gateway, page, shot  # noqa: F401
from bus.testing import wait_for
from services.web import defs
from services.web.pages import supervision
from ticgw.config import ConfigStore

MISSING_DEF = "WEBDYN_TIC_ABSENT-DU-SERVEUR.ini"


def modem_control(gw, request: dict) -> dict:
    """One JSON line to the simulated modem's control socket (sim/modem_cli.py)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(gw.base / "run" / "modem.ctl"))
        with s.makefile("rwb") as f:
            f.write((json.dumps(request) + "\n").encode())
            f.flush()
            answer = json.loads(f.readline())
    assert answer.get("ok"), answer
    return answer


def loads(p) -> list:
    """Counts the page's loads from now on (a live change must not need one)."""
    seen = []
    p.on("load", lambda *_: seen.append(time.time()))
    return seen


def connect(gw) -> float:
    """Start a connection, past the task lock's refusals (the detection at start holds it);
    returns when it was accepted."""
    def accepted():
        return gw.answer("uplink", "connect", "reason=web") is not None
    wait_for(accepted, 90, interval=1.0, message="the connection was never accepted")
    return time.time()


def connection_over(gw, since: float) -> dict:
    return gw.events.wait("task.ended", 120, where=lambda e: e["data"].get("task") == "Connexion"
                          and e["ts"] >= since - 1)


def test_modem_page_shows_the_modem_and_follows_its_signal_live(page, gateway):
    page.goto(gateway.url + "/supervision/modem")
    body = page.locator("main")
    for label in ("Type de modem", "Identifiant du modem", "Identifiant de la carte SIM",
                  "Etat de la Carte SIM", "Niveau du signal", "Etat du modem",
                  "Pour une connexion GPRS fonctionnelle ce niveau doit être supérieur ou "
                  "égale à 10."):
        expect(body).to_contain_text(label)
    st = gateway.call("modem", "status")
    expect(page.locator("#modem-type .value")).to_have_text(st["type"])
    expect(page.locator("#modem-imei .value")).to_have_text(st["imei"])
    expect(page.locator("#modem-iccid .value")).to_have_text(st["iccid"])
    expect(page.locator("#modem-sim .value")).to_have_text("READY")
    expect(page.locator("#modem-sim .note")).to_have_text(
        "La carte SIM est insérée, le code PIN est OK. La passerelle est prête pour ouvrir la "
        "connexion GPRS.")
    expect(page.locator("#modem-signal .value")).to_have_text("18 (-77 dBm)")
    expect(page.locator("#modem-signal .value")).not_to_have_class(re.compile("bad-value"))
    expect(page.locator("#modem-state .value")).to_have_text(
        re.compile("^(Standby|Initialisation|Connecté)$"))
    expect(page.locator("#modem-technology .value")).to_have_text("LTE")
    expect(page.locator("#modem-operator .value")).to_have_text("Orange F")
    expect(page.locator("#modem-rsrp .value")).to_have_text("%d dBm" % st["rsrp_dbm"])
    expect(page.locator("#modem-warning")).to_be_hidden()
    line = page.locator("#signal-chart polyline").first
    line.wait_for(state="attached")
    assert re.fullmatch(r"[\d.]+,[\d.]+( [\d.]+,[\d.]+)*", line.get_attribute("points"))
    shot(page, "supervision-modem")

    reloads = loads(page)
    modem_control(gateway, {"set": {"signal": 5}})
    try:
        # the modem polls every 30 s and reports every 5 s: the field follows without a reload
        expect(page.locator("#modem-signal .value")).to_have_text(
            "5 (-103 dBm) : insuffisant", timeout=60_000)
        expect(page.locator("#modem-signal .value")).to_have_class(re.compile("bad-value"))
        expect(page.locator("#signal-chart text.latest")).to_have_text(re.compile(r"^5 \("))
        assert reloads == []
        shot(page, "supervision-modem-signal-low")
    finally:
        modem_control(gateway, {"set": {"signal": 18}})
    expect(page.locator("#modem-signal .value")).to_have_text("18 (-77 dBm)", timeout=60_000)
    assert reloads == []


def test_meters_page_shows_each_input_before_any_connection(page, gateway):
    page.goto(gateway.url + "/supervision/compteurs")
    families = {1: "CBEMM-ICC", 2: "CBETM", 3: "LINKY"}
    for n, family in families.items():
        row = page.locator('#meters tr[data-input="%d"]' % n)
        # the detection at start may still run: the row fills in live
        expect(row.locator(".family")).to_contain_text(family, timeout=60_000)
        expect(row.locator(".state-text")).to_have_text(
            re.compile("compteur identifié|communication établie"), timeout=30_000)
        expect(row.locator(".sigil")).to_have_text("✔")
    acq = gateway.call("acquisition", "status")["inputs"]
    daq = gateway.config_text("daq")
    for n in families:
        row = page.locator('#meters tr[data-input="%d"]' % n)
        serial = acq[str(n)]["serial"]
        assert serial
        expect(row.locator(".serial")).to_have_text(serial)
        name = re.search(r"^TIC_FileDefName\[%d\]=(.*)$" % n, daq, re.M).group(1).strip()
        assert name, daq
        expect(row.locator(".def-name")).to_have_text(name)
        # no connection has looked at the server's DEF directory yet: unknown, not red
        expect(row.locator(".def-note")).to_have_text("inconnu (aucune connexion)")
        expect(row.locator(".def-name")).not_to_have_class(re.compile("missing"))
    expect(page.locator("main")).to_contain_text(
        "S'il apparaît en rouge, le nom est bien récupéré dans le fichier WEBDYN_daq.ini mais "
        "n'existe pas dans le répertoire DEF du serveur FTP.")
    shot(page, "supervision-compteurs")


def test_values_page_is_live_with_a_power_chart_and_its_csv(page, gateway):
    page.goto(gateway.url + "/supervision/valeurs")
    reloads = loads(page)
    sections = page.locator("section.meter")
    expect(sections).to_have_count(3)
    expect(sections.nth(0).locator("h2")).to_contain_text("CBEMM-ICC (mode historique)")
    expect(sections.nth(2).locator("h2")).to_contain_text("LINKY (mode standard)")
    linky = page.locator("#values-3")
    expect(linky.locator('tr[data-label="SINSTS"] td').nth(1)).to_have_text(re.compile(r"^\d+$"),
                                                                            timeout=30_000)
    expect(page.locator('#values-1 tr[data-label="PAPP"] td').nth(1)).to_have_text(
        re.compile(r"^\d+$"), timeout=30_000)
    # values change in place, frame after frame
    before = linky.locator("tbody").inner_text()
    expect(linky.locator("tbody")).not_to_have_text(before, timeout=30_000)
    assert reloads == []

    # the power chart has points (PAPP in historic mode, SINSTS in standard mode)
    for n in (1, 2, 3):
        line = page.locator("#power-%d polyline" % n).first
        line.wait_for(state="attached", timeout=30_000)
        assert re.fullmatch(r"[\d.]+,[\d.]+( [\d.]+,[\d.]+)*", line.get_attribute("points"))
    shot(page, "supervision-valeurs")

    with page.expect_download() as dl:
        page.locator('section.meter[data-input="3"] a.csv').click()
    text = open(dl.value.path(), encoding="utf-8").read()
    lines = text.splitlines()
    assert lines[0] == "Date (UTC);Puissance apparente (VA)"
    assert len(lines) >= 2
    for row in lines[1:]:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ;\d+(\.\d+)?", row), row
    assert dl.value.suggested_filename.startswith("valeurs_TIC3")

    bad = page.request.get(gateway.url + "/valeurs.csv?input=7")
    assert bad.status == 400
    assert "Entrée inconnue" in bad.text()


def test_journal_filters_rows_also_live_ones_and_downloads(page, gateway):
    page.goto(gateway.url + "/supervision/journal")
    rows = page.locator("#journal tbody tr")
    visible = page.locator("#journal tbody tr:visible")
    rows.first.wait_for()
    expect(page.locator("#journal thead")).to_have_text(re.compile("Date\\s*Heure GMT\\s*Message"))
    total = rows.count()
    expect(page.locator("#journal-count")).to_have_text(
        "%d ligne(s) affichée(s) sur %d" % (total, total))

    # a filter, then rows arriving live (a connection's): they respect it
    page.fill("#journal-filter", "dépôt du fichier")
    expect(visible).to_have_count(0)
    expect(page.locator("#journal-count")).to_have_text(
        "0 ligne(s) affichée(s) sur %d" % total)
    since = connect(gateway)
    connection_over(gateway, since)
    wait_for(lambda: rows.count() > total + 3, 30, interval=0.2, message="no live journal rows")
    expect(visible.first).to_be_visible(timeout=30_000)
    shown = visible.all_inner_texts()
    assert shown and all("dépôt du fichier" in t.lower() for t in shown)
    assert rows.count() > len(shown)            # the connection's other rows are hidden
    shot(page, "supervision-journal-filtre")

    page.fill("#journal-filter", "")
    expect(visible).to_have_count(rows.count())
    # a word some rows have and others lack, typed as the installer would
    messages = page.locator("#journal tbody tr td:nth-child(3)").all_text_contents()
    word = next(w for m in messages for w in m.split() if len(w) >= 5
                and 0 < sum(w.lower() in x.lower() for x in messages) < len(messages))
    page.locator("#journal-filter").press_sequentially(word.upper(), delay=20)
    expect(visible).to_have_count(sum(word.lower() in m.lower() for m in messages))
    for text in visible.all_inner_texts():
        assert word.lower() in text.lower()
    page.fill("#journal-filter", "")
    shot(page, "supervision-journal")

    with page.expect_download() as dl:
        page.click("#journal-download")
    text = open(dl.value.path(), encoding="utf-8-sig").read()
    table = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert table[0] == ["Date", "Heure GMT", "Message"]
    on_disk = [line.split("\t", 2) for line in
               (gateway.data / "state" / "journal.log").read_text(encoding="utf-8").splitlines()]
    # the whole journal (but rows written since the download)
    assert len(table) - 1 >= len(on_disk) - 5 and table[1:] == on_disk[:len(table) - 1]
    page_rows = [r.split("\t") for r in page.locator("#journal tbody tr").all_inner_texts()]
    downloaded = {tuple(r) for r in table[1:]}
    assert all(tuple(c.strip() for c in r) in downloaded for r in page_rows[-20:])


def test_definition_file_absent_from_the_server_is_red_after_a_connection(page, gateway):
    store = ConfigStore(gateway.data)
    original = store.settings.inputs[0].def_file
    assert original and (gateway.base / "server" / "DEF" / original).exists()
    assert not (gateway.base / "server" / "DEF" / MISSING_DEF).exists()
    page.goto(gateway.url + "/supervision/compteurs")
    row = page.locator('#meters tr[data-input="1"]')
    # the connection of the journal test found the file there
    expect(row.locator(".def-note")).to_have_text("présent dans le répertoire DEF du serveur")
    try:
        store.update({"TIC_FileDefName[1]": MISSING_DEF}, by="test")
        page.reload()
        expect(row.locator(".def-name")).to_have_text(MISSING_DEF)
        expect(row.locator(".def-note")).to_have_text(
            "inconnu (fichier WEBDYN_daq.ini modifié depuis la dernière connexion)")
        expect(row.locator(".def-name")).not_to_have_class(re.compile("missing"))
        reloads = loads(page)
        since = connect(gateway)
        connection_over(gateway, since)
        # the page learns the end of the connection and asks again: red, without a reload
        expect(row.locator(".def-name.missing")).to_have_text(MISSING_DEF, timeout=15_000)
        expect(row.locator(".def-note")).to_have_text("absent du répertoire DEF du serveur")
        assert reloads == []
        # the other inputs' files are on the server
        expect(page.locator('#meters tr[data-input="2"] .def-name')).not_to_have_class(
            re.compile("missing"))
        shot(page, "supervision-compteurs-def-absent")
    finally:
        store.update({"TIC_FileDefName[1]": original}, by="test")


def test_pages_need_a_session(browser, gateway):
    context = browser.new_context()
    try:
        for path in ("/valeurs.csv?input=1", "/journal.csv", "/supervision/compteurs.json"):
            assert context.request.get(gateway.url + path, max_redirects=0).status == 401
        r = context.request.get(gateway.url + "/supervision/journal", max_redirects=0)
        assert r.status in (302, 303) and r.headers["location"].endswith("/connexion")
    finally:
        context.close()


# --- the pure parts, without a browser ---------------------------------------------------------

def test_definition_state_from_the_uplinks_state(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    never = defs.read(state)
    assert never == defs.ServerDefs(None, frozenset())
    assert defs.state_of("A.ini", never) == defs.NEVER
    assert defs.state_of("", never) is None
    (state / "sync.json").write_text(json.dumps({"def": {"A.ini": {"size": 1}},
                                                 "config": {"C.ini": {"size": 2}}}))
    (state / "config_checked").write_text("1000.5")
    known = defs.read(state)
    assert known == defs.ServerDefs(1000.5, frozenset({"A.ini"}))
    assert defs.state_of("A.ini", known) == defs.PRESENT
    assert defs.state_of("C.ini", known) == defs.MISSING        # a config file is not a DEF
    assert defs.state_of("B.ini", known, named_at=999.0) == defs.MISSING
    assert defs.state_of("B.ini", known, named_at=1001.0) == defs.STALE
    assert defs.state_of("A.ini", known, named_at=1001.0) == defs.PRESENT


def test_meter_rows():
    server = defs.ServerDefs(100.0, frozenset({"ON.ini"}))
    disk = {"daq": "SITE_daq.ini", "daq_time": 50.0, "server": server, "inputs": {
        1: {"used": True, "serial": "", "def_file": "OFF.ini"},
        2: {"used": True, "serial": "0123", "def_file": ""},
        3: {"used": False, "serial": "", "def_file": ""}}}
    status = {"inputs": {
        "1": {"state": "reading", "family": "LINKY", "description": "Compteur Linky",
              "serial": "9999"},
        "2": {"state": "lost"}}}
    rows = {r["input"]: r for r in supervision.meter_rows(status, disk)}
    assert rows[1]["defState"] == defs.MISSING and rows[1]["serial"] == "9999"
    assert rows[1]["sigil"] == "✔" and rows[1]["stateText"] == "communication établie"
    assert rows[1]["family"] == "LINKY (Compteur Linky)"
    assert rows[2]["defState"] == ""
    assert rows[2]["defNote"] == ("Si le fichier de définition n'apparaît pas il y a un problème "
                                  "de synchronisation avec le fichier SITE_daq.ini.")
    assert rows[2]["stateText"] == "compteur perdu" and rows[2]["sigil"] == "✘"
    assert rows[2]["serial"] == "0123"
    assert rows[3]["state"] == "unused" and rows[3]["stateText"] == "entrée non utilisée"
    html = supervision.meters_table(list(rows.values()))
    assert html.count(' missing"') == 1 and "OFF.ini" in html
    # the acquisition does not answer: the states are unknown, the files still checked
    rows = {r["input"]: r for r in supervision.meter_rows(None, disk)}
    assert rows[1]["stateText"] == "inconnu" and rows[1]["defState"] == defs.MISSING


def test_modem_cells():
    cells = supervision.modem_cells({"signal": 18, "sim": "SIM PIN", "state": "Connecté",
                                     "rsrp_dbm": -95, "rsrq_db": -10.5, "registration": "denied"})
    assert cells["signal"] == ("18 (-77 dBm)", "", False)
    assert cells["sim"] == ("SIM PIN", "La carte SIM attend un code PIN.", True)
    assert cells["state"] == ("Connecté", "modem connecté", False)
    assert cells["rsrp"][0] == "-95 dBm" and cells["rsrq"][0] == "-10.5 dB"
    assert cells["sinr"][0] == "—"
    assert cells["registration"] == ("refusé par le réseau", "", True)
    assert supervision.modem_cells({"signal": 9})["signal"] == ("9 (-95 dBm) : insuffisant", "",
                                                               True)
    assert supervision.modem_cells({"signal": None})["signal"][0].startswith("inconnu")
    assert supervision.modem_cells({})["type"][0] == "inconnu"


def test_csv_files():
    text = supervision.power_csv([(0.0, 1400.0), (60.0, 12.5)])
    assert text == ("Date (UTC);Puissance apparente (VA)\r\n1970-01-01T00:00:00Z;1400\r\n"
                    "1970-01-01T00:01:00Z;12.5\r\n")
    text = supervision.journal_csv([["01/02/26", "03:04:05", 'a; "b"']])
    assert text.startswith("\ufeffDate;Heure GMT;Message\r\n")
    assert list(csv.reader(io.StringIO(text[1:]), delimiter=";"))[1] == [
        "01/02/26", "03:04:05", 'a; "b"']
