"""A Fast Training's predicted final val loss, in its project's own terms.

The Early Ranking score is a ranking key: the ranker's cautious 0.9 quantile, trained on small
tasks, that orders runs of a task well but can sit far above what a full training reaches
(the demo: 0.34 after 3 epochs, 0.037 after 30). The project's own completed full-length runs
say by how much. The runs whose score after the same number of epochs was closest to this
one's each give the ratio of the best val loss they ended with to that score; the median
ratio times this run's score is the estimate, the smallest and largest its range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sweeps.models import Experiment, RunState, Trial, TrialEpoch

#: How many of the closest-scoring full runs the estimate rests on.
NEIGHBOURS = 5
#: Full runs considered (the newest), so a project with many sweeps stays one quick query.
MAX_RUNS = 2000
FULL_KINDS = (Experiment.Kind.TRAIN, Experiment.Kind.SWEEP)


@dataclass(frozen=True)
class Prediction:
    estimate: float
    low: float
    high: float
    runs: int  # full runs it rests on
    epochs: int  # after this many epochs


def _usable(x: float | None) -> bool:
    return x is not None and math.isfinite(x) and x > 0


def predict_final(trial: Trial) -> Prediction | None:
    """The estimate for ``trial`` from its project's full runs; None without any to go by."""
    k, score = trial.epochs_done, trial.score
    if not k or score is None or not _usable(score):
        return None
    # The epoch its score is from, as the history numbers it (0 in the templates, maybe 1).
    last = trial.epochs.order_by("-epoch").values_list("epoch", flat=True).first()
    if last is None:
        return None
    evidence = (
        TrialEpoch.objects.filter(
            epoch=last,  # the full runs' score after as many epochs
            trial__experiment__project_id=trial.experiment.project_id,
            trial__experiment__kind__in=FULL_KINDS,
            trial__state=RunState.COMPLETE,
            trial__epochs_done__gt=k,
        )
        .exclude(trial=trial)
        .order_by("-trial__finished_at")
        .values_list("score", "trial__best_val_loss")[:MAX_RUNS]
    )
    return calibrate(score, list(evidence), epochs=k)


def calibrate(
    score: float, evidence: list[tuple[float | None, float | None]], *, epochs: int
) -> Prediction | None:
    """``score`` scaled by full runs' (score after ``epochs``, best val loss at the end)."""
    pairs = np.array([(s, b) for s, b in evidence if _usable(s) and _usable(b)]).reshape(-1, 2)
    if not len(pairs) or not _usable(score):
        return None
    closest = pairs[np.argsort(np.abs(np.log(pairs[:, 0] / score)), kind="stable")[:NEIGHBOURS]]
    ratios = closest[:, 1] / closest[:, 0]
    return Prediction(
        estimate=float(score * np.median(ratios)),
        low=float(score * ratios.min()),
        high=float(score * ratios.max()),
        runs=len(closest),
        epochs=epochs,
    )
