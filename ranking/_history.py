"""Reading Luminide ``history.csv`` files into one normalised DataFrame.

Layouts accepted (detected from the header line):

1. ``,epoch,iter,train_loss,val_loss`` (a pandas index column first);
2. the same plus ``epoch_val_loss``, with an epoch-end row where ``iter == -1``;
3. ``index,epoch,sample_count,train_loss,val_loss,epoch_val_loss``;
4. epoch-level files with one row per epoch, e.g. ``epoch,train_loss,val_loss``.

The happy path is one call of pyarrow's CSV reader; only when it fails (or a sanity check on
the result fails) a slow line-by-line pass runs to name the offending line and column.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from typing import IO, Literal

import numpy as np
import pandas as pd

__all__ = ["HISTORY_COLUMNS", "read_history"]

#: Columns of the frame returned by :func:`read_history` (``iter`` may be ``sample_count``).
HISTORY_COLUMNS = ("epoch", "iter", "train_loss", "val_loss", "epoch_val_loss")

_INDEX_NAMES = {"", "index", "Unnamed: 0"}
_STEP_NAMES = ("iter", "sample_count")
_FLOAT_NAMES = ("train_loss", "val_loss", "epoch_val_loss")
_KNOWN = {"epoch", *_STEP_NAMES, *_FLOAT_NAMES}
#: Largest epoch / step magnitude accepted: integers up to here are exact in float64.
MAX_INT = 2**53
#: Cells that hold no value (NaN in the frame). A NaN written out ("nan", any spelling)
#: means the run diverged (ARCHITECTURE §3): it is read as +inf, so it cannot be mistaken
#: for a blank cell.
_MISSING_WORDS = {"", "NA", "N/A", "null", "NULL", "None"}


def _source_name(source: object) -> str:
    if isinstance(source, str | os.PathLike):
        return os.path.basename(os.fspath(source)) or "history.csv"
    name = getattr(source, "name", None)
    if isinstance(name, str) and name:
        return os.path.basename(name)
    return "history.csv"


def _read_bytes(
    source: str | os.PathLike[str] | IO[str] | IO[bytes], errors: str = "raise"
) -> bytes:
    """The file's bytes; text that is not valid UTF-8 raises ``ValueError`` naming the
    line, or with ``errors="skip"`` has its bad bytes replaced by U+FFFD.

    Bytes, not text: the fast path hands them to pyarrow without copies, which matters on
    a million rows. Only the line-by-line path decodes.
    """
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as fh:
            raw = fh.read()
    elif hasattr(source, "read"):
        data = source.read()
        raw = data if isinstance(data, bytes) else str(data).encode("utf-8")
    else:
        raise TypeError(
            f"read_history expects a path or a text buffer, got {type(source).__name__}"
        )
    if not raw.isascii():
        try:
            raw.decode("utf-8")  # as strict as reading in text mode
        except UnicodeDecodeError as exc:
            if errors == "skip":
                # A bad byte costs at most its line, not the file: where it sits in a column
                # that is read, that cell is "not a number" and the line is skipped. This is
                # what live ingestion sees too (the tailer decodes with replacement).
                return raw.decode("utf-8", errors="replace").encode("utf-8")
            line = raw.count(b"\n", 0, exc.start) + 1
            raise ValueError(
                f"{_source_name(source)} line {line}: not UTF-8 text (byte "
                f"{raw[exc.start]:#04x}); save it as UTF-8"
            ) from None
    return raw


def _parse_float(cell: str) -> float:
    """Parse one cell like pandas would; raise ValueError for anything else."""
    cell = cell.strip()
    if cell in _MISSING_WORDS:
        return math.nan
    if cell.lstrip("+-").lower().startswith("nan("):
        return math.inf  # C runtimes' "nan(ind)", as pyarrow reads it
    value = float(cell)  # accepts inf, -inf, Infinity, 1e-3, nan in any case and sign
    return math.inf if math.isnan(value) else value  # a written nan: diverged


def read_history(
    source: str | os.PathLike[str] | IO[str],
    *,
    errors: Literal["raise", "skip"] = "raise",
    line_offset: int = 0,
    complete: bool = False,
) -> pd.DataFrame:
    """Read a ``history.csv`` (any Luminide layout) into a normalised DataFrame.

    Args:
        source: A path, or a text buffer (anything with ``read()``), holding the header line
            followed by data lines. A last line without a trailing newline is treated as
            partly written and ignored (it is read next time, once complete).
        errors: ``"raise"`` (default) raises on the first bad data line; ``"skip"`` drops bad
            lines and lists one message per dropped line in ``df.attrs["warnings"]``. Skip
            is the platform's rule: live ingestion and ``python -m ranking score`` both read
            with it, so they keep the same rows and give the same score. With ``"skip"``,
            bytes that are not UTF-8 are replaced by U+FFFD (a line whose read cell then is
            not a number is dropped like any other bad line). A file whose every data line
            is bad gives an empty frame: callers decide whether that is an error.
        line_offset: Added to the line numbers in messages, for callers that pass the header
            plus newly appended lines of a growing file (line 2 of the buffer is reported as
            line ``2 + line_offset``).
        complete: The file is finished (not growing): a last line without a newline is
            read too.

    Returns:
        A DataFrame with columns ``epoch`` (int64), ``iter`` or ``sample_count`` (int64,
        whichever the file has; ``iter = -1`` is synthesised for epoch-level files),
        ``train_loss``, ``val_loss`` and ``epoch_val_loss`` (float64, NaN where blank or
        ``NA``/``null``, +inf where the file says ``nan``: a diverged value; a column the
        file lacks is all NaN). ``df.attrs["warnings"]`` is a list of strings. A
        header with no complete data line gives an empty frame with these columns.

    Raises:
        ValueError: The file is empty, the header lacks ``epoch`` or any validation column,
            or (with ``errors="raise"``) a data line has the wrong number of fields, a
            non-numeric cell, a missing/non-integer epoch or step, or bytes that are not
            UTF-8. The message names the file, the line and the column, e.g.
            ``history.csv line 17, column val_loss: 'abc' is not a number``.
    """
    if errors not in ("raise", "skip"):
        raise ValueError(f"errors must be 'raise' or 'skip', got {errors!r}")
    name = _source_name(source)
    raw = _read_bytes(source, errors)
    if complete and raw and not raw.endswith(b"\n"):
        raw += b"\n"
    end = raw.rfind(b"\n")
    if end < 0:
        raise ValueError(f"{name}: empty file or incomplete header line (no newline)")
    header_end = raw.find(b"\n")
    # utf-8-sig: Excel and PowerShell start a UTF-8 file with a byte-order mark.
    header = [h.strip() for h in raw[:header_end].decode("utf-8-sig").rstrip("\r").split(",")]
    if not any(h for h in header):
        raise ValueError(f"{name} line 1: empty header")
    _check_header(name, header)
    step_cols = [c for c in _STEP_NAMES if c in header]
    body = memoryview(raw)[header_end + 1 : end + 1]  # a partly written last line is left out

    columns = _fast_parse(body, header, step_cols) if len(body) else None
    if columns is None and len(body) and raw.find(b'"', header_end + 1, end + 1) >= 0:
        # pandas quotes an extra column holding a comma, e.g. '"(0.9, 0.999)"'. Quote
        # parsing is slower, so it is tried only when the plain parse failed.
        columns = _fast_parse(body, header, step_cols, quoted=True)
    warnings: list[str] = []
    if columns is None:
        text = str(body, "utf-8")
        columns, warnings = _slow_parse(name, text, header, step_cols, errors, line_offset)
    out = _normalise(columns, step_cols)
    out.attrs["warnings"] = warnings
    return out


def _check_header(name: str, header: Sequence[str]) -> None:
    cols = [h for i, h in enumerate(header) if not (i == 0 and h in _INDEX_NAMES)]
    dup = sorted({c for c in cols if cols.count(c) > 1 and c in _KNOWN})
    if dup:
        raise ValueError(f"{name} line 1: duplicate column(s) {', '.join(dup)}")
    missing = []
    if "epoch" not in cols:
        missing.append("epoch")
    if "val_loss" not in cols and "epoch_val_loss" not in cols:
        missing.append("val_loss (or epoch_val_loss)")
    if missing:
        raise ValueError(
            f"{name} line 1: missing column(s) {', '.join(missing)}; header is "
            f"{','.join(header)!r}, expected e.g. ',epoch,iter,train_loss,val_loss' or "
            "'epoch,train_loss,val_loss'"
        )


def _fast_parse(
    body: memoryview, header: list[str], step_cols: list[str], quoted: bool = False
) -> dict[str, np.ndarray] | None:
    """Parse with pyarrow's CSV reader (all cores) into float64 columns; return None when
    anything looks wrong.

    It refuses a line with the wrong number of fields (blank lines included), which pandas
    would pad or turn into an index; the slow path then names the line.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pa_csv

    names = [h if h in _KNOWN else f"_col{i}" for i, h in enumerate(header)]
    wanted = [h for h in header if h in _KNOWN]
    try:
        table = pa_csv.read_csv(
            pa.BufferReader(pa.py_buffer(body)),
            read_options=pa_csv.ReadOptions(column_names=names),
            parse_options=pa_csv.ParseOptions(
                quote_char='"' if quoted else False, ignore_empty_lines=False
            ),
            convert_options=pa_csv.ConvertOptions(
                include_columns=wanted,  # the index and unknown columns are not converted
                column_types=dict.fromkeys(wanted, pa.float64()),
                null_values=sorted(_MISSING_WORDS),
            ),
        )
    except pa.ArrowInvalid:
        return None
    columns = {c: table.column(c).to_numpy() for c in wanted}  # NaN for blank cells
    for col in _FLOAT_NAMES:
        if col in columns and pc.any(pc.is_nan(table.column(col))).as_py():
            written_nan = pc.is_nan(table.column(col)).fill_null(False).to_numpy()
            columns[col] = np.where(written_nan, np.inf, columns[col])
    for col in ("epoch", *step_cols):
        v = columns[col]
        if not (np.isfinite(v).all() and (v == np.round(v)).all() and (abs(v) <= MAX_INT).all()):
            return None
    return columns


