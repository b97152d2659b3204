"""Unit tests per endpoint of the Training Monitor API (Django test client)."""

from __future__ import annotations

import pytest

from luminide.models import Project
from sweeps import studies
from sweeps.api import actions
from sweeps.models import Checkpoint, Experiment, HistoryChunk, RunState, Trial, TrialEpoch

pytestmark = pytest.mark.django_db


# --- experiments ---------------------------------------------------------------------


def test_create_experiment_goes_to_the_users_api_project(api, owner, experiment_body):
    body = api.experiment(experiment_body)
    assert body["object"] == "experiment" and body["name"] == "mlp tuning"
    assert body["type"] == "offline" and body["state"] == "active"
    assert [p["name"] for p in body["parameters"]] == ["lr", "width", "act"]
    assert body["parameters"][0]["transformation"] == "log"
    assert body["parameters"][2]["categorical_values"][1]["name"] == "tanh"
    assert body["metrics"][0]["objective"] == "minimize"
    assert body["training_monitor"]["max_checkpoints"] == 5
    assert body["progress"]["observation_count"] == 0
    # "<username>-api" (or with a suffix, when a stray folder of an earlier test holds it)
    assert body["project"].startswith("owner-api")
    exp = Experiment.objects.get(pk=int(body["id"]))
    assert exp.kind == Experiment.Kind.API and exp.state == RunState.RUNNING
    assert exp.project.owner == owner and exp.description == "mlp tuning"
    assert exp.number == 1 and body["luminide"]["experiment"] == "exp1"
    # The second experiment reuses the project.
    second = api.experiment(experiment_body)
    assert second["project"] == body["project"]
    assert Project.objects.filter(owner=owner).count() == 1
    assert Experiment.objects.get(pk=int(second["id"])).number == 2


def test_create_experiment_in_a_named_project(api, shared_project, experiment_body):
    experiment_body["project"] = shared_project.slug
    body = api.experiment(experiment_body)
    assert body["project"] == shared_project.slug


def test_project_slug_taken_by_someone_else(api, outsider, experiment_body):
    Project.objects.create(slug="owner-api", name="squatter", owner=outsider)
    body = api.experiment(experiment_body)
    assert body["project"].startswith("owner-api-")
    assert api.experiment(experiment_body)["project"] == body["project"]


def test_project_not_accessible_is_400(outsider_api, shared_project, experiment_body):
    experiment_body["project"] = shared_project.slug
    r = outsider_api.post("/v1/experiments", experiment_body)
    assert r.status_code == 400 and r.json()["message"].startswith("project:")


def test_fetch_list_update_delete_experiment(api, experiment_body):
    exp = api.experiment(experiment_body)
    r = api.get(f"/v1/experiments/{exp['id']}")
    assert r.status_code == 200 and r.json()["id"] == exp["id"]
    listing = api.get("/v1/experiments").json()
    assert listing["object"] == "pagination" and listing["count"] == 1
    assert listing["data"][0]["id"] == exp["id"]
    r = api.put(
        f"/v1/experiments/{exp['id']}",
        {"name": "new", "metadata": {"a": 1}, "observation_budget": 3},
    )
    assert r.status_code == 200
    assert (r.json()["name"], r.json()["metadata"], r.json()["observation_budget"]) == (
        "new",
        {"a": 1},
        3,
    )
    assert Experiment.objects.get(pk=int(exp["id"])).description == "new"
    study_name = Experiment.objects.get(pk=int(exp["id"])).spec["study_name"]
    r = api.delete(f"/v1/experiments/{exp['id']}")
    assert r.status_code == 204
    assert not Experiment.objects.filter(pk=int(exp["id"])).exists()
    assert api.get(f"/v1/experiments/{exp['id']}").status_code == 404
    with pytest.raises(KeyError):
        studies.load_study(study_name)


def test_list_shows_the_best_observation_as_fetch_does(api, experiment_body):
    exp = api.experiment(experiment_body)
    for value in (0.7, 0.4):
        s = api.post(f"/v1/experiments/{exp['id']}/suggestions").json()
        api.post(
            f"/v1/experiments/{exp['id']}/observations", {"suggestion": s["id"], "value": value}
        )
    fetched = api.get(f"/v1/experiments/{exp['id']}").json()["progress"]["best_observation"]
    listed = api.get("/v1/experiments").json()["data"][0]["progress"]["best_observation"]
    assert listed == fetched and listed["value"] == 0.4


