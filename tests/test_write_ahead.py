"""The crash-exact ledger, end to end against the simulator: every write attempt is announced
(durably) before it is sent, each outcome is recorded as soon as it is known, the next run decides
writes an earlier run left without an outcome from its fresh read, daily limits count intents,
and a ledger that cannot be written stops the run at once."""

from __future__ import annotations

import errno
import os
import time
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from bulkgroups.engine import apply_job
from bulkgroups.errors import LedgerUnwritable
from bulkgroups.jobs import load_job
from bulkgroups.ledger import LedgerIO
from bulkgroups.model import Gate, Operation, Outcome, RateLimitHeaders, RequestKind, RequestTurn
from bulkgroups.records import IntentRecord, Record, RunRecord, format_time
from bulkgroups.simulator import Simulator, initial_members, owner_id
from bulkgroups.undo import inverse_of

from helpers.engine import ledger_records, op_records, write_job
from helpers.outcomes import FAST, SIM_RATE, Bystander, run_job, writes
from helpers.simulator import SimFactory

A = "acc_w"
ANN, BOB, CID, DAN = "ACoAA0001", "ACoAA0002", "ACoAA0003", "ACoAA0004"


@pytest.fixture
def sim(sim_factory: SimFactory) -> Simulator:
    return sim_factory(rate=SIM_RATE)


def killed_run(ledger: Path, job_file: Path, *intents: Operation) -> None:
    """What a run killed mid-write leaves: its `run` record and intents, no outcome, no end."""
    job = load_job(job_file)
    now = format_time(time.time() - 60)
    lines: list[Record] = [RunRecord("20250101T000000Z-dead0001", job.sha256, False, now, "0")]
    lines += [
        IntentRecord.of(op, run_id="20250101T000000Z-dead0001", attempt=1, at=now) for op in intents
    ]
    ledger.write_bytes(b"".join(line.to_json() + b"\n" for line in lines))


# ----------------------------------------------------------------------------- write-ahead


class _Witness:
    """The turn of a write request, looking at the ledger on disk once the run's own gate has let
    it through (just before the request leaves)."""

    def __init__(self, turn: RequestTurn, ledger: Path, seen: list[list[dict[str, Any]]]) -> None:
        self._turn, self._ledger, self._seen = turn, ledger, seen

    async def __aenter__(self) -> object:
        entered = await self._turn.__aenter__()
        self._seen.append(ledger_records(self._ledger))
        return entered

    def observe(self, status: int, headers: RateLimitHeaders | None) -> None:
        self._turn.observe(status, headers)

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        return await self._turn.__aexit__(kind, error, tb)


