"""`apply --every DURATION [--max-runs N]`: a job kept reconciled without cron. Each pass is a run
in the ledger, with one summary line; the ledger's lock is held from the first pass to the end;
SIGTERM while sleeping exits 0 at once, during a pass it stops the run (130); the exit code is the
last pass's; --resume continues the first pass only; DURATION has one grammar."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from bulkgroups.durations import compact_duration, parse_duration
from bulkgroups.engine import shard_of
from bulkgroups.schedule import JITTER_SHARE, Schedule
from bulkgroups.simulator import Simulator, initial_members, owner_id

from helpers.cli import Cli, connect, writes
from helpers.engine import ledger_records, write_job
from helpers.processes import apply_command, finish, key_file, start

ACCOUNT = "acc_every"
PASS = re.compile(
    r"^pass (\d+) \(run (\S+)\): (\d+) applied, (\d+) skipped, (\d+) deferred, (\d+) failed "
    r"in \S+; (.+)$"
)


def newcomers(count: int) -> list[str]:
    members = set(initial_members(ACCOUNT, "room"))
    return [u for u in (f"ACoAA{n:04d}" for n in range(9000, 9100)) if u not in members][:count]


def job_file(tmp_path: Path, users: list[str], **chat: Any) -> Path:
    return write_job(
        tmp_path / "job.yaml", [{"chat": "room", "account": ACCOUNT, "add": users, **chat}]
    )


def runs(ledger: Path) -> list[dict[str, Any]]:
    return [r for r in ledger_records(ledger) if r["type"] == "run"]


def ends(ledger: Path) -> list[dict[str, Any]]:
    return [r for r in ledger_records(ledger) if r["type"] == "end"]


def passes(out: str) -> list[re.Match[str]]:
    return [m for m in map(PASS.match, out.splitlines()) if m]


# ----------------------------------------------------------------------------- the grammar


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("15m", 900.0),
        ("15min", 900.0),
        ("1h", 3600.0),
        ("1d", 86_400.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("0.25s", 0.25),
        (" 2M ", 120.0),
    ],
)
def test_a_duration_is_a_number_and_a_unit_or_several(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("15", "did you mean 15s or 15m?"),
        ("0", "must be more than 0 seconds"),  # not "did you mean 0s?": 0s is refused too
        ("0.0", "must be more than 0 seconds"),
        ("0s", "more than 0 seconds"),
        ("0m0s", "more than 0 seconds"),
        ("-5m", "cannot be negative"),
        ("5 minutes", "expected a number and a unit"),
        ("1w", "expected a number and a unit"),
        ("1e3s", "expected a number and a unit"),
        ("", "expected a number and a unit"),
        ("m", "expected a number and a unit"),
    ],
)
def test_anything_else_is_refused_with_the_forms_accepted(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        parse_duration(text)


def test_durations_print_in_their_two_largest_units() -> None:
    assert [compact_duration(s) for s in (0.01, 0.4, 12, 140, 900, 3900, 3600, 90_000)] == [
        "0s", "0.4s", "12s", "2m20s", "15m", "1h05m", "1h", "1d1h",
    ]  # fmt: skip


def test_the_sleep_is_the_duration_plus_at_most_a_tenth_of_it() -> None:
    import random

    schedule = Schedule(600.0, 3)
    pauses = [schedule.pause(random.Random(seed)) for seed in range(200)]
    assert all(600.0 <= p <= 600.0 * (1 + JITTER_SHARE) for p in pauses)
    assert max(pauses) - min(pauses) > 30  # it does vary
    assert [schedule.last(n) for n in (1, 2, 3)] == [False, False, True]


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--every", "0s"], "--every"),
        (["--every", "15"], "did you mean 15s or 15m?"),
        (["--every", "-1m"], "--every"),
        (["--max-runs", "2"], "--max-runs counts the passes of --every"),
        (["--every", "1m", "--max-runs", "0"], "--max-runs"),
        (["--every", "1m", "--dry-run"], "not with --dry-run or --plan"),
    ],
)
def test_nonsense_is_refused_before_anything_is_sent(
    cli: Cli, sim: Simulator, tmp_path: Path, flags: list[str], says: str
) -> None:
    run = cli.run("apply", job_file(tmp_path, newcomers(1)), *flags, *connect(sim, tmp_path))
    assert run.code == 1
    assert says in run.err
    assert sim.requests() == ()


# --------------------------------------------------------------------------------- passes


def test_each_pass_is_a_run_in_the_ledger_with_one_summary_line(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.jsonl"
    job = job_file(tmp_path, newcomers(2))
    run = cli.run(
        "apply", job, "--ledger", ledger, "--every", "0.1s", "--max-runs", "3",
        *connect(sim, tmp_path),
    )  # fmt: skip
    assert run.code == 0, run.err
    lines = passes(run.out)
    assert [int(m.group(1)) for m in lines] == [1, 2, 3]
    assert [m.group(2) for m in lines] == [r["run_id"] for r in runs(ledger)]
    assert [int(m.group(3)) for m in lines] == [2, 0, 0]  # once in sync, nothing to do
    assert lines[0].group(7).startswith("next in about 0.1s")
    assert lines[2].group(7) == "--max-runs 3 reached"
    assert [e["interrupted"] for e in ends(ledger)] == [False, False, False]
    assert len(writes(sim)) == 2
    assert not Path(f"{ledger}.lock").exists()


def test_in_a_ledger_directory_the_passes_append_to_the_shards_own_file(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    directory = tmp_path / "ledgers"
    shard = f"{shard_of(ACCOUNT, 2)}/2"
    run = cli.run(
        "apply", job_file(tmp_path, newcomers(2)), "--ledger", f"{directory}/", "--shard", shard,
        "--every", "0.1s", "--max-runs", "2", *connect(sim, tmp_path),
    )  # fmt: skip
    assert run.code == 0, run.err
    own = directory / f"shard-{shard.replace('/', '-of-')}.jsonl"
    assert sorted(p.name for p in directory.iterdir()) == [own.name]  # its lock is gone too
    assert [int(m.group(3)) for m in passes(run.out)] == [2, 0]
    assert [m.group(2) for m in passes(run.out)] == [r["run_id"] for r in runs(own)]


def test_the_exit_code_is_the_last_passes(cli: Cli, sim: Simulator, tmp_path: Path) -> None:
    sim.configure_chat(ACCOUNT, "room", deleted=True)
    ledger = tmp_path / "ledger.jsonl"
    run = cli.run(
        "apply", job_file(tmp_path, newcomers(1)), "--ledger", ledger, "--every", "0.1s",
        "--max-runs", "2", *connect(sim, tmp_path),
    )  # fmt: skip
    assert run.code == 3  # a failed operation in the last pass
    assert [int(m.group(6)) for m in passes(run.out)] == [1, 1]
    assert "Failed or deferred" in run.out


def test_a_refused_pass_ends_the_loop_with_exit_1(cli: Cli, sim: Simulator, tmp_path: Path) -> None:
    members = [m for m in initial_members(ACCOUNT, "room") if m != owner_id(ACCOUNT)][:3]
    job = job_file(tmp_path, [], remove=members)
    ledger = tmp_path / "ledger.jsonl"
    run = cli.run(
        "apply", job, "--ledger", ledger, "--every", "0.1s", "--max-removals", "1",
        *connect(sim, tmp_path),
    )  # fmt: skip
    assert run.code == 1
    assert "--max-removals" in run.err
    assert passes(run.out) == [] and writes(sim) == []


def test_resume_continues_the_first_pass_only(cli: Cli, sim: Simulator, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    job = job_file(tmp_path, newcomers(2))
    assert cli.run("apply", job, "--ledger", ledger, *connect(sim, tmp_path)).code == 0
    run = cli.run(
        "apply", job, "--ledger", ledger, "--resume", "--every", "0.1s", "--max-runs", "2",
        *connect(sim, tmp_path),
    )  # fmt: skip
    assert run.code == 0, run.err
    assert [r["resume"] for r in runs(ledger)] == [False, True, False]


# -------------------------------------------------------------------- signals and the lock


def read_until(process: subprocess.Popen[bytes], pattern: str, seconds: float = 60.0) -> str:
    """The process's stdout up to a line matching `pattern` (asserting it comes in time)."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    seen = b""
    deadline = time.monotonic() + seconds
    while not re.search(pattern, seen.decode(errors="replace"), re.MULTILINE):
        remaining = deadline - time.monotonic()
        assert remaining > 0 and process.poll() is None, seen.decode(errors="replace")
        ready, _, _ = select.select([fd], [], [], min(remaining, 1.0))
        if ready:
            seen += os.read(fd, 65536)
    return seen.decode(errors="replace")


