"""EarlyRankingPruner: argument checks, guards, and a real study against MedianPruner."""

from __future__ import annotations

import math
import os

import numpy as np
import optuna
import pytest

from ranking import EarlyRanker
from ranking.optuna import EarlyRankingPruner, history_from_trial, predicted_final_value

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_startup_trials": -1},
        {"n_warmup_steps": 0},
        {"interval_steps": 0},
        {"margin": -0.1},
        {"margin": math.nan},
        {"top_k": 0},
        {"total_steps": 0},
    ],
)
def test_arguments_are_checked_eagerly(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        EarlyRankingPruner(**kwargs)  # type: ignore[arg-type]


def _curve_objective(curves: list[list[float]], pruned: list[int]) -> object:
    def objective(trial: optuna.Trial) -> float:
        i = trial.number % len(curves)
        for step, v in enumerate(curves[i]):
            trial.report(v, step)
            if trial.should_prune():
                pruned.append(trial.number)
                raise optuna.TrialPruned()
        return min(curves[i])

    return objective


def test_guards_and_pruning(fitted_ranker: EarlyRanker) -> None:
    good = [1.0 * (e + 1) ** -0.5 for e in range(10)]
    bad = [3.0 * (e + 1) ** -0.05 for e in range(10)]
    pruned: list[int] = []
    pruner = EarlyRankingPruner(ranker=fitted_ranker, n_startup_trials=2, n_warmup_steps=3)
    study = optuna.create_study(pruner=pruner, sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(_curve_objective([good, good, bad, bad], pruned), n_trials=4)
    # Startup trials are never pruned; the bad curves are pruned right after warm-up.
    assert pruned == [2, 3]
    t = study.trials[2]
    assert len(t.intermediate_values) == 3
    assert len(history_from_trial(t)) == 3
    assert predicted_final_value(t, ranker=fitted_ranker) > study.best_value


def test_one_pruner_serves_several_studies(fitted_ranker: EarlyRanker) -> None:
    """Trial numbers start again in each study: scores must not carry over."""
    good = [1.0 * (e + 1) ** -0.5 for e in range(10)]
    bad = [3.0 * (e + 1) ** -0.05 for e in range(10)]
    pruner = EarlyRankingPruner(ranker=fitted_ranker, n_startup_trials=2, n_warmup_steps=3)
    pruned: list[int] = []
    first = optuna.create_study(pruner=pruner)
    first.optimize(_curve_objective([good, good, bad], pruned), n_trials=3)
    assert pruned == [2]
    pruned.clear()
    second = optuna.create_study(pruner=pruner)  # the same pruner object, reused
    second.optimize(_curve_objective([bad, bad, good], pruned), n_trials=3)
    assert pruned == []  # trial 2 is the good curve here


def test_maximize_is_rejected(fitted_ranker: EarlyRanker) -> None:
    study = optuna.create_study(
        direction="maximize", pruner=EarlyRankingPruner(ranker=fitted_ranker, n_startup_trials=0)
    )
    with pytest.raises(ValueError, match="minimize"):
        study.optimize(_curve_objective([[1.0, 2.0]], []), n_trials=1)


def test_predicted_value_needs_values(fitted_ranker: EarlyRanker) -> None:
    study = optuna.create_study()
    trial = study.ask()
    with pytest.raises(ValueError, match="no intermediate"):
        predicted_final_value(trial, ranker=fitted_ranker)
    trial.report(0.5, 0)
    trial.report(0.4, 1)
    assert math.isfinite(predicted_final_value(trial, ranker=fitted_ranker))


CORPUS = os.path.join(os.path.dirname(__file__), "..", "..", "ranking", "corpus", "corpus.parquet")


@pytest.mark.skipif(not os.path.exists(CORPUS), reason="corpus not built")
def test_real_study_against_median_pruner() -> None:
    """Replay one corpus task's recorded curves as a real Optuna study (one trial = one run).

    Both pruners see the same sampled runs in the same order; we compare epochs spent and the
    true final quality of the best trial found.
    """
    from ranking._corpus import load_corpus

    histories, manifest = load_corpus()
    task = "digits_mlp"
    ids = manifest[(manifest["task"] == task) & ~manifest["diverged"]]["run_id"].tolist()
    curves = {}
    for rid in ids:
        h = histories[rid]
        ev = h.loc[h["iter"] == -1, "epoch_val_loss"].to_numpy(np.float64)
        curves[rid] = ev
    ranker = EarlyRanker.load()

    def run(pruner: optuna.pruners.BasePruner) -> tuple[int, float]:
        spent = 0
        finals: list[float] = []

        def objective(trial: optuna.Trial) -> float:
            nonlocal spent
            rid = trial.suggest_categorical("run", ids)
            ev = curves[rid]
            for step, v in enumerate(ev):
                spent += 1
                trial.report(float(v), step)
                if trial.should_prune():
                    raise optuna.TrialPruned()
            finals.append(float(np.nanmin(ev)))
            return float(np.nanmin(ev))

        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3), pruner=pruner)
        study.optimize(objective, n_trials=40)
        return spent, study.best_value

    full_spent, full_best = run(optuna.pruners.NopPruner())
    med_spent, med_best = run(optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=3))
    er_spent, er_best = run(
        EarlyRankingPruner(ranker=ranker, n_startup_trials=5, n_warmup_steps=3, margin=0.2)
    )
    print(f"epochs: full {full_spent}, median {med_spent}, early ranking {er_spent}")
    print(f"best:   full {full_best:.4f}, median {med_best:.4f}, early ranking {er_best:.4f}")
    assert er_spent < full_spent
    assert er_best <= full_best * 1.25
    assert er_spent <= med_spent * 1.25 or er_best <= med_best
