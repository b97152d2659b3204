"""Leave-one-task-out evaluation of the ranker against simple baselines.

For every task of the corpus: train on the other tasks, score the held-out task's runs at a
few fractions of their full length, and compare the scores with the true best final
validation loss. Baselines are computed from the very same prefixes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ranking._dataset import Rows, RunData, cut, make_rows, prefix_epochs
from ranking._features import Prefix, features_many

__all__ = ["EVAL_FRACTIONS", "baseline_scores", "evaluate", "sweep_metrics"]

EVAL_FRACTIONS = (0.05, 0.06, 0.10, 0.20, 0.33)
METHODS = ("ranker", "ranker_no_total", "last", "best_so_far", "power_law")
REGRET_CAP = 10.0


def _epoch_curve(p: Prefix) -> np.ndarray:
    """Epoch-level validation values (full validation, else minibatch means)."""
    ev = np.where(np.isnan(p.epoch_val) & p.end, p.val, p.epoch_val)
    if len(p.epoch) == 0:
        return np.zeros(0)
    n = int(p.epoch.max()) + 1
    fin_ev = np.isfinite(ev) | np.isinf(ev)
    if fin_ev.any():
        out = np.full(n, np.nan)
        out[p.epoch[fin_ev]] = ev[fin_ev]
        return out
    m = ~p.end & ~np.isnan(p.val)
    cnt = np.bincount(p.epoch[m], minlength=n)
    s = np.bincount(p.epoch[m], weights=p.val[m], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return s / cnt


def baseline_scores(p: Prefix, total_epochs: int) -> dict[str, float]:
    """Last value, best so far and power-law extrapolation of one prefix (inf if diverged)."""
    v = _epoch_curve(p)
    bad = (
        len(v) == 0
        or not np.isfinite(v[~np.isnan(v)]).all()
        or np.isinf(p.train).any()
        or np.isnan(v).all()
    )
    if bad:
        return dict.fromkeys(("last", "best_so_far", "power_law"), math.inf)
    idx = np.flatnonzero(~np.isnan(v))
    vv = v[idx]
    out = {"last": float(vv[-1]), "best_so_far": float(vv.min())}
    if len(vv) >= 3 and (vv > 0).all():
        t = np.log(idx + 1.0)
        b, a = np.polyfit(t, np.log(vv), 1)
        pred = math.exp(a + min(b, 0.0) * math.log(total_epochs))
        out["power_law"] = float(min(pred, vv.min())) if b < 0 else float(vv[-1])
    else:
        out["power_law"] = float(vv[-1])
    return out


def _ranks(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(x)


def rank_metrics(score: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Spearman and Kendall correlation (inf counts as worst; NaN if undefined)."""
    from scipy.stats import kendalltau

    if len(score) < 3:
        return math.nan, math.nan
    rs, rt = _ranks(score), _ranks(truth)
    if rs.std() == 0 or rt.std() == 0:
        return math.nan, math.nan
    spearman = float(np.corrcoef(rs, rt)[0, 1])
    kendall = float(kendalltau(rs, rt).statistic)
    return spearman, kendall


