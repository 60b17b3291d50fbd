"""*Système* (beyond the manual): the password, a diagnostic bundle in one click, and the
configuration's backup and restore.

- ``GET /diagnostic.zip``: the configuration (files as on disk and the effective settings),
  the journal, every service's status, the versions, the configuration's problems, and a
  README.txt naming what is inside. No secret is in it: secret keys' lines are masked, and any
  other occurrence of a secret value (a journal row, a status) is replaced by ``****``.
- ``GET /configuration.zip``: the three INI files as on disk, secrets emptied, and a
  README.txt saying that a restore keeps the gateway's own secrets.
- ``POST /systeme/restauration``: a zip of a backup, or INI files (multipart, sent by
  static/maintenance.js with the CSRF header); checked whole against the configuration in
  force; the changes wait in the session for *Valider* (``GET /systeme/restauration`` shows
  them: key, file, value now, value restored) or *Annuler*. Keys absent from the backup and
  secrets are kept. A backup with a bad value is refused with the reasons, nothing changes.
"""
from __future__ import annotations

import asyncio
import io
import json
import logging
import platform
import re
import sys
import time
import zipfile

from microdot import Response, redirect
from microdot.multipart import FileUpload, FormDataIter

from ticgw import __version__, registry
from ticgw.config import BY_NAME, KINDS, ConfigError, describe, file_name, read_dir
from ticgw.config.iniformat import decode, parse_ini
from ticgw.config.settings import DEFAULT_SITE, build

from ..layout import h, hidden_csrf, table
from ..texts import T
from .network import SECRETS, normal, problem_fr, restart_banner

log = logging.getLogger("web.maintenance")


MASK = "****"
#: Secret values at least this long are also scrubbed from free text (journal, statuses);
#: shorter ones would hit innocent text. Their lines in the configuration are masked anyway.
SCRUB_MIN = 4
#: A restore's upload: files kept, a zip's members read, at most.
MAX_FILES = 10
MAX_MEMBER = 512 * 1024
INI_NAME = re.compile(r"(?i)^(?:.*[/\\])?([^/\\]*)_(config|daq|var)\.ini$")
SECRETS_LOWER = frozenset(k.lower() for k in SECRETS)


# --- secrets out ---------------------------------------------------------------------------------

def redact_ini(data: bytes, mask: bytes) -> bytes:
    """An INI file with the value of every secret key (in any case, commented out or not)
    replaced by ``mask`` (or nothing), line endings and everything else kept."""
    out = []
    for line in data.splitlines(keepends=True):
        body = line.rstrip(b"\r\n")
        end = line[len(body):]
        stripped = body.strip()
        comment = stripped[:1] in (b"#", b";")
        key, sep, value = stripped.lstrip(b"#; \t").partition(b"=")
        name = key.strip().decode("latin-1").lower()
        if sep and name in SECRETS_LOWER and value.strip():
            body = (b"# " + key.strip() + b"=") if comment else key.strip() + b"=" + mask
        out.append(body + end)
    return b"".join(out)


def secret_values(settings) -> list[str]:
    """The secret values to scrub from free text, longest first."""
    values = {settings.text(k) for k in SECRETS if k in BY_NAME}
    return sorted((v for v in values if len(v) >= SCRUB_MIN), key=len, reverse=True)


def scrub(text: str, values) -> str:
    for v in values:
        text = text.replace(v, MASK)
    return text


def _stamp(t: float) -> tuple[str, str]:
    """(file name stamp, readable UTC date)."""
    return (time.strftime("%Y%m%d-%H%M%S", time.gmtime(t)),
            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)))


