"""*Installation* (manual 10.2 and 10.3): *Détection des compteurs* (*Lancer*, *Détection en
cours*, the table Type / Description / *Détails* and the Etiquette / Valeur table seen at
detection) and *Connexion* (*Connecter*, and the Date / Heure GMT / Message table growing
live)."""
from __future__ import annotations

from ..layout import h, hidden_csrf, table
from ..texts import T



def _detection_table(inputs: dict) -> str:
    rows = []
    for key in sorted(inputs, key=lambda k: int(k)):
        i = inputs[key]
        family = i.get("family")
        details = ""
        if i.get("details"):
            details = ('<details><summary>%s</summary>%s</details>'
                       % (h(T["detection.details"]),
                          table((T["detection.label"], T["detection.value"]), i["details"])))
        rows.append('<tr data-input="%s"><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>'
                    % (h(key), h("TIC%s" % key), h(family or T["detection.none"]),
                       h(i.get("description") or ""), details))
    return ('<table id="detection"><thead><tr><th>%s</th><th>%s</th><th>%s</th><th>%s</th>'
            '</tr></thead><tbody>%s</tbody></table>'
            % (h(T["detection.input"]), h(T["detection.type"]), h(T["detection.description"]),
               h(T["detection.details"]), "".join(rows)))


def register(app, web) -> None:
    @app.get("/installation/detection")
    async def detection(request):
        result, error = await web.command("acquisition", "details")
        inputs = (result or {}).get("inputs") or {}
        running = (web.snapshot(request)["task"] or {}).get("task") == "Détection"
        body = ('<form method="post" action="/installation/detection">%s<button id="detect">'
                '%s</button> <span id="detecting" class="running"%s>%s</span></form>%s'
                % (hidden_csrf(request.g.session.csrf), h(T["detection.start"]),
                   "" if running else " hidden", h(T["detection.running"]),
                   _detection_table(inputs)))
        return web.page(request, T["detection.title"], body, "/installation/detection",
                        [error] if error else [])

    @app.post("/installation/detection")
    async def detect(request):
        _, error = await web.command("acquisition", "detect")
        return web.done(request, "/installation/detection", error)

    @app.get("/installation/connexion")
    async def connection(request):
        rows = web.snapshot(request)["journal"][-200:]
        body = ('<form method="post" action="/installation/connexion">%s<button id="connect">'
                '%s</button></form>%s'
                % (hidden_csrf(request.g.session.csrf), h(T["connection.start"]),
                   table((T["connection.date"], T["connection.hour"], T["connection.message"]),
                         rows, ' id="journal" data-live="journal"')))
        return web.page(request, T["connection.title"], body, "/installation/connexion")

    @app.post("/installation/connexion")
    async def connect(request):
        _, error = await web.command("uplink", "connect", {"reason": "web"})
        return web.done(request, "/installation/connexion", error, T["connection.started"])
