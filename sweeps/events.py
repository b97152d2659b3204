"""Websocket event payloads: the one definition the server and the browser agree on.

Every event goes to the channel-layer group ``experiment_<id>`` (:func:`group_name`) and is
forwarded verbatim to the websocket clients of :class:`sweeps.consumers.ExperimentConsumer`
as JSON. Events are hints and deltas: the database is the truth, and each event carries a
``cursor`` a client re-syncs from over HTTP (``?after=<cursor>``) after a gap.

Types (``type`` key, dotted; Channels dispatches ``history.rows`` to ``history_rows``):

* ``hello`` (sent by the consumer on connect, not through the group):
  ``{"type", "experiment", "state", "cursor": <trial count>,
  "trials": [{"trial", "trial_id", "state", "cursor": <rows stored>}]}``.
* ``history.rows``: new rows of a trial, as chart data. ``{"type", "experiment", "trial"
  (number), "trial_id", "after" (first row's seq), "cursor" (rows stored after these),
  "step_column", "truncated": bool, "series": {...}, "nonfinite": [...]}``. ``series`` and
  ``nonfinite`` have the shape of :func:`sweeps.history.history_payload`'s. When a batch is
  too large to send (bulk ingest) ``truncated`` is true and ``series`` is empty: fetch
  ``?after=<after>``.
* ``trial.update``: ``{"type", "experiment", "trial", "trial_id", "state",
  "failure_reason", "node", "epochs_done", "best_val_loss", "score", "value",
  "started_at", "finished_at", "cursor" (rows stored)}``.
* ``experiment.update``: ``{"type", "experiment", "number", "name", "kind", "state",
  "failure_reason", "description", "best_value", "created_at", "started_at",
  "finished_at", "cursor" (trial count)}``.
* ``log.lines``: ``{"type", "experiment", "trial", "trial_id", "offset" (byte offset of the
  first line in log.txt), "cursor" (byte offset after the last), "lines": [str, ...]}``.

Several events of one action cross the channel layer as one ``events.batch`` message
(:func:`batch`; one Redis publish instead of one per event); the consumer forwards its
events one by one, so browsers never see it.

Floats use :func:`sweeps.history.json_float` (null when unknown; "nan"/"inf"/"-inf" strings
when not finite); datetimes are ISO 8601 strings or null.
"""

from __future__ import annotations

from datetime import datetime

from sweeps.history import json_float

HISTORY_ROWS = "history.rows"
TRIAL_UPDATE = "trial.update"
EXPERIMENT_UPDATE = "experiment.update"
LOG_LINES = "log.lines"
HELLO = "hello"
EVENTS_BATCH = "events.batch"
EVENT_TYPES = (HISTORY_ROWS, TRIAL_UPDATE, EXPERIMENT_UPDATE, LOG_LINES)


def group_name(experiment_id: int) -> str:
    """The channel-layer group of one experiment's watchers."""
    return f"experiment_{experiment_id}"


def batch(events: list[dict]) -> dict:
    """``events.batch``: several events for one group message, delivered in order."""
    return {"type": EVENTS_BATCH, "events": events}


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None


def history_rows(trial, *, after: int, cursor: int, chart: dict | None, step_column: str) -> dict:
    """``history.rows``: ``chart`` is :func:`sweeps.history.chart_series` output, or None
    when the batch was too large to send (``truncated``)."""
    return {
        "type": HISTORY_ROWS,
        "experiment": trial.experiment_id,
        "trial": trial.number,
        "trial_id": trial.pk,
        "after": after,
        "cursor": cursor,
        "step_column": step_column,
        "truncated": chart is None,
        "series": chart["series"] if chart else {},
        "nonfinite": chart["nonfinite"] if chart else [],
    }


def trial_update(trial) -> dict:
    node = trial.node.hostname if trial.node_id and trial.node else None
    return {
        "type": TRIAL_UPDATE,
        "experiment": trial.experiment_id,
        "trial": trial.number,
        "trial_id": trial.pk,
        "state": trial.state,
        "failure_reason": trial.failure_reason,
        "node": node,
        "epochs_done": trial.epochs_done,
        "best_val_loss": json_float(trial.best_val_loss),
        "score": json_float(trial.score),
        "value": json_float(trial.value),
        "started_at": _iso(trial.started_at),
        "finished_at": _iso(trial.finished_at),
        "cursor": trial.rows_stored,
    }


def experiment_update(experiment, trial_count: int | None = None) -> dict:
    if trial_count is None:
        trial_count = experiment.trials.count()
    return {
        "type": EXPERIMENT_UPDATE,
        "experiment": experiment.pk,
        "number": experiment.number,
        "name": experiment.name,
        "kind": experiment.kind,
        "state": experiment.state,
        "failure_reason": experiment.failure_reason,
        "description": experiment.description,
        "best_value": json_float(experiment.best_value),
        "created_at": _iso(experiment.created_at),
        "started_at": _iso(experiment.started_at),
        "finished_at": _iso(experiment.finished_at),
        "cursor": trial_count,
    }


def log_lines(trial, *, offset: int, cursor: int, lines: list[str]) -> dict:
    return {
        "type": LOG_LINES,
        "experiment": trial.experiment_id,
        "trial": trial.number,
        "trial_id": trial.pk,
        "offset": offset,
        "cursor": cursor,
        "lines": lines,
    }


def hello(experiment, trials) -> dict:
    """First message to a client: the cursors to re-sync from."""
    trials = list(trials)
    return {
        "type": HELLO,
        "experiment": experiment.pk,
        "state": experiment.state,
        "cursor": len(trials),
        "trials": [
            {"trial": t.number, "trial_id": t.pk, "state": t.state, "cursor": t.rows_stored}
            for t in trials
        ],
    }
