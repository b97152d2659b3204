"""Sweep page chart data (pure functions): ranks, greyed trials, best so far, curves,
parallel coordinates; NaN/inf always encoded explicitly (strict JSON)."""

from __future__ import annotations

import json
import math

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from sweeps import sweep_charts as sc
from sweeps.sweep_charts import TrialPoint

INF = math.inf
NAN = math.nan


def strict_json(obj) -> str:
    """JSON text of ``obj``; fails on NaN/Infinity (what browsers' JSON.parse rejects)."""
    return json.dumps(obj, allow_nan=False)


@pytest.fixture
def trials() -> list[TrialPoint]:
    return [
        TrialPoint(0, "complete", value=0.5, score=0.5, epochs=3, params={"lr": 0.01}),
        TrialPoint(
            1,
            "failed",
            value=None,
            score=INF,
            epochs=1,
            failure_reason="exit code 1: RuntimeError: boom\nwarning\nTraceback …\nRuntimeError: boom",
        ),
        TrialPoint(2, "complete", value=0.3, score=0.3, epochs=3, params={"lr": 0.001}),
        TrialPoint(3, "running", value=None, score=0.2, epochs=2),
        TrialPoint(4, "complete", value=0.3, score=0.3, epochs=3),  # tie with 2
        TrialPoint(
            5, "pruned", value=None, epochs=1, failure_reason="exit code 1\nwarn\nOSError: x"
        ),
        TrialPoint(6, "complete", value=0.7, epochs=3, retried_after="lost its worker (w@h died)"),
        TrialPoint(7, "cancelled", epochs=0),
        TrialPoint(8, "complete", value=INF, epochs=3),  # diverged: no rank
        TrialPoint(9, "queued"),
    ]


def test_ranks_only_complete_finite_lower_is_better_ties_by_number(trials):
    ranks = sc.rank_trials(trials)
    assert ranks == {2: 1, 4: 2, 0: 3, 6: 4}


def test_history_best_so_far_skips_failed_and_nonfinite(trials):
    h = sc.optimization_history(trials)
    assert h["x"] == [0, 2, 4, 6]
    assert h["y"] == [0.5, 0.3, 0.3, 0.7]
    assert h["best"] == [0.5, 0.3, 0.3, 0.3]
    assert h["failed"] == [1, 5, 7]
    strict_json(h)


def test_rows_grey_failed_pruned_cancelled_and_encode_nonfinite(trials):
    rows = {r["number"]: r for r in sc.trial_rows(trials, sc.rank_trials(trials))}
    assert [n for n, r in rows.items() if r["greyed"]] == [1, 5, 7]
    assert rows[2]["rank"] == 1 and rows[3]["rank"] is None
    assert rows[1]["score"] == "inf"
    assert rows[8]["value"] == "inf"
    assert rows[1]["reason"] == "exit code 1: RuntimeError: boom"  # its first line
    assert rows[6]["reason"] == "retried: the first attempt lost its worker (w@h died)"
    assert rows[0]["reason"] == ""
    assert rows[5]["reason"] == "exit code 1: OSError: x"  # a reason stored the old way
    assert rows[9]["value"] is None
    strict_json(rows)


def test_nan_is_explicit_too():
    rows = sc.trial_rows([TrialPoint(0, "failed", value=NAN, score=-INF)], {})
    assert rows[0]["value"] == "nan" and rows[0]["score"] == "-inf"
    curve = sc.trial_curve([0, 1], [NAN, 1.0], [INF, 0.9], 10)
    assert curve["val"] == ["nan", 1.0] and curve["score"] == ["inf", 0.9]
    strict_json(curve)


def test_downsample_keeps_first_last_and_extra():
    idx = sc.downsample_indices(1000, 10, keep=[437])
    assert idx[0] == 0 and idx[-1] == 999 and 437 in idx
    assert len(idx) <= 11 and idx == sorted(set(idx))
    assert sc.downsample_indices(5, 10) == [0, 1, 2, 3, 4]


def test_curve_keeps_minimum_and_reports_original_length():
    epochs = list(range(200))
    val = [1.0 + abs(e - 123) / 100 for e in epochs]  # minimum at epoch 123
    score = [2.0 - e / 1000 for e in epochs]
    curve = sc.trial_curve(epochs, val, score, 20)
    assert curve["n"] == 200
    assert 123 in curve["epoch"] and 199 in curve["epoch"]
    assert min(curve["val"]) == 1.0
    assert len(curve["epoch"]) == len(curve["val"]) == len(curve["score"]) <= 23


