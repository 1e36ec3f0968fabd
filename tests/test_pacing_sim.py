"""Pacing over real sockets, against the simulator running in its own thread, which counts every
request that arrives over a window by its own clock: 200 accounts at once through the gate; and a
whole run against an account whose real limit is below the configured one.

In one process on two cores the simulator sees a request up to ~80 ms after the pacer let it go
(client and simulator queue for the GIL), far more than the margin; the gate's windows count a
request from its answer, an upper bound of its arrival, so they hold anyway, at default settings.
Each account is given more than its limits allow at once, so the pacer, not the machine's
throughput, is what spaces its requests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio

from bulkgroups.client import UnipileClient
from bulkgroups.engine import EngineConfig, apply_job
from bulkgroups.jobs import load_job
from bulkgroups.model import RateSpec
from bulkgroups.pacing import Pacing, PacingPolicy
from bulkgroups.simulator import SimConfig, initial_members, owner_id, run_in_thread

from helpers.engine import op_records, write_job
from helpers.simulator import SimFactory
from helpers.windows import max_in_any_window

ACCOUNTS = 200
RATE = RateSpec(2, 1.0)
WRITE_RATE = RateSpec(1, 1.0)
TASKS = 2  # per account, each: read, write, read


async def test_200_accounts_at_once_never_exceed_their_windows() -> None:
    policy = PacingPolicy(rate=RATE, write_rate=WRITE_RATE)
    with run_in_thread(SimConfig(rate=RATE, write_rate=WRITE_RATE)) as sim:
        pacing = Pacing(concurrency=64, default=policy)
        async with UnipileClient(sim.url, api_key=sim.api_key, concurrency=64) as client:

            async def work(account: str, task: int) -> None:
                chat = f"chat_{task}"
                await client.get_chat(account, chat, fresh=True, gate=pacing.gate)
                await client.rename_chat(account, chat, f"renamed {task}", gate=pacing.gate)
                await client.get_chat(account, chat, fresh=True, gate=pacing.gate)

            # Per account: 6 requests against 2/s, 2 writes against 1/s; all accounts at once.
            async with anyio.create_task_group() as tg:
                for a in range(ACCOUNTS):
                    for task in range(TASKS):
                        tg.start_soon(work, f"acc_{a:03}", task)

        log = sim.requests()
        assert len(log) == ACCOUNTS * TASKS * 3
        assert {r.status for r in log} == {200}  # not one 429
        assert sim.violations() == 0


async def test_an_account_whose_real_limit_is_half_the_configured_one_is_paced_at_it(
    sim_factory: SimFactory, tmp_path: Path
) -> None:
    """Configured 20/s, Unipile allows 10/s: the answers' X-RateLimit-Limit lowers the pace at
    once, the run finishes with everything applied, after at most a first 429 or two per
    account, and from its second window on no account is ever over the real limit."""
    real = RateSpec(10, 1.0)
    sim = sim_factory(rate=real)
    accounts = [f"acc_half_{a}" for a in range(3)]
    chats: list[dict[str, Any]] = []
    for account in accounts:
        owner = owner_id(account)
        for c in range(4):
            members = [m for m in initial_members(account, f"chat_{c}") if m != owner]
            newcomers = [
                u for u in (f"ACoAA{n:04d}" for n in range(500, 400, -1)) if u not in members
            ]
            chats.append(
                {
                    "chat": f"chat_{c}",
                    "account": account,
                    "add": newcomers[:2],
                    "remove": members[:1],
                }
            )
    job = load_job(write_job(tmp_path / "job.yaml", chats))
    configured = RateSpec(20, 1.0)
    config = EngineConfig(
        rate=configured, write_rate=configured, verify_delay=0.05, max_removals=None
    )
    async with UnipileClient(sim.url, api_key=sim.api_key) as client:
        result = await apply_job(job, client, ledger=tmp_path / "ledger.jsonl", config=config)

    assert result.exit_code == 0
    assert {(r["status"], r["reason"]) for r in op_records(tmp_path / "ledger.jsonl")} == {
        ("applied", None)
    }
    for account in accounts:
        log = [r for r in sim.requests(account) if r.kind in ("read", "write")]
        assert sum(1 for r in log if r.status == 429) <= 2
        later = [r.at for r in log if r.at >= log[0].at + real.period]
        assert max_in_any_window(later, real.period) <= real.count


async def test_a_write_window_that_an_answer_shows_spent_is_waited_out_without_a_429(
    sim_factory: SimFactory, tmp_path: Path
) -> None:
    """Configured 5 writes a tenth of a second, Unipile allows 1 every 2 s: the first write's
    answer says so (Limit 1, Remaining 0, Reset 2), and the next write waits for the Reset
    instead of meeting a 429 (before: a 429, then the pause its Retry-After asked for)."""
    sim = sim_factory(rate=RateSpec(100, 1.0))
    account = "acc_spent"
    for chat in ("c1", "c2"):
        sim.configure_chat(account, chat, members=["ACoAA0001"])
    chats = [{"chat": chat, "account": account, "add": ["ACoAA0002"]} for chat in ("c1", "c2")]
    sim.configure_account(account, write_rate="1/2s")
    job = load_job(write_job(tmp_path / "job.yaml", chats))
    fast = RateSpec(5, 0.1)
    config = EngineConfig(rate=fast, write_rate=fast, verify=False, max_removals=None)
    async with UnipileClient(sim.url, api_key=sim.api_key) as client:
        result = await apply_job(job, client, ledger=tmp_path / "ledger.jsonl", config=config)

    assert result.exit_code == 0
    writes = [r for r in sim.requests(account) if r.kind == "write"]
    assert [r.status for r in writes] == [200, 200]
    assert sim.violations(account) == 0