def _safe(site: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", site) or DEFAULT_SITE


def _config_files(config_dir) -> tuple[str, dict[str, bytes], object]:
    """(site, kind -> file bytes as on disk, Loaded)."""
    loaded = read_dir(config_dir)
    out = {}
    for kind in KINDS:
        try:
            out[kind] = (config_dir / file_name(loaded.site, kind)).read_bytes()
        except FileNotFoundError:
            pass
    return loaded.site, out, loaded


# --- the bundles (disk worker) ---------------------------------------------------------------

def backup_zip(store, now: float) -> tuple[str, bytes]:
    """(file name, zip bytes) of the configuration's backup."""
    site, files, _ = _config_files(store.dir)
    stamp, date = _stamp(now)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        names = []
        for kind, data in files.items():
            name = file_name(site, kind)
            z.writestr(name, redact_ini(data, b""))
            names.append("- %s" % name)
        z.writestr("README.txt", T["maintenance.readme.backup"] % {
            "site": site, "date": date, "version": __version__, "files": "\n".join(names)})
    return "configuration-%s-%s.zip" % (_safe(site), stamp), buf.getvalue()


def diagnostic_zip(store, journal_path, statuses: dict, versions: dict, view: dict,
                   now: float) -> tuple[str, bytes]:
    """(file name, zip bytes) of the diagnostic bundle."""
    site, files, loaded = _config_files(store.dir)
    settings = loaded.settings if loaded.settings is not None else store.settings
    # the disk's secrets and the ones in force (they differ until a restart)
    values = sorted(set(secret_values(settings)) | set(secret_values(store.settings)),
                    key=len, reverse=True)
    stamp, date = _stamp(now)
    try:
        journal = journal_path.read_bytes().decode("utf-8", "replace")
    except FileNotFoundError:
        journal = ""
    problems = ["erreur : %s" % p for p in loaded.problems] + \
               ["avertissement : %s" % p for p in loaded.warnings]

    def dump(obj) -> str:
        return json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True, default=str) + "\n"

    members = {
        "README.txt": T["maintenance.readme.diagnostic"] % {
            "site": site, "date": date, "version": __version__,
            "services": ", ".join(statuses)},
        "configuration/effective.txt": "\n".join(describe(settings)) + "\n",
        "configuration/problems.txt": "\n".join(problems) + "\n" if problems else "aucun\n",
        "journal.log": journal,
        "services.json": dump(statuses),
        "versions.json": dump(versions),
        "view.json": dump(view),
    }
    for kind, data in files.items():
        members["configuration/%s" % file_name(site, kind)] = decode(
            redact_ini(data, MASK.encode()))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in members.items():
            z.writestr(name, scrub(text, values).encode("utf-8"))
    return "diagnostic-%s-%s.zip" % (_safe(site), stamp), buf.getvalue()


# --- restore -------------------------------------------------------------------------------------

class Refused(Exception):
    """A restore that cannot be taken; ``lines`` say why, in French."""

    def __init__(self, lines):
        self.lines = list(lines)
        super().__init__("; ".join(self.lines))


def backup_files(uploads: list[tuple[str, bytes]]) -> dict[str, tuple[str, bytes]]:
    """kind -> (file name, bytes) from the uploaded files: zips (their INI members) and INI
    files, recognised by their name's end (_config.ini, _daq.ini, _var.ini)."""
    found: dict[str, tuple[str, bytes]] = {}

    def take(name: str, data: bytes) -> None:
        m = INI_NAME.match(name)
        if not m:
            return
        kind = m.group(2).lower()
        if kind in found:
            raise Refused([T["maintenance.restore.twice"] % ("_%s.ini" % kind)])
        found[kind] = (name.replace("\\", "/").rsplit("/", 1)[-1], data)

    for name, data in uploads:
        if name.lower().endswith(".zip") or data[:4] == b"PK\x03\x04":
            try:
                with zipfile.ZipFile(io.BytesIO(data)) as z:
                    members = [i for i in z.infolist() if not i.is_dir()]
                    if len(members) > 50:
                        raise Refused([T["maintenance.restore.too_big"] % name])
                    for info in members:
                        if not INI_NAME.match(info.filename):
                            continue
                        if info.file_size > MAX_MEMBER:
                            raise Refused([T["maintenance.restore.too_big"] % info.filename])
                        take(info.filename, z.read(info))
            except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError):
                raise Refused([T["maintenance.restore.bad_zip"] % name]) from None
        else:
            take(name, data)
    if not found:
        raise Refused([T["maintenance.restore.none"]])
    return found


