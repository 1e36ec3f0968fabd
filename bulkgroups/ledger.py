"""The results ledger: an append-only JSON Lines file of runs, write intents and outcomes.

One ledger holds many runs. Each invocation that applies appends a `run` record, an `intent` before
every write attempt, one `op` record per operation as soon as its outcome is known (a `verify`
record amends one whose write did not show), and an `end` record (CONTRACT.md, "Ledger"; the
record types are in `records`). Every invocation also reads the ledger it appends to: `replay`
tells it what the trailing runs of the same job settled (for `--resume`), which of their writes
were sent without a known outcome (`pending`, decided by the next run's fresh read), when each
account was last used (pacing across runs) and how many write attempts each account announced
today (daily limits).

Durability. One writer task owns the file and writes the records handed to it as whole lines,
those that arrived together in one `os.write` on an `O_APPEND` descriptor, so a kill -9 leaves at
most one torn last line, which the next writer cuts off and every reader ignores. An `intent` is
written ahead: `append_durable` returns only once its line is fsync'd, and the engine sends the
write only then. Intents that arrive while an fsync runs are written and synced together by the
next one (group commit), so many accounts writing at once share fsyncs. Other records are
fsync'd in small batches (every `fsync_every` lines, or `fsync_interval` after the first unsynced
one). fsync always runs in a worker thread, never on the event loop. The writer is shielded from
cancellation, so Ctrl-C still leaves whole lines, the `end` record and a closed file.

Cost of the write-ahead intent (`benchmarks/bench_ledger.py`; ext4 on this project's shared
2-core VM, where a hop to a worker thread alone costs about 200 µs of CPU): one writer alone waits
0.8-1.8 ms per intent (an fsync and a thread hop each, about 600 µs of CPU); 64 writers at once
(64 accounts writing together) wait 40-170 µs per intent, one fsync serving 64 intents, about
33 µs of CPU each. In `benchmarks/bench_overhead.py` (12,000 writes among 20,200 requests, 64 in
flight, about 24 intents per fsync) the engine's CPU per request stayed within the noise of the
run before intents (400-430 µs here). The network round trip of the write it precedes is longer.

Failure. Any error writing or syncing (ENOSPC, EIO), or a file that is no longer the one this
writer appends to — checked before each batch: its size must be what this writer wrote, and the
path must still name the same inode (truncated, replaced or removed by another process) — makes
the writer *failed*: `failure` holds a `LedgerUnwritable`, `on_failure` is called at once (the
engine stops sending), `append_durable` raises it, later records are dropped, and leaving the
context raises it. What was written before stays as it was.

This module imports only the leaves (`model`, `errors`, `files`, `records`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import stat
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final

import anyio
import anyio.abc
import orjson
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .errors import LedgerCorrupt, LedgerUnwritable, UsageError
from .files import LEDGER_LIMIT, FileRefused, open_regular, sync_entry
from .model import WRITE_ACTIONS, Operation, Outcome, op_digest
from .records import (
    EndRecord,
    IntentRecord,
    LedgerClock,
    OpRecord,
    Record,
    ResolutionRecord,
    RunRecord,
    VerifyRecord,
    parse_time,
    record_from_json,
)

__all__ = [
    "LedgerIO",
    "LedgerWriter",
    "Replay",
    "cut_torn_tail",
    "new_run_id",
    "read_ledger",
    "record_digest",
    "replay",
]

# Records queued between the callers and the writer task: enough to absorb a burst of outcomes,
# small enough that a stalled disk pushes back on the run instead of growing memory.
_QUEUE_SIZE: Final = 1024
# Bytes read per step when looking for the last newline of a file.
_TAIL_CHUNK: Final = 64 * 1024

Fsync = Callable[[int], None]
Write = Callable[[int, memoryview], int]
FailureHandler = Callable[[LedgerUnwritable], None]


@dataclass(frozen=True, slots=True)
class LedgerIO:
    """How a ledger's bytes reach the disk: `os.write` and `os.fsync`, or what a test injects (a
    full disk is a `write` raising ENOSPC; `apply_job(..., ledger_io=...)` passes it on)."""

    write: Write = os.write
    fsync: Fsync = os.fsync


def new_run_id() -> str:
    """A fresh run id that sorts by start time and is unique across processes."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return f"{stamp}Z-{secrets.token_hex(4)}"


# --------------------------------------------------------------------------------------------
# Opening
# --------------------------------------------------------------------------------------------