def test_changing_the_budget_moves_the_experiment_between_running_and_complete(
    api, experiment_body
):
    exp = api.experiment({**experiment_body, "observation_budget": 2})

    def observe():
        s = api.post(f"/v1/experiments/{exp['id']}/suggestions").json()
        api.post(f"/v1/experiments/{exp['id']}/observations", {"suggestion": s["id"], "value": 1})

    def state():
        return Experiment.objects.get(pk=int(exp["id"])).state

    observe()
    observe()
    assert state() == "complete"
    api.put(f"/v1/experiments/{exp['id']}", {"observation_budget": 5})
    assert state() == "running"  # more to come: the dashboard shows it running again
    api.put(f"/v1/experiments/{exp['id']}", {"observation_budget": 1})
    assert state() == "complete"


def test_update_rejects_other_fields(api, experiment_body):
    exp = api.experiment(experiment_body)
    r = api.put(f"/v1/experiments/{exp['id']}", {"metrics": []})
    assert r.status_code == 400 and r.json()["message"].startswith("metrics:")


# --- suggestions ---------------------------------------------------------------------


def test_suggestions_create_fetch_list(api, experiment_body):
    exp = api.experiment(experiment_body)
    base = f"/v1/experiments/{exp['id']}/suggestions"
    created = [api.post(base, {"metadata": {"i": i}}).json() for i in range(3)]
    for s in created:
        a = s["assignments"]
        assert 1e-4 <= a["lr"] <= 0.1 and 16 <= a["width"] <= 256 and a["act"] in ("relu", "tanh")
        assert s["state"] == "open"
    assert created[2]["metadata"] == {"i": 2}
    fetched = api.get(f"{base}/{created[0]['id']}").json()
    assert fetched["assignments"] == created[0]["assignments"]
    listing = api.get(base).json()
    assert listing["count"] == 3
    assert [s["id"] for s in listing["data"]] == [s["id"] for s in reversed(created)]
    trials = Trial.objects.filter(experiment_id=int(exp["id"])).order_by("number")
    assert [t.number for t in trials] == [0, 1, 2]
    assert all(t.state == RunState.QUEUED for t in trials)


def test_suggestion_with_fixed_assignments(api, experiment_body):
    exp = api.experiment(experiment_body)
    fixed = {"lr": 0.01, "width": 32, "act": "tanh"}
    s = api.post(f"/v1/experiments/{exp['id']}/suggestions", {"assignments": fixed}).json()
    assert s["assignments"] == fixed


def test_suggestion_state_filter(api, experiment_body):
    exp = api.experiment(experiment_body)
    s1, _ = api.run(exp["id"])
    api.run(exp["id"])
    api.post(f"/v1/experiments/{exp['id']}/observations", {"suggestion": s1["id"], "value": 1})
    base = f"/v1/experiments/{exp['id']}/suggestions"
    assert api.get(base, state="open").json()["count"] == 1
    assert api.get(base, state="closed").json()["data"][0]["id"] == s1["id"]
    assert api.get(base, state="bogus").status_code == 400


# --- training runs -------------------------------------------------------------------


def test_training_runs(api, experiment_body):
    exp = api.experiment(experiment_body)
    s, run = api.run(exp["id"])
    assert run["suggestion"] == s["id"] and run["assignments"] == s["assignments"]
    assert run["checkpoint_count"] == 0 and run["best_checkpoint"] is None
    assert run["finished"] is False and run["observation"] is None
    again = api.post(f"/v1/experiments/{exp['id']}/training_runs", {"suggestion": s["id"]})
    assert again.status_code == 400 and again.json()["message"].startswith("suggestion:")
    assert api.get(f"/v1/training_runs/{run['id']}").json()["id"] == run["id"]
    assert api.get(f"/v1/experiments/{exp['id']}/training_runs/{run['id']}").status_code == 200
    assert api.get(f"/v1/experiments/{exp['id']}/training_runs").json()["count"] == 1
    # A suggestion without a run is not a training run.
    s2 = api.post(f"/v1/experiments/{exp['id']}/suggestions").json()
    assert api.get(f"/v1/training_runs/{s2['id']}").status_code == 404
    trial = Trial.objects.get(pk=int(run["id"]))
    assert trial.state == RunState.RUNNING and trial.started_at is not None


