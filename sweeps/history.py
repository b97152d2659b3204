"""Stored training history: the chunk encoding, reading rows back, and chart data.

Storage: a :class:`~sweeps.models.HistoryChunk` holds consecutive rows of one trial,
column-wise in one compact blob (see :func:`encode_chunk`). Decoding is
``numpy.frombuffer`` per column plus a scatter for sparse columns (no parsing), so reading
back a million rows takes milliseconds; float64 keeps values exactly as parsed.

Chart data are pure functions of arrays (no Plotly, no Django) plus
:func:`history_payload`, the one JSON document the experiment page and the re-sync endpoint
serve.
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

#: Rows per stored chunk at most (a live tail stores one smaller chunk per read).
CHUNK_ROWS = 65_536
#: Exponential smoothing of the training loss (``span`` rows; alpha = 2 / (span + 1)).
SMOOTHING_SPAN = 20
STEP_COLUMNS = ("iter", "sample_count")

_MAGIC = b"LHC2"
_HEADER = struct.Struct("<4sIB3x")  # magic, row count, step column (index in STEP_COLUMNS)
_SECTION = struct.Struct("<BI")  # encoding tag, element count
_STEP_RUNS = 1  # step section tag for arithmetic runs (4 and 8: plain int32 / int64)
_INT_COLS = ("epoch", "step")
_FLOAT_COLS = ("train_loss", "val_loss", "epoch_val_loss")


@dataclass
class HistoryArrays:
    """Consecutive history rows of one trial, one numpy array per column.

    ``seq`` numbers the rows (0-based, per trial). ``step`` is the file's ``iter`` or
    ``sample_count`` column (named by ``step_column``); NaN means a blank cell.
    """

    seq: np.ndarray
    epoch: np.ndarray
    step: np.ndarray
    train_loss: np.ndarray
    val_loss: np.ndarray
    epoch_val_loss: np.ndarray
    step_column: str = "iter"

    def __len__(self) -> int:
        return len(self.seq)

    @classmethod
    def empty(cls, step_column: str = "iter") -> HistoryArrays:
        i, f = np.empty(0, np.int64), np.empty(0, np.float64)
        return cls(i, i, i, f, f, f, step_column)

    @classmethod
    def from_frame(cls, df, first_seq: int = 0) -> HistoryArrays:
        """From a :func:`ranking.read_history` frame; rows numbered from ``first_seq``."""
        step_column = "sample_count" if "sample_count" in df.columns else "iter"
        n = len(df)
        return cls(
            seq=np.arange(first_seq, first_seq + n, dtype=np.int64),
            epoch=df["epoch"].to_numpy(np.int64),
            step=df[step_column].to_numpy(np.int64),
            train_loss=df["train_loss"].to_numpy(np.float64),
            val_loss=df["val_loss"].to_numpy(np.float64),
            epoch_val_loss=df["epoch_val_loss"].to_numpy(np.float64),
            step_column=step_column,
        )

    def to_frame(self):
        """A DataFrame shaped like :func:`ranking.read_history`'s (for the ranker)."""
        import pandas as pd

        return pd.DataFrame(
            {
                "epoch": self.epoch,
                self.step_column: self.step,
                "train_loss": self.train_loss,
                "val_loss": self.val_loss,
                "epoch_val_loss": self.epoch_val_loss,
            },
            copy=False,  # the ranker only reads it
        )

    def slice(self, sl: slice | np.ndarray) -> HistoryArrays:
        return HistoryArrays(
            self.seq[sl],
            self.epoch[sl],
            self.step[sl],
            self.train_loss[sl],
            self.val_loss[sl],
            self.epoch_val_loss[sl],
            self.step_column,
        )

    @functools.cached_property
    def end_mask(self) -> np.ndarray:
        """Epoch-end rows: they carry ``epoch_val_loss`` (layouts 2-3) or ``iter == -1``.

        Computed once: an ingest asks several times, and the arrays are never modified.
        """
        return ~np.isnan(self.epoch_val_loss) | (self.step == -1)

    @classmethod
    def concat(cls, parts: Sequence[HistoryArrays], step_column: str = "iter") -> HistoryArrays:
        if not parts:
            return cls.empty(step_column)
        if len(parts) == 1:
            return parts[0]
        return cls(
            *(
                np.concatenate([getattr(p, c) for p in parts])
                for c in ("seq", *_INT_COLS, *_FLOAT_COLS)
            ),
            step_column=parts[0].step_column,
        )


