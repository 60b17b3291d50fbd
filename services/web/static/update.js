// ticgw: the Mise à jour page (manual 10.5). The package goes up with XMLHttpRequest (the raw
// file as the body, for the transfer's progress bar); the install's progress comes from the
// event stream (update events); while the gateway restarts, the page polls
// /mise-a-jour/etat.json until the web process answers again (another boot), then shows the
// page again (the login instead, when the session did not survive the restart).
"use strict";
(function () {
  var HEALTH = "contrôle de santé";
  var RESTART = "redémarrage";
  var root = document.getElementById("update");
  if (!root) return;
  var T = JSON.parse(root.getAttribute("data-texts"));
  var boot = root.getAttribute("data-boot");
  var phase = root.getAttribute("data-phase");
  var finished = false;

  function $(id) { return document.getElementById(id); }

  function fmt(text) {
    var args = Array.prototype.slice.call(arguments, 1);
    return text.replace(/%s/g, function () { return args.length ? String(args.shift()) : ""; });
  }

  function say(id, text, kind) {
    var p = $(id);
    p.textContent = text || "";
    if (kind) p.className = "banner " + kind;
    p.hidden = !text;
  }

  // --- sending the package -------------------------------------------------------------------
  function transfer(fraction) {
    var percent = Math.floor(fraction * 100);
    $("transfer-bar").setAttribute("value", String(percent));
    $("transfer-text").textContent = fmt(T.transfer, percent);
  }

  function sending(yes) {
    $("send").disabled = yes;
    $("pak").disabled = yes;
  }

  function showFacts(facts, running) {
    $("f-version").textContent = facts.version;
    $("f-date").textContent = facts.build_date;
    $("f-size").textContent = facts.size;
    $("f-sha256").textContent = facts.sha256;
    $("f-running").textContent = running;
    $("install-sha256").value = facts.sha256;
    $("upload").hidden = true;
    $("facts").hidden = false;
    $("install").focus();
  }

  function answered(xhr) {
    var data = null;
    try { data = JSON.parse(xhr.responseText); } catch (e) { data = null; }
    if (xhr.status === 200 && data && data.ok) {
      transfer(1);
      showFacts(data.facts, data.running);
      return;
    }
    $("transfer").hidden = true;
    if (xhr.status === 401) say("refused", T.session, "error");
    else if (data && data.error) say("refused", data.error, data.kind === "busy" ? "busy" : "error");
    else if (xhr.status === 413) say("refused", T.too_large, "error");
    else if (xhr.status === 403 && xhr.responseText) say("refused", xhr.responseText, "error");
    else say("refused", fmt(T.http, xhr.status), "error");
  }

  function send() {
    var input = $("pak");
    var file = input.files && input.files[0];
    say("refused", "");
    $("facts").hidden = true;
    if ($("last")) $("last").hidden = true;          // the previous package's outcome
    if (!file) { say("refused", T.choose, "error"); return; }
    if (file.size > Number(root.getAttribute("data-max"))) { say("refused", T.too_large, "error"); return; }
    var xhr = new XMLHttpRequest();
    xhr.open("POST", "/mise-a-jour/envoi");
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.setRequestHeader("X-CSRF-Token", ticgw.csrf);
    xhr.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable && e.total) transfer(e.loaded / e.total);
    });
    xhr.upload.addEventListener("load", function () {
      transfer(1);
      $("transfer-text").textContent = T.checking;
    });
    xhr.addEventListener("load", function () { sending(false); answered(xhr); });
    xhr.addEventListener("error", function () {
      sending(false);
      $("transfer").hidden = true;
      say("refused", T.lost, "error");
    });
    $("transfer").hidden = false;
    transfer(0);
    sending(true);
    xhr.send(file);
  }

  var form = $("upload");
  if (form) {
    form.addEventListener("submit", function (e) { e.preventDefault(); send(); });
    $("pak").addEventListener("change", function () {
      var f = this.files && this.files[0];
      $("pak-name").textContent = f ? f.name : T.no_file;
      say("refused", "");
      $("transfer").hidden = true;
    });
    $("browse").addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("pak").click(); }
    });
  }
  // one click is enough: Valider and Annuler post once
  ["install", "discard"].forEach(function (id) {
    var b = $(id);
    if (b) b.form.addEventListener("submit", function () { setTimeout(function () { b.disabled = true; }, 0); });
  });

  // --- the install, live -----------------------------------------------------------------------
  function restarting(yes) { $("restart").hidden = !yes; }

  function step(d) {
    var bar = $("install-bar");
    if (d.step === HEALTH || typeof d.percent !== "number") bar.removeAttribute("value");
    else bar.setAttribute("value", String(d.percent));
    $("install-step").textContent = T.steps[d.step] || d.step || "";
    restarting(d.step === RESTART);
  }

  function outcome(d) {
    var ok = d.state === "committed";
    var text;
    if (ok) text = fmt(T["outcome.committed"], d.version, d.from_version);
    else if (d.state === "rolled_back") text = fmt(T["outcome.rolled_back"], d.from_version, d.reason);
    else text = fmt(T["outcome.failed"], d.version ? " " + d.version : "", d.reason);
    var p = $("outcome");
    p.textContent = text;
    p.className = "banner" + (ok ? "" : " error");
    p.setAttribute("data-state", d.state);
    if (ok) {
      p.appendChild(document.createTextNode(" "));
      p.appendChild(ticgw.el("a", T.check_home, { href: "/" }));
    }
    p.hidden = false;
    $("progress").hidden = true;
    $("upload").hidden = false;                       // another package may be sent
    finished = true;
  }

  ticgw.on("update", function (d) {
    if (finished || (phase !== "busy" && phase !== "unknown")) return;
    if (d.kind === "progress") step(d);
    else if (d.kind === "outcome") outcome(d);
  });

  // --- waiting for the gateway: the web process restarts too -----------------------------------
  function back() { location.href = "/mise-a-jour?attente=1"; }
  function later() { setTimeout(poll, 2000); }

  function poll() {
    if (finished) return;
    fetch("/mise-a-jour/etat.json", { cache: "no-store", redirect: "manual", credentials: "same-origin" })
      .then(function (r) {
        if (r.status === 401 || r.type === "opaqueredirect") { back(); return null; }
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (s) {
        if (!s || finished) return;
        if (s.boot !== boot) { back(); return; }               // the web process restarted
        if (s.phase === "resting" || s.phase === "verified") { back(); return; }   // over
        if (s.phase === "unknown" || s.state === "restarting" || s.state === "rolled_back") restarting(true);
        later();
      })
      .catch(function () { restarting(true); later(); });      // down: the gateway restarts
  }

  if (phase === "busy" || phase === "unknown") later();
})();
