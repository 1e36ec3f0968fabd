"""A run: preflight, paced reads of current state, planning, paced writes, verification.

The run has three phases, each finished for every account before the next starts:

1. **Preflight** — the core account GET of every account (not rate-limited by Unipile): its
   status and its owner's id. The owner rule is checked for all accounts here, before a single
   account-scoped request is sent.
2. **Read and plan** — each chat's fresh state (chat + every participant page), planned as soon
   as it is read, so only the compact plan is kept, not the participants.
3. **Write** — each chat's writes in contract order (rename, removes, adds, leave), then a fresh
   re-read to verify them; outcomes go to the ledger as the chat finishes.

The barrier between reading and writing is what lets `--max-removals` refuse a plan before any
change is made. Within a phase, accounts run side by side: each account has a few workers over
its own chats, so a slow or paused account never holds up another (its workers wait in its
pacer, never on a global slot). Every request of an account goes through that account's pacer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

import anyio

from ..client import UnipileClient
from ..errors import RunRefused, plain_errors
from ..ledger import replay
from ..lock import LedgerLock
from ..model import AccountInfo, ChatJob, ChatPlan, Job, Plan
from .apply import apply_run, pause_after_previous_runs
from .config import DEFAULT_LEDGER, EngineConfig, RunObserver, RunResult
from .run import Run, build_pacing, fewer_young_collections, shard_job, shard_of

__all__ = [
    "DEFAULT_LEDGER",
    "EngineConfig",
    "RunObserver",
    "RunResult",
    "apply_job",
    "apply_plan",
    "estimate_seconds",
    "plan_job_online",
    "shard_of",
]


# ------------------------------------------------------------------------------------ public


async def plan_job_online(
    job: Job,
    client: UnipileClient,
    *,
    config: EngineConfig | None = None,
    observer: RunObserver | None = None,
) -> Plan:
    """Read every chat's current state (GET only, paced like apply) and plan the job."""
    config = config or EngineConfig()
    run = Run(shard_job(job, config.shard), client, config, observer)
    with plain_errors():
        await run.preflight()
        run.check_owner_rule()
        return await run.read_and_plan()


def estimate_seconds(plan: Plan, config: EngineConfig | None = None) -> float:
    """How long applying the plan takes at the configured rates: the slowest account's writes
    and their verification reads, paced."""
    config = config or EngineConfig()
    job = plan.job
    pacing = build_pacing(job, config)
    writes: dict[str, int] = defaultdict(int)
    reads: dict[str, int] = defaultdict(int)
    for chat in plan.chats:
        if chat.to_send:
            writes[chat.account] += len(chat.to_send)
            reads[chat.account] += 2 if config.verify else 0
    return max(
        (pacing.estimate_seconds(a, reads[a], writes[a]) for a in writes),
        default=0.0,
    )


async def apply_job(
    job: Job,
    client: UnipileClient,
    *,
    ledger: str | Path = DEFAULT_LEDGER,
    config: EngineConfig | None = None,
    resume: bool = False,
    observer: RunObserver | None = None,
    interrupt: anyio.Event | None = None,
    expected: Plan | None = None,
    confirm: Callable[[Plan], Awaitable[bool]] | None = None,
) -> RunResult:
    """Plan the job from fresh reads and apply it, recording every outcome in the ledger.

    With `expected` (a plan saved by `plan --out`), the fresh reads must match the state that
    plan was computed from, chat by chat, or nothing is sent (RunRefused). `confirm` sees the
    plan before anything is written and may refuse it.
    """
    config = config or EngineConfig()
    ledger = str(ledger)
    with plain_errors(), LedgerLock(ledger) as lock, fewer_young_collections():
        # Per-operation outcomes are only needed to resume (a million of them cost memory).
        # A ledger of a million records takes seconds to read: not on the event loop.
        previous = await anyio.to_thread.run_sync(
            partial(replay, ledger, job_sha256=job.sha256 if resume else None)
        )
        if resume and previous.last_job_sha256 not in (None, job.sha256):
            raise RunRefused(
                f"{ledger}: its last run is of another job (job_sha256 "
                f"{previous.last_job_sha256[:12] if previous.last_job_sha256 else '?'}…, this job "
                f"{job.sha256[:12]}…); resume only continues the same job"
            )
        run = Run(shard_job(job, config.shard), client, config, observer)
        pause_after_previous_runs(run, previous, holder_died=lock.took_over)
        await run.preflight()
        run.check_owner_rule()
        return await apply_run(
            run,
            ledger=ledger,
            resume=resume,
            previous=previous,
            interrupt=interrupt,
            source=Run.plan_chats,
            expected=expected,
            confirm=confirm,
        )


async def apply_plan(
    plan: Plan,
    client: UnipileClient,
    *,
    ledger: str | Path = DEFAULT_LEDGER,
    config: EngineConfig | None = None,
    observer: RunObserver | None = None,
    interrupt: anyio.Event | None = None,
) -> RunResult:
    """Apply a plan as it is (library use: the plan was just computed by `plan`)."""
    config = config or EngineConfig()
    if plan.job is None:
        raise RunRefused("this plan does not carry its job; plan it with bulkgroups.plan()")
    ledger = str(ledger)
    given = {(c.account, c.chat): c for c in plan.chats}

    async def given_plans(run: Run, chats: list[ChatJob]) -> list[ChatPlan]:
        return [given[(c.account, c.chat)] for c in chats if (c.account, c.chat) in given]

    with plain_errors(), LedgerLock(ledger) as lock, fewer_young_collections():
        previous = await anyio.to_thread.run_sync(replay, ledger)
        job = replace(
            plan.job, chats=tuple(c for c in plan.job.chats if (c.account, c.chat) in given)
        )
        run = Run(job, client, config, observer)
        pause_after_previous_runs(run, previous, holder_died=lock.took_over)
        # The plan's reads were paced by another run: wait one general window before writing.
        for account in run.accounts:
            policy = run.pacing.policy(account)
            if policy.rate is not None:
                run.pacing.pacer(account).pause_for(policy.effective_period(policy.rate))
        for account_id, owner in plan.owners.items():
            if account_id in run.accounts:
                run.accounts[account_id].info = AccountInfo(account_id, owner, "running")
        return await apply_run(
            run,
            ledger=ledger,
            resume=False,
            previous=previous,
            interrupt=interrupt,
            source=given_plans,
        )
