"""Stopping criteria (pure functions) and the early_ranking criterion end to end."""

from __future__ import annotations

import math

import pytest

from sweeps.api import criteria


@pytest.mark.parametrize(
    ("values", "objective", "lookback", "minimum", "expected"),
    [
        ([1.0, 0.9], "minimize", 1, 1, False),  # improving
        ([1.0, 0.9, 0.9], "minimize", 1, 1, True),  # equal is not an improvement
        ([1.0, 0.9, 0.95], "minimize", 1, 1, True),
        ([1.0, 0.9, 0.95, 0.89], "minimize", 2, 1, False),  # 0.89 < 0.9 in the last two
        ([1.0, 0.9, 0.95, 0.91], "minimize", 2, 1, True),
        ([1.0, 0.9, 0.95], "minimize", 2, 1, False),  # needs lookback + 1 values
        ([1.0, 1.1], "minimize", 1, 3, False),  # not before min_checkpoints
        ([1.0, 1.1, 1.2], "minimize", 1, 3, True),
        ([0.5, 0.6], "maximize", 1, 1, False),
        ([0.5, 0.6, 0.55], "maximize", 1, 1, True),
        ([], "minimize", 1, 1, False),
    ],
)
def test_convergence(values, objective, lookback, minimum, expected):
    assert criteria.convergence(values, objective, lookback, minimum) is expected


def fake_scorer(values):
    """Predicts the final value as the last value (a stand-in for the ranker)."""
    return values[-1] if values else None


@pytest.mark.parametrize(
    ("values", "best_at", "margin", "lookback", "minimum", "expected"),
    [
        ([2.0], [1.0], 0.1, 1, 1, True),  # 2.0 > 1.0 + 0.1
        ([1.05], [1.0], 0.1, 1, 1, False),  # within the margin
        ([1.2], [1.0, 1.0], 0.1, 1, 2, False),  # before min_checkpoints
        ([1.5, 1.05], [1.0, 1.0], 0.1, 2, 1, False),  # not worse at both of the last 2
        ([1.5, 1.2], [1.0, 1.0], 0.1, 2, 1, True),
        ([2.0], [], 0.1, 1, 1, False),  # no finished run yet
        ([2.0, 1.9], [1.0], 0.1, 1, 1, False),  # no finished run reached the 2nd value
        ([2.0, 0.6], [1.0, 0.5], 0.1, 1, 1, True),  # compared with b at the same k: 0.6 > 0.55
        ([2.0, 0.6], [1.0, None], 0.1, 1, 1, False),  # no score there (no model then)
        ([-0.5], [-1.0], 0.1, 1, 1, True),  # margin relative to |b|: threshold -0.9
        ([-0.95], [-1.0], 0.1, 1, 1, False),
        ([math.inf], [1.0], 0.1, 1, 1, True),  # diverged
    ],
)
def test_early_ranking(values, best_at, margin, lookback, minimum, expected):
    got = criteria.early_ranking(
        values,
        lookback=lookback,
        min_checkpoints=minimum,
        margin=margin,
        best_at=best_at,
        scorer=fake_scorer,
    )
    assert got is expected


def test_best_scores_at_takes_the_lowest_score_at_each_position():
    runs = [[1.0, 0.8, 0.7], [0.9, None], [], [1.2, 0.6, None, 0.5]]
    assert criteria.best_scores_at(runs) == [0.9, 0.6, 0.7, 0.5]
    assert criteria.best_scores_at([[None]]) == [None]


def test_early_ranking_without_a_model_never_fires():
    assert not criteria.early_ranking(
        [9.0], lookback=1, min_checkpoints=1, margin=0, best_at=[0.1], scorer=lambda v: None
    )


def test_evaluate_names_each_criterion():
    rules = [
        {
            "type": "convergence",
            "name": "c",
            "metric": "loss",
            "lookback_checkpoints": 1,
            "min_checkpoints": 1,
        },
        {
            "type": "early_ranking",
            "name": "er",
            "metric": "loss",
            "lookback_checkpoints": 1,
            "min_checkpoints": 1,
            "margin": 0.1,
        },
    ]
    reasons = criteria.evaluate(
        rules, {"loss": "minimize"}, {"loss": [1.0, 2.0]}, {"loss": [1.0, 1.0]}, fake_scorer
    )
    assert reasons == {"c": True, "er": True}


def test_early_ranking_score_uses_the_ranker(monkeypatch):
    class Ranker:
        def score_epochs(self, values):
            return min(values) * 0.9

    monkeypatch.setattr(criteria, "_ranker", Ranker())
    assert criteria.early_ranking_score([1.0, 0.5]) == pytest.approx(0.45)
    assert criteria.early_ranking_score([]) is None


@pytest.mark.django_db
def test_early_ranking_criterion_through_the_api(api, monkeypatch):
    class Ranker:
        def score_epochs(self, values):
            return float(values[-1])  # "predicts" the last value

    monkeypatch.setattr(criteria, "_ranker", Ranker())
    body = {
        "name": "er",
        "parameters": [{"name": "x", "type": "double", "bounds": {"min": 0, "max": 1}}],
        "metrics": [{"name": "loss", "objective": "minimize"}],
        "training_monitor": {
            "max_checkpoints": 10,
            "early_stopping_criteria": [
                {"type": "early_ranking", "name": "rank", "min_checkpoints": 2, "margin": 0.2}
            ],
        },
    }
    exp = api.experiment(body)
    _, run = api.run(exp["id"])
    first = [api.checkpoint(run["id"], v, name="loss").json() for v in (1.0, 0.5)]
    # No finished run yet: never stops.
    assert [c["stopping_reasons"]["rank"] for c in first] == [False, False]
    api.post(f"/v1/experiments/{exp['id']}/observations", {"training_run": run["id"]})
    _, run2 = api.run(exp["id"])
    a = api.checkpoint(run2["id"], 0.9, name="loss").json()
    assert a["should_stop"] is False  # before min_checkpoints
    b = api.checkpoint(run2["id"], 0.7, name="loss").json()  # 0.7 > 0.5 * 1.2
    assert b["should_stop"] is True and b["stopping_reasons"] == {"rank": True}
    _, run3 = api.run(exp["id"])
    api.checkpoint(run3["id"], 0.9, name="loss")
    c = api.checkpoint(run3["id"], 0.55, name="loss").json()  # within the margin
    assert c["stopping_reasons"] == {"rank": False}
    # The score is stored for the charts.
    from sweeps.models import TrialEpoch

    assert list(
        TrialEpoch.objects.filter(trial_id=int(run3["id"])).order_by("epoch").values_list("score")
    ) == [(0.9,), (0.55,)]


