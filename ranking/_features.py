"""Scale-free features of a history prefix, computed with numpy only (fast).

Every feature is invariant to multiplying the validation (and train) values by a constant:
levels are logs of ratios to the run's own early losses, slopes are differences of logs.
That is what lets a model trained on one set of tasks rank runs of tasks it never saw, with
the validation column holding a loss or an error rate alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["FEATURE_NAMES", "Prefix", "features", "prefix_from_frame"]

FEATURE_NAMES: tuple[str, ...] = (
    "n_epochs",
    "log_n_epochs",
    "frac_seen",
    "log_remaining",
    "val_last_vs_first",
    "val_best_vs_first",
    "val_last_vs_best",
    "val_slope_1",
    "val_slope_3",
    "val_powerlaw_b",
    "val_powerlaw_resid",
    "val_extrap_2x",
    "val_extrap_10x",
    "val_extrap_total",
    "val_curvature",
    "val_argmin_pos",
    "val_frac_increase",
    "val_epoch_noise",
    "val_mb_noise",
    "val_is_epoch_level",
    "has_intra_rows",
    "has_train",
    "train_last_vs_first",
    "train_slope_1",
    "gap_last",
    "gap_first",
    "gap_trend",
    "val_first_vs_init",
    "val_best_vs_init",
    "first_epoch_drop",
    "last_epoch_train_trend",
    "train_mb_noise",
    "train_max_vs_init",
    "val_vs_train_min",
)
N_FEATURES = len(FEATURE_NAMES)
_IDX = {n: i for i, n in enumerate(FEATURE_NAMES)}


@dataclass
class Prefix:
    """The parts of a history the features need, as numpy arrays (rows in file order)."""

    epoch: np.ndarray  # int
    end: np.ndarray  # bool: epoch-end row (iter == -1), no train/val minibatch meaning
    train: np.ndarray  # float, NaN where blank
    val: np.ndarray  # float, NaN where blank
    epoch_val: np.ndarray  # float, NaN where blank


def prefix_from_frame(df: pd.DataFrame) -> Prefix:
    """Pull the arrays out of a :func:`ranking.read_history` frame (or a compatible one).

    Raises:
        ValueError: The frame has no rows, or lacks ``epoch`` or a validation column.
    """
    cols = df.columns
    if "epoch" not in cols or ("val_loss" not in cols and "epoch_val_loss" not in cols):
        raise ValueError(
            "history frame needs columns 'epoch' and 'val_loss' (or 'epoch_val_loss'); "
            f"got {list(cols)}"
        )
    n = len(df)
    if n == 0:
        raise ValueError("history frame has no rows")
    nan = np.full(n, np.nan)
    epoch = df["epoch"].to_numpy()
    end = df["iter"].to_numpy() == -1 if "iter" in cols else np.zeros(n, dtype=bool)
    train = df["train_loss"].to_numpy(np.float64) if "train_loss" in cols else nan
    val = df["val_loss"].to_numpy(np.float64) if "val_loss" in cols else nan
    ev = df["epoch_val_loss"].to_numpy(np.float64) if "epoch_val_loss" in cols else nan
    return Prefix(epoch, end, train, val, ev)


def _mean_by(inv: np.ndarray, x: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    m = ~np.isnan(x)
    cnt = np.bincount(inv[m], minlength=n)
    s = np.bincount(inv[m], weights=x[m], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return s / cnt, cnt


def features(p: Prefix, total_epochs: float | None = None) -> tuple[np.ndarray | None, float, bool]:
    """Compute the feature vector of one history prefix.

    Args:
        p: The history arrays.
        total_epochs: The run's full length in epochs when known (``frac_seen``), else None.

    Returns:
        ``(x, current_best, diverged)``: ``x`` is a float64 vector of ``N_FEATURES`` (NaN for
        features that do not apply), or None when the history cannot be scored (diverged or
        no finite validation value); ``current_best`` is the best validation value so far in
        the history's units (the level that the model's prediction multiplies).
    """
    train, val, ev = p.train, p.val, p.epoch_val
    if np.isinf(train).any() or np.isinf(val).any() or np.isinf(ev).any():
        return None, math.inf, True
    epoch = p.epoch
    # Epoch numbers are normally sorted; np.unique also copes with files that are not.
    if len(epoch) > 1 and (epoch[1:] >= epoch[:-1]).all():
        starts = np.flatnonzero(np.r_[True, epoch[1:] != epoch[:-1]])
        n_ep = len(starts)
        inv = np.cumsum(np.r_[False, epoch[1:] != epoch[:-1]])
    else:
        _, inv = np.unique(epoch, return_inverse=True)
        n_ep = int(inv.max()) + 1
    mb = ~p.end
    # An epoch-end row's val_loss (epoch-level files) is that epoch's full validation loss.
    ev = np.where(np.isnan(ev) & p.end, val, ev)
    ev_mean, ev_cnt = _mean_by(inv, ev, n_ep)
    val_mb = np.where(mb, val, np.nan)
    vm_mean, vm_cnt = _mean_by(inv, val_mb, n_ep)
    tr_mean, _tr_cnt = _mean_by(inv, train, n_ep)
    has_ev = ev_cnt.sum() > 0
    if has_ev:
        # Epochs after the last one with a full validation loss are still running.
        n_use = int(np.flatnonzero(ev_cnt)[-1]) + 1
        if p.end.any() and int(inv[p.end].max()) >= n_use:
            # An epoch-end row was written after the last finite value: NaN, i.e. diverged.
            return None, math.inf, True
        v_ep = np.where(ev_cnt[:n_use] > 0, ev_mean[:n_use], vm_mean[:n_use])
    else:
        n_use = n_ep
        v_ep = vm_mean
    t_ep = tr_mean[:n_use]
    rows = np.bincount(inv, minlength=n_ep)[:n_use]
    rows_mb = np.bincount(inv[mb], minlength=n_ep)[:n_use]

    fin = ~np.isnan(v_ep)
    if not fin.any():
        # Rows but no finite validation value: NaN losses (a diverged run) or nothing logged.
        return None, math.inf, True
    t_fin = ~np.isnan(t_ep)
    if t_fin.any():
        # NaN is also how a blank cell reads, so divergence shows as the train loss going
        # missing in an epoch that still logs rows, after earlier epochs had values.
        if not t_fin[-1] and rows[-1] > 0:
            return None, math.inf, True
    elif not fin[-1] and has_ev:
        return None, math.inf, True  # validation-only log whose last epoch value is NaN
    if not fin[-1] and not t_fin.any() and rows[-1] > 0 and fin[: n_use - 1].any():
        return None, math.inf, True
    v = v_ep[fin]
    e_idx = np.flatnonzero(fin)
    if (v < 0).any():
        # Logs of ratios need positive values; fall back to the level itself.
        return None, float(v.min()), False
    cur_best = float(v.min())
    eps = 1e-4 * max(abs(float(v[0])), 1e-30)
    lv = np.log(v + eps)
    k = len(lv)
    x = np.full(N_FEATURES, np.nan)
    f = _IDX
    x[f["n_epochs"]] = n_use
    x[f["log_n_epochs"]] = math.log(n_use)
    if total_epochs is not None and total_epochs > 0:
        x[f["frac_seen"]] = n_use / total_epochs
        x[f["log_remaining"]] = math.log(max(total_epochs, n_use) / n_use)
    lv0 = lv[0]
    lmin = lv.min()
    x[f["val_last_vs_first"]] = lv[-1] - lv0
    x[f["val_best_vs_first"]] = lmin - lv0
    x[f["val_last_vs_best"]] = lv[-1] - lmin
    x[f["val_argmin_pos"]] = (int(lv.argmin()) + 1) / k
    if k >= 2:
        d = np.diff(lv)
        x[f["val_slope_1"]] = d[-1]
        j = min(3, k - 1)
        x[f["val_slope_3"]] = (lv[-1] - lv[-1 - j]) / j
        x[f["val_frac_increase"]] = float((d > 0).mean())
        # Power law in epochs: log v = a + b log(epoch + 1).
        t = np.log(e_idx + 1.0)
        tm = t.mean()
        var = ((t - tm) ** 2).sum()
        b = float(((t - tm) * (lv - lv.mean())).sum() / var)
        a = lv.mean() - b * tm
        x[f["val_powerlaw_b"]] = b
        x[f["val_powerlaw_resid"]] = float(np.sqrt(((a + b * t - lv) ** 2).mean()))
        bb = min(b, 0.0)
        x[f["val_extrap_2x"]] = a + bb * math.log(2 * n_use) - lmin
        x[f["val_extrap_10x"]] = a + bb * math.log(10 * n_use) - lmin
        if total_epochs is not None and total_epochs > 0:
            x[f["val_extrap_total"]] = a + bb * math.log(max(total_epochs, n_use)) - lmin
    if k >= 3:
        x[f["val_curvature"]] = lv[-1] - 2 * lv[-2] + lv[-3]
        x[f["val_epoch_noise"]] = float(np.std(np.diff(lv)))
    # Noise of the validation minibatches around their epoch mean (relative).
    vm2, _ = _mean_by(inv, val_mb * val_mb, n_ep)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.sqrt(np.maximum(vm2 - vm_mean**2, 0.0)) / np.abs(vm_mean)
    rel = rel[:n_use][vm_cnt[:n_use] >= 2]
    if len(rel):
        x[f["val_mb_noise"]] = float(np.median(rel))
    x[f["val_is_epoch_level"]] = float(has_ev)
    x[f["has_intra_rows"]] = float(rows_mb.max() > 1)
    if t_fin.any():
        x[f["has_train"]] = 1.0
        t = t_ep[t_fin]
        if (t > 0).all():
            teps = 1e-4 * float(t[0])
            lt = np.log(t + teps)
            x[f["train_last_vs_first"]] = lt[-1] - lt[0]
            if len(lt) >= 2:
                x[f["train_slope_1"]] = lt[-1] - lt[-2]
            # The train/val gap is only meaningful where both are the same kind of loss; the
            # model learns how far to trust it.
            if t_fin[-1] and fin[-1]:
                x[f["gap_last"]] = lv[-1] - lt[-1]
                if k >= 2 and t_fin[-2] and fin[-2]:
                    x[f["gap_trend"]] = (lv[-1] - lt[-1]) - (lv[-2] - math.log(t_ep[-2] + teps))
            if t_fin[0] and fin[0]:
                x[f["gap_first"]] = lv0 - lt[0]
            x[f["val_vs_train_min"]] = lmin - lt.min()
        # Intra-epoch train rows: the very first minibatch is the untrained model's loss,
        # a natural reference level for this run.
        sel = np.flatnonzero(mb & ~np.isnan(train))
        trv = train[sel]
        if len(trv) >= 2 and (trv > 0).all() and rows_mb.max() > 1:
            init = float(trv[0])
            ieps = 1e-4 * init
            x[f["val_first_vs_init"]] = lv0 - math.log(init + ieps)
            x[f["val_best_vs_init"]] = lmin - math.log(init + ieps)
            x[f["train_max_vs_init"]] = math.log((float(trv.max()) + ieps) / (init + ieps))
            ep_of = inv[sel]
            first = trv[ep_of == ep_of[0]]
            if len(first) >= 4:
                q = max(1, len(first) // 4)
                x[f["first_epoch_drop"]] = math.log(
                    (float(first[-q:].mean()) + ieps) / (float(first[:q].mean()) + ieps)
                )
            lastep = trv[ep_of == ep_of[-1]]
            if len(lastep) >= 4:
                q = max(1, len(lastep) // 4)
                x[f["last_epoch_train_trend"]] = math.log(
                    (float(lastep[-q:].mean()) + ieps) / (float(lastep[:q].mean()) + ieps)
                )
                ll = np.log(lastep + ieps)
                x[f["train_mb_noise"]] = float(np.std(np.diff(ll)))
    return x, cur_best, False
