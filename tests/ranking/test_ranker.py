"""Contract tests for rankers (subclass ``RankerContract`` per implementation)."""

from __future__ import annotations

import io
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ranking import EarlyRanker, read_history
from ranking._bench import synthetic_history
from ranking._forest import Forest

DATA = Path(__file__).parent / "data"


def epoch_frame(val: list[float], train: list[float] | None = None) -> pd.DataFrame:
    n = len(val)
    return pd.DataFrame(
        {
            "epoch": np.arange(n),
            "iter": np.full(n, -1),
            "train_loss": np.asarray(train if train is not None else [np.nan] * n, float),
            "val_loss": np.asarray(val, float),
        }
    )


class RankerContract:
    """What every ranker must do; subclasses provide the ``ranker`` fixture."""

    @pytest.fixture
    def ranker(self) -> EarlyRanker:
        raise NotImplementedError

    @pytest.fixture
    def history(self) -> pd.DataFrame:
        h = synthetic_history(np.random.default_rng(3), epochs=50)
        return h[h["epoch"] < 5].reset_index(drop=True)

    def test_score_is_float_in_run_units(self, ranker: EarlyRanker, history: pd.DataFrame) -> None:
        s = ranker.score(history)
        assert isinstance(s, float) and math.isfinite(s) and s > 0
        best = history["epoch_val_loss"].min()
        assert best / 20 < s < best * 20

    def test_score_many_matches_score_and_is_deterministic(
        self, ranker: EarlyRanker, history: pd.DataFrame
    ) -> None:
        other = epoch_frame([2.0, 1.5, 1.2])
        many = ranker.score_many([history, other, history])
        assert isinstance(many, np.ndarray) and many.shape == (3,)
        assert many[0] == ranker.score(history) == many[2]
        assert many[1] == ranker.score(other)
        assert np.array_equal(many, ranker.score_many([history, other, history]))
        assert ranker.score_many([]).shape == (0,)

    def test_score_epochs_matches_score_of_the_epoch_frame(self, ranker: EarlyRanker) -> None:
        for values in ([0.7], [2.0, 1.5, 1.2], [1.0, 0.8, math.inf]):
            assert ranker.score_epochs(values) == ranker.score(epoch_frame(values))
        assert ranker.score_epochs([2.0, 1.5], total_epochs=30) == ranker.score(
            epoch_frame([2.0, 1.5]), total_epochs=30
        )
        with pytest.raises(ValueError, match="at least one"):
            ranker.score_epochs([])

    def test_scale_free(self, ranker: EarlyRanker, history: pd.DataFrame) -> None:
        scaled = history.copy()
        for c in ("train_loss", "val_loss", "epoch_val_loss"):
            scaled[c] = scaled[c] * 1000
        assert ranker.score(scaled) == pytest.approx(ranker.score(history) * 1000, rel=1e-6)

    def test_clearly_better_run_scores_lower(self, ranker: EarlyRanker) -> None:
        good = epoch_frame([1.0, 0.6, 0.4, 0.3])
        bad = epoch_frame([1.0, 0.99, 0.98, 0.98])
        assert ranker.score(good) < ranker.score(bad)

    def test_diverged_is_inf(self, ranker: EarlyRanker) -> None:
        assert ranker.score(epoch_frame([1.0, 0.8, math.inf])) == math.inf
        assert ranker.score(epoch_frame([1.0, 0.8, math.nan], [1.0, 0.9, math.nan])) == math.inf
        assert ranker.score(epoch_frame([1.0, 0.5], [1.0, math.inf])) == math.inf

    def test_a_file_whose_losses_turn_nan_is_diverged(self, ranker: EarlyRanker) -> None:
        # What a script writing f"{loss}" leaves when training blows up: literal nan cells,
        # the intra-epoch validation column blank throughout (layout 3).
        lines = ["index,epoch,sample_count,train_loss,val_loss,epoch_val_loss"]
        for e in range(6):
            train = 1.0 / (e + 1) if e < 4 else math.nan
            lines += [f"{e * 11 + s},{e},{s * 10},{train},," for s in range(10)]
            lines.append(f"{e * 11 + 10},{e},100,,,{0.5 / (e + 1) if e < 4 else math.nan}")
        history = read_history(io.StringIO("\n".join(lines) + "\n"))
        assert ranker.score(history) == math.inf
        assert math.isfinite(ranker.score(history[history["epoch"] < 4]))

    def test_one_blank_loss_column_in_the_last_epoch_is_not_divergence(
        self, ranker: EarlyRanker
    ) -> None:
        # Train loss logged every other epoch; and a layout-1 file read just after the new
        # epoch's first row, which holds only a validation loss.
        assert math.isfinite(ranker.score(epoch_frame([1.0, 0.8, 0.7], [1.0, math.nan, 0.8])))
        rows = [
            f"{e * 5 + i},{e},{i},{1.0 - 0.01 * (e * 5 + i)}," for e in range(4) for i in range(5)
        ]
        live = ",epoch,iter,train_loss,val_loss\n" + "\n".join(rows) + "\n20,4,0,,0.9\n"
        assert math.isfinite(ranker.score(read_history(io.StringIO(live))))
        # Both columns blank at the end (pandas writes NaN losses as blank cells): diverged,
        # also when the epoch began with a finite validation row.
        assert ranker.score(epoch_frame([1.0, 0.8, math.nan], [1.0, 0.9, math.nan])) == math.inf
        diverged = live + "21,4,1,,\n"
        assert ranker.score(read_history(io.StringIO(diverged))) == math.inf

    def test_all_nan_validation_is_inf(self, ranker: EarlyRanker) -> None:
        assert ranker.score(epoch_frame([math.nan, math.nan], [1.0, 0.9])) == math.inf

    def test_one_row(self, ranker: EarlyRanker) -> None:
        assert math.isfinite(ranker.score(epoch_frame([0.7])))

    def test_empty_and_wrong_columns_raise(self, ranker: EarlyRanker) -> None:
        with pytest.raises(ValueError, match="no rows"):
            ranker.score(epoch_frame([]))
        with pytest.raises(ValueError, match="needs columns"):
            ranker.score(pd.DataFrame({"step": [1], "loss": [0.5]}))

    def test_views(self, ranker: EarlyRanker, history: pd.DataFrame) -> None:
        # Layout 1 (no epoch-end rows), epoch-level only, train blank, error rates.
        layout1 = history[history["iter"] != -1].drop(columns=["epoch_val_loss"])
        no_train = history.assign(train_loss=np.nan)
        err = epoch_frame([0.5, 0.3, 0.25, 0.2], [1.2, 0.8, 0.6, 0.5])
        for df in (layout1, no_train, err, epoch_frame([3.0, 2.0, 1.8])):
            assert math.isfinite(ranker.score(df))

    def test_never_above_the_best_so_far_with_full_validation(
        self, ranker: EarlyRanker, history: pd.DataFrame
    ) -> None:
        # The final best includes the epochs seen, so it cannot be worse than their best.
        # DATA: the tabular template at lr 0.99 (Adam), whose loss exploded in the first
        # minibatches; the shipped quantile model predicted it 7% above its best so far.
        blown_up = read_history(DATA / "tabular-template-first-4-epochs.csv")
        rng = np.random.default_rng(5)
        frames = [epoch_frame(list(np.exp(rng.normal(0, 0.3, 6)))) for _ in range(200)]
        best = [float(f["val_loss"].min()) for f in frames]
        for df in (history, blown_up):
            frames.append(df)
            best.append(float(df["epoch_val_loss"].min()))
        scores = ranker.score_many(frames)
        assert (scores <= np.asarray(best) * (1 + 1e-12)).all()

    def test_total_epochs_is_optional(self, ranker: EarlyRanker, history: pd.DataFrame) -> None:
        assert math.isfinite(ranker.score(history, total_epochs=50))
        many = ranker.score_many([history, history], total_epochs=[50, None])
        assert np.isfinite(many).all()
        # df["epoch"].max() + 1 is how one passes it: a numpy integer.
        assert ranker.score(history, total_epochs=np.int64(50)) == ranker.score(
            history, total_epochs=50
        )

    def test_reads_every_layout(self, ranker: EarlyRanker) -> None:
        texts = [
            ",epoch,iter,train_loss,val_loss\n0,0,0,2.3,\n1,0,1,2.1,2.2\n2,1,0,1.9,\n3,1,1,1.8,1.9\n",
            "index,epoch,sample_count,train_loss,val_loss,epoch_val_loss\n"
            "0,0,32,2.3,,\n1,0,64,2.1,2.2,\n2,0,64,,,2.15\n3,1,32,1.9,,\n4,1,64,1.8,1.8,\n"
            "5,1,64,,,1.85\n",
            "epoch,train_loss,val_loss\n1,2.0,2.1\n2,1.5,1.7\n",
        ]
        for t in texts:
            assert math.isfinite(ranker.score(read_history(io.StringIO(t))))


