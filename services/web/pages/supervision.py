"""*Supervision* (manual 10.4): the modem, the meters, their live values, the journal.

- *Modem* (10.4.1): the manual's six fields (type, IMEI, SIM identifier, SIM state, signal
  level 1..31, modem state), and beyond it the technology (with the 2G/3G warning), operator,
  registration, the LTE signal (RSRP, RSRQ, SINR) and the signal over 24 h. Live: ``modem``.
- *Compteurs* (10.4.2): per input its state, serial number, family and definition file; the
  file in red when the ``_daq.ini`` file names it but the server's DEF directory lacks it
  (:mod:`..defs`). Live: the inputs' states, ``input`` (lost/found), ``detected``, ``config``.
- *Valeurs*: each meter's labels and values, updated in place (``values``), and its apparent
  power over 12 h (``power``), with a CSV download.
- *Journal*: the manual's Date / Heure GMT / Message table with a filter, rows added live;
  the whole journal as CSV.
"""
from __future__ import annotations

import csv
import io
import json
import os
import time
from datetime import datetime, timezone

from microdot import Response

from ticgw.config import N_INPUTS, file_name, read_dir
from ticgw.journal import Journal

from .. import defs
from ..layout import h
from ..texts import T


SCRIPTS = ('<script src="/static/chart.js" defer></script>'
           '<script src="/static/supervision.js" defer></script>')
#: Journal rows in the downloaded file, at most (the file is cut back past about 1 MB).
JOURNAL_CSV_ROWS = 100_000
#: The input states of the acquisition (statecharts/tic_input.py) the manual's sigils sum up.
STATE_SIGIL = {"identified": "✔", "reading": "✔", "lost": "✘", "silent": "✘", "absent": "✘",
               "opening": "…", "detecting": "…"}
MODEM_FIELDS = ("type", "imei", "iccid", "sim", "signal", "state", "technology", "operator",
                "registration", "rsrp", "rsrq", "sinr")


