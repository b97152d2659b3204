"""EarlyRanker: LightGBM on scale-free features of a history prefix."""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ranking._features import (
    FEATURE_NAMES,
    N_FEATURES,
    Prefix,
    features_many,
    prefix_from_frame,
)
from ranking._forest import Forest

__all__ = ["DEFAULT_MODEL", "EarlyRanker"]

MODELS_DIR = os.path.join(os.path.dirname(__file__), "models")
#: Path stem of the shipped model: ``<stem>.txt`` (LightGBM) and ``<stem>.json`` (metadata).
DEFAULT_MODEL = os.path.join(MODELS_DIR, "early_ranker")
_FORMAT = "luminide-early-ranker/1"
_Y_CLIP = (-6.0, 3.0)
_FULL_VAL = FEATURE_NAMES.index("val_is_epoch_level")
_OBJECTIVES = ("regression", "regression_l1", "huber", "quantile", "lambdarank")


class EarlyRanker:
    """Predicts a run's best final validation loss from the first epochs of its history.

    The model is a LightGBM booster on scale-free features of the history prefix (see
    :mod:`ranking._features`). With a regression objective it predicts
    ``log(final_best / best_so_far)`` and the score is ``best_so_far * exp(prediction)``, in
    the run's own units, never above the best so far when the history has full validation
    values (epoch-end rows or epoch-level files). The default, a 0.9 quantile of that log
    ratio, is deliberately cautious about predicted improvements: in the evaluation it ranked
    better than the mean (L2) or Huber fits, which were fooled by noisy, flat runs. With
    ``objective="lambdarank"`` the same quantity is learned with a
    LambdaRank loss over groups of runs of one task (``log(best_so_far)`` as the initial
    score), which only promises the order.

    Follows the scikit-learn estimator conventions: keyword-only hyperparameters stored as
    given, validated in :meth:`fit`; learned attributes end with ``_``; ``fit`` returns self.

    Args:
        objective: ``"regression"`` (L2 on the log ratio), ``"regression_l1"``, ``"huber"``,
            ``"quantile"`` or ``"lambdarank"``.
        n_estimators: Boosting rounds.
        learning_rate: Shrinkage.
        num_leaves: Leaves per tree.
        max_depth: Tree depth limit (bounds inference cost).
        min_child_samples: Minimum rows per leaf.
        subsample: Row fraction per tree.
        colsample_bytree: Feature fraction per tree.
        reg_lambda: L2 regularisation of leaf values.
        alpha: The quantile for ``objective="quantile"`` (above 0.5 is cautious about
            predicted improvements).
        random_state: Seed; training is deterministic for a given seed.
    """

    def __init__(
        self,
        *,
        objective: str = "quantile",
        n_estimators: int = 300,
        learning_rate: float = 0.05,
        num_leaves: int = 31,
        max_depth: int = 8,
        min_child_samples: int = 40,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        reg_lambda: float = 1.0,
        alpha: float = 0.9,
        random_state: int = 0,
    ) -> None:
        self.objective = objective
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.max_depth = max_depth
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.alpha = alpha
        self.random_state = random_state

    # ------------------------------------------------------------------ sklearn plumbing

    _PARAMS = (
        "objective",
        "n_estimators",
        "learning_rate",
        "num_leaves",
        "max_depth",
        "min_child_samples",
        "subsample",
        "colsample_bytree",
        "reg_lambda",
        "alpha",
        "random_state",
    )

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Hyperparameters, as scikit-learn's ``clone`` expects."""
        return {k: getattr(self, k) for k in self._PARAMS}

    def set_params(self, **params: Any) -> EarlyRanker:
        """Set hyperparameters; unknown names raise ValueError."""
        for k, v in params.items():
            if k not in self._PARAMS:
                raise ValueError(f"unknown parameter {k!r}")
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        changed = {k: v for k, v in self.get_params().items() if v != _DEFAULTS[k]}
        return f"EarlyRanker({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    def _validate(self) -> None:
        if self.objective not in _OBJECTIVES:
            raise ValueError(f"objective must be one of {_OBJECTIVES}, got {self.objective!r}")
        for name in ("n_estimators", "num_leaves", "max_depth", "min_child_samples"):
            v = getattr(self, name)
            if not isinstance(v, int | np.integer) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        for name in ("learning_rate", "subsample", "colsample_bytree"):
            v = getattr(self, name)
            if not (isinstance(v, float | int) and 0 < v <= (1 if name != "learning_rate" else 10)):
                raise ValueError(f"{name} must be in (0, 1], got {v!r}")
        if not (isinstance(self.alpha, float | int) and 0 < self.alpha < 1):
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha!r}")
        if not (isinstance(self.reg_lambda, float | int) and self.reg_lambda >= 0):
            raise ValueError(f"reg_lambda must be >= 0, got {self.reg_lambda!r}")

    # ------------------------------------------------------------------ fitting

    def fit(
        self,
        histories: Sequence[pd.DataFrame],
        y: Sequence[float] | np.ndarray,
        *,
        groups: Sequence[Any] | None = None,
        total_epochs: Sequence[float | None] | None = None,
        sample_weight: Sequence[float] | np.ndarray | None = None,
    ) -> EarlyRanker:
        """Fit on history prefixes and the best validation loss each run reached in the end.

        Args:
            histories: History prefixes (frames as returned by :func:`ranking.read_history`).
            y: The best final validation value of each run, in its units.
            groups: A task label per history (runs comparable with each other); required
                for ``lambdarank``, used to weight tasks equally otherwise.
            total_epochs: Each run's full length in epochs, where known.
            sample_weight: Optional weight per history.

        Returns:
            self.
        """
        n = len(histories)
        if len(y) != n:
            raise ValueError(f"got {n} histories but {len(y)} targets")
        tot = list(total_epochs) if total_epochs is not None else [None] * n
        X, best, _ = features_many([prefix_from_frame(h) for h in histories], tot)
        return self.fit_features(
            X, best, np.asarray(y, dtype=np.float64), groups=groups, sample_weight=sample_weight
        )

    def fit_features(
        self,
        X: np.ndarray,
        best_so_far: np.ndarray,
        final_best: np.ndarray,
        *,
        groups: Sequence[Any] | np.ndarray | None = None,
        sample_weight: np.ndarray | Sequence[float] | None = None,
    ) -> EarlyRanker:
        """Fit on precomputed feature rows (see :func:`ranking._features.features_many`).

        Rows whose ``best_so_far`` or ``final_best`` is not finite and positive are ignored
        (diverged prefixes are scored ``inf`` without the model).
        """
        import lightgbm as lgb

        self._validate()
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != N_FEATURES:
            raise ValueError(f"X must have shape (n, {N_FEATURES}), got {X.shape}")
        best_so_far = np.asarray(best_so_far, dtype=np.float64)
        final_best = np.asarray(final_best, dtype=np.float64)
        w = (
            np.ones(len(X))
            if sample_weight is None
            else np.asarray(sample_weight, dtype=np.float64).copy()
        )
        g = np.asarray(groups) if groups is not None else None
        if self.objective == "lambdarank" and g is None:
            raise ValueError("objective='lambdarank' needs groups (a task label per history)")
        ok = (
            np.isfinite(best_so_far)
            & (best_so_far > 0)
            & np.isfinite(final_best)
            & (final_best > 0)
            & ~np.isnan(X[:, 0])
        )
        if ok.sum() < 10:
            raise ValueError(f"need at least 10 usable histories to fit, got {int(ok.sum())}")
        X, best_so_far, final_best, w = X[ok], best_so_far[ok], final_best[ok], w[ok]
        if g is not None:
            g = g[ok]
        target = np.clip(np.log(final_best / best_so_far), *_Y_CLIP)
        params: dict[str, Any] = {
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "max_depth": self.max_depth,
            "min_data_in_leaf": self.min_child_samples,
            "bagging_fraction": self.subsample,
            "bagging_freq": 1 if self.subsample < 1 else 0,
            "feature_fraction": self.colsample_bytree,
            "lambda_l2": self.reg_lambda,
            "seed": self.random_state,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": 1,
            "verbose": -1,
        }
        if self.objective != "lambdarank":
            params["objective"] = self.objective
            if self.objective == "quantile":
                params["alpha"] = self.alpha
            ds = lgb.Dataset(X, target, weight=w, feature_name=list(FEATURE_NAMES))
        else:
            assert g is not None
            # LambdaRank: a query is the set of comparable runs (one group label, e.g. one
            # task at one prefix length); rows of a query must be contiguous.
            order = np.argsort(g, kind="stable")
            X, target, best_so_far, w, g = (
                X[order],
                target[order],
                best_so_far[order],
                w[order],
                g[order],
            )
            _, counts = np.unique(g, return_counts=True)
            true_log = np.log(best_so_far) + target
            labels = np.zeros(len(X), dtype=np.int64)
            start = 0
            for c in counts:
                seg = true_log[start : start + c]
                # Relevance grades: the best runs of a query get the highest grade.
                ranks = np.argsort(np.argsort(seg)) / max(1, c - 1)
                labels[start : start + c] = np.floor((1 - ranks) ** 2 * 30).astype(np.int64)
                start += c
            params.update(
                objective="lambdarank", label_gain=list(range(32)), lambdarank_truncation_level=30
            )
            # Higher is better for LambdaRank: the level enters as -log(best so far).
            ds = lgb.Dataset(
                X,
                labels,
                group=counts,
                init_score=-np.log(best_so_far),
                feature_name=list(FEATURE_NAMES),
            )
        booster = lgb.train(params, ds, num_boost_round=self.n_estimators)
        self.booster_text_ = booster.model_to_string()
        self.forest_ = Forest(self.booster_text_)
        self.n_features_in_ = N_FEATURES
        self.feature_names_in_ = np.array(FEATURE_NAMES, dtype=object)
        self.metadata_: dict[str, Any] = {"n_train": len(X)}
        return self

    # ------------------------------------------------------------------ scoring

    def _check_fitted(self) -> Forest:
        forest = getattr(self, "forest_", None)
        if forest is None:
            raise ValueError("this EarlyRanker is not fitted; call fit() or EarlyRanker.load()")
        return forest

    def predict_features(self, X: np.ndarray, best_so_far: np.ndarray) -> np.ndarray:
        """Scores for precomputed feature rows; NaN rows (unscorable) give ``inf``."""
        forest = self._check_fitted()
        X = np.asarray(X, dtype=np.float64)
        best_so_far = np.asarray(best_so_far, dtype=np.float64)
        out = best_so_far.astype(np.float64).copy()
        ok = ~np.isnan(X[:, 0]) & np.isfinite(best_so_far) & (best_so_far > 0)
        if ok.any():
            raw = forest.predict(X[ok])
            if self.objective != "lambdarank":
                # With a full validation value the best so far is part of the final best, so
                # a prediction above it (a quantile model's artefact) means "no better".
                # Minibatch-only histories keep it: their best so far is a noisy estimate.
                exact = X[ok, _FULL_VAL] == 1
                raw = np.where(exact, np.minimum(raw, 0.0), raw)
                out[ok] = best_so_far[ok] * np.exp(np.clip(raw, *_Y_CLIP))
            else:
                # raw excludes the init score -log(best so far); undo the sign as well.
                out[ok] = best_so_far[ok] * np.exp(-np.clip(raw, -_Y_CLIP[1], -_Y_CLIP[0]))
        return out

    def score(self, history: pd.DataFrame, *, total_epochs: float | None = None) -> float:
        """Predicted best validation loss of the run at its full length (lower is better).

        Args:
            history: A history frame (see :func:`ranking.read_history`), at least one epoch.
            total_epochs: The run's planned full length in epochs, when known.

        Returns:
            The prediction in the run's own units; ``inf`` for a run that diverged (a
            non-finite loss) or logged no finite validation value.

        Raises:
            ValueError: Empty frame, or missing ``epoch``/validation columns.
        """
        return float(self.score_many([history], total_epochs=total_epochs)[0])

    def score_many(
        self,
        histories: Sequence[pd.DataFrame],
        *,
        total_epochs: float | Sequence[float | None] | None = None,
    ) -> np.ndarray:
        """Scores of many histories at once (a 1-D array, same order); see :meth:`score`."""
        self._check_fitted()
        n = len(histories)
        if total_epochs is None or isinstance(total_epochs, int | float | np.number):
            tot: Sequence[float | None] = [
                None if total_epochs is None else float(total_epochs)
            ] * n
        else:
            tot = total_epochs
            if len(tot) != n:
                raise ValueError(f"got {n} histories but {len(tot)} total_epochs")
        if n == 0:
            return np.zeros(0)
        return self._score_prefixes([prefix_from_frame(h) for h in histories], tot)

    def _score_prefixes(
        self, prefixes: Sequence[Prefix], totals: Sequence[float | None]
    ) -> np.ndarray:
        X, best, _ = features_many(prefixes, totals)
        out = self.predict_features(X, best)
        # Unscorable by the model but finite (negative metric values): best so far.
        nomodel = np.isnan(X[:, 0]) & np.isfinite(best)
        out[nomodel] = best[nomodel]
        return out

    def score_epochs(
        self, val_losses: Sequence[float], *, total_epochs: float | None = None
    ) -> float:
        """Like :meth:`score` for a run known only by its per-epoch validation losses.

        For callers that hold numbers rather than a history file (the REST API's
        checkpoints): no pandas frame is built, which is most of the cost of one score.

        Raises:
            ValueError: No values.
        """
        val = np.asarray(val_losses, dtype=np.float64)
        n = len(val)
        if n == 0:
            raise ValueError("score_epochs needs at least one validation loss")
        blank = np.full(n, np.nan)
        prefix = Prefix(np.arange(n, dtype=np.float64), np.ones(n, dtype=bool), blank, val, blank)
        return self.score_prefix(prefix, total_epochs=total_epochs)

    def score_prefix(self, prefix: Prefix, *, total_epochs: float | None = None) -> float:
        """Like :meth:`score` for arrays already extracted with ``prefix_from_frame``."""
        return float(self._score_prefixes([prefix], [total_epochs])[0])

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike[str] = DEFAULT_MODEL, **metadata: Any) -> str:
        """Write ``<path>.txt`` (LightGBM model text) and ``<path>.json`` (metadata)."""
        self._check_fitted()
        stem = os.fspath(path)
        stem = stem[:-4] if stem.endswith((".txt", ".json")) else stem
        os.makedirs(os.path.dirname(os.path.abspath(stem)), exist_ok=True)
        with open(stem + ".txt", "w", encoding="utf-8") as fh:
            fh.write(self.booster_text_)
        meta = {
            "format": _FORMAT,
            "params": self.get_params(),
            "feature_names": list(FEATURE_NAMES),
            **self.metadata_,
            **metadata,
        }
        with open(stem + ".json", "w", encoding="utf-8") as fh:
            json.dump(meta, fh, indent=2, sort_keys=True, default=str)
        return stem

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> EarlyRanker:
        """Load a saved model; by default the one shipped in ``ranking/models/``.

        Needs neither torch nor lightgbm: the trees are evaluated with numpy.
        """
        stem = os.fspath(path) if path is not None else DEFAULT_MODEL
        stem = stem[:-4] if stem.endswith(".txt") else stem
        stem = stem[:-5] if stem.endswith(".json") else stem
        with open(stem + ".json", encoding="utf-8") as fh:
            meta = json.load(fh)
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        if found != _FORMAT:
            raise ValueError(f"{stem}.json: not an EarlyRanker model ({found!r})")
        if not isinstance(meta.get("params"), dict) or "feature_names" not in meta:
            raise ValueError(f"{stem}.json: incomplete model (needs params and feature_names)")
        if list(meta["feature_names"]) != list(FEATURE_NAMES):
            raise ValueError(
                f"{stem}: model was trained on other features; retrain with "
                "`python -m ranking train`"
            )
        with open(stem + ".txt", encoding="utf-8") as fh:
            text = fh.read()
        self = cls(**meta["params"])
        self.booster_text_ = text
        self.forest_ = Forest(text)
        self.n_features_in_ = N_FEATURES
        self.feature_names_in_ = np.array(FEATURE_NAMES, dtype=object)
        self.metadata_ = {k: v for k, v in meta.items() if k not in ("params", "feature_names")}
        return self


_DEFAULTS = {
    k: v.default
    for k, v in inspect.signature(EarlyRanker.__init__).parameters.items()
    if k != "self"
}
