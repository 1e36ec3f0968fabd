"""Opening a run on a ledger: what `apply_job` and `apply_plan` both do before applying."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from functools import partial

import anyio

from ..errors import RunRefused, UsageError
from ..files import FileRefused, check_appendable
from ..ledger import Replay
from ..ledger_dir import LedgerPlace, prepare_directory, read_histories
from ..lock import LedgerLock
from ..model import Job
from .api import ChatApi
from .config import EngineConfig, RunObserver
from .handover import handed_over
from .run import Run
from .workers import fewer_young_collections

__all__ = ["check_ledger_path", "opened_run"]


def check_ledger_path(ledger: str) -> None:
    """A ledger path that exists must be a regular file (after symlinks): a FIFO, `/dev/full` or
    a directory is refused (exit 1) before the lock is taken and before anything is sent."""
    try:
        check_appendable(ledger)
    except FileRefused as refused:
        raise UsageError(f"{ledger}: cannot use it as the ledger: {refused.reason}") from None


@asynccontextmanager
async def opened_run(
    job: Job,
    client: ChatApi,
    config: EngineConfig,
    observer: RunObserver | None,
    *,
    place: LedgerPlace,
    resume: bool,
    lock: LedgerLock | None = None,
) -> AsyncIterator[tuple[Run, Replay]]:
    """The ledger checked and locked, read once (with the other ledgers of its directory, if it
    is in one: `ledger_dir`), and a run that learnt from it: today's daily budgets, the earlier
    runs' pending writes, and the pause that keeps back-to-back runs within the limits. Yields
    the run and what its own ledger says (for `--resume`). The lock is held until the context
    is left — or, given `lock` (held by the caller for the ledger across several runs: `apply
    --every`), left to the caller."""
    prepare_directory(place)
    ledger = place.path
    check_ledger_path(ledger)
    if lock is not None and lock.ledger_path != ledger:
        raise UsageError(f"the lock held ({lock.path}) is not the ledger {ledger}'s")
    taken = nullcontext(lock) if lock is not None else LedgerLock(ledger)
    with taken as lock, fewer_young_collections():
        # A ledger of a million records takes seconds to read: not on the event loop. Per-operation
        # outcomes are only needed to resume (a million of them cost memory).
        histories, learnt = await anyio.to_thread.run_sync(
            partial(
                read_histories,
                place,
                accounts=job.account_ids(),
                shard=config.shard,
                job_sha256=job.sha256,
                keep_outcomes=resume,
                holder_died=lock.took_over,
            )
        )
        previous = histories[0].replay
        if resume and previous.last_job_sha256 not in (None, job.sha256):
            raise RunRefused(
                f"{ledger}: its last run is of another job (job_sha256 "
                f"{previous.last_job_sha256[:12] if previous.last_job_sha256 else '?'}…, this job "
                f"{job.sha256[:12]}…); resume only continues the same job"
            )
        run = Run(job, client, config, observer)
        run.learn_from(learnt)
        async with handed_over(
            config.recent_sends, run.accounts, run.pacing, writes=True
        ) as recent:
            run.pause_after_previous_runs(histories, recent)
            yield run, previous
