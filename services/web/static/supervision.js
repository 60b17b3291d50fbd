// ticgw: the Supervision pages live (Modem, Compteurs, Valeurs, Journal). Each part runs when
// its page's element is there; the texts come from the page (data-texts), never from here.
"use strict";
(function () {
  function $(id) { return document.getElementById(id); }
  function json(el, name) {
    try { return JSON.parse(el.getAttribute(name) || "null"); } catch (e) { return null; }
  }
  function fill(template, values) {
    var i = 0;
    return template.replace(/%[sd]/g, function () { var v = values[i++]; return v === undefined ? "" : String(v); });
  }
  function chartOf(svg) {
    var c = window.ticgwChart(svg, json(svg, "data-options") || {});
    c.set(json(svg, "data-points") || []);
    return c;
  }

  // --- Modem -------------------------------------------------------------------------------
  function modemPage(root) {
    var tx = json(root, "data-texts") || {};
    var svg = $("signal-chart");
    var chart = svg ? chartOf(svg) : null;

    function put(key, text, note, bad) {
      var dd = $("modem-" + key);
      if (!dd) return;
      var v = dd.querySelector(".value"), n = dd.querySelector(".note");
      v.textContent = text;
      v.classList.toggle("bad-value", !!bad);
      if (n) n.textContent = note || "";
    }
    function num(v, unit) {
      if (v === null || v === undefined) return tx.none;
      v = Number(v);
      return (v === Math.round(v) ? String(v) : v.toFixed(1)) + " " + unit;
    }
    function pick(d, a, b) { return d[a] !== undefined ? d[a] : d[b]; }

    ticgw.on("modem", function (d) {
      var u = tx.unknown;
      if ("type" in d) put("type", d.type || u);
      if ("imei" in d) put("imei", d.imei || u);
      if ("iccid" in d) put("iccid", d.iccid || u);
      if ("sim" in d) put("sim", d.sim || u, (tx.sim || {})[d.sim] || "", !!d.sim && d.sim !== "READY");
      if ("signal" in d) {
        if (d.signal === null || d.signal === undefined) put("signal", tx.signalUnknown, "", true);
        else {
          var low = d.signal < 10;
          put("signal", d.signal + " (" + fill(tx.dbm, [-113 + 2 * d.signal]) + ")" +
              (low ? " : " + tx.signalLow : ""), "", low);
        }
      }
      if ("state" in d) put("state", d.state || u, (tx.state || {})[d.state] || "");
      if ("technology" in d) put("technology", d.technology || u, "", !!d.warning);
      if ("operator" in d) put("operator", d.operator || u);
      if ("registration" in d) {
        put("registration", d.registration ? ((tx.registration || {})[d.registration] || d.registration) : u,
            "", d.registration === "denied" || d.registration === "searching");
      }
      var lte = [["rsrp", "rsrp_dbm", "dBm"], ["rsrq", "rsrq_db", "dB"], ["sinr", "sinr_db", "dB"]];
      lte.forEach(function (k) {
        if (k[0] in d || k[1] in d) put(k[0], num(pick(d, k[1], k[0]), k[2]));
      });
      if ("warning" in d) {
        var w = $("modem-warning");
        w.textContent = d.warning ? fill(tx.warning, [d.technology || "", d.warning]) : "";
        w.hidden = !d.warning;
      }
      if ("failure" in d) {
        var f = $("modem-failure");
        f.textContent = d.failure || "";
        f.hidden = !d.failure;
      }
      if (chart && "signal" in d) chart.add(Date.now() / 1000, d.signal);
    });
  }

  // --- Compteurs ---------------------------------------------------------------------------
  function metersPage() {
    var pending = null;
    function refresh() {
      fetch("/supervision/compteurs.json", { cache: "no-store" }).then(function (r) {
        return r.ok ? r.json() : null;
      }).then(function (d) {
        if (!d) return;
        d.rows.forEach(function (r) {
          var tr = document.querySelector('#meters tr[data-input="' + r.input + '"]');
          if (!tr) return;
          var sigil = tr.querySelector(".sigil");
          sigil.textContent = r.sigil;
          sigil.className = "sigil" + (r.ok ? " ok" : (r.sigil === "✘" ? " bad-value" : ""));
          tr.querySelector(".state-text").textContent = r.stateText;
          tr.querySelector(".serial").textContent = r.serial;
          tr.querySelector(".family").textContent = r.family;
          var name = tr.querySelector(".def-name");
          name.textContent = r.definition;
          name.classList.toggle("missing", r.defState === "missing");
          tr.querySelector(".def-note").textContent = r.defNote;
        });
      }).catch(function () {});
    }
    function soon() {
      if (pending) clearTimeout(pending);
      pending = setTimeout(function () { pending = null; refresh(); }, 300);
    }
    ticgw.on("state", function (d) {
      if (d.service === "acquisition" && String(d.machine).indexOf("tic_input.") === 0) soon();
    });
    ["input", "detected", "config", "online"].forEach(function (name) { ticgw.on(name, soon); });
    // the uplink records what it saw of the server just after its task ends: ask twice
    ticgw.on("task", function (d) {
      if (d.phase === "ended") { soon(); setTimeout(refresh, 3000); }
    });
  }

  // --- Valeurs -----------------------------------------------------------------------------
  function valuesPage() {
    var charts = {};
    document.querySelectorAll("section.meter").forEach(function (s) {
      var svg = s.querySelector("svg.chart");
      if (svg) charts[s.getAttribute("data-input")] = chartOf(svg);
    });
    function section(n) { return document.querySelector('section.meter[data-input="' + n + '"]'); }
    function pad(n) { return (n < 10 ? "0" : "") + n; }

    ticgw.on("values", function (d) {
      var s = section(d.input);
      if (!s) { location.reload(); return; }       // a meter the page did not know of
      var body = s.querySelector("table.values tbody");
      var seen = {};
      var rows = {};
      body.querySelectorAll("tr").forEach(function (tr) { rows[tr.getAttribute("data-label")] = tr; });
      (d.groups || []).forEach(function (g, i) {
        var label = String(g[0]);
        seen[label] = true;
        var tr = rows[label];
        if (!tr) {
          tr = ticgw.el("tr", null, { "data-label": label });
          tr.appendChild(ticgw.el("td", label));
          tr.appendChild(ticgw.el("td", ""));
        }
        if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] || null);
        var cell = tr.cells[1];
        var text = g[1] === null || g[1] === undefined ? "" : String(g[1]);
        if (cell.textContent !== text) cell.textContent = text;
      });
      Object.keys(rows).forEach(function (label) { if (!seen[label]) rows[label].remove(); });
      var now = new Date();
      var last = s.querySelector(".last");
      last.textContent = pad(now.getUTCHours()) + ":" + pad(now.getUTCMinutes()) + ":" + pad(now.getUTCSeconds());
      s.querySelector(".none").hidden = true;
      s.querySelector(".lost").hidden = true;
    });
    ticgw.on("input", function (d) {
      var s = section(d.input);
      if (s) s.querySelector(".lost").hidden = d.state !== "lost";
    });
    ticgw.on("power", function (d) {
      var c = charts[String(d.input)];
      if (c) c.add(d.t, d.w);
    });
  }

  // --- Journal -----------------------------------------------------------------------------
  function journalPage() {
    var box = $("journal-filter");
    var count = $("journal-count");
    var body = document.querySelector("#journal tbody");
    function match(tr, words) {
      var text = tr.textContent.toLowerCase();
      return words.every(function (w) { return text.indexOf(w) >= 0; });
    }
    function words() { return box.value.toLowerCase().split(/\s+/).filter(Boolean); }
    function counted() {
      var all = body.rows.length, shown = 0;
      for (var i = 0; i < all; i++) if (!body.rows[i].hidden) shown++;
      count.textContent = fill(count.getAttribute("data-template"), [shown, all]);
    }
    function apply() {
      var w = words();
      for (var i = 0; i < body.rows.length; i++) body.rows[i].hidden = !match(body.rows[i], w);
      counted();
    }
    box.addEventListener("input", apply);
    ticgw.on("journal-row", function (tr) { tr.hidden = !match(tr, words()); counted(); });
    apply();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var modem = $("modem");
    if (modem) modemPage(modem);
    if ($("meters")) metersPage();
    if ($("values-page")) valuesPage();
    if ($("journal-filter")) journalPage();
  });
})();
