"""Incremental reading of a growing ``history.csv``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass
class TailChunk:
    """New complete lines of the file, ready for :func:`ranking.read_history`.

    ``text`` is the header line followed by the new data lines; ``line_offset`` is the
    number of data lines before them (so line numbers in parse warnings are file lines).
    """

    text: str
    line_offset: int
    lines: int


class HistoryTailer:
    """Reads the lines appended to a file since the last read, by byte offset.

    A last line without its newline is partly written: it stays in the file and is read
    once complete (or by ``read(final=True)`` after the writer exited).

    A file rewritten as a whole (pandas' ``DataFrame.to_csv`` after every few steps, the
    usual logging idiom; a column such as ``epoch_val_loss`` may appear in a rewrite) is
    taken as the rows already read plus new ones: the first ``data_lines`` rows of the new
    file are skipped, and ``restarted`` says it happened. A rewrite is noticed when the
    header or the last line read is no longer where it was. While the file is shorter than
    what was read (truncated, not written back yet) nothing is read until the writer exits.
    """

    def __init__(self, path: str | os.PathLike[str], max_bytes: int = 64 * 1024 * 1024) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.offset = 0  # bytes consumed (always at a line boundary)
        self.header: str | None = None
        self.data_lines = 0  # data rows handed out
        self.restarted = False
        self._header_raw = b""
        self._last_line = b""  # the last line consumed, to recognise the file next time
        self._skip = 0  # rows of a rewritten file that were handed out before

    @property
    def exists(self) -> bool:
        return self.header is not None or self.path.exists()

    def _unchanged(self, fh, size: int) -> bool:
        """The header and the last line read are still where they were."""
        if size < self.offset:
            return False
        fh.seek(0)
        if fh.read(len(self._header_raw)) != self._header_raw:
            return False
        fh.seek(self.offset - len(self._last_line))
        return fh.read(len(self._last_line)) == self._last_line

    def read(self, *, final: bool = False) -> TailChunk | None:
        """The new complete lines, or None when there are none.

        Args:
            final: The writer has exited: a last line without newline is complete.
        """
        try:
            with open(self.path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if self.offset and not self._unchanged(fh, size):
                    if size < self.offset and not final:
                        return None  # mid-rewrite: truncated, not written back yet
                    self.offset, self.header, self._skip = 0, None, self.data_lines
                    self.restarted = True
                if size == self.offset:
                    return None
                fh.seek(self.offset)
                raw = fh.read(min(size - self.offset, self.max_bytes))
        except FileNotFoundError:
            return None
        end = raw.rfind(b"\n")
        if end < 0:
            if not final:
                return None
            raw += b"\n"
        elif end + 1 < len(raw) and final and len(raw) < self.max_bytes:
            raw += b"\n"
        else:
            raw = raw[: end + 1]
        consumed = min(len(raw), size - self.offset)  # not the newline added at the end
        if self.header is None:
            self._header_raw = raw[: raw.find(b"\n") + 1]
        whole = raw[:consumed]
        self._last_line = whole[whole.rfind(b"\n", 0, len(whole) - 1) + 1 :][-4096:]
        text = raw.decode("utf-8", errors="replace")
        if self.header is None:
            nl = text.find("\n")
            self.header = text[: nl + 1]
            text = text[nl + 1 :]
        self.offset += consumed
        start = 0  # past the rows a rewritten file repeats (text ends with a newline)
        while self._skip and start < len(text):
            start = text.find("\n", start) + 1
            self._skip -= 1
        text = text[start:]
        n = text.count("\n")
        if n == 0:
            return None
        chunk = TailChunk(text=self.header + text, line_offset=self.data_lines, lines=n)
        self.data_lines += n
        return chunk
