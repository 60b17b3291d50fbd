"""*Réseau* (manual 10.2, *Configuration réseau*): the site identifier (or *automatique*), the
connection mode, Ethernet, the GPRS modem, the FTP server and its seven directories, the Web
Services; *Valider* saves the keys that changed, and the page then says a restart is needed.

Secrets (every key declared ``secret``) never reach the browser: their field is empty, left
empty it keeps the value, *Effacer* empties it. A refused value is shown next to its field,
in French (:func:`reason_fr` translates the configuration's reasons), and nothing is written.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from microdot import redirect

from ticgw.config import BY_NAME, KEYS, ConfigError, read_dir

from .. import layout
from ..layout import h, hidden_csrf
from ..texts import T

log = logging.getLogger("web.network")


#: Keys whose value never reaches the browser: every key declared secret, and these three
#: whatever their declaration says.
SECRETS = frozenset({k.name for k in KEYS if k.secret}
                    | {"FTP_Password", "GPRS_Password", "SIM_Pin"})


@dataclass(frozen=True)
class Field:
    key: str
    label: str                  # text key
    kind: str = "text"          # text, check, radio, secret


#: The page: (legend text key, fields), in the manual's order.
SECTIONS = (
    ("network.site", (Field("Site_Id", "network.site_id"),
                      Field("Site_IdAuto", "network.site_auto", "check"))),
    ("network.mode", (Field("Connection_Mode", "network.mode", "radio"),)),
    ("network.ethernet", (Field("ETH_Address", "network.eth_address"),
                          Field("ETH_Mask", "network.eth_mask"),
                          Field("ETH_Gateway", "network.eth_gateway"),
                          Field("ETH_Dns", "network.eth_dns"))),
    ("network.modem", (Field("GPRS_Number", "network.gprs_number"),
                       Field("GPRS_Apn", "network.gprs_apn"),
                       Field("GPRS_Login", "network.gprs_login"),
                       Field("GPRS_Password", "network.gprs_password", "secret"),
                       Field("SIM_Pin", "network.sim_pin", "secret"),
                       Field("Modem_Port", "network.modem_port"))),
    ("network.ftp", (Field("FTP_Server", "network.ftp_server"),
                     Field("FTP_Port", "network.ftp_port"),
                     Field("FTP_Login", "network.ftp_login"),
                     Field("FTP_Password", "network.ftp_password", "secret"),
                     Field("FTP_Tls", "network.ftp_tls", "check"),
                     Field("FTP_TlsFingerprint", "network.ftp_tls_fingerprint"),
                     Field("FTP_TlsCaFile", "network.ftp_tls_ca"))),
    ("network.dirs", (Field("FTP_DirConfig", "network.dir_config"),
                      Field("FTP_DirDef", "network.dir_def"),
                      Field("FTP_DirData", "network.dir_data"),
                      Field("FTP_DirAlarm", "network.dir_alarm"),
                      Field("FTP_DirCmd", "network.dir_cmd"),
                      Field("FTP_DirLog", "network.dir_log"),
                      Field("FTP_DirBin", "network.dir_bin"))),
    ("network.webservices", (Field("WebService_Enable", "network.ws_enable", "check"),
                             Field("WebService_Url", "network.ws_url"))),
)
FIELDS = tuple(f for _, fields in SECTIONS for f in fields)
FIELD_KEYS = frozenset(f.key for f in FIELDS)
MODES = (("ethernet", "network.mode.ethernet"), ("modem", "network.mode.modem"))


# --- the configuration's reasons in French ---------------------------------------------------

def _value(shown: str) -> str:
    """A value as the reasons show it (``_show``: plain, or quoted when it has spaces)."""
    if len(shown) >= 2 and shown[0] == shown[-1] and shown[0] in "'\"":
        shown = shown[1:-1]
    return "« %s »" % shown


_DOCS = {
    "letters, digits, '-', '_' or '.', at most 40": "reason.doc.site",
    "digits, '*', '#' or '+'": "reason.doc.dial",
    "4 to 8 digits": "reason.doc.pin",
    "a user name without spaces or ':'": "reason.doc.user",
    "letters and digits": "reason.doc.serial",
}

#: (pattern of an English reason, text key, which groups are values to quote)
_REASONS = (
    (r"contains control characters", "reason.control", ()),
    (r"contains characters outside Latin-1", "reason.latin1", ()),
    (r"is (\d+) characters long, at most (\d+) allowed", "reason.too_long", ()),
    (r"is empty; expected .*", "reason.empty", ()),
    (r"(.+) is not valid: expected (.+)", "reason.pattern", (1,)),
    (r"(.+) is not a whole number \(expected (-?\d+)\.\.(-?\d+)\)", "reason.not_int", (1,)),
    (r"(-?\d+) is out of range (-?\d+)\.\.(-?\d+)", "reason.range", ()),
    (r"(.+) is not 0 or 1", "reason.bool", (1,)),
    (r"(.+) is not one of: (.+)", "reason.choice", (1,)),
    (r"(.+) is not an IPv4 address \(a\.b\.c\.d\)", "reason.ipv4", (1,)),
    (r"(.+) is not a network mask .*", "reason.netmask", (1,)),
    (r"(.+) is not a host name or IP address", "reason.host", (1,)),
    (r"(.+): port must be 1\.\.65535", "reason.host_port", (1,)),
    (r"(.+) is not an http:// or https:// URL", "reason.url", (1,)),
    (r"(.+) has a port out of range 1\.\.65535", "reason.url_port", (1,)),
    (r"(.+) must not contain '\.', '\.\.', '//' or backslashes", "reason.ftp_dir", (1,)),
    (r"(.+) is not a directory", "reason.not_dir", (1,)),
    (r"is not SHA-256 of the server's certificate.*", "reason.fingerprint", ()),
    (r"(.+) must be an absolute path.*", "reason.abs_path", (1,)),
    (r"(.+) must be a plain file name, without a directory", "reason.file_name", (1,)),
    (r"(.+) is neither a device path .*", "reason.serial", (1,)),
    (r"(.+) is not auto or one of (.+)", "reason.baud", (1,)),
    (r"(.+) is not ipc://PATH or tcp://HOST:PORT", "reason.endpoint", (1,)),
    (r"(.+) is not HOST:PORT with a port 1\.\.65535", "reason.listen", (1,)),
    (r"(.+): (.+) is not an IP address or host name", "reason.listen_host", (1, 2)),
    (r"is not a CURVE key .*", "reason.z85", ()),
    (r"is not .*, (\d+) hexadecimal digits", "reason.hex", ()),
    (r"is not a password hash .*", "reason.password_hash", ()),
    (r"is empty: give the site identifier.*", "reason.site_empty", ()),
    (r"an automatic site identifier needs the Web Services.*", "reason.site_auto", ()),
    (r"is empty, but WebService_Enable=1 needs the Web Services URL", "reason.ws_url", ()),
    (r"is empty, but Connection_Mode=modem needs .*", "reason.modem_port", ()),
    (r"is empty, but BIN_FileName=(.+) needs the package's SHA-256", "reason.bin_checksum", ()),
    (r"is empty, but (.+?) uses? tcp://, which needs CURVE keys", "reason.curve", ()),
    (r"does not belong to Bus_CurveSecretKey.*", "reason.curve_pair", ()),
    (r"unknown key", "reason.unknown_key", ()),
)


def reason_fr(reason: str) -> str:
    """A configuration problem's reason (plain English, ticgw.config) in French; a reason not
    known here stays as it is."""
    for pattern, key, quoted in _REASONS:
        m = re.fullmatch(pattern, reason, re.S)
        if not m:
            continue
        args = [(_value(g) if i in quoted else g) for i, g in enumerate(m.groups(), 1)]
        if key == "reason.pattern":
            args[1] = T[_DOCS[args[1]]] if args[1] in _DOCS else args[1]
        return T[key] % tuple(args) if args else T[key]
    return reason


def problem_fr(problem) -> str:
    """``file, key : reason`` in French, for a list of problems."""
    where = ", ".join(p for p in (problem.file, problem.key) if p)
    return "%s : %s" % (where, reason_fr(problem.reason)) if where else reason_fr(problem.reason)


def restart_banner(text: str) -> str:
    """The manual's message after *Valider*: a restart is needed; with a link to *Redémarrer*."""
    return ('<p class="banner warn" role="status" id="saved">%s <a href="/redemarrer" '
            'id="restart-link">%s</a></p>' % (h(text), h(T["network.restart"])))


