"""Evaluation helpers: baselines, rank metrics, simulated sweeps, training rows."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ranking._dataset import make_rows, run_views
from ranking._evaluate import baseline_scores, rank_metrics, sweep_metrics
from ranking._features import N_FEATURES, Prefix


def _prefix(vals: list[float]) -> Prefix:
    n = len(vals)
    return Prefix(
        np.arange(n), np.ones(n, bool), np.full(n, np.nan), np.full(n, np.nan), np.asarray(vals)
    )


def test_baselines() -> None:
    b = baseline_scores(_prefix([1.0, 0.5, 0.6, 0.4]), total_epochs=40)
    assert b["last"] == 0.4 and b["best_so_far"] == 0.4
    assert b["power_law"] < 0.4
    assert baseline_scores(_prefix([1.0, math.inf]), 10)["last"] == math.inf


def test_rank_and_sweep_metrics() -> None:
    truth = np.linspace(1, 2, 50)
    assert np.allclose(rank_metrics(truth, truth), (1.0, 1.0))
    assert math.isclose(rank_metrics(-truth, truth)[0], -1.0)
    assert sweep_metrics(truth, truth, draws=50) == (0.0, 1.0)
    reg, hit = sweep_metrics(-truth, truth, draws=50)
    assert reg > 0 and hit == 0.0
    # Picking a run whose truth is inf costs the capped regret, not inf.
    s = truth.copy()
    t = truth.copy()
    t[0] = math.inf
    assert math.isfinite(sweep_metrics(s, t, draws=20)[0])


def test_views_and_rows() -> None:
    rows = []
    for e in range(10):
        for it in range(4):
            rows.append(
                (
                    e,
                    it,
                    2.0 / (e + 1 + it / 4),
                    2.1 / (e + 1) if it == 3 else np.nan,
                    np.nan,
                    np.nan,
                )
            )
        rows.append((e, -1, np.nan, np.nan, 2.0 / (e + 1), 0.5 / (e + 1)))
    h = pd.DataFrame(
        rows, columns=["epoch", "iter", "train_loss", "val_loss", "epoch_val_loss", "epoch_val_err"]
    )
    run = run_views(7, "t", 10, h)
    assert set(run.views) == {"full", "minibatch", "epoch", "epoch_val_only", "error"}
    assert run.outcome["full"] == 0.2 and run.outcome["error"] == 0.05
    r = make_rows([run], fractions=(0.1, 0.5))
    assert r.X.shape[1] == N_FEATURES
    assert set(r.view) == set(run.views) and set(r.k) == {1, 2, 3, 5}
    assert np.isfinite(r.best).all()


def test_user_runs_from_folders(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from ranking._dataset import user_runs

    for i, rate in enumerate((0.5, 0.9)):
        d = tmp_path / "proj" / f"exp{i}"
        d.mkdir(parents=True)
        lines = ["epoch,train_loss,val_loss"]
        lines += [f"{e},{rate**e},{1.1 * rate**e}" for e in range(1, 11)]
        (d / "history.csv").write_text("\n".join(lines) + "\n")
    # Not completed runs: a fast run (the start of a longer schedule), one that crashed
    # after 6 of the 10 epochs its neighbours ran, an empty file.
    for name, epochs in (("fast", 4), ("crashed", 6)):
        d = tmp_path / "proj" / name
        d.mkdir()
        lines = ["epoch,train_loss,val_loss"] + [f"{e},1.0,1.0" for e in range(1, epochs + 1)]
        (d / "history.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "proj" / "empty").mkdir()
    (tmp_path / "proj" / "empty" / "history.csv").write_text("")
    runs = user_runs([str(tmp_path)], min_epochs=5)
    assert len(runs) == 2 and {r.task for r in runs} == {"user:proj"}
    assert all(r.total_epochs == 10 for r in runs)
    assert sorted(r.outcome["full"] for r in runs)[0] == 1.1 * 0.5**10
    # Luminide's own layout: single runs in output/expN/trial0 are compared with each other
    # (a stopped one is left out), a sweep's trials within their sweep.
    out = tmp_path / "luminide" / "output"
    for folder, epochs in (("exp1/trial0", 10), ("exp2/trial0", 10), ("exp3/trial0", 6)):
        (out / folder).mkdir(parents=True)
        lines = ["epoch,train_loss,val_loss"] + [f"{e},1.0,1.0" for e in range(1, epochs + 1)]
        (out / folder / "history.csv").write_text("\n".join(lines) + "\n")
    for trial in ("trial0", "trial1"):
        (out / "exp4" / trial).mkdir(parents=True)
        (out / "exp4" / trial / "history.csv").write_text(
            (out / "exp1/trial0/history.csv").read_text()
        )
    tasks = sorted(r.task for r in user_runs([str(tmp_path / "luminide")], min_epochs=5))
    assert tasks == ["user:output", "user:output", "user:output/exp4", "user:output/exp4"]
    with pytest.raises(ValueError, match="is not a folder"):
        user_runs([str(tmp_path / "typo")])
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ValueError, match=r"no history\.csv below"):
        user_runs([str(tmp_path / "nothing")])