def _pack_floats(parts: list[bytes], values: np.ndarray) -> None:
    present = np.flatnonzero(~np.isnan(values))
    if len(present) * 12 < len(values) * 8:  # sparse: mostly blank (validation columns)
        parts.append(_SECTION.pack(1, len(present)))
        parts.append(present.astype("<u4").tobytes())
        parts.append(np.ascontiguousarray(values[present], dtype="<f8").tobytes())
    else:
        parts.append(_SECTION.pack(0, len(values)))
        parts.append(np.ascontiguousarray(values, dtype="<f8").tobytes())


def _pack_steps(parts: list[bytes], step: np.ndarray) -> None:
    n = len(step)
    if n >= 2:
        # Runs of equal differences: run k starts at row starts[k] with step first[k] and
        # grows by delta[k] per row (a row after a jump starts a new run).
        d = np.diff(step)
        starts = np.concatenate(([0], np.flatnonzero(d[1:] != d[:-1]) + 1))
        if len(starts) * 20 < n * 4:
            delta = d[starts]
            parts.append(_SECTION.pack(_STEP_RUNS, len(starts)))
            parts.append(starts.astype("<u4").tobytes())
            parts.append(step[starts].astype("<i8").tobytes())
            parts.append(delta.astype("<i8").tobytes())
            return
    wide = n > 0 and (step.min() < -(2**31) or step.max() >= 2**31)
    parts.append(_SECTION.pack(8 if wide else 4, n))
    parts.append(step.astype("<i8" if wide else "<i4").tobytes())


def _unpack_steps(tag: int, count: int, take, n: int) -> np.ndarray:
    if tag != _STEP_RUNS:
        return take("<i8" if tag == 8 else "<i4", n).astype(np.int64)
    starts = take("<u4", count).astype(np.int64)
    first, delta = take("<i8", count), take("<i8", count)
    lengths = np.diff(np.append(starts, n))
    within = np.arange(n) - np.repeat(starts, lengths)
    return np.repeat(first, lengths) + np.repeat(delta, lengths) * within


def encode_chunk(rows: HistoryArrays) -> bytes:
    """Encode rows as one blob (little-endian, column after column).

    Header (magic, row count, step column); ``epoch`` run-length encoded (it changes once
    per epoch); ``step`` as arithmetic runs (``iter`` and ``sample_count`` grow by a fixed
    amount within an epoch), else int32 (int64 when out of range); each loss column dense
    float64, or sparse (uint32 row indices + float64 values) when most cells are blank, as
    validation columns are. Values round-trip exactly; a 1M-row layout-3 history takes ~9 MB
    (the database write, not the encoding, is what costs on a bulk ingest).
    """
    n = len(rows)
    kind = STEP_COLUMNS.index(rows.step_column)
    epoch = np.asarray(rows.epoch, dtype=np.int64)
    starts = np.flatnonzero(np.diff(epoch, prepend=epoch[:1] - 1)) if n else np.empty(0, np.int64)
    lengths = np.diff(np.append(starts, n))
    parts = [
        _HEADER.pack(_MAGIC, n, kind),
        _SECTION.pack(0, len(starts)),
        epoch[starts].astype("<i8").tobytes(),
        lengths.astype("<u4").tobytes(),
    ]
    _pack_steps(parts, np.asarray(rows.step, dtype=np.int64))
    for values in (rows.train_loss, rows.val_loss, rows.epoch_val_loss):
        _pack_floats(parts, np.asarray(values, dtype=np.float64))
    return b"".join(parts)