def cut_torn_tail(fd: int) -> int:
    """Truncate a last line that has no newline (a write cut short by kill -9); bytes removed.

    Done by the writer on opening, before appending, so that its first record starts on its own
    line (`fd` open for reading and writing).
    """
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return 0
    end = size
    keep = 0
    while end > 0:
        start = max(0, end - _TAIL_CHUNK)
        newline = os.pread(fd, end - start, start).rfind(b"\n")
        if newline >= 0:
            keep = start + newline + 1
            break
        end = start
    os.ftruncate(fd, keep)
    os.fsync(fd)
    return size - keep


def _refuse_unless_regular(fd: int, path: str) -> os.stat_result:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise UsageError(f"{path}: the ledger must be a regular file")
    # Regular files never block; clear O_NONBLOCK (only there so that opening a FIFO returns).
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
    return info


def _open_for_append(path: str) -> tuple[int, os.stat_result, bool]:
    """Open for unbuffered appends (created if missing, its name made durable), a torn tail cut;
    also whether this call created the file.

    O_NONBLOCK: a FIFO at the path must be refused at once, not waited on.
    """
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC
    try:  # O_EXCL: "created" is the kernel's word, not a guess made just before
        fd, created = os.open(path, flags | os.O_EXCL, 0o644), True
    except FileExistsError:
        fd, created = os.open(path, flags, 0o644), False
    _refuse_unless_regular(fd, path)
    try:
        cut_torn_tail(fd)
        if created:
            sync_entry(path)
        return fd, os.fstat(fd), created
    except BaseException:
        os.close(fd)
        raise


def _remove_if_still_empty(path: str, fd: int) -> None:
    """Take away the file this writer created if nothing was ever written to it (a run declined
    at the prompt, or stopped before its first record): no empty ledger is left behind. Only if
    the path still names this very file (compared while it is open) and it is empty."""
    with contextlib.suppress(OSError):
        mine, named = os.fstat(fd), os.stat(path, follow_symlinks=False)
        if (mine.st_dev, mine.st_ino) == (named.st_dev, named.st_ino) and mine.st_size == 0:
            os.unlink(path)


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


class _Waiter:
    """A caller waiting for its line (or, with `line` None, everything before) to be written,
    and with `durable` fsync'd."""

    __slots__ = ("done", "durable", "line")

    def __init__(self, line: bytes | None, *, durable: bool) -> None:
        self.line = line
        self.durable = durable
        self.done = anyio.Event()


class _FileChanged(Exception):
    """The ledger is no longer the file this writer appends to."""


