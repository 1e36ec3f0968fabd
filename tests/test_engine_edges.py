"""Edges of a run: a leave that finds the chat already left, a read that failed before and
succeeds on resume, what an interrupt stops (chats not begun, reads not begun, a confirmation not
answered), and a run cancelled from outside that still ends its ledger."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import anyio
import pytest

from bulkgroups.engine import apply_job
from bulkgroups.errors import RunRefused
from bulkgroups.jobs import load_job
from bulkgroups.model import RateSpec
from bulkgroups.simulator import Simulator, initial_members, owner_id

from helpers.engine import ledger_records, op_records, write_job
from helpers.outcomes import FAST, Bystander, run_job, writes


async def test_a_leave_that_finds_the_owner_already_gone_is_skipped_already_left(
    sim: Simulator, tmp_path: Path
) -> None:
    client = Bystander(sim.url, api_key=sim.api_key)
    members = [m for m in initial_members("acc_l", "room") if m != owner_id("acc_l")]

    def owner_leaves_in_the_app() -> None:
        sim.configure_chat("acc_l", "room", members=members, with_owner=False, readonly=True)

    client.before_write[1] = owner_leaves_in_the_app
    chats = [{"chat": "room", "account": "acc_l", "leave": True}]

    result, records = await run_job(sim, tmp_path, chats, client=client)

    assert [(r["action"], r["status"], r["reason"]) for r in records] == [
        ("leave", "skipped", "already_left")
    ]
    assert result.exit_code == 0


async def test_a_read_that_failed_before_is_recorded_when_resume_reads_it(
    sim: Simulator, tmp_path: Path
) -> None:
    sim.configure_account("acc_r", status="paused")
    members = [m for m in initial_members("acc_r", "room") if m != owner_id("acc_r")]
    chats = [{"chat": "room", "account": "acc_r", "members": members[1:]}]

    _, first_records = await run_job(sim, tmp_path, chats)
    assert [(r["action"], r["status"], r["reason"]) for r in first_records] == [
        ("read", "failed", "account_paused")
    ]

    sim.configure_account("acc_r", status="running")
    job = load_job(tmp_path / "job.yaml")
    async with Bystander(sim.url, api_key=sim.api_key) as client:
        second = await apply_job(
            job, client, ledger=tmp_path / "ledger.jsonl", config=FAST, resume=True
        )
    resumed = [r for r in op_records(tmp_path / "ledger.jsonl") if r["run_id"] == second.run_id]
    assert sorted((r["action"], r["status"]) for r in resumed) == [
        ("read", "applied"),
        ("remove", "applied"),
    ]
    assert second.exit_code == 0


async def test_chats_not_begun_when_interrupted_record_nothing(
    sim: Simulator, tmp_path: Path
) -> None:
    second = [m for m in initial_members("acc_i", "second") if m != owner_id("acc_i")]
    job_file = write_job(
        tmp_path / "job.yaml",
        [
            {"chat": "first", "account": "acc_i", "add": ["ACoAN0001", "ACoAN0002"]},
            # Only a skip: decided at plan time, recorded when the chat is applied.
            {"chat": "second", "account": "acc_i", "add": [second[0]]},
        ],
    )
    interrupt = anyio.Event()
    client = Bystander(sim.url, api_key=sim.api_key)
    client.before_write[1] = interrupt.set
    config = replace(FAST, chats_per_account=1, interrupt_grace=0.5)

    async with client:
        result = await apply_job(
            load_job(job_file),
            client,
            ledger=tmp_path / "l.jsonl",
            config=config,
            interrupt=interrupt,
        )

    assert result.interrupted
    assert all(r["chat"] == "first" for r in op_records(tmp_path / "l.jsonl"))


async def test_an_interrupt_stops_the_reading_of_chats_as_well_as_the_writing(
    sim: Simulator, tmp_path: Path
) -> None:
    # One account writes while another still reads its many chats, slowly: after the interrupt
    # nothing would come of those reads (no chat begins its writes), so they are not sent.
    slow = "acc_slow_reader"
    job_file = write_job(
        tmp_path / "job.yaml",
        [
            {"chat": "now", "account": "acc_quick", "add": ["ACoAA0401", "ACoAA0402"]},
            *({"chat": f"c{i}", "account": slow, "add": ["ACoAA0403"]} for i in range(40)),
        ],
        {slow: {"rate": "4/s"}},
    )
    interrupt = anyio.Event()
    client = Bystander(sim.url, api_key=sim.api_key)
    reads_at_interrupt: list[int] = []

    def interrupted() -> None:
        reads_at_interrupt.append(sum(1 for r in sim.requests(slow) if r.kind == "read"))
        interrupt.set()

    client.before_write[1] = interrupted
    config = replace(FAST, chats_per_account=2, interrupt_grace=3.0)
    async with client:
        result = await apply_job(
            load_job(job_file),
            client,
            ledger=tmp_path / "l.jsonl",
            config=config,
            interrupt=interrupt,
        )
    assert result.interrupted
    read_after = sum(1 for r in sim.requests(slow) if r.kind == "read") - reads_at_interrupt[0]
    assert read_after <= 2 * config.chats_per_account  # those already on their way, no more


async def test_a_run_cancelled_from_outside_after_writes_began_still_ends_its_ledger(
    sim: Simulator, tmp_path: Path
) -> None:
    # The CLI's second Ctrl-C cancels apply_job outright; the ledger must still get its `end`.
    sim.configure_chat("acc_a", "c1", members=())
    job = load_job(
        write_job(
            tmp_path / "job.yaml",
            [{"chat": "c1", "account": "acc_a", "add": ["ACoAA0001", "ACoAA0002", "ACoAA0003"]}],
        )
    )
    ledger = tmp_path / "ledger.jsonl"
    client = Bystander(sim.url, api_key=sim.api_key)
    async with client, anyio.create_task_group() as tg:
        client.after_write[1] = tg.cancel_scope.cancel
        await apply_job(job, client, ledger=ledger, config=FAST)
    kinds = [r["type"] for r in ledger_records(ledger)]
    assert kinds[0] == "run"
    assert kinds[-1] == "end"
    end = ledger_records(ledger)[-1]
    assert end["interrupted"] is True
    assert not (tmp_path / "ledger.jsonl.lock").exists()


async def test_an_interrupt_while_the_plan_awaits_confirmation_does_not_wait_for_the_answer(
    sim: Simulator, tmp_path: Path
) -> None:
    # Ctrl-C at the confirmation prompt: the run must stop without waiting for the user's answer.
    sim.configure_chat("acc_a", "c1", members=("ACoAA0001",))
    job = load_job(
        write_job(
            tmp_path / "job.yaml", [{"chat": "c1", "account": "acc_a", "remove": ["ACoAA0001"]}]
        )
    )
    interrupt = anyio.Event()
    answered = False

    async def confirm(plan: object) -> bool:
        nonlocal answered
        interrupt.set()
        await anyio.sleep_forever()  # the person never answers
        answered = True
        return True

    async with Bystander(sim.url, api_key=sim.api_key) as client:
        result = await apply_job(
            job,
            client,
            ledger=tmp_path / "ledger.jsonl",
            config=FAST,
            interrupt=interrupt,
            confirm=confirm,
        )
        returned_before_answer = not answered
    assert returned_before_answer
    assert result.interrupted
    assert writes(sim, "acc_a") == []


async def test_an_interrupt_waits_for_requests_in_flight_not_for_the_next_turn(
    sim: Simulator, tmp_path: Path
) -> None:
    # The account writes once a minute: after Ctrl-C, its next write would wait most of that
    # minute for a turn it will not take. The run ends once the write in flight has landed,
    # not after the whole grace (30 s here) — the hang guard below is well short of it.
    sim.configure_chat("acc_w", "c1", members=())
    job_file = write_job(
        tmp_path / "job.yaml",
        [{"chat": "c1", "account": "acc_w", "add": ["ACoAA0501", "ACoAA0502", "ACoAA0503"]}],
        {"acc_w": {"write_rate": "1/min"}},
    )
    interrupt = anyio.Event()
    client = Bystander(sim.url, api_key=sim.api_key)
    client.after_write[1] = interrupt.set
    config = replace(FAST, interrupt_grace=30.0)

    with anyio.fail_after(15):
        async with client:
            result = await apply_job(
                load_job(job_file),
                client,
                ledger=tmp_path / "l.jsonl",
                config=config,
                interrupt=interrupt,
            )

    assert result.interrupted
    assert [(r["user"], r["status"]) for r in op_records(tmp_path / "l.jsonl")] == [
        ("ACoAA0501", "applied")
    ]
    assert len([r for r in sim.requests("acc_w") if r.kind == "write"]) == 1
    assert ledger_records(tmp_path / "l.jsonl")[-1]["interrupted"] is True


async def test_a_run_declined_at_the_prompt_leaves_no_empty_ledger_behind(
    sim: Simulator, tmp_path: Path
) -> None:
    sim.configure_chat("acc_a", "c1", members=("ACoAA0001",))
    job = load_job(
        write_job(
            tmp_path / "job.yaml", [{"chat": "c1", "account": "acc_a", "remove": ["ACoAA0001"]}]
        )
    )

    async def decline(plan: object) -> bool:
        return False

    ledger = tmp_path / "ledger.jsonl"
    async with Bystander(sim.url, api_key=sim.api_key) as client:
        with pytest.raises(RunRefused):
            await apply_job(job, client, ledger=ledger, config=FAST, confirm=decline)
        assert not ledger.exists()

        # A ledger that was there before is left as it was, empty or not.
        ledger.write_bytes(b"")
        with pytest.raises(RunRefused):
            await apply_job(job, client, ledger=ledger, config=FAST, confirm=decline)
        assert ledger.exists() and ledger.read_bytes() == b""
    assert writes(sim, "acc_a") == []


async def test_a_write_sent_before_an_interrupt_is_decided_and_recorded_though_that_needs_a_read(
    sim: Simulator, tmp_path: Path
) -> None:
    # Someone else removes the member just before our remove goes: it is answered 404, which a
    # fresh read decides (skipped not_member). Ctrl-C comes with the answer; at 1 read a second
    # the deciding read waits for its turn, and the run waits for it rather than leaving the
    # write sent with an intent and no outcome.
    sim.configure_chat("acc_r", "c1", members=("ACoAA0001",))
    job = load_job(
        write_job(
            tmp_path / "job.yaml", [{"chat": "c1", "account": "acc_r", "remove": ["ACoAA0001"]}]
        )
    )
    interrupt = anyio.Event()
    client = Bystander(sim.url, api_key=sim.api_key)
    client.before_write[1] = lambda: sim.configure_chat("acc_r", "c1", members=())
    client.after_write[1] = interrupt.set
    config = replace(FAST, rate=RateSpec(1, 1.0), verify=False)

    async with client:
        result = await apply_job(
            job, client, ledger=tmp_path / "l.jsonl", config=config, interrupt=interrupt
        )

    assert result.interrupted
    assert [(r["action"], r["status"], r["reason"]) for r in op_records(tmp_path / "l.jsonl")] == [
        ("remove", "skipped", "not_member")
    ]
    assert [r.kind for r in sim.requests("acc_r")][-2:] == ["write", "read"]


async def test_an_interrupt_during_verification_lets_it_finish(
    sim: Simulator, tmp_path: Path
) -> None:
    # The add is accepted but does not take effect; Ctrl-C comes during verification's pause
    # between its two re-reads. The second still happens and the add is amended
    # `failed not_effective`: left `applied`, --resume would take it as settled.
    sim.configure_chat("acc_v", "c1", members=())
    job = load_job(
        write_job(tmp_path / "job.yaml", [{"chat": "c1", "account": "acc_v", "add": ["ACoAA0601"]}])
    )
    interrupt = anyio.Event()
    client = Bystander(sim.url, api_key=sim.api_key)
    client.before_write[1] = lambda: sim.set_faults("ignored=1")  # 200, nothing changes
    client.after_write[1] = lambda: sim.set_faults("")
    config = replace(FAST, verify_delay=1.0)

    def reads() -> int:
        return sum(1 for r in sim.requests("acc_v") if r.kind == "read")

    async def interrupt_between_the_rereads() -> None:
        while reads() < 4:  # noqa: ASYNC110 - the simulator's log is polled, it sets no event
            await anyio.sleep(0.01)
        interrupt.set()

    async with client, anyio.create_task_group() as tg:
        tg.start_soon(interrupt_between_the_rereads)
        result = await apply_job(
            job, client, ledger=tmp_path / "l.jsonl", config=config, interrupt=interrupt
        )
    assert result.interrupted
    assert reads() == 6  # the plan's read, then both re-reads (chat and participants each)
    verified = [r for r in ledger_records(tmp_path / "l.jsonl") if r["type"] == "verify"]
    assert [(v["status"], v["reason"]) for v in verified] == [("failed", "not_effective")]