def scheduler(sim: Simulator, tmp_path: Path, job: Path, *extra: str) -> subprocess.Popen[bytes]:
    command = apply_command(
        sim,
        job,
        tmp_path / "ledger.jsonl",
        key_file(sim, tmp_path),
        rate="20/s",
        write_rate="20/s",
        extra=extra,
    )
    return start(command, tmp_path)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_while_sleeping_exits_0_at_once_and_releases_the_lock(
    sim: Simulator, tmp_path: Path, signum: signal.Signals
) -> None:
    process = scheduler(sim, tmp_path, job_file(tmp_path, newcomers(1)), "--every", "1h")
    read_until(process, r"^pass 1 .*; next in about 1h")
    process.send_signal(signum)
    ended = finish(process)  # an hour's sleep would time out here
    assert ended.code == 0, ended
    ledger = tmp_path / "ledger.jsonl"
    assert [e["interrupted"] for e in ends(ledger)] == [False]
    assert not Path(f"{ledger}.lock").exists()


def test_a_signal_during_a_pass_stops_it_as_without_every(sim: Simulator, tmp_path: Path) -> None:
    command = apply_command(
        sim,
        job_file(tmp_path, newcomers(6)),
        tmp_path / "ledger.jsonl",
        key_file(sim, tmp_path),
        rate="20/s",
        write_rate="1/0.5s",
        extra=["--every", "1h"],
    )
    process = start(command, tmp_path)
    deadline = time.monotonic() + 60
    while len(writes(sim)) < 2:
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    ended = finish(process)
    assert ended.code == 130, ended
    assert re.search(
        r"^pass 1 .*interrupted: run the same command with --resume", ended.stdout, re.M
    )
    ledger = tmp_path / "ledger.jsonl"
    assert [e["interrupted"] for e in ends(ledger)] == [True]


