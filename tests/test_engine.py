"""The apply engine against the simulator in its own thread, over real sockets (issue #5)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from bulkgroups.client import UnipileClient
from bulkgroups.engine import EngineConfig, RunResult, apply_job
from bulkgroups.jobs import load_job
from bulkgroups.model import RateSpec, parse_rate
from bulkgroups.pacing import RetryPolicy
from bulkgroups.simulator import Simulator, initial_members, owner_id

from helpers.engine import op_records, write_job
from helpers.simulator import SimFactory

FAST_RETRY = RetryPolicy(attempts=4, budget=5.0, initial=0.01, maximum=0.05)


def config(rate: RateSpec, **overrides: Any) -> EngineConfig:
    settings: dict[str, Any] = {
        "rate": rate,
        "write_rate": rate,
        "verify_delay": 0.05,
        "retry": FAST_RETRY,
        "max_removals": None,
    }
    settings.update(overrides)
    return EngineConfig(**settings)


async def run(sim: Simulator, job_path: Path, ledger: Path, cfg: EngineConfig) -> RunResult:
    job = load_job(job_path)
    async with UnipileClient(sim.url, api_key=sim.api_key, concurrency=cfg.concurrency) as client:
        return await apply_job(job, client, ledger=ledger, config=cfg)


def mixed_chats(account: str, count: int) -> tuple[list[dict[str, Any]], dict[str, set[str]]]:
    """A mix of imperative diffs, desired states and renames, with the end state each implies."""
    chats: list[dict[str, Any]] = []
    expected: dict[str, set[str]] = {}
    owner = owner_id(account)
    for i in range(count):
        chat = f"chat_{i:02d}"
        members = [m for m in initial_members(account, chat) if m != owner]
        newcomer = f"ACoAN{i:04d}"  # outside the pool: never a member yet
        if i % 3 == 0:
            chats.append(
                {"chat": chat, "account": account, "add": [newcomer], "remove": [members[0]]}
            )
            expected[chat] = (set(members) - {members[0]}) | {newcomer, owner}
        elif i % 3 == 1:
            wanted = [*members[1:], newcomer]
            chats.append({"chat": chat, "account": account, "members": wanted})
            expected[chat] = set(wanted) | {owner}
        else:
            chats.append({"chat": chat, "account": account, "rename": f"Cohort {i}"})
            expected[chat] = set(members) | {owner}
    return chats, expected


async def test_fifty_accounts_of_twenty_chats_converge_within_the_limits(
    sim_factory: SimFactory, tmp_path: Path
) -> None:
    rate = parse_rate("50/s")
    sim = sim_factory(rate=rate, write_rate=rate)
    chats: list[dict[str, Any]] = []
    expected: dict[tuple[str, str], set[str]] = {}
    for a in range(50):
        account = f"acc_{a:02d}"
        account_chats, account_expected = mixed_chats(account, 20)
        chats += account_chats
        expected.update({(account, chat): members for chat, members in account_expected.items()})
    job = write_job(tmp_path / "job.yaml", chats)
    ledger = tmp_path / "ledger.jsonl"

    result = await run(sim, job, ledger, config(rate))

    assert sim.violations() == 0
    assert result.exit_code == 0, result.counts
    for (account, chat), members in expected.items():
        assert set(sim.members(account, chat)) == members, (account, chat)
    renamed = [c for c in chats if "rename" in c]
    assert all(sim.chat(c["account"], c["chat"]).name == c["rename"] for c in renamed)
    records = op_records(ledger)
    planned = sum(len(c.to_send) + len(c.decided) for c in result.plan.chats)
    assert len(records) == planned
    assert max(Counter(r["op_id"] for r in records).values()) == 1


def _account_scoped(sim: Simulator, account: str) -> list[tuple[str, str | None, str | None]]:
    return sorted(
        (e.method, e.chat, e.user) for e in sim.requests(account) if e.kind in ("read", "write")
    )


async def test_a_slow_account_does_not_delay_the_others(
    sim_factory: SimFactory, tmp_path: Path
) -> None:
    rate = parse_rate("20/s")
    accounts = [f"acc_fast_{i}" for i in range(4)] + ["acc_slow"]
    chats: list[dict[str, Any]] = []
    for account in accounts:
        chats += mixed_chats(account, 6)[0]
    # Imperative chats only: their removals are bounded before anything is read, so the writes of
    # fast accounts need not wait for the slow account's reads (the --max-removals gate).
    chats = [c for c in chats if "members" not in c]
    job = write_job(tmp_path / "job.yaml", chats)
    cfg = config(rate, max_removals=100)

    baseline = sim_factory(rate=rate, write_rate=rate)
    await run(baseline, job, tmp_path / "baseline.jsonl", cfg)
    slowed = sim_factory(rate=rate, write_rate=rate)
    slowed.configure_account("acc_slow", latency=0.4)
    await run(slowed, job, tmp_path / "slowed.jsonl", cfg)

    slow_end = slowed.timeline("acc_slow")[-1]
    for account in accounts[:-1]:
        # The same requests as without the slow account...
        assert _account_scoped(slowed, account) == _account_scoped(baseline, account)
        # ...finished while the slow account was still at work (how fast is for benchmarks/).
        assert slowed.timeline(account)[-1] < slow_end
    assert slowed.violations() == 0


async def test_accounts_of_different_limits_each_stay_within_their_own(
    sim_factory: SimFactory, tmp_path: Path
) -> None:
    """100+ accounts at 10, 20 and 40 requests/s (the job's per-account rates, equal to the
    simulator's), some with 4x the chats: every account converges and none goes over its own
    limit. How close the run comes to the ideal makespan is a figure for benchmarks/
    (bench_makespan), not an assertion here."""
    sim = sim_factory()
    rates = [parse_rate("10/s"), parse_rate("20/s"), parse_rate("40/s")]
    chats: list[dict[str, Any]] = []
    settings: dict[str, Any] = {}
    for a in range(102):
        account = f"acc_{a:03d}"
        rate = rates[a % 3]
        sim.configure_account(account, rate=rate, write_rate=rate)
        settings[account] = {"rate": str(rate), "write_rate": str(rate)}
        count = 8 if a % 10 == 0 else 2
        chats += [c for c in mixed_chats(account, count)[0] if "members" not in c]
    job = write_job(tmp_path / "job.yaml", chats, accounts=settings)

    result = await run(sim, job, tmp_path / "ledger.jsonl", config(parse_rate("10/s")))

    assert result.exit_code == 0, result.counts
    assert sim.violations() == 0
