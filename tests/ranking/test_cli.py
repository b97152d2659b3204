"""``python -m ranking`` commands that run in seconds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ranking import EarlyRanker
from ranking._cli import main


@pytest.fixture
def model(fitted_ranker: EarlyRanker, tmp_path: Path) -> str:
    return fitted_ranker.save(tmp_path / "model")


def test_score_json_and_errors(
    model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "a" / "history.csv"
    good.parent.mkdir()
    good.write_text("epoch,train_loss,val_loss\n1,2.0,2.1\n2,1.5,1.7\n3,1.2,1.6\n")
    diverged = tmp_path / "d.csv"
    diverged.write_text("epoch,train_loss,val_loss\n1,2.0,2.1\n2,inf,inf\n")
    bad = tmp_path / "bad.csv"
    bad.write_text("epoch,val_loss\n1,x\n")
    rc = main(["score", str(good), str(diverged), str(bad), "--json", "--model", model])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1
    assert isinstance(out[0]["score"], float) and out[0]["epochs"] == 3
    assert out[1]["score"] == "inf"
    assert "bad.csv line 2, column val_loss" in out[2]["error"]


def test_score_names_a_missing_model_and_a_file_that_is_not_utf8(
    model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "history.csv"
    f.write_bytes("epoch,val_loss,note\n0,0.5,café\n".encode("latin-1"))
    assert main(["score", str(f), "--model", model]) == 1
    assert "history.csv line 2: not UTF-8 text (byte 0xe9)" in capsys.readouterr().err
    assert main(["score", str(f), "--model", str(tmp_path / "nothing")]) == 2
    assert "--model: " in capsys.readouterr().err


def test_score_text(model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "history.csv"
    f.write_text(",epoch,iter,train_loss,val_loss\n0,0,0,2.3,\n1,0,1,2.1,2.2\n")
    assert main(["score", str(f), "--model", model]) == 0
    assert str(f) in capsys.readouterr().out


def test_bench_runs(model: str) -> None:
    from ranking._bench import run_bench

    out = run_bench(n=50, epochs=10, model=model)
    assert out["histories"] == 50 and out["finite_scores"] == 50
    assert out["torch_imported"] is False and out["lightgbm_imported"] is False
