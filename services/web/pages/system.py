"""*Redémarrer* (manual 10.6, with confirmation) and the INSTALL button (manual 11: a short
press connects and deposits the parameters file, a long press restarts the gateway)."""
from __future__ import annotations

from urllib.parse import urlsplit

from microdot import redirect

from ..layout import h, hidden_csrf
from ..texts import T


def register(app, web) -> None:
    @app.get("/redemarrer")
    async def reboot_page(request):
        if request.args.get("en-cours"):
            # after the POST (a reload here asks for nothing again): wait, then Accueil
            body = ('<p class="banner warn" id="restarting" data-reconnect="/">%s</p>'
                    % h(T["banner.restart_needed"]))
            return web.page(request, T["menu.reboot"], body, "/redemarrer")
        body = ('<p>%s</p><form method="post" action="/redemarrer" id="reboot-form">%s'
                '<button id="reboot" data-confirm="%s">%s</button></form>'
                % (h(T["reboot.text"]), hidden_csrf(request.g.session.csrf),
                   h(T["reboot.confirm"]), h(T["menu.reboot"])))
        return web.page(request, T["menu.reboot"], body, "/redemarrer")

    @app.post("/redemarrer")
    async def reboot(request):
        _, error = await web.command("uplink", "reboot", {"reason": "web"})
        if error:
            return web.done(request, "/redemarrer", error)
        return redirect("/redemarrer?en-cours=1")

    @app.post("/bouton")
    async def button(request):
        press = str((request.form or {}).get("press") or "")
        if press not in ("short", "long"):
            return "press: short or long", 400
        _, error = await web.command("acquisition", "button", {"press": press})
        s = request.g.session
        if error:
            s.flash.append(error)
        else:
            s.flash.append(("info", T["banner.restart_needed"] if press == "long"
                            else T["connection.started"]))
        back = urlsplit(request.headers.get("Referer") or "").path
        return redirect(back if back.startswith("/") and not back.startswith("//") else "/")