def sweep_metrics(
    score: np.ndarray, truth: np.ndarray, *, trials: int = 25, draws: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Simulated sweeps: mean top-1 regret and P(the pick is the true best of the sweep).

    Each draw takes ``trials`` runs at random, picks the best-scored one (ties at random) and
    compares its true outcome with the best true outcome of the draw. Relative regret is capped
    at ``REGRET_CAP`` so that a pick of a diverged run does not make the mean infinite.
    """
    rng = np.random.default_rng(seed)
    n = len(score)
    if n < trials:
        trials = n
    regrets = np.empty(draws)
    hits = np.empty(draws)
    for d in range(draws):
        idx = rng.choice(n, trials, replace=False)
        s = score[idx]
        t = truth[idx]
        jitter = rng.random(trials)
        pick = np.lexsort((jitter, s))[0]
        best = t.min()
        if not np.isfinite(best):
            regrets[d], hits[d] = 0.0, 1.0
            continue
        if not np.isfinite(t[pick]):
            regrets[d] = REGRET_CAP
        else:
            regrets[d] = min(REGRET_CAP, (t[pick] - best) / max(abs(best), 1e-12))
        hits[d] = float(t[pick] <= best)
    return float(regrets.mean()), float(hits.mean())


@dataclass
class EvalResult:
    """Per (held-out task, fraction, method) metrics, plus the raw scores for plots."""

    table: pd.DataFrame
    scores: pd.DataFrame


def evaluate(
    runs: Sequence[RunData],
    make_ranker: Callable[[], object],
    *,
    fractions: Sequence[float] = EVAL_FRACTIONS,
    view: str = "full",
    train_rows: Rows | None = None,
    tasks: Sequence[str] | None = None,
    draws: int = 2000,
    log: Callable[[str], None] = print,
) -> EvalResult:
    """Leave-one-task-out evaluation.

    Args:
        runs: Complete runs (e.g. from :func:`ranking._dataset.corpus_runs`).
        make_ranker: Returns a fresh, unfitted ranker (``fit_features``/``predict_features``).
        fractions: Budgets, as fractions of each run's full length.
        view: Which history view to score held-out runs in.
        train_rows: Precomputed training rows for all runs (computed if None).
        tasks: Tasks to hold out (default all).
        draws: Simulated sweeps per task and budget.
        log: Progress messages.
    """
    if train_rows is None:
        train_rows = make_rows(runs)
    all_tasks = sorted({r.task for r in runs})
    held = list(tasks) if tasks is not None else all_tasks
    table: list[dict[str, object]] = []
    score_rows: list[dict[str, object]] = []
    for task in held:
        tr = train_rows.subset(train_rows.task != task)
        ranker = make_ranker()
        ranker.fit_features(  # type: ignore[attr-defined]
            tr.X, tr.best, tr.outcome, groups=_groups(tr), sample_weight=task_weights(tr)
        )
        test = [r for r in runs if r.task == task and view in r.views]
        for f in fractions:
            per: dict[str, list[float]] = {m: [] for m in METHODS}
            truth: list[float] = []
            qs = [cut(r.views[view], prefix_epochs(r.total_epochs, f)) for r in test]
            X, best, _ = features_many(qs, [float(r.total_epochs) for r in test])
            X0 = features_many(qs, [None] * len(qs))[0]
            for r, q in zip(test, qs, strict=True):
                base = (
                    baseline_scores(q, r.total_epochs)
                    if len(q.epoch)
                    else dict.fromkeys(("last", "best_so_far", "power_law"), math.inf)
                )
                for m in ("last", "best_so_far", "power_law"):
                    per[m].append(base[m])
                truth.append(r.outcome[view])
            pred = ranker.predict_features  # type: ignore[attr-defined]
            per["ranker"] = list(pred(X, best))
            per["ranker_no_total"] = list(pred(X0, best))
            t = np.asarray(truth)
            for m in METHODS:
                s = np.asarray(per[m], dtype=np.float64)
                s = np.where(np.isnan(s), np.inf, s)
                sp, kd = rank_metrics(s, t)
                reg, hit = sweep_metrics(s, t, draws=draws)
                table.append(
                    {
                        "task": task,
                        "fraction": f,
                        "method": m,
                        "spearman": sp,
                        "kendall": kd,
                        "regret": reg,
                        "p_best": hit,
                        "n_runs": len(t),
                    }
                )
            for i, r in enumerate(test):
                score_rows.append(
                    {
                        "task": task,
                        "fraction": f,
                        "run_id": r.run_id,
                        "truth": t[i],
                        **{m: per[m][i] for m in METHODS},
                    }
                )
        sub = pd.DataFrame([row for row in table if row["task"] == task])
        at10 = sub[np.isclose(sub["fraction"], 0.10)].set_index("method")["spearman"]
        log(f"held out {task}: Spearman@10% " + ", ".join(f"{m}={at10[m]:.3f}" for m in METHODS))
    return EvalResult(pd.DataFrame(table), pd.DataFrame(score_rows))


def _groups(rows: Rows) -> np.ndarray:
    """Comparable runs: one task, one view, one prefix fraction."""
    return np.array(
        [f"{t}|{v}|{f:.3f}" for t, v, f in zip(rows.task, rows.view, rows.fraction, strict=True)]
    )


def task_weights(rows: Rows) -> np.ndarray:
    """Weights giving every task the same total weight."""
    tasks, inv, counts = np.unique(rows.task.astype(str), return_inverse=True, return_counts=True)
    return (len(rows.task) / (len(tasks) * counts))[inv]


def summary_table(table: pd.DataFrame) -> pd.DataFrame:
    """Mean over held-out tasks per fraction and method."""
    return (
        table.groupby(["fraction", "method"], sort=True)[
            ["spearman", "kendall", "regret", "p_best"]
        ]
        .mean()
        .reset_index()
    )


def markdown_report(result: EvalResult, *, title: str, notes: Sequence[str] = ()) -> str:
    """The evaluation as markdown: summary per budget, then per task at 6% and 10%."""
    s = summary_table(result.table)
    lines = [f"# {title}", ""]
    lines += list(notes)
    lines += [
        "",
        "## Mean over held-out tasks",
        "",
        "| budget | method | Spearman | Kendall | top-1 regret (25 trials) | P(pick true best) |",
        "|---|---|---|---|---|---|",
    ]
    for row in s.itertuples(index=False):
        lines.append(
            f"| {row.fraction:.0%} | {row.method} | {row.spearman:.3f} | {row.kendall:.3f} | "
            f"{row.regret:.3f} | {row.p_best:.3f} |"
        )
    for f in (0.06, 0.10):
        t = result.table[np.isclose(result.table["fraction"], f)]
        if t.empty:
            continue
        piv = t.pivot(index="task", columns="method", values="spearman")
        reg = t.pivot(index="task", columns="method", values="regret")
        lines += [
            "",
            f"## Per held-out task at {f:.0%} of the epochs (Spearman / regret)",
            "",
            "| task | runs | " + " | ".join(METHODS) + " |",
            "|---|---|" + "---|" * len(METHODS),
        ]
        n_runs = t.groupby("task")["n_runs"].first()
        for task in piv.index:
            cells = [f"{piv.loc[task, m]:.3f} / {reg.loc[task, m]:.3f}" for m in METHODS]
            lines.append(f"| {task} | {n_runs[task]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_report(result: EvalResult, out_dir: str) -> list[str]:
    """PNG plots: metric vs budget, and score vs true outcome at 10%."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out_dir, exist_ok=True)
    s = summary_table(result.table)
    paths = []
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ax, metric, label in zip(
        axes,
        ("spearman", "regret", "p_best"),
        ("mean Spearman", "mean top-1 regret (25 trials)", "P(pick true best)"),
        strict=True,
    ):
        for m in METHODS:
            d = s[s["method"] == m]
            ax.plot(d["fraction"] * 100, d[metric], marker="o", label=m)
        ax.set_xlabel("% of full epochs seen")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    p = os.path.join(out_dir, "metric_vs_budget.png")
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(p)

    sc = result.scores[np.isclose(result.scores["fraction"], 0.10)]
    tasks = sorted(sc["task"].unique())
    cols = 5
    rows_n = math.ceil(len(tasks) / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(3.2 * cols, 3.0 * rows_n), squeeze=False)
    for ax, task in zip(axes.flat, tasks, strict=False):
        d = sc[(sc["task"] == task) & np.isfinite(sc["ranker"]) & np.isfinite(sc["truth"])]
        ax.scatter(d["truth"], d["ranker"], s=4, alpha=0.5, label="ranker")
        ax.scatter(d["truth"], d["last"], s=4, alpha=0.3, label="last value")
        lo = max(1e-6, float(np.nanmin(d[["truth", "ranker"]].to_numpy()))) if len(d) else 1e-3
        hi = float(np.nanmax(d[["truth"]].to_numpy())) if len(d) else 1
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("true best final val loss", fontsize=8)
    for ax in list(axes.flat)[len(tasks) :]:
        ax.axis("off")
    axes[0][0].legend(fontsize=7)
    axes[0][0].set_ylabel("score at 10% of epochs", fontsize=8)
    fig.tight_layout()
    p = os.path.join(out_dir, "score_vs_truth_10pct.png")
    fig.savefig(p, dpi=100)
    plt.close(fig)
    paths.append(p)
    return paths
