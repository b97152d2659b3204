/* Server-rendered parts of a page that change while it is open.
 * An element with data-live-fragment="<name>" is re-fetched from this page's URL and
 * replaced: every few seconds while the tab shows if it also has data-poll (the experiment
 * lists: runs started elsewhere appear, states change), or when the page's script asks,
 * with LuminideFragments.refresh(["name", ...]) (the run page, as epochs complete).
 * Ticked checkboxes survive; ticking durations (clocks.js) do not count as a change. The
 * fetch says it is one, so the page keeps its flash messages for the next real page
 * (base.html). */
(function () {
  "use strict";
  const PERIOD_MS = 5000;

  let requested = 0; // refreshes asked for, in order
  const shownFrom = {}; // fragment name -> the refresh its current content came from

  // Fetch once, then swap each named fragment, looked up now (an earlier refresh may have
  // swapped it meanwhile); an older response never replaces what a newer one brought.
  async function replace(names) {
    if (!names.length) return;
    const mine = ++requested;
    let doc;
    try {
      const resp = await fetch(location.href, { headers: { Accept: "text/html", "X-Luminide-Fragment": "1" }, cache: "no-store" });
      if (!resp.ok) return;
      doc = new DOMParser().parseFromString(await resp.text(), "text/html");
    } catch (e) {
      return; // the page keeps what it shows; the next refresh tries again
    }
    for (const name of names) {
      if ((shownFrom[name] || 0) > mine) continue;
      const selector = '[data-live-fragment="' + name + '"]';
      const el = document.querySelector(selector);
      const fresh = doc.querySelector(selector);
      shownFrom[name] = mine;
      if (!el || !fresh || withoutClocks(fresh) === withoutClocks(el)) continue; // unchanged: a click in progress stays
      const checked = new Set([...el.querySelectorAll("input[type=checkbox]:checked")].map((i) => i.name + "=" + i.value));
      fresh.querySelectorAll("input[type=checkbox]").forEach((i) => {
        i.checked = checked.has(i.name + "=" + i.value);
      });
      el.replaceWith(fresh);
    }
  }

  // The content without the texts of ticking durations (clocks.js keeps those current).
  function withoutClocks(el) {
    if (!el.querySelector("[data-started]")) return el.innerHTML;
    const copy = el.cloneNode(true);
    copy.querySelectorAll("[data-started]").forEach((clock) => (clock.textContent = ""));
    return copy.innerHTML;
  }

  window.LuminideFragments = { refresh: replace };

  let polling = false; // one poll at a time: a slow page does not pile up requests
  setInterval(async () => {
    if (document.hidden || polling) return;
    polling = true;
    try {
      await replace([...document.querySelectorAll("[data-live-fragment][data-poll]")].map((el) => el.dataset.liveFragment));
    } finally {
      polling = false;
    }
  }, PERIOD_MS);
})();