def _json_attr(value) -> str:
    return h(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def _t(key: str, default: str = "") -> str:
    return T.get(key, default)


# --- Modem ----------------------------------------------------------------------------------------

def rssi_dbm(rssi: int) -> int:
    """3GPP TS 27.007 +CSQ: 0 is -113 dBm or less, 31 is -51 dBm or more, 2 dB a step."""
    return -113 + 2 * int(rssi)


def _num(value, unit: str) -> str:
    if value is None:
        return T["supervision.none"]
    v = float(value)
    return ("%d %s" if v == int(v) else "%.1f %s") % (v, unit)


def modem_cells(st: dict) -> dict[str, tuple[str, str, bool]]:
    """Field -> (value text, note, bad) from the modem's status (service or live event)."""
    unknown = T["supervision.unknown"]
    cells = {}
    cells["type"] = (st.get("type") or unknown, "", False)
    cells["imei"] = (st.get("imei") or unknown, "", False)
    cells["iccid"] = (st.get("iccid") or unknown, "", False)
    sim = st.get("sim")
    cells["sim"] = (sim or unknown, _t("supervision.modem.sim." + str(sim)),
                    bool(sim) and sim != "READY")
    signal = st.get("signal")
    if signal is None:
        cells["signal"] = (T["supervision.modem.signal.unknown"], "", True)
    else:
        text = "%d (%s)" % (signal, T["supervision.modem.signal.dbm"] % rssi_dbm(signal))
        low = int(signal) < 10
        if low:
            text += " : " + T["supervision.modem.signal.low"]
        cells["signal"] = (text, "", low)
    state = st.get("state")
    cells["state"] = (state or unknown, _t("supervision.modem.state." + str(state)), False)
    cells["technology"] = (st.get("technology") or unknown, "", bool(st.get("warning")))
    cells["operator"] = (st.get("operator") or unknown, "", False)
    reg = st.get("registration")
    cells["registration"] = (_t("supervision.modem.registration." + str(reg), reg or unknown)
                             if reg else unknown, "", reg in ("denied", "searching"))
    for key, alt, unit in (("rsrp", "rsrp_dbm", "dBm"), ("rsrq", "rsrq_db", "dB"),
                           ("sinr", "sinr_db", "dB")):
        value = st.get(alt, st.get(key))
        cells[key] = (_num(value, unit), "", False)
    return cells


def modem_texts() -> dict:
    """What the live script needs to write the fields as the page does."""
    return {"unknown": T["supervision.unknown"], "none": T["supervision.none"],
            "signalUnknown": T["supervision.modem.signal.unknown"],
            "signalLow": T["supervision.modem.signal.low"],
            "dbm": T["supervision.modem.signal.dbm"],
            "warning": T["supervision.modem.warning"],
            "sim": {k: T["supervision.modem.sim." + k]
                    for k in ("READY", "SIM PIN", "SIM PUK", "SIM ERROR")},
            "state": {k: T["supervision.modem.state." + k]
                      for k in ("Standby", "Initialisation", "Connecté")},
            "registration": {k[len("supervision.modem.registration."):]: v
                             for k, v in T.items()
                             if k.startswith("supervision.modem.registration.")}}


def _facts(fields, cells) -> str:
    out = []
    for key, label, note in fields:
        text, extra, bad = cells[key]
        out.append('<dt>%s%s</dt><dd id="modem-%s"><span class="value%s">%s</span>'
                   '<small class="note" style="display:block">%s</small></dd>'
                   % (h(label), ' <small class="note">(%s)</small>' % h(note) if note else "",
                      key, " bad-value" if bad else "", h(text), h(extra)))
    return '<dl class="facts">%s</dl>' % "".join(out)


def modem_body(st: dict, history: list, history_error) -> str:
    cells = modem_cells(st)
    warning = st.get("warning")
    failure = st.get("failure")
    manual = (("type", T["supervision.modem.type"], ""),
              ("imei", T["supervision.modem.imei"], T["supervision.modem.imei.note"]),
              ("iccid", T["supervision.modem.iccid"], T["supervision.modem.iccid.note"]),
              ("sim", T["supervision.modem.sim"], ""),
              ("signal", T["supervision.modem.signal"], ""),
              ("state", T["supervision.modem.state"], ""))
    network = (("technology", T["supervision.modem.technology"], ""),
               ("operator", T["supervision.modem.operator"], ""),
               ("registration", T["supervision.modem.registration"], ""))
    lte = (("rsrp", T["supervision.modem.rsrp"], ""), ("rsrq", T["supervision.modem.rsrq"], ""),
           ("sinr", T["supervision.modem.sinr"], ""))
    points = [[p[0], p[1]] for p in history or () if isinstance(p, (list, tuple)) and len(p) >= 2]
    chart_opts = {"ymin": 0, "ymax": 31, "span": 24 * 3600, "step": 60, "threshold": 10,
                  "thresholdLabel": T["supervision.modem.chart.threshold"],
                  "empty": T["supervision.modem.chart.empty"], "decimals": 0}
    return (
        '<div id="modem" data-texts="%(texts)s">'
        '<p>%(intro)s</p>'
        '<p class="banner warn" id="modem-warning" role="status"%(warn_hidden)s>%(warning)s</p>'
        '<p class="banner error" id="modem-failure" role="status"%(fail_hidden)s>%(failure)s</p>'
        '%(manual)s<p class="note" id="modem-signal-note">%(signal_note)s</p>'
        '<h2>%(network_title)s</h2>%(network)s<h2>%(lte_title)s</h2>%(lte)s'
        '<h2>%(chart_title)s</h2>%(history_error)s'
        '<svg class="chart" id="signal-chart" role="img" aria-label="%(chart_label)s" '
        'data-points="%(points)s" data-options="%(opts)s"></svg></div>'
        % {"texts": _json_attr(modem_texts()), "intro": h(T["supervision.modem.intro"]),
           "warn_hidden": "" if warning else " hidden",
           "warning": h(T["supervision.modem.warning"] % (st.get("technology") or "", warning)
                        if warning else ""),
           "fail_hidden": "" if failure else " hidden", "failure": h(failure or ""),
           "manual": _facts(manual, cells), "signal_note": h(T["supervision.modem.signal.note"]),
           "network_title": h(T["supervision.modem.network"]), "network": _facts(network, cells),
           "lte_title": h(T["supervision.modem.lte"]), "lte": _facts(lte, cells),
           "chart_title": h(T["supervision.modem.chart"]),
           "history_error": ('<p class="banner error">%s</p>'
                             % h(T["supervision.modem.history.error"] % history_error[1])
                             if history_error else ""),
           "chart_label": h(T["supervision.modem.chart.label"]),
           "points": _json_attr(points), "opts": _json_attr(chart_opts)})


# --- Compteurs ------------------------------------------------------------------------------------

def _read_meters_disk(data_dir) -> dict:
    """The daq file's inputs (serial, definition file, whether used), its name and time, and
    what the uplink knows of the server's DEF directory. Read from the files each time: the
    acquisition (detection) and the uplink (server) write them from other processes."""
    config_dir = data_dir / "config"
    loaded = read_dir(config_dir)
    settings = loaded.settings
    site = loaded.site
    daq_name = file_name(site, "daq")
    try:
        daq_time = os.stat(config_dir / daq_name).st_mtime
    except OSError:
        daq_time = None
    inputs = {}
    if settings is not None:
        for t in settings.inputs:
            inputs[t.index] = {"used": t.used, "serial": t.serial, "def_file": t.def_file}
    return {"daq": daq_name, "daq_time": daq_time, "inputs": inputs,
            "server": defs.read(data_dir / "state")}


def meter_rows(status: dict | None, disk: dict) -> list[dict]:
    """One row per input: what the page and the live script show."""
    acq = (status or {}).get("inputs") or {}
    rows = []
    for n in range(1, N_INPUTS + 1):
        cfg = disk["inputs"].get(n) or {}
        a = acq.get(str(n)) or {}
        used = cfg.get("used", bool(a))
        if not used and not a:
            state = "unused"
        else:
            state = a.get("state") if status is not None else None
        state_text = (_t("supervision.meters.state.%s" % state, state)
                      if state else T["supervision.unknown"])
        sigil = STATE_SIGIL.get(state, "")
        serial = a.get("serial") or cfg.get("serial") or ""
        family = a.get("family") or ""
        if a.get("description"):
            family = "%s (%s)" % (family, a["description"]) if family else a["description"]
        name = cfg.get("def_file") or ""
        def_state = defs.state_of(name, disk["server"], disk["daq_time"]) if used else None
        if def_state is None:
            note = (T["supervision.meters.help.none"] % disk["daq"]) if used and a else ""
        elif def_state == defs.STALE:
            note = T["supervision.meters.def.stale"] % disk["daq"]
        else:
            note = T["supervision.meters.def.%s" % def_state]
        rows.append({"input": n, "name": "TIC%d" % n, "state": state or "", "sigil": sigil,
                     "stateText": state_text, "ok": sigil == "✔", "serial": serial,
                     "family": family, "definition": name, "defState": def_state or "",
                     "defNote": note})
    return rows


def meters_table(rows: list[dict]) -> str:
    head = "".join("<th>%s</th>" % h(T[k]) for k in (
        "supervision.meters.input", "supervision.meters.state", "supervision.meters.serial",
        "supervision.meters.family", "supervision.meters.definition"))
    body = []
    for r in rows:
        body.append(
            '<tr data-input="%d"><td>%s</td>'
            '<td class="state"><span class="sigil%s" aria-hidden="true">%s</span> '
            '<span class="state-text">%s</span></td>'
            '<td class="serial">%s</td><td class="family">%s</td>'
            '<td class="definition"><span class="def-name%s">%s</span> '
            '<small class="note def-note">%s</small></td></tr>'
            % (r["input"], h(r["name"]), " ok" if r["ok"] else (" bad-value" if r["sigil"] == "✘"
                                                               else ""),
               h(r["sigil"]), h(r["stateText"]), h(r["serial"]), h(r["family"]),
               " missing" if r["defState"] == defs.MISSING else "", h(r["definition"]),
               h(r["defNote"])))
    return ('<table id="meters"><thead><tr>%s</tr></thead><tbody>%s</tbody></table>'
            % (head, "".join(body)))


async def _meters(web):
    status, error = await web.command("acquisition", "status", timeout=3.0)
    disk = await web.bridge.disk(_read_meters_disk, web.service.data_dir)
    return meter_rows(status, disk), disk, error


# --- Valeurs --------------------------------------------------------------------------------------

def _hms(t) -> str:
    return datetime.fromtimestamp(float(t), timezone.utc).strftime("%H:%M:%S") if t else ""


def power_csv(series) -> str:
    out = io.StringIO()
    w = csv.writer(out, delimiter=";", lineterminator="\r\n")
    w.writerow((T["supervision.values.csv.time"], T["supervision.values.csv.power"]))
    for t, watts in series:
        stamp = datetime.fromtimestamp(float(t), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        w.writerow((stamp, ("%d" % watts) if float(watts) == int(watts) else "%g" % watts))
    return out.getvalue()


def values_section(n: int, meter: dict, values: dict | None, series) -> str:
    values = values or {}
    groups = values.get("groups") or []
    family = meter.get("family") or ""
    mode = meter.get("mode") or ""
    title = "TIC%d" % n + (" — %s" % family if family else "") + (
        " (%s)" % _t("supervision.values.mode." + mode, mode) if mode else "")
    label = "SINSTS" if mode == "standard" else "PAPP"
    rows = "".join('<tr data-label="%s"><td>%s</td><td>%s</td></tr>' % (h(g[0]), h(g[0]), h(g[1]))
                   for g in groups)
    opts = {"span": 12 * 3600, "step": 60, "empty": T["supervision.values.power.empty"],
            "decimals": 0}
    return (
        '<section class="meter" data-input="%(n)d"><h2>%(title)s</h2>'
        '<p class="banner error lost"%(lost_hidden)s>%(lost)s</p>'
        '<p class="note"><span>%(last)s</span> <span class="last" data-time="%(time)s">%(hms)s'
        '</span></p>'
        '<h3>%(power)s</h3>'
        '<svg class="chart power" id="power-%(n)d" role="img" aria-label="%(power_label)s" '
        'data-points="%(points)s" data-options="%(opts)s"></svg>'
        '<p><a class="csv" href="/valeurs.csv?input=%(n)d" download="valeurs_TIC%(n)d.csv">'
        '%(csv)s</a></p>'
        '<p class="none"%(none_hidden)s>%(none)s</p>'
        '<table class="values" id="values-%(n)d"><thead><tr><th>%(lab)s</th><th>%(val)s</th>'
        '</tr></thead><tbody>%(rows)s</tbody></table></section>'
        % {"n": n, "title": h(title),
           "lost_hidden": "" if values.get("state") == "lost" else " hidden",
           "lost": h(T["supervision.values.lost"]), "last": h(T["supervision.values.last"]),
           "time": h(values.get("time") or ""), "hms": h(_hms(values.get("time"))),
           "power": h(T["supervision.values.power"]),
           "power_label": h(T["supervision.values.power.label"] % label),
           "points": _json_attr([[t, w] for t, w in series]), "opts": _json_attr(opts),
           "csv": h(T["supervision.values.csv"]), "none_hidden": " hidden" if groups else "",
           "none": h(T["supervision.values.none"]), "lab": h(T["supervision.values.label"]),
           "val": h(T["supervision.values.value"]), "rows": rows})


# --- Journal --------------------------------------------------------------------------------------

def journal_csv(rows) -> str:
    out = io.StringIO()
    out.write("\ufeff")                       # the spreadsheet then reads it as UTF-8
    w = csv.writer(out, delimiter=";", lineterminator="\r\n")
    w.writerow((T["supervision.journal.date"], T["supervision.journal.hour"],
                T["supervision.journal.message"]))
    for r in rows:
        w.writerow(list(r)[:3])
    return out.getvalue()


def _read_journal(state_dir):
    return Journal(state_dir).tail(JOURNAL_CSV_ROWS)


def journal_body(rows) -> str:
    head = "".join("<th>%s</th>" % h(T[k]) for k in (
        "supervision.journal.date", "supervision.journal.hour", "supervision.journal.message"))
    body = "".join("<tr>%s</tr>" % "".join("<td>%s</td>" % h(c) for c in r) for r in rows)
    return (
        '<p>%s</p><div class="journal-tools">'
        '<label class="field"><span>%s</span><input type="search" id="journal-filter" '
        'placeholder="%s" autocomplete="off"></label>'
        '<p><span id="journal-count" data-template="%s"></span> — '
        '<a id="journal-download" href="/journal.csv" download="journal.csv">%s</a></p></div>'
        '<table id="journal" data-live="journal"><thead><tr>%s</tr></thead><tbody>%s</tbody>'
        '</table>'
        % (h(T["supervision.journal.intro"]), h(T["supervision.journal.filter"]),
           h(T["supervision.journal.filter.hint"]), h(T["supervision.journal.count"]),
           h(T["supervision.journal.download"]), head, body))


def _download(text: str, name: str) -> Response:
    return Response(text.encode("utf-8"), headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": 'attachment; filename="%s"' % name})


def register(app, web) -> None:
    @app.get("/supervision/modem")
    async def modem(request):
        st = web.snapshot(request)["status"].get("modem") or {}
        result, error = await web.command("modem", "history", timeout=3.0)
        history = (result or {}).get("points") or st.get("history") or []
        body = modem_body(st, history, error)
        return web.page(request, T["supervision.modem.title"], body, "/supervision/modem",
                        script=SCRIPTS)

    @app.get("/supervision/compteurs")
    async def meters(request):
        rows, disk, error = await _meters(web)
        flash = [("error", T["supervision.meters.error"] % error[1])] if error else []
        body = ('<div id="meters-page"><p>%s</p>%s<p class="note">%s<br>%s</p></div>'
                % (h(T["supervision.meters.intro"]), meters_table(rows),
                   h(T["supervision.meters.help.none"] % disk["daq"]),
                   h(T["supervision.meters.help.red"] % disk["daq"])))
        return web.page(request, T["supervision.meters.title"], body, "/supervision/compteurs",
                        flash, script=SCRIPTS)

    @app.get("/supervision/compteurs.json")
    async def meters_json(request):
        rows, _, error = await _meters(web)
        return Response(json.dumps({"rows": rows, "error": error[1] if error else None},
                                   ensure_ascii=False),
                        headers={"Content-Type": "application/json; charset=utf-8"})

    @app.get("/supervision/valeurs")
    async def values(request):
        snap = web.snapshot(request)
        status, _ = await web.command("acquisition", "status", timeout=3.0)
        acq = (status or {}).get("inputs") or {}
        used = [t.index for t in web.settings.inputs if t.used]
        shown = sorted(set(used) | {int(k) for k in snap["values"]})
        sections = []
        for n in shown:
            meter = dict(acq.get(str(n)) or {})
            meter.update({k: v for k, v in (snap["detected"].get(n) or {}).items()
                          if k in ("family", "mode") and v})
            sections.append(values_section(n, meter, snap["values"].get(n),
                                           web.view.power_series(n)))
        body = ('<div id="values-page"><p>%s</p>%s</div>'
                % (h(T["supervision.values.intro"]),
                   "".join(sections) or '<p>%s</p>' % h(T["supervision.values.no_input"])))
        return web.page(request, T["supervision.values.title"], body, "/supervision/valeurs",
                        script=SCRIPTS)

    @app.get("/valeurs.csv")
    async def values_csv(request):
        raw = str(request.args.get("input") or "")
        if not raw.isdigit() or not 1 <= int(raw) <= N_INPUTS:
            return T["supervision.values.bad_input"], 400, {
                "Content-Type": "text/plain; charset=utf-8"}
        n = int(raw)
        text = power_csv(web.view.power_series(n))
        return _download(text, "valeurs_TIC%d_%s.csv" % (n, time.strftime("%Y%m%d-%H%M%S",
                                                                            time.gmtime())))

    @app.get("/supervision/journal")
    async def journal(request):
        rows = web.snapshot(request)["journal"]
        return web.page(request, T["supervision.journal.title"], journal_body(rows),
                        "/supervision/journal", script=SCRIPTS)

    @app.get("/journal.csv")
    async def journal_download(request):
        rows = await web.bridge.disk(_read_journal, web.service.data_dir / "state")
        return _download(journal_csv(rows), "journal_%s.csv"
                         % time.strftime("%Y%m%d-%H%M%S", time.gmtime()))