def test_training_run_for_unknown_suggestion(api, experiment_body):
    exp = api.experiment(experiment_body)
    r = api.post(f"/v1/experiments/{exp['id']}/training_runs", {"suggestion": "999"})
    assert r.status_code == 400 and r.json()["message"].startswith("suggestion:")


# --- checkpoints ---------------------------------------------------------------------


def test_checkpoints_store_epochs_history_and_best(api, experiment_body):
    exp = api.experiment(experiment_body)
    _, run = api.run(exp["id"])
    values = [1.0, 0.5, 0.7]
    answers = [api.checkpoint(run["id"], v).json() for v in values]
    assert [a["should_stop"] for a in answers] == [False, False, False]
    assert answers[0]["stopping_reasons"] == {"flat": False}
    assert answers[1]["values"][0] == {
        "object": "metric_evaluation",
        "name": "val_loss",
        "value": 0.5,
        "value_stddev": None,
    }
    fetched = api.get(f"/v1/training_runs/{run['id']}").json()
    assert fetched["checkpoint_count"] == 3 and fetched["best_checkpoint"] == answers[1]["id"]
    trial = Trial.objects.get(pk=int(run["id"]))
    assert trial.best_val_loss == 0.5 and trial.epochs_done == 3 and trial.rows_stored == 3
    assert list(trial.epochs.order_by("epoch").values_list("epoch", "val_loss")) == [
        (0, 1.0),
        (1, 0.5),
        (2, 0.7),
    ]
    assert HistoryChunk.objects.filter(trial=trial).count() == 3
    # Fetch one, through both routes.
    one = api.get(f"/v1/training_runs/{run['id']}/checkpoints/{answers[0]['id']}").json()
    assert one["id"] == answers[0]["id"]
    path = f"/v1/experiments/{exp['id']}/training_runs/{run['id']}/checkpoints"
    assert api.get(f"{path}/{answers[2]['id']}").json()["values"][0]["value"] == 0.7
    assert api.get(f"{path}/424242").status_code == 404


def test_checkpoint_planned_on_a_stale_run_is_planned_again(
    api, experiment_body, owner, monkeypatch
):
    """A checkpoint is computed outside the write transaction; when another checkpoint of
    the same run lands in between, the write notices and plans it again (under the lock)."""
    exp = api.experiment(experiment_body)
    _, run = api.run(exp["id"])
    plan = actions._plan_checkpoint
    planned_at: list[int] = []

    def plan_then_race(experiment, trial, body):
        planned = plan(experiment, trial, body)
        planned_at.append(trial.epochs_done)
        if len(planned_at) == 1:  # another client's checkpoint lands now
            other = {"values": [{"name": "val_loss", "value": 0.25}]}
            actions.do_create_checkpoint(owner, trial.pk, other)
        return planned

    monkeypatch.setattr(actions, "_plan_checkpoint", plan_then_race)
    answer = api.checkpoint(run["id"], 0.75)
    assert answer.status_code == 201, answer.json()
    # First plan (seq 0), the racing one (seq 0, stored), the first again (seq 1).
    assert planned_at == [0, 0, 1]
    trial = Trial.objects.get(pk=int(run["id"]))
    stored = trial.checkpoints.order_by("seq").values_list("seq", "values")
    assert [(seq, values[0]["value"]) for seq, values in stored] == [(0, 0.25), (1, 0.75)]
    assert list(trial.epochs.order_by("epoch").values_list("val_loss", flat=True)) == [0.25, 0.75]
    assert trial.epochs_done == 2 and trial.rows_stored == 2 and trial.best_val_loss == 0.25
    assert trial.metadata["series"]["val_loss"] == [0.25, 0.75]


def test_checkpoint_chart_history_is_readable(api, experiment_body):
    from sweeps.history import history_payload

    exp = api.experiment(experiment_body)
    _, run = api.run(exp["id"])
    for v in (0.9, 0.6):
        api.checkpoint(run["id"], v)
    payload = history_payload(Trial.objects.get(pk=int(run["id"])))
    assert payload["series"]["epoch_val"]["y"] == [0.9, 0.6]
    assert [e["val_loss"] for e in payload["epochs"]] == [0.9, 0.6]
    assert payload["cursor"] == 2