def decode_chunk(blob: bytes | memoryview, first_seq: int = 0) -> HistoryArrays:
    """Inverse of :func:`encode_chunk`."""
    magic, n, kind = _HEADER.unpack_from(blob, 0)
    if magic != _MAGIC:
        raise ValueError(f"not a history chunk (magic {magic!r})")
    off = _HEADER.size

    def take(dtype: str, count: int) -> np.ndarray:
        nonlocal off
        arr = np.frombuffer(blob, dtype=dtype, count=count, offset=off)
        off += arr.nbytes
        return arr

    def section() -> tuple[int, int]:
        nonlocal off
        tag, count = _SECTION.unpack_from(blob, off)
        off += _SECTION.size
        return tag, count

    _, runs = section()
    values, lengths = take("<i8", runs), take("<u4", runs)
    epoch = np.repeat(values, lengths.astype(np.int64))
    step = _unpack_steps(*section(), take, n)
    floats = []
    for _ in range(3):
        tag, count = section()
        if tag == 0:
            floats.append(take("<f8", count))
        else:
            col = np.full(n, np.nan)
            idx = take("<u4", count)
            col[idx] = take("<f8", count)
            floats.append(col)
    return HistoryArrays(
        np.arange(first_seq, first_seq + n, dtype=np.int64),
        epoch,
        step,
        *floats,
        step_column=STEP_COLUMNS[kind],
    )


def read_trial_history(
    trial, after: int | None = None, *, min_epoch: int | None = None
) -> HistoryArrays:
    """Stored rows of ``trial`` with ``seq >= after`` (all rows when ``after`` is None).

    Args:
        trial: A :class:`~sweeps.models.Trial` (or its id).
        after: A cursor: the number of rows the caller already has.
        min_epoch: Only chunks that may hold rows of this epoch or later (rows of earlier
            epochs inside those chunks are kept; filter if needed).
    """
    from sweeps.models import HistoryChunk

    trial_id = getattr(trial, "pk", trial)
    qs = HistoryChunk.objects.filter(trial_id=trial_id).order_by("first_seq")
    start = after or 0
    if start:
        # Chunks ending after the cursor: first_seq + row_count > start.
        from django.db.models import F

        qs = qs.alias(end=F("first_seq") + F("row_count")).filter(end__gt=start)
    if min_epoch is not None:
        qs = qs.filter(last_epoch__gte=min_epoch)
    parts = []
    for first_seq, blob in qs.values_list("first_seq", "data").iterator(chunk_size=16):
        part = decode_chunk(bytes(blob) if isinstance(blob, memoryview) else blob, first_seq)
        if start > first_seq:
            part = part.slice(slice(start - first_seq, None))
        parts.append(part)
    return HistoryArrays.concat(parts)


# ---------------------------------------------------------------------------------------
# Pure chart-data functions
# ---------------------------------------------------------------------------------------


def _run_starts(values: np.ndarray) -> np.ndarray:
    """Indices where a new run of equal values starts (values sorted or grouped)."""
    if len(values) == 0:
        return np.empty(0, np.int64)
    return np.flatnonzero(np.diff(values, prepend=values[0] - 1))


def epoch_lengths(rows: HistoryArrays) -> dict[int, float]:
    """Steps in each epoch: max ``iter`` + 1, or max ``sample_count``, over its rows."""
    body = ~rows.end_mask
    if not body.any():
        return {}
    epochs, steps = rows.epoch[body], rows.step[body].astype(np.float64)
    if rows.step_column == "iter":
        steps = steps + 1
    if len(epochs) > 1 and (np.diff(epochs) < 0).any():
        order = np.argsort(epochs, kind="stable")
        e_sorted, s_sorted = epochs[order], steps[order]
    else:
        e_sorted, s_sorted = epochs, steps
    start = _run_starts(e_sorted)
    uniq = e_sorted[start]
    maxima = np.maximum.reduceat(s_sorted, start)
    return {int(e): float(m) for e, m in zip(uniq, maxima, strict=True)}


