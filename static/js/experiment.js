/* Experiment page: live charts, live log and status over a websocket, with HTTP re-sync.
 *
 * Websocket messages are hints and deltas (at-most-once). Every message carries a cursor;
 * on connect, on reconnect and whenever a message does not continue from our cursor, the
 * page re-syncs over HTTP with ?after=<cursor>. While the socket is down and the run is
 * active, the page polls the same endpoints, so no point is ever lost.
 */
(function () {
  "use strict";

  const root = document.getElementById("experiment");
  if (!root) return;
  const C = window.LuminideCharts;
  const ACTIVE = new Set(["queued", "running"]);

  const state = {
    expState: root.dataset.state,
    trial: Number(root.dataset.trial || 0),
    store: new C.HistoryStore(),
    logCursor: 0,
    live: null, // LuminideSocket.socket (static/js/live.js)
    syncing: null,
    resyncAgain: false,
    drawPending: false,
    lastHeard: 0,
    trace: [], // recent messages, for the e2e tests and the console
  };

  const lossEl = document.getElementById("chart-loss");
  const epochEl = document.getElementById("chart-epoch");
  const logEl = document.getElementById("log");
  const followEl = document.getElementById("log-follow");
  const connEl = document.getElementById("conn");

  // ---------------------------------------------------------------- drawing
  function scheduleDraw() {
    if (state.drawPending) return;
    state.drawPending = true;
    requestAnimationFrame(() => {
      state.drawPending = false;
      const s = state.store;
      if (s.train.x.length || s.val.x.length || s.epochs.size) C.draw(lossEl, C.lossFigure(s, { uirevision: "loss" }));
      if (s.epochs.size) C.draw(epochEl, C.epochFigure(s, { uirevision: "epoch" }));
      lossEl.dataset.points = String(s.train.x.length + s.val.x.length);
      epochEl.dataset.points = String(s.epochs.size);
    });
  }

  // ---------------------------------------------------------------- status
  function setText(id, value) {
    const el = document.getElementById(id);
    if (el && value !== undefined && value !== null) el.textContent = value;
  }
  function fmt(v) {
    if (v === null || v === undefined) return "—";
    if (v === "inf" || v === "-inf" || v === "nan") return "diverged";
    const f = Number(v);
    return Number.isFinite(f) ? Number(f.toPrecision(4)).toString() : String(v);
  }

  // A run's state only moves forward (queued -> running -> finished). An HTTP answer that
  // left the server before a websocket update can arrive after it: never step back.
  function stateRank(s) {
    return s === "queued" ? 0 : s === "running" ? 1 : 2;
  }

  function updateExperiment(exp) {
    if (!exp) return;
    const previous = state.expState;
    if (exp.state && stateRank(exp.state) < stateRank(previous)) exp = { ...exp, state: null };
    if (exp.state) {
      state.expState = exp.state;
      root.dataset.state = exp.state;
      const badge = document.querySelector("#exp-state .badge");
      if (badge) {
        badge.className = "badge badge-" + exp.state;
        badge.innerHTML = (exp.state === "running" ? '<span class="pulse"></span>' : "") + exp.state[0].toUpperCase() + exp.state.slice(1);
      }
      if (!ACTIVE.has(exp.state)) {
        const cancel = document.getElementById("cancel-form");
        if (cancel) cancel.remove();
        // Placeholders still here (nothing was drawn): stop saying "waiting".
        for (const [id, text] of [
          ["chart-loss", "No history.csv rows were stored."],
          ["chart-epoch", "No epoch completed."],
        ]) {
          const empty = document.querySelector("#" + id + " .chart-empty");
          if (empty) empty.textContent = text;
        }
      }
    }
    if (exp.failure_reason && exp.state === "failed") {
      document.getElementById("failure").hidden = false;
      setText("failure-reason", exp.failure_reason);
    }
    if (root.dataset.clock === "experiment") setClock(exp);
    if (previous && ACTIVE.has(previous) && exp.state && !ACTIVE.has(exp.state)) onFinished();
  }

  // Started and Duration: the experiment's, or the charted trial's where it has several.
  const shownClock = {}; // what the stats show, to re-apply over an older server render
  const shownTrial = {};

  function setClock(obj) {
    if (obj.started_at) shownClock.started_at = obj.started_at;
    if (obj.finished_at) shownClock.finished_at = obj.finished_at;
    const dur = document.getElementById("stat-duration");
    if (obj.started_at) {
      dur.dataset.started = obj.started_at;
      const d = new Date(obj.started_at);
      setText("stat-started", d.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false }));
    }
    if (obj.finished_at) dur.dataset.finished = obj.finished_at;
  }

  function updateTrial(t) {
    if (!t) return;
    const number = t.trial !== undefined && typeof t.trial === "number" ? t.trial : t.number;
    if (number !== undefined && number !== state.trial) return;
    if (t !== shownTrial) Object.assign(shownTrial, t);
    if (t.node !== undefined) setText("stat-node", t.node || "—");
    if (t.epochs_done !== undefined) setText("stat-epochs", t.epochs_done);
    if (t.best_val_loss !== undefined) setText("stat-best", fmt(t.best_val_loss));
    if (t.score !== undefined) setText("stat-score", fmt(t.score));
    const rows = t.rows_stored !== undefined ? t.rows_stored : t.cursor; // status JSON : trial.update
    if (rows !== undefined) setText("stat-rows", rows);
    if (root.dataset.clock === "trial") setClock(t);
  }

  // Server-rendered parts (output files, the config the run reads) change while it runs:
  // refetched as page fragments (fragments.js) at most every FILES_PERIOD_MS as epochs
  // complete, and once at the end with the stats. A Fast Training's stats come along every
  // time: its predicted final val loss is calibrated on the server for the epochs done.
  const FILES_PERIOD_MS = 10000;
  let filesFetchedAt = 0; // the first completed epoch refetches
  const hasPrediction = document.querySelector(".stat.predicted") !== null;

  async function refreshServerParts(atEnd) {
    filesFetchedAt = Date.now();
    const parts = ["config", "output-files"];
    if (atEnd || hasPrediction) parts.push("stats");
    await window.LuminideFragments.refresh(parts);
    if (!parts.includes("stats")) return;
    // The server rendered the stats a moment ago: live updates since then win.
    updateTrial(shownTrial);
    setClock(shownClock);
  }

  function epochCompleted() {
    if (Date.now() - filesFetchedAt >= FILES_PERIOD_MS) refreshServerParts(false);
  }

  async function onFinished() {
    await resync(); // last re-sync first
    await refreshServerParts(true);
  }

  // ---------------------------------------------------------------- log
  function appendLog(text) {
    if (!text || !logEl) return; // API experiments have no log
    const atBottom = logEl.scrollTop + logEl.clientHeight >= logEl.scrollHeight - 4;
    logEl.append(document.createTextNode(text));
    // Keep the DOM bounded on chatty runs.
    if (logEl.textContent.length > 400000) logEl.textContent = logEl.textContent.slice(-300000);
    if (followEl.checked || atBottom) logEl.scrollTop = logEl.scrollHeight;
  }

  function applyLog(msg) {
    const text = msg.text !== undefined ? msg.text : Array.isArray(msg.lines) ? msg.lines.map((l) => l + "\n").join("") : "";
    const start = msg.after !== undefined ? msg.after : msg.offset;
    const cursor = msg.cursor;
    if (start !== undefined && start !== null && start !== state.logCursor) {
      if (start < state.logCursor && cursor !== undefined && cursor <= state.logCursor) return "stale";
      return "gap"; // missed bytes, or a partial overlap: re-read from our cursor
    }
    appendLog(text);
    if (cursor !== undefined && cursor !== null) state.logCursor = cursor;
    return "ok";
  }

  // ---------------------------------------------------------------- HTTP re-sync
  const fetchJSON = window.LuminideSocket.fetchJSON;

  // While the first epoch runs its length is unknown, so the server places its rows on a
  // provisional x scale. Once the first epoch is complete, reload the whole history once
  // so those early points move to their final places.
  function applyHistory(payload) {
    const s = state.store;
    const hadEpochs = s.epochs.size > 0;
    const result = s.apply(payload);
    if (result === "ok" && !hadEpochs && s.epochs.size > 0 && s.incremental) {
      state.fullReload = true;
      resync();
    }
    return result;
  }

  async function syncHistory() {
    const after = state.fullReload ? null : state.store.cursor;
    state.fullReload = false;
    const url = root.dataset.historyUrl + "?trial=" + state.trial + (after === null ? "" : "&after=" + after);
    const data = await fetchJSON(url);
    updateExperiment(data.experiment);
    updateTrial(data.trial);
    if (data.history) {
      const r = applyHistory(data.history);
      // A websocket batch moved the cursor while this request was in flight: ask again.
      if (r === "gap") state.resyncAgain = true;
      scheduleDraw();
    }
  }

  // Log reads are serialised: two overlapping reads from one cursor would print twice.
  let logChain = Promise.resolve();
  function syncLog() {
    if (!logEl) return logChain;
    logChain = logChain.then(readLog, readLog);
    return logChain;
  }

  async function readLog() {
    for (let attempt = 0; attempt < 4; attempt++) {
      const after = state.logCursor;
      const data = await fetchJSON(root.dataset.logUrl + "?trial=" + state.trial + "&after=" + after);
      if (state.logCursor !== after) continue; // a websocket message moved the cursor: ask again
      if (data.offset < after && !data.truncated) {
        // The log shrank (replaced): read it again from the start.
        logEl.textContent = "";
        state.logCursor = 0;
        continue;
      }
      if (data.offset > after) logEl.textContent = "… (earlier output cut) …\n";
      appendLog(data.text);
      state.logCursor = data.cursor;
      return;
    }
  }

  async function resync() {
    if (state.syncing) {
      state.resyncAgain = true;
      return state.syncing;
    }
    state.syncing = (async () => {
      try {
        state.lastHeard = Date.now();
        let rounds = 0;
        do {
          state.resyncAgain = false;
          await Promise.all([syncHistory(), syncLog()]);
        } while (state.resyncAgain && ++rounds < 5);
      } catch (e) {
        console.warn("re-sync failed", e);
      } finally {
        state.syncing = null;
      }
    })();
    return state.syncing;
  }

  // ---------------------------------------------------------------- websocket
  function setConn(kind, text) {
    connEl.className = "conn " + kind;
    connEl.textContent = text;
  }

  function handle(msg) {
    // Payloads: sweeps/events.py (the one definition shared with the server).
    state.trace.push([Date.now(), msg.type, msg.after, msg.cursor, msg.state]);
    if (state.trace.length > 300) state.trace.shift();
    switch (msg.type) {
      case "hello": {
        const t = (msg.trials || []).find((x) => x.trial === state.trial);
        if (msg.state) updateExperiment({ state: msg.state });
        if (t && t.cursor !== state.store.cursor) resync();
        break;
      }
      case "history.rows": {
        if (msg.trial !== state.trial) return;
        if (msg.truncated) {
          resync();
          return;
        }
        const r = applyHistory(msg);
        if (r === "gap") resync();
        else if (r === "ok") scheduleDraw();
        break;
      }
      case "trial.update": {
        if (msg.trial !== state.trial) return;
        const epochsChanged = msg.epochs_done !== state.lastEpochs;
        const scoreChanged = msg.score !== state.lastScore || epochsChanged;
        state.lastScore = msg.score;
        state.lastEpochs = msg.epochs_done;
        updateTrial(msg);
        // Per-epoch summaries (Early Ranking score) come with the HTTP payload.
        if (scoreChanged) resync();
        if (epochsChanged && msg.epochs_done > 0) epochCompleted();
        break;
      }
      case "experiment.update":
        updateExperiment(msg);
        break;
      case "log.lines":
        if (msg.trial !== undefined && msg.trial !== state.trial) return;
        if (applyLog(msg) === "gap") syncLog().catch(() => resync());
        break;
      default:
        break;
    }
  }

  function connect() {
    state.live = window.LuminideSocket.socket({
      path: root.dataset.wsPath,
      onOpen: () => resync(), // connect = re-sync from our cursor
      onMessage: (msg) => {
        state.lastHeard = Date.now();
        handle(msg);
      },
      // While the socket is down and the run is active: poll every 2 s.
      onPoll: () => {
        if (!state.syncing) resync();
      },
      isActive: () => ACTIVE.has(state.expState),
      status: setConn,
    });
  }

  // While the socket is up, re-sync after 10 s of silence during an active run (delivery is
  // at most once; a lost message that is never followed by another would go unnoticed).
  const QUIET_MS = 10000;
  setInterval(() => {
    if (!ACTIVE.has(state.expState) || state.syncing || !state.live) return;
    if (state.live.connected && Date.now() - state.lastHeard > QUIET_MS) resync();
  }, 2000);

  // Debug hooks for the e2e tests and the console.
  window.luminideLive = {
    state: state,
    resync: resync,
    dropSocket: () => state.live && state.live.drop(),
  };

  resync().then(connect);
})();
