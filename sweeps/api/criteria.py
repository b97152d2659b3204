"""Training Monitor stopping criteria: pure functions over a run's checkpoint values.

``convergence`` (metric m, lookback L, min_checkpoints K): with n checkpoints reporting m,
the run should stop when n >= max(K, L + 1) and none of the last L values strictly improves
on the best value among the checkpoints before them (for a minimised metric: min of the last
L >= min of the first n - L; for a maximised one, max <=).

``early_ranking`` (metric m, minimised; lookback L, min_checkpoints K, margin M, default
0.1): s_k is the Early Ranking score of the run's history of m up to its k-th value (the
predicted best value the run would reach if trained to the end). b_k is the best score at
k among the experiment's finished runs, computed the same way when they were at k. The run
should stop when n >= K and s_k > b_k + M * |b_k| for each of the last L values k.

Scores are compared at the same k, not with the finished runs' final values: a prediction
from k checkpoints is biased towards the value already reached (from few epoch-level values
the shipped ranker predicts little more improvement), and that bias is the same on both
sides. Against final values every run early in training would look worse than the best one
and be stopped. The criterion does not fire before a finished run has reached k, nor without
a ranker model.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

logger = logging.getLogger(__name__)

Scorer = Callable[[Sequence[float]], float | None]


def best(values: Sequence[float], objective: str) -> float:
    return min(values) if objective == "minimize" else max(values)


def is_better(a: float, b: float, objective: str) -> bool:
    return a < b if objective == "minimize" else a > b


def convergence(
    values: Sequence[float], objective: str, lookback: int, min_checkpoints: int
) -> bool:
    n = len(values)
    if n < max(min_checkpoints, lookback + 1):
        return False
    before = best(values[: n - lookback], objective)
    recent = best(values[n - lookback :], objective)
    return not is_better(recent, before, objective)


def early_ranking(
    values: Sequence[float],
    *,
    lookback: int,
    min_checkpoints: int,
    margin: float,
    best_at: Sequence[float | None],
    scorer: Scorer,
) -> bool:
    """``best_at[k - 1]``: b_k, the finished runs' best score at their k-th value (None: no
    finished run has a score there)."""
    n = len(values)
    if n < max(min_checkpoints, lookback):
        return False
    for k in range(n - lookback + 1, n + 1):
        best = best_at[k - 1] if k <= len(best_at) else None
        if best is None:
            return False
        score = scorer(values[:k])
        if score is None or not score > best + margin * abs(best):
            return False
    return True


def best_scores_at(runs_scores: Iterable[Sequence[float | None]]) -> list[float | None]:
    """b_k for every k: the lowest score at each position over the finished runs' scores."""
    best: list[float | None] = []
    for scores in runs_scores:
        for k, score in enumerate(scores):
            if k == len(best):
                best.append(None)
            if score is not None and (best[k] is None or score < best[k]):
                best[k] = score
    return best


def evaluate(
    criteria: Sequence[Mapping[str, Any]],
    objectives: Mapping[str, str],
    history: Mapping[str, Sequence[float]],
    best_at: Mapping[str, Sequence[float | None]],
    scorer: Scorer,
) -> dict[str, bool]:
    """``{criterion name: should stop}`` for the run whose values per metric are ``history``;
    ``best_at``: :func:`best_scores_at` of the finished runs, per early-ranked metric."""
    reasons: dict[str, bool] = {}
    for c in criteria:
        values = history.get(c["metric"], ())
        if c["type"] == "convergence":
            reasons[c["name"]] = convergence(
                values, objectives[c["metric"]], c["lookback_checkpoints"], c["min_checkpoints"]
            )
        else:
            reasons[c["name"]] = early_ranking(
                values,
                lookback=c["lookback_checkpoints"],
                min_checkpoints=c["min_checkpoints"],
                margin=c.get("margin", 0.1),
                best_at=best_at.get(c["metric"], ()),
                scorer=scorer,
            )
    return reasons


# --- the Early Ranking model, loaded once, guarded while it is not shipped -------------

_ranker_lock = threading.Lock()
_ranker: Any = None
_ranker_checked_at = -math.inf
_RETRY_SECONDS = 60.0


def _get_ranker() -> Any:
    """The default ``EarlyRanker``, or None while no model can be loaded (retried each minute)."""
    global _ranker, _ranker_checked_at
    if _ranker is not None:
        return _ranker
    now = time.monotonic()
    if now - _ranker_checked_at < _RETRY_SECONDS:
        return None
    with _ranker_lock:
        _ranker_checked_at = now
        try:
            from ranking import EarlyRanker  # type: ignore[attr-defined]

            _ranker = EarlyRanker.load()
        except Exception as exc:  # no model shipped yet, or an incompatible file
            logger.info("Early Ranking model unavailable: %s", exc)
            _ranker = None
    return _ranker


def ranker_available() -> bool:
    """Whether an Early Ranking model is loaded (checked at most once a minute)."""
    return _get_ranker() is not None


def early_ranking_score(values: Sequence[float]) -> float | None:
    """Early Ranking score of a run whose per-checkpoint values of a minimised metric are
    ``values`` (one row per checkpoint, as an epoch); None without a model."""
    ranker = _get_ranker()
    if ranker is None or not values:
        return None
    try:
        score = ranker.score_epochs(values)
    except Exception:
        logger.exception("Early Ranking failed on a %d-checkpoint history", len(values))
        return None
    return score if not math.isnan(score) else None
