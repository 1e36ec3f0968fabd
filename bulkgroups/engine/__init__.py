"""A run: preflight, paced reads of current state, planning, paced writes, verification.

The run has three phases, each finished for every account before the next starts:

1. **Preflight** — the core account GET of every account (not rate-limited by Unipile): its
   status and its owner's id. The owner rule is checked for all accounts here, before a single
   account-scoped request is sent. Then the profiles the job names are resolved to provider ids
   (`people`: paced reads, cached in the ledger) and the owner rule is checked with them.
2. **Read and plan** — each chat's fresh state (chat + every participant page), planned as soon
   as it is read, so only the compact plan is kept, not the participants. Writes an earlier run
   sent without recording their outcome are decided from the same read.
3. **Write** — each chat's writes in contract order (rename, removes, adds, leave), each attempt
   announced by a durable intent, each outcome recorded as soon as it is known; then a fresh
   re-read to verify them.

The barrier between reading and writing is what lets `--max-removals` and
`--max-removal-percent` refuse a plan before any change is made. Within a phase, accounts run
side by side: each account has a few workers over its own chats, so a slow or paused account
never holds up another (its workers wait in its pacer, never on a global slot). Every request of
an account goes through that account's pacer.

Modules: `config` (settings, observer, result), `api` (the client seam), `run` (the requests),
`gates` (what every request passes), `accounts`, `budget` (`daily_limit`), `outcomes` (the pure
outcome table), `stops`, `recorder` (the run's records), `apply` (the application of a plan),
`removals` (the removal guards), `selection` (`--only-account`, `--only-chat`, the shard),
`opening` (a run on a ledger), `people` (profiles resolved), `workers`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import anyio

from ..errors import RunRefused, plain_errors
from ..ledger import LedgerIO, replay
from ..ledger_dir import ledger_files, ledger_place, names_directory
from ..lock import LedgerLock
from ..model import ChatJob, ChatPlan, Job, Plan
from ..records import ResolutionRecord
from .api import ChatApi
from .apply import apply_run
from .config import (
    DEFAULT_LEDGER,
    DEFAULT_RESOLVE_MAX_AGE,
    AccountWork,
    EngineConfig,
    RunObserver,
    RunResult,
    WorkObserver,
)
from .handover import reading_handed_over
from .opening import check_ledger_path, opened_run
from .people import check_resolutions
from .run import Run, build_pacing, shard_of
from .selection import scope_job

__all__ = [
    "DEFAULT_LEDGER",
    "DEFAULT_RESOLVE_MAX_AGE",
    "AccountWork",
    "ChatApi",
    "EngineConfig",
    "RunObserver",
    "RunResult",
    "WorkObserver",
    "apply_job",
    "apply_plan",
    "estimate_seconds",
    "plan_job_online",
    "scope_job",
    "shard_of",
]


async def plan_job_online(
    job: Job,
    client: ChatApi,
    *,
    config: EngineConfig | None = None,
    observer: RunObserver | None = None,
    ledger: str | Path | None = None,
) -> Plan:
    """Read every chat's current state (GET only, paced like apply) and plan the job.

    With `ledger`, the profiles it has resolutions of (young enough) are not looked up again; the
    ledger is only read (a plan records nothing).
    """
    config = config or EngineConfig()
    run = Run(scope_job(job, config), client, config, observer)
    if ledger is not None and run.people.wanted:
        known = await anyio.to_thread.run_sync(_known_resolutions, str(ledger))
        run.people.learn(known)
    with plain_errors():
        async with reading_handed_over(run):
            await run.preflight()
            run.check_owner_rule()
            await run.resolve_people()
            return await run.read_and_plan()


def estimate_seconds(plan: Plan, config: EngineConfig | None = None) -> float:
    """How long applying the plan takes at the configured rates: the slowest account's writes
    and their verification reads, paced."""
    config = config or EngineConfig()
    pacing = build_pacing(plan.job, config)
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
    client: ChatApi,
    *,
    ledger: str | Path = DEFAULT_LEDGER,
    config: EngineConfig | None = None,
    resume: bool = False,
    observer: RunObserver | None = None,
    interrupt: anyio.Event | None = None,
    expected: Plan | None = None,
    confirm: Callable[[Plan], Awaitable[bool]] | None = None,
    ledger_io: LedgerIO | None = None,
    lock: LedgerLock | None = None,
) -> RunResult:
    """Plan the job from fresh reads and apply it, recording every outcome in the ledger.

    With `expected` (a plan saved by `plan --out`), the job's profiles must resolve as they did
    for that plan, and the fresh reads must match the state that plan was computed from, chat by
    chat, or nothing is sent (RunRefused). `confirm` sees the
    plan before anything is written and may refuse it. A ledger that fails mid-run raises
    `LedgerUnwritable` (sending stopped at once; what was recorded is intact); `ledger_io` is how
    its bytes reach the disk (tests inject a full disk there). `lock`: the ledger's lock, held
    by the caller across runs (`apply --every`); without it the run takes and releases its own.
    """
    config = config or EngineConfig()
    place = ledger_place(str(ledger), config.shard)
    with plain_errors():
        async with opened_run(
            scope_job(job, config),
            client,
            config,
            observer,
            place=place,
            resume=resume,
            lock=lock,
        ) as (run, previous):
            await run.preflight()
            run.check_owner_rule()
            await run.resolve_people()
            if expected is not None:
                check_resolutions(run.people.all(), expected.resolutions)
            return await apply_run(
                run,
                ledger=place.path,
                resume=resume,
                previous=previous,
                interrupt=interrupt,
                source=Run.plan_chats,
                expected=expected,
                confirm=confirm,
                ledger_io=ledger_io,
            )


async def apply_plan(
    plan: Plan,
    client: ChatApi,
    *,
    ledger: str | Path = DEFAULT_LEDGER,
    config: EngineConfig | None = None,
    observer: RunObserver | None = None,
    interrupt: anyio.Event | None = None,
    ledger_io: LedgerIO | None = None,
) -> RunResult:
    """Apply a plan as it is (library use: the plan was just computed by `plan`).

    The plan's own reads decided it, so writes an earlier run left pending are not looked for
    here (`apply_job` does): a write in effect shows as a skip in a fresh plan.
    """
    config = config or EngineConfig()
    if plan.job is None:
        raise RunRefused("this plan does not carry its job; plan it with bulkgroups.plan()")
    place = ledger_place(str(ledger), config.shard)
    given = {(c.account, c.chat): c for c in plan.chats}

    async def given_plans(run: Run, chats: list[ChatJob]) -> list[ChatPlan]:
        return [given[(c.account, c.chat)] for c in chats if (c.account, c.chat) in given]

    job = replace(plan.job, chats=tuple(c for c in plan.job.chats if (c.account, c.chat) in given))
    with plain_errors():
        async with opened_run(job, client, config, observer, place=place, resume=False) as (
            run,
            previous,
        ):
            run.adopt_owners(plan.owners)
            run.people.adopt(plan.resolutions)
            return await apply_run(
                run,
                ledger=place.path,
                resume=False,
                previous=previous,
                interrupt=interrupt,
                source=given_plans,
                ledger_io=ledger_io,
            )


def _known_resolutions(ledger: str) -> list[ResolutionRecord]:
    """The profiles a ledger resolved (every ledger of a directory), for `plan --ledger`: only
    read, never written."""
    paths = ledger_files(ledger) if names_directory(ledger) else [ledger]
    known: list[ResolutionRecord] = []
    for path in paths:
        check_ledger_path(path)
        known.extend(replay(path, keep_outcomes=False).resolutions.values())
    return sorted(known, key=lambda record: record.at)  # the latest of each is learnt last
