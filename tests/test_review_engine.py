"""Review of the run engine: regressions for bugs found by reading the engine against CONTRACT.md."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from conftest import SimFactory
from engine_helpers import ledger_records, write_job
from outcome_helpers import FAST, SIM_RATE, Bystander, run_job, writes

from bulkgroups.engine import apply_job
from bulkgroups.jobs import load_job
from bulkgroups.simulator import Simulator

A = "acc_a"
ANN, BOB, CID, DAN = "ACoAA0001", "ACoAA0002", "ACoAA0003", "ACoAA0004"


@pytest.fixture
def sim(sim_factory: SimFactory) -> Simulator:
    return sim_factory(rate=SIM_RATE)


async def test_daily_limit_is_not_overspent_by_chats_started_together(
    sim: Simulator, tmp_path: Path
) -> None:
    # Two chats of one account start side by side; the budget holds only one of them.
    sim.configure_chat(A, "c1", members=())
    sim.configure_chat(A, "c2", members=())
    result, records = await run_job(
        sim,
        tmp_path,
        [
            {"chat": "c1", "account": A, "add": [ANN, BOB]},
            {"chat": "c2", "account": A, "add": [CID, DAN]},
        ],
        accounts={A: {"daily_limit": 3}},
    )
    assert len(writes(sim, A)) <= 3
    statuses = sorted((r["chat"], r["status"], r["reason"]) for r in records)
    assert statuses.count(("c1", "applied", None)) + statuses.count(("c2", "applied", None)) == 2
    assert all(s[1:] == ("deferred", "daily_limit") for s in statuses if s[1] != "applied")
    assert result.counts["deferred"] == 2


async def test_a_run_cancelled_from_outside_after_writes_began_still_ends_its_ledger(
    sim: Simulator, tmp_path: Path
) -> None:
    # The CLI's second Ctrl-C cancels apply_job outright; the ledger must still get its `end`.
    sim.configure_chat(A, "c1", members=())
    job = load_job(
        write_job(tmp_path / "job.yaml", [{"chat": "c1", "account": A, "add": [ANN, BOB, CID]}])
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
    sim.configure_chat(A, "c1", members=(ANN,))
    job = load_job(
        write_job(tmp_path / "job.yaml", [{"chat": "c1", "account": A, "remove": [ANN]}])
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
    assert writes(sim, A) == []
