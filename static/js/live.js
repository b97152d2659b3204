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

  global.LuminideSocket = { socket, fetchJSON };
})(window);
