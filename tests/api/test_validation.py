"""Bad payloads: 400 with a message that starts with the offending field."""

from __future__ import annotations

import copy

import pytest

from tests.api.conftest import EXPERIMENT

pytestmark = pytest.mark.django_db


def _with(path: str, value):
    """EXPERIMENT with ``path`` (dotted, [i] for lists) set to ``value`` (``...``: deleted)."""
    body = copy.deepcopy(EXPERIMENT)
    target = body
    parts = path.replace("[", ".").replace("]", "").split(".")
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target[part]
    last = int(parts[-1]) if parts[-1].isdigit() else parts[-1]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return body


EXPERIMENT_CASES = [
    ("name", ..., "name"),
    ("name", "", "name"),
    ("name", 5, "name"),
    ("name", "x" * 101, "name"),
    ("type", "grid", "type"),
    ("bogus_field", 1, "bogus_field"),
    ("parameters", ..., "parameters"),
    ("parameters", [], "parameters"),
    ("parameters", "lr", "parameters"),
    ("parameters[0]", "lr", "parameters[0]"),
    ("parameters[0].name", ..., "parameters[0].name"),
    ("parameters[1].name", "lr", "parameters[1].name"),
    ("parameters[0].type", "float", "parameters[0].type"),
    ("parameters[0].bounds", ..., "parameters[0].bounds"),
    ("parameters[0].bounds.min", ..., "parameters[0].bounds.min"),
    ("parameters[0].bounds.min", "0", "parameters[0].bounds.min"),
    ("parameters[0].bounds.min", 1.0, "parameters[0].bounds"),
    ("parameters[0].bounds.min", -1.0, "parameters[0].bounds.min"),
    ("parameters[0].bounds.max", 10**400, "parameters[0].bounds.max"),
    ("parameters[0].bounds.max", True, "parameters[0].bounds.max"),
    ("parameters[0].transformation", "sqrt", "parameters[0].transformation"),
    ("parameters[1].bounds.min", 1.5, "parameters[1].bounds.min"),
    ("parameters[1].bounds.max", 10**30, "parameters[1].bounds"),
    ("parameters[2].categorical_values", ["relu"], "parameters[2].categorical_values"),
    ("parameters[2].categorical_values", ["a", "a"], "parameters[2].categorical_values[1]"),
    (
        "parameters[2].categorical_values",
        [{"nme": "a"}, "b"],
        "parameters[2].categorical_values[0].nme",
    ),
    ("parameters[2].bounds", {"min": 0, "max": 1}, "parameters[2].bounds"),
    ("metrics", [], "metrics"),
    ("metrics[0].objective", "minimise", "metrics[0].objective"),
    ("metrics[0].strategy", "store", "metrics"),
    ("metrics[0].name", ..., "metrics[0].name"),
    ("metrics[0].threshold", 0.5, "metrics[0].threshold"),
    ("observation_budget", 0, "observation_budget"),
    ("observation_budget", "ten", "observation_budget"),
    ("parallel_bandwidth", -1, "parallel_bandwidth"),
    ("metadata", [], "metadata"),
    ("metadata", {"k": {"nested": 1}}, "metadata.k"),
    ("metadata", {str(i): i for i in range(101)}, "metadata"),
    ("training_monitor", 5, "training_monitor"),
    ("training_monitor.max_checkpoints", ..., "training_monitor.max_checkpoints"),
    ("training_monitor.max_checkpoints", 201, "training_monitor.max_checkpoints"),
    ("training_monitor.max_checkpoints", 0, "training_monitor.max_checkpoints"),
    (
        "training_monitor.early_stopping_criteria",
        [{"type": "convergence", "name": f"c{i}"} for i in range(4)],
        "training_monitor.early_stopping_criteria",
    ),
    # Falsy but not a list: a mistake, not "no criteria".
    ("training_monitor.early_stopping_criteria", 0, "training_monitor.early_stopping_criteria"),
    ("training_monitor.early_stopping_criteria", {}, "training_monitor.early_stopping_criteria"),
    (
        "training_monitor.early_stopping_criteria",
        [{"type": "convergence", "name": "a"}, {"type": "early_ranking", "name": "a"}],
        "training_monitor.early_stopping_criteria[1].name",
    ),
    (
        "training_monitor.early_stopping_criteria[0].type",
        "patience",
        "training_monitor.early_stopping_criteria[0].type",
    ),
    (
        "training_monitor.early_stopping_criteria[0].metric",
        "accuracy",
        "training_monitor.early_stopping_criteria[0].metric",
    ),
    (
        "training_monitor.early_stopping_criteria[0].lookback_checkpoints",
        0,
        "training_monitor.early_stopping_criteria[0].lookback_checkpoints",
    ),
    (
        "training_monitor.early_stopping_criteria[0].min_checkpoints",
        99,
        "training_monitor.early_stopping_criteria[0].min_checkpoints",
    ),
    (
        "training_monitor.early_stopping_criteria[0].margin",
        0.5,
        "training_monitor.early_stopping_criteria[0].margin",
    ),
]


@pytest.mark.parametrize(("path", "value", "field"), EXPERIMENT_CASES)
def test_experiment_create_400_names_the_field(api, path, value, field):
    r = api.post("/v1/experiments", _with(path, value))
    assert r.status_code == 400, r.json()
    assert r.json()["status"] == 400
    assert r.json()["message"].startswith(f"{field}:"), r.json()["message"]


def test_early_ranking_needs_a_minimised_metric(api):
    body = copy.deepcopy(EXPERIMENT)
    body["metrics"] = [{"name": "acc", "objective": "maximize"}]
    body["training_monitor"]["early_stopping_criteria"] = [{"type": "early_ranking"}]
    r = api.post("/v1/experiments", body)
    assert r.status_code == 400
    assert r.json()["message"].startswith("training_monitor.early_stopping_criteria[0].metric:")


