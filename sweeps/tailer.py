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
    once complete (or by ``read(final=True)`` after the writer exited). A file that shrinks
    (rewritten from the start) is read again from the beginning; ``restarted`` says so.
    """

    def __init__(self, path: str | os.PathLike[str], max_bytes: int = 64 * 1024 * 1024) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.offset = 0  # bytes consumed (always at a line boundary)
        self.header: str | None = None
        self.data_lines = 0
        self.restarted = False

    @property
    def exists(self) -> bool:
        return self.header is not None or self.path.exists()

    def read(self, *, final: bool = False) -> TailChunk | None:
        """The new complete lines, or None when there are none.

        Args:
            final: The writer has exited: a last line without newline is complete.
        """
        try:
            with open(self.path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if size < self.offset:
                    self.offset, self.header, self.data_lines = 0, None, 0
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
        consumed = len(raw)
        if self.offset + consumed > size:  # the newline added for a final partial line
            consumed = size - self.offset
        text = raw.decode("utf-8", errors="replace")
        if self.header is None:
            nl = text.find("\n")
            self.header = text[: nl + 1]
            text = text[nl + 1 :]
        self.offset += consumed
        n = text.count("\n")
        if n == 0:
            return None
        chunk = TailChunk(text=self.header + text, line_offset=self.data_lines, lines=n)
        self.data_lines += n
        return chunk