# --- reading and comparing ---------------------------------------------------------------------

def read_current(store):
    """(settings, problems): the configuration on disk (another process may have written it),
    or the one in force when the disk's does not load. Disk work: call it in the worker."""
    loaded = read_dir(store.dir)
    return (loaded.settings if loaded.settings is not None else store.settings), \
        list(loaded.problems)


def normal(key: str, text: str) -> str:
    """``text`` as the file would hold it (``021`` -> ``21``); unchanged when it does not
    parse (the store then says why)."""
    k = BY_NAME[key]
    try:
        return k.type.format(k.type.parse(text))
    except ValueError:
        return text


def form_changes(form, settings) -> dict[str, str]:
    """The keys of the page whose submitted value differs from ``settings``'."""
    changes = {}
    for f in FIELDS:
        key = f.key
        if f.kind == "check":
            # a hidden 0 comes before the box: a form without the field changes nothing
            sent = form.getlist(key) if hasattr(form, "getlist") else [form.get(key)]
            sent = [v for v in sent if v is not None]
            if not sent:
                continue
            new = "1" if "1" in sent else "0"
        elif f.kind == "secret":
            if form.get("clear." + key):
                new = ""
            else:
                new = str(form.get(key) or "").strip()
                if not new:
                    continue                    # left empty: the secret is kept
        elif key not in form:
            continue
        else:
            new = str(form.get(key) or "").strip()
        if normal(key, new) != settings.text(key):
            changes[key] = new
    return changes


