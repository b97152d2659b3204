"""Event payloads: the one place the server/browser contract is checked (sweeps.events)."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone

from sweeps import events
from sweeps.actions import do_ingest_history
from sweeps.models import RunState
from tests import factories
from tests.factories import LAYOUT3_HEADER, layout3_rows

pytestmark = pytest.mark.django_db

TRIAL_KEYS = {
    "type", "experiment", "trial", "trial_id", "state", "failure_reason", "node", "epochs_done",
    "best_val_loss", "score", "value", "started_at", "finished_at", "cursor",
}  # fmt: skip
EXPERIMENT_KEYS = {
    "type", "experiment", "number", "name", "kind", "state", "failure_reason", "description",
    "best_value", "created_at", "started_at", "finished_at", "cursor",
}  # fmt: skip
HISTORY_KEYS = {
    "type", "experiment", "trial", "trial_id", "after", "cursor", "step_column", "truncated",
    "series", "nonfinite",
}  # fmt: skip
SERIES = {"train", "train_smooth", "val", "epoch_val"}


def _json(event: dict) -> dict:
    return json.loads(json.dumps(event, allow_nan=False))


def test_group_name():
    assert events.group_name(7) == "experiment_7"


def test_trial_update(project):
    experiment = factories.make_experiment(project)
    trial = experiment.trials.get()
    trial.best_val_loss = float("inf")
    trial.started_at = timezone.now()
    event = _json(events.trial_update(trial))
    assert set(event) == TRIAL_KEYS
    assert event["type"] == "trial.update"
    assert event["best_val_loss"] == "inf"
    assert event["score"] is None
    assert event["experiment"] == experiment.pk


def test_experiment_update(project):
    experiment = factories.make_experiment(project, trials=3, state=RunState.RUNNING)
    event = _json(events.experiment_update(experiment))
    assert set(event) == EXPERIMENT_KEYS
    assert (event["type"], event["name"], event["cursor"]) == (
        "experiment.update",
        experiment.name,
        3,
    )


def test_history_rows_and_truncated(project):
    trial = factories.make_experiment(project).trials.get()
    import io

    from ranking import read_history
    from sweeps.history import HistoryArrays, chart_series

    rows = HistoryArrays.from_frame(read_history(io.StringIO(LAYOUT3_HEADER + layout3_rows(1, 10))))
    chart = chart_series(rows)
    chart.pop("smooth_last")
    event = _json(
        events.history_rows(trial, after=0, cursor=11, chart=chart, step_column="sample_count")
    )
    assert set(event) == HISTORY_KEYS
    assert set(event["series"]) == SERIES
    assert not event["truncated"]
    assert all(set(s) >= {"x", "y"} for s in event["series"].values())
    big = _json(events.history_rows(trial, after=0, cursor=10**6, chart=None, step_column="iter"))
    assert big["truncated"] and big["series"] == {}


def test_log_lines(project):
    trial = factories.make_experiment(project).trials.get()
    event = _json(events.log_lines(trial, offset=0, cursor=4, lines=["abc"]))
    assert event == {
        "type": "log.lines",
        "experiment": trial.experiment_id,
        "trial": 0,
        "trial_id": trial.pk,
        "offset": 0,
        "cursor": 4,
        "lines": ["abc"],
    }


def test_hello(project):
    experiment = factories.make_experiment(project, trials=2)
    event = _json(events.hello(experiment, experiment.trials.all()))
    assert event["type"] == "hello"
    assert event["cursor"] == 2
    assert [t["cursor"] for t in event["trials"]] == [0, 0]


def test_ingest_emits_history_rows_after_commit(
    project, django_capture_on_commit_callbacks, monkeypatch
):
    sent = []
    monkeypatch.setattr(
        "sweeps.actions.send_event_now",
        lambda exp_id, *evs: sent.extend((exp_id, ev) for ev in evs),
    )
    trial = factories.make_experiment(project).trials.get()
    with django_capture_on_commit_callbacks(execute=True):
        do_ingest_history(trial, LAYOUT3_HEADER + layout3_rows(2, 5))
        assert sent == []  # nothing before commit
    types = [ev["type"] for _, ev in sent]
    assert types == ["history.rows", "trial.update"]
    rows = _json(sent[0][1])
    assert set(rows) == HISTORY_KEYS
    assert (rows["after"], rows["cursor"]) == (0, 12)
    assert rows["series"]["epoch_val"]["epoch"] == [0, 1]
    assert sent[1][1]["epochs_done"] == 2
