"""Review of the run engine: regressions for bugs found by reading the engine against CONTRACT.md."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SimFactory
from outcome_helpers import SIM_RATE, run_job, writes

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
