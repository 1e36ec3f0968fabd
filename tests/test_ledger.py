"""The ledger: whole lines written at once, fsync off the event loop, torn tails, replay."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkgroups.errors import LedgerCorrupt, LedgerUnwritable, UsageError
from bulkgroups.ledger import (
    LedgerWriter,
    Replay,
    cut_torn_tail,
    new_run_id,
    read_ledger,
    replay,
)
from bulkgroups.model import ErrorInfo, Operation, Outcome, op_digest
from bulkgroups.records import (
    EndRecord,
    IntentRecord,
    OpRecord,
    RunRecord,
    VerifyRecord,
    format_time,
    parse_time,
)

JOB = "a" * 64
OTHER_JOB = "b" * 64
T0 = parse_time("2025-03-10T12:00:00.000Z")


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def parsed(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in lines(path)]


def add(user: str, *, account: str = "acc_1", chat: str = "chat_A") -> Operation:
    return Operation(account, chat, "add", user=user)


def run_line(run_id: str, job: str = JOB) -> dict[str, Any]:
    return {
        "type": "run",
        "run_id": run_id,
        "job_sha256": job,
        "resume": False,
        "started_at": format_time(T0),
        "version": "0.1.0",
    }


def op_line(
    run_id: str,
    op: Operation,
    status: str,
    *,
    at: float = T0,
    attempts: int = 1,
    reason: str | None = None,
) -> dict[str, Any]:
    return {
        "type": "op",
        "op_id": op.op_id,
        "run_id": run_id,
        "account": op.account,
        "chat": op.chat,
        "action": op.action,
        "user": op.user,
        "name": op.name,
        "status": status,
        "reason": reason,
        "attempts": attempts,
        "error": None,
        "at": format_time(at),
    }


def write_ledger(path: Path, records: Iterable[dict[str, Any]], tail: bytes = b"") -> None:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records) + tail)


class CountingFsync:
    """An fsync that records which threads it ran on and can signal the test's event loop."""

    def __init__(self) -> None:
        self.threads: list[int] = []
        self.synced = anyio.Event()

    def __call__(self, fd: int) -> None:
        self.threads.append(threading.get_ident())
        anyio.from_thread.run_sync(self.synced.set)


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