def plan_restore(store, uploads: list[tuple[str, bytes]]) -> dict:
    """What restoring ``uploads`` changes, checked whole against the configuration on disk:
    ``{"changes": {key: text}, "rows": [[key, file, now, restored]], "ignored": [keys]}``.
    Raises :class:`Refused` with the reasons. Disk work: call it in the worker."""
    files = backup_files(uploads)
    loaded = read_dir(store.dir)
    current = loaded.settings if loaded.settings is not None else store.settings
    texts = current.all_raw()
    wanted: dict[str, str] = {}
    ignored: list[str] = []
    bad: list[str] = []
    for kind in KINDS:
        if kind not in files:
            continue
        name, data = files[kind]
        parsed = parse_ini(decode(data))
        bad += [T["maintenance.restore.bad_line"] % (name, n) for n, _ in parsed.errors]
        for key, value in parsed.values.items():
            k = BY_NAME.get(key)
            if k is None or k.kind != kind:
                ignored.append(key)
            elif key not in SECRETS:            # the gateway's own secrets are kept
                wanted[key] = value
    if bad:
        raise Refused(bad)
    changes = {key: value for key, value in wanted.items()
               if normal(key, value) != texts[BY_NAME[key].kind][key]}
    for key, value in changes.items():
        texts[BY_NAME[key].kind][key] = value
    site = texts["config"]["Site_Id"] or DEFAULT_SITE
    _, problems = build(texts, {kind: file_name(site, kind) for kind in KINDS})
    if problems:
        raise Refused([problem_fr(p) for p in problems])
    here = {kind: file_name(current.site, kind) for kind in KINDS}
    rows = [[key, here[BY_NAME[key].kind], current.text(key), normal(key, value)]
            for key, value in changes.items()]
    return {"changes": changes, "rows": rows, "ignored": ignored}


async def _uploads(request) -> list[tuple[str, bytes]]:
    out = []
    async for _, value in FormDataIter(request):
        if isinstance(value, FileUpload):
            data = await value.read()
            if value.filename and data and len(out) < MAX_FILES:
                out.append((value.filename, data))
    return out


def _json(data: dict, status: int = 200) -> Response:
    return Response(json.dumps(data), status, {"Content-Type": "application/json"})


def _zip(name: str, data: bytes) -> Response:
    return Response(data, headers={"Content-Type": "application/zip",
                                   "Content-Disposition": 'attachment; filename="%s"' % name})