# --- the page ------------------------------------------------------------------------------------

def _check(f: Field, on: bool, error: str | None) -> str:
    err = ('<span class="error" id="err-%s">%s</span>' % (h(f.key), h(error))) if error else ""
    return ('<label class="field%s"><span>%s</span><input type="hidden" name="%s" value="0">'
            '<input type="checkbox" name="%s" value="1" id="f-%s"%s style="justify-self:start">'
            '%s</label>' % (" bad" if error else "", h(T[f.label]), h(f.key), h(f.key),
                            h(f.key), " checked" if on else "", err))


def _radio(f: Field, value: str, error: str | None) -> str:
    err = ('<span class="error" id="err-%s">%s</span>' % (h(f.key), h(error))) if error else ""
    options = " ".join(
        '<label><input type="radio" name="%s" value="%s" id="f-%s-%s"%s> %s</label>'
        % (h(f.key), h(v), h(f.key), h(v), " checked" if value == v else "", h(T[label]))
        for v, label in MODES)
    return ('<div class="field%s" role="radiogroup" aria-label="%s"><span>%s</span>'
            '<span>%s</span>%s</div>' % (" bad" if error else "", h(T[f.label]), h(T[f.label]),
                                         options, err))


def _secret(f: Field, is_set: bool, error: str | None) -> str:
    extra = (' id="f-%s" placeholder="%s" autocomplete="new-password"'
             % (h(f.key), h(T["network.secret_set" if is_set else "network.secret_unset"])))
    html = layout.field(f.key, T[f.label], "", error, "password", extra)
    if is_set:
        html += ('<label class="field"><span></span><span><input type="checkbox" name="clear.%s" '
                 'value="1" id="clear-%s"> %s</span></label>'
                 % (h(f.key), h(f.key), h(T["network.secret_clear"])))
    return html


