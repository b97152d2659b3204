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

  function col(obj, names) {
    for (const n of names) if (obj && Array.isArray(obj[n])) return obj[n];
    return null;
  }

  class HistoryStore {
    constructor() {
      this.reset();
    }
    reset() {
      this.cursor = null; // rows stored on the server that this store has seen
      this.x = [];
      this.train = [];
      this.valX = [];
      this.val = [];
      this.epochs = new Map(); // epoch -> {x, val, score, train}
      this.diverged = false;
    }

    /** Merge one history payload (HTTP re-sync or websocket `history.rows`).
     *  Returns "ok", "stale" (already seen) or "gap" (missed rows: caller re-syncs). */
    apply(p) {
      if (!p) return "stale";
      const next = num(p.cursor);
      const start = p.after === undefined ? null : p.after === null ? null : num(p.after);
      const full = p.reset === true || p.replace === true || start === null || start === undefined;
      if (full) {
        this.reset();
      } else if (this.cursor === null) {
        return "gap";
      } else if (start > this.cursor) {
        return "gap";
      } else if (next !== null && next <= this.cursor && !(p.epochs && this._hasEpochs(p.epochs))) {
        return "stale";
      }
      const skip = !full && start < this.cursor ? this.cursor - start : 0;
      this._appendRows(p.rows || p, skip);
      if (p.epochs) this._mergeEpochs(p.epochs);
      if (next !== null) this.cursor = Math.max(this.cursor || 0, next);
      return "ok";
    }

    _hasEpochs(e) {
      return Array.isArray(e) ? e.length > 0 : Array.isArray(e.epoch) && e.epoch.length > 0;
    }

    _appendRows(rows, skip) {
      const x = col(rows, ["x", "epoch_frac", "fractional_epoch", "frac_epoch"]);
      if (!x) return;
      const train = col(rows, ["train_loss", "train"]) || [];
      const val = col(rows, ["val_loss", "val"]) || [];
      const ev = col(rows, ["epoch_val_loss"]);
      const ep = col(rows, ["epoch"]);
      for (let i = skip; i < x.length; i++) {
        const xi = num(x[i]);
        if (xi === null) continue;
        if (isDiverged(train[i]) || isDiverged(val[i])) this.diverged = true;
        const t = num(train[i]);
        if (t !== null) {
          this.x.push(xi);
          this.train.push(t);
        }
        const v = num(val[i]);
        if (v !== null) {
          this.valX.push(xi);
          this.val.push(v);
        }
        if (ev && ep && num(ev[i]) !== null) {
          this._epoch(num(ep[i]), { x: xi, val: num(ev[i]) });
        }
      }
    }

    _epoch(epoch, fields) {
      if (epoch === null) return;
      const cur = this.epochs.get(epoch) || { epoch: epoch, x: null, val: null, score: null, train: null };
      for (const [k, v] of Object.entries(fields)) if (v !== null && v !== undefined) cur[k] = v;
      this.epochs.set(epoch, cur);
    }

    _mergeEpochs(e) {
      if (Array.isArray(e)) {
        for (const row of e) {
          if (isDiverged(row.val_loss) || isDiverged(row.score)) this.diverged = true;
          this._epoch(num(row.epoch), {
            x: num(row.x !== undefined ? row.x : row.epoch_end),
            val: num(row.val_loss),
            score: num(row.score),
            train: num(row.train_loss),
          });
        }
        return;
      }
      const epochs = e.epoch || [];
      const xs = col(e, ["x", "epoch_end"]) || [];
      const vals = col(e, ["val_loss", "epoch_val_loss"]) || [];
      const scores = col(e, ["score", "scores"]) || [];
      const trains = col(e, ["train_loss"]) || [];
      for (let i = 0; i < epochs.length; i++) {
        if (isDiverged(vals[i]) || isDiverged(scores[i])) this.diverged = true;
        this._epoch(num(epochs[i]), { x: num(xs[i]), val: num(vals[i]), score: num(scores[i]), train: num(trains[i]) });
      }
    }

    epochRows() {
      return [...this.epochs.values()].sort((a, b) => a.epoch - b.epoch);
    }
    get pointCount() {
      return this.train.length + this.val.length + this.epochs.size;
    }
  }

  /** Exponential moving average with TensorBoard's debiasing (no flat start at 0). */
  function smooth(values, weight) {
    const out = new Array(values.length);
    let last = 0;
    let n = 0;
    for (let i = 0; i < values.length; i++) {
      last = last * weight + (1 - weight) * values[i];
      n++;
      out[i] = last / (1 - Math.pow(weight, n));
    }
    return out;
  }

  function smoothingWeight(n) {
    // Denser curves take more smoothing; a handful of points stay nearly raw.
    if (n < 20) return 0.3;
    if (n < 200) return 0.6;
    if (n < 2000) return 0.85;
    return 0.95;
  }

  function epochX(row) {
    // An epoch-end point sits at the end of epoch N: x = N + 1 when epochs count from 0.
    return row.x !== null ? row.x : row.epoch + 1;
  }

  const BASE_LAYOUT = {
    margin: { l: 52, r: 16, t: 10, b: 40 },
    font: { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 11.5, color: "#374151" },
    paper_bgcolor: "#fff",
    plot_bgcolor: "#fff",
    hovermode: "x unified",
    legend: { orientation: "h", y: -0.18, x: 0, font: { size: 11 } },
    xaxis: { title: { text: "epoch", standoff: 6 }, gridcolor: "#eef0f4", zeroline: false },
    yaxis: { gridcolor: "#eef0f4", zeroline: false },
  };

  function layout(extra) {
    return Object.assign({}, BASE_LAYOUT, extra, {
      xaxis: Object.assign({}, BASE_LAYOUT.xaxis, (extra || {}).xaxis),
      yaxis: Object.assign({}, BASE_LAYOUT.yaxis, (extra || {}).yaxis),
    });
  }

  /** Figure: train loss raw + smoothed, val-minibatch loss, epoch val loss vs fractional epoch. */
  function lossFigure(store, opts) {
    opts = opts || {};
    const color = opts.color || COLORS[0];
    const w = smoothingWeight(store.train.length);
    const epochs = store.epochRows().filter((r) => r.val !== null);
    const data = [
      {
        name: "train loss",
        x: store.x,
        y: store.train,
        type: "scattergl",
        mode: "lines",
        line: { color: color, width: 1 },
        opacity: 0.25,
        hoverinfo: "skip",
      },
      {
        name: "train loss (smoothed)",
        x: store.x,
        y: smooth(store.train, w),
        type: "scattergl",
        mode: "lines",
        line: { color: color, width: 2 },
      },
      {
        name: "val minibatch loss",
        x: store.valX,
        y: store.val,
        type: "scattergl",
        mode: "markers",
        marker: { color: "#d97706", size: 4, opacity: 0.6 },
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
      layout: layout({ uirevision: opts.uirevision || "loss", yaxis: { title: { text: "loss" }, type: opts.logY ? "log" : "linear" } }),
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
        x: val.map((r) => r.epoch),
        y: val.map((r) => r.val),
        type: "scatter",
        mode: "lines+markers",
        line: { color: "#dc2626", width: 2 },
      },
    ];
    if (scored.length) {
      data.push({
        name: "Early Ranking score",
        x: scored.map((r) => r.epoch),
        y: scored.map((r) => r.score),
        type: "scatter",
        mode: "lines+markers",
        line: { color: "#4f46e5", width: 2, dash: "dot" },
        marker: { symbol: "diamond", size: 7 },
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
      if (opts.showTrain !== false && s.train.length) {
        data.push({
          name: entry.name + " train (smoothed)",
          legendgroup: entry.name,
          x: s.x,
          y: smooth(s.train, smoothingWeight(s.train.length)),
          type: "scattergl",
          mode: "lines",
          line: { color: color, width: 1.5 },
          opacity: 0.55,
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
    smooth: smooth,
    lossFigure: lossFigure,
    epochFigure: epochFigure,
    compareFigure: compareFigure,
    draw: draw,
    num: num,
    COLORS: COLORS,
  };
})(window);
