// ticgw, page Système: the restore's upload. A multipart body cannot carry the CSRF token where
// the gate reads it (a form field of an urlencoded body), so the files go by fetch with the
// X-CSRF-Token header; the answer names the page to go to next (the preview, or Système with
// the reasons of a refusal).
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("restore-form");
  if (!form) return;
  var status = document.getElementById("restore-status");
  var button = document.getElementById("restore");
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    button.disabled = true;
    status.textContent = form.getAttribute("data-sending");
    fetch(form.action, {
      method: "POST", body: new FormData(form), credentials: "same-origin",
      headers: { "X-CSRF-Token": window.ticgw.csrf }
    }).then(function (r) {
      if (!r.ok) throw new Error(String(r.status));
      return r.json();
    }).then(function (d) {
      location.href = d.go;
    }).catch(function () {
      button.disabled = false;
      status.textContent = form.getAttribute("data-failed");
    });
  });
});
