"""Reading a job file's bytes, and the whole-file errors that come with it."""

from __future__ import annotations

import codecs
from pathlib import Path

from .report import FileReport

__all__ = ["decode_line", "is_csv", "read_utf8"]


def decode_line(data: bytes, position: int) -> int:
    """The line of byte `position` of `data`."""
    return data.count(b"\n", 0, position) + 1


def read_utf8(path: str, report: FileReport) -> bytes | None:
    """The file's bytes, checked to be UTF-8 text and cut of a BOM, or None after reporting why
    not (missing, unreadable, not UTF-8, empty)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        report.add(0, "file", "no such file")
        return None
    except IsADirectoryError:
        report.add(0, "file", "is a directory, not a job file")
        return None
    except OSError as exc:
        report.add(0, "file", f"cannot read: {exc.strerror or exc}")
        return None
    # The BOM is cut off by hand: utf-8-sig would report error positions relative to its end.
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        # Decoded only to be checked: the parser reads the bytes (the text is dropped at once).
        blank = data.decode("utf-8").isspace() or not data
    except UnicodeDecodeError as exc:
        report.add(decode_line(data, exc.start), "file", "not UTF-8 text")
        return None
    if blank:
        report.add(1, "file", "the file is empty")
        return None
    return data


def is_csv(path: str) -> bool:
    """A `.csv` extension (any case) selects the CSV format; anything else is YAML."""
    return path.lower().endswith(".csv")
