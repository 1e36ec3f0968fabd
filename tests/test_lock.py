"""The ledger lock: one appending process per ledger, stale locks taken over."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from bulkgroups.errors import RunRefused
from bulkgroups.lock import LedgerLock, pid_alive

from helpers import processes


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    return tmp_path / "ledger.jsonl"


@pytest.fixture
def live_pid() -> Iterator[int]:
    """A process that stays alive for the test."""
    with processes.live_pid() as pid:
        yield pid


@pytest.fixture
def dead_pid() -> int:
    return processes.dead_pid()


def lock_path(ledger: Path) -> Path:
    return ledger.with_name(ledger.name + ".lock")


def write_lock(ledger: Path, pid: int, started_at: str = "2025-03-10T12:00:00.000Z") -> None:
    lock_path(ledger).write_bytes(orjson.dumps({"pid": pid, "started_at": started_at}))


def test_the_lock_file_holds_only_the_pid_and_start_time(ledger: Path) -> None:
    with LedgerLock(ledger):
        content = orjson.loads(lock_path(ledger).read_bytes())
        assert set(content) == {"pid", "started_at"}
        assert content["pid"] == os.getpid()
        assert content["started_at"].endswith("Z")
    assert not lock_path(ledger).exists()


def test_a_live_holder_refuses_the_run_naming_its_pid_start_and_lock(
    ledger: Path, live_pid: int
) -> None:
    write_lock(ledger, live_pid)
    with pytest.raises(RunRefused) as refused, LedgerLock(ledger):
        pytest.fail("the lock is held")
    message = str(refused.value)
    assert f"process {live_pid}" in message
    assert "2025-03-10T12:00:00.000Z" in message
    assert str(lock_path(ledger)) in message
    # The holder's lock is left alone.
    assert orjson.loads(lock_path(ledger).read_bytes())["pid"] == live_pid


def test_a_second_lock_in_the_same_process_is_refused(ledger: Path) -> None:
    with LedgerLock(ledger):
        with pytest.raises(RunRefused, match=f"process {os.getpid()}"), LedgerLock(ledger):
            pytest.fail("the lock is held")
        assert lock_path(ledger).exists()
    assert not lock_path(ledger).exists()


def test_a_lock_whose_process_is_gone_is_taken_over(ledger: Path, dead_pid: int) -> None:
    write_lock(ledger, dead_pid)
    with LedgerLock(ledger):
        assert orjson.loads(lock_path(ledger).read_bytes())["pid"] == os.getpid()
    assert not lock_path(ledger).exists()
    assert not list(ledger.parent.glob("*.stale"))


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_a_lock_left_by_an_earlier_process_with_our_pid_is_taken_over(ledger: Path) -> None:
    # Containers restart with the same pid (often 1): a lock older than this process is stale.
    write_lock(ledger, os.getpid(), started_at="2001-01-01T00:00:00.000Z")
    with LedgerLock(ledger):
        assert orjson.loads(lock_path(ledger).read_bytes())["started_at"] != (
            "2001-01-01T00:00:00.000Z"
        )


def test_an_unreadable_lock_is_taken_over(ledger: Path) -> None:
    lock_path(ledger).write_bytes(b"garbage")
    with LedgerLock(ledger):
        assert orjson.loads(lock_path(ledger).read_bytes())["pid"] == os.getpid()


def test_an_empty_lock_just_being_written_is_respected(ledger: Path) -> None:
    lock_path(ledger).write_bytes(b"")
    with pytest.raises(RunRefused), LedgerLock(ledger):
        pytest.fail("another process is creating the lock")


def test_exit_leaves_a_lock_that_is_no_longer_ours(ledger: Path, live_pid: int) -> None:
    with LedgerLock(ledger):
        # Someone broke and replaced our lock (it should not happen; we must not make it worse).
        lock_path(ledger).unlink()
        write_lock(ledger, live_pid)
    assert orjson.loads(lock_path(ledger).read_bytes())["pid"] == live_pid


def test_the_lock_can_be_taken_again_after_release(ledger: Path) -> None:
    lock = LedgerLock(ledger)
    with lock:
        pass
    with lock:
        assert lock_path(ledger).exists()


def test_pid_liveness(live_pid: int, dead_pid: int) -> None:
    assert pid_alive(live_pid)
    assert pid_alive(os.getpid())
    assert not pid_alive(dead_pid)
    assert not pid_alive(0) and not pid_alive(-1)


def test_breaking_a_stale_lock_puts_back_a_live_one_created_meanwhile(
    ledger: Path, live_pid: int
) -> None:
    # Another process judged the same stale lock, broke it and took the ledger before us: the
    # file we move aside is not the one we judged, so it goes back untouched.
    write_lock(ledger, live_pid)
    live = lock_path(ledger).read_bytes()
    LedgerLock(ledger)._remove_if_same((0, 0, b'{"pid":1}'))
    assert lock_path(ledger).read_bytes() == live
    assert not list(ledger.parent.glob("*.stale"))
