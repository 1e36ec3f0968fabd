"""Helpers for the job-file tests: write a file, load it, read back the error lines."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bulkgroups.errors import JobFileError, JobFileErrors
from bulkgroups.jobs import load_job


def write(tmp_path: Path, name: str, text: str) -> Path:
    """Write `text` (dedented) to tmp_path/name and return its path."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def failures(*paths: Path) -> list[JobFileError]:
    """The errors loading `paths` raises (the load must fail)."""
    with pytest.raises(JobFileErrors) as caught:
        load_job(*paths)
    return list(caught.value.errors)


def lines(*paths: Path) -> list[str]:
    """The errors as the user sees them (`PATH:LINE: FIELD: message`, or `PATH: FIELD: message`
    for a whole file), the path shortened to its name."""
    return [Path(e.path).name + str(e)[len(e.path) :] for e in failures(*paths)]


def located(*paths: Path) -> list[tuple[str, int | None, str]]:
    """(file name, line, field) of every error, for asserting where without wording; the line is
    None for an error about a whole file."""
    return [(Path(e.path).name, e.line, e.field) for e in failures(*paths)]