class LedgerWriter:
    """The single writer of one ledger; an async context manager owned by one run.

    Callers hand records over a bounded memory stream (`append`, `append_durable`); one task
    writes them (see the module docstring for durability, group commit and failure). `fsync`,
    `write` and `clock` are injectable for tests (a full disk is a `write` raising ENOSPC).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fsync_every: int = 64,
        fsync_interval: float = 0.25,
        fsync: Fsync = os.fsync,
        write: Write = os.write,
        clock: Callable[[], float] = time.time,
        on_failure: FailureHandler | None = None,
    ) -> None:
        if fsync_every < 1:
            raise ValueError("fsync_every must be at least 1")
        if fsync_interval < 0:
            raise ValueError("fsync_interval must not be negative")
        self.path = os.fspath(path)
        self._fsync_every = fsync_every
        self._fsync_interval = fsync_interval
        self._fsync = fsync
        self._write = write
        self._clock = LedgerClock(clock)
        self._on_failure = on_failure
        self.failure: LedgerUnwritable | None = None
        self._fd: int | None = None
        self._identity: tuple[int, int] = (0, 0)
        self._offset = 0
        self._created = False
        self._unsynced = 0
        self._task_group: anyio.abc.TaskGroup | None = None
        self._send: MemoryObjectSendStream[bytes | _Waiter] | None = None
        self._batch: _Waiter  # the waiter of the batch the writer takes next (see append_durable)

    def now(self) -> str:
        """The ledger time of this moment (the writer's clock)."""
        return self._clock.now()

    async def __aenter__(self) -> LedgerWriter:
        if self._fd is not None:
            raise RuntimeError("a LedgerWriter can be entered only once")
        try:
            fd, info, self._created = await anyio.to_thread.run_sync(_open_for_append, self.path)
        except OSError as error:
            raise UsageError(f"{self.path}: cannot open the ledger: {error.strerror}") from error
        self._fd = fd
        self._identity = (info.st_dev, info.st_ino)
        self._offset = info.st_size
        try:
            send, receive = anyio.create_memory_object_stream[bytes | _Waiter](_QUEUE_SIZE)
            self._send = send
            self._batch = _Waiter(None, durable=False)
            task_group = anyio.create_task_group()
            await task_group.__aenter__()
        except BaseException:
            os.close(fd)
            raise
        self._task_group = task_group
        task_group.start_soon(self._write_lines, receive, fd)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._task_group is not None and self._send is not None and self._fd is not None
        try:
            # Closing the stream lets the (shielded) writer drain what is queued and stop; the
            # task group then waits for it even if the enclosing scope is being cancelled. The
            # body's own exception is not handed to the task group, which would wrap it.
            self._send.close()
            await self._task_group.__aexit__(None, None, None)
        finally:
            if self._created and self._offset == 0:
                _remove_if_still_empty(self.path, self._fd)
            os.close(self._fd)
        if exc is None and self.failure is not None:
            raise self.failure
        return None

    # -- records -------------------------------------------------------------------------------

    async def append(self, record: Record) -> None:
        """Hand a record to the writer: in the file as soon as the writer gets to it, fsync'd
        with the next batch. Dropped once the writer has failed (see `failure`)."""
        if self.failure is None:
            await self._hand_over(record.to_json() + b"\n")

    async def append_durable(self, record: Record) -> None:
        """Append a record and return once it is fsync'd (an `intent`, before its write is sent).

        Raises `LedgerUnwritable` if the ledger failed before or meanwhile: then the write must
        not be sent.
        """
        await self._append_durable(record.to_json() + b"\n")

    async def intent(
        self,
        operation: Operation,
        *,
        run_id: str,
        attempt: int,
        previous_name: str | None = None,
    ) -> None:
        """The `intent` record of a write attempt, durable (see `append_durable`)."""
        line = IntentRecord.json_of(
            operation, run_id=run_id, attempt=attempt, at=self.now(), previous_name=previous_name
        )
        await self._append_durable(line + b"\n")

    async def _append_durable(self, line: bytes) -> None:
        if self.failure is not None:
            raise self.failure
        if self._send is None:
            raise RuntimeError("the LedgerWriter is not open (use `async with`)")
        try:
            self._send.send_nowait(line)
        except anyio.WouldBlock:
            waiter = _Waiter(line, durable=True)
            await self._hand_over(waiter)
        else:
            # Not yielded since: the line is in the batch the writer takes next, and that batch's
            # waiter is this one (one for all the intents of a group commit, not one each).
            waiter = self._batch
            waiter.durable = True
        await waiter.done.wait()
        if self.failure is not None:
            raise self.failure

    async def run_started(
        self, *, run_id: str, job_sha256: str, resume: bool, version: str
    ) -> None:
        """The `run` record that opens every invocation that applies."""
        await self.append(RunRecord(run_id, job_sha256, resume, self.now(), version))

    async def record(
        self, outcome: Outcome, *, run_id: str, previous_name: str | None = None
    ) -> None:
        """One `op` record: the outcome of one operation in this run."""
        if self.failure is None:
            line = OpRecord.json_of(
                outcome, run_id=run_id, at=self.now(), previous_name=previous_name
            )
            await self._hand_over(line + b"\n")

    async def run_ended(self, *, run_id: str, counts: dict[str, int], interrupted: bool) -> None:
        """The `end` record; `counts` are this run's `op` records by status (as amended)."""
        await self.append(EndRecord(run_id, counts, interrupted, self.now()))

    async def _hand_over(self, item: bytes | _Waiter) -> None:
        if self._send is None:
            raise RuntimeError("the LedgerWriter is not open (use `async with`)")
        try:
            # The common case: room in the buffer, no trip through the event loop.
            self._send.send_nowait(item)
            return
        except anyio.WouldBlock:
            pass
        # Shielded: an outcome reached before Ctrl-C (and the `end` record written after it) must
        # still be recorded; the writer is shielded too, so this wait always ends.
        with anyio.CancelScope(shield=True):
            await self._send.send(item)

    # -- the writer task -----------------------------------------------------------------------

    async def _write_lines(
        self, receive: MemoryObjectReceiveStream[bytes | _Waiter], fd: int
    ) -> None:
        with anyio.CancelScope(shield=True):
            async with receive:
                while True:
                    try:
                        item = await self._receive(receive)
                    except anyio.EndOfStream:
                        break
                    if item is None:  # the interval passed: sync what is pending
                        await self._commit(fd, [], [], sync=True)
                        continue
                    lines: list[bytes] = []
                    waiters: list[_Waiter] = []
                    while True:
                        # Whatever arrived together goes out in one write (still whole lines,
                        # far fewer system calls) and, if anyone needs it, one fsync.
                        if isinstance(item, _Waiter):
                            waiters.append(item)
                            if item.line is not None:
                                lines.append(item.line)
                        else:
                            lines.append(item)
                        try:
                            item = receive.receive_nowait()
                        except (anyio.WouldBlock, anyio.EndOfStream):
                            break
                    # Nothing awaited since the last item was taken: every `append_durable` of
                    # a line in this batch holds this batch's waiter (see there).
                    batch, self._batch = self._batch, _Waiter(None, durable=False)
                    waiters.append(batch)
                    await self._commit(fd, lines, waiters)
            if self._unsynced:
                await self._commit(fd, [], [], sync=True)

    async def _receive(
        self, receive: MemoryObjectReceiveStream[bytes | _Waiter]
    ) -> bytes | _Waiter | None:
        """The next item, or None when unsynced lines have waited `fsync_interval`."""
        if not self._unsynced:
            return await receive.receive()
        with anyio.move_on_after(self._fsync_interval):
            return await receive.receive()
        return None

    async def _commit(
        self, fd: int, lines: list[bytes], waiters: list[_Waiter], *, sync: bool = False
    ) -> None:
        try:
            if self.failure is None:
                if lines:
                    self._check_file(fd)
                    self._write_all(fd, b"".join(lines))
                    self._unsynced += len(lines)
                durable = any(w.durable for w in waiters)
                if self._unsynced and (sync or durable or self._unsynced >= self._fsync_every):
                    # Lines handed over while this fsync runs wait for the next batch.
                    synced = self._unsynced
                    await anyio.to_thread.run_sync(self._fsync, fd)
                    self._unsynced -= synced
        except _FileChanged as changed:
            self._fail(str(changed))
        except OSError as error:
            self._fail(error.strerror or str(error))
        finally:
            for waiter in waiters:
                waiter.done.set()

    def _check_file(self, fd: int) -> None:
        """Before each batch: the file must still be ours, as long as what we wrote."""
        size = os.fstat(fd).st_size
        try:
            named = os.stat(self.path)
        except FileNotFoundError:
            raise _FileChanged("the file was removed by another process") from None
        if (named.st_dev, named.st_ino) != self._identity:
            raise _FileChanged("the file was replaced by another process")
        if size != self._offset:
            what = "truncated" if size < self._offset else "appended to"
            raise _FileChanged(
                f"the file was {what} by another process ({size:,} bytes, expected "
                f"{self._offset:,})"
            )

    def _write_all(self, fd: int, data: bytes) -> None:
        # One write for the whole batch; a regular file only writes less on a full disk or a
        # signal, and then the rest must still follow rather than be dropped.
        view = memoryview(data)
        while view:
            written = self._write(fd, view)
            self._offset += written
            view = view[written:]

    def _fail(self, cause: str) -> None:
        if self.failure is not None:
            return
        self.failure = LedgerUnwritable(self.path, cause)
        if self._on_failure is not None:
            self._on_failure(self.failure)


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def _open_ledger(name: str) -> Any:
    try:
        return open_regular(name, limit=LEDGER_LIMIT)
    except FileNotFoundError:
        raise
    except FileRefused as refused:
        raise UsageError(f"{name}: cannot read the ledger: {refused.reason}") from None
    except OSError as error:  # no permission, a missing directory: a usage problem, not a crash
        raise UsageError(f"{name}: cannot read the ledger: {error.strerror}") from error


def _objects(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    name = os.fspath(path)
    with _open_ledger(name) as file:
        for number, line in enumerate(file, start=1):
            if not line.endswith(b"\n"):
                return
            if line.isspace():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                record = None
            if not isinstance(record, dict):
                excerpt = line[:80].decode("utf-8", "replace")
                raise LedgerCorrupt(name, number, f"not a ledger record: {excerpt!r}")
            yield number, record


def read_ledger(path: str | os.PathLike[str]) -> Iterator[Record]:
    """Every record of a ledger, typed (`records`), in file order, streaming.

    Blank lines are skipped, and so is a torn last line (no newline: a write cut short by kill -9).
    Any other line that is not a record bulkgroups writes raises `LedgerCorrupt`; a path that is
    not a regular file is a `UsageError`; a missing one raises FileNotFoundError.
    """
    name = os.fspath(path)
    for number, obj in _objects(name):
        yield record_from_json(obj, path=name, line=number)


@dataclass(frozen=True, slots=True)
class Replay:
    """What an invocation learns from the ledger it appends to.

    `outcomes` maps an operation's 16-byte digest (`model.op_digest`) to its last status (as
    amended by `verify` records) over the trailing runs of the job asked about, when asked to
    keep them (for `--resume`; compact for a million operations). `pending` holds, for those same
    runs, the operations whose write may have reached the server without a known outcome: an
    intent with no later `op` record (the process died), or a last `op` record failed/deferred
    `in_doubt`. `last_record_at` is the unix time of each account's latest `op` or `intent`
    record in any run; `writes_today` counts each account's write attempts of the current UTC
    day: its intents, or for runs written before intents existed, the `attempts` of its write
    records. `last_run_open` says the last run has no `end` record (its process died mid-run, so
    when it last sent a request is unknown); `last_end_at` is the time of the last `end` record,
    before which that run's requests were all answered or given up, and `last_end_interrupted`
    its flag; `last_run_started_at` is when the last run started (None: not recorded).
    `pending_since` is the unix time of the record that left each pending operation
    pending (a ledger directory lets a later record of another file supersede it).
    `resolutions` holds, for each (account, profile), the latest `resolution` record of any run:
    the profiles a run need not look up again while they are young enough. `renamed_from` has,
    for each pending rename, the name its run read before it (so that a rename found in effect
    is recorded, and undone, like one whose answer came).
    """

    last_job_sha256: str | None = None
    outcomes: dict[bytes, str] = field(default_factory=dict)
    last_record_at: dict[str, float] = field(default_factory=dict)
    writes_today: dict[str, int] = field(default_factory=dict)
    last_run_open: bool = False
    last_end_at: float | None = None
    last_end_interrupted: bool = False
    last_run_started_at: float | None = None
    pending: dict[bytes, Operation] = field(default_factory=dict)
    pending_since: dict[bytes, float] = field(default_factory=dict)
    resolutions: dict[tuple[str, str], ResolutionRecord] = field(default_factory=dict)
    renamed_from: dict[bytes, str] = field(default_factory=dict)

    def settled(self, digest: bytes) -> bool:
        """Whether `--resume` neither resends nor re-records the operation."""
        return self.outcomes.get(digest) in ("applied", "skipped")


def record_digest(record: IntentRecord | OpRecord) -> bytes:
    """The 16-byte identity (`model.op_digest`) of the operation a record is about: its recorded
    `op_id`, recomputed from its fields only if that is unusable."""
    op_id = record.op_id
    if len(op_id) == 32:
        try:
            return bytes.fromhex(op_id)
        except ValueError:
            pass
    subject = record.user if record.user is not None else record.name
    return op_digest(record.account, record.chat, record.action, subject)


class _Replaying:
    """The state of one pass over a ledger (see `Replay`)."""

    def __init__(self, job_sha256: str | None, *, keep_outcomes: bool, today: float) -> None:
        self.job_sha256 = job_sha256
        self.keep_outcomes = keep_outcomes and job_sha256 is not None
        self.today_starts = today
        self.today_ends = today + 86400
        self.last_job: str | None = None
        self.last_run: str | None = None
        # The runs since the last change of job hash, when they are `job_sha256`.
        self.segment: set[str] = set()
        self.with_intents: set[str] = set()
        self.outcomes: dict[bytes, str] = {}
        self.pending: dict[bytes, Operation] = {}
        self.pending_since: dict[bytes, float] = {}
        self.renamed_from: dict[bytes, str] = {}
        self.last_at: dict[str, float] = {}
        self.writes: dict[str, int] = {}
        self.last_run_open = False
        self.last_run_started_at: float | None = None
        self.last_end_at: float | None = None
        self.last_end_interrupted = False
        self.resolutions: dict[tuple[str, str], ResolutionRecord] = {}

    def used(self, account: str, at: str, attempts: int) -> float:
        """Note a record of `account` at `at` (its unix time, returned)."""
        unix = parse_time(at)
        account = sys.intern(account)
        if unix > self.last_at.get(account, float("-inf")):
            self.last_at[account] = unix
        if attempts and self.today_starts <= unix < self.today_ends:
            self.writes[account] = self.writes.get(account, 0) + attempts
        return unix

    def run(self, record: RunRecord) -> None:
        if record.job_sha256 != self.last_job:
            self.segment.clear()
            self.outcomes.clear()
            self.pending.clear()
            self.pending_since.clear()
            self.renamed_from.clear()
        self.last_job, self.last_run = record.job_sha256, record.run_id
        self.last_run_open = True
        self.last_run_started_at = parse_time(record.started_at) if record.started_at else None
        if record.job_sha256 == self.job_sha256:
            self.segment.add(record.run_id)

    def intent(self, record: IntentRecord) -> None:
        self.with_intents.add(record.run_id)
        unix = self.used(record.account, record.at, 1)
        if record.run_id in self.segment:
            digest = record_digest(record)
            self.pending[digest] = record.operation
            self.pending_since[digest] = unix
            self._rename_from(digest, record.previous_name)

    def _rename_from(self, digest: bytes, previous_name: str | None) -> None:
        # The latest record's word: an older run's name must not outlive a later intent's.
        if previous_name is None:
            self.renamed_from.pop(digest, None)
        else:
            self.renamed_from[digest] = previous_name

    def op(self, record: OpRecord) -> None:
        counted = record.action in WRITE_ACTIONS and record.run_id not in self.with_intents
        unix = self.used(record.account, record.at, record.attempts if counted else 0)
        if record.run_id not in self.segment:
            return
        digest = record_digest(record)
        if self.keep_outcomes:
            self.outcomes[digest] = sys.intern(record.status)
        if record.in_doubt and record.status in ("failed", "deferred"):
            self.pending[digest] = record.operation
            self.pending_since[digest] = unix
            self._rename_from(digest, record.previous_name)
        elif self.pending.pop(digest, None) is not None:
            del self.pending_since[digest]
            self.renamed_from.pop(digest, None)

    def verify(self, record: VerifyRecord) -> None:
        if self.keep_outcomes and record.run_id in self.segment and len(record.op_id) == 32:
            with contextlib.suppress(ValueError):  # an op_id no run of ours wrote: nothing to amend
                self.outcomes[bytes.fromhex(record.op_id)] = sys.intern(record.status)

    def resolution(self, record: ResolutionRecord) -> None:
        key = (record.account, record.profile)
        known = self.resolutions.get(key)
        if known is None or parse_time(record.at) >= parse_time(known.at):
            self.resolutions[key] = record

    def end(self, record: EndRecord) -> None:
        if record.run_id == self.last_run:
            self.last_run_open = False
        self.last_end_at = parse_time(record.finished_at)
        self.last_end_interrupted = record.interrupted

    def result(self) -> Replay:
        return Replay(
            last_job_sha256=self.last_job,
            outcomes=self.outcomes,
            last_record_at=self.last_at,
            writes_today=self.writes,
            last_run_open=self.last_run_open,
            last_end_at=self.last_end_at,
            last_end_interrupted=self.last_end_interrupted,
            last_run_started_at=self.last_run_started_at,
            pending=self.pending if self.job_sha256 is not None else {},
            pending_since=self.pending_since if self.job_sha256 is not None else {},
            resolutions=self.resolutions,
            renamed_from=self.renamed_from if self.job_sha256 is not None else {},
        )


def replay(
    path: str | os.PathLike[str],
    *,
    job_sha256: str | None = None,
    keep_outcomes: bool = True,
    now: float | None = None,
) -> Replay:
    """Read a ledger once, streaming; a missing file is an empty ledger.

    `outcomes` and `pending` are filled only when `job_sha256` is given, from the trailing runs
    with that hash (walking back from the last run while the hash matches); they are empty if the
    last run belongs to another job. `keep_outcomes=False` leaves `outcomes` empty (a run that
    does not resume needs only `pending`). `now` (unix time, default the clock) decides which UTC
    day is today.
    """
    # Unix time has no leap seconds: a UTC day is exactly 86,400 of its seconds.
    today = (time.time() if now is None else now) // 86400 * 86400
    state = _Replaying(job_sha256, keep_outcomes=keep_outcomes, today=today)
    handlers: dict[type[Any], Callable[[Any], None]] = {
        RunRecord: state.run,
        IntentRecord: state.intent,
        OpRecord: state.op,
        VerifyRecord: state.verify,
        ResolutionRecord: state.resolution,
        EndRecord: state.end,
    }
    try:
        for record in read_ledger(path):
            handlers[type(record)](record)
    except FileNotFoundError:
        return Replay()
    return state.result()
