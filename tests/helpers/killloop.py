"""The kill loop (no tests here): `bulkgroups apply` SIGKILLed at seeded moments and resumed, then
run to the end, and what the simulator and the ledger then say.

Used by `test_kill9.py` (a few kills, in the suite) and `soak.py` (`make soak`: many kills of
a bigger job, figures printed). The simulator runs in the calling process; each `apply` is a real
process over real sockets, with a real lock file and a real ledger.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bulkgroups.model import WRITE_ACTIONS
from bulkgroups.records import OpRecord
from bulkgroups.report import amended_ops
from bulkgroups.simulator import Simulator

from .processes import (
    Finished,
    MixedJob,
    apply_command,
    desired_state_problems,
    duplicated_writes,
    environment,
    finish,
    key_file,
    kill_when,
    ledger_lines,
    mixed_job,
    run,
    start,
    write_key,
    writes_accepted,
)

# The engine's limits equal the simulator's: a resumed run that did not wait for the dead
# process's window, or a write sent twice, would show as a violation or a duplicate.
RATE = "20/s"
TAG = "kl"


@dataclass
class KillLoop:
    """What a kill loop did and found."""

    job: MixedJob
    ledger: Path
    limited_account: str
    daily_limit: int
    kills: int = 0
    runs: int = 0
    seconds: float = 0.0
    final: Finished | None = None
    report: dict[str, Any] = field(default_factory=dict)

    def records(self) -> list[dict[str, Any]]:
        records, _ = ledger_lines(self.ledger)
        return records

    def applied_writes(self) -> Counter[tuple[str, str, str, str | None]]:
        """The write operations recorded `applied` (as amended by verification), all runs."""
        return Counter(
            write_key(orjson.loads(record.to_json()))
            for record in amended_ops(self.ledger)
            if isinstance(record, OpRecord)
            and record.status == "applied"
            and record.action in WRITE_ACTIONS
        )


def _account_requests(sim: Simulator) -> int:
    return sum(1 for r in sim.requests() if r.kind in ("read", "write"))


def _write_requests(sim: Simulator) -> int:
    return sum(1 for r in sim.requests() if r.kind == "write")


def kill_loop(
    sim: Simulator,
    directory: Path,
    *,
    kills: int,
    seed: int,
    accounts: int = 6,
    chats: int = 5,
    daily_limit: int = 9,
    max_gap: int = 40,
    latency: str = "30ms",
) -> KillLoop:
    """Apply a seeded mixed job, SIGKILL it `kills` times, `--resume` each time, then run it to
    the end. The first account has `daily_limit`, fewer writes than its chats need.

    Each kill comes after a seeded number (1 to `max_gap`) of requests reached the simulator,
    counting, at a seeded toss, all account-scoped requests (kills during reads and between
    writes) or writes only. Answers come `latency` late, after the simulator applied the request:
    a kill right after a write arrived lands before its answer, so its outcome is never recorded
    and the next run must find it in effect."""
    limited = f"acc_{TAG}0"
    job = mixed_job(
        directory / "job.yaml",
        accounts=accounts,
        chats=chats,
        tag=TAG,
        settings={limited: {"daily_limit": daily_limit}},
    )
    loop = KillLoop(job, directory / "ledger.jsonl", limited, daily_limit)
    command = apply_command(
        sim, job.path, loop.ledger, key_file(sim, directory), rate=RATE, write_rate=RATE
    )
    rng = random.Random(seed)
    sim.set_faults(f"latency={latency}")
    started = time.monotonic()
    while loop.kills < kills:
        clock = _write_requests if rng.random() < 0.5 else _account_requests
        target = clock(sim) + rng.randint(1, max_gap)
        process = start([*command, *(["--resume"] if loop.runs else [])], directory)
        killed = kill_when(process, lambda at=target, clock=clock: clock(sim) >= at)
        ended = finish(process)
        loop.runs += 1
        if killed:
            loop.kills += 1
            if ended.code != -9:
                raise AssertionError(f"expected a SIGKILL\n{ended}")
        elif ended.code not in (0, 3):
            raise AssertionError(f"a run that was not killed failed\n{ended}")
    loop.final = run([*command, "--resume"], directory)
    loop.runs += 1
    loop.seconds = time.monotonic() - started
    shown = subprocess.run(
        [sys.executable, "-m", "bulkgroups", "report", str(loop.ledger), "--format", "json"],
        capture_output=True,
        check=True,
        cwd=directory,
        env=environment(),
    )
    loop.report = orjson.loads(shown.stdout)
    return loop


def problems(sim: Simulator, loop: KillLoop) -> list[str]:
    """Every broken promise of the kill loop (empty when the ledger told the truth)."""
    found: list[str] = []
    others = MixedJob(
        loop.job.path,
        {k: v for k, v in loop.job.members.items() if k[0] != loop.limited_account},
        {k: v for k, v in loop.job.names.items() if k[0] != loop.limited_account},
    )
    found += [f"not in its desired state: {p}" for p in desired_state_problems(sim, others)]
    found += [f"written twice: {k} x{n}" for k, n in duplicated_writes(sim).items()]
    accepted, applied = writes_accepted(sim), loop.applied_writes()
    if accepted != applied:
        found.append(
            f"accepted but not recorded applied: {dict(accepted - applied)}; recorded applied "
            f"but not accepted: {dict(applied - accepted)}"
        )
    limited = limited_writes(sim, loop)
    if limited > loop.daily_limit:
        found.append(f"{loop.limited_account} got {limited} writes, daily_limit {loop.daily_limit}")
    if loop.report.get("counts", {}).get("applied") != sum(accepted.values()):
        found.append(f"report says {loop.report.get('counts')}, {sum(accepted.values())} accepted")
    return found


def limited_writes(sim: Simulator, loop: KillLoop) -> int:
    return sum(1 for r in sim.requests(loop.limited_account) if r.kind == "write")


def figures(sim: Simulator, loop: KillLoop) -> dict[str, object]:
    accepted = writes_accepted(sim)
    return {
        "kills": loop.kills,
        "runs": loop.runs,
        "writes accepted": sum(accepted.values()),
        "applied recorded": sum(loop.applied_writes().values()),
        "duplicates": sum(n - 1 for n in accepted.values() if n > 1),
        "max writes on the limited account": f"{limited_writes(sim, loop)} (daily_limit {loop.daily_limit})",
        "recovered records": sum(1 for r in loop.records() if r.get("recovered")),
        "seconds": round(loop.seconds, 1),
    }
