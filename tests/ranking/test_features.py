"""Features of history prefixes: the batch computation, hand-checked values, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import ArrayLike

from ranking._bench import synthetic_history
from ranking._features import (
    FEATURE_NAMES,
    N_FEATURES,
    Prefix,
    features,
    features_many,
    prefix_from_frame,
)

F = {n: i for i, n in enumerate(FEATURE_NAMES)}
NAN = math.nan


def prefix(
    epoch: ArrayLike, end: ArrayLike, train: ArrayLike, val: ArrayLike, ev: ArrayLike
) -> Prefix:
    return Prefix(
        np.asarray(epoch),
        np.asarray(end, dtype=bool),
        np.asarray(train, dtype=float),
        np.asarray(val, dtype=float),
        np.asarray(ev, dtype=float),
    )


def epoch_level(val: list[float], train: list[float] | None = None) -> Prefix:
    """One epoch-end row per epoch, validation in val_loss (an epoch-level file)."""
    n = len(val)
    return prefix(range(n), [True] * n, train or [NAN] * n, val, [NAN] * n)


def layout2(epochs: int, seed: int = 0) -> Prefix:
    h = synthetic_history(np.random.default_rng(seed), epochs=epochs, steps=8, val_every=2)
    return prefix_from_frame(h)


def mixed_batch() -> list[Prefix]:
    """Layout-2 histories and the edge cases every branch of the features must survive."""
    out = [layout2(e, seed) for seed, e in enumerate((1, 2, 3, 6, 12))]
    full = layout2(6, 9)
    order = np.random.default_rng(0).permutation(len(full.epoch))
    out.append(prefix(*(a[order] for a in vars(full).values())))  # unsorted epochs
    no_train = layout2(4, 10)
    out.append(
        prefix(no_train.epoch, no_train.end, no_train.train * NAN, no_train.val, no_train.epoch_val)
    )
    running = layout2(5, 11)  # the last epoch has minibatch rows but no epoch-end row yet
    keep = ~(running.end & (running.epoch == 4))
    out.append(prefix(*(a[keep] for a in vars(running).values())))
    out += [
        epoch_level([2.0, 1.5, 1.2, 1.1], [1.9, 1.4, 1.1, 1.0]),
        epoch_level([2.0, 1.5, NAN]),  # NaN last epoch: diverged
        epoch_level([2.0, 1.5, 1.2], [1.9, 1.4, NAN]),  # train goes missing: diverged
        epoch_level([2.0, math.inf]),  # inf anywhere: diverged
        epoch_level([-2.0, -1.0]),  # negative values: the level itself
        epoch_level([NAN, NAN], [1.0, 0.9]),  # no finite validation value
        epoch_level([0.7]),  # single row
        epoch_level([3.0, 2.0, 2.5, 1.0, 1.5]),
        prefix(
            [0, 0, 0, 0, 0], [False] * 4 + [True], [4, 3, 2, 1, NAN], [NAN] * 5, [NAN] * 4 + [2.0]
        ),
        prefix(np.zeros(0), [], [], [], []),  # no rows
    ]
    return out


def test_batch_equals_one_history_at_a_time() -> None:
    batch = mixed_batch()
    totals = [None if i % 2 else 30.0 for i in range(len(batch))]
    X, best, diverged = features_many(batch, totals)
    assert X.shape == (len(batch), N_FEATURES)
    for i, (p, t) in enumerate(zip(batch, totals, strict=True)):
        x, b, d = features(p, t)
        assert np.array_equal(X[i], np.full(N_FEATURES, NAN) if x is None else x, equal_nan=True)
        assert (best[i], diverged[i]) == (b, d)
    # Bit for bit whatever else is in the batch.
    X2, best2, _ = features_many(batch[::-1], totals[::-1])
    assert np.array_equal(X2[::-1], X, equal_nan=True) and np.array_equal(best2[::-1], best)
    with pytest.raises(ValueError, match="totals"):
        features_many(batch, totals[:-1])


def test_hand_computed_epoch_level_values() -> None:
    x, best, diverged = features(epoch_level([2.0, 1.0, 0.5], [1.8, 0.9, 0.4]), 10)
    assert x is not None and best == 0.5 and not diverged
    lv = np.log(np.array([2.0, 1.0, 0.5]) + 2e-4)
    lt = np.log(np.array([1.8, 0.9, 0.4]) + 1.8e-4)
    expected = {
        "n_epochs": 3,
        "log_n_epochs": math.log(3),
        "frac_seen": 0.3,
        "log_remaining": math.log(10 / 3),
        "val_last_vs_first": lv[2] - lv[0],
        "val_last_vs_best": 0.0,
        "val_argmin_pos": 1.0,
        "val_slope_1": lv[2] - lv[1],
        "val_slope_3": (lv[2] - lv[0]) / 2,
        "val_frac_increase": 0.0,
        "val_curvature": lv[2] - 2 * lv[1] + lv[0],
        "val_is_epoch_level": 1.0,
        "has_intra_rows": 0.0,
        "has_train": 1.0,
        "train_last_vs_first": lt[2] - lt[0],
        "gap_last": lv[2] - lt[2],
        "gap_trend": (lv[2] - lt[2]) - (lv[1] - lt[1]),
    }
    for name, value in expected.items():
        assert x[F[name]] == pytest.approx(value, rel=1e-12, abs=1e-15), name
    for name in ("val_mb_noise", "first_epoch_drop", "val_first_vs_init"):
        assert math.isnan(x[F[name]]), name  # no minibatch rows


def test_hand_computed_minibatch_values() -> None:
    # One epoch: four train minibatches, two validation minibatches, the epoch-end row.
    p = prefix(
        [0] * 7,
        [False] * 6 + [True],
        [4.0, 3.0, NAN, 2.0, 1.0, NAN, NAN],
        [NAN, NAN, 1.5, NAN, NAN, 2.5, NAN],
        [NAN] * 6 + [2.2],
    )
    x, best, _ = features(p)
    assert x is not None and best == 2.2
    ieps = 4e-4
    assert x[F["first_epoch_drop"]] == pytest.approx(math.log((1 + ieps) / (4 + ieps)))
    assert x[F["train_max_vs_init"]] == 0.0
    assert x[F["val_first_vs_init"]] == pytest.approx(math.log(2.2 + 2.2e-4) - math.log(4 + ieps))
    assert x[F["val_mb_noise"]] == pytest.approx(0.5 / 2.0)  # std 0.5 around the mean 2.0
    assert x[F["has_intra_rows"]] == 1.0 and math.isnan(x[F["frac_seen"]])


def test_edge_cases() -> None:
    assert features(prefix(np.zeros(0), [], [], [], [])) == (None, math.inf, True)
    assert features(epoch_level([2.0, 1.5, NAN])) == (None, math.inf, True)
    assert features(epoch_level([2.0, -math.inf])) == (None, math.inf, True)
    assert features(epoch_level([NAN, NAN])) == (None, math.inf, True)
    assert features(epoch_level([-2.0, -1.0])) == (None, -2.0, False)
    # Epochs after the last epoch_val_loss are still running. An epoch-end row there without
    # a value is a blank (validation every few epochs) while the train loss goes on, and a
    # divergence when the train loss went missing too (NaN reads like a blank cell).
    p = layout2(5, 3)
    keep = ~(p.end & (p.epoch == 4))
    x, _, _ = features(prefix(*(a[keep] for a in vars(p).values())))
    assert x is not None and x[F["n_epochs"]] == 4
    ev = p.epoch_val.copy()
    ev[-1] = NAN
    x, _, diverged = features(prefix(p.epoch, p.end, p.train, p.val, ev))
    assert not diverged and x is not None and x[F["n_epochs"]] == 4
    train = p.train.copy()
    train[~p.end & (p.epoch == 4)] = NAN
    assert features(prefix(p.epoch, p.end, train, p.val, ev))[2]
    every_other = epoch_level([1.9, NAN, 1.5, NAN], train=[2.0, 1.8, 1.6, 1.5])
    x, best, diverged = features(every_other)
    assert not diverged and best == 1.5
    assert features(epoch_level([1.9, NAN, 1.5, NAN], train=[2.0, 1.8, 1.6, NAN]))[2]
    # File order does not matter to epoch-level files (one row per epoch).
    q = epoch_level([3.0, 2.0, 2.5, 1.0], [2.9, 1.9, 2.4, 0.9])
    order = np.array([2, 0, 3, 1])
    x, x_shuffled = features(q)[0], features(prefix(*(a[order] for a in vars(q).values())))[0]
    assert x is not None and x_shuffled is not None
    assert np.array_equal(x_shuffled, x, equal_nan=True)
