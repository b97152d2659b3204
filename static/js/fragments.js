/* Server-rendered parts of a page that change while it is open.
 * An element with data-live-fragment="<name>" is re-fetched from this page's URL and
 * replaced: every few seconds while the tab shows if it also has data-poll (the experiment
 * lists: runs started elsewhere appear, states change), or when the page's script asks,
 * with LuminideFragments.refresh(["name", ...]) (the run page, as epochs complete).
 * Ticked checkboxes survive. The fetch says it is one, so the page keeps its flash messages
 * for the next real page (base.html). */
(function () {
  "use strict";
  const PERIOD_MS = 5000;

  async function replace(elements) {
    if (!elements.length) return;
    let doc;
    try {
      const resp = await fetch(location.href, { headers: { Accept: "text/html", "X-Luminide-Fragment": "1" }, cache: "no-store" });
      if (!resp.ok) return;
      doc = new DOMParser().parseFromString(await resp.text(), "text/html");
    } catch (e) {
      return; // the page keeps what it shows; the next refresh tries again
    }
    for (const el of elements) {
      const fresh = doc.querySelector('[data-live-fragment="' + el.dataset.liveFragment + '"]');
      if (!fresh || fresh.innerHTML === el.innerHTML) continue; // unchanged: a click in progress stays
      const checked = new Set([...el.querySelectorAll("input[type=checkbox]:checked")].map((i) => i.name + "=" + i.value));
      fresh.querySelectorAll("input[type=checkbox]").forEach((i) => {
        i.checked = checked.has(i.name + "=" + i.value);
      });
      el.replaceWith(fresh);
    }
  }

  window.LuminideFragments = {
    refresh: (names) => replace(names.map((name) => document.querySelector('[data-live-fragment="' + name + '"]')).filter(Boolean)),
  };

  setInterval(() => {
    if (document.hidden) return;
    replace([...document.querySelectorAll("[data-live-fragment][data-poll]")]);
  }, PERIOD_MS);
})();
