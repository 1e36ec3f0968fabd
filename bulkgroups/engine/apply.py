"""Applying: per-account pipelines (read and plan, then write once the removal gate opens),
the ledger's run/op/end records, interruption, resume and pacing across runs.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import replace

import anyio

from ..errors import RunRefused
from ..ledger import LedgerWriter, Replay, new_run_id
from ..model import ChatJob, ChatPlan, Operation, Outcome, Plan
from ..version import __version__
from .config import EngineConfig, RunResult
from .removals import RemovalGate, removal_bound
from .run import Run, WritesStopped, for_each

__all__ = [
    "PlanSource",
    "apply_run",
    "check_expected",
    "check_removals",
    "pause_after_previous_runs",
]

PlanSource = Callable[[Run, list[ChatJob]], Awaitable[list[ChatPlan]]]


async def apply_run(
    run: Run,
    *,
    ledger: str,
    resume: bool,
    previous: Replay,
    interrupt: anyio.Event | None,
    source: PlanSource,
    expected: Plan | None = None,
    confirm: Callable[[Plan], Awaitable[bool]] | None = None,
) -> RunResult:
    """Each account: its plans (read + plan, or given), then — once the gate opens — its writes."""
    config = run.config
    for account_id, state in run.accounts.items():
        limit = run._daily_limit(account_id)
        if limit is not None:
            state.writes_left = limit - previous.writes_today.get(account_id, 0)

    by_account: dict[str, list[ChatJob]] = defaultdict(list)
    for chat in run.job.chats:
        by_account[chat.account].append(chat)
    planned: dict[tuple[str, str], ChatPlan] = {}
    gate = RemovalGate(
        {a: removal_bound(chats) for a, chats in by_account.items()},
        config.max_removals,
        wait_for_all=expected is not None or confirm is not None,
    )

    def whole_plan() -> Plan:
        return Plan(
            job_sha256=run.job.sha256,
            chats=tuple(planned[(c.account, c.chat)] for c in run.job.chats),
            owners=run.owners(),
            job=run.job,
        )

    async def complete() -> None:
        plan = whole_plan()
        if expected is not None:
            plan = check_expected(plan, expected)
            planned.update({(c.account, c.chat): c for c in plan.chats})
            check_removals(plan, config)
        # Abandoned on cancel: Ctrl-C at the prompt must not wait for an answer that may never come.
        if confirm is not None and not await confirm(plan):
            raise RunRefused("not confirmed; nothing was sent")

    gate.on_complete = complete
    run_id = new_run_id()
    stop_sending = anyio.Event()
    run.observer.phase("read", len(run.job.chats))

    async with LedgerWriter(ledger) as writer:
        started = False
        starting = anyio.Lock()

        async def start_writing() -> None:
            """The `run` record goes first, once, before any account's first outcome."""
            nonlocal started
            async with starting:
                if not started:
                    run.observer.phase("apply", 0)
                    await writer.run_started(
                        run_id=run_id, job_sha256=run.job.sha256, resume=resume, version=__version__
                    )
                    started = True

        async def emit(outcome: Outcome) -> None:
            await writer.record(outcome, run_id=run_id)
            run.counts[outcome.status] += 1
            run.observer.outcome(outcome)

        async def apply_chat(chat_plan: ChatPlan) -> None:
            if stop_sending.is_set():
                return  # interrupted before this chat began: nothing of it is recorded
            account = run.accounts[chat_plan.account]
            owner = account.info.owner_id if account.info is not None else None
            for decided in chat_plan.decided:
                if not (resume and previous.settled(decided.operation.digest)):
                    await emit(decided)
            if resume:
                # A desired-state chat whose read failed before was planned afresh and read now:
                # its `read` operation has an outcome in this run too.
                read = Operation(chat_plan.account, chat_plan.chat, "read")
                if previous.outcomes.get(read.digest) in ("failed", "deferred") and not any(
                    d.operation.action == "read" for d in chat_plan.decided
                ):
                    await emit(Outcome(read, "applied", None, 1))
            ops = [op for op in chat_plan.to_send if not (resume and previous.settled(op.digest))]
            if not ops:
                return
            if account.writes_left is not None:
                if account.writes_left < len(ops):
                    for op in ops:
                        await emit(Outcome(op, "deferred", "daily_limit", 0))
                    return
                # Chats of one account start side by side: claim this chat's writes before the
                # first goes, so the next chat sees only what is left of the budget.
                account.writes_left -= len(ops)
            outcomes: list[Outcome] = []
            for op in ops:
                if stop_sending.is_set():
                    break  # never attempted: nothing recorded, --resume plans it again
                if account.stop is not None or run.run_auth_error is not None:
                    outcomes.append(run._stopped_outcome(account, op))
                    continue
                try:
                    outcome = await run.write(account, op, owner)
                except WritesStopped:
                    break  # not sent: nothing recorded, --resume plans it again
                if account.writes_left is not None:
                    account.writes_left += 1  # the claim, now that `write` counted what was sent
                outcomes.append(outcome)
            if config.verify and not stop_sending.is_set():
                outcomes = await run.verify(account, chat_plan.chat, outcomes, owner)
            for outcome in outcomes:
                await emit(outcome)

        async def account_pipeline(account: str, chats: list[ChatJob]) -> None:
            try:
                plans = await source(run, chats)
            except BaseException as error:
                gate.refuse(error)
                raise
            for chat_plan in plans:
                planned[(chat_plan.account, chat_plan.chat)] = chat_plan
            if run.run_auth_error is not None and not gate.opened.is_set():
                # The key was refused before anything was written: the whole run stops (exit 1).
                # Once writes have begun, the remaining operations are recorded as failed instead.
                gate.refuse(run.run_auth_error)
            await gate.report(
                account, sum(1 for p in plans for op in p.to_send if op.action == "remove")
            )
            await gate.wait()
            await start_writing()
            if not stop_sending.is_set():
                current = [planned[(c.account, c.chat)] for c in chats]
                run.observer.grow("apply", sum(len(p.to_send) + len(p.decided) for p in current))
                await for_each(current, apply_chat, config.chats_per_account)

        async def watch_interrupt(scope: anyio.CancelScope) -> None:
            assert interrupt is not None
            await interrupt.wait()
            stop_sending.set()
            run.writes_stopped = True
            if not started:
                scope.cancel()  # nothing written yet: nothing to wait for
                return
            await anyio.sleep(config.interrupt_grace)
            scope.cancel()

        # A run cut short from outside (a second Ctrl-C cancels it, a library caller's timeout)
        # or by an error still closes its `run` with an `end`: interrupted, --resume continues.
        interrupted = True
        try:
            with anyio.CancelScope() as writes_scope:
                async with anyio.create_task_group() as tg:
                    if interrupt is not None:
                        tg.start_soon(watch_interrupt, writes_scope)
                    async with anyio.create_task_group() as workers:
                        for account, chats in by_account.items():
                            workers.start_soon(account_pipeline, account, chats)
                    tg.cancel_scope.cancel()
            interrupted = stop_sending.is_set() or writes_scope.cancelled_caught
            if not by_account:
                await start_writing()  # an empty shard still writes its run and end records
        finally:
            if started:
                with anyio.CancelScope(shield=True):
                    await writer.run_ended(
                        run_id=run_id, counts=dict(run.counts), interrupted=interrupted
                    )
    return RunResult(
        run_id=run_id,
        counts=dict(run.counts),
        interrupted=interrupted,
        ledger=ledger,
        plan=whole_plan() if len(planned) == len(run.job.chats) else Plan(run.job.sha256, ()),
    )


