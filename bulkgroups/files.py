"""Only regular files of bounded size: what bulkgroups reads (job files, plan files, the ledger, an
API key file) and what it appends to (the ledger).

A path that is a FIFO, a terminal, `/dev/zero` or `/dev/full` (or a symlink to one) would be read
forever or block the process before any signal handler can run: opening a FIFO for reading waits
for a writer. So every file is opened with `O_NONBLOCK` (which makes that open return at once),
checked with `fstat` on the descriptor that is then read (no window between the check and the
use), and refused unless it is a regular file. Each kind of file has a size bound, so a file
that is not what it claims to be is refused with a clear message instead of filling memory.

Callers turn `FileRefused` into their own error (a job file's `PATH:LINE: file: ...`, a usage error
for the ledger or a plan file); `FileNotFoundError` propagates unchanged, because a missing ledger
is an empty one while a missing job file is an error.

This module is a leaf: it imports nothing from the package.
"""

from __future__ import annotations

import fcntl
import os
import stat
from typing import BinaryIO, Final

__all__ = [
    "JOB_FILE_LIMIT",
    "KEY_FILE_LIMIT",
    "LEDGER_LIMIT",
    "PLAN_FILE_LIMIT",
    "FileRefused",
    "check_appendable",
    "open_regular",
    "read_regular",
    "sync_entry",
]

_MIB: Final = 1024 * 1024
# A million-operation CSV job is about 60 MB; YAML jobs are held whole while parsed.
JOB_FILE_LIMIT: Final = 512 * _MIB
# A saved plan of a million operations is about 150 MB of JSON.
PLAN_FILE_LIMIT: Final = 1024 * _MIB
# Ledgers are streamed, never held whole: the bound only guards against a file that is not one.
LEDGER_LIMIT: Final = 64 * 1024 * _MIB
KEY_FILE_LIMIT: Final = 64 * 1024


class FileRefused(Exception):
    """The path exists but is not a regular file of acceptable size; `reason` is fit for a user
    and does not repeat the path (callers put it where their messages want it)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _size_text(limit: int) -> str:
    if limit >= _MIB:
        return f"{limit // _MIB:,} MiB"
    return f"{limit // 1024:,} KiB"


def _refuse_unless_regular(mode: int) -> None:
    if not stat.S_ISREG(mode):
        kind = _kind(mode)
        if kind != "not a regular file":
            kind = f"{kind}, not a regular file"
        raise FileRefused(kind)


def open_regular(path: str | os.PathLike[str], *, limit: int) -> BinaryIO:
    """Open a regular file of at most `limit` bytes for reading, checked before anything is read.

    Raises `FileRefused` (not regular, too large), `FileNotFoundError`, or another `OSError`.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        _refuse_unless_regular(info.st_mode)
        if info.st_size > limit:
            raise FileRefused(
                f"is {info.st_size:,} bytes, more than the {_size_text(limit)} read from such a file"
            )
        # Regular files never block; clear the flag so that reads behave as usual.
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike[str], *, limit: int) -> bytes:
    """The whole content of a regular file of at most `limit` bytes (see `open_regular`).

    A file that grows past the bound while it is read is refused too.
    """
    with open_regular(path, limit=limit) as file:
        data = file.read(limit + 1)
    if len(data) > limit:
        raise FileRefused(f"grew past the {_size_text(limit)} read from such a file")
    return data


def check_appendable(path: str | os.PathLike[str]) -> None:
    """Refuse a path that exists and is not a regular file (after following symlinks).

    A missing path is fine (it will be created). Used before a ledger or a plan file is opened
    for writing, so that `/dev/full`, a FIFO or a directory is refused before anything is sent.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return
    _refuse_unless_regular(info.st_mode)


def sync_entry(path: str) -> None:
    """Make `path`'s entry in its directory durable: a new ledger file, or a new ledger
    directory, fsync'd alone could vanish with its directory's entry after a power cut."""
    directory = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(directory)
    except OSError:
        pass  # some file systems cannot fsync a directory; the data fsyncs still hold
    finally:
        os.close(directory)