def _slow_parse(
    name: str,
    body: str,
    header: list[str],
    step_cols: list[str],
    errors: str,
    line_offset: int,
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Check every line, naming the first bad one (or skipping bad ones)."""
    idx = {h: i for i, h in enumerate(header) if h in _KNOWN}
    rows: dict[str, list[float]] = {h: [] for h in idx}
    warnings: list[str] = []
    lines = body.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for k, raw in enumerate(lines):
        lineno = k + 2 + line_offset
        line = raw.rstrip("\r")
        msg = None
        cells = next(csv.reader([line])) if '"' in line else line.split(",")
        parsed: dict[str, float] = {}
        if not line.strip():
            continue  # blank lines carry nothing; pandas skips them too
        if len(cells) != len(header):
            msg = f"{name} line {lineno}: expected {len(header)} fields, found {len(cells)}"
        else:
            for col, i in idx.items():
                cell = cells[i]
                try:
                    value = _parse_float(cell)
                except ValueError:
                    msg = f"{name} line {lineno}, column {col}: {cell.strip()!r} is not a number"
                    break
                if col in ("epoch", *step_cols) and not (
                    math.isfinite(value) and value == round(value) and abs(value) <= MAX_INT
                ):
                    if math.isnan(value):
                        what = "missing value (an integer is required)"
                    elif math.isfinite(value) and value == round(value):
                        what = f"{cell.strip()!r} is out of range (at most {MAX_INT:,} either way)"
                    else:
                        what = f"{cell.strip()!r} is not an integer"
                    msg = f"{name} line {lineno}, column {col}: {what}"
                    break
                parsed[col] = value
        if msg is not None:
            if errors == "raise":
                raise ValueError(msg)
            warnings.append(msg)
            continue
        for col in idx:
            rows[col].append(parsed[col])
    return {c: np.asarray(v, dtype=np.float64) for c, v in rows.items()}, warnings


def _normalise(columns: dict[str, np.ndarray], step_cols: list[str]) -> pd.DataFrame:
    """The output frame from the parsed float64 columns (known columns only)."""
    n = len(columns["epoch"])
    out: dict[str, np.ndarray] = {"epoch": columns["epoch"].astype(np.int64)}
    if step_cols:
        for c in step_cols:
            out[c] = columns[c].astype(np.int64)
    else:
        out["iter"] = np.full(n, -1, dtype=np.int64)
    for c in _FLOAT_NAMES:
        out[c] = columns[c] if c in columns else np.full(n, np.nan)
    return pd.DataFrame(out, copy=False)  # arrays nothing else holds: no copy needed
