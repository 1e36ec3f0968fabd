"""kill -9: `bulkgroups apply` killed at any moment, then `--resume`d, converges exactly once.

A real subprocess is SIGKILLed at seeded moments (after a seeded number of its requests reached
the simulator: during the reads or among the writes), and the same command is run again with
`--resume` each time; the killed process's lock is stale and taken over. In the end every chat
is in its desired state, no change was made twice, no rate limit was ever broken (a resumed run
waits a full window, since the dead process may have sent requests after its last record), and
every line of the ledger parses.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from pathlib import Path

import orjson
from conftest import SimFactory
from resume_helpers import (
    apply_command,
    desired_state_problems,
    duplicated_writes,
    finish,
    key_file,
    kill_when,
    ledger_lines,
    mixed_job,
    run,
    start,
)

from bulkgroups.model import parse_rate
from bulkgroups.simulator import Simulator

# The engine's limits equal the simulator's, so that any request a dead process sent near its
# death, plus the resumed run's first ones, would break the strict count if the resumed run did
# not wait.
RATE = "20/s"


def _account_requests(sim: Simulator) -> int:
    return sum(1 for r in sim.requests() if r.kind in ("read", "write"))


def test_killed_at_seeded_moments_and_resumed_the_job_converges_exactly_once(
    sim_factory: SimFactory, tmp_path: Path
) -> None:
    sim = sim_factory(rate=parse_rate(RATE), write_rate=parse_rate(RATE))
    job = mixed_job(tmp_path / "job.yaml", accounts=6, chats=5, tag="k")
    ledger = tmp_path / "ledger.jsonl"
    lock = tmp_path / "ledger.jsonl.lock"
    command = apply_command(
        sim, job.path, ledger, key_file(sim, tmp_path), rate=RATE, write_rate=RATE
    )
    rng = random.Random(20240607)
    kills = 0

    for round_number in range(4):
        seen = _account_requests(sim)
        target = seen + rng.randint(1, 80)
        process = start([*command, *(["--resume"] if round_number else [])], tmp_path)
        killed = kill_when(process, lambda at=target: _account_requests(sim) >= at)
        ended = finish(process)
        if not killed:
            assert ended.code == 0, ended  # finished before the chosen moment
            break
        kills += 1
        assert ended.code == -9, ended
        # The dead process's lock is still there, naming it: the next run must take it over.
        assert orjson.loads(lock.read_bytes())["pid"] == process.pid
        # Every whole line parses; at most a torn last line (cut by the next run).
        ledger_lines(ledger)

    assert kills >= 3, "the seeded moments should interrupt most runs"
    final = run([*command, "--resume"], tmp_path)
    assert final.code == 0, final
    assert not lock.exists()

    assert desired_state_problems(sim, job) == []
    assert duplicated_writes(sim) == {}
    assert sim.violations_by_account() == {}

    records, torn = ledger_lines(ledger)
    assert torn == b""
    runs = [r for r in records if r["type"] == "run"]
    assert runs[0]["resume"] is False and all(r["resume"] for r in runs[1:])
    assert len({r["job_sha256"] for r in runs}) == 1
    ends = [r for r in records if r["type"] == "end"]
    assert [e["run_id"] for e in ends] == [runs[-1]["run_id"]]  # killed runs never ended
    assert ends[0]["interrupted"] is False
    assert ends[0]["counts"]["failed"] == 0 and ends[0]["counts"]["deferred"] == 0
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
