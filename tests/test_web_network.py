"""*Réseau* (manual 10.2) in a real browser against a whole running gateway: the current
values, no secret ever sent, a change saved into the INI file, a bad value refused next to its
field with the files untouched, secrets kept when left empty, the restart message, the CSRF
gate."""
from __future__ import annotations

from playwright.sync_api import expect

from bus.testing import wait_for

from browser import (SECRETS, browser, config_bytes, csrf_of, every_secret, gateway,  # noqa: F401
                     ini_value, page, secrets, shot)
from services.web.texts import T
from ticgw.config import ConfigStore
from ticgw.config.settings import file_name






def saved_by_web(gw) -> list[dict]:
    return [e for e in gw.events.of("config.changed") if (e.get("data") or {}).get("by") == "web"]


def test_page_shows_the_values_and_no_secret(page, gateway, secrets):
    page.goto(gateway.url + "/reseau")
    expect(page.locator("header h1")).to_have_text("Configuration réseau")
    expect(page.locator('.menu a[aria-current="page"]')).to_have_attribute("href", "/reseau")
    # the manual's sections and labels
    main = page.locator("main")
    for text in ("Identifiant de la passerelle", "Mode de connexion", "Ethernet", "Modem GPRS",
                 "Serveur FTP", "Services Web", "Site", "automatique", "Adresse IP", "Masque",
                 "Passerelle", "DNS", "N° d'appel", "APN", "Login", "Mot de passe", "Serveur",
                 "Configuration", "Définition", "Données", "Alarmes", "Commandes",
                 "Journal de bord", "Firmware", "Activation", "URL"):
        expect(main.get_by_text(text, exact=True).first).to_be_visible()
    # the values of the files
    for key in ("Site_Id", "ETH_Address", "ETH_Mask", "ETH_Gateway", "ETH_Dns", "GPRS_Number",
                "GPRS_Apn", "GPRS_Login", "Modem_Port", "FTP_Server", "FTP_Port", "FTP_Login",
                "FTP_DirConfig", "FTP_DirDef", "FTP_DirData", "FTP_DirAlarm", "FTP_DirCmd",
                "FTP_DirLog", "FTP_DirBin", "WebService_Url"):
        expect(page.locator('input[name="%s"]' % key)).to_have_value(ini_value(gateway, key))
    assert ini_value(gateway, "GPRS_Apn") == "m2minetnat"
    expect(page.locator("#f-Connection_Mode-modem")).to_be_checked()
    expect(page.locator("#f-Connection_Mode-ethernet")).not_to_be_checked()
    expect(page.locator("#f-WebService_Enable")).to_be_checked()
    expect(page.locator("#f-Site_IdAuto")).not_to_be_checked()
    # secrets: empty fields saying they are kept, and nowhere in what the browser got
    for key in SECRETS:
        field = page.locator('input[name="%s"]' % key)
        expect(field).to_have_value("")
        expect(field).to_have_attribute("type", "password")
        expect(field).to_have_attribute("placeholder", T["network.secret_set"])
    source = page.request.get(gateway.url + "/reseau").text()
    assert 'name="FTP_Server" value="127.0.0.1"' in source
    for value in every_secret(gateway):
        assert value not in source and value not in page.content()
    shot(page, "reseau")


def test_a_change_is_saved_and_secrets_left_empty_are_kept(page, gateway, secrets):
    before_eth = ini_value(gateway, "ETH_Address")
    saved_before = len(saved_by_web(gateway))
    page.goto(gateway.url + "/reseau")
    page.fill('input[name="FTP_DirData"]', "DATA2")
    page.fill('input[name="FTP_Login"]', "webdyn-ftp")
    page.click("#validate")
    page.wait_for_url(gateway.url + "/reseau")
    banner = page.locator("#saved")
    expect(banner).to_contain_text(T["banner.saved_restart"])
    expect(page.locator("#restart-link")).to_have_attribute("href", "/redemarrer")
    assert ini_value(gateway, "FTP_DirData") == "DATA2"
    assert ini_value(gateway, "FTP_Login") == "webdyn-ftp"
    # the rest as it was, secrets left empty included
    assert ini_value(gateway, "ETH_Address") == before_eth
    assert ini_value(gateway, "FTP_Password") == SECRETS["FTP_Password"]
    assert ini_value(gateway, "GPRS_Password") == SECRETS["GPRS_Password"]
    assert ini_value(gateway, "SIM_Pin") == SECRETS["SIM_Pin"]
    assert ini_value(gateway, "WebService_Enable") == "1"
    expect(page.locator('input[name="FTP_DirData"]')).to_have_value("DATA2")
    shot(page, "reseau-enregistre")
    # the message is said once: a reload shows the page without it
    page.reload()
    expect(page.locator("#saved")).to_have_count(0)
    # the change went through the store, which told the gateway (config.changed by web)
    wait_for(lambda: len(saved_by_web(gateway)) > saved_before, 10,
             message="no config.changed by web after Valider")


