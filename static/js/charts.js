/* Live training charts (Plotly). Split in two, as in optuna's visualization module:
 *   HistoryStore   – the data: points per trial, merged by cursor (no Plotly here);
 *   lossFigure / epochFigure – turn a store into Plotly figures.
 * Charts are redrawn with Plotly.react and a fixed layout.uirevision so zoom survives.
 */
(function (global) {
  "use strict";

  const COLORS = ["#4f46e5", "#0891b2", "#d97706", "#059669", "#db2777", "#7c3aed", "#dc2626", "#475569"];

  /** JSON has no NaN/inf: the server sends null, "nan", "inf" or "-inf". Plotly wants null. */
  function num(v) {
    if (v === null || v === undefined || v === "") return null;
    if (typeof v === "number") return Number.isFinite(v) ? v : null;
    const f = Number(v);
    return Number.isFinite(f) ? f : null;
  }
  function isDiverged(v) {
    return v === "inf" || v === "-inf" || v === "nan" || v === "Infinity" || v === "NaN" || v === Infinity;
  }

  function pushSeries(target, src) {
    if (!src || !Array.isArray(src.x)) return;
    for (let i = 0; i < src.x.length; i++) {
      const x = num(src.x[i]);
      const y = num(src.y[i]);
      if (x === null || y === null) continue; // non-finite values are listed in `nonfinite`
      target.x.push(x);
      target.y.push(y);
    }
  }

  /** The points of one trial, merged from history payloads by cursor (see
   *  sweeps.history.history_payload: after, cursor, series{train, train_smooth, val,
   *  epoch_val}, nonfinite, epochs). */
  class HistoryStore {
    constructor() {
      this.reset();
    }
    reset() {
      this.cursor = null; // rows of the trial this store holds (the next `after`)
      this.train = { x: [], y: [] };
      this.smooth = { x: [], y: [] };
      this.val = { x: [], y: [] };
      this.epochs = new Map(); // epoch -> {epoch, x, val, score, train}
      this.diverged = [];
      this.downsampled = false;
      this.incremental = false; // holds rows appended after the first payload
    }

    /** Merge one payload (HTTP re-sync or websocket `history.rows`).
     *  Returns "ok", "stale" (nothing new) or "gap" (rows missing: re-sync from cursor). */
    apply(p) {
      if (!p) return "stale";
      const after = num(p.after) || 0;
      const next = num(p.cursor);
      if (after === 0) {
        this.reset(); // a payload from the first row replaces everything
      } else if (this.cursor !== null && after === this.cursor) {
        this.incremental = true;
      } else if (this.cursor === null || after > this.cursor) {
        return "gap";
      } else if (after < this.cursor) {
        // Overlap: series are not row-aligned, so only whole payloads can be skipped.
        if (next !== null && next <= this.cursor) {
          this.mergeEpochs(p.epochs);
          return "stale";
        }
        return "gap";
      }
      const s = p.series || {};
      pushSeries(this.train, s.train);
      pushSeries(this.smooth, s.train_smooth);
      pushSeries(this.val, s.val);
      const ev = s.epoch_val;
      if (ev && Array.isArray(ev.x)) {
        for (let i = 0; i < ev.x.length; i++) {
          const epoch = ev.epoch ? num(ev.epoch[i]) : null;
          if (epoch !== null) this.epoch(epoch, { x: num(ev.x[i]), val: num(ev.y[i]) });
        }
      }
      for (const bad of p.nonfinite || []) this.diverged.push(bad);
      if (p.downsampled) this.downsampled = true;
      this.mergeEpochs(p.epochs);
      if (next !== null) this.cursor = next;
      return "ok";
    }

    epoch(epoch, fields) {
      const cur = this.epochs.get(epoch) || { epoch: epoch, x: null, val: null, score: null, train: null };
      for (const [k, v] of Object.entries(fields)) if (v !== null && v !== undefined) cur[k] = v;
      this.epochs.set(epoch, cur);
    }

    /** Per-epoch summaries ({epoch, val_loss, score, train_loss}); e.g. Early Ranking scores. */
    mergeEpochs(list) {
      for (const row of list || []) {
        const epoch = num(row.epoch);
        if (epoch === null) continue;
        if (isDiverged(row.score) || isDiverged(row.val_loss)) this.diverged.push({ series: "epoch", x: epoch, value: row.score });
        this.epoch(epoch, { val: num(row.val_loss), score: num(row.score), train: num(row.train_loss) });
      }
    }

    epochRows() {
      return [...this.epochs.values()].sort((a, b) => a.epoch - b.epoch);
    }
    get pointCount() {
      return this.train.x.length + this.val.x.length + this.epochs.size;
    }
  }

  function epochX(row) {
    // An epoch-end point sits at the end of its epoch (fractional epoch k+1 for epoch k).
    return row.x !== null ? row.x : row.epoch + 1;
  }

  const BASE_LAYOUT = {
    margin: { l: 52, r: 16, t: 10, b: 40 },
    font: { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 11.5, color: "#374151" },
    paper_bgcolor: "#fff",
    plot_bgcolor: "#fff",
    hovermode: "x unified",
    legend: { orientation: "h", y: -0.2, x: 0, font: { size: 11 } },
    xaxis: { title: { text: "epoch", standoff: 6 }, gridcolor: "#eef0f4", zeroline: false },
    yaxis: { gridcolor: "#eef0f4", zeroline: false },
  };

  function layout(extra) {
    extra = extra || {};
    return Object.assign({}, BASE_LAYOUT, extra, {
      xaxis: Object.assign({}, BASE_LAYOUT.xaxis, extra.xaxis),
      yaxis: Object.assign({}, BASE_LAYOUT.yaxis, extra.yaxis),
    });
  }

  /** A dashed red line where the run first diverged (NaN/inf values are not plottable). */
  function divergenceShapes(store) {
    const first = store.diverged.find((d) => d.series !== "epoch" && num(d.x) !== null);
    if (!first) return {};
    return {
      shapes: [{ type: "line", xref: "x", yref: "paper", x0: first.x, x1: first.x, y0: 0, y1: 1, line: { color: "#dc2626", width: 1.5, dash: "dash" } }],
      annotations: [{ xref: "x", yref: "paper", x: first.x, y: 1, text: "diverged (" + first.value + ")", showarrow: false, xanchor: "left", font: { color: "#dc2626", size: 11 }, bgcolor: "rgba(255,255,255,0.8)" }],
    };
  }

  /** Figure: train loss raw + smoothed, val-minibatch loss, epoch val loss vs fractional epoch. */
  function lossFigure(store, opts) {
    opts = opts || {};
    const color = opts.color || COLORS[0];
    const epochs = store.epochRows().filter((r) => r.val !== null);
    const dense = store.val.x.length > 800;
    const data = [
      {
        name: "train loss",
        x: store.train.x,
        y: store.train.y,
        type: "scattergl",
        mode: "lines",
        line: { color: color, width: 1 },
        opacity: 0.3,
        hoverinfo: "skip",
      },
      {
        name: "val minibatch loss",
        x: store.val.x,
        y: store.val.y,
        type: "scattergl",
        mode: "markers",
        // Dense curves (long runs, downsampled): smaller, lighter dots under the lines.
        marker: { color: "#d97706", size: dense ? 3 : 4, opacity: dense ? 0.35 : 0.65 },
      },
      {
        name: "train loss (smoothed)",
        x: store.smooth.x,
        y: store.smooth.y,
        type: "scattergl",
        mode: "lines",
        line: { color: color, width: 2.2 },
      },
      {
        name: "epoch val loss",
        x: epochs.map(epochX),
        y: epochs.map((r) => r.val),
        type: "scatter",
        mode: "lines+markers",
        line: { color: "#dc2626", width: 2 },
        marker: { size: 6 },
      },
    ];
    return {
      data: data,
      layout: layout(
        Object.assign(
          { uirevision: opts.uirevision || "loss", yaxis: { title: { text: "loss" }, type: opts.logY ? "log" : "linear" } },
          divergenceShapes(store)
        )
      ),
    };
  }

  /** Figure: epoch validation loss and Early Ranking score per epoch. */
  function epochFigure(store, opts) {
    opts = opts || {};
    const rows = store.epochRows();
    const val = rows.filter((r) => r.val !== null);
    const scored = rows.filter((r) => r.score !== null);
    const data = [
      {
        name: "epoch val loss",
        x: val.map(epochX),
        y: val.map((r) => r.val),
        type: "scatter",
        mode: "lines+markers",
        line: { color: "#dc2626", width: 2 },
        hovertemplate: "epoch %{x}: %{y:.4g}<extra>val loss</extra>",
      },
    ];
    if (scored.length) {
      data.push({
        name: "Early Ranking score",
        x: scored.map(epochX),
        y: scored.map((r) => r.score),
        type: "scatter",
        mode: "lines+markers",
        line: { color: "#4f46e5", width: 2, dash: "dot" },
        marker: { symbol: "diamond", size: 7 },
        hovertemplate: "epoch %{x}: %{y:.4g}<extra>Early Ranking score</extra>",
      });
    }
    return {
      data: data,
      layout: layout({ uirevision: opts.uirevision || "epoch", xaxis: { title: { text: "epoch", standoff: 6 }, dtick: rows.length < 15 ? 1 : undefined } }),
    };
  }

  /** Figure: several experiments' curves on one chart (compare page). */
  function compareFigure(entries, opts) {
    opts = opts || {};
    const data = [];
    entries.forEach((entry, i) => {
      const color = COLORS[i % COLORS.length];
      const s = entry.store;
      if (opts.showTrain !== false && s.smooth.x.length) {
        data.push({
          name: entry.name + " train (smoothed)",
          legendgroup: entry.name,
          x: s.smooth.x,
          y: s.smooth.y,
          type: "scattergl",
          mode: "lines",
          line: { color: color, width: 1.5 },
          opacity: 0.5,
        });
      }
      const ep = s.epochRows().filter((r) => r.val !== null);
      data.push({
        name: entry.name + " epoch val",
        legendgroup: entry.name,
        x: ep.map(epochX),
        y: ep.map((r) => r.val),
        type: "scatter",
        mode: "lines+markers",
        line: { color: color, width: 2.5 },
        marker: { size: 6 },
      });
    });
    return { data: data, layout: layout({ uirevision: "compare", yaxis: { title: { text: "loss" }, type: opts.logY ? "log" : "linear" } }) };
  }

  const CONFIG = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["lasso2d", "select2d"] };

  function draw(el, fig) {
    if (!global.Plotly) return;
    const empty = el.querySelector(".chart-empty");
    if (empty) empty.remove();
    global.Plotly.react(el, fig.data, fig.layout, CONFIG);
  }

  global.LuminideCharts = {
    HistoryStore: HistoryStore,
    lossFigure: lossFigure,
    epochFigure: epochFigure,
    compareFigure: compareFigure,
    draw: draw,
    num: num,
    COLORS: COLORS,
  };
})(window);