def check_removals(plan: Plan, config: EngineConfig) -> None:
    removals = plan.removals
    if config.max_removals >= 0 and removals > config.max_removals:
        raise RunRefused(
            f"the plan removes {removals} members, more than --max-removals {config.max_removals}; "
            "nothing was sent"
        )


def pause_after_previous_runs(run: Run, previous: Replay, *, holder_died: bool) -> None:
    """Runs back to back stay within the limits: each account waits its strictest window (with
    the pacer's margin) since the last request an earlier run may have sent it.

    That is bounded by the account's last `op` record (a write is answered before it is
    recorded) and by the last `end` record (all reads before it; with `interrupted`, writes given
    up in flight too). A process that died mid-run (its stale lock taken over, or a last run
    without `end`) may have sent anything until it died, which was before now: every account of
    this run then waits a full strictest window from now.
    """
    now = time.time()
    for account in run.accounts:
        policy = run.pacing.policy(account)
        limits = [spec for spec in (policy.rate, policy.write_rate) if spec is not None]
        strictest = max((policy.effective_period(spec) for spec in limits), default=0.0)
        general = policy.effective_period(policy.rate) if policy.rate is not None else 0.0
        ready = [now]
        last = previous.last_record_at.get(account)
        if last is not None:
            ready.append(last + strictest)
        if holder_died or previous.last_run_open:
            ready.append(now + strictest)
        elif previous.last_end_at is not None:
            window = strictest if previous.last_end_interrupted else general
            ready.append(previous.last_end_at + window)
        remaining = max(ready) - now
        if remaining > 0:
            run.pacing.pacer(account).pause_for(remaining)


def check_expected(fresh: Plan, expected: Plan) -> Plan:
    """`apply --plan`: the job and every chat's observed state must be what the plan saw."""
    if fresh.job_sha256 != expected.job_sha256:
        raise RunRefused(
            "the job changed since the plan was made (job_sha256 differs); nothing was sent"
        )
    saved = {(c.account, c.chat): c for c in expected.chats}
    stale: list[str] = []
    for chat in fresh.chats:
        before = saved.get((chat.account, chat.chat))
        if before is None or before.state_digest != chat.state_digest:
            stale.append(f"{chat.account}/{chat.chat}")
    if stale:
        shown = ", ".join(stale[:20]) + (f" and {len(stale) - 20} more" if len(stale) > 20 else "")
        raise RunRefused(
            f"the state of these chats changed since the plan: {shown}; nothing was sent"
        )
    # Same job, same states: the planner (pure) gives the same writes, unless the file was edited —
    # and an edited plan must not send what the job never asked for (the owner, past the cap).
    edited = [
        f"{chat.account}/{chat.chat}"
        for chat in fresh.chats
        if saved[(chat.account, chat.chat)].to_send != chat.to_send
    ]
    if edited:
        shown = ", ".join(edited[:20]) + (
            f" and {len(edited) - 20} more" if len(edited) > 20 else ""
        )
        raise RunRefused(
            f"the plan's operations for these chats are not what the job plans (was the plan "
            f"file edited?): {shown}; nothing was sent"
        )
    chats = tuple(
        replace(chat, to_send=saved[(chat.account, chat.chat)].to_send) for chat in fresh.chats
    )
    return replace(fresh, chats=chats)
