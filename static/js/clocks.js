/* Durations that tick in the browser. Any element with data-started (an ISO time) shows the
 * time from it to its data-finished, or to now while that is empty, written as the server's
 * `duration` filter writes it (luminide_tags.duration, rounded the same way). fragments.js
 * ignores these texts when it compares a refreshed part, so a list whose only change is a
 * running duration is not re-rendered under the user's pointer.
 *
 *   LuminideClocks.formatDuration(seconds) -> "12s", "3m 05s", "1h 02m", "2d 3h"
 */
(function (global) {
  "use strict";

  function formatDuration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    const s = Math.max(0, Math.round(seconds));
    const m = Math.floor(s / 60);
    const h = Math.floor(m / 60);
    const pad = (n) => String(n).padStart(2, "0");
    if (m < 1) return s + "s";
    if (h < 1) return m + "m " + pad(s % 60) + "s";
    if (h < 48) return h + "h " + pad(m % 60) + "m";
    return Math.floor(h / 24) + "d " + (h % 24) + "h";
  }

  function tick() {
    document.querySelectorAll("[data-started]").forEach((el) => {
      const start = Date.parse(el.dataset.started);
      const end = el.dataset.finished ? Date.parse(el.dataset.finished) : Date.now();
      if (!Number.isFinite(start) || !Number.isFinite(end)) return;
      const text = formatDuration((end - start) / 1000);
      if (el.textContent !== text) el.textContent = text; // no mutation when nothing changed
    });
  }

  setInterval(tick, 1000);
  global.LuminideClocks = { formatDuration };
})(window);