class LedgerWitness(Bystander):
    """The real client; each write request, as it leaves, records what the ledger held."""

    def __init__(self, *args: Any, ledger: Path, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ledger = ledger
        self.seen: list[list[dict[str, Any]]] = []

    def _witnessed(self, gate: Gate | None) -> Gate:
        assert gate is not None

        def witnessed(account: str, kind: RequestKind) -> RequestTurn:
            return _Witness(gate(account, kind), self.ledger, self.seen)

        return witnessed

    async def add_participant(self, account_id: str, chat_id: str, user_id: str, **kw: Any) -> None:
        kw["gate"] = self._witnessed(kw.get("gate"))
        await super().add_participant(account_id, chat_id, user_id, **kw)


async def test_every_write_attempt_is_in_the_ledger_before_it_is_sent_and_its_outcome_right_after(
    sim: Simulator, tmp_path: Path
) -> None:
    sim.configure_chat(A, "c1", members=[ANN])
    ledger = tmp_path / "ledger.jsonl"
    client = LedgerWitness(sim.url, api_key=sim.api_key, ledger=ledger)
    client.before_write[2] = lambda: sim.set_faults("500=1")  # the 2nd add fails once...
    client.after_write[2] = lambda: sim.set_faults("")  # ...and succeeds on its retry
    result, records = await run_job(
        sim, tmp_path, [{"chat": "c1", "account": A, "add": [BOB, CID]}], client=client
    )
    assert result.exit_code == 0
    bob, cid = (Operation(A, "c1", "add", user=u).op_id for u in (BOB, CID))

    def shown(lines: list[dict[str, Any]]) -> list[tuple[str, str, int | str]]:
        return [
            (r["type"], r["op_id"], r.get("attempt") or r["status"])
            for r in lines
            if r["type"] in ("intent", "op")
        ]

    # As each request left: its own intent was the last line, and every earlier write already
    # had its outcome (recorded as it happened, not when the chat was done).
    assert [shown(lines) for lines in client.seen] == [
        [("intent", bob, 1)],
        [("intent", bob, 1), ("op", bob, "applied"), ("intent", cid, 1)],
        [("intent", bob, 1), ("op", bob, "applied"), ("intent", cid, 1), ("intent", cid, 2)],
    ]
    assert [(r["user"], r["attempts"]) for r in records] == [(BOB, 1), (CID, 2)]


async def test_the_observer_is_told_each_outcome_as_it_is_recorded(
    sim: Simulator, tmp_path: Path
) -> None:
    sim.configure_chat(A, "c1", members=[ANN])
    ledger = tmp_path / "ledger.jsonl"
    told: list[tuple[str, int]] = []

    class Observer:
        def phase(self, name: str, total: int) -> None: ...
        def advance(self, name: str, count: int = 1) -> None: ...
        def grow(self, name: str, count: int) -> None: ...
        def amended(self, before: Outcome, after: Outcome) -> None: ...

        def outcome(self, outcome: Outcome) -> None:
            told.append((outcome.operation.user or "", len(op_records(ledger))))

    job = load_job(
        write_job(tmp_path / "job.yaml", [{"chat": "c1", "account": A, "add": [BOB, ANN, CID]}])
    )
    async with Bystander(sim.url, api_key=sim.api_key) as client:
        await apply_job(job, client, ledger=ledger, config=FAST, observer=Observer())
    # One call per operation, each once its record was handed to the ledger.
    assert [user for user, _ in told] == [ANN, BOB, CID]


# ------------------------------------------------------------------ writes left pending


async def test_a_killed_runs_write_that_took_effect_is_recorded_recovered_and_not_sent_again(
    sim: Simulator, tmp_path: Path
) -> None:
    job_file = write_job(tmp_path / "job.yaml", [{"chat": "c1", "account": A, "add": [BOB, CID]}])
    add_bob = Operation(A, "c1", "add", user=BOB)
    killed_run(tmp_path / "ledger.jsonl", job_file, add_bob)
    sim.configure_chat(A, "c1", members=[ANN, BOB])  # the killed run's add reached the server

    result, records = await run_job(
        sim, tmp_path, [{"chat": "c1", "account": A, "add": [BOB, CID]}]
    )

    assert [
        (r["user"], r["status"], r["reason"], r["attempts"], r.get("recovered")) for r in records
    ] == [
        (BOB, "applied", None, 0, True),  # not also "skipped already_member": recorded once
        (CID, "applied", None, 1, None),
    ]
    assert [w.user for w in writes(sim, A)] == [CID]
    assert result.counts["applied"] == 2 and result.exit_code == 0


async def test_a_killed_runs_write_that_did_not_take_effect_is_sent_again(
    sim: Simulator, tmp_path: Path
) -> None:
    job_file = write_job(tmp_path / "job.yaml", [{"chat": "c1", "account": A, "add": [BOB]}])
    killed_run(tmp_path / "ledger.jsonl", job_file, Operation(A, "c1", "add", user=BOB))
    sim.configure_chat(A, "c1", members=[ANN])  # killed before its request left

    _, records = await run_job(sim, tmp_path, [{"chat": "c1", "account": A, "add": [BOB]}])

    assert [(r["status"], r["attempts"], r.get("recovered")) for r in records] == [
        ("applied", 1, None)
    ]
    assert [w.user for w in writes(sim, A)] == [BOB]


async def test_a_remove_a_killed_run_sent_is_recorded_though_the_new_plan_no_longer_has_it(
    sim: Simulator, tmp_path: Path
) -> None:
    members = [m for m in initial_members(A, "c1") if m != owner_id(A)]
    chats = [{"chat": "c1", "account": A, "members": members[1:]}]
    job_file = write_job(tmp_path / "job.yaml", chats)
    removed = Operation(A, "c1", "remove", user=members[0])
    killed_run(tmp_path / "ledger.jsonl", job_file, removed)
    sim.configure_chat(A, "c1", members=members[1:])  # it took effect: the chat is as desired

    result, records = await run_job(sim, tmp_path, chats)

    assert [(r["action"], r["user"], r["status"], r.get("recovered")) for r in records] == [
        ("remove", members[0], "applied", True)
    ]
    assert writes(sim, A) == []
    assert result.exit_code == 0


async def test_a_killed_runs_write_stays_pending_through_a_run_that_cannot_read_its_chat(
    sim: Simulator, tmp_path: Path
) -> None:
    # The run in between records the chat's operations as failed (its read failed); the write
    # the killed run sent may still have taken effect, so the next run that reads it decides it.
    chats = [{"chat": "c1", "account": A, "add": [BOB]}]
    job_file = write_job(tmp_path / "job.yaml", chats)
    killed_run(tmp_path / "ledger.jsonl", job_file, Operation(A, "c1", "add", user=BOB))
    sim.configure_chat(A, "c1", members=[ANN, BOB])  # it took effect
    sim.set_faults("500=1")
    _, unread = await run_job(sim, tmp_path, chats)
    sim.set_faults("")
    assert [(r["status"], r.get("in_doubt")) for r in unread] == [("failed", True)]

    result, records = await run_job(sim, tmp_path, chats)

    assert [(r["user"], r["status"], r.get("recovered")) for r in records] == [
        (BOB, "applied", True)
    ]
    assert writes(sim, A) == []
    assert result.exit_code == 0


async def test_a_write_left_in_doubt_is_decided_by_the_next_runs_read(
    sim: Simulator, tmp_path: Path
) -> None:
    sim.configure_chat(A, "c1", members=[ANN])
    client = Bystander(sim.url, api_key=sim.api_key)
    client.before_write[1] = lambda: sim.set_faults("applied500=1")  # it takes effect, then 500
    client.after_write[1] = lambda: sim.set_faults("500=1")  # and every retry meets a 500
    chats = [{"chat": "c1", "account": A, "add": [BOB]}]
    first, records = await run_job(sim, tmp_path, chats, client=client, verify=False)
    sim.set_faults("")
    (failed,) = records
    assert (failed["status"], failed["reason"], failed["in_doubt"]) == ("failed", "api_error", True)
    sent = len(writes(sim, A))

    second, records = await run_job(sim, tmp_path, chats)

    assert [(r["status"], r.get("recovered")) for r in records] == [("applied", True)]
    assert len(writes(sim, A)) == sent  # in effect: never a second write
    assert (first.exit_code, second.exit_code) == (3, 0)


# ----------------------------------------------------------------------------- daily limit


async def test_a_retry_that_finds_no_daily_budget_is_not_sent_and_is_deferred_daily_limit(
    sim: Simulator, tmp_path: Path
) -> None:
    sim.configure_chat(A, "c1", members=[ANN])
    client = Bystander(sim.url, api_key=sim.api_key)
    client.before_write[1] = lambda: sim.set_faults("500=1")  # not applied: worth a retry
    client.after_write[1] = lambda: sim.set_faults("")
    result, records = await run_job(
        sim,
        tmp_path,
        [{"chat": "c1", "account": A, "add": [BOB]}],
        accounts={A: {"daily_limit": 1}},
        client=client,
    )
    (deferred,) = records
    assert (deferred["status"], deferred["reason"], deferred["attempts"]) == (
        "deferred",
        "daily_limit",
        1,
    )
    assert deferred["in_doubt"] is True  # a 500 leaves a write's outcome unknown
    assert len(writes(sim, A)) == 1
    assert result.exit_code == 3


async def test_intents_of_killed_runs_count_against_the_daily_limit(
    sim: Simulator, tmp_path: Path
) -> None:
    sim.configure_chat(A, "c1", members=[ANN])
    chats = [{"chat": "c1", "account": A, "add": [BOB]}]
    job_file = write_job(tmp_path / "job.yaml", chats, {A: {"daily_limit": 2}})
    ghost = Operation(A, "other", "add", user=CID)
    killed_run(tmp_path / "ledger.jsonl", job_file, ghost, ghost)  # two attempts sent, no outcome

    _, records = await run_job(sim, tmp_path, chats, accounts={A: {"daily_limit": 2}})

    assert [(r["status"], r["reason"]) for r in records] == [("deferred", "daily_limit")]
    assert writes(sim, A) == []


# --------------------------------------------------------------------- the ledger failing


async def test_a_full_disk_stops_every_request_at_once_and_raises_ledger_unwritable(
    sim: Simulator, tmp_path: Path
) -> None:
    for chat in ("c1", "c2"):
        sim.configure_chat(A, chat, members=[ANN])
    ledger = tmp_path / "ledger.jsonl"
    requests_at_failure: list[int] = []
    writes_left = 4  # the run record, then a few intents and outcomes

    def write(fd: int, data: memoryview) -> int:
        nonlocal writes_left
        if writes_left == 0:
            requests_at_failure.append(len(sim.requests()))
            raise OSError(errno.ENOSPC, "No space left on device")
        writes_left -= 1
        return os.write(fd, data)

    job = load_job(
        write_job(
            tmp_path / "job.yaml",
            [
                {"chat": "c1", "account": A, "add": [BOB, CID, DAN]},
                {"chat": "c2", "account": A, "add": [BOB, CID, DAN]},
            ],
        )
    )
    config = replace(FAST, chats_per_account=1)
    with pytest.raises(LedgerUnwritable) as raised:
        async with Bystander(sim.url, api_key=sim.api_key) as client:
            await apply_job(
                job, client, ledger=ledger, config=config, ledger_io=LedgerIO(write=write)
            )

    assert "No space left on device" in str(raised.value) and str(ledger) in str(raised.value)
    assert len(requests_at_failure) == 1
    assert len(sim.requests()) == requests_at_failure[0]  # nothing of any kind after the failure
    kinds = [r["type"] for r in ledger_records(ledger)]
    assert kinds[0] == "run" and "end" not in kinds  # what was written is intact
    assert not (tmp_path / "ledger.jsonl.lock").exists()
    assert 0 < len(writes(sim, A)) < 6


async def test_a_full_disk_while_another_account_still_reads_its_chats_raises_ledger_unwritable(
    sim: Simulator, tmp_path: Path
) -> None:
    # The reading account's next read meets the stop: the run still ends with the ledger's error
    # (exit 4), not with a group of internal signals.
    slow = "acc_slow_reader"
    job = load_job(
        write_job(
            tmp_path / "job.yaml",
            [
                {"chat": "now", "account": A, "add": [BOB, CID, DAN]},
                *({"chat": f"c{i}", "account": slow, "add": [BOB]} for i in range(30)),
            ],
            {slow: {"rate": "4/s"}},
        )
    )
    writes_left = 3  # the run record, then an intent or two

    def write(fd: int, data: memoryview) -> int:
        nonlocal writes_left
        if writes_left == 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        writes_left -= 1
        return os.write(fd, data)

    with pytest.raises(LedgerUnwritable):
        async with Bystander(sim.url, api_key=sim.api_key) as client:
            await apply_job(
                job,
                client,
                ledger=tmp_path / "ledger.jsonl",
                config=FAST,
                ledger_io=LedgerIO(write=write),
            )


async def test_a_rename_found_in_effect_after_its_run_died_can_be_undone_like_any_other(
    sim: Simulator, tmp_path: Path
) -> None:
    # The run dies between the rename's answer and its `op` record (here: the disk fills just
    # then). Its intent says what the chat was called before, so the next run records the
    # rename it finds in effect with that name, and `undo` can name it back.
    sim.configure_chat(A, "c1", name="Cohort 12")
    job = load_job(
        write_job(tmp_path / "job.yaml", [{"chat": "c1", "account": A, "rename": "Cohort 13"}])
    )
    ledger = tmp_path / "ledger.jsonl"

    def write(fd: int, data: memoryview) -> int:
        if b'"type":"op"' in bytes(data):
            raise OSError(errno.ENOSPC, "No space left on device")
        return os.write(fd, data)

    with pytest.raises(LedgerUnwritable):
        async with Bystander(sim.url, api_key=sim.api_key) as client:
            await apply_job(
                job, client, ledger=ledger, config=FAST, ledger_io=LedgerIO(write=write)
            )
    assert sim.chat(A, "c1").name == "Cohort 13"
    intents = [r for r in ledger_records(ledger) if r["type"] == "intent"]
    assert [(i["action"], i["previous_name"]) for i in intents] == [("rename", "Cohort 12")]

    async with Bystander(sim.url, api_key=sim.api_key) as client:
        await apply_job(job, client, ledger=ledger, config=FAST)
    recovered = [r for r in op_records(ledger) if r.get("recovered")]
    assert [(r["action"], r["previous_name"]) for r in recovered] == [("rename", "Cohort 12")]

    inverse = inverse_of(str(ledger))
    out = bytearray()
    inverse.write_to(out.extend)
    assert 'rename: "Cohort 12"' in out.decode()
