"""Contract tests for history readers (subclass ``HistoryReaderContract`` per reader)."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ranking import read_history

LAYOUT1 = ",epoch,iter,train_loss,val_loss\n0,0,0,2.3,\n1,0,1,2.1,2.2\n2,1,0,1.9,\n3,1,1,1.8,1.9\n"
LAYOUT2 = (
    ",epoch,iter,train_loss,val_loss,epoch_val_loss\n"
    "0,0,0,2.3,,\n1,0,1,2.1,2.2,\n2,0,-1,,,2.15\n3,1,0,1.9,,\n4,1,-1,,,1.95\n"
)
LAYOUT3 = (
    "index,epoch,sample_count,train_loss,val_loss,epoch_val_loss\n"
    "0,0,32,2.3,,\n1,0,64,2.1,2.2,\n2,0,64,,,2.15\n"
)
EPOCHS = "epoch,train_loss,val_loss\n1,2.0,2.1\n2,1.5,1.7\n3,1.2,1.6\n"


class HistoryReaderContract:
    """What every history reader must do; subclasses set ``read``."""

    read: Callable[..., pd.DataFrame]

    def _read(self, text: str, **kw: object) -> pd.DataFrame:
        return type(self).read(io.StringIO(text), **kw)

    @pytest.mark.parametrize("text", [LAYOUT1, LAYOUT2, LAYOUT3, EPOCHS])
    def test_columns_and_dtypes(self, text: str) -> None:
        df = self._read(text)
        assert df.columns[0] == "epoch"
        assert df["epoch"].dtype == np.int64
        for c in ("train_loss", "val_loss", "epoch_val_loss"):
            assert df[c].dtype == np.float64
        assert ("iter" in df.columns) != ("sample_count" in df.columns)
        assert df.attrs["warnings"] == []

    def test_layout2_epoch_end_rows(self) -> None:
        df = self._read(LAYOUT2)
        assert df.loc[df["iter"] == -1, "epoch_val_loss"].tolist() == [2.15, 1.95]

    def test_layout3_keeps_sample_count(self) -> None:
        df = self._read(LAYOUT3)
        assert df["sample_count"].tolist() == [32, 64, 64]

    def test_epoch_level_synthesises_iter(self) -> None:
        df = self._read(EPOCHS)
        assert df["iter"].tolist() == [-1, -1, -1]
        assert df["val_loss"].tolist() == [2.1, 1.7, 1.6]
        assert df["epoch_val_loss"].isna().all()

    def test_partial_last_line_is_ignored(self) -> None:
        df = self._read(LAYOUT1 + "4,2,0,1.")
        assert len(df) == 4

    def test_nan_inf_and_blank(self) -> None:
        # A written nan is a diverged loss (+inf); a blank or NA cell is a missing one (NaN).
        df = self._read("epoch,train_loss,val_loss\n1,inf,nan\n2,,-inf\n3,NaN,NA\n")
        assert df["train_loss"][0] == math.inf and df["val_loss"][0] == math.inf
        assert math.isnan(df["train_loss"][1]) and df["val_loss"][1] == -math.inf
        assert df["train_loss"][2] == math.inf and math.isnan(df["val_loss"][2])

    def test_header_only_gives_empty_frame(self) -> None:
        df = self._read(",epoch,iter,train_loss,val_loss\n")
        assert len(df) == 0 and "epoch_val_loss" in df.columns

    def test_empty_file_raises(self) -> None:
        with pytest.raises(ValueError, match="empty"):
            self._read("")

    def test_wrong_columns_raise(self) -> None:
        with pytest.raises(ValueError, match=r"line 1: missing column\(s\) epoch"):
            self._read("step,loss\n1,2\n")

    def test_bad_cell_names_line_and_column(self) -> None:
        text = LAYOUT1 + "4,2,0,1.7,abc\n"
        with pytest.raises(ValueError, match=r"history.csv line 6, column val_loss: 'abc'"):
            self._read(text)

    def test_wrong_field_count(self) -> None:
        with pytest.raises(ValueError, match=r"line 3: expected 5 fields, found 6"):
            self._read(",epoch,iter,train_loss,val_loss\n0,0,0,2,\n1,0,1,2,3,4\n")
        with pytest.raises(ValueError, match=r"line 2: expected 5 fields, found 4"):
            self._read(",epoch,iter,train_loss,val_loss\n0,0,0,2\n")

    def test_non_integer_epoch(self) -> None:
        with pytest.raises(ValueError, match=r"line 2, column epoch: '1.5' is not an integer"):
            self._read("epoch,val_loss\n1.5,2\n")
        with pytest.raises(ValueError, match=r"line 2, column epoch: missing"):
            self._read("epoch,val_loss\n,2\n")
        # Beyond 2**53 an integer is not exact in float64 (and 1e30 does not fit in int64).
        with pytest.raises(ValueError, match=r"line 3, column iter: '1e30' is out of range"):
            self._read(",epoch,iter,train_loss,val_loss\n0,0,0,2,\n1,0,1e30,2,\n")
        assert self._read("epoch,val_loss\n9007199254740992,2\n")["epoch"][0] == 2**53

    def test_skip_mode_and_line_offset(self) -> None:
        text = ",epoch,iter,train_loss,val_loss\n0,0,0,x,\n1,0,1,2.1,2.2\n"
        df = self._read(text, errors="skip", line_offset=100)
        assert len(df) == 1
        assert df.attrs["warnings"] == [
            "history.csv line 102, column train_loss: 'x' is not a number"
        ]

    def test_bad_errors_argument(self) -> None:
        with pytest.raises(ValueError, match="errors"):
            self._read(LAYOUT1, errors="ignore")


class TestReadHistory(HistoryReaderContract):
    read = staticmethod(read_history)

    def test_path_and_file_name_in_message(self, tmp_path: Path) -> None:
        p = tmp_path / "run7.csv"
        p.write_text("epoch,val_loss\n1,0.5\n2,zz\n")
        with pytest.raises(ValueError, match=r"run7.csv line 3, column val_loss"):
            read_history(p)
        p.write_text(EPOCHS)
        assert len(read_history(str(p))) == 3

    def test_crlf(self) -> None:
        df = read_history(io.StringIO(EPOCHS.replace("\n", "\r\n")))
        assert df["val_loss"].tolist() == [2.1, 1.7, 1.6]

    def test_bytes_that_are_not_utf8_raise_or_cost_their_line(self, tmp_path: Path) -> None:
        p = tmp_path / "history.csv"
        p.write_bytes("epoch,val_loss,note\n0,0.5,café\n1,0.4é,x\n2,0.3,\n".encode("latin-1"))
        with pytest.raises(ValueError, match=r"history.csv line 2: not UTF-8 text \(byte 0xe9\)"):
            read_history(p)  # the API default stays strict
        # errors="skip" reads it as live ingestion does (the tailer decodes with
        # replacement): a bad byte in an unread column costs nothing, one in a loss its line.
        df = read_history(p, errors="skip")
        assert df["epoch"].tolist() == [0, 2]
        assert df.attrs["warnings"] == [
            "history.csv line 3, column val_loss: '0.4\ufffd' is not a number"
        ]


# The fast path (pyarrow) must give exactly what the line-by-line path gives, and hand over
# every file the line-by-line path has to name a line for.
L3 = LAYOUT3.split("\n", 1)[0] + "\n"
FAST_CASES = [
    LAYOUT1,
    LAYOUT2,
    LAYOUT3,
    EPOCHS,
    EPOCHS.replace("\n", "\r\n"),
    L3 + "0,0,32,inf,-inf,\n1,0,64,nan,NaN,\n2,0,64,NA,null,1e-3\n3,1,5,None,N/A,-nan\n",
    L3 + "0,0,32,Nan,+nan,\n1,0,64,-NaN,nan(ind),\n",  # every spelling of a written NaN
    L3.replace("\n", ",note\n") + "0,0,3,1,,,x\n1,0,6,2,,,y\n",
    L3 + "0,0,32,1.0,,\n1,0,6",  # partial last line
    # Quoted fields, as pandas writes an extra column holding a comma; a quoted number.
    L3.replace("\n", ",betas\n") + '0,0,32,1,,,"(0.9, 0.999)"\n1,0,64,2,,,"(0.9, 0.999)"\n',
    L3 + '0,0,32,"1",,\n',
]
SLOW_CASES = [
    L3 + "0,0,32,1.0,,\n1,0,64\n",  # short line
    L3 + "0,0,32,1.0,,\n1,0,64,1,,,,\n",  # long line
    L3 + "0,0,32,1.0,,\n\n1,0,64,1,,\n",  # blank line
    L3 + "0,0,32,abc,,\n",  # text in a number column
    L3 + "0,0.5,32,1,,\n",  # non-integer epoch
    L3 + "0,0,1e30,1,,\n",  # a step beyond the exact integers of float64
    L3 + '"0,0",0,32,1,,\n1,0,64,1,\n',  # a quoted comma is in one field; line 3 is short
    L3 + "0,0,32,1,,,x\n1,0,64,1,\n",  # an extra field on the first line (pandas: an index)
]


def _parse(text: str, monkeypatch: pytest.MonkeyPatch, fast: bool) -> tuple[pd.DataFrame, bool]:
    """read_history(errors="skip") and whether its fast path gave the result."""
    from ranking import _history

    real = _history._fast_parse
    used = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        df = real(*args, **kwargs) if fast else None
        used.append(df is not None)
        return df

    monkeypatch.setattr(_history, "_fast_parse", spy)
    return read_history(io.StringIO(text), errors="skip"), any(used)


def _large_history() -> str:
    from ranking._bench import synthetic_history

    buf = io.StringIO()
    synthetic_history(np.random.default_rng(0), epochs=200, steps=500).to_csv(buf)
    return buf.getvalue()  # ~100k rows, several blocks of pyarrow's reader


@pytest.mark.parametrize("text", [*FAST_CASES, "large"])
def test_fast_path_gives_what_the_line_by_line_path_gives(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = _large_history() if text == "large" else text
    fast, used = _parse(text, monkeypatch, fast=True)
    slow, _ = _parse(text, monkeypatch, fast=False)
    assert used
    pd.testing.assert_frame_equal(fast, slow, check_exact=True)
    assert fast.attrs["warnings"] == slow.attrs["warnings"] == []


@pytest.mark.parametrize("text", SLOW_CASES)
def test_fast_path_hands_unusual_files_to_the_line_by_line_path(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    df, used = _parse(text, monkeypatch, fast=True)
    assert not used
    assert all("line " in w for w in df.attrs["warnings"])
