"""Optuna integration: prune trials by their Early Ranking prediction.

Example::

    import optuna
    from ranking.optuna import EarlyRankingPruner, predicted_final_value

    pruner = EarlyRankingPruner(n_startup_trials=5, n_warmup_steps=2, total_steps=50)
    study = optuna.create_study(direction="minimize", pruner=pruner)

    def objective(trial):
        model = build(trial)
        best = float("inf")
        for epoch in range(50):
            val_loss = train_one_epoch(model)
            best = min(best, val_loss)
            trial.report(val_loss, epoch)
            if trial.should_prune():
                # Either prune, or (Fast Sweep style) stop early and keep the prediction:
                return predicted_final_value(trial, total_steps=50)
        return best

    study.optimize(objective, n_trials=50)

Intermediate values are read as an epoch-level validation curve (one value per step, lower is
better); the prediction is in the same units as the reported values.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
import pandas as pd
from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    from ranking._ranker import EarlyRanker

__all__ = ["EarlyRankingPruner", "history_from_trial", "predicted_final_value"]


def history_from_trial(trial: FrozenTrial | optuna.trial.Trial) -> pd.DataFrame:
    """A trial's intermediate values as an epoch-level history frame (step = epoch)."""
    return _history(_intermediate_values(trial))


def _history(values: dict[int, float]) -> pd.DataFrame:
    steps = sorted(values)
    return pd.DataFrame(
        {
            "epoch": np.asarray(steps, dtype=np.int64),
            "iter": np.full(len(steps), -1, dtype=np.int64),
            "train_loss": np.full(len(steps), np.nan),
            "val_loss": np.asarray([values[s] for s in steps], dtype=np.float64),
            "epoch_val_loss": np.full(len(steps), np.nan),
        }
    )


def _intermediate_values(trial: FrozenTrial | optuna.trial.Trial) -> dict[int, float]:
    if isinstance(trial, optuna.trial.Trial):
        # A live trial: its frozen view in the study has the values reported so far.
        for frozen in trial.study.get_trials(deepcopy=False):
            if frozen.number == trial.number:
                return dict(frozen.intermediate_values)
        return {}
    return dict(trial.intermediate_values)


def predicted_final_value(
    trial: FrozenTrial | optuna.trial.Trial,
    *,
    ranker: EarlyRanker | None = None,
    total_steps: int | None = None,
) -> float:
    """The ranker's prediction of the best value the trial would reach if trained fully.

    Use it as the value to ``tell`` (or return) for a trial stopped early. ``inf`` for a
    diverged trial; raises ValueError for a trial with no intermediate values.
    """
    from ranking._ranker import EarlyRanker

    if not _intermediate_values(trial):
        raise ValueError("the trial has reported no intermediate values")
    r = ranker if ranker is not None else EarlyRanker.load()
    return r.score(history_from_trial(trial), total_epochs=total_steps)


class EarlyRankingPruner(BasePruner):
    """Prune a trial whose predicted final value is worse than the best completed trials'.

    After ``n_startup_trials`` completed trials and ``n_warmup_steps`` reported steps, the
    trial's intermediate values are scored with the Early Ranking model, and so are the
    completed trials' values up to the same step; the trial is pruned when its prediction is
    worse than the ``top_k``-th best of theirs by more than ``margin`` (relative), or when it
    diverged. Minimisation only.

    Args:
        ranker: The model (default: the shipped one, loaded on first use).
        n_startup_trials: Never prune before this many trials have completed.
        n_warmup_steps: Never prune a trial before it has reported this many steps.
        interval_steps: Only consider pruning every this many steps after warm-up.
        margin: Relative slack: prune if ``prediction > reference * (1 + margin)``.
        top_k: Compare with the k-th best completed trial's prediction (1 = the best).
        total_steps: The trials' planned full length in steps, when known.
    """

    def __init__(
        self,
        *,
        ranker: EarlyRanker | None = None,
        n_startup_trials: int = 5,
        n_warmup_steps: int = 1,
        interval_steps: int = 1,
        margin: float = 0.1,
        top_k: int = 1,
        total_steps: int | None = None,
    ) -> None:
        if n_startup_trials < 0:
            raise ValueError(f"n_startup_trials must be >= 0, got {n_startup_trials}")
        if n_warmup_steps < 1:
            raise ValueError(f"n_warmup_steps must be >= 1, got {n_warmup_steps}")
        if interval_steps < 1:
            raise ValueError(f"interval_steps must be >= 1, got {interval_steps}")
        if not (isinstance(margin, int | float) and math.isfinite(margin) and margin >= 0):
            raise ValueError(f"margin must be a finite number >= 0, got {margin!r}")
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        if total_steps is not None and total_steps < 1:
            raise ValueError(f"total_steps must be >= 1 or None, got {total_steps}")
        self._ranker = ranker
        self._n_startup_trials = n_startup_trials
        self._n_warmup_steps = n_warmup_steps
        self._interval_steps = interval_steps
        self._margin = float(margin)
        self._top_k = top_k
        self._total_steps = total_steps
        self._cache: dict[tuple[Any, ...], float] = {}

    @property
    def ranker(self) -> EarlyRanker:
        """The model in use (the shipped one unless given)."""
        if self._ranker is None:
            from ranking._ranker import EarlyRanker

            self._ranker = EarlyRanker.load()
        return self._ranker

    def prune(self, study: optuna.study.Study, trial: FrozenTrial) -> bool:
        """Optuna's hook: True to prune ``trial`` now."""
        if len(study.directions) > 1:
            raise ValueError("EarlyRankingPruner does not support multi-objective studies")
        if study.direction != StudyDirection.MINIMIZE:
            raise ValueError("EarlyRankingPruner supports direction='minimize' only")
        step = trial.last_step
        if step is None:
            return False
        n_steps = len(trial.intermediate_values)
        if n_steps < self._n_warmup_steps:
            return False
        if (n_steps - self._n_warmup_steps) % self._interval_steps != 0:
            return False
        completed = [
            t
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.intermediate_values
        ]
        if len(completed) < max(1, self._n_startup_trials):
            return False
        prediction = self._score(study, trial, step)
        if math.isinf(prediction):
            return True
        # Compare like with like: the completed trials' predictions from their values up to
        # the same step (the model's bias at a given step then cancels out), as MedianPruner
        # compares intermediate values at the same step.
        others = sorted(self._score(study, t, step) for t in completed)
        reference = others[min(self._top_k, len(others)) - 1]
        if math.isinf(reference):
            return False
        return bool(prediction > reference + self._margin * abs(reference))

    def _score(self, study: optuna.study.Study, trial: FrozenTrial, step: int) -> float:
        # Trial numbers start again in every study: one pruner may serve several studies.
        key = (study.study_name, trial.number, trial.datetime_start, step)
        cached = self._cache.get(key)
        if cached is None:
            values = {s: v for s, v in trial.intermediate_values.items() if s <= step}
            if not values:
                return math.inf
            cached = self.ranker.score(_history(values), total_epochs=self._total_steps)
            self._cache[key] = cached
        return cached

    def __repr__(self) -> str:
        fields: dict[str, Any] = {
            "n_startup_trials": self._n_startup_trials,
            "n_warmup_steps": self._n_warmup_steps,
            "interval_steps": self._interval_steps,
            "margin": self._margin,
            "top_k": self._top_k,
            "total_steps": self._total_steps,
        }
        return "EarlyRankingPruner(" + ", ".join(f"{k}={v!r}" for k, v in fields.items()) + ")"
