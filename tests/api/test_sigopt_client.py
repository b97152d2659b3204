"""The official ``sigopt`` client (PyPI) runs a whole Training Monitor flow against a live
server: experiment with a training monitor, suggestions -> training runs -> checkpoints until
``should_stop`` -> observations, a failed observation, and the two 403s."""

from __future__ import annotations

import warnings

import pytest
from sigopt import Connection
from sigopt.exception import ApiException

from luminide.models import ApiToken
from sweeps.models import Checkpoint, Experiment, HistoryChunk, RunState, Trial, TrialEpoch

pytestmark = pytest.mark.django_db(transaction=True)


def loss_curve(assignments, k: int) -> float:
    """A fake training loss: improves, then plateaus (so convergence fires)."""
    base = 0.2 + abs(assignments["lr"] - 0.01) * 5 + (0.1 if assignments["act"] == "tanh" else 0)
    return base + 1.0 / (1 + min(k, 3))


@pytest.fixture
def conn(live_server, owner):
    _, raw = ApiToken.issue(owner, "sigopt")
    conn = Connection(client_token=raw)
    conn.set_api_url(live_server.url)
    return conn


def test_training_monitor_flow(conn, owner):
    experiment = conn.experiments().create(
        name="sigopt client flow",
        type="offline",
        parameters=[
            dict(name="lr", type="double", bounds=dict(min=1e-4, max=1e-1), transformation="log"),
            dict(name="width", type="int", bounds=dict(min=16, max=256)),
            dict(name="act", type="categorical", categorical_values=["relu", "tanh"]),
        ],
        metrics=[dict(name="val_loss", objective="minimize")],
        observation_budget=4,
        parallel_bandwidth=1,
        metadata={"team": "tests"},
        training_monitor=dict(
            max_checkpoints=8,
            early_stopping_criteria=[
                dict(
                    type="convergence",
                    name="plateau",
                    metric="val_loss",
                    lookback_checkpoints=2,
                    min_checkpoints=3,
                )
            ],
        ),
    )
    assert experiment.training_monitor.max_checkpoints == 8
    assert experiment.training_monitor.early_stopping_criteria[0].name == "plateau"
    exp_api = conn.experiments(experiment.id)

    observed_values = []
    for _ in range(3):
        suggestion = exp_api.suggestions().create()
        assignments = suggestion.assignments
        assert 1e-4 <= assignments["lr"] <= 1e-1
        assert 16 <= assignments["width"] <= 256 and isinstance(assignments["width"], int)
        assert assignments["act"] in ("relu", "tanh")
        run = exp_api.training_runs().create(suggestion=suggestion.id)
        assert run.checkpoint_count == 0 and not run.finished
        k = 0
        while True:
            checkpoint = (
                exp_api.training_runs(run.id)
                .checkpoints()
                .create(
                    values=[dict(name="val_loss", value=loss_curve(assignments, k))],
                    metadata={"epoch": k},
                )
            )
            k += 1
            if checkpoint.should_stop:
                break
        # The plateau after 4 checkpoints is detected before max_checkpoints.
        assert checkpoint.stopping_reasons["plateau"] is True
        assert k < 8
        observation = exp_api.observations().create(suggestion=suggestion.id, training_run=run.id)
        # No value given: the best checkpoint's.
        assert observation.value == pytest.approx(min(loss_curve(assignments, i) for i in range(k)))
        observed_values.append(observation.value)
        run = conn.training_runs(run.id).fetch()
        assert run.finished and run.observation == observation.id
        assert run.checkpoint_count == k

    # A failed observation.
    suggestion = exp_api.suggestions().create()
    failed = exp_api.observations().create(suggestion=suggestion.id, failed=True)
    assert failed.failed is True and failed.value is None

    experiment = exp_api.fetch()
    assert experiment.progress.observation_count == 4
    assert experiment.progress.best_observation.value == pytest.approx(min(observed_values))

    # Checkpoint pagination through the client.
    pages = conn.training_runs(run.id).checkpoints().fetch(limit=2)
    assert pages.count == run.checkpoint_count
    assert len(list(pages.iterate_pages())) == run.checkpoint_count
    # The other list and fetch endpoints the client offers.
    assert len(list(exp_api.observations().fetch(limit=3).iterate_pages())) == 4
    assert len(list(exp_api.training_runs().fetch().iterate_pages())) == 3
    assert len(list(exp_api.suggestions().fetch(state="closed").iterate_pages())) == 4
    assert exp_api.suggestions().fetch(state="open").count == 0
    assert exp_api.suggestions(suggestion.id).fetch().state == "closed"
    assert exp_api.observations(failed.id).fetch().failed is True
    best = list(exp_api.best_assignments().fetch().iterate_pages())
    assert best[0].value == pytest.approx(min(observed_values))
    first_checkpoint = list(pages.iterate_pages())[-1]
    fetched = exp_api.training_runs(run.id).checkpoints(first_checkpoint.id).fetch()
    assert fetched.values[0].value == first_checkpoint.values[0].value

    # The dashboard sees an ordinary experiment of kind "api" with its trials and charts.
    exp = Experiment.objects.get(pk=int(experiment.id))
    assert exp.kind == Experiment.Kind.API and exp.project.owner == owner
    assert exp.state == RunState.COMPLETE  # the budget of 4 observations is used
    assert exp.best_value == pytest.approx(min(observed_values))
    trials = Trial.objects.filter(experiment=exp)
    assert trials.filter(state=RunState.COMPLETE).count() == 3
    assert trials.filter(state=RunState.FAILED).count() == 1
    done = trials.filter(state=RunState.COMPLETE).first()
    assert TrialEpoch.objects.filter(trial=done).count() == done.epochs_done
    assert HistoryChunk.objects.filter(trial=done).count() == done.epochs_done