def fractional_epoch(
    rows: HistoryArrays,
    *,
    first_epoch: int | None = None,
    lengths: dict[int, float] | None = None,
) -> np.ndarray:
    """x position of each row in epochs completed: epoch k spans ``(k, k + 1]``.

    A row at step s of epoch e is at ``(e - first_epoch) + s / length(e)``; epoch-end rows
    are at the end of their epoch. An epoch still running (no end row yet, or the last epoch)
    is measured with the previous epoch's length when that is longer than what it has seen
    so far, so a live curve does not stretch and then shrink.

    Args:
        rows: The rows to place.
        first_epoch: The trial's first epoch number (0 or 1 usually); default: min of rows.
        lengths: Known epoch lengths (e.g. of earlier rows not in ``rows``); merged with the
            lengths measured in ``rows``.
    """
    if len(rows) == 0:
        return np.empty(0, np.float64)
    e0 = int(rows.epoch.min()) if first_epoch is None else first_epoch
    known = dict(lengths or {})
    for e, m in epoch_lengths(rows).items():
        known[e] = max(m, known.get(e, 0.0))
    closed = set(rows.epoch[rows.end_mask].tolist())
    ordered = sorted(known)
    for i, e in enumerate(ordered):
        if e not in closed and i > 0:
            known[e] = max(known[e], known[ordered[i - 1]])
    k = (rows.epoch - e0).astype(np.float64)
    steps = rows.step.astype(np.float64) + (1.0 if rows.step_column == "iter" else 0.0)
    if len(rows) > 1 and (np.diff(rows.epoch) < 0).any():
        uniq, inverse = np.unique(rows.epoch, return_inverse=True)
        length = np.array([known.get(int(e), 0.0) for e in uniq])[inverse]
    else:  # rows in epoch order (the usual case): no sort
        start = _run_starts(rows.epoch)
        counts = np.diff(np.append(start, len(rows)))
        length = np.repeat([known.get(int(e), 0.0) for e in rows.epoch[start]], counts)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(length > 0, np.clip(steps / length, 0.0, 1.0), 1.0)
    frac = np.where(rows.end_mask, 1.0, frac)
    return k + frac


def ema(values: np.ndarray, span: int = SMOOTHING_SPAN, seed: float | None = None) -> np.ndarray:
    """Exponential moving average (``adjust=False``); ``seed`` is the value before ``values``.

    Seeding with the last smoothed value makes incremental smoothing of appended rows equal
    to smoothing the whole series at once.
    """
    import pandas as pd

    if len(values) == 0:
        return np.empty(0, np.float64)
    if seed is None or not math.isfinite(seed):
        return pd.Series(values).ewm(span=span, adjust=False).mean().to_numpy()
    padded = np.concatenate([[seed], values])
    return pd.Series(padded).ewm(span=span, adjust=False).mean().to_numpy()[1:]


