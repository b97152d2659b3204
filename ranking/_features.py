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
_USED = ("epoch", "iter", "train_loss", "val_loss", "epoch_val_loss")
_IDX = {n: i for i, n in enumerate(FEATURE_NAMES)}


@dataclass
class Prefix:
    """The parts of a history the features need, as numpy arrays (rows in file order)."""

    epoch: np.ndarray  # epoch numbers (int or float holding integers)
    end: np.ndarray  # bool: epoch-end row (iter == -1), no train/val minibatch meaning
    train: np.ndarray  # float, NaN where blank
    val: np.ndarray  # float, NaN where blank
    epoch_val: np.ndarray  # float, NaN where blank


def prefix_from_frame(df: pd.DataFrame) -> Prefix:
    """Pull the arrays out of a :func:`ranking.read_history` frame (or a compatible one).

    Raises:
        ValueError: The frame has no rows, or lacks ``epoch`` or a validation column.
    """
    cols = df.columns.tolist()  # a list: iterating a pandas Index costs more than the work
    if "epoch" not in cols or ("val_loss" not in cols and "epoch_val_loss" not in cols):
        raise ValueError(
            "history frame needs columns 'epoch' and 'val_loss' (or 'epoch_val_loss'); "
            f"got {list(cols)}"
        )
    n = len(df)
    if n == 0:
        raise ValueError("history frame has no rows")
    # One conversion for all columns: each df[col] costs tens of microseconds in pandas 3,
    # which matters at thousands of histories per second.
    try:
        arr = df.to_numpy(dtype=np.float64)
        get = {c: arr[:, i] for i, c in enumerate(cols)}
    except (TypeError, ValueError):
        get = {c: df[c].to_numpy(np.float64) for c in _USED if c in cols}
    nan = np.full(n, np.nan)  # shared by the absent columns; features() never writes to it
    epoch = get["epoch"]
    if np.isnan(epoch).any():
        raise ValueError("history frame has rows without an epoch")
    step = get.get("iter")
    end = step == -1 if step is not None else np.zeros(n, dtype=bool)
    train = get.get("train_loss", nan)
    val = get.get("val_loss", nan)
    ev = get.get("epoch_val_loss", nan)
    return Prefix(epoch, end, train, val, ev)


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b with NaN where b == 0 (np.errstate costs more than the division here)."""
    out = np.full(len(a), np.nan)
    np.divide(a, b, out=out, where=b > 0)
    return out


def _mean(a: np.ndarray) -> float:
    return float(a.sum()) / len(a)


def _std(a: np.ndarray) -> float:
    d = a - a.sum() / len(a)
    return math.sqrt(float((d * d).sum()) / len(a))


def _median(a: np.ndarray) -> float:
    s = np.sort(a)
    h = len(s) // 2
    return float(s[h]) if len(s) % 2 else float(s[h - 1] + s[h]) / 2


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
    train, val, ev, end = p.train, p.val, p.epoch_val, p.end
    epoch = p.epoch
    n = len(epoch)
    # Epoch numbers are normally sorted; np.unique also copes with files that are not.
    chg = epoch[1:] != epoch[:-1]
    if n > 1 and (epoch[1:] >= epoch[:-1]).all():
        inv = np.zeros(n, dtype=np.int64)
        np.cumsum(chg, out=inv[1:])
        n_ep = int(inv[-1]) + 1
    else:
        _, inv = np.unique(epoch, return_inverse=True)
        n_ep = int(inv.max()) + 1
    # Work on the (few) rows that hold each kind of value rather than on all rows.
    ti = (~np.isnan(train)).nonzero()[0]
    vi = (~np.isnan(val)).nonzero()[0]
    ei = (~np.isnan(ev)).nonzero()[0]
    tr_v, va_v, ev_v = train[ti], val[vi], ev[ei]
    if np.isinf(tr_v).any() or np.isinf(va_v).any() or np.isinf(ev_v).any():
        return None, math.inf, True
    # An epoch-end row's val_loss (epoch-level files) is that epoch's full validation loss.
    vi_end = end[vi]
    if vi_end.any():
        extra = vi[vi_end]
        extra = extra[np.isnan(ev[extra])]
        ei = np.concatenate([ei, extra])
        ev_v = np.concatenate([ev_v, val[extra]])
    vmi = vi[~vi_end]
    va_mb = val[vmi]
    ev_cnt = np.bincount(inv[ei], minlength=n_ep)
    ev_mean = _div(np.bincount(inv[ei], weights=ev_v, minlength=n_ep), ev_cnt)
    vm_cnt = np.bincount(inv[vmi], minlength=n_ep)
    vm_mean = _div(np.bincount(inv[vmi], weights=va_mb, minlength=n_ep), vm_cnt)
    t_inv = inv[ti]
    tr_mean = _div(
        np.bincount(t_inv, weights=tr_v, minlength=n_ep), np.bincount(t_inv, minlength=n_ep)
    )
    has_ev = len(ei) > 0
    end_idx = end.nonzero()[0]
    if has_ev:
        # Epochs after the last one with a full validation loss are still running.
        n_use = int(ev_cnt.nonzero()[0][-1]) + 1
        if len(end_idx) and int(inv[end_idx[-1]]) >= n_use:
            # An epoch-end row was written after the last finite value: NaN, i.e. diverged.
            return None, math.inf, True
        v_ep = np.where(ev_cnt[:n_use] > 0, ev_mean[:n_use], vm_mean[:n_use])
    else:
        n_use = n_ep
        v_ep = vm_mean
    t_ep = tr_mean[:n_use]
    rows = np.bincount(inv, minlength=n_ep)[:n_use]
    rows_mb = rows - np.bincount(inv[end_idx], minlength=n_ep)[:n_use]

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
    e_idx = fin.nonzero()[0]
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
        d = lv[1:] - lv[:-1]  # np.diff and np.median cost more in overhead than in work here
        x[f["val_slope_1"]] = d[-1]
        j = min(3, k - 1)
        x[f["val_slope_3"]] = (lv[-1] - lv[-1 - j]) / j
        x[f["val_frac_increase"]] = float((d > 0).sum()) / len(d)
        # Power law in epochs: log v = a + b log(epoch + 1).
        t = np.log(e_idx + 1.0)
        tm = _mean(t)
        lm = _mean(lv)
        var = ((t - tm) ** 2).sum()
        b = float(((t - tm) * (lv - lm)).sum() / var)
        a = lm - b * tm
        x[f["val_powerlaw_b"]] = b
        x[f["val_powerlaw_resid"]] = math.sqrt(_mean((a + b * t - lv) ** 2))
        bb = min(b, 0.0)
        x[f["val_extrap_2x"]] = a + bb * math.log(2 * n_use) - lmin
        x[f["val_extrap_10x"]] = a + bb * math.log(10 * n_use) - lmin
        if total_epochs is not None and total_epochs > 0:
            x[f["val_extrap_total"]] = a + bb * math.log(max(total_epochs, n_use)) - lmin
    if k >= 3:
        x[f["val_curvature"]] = lv[-1] - 2 * lv[-2] + lv[-3]
        x[f["val_epoch_noise"]] = _std(d)
    # Noise of the validation minibatches around their epoch mean (relative).
    multi = vm_cnt[:n_use] >= 2
    if multi.any():
        cnt = vm_cnt[:n_use][multi]
        sq = np.bincount(inv[vmi], weights=va_mb * va_mb, minlength=n_ep)[:n_use][multi]
        mean = vm_mean[:n_use][multi]
        rel = np.sqrt(np.maximum(sq / cnt - mean**2, 0.0)) / np.maximum(np.abs(mean), 1e-300)
        x[f["val_mb_noise"]] = _median(rel)
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
        keep = ~end[ti]
        trv = tr_v[keep]
        ep_of = t_inv[keep]
        if len(trv) >= 2 and (trv > 0).all() and rows_mb.max() > 1:
            init = float(trv[0])
            ieps = 1e-4 * init
            x[f["val_first_vs_init"]] = lv0 - math.log(init + ieps)
            x[f["val_best_vs_init"]] = lmin - math.log(init + ieps)
            x[f["train_max_vs_init"]] = math.log((float(trv.max()) + ieps) / (init + ieps))
            first = trv[ep_of == ep_of[0]]
            if len(first) >= 4:
                q = max(1, len(first) // 4)
                x[f["first_epoch_drop"]] = math.log(
                    (_mean(first[-q:]) + ieps) / (_mean(first[:q]) + ieps)
                )
            lastep = trv[ep_of == ep_of[-1]]
            if len(lastep) >= 4:
                q = max(1, len(lastep) // 4)
                x[f["last_epoch_train_trend"]] = math.log(
                    (_mean(lastep[-q:]) + ieps) / (_mean(lastep[:q]) + ieps)
                )
                ll = np.log(lastep + ieps)
                x[f["train_mb_noise"]] = _std(ll[1:] - ll[:-1])
    return x, cur_best, False
