"""``python -m ranking`` commands that run in seconds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
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


def test_score_reads_a_file_that_is_not_utf8_as_the_platform_does_and_names_a_missing_model(
    model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "history.csv"
    # A bad byte in a column nobody reads costs nothing (the platform's tailer replaces it
    # too); one in a loss column costs its line, with a warning.
    f.write_bytes("epoch,val_loss,note\n0,0.5,café\n1,0.4é,x\n".encode("latin-1"))
    assert main(["score", str(f), "--model", model, "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)[0]["epochs"] == 1
    assert "history.csv line 3, column val_loss: '0.4\ufffd' is not a number" in captured.err
    assert main(["score", str(f), "--model", str(tmp_path / "nothing")]) == 2
    assert "--model: " in capsys.readouterr().err


def _layout2_with_bad_lines(tmp_path: Path) -> tuple[Path, Path]:
    """A layout-2 history.csv as the templates write it, and the same file with two
    malformed lines inserted (file lines 10 and 25): an extra field, a non-numeric loss."""
    from ranking._bench import synthetic_history

    h = synthetic_history(np.random.default_rng(7), epochs=4, steps=8, val_every=2)
    clean = tmp_path / "clean" / "history.csv"
    clean.parent.mkdir()
    h.to_csv(clean, columns=["epoch", "iter", "train_loss", "val_loss", "epoch_val_loss"])
    lines = clean.read_text().splitlines(keepends=True)
    assert lines[0] == ",epoch,iter,train_loss,val_loss,epoch_val_loss\n"
    lines.insert(9, "8,1,0,0.61,0.7,,extra\n")  # file line 10
    lines.insert(24, "22,2,3,abc,,\n")  # file line 25
    bad = tmp_path / "bad" / "history.csv"
    bad.parent.mkdir()
    bad.write_text("".join(lines))
    return clean, bad


def test_score_skips_malformed_lines_with_a_warning_each_and_scores_the_rest(
    model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clean, bad = _layout2_with_bad_lines(tmp_path)
    assert main(["score", str(clean), "--model", model, "--json"]) == 0
    expected = json.loads(capsys.readouterr().out)[0]

    assert main(["score", str(bad), "--model", model, "--json"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)[0]
    assert out["score"] == expected["score"] and out["epochs"] == expected["epochs"] == 4
    assert out["error"] is None
    warnings = captured.err.splitlines()
    assert warnings == [
        f"warning\t{bad}\tskipped a malformed row: history.csv line 10: expected 6 fields, found 7",
        f"warning\t{bad}\tskipped a malformed row: history.csv line 25, column train_loss:"
        " 'abc' is not a number",
    ]
    assert out["warnings"] == [w.split("skipped a malformed row: ")[1] for w in warnings]

    # Text output: the same score, the same warnings, exit 0.
    assert main(["score", str(bad), "--model", model]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{expected['score']:.6g}\t{bad}\t(4 epochs)")
    assert captured.err.splitlines() == warnings


def test_score_a_file_with_no_usable_row_is_an_error(
    model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    all_bad = tmp_path / "all_bad.csv"
    all_bad.write_text(",epoch,iter,train_loss,val_loss\n0,0,x,2.0,\n1,0\n")
    header_only = tmp_path / "header_only.csv"
    header_only.write_text(",epoch,iter,train_loss,val_loss\n")
    assert main(["score", str(all_bad), str(header_only), "--model", model]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"warning\t{all_bad}\tskipped a malformed row: all_bad.csv line 2, column iter:"
        " 'x' is not a number",
        f"warning\t{all_bad}\tskipped a malformed row: all_bad.csv line 3: expected 5 fields,"
        " found 2",
        f"error\t{all_bad}\tall_bad.csv: no usable row: all 2 data line(s) are malformed,"
        " the first: all_bad.csv line 2, column iter: 'x' is not a number",
        f"error\t{header_only}\theader_only.csv: no usable row: the header has no data lines"
        " below it",
    ]
    assert main(["score", str(all_bad), "--model", model, "--json"]) == 1
    out = json.loads(capsys.readouterr().out)[0]
    assert out["score"] is None and "no usable row" in out["error"]
    assert len(out["warnings"]) == 2


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
