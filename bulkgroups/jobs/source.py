"""Reading a job file's bytes, and the whole-file errors that come with it."""

from __future__ import annotations

import codecs
from pathlib import Path

from .report import FileReport

__all__ = ["decode_line", "is_csv", "read_text"]


def decode_line(data: bytes, position: int) -> int:
    """The line of byte `position` of `data`."""
    return data.count(b"\n", 0, position) + 1


def read_text(path: str, report: FileReport) -> str | None:
    """The file's text (UTF-8, BOM allowed), or None after reporting why not."""
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
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        report.add(decode_line(data, exc.start), "file", "not UTF-8 text")
        return None
    if text.strip() == "":
        report.add(1, "file", "the file is empty")
        return None
    return text


def is_csv(path: str) -> bool:
    """A `.csv` extension (any case) selects the CSV format; anything else is YAML."""
    return path.lower().endswith(".csv")
