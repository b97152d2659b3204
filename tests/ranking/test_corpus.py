"""The corpus builder's training loop, on tiny tasks (seconds)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from ranking import read_history
from ranking._corpus import (
    TASK_NAMES,
    build_corpus,
    finalize_corpus,
    load_corpus,
    run_one,
    sample_config,
)

pytest.importorskip("torch")


def test_sample_config_is_deterministic_and_varied() -> None:
    assert sample_config(7) == sample_config(7)
    cfgs = [sample_config(i) for i in range(200)]
    assert {t for t, _, _ in cfgs} == set(TASK_NAMES)
    assert {c["optimizer"] for _, c, _ in cfgs} == {"sgd", "adam", "adamw"}
    assert {c["schedule"] for _, c, _ in cfgs} == {"constant", "step", "exponential", "cosine"}
    lrs = np.array([c["lr"] for _, c, _ in cfgs])
    assert lrs.max() / lrs.min() > 1e4


def test_run_one_writes_layout2_history() -> None:
    _, cfg, seed = sample_config(5)
    cfg.update(epochs=3, lr=1e-2, optimizer="adam", batch_size=16, val_every=2, train_fraction=1.0)
    res = run_one("wine_mlp", cfg, seed)
    h = res["history"]
    assert res["epochs_done"] == 3 and not res["diverged"]
    ends = h[h["iter"] == -1]
    assert ends["epoch"].tolist() == [0, 1, 2]
    assert np.isfinite(ends["epoch_val_loss"]).all()
    assert h["val_loss"].notna().sum() > 0
    # The history round-trips through Luminide's CSV format.
    buf = io.StringIO()
    h.drop(columns=["epoch_val_err"]).to_csv(buf)
    df = read_history(io.StringIO(buf.getvalue()))
    assert len(df) == len(h)


def test_diverging_run_stops() -> None:
    _, cfg, seed = sample_config(5)
    cfg.update(epochs=5, lr=1e6, optimizer="sgd", momentum=0.9, schedule="constant")
    cfg.update(warmup_epochs=0)
    res = run_one("diabetes_regression", cfg, seed)
    assert res["diverged"] and res["epochs_done"] <= 5


def test_build_is_resumable(tmp_path: Path) -> None:
    work = tmp_path / "work"
    # ids 5 and 15 are wine runs (id % 10 == 5): the cheapest task.
    assert build_corpus(runs=1, start=5, work_dir=str(work), log=lambda s: None) == 1
    assert build_corpus(runs=1, start=5, work_dir=str(work), log=lambda s: None) == 0
    out, man = finalize_corpus(str(work), str(tmp_path))
    runs, manifest = load_corpus(out, man)
    assert list(runs) == [5] and manifest["task"].tolist() == ["wine_mlp"]
