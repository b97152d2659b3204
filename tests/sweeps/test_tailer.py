"""HistoryTailer: incremental reads of a growing history.csv."""

from __future__ import annotations

import io

from ranking import read_history
from sweeps.tailer import HistoryTailer

HEADER = "index,epoch,sample_count,train_loss,val_loss,epoch_val_loss\n"


def test_missing_file_reads_nothing(tmp_path):
    tailer = HistoryTailer(tmp_path / "history.csv")
    assert tailer.read() is None
    assert not tailer.exists


def test_header_only_then_rows(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text(HEADER)
    tailer = HistoryTailer(path)
    assert tailer.read() is None
    assert tailer.exists
    with open(path, "a") as fh:
        fh.write("0,0,32,2.3,,\n1,0,64,2.1,2.2,\n")
    chunk = tailer.read()
    assert chunk.text == HEADER + "0,0,32,2.3,,\n1,0,64,2.1,2.2,\n"
    assert (chunk.line_offset, chunk.lines) == (0, 2)
    assert tailer.read() is None


def test_partial_last_line_waits_for_the_next_read(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text(HEADER + "0,0,32,2.3,,\n1,0,6")
    tailer = HistoryTailer(path)
    first = tailer.read()
    assert first.text == HEADER + "0,0,32,2.3,,\n"
    assert tailer.read() is None  # still partial
    with open(path, "a") as fh:
        fh.write("4,2.1,2.2,\n2,0,96,2.0,,\n")
    second = tailer.read()
    assert second.text == HEADER + "1,0,64,2.1,2.2,\n2,0,96,2.0,,\n"
    assert second.line_offset == 1
    df = read_history(io.StringIO(second.text), errors="skip", line_offset=second.line_offset)
    assert df["sample_count"].tolist() == [64, 96]


def test_partial_header_waits(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("index,epoch,sam")
    tailer = HistoryTailer(path)
    assert tailer.read() is None
    with open(path, "a") as fh:
        fh.write("ple_count,train_loss,val_loss,epoch_val_loss\n0,0,32,2.3,,\n")
    assert tailer.read().text == HEADER + "0,0,32,2.3,,\n"


def test_final_read_takes_the_unterminated_last_line(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text(HEADER + "0,0,32,2.3,,\n1,0,64,2.1,,")
    tailer = HistoryTailer(path)
    tailer.read()
    chunk = tailer.read(final=True)
    assert chunk.text == HEADER + "1,0,64,2.1,,\n"
    assert tailer.offset == path.stat().st_size
    assert tailer.read(final=True) is None


def test_a_file_rewritten_as_a_whole_gives_only_its_new_rows(tmp_path):
    """pandas' to_csv every few steps: truncate, then write every row again plus new ones."""
    path = tmp_path / "history.csv"
    rows = ["0,0,32,2.3,,\n", "1,0,64,2.1,,\n"]
    path.write_text(HEADER + "".join(rows))
    tailer = HistoryTailer(path)
    tailer.read()
    path.write_text("")  # caught between the truncation and the write
    assert tailer.read() is None
    path.write_text(HEADER + "".join(rows) + "2,0,96,2.0,,\n")
    chunk = tailer.read()
    assert chunk.text == HEADER + "2,0,96,2.0,,\n" and chunk.line_offset == 2
    assert tailer.read() is None


def test_a_rewrite_that_adds_a_column_is_read_with_the_new_header(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text(",epoch,iter,train_loss,val_loss\n0,0,0,2.3,\n1,0,1,2.1,\n")
    tailer = HistoryTailer(path)
    tailer.read()
    new_header = ",epoch,iter,train_loss,val_loss,epoch_val_loss\n"
    path.write_text(new_header + "0,0,0,2.3,,\n1,0,1,2.1,,\n2,0,-1,,,1.9\n3,1,0,1.8,,\n")
    chunk = tailer.read()
    assert tailer.restarted
    assert chunk.text == new_header + "2,0,-1,,,1.9\n3,1,0,1.8,,\n"
    assert chunk.line_offset == 2  # file lines 4-5: warnings keep their line numbers


def test_a_file_left_shorter_is_read_from_the_start_once_the_writer_exits(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text(HEADER + "0,0,32,2.3,,\n1,0,64,2.1,,\n")
    tailer = HistoryTailer(path)
    tailer.read()
    path.write_text(HEADER + "0,0,32,9.9,,\n")
    assert tailer.read() is None and not tailer.restarted  # maybe still being written
    assert tailer.read(final=True) is None  # its one row was read before
    assert tailer.restarted


def test_malformed_rows_get_file_line_numbers(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text(HEADER + "0,0,32,2.3,,\n")
    tailer = HistoryTailer(path)
    tailer.read()
    with open(path, "a") as fh:
        fh.write("1,0,64,abc,,\n2,0,96,2.0,,\n3,0,1,2\n")
    chunk = tailer.read()
    df = read_history(io.StringIO(chunk.text), errors="skip", line_offset=chunk.line_offset)
    assert df["sample_count"].tolist() == [96]
    warnings = df.attrs["warnings"]
    assert len(warnings) == 2
    assert "line 3" in warnings[0] and "train_loss" in warnings[0]  # file line 3
    assert "line 5" in warnings[1]
