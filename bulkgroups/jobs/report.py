"""The located errors of one job file, collected rather than raised: a user should fix every
mistake of a file in one go, and a broken million-row export must not flood the terminal."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from ..errors import JobFileError

__all__ = ["MAX_ERRORS_PER_FILE", "QUOTE_LIMIT", "FileReport", "quote"]

MAX_ERRORS_PER_FILE: Final = 1000
QUOTE_LIMIT: Final = 80


def quote(value: object) -> str:
    """A value quoted for a message: at most QUOTE_LIMIT characters of it, escapes shown."""
    if isinstance(value, str):
        shown = repr(value[:QUOTE_LIMIT])
        return shown + "..." if len(value) > QUOTE_LIMIT else shown
    text = repr(value)
    return text[:QUOTE_LIMIT] + "..." if len(text) > QUOTE_LIMIT else text


@dataclass(slots=True)
class FileReport:
    """The errors of one file, capped; a cap keeps counting so the summary is exact."""

    path: str
    errors: list[JobFileError] = field(default_factory=list)
    dropped: int = 0

    def add(self, line: int | None, field_name: str, message: str) -> None:
        """One error at `line`; None for one about the whole file (missing, a FIFO, empty)."""
        if len(self.errors) < MAX_ERRORS_PER_FILE:
            self.errors.append(JobFileError(self.path, line, field_name, message))
        else:
            self.dropped += 1

    def clear(self) -> None:
        """Forget every error so far (a file found unreadable after all reports only that)."""
        self.errors.clear()
        self.dropped = 0

    def finish(self) -> list[JobFileError]:
        """The errors, whole-file ones first, then by line; the count of the rest last."""
        errors = sorted(self.errors, key=lambda e: (e.line is not None, e.line or 0))
        if self.dropped:
            errors.append(
                JobFileError(self.path, None, "file", f"... and {self.dropped} more errors")
            )
        return errors
