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


def test_score_reads_the_last_line_of_a_finished_file_without_a_newline(
    model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "history.csv"
    f.write_text("epoch,train_loss,val_loss\n1,2.0,2.1\n2,1.5,1.7\n3,1.2,1.6")  # no final \n
    assert main(["score", str(f), "--model", model, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["epochs"] == 3


@pytest.mark.parametrize(
    "meta", ['["a list"]', '{"format": "luminide-early-ranker/1"}', '{"format": "other"}']
)
def test_score_refuses_a_broken_model_file_without_a_traceback(
    model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], meta: str
) -> None:
    broken = tmp_path / "broken"
    broken.with_suffix(".json").write_text(meta)
    broken.with_suffix(".txt").write_text(Path(model + ".txt").read_text())
    f = tmp_path / "history.csv"
    f.write_text("epoch,val_loss\n1,0.5\n")
    assert main(["score", str(f), "--model", str(broken)]) == 2
    assert f"--model: {broken}.json: " in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-5", "nan", "ten"])
def test_score_refuses_a_total_length_that_is_not_positive(
    model: str, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["score", "history.csv", "--model", model, "--total-epochs", value])
    assert exit_info.value.code == 2
    assert "not a positive number of epochs" in capsys.readouterr().err


def test_train_names_a_bad_folder_before_loading_the_corpus(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_corpus(*args: object, **kwargs: object) -> None:
        raise AssertionError("the corpus was loaded first")

    monkeypatch.setattr("ranking._corpus.load_corpus", no_corpus)
    out = str(tmp_path / "model")
    assert main(["train", "--add-runs", str(tmp_path / "nothing"), "--out", out]) == 2
    assert f"--add-runs: {tmp_path / 'nothing'} is not a folder" in capsys.readouterr().err


def test_train_and_build_corpus_name_missing_inputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "model")
    assert main(["train", "--corpus", str(tmp_path / "none.parquet"), "--out", out]) == 2
    assert "none.parquet" in capsys.readouterr().err
    assert main(["train", "--work", str(tmp_path), "--out", out]) == 2
    assert f"no corpus shards (shard-*.parquet) in {tmp_path}" in capsys.readouterr().err
    args = ["build-corpus", "--finalize-only", "--work", str(tmp_path), "--out", str(tmp_path)]
    assert main(args) == 2
    assert str(tmp_path) in capsys.readouterr().err
    assert not Path(out + ".json").exists()
