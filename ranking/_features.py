"""Scale-free features of history prefixes, computed with whole-batch numpy (fast).

Every feature is invariant to multiplying the validation (and train) values by a constant:
levels are logs of ratios to the run's own early losses, slopes are differences of logs.
That is what lets a model trained on one set of tasks rank runs of tasks it never saw, with
the validation column holding a loss or an error rate alike.

:func:`features_many` computes a batch at once: a few hundred numpy calls per batch rather
than per history, whose call overhead dominated when each history was done on its own.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["FEATURE_NAMES", "Prefix", "features", "features_many", "prefix_from_frame"]

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
    # Index.tolist() on pandas 3 string columns costs more than going through object.
    cols = df.columns.to_numpy(object).tolist()
    if "epoch" not in cols or ("val_loss" not in cols and "epoch_val_loss" not in cols):
        raise ValueError(
            f"history frame needs columns 'epoch' and 'val_loss' (or 'epoch_val_loss'); got {cols}"
        )
    n = len(df)
    if n == 0:
        raise ValueError("history frame has no rows")
    get = None
    if n < 50_000:
        # One conversion for all columns: each df[col] costs tens of microseconds in pandas
        # 3, which matters at thousands of histories per second. A long history (a bulk
        # import) is read column by column instead: views, no copy, contiguous.
        with contextlib.suppress(TypeError, ValueError):  # a text column: one at a time
            get = dict(zip(cols, df.to_numpy(dtype=np.float64).T, strict=True))
    if get is None:
        get = {c: df[c].to_numpy(np.float64) for c in _USED if c in cols}
    epoch = get["epoch"]
    if math.isnan(epoch.min()):
        raise ValueError("history frame has rows without an epoch")
    step = get.get("iter")
    end = step == -1 if step is not None else np.zeros(n, dtype=bool)
    train, val, ev = get.get("train_loss"), get.get("val_loss"), get.get("epoch_val_loss")
    if train is None or val is None or ev is None:
        blank = np.full(n, np.nan)  # shared by the absent columns; never written to
        train = blank if train is None else train
        val = blank if val is None else val
        ev = blank if ev is None else ev
    return Prefix(epoch, end, train, val, ev)


def features(p: Prefix, total_epochs: float | None = None) -> tuple[np.ndarray | None, float, bool]:
    """Compute the feature vector of one history prefix (see :func:`features_many`).

    Args:
        p: The history arrays.
        total_epochs: The run's full length in epochs when known (``frac_seen``), else None.

    Returns:
        ``(x, current_best, diverged)``: ``x`` is a float64 vector of ``N_FEATURES`` (NaN for
        features that do not apply), or None when the history cannot be scored.
    """
    X, best, diverged = features_many([p], [total_epochs])
    x = X[0]
    return (None if np.isnan(x[0]) else x), float(best[0]), bool(diverged[0])


#: Rows per internal batch: bounds memory, and 512 KB arrays stay in a core's L2 cache.
_BATCH_ROWS = 1 << 16


def features_many(
    prefixes: Sequence[Prefix], totals: Sequence[float | None]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Compute the feature vectors of many history prefixes at once.

    Args:
        prefixes: The history arrays.
        totals: Each run's full length in epochs when known (``frac_seen``), else None.

    Returns:
        ``(X, best, diverged)``: ``X`` is ``(n, N_FEATURES)`` float64 (NaN for features that
        do not apply) with an all-NaN row where a history cannot be scored (diverged, no
        finite validation value, negative values, no rows); ``best`` is the best validation
        value so far in the history's units (the level the model's prediction multiplies),
        ``inf`` where diverged; ``diverged`` is a bool per history.
    """
    n = len(prefixes)
    if len(totals) != n:
        raise ValueError(f"got {n} prefixes but {len(totals)} totals")
    tot = np.array([np.nan if t is None else t for t in totals], dtype=np.float64)
    tot[~(tot > 0)] = np.nan  # a length that is not positive is as good as unknown
    X = np.full((n, N_FEATURES), np.nan)
    best = np.full(n, np.inf)
    diverged = np.ones(n, dtype=bool)
    lens = np.array([len(p.epoch) for p in prefixes], dtype=np.int64)
    rows = lens.cumsum()
    # Empty groups divide 0 by 0 and features that do not apply come out as NaN on purpose.
    with np.errstate(divide="ignore", invalid="ignore"):
        i = 0
        while i < n:
            limit = (rows[i - 1] if i else 0) + _BATCH_ROWS
            j = max(i + 1, int(np.searchsorted(rows, limit, side="right")))
            _batch(prefixes[i:j], lens[i:j], tot[i:j], X[i:j], best[i:j], diverged[i:j])
            i = j
    return X, best, diverged


