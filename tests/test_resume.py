"""`apply --resume`, the ledger lock and pacing across runs (CONTRACT.md, "Ledger" lifecycle).

Engine-level tests run `apply_job` in the test process against the threaded simulator; exit codes
and the lock's messages are checked through a real `bulkgroups apply` subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

from bulkgroups.client import UnipileClient
from bulkgroups.engine import EngineConfig, RunResult, apply_job
from bulkgroups.jobs import load_job
from bulkgroups.lock import LedgerLock
from bulkgroups.model import RateSpec, parse_rate
from bulkgroups.simulator import Simulator, initial_members, owner_id

from helpers.engine import ledger_records, op_records, write_job
from helpers.processes import apply_command, key_file, run
from helpers.simulator import SimFactory

FAST = RateSpec(100, 1.0)


async def _apply(
    sim: Simulator,
    job: Path,
    ledger: Path,
    *,
    resume: bool = False,
    rate: RateSpec = FAST,
) -> RunResult:
    config = EngineConfig(rate=rate, write_rate=rate, max_removals=None, verify_delay=0.05)
    async with UnipileClient(sim.url, api_key=sim.api_key) as client:
        return await apply_job(load_job(job), client, ledger=ledger, config=config, resume=resume)


def _runs(ledger: Path) -> list[dict[str, object]]:
    return [r for r in ledger_records(ledger) if r["type"] == "run"]


def _ops_of(ledger: Path, run_id: object) -> list[dict[str, object]]:
    return [r for r in op_records(ledger) if r["run_id"] == run_id]


def _two_account_job(path: Path) -> Path:
    return write_job(
        path,
        [
            {"chat": "chat_a", "account": "acc_ok", "add": ["ACoAA0401", "ACoAA0402"]},
            {"chat": "chat_b", "account": "acc_ok", "add": ["ACoAA0403"]},
            {"chat": "chat_c", "account": "acc_later", "add": ["ACoAA0404", "ACoAA0405"]},
        ],
    )


async def test_resume_skips_what_is_settled_and_retries_what_failed(
    sim: Simulator, tmp_path: Path
) -> None:
    job = _two_account_job(tmp_path / "job.yaml")
    ledger = tmp_path / "ledger.jsonl"
    sim.configure_account("acc_later", status="paused")

    first = await _apply(sim, job, ledger)
    assert first.counts["applied"] == 3 and first.counts["failed"] == 2
    assert first.exit_code == 3

    # Out of band, someone removes a member the first run added: a resumed run trusts the
    # ledger for that operation (settled), while the paused account's failures are retried.
    sim.configure_chat(
        "acc_ok",
        "chat_a",
        members=sorted(sim.members("acc_ok", "chat_a") - {owner_id("acc_ok"), "ACoAA0401"}),
    )
    sim.configure_account("acc_later", status="running")
    writes_before = [r for r in sim.requests() if r.kind == "write"]

    second = await _apply(sim, job, ledger, resume=True)

    assert second.exit_code == 0
    resumed_ops = _ops_of(ledger, second.run_id)
    assert {(r["chat"], r["user"], r["status"]) for r in resumed_ops} == {
        ("chat_c", "ACoAA0404", "applied"),
        ("chat_c", "ACoAA0405", "applied"),
    }
    writes = [r for r in sim.requests() if r.kind == "write"][len(writes_before) :]
    assert {(r.chat, r.user) for r in writes} == {("chat_c", "ACoAA0404"), ("chat_c", "ACoAA0405")}
    assert "ACoAA0401" not in sim.members("acc_ok", "chat_a")
    assert [r["resume"] for r in _runs(ledger)] == [False, True]

    # A fresh apply (no --resume) is a new run that plans from fresh reads alone: it records
    # every operation it plans again, and puts back what was changed out of band.
    third = await _apply(sim, job, ledger)
    assert third.exit_code == 0
    fresh_ops = _ops_of(ledger, third.run_id)
    assert len(fresh_ops) == 5
    assert {(r["user"], r["status"], r["reason"]) for r in fresh_ops} == {
        ("ACoAA0401", "applied", None),
        ("ACoAA0402", "skipped", "already_member"),
        ("ACoAA0403", "skipped", "already_member"),
        ("ACoAA0404", "skipped", "already_member"),
        ("ACoAA0405", "skipped", "already_member"),
    }
    assert "ACoAA0401" in sim.members("acc_ok", "chat_a")
    assert sim.violations() == 0


async def test_resume_with_no_ledger_starts_fresh(sim: Simulator, tmp_path: Path) -> None:
    job = _two_account_job(tmp_path / "job.yaml")
    ledger = tmp_path / "new" / "ledger.jsonl"
    ledger.parent.mkdir()

    result = await _apply(sim, job, ledger, resume=True)

    assert result.exit_code == 0 and result.counts["applied"] == 5
    runs = _runs(ledger)
    assert len(runs) == 1 and runs[0]["resume"] is True
    assert len(op_records(ledger)) == 5


def test_resume_of_another_job_exits_1_and_sends_nothing(sim: Simulator, tmp_path: Path) -> None:
    key = key_file(sim, tmp_path)
    ledger = tmp_path / "ledger.jsonl"
    first_job = write_job(
        tmp_path / "a.yaml", [{"chat": "c1", "account": "acc_1", "add": ["ACoAA0001"]}]
    )
    other_job = write_job(
        tmp_path / "b.yaml", [{"chat": "c2", "account": "acc_1", "add": ["ACoAA0002"]}]
    )
    first = run(
        apply_command(sim, first_job, ledger, key, rate="100/s", write_rate="100/s"), tmp_path
    )
    assert first.code == 0, first
    before = ledger.read_bytes()
    requests_before = len(sim.requests())

    refused = run(
        apply_command(
            sim, other_job, ledger, key, rate="100/s", write_rate="100/s", extra=["--resume"]
        ),
        tmp_path,
    )

    assert refused.code == 1, refused
    assert "another job" in refused.stderr
    assert len(sim.requests()) == requests_before
    assert ledger.read_bytes() == before
    assert not (tmp_path / "ledger.jsonl.lock").exists()


def test_a_ledger_held_by_a_live_process_is_refused_naming_it(
    sim: Simulator, tmp_path: Path
) -> None:
    job = write_job(
        tmp_path / "job.yaml", [{"chat": "c1", "account": "acc_1", "add": ["ACoAA0001"]}]
    )
    ledger = tmp_path / "ledger.jsonl"
    command = apply_command(
        sim, job, ledger, key_file(sim, tmp_path), rate="100/s", write_rate="100/s"
    )

    with LedgerLock(ledger):  # this test process is the live holder
        refused = run(command, tmp_path)

    assert refused.code == 1, refused
    assert f"process {os.getpid()}" in refused.stderr
    assert sim.requests() == ()
    assert not ledger.exists()


def test_a_lock_left_by_a_dead_process_is_taken_over(sim: Simulator, tmp_path: Path) -> None:
    job = write_job(
        tmp_path / "job.yaml", [{"chat": "c1", "account": "acc_1", "add": ["ACoAA0001"]}]
    )
    ledger = tmp_path / "ledger.jsonl"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True
    )
    lock = tmp_path / "ledger.jsonl.lock"
    lock.write_bytes(
        orjson.dumps({"pid": int(dead.stdout), "started_at": "2024-01-01T00:00:00.000Z"}) + b"\n"
    )

    result = run(
        apply_command(sim, job, ledger, key_file(sim, tmp_path), rate="100/s", write_rate="100/s"),
        tmp_path,
    )

    assert result.code == 0, result
    assert "ACoAA0001" in sim.members("acc_1", "c1")
    assert not lock.exists()


async def test_back_to_back_runs_on_one_ledger_stay_within_the_limits(
    sim_factory: SimFactory, tmp_path: Path
) -> None:
    """The simulator's limit equals the engine's: the second run's first requests would break
    it unless it waits for the first run's window, reads included (a chat already in its desired
    state leaves no record in the ledger)."""
    limit = parse_rate("10/s")
    sim = sim_factory(rate=limit, write_rate=limit)
    chats = []
    for number in range(6):
        chat = f"quiet_{number}"
        chats.append(
            {"chat": chat, "account": "acc_q", "members": list(initial_members("acc_q", chat)[1:])}
        )
    chats.append({"chat": "busy", "account": "acc_busy", "add": ["ACoAA0499"]})
    job = write_job(tmp_path / "job.yaml", chats)
    ledger = tmp_path / "ledger.jsonl"

    first = await _apply(sim, job, ledger, rate=limit)
    second = await _apply(sim, job, ledger, rate=limit)
    third = await _apply(sim, job, ledger, rate=limit, resume=True)

    assert (first.exit_code, second.exit_code, third.exit_code) == (0, 0, 0)
    assert len(sim.timeline("acc_q")) >= 3 * 12  # each run read every chat (chat + participants)
    assert sim.violations() == 0
