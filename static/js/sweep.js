/* Sweep page: live optimisation history, learning curves, Early Ranking Metric, parallel
 * coordinates, parameter importance and a sortable, paginated trials table.
 *
 * The server builds the chart data (sweeps/sweep_charts.py: ranks, greyed trials, best so
 * far, downsampled curves); this file only turns it into Plotly traces. Websocket events
 * are hints: each one schedules a throttled HTTP re-sync of the summary, asking only for the
 * curves of the trials that changed. The summary is also the cursor: a trial whose `epochs`
 * differ from the `n` of the curve held here is fetched again, so a lost message or a
 * reconnect never leaves a curve behind.
 */
(function () {
  "use strict";

  const root = document.getElementById("sweep");
  if (!root) return;
  const C = window.LuminideCharts;
  const ACTIVE = new Set(["queued", "running"]);
  const PAGE = 50;
  // Good (rank 1) to bad: green → yellow → red. Greyed trials are grey, running dashed blue.
  const RANK_SCALE = ["#1a9850", "#66bd63", "#a6d96a", "#d9ef8b", "#fee08b", "#fdae61", "#f46d43", "#d73027"];
  const GREY = "#c3c8d2";
  const RUNNING = "#2563eb";
  const PER_TRIAL_TRACES = 12; // more ranked trials than this: one trace per colour band

  const state = {
    expState: root.dataset.state,
    summary: null,
    curves: new Map(), // trial number -> {n, epoch, val, score}
    dirty: new Set(), // trials with news since the last sync
    syncing: null,
    again: false,
    timer: null,
    lastMs: 0,
    importanceFor: -1,
    importanceTimer: null,
    sort: { key: "number", dir: 1 },
    page: 0,
    drawPending: false,
    socket: null,
    timings: { fetchMs: null, drawMs: null }, // last re-sync and redraw, for tests and the console
  };

  const num = C.num;
  function fmt(v, digits) {
    if (v === null || v === undefined || v === "") return "—";
    if (v === "inf" || v === "-inf" || v === "nan") return "diverged";
    const f = Number(v);
    if (!Number.isFinite(f)) return String(v);
    return Number(f.toPrecision(digits || 4)).toString();
  }
  const fmtDuration = window.LuminideClocks.formatDuration;
  function setText(id, v) {
    const el = document.getElementById(id);
    if (el) el.textContent = v;
  }

  // ---------------------------------------------------------------- figures
  function layout(extra) {
    const base = {
      margin: { l: 56, r: 16, t: 10, b: 42 },
      font: { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 11.5, color: "#374151" },
      paper_bgcolor: "#fff",
      plot_bgcolor: "#fff",
      showlegend: true,
      legend: { orientation: "h", y: -0.22, x: 0, font: { size: 11 } },
      hovermode: "closest",
    };
    const out = Object.assign(base, extra || {});
    for (const axis of ["xaxis", "yaxis"]) {
      out[axis] = Object.assign({ gridcolor: "#eef0f4", zeroline: false, automargin: true }, (extra || {})[axis]);
    }
    return out;
  }

  function rankColor(rank, total) {
    if (!rank) return GREY;
    const t = total <= 1 ? 0 : (rank - 1) / (total - 1);
    return RANK_SCALE[Math.min(RANK_SCALE.length - 1, Math.floor(t * RANK_SCALE.length))];
  }

  function historyFigure(s) {
    const h = s.history;
    const last = h.x.length ? h.x[h.x.length - 1] : 0;
    const values = h.y.map(num).filter((v) => v !== null && Number.isFinite(v));
    const single = values.length === 1 ? values[0] : null;
    const data = [
      {
        name: s.experiment.objective,
        x: h.x,
        y: h.y.map(num),
        type: "scatter",
        mode: "markers",
        marker: { color: "#4f46e5", size: 7, opacity: 0.75 },
        hovertemplate: "trial %{x}<br>%{y:.5g}<extra></extra>",
      },
      {
        name: "best so far",
        x: h.x,
        y: h.best.map(num),
        type: "scatter",
        mode: "lines",
        line: { color: "#dc2626", width: 2, shape: "hv" },
        hovertemplate: "best after trial %{x}: %{y:.5g}<extra></extra>",
      },
    ];
    return {
      data: data,
      layout: layout({
        uirevision: "history",
        xaxis: {
          title: { text: "trial", standoff: 6 },
          tickformat: "d",
          dtick: last < 15 ? 1 : undefined,
          range: h.x.length < 2 ? [-0.5, Math.max(1, last) + 0.5] : undefined,
        },
        // One value: Plotly would centre it on a unit range (a loss axis down to -0.5).
        yaxis: { title: { text: s.experiment.objective }, range: single > 0 ? [0, 2 * single] : undefined },
      }),
    };
  }

  /** Learning curves of `field` ("val" or "score"), one trace per trial for small sweeps,
   *  one per colour band for large ones (nulls break the lines between trials). */
  function curvesFigure(s, field, yTitle) {
    const rows = s.trials;
    const ranked = rows.filter((r) => r.rank);
    const total = ranked.length;
    const groups = new Map(); // key -> {name, color, dash, width, opacity, x, y, text, order}
    function group(key, props) {
      if (!groups.has(key)) groups.set(key, Object.assign({ x: [], y: [], text: [] }, props));
      return groups.get(key);
    }
    const perTrial = total <= PER_TRIAL_TRACES;
    let plotted = 0;
    let running = 0;
    for (const r of rows) {
      const curve = state.curves.get(r.number);
      if (!curve || !curve.epoch.length) continue;
      const ys = curve[field].map(num);
      if (!ys.some((v) => v !== null)) continue;
      let g;
      if (r.state === "running") {
        g = group("running", { name: "running", color: RUNNING, dash: "dash", width: 2, opacity: 1, order: 0 });
      } else if (r.rank && r.rank === 1) {
        g = group("best", { name: "best (trial " + r.number + ")", color: RANK_SCALE[0], width: 3, opacity: 1, order: 1 });
      } else if (r.rank && perTrial) {
        g = group("t" + r.number, { name: "trial " + r.number + " (#" + r.rank + ")", color: rankColor(r.rank, total), width: 1.6, opacity: 0.95, order: 2 + r.rank });
      } else if (r.rank) {
        const band = Math.min(RANK_SCALE.length - 1, Math.floor(((r.rank - 1) / Math.max(1, total - 1)) * RANK_SCALE.length));
        const lo = Math.floor((band / RANK_SCALE.length) * (total - 1)) + 1;
        const hi = Math.floor(((band + 1) / RANK_SCALE.length) * (total - 1)) + 1;
        g = group("b" + band, { name: "rank " + lo + "–" + Math.max(lo, hi), color: RANK_SCALE[band], width: 1.2, opacity: 0.8, order: 2 + band });
      } else {
        g = group("grey", { name: r.state === "complete" ? "unranked" : "failed / stopped", color: GREY, width: 1, opacity: 0.6, order: 1000 });
      }
      if (g.x.length) {
        g.x.push(null);
        g.y.push(null);
        g.text.push("");
      }
      // x is epochs completed, as on a run's own page: its first epoch (0 or 1) ends at 1.
      const first = curve.epoch[0];
      for (let i = 0; i < curve.epoch.length; i++) {
        // An epoch without a value (no score computed for it) is skipped, so the trial's
        // line goes on; nulls only separate trials sharing a trace.
        if (ys[i] === null) continue;
        g.x.push(curve.epoch[i] - first + 1);
        g.y.push(ys[i]);
        g.text.push("trial " + r.number + (r.rank ? " · #" + r.rank : " · " + r.state));
      }
      plotted++;
      if (r.state === "running") running++;
    }
    // Grey first (underneath), then worst to best, best last (on top); running on top.
    const traces = [...groups.values()]
      .sort((a, b) => b.order - a.order)
      .map((g) => ({
        name: g.name,
        x: g.x,
        y: g.y,
        text: g.text,
        type: "scattergl",
        mode: g.x.length < 400 ? "lines+markers" : "lines",
        line: { color: g.color, width: g.width, dash: g.dash || "solid" },
        marker: { color: g.color, size: 4 },
        opacity: g.opacity,
        connectgaps: false,
        hovertemplate: "%{text}<br>epoch %{x}<br>%{y:.5g}<extra></extra>",
      }));
    // A diverging trial can sit orders of magnitude above the rest: switch to a log axis.
    let lo = Infinity;
    let hi = -Infinity;
    let lastEpoch = 0;
    for (const g of groups.values()) {
      for (const x of g.x) if (x !== null) lastEpoch = Math.max(lastEpoch, x);
      for (const v of g.y) {
        if (v === null) continue;
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
    }
    const logY = lo > 0 && hi / lo > 20;
    return {
      plotted: plotted,
      running: running,
      data: traces,
      layout: layout({
        uirevision: "curves-" + field,
        // Whole epochs: no 0.5 ticks on a Fast Sweep's few epochs.
        xaxis: { title: { text: "epoch", standoff: 6 }, dtick: lastEpoch < 15 ? 1 : undefined },
        yaxis: { title: { text: yTitle + (logY ? " (log)" : "") }, type: logY ? "log" : "linear", ...(logY ? logTicks(lo, hi) : {}) },
      }),
    };
  }

  // Log-axis ticks at 1, 2 and 5 times powers of ten, labelled in full: Plotly's own minor
  // labels read "5" for 0.5.
  function logTicks(lo, hi) {
    const vals = [];
    const steps = Math.log10(hi / lo) > 3 ? [1] : [1, 2, 5]; // a diverging trial: decades only
    for (let d = Math.floor(Math.log10(lo)); d <= Math.ceil(Math.log10(hi)); d++) {
      for (const m of steps) {
        const v = Number((m * Math.pow(10, d)).toPrecision(1));
        if (v >= lo / 1.5 && v <= hi * 1.5) vals.push(v);
      }
    }
    return { tickvals: vals, ticktext: vals.map(String) };
  }

  function parcoordsFigure(s) {
    const pc = s.parcoords;
    const color = pc.color.map(num);
    const finite = color.filter((v) => v !== null);
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of finite) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    if (!finite.length) [lo, hi] = [0, 1];
    const dims = pc.dimensions.map((d) => {
      const dim = { label: d.label, values: d.values.map((v) => (num(v) === null ? NaN : num(v))) };
      if (d.range) dim.range = d.range;
      if (d.tickvals) {
        dim.tickvals = d.tickvals;
        dim.ticktext = d.ticktext;
      }
      return dim;
    });
    return {
      data: [
        {
          type: "parcoords",
          dimensions: dims,
          line: {
            color: color.map((v) => (v === null ? NaN : v)),
            colorscale: RANK_SCALE.map((c, i) => [i / (RANK_SCALE.length - 1), c]),
            cmin: lo,
            cmax: hi > lo ? hi : lo + 1e-9,
            showscale: finite.length > 1,
            colorbar: { thickness: 10, len: 0.8, x: 1.05, title: { text: "" } }, // clear of the last axis' ticks
          },
          labelfont: { size: 11 },
          // Slanted when many axes, or neighbouring labels such as "weight_decay (log)" overlap.
          labelangle: dims.length > 6 ? -12 : 0,
          tickfont: { size: 10 },
        },
      ],
      layout: Object.assign(layout({ uirevision: "parcoords" }), { margin: { l: 50, r: 96, t: 56, b: 22 } }),
    };
  }

  function importanceFigure(imp) {
    const items = imp.importance.slice().reverse();
    return {
      data: [
        {
          type: "bar",
          orientation: "h",
          x: items.map((d) => num(d.value)),
          y: items.map((d) => d.name),
          marker: { color: "#4f46e5" },
          hovertemplate: "%{y}: %{x:.3f}<extra></extra>",
          text: items.map((d) => fmt(d.value, 2)),
          textposition: "auto",
        },
      ],
      layout: layout({ uirevision: "importance", showlegend: false, margin: { l: 96, r: 16, t: 10, b: 36 }, xaxis: { title: { text: "importance", standoff: 6 }, rangemode: "tozero" } }),
    };
  }

  function emptyChart(el, text) {
    if (el.querySelector(".chart-empty") && el.querySelector(".chart-empty").textContent === text) return;
    if (window.Plotly && el.classList.contains("js-plotly-plot")) window.Plotly.purge(el);
    el.innerHTML = "";
    const div = document.createElement("div");
    div.className = "chart-empty";
    div.textContent = text;
    el.append(div);
  }

  const nextFrame = () => new Promise((resolve) => requestAnimationFrame(() => resolve()));

  /** Redraw: the table first, then one chart per frame, so a big sweep never freezes the
   *  page; a newer redraw makes an older one stop. */
  function draw() {
    if (state.drawPending) return;
    state.drawPending = true;
    requestAnimationFrame(async () => {
      state.drawPending = false;
      const s = state.summary;
      if (!s) return;
      const generation = (state.drawGeneration = (state.drawGeneration || 0) + 1);
      const t0 = performance.now();
      let t = t0;
      const lap = (name) => {
        const now = performance.now();
        state.timings[name] = Math.round(now - t);
        t = now;
      };
      renderTable();
      lap("table");
      const steps = [
        () => {
          const el = document.getElementById("chart-history");
          if (s.history.x.length) C.draw(el, historyFigure(s));
          el.dataset.points = String(s.history.x.length);
          lap("history");
        },
        () => {
          const el = document.getElementById("chart-curves");
          const fig = curvesFigure(s, "val", "epoch val loss");
          if (fig.plotted) C.draw(el, fig);
          el.dataset.trials = String(fig.plotted);
          el.dataset.running = String(fig.running);
          lap("curves");
        },
        () => {
          const el = document.getElementById("chart-score");
          const fig = curvesFigure(s, "score", "Early Ranking score");
          if (fig.plotted) C.draw(el, fig);
          el.dataset.trials = String(fig.plotted);
          lap("score");
        },
        () => {
          const el = document.getElementById("chart-parcoords");
          const pc = s.parcoords;
          if (pc.numbers.length) C.draw(el, parcoordsFigure(s));
          el.dataset.lines = String(pc.numbers.length);
          setText("parcoords-note", pc.total > pc.numbers.length ? "best " + pc.numbers.length + " of " + pc.total + " trials · " : "");
          lap("parcoords");
        },
      ];
      for (const step of steps) {
        await nextFrame();
        if (generation !== state.drawGeneration) return;
        step();
      }
      state.timings.drawMs = Math.round(performance.now() - t0);
    });
  }

  // ---------------------------------------------------------------- stats + table
  function updateStats(s) {
    const c = s.counts;
    const done = (c.complete || 0) + (c.failed || 0) + (c.pruned || 0);
    setText("stat-done", done + " / " + (s.experiment.n_trials || s.trials.length));
    setText("stat-running", String(c.running || 0) + (c.queued ? " (+" + c.queued + " queued)" : ""));
    setText("stat-failed", String((c.failed || 0) + (c.pruned || 0)));
    setText("stat-best", fmt(s.experiment.best_value));
    const best = s.trials.find((r) => r.rank === 1);
    setText("stat-best-trial", best ? "#" + best.number : "—");
    setText("stat-epochs", String(s.epochs_total));
    const dur = document.getElementById("stat-duration");
    if (s.experiment.started_at) dur.dataset.started = s.experiment.started_at;
    dur.dataset.finished = s.experiment.finished_at || "";
  }

  function columns(s) {
    const cols = [
      { key: "number", label: "Trial", num: true },
      { key: "state", label: "State" },
      { key: "rank", label: "Rank", num: true },
    ];
    // A long name may wrap after "_" (weight_decay), so the table fits the page.
    for (const p of s.params) cols.push({ key: "p:" + p.name, label: p.name.replace(/_/g, "_\u200b"), num: p.type !== "categorical", wrap: true });
    // The objective is the score (Fast Sweep) or the best val loss (full): show the other.
    cols.push(
      { key: "value", label: s.experiment.fast ? "Value (score)" : "Value (best val loss)", num: true },
      s.experiment.fast ? { key: "best_val_loss", label: "Best val loss", num: true } : { key: "score", label: "Score", num: true },
      { key: "epochs", label: "Epochs", num: true },
      { key: "seconds", label: "Duration", num: true },
      { key: "links", label: "Files", nosort: true }
    );
    // Why a trial failed or was retried: a column only once some trial has a note.
    if (s.trials.some((t) => t.reason)) cols.push({ key: "reason", label: "Note", nosort: true });
    return cols;
  }

  function sortValue(r, key) {
    if (key.startsWith("p:")) return r.params[key.slice(2)];
    if (key === "rank") return r.rank || Infinity;
    if (["value", "score", "best_val_loss"].includes(key)) {
      const v = r[key];
      if (v === "inf" || v === "nan") return Infinity;
      return v === null ? Infinity : Number(v);
    }
    return r[key];
  }

  function renderHead(cols) {
    const head = document.getElementById("trials-head");
    const sig = cols.map((c) => c.key).join("|") + "/" + state.sort.key + state.sort.dir;
    if (head.dataset.sig === sig) return;
    head.dataset.sig = sig;
    head.replaceChildren(
      ...cols.map((c) => {
        const th = document.createElement("th");
        th.textContent = c.label;
        th.dataset.key = c.key;
        if (c.num) th.className = "num";
        if (c.wrap) th.classList.add("wrap");
        if (c.key === state.sort.key) th.classList.add(state.sort.dir > 0 ? "sorted-asc" : "sorted-desc");
        if (!c.nosort) {
          th.addEventListener("click", () => {
            state.sort = { key: c.key, dir: state.sort.key === c.key ? -state.sort.dir : 1 };
            state.page = 0;
            renderTable();
          });
        }
        return th;
      })
    );
  }

  function fileLink(path, label) {
    const a = document.createElement("a");
    a.href = root.dataset.fileUrl.replace(/FILE$/, path) + "?inline=1";
    a.textContent = label;
    a.target = "_blank";
    return a;
  }

  function renderTable() {
    const s = state.summary;
    if (!s) return;
    const cols = columns(s);
    renderHead(cols);
    const { key, dir } = state.sort;
    const rows = s.trials.slice().sort((a, b) => {
      const va = sortValue(a, key);
      const vb = sortValue(b, key);
      if (va === vb) return (a.number - b.number) * dir;
      if (va === undefined || va === null) return 1;
      if (vb === undefined || vb === null) return -1;
      return (va < vb ? -1 : 1) * dir;
    });
    const pages = Math.max(1, Math.ceil(rows.length / PAGE));
    state.page = Math.min(state.page, pages - 1);
    const start = state.page * PAGE;
    const slice = rows.slice(start, start + PAGE);
    const body = document.getElementById("trials-body");
    body.replaceChildren(
      ...slice.map((r) => {
        const tr = document.createElement("tr");
        tr.dataset.trial = r.number;
        if (r.greyed) tr.className = "greyed";
        if (r.rank === 1) tr.className = "best";
        for (const c of cols) {
          const td = document.createElement("td");
          if (c.num) td.className = "num";
          if (c.key === "state") {
            const badge = document.createElement("span");
            badge.className = "badge badge-" + r.state;
            badge.textContent = r.state[0].toUpperCase() + r.state.slice(1);
            if (r.reason) badge.title = r.reason; // the Note column may be scrolled away
            td.append(badge);
          } else if (c.key === "rank") {
            if (r.rank) {
              const chip = document.createElement("span");
              chip.className = "rank-chip";
              chip.style.background = rankColor(r.rank, s.n_complete);
              chip.textContent = r.rank;
              td.append(chip);
            } else td.textContent = "—";
          } else if (c.key.startsWith("p:")) {
            const v = r.params[c.key.slice(2)];
            td.textContent = typeof v === "number" ? fmt(v) : v === undefined ? "—" : String(v);
          } else if (c.key === "number") {
            const a = document.createElement("a");
            a.href = location.pathname + "?trial=" + r.number;
            a.textContent = "trial " + r.number;
            a.title = "Live charts and log of this trial";
            td.className = "";
            td.append(a);
          } else if (c.key === "seconds") {
            td.textContent = fmtDuration(r.seconds);
          } else if (c.key === "links") {
            td.className = "links";
            if (r.state !== "queued") td.append(fileLink("trial" + r.number + "/log.txt", "log"), fileLink("trial" + r.number + "/history.csv", "history"));
            td.append(fileLink("trial" + r.number + "/config.yaml", "config"));
          } else if (c.key === "reason") {
            td.className = "reason";
            td.textContent = r.reason;
            td.title = r.reason;
          } else if (["value", "score", "best_val_loss"].includes(c.key)) {
            td.textContent = fmt(r[c.key]);
            const soFar = s.experiment.fast ? r.score : r.best_val_loss;
            if (c.key === "value" && r.state === "running" && r.value === null && soFar !== null) {
              // A running trial has no value yet: show what it would be told now.
              td.textContent = fmt(soFar);
              td.classList.add("so-far");
              td.title = "So far: the trial is still running";
            }
          } else {
            td.textContent = r[c.key] === null || r[c.key] === undefined ? "—" : String(r[c.key]);
          }
          tr.append(td);
        }
        return tr;
      })
    );
    if (!rows.length) body.innerHTML = '<tr><td class="empty" colspan="' + cols.length + '">No trials yet</td></tr>';
    setText("trials-range", rows.length ? start + 1 + "–" + Math.min(rows.length, start + PAGE) + " of " + rows.length : "");
    document.getElementById("page-prev").disabled = state.page === 0;
    document.getElementById("page-next").disabled = state.page >= pages - 1;
  }
  document.getElementById("page-prev").addEventListener("click", () => {
    state.page = Math.max(0, state.page - 1);
    renderTable();
  });
  document.getElementById("page-next").addEventListener("click", () => {
    state.page += 1;
    renderTable();
  });

  // ---------------------------------------------------------------- experiment state
  function setExpState(expState, failure) {
    if (!expState) return;
    const previous = state.expState;
    state.expState = expState;
    root.dataset.state = expState;
    const badge = document.querySelector("#exp-state .badge");
    if (badge) {
      badge.className = "badge badge-" + expState;
      // A sweep ended by Stop can be resumed: "Stopped", as the server renders it.
      const label = expState === "cancelled" ? "Stopped" : expState[0].toUpperCase() + expState.slice(1);
      badge.innerHTML = (expState === "running" ? '<span class="pulse"></span>' : "") + label;
    }
    const failed = expState === "failed" && Boolean(failure);
    document.getElementById("failure").hidden = !failed; // resumed: the banner goes
    if (failed) setText("failure-reason", failure);
    if (previous && previous !== expState && ACTIVE.has(previous) !== ACTIVE.has(expState)) refreshFragments(["sweep-actions", "tuned"]);
  }

  let tunedStamp; // config-tuned.yaml's mtime the page shows (undefined: not known yet)
  /** Re-render server-side parts: the buttons after a state change, the tuned config card. */
  async function refreshFragments(names) {
    const conn = document.getElementById("conn");
    await window.LuminideFragments.refresh(names);
    const fresh = document.getElementById("conn");
    if (conn && fresh && fresh !== conn) fresh.replaceWith(conn); // the live badge stays as it is
  }

  // ---------------------------------------------------------------- HTTP re-sync
  async function fetchData(curves) {
    const url = root.dataset.dataUrl + (curves === null ? "" : "?curves=" + [...curves].join(","));
    return window.LuminideSocket.fetchJSON(url);
  }

  function apply(data, full) {
    if (full) state.curves.clear();
    for (const [k, v] of Object.entries(data.curves || {})) state.curves.set(Number(k), v);
    state.summary = data;
    setExpState(data.experiment.state, data.experiment.failure_reason);
    updateStats(data);
    const stamp = data.experiment.tuned_mtime;
    if (tunedStamp !== undefined && tunedStamp !== stamp) refreshFragments(["tuned"]); // a new best
    tunedStamp = stamp;
    maybeImportance(data);
    draw();
  }

  /** Trials whose curve here is behind the summary (the summary's `epochs` is the cursor). */
  function stale(data) {
    const out = [];
    for (const r of data.trials) {
      const c = state.curves.get(r.number);
      if (r.epochs > 0 && (!c || c.n !== r.epochs)) out.push(r.number);
    }
    return out;
  }

  async function sync(full) {
    if (state.syncing) {
      state.again = true;
      if (full) state.fullAgain = true;
      return state.syncing;
    }
    state.syncing = (async () => {
      try {
        let wantFull = full || state.summary === null;
        do {
          state.again = false;
          const t0 = performance.now();
          const dirty = [...state.dirty];
          state.dirty.clear();
          let data = await fetchData(wantFull ? null : dirty);
          state.timings.fetchMs = Math.round(performance.now() - t0);
          apply(data, wantFull);
          const behind = stale(data);
          if (behind.length) {
            // A curve fell behind (lost event, reconnect): fetch exactly those.
            data = await fetchData(behind.length > data.trials.length / 2 ? null : behind);
            apply(data, behind.length > data.trials.length / 2);
          }
          state.lastMs = performance.now() - t0;
          wantFull = !!state.fullAgain;
          state.fullAgain = false;
        } while (state.again);
      } catch (e) {
        console.warn("sweep re-sync failed", e);
      } finally {
        state.syncing = null;
      }
    })();
    return state.syncing;
  }

  /** Throttled: a burst of events costs one request; big sweeps wait longer between. */
  function scheduleSync() {
    if (state.timer) return;
    const delay = Math.max(250, Math.min(3000, 2 * (state.lastMs + (state.timings.drawMs || 0))));
    state.timer = setTimeout(() => {
      state.timer = null;
      sync(false);
    }, delay);
  }

  const IMPORTANCE_FEW = 10;

  function maybeImportance(data) {
    const note = document.getElementById("importance-note");
    if (data.n_complete < 2) {
      if (note) note.textContent = "Needs 2 completed trials (" + data.n_complete + " so far)";
      return;
    }
    if (data.n_complete === state.importanceFor || state.importanceTimer) return;
    if (note && state.importanceFor < 0) note.textContent = "Computing importance of " + data.n_complete + " trials…";
    // Slow on the server (cached there): at most once per 5 s while trials complete.
    state.importanceTimer = setTimeout(async () => {
      state.importanceTimer = null;
      try {
        const imp = await window.LuminideSocket.fetchJSON(root.dataset.importanceUrl);
        // What the answer was computed for: while a sweep runs the server may answer an
        // older result (stale) for a while; asking again later brings the current one.
        state.importanceFor = imp.n_complete;
        const el = document.getElementById("chart-importance");
        if (imp.status === "ok" && imp.importance.length) {
          C.draw(el, importanceFigure(imp));
          el.dataset.params = String(imp.importance.length);
          // fANOVA fits a forest to the completed trials: with few, its shares are rough.
          const few = imp.n_complete < IMPORTANCE_FEW;
          setText("importance-basis", " · " + imp.n_complete + " trials" + (few ? " (few: a rough guide)" : ""));
        } else {
          emptyChart(el, imp.status === "error" ? "Not available: " + imp.message : "Needs 2 completed trials");
        }
        if (state.summary.n_complete !== state.importanceFor) maybeImportance(state.summary);
      } catch (e) {
        console.warn("importance failed", e);
      }
    }, state.importanceFor < 0 ? 0 : 5000);
  }

  // ---------------------------------------------------------------- websocket
  function handle(msg) {
    switch (msg.type) {
      case "hello":
        if (msg.state) setExpState(msg.state);
        if (!state.summary || msg.cursor !== state.summary.trials.length) scheduleSync();
        break;
      case "trial.update":
      case "history.rows":
        if (msg.type === "history.rows" && !msg.truncated) {
          // Rows inside an epoch do not change the sweep's charts; epoch ends arrive as
          // trial.update with a new epochs_done.
          return;
        }
        if (typeof msg.trial === "number") state.dirty.add(msg.trial);
        scheduleSync();
        break;
      case "experiment.update": {
        const wasActive = ACTIVE.has(state.expState);
        setExpState(msg.state, msg.failure_reason);
        // The sweep just finished (or resumed): show its final table now, not throttled.
        if (wasActive !== ACTIVE.has(msg.state)) sync(false);
        else scheduleSync();
        break;
      }
      default:
        break;
    }
  }

  function setConn(kind, text) {
    const el = document.getElementById("conn");
    if (!el) return;
    el.className = "conn " + kind;
    el.textContent = text;
  }

  window.luminideSweep = {
    state: state,
    sync: sync,
    dropSocket: () => state.socket && state.socket.drop(),
  };

  sync(true).then(() => {
    state.socket = window.LuminideSocket.socket({
      path: root.dataset.wsPath,
      onOpen: () => sync(false),
      onMessage: handle,
      onPoll: () => sync(false),
      isActive: () => ACTIVE.has(state.expState),
      status: setConn,
    });
  });
})();
