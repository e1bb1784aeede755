/* While the server's first model trains, the views that need it show a .training-panel
   (dashboard/layout.py). This keeps each panel's text and progress bar current from
   GET /api/v1/health (public, same origin: allowed by the Content-Security-Policy's
   connect-src 'self'), and reloads the page once health says "ready": by then the server has
   switched to the full dashboard, whose callbacks this page does not know.

   Plain script from assets/ rather than a Dash callback: the full dashboard has no such
   callback, so after the switch a Dash poller would fail where this keeps working. On a page
   without a training panel it does nothing but look for one every few seconds. */
(function () {
  "use strict";

  var PANEL = ".training-panel";
  var TRAINING_MS = 2000; // a job is running: follow it closely
  var WAITING_MS = 10000; // no job, or it failed: an admin may start one
  var RELOAD_GAP_MS = 15000; // one worker may say ready before another has switched
  var COLORS = ["alert-info", "alert-danger", "alert-secondary"];
  var last = null;

  function color(status) {
    if (status.state === "failed") return "alert-danger";
    return status.status === "training" ? "alert-info" : "alert-secondary";
  }

  function setText(node, text) {
    if (node && node.textContent !== text) node.textContent = text; // unchanged: no mutation
  }

  function apply(status) {
    var percent = Math.round(100 * Math.min(Math.max(status.progress || 0, 0), 1));
    var training = status.status === "training";
    document.querySelectorAll(PANEL).forEach(function (panel) {
      var wanted = color(status);
      if (!panel.classList.contains(wanted)) {
        COLORS.forEach(function (c) { panel.classList.remove(c); });
        panel.classList.add(wanted);
      }
      setText(panel.querySelector(".training-text"), status.message || "");
      var bar = panel.querySelector(".training-progress");
      if (bar) {
        if (bar.hidden === training) bar.hidden = !training;
        if (bar.getAttribute("aria-valuenow") !== String(percent)) {
          bar.setAttribute("aria-valuenow", String(percent));
          bar.firstElementChild.style.width = percent + "%";
        }
      }
    });
    var short = training ? "Model: training " + percent + "%" : "Model: none yet";
    document.querySelectorAll(".model-status-short").forEach(function (node) {
      setText(node, short);
    });
  }

  function reload() {
    // Reload at most once per RELOAD_GAP_MS: a worker that has not switched yet serves this
    // page again, and it reloads again once the gap has passed.
    var key = "retention-model-ready-reload";
    try {
      var before = Number(window.sessionStorage.getItem(key) || 0);
      if (Date.now() - before < RELOAD_GAP_MS) return false;
      window.sessionStorage.setItem(key, String(Date.now()));
    } catch (blocked) {
      // Storage switched off: reload anyway (at worst once per poll while workers switch).
    }
    window.location.reload();
    return true;
  }

  function tick() {
    if (!document.querySelector(PANEL)) {
      window.setTimeout(tick, TRAINING_MS);
      return;
    }
    watch();
    window
      .fetch("/api/v1/health", {
        cache: "no-store",
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (status) {
        if (status && status.status === "ready" && reload()) return;
        if (status && status.status !== "ready") {
          last = status;
          apply(status);
        }
        window.setTimeout(tick, status && status.status !== "no model" ? TRAINING_MS : WAITING_MS);
      })
      .catch(function () { window.setTimeout(tick, WAITING_MS); });
  }

  // A tab opened later mounts its panel afresh, with the text the page was built with: give it
  // the latest status (watching the page only once it has a panel).
  var watching = false;
  function watch() {
    if (watching) return;
    watching = true;
    new MutationObserver(function () { if (last) apply(last); }).observe(document.body, {
      childList: true,
      subtree: true,
    });
  }

  tick();
})();
