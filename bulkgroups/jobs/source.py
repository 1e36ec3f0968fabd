"""Reading a job file, and the errors about a whole file that come with it.

Only regular files are read, through `bulkgroups.files`: a FIFO, a device or a directory (or a
symlink to one) is refused at once instead of being read forever, and a file above
`JOB_FILE_LIMIT` is refused before it is read. Such errors have no line: `PATH: file: message`.
"""

from __future__ import annotations

import codecs
import io
from typing import BinaryIO, Final

from ..files import JOB_FILE_LIMIT, FileRefused, open_regular, read_regular
from .report import FileReport

__all__ = ["decode_line", "is_csv", "open_text", "read_utf8"]


_PIECE: Final = 1024 * 1024


def decode_line(data: bytes, position: int) -> int:
    """The line of byte `position` of `data`."""
    return data.count(b"\n", 0, position) + 1


def _first_non_utf8(data: bytes) -> int | None:
    """The offset of the first byte that is not UTF-8, or None. Checked a piece at a time, cut
    at newlines (never inside a character), so the text is never held whole beside the bytes."""
    view = memoryview(data)
    start = 0
    while start < len(data):
        cut = data.find(b"\n", start + _PIECE)
        end = len(data) if cut < 0 else cut + 1
        try:
            str(view[start:end], "utf-8")
        except UnicodeDecodeError as exc:
            return start + exc.start
        start = end
    return None


def _refused(report: FileReport, error: OSError | FileRefused) -> None:
    if isinstance(error, FileRefused):
        report.add(None, "file", error.reason)
    elif isinstance(error, FileNotFoundError):
        report.add(None, "file", "no such file")
    else:
        report.add(None, "file", f"cannot read: {error.strerror or error}")


def read_utf8(path: str, report: FileReport) -> bytes | None:
    """The file's bytes, checked to be UTF-8 text and cut of a BOM, or None after reporting why
    not (missing, not a regular file, too big, unreadable, not UTF-8, empty)."""
    try:
        data = read_regular(path, limit=JOB_FILE_LIMIT)
    except (OSError, FileRefused) as error:
        _refused(report, error)
        return None
    # The BOM is cut off by hand: utf-8-sig would report error positions relative to its end.
    data = data.removeprefix(codecs.BOM_UTF8)
    bad = _first_non_utf8(data)
    if bad is not None:
        report.add(decode_line(data, bad), "file", "not UTF-8 text")
        return None
    if not data or data.isspace():
        report.add(None, "file", "the file is empty")
        return None
    return data


def open_text(path: str, report: FileReport) -> tuple[BinaryIO, io.TextIOWrapper] | None:
    """The file opened for streaming as UTF-8 text (BOM allowed, newlines kept for the CSV
    reader), with its binary handle (to find a line that is not UTF-8), or None after reporting
    why not. Closing the text closes both."""
    try:
        raw = open_regular(path, limit=JOB_FILE_LIMIT)
    except (OSError, FileRefused) as error:
        _refused(report, error)
        return None
    return raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")


def is_csv(path: str) -> bool:
    """A `.csv` extension (any case) selects the CSV format; anything else is YAML."""
    return path.lower().endswith(".csv")
