"""`daily_limit` in a run against the simulator: chats started together never overspend it, a chat
goes as far as the day's budget allows, and what the budget cannot cover is deferred without
waiting for a turn to send it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bulkgroups.model import Gate, RequestKind, RequestTurn
from bulkgroups.simulator import Simulator

from helpers.outcomes import SIM_RATE, Bystander, outcomes, run_job, writes
from helpers.simulator import SimFactory

A = "acc_d"
ANN = "ACoAA0001"
NEWCOMERS = ["ACoAA0002", "ACoAA0003", "ACoAA0004", "ACoAA0005", "ACoAA0006"]


@pytest.fixture
def sim(sim_factory: SimFactory) -> Simulator:
    return sim_factory(rate=SIM_RATE)


class TurnCounter(Bystander):
    """The real client, counting the write turns its requests waited for in the account's pacer."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.write_turns = 0

    def _counted(self, gate: Gate | None) -> Gate:
        assert gate is not None

        def counted(account: str, kind: RequestKind) -> RequestTurn:
            self.write_turns += 1
            return gate(account, kind)

        return counted

    async def add_participant(self, account_id: str, chat_id: str, user_id: str, **kw: Any) -> None:
        kw["gate"] = self._counted(kw.get("gate"))
        await super().add_participant(account_id, chat_id, user_id, **kw)


async def test_a_chat_needing_more_writes_than_the_daily_limit_goes_as_far_as_the_limit(
    sim: Simulator, tmp_path: Path
) -> None:
    # Were it held back until a day with room for all of it, it would never be started.
    sim.configure_chat(A, "c1", members=[ANN])
    result, records = await run_job(
        sim,
        tmp_path,
        [{"chat": "c1", "account": A, "add": NEWCOMERS}],
        accounts={A: {"daily_limit": 3}},
    )
    assert [(user, status, reason) for _, _, user, status, reason in outcomes(records)] == [
        *((user, "applied", None) for user in NEWCOMERS[:3]),
        *((user, "deferred", "daily_limit") for user in NEWCOMERS[3:]),
    ]
    assert len(writes(sim, A)) == 3
    assert result.exit_code == 3


async def test_writes_past_the_daily_budget_are_deferred_without_waiting_for_a_turn(
    sim: Simulator, tmp_path: Path
) -> None:
    # At a write rate of 1/min each turn is a minute: deferring must not cost one. The first add
    # meets a 500 and its retry spends the unit the second add had claimed.
    sim.configure_chat(A, "c1", members=[ANN])
    client = TurnCounter(sim.url, api_key=sim.api_key)
    client.before_write[1] = lambda: sim.set_faults("500=1")
    client.after_write[1] = lambda: sim.set_faults("")
    _, records = await run_job(
        sim,
        tmp_path,
        [{"chat": "c1", "account": A, "add": NEWCOMERS[:2]}],
        accounts={A: {"daily_limit": 2}},
        client=client,
    )
    assert [(r["status"], r["reason"]) for r in records] == [
        ("applied", None),
        ("deferred", "daily_limit"),
    ]
    assert len(writes(sim, A)) == 2
    assert client.write_turns == 2  # the two attempts sent; none for the write deferred


async def test_chats_started_together_never_overspend_the_daily_limit(
    sim: Simulator, tmp_path: Path
) -> None:
    # Two chats of one account start side by side; the budget holds only one of them.
    sim.configure_chat(A, "c1", members=())
    sim.configure_chat(A, "c2", members=())
    result, records = await run_job(
        sim,
        tmp_path,
        [
            {"chat": "c1", "account": A, "add": NEWCOMERS[:2]},
            {"chat": "c2", "account": A, "add": NEWCOMERS[2:4]},
        ],
        accounts={A: {"daily_limit": 3}},
    )
    assert len(writes(sim, A)) <= 3
    statuses = sorted((r["chat"], r["status"], r["reason"]) for r in records)
    assert statuses.count(("c1", "applied", None)) + statuses.count(("c2", "applied", None)) == 2
    assert all(s[1:] == ("deferred", "daily_limit") for s in statuses if s[1] != "applied")
    assert result.counts["deferred"] == 2