async def test_each_record_is_in_the_file_as_a_whole_line_while_the_writer_is_open(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.jsonl"
    async with LedgerWriter(path, fsync_interval=3600) as ledger:
        await ledger.run_started(run_id="r1", job_sha256=JOB, resume=False, version="0.1.0")
        await anyio.wait_all_tasks_blocked()  # the writer got to it
        assert [r["type"] for r in parsed(path)] == ["run"]
        await ledger.record(Outcome(add("u1"), "applied", attempts=1), run_id="r1")
        await anyio.wait_all_tasks_blocked()
        assert [r["type"] for r in parsed(path)] == ["run", "op"]
        assert all(line.endswith(b"\n") for line in lines(path))


async def test_records_have_exactly_the_contract_fields(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    clock = iter([T0, T0 + 1.5, T0 + 2.25, T0 + 3])
    error = ErrorInfo(
        status=429, type="provider/too_many_requests", detail="slow down", req_id="q1"
    )
    async with LedgerWriter(path, clock=lambda: next(clock)) as ledger:
        await ledger.run_started(run_id="r1", job_sha256=JOB, resume=True, version="0.1.0")
        await ledger.record(
            Outcome(add("u1"), "deferred", "provider_rate_limited", attempts=2, error=error),
            run_id="r1",
        )
        await ledger.record(
            Outcome(
                Operation("acc_1", "chat_A", "rename", name="Cohort 12"), "applied", attempts=1
            ),
            run_id="r1",
        )
        await ledger.run_ended(run_id="r1", counts={"applied": 1, "deferred": 1}, interrupted=False)
    run, deferred, renamed, end = parsed(path)
    assert run == {
        "type": "run",
        "run_id": "r1",
        "job_sha256": JOB,
        "resume": True,
        "started_at": "2025-03-10T12:00:00.000Z",
        "version": "0.1.0",
    }
    assert deferred == {
        "type": "op",
        "op_id": add("u1").op_id,
        "run_id": "r1",
        "account": "acc_1",
        "chat": "chat_A",
        "action": "add",
        "user": "u1",
        "name": None,
        "status": "deferred",
        "reason": "provider_rate_limited",
        "attempts": 2,
        "error": {
            "status": 429,
            "type": "provider/too_many_requests",
            "detail": "slow down",
            "req_id": "q1",
        },
        "at": "2025-03-10T12:00:01.500Z",
    }
    assert renamed["user"] is None and renamed["name"] == "Cohort 12"
    assert renamed["error"] is None and renamed["at"] == "2025-03-10T12:00:02.250Z"
    assert end == {
        "type": "end",
        "run_id": "r1",
        "counts": {"applied": 1, "skipped": 0, "deferred": 1, "failed": 0},
        "interrupted": False,
        "finished_at": "2025-03-10T12:00:03.000Z",
    }


async def test_fsync_runs_in_worker_threads_in_batches(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    fsync = CountingFsync()
    async with LedgerWriter(path, fsync_every=64, fsync_interval=3600, fsync=fsync) as ledger:
        for i in range(200):
            await ledger.record(Outcome(add(f"u{i}"), "applied", attempts=1), run_id="r1")
    assert len(parsed(path)) == 200
    # 200 lines in batches of 64 plus the final one on close: a handful, never one per line.
    assert 1 <= len(fsync.threads) <= 4
    assert threading.get_ident() not in fsync.threads


async def test_an_idle_writer_fsyncs_after_the_interval_without_closing(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    fsync = CountingFsync()
    async with LedgerWriter(path, fsync_every=1000, fsync_interval=0.01, fsync=fsync) as ledger:
        await ledger.record(Outcome(add("u1"), "applied", attempts=1), run_id="r1")
        with anyio.fail_after(10):
            await fsync.synced.wait()
        assert len(fsync.threads) == 1


async def test_a_durable_append_fsyncs_off_the_event_loop(tmp_path: Path) -> None:
    fsync = CountingFsync()
    async with LedgerWriter(tmp_path / "ledger.jsonl", fsync_interval=3600, fsync=fsync) as ledger:
        await ledger.record(Outcome(add("u1"), "applied", attempts=1), run_id="r1")
        await ledger.append_durable(intent("u2"))
        assert fsync.threads and threading.get_ident() not in fsync.threads


async def test_a_torn_last_line_is_cut_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    write_ledger(path, [run_line("r1")], tail=b'{"type":"op","op_id":"ab')
    async with LedgerWriter(path) as ledger:
        await ledger.run_started(run_id="r2", job_sha256=JOB, resume=True, version="0.1.0")
    assert [r["run_id"] for r in parsed(path)] == ["r1", "r2"]


def cut(path: Path) -> int:
    with path.open("r+b") as file:
        return cut_torn_tail(file.fileno())


def test_cutting_a_torn_tail_keeps_whole_lines_and_handles_edge_cases(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(b"")
    assert cut(path) == 0
    path.write_bytes(b'{"a":1}\n')
    assert cut(path) == 0 and path.read_bytes() == b'{"a":1}\n'
    path.write_bytes(b'{"a":1')  # a first line torn: nothing survives
    assert cut(path) == 6 and path.read_bytes() == b""
    long_tail = b"x" * 200_000  # longer than one read chunk
    path.write_bytes(b'{"a":1}\n' + long_tail)
    assert cut(path) == len(long_tail) and path.read_bytes() == b'{"a":1}\n'


async def test_cancelling_the_enclosing_scope_leaves_whole_lines_and_a_closed_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.jsonl"
    with anyio.CancelScope() as scope:
        async with LedgerWriter(path, fsync_interval=3600) as ledger:
            await ledger.run_started(run_id="r1", job_sha256=JOB, resume=False, version="0.1.0")
            for i in range(3000):  # more than the queue holds
                await ledger.record(Outcome(add(f"u{i}"), "applied", attempts=1), run_id="r1")
                if i == 2000:
                    scope.cancel()
            await ledger.run_ended(run_id="r1", counts={"applied": 3000}, interrupted=True)
            await anyio.lowlevel.checkpoint()  # cancellation lands here
            pytest.fail("the scope was cancelled")
    assert scope.cancelled_caught
    records = parsed(path)  # every line is whole JSON
    assert len(records) == 3002 and records[-1]["type"] == "end"
    # The descriptor is closed: appending after the run works from a fresh writer.
    async with LedgerWriter(path) as again:
        await again.run_started(run_id="r2", job_sha256=JOB, resume=True, version="0.1.0")
    assert parsed(path)[-1]["run_id"] == "r2"


async def test_the_writer_refuses_records_outside_its_context(tmp_path: Path) -> None:
    ledger = LedgerWriter(tmp_path / "ledger.jsonl")
    with pytest.raises(RuntimeError):
        await ledger.record(Outcome(add("u1"), "applied"), run_id="r1")


def test_run_ids_are_fresh_and_sort_by_time() -> None:
    ids = {new_run_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(i[:8].isdigit() and i[8] == "T" for i in ids)


def test_times_are_iso_utc_with_milliseconds_and_z() -> None:
    assert format_time(0.0) == "1970-01-01T00:00:00.000Z"
    assert format_time(T0 + 0.1234) == "2025-03-10T12:00:00.123Z"
    assert parse_time("2025-03-10T12:00:00.123Z") == pytest.approx(T0 + 0.123)


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


RUN = orjson.dumps(run_line("r1"))
END = EndRecord("r1", {}, False, format_time(T0)).to_json()


def test_readers_ignore_a_torn_last_line_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(RUN + b"\n\n  \r\n" + END + b'\n{"ty')
    assert [type(r) for r in read_ledger(path)] == [RunRecord, EndRecord]


def test_a_complete_but_unterminated_last_line_is_also_torn(tmp_path: Path) -> None:
    # The writer cuts it before appending, so readers must not count it either.
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(RUN + b"\n" + END)
    assert [type(r) for r in read_ledger(path)] == [RunRecord]


def test_a_damaged_line_in_the_middle_is_reported_with_its_line_number(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(RUN + b"\nnot json\n" + END + b"\n")
    with pytest.raises(LedgerCorrupt, match=r"ledger\.jsonl:2: not a ledger record"):
        list(read_ledger(path))
    path.write_bytes(b"[1, 2]\n")
    with pytest.raises(LedgerCorrupt, match=r":1:"):
        list(read_ledger(path))


def test_a_missing_ledger_replays_empty(tmp_path: Path) -> None:
    result = replay(tmp_path / "nope.jsonl", job_sha256=JOB)
    assert result == Replay()
    assert result.last_job_sha256 is None and not result.settled(add("u1").digest)


def test_replay_keeps_the_last_outcome_per_op_over_trailing_runs_of_the_job(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.jsonl"
    u1, u2, u3, u4 = add("u1"), add("u2"), add("u3"), add("u4")
    write_ledger(
        path,
        [
            run_line("r1"),
            op_line("r1", u1, "applied"),
            op_line("r1", u2, "deferred"),
            op_line("r1", u3, "failed"),
            run_line("r2"),
            op_line("r2", u2, "applied"),
            op_line("r2", u3, "skipped"),
            op_line("r2", u4, "deferred"),
        ],
    )
    result = replay(path, job_sha256=JOB)
    assert result.last_job_sha256 == JOB
    assert result.outcomes == {
        u1.digest: "applied",
        u2.digest: "applied",
        u3.digest: "skipped",
        u4.digest: "deferred",
    }
    assert [result.settled(op.digest) for op in (u1, u2, u3, u4)] == [True, True, True, False]
    assert not result.settled(add("never").digest)


def test_replay_stops_at_a_run_of_another_job(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    u1, u2 = add("u1"), add("u2")
    write_ledger(
        path,
        [
            run_line("r1"),
            op_line("r1", u1, "applied"),  # before the other job: not part of the trailing runs
            run_line("r2", OTHER_JOB),
            op_line("r2", u1, "failed"),
            run_line("r3"),
            op_line("r3", u2, "applied"),
        ],
    )
    assert replay(path, job_sha256=JOB).outcomes == {u2.digest: "applied"}


def test_replay_of_a_job_that_is_not_the_last_one_has_no_outcomes(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    write_ledger(
        path, [run_line("r1"), op_line("r1", add("u1"), "applied"), run_line("r2", OTHER_JOB)]
    )
    result = replay(path, job_sha256=JOB)
    assert result.last_job_sha256 == OTHER_JOB and result.outcomes == {}
    # Without a job to resume there is nothing to remember per operation.
    assert replay(path).outcomes == {}


def test_replay_computes_the_digest_when_the_op_id_is_unusable(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    rename = Operation("acc_1", "chat_A", "rename", name="Cohort 12")
    record = op_line("r1", rename, "applied") | {"op_id": "legacy"}
    write_ledger(path, [run_line("r1"), record])
    assert replay(path, job_sha256=JOB).outcomes == {
        op_digest("acc_1", "chat_A", "rename", "Cohort 12"): "applied"
    }


def test_replay_knows_each_accounts_last_record_in_any_run(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    write_ledger(
        path,
        [
            run_line("r1", OTHER_JOB),
            op_line("r1", add("u1", account="acc_1"), "applied", at=T0 + 5),
            op_line("r1", add("u2", account="acc_2"), "applied", at=T0 + 7),
            run_line("r2"),
            op_line("r2", add("u3", account="acc_1"), "failed", at=T0 + 9),
        ],
    )
    assert replay(path).last_record_at == {
        "acc_1": pytest.approx(T0 + 9),
        "acc_2": pytest.approx(T0 + 7),
    }


def test_writes_today_sums_write_attempts_of_the_current_utc_day(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    midnight = parse_time("2025-03-11T00:00:00.000Z")
    read = Operation("acc_1", "chat_B", "read")
    write_ledger(
        path,
        [
            run_line("r1"),
            op_line("r1", add("u1"), "applied", at=midnight - 0.001, attempts=5),  # yesterday
            op_line("r1", add("u2"), "applied", at=midnight, attempts=2),
            op_line("r1", read, "failed", at=midnight + 1, attempts=3),  # a read is no write
            op_line("r1", add("u3"), "deferred", at=midnight + 2, attempts=0),
            op_line("r1", add("u4", account="acc_2"), "failed", at=midnight + 3, attempts=4),
        ],
    )
    assert replay(path, now=midnight + 3600).writes_today == {"acc_1": 2, "acc_2": 4}
    assert replay(path, now=midnight - 1).writes_today == {"acc_1": 5}


def test_a_large_ledger_replays(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    n = 200_000
    with path.open("wb") as file:
        file.write(orjson.dumps(run_line("r1")) + b"\n")
        for i in range(n):
            op = add(f"u{i}", account=f"acc_{i % 100}", chat=f"chat_{i % 1000}")
            status = "applied" if i % 10 else "deferred"
            file.write(orjson.dumps(op_line("r1", op, status, at=T0 + i / 1000)) + b"\n")
    result = replay(path, job_sha256=JOB, now=T0)
    assert len(result.outcomes) == n
    assert sum(result.settled(d) for d in result.outcomes) == n - n // 10
    assert len(result.last_record_at) == 100
    assert sum(result.writes_today.values()) == n


async def test_an_error_in_the_run_propagates_after_the_queued_records_are_written(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.jsonl"
    with pytest.raises(KeyError):
        async with LedgerWriter(path, fsync_interval=3600) as ledger:
            for i in range(50):
                await ledger.record(Outcome(add(f"u{i}"), "applied", attempts=1), run_id="r1")
            raise KeyError("a bug in the run")
    assert len(parsed(path)) == 50


async def test_a_new_ledger_is_created_and_an_existing_one_appended_to(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    for run_id in ("r1", "r2"):
        async with LedgerWriter(path) as ledger:
            await ledger.run_started(run_id=run_id, job_sha256=JOB, resume=False, version="0")
    assert [r["run_id"] for r in parsed(path)] == ["r1", "r2"]


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0), st.integers(min_value=1, max_value=5))
def test_a_kill_at_any_byte_loses_only_the_line_being_written(at: int, count: int) -> None:
    whole = b"".join(orjson.dumps(run_line(f"r{i}")) + b"\n" for i in range(count))
    cut = at % (len(whole) + 1)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "ledger.jsonl"
        path.write_bytes(whole[:cut])
        survivors = [r.run_id for r in read_ledger(path)]
        assert survivors == [f"r{i}" for i in range(whole[:cut].count(b"\n"))]
        with path.open("r+b") as file:
            cut_torn_tail(file.fileno())
        with path.open("ab") as file:
            file.write(orjson.dumps(run_line("next")) + b"\n")
        assert [r.run_id for r in read_ledger(path)] == [*survivors, "next"]


# --------------------------------------------------------------------------------------------
# Write-ahead intents, group commit
# --------------------------------------------------------------------------------------------


def append_bytes(path: Path, data: bytes) -> None:
    with path.open("ab") as file:
        file.write(data)


def intent(user: str, attempt: int = 1, *, run_id: str = "r1", at: float = T0) -> IntentRecord:
    return IntentRecord.of(add(user), run_id=run_id, attempt=attempt, at=format_time(at))


async def test_an_intent_is_written_and_fsynced_before_append_durable_returns(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.jsonl"
    synced_sizes: list[int] = []

    def fsync(fd: int) -> None:
        synced_sizes.append(os.fstat(fd).st_size)

    async with LedgerWriter(path, fsync_interval=3600, fsync=fsync) as ledger:
        await ledger.append_durable(intent("u1"))
        assert synced_sizes == [path.stat().st_size]  # synced, and with the intent in it
        assert [r["type"] for r in parsed(path)] == ["intent"]


async def test_concurrent_intents_share_fsyncs(tmp_path: Path) -> None:
    """Group commit: intents handed over while an fsync runs are synced together by the next."""
    path = tmp_path / "ledger.jsonl"
    calls: list[int] = []

    def slow_fsync(fd: int) -> None:
        calls.append(fd)
        time.sleep(0.02)

    async with LedgerWriter(path, fsync=slow_fsync) as ledger, anyio.create_task_group() as tg:
        for i in range(64):
            tg.start_soon(ledger.append_durable, intent(f"u{i}"))
    assert len(parsed(path)) == 64
    assert 1 <= len(calls) <= 8, len(calls)


# --------------------------------------------------------------------------------------------
# A ledger that cannot be written
# --------------------------------------------------------------------------------------------


async def test_a_full_disk_fails_the_writer_once_and_keeps_what_was_written(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.jsonl"
    full = False

    def write(fd: int, data: memoryview) -> int:
        if full:
            raise OSError(errno.ENOSPC, "No space left on device")
        return os.write(fd, data)

    failures: list[LedgerUnwritable] = []
    with pytest.raises(LedgerUnwritable) as raised:
        async with LedgerWriter(path, write=write, on_failure=failures.append) as ledger:
            await ledger.run_started(run_id="r1", job_sha256=JOB, resume=False, version="0")
            await ledger.append_durable(intent("u1"))
            full = True
            with pytest.raises(LedgerUnwritable):
                await ledger.append_durable(intent("u2"))  # its write must not be sent
            await ledger.record(Outcome(add("u3"), "applied", attempts=1), run_id="r1")  # dropped
            with pytest.raises(LedgerUnwritable):
                await ledger.append_durable(intent("u4"))
    assert failures == [raised.value]
    assert raised.value.path == str(path) and raised.value.exit_code == 4
    assert "No space left on device" in str(raised.value) and "--resume" in str(raised.value)
    assert [r["type"] for r in parsed(path)] == ["run", "intent"]  # intact


async def test_a_failing_fsync_fails_the_writer(tmp_path: Path) -> None:
    def broken_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(LedgerUnwritable, match="Input/output error"):
        async with LedgerWriter(tmp_path / "ledger.jsonl", fsync=broken_fsync) as ledger:
            with pytest.raises(LedgerUnwritable):
                await ledger.append_durable(intent("u1"))


@pytest.mark.parametrize(
    ("change", "cause"),
    [
        (lambda path: os.truncate(path, 0), "truncated by another process"),
        (lambda path: path.write_bytes(b""), "truncated by another process"),
        (lambda path: os.replace(path.with_name("other"), path), "replaced by another process"),
        (lambda path: path.unlink(), "removed by another process"),
        (lambda path: append_bytes(path, b"{}\n"), "appended to by another process"),
    ],
    ids=["truncate", "rewrite", "replace", "remove", "append"],
)
async def test_a_ledger_changed_by_another_process_fails_the_writer_at_its_next_batch(
    tmp_path: Path, change: Callable[[Path], object], cause: str
) -> None:
    path = tmp_path / "ledger.jsonl"
    (tmp_path / "other").write_bytes(b"")
    with pytest.raises(LedgerUnwritable, match=cause):
        async with LedgerWriter(path) as ledger:
            await ledger.append_durable(intent("u1"))
            change(path)
            with pytest.raises(LedgerUnwritable):
                await ledger.append_durable(intent("u2"))


def test_a_ledger_path_that_is_not_a_regular_file_is_refused_for_reading_and_writing(
    tmp_path: Path,
) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (fifo, tmp_path, Path("/dev/zero")):
        with pytest.raises(UsageError, match="ledger"):
            list(read_ledger(path))

        async def append(path: Path = path) -> None:
            async with LedgerWriter(path):
                pass

        with pytest.raises(UsageError, match="ledger"):
            anyio.run(append)


# --------------------------------------------------------------------------------------------
# Replay of intents, in-doubt outcomes and verify amendments
# --------------------------------------------------------------------------------------------


def intent_line(run_id: str, op: Operation, attempt: int = 1, *, at: float = T0) -> dict[str, Any]:
    return orjson.loads(
        IntentRecord.of(op, run_id=run_id, attempt=attempt, at=format_time(at)).to_json()
    )


def test_daily_limits_count_intents_and_fall_back_to_attempts_for_older_runs(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.jsonl"
    write_ledger(
        path,
        [
            run_line("old"),  # written before intents existed: its attempts count
            op_line("old", add("u1"), "applied", attempts=2),
            run_line("new"),
            intent_line("new", add("u2"), 1),
            intent_line("new", add("u2"), 2),
            op_line("new", add("u2"), "applied", attempts=2),  # counted once, by its intents
            intent_line("new", add("u3"), 1),  # killed before its outcome: still a write sent
        ],
    )
    assert replay(path, now=T0).writes_today == {"acc_1": 2 + 2 + 1}


def test_pending_writes_are_intents_without_an_outcome_and_outcomes_in_doubt(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.jsonl"
    u1, u2, u3, u4, u5 = (add(f"u{i}") for i in range(1, 6))
    in_doubt = op_line("r1", u3, "failed", attempts=6, reason="api_error") | {"in_doubt": True}
    write_ledger(
        path,
        [
            run_line("r1"),
            intent_line("r1", u1),
            op_line("r1", u1, "applied"),  # settled
            intent_line("r1", u2),  # no outcome: the process died with it in flight
            intent_line("r1", u3),
            in_doubt,
            intent_line("r1", u4),
            op_line("r1", u4, "failed", reason="api_error"),  # a definite refusal: not pending
            run_line("r2"),
            intent_line("r2", u5),
        ],
    )
    assert replay(path, job_sha256=JOB).pending == {u2.digest: u2, u3.digest: u3, u5.digest: u5}
    # Pending writes belong to the trailing runs of the job asked about.
    assert replay(path, job_sha256=OTHER_JOB).pending == {}
    assert replay(path).pending == {}


def test_a_later_outcome_settles_a_pending_write(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    u1 = add("u1")
    recovered = op_line("r2", u1, "applied", attempts=0) | {"recovered": True}
    write_ledger(path, [run_line("r1"), intent_line("r1", u1), run_line("r2"), recovered])
    result = replay(path, job_sha256=JOB)
    assert result.pending == {} and result.settled(u1.digest)


def test_a_verify_record_amends_the_outcome_resume_sees(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    u1 = add("u1")
    verify = VerifyRecord(u1.op_id, "r1", "failed", "not_effective", format_time(T0))
    write_ledger(
        path, [run_line("r1"), op_line("r1", u1, "applied"), orjson.loads(verify.to_json())]
    )
    result = replay(path, job_sha256=JOB)
    assert result.outcomes == {u1.digest: "failed"} and not result.settled(u1.digest)


def test_an_intent_counts_as_the_accounts_last_use(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    write_ledger(
        path,
        [
            run_line("r1"),
            op_line("r1", add("u1"), "applied", at=T0),
            intent_line("r1", add("u2"), at=T0 + 5),
        ],
    )
    assert replay(path).last_record_at == {"acc_1": pytest.approx(T0 + 5)}


WRITE_FOREVER = """
import sys, anyio
from bulkgroups.ledger import LedgerWriter
from bulkgroups.model import Operation, Outcome

async def main() -> None:
    async with LedgerWriter(sys.argv[1], fsync_every=8, fsync_interval=0.001) as ledger:
        await ledger.run_started(run_id="r1", job_sha256="a" * 64, resume=False, version="0")
        i = 0
        while True:
            op = Operation("acc_1", "chat_A", "add", user="u" * (i % 5000) + str(i))
            await ledger.record(Outcome(op, "applied", attempts=1), run_id="r1")
            i += 1

anyio.run(main)
"""


def test_kill_9_mid_run_leaves_whole_lines_and_the_next_writer_continues(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    process = subprocess.Popen([sys.executable, "-c", WRITE_FOREVER, str(path)])
    try:
        while not path.exists() or path.stat().st_size < 2_000_000:
            assert process.poll() is None, "the writer died on its own"
            time.sleep(0.01)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    records = list(read_ledger(path))
    assert isinstance(records[0], RunRecord) and len(records) > 100
    users = [r.user for r in records[1:] if isinstance(r, OpRecord) and r.user is not None]
    assert [int(user.lstrip("u")) for user in users] == list(range(len(records) - 1))

    async def append() -> None:
        async with LedgerWriter(path) as ledger:
            await ledger.run_started(run_id="r2", job_sha256=JOB, resume=True, version="0")

    anyio.run(append)
    assert lines(path)[-1].startswith(b'{"type":"run","run_id":"r2"')
    assert len(list(read_ledger(path))) == len(records) + 1


def test_a_pending_rename_keeps_the_previous_name_of_its_latest_intent(tmp_path: Path) -> None:
    # Run r1 renamed "A" to "B" and died; meanwhile the chat lost its name; run r2 tried the same
    # rename from no name and died too. What the next run records (and `undo` names back to) is
    # r2's word: no name, not r1's "A".
    rename = Operation("acc_1", "chat_A", "rename", name="B")
    path = tmp_path / "ledger.jsonl"

    def intent(run_id: str, previous: str | None) -> dict[str, Any]:
        record = IntentRecord.of(
            rename, run_id=run_id, attempt=1, at=format_time(T0), previous_name=previous
        )
        return orjson.loads(record.to_json())

    write_ledger(path, [run_line("r1"), intent("r1", "A")])
    assert replay(path, job_sha256=JOB).renamed_from == {rename.digest: "A"}
    write_ledger(path, [run_line("r1"), intent("r1", "A"), run_line("r2"), intent("r2", None)])
    result = replay(path, job_sha256=JOB)
    assert list(result.pending) == [rename.digest]
    assert result.renamed_from == {}
