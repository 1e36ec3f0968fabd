"""Where a generated file goes (`export`, `undo`, `plan --out`): standard output, or a path
written whole.

A job file half written is worse than none (applied, it would remove everyone it lost), so a path
is written through a temporary file beside it and renamed into place only once complete; an
existing path must be a regular file (a FIFO or `/dev/full` is refused before anything is read
or sent), in a directory that exists.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from .errors import UsageError
from .files import FileRefused, check_appendable

__all__ = ["Write", "check_output_path", "write_output"]

Write = Callable[[bytes], object]


def check_output_path(path: str, *, what: str = "the job file") -> None:
    """Refuse at once a path that exists and is not a regular file, or whose directory does not
    exist: found only when the file is written, it would cost everything read before (an export
    of thousands of chats at 1/s takes hours)."""
    try:
        check_appendable(path)
    except FileRefused as refused:
        raise UsageError(f"{path}: cannot write {what} there: {refused.reason}") from None
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UsageError(f"{path}: cannot write {what} there: no directory {directory}")


def write_output(
    path: str | os.PathLike[str], body: Callable[[Write], None], *, what: str = "the job file"
) -> None:
    """Write what `body` writes to `path`, atomically (`UsageError` naming it on failure)."""
    path = os.fspath(path)
    check_output_path(path, what=what)
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    try:
        with tmp.open("wb") as out:
            body(out.write)
        os.replace(tmp, target)
    except OSError as error:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise UsageError(f"{path}: cannot write {what}: {error.strerror}") from error
