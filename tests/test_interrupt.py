"""Ctrl-C and SIGTERM: `bulkgroups apply` stops sending, lets requests in flight finish, closes
the ledger with an `end` record marked interrupted, exits 130, and `--resume` completes the job.

The command runs as a real subprocess against a simulator in the test process; writes are slow
(1/s per account) so that the signal lands in the middle of the write phase.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from bulkgroups.model import WRITE_ACTIONS, parse_rate
from bulkgroups.simulator import Simulator

from helpers.processes import (
    apply_command,
    desired_state_problems,
    duplicated_writes,
    finish,
    key_file,
    ledger_lines,
    mixed_job,
    requests_sent,
    run,
    signal_when,
    start,
    write_key,
)
from helpers.simulator import SimFactory

RATE = "50/s"
WRITE_RATE = "1/s"


def _writes(sim: Simulator) -> list[float]:
    return [r.at for r in sim.requests() if r.kind == "write"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_the_writes_stops_sending_and_resume_completes_the_job(
    sim_factory: SimFactory, tmp_path: Path, signum: signal.Signals
) -> None:
    sim = sim_factory(rate=parse_rate(RATE), write_rate=parse_rate(WRITE_RATE))
    job = mixed_job(tmp_path / "job.yaml", accounts=2, chats=2, tag="int")
    ledger = tmp_path / "ledger.jsonl"
    command = apply_command(
        sim, job.path, ledger, key_file(sim, tmp_path), rate=RATE, write_rate=WRITE_RATE
    )

    process = start(command, tmp_path)
    assert signal_when(process, lambda: len(_writes(sim)) >= 3, signum), finish(process)
    signalled_at = time.monotonic()
    interrupted = finish(process)

    assert interrupted.code == 130, interrupted
    assert "--resume" in interrupted.stdout
    # Stopped sending: per account at most the write that was in flight (or about to go) when
    # the signal arrived; at 1 write/s nothing queued behind it in the pacer went out.
    late = Counter(r.account for r in sim.requests() if r.kind == "write" and r.at > signalled_at)
    assert all(n <= 1 for n in late.values()), late
    sent = len(_writes(sim))
    assert sent < sum(7 for _ in range(2)), "the signal came too late to interrupt anything"

    records, torn = ledger_lines(ledger)
    assert torn == b""
    assert [r["type"] for r in records if r["type"] not in ("op", "intent")] == ["run", "end"]
    # Write-ahead: every write request that left has its intent in the ledger.
    intents = Counter(write_key(r) for r in records if r["type"] == "intent")
    assert requests_sent(sim) - intents == Counter()
    end = records[-1]
    assert end["type"] == "end" and end["interrupted"] is True
    ops = [r for r in records if r["type"] == "op"]
    assert end["counts"] == {
        status: sum(1 for r in ops if r["status"] == status)
        for status in ("applied", "skipped", "deferred", "failed")
    }
    # Nothing is recorded for an operation never attempted: every recorded write was sent.
    for record in ops:
        if record["action"] in WRITE_ACTIONS:
            assert record["attempts"] >= 1, record
    assert sum(1 for r in ops if r["action"] in WRITE_ACTIONS) <= sent
    assert not (ledger.parent / (ledger.name + ".lock")).exists()

    resumed = run([*command, "--resume"], tmp_path)
    assert resumed.code == 0, resumed
    assert desired_state_problems(sim, job) == []
    assert duplicated_writes(sim) == {}
    assert sim.violations() == 0
    records, torn = ledger_lines(ledger)
    assert torn == b""
    runs = [r for r in records if r["type"] == "run"]
    assert [r["resume"] for r in runs] == [False, True]
    assert records[-1]["type"] == "end" and records[-1]["interrupted"] is False
    # Every operation reached exactly one applied or skipped outcome over the two runs.
    settled = Counter(r["op_id"] for r in records if r["type"] == "op")
    assert all(n == 1 for n in settled.values()), settled


def test_a_signal_before_the_writes_stops_at_once_with_nothing_to_resume(
    sim_factory: SimFactory, tmp_path: Path
) -> None:
    sim = sim_factory(rate=parse_rate("2/s"))
    job = mixed_job(tmp_path / "job.yaml", accounts=1, chats=5, tag="early")
    ledger = tmp_path / "ledger.jsonl"
    command = apply_command(
        sim, job.path, ledger, key_file(sim, tmp_path), rate="2/s", write_rate="2/s"
    )
    reads = lambda: sum(1 for r in sim.requests() if r.kind == "read")  # noqa: E731

    process = start(command, tmp_path)
    assert signal_when(process, lambda: reads() >= 2, signal.SIGINT), finish(process)
    stopped = finish(process)

    assert stopped.code == 130, stopped
    assert not any(r.kind == "write" for r in sim.requests())
    records, torn = ledger_lines(ledger)
    assert records == [] and torn == b""
    assert not (tmp_path / "ledger.jsonl.lock").exists()