def test_a_bad_value_is_refused_next_to_its_field_and_nothing_changes(page, gateway, secrets):
    before = config_bytes(gateway)
    page.goto(gateway.url + "/reseau")
    page.fill('input[name="ETH_Address"]', "999.1.1.1")
    page.fill('input[name="FTP_Server"]', "ftp server")
    page.fill('input[name="FTP_DirLog"]', "/LOG-NEW")           # a good one, not saved either
    page.fill('input[name="FTP_Password"]', "Typed-Not-Saved-31")
    with page.expect_response(lambda r: r.request.method == "POST"
                              and r.url.endswith("/reseau")) as answer:
        page.click("#validate")
    assert answer.value.status == 400
    expect(page.locator("#err-ETH_Address")).to_have_text(
        "« 999.1.1.1 » n'est pas une adresse IPv4 (a.b.c.d)")
    expect(page.locator("#err-FTP_Server")).to_contain_text("n'est ni un nom d'hôte")
    expect(page.locator('input[name="ETH_Address"]')).to_have_attribute("aria-invalid", "true")
    expect(page.locator('input[name="ETH_Address"]')).to_have_value("999.1.1.1")
    expect(page.locator('input[name="FTP_DirLog"]')).to_have_value("/LOG-NEW")
    expect(page.locator(".banner.error").first).to_have_text(T["network.refused"])
    # the password typed is not sent back, and the page says it was not saved
    expect(page.locator('input[name="FTP_Password"]')).to_have_value("")
    expect(page.locator("#err-FTP_Password")).to_have_text(T["network.secret_retype"])
    assert "Typed-Not-Saved-31" not in page.content()
    assert config_bytes(gateway) == before
    shot(page, "reseau-refus")


def test_a_secret_is_changed_and_cleared_without_being_shown(page, gateway, secrets):
    page.goto(gateway.url + "/reseau")
    page.fill('input[name="GPRS_Password"]', "New-Apn-Pass-77")
    page.check("#clear-SIM_Pin")
    page.click("#validate")
    expect(page.locator("#saved")).to_be_visible()
    assert ini_value(gateway, "GPRS_Password") == "New-Apn-Pass-77"
    assert ini_value(gateway, "SIM_Pin") == ""
    assert ini_value(gateway, "FTP_Password") == SECRETS["FTP_Password"]
    assert "New-Apn-Pass-77" not in page.content()
    expect(page.locator('input[name="SIM_Pin"]')).to_have_attribute(
        "placeholder", T["network.secret_unset"])
    expect(page.locator("#clear-SIM_Pin")).to_have_count(0)
    # put them back for the next tests
    ConfigStore(gateway.data).update(SECRETS, by="test")


def test_a_post_without_the_csrf_token_is_refused(page, gateway, secrets):
    page.goto(gateway.url + "/reseau")
    token = csrf_of(page)
    origin = {"Origin": gateway.url}
    before = config_bytes(gateway)
    r = page.request.post(gateway.url + "/reseau", form={"FTP_DirLog": "/LOG2"},
                          headers=origin, max_redirects=0)
    assert r.status == 403
    r = page.request.post(gateway.url + "/reseau", form={"FTP_DirLog": "/LOG2", "csrf": "x"},
                          headers=origin, max_redirects=0)
    assert r.status == 403
    # the token without the page's origin is not enough either
    r = page.request.post(gateway.url + "/reseau", form={"FTP_DirLog": "/LOG2", "csrf": token},
                          max_redirects=0)
    assert r.status == 403
    assert config_bytes(gateway) == before
    # with both (a form field, or the header): saved; a form with only this field changes
    # nothing else (the boxes it does not carry stay as they are)
    r = page.request.post(gateway.url + "/reseau", form={"FTP_DirLog": "/LOG2", "csrf": token},
                          headers=origin, max_redirects=0)
    assert r.status == 302
    assert ini_value(gateway, "FTP_DirLog") == "/LOG2"
    r = page.request.post(gateway.url + "/reseau", form={"FTP_DirLog": "/LOG3"},
                          headers={**origin, "X-CSRF-Token": token}, max_redirects=0)
    assert r.status == 302
    assert ini_value(gateway, "FTP_DirLog") == "/LOG3"
    assert ini_value(gateway, "WebService_Enable") == "1"
    assert ini_value(gateway, "FTP_Password") == SECRETS["FTP_Password"]
    assert set(config_bytes(gateway)) == {file_name("WEBDYN", k)
                                          for k in ("config", "daq", "var")}
