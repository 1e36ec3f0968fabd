"""The ledger's lock file: one process appends to a ledger at a time.

`LEDGER.lock` is created atomically (`O_CREAT | O_EXCL`) and holds only `{"pid", "started_at"}`, so a
refused user can see who holds it and since when. A lock path that exists and is not a regular
file (a FIFO, a directory) is refused with a usage error, never read. A lock whose process is gone (kill -9, a crashed
container) is taken over. The check is by pid, so it is only as good as pids: a holder in another
pid namespace sharing the file system looks dead (or, by chance, alive) to us.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Final

import orjson

from .errors import RunRefused, UsageError

__all__ = ["LedgerLock", "LockHolder", "pid_alive"]

# Rounds of "someone else created or broke the lock just now" before giving up.
_ATTEMPTS: Final = 5


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (one we may not signal still exists)."""
    if pid <= 0:
        # kill(0) and kill(-n) address process groups, not a process: never a holder.
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:
        return False
    return True


def _format_time(unix: float) -> str:
    return (
        datetime.fromtimestamp(unix, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def _parse_time(text: str) -> float | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _process_started_at(pid: int) -> float | None:
    """When a process started (unix time), from /proc; None where that is not available."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        # Field 22 (starttime, in clock ticks since boot) counts from after the parenthesised
        # command name, which may itself contain spaces.
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


@dataclass(frozen=True, slots=True)
class LockHolder:
    """Who holds a ledger's lock, seen from outside (`LedgerLock.holder`): `alive` False means its
    process is gone (it died while appending to that ledger, or while reading before it)."""

    pid: int | None
    started_at: str | None
    alive: bool

    def __str__(self) -> str:
        who = f"process {self.pid}" if self.pid is not None else "a process"
        return f"{who} (started {self.started_at or 'at an unknown time'})"


class LedgerLock:
    """Held by the one process that appends to a ledger; a sync context manager.

    Entering raises `errors.RunRefused` naming the holder if a live process holds the lock. Exiting
    removes the lock file, but only if it is still the one this lock created. `took_over` tells
    that entering broke a lock whose process was gone: that process died mid-run (kill -9), so
    when it last sent a request is unknown (the engine then waits a full window before sending).
    """

    def __init__(self, ledger_path: str | os.PathLike[str]) -> None:
        self.ledger_path = os.fspath(ledger_path)
        self.path = self.ledger_path + ".lock"
        # (device, inode, content) of the file we created: an inode number alone can be reused.
        self._identity: tuple[int, int, bytes] | None = None
        self.took_over = False

    def __enter__(self) -> LedgerLock:
        if self._identity is not None:
            raise RuntimeError("this LedgerLock is already held")
        for _ in range(_ATTEMPTS):
            if self._create():
                return self
            self._break_if_stale()
        raise RunRefused(f"could not take the lock {self.path}: other processes keep racing for it")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        identity, self._identity = self._identity, None
        if identity is None:
            return
        try:
            st, content = self._read_lock()
        except (FileNotFoundError, UsageError):
            return  # gone, or replaced by something that is not ours: nothing to remove
        if (st.st_dev, st.st_ino, content) == identity:
            os.unlink(self.path)

    def holder(self) -> LockHolder | None:
        """Who holds this lock now (None: nobody), without taking it or breaking a stale one.

        A ledger directory's run looks at its neighbours' locks this way (`ledger_dir`).
        """
        try:
            st, raw = self._read_lock()
        except FileNotFoundError:
            return None
        pid, started_at = _holder(raw)
        if pid is None:  # unreadable: alive only while it may still be being written
            alive = not raw and time.time() - st.st_mtime < 5
        else:
            alive = self._holder_alive(pid, started_at)
        return LockHolder(pid, started_at, alive)

    def _create(self) -> bool:
        content = (
            orjson.dumps({"pid": os.getpid(), "started_at": _format_time(time.time())}) + b"\n"
        )
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except FileExistsError:
            return False
        except OSError as error:  # no such directory, read-only: a usage problem, not a crash
            raise UsageError(
                f"{self.ledger_path}: cannot create the ledger's lock {self.path}: {error.strerror}"
            ) from error
        try:
            os.write(fd, content)
            os.fsync(fd)
            st = os.fstat(fd)
        except BaseException:
            os.close(fd)
            os.unlink(self.path)
            raise
        os.close(fd)
        self._identity = (st.st_dev, st.st_ino, content)
        return True

    def _read_lock(self) -> tuple[os.stat_result, bytes]:
        """The lock file's identity and content; a path that is not a regular file (a FIFO would
        block the read forever, a directory cannot be read) is refused, naming it."""
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise UsageError(
                    f"{self.ledger_path}: its lock {self.path} exists and is not a regular file"
                )
            return st, os.read(fd, 4096)
        finally:
            os.close(fd)

    def _break_if_stale(self) -> None:
        """Remove the existing lock if its process is gone; raise RunRefused if it is alive."""
        try:
            st, raw = self._read_lock()
        except FileNotFoundError:
            return  # released meanwhile: try to create it again
        pid, started_at = _holder(raw)
        if pid is None:
            if not raw and time.time() - st.st_mtime < 5:
                # Just created and not yet written by its owner: treat as held, briefly.
                raise RunRefused(f"ledger {self.ledger_path} is being locked by another process")
        elif self._holder_alive(pid, started_at):
            raise RunRefused(
                f"ledger {self.ledger_path} is in use by process {pid} "
                f"(started {started_at or 'at an unknown time'}); lock file {self.path}"
            )
        self.took_over = True
        self._remove_if_same((st.st_dev, st.st_ino, raw))

    def _holder_alive(self, pid: int, started_at: str | None) -> bool:
        if pid != os.getpid():
            return pid_alive(pid)
        # Our own pid: either another lock in this very process (held), or a lock left by an
        # earlier process that had the same pid, e.g. pid 1 in a container (stale).
        lock_time = _parse_time(started_at) if started_at else None
        ours = _process_started_at(pid)
        if lock_time is None or ours is None:
            return True
        return lock_time >= ours - 1.0

    def _remove_if_same(self, judged: tuple[int, int, bytes]) -> None:
        # Unlinking by name could remove a fresh lock that another process created after the
        # stale one was broken by a third. Renaming first lets us check which file we took and
        # put a live one back.
        aside = f"{self.path}.{os.getpid()}.{time.monotonic_ns()}.stale"
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        with open(aside, "rb") as file:
            st = os.fstat(file.fileno())
            content = file.read(4096)
        if (st.st_dev, st.st_ino, content) == judged:
            os.unlink(aside)
            return
        try:
            os.link(aside, self.path)
        except FileExistsError:
            pass
        finally:
            os.unlink(aside)


def _holder(raw: bytes) -> tuple[int | None, str | None]:
    try:
        content = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(content, dict):
        return None, None
    pid = content.get("pid")
    started_at = content.get("started_at")
    return (
        pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
        started_at if isinstance(started_at, str) else None,
    )