def test_checkpoint_pagination(api, experiment_body):
    experiment_body["training_monitor"] = {"max_checkpoints": 20}
    exp = api.experiment(experiment_body)
    _, run = api.run(exp["id"])
    ids = [api.checkpoint(run["id"], 1.0 / (k + 1)).json()["id"] for k in range(7)]
    path = f"/v1/training_runs/{run['id']}/checkpoints"
    page = api.get(path, limit=3).json()
    assert page["count"] == 7 and [c["id"] for c in page["data"]] == ids[::-1][:3]
    assert page["paging"] == {"before": ids[4], "after": None}
    seen = [c["id"] for c in page["data"]]
    while page["paging"]["before"]:
        page = api.get(path, limit=3, before=page["paging"]["before"]).json()
        seen += [c["id"] for c in page["data"]]
    assert seen == ids[::-1]
    newer = api.get(path, limit=2, after=ids[1]).json()
    assert [c["id"] for c in newer["data"]] == [ids[3], ids[2]]
    assert newer["paging"]["after"] == ids[3]
    assert api.get(path, limit=0).status_code == 400
    assert api.get(path, limit="x").status_code == 400


def test_checkpoint_limits(api, experiment_body):
    exp = api.experiment(experiment_body)  # max_checkpoints 5, convergence lookback 2 min 3
    _, run = api.run(exp["id"])
    answers = [api.checkpoint(run["id"], 1.0 / (k + 1)).json() for k in range(5)]
    assert [a["should_stop"] for a in answers] == [False] * 4 + [True]
    assert answers[-1]["stopping_reasons"] == {"flat": False}
    r = api.checkpoint(run["id"], 0.1)
    assert r.status_code == 403
    assert r.json() == {
        "message": f"training run {run['id']} already has max_checkpoints=5 checkpoints",
        "status": 403,
    }
    assert Checkpoint.objects.filter(trial_id=int(run["id"])).count() == 5


def test_checkpoint_unknown_metric_is_400(api, experiment_body):
    exp = api.experiment(experiment_body)
    _, run = api.run(exp["id"])
    r = api.checkpoint(run["id"], 1.0, name="accuracy")
    assert r.status_code == 400 and r.json()["message"].startswith("values[0].name:")
    r = api.post(
        f"/v1/training_runs/{run['id']}/checkpoints",
        {"values": [{"name": "val_loss", "value": 1}], "metadata": {str(i): i for i in range(5)}},
    )
    assert r.status_code == 400 and r.json()["message"].startswith("metadata:")


def test_checkpoint_without_training_monitor(api, experiment_body):
    del experiment_body["training_monitor"]
    exp = api.experiment(experiment_body)
    _, run = api.run(exp["id"])
    a = api.checkpoint(run["id"], 1.0).json()
    assert a["should_stop"] is False and a["stopping_reasons"] == {}


# --- observations --------------------------------------------------------------------


def test_observation_with_value_tells_the_study(api, experiment_body):
    exp = api.experiment(experiment_body)
    s, _ = api.run(exp["id"])
    r = api.post(
        f"/v1/experiments/{exp['id']}/observations",
        {"suggestion": s["id"], "value": 0.42, "value_stddev": 0.01, "metadata": {"n": 1}},
    )
    assert r.status_code == 201
    obs = r.json()
    assert obs["value"] == 0.42 and obs["value_stddev"] == 0.01 and obs["failed"] is False
    assert obs["assignments"] == s["assignments"] and obs["training_run"] == s["id"]
    trial = Trial.objects.get(pk=int(s["id"]))
    assert trial.state == RunState.COMPLETE and trial.value == 0.42
    study = studies.load_study(Experiment.objects.get(pk=int(exp["id"])).spec["study_name"])
    frozen = study.trials[trial.number]
    assert frozen.state.name == "COMPLETE" and frozen.value == 0.42
    assert frozen.params == s["assignments"]
    assert api.get(f"/v1/experiments/{exp['id']}/observations/{obs['id']}").json() == obs
    assert api.get(f"/v1/experiments/{exp['id']}/observations").json()["count"] == 1
    again = api.post(
        f"/v1/experiments/{exp['id']}/observations", {"suggestion": s["id"], "value": 1}
    )
    assert again.status_code == 400 and again.json()["message"].startswith("suggestion:")
    assert Experiment.objects.get(pk=int(exp["id"])).best_value == 0.42


def test_observation_from_best_checkpoint(api, experiment_body):
    exp = api.experiment(experiment_body)
    s, run = api.run(exp["id"])
    for v in (0.9, 0.3, 0.5):
        api.checkpoint(run["id"], v)
    obs = api.post(f"/v1/experiments/{exp['id']}/observations", {"training_run": run["id"]})
    assert obs.status_code == 201 and obs.json()["value"] == 0.3
    assert obs.json()["suggestion"] == s["id"]


