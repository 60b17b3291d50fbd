"""*Système* in a real browser against a whole running gateway: the password link, the
diagnostic bundle (downloaded, its content, no secret in it), the configuration's backup and
restore (preview, Valider, Annuler, a bad value refused with the files untouched), the CSRF
gate."""
from __future__ import annotations

import io
import json
import re
import zipfile

from playwright.sync_api import expect

from browser import (SECRETS, browser, config_bytes, csrf_of, every_secret, gateway,  # noqa: F401
                     ini_value, page, secrets, shot)
from services.web.texts import T
from ticgw import __version__, registry
from ticgw.config import ConfigStore


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {name: z.read(name) for name in z.namelist()}


def download(page, selector: str):
    with page.expect_download() as info:
        page.click(selector)
    d = info.value
    return d.suggested_filename, open(d.path(), "rb").read()


def test_the_page(page, gateway, secrets):
    page.goto(gateway.url + "/systeme")
    expect(page.locator("header h1")).to_have_text("Système")
    expect(page.locator('.menu a[aria-current="page"]')).to_have_attribute("href", "/systeme")
    expect(page.locator("#password-link")).to_have_attribute("href", "/mot-de-passe")
    expect(page.locator("#diagnostic")).to_have_text(T["maintenance.diagnostic.link"])
    expect(page.locator("#backup")).to_have_text(T["maintenance.backup.link"])
    shot(page, "systeme")
    page.click("#password-link")
    page.wait_for_url(gateway.url + "/mot-de-passe")
    expect(page.locator('input[name="current"]')).to_be_visible()


def test_diagnostic_in_one_click_without_a_secret(page, gateway, secrets):
    page.goto(gateway.url + "/systeme")
    name, data = download(page, "#diagnostic")
    assert re.fullmatch(r"diagnostic-WEBDYN-\d{8}-\d{6}\.zip", name), name
    files = members(data)
    assert {"README.txt", "journal.log", "services.json", "versions.json", "view.json",
            "configuration/effective.txt", "configuration/problems.txt",
            "configuration/WEBDYN_config.ini", "configuration/WEBDYN_daq.ini",
            "configuration/WEBDYN_var.ini"} <= set(files)
    readme = files["README.txt"].decode()
    for name_inside in ("journal.log", "services.json", "versions.json", "configuration/"):
        assert name_inside in readme
    # every service's status, as the service itself gives it
    statuses = json.loads(files["services.json"])
    assert set(statuses) == {s.name for s in registry.BUILTIN}
    for name_, st in statuses.items():
        assert st.get("activity") == "operational", (name_, st)
    assert statuses["web"]["port"] == int(gateway.url.rsplit(":", 1)[1])
    versions = json.loads(files["versions.json"])
    assert versions["ticgw"] == __version__
    assert "release" in versions["update"] and "record" in versions["update"]
    assert versions["update"]["record"] == statuses["update"]["record"]
    # the journal as on disk, the configuration as on disk but for the secrets
    assert files["journal.log"] == (gateway.data / "state" / "journal.log").read_bytes()[
        :len(files["journal.log"])]
    assert files["journal.log"].count(b"\n") >= 1
    config = files["configuration/WEBDYN_config.ini"].decode()
    assert "FTP_Password=****" in config and "SIM_Pin=****" in config
    assert "Web_PasswordHash=****" in config
    assert "FTP_Server=127.0.0.1" in config
    assert "FTP_Password=****" in files["configuration/effective.txt"].decode()
    everything = b"".join(files.values())
    for value in every_secret(gateway):
        assert value.encode() not in everything, value


def test_backup_then_restore_puts_the_value_back(page, gateway, secrets, tmp_path):
    page.goto(gateway.url + "/systeme")
    name, data = download(page, "#backup")
    assert re.fullmatch(r"configuration-WEBDYN-\d{8}-\d{6}\.zip", name), name
    files = members(data)
    assert set(files) == {"README.txt", "WEBDYN_config.ini", "WEBDYN_daq.ini",
                          "WEBDYN_var.ini"}
    assert "secrets" in files["README.txt"].decode()
    config = files["WEBDYN_config.ini"].decode()
    assert re.search(r"(?m)^FTP_Password=$", config) and re.search(r"(?m)^SIM_Pin=$", config)
    assert re.search(r"(?m)^Web_PasswordHash=$", config)
    everything = b"".join(files.values())
    for value in every_secret(gateway):
        assert value.encode() not in everything, value
    # the rest byte for byte as on disk
    assert files["WEBDYN_var.ini"] == config_bytes(gateway)["WEBDYN_var.ini"]

    # change two values (two files) and a secret, then restore the backup
    ConfigStore(gateway.data).update({"FTP_DirAlarm": "/ALARM2", "Connection_Timeout": "45",
                                      "FTP_Password": "Changed-After-Backup-5"}, by="test")
    backup = tmp_path / "backup.zip"
    backup.write_bytes(data)
    page.goto(gateway.url + "/systeme")
    page.set_input_files("#restore-files", str(backup))
    page.click("#restore")
    page.wait_for_url(gateway.url + "/systeme/restauration")
    rows = page.locator("#restore-preview tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0).locator("td")).to_have_text(
        ["FTP_DirAlarm", "WEBDYN_config.ini", "/ALARM2", "/ALARM"])
    expect(rows.nth(1).locator("td")).to_have_text(
        ["Connection_Timeout", "WEBDYN_var.ini", "45", "30"])
    assert "Changed-After-Backup-5" not in page.content()
    shot(page, "systeme-restauration")
    page.click("#restore-apply")
    page.wait_for_url(gateway.url + "/systeme")
    expect(page.locator("#saved")).to_contain_text(T["maintenance.restore.done"])
    expect(page.locator("#restart-link")).to_have_attribute("href", "/redemarrer")
    assert ini_value(gateway, "FTP_DirAlarm") == "/ALARM"
    assert ini_value(gateway, "Connection_Timeout", "var") == "30"
    # the gateway's own secrets are kept
    assert ini_value(gateway, "FTP_Password") == "Changed-After-Backup-5"
    assert ini_value(gateway, "SIM_Pin") == SECRETS["SIM_Pin"]
    assert ini_value(gateway, "Web_PasswordHash").startswith("pbkdf2_sha256$")
    ConfigStore(gateway.data).update(SECRETS, by="test")
    # the preview is gone once applied
    page.goto(gateway.url + "/systeme/restauration")
    page.wait_for_url(gateway.url + "/systeme")


