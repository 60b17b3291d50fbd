"""The frame every page shares: the manual's menu on the left, the banners, the front panel,
the theme; and small HTML helpers. Every value put in a page goes through :func:`h`.
"""
from __future__ import annotations

import html
from pathlib import Path

from .texts import T

STATIC = Path(__file__).parent / "static"

#: The menu (manual 10): (path, text key, children).
MENU = (
    ("/", "menu.home", ()),
    ("/reseau", "menu.network", ()),
    ("/installation/detection", "menu.installation", (
        ("/installation/detection", "menu.detection"),
        ("/installation/connexion", "menu.connection"))),
    ("/supervision/modem", "menu.supervision", (
        ("/supervision/modem", "menu.modem"),
        ("/supervision/compteurs", "menu.meters"),
        ("/supervision/valeurs", "menu.values"),
        ("/supervision/journal", "menu.journal"))),
    ("/mise-a-jour", "menu.update", ()),
    ("/systeme", "menu.system", ()),
    ("/redemarrer", "menu.reboot", ()),
)

LED_NAMES = ("ACTIVITY", "TIC1", "TIC2", "TIC3")


def h(value) -> str:
    """``value`` as HTML text (None as empty)."""
    return "" if value is None else html.escape(str(value), quote=True)


_STATIC: dict[str, str] = {}


def load_static() -> None:
    """Read the assets once (at start, before the page is served: never on a request)."""
    for path in STATIC.iterdir():
        if path.suffix in (".js", ".css"):
            _STATIC[path.name] = path.read_text(encoding="utf-8")


def static_text(name: str) -> str:
    if not _STATIC:
        load_static()
    return _STATIC[name]


def has_static(name: str) -> bool:
    if not _STATIC:
        load_static()
    return name in _STATIC


def _menu(active: str) -> str:
    items = []
    for path, key, children in MENU:
        here = active == path or any(active == c for c, _ in children)
        sub = ""
        if children:
            sub = "<ul>%s</ul>" % "".join(
                '<li><a href="%s"%s>%s</a></li>' % (c, ' aria-current="page"' if active == c
                                                   else "", h(T[k])) for c, k in children)
        items.append('<li class="%s"><a href="%s"%s>%s</a>%s</li>' % (
            "here" if here else "", path, ' aria-current="page"' if active == path else "",
            h(T[key]), sub))
    return '<nav class="menu"><ul>%s</ul></nav>' % "".join(items)


def _panel(leds: dict, csrf: str) -> str:
    lamps = "".join(
        '<li><span class="led %s" data-led="%s" title="%s"></span>%s</li>'
        % (h(leds.get(n, "off")), n, h(T["led." + leds.get(n, "off")]), n) for n in LED_NAMES)
    return ('<section class="panel" aria-label="%s"><ul class="leds">%s</ul>'
            '<form method="post" action="/bouton" class="install">'
            '<input type="hidden" name="csrf" value="%s">'
            '<span>%s</span>'
            '<button name="press" value="short">%s</button>'
            '<button name="press" value="long" data-confirm="%s">%s</button></form>'
            '</section>' % (h(T["leds"]), lamps, h(csrf), h(T["button.install"]),
                            h(T["button.short"]), h(T["button.long.confirm"]),
                            h(T["button.long"])))


def page(title: str, body: str, *, active: str, csrf: str, initialising: bool,
         leds: dict, flash=(), script: str = "", since: int = 0, boot: str = "") -> str:
    """A whole page of the logged-in part."""
    banners = ['<p class="banner init" id="banner-init"%s>%s</p>'
               % ("" if initialising else " hidden", h(T["banner.init"])),
               '<p class="banner offline" id="banner-offline" hidden>%s</p>'
               % h(T["banner.offline"])]
    banners += ['<p class="banner %s" role="status">%s</p>' % (h(kind), h(text))
                for kind, text in flash]
    theme = ('<label class="theme">%s <select id="theme">%s</select></label>'
             % (h(T["theme"]), "".join('<option value="%s">%s</option>' % (v, h(T["theme." + v]))
                                       for v in ("system", "light", "dark"))))
    return """<!doctype html>
<html lang="fr"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf" content="%(csrf)s">
<meta name="since" content="%(since)d">
<meta name="boot" content="%(boot)s">
<title>%(title)s - ticgw</title>
<link rel="stylesheet" href="/static/style.css">
<script src="/static/app.js" defer></script>%(script)s
</head><body>
<header><span class="brand">ticgw</span><h1>%(title)s</h1>%(theme)s
<form method="post" action="/deconnexion" class="logout"><input type="hidden" name="csrf"
value="%(csrf)s"><button>%(logout)s</button></form></header>
<div class="frame">%(menu)s<main>%(banners)s%(body)s</main>%(panel)s</div>
</body></html>
""" % {"csrf": h(csrf), "title": h(title), "script": script, "theme": theme,
       "logout": h(T["menu.logout"]), "menu": _menu(active), "banners": "".join(banners),
       "body": body, "panel": _panel(leds, csrf), "since": since, "boot": h(boot)}


def bare(title: str, body: str) -> str:
    """A page outside the session (login, password change): its style inline, no script."""
    return """<!doctype html>
<html lang="fr"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>%s - ticgw</title><style>%s</style></head>
<body class="bare"><main class="login">%s</main></body></html>
""" % (h(title), static_text("style.css"), body)


def table(headers, rows, attrs: str = "") -> str:
    head = "".join("<th>%s</th>" % h(x) for x in headers)
    body = "".join("<tr>%s</tr>" % "".join("<td>%s</td>" % h(c) for c in r) for r in rows)
    return "<table%s><thead><tr>%s</tr></thead><tbody>%s</tbody></table>" % (attrs, head, body)


def field(name: str, label: str, value, error: str | None = None, kind: str = "text",
          extra: str = "") -> str:
    """A form field with its label and, when the value was refused, the reason next to it."""
    err = ('<span class="error" id="err-%s">%s</span>' % (h(name), h(error))) if error else ""
    return ('<label class="field%s"><span>%s</span><input type="%s" name="%s" value="%s"%s%s>'
            '%s</label>' % (" bad" if error else "", h(label), kind, h(name), h(value),
                            ' aria-invalid="true" aria-describedby="err-%s"' % h(name)
                            if error else "", extra, err))


def hidden_csrf(csrf: str) -> str:
    return '<input type="hidden" name="csrf" value="%s">' % h(csrf)