def test_observation_without_value_or_checkpoints_is_400(api, experiment_body):
    exp = api.experiment(experiment_body)
    s = api.post(f"/v1/experiments/{exp['id']}/suggestions").json()
    r = api.post(f"/v1/experiments/{exp['id']}/observations", {"suggestion": s["id"]})
    assert r.status_code == 400 and r.json()["message"].startswith("value:")


def test_failed_observation(api, experiment_body):
    exp = api.experiment(experiment_body)
    s = api.post(f"/v1/experiments/{exp['id']}/suggestions").json()
    r = api.post(
        f"/v1/experiments/{exp['id']}/observations", {"suggestion": s["id"], "failed": True}
    )
    assert r.status_code == 201 and r.json()["failed"] is True and r.json()["value"] is None
    trial = Trial.objects.get(pk=int(s["id"]))
    assert trial.state == RunState.FAILED
    study = studies.load_study(Experiment.objects.get(pk=int(exp["id"])).spec["study_name"])
    assert study.trials[trial.number].state.name == "FAIL"
    bad = api.post(
        f"/v1/experiments/{exp['id']}/observations",
        {"suggestion": s["id"], "failed": True, "value": 1},
    )
    assert bad.status_code == 400 and bad.json()["message"].startswith("failed:")


def test_study_is_reconciled_after_a_missed_tell(api, experiment_body):
    exp = api.experiment(experiment_body)
    s = api.post(f"/v1/experiments/{exp['id']}/suggestions").json()
    # Simulate a crash between the commit and the tell.
    Trial.objects.filter(pk=int(s["id"])).update(
        state=RunState.COMPLETE, value=0.7, finished_at="2026-01-01T00:00:00Z"
    )
    api.post(f"/v1/experiments/{exp['id']}/suggestions")
    study = studies.load_study(Experiment.objects.get(pk=int(exp["id"])).spec["study_name"])
    assert study.trials[0].value == 0.7


def test_best_assignments(api, experiment_body):
    exp = api.experiment(experiment_body)
    for value in (0.5, 0.2, 0.9):
        s = api.post(f"/v1/experiments/{exp['id']}/suggestions").json()
        api.post(
            f"/v1/experiments/{exp['id']}/observations", {"suggestion": s["id"], "value": value}
        )
    best = api.get(f"/v1/experiments/{exp['id']}/best_assignments").json()
    assert best["count"] == 1 and best["data"][0]["value"] == 0.2


def test_observation_budget_completes_the_experiment(api, experiment_body):
    experiment_body["observation_budget"] = 2
    exp = api.experiment(experiment_body)
    for value in (0.5, 0.4):
        s = api.post(f"/v1/experiments/{exp['id']}/suggestions").json()
        api.post(
            f"/v1/experiments/{exp['id']}/observations", {"suggestion": s["id"], "value": value}
        )
    e = Experiment.objects.get(pk=int(exp["id"]))
    assert e.state == RunState.COMPLETE and e.finished_at is not None
    progress = api.get(f"/v1/experiments/{exp['id']}").json()["progress"]
    assert progress["observation_count"] == 2 and progress["remaining_budget"] == 0


def test_multi_metric_experiment(api, experiment_body):
    experiment_body["metrics"] = [
        {"name": "val_loss", "objective": "minimize"},
        {"name": "train_loss", "objective": "minimize", "strategy": "store"},
    ]
    exp = api.experiment(experiment_body)
    s, run = api.run(exp["id"])
    r = api.post(
        f"/v1/training_runs/{run['id']}/checkpoints",
        {"values": [{"name": "val_loss", "value": 0.5}, {"name": "train_loss", "value": 0.4}]},
    )
    assert r.status_code == 201
    epoch = TrialEpoch.objects.get(trial_id=int(run["id"]))
    assert (epoch.train_loss, epoch.val_loss) == (0.4, 0.5)
    r = api.post(f"/v1/experiments/{exp['id']}/observations", {"suggestion": s["id"], "value": 1})
    assert r.status_code == 400 and r.json()["message"].startswith("value:")
    r = api.post(
        f"/v1/experiments/{exp['id']}/observations",
        {"suggestion": s["id"], "values": [{"name": "train_loss", "value": 1}]},
    )
    assert r.status_code == 400 and r.json()["message"].startswith("values:")