class TestFittedRanker(RankerContract):
    @pytest.fixture
    def ranker(self, fitted_ranker: EarlyRanker) -> EarlyRanker:
        return fitted_ranker

    def test_forest_matches_lightgbm(self, fitted_ranker: EarlyRanker) -> None:
        import lightgbm as lgb

        booster = lgb.Booster(model_str=fitted_ranker.booster_text_)
        rng = np.random.default_rng(0)
        X = rng.normal(size=(200, fitted_ranker.n_features_in_))
        X[rng.random(X.shape) < 0.2] = np.nan
        assert np.allclose(Forest(fitted_ranker.booster_text_).predict(X), booster.predict(X))

    def test_save_load_roundtrip(
        self, fitted_ranker: EarlyRanker, tmp_path: Path, synthetic_runs: list
    ) -> None:
        stem = fitted_ranker.save(tmp_path / "m", note="test")
        loaded = EarlyRanker.load(stem)
        hs = [h[h["epoch"] < 4] for h, _ in synthetic_runs[:20]]
        assert np.array_equal(loaded.score_many(hs), fitted_ranker.score_many(hs))
        assert loaded.get_params() == fitted_ranker.get_params()
        assert loaded.metadata_["note"] == "test"

    def test_a_worse_prediction_counts_only_without_full_validation(
        self, fitted_ranker: EarlyRanker, history: pd.DataFrame, monkeypatch
    ) -> None:
        # A model that predicts "ends 50% worse" for everything: only a history whose best so
        # far is a minibatch estimate (layout 1, no epoch-end rows) may keep that.
        class Worse:
            def predict(self, X: np.ndarray) -> np.ndarray:
                return np.full(len(X), np.log(1.5))

        monkeypatch.setattr(fitted_ranker, "forest_", Worse())
        full = history
        layout1 = history[history["iter"] != -1].drop(columns=["epoch_val_loss"])
        assert fitted_ranker.score(full) == float(full["epoch_val_loss"].min())
        level = layout1.groupby("epoch")["val_loss"].mean().min()
        assert fitted_ranker.score(layout1) == pytest.approx(1.5 * level)

    def test_load_rejects_other_files(self, tmp_path: Path) -> None:
        (tmp_path / "x.json").write_text('{"format": "other"}')
        with pytest.raises(ValueError, match="not an EarlyRanker"):
            EarlyRanker.load(tmp_path / "x")


