"""Training the shipped model from the corpus (and users' completed runs)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from ranking._dataset import RunData, corpus_runs, cut, make_rows, prefix_epochs, user_runs
from ranking._evaluate import rank_metrics, task_weights
from ranking._features import features_many
from ranking._ranker import DEFAULT_MODEL, EarlyRanker

__all__ = ["DEFAULT_PARAMS", "load_runs", "quick_report", "train_model"]

#: Hyperparameters of the shipped model (chosen by ``python -m ranking evaluate``).
DEFAULT_PARAMS: dict[str, object] = {"objective": "quantile", "alpha": 0.9}


def load_runs(
    corpus: str | None = None,
    work_dir: str | None = None,
    add_runs: Sequence[str] = (),
    min_epochs: int = 10,
) -> list[RunData]:
    """Corpus runs (shipped file, a given file, or a build's work folder) plus user runs."""
    from ranking._corpus import load_corpus

    # The user's folders first: a mistyped one is reported before the corpus loads (~30 s).
    added = user_runs(list(add_runs), min_epochs=min_epochs) if add_runs else []
    histories, manifest = load_corpus(corpus, work_dir=work_dir)
    return corpus_runs(histories, manifest) + added


def quick_report(
    ranker: EarlyRanker | None,
    runs: Sequence[RunData],
    fractions: Sequence[float] = (0.06, 0.1, 0.2),
) -> pd.DataFrame:
    """Mean Spearman per group of runs (task or user folder) at a few budgets.

    Used before/after retraining; for a model trained on these runs it is in-sample.
    """
    rows = []
    by_task: dict[str, list[RunData]] = {}
    for r in runs:
        by_task.setdefault(r.task, []).append(r)
    for task, rs in sorted(by_task.items()):
        for f in fractions:
            truth = np.array([r.outcome["full"] for r in rs])
            X, best, _ = features_many(
                [cut(r.views["full"], prefix_epochs(r.total_epochs, f)) for r in rs],
                [float(r.total_epochs) for r in rs],
            )
            s = ranker.predict_features(X, best) if ranker is not None else best
            rows.append({"group": task, "fraction": f, "spearman": rank_metrics(s, truth)[0]})
    return pd.DataFrame(rows)


def train_model(
    runs: Sequence[RunData],
    *,
    out: str | None = DEFAULT_MODEL,
    params: dict[str, object] | None = None,
    log: Callable[[str], None] = print,
    **metadata: object,
) -> EarlyRanker:
    """Fit an :class:`EarlyRanker` on all runs (every view and prefix) and save it."""
    t0 = time.time()
    rows = make_rows(runs)
    log(f"{len(runs)} runs -> {len(rows.X)} training rows ({time.time() - t0:.0f}s)")
    ranker = EarlyRanker(**(params or DEFAULT_PARAMS))  # type: ignore[arg-type]
    groups = np.array(
        [f"{t}|{v}|{f:.3f}" for t, v, f in zip(rows.task, rows.view, rows.fraction, strict=True)]
    )
    ranker.fit_features(
        rows.X, rows.best, rows.outcome, groups=groups, sample_weight=task_weights(rows)
    )
    ranker.metadata_.update(
        n_runs=len(runs),
        tasks=sorted({r.task for r in runs}),
        trained_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **metadata,
    )
    log(f"fitted in {time.time() - t0:.0f}s")
    if out:
        stem = ranker.save(out)
        size = os.path.getsize(stem + ".txt")
        log(f"saved {stem}.txt ({size / 1e6:.2f} MB) and {stem}.json")
    return ranker
