/* Keeps server-rendered lists fresh while something in them is active.
 * An element with data-live-fragment="<id>" is re-fetched (from this page's URL) every
 * few seconds while it shows a queued or running badge; ticked checkboxes survive. */
(function () {
  "use strict";
  const PERIOD_MS = 5000;
  const ACTIVE = ".badge-running, .badge-queued";

  async function refresh() {
    const live = [...document.querySelectorAll("[data-live-fragment]")].filter((el) => el.querySelector(ACTIVE));
    if (!live.length || document.hidden) return;
    let doc;
    try {
      const resp = await fetch(location.href, { headers: { Accept: "text/html" }, cache: "no-store" });
      if (!resp.ok) return;
      doc = new DOMParser().parseFromString(await resp.text(), "text/html");
    } catch (e) {
      return;
    }
    for (const el of live) {
      const fresh = doc.querySelector('[data-live-fragment="' + el.dataset.liveFragment + '"]');
      if (!fresh) continue;
      const checked = new Set([...el.querySelectorAll("input[type=checkbox]:checked")].map((i) => i.name + "=" + i.value));
      fresh.querySelectorAll("input[type=checkbox]").forEach((i) => {
        i.checked = checked.has(i.name + "=" + i.value);
      });
      el.replaceWith(fresh);
    }
  }
  setInterval(refresh, PERIOD_MS);
})();
