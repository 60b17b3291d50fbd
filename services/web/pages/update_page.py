"""*Mise à jour* (manual 10.5): send a firmware package, read its facts, install it.

The manual's flow: *Parcourir* (a ``.pak``), *Valider* sends it with a progress bar of the
transfer (``static/update.js``: XMLHttpRequest, the raw file as the body); the handler streams
it into ``<data>/firmware/`` and asks the update service to verify it (``update verify``). The
page shows its facts (version, build date, size, SHA-256, beside the running version) before the
installer confirms: *Valider* installs it (``update install``), *Annuler* drops it (``update
discard``, and the file). The install's progress comes live (``update`` events), then the
manual's *Veuillez attendre le redémarrage de la passerelle...* while the whole gateway restarts
into the new release; the page polls until the web process is back (a new ``boot``) and shows
the outcome (committed, rolled back, failed with the reason). Refusals are shown with their
reason, a busy task lock with the manual's sentence.

Files: an upload is written under a hidden temporary name (``.web-<random>.pak.tmp``, which
the uplink removes at start if a crash left it) then renamed ``web-<random>.pak``. A refused
package, an abandoned upload (the client gone, nothing for ``IDLE`` s) and a package the
installer cancels are removed; one the update service installs is removed by it; one nobody
confirmed (the offer times out) is removed by the next upload after ``STALE`` s.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import time
from pathlib import Path

from ticgw import files

from ..layout import h, hidden_csrf
from ..texts import T

log = logging.getLogger("web.update")


PATH = "/mise-a-jour"
#: The largest package accepted (the gate lets up to 256 MiB through on the upload route).
MAX_PACKAGE = 128 * 1024 * 1024
READ_SIZE = 256 * 1024
#: Bytes gathered before one write in the disk worker.
WRITE_SIZE = 1024 * 1024
#: Seconds without a byte from the client before an upload is given up.
IDLE = 60.0
#: Seconds after which a package of this page nobody installed is removed (the update service
#: drops an unconfirmed offer after 15 minutes; an install takes a few).
STALE = 3600.0
VERIFY_TIMEOUT = 120.0
STATUS_TIMEOUT = 3.0
#: The names this page gives its packages (and their temporary files).
PACKAGE_NAME = re.compile(r"web-[0-9a-f]{16}\.pak")
TEMP_NAME = re.compile(r"\.web-[0-9a-f]{16}\.pak\.tmp")
#: This web process: a page that sees another one knows the gateway restarted.
BOOT = secrets.token_hex(8)

#: The update service's states, as the page groups them.
BUSY = ("starting", "uploaded", "installing", "switching", "restarting", "verifying",
        "rolling_back", "rolled_back")      # rolled_back: the gateway restarts out of it
RESTARTING = ("restarting", "rolled_back")
HEALTH_STEP = "contrôle de santé"


def phase(state: str | None) -> str:
    """unknown (no answer), verified (a package waits for Valider), busy, resting."""
    if not state:
        return "unknown"
    if state == "verified":
        return "verified"
    return "busy" if state in BUSY else "resting"


# --- formatting -----------------------------------------------------------------------------

def _thousands(n: int) -> str:
    return "{:,}".format(n).replace(",", "\u202f")


def size_text(n) -> str:
    try:
        n = int(n)
    except (TypeError, ValueError):
        return ""
    return T["update.size_value"] % (_thousands(n), ("%.1f" % (n / 1048576)).replace(".", ","))


def date_text(value) -> str:
    """An ISO UTC date (``2026-01-02T03:04:05Z``) or epoch seconds as ``02/01/2026 03:04:05
    UTC``; anything else as it is."""
    if isinstance(value, (int, float)):
        return time.strftime("%d/%m/%Y %H:%M:%S UTC", time.gmtime(value)) if value else ""
    m = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d:\d\d:\d\d)Z?", str(value or ""))
    if not m:
        return str(value or "")
    return "%s/%s/%s %s UTC" % (m.group(3), m.group(2), m.group(1), m.group(4))


def facts_view(facts: dict) -> dict:
    """The facts as the page shows them."""
    return {"version": facts.get("version") or "", "sha256": facts.get("sha256") or "",
            "build_date": date_text(facts.get("build_date")), "size": size_text(facts.get("size")),
            "bytes": facts.get("size")}


def outcome_text(record: dict) -> str | None:
    """The outcome of the last package, as the journal says it; None when there is none."""
    state = record.get("state")
    if state == "committed":
        return T["update.outcome.committed"] % (record.get("version"),
                                                record.get("from_version"))
    if state == "rolled_back":
        return T["update.outcome.rolled_back"] % (record.get("from_version"),
                                                  record.get("reason"))
    if state == "failed":
        version = record.get("version")
        return T["update.outcome.failed"] % (" %s" % version if version else "",
                                             record.get("reason"))
    return None


def step_text(step) -> str:
    return T.get("update.step.%s" % step, str(step or ""))


# --- the disk side (the service's disk worker) ------------------------------------------------

def _open_upload(inbox: Path, name: str, now: float):
    inbox.mkdir(parents=True, exist_ok=True)
    _sweep(inbox, now)
    temp = inbox / (".%s.tmp" % name)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    return temp, os.fdopen(fd, "wb")


def _write(f, data: bytes) -> None:
    f.write(data)


def _finish(f, temp: Path, final: Path) -> None:
    f.flush()
    os.fsync(f.fileno())
    f.close()
    os.rename(temp, final)
    files.fsync_dir(final.parent)


def _abandon(f, temp: Path) -> None:
    try:
        f.close()
    except OSError:
        pass
    temp.unlink(missing_ok=True)


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def _sweep(inbox: Path, now: float) -> list[str]:
    """This page's packages and temporary files older than ``STALE``: nobody installs them."""
    gone = []
    for p in inbox.iterdir():
        if PACKAGE_NAME.fullmatch(p.name) or TEMP_NAME.fullmatch(p.name):
            try:
                if now - p.stat().st_mtime > STALE:
                    p.unlink()
                    gone.append(p.name)
            except FileNotFoundError:
                pass
    if gone:
        log.info("removed packages nobody installed: %s", ", ".join(gone))
    return gone


