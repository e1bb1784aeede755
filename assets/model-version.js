/* When an admin promotes another model version (or rolls back), every server process swaps to
   it within seconds (dashboard/live.py), but a page already open was built for the old one:
   its filters and lists may not match the new data. This checks GET /api/v1/health every
   15 s and, once the live version differs from the one the page started with, shows a bar
   offering a reload (never reloading by itself: the user may be in the middle of something).
   Pages still waiting for their first model are training.js's (they reload when it is ready). */
(function () {
  "use strict";

  var EVERY_MS = 15000;
  var BAR_ID = "model-changed-bar";
  var first = null;

  function showBar(version) {
    if (document.getElementById(BAR_ID)) return;
    var bar = document.createElement("div");
    bar.id = BAR_ID;
    bar.className = "alert alert-warning d-flex align-items-center gap-2 m-0 rounded-0 py-2";
    bar.setAttribute("role", "status");
    var text = document.createElement("span");
    text.textContent = "A new model is live (" + version + "): reload to see its scores.";
    var button = document.createElement("button");
    button.type = "button";
    button.className = "btn btn-sm btn-warning ms-auto";
    button.textContent = "Reload";
    button.addEventListener("click", function () { window.location.reload(); });
    bar.appendChild(text);
    bar.appendChild(button);
    document.body.insertBefore(bar, document.body.firstChild);
  }

  function pageVersion() {
    // The navbar says "Model: <version>" (dashboard/layout.py model_text).
    var node = document.querySelector(".model-status-short");
    var text = node ? node.textContent : "";
    return text.indexOf("Model: ") === 0 && text.indexOf(" ", 7) < 0 ? text.slice(7) : null;
  }

  function check() {
    if (first === null) first = pageVersion();
    window
      .fetch("/api/v1/health", { cache: "no-store", credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (status) {
        var version = status && status.status === "ready" ? status.model_version : null;
        if (version && first === null) first = version;
        if (version && first !== null && version !== first) showBar(version);
      })
      .catch(function () {})
      .then(function () { window.setTimeout(check, EVERY_MS); });
  }

  window.setTimeout(check, 1000);
})();
