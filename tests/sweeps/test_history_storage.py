"""Chunk encoding, reading stored rows back, and the pure chart-data functions."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest

from ranking import read_history
from sweeps.actions import do_ingest_history
from sweeps.history import (
    HistoryArrays,
    chart_series,
    decode_chunk,
    ema,
    encode_chunk,
    epoch_summaries,
    fractional_epoch,
    history_payload,
    log_payload,
    minmax_downsample,
    read_trial_history,
)
from tests import factories
from tests.factories import LAYOUT3_HEADER, layout3_rows


def _rows(text: str) -> HistoryArrays:
    return HistoryArrays.from_frame(read_history(io.StringIO(text)))


def test_chunk_round_trip_is_exact():
    rows = _rows(LAYOUT3_HEADER + "0,0,32,2.5,,\n1,0,64,inf,nan,\n2,0,64,,,0.123456789012345\n")
    back = decode_chunk(encode_chunk(rows), first_seq=10)
    assert back.seq.tolist() == [10, 11, 12]
    assert back.step_column == "sample_count"
    for col in ("epoch", "step", "train_loss", "val_loss", "epoch_val_loss"):
        np.testing.assert_array_equal(getattr(back, col), getattr(rows, col))


def test_decode_rejects_foreign_blobs():
    with pytest.raises(ValueError, match="not a history chunk"):
        decode_chunk(b"x" * 32)


def test_iter_layout_keeps_its_step_column():
    rows = _rows(",epoch,iter,train_loss,val_loss\n0,0,0,1.0,\n1,0,1,0.9,0.95\n")
    assert decode_chunk(encode_chunk(rows)).step_column == "iter"


@pytest.mark.django_db
def test_read_trial_history_after_cursor(project):
    trial = factories.make_experiment(project).trials.get()
    do_ingest_history(trial, LAYOUT3_HEADER + layout3_rows(2, 10))
    do_ingest_history(trial, LAYOUT3_HEADER + layout3_rows(1, 10, start_index=22))
    trial.refresh_from_db()
    assert trial.rows_stored == 33
    everything = read_trial_history(trial)
    assert everything.seq.tolist() == list(range(33))
    tail = read_trial_history(trial, after=20)
    assert tail.seq.tolist() == list(range(20, 33))
    np.testing.assert_array_equal(tail.train_loss, everything.train_loss[20:])
    assert len(read_trial_history(trial, after=33)) == 0


def test_fractional_epoch_places_rows_inside_their_epoch():
    rows = _rows(LAYOUT3_HEADER + layout3_rows(2, 4))
    x = fractional_epoch(rows)
    # epoch 0: steps 32..128 of 128 samples -> 0.25..1; end row at 1; epoch 1 -> 1.25..2.
    assert x.tolist() == [0.25, 0.5, 0.75, 1.0, 1.0, 1.25, 1.5, 1.75, 2.0, 2.0]


def test_fractional_epoch_iter_layout_and_running_epoch_uses_previous_length():
    text = ",epoch,iter,train_loss,val_loss,epoch_val_loss\n"
    text += "".join(f"{i},0,{i},1.0,,\n" for i in range(4)) + "4,0,-1,,,0.9\n"
    text += "5,1,0,0.8,,\n"  # epoch 1 has just started
    x = fractional_epoch(_rows(text))
    assert x.tolist() == [0.25, 0.5, 0.75, 1.0, 1.0, 1.25]


def test_minmax_downsample_keeps_extremes():
    rng = np.random.default_rng(0)
    y = rng.normal(size=100_000)
    y[12_345] = 50.0
    y[54_321] = -50.0
    y[777] = np.nan
    x = np.arange(len(y), dtype=float)
    dx, dy = minmax_downsample(x, y, 1000)
    assert len(dx) <= 1000
    assert 50.0 in dy and -50.0 in dy
    assert np.all(np.diff(dx) > 0)
    assert np.nanmax(dy) == np.nanmax(y) and np.nanmin(dy) == np.nanmin(y)


def test_ema_is_incremental():
    values = np.linspace(1, 2, 50) + np.sin(np.arange(50))
    whole = ema(values)
    part = ema(values[30:], seed=float(ema(values[:30])[-1]))
    np.testing.assert_allclose(part, whole[30:])


def test_chart_series_marks_nonfinite_values():
    # Row 2 as written by f"{loss}", row 3 as pandas' to_csv writes a NaN loss (blank).
    rows = _rows(
        LAYOUT3_HEADER + "0,0,32,2.0,,\n1,0,64,inf,,\n2,0,96,nan,nan,\n3,0,96,,,\n4,0,96,,,inf\n"
    )
    data = chart_series(rows)
    assert data["series"]["train"]["y"] == [2.0, None, None]
    kinds = [(d["series"], d["x"], d["value"]) for d in data["nonfinite"]]
    assert {(s, v) for s, _x, v in kinds} == {
        ("train", "inf"),
        ("val", "inf"),
        ("train", "nan"),
        ("epoch_val", "inf"),
    }
    assert len([k for k in kinds if k[0] == "train"]) == 3
    json.dumps(data, allow_nan=False)


def test_a_file_with_one_row_per_epoch_keeps_its_train_loss():
    rows = _rows("epoch,train_loss,val_loss\n0,1.0,0.9\n1,0.8,0.7\n")
    assert chart_series(rows)["series"]["train"]["y"] == [1.0, 0.8]
    assert epoch_summaries(rows, [0, 1]) == {0: (1.0, 0.9), 1: (0.8, 0.7)}
    shuffled = _rows("epoch,train_loss,val_loss\n1,0.8,0.7\n0,1.0,0.9\n")  # pandas path
    assert epoch_summaries(shuffled, [0, 1]) == {0: (1.0, 0.9), 1: (0.8, 0.7)}


@pytest.mark.django_db
def test_history_payload_full_and_delta(project):
    trial = factories.make_experiment(project).trials.get()
    do_ingest_history(trial, LAYOUT3_HEADER + layout3_rows(3, 20))
    trial.refresh_from_db()
    full = history_payload(trial)
    json.dumps(full, allow_nan=False)
    assert full["cursor"] == trial.rows_stored == 63
    assert full["series"]["epoch_val"]["epoch"] == [0, 1, 2]
    assert full["series"]["epoch_val"]["x"] == [1.0, 2.0, 3.0]
    assert len(full["series"]["train"]["x"]) == 60
    assert [e["epoch"] for e in full["epochs"]] == [0, 1, 2]

    do_ingest_history(trial, LAYOUT3_HEADER + layout3_rows(1, 20, start_index=63))
    trial.refresh_from_db()
    delta = history_payload(trial, after=full["cursor"])
    assert (delta["after"], delta["cursor"]) == (63, 84)
    assert len(delta["series"]["train"]["x"]) == 20
    assert delta["epochs"] == []
    # Smoothing of the delta continues the full curve.
    again = history_payload(trial)
    np.testing.assert_allclose(
        delta["series"]["train_smooth"]["y"], again["series"]["train_smooth"]["y"][-20:], rtol=1e-6
    )


@pytest.mark.django_db
def test_delta_of_later_epochs_keeps_their_place_on_the_x_axis(project):
    """A re-sync from a cursor (or a live batch) of epochs 5-6 is drawn at x in (5, 7],
    exactly where a full reload draws it, not back at the start of the chart."""
    lines = layout3_rows(7, 20).splitlines(keepends=True)
    first, rest = "".join(lines[: 5 * 21]), "".join(lines[5 * 21 :])
    trial = factories.make_experiment(project).trials.get()
    do_ingest_history(trial, LAYOUT3_HEADER + first)
    result = do_ingest_history(trial, LAYOUT3_HEADER + rest, line_offset=5 * 21)
    trial.refresh_from_db()
    delta = history_payload(trial, after=5 * 21)
    full = history_payload(trial)
    xs = delta["series"]["train"]["x"]
    assert min(xs) > 5.0 and max(xs) <= 7.0
    assert xs == full["series"]["train"]["x"][-len(xs) :]
    assert delta["series"]["epoch_val"]["x"] == [6.0, 7.0]
    assert result.completed_epochs == [5, 6]


@pytest.mark.django_db
def test_history_payload_downsamples_long_histories(project):
    trial = factories.make_experiment(project).trials.get()
    text = LAYOUT3_HEADER + layout3_rows(2, 20_000, val_every=3)
    do_ingest_history(trial, text)
    trial.refresh_from_db()
    payload = history_payload(trial, max_points=2000)
    assert payload["downsampled"]
    assert len(payload["series"]["train"]["x"]) <= 2000
    assert len(payload["series"]["val"]["x"]) <= 2000
    assert len(payload["series"]["train_smooth"]["x"]) <= 1000
    train = read_trial_history(trial).train_loss
    assert min(payload["series"]["train"]["y"]) == pytest.approx(np.nanmin(train))
    assert len(json.dumps(payload)) < 200_000


@pytest.mark.django_db
def test_log_payload_from_cursor(project):
    experiment = factories.make_experiment(project)
    trial = experiment.trials.get()
    trial.run_dir.mkdir(parents=True)
    (trial.run_dir / "log.txt").write_text("one\ntwo\n")
    first = log_payload(trial)
    assert (first["text"], first["cursor"]) == ("one\ntwo\n", 8)
    with open(trial.run_dir / "log.txt", "a") as fh:
        fh.write("three\n")
    assert log_payload(trial, after=first["cursor"])["text"] == "three\n"
    small = log_payload(trial, max_bytes=6)
    assert small["truncated"] and small["text"] == "three\n"


def test_nan_is_not_json_number():
    rows = _rows(LAYOUT3_HEADER + "0,0,32,2.0,,\n")
    data = chart_series(rows)
    assert not any(isinstance(v, float) and math.isnan(v) for v in data["series"]["train"]["y"])


@pytest.mark.parametrize(
    "step",
    [
        np.tile(np.r_[np.arange(99), -1], 30),  # iter with epoch-end rows
        np.tile(np.r_[np.arange(1, 99) * 32, 3130, 3130], 30),  # sample_count, short last batch
        np.r_[5, 2**40, -(2**40), np.arange(2000)],  # jumps, then one long run
        np.arange(2),
        np.array([7]),
    ],
)
def test_steps_encode_as_arithmetic_runs_and_round_trip(step):
    n = len(step)
    rows = HistoryArrays(
        np.arange(n), np.zeros(n, np.int64), step, *np.full((3, n), np.nan), step_column="iter"
    )
    blob = encode_chunk(rows)
    np.testing.assert_array_equal(decode_chunk(blob).step, step)
    if n > 100:
        assert len(blob) < n  # a few runs, not 4 bytes a row


@pytest.mark.parametrize("step", [7, 2**40])
def test_chunk_encoding_dense_sparse_and_wide_steps(step):
    n = 1000
    rows = HistoryArrays(
        seq=np.arange(n),
        epoch=np.repeat([3, 4, 9], [300, 300, 400]),
        step=np.random.default_rng(0).integers(0, step, n),  # no runs: plain int32 / int64
        train_loss=np.linspace(1, 2, n),
        val_loss=np.where(np.arange(n) % 10 == 0, 0.5, np.nan),
        epoch_val_loss=np.full(n, np.nan),
        step_column="iter",
    )
    blob = encode_chunk(rows)
    assert len(blob) < n * 8 * 2 + (n * 4 if step == 7 else n * 8)
    back = decode_chunk(blob)
    for col in ("epoch", "step", "train_loss", "val_loss", "epoch_val_loss"):
        np.testing.assert_array_equal(getattr(back, col), getattr(rows, col))
    assert len(decode_chunk(encode_chunk(HistoryArrays.empty()))) == 0