def test_curves_group_rows_and_budget_scales_with_sweep_size():
    rows = [(n, e, 1.0 / (e + 1), None) for n in (0, 3) for e in range(50)]
    out = sc.curves(rows, n_trials=2)
    assert set(out) == {"0", "3"}
    assert out["3"]["epoch"] == list(range(50)) and out["3"]["score"] == [None] * 50
    assert sc.curve_points_per_trial(1000) * 1000 <= sc.CURVE_POINT_BUDGET
    assert sc.curve_points_per_trial(100_000) == sc.MIN_CURVE_POINTS
    big = sc.curves(rows, n_trials=10_000)
    assert len(big["0"]["epoch"]) <= sc.MIN_CURVE_POINTS + 2


def test_vectorised_curves_equal_the_per_trial_function():
    import random

    rng = random.Random(1)
    rows = []
    for number in (0, 2, 5):
        for e in range(rng.randrange(1, 90)):
            v = rng.choice([None, INF, rng.uniform(1e-6, 1e6), rng.uniform(0, 1), 0.0])
            rows.append((number, e, v, rng.choice([None, -INF, rng.uniform(-2, 2)])))
    for n_trials in (3, 3000):
        out = sc.curves(rows, n_trials)
        budget = sc.curve_points_per_trial(n_trials)
        for number in (0, 2, 5):
            mine = [r for r in rows if r[0] == number]
            expected = sc.trial_curve(
                [r[1] for r in mine], [r[2] for r in mine], [r[3] for r in mine], budget
            )
            assert out[str(number)] == expected
        strict_json(out)


def test_curve_values_are_rounded_for_size():
    curve = sc.trial_curve([0], [0.123456789], [1 / 3], 5)
    assert curve["val"] == [0.12346] and curve["score"] == [0.33333]


def test_param_specs_and_parallel_coordinates():
    specs = sc.param_specs(
        {
            "lr": FloatDistribution(1e-4, 1e-1, log=True),
            "arch": CategoricalDistribution(["small", "wide"]),
            "batch": IntDistribution(8, 64, step=8),
        }
    )
    assert [s["name"] for s in specs] == ["arch", "batch", "lr"]
    assert specs[1] == {
        "name": "batch",
        "type": "int",
        "low": 8,
        "high": 64,
        "log": False,
        "step": 8,
    }
    trials = [
        TrialPoint(0, "complete", value=0.4, params={"lr": 0.01, "arch": "wide", "batch": 16}),
        TrialPoint(1, "failed", params={"lr": 0.1, "arch": "small", "batch": 8}),
        TrialPoint(2, "complete", value=0.2, params={"lr": 0.001, "arch": "small", "batch": 64}),
    ]
    pc = sc.parallel_coordinates(trials, specs, "best val loss")
    assert pc["numbers"] == [0, 2]  # only completed trials are lines
    arch, batch, lr, objective = pc["dimensions"]
    assert arch["values"] == [1, 0] and arch["ticktext"] == ["small", "wide"]
    assert batch["values"] == [16.0, 64.0] and batch["range"] == [8, 64]
    assert lr["label"] == "lr (log)"
    assert lr["values"] == pytest.approx([-2.0, -3.0])
    assert lr["ticktext"] == ["0.0001", "0.001", "0.01", "0.1"]
    assert objective == {"label": "best val loss", "values": [0.4, 0.2]}
    assert pc["color"] == [0.4, 0.2]
    strict_json(pc)


def test_parallel_coordinates_keeps_the_best_lines():
    trials = [TrialPoint(k, "complete", value=(k * 7) % 10, params={"x": k}) for k in range(10)]
    specs = [{"name": "x", "type": "int", "low": 0, "high": 9, "log": False, "step": 1}]
    pc = sc.parallel_coordinates(trials, specs, "loss", max_lines=3)
    assert pc["total"] == 10
    assert pc["numbers"] == [0, 3, 6]  # the three lowest values, in trial order
    assert pc["color"] == [0, 1, 2] and pc["dimensions"][0]["values"] == [0.0, 3.0, 6.0]


def test_counts(trials):
    assert sc.counts(trials) == {
        "complete": 5,
        "failed": 1,
        "running": 1,
        "pruned": 1,
        "cancelled": 1,
        "queued": 1,
    }