def form_html(csrf: str, values: dict, secrets_set: dict, errors: dict) -> str:
    """The form: ``values`` key -> text (never a secret's), ``secrets_set`` key -> whether the
    secret has a value, ``errors`` key -> French reason (or the retype note)."""
    parts = ['<form method="post" action="/reseau" id="network-form" autocomplete="off">',
             hidden_csrf(csrf)]
    for legend, fields in SECTIONS:
        parts.append("<fieldset><legend>%s</legend>" % h(T[legend]))
        for f in fields:
            error = errors.get(f.key)
            if f.kind == "check":
                parts.append(_check(f, values.get(f.key) == "1", error))
            elif f.kind == "radio":
                parts.append(_radio(f, values.get(f.key, ""), error))
            elif f.kind == "secret":
                parts.append(_secret(f, secrets_set.get(f.key, False), error))
            else:
                parts.append(layout.field(f.key, T[f.label], values.get(f.key, ""), error, "text",
                                          ' id="f-%s" spellcheck="false"' % h(f.key)))
        parts.append("</fieldset>")
    parts.append('<p><button id="validate">%s</button></p></form>' % h(T["validate"]))
    return "".join(parts)


def register(app, web) -> None:
    store = web.service.store

    def render(request, values, secrets_set, errors=None, top="", flash=(), status=200):
        body = top + form_html(request.g.session.csrf, values, secrets_set, errors or {})
        response = web.page(request, T["network.title"], body, "/reseau", flash)
        response.status_code = status
        return response

    @app.get("/reseau")
    async def network(request):
        settings, problems = await web.bridge.disk(read_current, store)
        values = {f.key: settings.text(f.key) for f in FIELDS if f.key not in SECRETS}
        secrets_set = {f.key: bool(settings.text(f.key)) for f in FIELDS if f.key in SECRETS}
        top = ""
        if getattr(request.g.session, "network_saved", False):
            request.g.session.network_saved = False
            top += restart_banner(T["banner.saved_restart"])
        if problems:
            top += ('<div class="banner error" role="alert"><p>%s</p><ul>%s</ul></div>'
                    % (h(T["network.disk_problems"]),
                       "".join("<li>%s</li>" % h(problem_fr(p)) for p in problems)))
        return render(request, values, secrets_set, top=top)

    @app.post("/reseau")
    async def save(request):
        form = request.form or {}
        settings, _ = await web.bridge.disk(read_current, store)
        changes = form_changes(form, settings)
        if not changes:
            return web.done(request, "/reseau", ok=T["banner.unchanged"])
        try:
            await web.bridge.disk(store.update, changes, "web")
        except ConfigError as e:
            errors, others = {}, []
            for p in e.problems:
                if p.key in FIELD_KEYS and p.key not in errors:
                    errors[p.key] = reason_fr(p.reason)
                else:
                    others.append(problem_fr(p))
            for key in SECRETS & FIELD_KEYS:        # typed, not saved, not sent back
                if form.get(key) and key not in errors:
                    errors[key] = T["network.secret_retype"]
            values = {f.key: str(form.get(f.key) or "").strip() for f in FIELDS
                      if f.key not in SECRETS}
            values.update({f.key: changes.get(f.key, settings.text(f.key)) for f in FIELDS
                           if f.kind == "check"})
            secrets_set = {f.key: bool(settings.text(f.key)) for f in FIELDS
                           if f.key in SECRETS}
            log.info("network settings refused: %s", "; ".join(str(p) for p in e.problems))
            return render(request, values, secrets_set, errors,
                          flash=[("error", T["network.refused"])] +
                          [("error", text) for text in others], status=400)
        except OSError as e:
            log.error("network settings could not be written: %s", e)
            return web.done(request, "/reseau",
                            ("error", T["network.write_failed"] % (e.strerror or e)))
        log.warning("network settings changed from the web page by %s: %s",
                    request.g.session.user, ", ".join(sorted(changes)))
        request.g.session.network_saved = True
        return redirect("/reseau")