class Interrupted(Exception):
    """The client stopped sending before the end of its package."""


# --- the page ---------------------------------------------------------------------------------

def _steps_html() -> str:
    return "<p>%s</p><ol>%s</ol>" % (h(T["update.intro"]), "".join(
        "<li>%s</li>" % h(T["update.how.%d" % i]) for i in range(1, 7)))


def _facts_html(csrf: str, facts: dict, running: str, shown: bool) -> str:
    v = facts_view(facts)
    rows = ((T["update.version"], "f-version", v["version"]),
            (T["update.build_date"], "f-date", v["build_date"]),
            (T["update.size"], "f-size", v["size"]),
            (T["update.sha256"], "f-sha256", v["sha256"]),
            (T["update.running"], "f-running", running))
    return ('<section id="facts"%s><h2>%s</h2><dl class="facts">%s</dl><p>%s</p>'
            '<div style="display:flex;gap:.75rem">'
            '<form method="post" action="%s/valider">%s'
            '<input type="hidden" name="sha256" id="install-sha256" value="%s">'
            '<button id="install">%s</button></form>'
            '<form method="post" action="%s/abandonner">%s<button id="discard">%s</button>'
            '</form></div></section>'
            % ("" if shown else " hidden", h(T["update.facts"]),
               "".join('<dt>%s</dt><dd id="%s"%s>%s</dd>'
                       % (h(label), i, ' style="overflow-wrap:anywhere;font-family:monospace"'
                          if i == "f-sha256" else "", h(value)) for label, i, value in rows),
               h(T["update.compare"]), PATH, hidden_csrf(csrf), h(v["sha256"]),
               h(T["validate"]), PATH, hidden_csrf(csrf), h(T["cancel"])))


def _upload_html(shown: bool) -> str:
    visually_hidden = ("position:absolute;width:1px;height:1px;opacity:0;overflow:hidden;"
                       "clip:rect(0 0 0 0)")
    button_look = ("display:inline-block;padding:.35rem .9rem;border-radius:4px;"
                   "background:var(--accent);color:var(--accent-fg);cursor:pointer")
    return ('<form id="upload"%s><p><label for="pak" id="browse" style="%s" tabindex="0" '
            'role="button">%s</label><input type="file" id="pak" name="pak" accept=".pak" '
            'aria-label="%s" style="%s"> <span id="pak-name">%s</span></p>'
            '<p><button id="send">%s</button></p></form>'
            '<div id="transfer" hidden><progress id="transfer-bar" max="100" value="0">'
            '</progress><p id="transfer-text"></p></div>'
            % ("" if shown else " hidden", button_look, h(T["update.browse"]), h(T["update.file"]),
               visually_hidden, h(T["update.no_file"]), h(T["validate"])))