def test_body_must_be_an_object(api):
    for body in ([], "x", 3):
        r = api.client.post(
            "/v1/experiments", body, content_type="application/json", HTTP_AUTHORIZATION=api.auth
        )
        assert r.status_code == 400 and r.json()["message"].startswith("body:")


@pytest.fixture
def run(api, experiment_body):
    exp = api.experiment(experiment_body)
    s, run = api.run(exp["id"])
    return exp, s, run


CHECKPOINT_CASES = [
    ({}, "values"),
    ({"values": []}, "values"),
    ({"values": {"name": "val_loss"}}, "values"),
    ({"values": [{"name": "val_loss"}]}, "values[0].value"),
    ({"values": [{"name": "val_loss", "value": "1"}]}, "values[0].value"),
    ({"values": [{"name": "val_loss", "value": 10**400}]}, "values[0].value"),
    ({"values": [{"name": "val_loss", "value": None}]}, "values[0].value"),
    ({"values": [{"name": "val_loss", "value": 1, "value_stddev": -1}]}, "values[0].value_stddev"),
    ({"values": [{"name": "x", "value": 1}]}, "values[0].name"),
    (
        {"values": [{"name": "val_loss", "value": 1}, {"name": "val_loss", "value": 2}]},
        "values[1].name",
    ),
    ({"values": [{"name": "val_loss", "value": 1, "extra": 1}]}, "values[0].extra"),
    ({"values": [{"name": "val_loss", "value": 1}], "metadata": {"a": []}}, "metadata.a"),
    ({"values": [{"name": "val_loss", "value": 1}], "step": 3}, "step"),
]


@pytest.mark.parametrize(("body", "field"), CHECKPOINT_CASES)
def test_checkpoint_400_names_the_field(api, run, body, field):
    _, _, r = run
    resp = api.post(f"/v1/training_runs/{r['id']}/checkpoints", body)
    assert resp.status_code == 400, resp.json()
    assert resp.json()["message"].startswith(f"{field}:"), resp.json()["message"]


OBSERVATION_CASES = [
    ({}, "suggestion"),
    ({"suggestion": 5}, "suggestion"),
    ({"suggestion": "999999"}, "suggestion"),
    ({"suggestion": "{s}", "value": "high"}, "value"),
    ({"suggestion": "{s}", "failed": "yes"}, "failed"),
    ({"suggestion": "{s}", "value": 1, "values": [{"name": "val_loss", "value": 1}]}, "value"),
    ({"suggestion": "{s}", "value_stddev": 1}, "value_stddev"),
    ({"suggestion": "{s}", "values": [{"name": "nope", "value": 1}]}, "values[0].name"),
    ({"suggestion": "{s}", "training_run": "999999", "value": 1}, "training_run"),
    ({"suggestion": "{s}", "assignments": {}}, "assignments"),
]


@pytest.mark.parametrize(("body", "field"), OBSERVATION_CASES)
def test_observation_400_names_the_field(api, run, body, field):
    exp, s, _ = run
    body = {k: (v.format(s=s["id"]) if isinstance(v, str) else v) for k, v in body.items()}
    resp = api.post(f"/v1/experiments/{exp['id']}/observations", body)
    assert resp.status_code == 400, resp.json()
    assert resp.json()["message"].startswith(f"{field}:"), resp.json()["message"]


SUGGESTION_CASES = [
    ({"assignments": {"lr": 0.01, "width": 32}}, "assignments.act"),
    ({"assignments": {"lr": 5.0, "width": 32, "act": "relu"}}, "assignments.lr"),
    ({"assignments": {"lr": 0.01, "width": 32.5, "act": "relu"}}, "assignments.width"),
    ({"assignments": {"lr": 0.01, "width": 32, "act": "gelu"}}, "assignments.act"),
    ({"assignments": {"lr": 0.01, "width": 32, "act": "relu", "x": 1}}, "assignments.x"),
    ({"metadata": "x"}, "metadata"),
    ({"state": "open"}, "state"),
]


@pytest.mark.parametrize(("body", "field"), SUGGESTION_CASES)
def test_suggestion_400_names_the_field(api, run, body, field):
    exp, _, _ = run
    resp = api.post(f"/v1/experiments/{exp['id']}/suggestions", body)
    assert resp.status_code == 400, resp.json()
    assert resp.json()["message"].startswith(f"{field}:"), resp.json()["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "suggestion"), ({"suggestion": ["1"]}, "suggestion"), ({"suggestion": "1", "x": 1}, "x")],
)
def test_training_run_400_names_the_field(api, run, body, field):
    exp, _, _ = run
    resp = api.post(f"/v1/experiments/{exp['id']}/training_runs", body)
    assert resp.status_code == 400, resp.json()
    assert resp.json()["message"].startswith(f"{field}:"), resp.json()["message"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"before": "x"}, "before"),
        ({"before": "1", "after": "2"}, "before"),
        ({"sort": "x", "foo": "1"}, "foo"),
    ],
)
def test_list_query_400_names_the_field(api, query, field):
    resp = api.get("/v1/experiments", **query)
    assert resp.status_code == 400, resp.json()
    assert resp.json()["message"].startswith(f"{field}:"), resp.json()["message"]


def test_overflowing_number_literal_is_400(api, run):
    _, _, r = run
    resp = api.client.post(
        f"/v1/training_runs/{r['id']}/checkpoints",
        '{"values": [{"name": "val_loss", "value": 1e999}]}',
        content_type="application/json",
        HTTP_AUTHORIZATION=api.auth,
    )
    assert resp.status_code == 400
    assert resp.json()["message"].startswith("values[0].value:")