def test_max_checkpoints_and_after_observation_are_403(conn):
    experiment = conn.experiments().create(
        name="limits",
        parameters=[dict(name="x", type="double", bounds=dict(min=0, max=1))],
        metrics=[dict(name="loss", objective="minimize")],
        training_monitor=dict(max_checkpoints=3),
    )
    exp_api = conn.experiments(experiment.id)
    suggestion = exp_api.suggestions().create()
    run = exp_api.training_runs().create(suggestion=suggestion.id)
    answers = [
        conn.training_runs(run.id).checkpoints().create(values=[dict(name="loss", value=1.0 / k)])
        for k in (1, 2, 3)
    ]
    assert [c.should_stop for c in answers] == [False, False, True]  # at max_checkpoints
    with pytest.raises(ApiException) as exc:
        conn.training_runs(run.id).checkpoints().create(values=[dict(name="loss", value=0.1)])
    assert exc.value.status_code == 403
    assert f"training run {run.id}" in str(exc.value) and "max_checkpoints=3" in str(exc.value)

    exp_api.observations().create(suggestion=suggestion.id, value=0.3)
    suggestion2 = exp_api.suggestions().create()
    run2 = exp_api.training_runs().create(suggestion=suggestion2.id)
    exp_api.training_runs(run2.id).checkpoints().create(values=[dict(name="loss", value=0.5)])
    exp_api.observations().create(suggestion=suggestion2.id, training_run=run2.id)
    with pytest.raises(ApiException) as exc:
        exp_api.training_runs(run2.id).checkpoints().create(values=[dict(name="loss", value=0.4)])
    assert exc.value.status_code == 403 and "observation" in str(exc.value)
    assert Checkpoint.objects.filter(trial_id=int(run2.id)).count() == 1


def test_experiment_list_update_delete_and_errors(conn):
    experiment = conn.experiments().create(
        name="crud",
        parameters=[dict(name="x", type="int", bounds=dict(min=1, max=9))],
        metrics=[dict(name="acc", objective="maximize")],
        observation_budget=5,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        listed = conn.experiments().fetch()
        assert experiment.id in [e.id for e in listed.data]
    updated = conn.experiments(experiment.id).update(
        name="renamed", metadata={"k": "v"}, observation_budget=7
    )
    assert (updated.name, updated.metadata["k"], updated.observation_budget) == (
        "renamed",
        "v",
        7,
    )
    with pytest.raises(ApiException) as exc:
        conn.experiments(experiment.id).update(parameters=[])
    assert exc.value.status_code == 400 and "parameters" in str(exc.value)
    with pytest.raises(ApiException) as exc:
        conn.experiments().create(name="bad", parameters=[dict(name="x", type="float")])
    assert exc.value.status_code == 400 and "parameters[0].type" in str(exc.value)
    conn.experiments(experiment.id).delete()
    with pytest.raises(ApiException) as exc:
        conn.experiments(experiment.id).fetch()
    assert exc.value.status_code == 404


def test_bad_token_is_401(live_server):
    conn = Connection(client_token="not-a-token")
    conn.set_api_url(live_server.url)
    with pytest.raises(ApiException) as exc:
        conn.experiments().fetch()
    assert exc.value.status_code == 401
