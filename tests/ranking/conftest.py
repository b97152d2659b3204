"""Fixtures for ranking tests: a small ranker fitted on synthetic histories (seconds)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ranking import EarlyRanker
from ranking._bench import synthetic_history


def _cut(df: pd.DataFrame, k: int) -> pd.DataFrame:
    return df[df["epoch"] < k].reset_index(drop=True)


@pytest.fixture(scope="session")
def synthetic_runs() -> list[tuple[pd.DataFrame, float]]:
    """(full history, best final epoch val loss) for 120 synthetic runs."""
    rng = np.random.default_rng(1)
    runs = []
    for _ in range(120):
        h = synthetic_history(rng, epochs=30, steps=8, val_every=2)
        runs.append((h, float(h["epoch_val_loss"].min())))
    return runs


@pytest.fixture(scope="session")
def fitted_ranker(synthetic_runs: list[tuple[pd.DataFrame, float]]) -> EarlyRanker:
    hists, ys, groups = [], [], []
    for h, y in synthetic_runs:
        for k in (1, 2, 3, 5, 8):
            hists.append(_cut(h, k))
            ys.append(y)
            groups.append(f"synthetic|{k}")
    return EarlyRanker(n_estimators=30, min_child_samples=5).fit(hists, ys, groups=groups)
