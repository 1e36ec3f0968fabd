"""bulkgroups — keep LinkedIn group-chat membership in sync through the Unipile API.

    import bulkgroups

    job = bulkgroups.load_job("jobs/cohorts.yaml")
    async with bulkgroups.UnipileClient(base_url, api_key=key) as client:
        plan = await bulkgroups.plan(job, client)
        result = await bulkgroups.apply(plan, client, ledger="run.jsonl")
    print(result.counts)

Runs on anyio's asyncio backend (aiohttp is asyncio-only). The embedded simulator is importable
as `bulkgroups.simulator`, for your own tests.
"""

from __future__ import annotations

from pathlib import Path

import anyio

from .client import UnipileClient
from .engine import (
    DEFAULT_LEDGER,
    ChatApi,
    EngineConfig,
    RunObserver,
    RunResult,
    apply_job,
    apply_plan,
)
from .engine import plan_job_online as _plan_job_online
from .errors import (
    AccountDisconnected,
    AccountError,
    AccountRestricted,
    ApiError,
    AuthError,
    BulkGroupsError,
    Conflict,
    JobFileError,
    JobFileErrors,
    LedgerCorrupt,
    LedgerUnwritable,
    NotFound,
    OwnerRuleRefused,
    PaginationError,
    PermissionDenied,
    ProviderRateLimited,
    RateLimited,
    RequestRejected,
    RunRefused,
    TransientError,
    TransportError,
    UnsupportedAccount,
    UsageError,
)
from .jobs import load_job
from .model import Job, Operation, Outcome, Plan, RateSpec, parse_rate
from .pacing import RetryPolicy
from .version import __version__

__all__ = [
    "AccountDisconnected",
    "AccountError",
    "AccountRestricted",
    "ApiError",
    "AuthError",
    "BulkGroupsError",
    "ChatApi",
    "Conflict",
    "EngineConfig",
    "Job",
    "JobFileError",
    "JobFileErrors",
    "LedgerCorrupt",
    "LedgerUnwritable",
    "NotFound",
    "Operation",
    "Outcome",
    "OwnerRuleRefused",
    "PaginationError",
    "PermissionDenied",
    "Plan",
    "ProviderRateLimited",
    "RateLimited",
    "RateSpec",
    "RequestRejected",
    "RetryPolicy",
    "RunObserver",
    "RunRefused",
    "RunResult",
    "TransientError",
    "TransportError",
    "UnipileClient",
    "UnsupportedAccount",
    "UsageError",
    "__version__",
    "apply",
    "load_job",
    "parse_rate",
    "plan",
]


async def plan(
    job: Job,
    client: UnipileClient,
    *,
    config: EngineConfig | None = None,
    observer: RunObserver | None = None,
) -> Plan:
    """Read each chat's current state (GET only, paced) and compute what applying would change."""
    return await _plan_job_online(job, client, config=config, observer=observer)


async def apply(
    plan_or_job: Plan | Job,
    client: UnipileClient,
    *,
    ledger: str | Path = DEFAULT_LEDGER,
    config: EngineConfig | None = None,
    resume: bool = False,
    observer: RunObserver | None = None,
    interrupt: anyio.Event | None = None,
) -> RunResult:
    """Apply a plan (as computed by `plan`) or a job (planned afresh), recording every outcome.

    `resume=True` needs a job: it continues the ledger's last run of that job.
    """
    if isinstance(plan_or_job, Job):
        return await apply_job(
            plan_or_job,
            client,
            ledger=ledger,
            config=config,
            resume=resume,
            observer=observer,
            interrupt=interrupt,
        )
    if resume:
        raise UsageError("resume=True continues a job: pass the job, not a plan")
    return await apply_plan(
        plan_or_job, client, ledger=ledger, config=config, observer=observer, interrupt=interrupt
    )
