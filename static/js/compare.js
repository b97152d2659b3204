/* Compare page: several experiments' curves on one chart (data from each history endpoint). */
(function () {
  "use strict";
  const C = window.LuminideCharts;
  const el = document.getElementById("chart-compare");
  const series = JSON.parse(document.getElementById("compare-series").textContent);
  const showTrain = document.getElementById("show-train");
  const logY = document.getElementById("log-y");
  const entries = [];

  function redraw() {
    C.draw(el, C.compareFigure(entries, { showTrain: showTrain.checked, logY: logY.checked }));
    el.dataset.series = String(entries.length);
  }

  Promise.all(
    series.map(async (s) => {
      const resp = await fetch(s.history_url + "?trial=" + s.trial, { headers: { Accept: "application/json" } });
      const data = await resp.json();
      const store = new C.HistoryStore();
      if (data.history) store.apply(data.history);
      return { name: s.name, store: store };
    })
  ).then((loaded) => {
    entries.push(...loaded);
    redraw();
  });
  showTrain.addEventListener("change", redraw);
  logY.addEventListener("change", redraw);
})();
