/* A live page's websocket: connect, reconnect with backoff, poll over HTTP while it is down.
 *
 *   LuminideSocket.socket({
 *     path: "/ws/experiments/12/",
 *     onOpen()        – connected: re-sync over HTTP from the page's cursor;
 *     onMessage(msg)  – one event (payloads: sweeps/events.py);
 *     onPoll()        – every 2 s while the socket is down and isActive();
 *     isActive()      – whether the watched run is still queued/running;
 *     status(kind, text) – "live" | "down" for the connection badge.
 *   }) -> { close(), drop() }
 *
 * Websocket delivery is at-most-once, so onOpen must re-sync; a page never depends on
 * receiving every message.
 *
 *   LuminideSocket.formatDuration(seconds) – as the server's `duration` filter writes it;
 *   LuminideSocket.durationClock(id) – keeps that element ticking from its data-started to
 *     its data-finished (or now).
 */
(function (global) {
  "use strict";

  function socket(opts) {
    let ws = null;
    let backoff = 500;
    let pollTimer = null;
    let closed = false;

    function status(kind, text) {
      if (opts.status) opts.status(kind, text);
    }

    function startPolling() {
      if (pollTimer || !opts.onPoll) return;
      pollTimer = setInterval(() => {
        if (!opts.isActive || opts.isActive()) opts.onPoll();
      }, 2000);
    }
    function stopPolling() {
      clearInterval(pollTimer);
      pollTimer = null;
    }

    function scheduleReconnect() {
      if (closed) return;
      const delay = backoff;
      backoff = Math.min(backoff * 2, 10000);
      setTimeout(connect, delay);
    }

    function connect() {
      if (closed) return;
      const proto = location.protocol === "https:" ? "wss://" : "ws://";
      let sock;
      try {
        sock = new WebSocket(proto + location.host + opts.path);
      } catch (e) {
        scheduleReconnect();
        return;
      }
      ws = sock;
      sock.onopen = () => {
        backoff = 500;
        status("live", "live");
        stopPolling();
        if (opts.onOpen) opts.onOpen();
      };
      sock.onmessage = (ev) => {
        let msg;
        try {
          msg = JSON.parse(ev.data);
        } catch (e) {
          return;
        }
        opts.onMessage(msg);
      };
      sock.onclose = () => {
        if (ws !== sock) return;
        ws = null;
        status("down", !opts.isActive || opts.isActive() ? "reconnecting" : "offline");
        startPolling();
        scheduleReconnect();
      };
      sock.onerror = () => {};
    }

    connect();
    return {
      drop: () => ws && ws.close(),
      close: () => {
        closed = true;
        stopPolling();
        if (ws) ws.close();
      },
      get connected() {
        return ws !== null && ws.readyState === WebSocket.OPEN;
      },
    };
  }

  /** Fetch JSON, no cache; throws on HTTP errors. */
  async function fetchJSON(url) {
    const resp = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
    if (!resp.ok) throw new Error(url + ": HTTP " + resp.status);
    return resp.json();
  }

  /** "12s", "3m 05s", "1h 02m", "2d 3h" (luminide_tags.duration, rounded the same way). */
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

  function durationClock(id) {
    setInterval(() => {
      const el = document.getElementById(id);
      if (!el || !el.dataset.started) return;
      const start = Date.parse(el.dataset.started);
      const end = el.dataset.finished ? Date.parse(el.dataset.finished) : Date.now();
      if (Number.isFinite(start)) el.textContent = formatDuration((end - start) / 1000);
    }, 1000);
  }

  global.LuminideSocket = { socket, fetchJSON, formatDuration, durationClock };
})(window);
