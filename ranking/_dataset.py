"""Turning complete runs into (prefix features, outcome) rows, in several history views.

Users' scripts log differently, so every run is seen through several views:

* ``full``: Luminide layout 2 as recorded (minibatch rows, val minibatches, epoch-end rows);
* ``minibatch``: layout 1 (no epoch-end rows: the epoch's validation is the mean of its
  validation minibatches);
* ``epoch``: one row per epoch (epoch mean train loss, full validation loss);
* ``epoch_val_only``: one row per epoch, train loss blank;
* ``error``: one row per epoch with the validation error rate as the validation column
  (classification tasks only; its outcome is the best final error rate).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ranking._features import Prefix, features, features_many

__all__ = ["VIEWS", "RunData", "make_rows", "prefix_epochs", "run_views"]

VIEWS = ("full", "minibatch", "epoch", "epoch_val_only", "error")
TRAIN_FRACTIONS = (0.03, 0.05, 0.06, 0.08, 0.1, 0.13, 0.16, 0.2, 0.25, 0.33, 0.4, 0.5)


@dataclass
class RunData:
    """One complete run: its views as full-length arrays plus its outcomes."""

    run_id: int
    task: str
    total_epochs: int
    views: dict[str, Prefix]
    outcome: dict[str, float]  # view -> best final value in that view's units


def _epoch_level(h: pd.DataFrame, val_col: str, with_train: bool) -> Prefix | None:
    ends = h[h["iter"] == -1]
    if len(ends) == 0:
        return None
    mb = h[h["iter"] != -1]
    tr = mb.groupby("epoch")["train_loss"].mean()
    ep = ends["epoch"].to_numpy(np.int64)
    train = tr.reindex(ep).to_numpy(np.float64) if with_train else np.full(len(ep), np.nan)
    val = ends[val_col].to_numpy(np.float64)
    return Prefix(ep, np.ones(len(ep), bool), train, val, np.full(len(ep), np.nan))


def run_views(run_id: int, task: str, total_epochs: int, h: pd.DataFrame) -> RunData:
    """Build all views of one corpus run (``h`` in layout 2 with ``epoch_val_err``)."""
    ep = h["epoch"].to_numpy(np.int64)
    it = h["iter"].to_numpy(np.int64)
    tr = h["train_loss"].to_numpy(np.float64)
    va = h["val_loss"].to_numpy(np.float64)
    ev = h["epoch_val_loss"].to_numpy(np.float64)
    end = it == -1
    views: dict[str, Prefix] = {"full": Prefix(ep, end, tr, va, ev)}
    mb = ~end
    views["minibatch"] = Prefix(
        ep[mb], np.zeros(int(mb.sum()), bool), tr[mb], va[mb], ev[mb] * np.nan
    )
    outcome: dict[str, float] = {}
    evf = ev[end]
    evf = evf[np.isfinite(evf)]
    best = float(evf.min()) if len(evf) else np.inf
    for v in ("full", "minibatch"):
        outcome[v] = best
    e = _epoch_level(h, "epoch_val_loss", True)
    if e is not None:
        views["epoch"] = e
        views["epoch_val_only"] = _epoch_level(h, "epoch_val_loss", False) or e
        outcome["epoch"] = outcome["epoch_val_only"] = best
    if "epoch_val_err" in h.columns and h["epoch_val_err"].notna().any():
        err = _epoch_level(h, "epoch_val_err", True)
        if err is not None:
            views["error"] = err
            ef = err.val[np.isfinite(err.val)]
            outcome["error"] = float(ef.min()) if len(ef) else np.inf
    return RunData(run_id, task, total_epochs, views, outcome)


def prefix_epochs(total_epochs: int, fraction: float) -> int:
    """Number of epochs seen at a fraction of the full length (at least one)."""
    return max(1, round(fraction * total_epochs))


def cut(p: Prefix, k: int) -> Prefix:
    """The first ``k`` epochs of a view (epochs are numbered from 0 in the corpus)."""
    c = int(np.searchsorted(p.epoch, k, side="left"))
    return Prefix(p.epoch[:c], p.end[:c], p.train[:c], p.val[:c], p.epoch_val[:c])


@dataclass
class Rows:
    """Feature rows with their bookkeeping (one per run x view x prefix length)."""

    X: np.ndarray
    best: np.ndarray  # best so far (the level the prediction multiplies); inf if diverged
    outcome: np.ndarray  # best final value in the view's units
    run_id: np.ndarray
    task: np.ndarray
    view: np.ndarray
    k: np.ndarray
    fraction: np.ndarray
    total: np.ndarray

    def subset(self, mask: np.ndarray) -> Rows:
        return Rows(*(getattr(self, f)[mask] for f in self.__dataclass_fields__))


def make_rows(
    runs: Iterable[RunData],
    *,
    fractions: Sequence[float] = TRAIN_FRACTIONS,
    views: Sequence[str] = VIEWS,
    extra_k: Sequence[int] = (1, 2, 3),
    known_total: float = 0.5,
    seed: int = 0,
) -> Rows:
    """Feature rows for every run, view and prefix length.

    Args:
        runs: Complete runs.
        fractions: Prefix lengths as fractions of each run's full length.
        views: Which views to use.
        extra_k: Absolute prefix lengths added for every run (1, 2, 3 epochs).
        known_total: Probability that a row is given the run's full length (``frac_seen``);
            the rest are unknown, so the model works with and without it.
        seed: For the known-total draw.
    """
    rng = np.random.default_rng(seed)
    prefixes: list[Prefix] = []
    totals: list[float | None] = []
    meta: list[tuple[float, int, str, str, int, float]] = []
    for r in runs:
        ks: dict[int, float] = {}
        for f in fractions:
            ks.setdefault(prefix_epochs(r.total_epochs, f), f)
        for k in extra_k:
            ks.setdefault(k, k / r.total_epochs)
        for view in views:
            p = r.views.get(view)
            if p is None:
                continue
            for k, f in sorted(ks.items()):
                q = cut(p, k)
                if len(q.epoch) == 0:
                    continue  # run stopped (diverged) before k epochs
                prefixes.append(q)
                totals.append(float(r.total_epochs) if rng.random() < known_total else None)
                meta.append((r.outcome[view], r.run_id, r.task, view, k, f))
    if not meta:
        raise ValueError("no rows")
    X, best, _ = features_many(prefixes, totals)
    cols = list(zip(*meta, strict=True))
    return Rows(
        X=X,
        best=best,
        outcome=np.asarray(cols[0], np.float64),
        run_id=np.asarray(cols[1], np.int64),
        task=np.asarray(cols[2], dtype=object),
        view=np.asarray(cols[3], dtype=object),
        k=np.asarray(cols[4], np.int64),
        fraction=np.asarray(cols[5], np.float64),
        total=np.asarray([t or np.nan for t in totals], np.float64),
    )


def corpus_runs(histories: dict[int, pd.DataFrame], manifest: pd.DataFrame) -> list[RunData]:
    """All corpus runs as :class:`RunData`."""
    out = []
    for row in manifest.itertuples(index=False):
        h = histories.get(int(row.run_id))
        if h is None or len(h) == 0:
            continue
        out.append(run_views(int(row.run_id), str(row.task), int(row.epochs), h))
    return out


def user_runs(dirs: Sequence[str], min_epochs: int = 10) -> list[RunData]:
    """Completed runs from users' folders (every ``history.csv`` below each folder).

    A user run's full length is the number of epochs it logged, and its task is its
    project folder (runs side by side in one folder are comparable). Not every history is a
    completed run, so these are left out, with a line on stderr saying how many and why:
    files that cannot be read, runs shorter than ``min_epochs`` (Fast Sweep trials, fast
    runs: the start of a longer schedule) and runs shorter than the longest run beside them
    (crashed or stopped early).

    Raises:
        ValueError: A folder does not exist or holds no ``history.csv``.
    """
    import sys

    from ranking._history import read_history

    found: list[tuple[str, int, pd.DataFrame]] = []  # (task, epochs logged, history)
    skipped = {"unreadable": 0, "short": 0, "unfinished": 0}
    for d in dirs:
        if not os.path.isdir(d):
            raise ValueError(f"--add-runs: {d} is not a folder")
        paths = [os.path.join(r, "history.csv") for r, _, f in os.walk(d) if "history.csv" in f]
        if not paths:
            raise ValueError(f"--add-runs: no history.csv below {d}")
        for path in sorted(paths):
            try:
                h = read_history(path, errors="skip")
            except (OSError, ValueError) as exc:
                print(f"--add-runs: skipped {path}: {exc}", file=sys.stderr)
                skipped["unreadable"] += 1
                continue
            if len(h):
                task = "user:" + os.path.relpath(_comparable_runs_folder(path), d)
                found.append((task, int(h["epoch"].nunique()), h))
    longest: dict[str, int] = {}
    for task, n_logged, _h in found:
        longest[task] = max(longest.get(task, 0), n_logged)
    out: list[RunData] = []
    rid = -1
    for task, n_logged, h in found:
        if n_logged < min_epochs:
            skipped["short"] += 1
            continue
        if n_logged < longest[task]:
            skipped["unfinished"] += 1
            continue
        h = h.rename(columns={"sample_count": "iter"})
        ep = h["epoch"].to_numpy()
        h = h.assign(epoch=ep - ep.min())
        n_epochs = int(h["epoch"].max()) + 1
        p = Prefix(
            h["epoch"].to_numpy(np.int64),
            h["iter"].to_numpy() == -1,
            h["train_loss"].to_numpy(np.float64),
            h["val_loss"].to_numpy(np.float64),
            h["epoch_val_loss"].to_numpy(np.float64),
        )
        x, _, _ = features(p, None)
        if x is None:
            continue
        # The outcome: the best epoch-level validation value over the whole run.
        best = _final_best(p)
        out.append(RunData(rid, task, n_epochs, {"full": p}, {"full": best}))
        rid -= 1
    if any(skipped.values()):
        print(
            f"--add-runs: left out {skipped['unreadable']} unreadable, {skipped['short']} "
            f"shorter than {min_epochs} epochs, {skipped['unfinished']} shorter than the "
            "longest run beside them",
            file=sys.stderr,
        )
    return out


def _comparable_runs_folder(history_csv: str) -> str:
    """The folder whose runs are one task: the parent of the run folder (a sweep's
    ``expN`` for its ``trialK``), but the project's ``output`` for a single run, which runs
    alone in ``output/expN/trial0`` beside the project's other runs."""
    run_dir = os.path.dirname(history_csv)
    folder = os.path.dirname(run_dir)
    single = os.path.basename(run_dir) == "trial0" and not any(
        os.path.exists(os.path.join(folder, name)) for name in ("trial1", "sweep_results.csv")
    )
    return os.path.dirname(folder) if single else folder


def _final_best(p: Prefix) -> float:
    """Best epoch-level validation value of a complete history (inf if none is finite)."""
    ev = np.where(np.isnan(p.epoch_val) & p.end, p.val, p.epoch_val)
    if np.isfinite(ev).any():
        return float(ev[np.isfinite(ev)].min())
    s = pd.Series(p.val).groupby(p.epoch).mean()
    s = s[np.isfinite(s)]
    return float(s.min()) if len(s) else np.inf