def _segments(h: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count, first and last position of each history's items in ``h`` (sorted history ids).

    The positions of a history without items are meaningless (possibly out of range).
    """
    c = np.bincount(h, minlength=n)
    e = c.cumsum()
    return c, e - c, e - 1


def _std(a: np.ndarray, h: np.ndarray, n: int) -> np.ndarray:
    """Population std of each history's items (NaN where none)."""
    c = np.bincount(h, minlength=n)
    d = a - (np.bincount(h, weights=a, minlength=n) / c)[h]
    return np.sqrt(np.bincount(h, weights=d * d, minlength=n) / c)


def _median(a: np.ndarray, h: np.ndarray, n: int) -> np.ndarray:
    """Median of each history's items (NaN where none)."""
    if not len(a):
        return np.full(n, np.nan)
    s = a[np.lexsort((a, h))]
    c, s0, _ = _segments(h, n)
    lo = s0 + (c - 1) // 2  # the same item as hi for an odd count: (x + x) / 2 == x
    hi = np.minimum(s0 + c // 2, len(a) - 1)
    return np.where(c > 0, (s[lo] + s[hi]) / 2, np.nan)


def _quarter_trend(a: np.ndarray, h: np.ndarray, n: int, eps: np.ndarray) -> np.ndarray:
    """log of the mean of the last over the first quarter of each history's items (>= 4)."""
    c, s0, _ = _segments(h, n)
    q = c // 4  # 0 below four items: 0 / 0, NaN
    r = np.arange(len(h)) - s0[h]
    first = np.bincount(h, weights=a * (r < q[h]), minlength=n) / q
    last = np.bincount(h, weights=a * (r >= (c - q)[h]), minlength=n) / q
    return np.log((last + eps) / (first + eps))


def _groups(epoch: np.ndarray, hid: np.ndarray, start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's (history, epoch) group, numbered in epoch order, and each group's history.

    ``start`` marks each history's first row. Epochs are normally sorted within a history;
    otherwise a stable sort gives the grouping of ``np.unique``.
    """
    if (start[1:] | (epoch[1:] >= epoch[:-1])).all():
        new = start.copy()
        new[1:] |= epoch[1:] != epoch[:-1]
        return new.cumsum() - 1, hid[new]
    order = np.lexsort((epoch, hid))  # hid is sorted, so hid[order] == hid
    se = epoch[order]
    new = start.copy()
    new[1:] |= se[1:] != se[:-1]
    gid = np.empty(len(epoch), dtype=np.int64)
    gid[order] = new.cumsum() - 1
    return gid, hid[new]


def _batch(
    ps: Sequence[Prefix],
    lens: np.ndarray,
    tot: np.ndarray,
    X: np.ndarray,
    best: np.ndarray,
    div: np.ndarray,
) -> None:
    """:func:`features_many` of one batch, written into ``X``, ``best`` and ``div``."""
    n = len(ps)
    hid = np.repeat(np.arange(n), lens)
    if not len(hid):
        return
    # One long history (a bulk import) is used as is: copying a million rows costs.
    join = (lambda arrays: arrays[0]) if n == 1 else np.concatenate
    epoch = join([p.epoch for p in ps])
    end = join([p.end for p in ps])
    train = join([p.train for p in ps])
    val = join([p.val for p in ps])
    ev = join([p.epoch_val for p in ps])
    start = np.empty(len(hid), dtype=bool)
    start[0] = True
    np.not_equal(hid[1:], hid[:-1], out=start[1:])
    gid, ghid = _groups(epoch, hid, start)
    ng = len(ghid)
    n_ep = np.bincount(ghid, minlength=n)
    g0 = n_ep.cumsum() - n_ep  # each history's first group
    ge = np.arange(ng) - g0[ghid]  # each group's epoch index within its history

    # Per-(history, epoch) aggregates.
    tr_ok = ~np.isnan(train)
    va_ok = ~np.isnan(val)
    ev_ok = ~np.isnan(ev)
    bad = np.zeros(n, dtype=bool)
    bad[hid[np.isinf(train) | np.isinf(val) | np.isinf(ev)]] = True
    # An epoch-end row's val_loss (epoch-level files) is that epoch's full validation loss;
    # it is added after the epoch_val_loss values, as the sums did one history at a time.
    xi = (end & va_ok & ~ev_ok).nonzero()[0]
    e_g = gid[np.concatenate([ev_ok.nonzero()[0], xi])]
    ev_cnt = np.bincount(e_g, minlength=ng)
    ev_w = np.concatenate([ev[ev_ok], val[xi]])
    ev_mean = np.bincount(e_g, weights=ev_w, minlength=ng) / ev_cnt
    mb = va_ok & ~end
    m_g = gid[mb]
    va_mb = val[mb]
    vm_cnt = np.bincount(m_g, minlength=ng)
    vm_mean = np.bincount(m_g, weights=va_mb, minlength=ng) / vm_cnt
    t_g = gid[tr_ok]
    tr_mean = np.bincount(t_g, weights=train[tr_ok], minlength=ng) / np.bincount(t_g, minlength=ng)
    rows_mb = np.bincount(gid, minlength=ng) - np.bincount(gid[end], minlength=ng)

    # Epochs after the last one with a full validation loss are still running.
    eg = (ev_cnt > 0).nonzero()[0]
    c, _, last = _segments(ghid[eg], n)
    has_ev = c > 0
    n_use = n_ep.copy()
    n_use[has_ev] = ge[eg[last[has_ev]]] + 1
    # An epoch-end row written after the last finite full validation value: NaN, diverged,
    # unless the epoch's last train loss is still there (a blank cell is a missing value:
    # validation every few epochs leaves them). "Last": of its body rows, else of its rows.
    er = end.nonzero()[0]
    c, _, last = _segments(hid[er], n)
    late = has_ev & (c > 0)
    late[late] = ge[gid[er[last[late]]]] >= n_use[late]
    if late.any():
        late_g = gid[er[last[late]]]
        in_late = np.zeros(ng, dtype=bool)
        in_late[late_g] = True
        rows = np.flatnonzero(in_late[gid])  # only the late epochs' rows
        last_row = np.full(ng, -1)
        np.maximum.at(last_row, gid[rows], rows)
        body = rows[~end[rows]]
        last_body = np.full(ng, -1)
        np.maximum.at(last_body, gid[body], body)
        tail = np.where(last_body >= 0, last_body, last_row)[late_g]
        late[late] = np.isnan(train[tail])
    use = ge < n_use[ghid]
    v_ep = np.where(ev_cnt > 0, ev_mean, vm_mean)
    fin = use & ~np.isnan(v_ep)
    t_fin = use & ~np.isnan(tr_mean)
    gl = np.minimum(g0 + n_use - 1, ng - 1)  # each history's last used epoch (if any rows)
    fin_any = np.bincount(ghid[fin], minlength=n) > 0
    # pandas' to_csv writes a NaN loss as a blank cell, so divergence also shows as losses
    # going missing: both of the last epoch's (one blank column is a missing value: train
    # loss logged every few epochs, a new epoch's first val row), or the last row being a
    # step with no loss at all, which no healthy script writes.
    missing = ~fin[gl] & ~t_fin[gl]
    last = np.cumsum(lens) - 1
    has_rows = lens > 0
    li = last[has_rows]
    missing[has_rows] |= ~end[li] & np.isnan(train[li]) & np.isnan(val[li]) & np.isnan(ev[li])
    div[:] = (lens == 0) | bad | late | ~fin_any | missing
    if div.all():
        return
    fg = fin.nonzero()[0]
    c, s0, _ = _segments(ghid[fg], n)
    vmin = np.full(n, np.inf)
    vmin[c > 0] = np.minimum.reduceat(v_ep[fg], s0[c > 0])
    best[~div] = vmin[~div]
    # Logs of ratios need positive values; negative ones are scored by the level itself.
    ok = ~div & (vmin >= 0)
    if not ok.any():
        return

    # Validation features on the finite used epochs of the scorable histories, one flat
    # array; per-history arrays are compact (length m). A feature that does not apply to a
    # history comes out NaN (0 / 0, or masked with np.where).
    sc = ok.nonzero()[0]
    m = len(sc)
    pos = ok.cumsum() - 1  # a scorable history's compact index
    gok = ok[ghid]
    f = fg[gok[fg]]
    s = pos[ghid[f]]
    v = v_ep[f]
    k, b0, b1 = _segments(s, m)
    xo = np.full((N_FEATURES, m), np.nan)  # transposed: one contiguous row per feature
    ix = _IDX
    nu = n_use[sc]
    xo[ix["n_epochs"]] = nu
    xo[ix["log_n_epochs"]] = np.log(nu)
    to = tot[sc]
    xo[ix["frac_seen"]] = nu / to
    xo[ix["log_remaining"]] = np.log(np.maximum(to, nu) / nu)
    eps = 1e-4 * np.maximum(np.abs(v[b0]), 1e-30)
    lv = np.log(v + eps[s])
    lv0 = lv[b0]
    lv1 = lv[b1]
    lv2 = np.where(k >= 2, lv[b1 - 1], np.nan)  # second to last
    lmin = np.minimum.reduceat(lv, b0)
    xo[ix["val_last_vs_first"]] = lv1 - lv0
    xo[ix["val_best_vs_first"]] = lmin - lv0
    xo[ix["val_last_vs_best"]] = lv1 - lmin
    at = (lv == lmin[s]).nonzero()[0]
    _, a0, _ = _segments(s[at], m)
    xo[ix["val_argmin_pos"]] = (at[a0] - b0 + 1) / k  # the first minimum

    same = s[1:] == s[:-1]
    d = (lv[1:] - lv[:-1])[same]
    ds = s[1:][same]
    xo[ix["val_slope_1"]] = lv1 - lv2
    j = np.minimum(3, k - 1)
    xo[ix["val_slope_3"]] = (lv1 - lv[b1 - j]) / j
    xo[ix["val_frac_increase"]] = np.bincount(ds[d > 0], minlength=m) / (k - 1)
    # Power law in epochs: log v = a + b log(epoch + 1); b is 0 / 0 for a single epoch.
    t = np.log(ge[f] + 1.0)
    tm = np.bincount(s, weights=t, minlength=m) / k
    lm = np.bincount(s, weights=lv, minlength=m) / k
    tc = t - tm[s]
    var = np.bincount(s, weights=tc**2, minlength=m)
    b = np.bincount(s, weights=tc * (lv - lm[s]), minlength=m) / var
    a = lm - b * tm
    r2 = (a[s] + b[s] * t - lv) ** 2
    xo[ix["val_powerlaw_b"]] = b
    xo[ix["val_powerlaw_resid"]] = np.sqrt(np.bincount(s, weights=r2, minlength=m) / k)
    bb = np.minimum(b, 0.0)
    xo[ix["val_extrap_2x"]] = a + bb * np.log(2 * nu) - lmin
    xo[ix["val_extrap_10x"]] = a + bb * np.log(10 * nu) - lmin
    xo[ix["val_extrap_total"]] = a + bb * np.log(np.maximum(to, nu)) - lmin
    w3 = k >= 3
    lv3 = lv[b1 - np.minimum(2, k - 1)]
    xo[ix["val_curvature"]] = np.where(w3, lv1 - 2 * lv2 + lv3, np.nan)
    xo[ix["val_epoch_noise"]] = np.where(w3, _std(d, ds, m), np.nan)

    # Noise of the validation minibatches around their epoch mean (relative).
    q = (use & gok & (vm_cnt >= 2)).nonzero()[0]
    sq = np.bincount(m_g, weights=va_mb * va_mb, minlength=ng)[q]
    mean = vm_mean[q]
    rel = np.sqrt(np.maximum(sq / vm_cnt[q] - mean**2, 0.0)) / np.maximum(np.abs(mean), 1e-300)
    xo[ix["val_mb_noise"]] = _median(rel, pos[ghid[q]], m)
    xo[ix["val_is_epoch_level"]] = has_ev[sc]
    intra = np.bincount(pos[ghid[use & gok & (rows_mb > 1)]], minlength=m) > 0
    xo[ix["has_intra_rows"]] = intra

    # Epoch-level train features.
    tt = (t_fin & gok).nonzero()[0]
    th = pos[ghid[tt]]
    tc, t0, t1 = _segments(th, m)
    has_t = tc > 0
    xo[ix["has_train"], has_t] = 1.0
    if len(tt):
        tv = tr_mean[tt]
        t0 = np.minimum(t0, len(tt) - 1)
        tp = has_t & (np.bincount(th[tv <= 0], minlength=m) == 0)
        teps = 1e-4 * tv[t0]
        lt = np.log(tv + teps[th])  # NaN for histories with a train value <= 0: masked
        lt0 = np.where(tp, lt[t0], np.nan)
        lt1 = np.where(tp, lt[t1], np.nan)
        lt2 = np.where(tc >= 2, lt[np.maximum(t1 - 1, 0)], np.nan)
        xo[ix["train_last_vs_first"]] = lt1 - lt0
        xo[ix["train_slope_1"]] = lt1 - lt2
        # The train/val gap is only meaningful where both are the same kind of loss; the
        # model learns how far to trust it.
        glo = gl[sc]
        both = t_fin[glo] & fin[glo]
        xo[ix["gap_last"]] = np.where(both, lv1 - lt1, np.nan)
        both &= t_fin[glo - 1] & fin[glo - 1]  # (garbage for one epoch, then lv2 is NaN)
        xo[ix["gap_trend"]] = np.where(both, (lv1 - lt1) - (lv2 - lt2), np.nan)
        g0o = g0[sc]
        xo[ix["gap_first"]] = np.where(t_fin[g0o] & fin[g0o], lv0 - lt0, np.nan)
        lt_min = np.full(m, np.nan)
        lt_min[has_t] = np.minimum.reduceat(lt, t0[has_t])
        xo[ix["val_vs_train_min"]] = np.where(tp, lmin - lt_min, np.nan)

    # Intra-epoch train rows (all epochs, the running one included): the very first
    # minibatch is the untrained model's loss, a natural reference level for this run.
    el = np.zeros(n, dtype=bool)
    el[sc] = has_t & intra
    r = tr_ok & ~end & el[hid]
    rh = hid[r]
    rv = train[r]
    el &= np.bincount(rh, minlength=n) >= 2
    el &= np.bincount(rh[rv <= 0], minlength=n) == 0
    keep = el[rh]
    if keep.any():
        rh, rv, rg = pos[rh[keep]], rv[keep], gid[r][keep]
        el = el[sc]
        _, r0, r1 = _segments(rh, m)
        r0 = np.minimum(r0, len(rh) - 1)
        init = np.where(el, rv[r0], np.nan)
        ieps = 1e-4 * init
        li = np.log(init + ieps)
        xo[ix["val_first_vs_init"]] = lv0 - li
        xo[ix["val_best_vs_init"]] = lmin - li
        top = np.full(m, np.nan)
        top[el] = np.maximum.reduceat(rv, r0[el])
        xo[ix["train_max_vs_init"]] = np.log((top + ieps) / (init + ieps))
        sel = rg == rg[r0][rh]  # rows of the epoch of each history's first train row
        xo[ix["first_epoch_drop"]] = _quarter_trend(rv[sel], rh[sel], m, ieps)
        sel = rg == rg[r1][rh]  # rows of the epoch of each history's last train row
        lr, lh = rv[sel], rh[sel]
        xo[ix["last_epoch_train_trend"]] = _quarter_trend(lr, lh, m, ieps)
        ll = np.log(lr + ieps[lh])
        same = lh[1:] == lh[:-1]
        noise = _std((ll[1:] - ll[:-1])[same], lh[1:][same], m)
        xo[ix["train_mb_noise"]] = np.where(np.bincount(lh, minlength=m) >= 4, noise, np.nan)
    X[sc] = xo.T
