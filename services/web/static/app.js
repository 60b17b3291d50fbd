// ticgw: what every page does live. One event stream (/events); pages add handlers with
// ticgw.on(event, fn). No library: WebSocket and fetch.
"use strict";
(function () {
  var handlers = {};
  var source = null;
  var failures = 0;
  var csrf = (document.querySelector('meta[name="csrf"]') || {}).content || "";
  var since = (document.querySelector('meta[name="since"]') || {}).content || "";
  var boot = (document.querySelector('meta[name="boot"]') || {}).content || "";

  function on(name, fn) { (handlers[name] = handlers[name] || []).push(fn); }
  function emit(name, data) { (handlers[name] || []).forEach(function (fn) { fn(data); }); }

  function el(tag, text, attrs) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    return e;
  }

  function show(id, yes) { var b = document.getElementById(id); if (b) b.hidden = !yes; }

  // One WebSocket per page (an event stream per tab would use up the six connections a
  // browser opens to a host). It asks for the events after the snapshot the page was
  // rendered from, and after a drop, for those after the last one it got.
  function connect() {
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws" +
      "?boot=" + encodeURIComponent(boot) + (since ? "&since=" + since : "");
    source = new WebSocket(url);
    source.onopen = function () { failures = 0; show("banner-offline", false); emit("online", {}); };
    source.onmessage = function (m) {
      var msg = JSON.parse(m.data);
      if (msg.n) since = String(msg.n);
      emit(msg.e, msg.d);
    };
    source.onclose = function () {
      show("banner-offline", true);
      // a session that ended (expired, or lost in a restart) refuses the channel: after a few
      // tries the page is loaded again, which leads to the login
      if (++failures >= 5) { location.reload(); return; }
      setTimeout(connect, 2000);
    };
  }

  // --- common to every page ---------------------------------------------------------------
  on("hello", function (d) { show("banner-init", d.init); });
  on("banner", function (d) { show("banner-init", d.init); });
  on("reload", function () { location.reload(); });
  on("leds", function (d) {
    Object.keys(d.leds || {}).forEach(function (name) {
      var led = document.querySelector('[data-led="' + name + '"]');
      if (led) { led.className = "led " + d.leds[name]; }
    });
    if (d.pulse) {
      var p = document.querySelector('[data-led="' + d.pulse + '"]');
      if (p) { p.classList.add("pulse"); setTimeout(function () { p.classList.remove("pulse"); }, 150); }
    }
  });
  on("journal", function (d) {
    var body = document.querySelector('table[data-live="journal"] tbody');
    if (!body) return;
    var tr = el("tr");
    d.row.forEach(function (c) { tr.appendChild(el("td", c)); });
    body.appendChild(tr);
    emit("journal-row", tr);
  });
  on("status", function (d) {
    var row = document.querySelector('#services tr[data-service="' + d.service + '"]');
    if (row) { row.cells[1].textContent = d.activity || ""; row.cells[2].textContent = d.version || ""; }
  });
  on("state", function (d) {          // a service stopping or starting says so at once
    if (d.machine !== "activity") return;
    var row = document.querySelector('#services tr[data-service="' + d.service + '"]');
    if (row) row.cells[1].textContent = d.state || "";
  });
  on("task", function (d) {
    if (d.task === "Détection") show("detecting", d.phase === "started");
    if (d.task === "Détection" && d.phase === "ended" && document.getElementById("detection")) {
      location.reload();
    }
  });

  // a page that waits for the gateway to come back (Redémarrer, Mise à jour)
  function awaitReconnect(target) {
    var started = Date.now();
    function poll() {
      fetch("/", { cache: "no-store", redirect: "manual" }).then(function (r) {
        if (Date.now() - started > 5000 && (r.ok || r.type === "opaqueredirect")) { location.href = target; }
        else { setTimeout(poll, 2000); }
      }).catch(function () { setTimeout(poll, 2000); });
    }
    setTimeout(poll, 3000);
  }

  function theme(value) {
    if (value === "light" || value === "dark") document.documentElement.setAttribute("data-theme", value);
    else document.documentElement.removeAttribute("data-theme");
  }
  theme(localStorage.getItem("ticgw-theme") || "system");

  document.addEventListener("DOMContentLoaded", function () {
    var select = document.getElementById("theme");
    if (select) {
      select.value = localStorage.getItem("ticgw-theme") || "system";
      select.addEventListener("change", function () {
        localStorage.setItem("ticgw-theme", select.value); theme(select.value);
      });
    }
    document.querySelectorAll("[data-confirm]").forEach(function (b) {
      b.addEventListener("click", function (e) { if (!confirm(b.getAttribute("data-confirm"))) e.preventDefault(); });
    });
    var wait = document.querySelector("[data-reconnect]");
    if (wait) awaitReconnect(wait.getAttribute("data-reconnect"));
    connect();
  });

  window.ticgw = { on: on, el: el, csrf: csrf, show: show, awaitReconnect: awaitReconnect };
})();