def _progress_html(state: str | None, progress: dict, shown: bool) -> str:
    step = progress.get("step")
    percent = progress.get("percent")
    if state == "rolling_back":
        label = T["update.rolling_back"]
    else:
        label = step_text(step) if step else ""
    value = ("" if step == HEALTH_STEP or not isinstance(percent, (int, float))
             else ' value="%d"' % percent)
    restarting = state in RESTARTING or step == "redémarrage" or state is None
    return ('<section id="progress"%s><h2>%s</h2><p class="banner warn">%s</p>'
            '<progress id="install-bar" max="100"%s></progress>'
            '<p id="install-step" class="running">%s</p>'
            '<p class="banner warn" id="restart" role="status"%s>%s</p></section>'
            % ("" if shown else " hidden", h(T["update.progress"]), h(T["update.do_not_unplug"]),
               value, h(label), "" if restarting else " hidden",
               h(T["banner.restart_needed"])))


def _last_outcome_html(record: dict) -> str:
    text = outcome_text(record)
    if not text:
        return ""
    ok = record.get("state") == "committed"
    when = date_text(record.get("at")) if record.get("at") else ""
    home = (' <a href="/">%s</a>' % h(T["update.check_home"])) if ok else ""
    return ('<div id="last"><h2>%s</h2><p id="last-outcome" class="banner%s" data-state="%s" '
            'role="status">%s%s%s</p></div>'
            % (h(T["update.last"]), "" if ok else " error", h(record.get("state")), h(text),
               (" (%s)" % h(T["update.outcome.at"] % when)) if when else "", home))


