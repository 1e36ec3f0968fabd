"""The library's two entry points, `bulkgroups.plan` and `bulkgroups.apply`.

They live here, not in `__init__`, so that `import bulkgroups` stays cheap: the package exports
them lazily, and the engine, the HTTP client and aiohttp load only when a program first uses them.
"""

from __future__ import annotations

from pathlib import Path

import anyio

from .client import UnipileClient
from .engine import DEFAULT_LEDGER, EngineConfig, RunObserver, RunResult, apply_job, apply_plan
from .engine import plan_job_online as _plan_job_online
from .errors import UsageError
from .model import Job, Plan

__all__ = ["apply", "plan"]


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
