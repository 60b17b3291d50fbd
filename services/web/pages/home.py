"""*Accueil* (manual 10.1): the welcome text, the software version and its date; and, beyond
the manual, each service's state and version, live."""
from __future__ import annotations

from ticgw import __version__, registry

from ..layout import h, table
from ..texts import T


def services_table(view_snapshot) -> str:
    rows = []
    for spec in registry.SERVICES:
        st = view_snapshot["status"].get(spec.name) or {}
        rows.append((spec.name, st.get("activity") or T["unknown"], st.get("version") or ""))
    html = table((T["home.service"], T["home.state"], T["home.version"]), rows,
                 ' id="services"')
    for spec in registry.SERVICES:               # the live script finds the cells by service
        html = html.replace("<tr><td>%s</td>" % spec.name,
                            '<tr data-service="%s"><td>%s</td>' % (spec.name, spec.name), 1)
    return html


def register(app, web) -> None:
    @app.get("/")
    async def home(request):
        snap = web.snapshot(request)
        info = web.service.release_info()
        body = ('<p class="welcome">%s</p><h2>%s</h2><dl class="facts">'
                '<dt>%s</dt><dd id="version">%s %s</dd>'
                '<dt>%s</dt><dd>%s</dd></dl><h2>%s</h2>%s'
                % (h(T["home.welcome"]), h(T["home.info"]), h(T["home.version"]),
                   h(info.get("version") or __version__), h(info.get("date") or ""),
                   h(T["home.site"]), h(web.settings.site), h(T["home.services"]),
                   services_table(snap)))
        return web.page(request, T["home.title"], body, "/")
