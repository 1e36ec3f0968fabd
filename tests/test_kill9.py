"""kill -9: `bulkgroups apply` killed at any moment, then `--resume`d, converges exactly once and
its ledger tells the truth.

A real subprocess is SIGKILLed at seeded moments (after a seeded number of its requests reached
the simulator: during the reads or among the writes) of a seeded job over several accounts that
mixes desired-state and imperative chats, one account with a `daily_limit` smaller than its
chats need; the same command is run again with `--resume` each time (the killed process's lock
is stale and taken over), then once more to the end. Then: every chat of the other accounts is
in its desired state, no change was made twice, the writes the simulator accepted are exactly
the operations the ledger records `applied` (killed runs' unrecorded writes recovered by the next
run's read), the limited account got at most its daily limit of write requests over all the
runs, `report` counts the true number of applied operations, and no rate limit was broken.
(`make soak` runs the same loop with 25 kills of a bigger job.)
"""

from __future__ import annotations

import os
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import orjson

from bulkgroups.model import parse_rate

from helpers.killloop import RATE, figures, kill_loop, problems
from helpers.processes import (
    apply_command,
    desired_state_problems,
    key_file,
    ledger_lines,
    mixed_job,
    run,
)
from helpers.simulator import SimFactory


def test_killed_at_seeded_moments_and_resumed_the_ledger_records_exactly_what_was_done(
    sim_factory: SimFactory, tmp_path: Path
) -> None:
    sim = sim_factory(rate=parse_rate(RATE), write_rate=parse_rate(RATE))
    day = datetime.now(UTC).date()

    loop = kill_loop(sim, tmp_path, kills=5, seed=7)

    assert loop.final is not None and loop.final.code == 3, loop.final  # daily_limit deferrals
    if datetime.now(UTC).date() != day:  # the limit is per UTC day: the loop crossed midnight
        loop.daily_limit *= 2
    assert problems(sim, loop) == [], figures(sim, loop)
    # The seeded kills landed between writes reaching the server and their outcomes being
    # recorded: the next runs found them in effect.
    assert any(r.get("recovered") for r in loop.records()), figures(sim, loop)
    assert sim.violations_by_account() == {}
    assert not (tmp_path / "ledger.jsonl.lock").exists()

    records, torn = ledger_lines(loop.ledger)
    assert torn == b""
    runs = [r for r in records if r["type"] == "run"]
    # Only the first invocation is not a resume (it may have died before writing its `run`).
    assert all(r["resume"] for r in runs[1:])
    assert len({r["job_sha256"] for r in runs}) == 1
    assert records[-1]["type"] == "end" and records[-1]["run_id"] == runs[-1]["run_id"]
    final_ops = [r for r in records if r["type"] == "op" and r["run_id"] == runs[-1]["run_id"]]
    assert {(r["status"], r["reason"]) for r in final_ops if r["status"] != "applied"} <= {
        ("deferred", "daily_limit")
    }
    # A settled operation is never recorded again by a resumed run.
    settled = Counter(
        r["op_id"] for r in records if r["type"] == "op" and r["status"] in ("applied", "skipped")
    )
    assert [op for op, n in settled.items() if n > 1] == []


def test_a_torn_last_line_is_cut_by_the_resumed_run(
    sim_factory: SimFactory, tmp_path: Path
) -> None:
    sim = sim_factory(rate=parse_rate("100/s"), write_rate=parse_rate("100/s"))
    job = mixed_job(tmp_path / "job.yaml", accounts=1, chats=2, tag="torn")
    ledger = tmp_path / "ledger.jsonl"
    command = apply_command(
        sim, job.path, ledger, key_file(sim, tmp_path), rate="100/s", write_rate="100/s"
    )
    first = run(command, tmp_path)
    assert first.code == 0, first
    whole = ledger.read_bytes()
    # What a kill -9 in the middle of a record's write leaves behind.
    torn = b'{"type":"op","op_id":"0123456789abcdef0123456789abcdef","run_id":"20'
    with open(ledger, "ab") as file:
        file.write(torn)
    writes_before = sum(1 for r in sim.requests() if r.kind == "write")

    resumed = run([*command, "--resume"], tmp_path)

    assert resumed.code == 0, resumed
    data = ledger.read_bytes()
    assert data.startswith(whole) and torn not in data and data.endswith(b"\n")
    records, tail = ledger_lines(ledger)
    assert tail == b""
    new = [orjson.loads(line) for line in data[len(whole) :].splitlines()]
    assert [r["type"] for r in new] == ["run", "end"]  # everything was settled already
    assert new[0]["resume"] is True
    assert sum(1 for r in sim.requests() if r.kind == "write") == writes_before
    assert desired_state_problems(sim, job) == []
    assert len(records) == len(whole.splitlines()) + 2
    assert os.path.getsize(ledger) == len(data)