# --- plumbing ------------------------------------------------------------------------


def test_openapi_schema_is_served_without_a_token(client):
    r = client.get("/v1/openapi.json")
    assert r.status_code == 200
    schema = r.json()
    assert schema["openapi"].startswith("3.")
    assert "/v1/experiments/{experiment_id}/training_runs/{run_id}/checkpoints" in schema["paths"]


def test_unknown_paths_and_methods_are_json(api, experiment_body):
    r = api.get("/v1/nothing/here")
    assert r.status_code == 404 and r.json()["status"] == 404
    exp = api.experiment(experiment_body)
    r = api.post(f"/v1/experiments/{exp['id']}")
    assert r.status_code == 405 and r["Allow"] == "DELETE, GET, PUT"
    assert r.json()["status"] == 405
    for path in ("/v1/experiments/abc", "/v1/experiments/99999999999999999999999"):
        assert api.get(path).status_code == 404
    for raw in ("\u00b2", "\u0661\u0662"):  # unicode digits are not ids
        assert api.get(f"/v1/experiments/{raw}").status_code == 404
        assert api.get("/v1/experiments", before=raw).status_code == 400


def test_busy_database_is_429_which_the_client_retries(api, experiment_body, monkeypatch):
    from django.db import OperationalError

    from sweeps.api import actions

    exp = api.experiment(experiment_body)

    def locked(*args, **kwargs):
        raise OperationalError("database is locked")

    monkeypatch.setattr(actions, "do_create_suggestion", locked)
    r = api.post(f"/v1/experiments/{exp['id']}/suggestions")
    assert r.status_code == 429 and r.json()["status"] == 429
    assert r.headers["Retry-After"] == "1"


def test_malformed_json_is_400(api):
    r = api.client.post(
        "/v1/experiments",
        "{not json",
        content_type="application/json",
        HTTP_AUTHORIZATION=api.auth,
    )
    assert r.status_code == 400 and r.json()["message"].startswith("body:")
    r = api.client.post(
        "/v1/experiments", b"\xff\xfe", content_type="application/json", HTTP_AUTHORIZATION=api.auth
    )
    assert r.status_code == 400
    r = api.client.post(
        "/v1/experiments", "NaN", content_type="application/json", HTTP_AUTHORIZATION=api.auth
    )
    assert r.status_code == 400


def test_csrf_is_not_required(owner, token):
    from django.test import Client

    from tests.api.conftest import EXPERIMENT, basic

    client = Client(enforce_csrf_checks=True)
    r = client.post(
        "/v1/experiments",
        EXPERIMENT,
        content_type="application/json",
        HTTP_AUTHORIZATION=basic(token),
    )
    assert r.status_code == 201


def test_dashboard_offers_no_cancel_for_an_api_experiment(api, experiment_body, client, owner):
    """Cancelled trials would read as observations to the client driving the experiment."""
    exp = api.experiment(experiment_body)
    _, run = api.run(exp["id"])
    api.checkpoint(run["id"], 0.5)
    row = Experiment.objects.get(pk=int(exp["id"]))
    client.force_login(owner)
    page = client.get(f"/projects/{row.project.slug}/experiments/{row.number}/")
    assert page.status_code == 200 and b"cancel-form" not in page.content
    answer = client.post(
        f"/projects/{row.project.slug}/experiments/{row.number}/cancel", follow=True
    )
    assert "driven by an API client" in answer.content.decode()
    row.refresh_from_db()
    assert row.state == "running"
    obs = api.post(f"/v1/experiments/{exp['id']}/observations", {"training_run": run["id"]})
    assert obs.status_code == 201
    assert api.get(f"/v1/experiments/{exp['id']}").json()["progress"]["observation_count"] == 1


def test_dashboard_lists_each_runs_assignments(api, experiment_body, client, owner):
    exp = api.experiment(experiment_body)
    assigned = [api.run(exp["id"])[0]["assignments"] for _ in range(2)]
    row = Experiment.objects.get(pk=int(exp["id"]))
    client.force_login(owner)
    page = client.get(f"/projects/{row.project.slug}/experiments/{row.number}/").content.decode()
    assert "<th>Parameters</th>" in page
    for a in assigned:
        assert f"act={a['act']}" in page and f"width={a['width']}" in page