def register(app, web) -> None:
    store = web.service.store

    @app.get("/systeme")
    async def system(request):
        s = request.g.session
        top = ""
        if getattr(s, "restore_done", False):
            s.restore_done = False
            top += restart_banner(T["maintenance.restore.done"])
        refused = getattr(s, "restore_refused", None)
        if refused:
            s.restore_refused = None
            top += ('<div class="banner error" role="alert" id="restore-refused"><p>%s</p>'
                    '<ul>%s</ul></div>' % (h(T["maintenance.restore.refused"]),
                                           "".join("<li>%s</li>" % h(x) for x in refused)))
        body = top + (
            '<h2>%s</h2><p>%s</p><p><a href="/mot-de-passe" id="password-link">%s</a></p>'
            '<h2>%s</h2><p>%s</p><p><a href="/diagnostic.zip" download id="diagnostic">%s</a></p>'
            '<h2>%s</h2><p>%s</p><p><a href="/configuration.zip" download id="backup">%s</a></p>'
            '<h2>%s</h2><p>%s</p>'
            '<form method="post" action="/systeme/restauration" enctype="multipart/form-data" '
            'id="restore-form" data-sending="%s" data-failed="%s">%s'
            '<label class="field"><span>%s</span><input type="file" name="files" multiple '
            'accept=".zip,.ini" id="restore-files" required></label>'
            '<p><button id="restore">%s</button> <span id="restore-status" role="status">'
            '</span></p></form>'
            % (h(T["maintenance.password"]), h(T["maintenance.password.text"]),
               h(T["maintenance.password.link"]),
               h(T["maintenance.diagnostic"]), h(T["maintenance.diagnostic.text"]),
               h(T["maintenance.diagnostic.link"]),
               h(T["maintenance.backup"]), h(T["maintenance.backup.text"]),
               h(T["maintenance.backup.link"]),
               h(T["maintenance.restore"]), h(T["maintenance.restore.text"]),
               h(T["maintenance.restore.sending"]), h(T["maintenance.restore.failed"]),
               hidden_csrf(s.csrf), h(T["maintenance.restore.file"]),
               h(T["maintenance.restore.send"])))
        return web.page(request, T["maintenance.title"], body, "/systeme",
                        script='<script src="/static/maintenance.js" defer></script>')

    @app.get("/diagnostic.zip")
    async def diagnostic(request):
        names = [spec.name for spec in registry.SERVICES]

        async def status(name):
            result, error = await web.command(name, "status", timeout=3.0)
            return result if error is None else {"error": error[1]}

        results = await asyncio.gather(*(status(n) for n in names))
        statuses = dict(zip(names, results))
        update = statuses.get("update") or {}
        versions = {"ticgw": __version__, "running": web.service.release_info(),
                    "update": {k: update.get(k) for k in
                               ("state", "version", "release", "installed", "record")},
                    "python": sys.version, "platform": platform.platform()}
        snap = web.snapshot(request)
        view = {k: snap[k] for k in ("machines", "task", "leds", "alarms", "detected")}
        name, data = await web.bridge.disk(
            diagnostic_zip, store, web.service.data_dir / "state" / "journal.log", statuses,
            versions, view, time.time())
        log.info("diagnostic downloaded by %s (%d bytes)", request.g.session.user, len(data))
        return _zip(name, data)

    @app.get("/configuration.zip")
    async def backup(request):
        name, data = await web.bridge.disk(backup_zip, store, time.time())
        log.info("configuration backup downloaded by %s", request.g.session.user)
        return _zip(name, data)

    @app.post("/systeme/restauration")
    async def restore_upload(request):
        s = request.g.session
        s.restore = None
        uploads = await _uploads(request)
        try:
            plan = await web.bridge.disk(plan_restore, store, uploads)
        except Refused as e:
            s.restore_refused = e.lines
            log.info("restore refused: %s", e)
            return _json({"go": "/systeme"})
        if not plan["changes"]:
            s.flash.append(("info", T["maintenance.restore.same"]))
            return _json({"go": "/systeme"})
        s.restore = plan
        return _json({"go": "/systeme/restauration"})

    @app.get("/systeme/restauration")
    async def restore_preview(request):
        plan = getattr(request.g.session, "restore", None)
        if not plan:
            return web.done(request, "/systeme", ("info", T["maintenance.restore.nothing"]))
        csrf = hidden_csrf(request.g.session.csrf)
        ignored = ('<p id="restore-ignored">%s</p>'
                   % h(T["maintenance.restore.ignored"] % ", ".join(plan["ignored"]))
                   if plan["ignored"] else "")
        body = ('<p>%s</p>%s%s<form method="post" action="/systeme/restauration/valider" '
                'style="display:inline">%s<button id="restore-apply">%s</button></form> '
                '<form method="post" action="/systeme/restauration/annuler" '
                'style="display:inline">%s<button id="restore-cancel">%s</button></form>'
                % (h(T["maintenance.restore.preview"]),
                   table((T["maintenance.restore.key"], T["maintenance.restore.in_file"],
                          T["maintenance.restore.now"], T["maintenance.restore.restored"]),
                         plan["rows"], ' id="restore-preview"'),
                   ignored, csrf, h(T["validate"]), csrf, h(T["cancel"])))
        return web.page(request, T["maintenance.restore"], body, "/systeme")

    @app.post("/systeme/restauration/valider")
    async def restore_apply(request):
        s = request.g.session
        plan = getattr(s, "restore", None)
        if not plan:
            return web.done(request, "/systeme", ("info", T["maintenance.restore.nothing"]))
        s.restore = None
        try:
            await web.bridge.disk(store.update, plan["changes"], "web")
        except ConfigError as e:
            s.restore_refused = [problem_fr(p) for p in e.problems]
            return redirect("/systeme")
        except OSError as e:
            log.error("the restored configuration could not be written: %s", e)
            return web.done(request, "/systeme",
                            ("error", T["network.write_failed"] % (e.strerror or e)))
        log.warning("configuration restored from a backup by %s: %s", s.user,
                    ", ".join(sorted(plan["changes"])))
        s.restore_done = True
        return redirect("/systeme")

    @app.post("/systeme/restauration/annuler")
    async def restore_cancel(request):
        request.g.session.restore = None
        return web.done(request, "/systeme", ok=T["maintenance.restore.cancelled"])