def _js_texts() -> str:
    keys = ("transfer", "checking", "choose", "lost", "http", "do_not_unplug",
            "rolling_back", "check_home", "outcome.committed", "outcome.rolled_back",
            "outcome.failed", "no_file")
    texts = {k: T["update." + k] for k in keys}
    texts["too_large"] = T["update.too_large"] % (MAX_PACKAGE // 1048576)
    texts["session"] = T["login.expired"]
    texts["restart"] = T["banner.restart_needed"]
    texts["steps"] = {k[len("update.step."):]: v for k, v in T.items()
                      if k.startswith("update.step.")}
    return json.dumps(texts, ensure_ascii=False)


def register(app, web) -> None:
    #: the name of the package of this page the update service holds (verified), if any
    held: dict[str, str | None] = {"name": None}

    def inbox() -> Path:
        return (Path(web.service.data_dir) / "firmware").resolve()

    def running_version() -> str:
        info = web.service.release_info()
        return str(info.get("version") or "")

    async def update_status():
        status, error = await web.command("update", "status", timeout=STATUS_TIMEOUT)
        return (status or {}), error

    async def forget(name: str | None) -> None:
        """Remove a package of this page (nobody holds it any more)."""
        if name and PACKAGE_NAME.fullmatch(name):
            await web.bridge.disk(_remove, inbox() / name)
        if held["name"] == name:
            held["name"] = None

    @app.get(PATH)
    async def update_page(request):
        web.snapshot(request)                 # first: the page's stream starts right after it
        status, error = await update_status()
        state = status.get("state") if not error else None
        where = phase(state)
        # ?attente: the page came back after a restart; the update service is not up yet
        waiting = where == "unknown" and bool(request.args.get("attente"))
        info = web.service.release_info()
        running = running_version()
        body = ('<section id="update" data-state="%s" data-phase="%s" data-boot="%s" '
                'data-max="%d" data-texts="%s">'
                '<dl class="facts"><dt>%s</dt><dd id="running-version">%s %s</dd></dl>'
                '%s%s%s%s%s%s<p id="refused" class="banner error" role="alert" hidden></p>'
                '<p id="outcome" class="banner" role="status" hidden></p></section>'
                % (h(state or ""), where, BOOT, MAX_PACKAGE, h(_js_texts()),
                   h(T["update.running"]), h(running), h(date_text(info.get("date"))),
                   _last_outcome_html(status.get("record") or {}) if where == "resting" else "",
                   _steps_html() if where in ("resting", "verified") else "",
                   _upload_html(where == "resting"),
                   _facts_html(request.g.session.csrf, status.get("package") or {}, running,
                               where == "verified"),
                   _progress_html(state, status.get("progress") or {},
                                  where == "busy" or waiting),
                   '<p id="update-down">%s</p>' % h(T["update.waiting"])
                   if where == "unknown" and not waiting else ""))
        return web.page(request, T["update.title"], body, PATH,
                        [error] if error and not waiting else [],
                        script='<script src="/static/update.js" defer></script>')

    @app.get(PATH + "/etat.json")
    async def update_state(request):
        """What the page polls while the gateway installs and restarts."""
        status, error = await update_status()
        state = status.get("state") if not error else None
        return {"boot": BOOT, "state": state, "phase": phase(state),
                "progress": status.get("progress") or {},
                "record": status.get("record") or {}}

    @app.post(PATH + "/envoi")
    async def upload(request):
        length = request.content_length
        if length <= 0:
            return {"ok": False, "kind": "error", "error": T["update.empty"]}, 400
        body = Body(request.stream, length)
        if length > MAX_PACKAGE:
            await body.drain()
            log.warning("refused a package of %d bytes (more than %d)", length, MAX_PACKAGE)
            return {"ok": False, "kind": "error",
                    "error": T["update.too_large"] % (MAX_PACKAGE // 1048576)}, 413
        name = "web-%s.pak" % secrets.token_hex(8)
        final = inbox() / name
        try:
            temp, f = await web.bridge.disk(_open_upload, inbox(), name, time.time())
        except OSError as e:
            await body.drain()
            log.error("cannot write a package in %s: %s", inbox(), e)
            return {"ok": False, "kind": "error",
                    "error": T["update.disk"] % (e.strerror or e)}, 500
        try:
            await body.receive(lambda data: web.bridge.disk(_write, f, data))
            await web.bridge.disk(_finish, f, temp, final)
        except asyncio.CancelledError:
            _abandon(f, temp)            # the server is stopping: its disk worker may be gone
            raise
        except BaseException as e:
            await web.bridge.disk(_abandon, f, temp)
            await web.bridge.disk(_remove, final)
            if isinstance(e, Interrupted):
                log.warning("upload of a package abandoned: %s", e)
                return {"ok": False, "kind": "error", "error": T["update.lost"]}, 400
            if isinstance(e, OSError):          # the disk is full, or failing
                await body.drain()
                log.error("cannot write the package %s: %s", final, e)
                return {"ok": False, "kind": "error",
                        "error": T["update.disk"] % (e.strerror or e)}, 500
            raise
        log.info("package received: %s (%d bytes)", name, length)
        result, error = await web.command("update", "verify",
                                          {"path": str(final), "origin": "web"}, VERIFY_TIMEOUT)
        previous = held["name"]
        if error:
            await web.bridge.disk(_remove, final)
            if error[0] != "busy" and previous:
                await forget(previous)          # the update service dropped it for this one
            return {"ok": False, "kind": error[0], "error": error[1]}, \
                409 if error[0] == "busy" else 422
        if previous and previous != name:
            await forget(previous)
        held["name"] = name
        return {"ok": True, "facts": facts_view(result or {}), "running": running_version()}

    @app.post(PATH + "/valider")
    async def install(request):
        shown = str((request.form or {}).get("sha256") or "")
        status, error = await update_status()
        held_now = (status.get("package") or {}).get("sha256")
        if not error and status.get("state") == "verified" and shown and held_now != shown:
            # the installer confirms what the page showed, not what another upload put there
            return web.done(request, PATH, ("error", T["update.changed"]))
        _, error = await web.command("update", "install", {}, timeout=10.0)
        return web.done(request, PATH, error)

    @app.post(PATH + "/abandonner")
    async def discard(request):
        _, error = await web.command("update", "discard")
        name = held["name"]
        if name:
            if error is None:
                await forget(name)
            else:
                # nothing verified any more (the offer timed out): the file is nobody's,
                # unless an install is using it
                status, status_error = await update_status()
                if not status_error and phase(status.get("state")) == "resting":
                    await forget(name)
        return web.done(request, PATH, error, T["update.discarded"])


class Body:
    """A request's body, read in chunks: what is left of it, an idle timeout per chunk."""

    def __init__(self, stream, length: int):
        self.stream, self.length, self.left = stream, length, length

    async def read(self) -> bytes:
        """The next chunk (empty at the end); Interrupted when the client stops before it."""
        if self.left <= 0:
            return b""
        got = self.length - self.left
        try:
            chunk = await asyncio.wait_for(self.stream.read(min(READ_SIZE, self.left)), IDLE)
        except asyncio.TimeoutError:
            raise Interrupted("nothing received for %d s after %d of %d bytes"
                              % (IDLE, got, self.length)) from None
        except (ConnectionError, OSError) as e:
            raise Interrupted("%s after %d of %d bytes" % (e, got, self.length)) from None
        if not chunk:
            raise Interrupted("the client left after %d of %d bytes" % (got, self.length))
        self.left -= len(chunk)
        return chunk

    async def receive(self, write) -> None:
        """All of it, handed to ``write(data)`` (awaited) a megabyte at a time."""
        buf = bytearray()
        while self.left > 0:
            buf += await self.read()
            if len(buf) >= WRITE_SIZE or self.left <= 0:
                await write(bytes(buf))
                buf.clear()

    async def drain(self) -> None:
        """Read what is left and drop it (a browser still sending would not see the answer),
        or stop when the client does."""
        try:
            while self.left > 0:
                await self.read()
        except Interrupted:
            pass