def minmax_downsample(
    x: np.ndarray, y: np.ndarray, max_points: int
) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` points keeping each bucket's minimum and maximum (in x order).

    The series is cut into ``max_points // 2`` buckets of consecutive points; each bucket
    keeps its smallest and largest y (NaN ignored, +-inf counted as extremes), so spikes and
    dips stay visible however long the curve is.
    """
    n = len(x)
    if n <= max_points or max_points < 2:
        return x, y
    buckets = max_points // 2
    size = math.ceil(n / buckets)
    pad = buckets * size - n
    ylo = np.concatenate([np.where(np.isnan(y), np.inf, y), np.full(pad, np.inf)])
    yhi = np.concatenate([np.where(np.isnan(y), -np.inf, y), np.full(pad, -np.inf)])
    base = np.arange(buckets) * size
    imin = base + np.argmin(ylo.reshape(buckets, size), axis=1)
    imax = base + np.argmax(yhi.reshape(buckets, size), axis=1)
    keep = np.unique(np.concatenate([imin, imax]))
    keep = keep[keep < n]
    return x[keep], y[keep]


def mean_downsample(x: np.ndarray, y: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` points: the mean x and y of consecutive buckets (smooth curves)."""
    n = len(x)
    if n <= max_points or max_points < 1:
        return x, y
    edges = np.linspace(0, n, max_points + 1).astype(np.int64)
    starts = edges[:-1][np.diff(edges) > 0]
    counts = np.diff(np.append(starts, n))
    return np.add.reduceat(x, starts) / counts, np.add.reduceat(y, starts) / counts


def _round_sig(y: np.ndarray, digits: int = 7) -> list:
    """Values rounded to ``digits`` significant digits (short JSON); None where not finite."""
    y = np.asarray(y, dtype=np.float64)
    finite = np.isfinite(y)
    out = np.zeros_like(y)
    if finite.any():
        v = y[finite]
        with np.errstate(divide="ignore"):
            mag = np.floor(np.log10(np.abs(v), where=v != 0, out=np.zeros_like(v)))
        scale = 10.0 ** (digits - 1 - mag)
        out[finite] = np.round(v * scale) / scale
    values = out.tolist()
    if not finite.all():
        for i in np.flatnonzero(~finite).tolist():
            values[i] = None
    return values


def _series(x: np.ndarray, y: np.ndarray) -> dict[str, list]:
    return {"x": np.round(np.asarray(x, dtype=np.float64), 5).tolist(), "y": _round_sig(y)}


def nonfinite_label(v: float) -> str:
    return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")


def chart_series(
    rows: HistoryArrays,
    *,
    first_epoch: int | None = None,
    lengths: dict[int, float] | None = None,
    smooth_seed: float | None = None,
    max_points: int | None = None,
) -> dict:
    """Chart data of ``rows``: the ``series`` and ``nonfinite`` parts of :func:`history_payload`."""
    x = fractional_epoch(rows, first_epoch=first_epoch, lengths=lengths)
    end = rows.end_mask
    body = ~end
    losses_blank = np.isnan(rows.train_loss) & np.isnan(rows.val_loss)
    # A body row with no loss at all is a diverged step: pandas' to_csv writes a NaN loss as
    # a blank cell (a written "nan" is read as inf already, see ranking.read_history).
    diverged_nan = body & losses_blank & np.isnan(rows.epoch_val_loss)

    # End rows too: in a file with one row per epoch they are the only train losses.
    t_mask = ~np.isnan(rows.train_loss)
    v_mask = ~np.isnan(rows.val_loss)
    ev_mask = ~np.isnan(rows.epoch_val_loss)
    tx, ty = x[t_mask], rows.train_loss[t_mask]
    finite_t = np.isfinite(ty)
    sx, sy = tx[finite_t], ema(ty[finite_t], seed=smooth_seed)
    vx, vy = x[v_mask], rows.val_loss[v_mask]
    ex, ey = x[ev_mask], rows.epoch_val_loss[ev_mask]
    epochs = rows.epoch[ev_mask]

    nonfinite: list[dict] = []
    for name, xs, ys in (("train", tx, ty), ("val", vx, vy), ("epoch_val", ex, ey)):
        bad = ~np.isfinite(ys)
        for xv, yv in zip(xs[bad][:50], ys[bad][:50], strict=True):
            nonfinite.append(
                {"series": name, "x": round(float(xv), 5), "value": nonfinite_label(float(yv))}
            )
    for xv in x[diverged_nan][:50]:
        nonfinite.append({"series": "train", "x": round(float(xv), 5), "value": "nan"})

    downsampled = False
    if max_points:
        if len(tx) > max_points or len(vx) > max_points or len(sx) > max_points:
            downsampled = True
        tx, ty = minmax_downsample(tx, ty, max_points)
        vx, vy = minmax_downsample(vx, vy, max_points)
        sx, sy = mean_downsample(sx, sy, max_points // 2)
    epoch_val = _series(ex, ey)
    epoch_val["epoch"] = [int(e) for e in epochs]
    return {
        "series": {
            "train": _series(tx, ty),
            "train_smooth": _series(sx, sy),
            "val": _series(vx, vy),
            "epoch_val": epoch_val,
        },
        "nonfinite": nonfinite,
        "downsampled": downsampled,
        "smooth_last": float(sy[-1]) if len(sy) and not downsampled else None,
    }


def json_float(v: float | None) -> float | str | None:
    """A float for JSON: None stays None, NaN/inf become the strings "nan", "inf", "-inf"."""
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else nonfinite_label(v)


def history_payload(trial, after: int | None = None, max_points: int = 4000) -> dict:
    """Chart data of one trial as a JSON-safe dict (the experiment page and its re-sync).

    Args:
        trial: A :class:`~sweeps.models.Trial`.
        after: A cursor (rows the client already has) to get only newer rows, or None for the
            whole history.
        max_points: Cap per series; longer series are downsampled keeping each bucket's
            minimum and maximum (train, val) or bucket means (smoothed train).

    Returns:
        ``{"experiment": int, "trial": int (number), "trial_id": int, "state": str,
        "after": int, "cursor": int, "total_rows": int, "step_column": "iter"|"sample_count",
        "downsampled": bool,
        "series": {"train": {"x": [...], "y": [...]}, "train_smooth": {...},
        "val": {...}, "epoch_val": {"x": [...], "y": [...], "epoch": [...]}},
        "nonfinite": [{"series": "train"|"val"|"epoch_val", "x": float,
        "value": "nan"|"inf"|"-inf"}, ...],
        "epochs": [{"epoch": int, "train_loss": f, "val_loss": f, "score": f}, ...]}``.

        ``x`` is the fractional epoch (epochs completed, epoch k spans (k, k+1]); ``y``
        values are numbers, or null where the value is NaN/inf (listed in ``nonfinite``, at
        most 50 per series, so the chart can mark divergence). ``cursor`` is the ``after``
        to send next time. In ``epochs``, scalar floats use :func:`json_float` (null when
        unknown, "nan"/"inf" strings when non-finite); it is only filled when ``after`` is
        None.
    """
    start = after or 0
    # Ingestion keeps the chart state under metadata["history"] (see do_ingest_history).
    meta = (trial.metadata or {}).get("history") or {}
    first_epoch = meta.get("first_epoch")
    lengths = {int(e): float(n) for e, n in meta.get("epoch_lengths", {}).items()}
    seed = None
    warm = 0
    if start:
        # Smooth the new rows seeded by the older ones: re-read a warm-up window.
        warm = min(start, SMOOTHING_SPAN * 10)
    rows = read_trial_history(trial, after=start - warm if start else None)
    if warm:
        older, rows = rows.slice(slice(None, warm)), rows.slice(slice(warm, None))
        for e, n in epoch_lengths(older).items():
            lengths[e] = max(n, lengths.get(e, 0.0))
        t = older.train_loss[~older.end_mask]
        t = t[np.isfinite(t)]
        seed = float(ema(t)[-1]) if len(t) else None
    data = chart_series(
        rows, first_epoch=first_epoch, lengths=lengths, smooth_seed=seed, max_points=max_points
    )
    data.pop("smooth_last", None)
    epochs = []
    if after is None:
        epochs = [
            {
                "epoch": e.epoch,
                "train_loss": json_float(e.train_loss),
                "val_loss": json_float(e.val_loss),
                "score": json_float(e.score),
            }
            for e in trial.epochs.order_by("epoch")
        ]
    return {
        "experiment": trial.experiment_id,
        "trial": trial.number,
        "trial_id": trial.pk,
        "state": trial.state,
        "after": start,
        "cursor": start + len(rows),
        "total_rows": trial.rows_stored,
        "step_column": rows.step_column if len(rows) else meta.get("step_column", "iter"),
        **data,
        "epochs": epochs,
    }


def log_payload(trial, after: int = 0, max_bytes: int = 256 * 1024) -> dict:
    """The trial's ``log.txt`` from byte ``after`` (re-sync for ``log.lines`` events).

    Returns ``{"trial": int, "offset": int, "cursor": int, "text": str, "truncated": bool}``:
    ``text`` is the log from ``offset`` to ``cursor`` (at most ``max_bytes``; when the log is
    longer only its tail is sent and ``truncated`` is true). ``cursor`` is the next ``after``.
    """
    path = trial.run_dir / "log.txt"
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return {"trial": trial.number, "offset": 0, "cursor": 0, "text": "", "truncated": False}
    offset = max(0, min(after, size))
    truncated = size - offset > max_bytes
    if truncated:
        offset = size - max_bytes
    with open(path, "rb") as fh:
        fh.seek(offset)
        raw = fh.read(size - offset)
    return {
        "trial": trial.number,
        "offset": offset,
        "cursor": offset + len(raw),
        "text": raw.decode("utf-8", errors="replace"),
        "truncated": truncated,
    }


def epoch_summaries(rows: HistoryArrays, epochs: Iterable[int]) -> dict[int, tuple[float, float]]:
    """(mean train loss, validation loss) of each epoch in ``epochs``, from its rows.

    Validation loss is the epoch-end ``epoch_val_loss`` when the file has one, else the mean
    of the epoch's validation-minibatch losses. NaN when the epoch has no such values.
    """
    import pandas as pd

    wanted = list(epochs)
    if not wanted:
        return {}
    if len(rows) and not (np.diff(rows.epoch) < 0).any():
        return _epoch_summaries_sorted(rows, wanted)
    sel = np.isin(rows.epoch, wanted)
    end = rows.end_mask[sel]
    df = pd.DataFrame(
        {
            "epoch": rows.epoch[sel],
            "train": np.where(end, np.nan, rows.train_loss[sel]),
            "end_train": np.where(end, rows.train_loss[sel], np.nan),
            "val": rows.val_loss[sel],
            "epoch_val": np.where(end, rows.epoch_val_loss[sel], np.nan),
        }
    )
    grouped = df.groupby("epoch", sort=True)
    train, val, epoch_val = (
        grouped["train"].mean().fillna(grouped["end_train"].mean()),
        grouped["val"].mean(),
        grouped["epoch_val"].last(),
    )
    out: dict[int, tuple[float, float]] = {}
    for e in wanted:
        if e not in train.index:
            out[int(e)] = (math.nan, math.nan)
            continue
        ev = float(epoch_val[e])
        out[int(e)] = (float(train[e]), ev if not math.isnan(ev) else float(val[e]))
    return out


def _epoch_summaries_sorted(
    rows: HistoryArrays, wanted: list[int]
) -> dict[int, tuple[float, float]]:
    """epoch_summaries for rows in epoch order: one reduceat per column, no pandas."""
    epoch = rows.epoch
    starts = np.flatnonzero(np.diff(epoch, prepend=epoch[0] - 1))
    uniq = epoch[starts]
    end = rows.end_mask

    def means(values: np.ndarray) -> np.ndarray:
        present = ~np.isnan(values)
        total = np.add.reduceat(np.where(present, values, 0.0), starts)
        count = np.add.reduceat(present, starts, dtype=np.int64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / np.maximum(count, 1), np.nan)

    train = means(np.where(end, np.nan, rows.train_loss))
    missing = np.isnan(train)
    if missing.any():  # an epoch known only by its end row (one row per epoch): its train loss
        train = np.where(missing, means(np.where(end, rows.train_loss, np.nan)), train)
    val = means(rows.val_loss)
    ev_values = np.where(end, rows.epoch_val_loss, np.nan)
    has_ev = ~np.isnan(ev_values)
    # The last epoch-end value of each epoch: index of the last present cell per segment.
    idx = np.where(has_ev, np.arange(len(ev_values)), -1)
    last = np.maximum.reduceat(idx, starts)
    epoch_val = np.where(last >= 0, ev_values[np.maximum(last, 0)], np.nan)
    position = {int(e): i for i, e in enumerate(uniq)}
    out: dict[int, tuple[float, float]] = {}
    for e in wanted:
        i = position.get(int(e))
        if i is None:
            out[int(e)] = (math.nan, math.nan)
        else:
            v = float(epoch_val[i]) if not math.isnan(epoch_val[i]) else float(val[i])
            out[int(e)] = (float(train[i]), v)
    return out
