// The "Open the app" step: keeps the animated QR code fresh, listens for the app's answer
// (server-sent events) and moves on without a reload. Without JavaScript the page still
// works: the QR code shown at load and the "I have answered" button.
(function () {
  "use strict";
  var form = document.getElementById("app-form");
  if (!form) return;
  var id = form.getAttribute("data-flow");
  var expires = parseInt(form.getAttribute("data-expires"), 10) * 1000;
  var csrf = form.querySelector("input[name=csrf_token]").value;
  var qr = document.getElementById("qr");
  var busy = false, done = false;

  // A new QR code every second: a photographed one is stale within seconds. The next one
  // is asked for a second after the last one arrived (or failed), never while one is
  // still loading: on a link slower than a second, a fixed timer would abort every load
  // and leave the first code on screen until it is too old to scan.
  var tick = null;
  function refresh() {
    tick = null;
    if (done || Date.now() >= expires) return;
    qr.src = "/api/v1/flows/" + encodeURIComponent(id) + "/qr?t=" + Date.now();
  }
  function refreshLater() {
    if (!done && tick === null) tick = setTimeout(refresh, 1000);
  }
  qr.addEventListener("load", refreshLater);
  qr.addEventListener("error", refreshLater);
  if (qr.complete) refreshLater(); // else its load or error event starts the cycle

  function go(url) { done = true; clearTimeout(tick); window.location.assign(url); }

  function collect() {
    if (busy || done) return;
    busy = true;
    fetch("/api/v1/flows/" + encodeURIComponent(id) + "/app", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: "{}"
    }).then(function (r) {
      return r.json().then(function (body) { return { ok: r.ok, body: body }; });
    }).then(function (res) {
      busy = false;
      var b = res.body;
      if (res.ok && b.state === "app_pending") return;
      if (b.redirect_to) return go(b.redirect_to);
      if (!res.ok && b.code === "app_request_expired") {
        return go("/login?flow=" + encodeURIComponent(id) + "&notice=app_expired");
      }
      go("/login?flow=" + encodeURIComponent(id));
    }).catch(function () { busy = false; });
  }

  if (window.EventSource) {
    var es = new EventSource("/api/v1/flows/" + encodeURIComponent(id) + "/events");
    es.addEventListener("update", collect);
  }
  // The request lapses without an event: ask once it has.
  setTimeout(collect, Math.max(0, expires - Date.now()) + 500);
  form.addEventListener("submit", function (e) { e.preventDefault(); collect(); });
})();
