"""The HTTP application (Microdot, asyncio): the session gate in front of every route, the
login and the forced password change, the live stream, the assets; each page module adds its
own routes (``pages/``).

Every route but ``/connexion`` (the login) needs a session: without one a page is redirected to
the login, anything else (a stream, a download, an upload, a form) gets 401. While the factory
password is in force, the password page is the only one reachable. Every POST must come from
the page (Origin) and carry the session's CSRF token.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets

from microdot import Microdot, Request, Response, redirect
from microdot.websocket import WebSocketError, websocket_upgrade

from bus.errors import CommandRefused, RemoteError

from . import auth, layout
from .layout import bare, h, hidden_csrf
from .texts import T

log = logging.getLogger("web.http")

#: Bodies up to this size are read whole (forms, a configuration file to restore).
Request.max_body_length = 256 * 1024
#: The largest body accepted at all (a firmware package); routes other than uploads are held
#: to FORM_LIMIT in the gate.
Request.max_content_length = 256 * 1024 * 1024
FORM_LIMIT = 256 * 1024
UPLOAD_ROUTES = ("/mise-a-jour/envoi",)
#: Seconds between two keep-alive comments on a live stream.
KEEPALIVE = 15.0

PUBLIC = ("/connexion",)
#: The assets' names (files of services/web/static/).
STATIC_NAME = re.compile(r"[a-z0-9_-]+\.(js|css)")
PASSWORD_PAGE = "/mot-de-passe"


class Web:
    """What the routes use: the view, the bus, the sessions, the settings."""

    def __init__(self, service, view, hub, bridge):
        self.service = service
        self.view = view
        self.hub = hub
        self.bridge = bridge
        self.sessions = auth.Sessions()
        self.throttle = auth.Throttle()
        self._login_locks: dict[str, asyncio.Lock] = {}
        #: this process's start: a page rendered by another process must be rendered again
        self.boot = secrets.token_hex(4)

    def login_lock(self, address: str) -> asyncio.Lock:
        if len(self._login_locks) > 1000:          # forget idle ones
            self._login_locks = {a: k for a, k in self._login_locks.items() if k.locked()}
        return self._login_locks.setdefault(address, asyncio.Lock())

    @property
    def settings(self):
        return self.service.store.settings if self.service.store else self.service.settings

    def snapshot(self, request) -> dict:
        """The view as this request shows it: one snapshot per request, whose number the page
        carries so that its stream starts right after it."""
        if getattr(request.g, "snapshot", None) is None:
            request.g.snapshot = self.view.snapshot()
        return request.g.snapshot

    def page(self, request, title: str, body: str, active: str, flash=(), script: str = ""):
        s = request.g.session
        flash = list(flash) + list(s.flash)
        s.flash.clear()
        snap = self.snapshot(request)
        return Response(layout.page(title, body, active=active, csrf=s.csrf,
                                    initialising=self.view.initialising(), leds=snap["leds"],
                                    flash=flash, script=script, since=snap["seq"],
                                    boot=self.boot),
                        headers={"Content-Type": "text/html; charset=utf-8"})

    def done(self, request, path: str, error=None, ok: str | None = None):
        """After a form: back to ``path`` (a reload does not post again), with the outcome."""
        if error:
            request.g.session.flash.append(error)
        elif ok:
            request.g.session.flash.append(("info", ok))
        return redirect(path)

    async def command(self, service: str, method: str, params: dict | None = None,
                      timeout: float = 5.0):
        """A command for the page: (result, None) or (None, (kind, French text))."""
        try:
            return await self.bridge.call(service, method, params, timeout), None
        except (CommandRefused, RemoteError) as e:
            kind = "busy" if e.code == "busy" else "error"
            return None, (kind, e.message)
        except Exception as e:
            return None, ("error", T["error.bus"] % (getattr(e, "message", None) or e))


def _html(text: str, status: int = 200) -> Response:
    return Response(text, status, {"Content-Type": "text/html; charset=utf-8"})


def _set_session_cookie(response: Response, token: str) -> None:
    response.headers.setdefault("Set-Cookie", []).append(
        "%s=%s; Path=/; HttpOnly; SameSite=Strict" % (auth.COOKIE, token))


def _clear_session_cookie(response: Response) -> None:
    response.headers.setdefault("Set-Cookie", []).append(
        "%s=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict" % auth.COOKIE)


def _address(request) -> str:
    return str((request.client_addr or ("?",))[0])


def build(web: Web) -> Microdot:
    app = Microdot()

    @app.before_request
    async def gate(request):
        path = request.path
        if not auth.host_allowed(request.headers.get("Host")):
            return "Adresse de la passerelle attendue (pas un nom)", 421
        if request.method == "POST" and (
                request.headers.get("Transfer-Encoding")
                or (request.content_length <= 0
                    and str(request.headers.get("Content-Type", "")).startswith("multipart/"))):
            return "Longueur de la requête requise", 411
        if request.content_length > FORM_LIMIT and path not in UPLOAD_ROUTES:
            return "Requête trop grande", 413
        session = web.sessions.get(request.cookies.get(auth.COOKIE))
        request.g.session = session
        if path in PUBLIC:
            return None
        if session is None:
            if request.method == "GET" and not path.startswith(("/events", "/ws", "/api/")) \
                    and "." not in path.rsplit("/", 1)[-1]:
                return redirect("/connexion")
            return "Session requise", 401
        if request.method == "POST":
            token = request.headers.get("X-CSRF-Token")
            if token is None and request.form is not None:
                token = request.form.get("csrf")
            if not auth.same_origin(request.headers, request.headers.get("Host")) \
                    or not auth.csrf_ok(session, token):
                log.warning("refused a %s %s without the page's origin and token (from %s)",
                            request.method, path, _address(request))
                return T["csrf"], 403
        if session.must_change_password and path != PASSWORD_PAGE:
            return redirect(PASSWORD_PAGE)
        return None

    @app.after_request
    async def headers(request, response):
        if response is Response.already_handled:      # a WebSocket: nothing more to send
            return response
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            "connect-src 'self'; frame-ancestors 'none'; form-action 'self'")
        return response

    @app.errorhandler(404)
    async def not_found(request):
        if web.sessions.get(request.cookies.get(auth.COOKIE)) is None:
            return redirect("/connexion")
        return "Page introuvable", 404

    # --- login ---------------------------------------------------------------------------------

    def login_page(message: str | None = None, status: int = 200, user: str = ""):
        err = '<p class="banner error" role="alert">%s</p>' % h(message) if message else ""
        body = ('<h1>%s</h1>%s<form method="post" action="/connexion">'
                '<label class="field"><span>%s</span><input name="user" value="%s" '
                'autocomplete="username" required></label>'
                '<label class="field"><span>%s</span><input name="password" type="password" '
                'autocomplete="current-password" required></label>'
                '<button>%s</button></form>'
                % (h(T["login.title"]), err, h(T["login.user"]), h(user),
                   h(T["login.password"]), h(T["login.submit"])))
        return _html(bare(T["login.title"], body), status)

    @app.get("/connexion")
    async def login_form(request):
        if request.g.session is not None:
            return redirect("/")
        return login_page()

    @app.post("/connexion")
    async def login(request):
        if not auth.same_origin(request.headers, request.headers.get("Host")):
            return T["csrf"], 403
        # one try at a time per address: tries sent in parallel each wait for the one before
        # (and its verdict), so none slips past the back-off
        async with web.login_lock(_address(request)):
            return await _login(request)

    async def _login(request):
        address = _address(request)
        form = request.form or {}
        user = str(form.get("user") or "")
        wait = web.throttle.wait(address)
        if wait > 0:
            return login_page(T["login.wait"] % max(1, round(wait)), 429, user)
        settings = web.settings
        # hashing takes a tenth of a second: not on the loop that serves the other pages
        ok = await asyncio.to_thread(auth.login_ok, user, str(form.get("password") or ""),
                                     settings)
        if not ok:
            # the back-off applies from the next try: five wrong passwords are answered
            # "incorrect", the sixth waits
            web.throttle.failed(address, user)
            return login_page(T["login.failed"], 401, user)
        web.throttle.succeeded(address)
        web.sessions.close(request.cookies.get(auth.COOKIE))         # a new token at login
        factory = auth.is_factory(settings.web_password_hash)
        session = web.sessions.open(user, must_change_password=factory)
        log.info("%s logged in from %s%s", user, address,
                 " (factory password: must change it)" if factory else "")
        response = redirect(PASSWORD_PAGE if factory else "/")
        _set_session_cookie(response, session.token)
        return response

    @app.post("/deconnexion")
    async def logout(request):
        web.sessions.close(request.g.session.token)
        response = redirect("/connexion")
        _clear_session_cookie(response)
        return response

    # --- the password --------------------------------------------------------------------------

    def password_page(request, errors=None, status=200):
        s = request.g.session
        errors = errors or {}
        forced = ('<p class="banner warn" role="alert">%s</p>' % h(T["password.forced"])
                  if s.must_change_password else "")
        body = ('<h1>%s</h1>%s<form method="post" action="%s">%s%s%s%s<button>%s</button>'
                '</form>' % (h(T["password.title"]), forced, PASSWORD_PAGE, hidden_csrf(s.csrf),
                             layout.field("current", T["password.current"], "",
                                          T.get(errors.get("current", "")), "password"),
                             layout.field("new", T["password.new"], "",
                                          T.get(errors.get("new", "")), "password",
                                          ' minlength="%d"' % auth.MIN_PASSWORD),
                             layout.field("again", T["password.again"], "",
                                          T.get(errors.get("again", "")), "password"),
                             h(T["password.submit"])))
        if s.must_change_password:
            return _html(bare(T["password.title"], body), status)
        return web.page(request, T["password.title"], body, "/systeme")

    @app.get(PASSWORD_PAGE)
    async def password_form(request):
        return password_page(request)

    @app.post(PASSWORD_PAGE)
    async def password_change(request):
        s = request.g.session
        form = request.form or {}
        current, new, again = (str(form.get(k) or "") for k in ("current", "new", "again"))
        settings = web.settings
        async with web.login_lock(_address(request)):
            if web.throttle.wait(_address(request)) > 0:
                return password_page(request, {"current": "password.wrong"}, 429)
            ok = await asyncio.to_thread(auth.login_ok, s.user, current, settings)
            if not ok:
                web.throttle.failed(_address(request), s.user)
        if not ok:
            return password_page(request, {"current": "password.wrong"}, 400)
        problems = auth.new_password_problems(new, again)
        if problems:
            return password_page(request, problems, 400)
        digest = await asyncio.to_thread(auth.make_hash, new)
        await web.bridge.disk(web.service.store.update, {"Web_PasswordHash": digest}, "web")
        web.sessions.close_all(keep=None)            # every session, this one too: log in again
        session = web.sessions.open(s.user, must_change_password=False)
        session.flash.append(("info", T["password.done"]))
        log.warning("the web password was changed by %s from %s", s.user, _address(request))
        response = redirect("/")
        _set_session_cookie(response, session.token)
        return response

    # --- live ------------------------------------------------------------------------------------

    def _stream_for(request, last_id=None):
        """The events after the page's snapshot; None (the page must be rendered again) when
        they are not all kept, or the page was rendered by an earlier run of this process
        (its numbers are not these)."""
        boot = request.args.get("boot")
        if boot and boot != web.boot:
            return None
        since = last_id or request.args.get("since")
        return web.hub.open(int(since) if since and since.isdigit() else None)

    @app.get("/events")
    async def events(request):
        stream = _stream_for(request, request.headers.get("Last-Event-ID"))

        async def body():
            if stream is None:                  # rendered too long ago: render it again
                yield _sse("reload", {}, None)
                return
            try:
                yield "retry: 2000\n\n"
                yield _sse("hello", {"init": web.view.initialising()}, None)
                while True:
                    item = await stream.get(KEEPALIVE)
                    if item is None:
                        yield ": keep-alive\n\n"
                        continue
                    if stream.dropped:
                        stream.dropped = False
                        yield _sse("reload", {}, None)
                    name, data, n = item
                    yield _sse(name, data, n)
            finally:
                stream.close()

        return body(), 200, {"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                             "X-Accel-Buffering": "no"}

    @app.get("/ws")
    async def live(request):
        """The pages' live channel: a WebSocket, not an event stream, because a browser opens
        at most six HTTP/1.1 connections to a host and each stream holds one: a seventh tab
        would hang. The same events as /events, as JSON messages {"e", "d", "n"}."""
        if not auth.same_origin(request.headers, request.headers.get("Host")):
            return T["csrf"], 403
        stream = _stream_for(request)
        ws = await websocket_upgrade(request)
        if stream is None:
            await ws.send(_message("reload", {}, None))
            await ws.close()
            return Response.already_handled

        async def read():                   # pings, and the end of the connection
            while True:
                await ws.receive()

        reader = asyncio.ensure_future(read())
        try:
            await ws.send(_message("hello", {"init": web.view.initialising()}, None))
            while not reader.done():
                item = await stream.get(KEEPALIVE)
                if item is None:
                    await ws.send(_message("keepalive", {}, None))
                    continue
                if stream.dropped:
                    stream.dropped = False
                    await ws.send(_message("reload", {}, None))
                await ws.send(_message(*item))
        except (OSError, WebSocketError):
            pass
        finally:
            stream.close()
            reader.cancel()
            try:
                await ws.close()
            except Exception:
                pass
        return Response.already_handled

    @app.get("/favicon.ico")
    async def favicon(request):
        return "", 204

    @app.get("/static/<name>")
    async def static(request, name):
        if not STATIC_NAME.fullmatch(name) or not layout.has_static(name):
            return "Introuvable", 404
        kind = "text/css" if name.endswith(".css") else "text/javascript"
        return Response(layout.static_text(name), headers={
            "Content-Type": kind + "; charset=utf-8", "Cache-Control": "private, max-age=300"})

    layout.load_static()
    from .pages import register_all
    register_all(app, web)
    return app


def _message(name: str, data, n) -> str:
    return json.dumps({"e": name, "d": data, "n": n}, ensure_ascii=False, default=str)


def _sse(name: str, data, n) -> str:
    head = "event: %s\n" % name
    if n is not None:
        head += "id: %d\n" % n
    return head + "data: %s\n\n" % json.dumps(data, ensure_ascii=False, default=str)