class TestShippedModel(RankerContract):
    @pytest.fixture
    def ranker(self) -> EarlyRanker:
        try:
            return EarlyRanker.load()
        except FileNotFoundError:
            pytest.skip("no shipped model yet")


class TestEstimatorContract:
    def test_params_stored_as_given_and_validated_in_fit(self, synthetic_runs: list) -> None:
        r = EarlyRanker(n_estimators=-1, objective="nope")
        assert r.n_estimators == -1 and r.objective == "nope"
        h, y = synthetic_runs[0]
        with pytest.raises(ValueError, match="objective"):
            r.fit([h] * 20, [y] * 20)
        r.set_params(objective="regression")
        with pytest.raises(ValueError, match="n_estimators"):
            r.fit([h] * 20, [y] * 20)

    def test_sklearn_clone_and_fit_returns_self(self, synthetic_runs: list) -> None:
        from sklearn.base import clone

        r = EarlyRanker(n_estimators=5, min_child_samples=3)
        c = clone(r)
        assert c.get_params() == r.get_params() and c is not r
        hs = [h[h["epoch"] < 3] for h, _ in synthetic_runs[:40]]
        ys = [y for _, y in synthetic_runs[:40]]
        assert c.fit(hs, ys) is c
        assert hasattr(c, "forest_") and not hasattr(r, "forest_")
        with pytest.raises(ValueError, match="not fitted"):
            r.score(hs[0])
        assert "n_estimators=5" in repr(r)

    def test_lambdarank_needs_groups_and_fits(self, synthetic_runs: list) -> None:
        hs = [h[h["epoch"] < 3] for h, _ in synthetic_runs[:60]]
        ys = [y for _, y in synthetic_runs[:60]]
        with pytest.raises(ValueError, match="groups"):
            EarlyRanker(objective="lambdarank").fit(hs, ys)
        r = EarlyRanker(objective="lambdarank", n_estimators=10, min_child_samples=3)
        r.fit(hs, ys, groups=["a"] * 30 + ["b"] * 30)
        assert np.isfinite(r.score_many(hs)).all()


def test_import_ranking_does_not_import_torch_or_lightgbm() -> None:
    code = (
        "import sys, ranking; from ranking import EarlyRanker; "
        "print('torch' in sys.modules, 'lightgbm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