def test_the_lock_is_held_while_sleeping(cli: Cli, sim: Simulator, tmp_path: Path) -> None:
    job = job_file(tmp_path, newcomers(1))
    process = scheduler(sim, tmp_path, job, "--every", "1h")
    try:
        read_until(process, r"^pass 1 ")
        other = cli.run(
            "apply", job, "--ledger", tmp_path / "ledger.jsonl", *connect(sim, tmp_path)
        )
        assert other.code == 1
        assert f"in use by process {process.pid}" in other.err
    finally:
        process.send_signal(signal.SIGTERM)
        assert finish(process).code == 0


def test_the_job_files_are_read_again_at_each_pass(sim: Simulator, tmp_path: Path) -> None:
    first, second = newcomers(2)
    job = job_file(tmp_path, [first])
    process = scheduler(sim, tmp_path, job, "--every", "4s", "--max-runs", "2")
    head = read_until(process, r"^pass 1 ")
    job_file(tmp_path, [first, second])  # edited while the scheduler sleeps
    ended = finish(process)
    assert ended.code == 0, ended
    assert [int(m.group(3)) for m in passes(head + ended.stdout)] == [1, 1]
    assert {first, second} <= sim.members(ACCOUNT, "room")


async def test_a_lock_held_for_another_ledger_is_refused_before_anything_is_sent(
    sim: Simulator, tmp_path: Path
) -> None:
    from bulkgroups.client import UnipileClient
    from bulkgroups.engine import apply_job
    from bulkgroups.errors import UsageError
    from bulkgroups.jobs import load_job
    from bulkgroups.lock import LedgerLock

    job = load_job(job_file(tmp_path, newcomers(1)))
    with LedgerLock(tmp_path / "other.jsonl") as lock:
        async with UnipileClient(sim.url, api_key=sim.api_key) as client:
            with pytest.raises(UsageError, match="is not the ledger"):
                await apply_job(job, client, ledger=tmp_path / "ledger.jsonl", lock=lock)
    assert sim.requests() == ()