@pytest.mark.django_db
def test_shipped_ranker_scores_api_checkpoints(api, experiment_body, monkeypatch):
    """With the real model installed, every checkpoint of a minimised metric gets a score."""
    try:
        from ranking import EarlyRanker

        EarlyRanker.load()
    except Exception as exc:
        pytest.skip(f"no shipped Early Ranking model yet ({exc})")
    monkeypatch.setattr(criteria, "_ranker", None)
    monkeypatch.setattr(criteria, "_ranker_checked_at", -math.inf)
    exp = api.experiment(experiment_body)
    _, run = api.run(exp["id"])
    for v in (1.0, 0.7, 0.6):
        assert api.checkpoint(run["id"], v).status_code == 201
    from sweeps.models import TrialEpoch

    scores = TrialEpoch.objects.filter(trial_id=int(run["id"])).values_list("score", flat=True)
    assert all(s is not None for s in scores)


@pytest.mark.django_db
def test_real_early_ranker_on_api_checkpoints(api, monkeypatch):
    """A (tiny, synthetic) ``ranking.EarlyRanker`` accepts the frames built from checkpoints,
    scores are stored per checkpoint, and the criterion decides from them."""
    import numpy as np
    import pandas as pd

    from ranking import EarlyRanker

    rng = np.random.default_rng(0)
    histories, finals = [], []
    for _ in range(60):
        n, final = int(rng.integers(2, 8)), 0.2 + float(rng.random())
        histories.append(
            pd.DataFrame(
                {
                    "epoch": range(n),
                    "iter": [-1] * n,
                    "train_loss": [math.nan] * n,
                    "val_loss": [final + 1.0 / (k + 1) for k in range(n)],
                }
            )
        )
        finals.append(final)
    ranker = EarlyRanker(n_estimators=10, min_child_samples=2).fit(histories, finals)
    monkeypatch.setattr(criteria, "_ranker", ranker)
    body = {
        "name": "real ranker",
        "parameters": [{"name": "x", "type": "double", "bounds": {"min": 0, "max": 1}}],
        "metrics": [{"name": "loss", "objective": "minimize"}],
        "training_monitor": {
            "max_checkpoints": 10,
            "early_stopping_criteria": [{"type": "early_ranking", "min_checkpoints": 2}],
        },
    }
    exp = api.experiment(body)
    _, good = api.run(exp["id"])
    for v in (0.5, 0.35, 0.3):
        api.checkpoint(good["id"], v, name="loss")
    api.post(f"/v1/experiments/{exp['id']}/observations", {"training_run": good["id"]})
    _, bad = api.run(exp["id"])
    answers = [api.checkpoint(bad["id"], v, name="loss").json() for v in (3.0, 2.9)]
    assert answers[-1]["stopping_reasons"] == {"early_ranking": True}
    from sweeps.models import TrialEpoch

    scores = list(
        TrialEpoch.objects.filter(trial_id=int(bad["id"])).values_list("score", flat=True)
    )
    assert len(scores) == 2 and all(s is not None and s > 0.3 * 1.1 for s in scores)


@pytest.mark.django_db
def test_shipped_ranker_stops_only_runs_worse_than_the_best_at_the_same_checkpoint(
    api, monkeypatch
):
    """The docs' criterion with the real model: a run on the best run's curve, or below it,
    trains to the end; a run clearly above it is stopped at min_checkpoints."""
    from ranking import EarlyRanker

    monkeypatch.setattr(criteria, "_ranker", EarlyRanker.load())
    body = {
        "name": "shipped ranker",
        "parameters": [{"name": "x", "type": "double", "bounds": {"min": 0, "max": 1}}],
        "metrics": [{"name": "loss", "objective": "minimize"}],
        "training_monitor": {
            "max_checkpoints": 20,
            "early_stopping_criteria": [
                {"type": "early_ranking", "name": "ranked_out", "min_checkpoints": 3}
            ],
        },
    }
    exp = api.experiment(body)
    curve = [0.3 + 1 / (1 + k) for k in range(20)]

    def train(values):
        """Checkpoints until the API says stop; then the observation. The answers."""
        _, run = api.run(exp["id"])
        answers = []
        for v in values:
            answers.append(api.checkpoint(run["id"], v, name="loss").json())
            if answers[-1]["should_stop"]:
                break
        api.post(f"/v1/experiments/{exp['id']}/observations", {"training_run": run["id"]})
        return answers

    assert len(train(curve)) == 20
    same = train(curve)
    assert len(same) == 20 and not any(a["stopping_reasons"]["ranked_out"] for a in same)
    better = train([v - 0.1 for v in curve])
    assert len(better) == 20 and not any(a["stopping_reasons"]["ranked_out"] for a in better)
    worse = train([v * 1.5 for v in curve])
    assert len(worse) == 3 and worse[-1]["stopping_reasons"] == {"ranked_out": True}
