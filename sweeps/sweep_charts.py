"""Sweep page chart data: pure functions of plain values (no Django, no Plotly).

The sweep page draws five charts and a table from one JSON document (see
:func:`sweeps.sweep_views.sweep_data`). Everything that decides *what* is shown lives here,
so it is tested without a browser: ranks (1 = best objective), which trials are greyed out
(failed, pruned, cancelled), best-so-far, parallel-coordinate dimensions, and learning
curves downsampled on the server so a sweep of 1,000 trials x 50 epochs stays under 2 MB.
``static/js/sweep.js`` only turns these into Plotly traces.

JSON has no NaN or infinity: every float goes through :func:`sweeps.history.json_float`
(null when unknown, the strings ``"nan"``, ``"inf"``, ``"-inf"`` when not finite).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sweeps.history import json_float

#: States drawn in grey: the trial has no (valid) result.
GREYED_STATES = frozenset({"failed", "pruned", "cancelled"})
ACTIVE_STATES = frozenset({"queued", "running"})
#: Learning-curve points per chart, over all trials (each chart: val loss, score).
CURVE_POINT_BUDGET = 30_000
#: ... but never fewer than this many points per trial.
MIN_CURVE_POINTS = 8
#: Lines of the parallel-coordinates chart at most: the best trials.
PARCOORDS_MAX_LINES = 200
#: Significant digits kept for curve values (a chart cannot show more).
CURVE_DIGITS = 5


@dataclass
class TrialPoint:
    """What the charts need of one trial (built from a ``Trial`` row by the view)."""

    number: int
    state: str
    value: float | None = None
    score: float | None = None
    best_val_loss: float | None = None
    epochs: int = 0
    seconds: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    failure_reason: str = ""
    retried_after: str = ""  # why its first attempt was lost (a sweep ran it once more)


def is_finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


def rank_trials(trials: Iterable[TrialPoint]) -> dict[int, int]:
    """Rank 1..n of the trials with a finite objective (lower is better; ties by number).

    Only COMPLETE trials are ranked; running, queued and greyed trials have no rank.
    """
    ranked = sorted(
        (t for t in trials if t.state == "complete" and is_finite(t.value)),
        key=lambda t: (t.value, t.number),
    )
    return {t.number: i + 1 for i, t in enumerate(ranked)}


def optimization_history(trials: Sequence[TrialPoint]) -> dict[str, list]:
    """Objective per trial (in trial order) and the best value so far after each.

    Returns:
        ``{"x": trial numbers, "y": values, "best": best-so-far}`` for the ranked trials,
        plus ``"failed"``: numbers of the greyed trials (drawn as markers, no value).
    """
    x: list[int] = []
    y: list[float] = []
    best: list[float] = []
    current = math.inf
    for t in sorted(trials, key=lambda t: t.number):
        if t.state != "complete" or not is_finite(t.value):
            continue
        assert t.value is not None
        current = min(current, t.value)
        x.append(t.number)
        y.append(t.value)
        best.append(current)
    failed = sorted(t.number for t in trials if t.state in GREYED_STATES)
    return {"x": x, "y": y, "best": best, "failed": failed}


def trial_rows(trials: Sequence[TrialPoint], ranks: Mapping[int, int]) -> list[dict]:
    """Table rows (and the per-trial facts the charts colour by), JSON-safe."""
    rows = []
    for t in sorted(trials, key=lambda t: t.number):
        # The first line says it: "exit code 1: ValueError: …", "diverged: …", "lost worker: …".
        reason = t.failure_reason.strip().splitlines()
        note = reason[0] if reason else ""
        if len(reason) > 1 and re.fullmatch(r"exit code -?\d+", note):
            note = f"{note}: {reason[-1]}"  # stored before the error came first
        if not note and t.retried_after:
            note = f"retried: the first attempt {t.retried_after}"
        rows.append(
            {
                "number": t.number,
                "state": t.state,
                "rank": ranks.get(t.number),
                "greyed": t.state in GREYED_STATES,
                "params": {k: _param_value(v) for k, v in t.params.items()},
                "value": json_float(t.value),
                "score": json_float(t.score),
                "best_val_loss": json_float(t.best_val_loss),
                "epochs": t.epochs,
                "seconds": None if t.seconds is None else round(t.seconds, 1),
                "reason": note[:300],
            }
        )
    return rows


def _param_value(v: Any) -> Any:
    if isinstance(v, float):
        return _round(v)  # display only: config-tuned.yaml keeps the exact values
    return v


def downsample_indices(n: int, max_points: int, keep: Iterable[int] = ()) -> list[int]:
    """Indices of at most ~``max_points`` of ``n`` points: first, last, evenly spaced, and
    the indices in ``keep`` (e.g. the minimum, so a curve's best point is never dropped)."""
    if n <= max_points:
        return list(range(n))
    max_points = max(2, max_points)
    step = (n - 1) / (max_points - 1)
    chosen = {round(i * step) for i in range(max_points)}
    chosen.update(k for k in keep if 0 <= k < n)
    return sorted(chosen)


def curve_points_per_trial(n_trials: int) -> int:
    """The point budget of one trial's curve when the sweep has ``n_trials`` trials."""
    return max(MIN_CURVE_POINTS, CURVE_POINT_BUDGET // max(1, n_trials))


def _round(v: float | None) -> float | str | None:
    """``v`` to :data:`CURVE_DIGITS` significant digits (its JSON is then short)."""
    if v is None:
        return None
    if not math.isfinite(v):
        return json_float(v)
    if v == 0:
        return 0.0
    # round() returns the double nearest the rounded decimal, whose repr is that decimal;
    # 3x faster than formatting with "%.5g" and parsing back.
    return round(v, CURVE_DIGITS - 1 - math.floor(math.log10(abs(v))))


def _argmin(values: Sequence[float | None]) -> int | None:
    best, where = math.inf, None
    for i, v in enumerate(values):
        if v is not None and math.isfinite(v) and v < best:
            best, where = v, i
    return where


def trial_curve(
    epochs: Sequence[int],
    val: Sequence[float | None],
    score: Sequence[float | None],
    max_points: int,
) -> dict:
    """One trial's per-epoch validation loss and Early Ranking score, downsampled.

    ``n`` is the number of epochs before downsampling (the client's cursor: a trial whose
    ``epochs`` in the table differ from ``n`` is fetched again). Both series keep their
    minimum and the last epoch.
    """
    n = len(epochs)
    keep = [i for i in (_argmin(val), _argmin(score), n - 1) if i is not None]
    idx = downsample_indices(n, max_points, keep)
    return {
        "n": n,
        "epoch": [int(epochs[i]) for i in idx],
        "val": [_round(val[i]) for i in idx],
        "score": [_round(score[i]) for i in idx],
    }


def curves(
    rows: Sequence[tuple[int, int, float | None, float | None]], n_trials: int
) -> dict[str, dict]:
    """Curves of every trial from ``(trial number, epoch, val_loss, score)`` rows sorted by
    trial then epoch; keys are trial numbers as strings (JSON object keys).

    Same result as :func:`trial_curve` per trial, vectorised: a sweep of 1,000 trials x 50
    epochs is 50,000 rows, on the page's critical path.
    """
    import numpy as np

    if not len(rows):
        return {}
    budget = curve_points_per_trial(n_trials)
    table = np.array(rows, dtype=np.float64)  # None (SQL NULL) becomes NaN
    numbers = table[:, 0].astype(np.int64)
    epochs = table[:, 1].astype(np.int64)
    val, score = table[:, 2], table[:, 3]
    val_r, score_r = _round_array(val), _round_array(score)
    starts = np.flatnonzero(np.r_[True, numbers[1:] != numbers[:-1]])
    ends = np.r_[starts[1:], len(numbers)]
    val_min = _group_argmin(val, starts, ends).tolist()
    score_min = _group_argmin(score, starts, ends).tolist()
    patterns: dict[int, list[int]] = {}  # evenly spaced indices per curve length
    out: dict[str, dict] = {}
    for g, (a, b) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        n = b - a
        if n <= budget:
            idx: Any = slice(a, b)
        else:
            if n not in patterns:
                patterns[n] = downsample_indices(n, budget)
            keep = {n - 1, val_min[g], score_min[g]} - {-1}
            idx = np.asarray(sorted(keep.union(patterns[n])), dtype=np.int64) + a
        out[str(int(numbers[a]))] = {
            "n": n,
            "epoch": epochs[idx].tolist(),
            "val": _json_list(val_r[idx]),
            "score": _json_list(score_r[idx]),
        }
    return out


def _group_argmin(x, starts, ends):
    """Per group ``starts[g]:ends[g]`` of ``x``: the offset of its first finite minimum,
    -1 when it has no finite value."""
    import numpy as np

    m = np.where(np.isfinite(x), x, np.inf)
    mins = np.minimum.reduceat(m, starts)
    group = np.repeat(np.arange(len(starts)), ends - starts)
    hits = np.flatnonzero((m == mins[group]) & np.isfinite(mins[group]))
    first = np.full(len(starts), -1, dtype=np.int64)
    groups, at = np.unique(group[hits], return_index=True)
    first[groups] = hits[at] - starts[groups]
    return first


def _round_array(x):
    """Like :func:`_round` on every element (NaN and inf pass through)."""
    import numpy as np

    out = x.copy()
    ok = np.isfinite(x) & (x != 0)
    if ok.any():
        v = x[ok]
        k = (CURVE_DIGITS - 1 - np.floor(np.log10(np.abs(v)))).astype(np.int64)
        pos = k >= 0
        r = np.empty_like(v)
        # Divide by an exact power of ten (k >= 0) or multiply by one (k < 0), so the result
        # is the double nearest the rounded decimal (short JSON).
        r[pos] = np.round(v[pos] * 10.0 ** k[pos]) / 10.0 ** k[pos]
        r[~pos] = np.round(v[~pos] / 10.0 ** -k[~pos]) * 10.0 ** -k[~pos]
        out[ok] = r
    return out


def _json_list(x) -> list:
    """Floats for JSON: NaN (SQL NULL here) -> None, +-inf -> "inf"/"-inf"."""
    import numpy as np

    values = x.tolist()
    if not np.isfinite(x).all():
        values = [
            None if v != v else json_float(v) if v in (math.inf, -math.inf) else v for v in values
        ]
    return values


def parallel_coordinates(
    trials: Sequence[TrialPoint],
    params: Sequence[Mapping[str, Any]],
    objective: str,
    max_lines: int = PARCOORDS_MAX_LINES,
) -> dict:
    """Dimensions of a parallel-coordinates chart: one per parameter, then the objective.

    Only ranked trials (complete, finite value) are lines. Categorical parameters become
    integer codes with their labels as ticks; log-scale parameters are drawn as log10 with
    the real values as tick labels.

    Args:
        trials: All trials.
        params: The search space, as from :func:`param_specs`.
        objective: Label of the objective axis.
        max_lines: Only the best this many trials are lines (``total`` says how many
            could be): a thousand lines are a hairball, and slow to draw.
    """
    done = [t for t in trials if t.state == "complete" and is_finite(t.value)]
    total = len(done)
    if total > max_lines:
        done = sorted(done, key=lambda t: (t.value, t.number))[:max_lines]
    done.sort(key=lambda t: t.number)
    dims = []
    for spec in params:
        name = spec["name"]
        raw = [t.params.get(name) for t in done]
        if spec["type"] == "categorical":
            choices = [_label(c) for c in spec["choices"]]
            codes = [choices.index(_label(v)) if _label(v) in choices else None for v in raw]
            dims.append(
                {
                    "label": name,
                    "values": codes,
                    "tickvals": list(range(len(choices))),
                    "ticktext": choices,
                    "range": [0, max(0, len(choices) - 1)],
                }
            )
        elif spec.get("log"):
            lo, hi = math.log10(spec["low"]), math.log10(spec["high"])
            ticks = list(range(math.ceil(lo), math.floor(hi) + 1)) or [lo, hi]
            dims.append(
                {
                    "label": f"{name} (log)",
                    "values": [_round(_log10(v)) for v in raw],
                    "range": [lo, hi],
                    "tickvals": ticks,
                    "ticktext": [f"{10**k:g}" for k in ticks],
                }
            )
        else:
            dims.append(
                {
                    "label": name,
                    "values": [_round(_number(v)) for v in raw],
                    "range": [spec["low"], spec["high"]],
                }
            )
    values = [t.value for t in done]
    dims.append({"label": objective, "values": [json_float(v) for v in values]})
    return {
        "numbers": [t.number for t in done],
        "total": total,
        "dimensions": dims,
        "color": dims[-1]["values"],
    }


def _label(v: Any) -> str:
    return str(v)


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v) if math.isfinite(v) else None


def _log10(v: Any) -> float | None:
    n = _number(v)
    return math.log10(n) if n is not None and n > 0 else None


def param_specs(distributions: Mapping[str, Any]) -> list[dict]:
    """The search space as JSON: ``{"name", "type", "low", "high", "log", "step", "choices"}``
    from Optuna distributions, sorted by name."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    specs = []
    for name in sorted(distributions):
        d = distributions[name]
        if isinstance(d, CategoricalDistribution):
            specs.append({"name": name, "type": "categorical", "choices": list(d.choices)})
        elif isinstance(d, FloatDistribution | IntDistribution):
            specs.append(
                {
                    "name": name,
                    "type": "int" if isinstance(d, IntDistribution) else "float",
                    "low": d.low,
                    "high": d.high,
                    "log": d.log,
                    "step": d.step,
                }
            )
    return specs


def counts(trials: Iterable[TrialPoint]) -> dict[str, int]:
    """Trials per state."""
    out: dict[str, int] = {}
    for t in trials:
        out[t.state] = out.get(t.state, 0) + 1
    return out