def test_a_restore_with_a_bad_value_is_refused_and_changes_nothing(page, gateway, secrets,
                                                                    tmp_path):
    page.goto(gateway.url + "/systeme")
    _, data = download(page, "#backup")
    files = members(data)
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as z:
        for name, content in files.items():
            if name == "WEBDYN_config.ini":
                content = re.sub(rb"(?m)^ETH_Address=.*$", b"ETH_Address=999.1.1.1", content)
                content = re.sub(rb"(?m)^FTP_DirData=.*$", b"FTP_DirData=/OTHER", content)
            z.writestr(name, content)
    before = config_bytes(gateway)
    page.set_input_files("#restore-files", str(bad))
    page.click("#restore")
    refused = page.locator("#restore-refused")
    expect(refused).to_contain_text(T["maintenance.restore.refused"])
    expect(refused.locator("li")).to_have_text(
        ["WEBDYN_config.ini, ETH_Address : « 999.1.1.1 » n'est pas une adresse IPv4 (a.b.c.d)"])
    assert page.url == gateway.url + "/systeme"
    shot(page, "systeme-restauration-refusee")
    assert config_bytes(gateway) == before
    # an INI file alone, with a line that is not key=value
    var = tmp_path / "WEBDYN_var.ini"
    var.write_bytes(files["WEBDYN_var.ini"] + b"this is not a setting\n")
    page.set_input_files("#restore-files", str(var))
    page.click("#restore")
    expect(page.locator("#restore-refused li")).to_contain_text(["WEBDYN_var.ini, ligne"])
    assert config_bytes(gateway) == before


def test_a_restore_can_be_cancelled(page, gateway, secrets, tmp_path):
    page.goto(gateway.url + "/systeme")
    _, data = download(page, "#backup")
    var = tmp_path / "WEBDYN_var.ini"
    var.write_bytes(re.sub(rb"(?m)^Connection_Timeout=.*$", b"Connection_Timeout=55",
                           members(data)["WEBDYN_var.ini"]))
    before = config_bytes(gateway)
    page.set_input_files("#restore-files", str(var))
    page.click("#restore")
    page.wait_for_url(gateway.url + "/systeme/restauration")
    expect(page.locator("#restore-preview tbody tr td")).to_have_text(
        ["Connection_Timeout", "WEBDYN_var.ini", "30", "55"])
    page.click("#restore-cancel")
    page.wait_for_url(gateway.url + "/systeme")
    expect(page.get_by_text(T["maintenance.restore.cancelled"])).to_be_visible()
    assert config_bytes(gateway) == before
    # the same backup as the configuration: nothing to restore
    same = tmp_path / "same.zip"
    same.write_bytes(data)
    page.set_input_files("#restore-files", str(same))
    page.click("#restore")
    expect(page.get_by_text(T["maintenance.restore.same"])).to_be_visible()
    assert config_bytes(gateway) == before


def test_posts_without_the_csrf_token_are_refused(page, gateway, secrets, tmp_path):
    page.goto(gateway.url + "/systeme")
    token = csrf_of(page)
    origin = {"Origin": gateway.url}
    _, data = download(page, "#backup")
    changed = re.sub(rb"(?m)^Connection_Timeout=.*$", b"Connection_Timeout=50",
                     members(data)["WEBDYN_var.ini"])
    upload = {"files": {"name": "WEBDYN_var.ini", "mimeType": "text/plain", "buffer": changed}}
    before = config_bytes(gateway)
    r = page.request.post(gateway.url + "/systeme/restauration", multipart=upload,
                          headers=origin, max_redirects=0)
    assert r.status == 403
    r = page.request.post(gateway.url + "/systeme/restauration", multipart=upload,
                          headers={**origin, "X-CSRF-Token": token}, max_redirects=0)
    assert r.status == 200 and r.json() == {"go": "/systeme/restauration"}
    for path in ("/systeme/restauration/valider", "/systeme/restauration/annuler"):
        r = page.request.post(gateway.url + path, form={}, headers=origin, max_redirects=0)
        assert r.status == 403
    assert config_bytes(gateway) == before
    r = page.request.post(gateway.url + "/systeme/restauration/valider", form={"csrf": token},
                          headers=origin, max_redirects=0)
    assert r.status == 302
    assert ini_value(gateway, "Connection_Timeout", "var") == "50"
    # the downloads need the session
    stranger = page.context.browser.new_context()
    try:
        for path in ("/diagnostic.zip", "/configuration.zip"):
            assert stranger.request.get(gateway.url + path, max_redirects=0).status == 401
    finally:
        stranger.close()
