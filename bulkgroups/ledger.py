"""The results ledger: an append-only JSON Lines file of runs and operation outcomes.

One ledger holds many runs. Each invocation that applies appends a `run` record, one `op` record per
operation that reached an outcome, and an `end` record (CONTRACT.md, "Ledger"). Every invocation also
reads the ledger it appends to: `replay` tells it what the trailing runs of the same job settled (for
`--resume`), when each account was last used (pacing across runs) and how many writes each account
sent today (daily limits).

Durability: one writer task owns the file and writes each record with a single `os.write` of the
whole line on an `O_APPEND` descriptor, so a kill -9 leaves at most one torn last line, which the next
writer cuts off and every reader ignores. `fsync` runs in small batches in a worker thread, never on
the event loop. The writer is shielded from cancellation, so Ctrl-C still leaves whole lines, the
`end` record and a closed file.

This module imports only the leaves (`model`, `errors`).
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final

import anyio
import anyio.abc
import orjson
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .errors import BulkGroupsError, UsageError
from .model import STATUSES, WRITE_ACTIONS, Outcome, op_digest

__all__ = [
    "LedgerCorrupt",
    "LedgerWriter",
    "Replay",
    "cut_torn_tail",
    "format_time",
    "new_run_id",
    "parse_time",
    "read_records",
    "replay",
]

# Records queued between the callers and the writer task: enough to absorb a burst of outcomes,
# small enough that a stalled disk pushes back on the run instead of growing memory.
_QUEUE_SIZE: Final = 1024
# Bytes read per step when looking for the last newline of a file.
_TAIL_CHUNK: Final = 64 * 1024

Fsync = Callable[[int], None]


class LedgerCorrupt(BulkGroupsError):
    """A complete line of the ledger is not a JSON object: the file was edited or damaged.

    A torn *last* line is expected after a kill -9 and never raises this.
    """

    def __init__(self, path: str, line: int, text: bytes) -> None:
        self.path = path
        self.line = line
        excerpt = text[:80].decode("utf-8", "replace")
        super().__init__(f"{path}:{line}: not a ledger record: {excerpt!r}")


# --------------------------------------------------------------------------------------------
# Times and ids
# --------------------------------------------------------------------------------------------


def format_time(unix: float) -> str:
    """ISO 8601 UTC with milliseconds and a Z, the ledger's only time format."""
    moment = datetime.fromtimestamp(unix, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> float:
    """Unix time of a ledger time (any ISO 8601 form; a naive time is taken as UTC)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def new_run_id() -> str:
    """A fresh run id that sorts by start time and is unique across processes."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return f"{stamp}Z-{secrets.token_hex(4)}"


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def cut_torn_tail(path: str | os.PathLike[str]) -> int:
    """Truncate a last line that has no newline (a write cut short by kill -9); bytes removed.

    Done before appending so that the next record starts on its own line. A missing file is fine.
    """
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return 0
    try:
        size = os.fstat(fd).st_size
        if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
            return 0
        end = size
        while end > 0:
            start = max(0, end - _TAIL_CHUNK)
            chunk = os.pread(fd, end - start, start)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                break
            end = start
        else:
            keep = 0
        os.ftruncate(fd, keep)
        os.fsync(fd)
        return size - keep
    finally:
        os.close(fd)


def _open_for_append(path: str) -> int:
    """Cut a torn tail, then open for unbuffered appends; a new ledger's name is made durable."""
    cut_torn_tail(path)
    try:
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    # fsync of the file alone does not make its directory entry durable.
    directory = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(directory)
    except OSError:
        pass  # some file systems cannot fsync a directory; the data fsyncs still hold
    finally:
        os.close(directory)
    return fd


def _write_all(fd: int, data: bytes) -> None:
    # One write for the whole line; a regular file only writes less on a full disk or a signal,
    # and then the rest must still follow rather than be dropped.
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class LedgerWriter:
    """The single writer of one ledger; an async context manager owned by one run.

    Callers hand records over a bounded memory stream; one task writes each as a whole line with a
    single `os.write` (unbuffered `O_APPEND`), so every record passed to the writer is in the file
    as soon as the task gets to it, even if the process dies right after. A second task fsyncs in a
    worker thread once `fsync_every` lines are pending or `fsync_interval` seconds after the first
    unsynced line. Leaving the context drains the stream, fsyncs and closes the file, shielded from
    cancellation. `fsync` and `clock` are injectable for tests.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fsync_every: int = 64,
        fsync_interval: float = 0.25,
        fsync: Fsync = os.fsync,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if fsync_every < 1:
            raise ValueError("fsync_every must be at least 1")
        if fsync_interval < 0:
            raise ValueError("fsync_interval must not be negative")
        self.path = os.fspath(path)
        self._fsync_every = fsync_every
        self._fsync_interval = fsync_interval
        self._fsync = fsync
        self._clock = clock
        self._fd: int | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self._send: MemoryObjectSendStream[bytes | anyio.Event] | None = None
        self._sync_scope = anyio.CancelScope()
        self._unsynced = 0
        self._dirty: anyio.Event | None = None
        self._full: anyio.Event | None = None

    async def __aenter__(self) -> LedgerWriter:
        if self._fd is not None:
            raise RuntimeError("a LedgerWriter can be entered only once")
        self._fd = await anyio.to_thread.run_sync(_open_for_append, self.path)
        try:
            send, receive = anyio.create_memory_object_stream[bytes | anyio.Event](_QUEUE_SIZE)
            self._send = send
            self._dirty = anyio.Event()
            self._full = anyio.Event()
            task_group = anyio.create_task_group()
            await task_group.__aenter__()
        except BaseException:
            os.close(self._fd)
            raise
        self._task_group = task_group
        task_group.start_soon(self._write_lines, receive, self._fd)
        task_group.start_soon(self._sync_batches, self._fd)
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
            # body's own exception is not handed to the task group, which would wrap it in an
            # ExceptionGroup; only a failure of the writer itself comes out as one.
            self._send.close()
            await self._task_group.__aexit__(None, None, None)
        finally:
            os.close(self._fd)
        return None

    # -- records -------------------------------------------------------------------------------

    async def run_started(
        self, *, run_id: str, job_sha256: str, resume: bool, version: str
    ) -> None:
        """The `run` record that opens every invocation that applies."""
        await self._put(
            {
                "type": "run",
                "run_id": run_id,
                "job_sha256": job_sha256,
                "resume": resume,
                "started_at": format_time(self._clock()),
                "version": version,
            }
        )

    async def record(self, outcome: Outcome, *, run_id: str) -> None:
        """One `op` record: the final word on one operation in this run."""
        operation = outcome.operation
        error = outcome.error
        await self._put(
            {
                "type": "op",
                "op_id": operation.op_id,
                "run_id": run_id,
                "account": operation.account,
                "chat": operation.chat,
                "action": operation.action,
                "user": operation.user,
                "name": operation.name,
                "status": outcome.status,
                "reason": outcome.reason,
                "attempts": outcome.attempts,
                "error": None if error is None else error.as_dict(),
                "at": format_time(self._clock()),
            }
        )

    async def run_ended(self, *, run_id: str, counts: Mapping[str, int], interrupted: bool) -> None:
        """The `end` record; `counts` are this run's `op` records by status."""
        await self._put(
            {
                "type": "end",
                "run_id": run_id,
                "counts": {status: int(counts.get(status, 0)) for status in STATUSES},
                "interrupted": interrupted,
                "finished_at": format_time(self._clock()),
            }
        )

    async def flush(self, *, durable: bool = False) -> None:
        """Wait until every record handed over so far is in the file (and on disk if `durable`)."""
        written = anyio.Event()
        await self._hand_over(written)
        with anyio.CancelScope(shield=True):
            await written.wait()
            if durable:
                assert self._fd is not None
                await anyio.to_thread.run_sync(self._fsync, self._fd)

    async def _put(self, record: dict[str, Any]) -> None:
        await self._hand_over(orjson.dumps(record) + b"\n")

    async def _hand_over(self, item: bytes | anyio.Event) -> None:
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

    # -- tasks ---------------------------------------------------------------------------------

    async def _write_lines(
        self, receive: MemoryObjectReceiveStream[bytes | anyio.Event], fd: int
    ) -> None:
        with anyio.CancelScope(shield=True):
            try:
                async with receive:
                    async for item in receive:
                        # Whole lines that arrived together go out in one write: still whole lines
                        # (kill -9 tears at most the last), far fewer system calls.
                        lines: list[bytes] = []
                        while True:
                            if isinstance(item, anyio.Event):
                                self._write_batch(fd, lines)
                                lines = []
                                item.set()
                            else:
                                lines.append(item)
                            try:
                                item = receive.receive_nowait()
                            except (anyio.WouldBlock, anyio.EndOfStream):
                                break
                        self._write_batch(fd, lines)
            finally:
                self._sync_scope.cancel()
                if self._unsynced:
                    await anyio.to_thread.run_sync(self._fsync, fd)

    def _write_batch(self, fd: int, lines: list[bytes]) -> None:
        if lines:
            _write_all(fd, b"".join(lines))
            for _ in lines:
                self._note_written()

    def _note_written(self) -> None:
        assert self._dirty is not None and self._full is not None
        self._unsynced += 1
        self._dirty.set()
        if self._unsynced >= self._fsync_every:
            self._full.set()

    async def _sync_batches(self, fd: int) -> None:
        with self._sync_scope:
            while True:
                assert self._dirty is not None and self._full is not None
                await self._dirty.wait()
                with anyio.move_on_after(self._fsync_interval):
                    await self._full.wait()
                # Lines written while this fsync runs count towards the next batch.
                self._dirty = anyio.Event()
                self._full = anyio.Event()
                self._unsynced = 0
                await anyio.to_thread.run_sync(self._fsync, fd)


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def read_records(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Every record of a ledger, in file order, streaming.

    Blank lines are skipped, and so is a torn last line (no newline: a write cut short by kill -9).
    Any other line that is not a JSON object raises `LedgerCorrupt`.
    """
    name = os.fspath(path)
    try:
        file = open(name, "rb")  # noqa: SIM115 (closed by the with below)
    except FileNotFoundError:
        raise
    except OSError as error:  # a directory, no permission: a usage problem, not a crash
        raise UsageError(f"{name}: cannot read the ledger: {error.strerror}") from error
    with file:
        for number, line in enumerate(file, start=1):
            if not line.endswith(b"\n"):
                return
            if line.isspace():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                raise LedgerCorrupt(name, number, line) from None
            if not isinstance(record, dict):
                raise LedgerCorrupt(name, number, line)
            yield record


@dataclass(frozen=True, slots=True)
class Replay:
    """What an invocation learns from the ledger it appends to.

    `outcomes` maps an operation's 16-byte digest (`model.op_digest`) to its last status over the
    trailing runs of the job asked about (compact for a million operations); `last_record_at` is
    the unix time of each account's latest `op` record in any run; `writes_today` counts the write
    requests (`attempts` of add/remove/rename/leave records) each account sent on the current UTC
    day. `last_run_open` says the last run has no `end` record (its process died mid-run, so when
    it last sent a request is unknown); `last_end_at` is the time of the last `end` record, before
    which that run's requests were all answered or given up, and `last_end_interrupted` its flag.
    """

    last_job_sha256: str | None = None
    outcomes: dict[bytes, str] = field(default_factory=dict)
    last_record_at: dict[str, float] = field(default_factory=dict)
    writes_today: dict[str, int] = field(default_factory=dict)
    last_run_id: str | None = None
    last_run_open: bool = False
    last_end_at: float | None = None
    last_end_interrupted: bool = False

    def settled(self, digest: bytes) -> bool:
        """Whether `--resume` neither resends nor re-records the operation."""
        return self.outcomes.get(digest) in ("applied", "skipped")


def _digest_of(record: dict[str, Any], account: str) -> bytes | None:
    # The recorded op_id is the operation's identity; recompute it only if it is unusable.
    op_id = record.get("op_id")
    if isinstance(op_id, str) and len(op_id) == 32:
        try:
            return bytes.fromhex(op_id)
        except ValueError:
            pass
    chat, action = record.get("chat"), record.get("action")
    subject = record.get("user")
    if subject is None:
        subject = record.get("name")
    if not isinstance(chat, str) or not isinstance(action, str):
        return None
    if subject is not None and not isinstance(subject, str):
        return None
    return op_digest(account, chat, action, subject)


def replay(
    path: str | os.PathLike[str], *, job_sha256: str | None = None, now: float | None = None
) -> Replay:
    """Read a ledger once, streaming; a missing file is an empty ledger.

    `outcomes` is filled only when `job_sha256` is given, from the trailing runs with that hash
    (walking back from the last run while the hash matches); it is empty if the last run belongs to
    another job. Only ops whose `run_id` is one of those runs count. `now` (unix time, default the
    clock) decides which UTC day is today.
    """
    # Unix time has no leap seconds: a UTC day is exactly 86,400 of its seconds.
    today_starts = (time.time() if now is None else now) // 86400 * 86400
    today_ends = today_starts + 86400
    last_job: str | None = None
    last_run: str | None = None
    # The runs since the last change of job hash, and their ops' outcomes when they are `job_sha256`.
    segment_runs: set[str] = set()
    outcomes: dict[bytes, str] = {}
    last_at: dict[str, float] = {}
    writes: dict[str, int] = {}
    last_run_open = False
    last_end_at: float | None = None
    last_end_interrupted = False
    try:
        records = read_records(path)
        for record in records:
            kind = record.get("type")
            if kind == "op":
                account = record.get("account")
                at_text = record.get("at")
                if not isinstance(account, str) or not isinstance(at_text, str):
                    continue
                at = parse_time(at_text)
                account = sys.intern(account)
                if at > last_at.get(account, float("-inf")):
                    last_at[account] = at
                action = record.get("action")
                if action in WRITE_ACTIONS:
                    attempts = record.get("attempts")
                    if (
                        isinstance(attempts, int)
                        and attempts > 0
                        and today_starts <= at < today_ends
                    ):
                        writes[account] = writes.get(account, 0) + attempts
                if job_sha256 is not None and record.get("run_id") in segment_runs:
                    status = record.get("status")
                    digest = _digest_of(record, account)
                    if isinstance(status, str) and digest is not None:
                        outcomes[digest] = sys.intern(status)
            elif kind == "run":
                run_id = record.get("run_id")
                run_job = record.get("job_sha256")
                if not isinstance(run_id, str) or not isinstance(run_job, str):
                    continue
                if run_job != last_job:
                    segment_runs.clear()
                    outcomes.clear()
                last_job, last_run = run_job, run_id
                last_run_open = True
                if run_job == job_sha256:
                    segment_runs.add(run_id)
            elif kind == "end":
                finished = record.get("finished_at")
                if record.get("run_id") == last_run:
                    last_run_open = False
                if isinstance(finished, str):
                    last_end_at = parse_time(finished)
                    last_end_interrupted = record.get("interrupted") is True
    except FileNotFoundError:
        return Replay()
    return Replay(
        last_job_sha256=last_job,
        outcomes=outcomes,
        last_record_at=last_at,
        writes_today=writes,
        last_run_id=last_run,
        last_run_open=last_run_open,
        last_end_at=last_end_at,
        last_end_interrupted=last_end_interrupted,
    )
