"""Applying a plan: per-account pipelines (read and plan, then write once the removal gate
opens), each chat's writes and their verification, every outcome recorded as it happens.

Records, in CONTRACT terms: the `run` record once, before anything else of the run; per chat,
first what is known without sending (writes of earlier runs found in effect, `recovered`; the
plan's skips and refusals), then each write's `intent` (durable) before each of its attempts and
its `op` record as soon as its outcome is known; after the chat's writes a fresh re-read (once
more after a short delay) and a `verify` record for each applied write that does not show; the
`end` record last, also when the run is interrupted or cancelled from outside.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

import anyio

from ..errors import RunRefused
from ..ledger import LedgerIO, LedgerWriter, Replay, new_run_id
from ..model import ChatJob, ChatPlan, ErrorInfo, Operation, Outcome, Plan
from .accounts import Account
from .budget import Claim
from .config import AccountWork, RunResult, WorkObserver
from .outcomes import chat_refused, in_effect
from .recorder import Recorder
from .removals import RemovalGate, check_removals
from .run import Run
from .stops import Flight, SendingStopped
from .workers import for_each

__all__ = ["Application", "PlanSource", "apply_run", "check_expected"]

PlanSource = Callable[[Run, list[ChatJob]], Awaitable[list[ChatPlan]]]
Confirm = Callable[[Plan], Awaitable[bool]]


async def apply_run(
    run: Run,
    *,
    ledger: str,
    resume: bool,
    previous: Replay,
    interrupt: anyio.Event | None,
    source: PlanSource,
    expected: Plan | None = None,
    confirm: Confirm | None = None,
    ledger_io: LedgerIO | None = None,
) -> RunResult:
    """Apply the run's job on `ledger`; raises `LedgerUnwritable` if the ledger failed."""
    run_id = new_run_id()
    io = ledger_io or LedgerIO()
    async with LedgerWriter(
        ledger, write=io.write, fsync=io.fsync, on_failure=run.stops.fail_ledger
    ) as writer:
        recorder = Recorder(writer, run_id, run.observer)
        run.recorder = recorder
        application = Application(
            run,
            recorder,
            resume=resume,
            previous=previous,
            source=source,
            expected=expected,
            confirm=confirm,
        )
        interrupted = await application.apply(interrupt)
        if run.stops.ledger_failure is not None:
            raise run.stops.ledger_failure
    return RunResult(
        run_id=run_id,
        counts=dict(recorder.counts),
        interrupted=interrupted,
        ledger=ledger,
        plan=application.plan(),
    )


class Application:
    """One application of a job's plan on a ledger; `apply` runs it once."""

    def __init__(
        self,
        run: Run,
        recorder: Recorder,
        *,
        resume: bool,
        previous: Replay,
        source: PlanSource,
        expected: Plan | None = None,
        confirm: Confirm | None = None,
    ) -> None:
        self.run = run
        self.recorder = recorder
        self.resume = resume
        self.previous = previous
        self.source = source
        self.expected = expected
        self.confirm = confirm
        self.planned: dict[tuple[str, str], ChatPlan] = {}
        self.by_account = run.chats_by_account()
        self.removals = RemovalGate(
            self.by_account,
            run.config.max_removals,
            percent=run.config.max_removal_percent,
            wait_for_all=expected is not None or confirm is not None,
        )
        self.removals.on_complete = self._complete

    def plan(self) -> Plan:
        """The whole plan applied, once every chat was planned (else an empty plan)."""
        if len(self.planned) == len(self.run.job.chats):
            return self.run.plan_of(self.planned)
        return Plan(self.run.job.sha256, ())

    # -- the run as a whole --------------------------------------------------------------------

    async def apply(self, interrupt: anyio.Event | None) -> bool:
        """Every account's pipeline side by side; True if the run was interrupted.

        A run cut short from outside (a second Ctrl-C cancels it, a library caller's timeout) or
        by an error still closes its `run` with an `end` record: interrupted, --resume continues.
        """
        run, recorder = self.run, self.recorder
        run.observer.phase("read", len(run.job.chats))
        interrupted = True
        try:
            with anyio.CancelScope() as scope:
                async with anyio.create_task_group() as tg:
                    if interrupt is not None:
                        tg.start_soon(self._forward, interrupt)
                    tg.start_soon(self._watch_stops, scope)
                    async with anyio.create_task_group() as workers:
                        for account, chats in self.by_account.items():
                            workers.start_soon(self._pipeline, account, chats)
                    tg.cancel_scope.cancel()
            interrupted = run.stops.interrupted or scope.cancelled_caught
            if not self.by_account:
                await self._start()  # an empty shard still writes its run and end records
        finally:
            if recorder.started:
                with anyio.CancelScope(shield=True):
                    await recorder.end(interrupted=interrupted)
        return interrupted

    async def _forward(self, interrupt: anyio.Event) -> None:
        await interrupt.wait()
        self.run.stops.interrupt()

    async def _watch_stops(self, scope: anyio.CancelScope) -> None:
        """Once the run stops sending, the requests in flight finish (within a bounded grace)
        and the rest — waits for a turn in a pacer, backoffs, which would send nothing — is
        cancelled as soon as the last of them lands; before anything was written, at once."""
        stops = self.run.stops
        await stops.stopped.wait()
        if self.recorder.started:
            with anyio.move_on_after(self.run.config.interrupt_grace):
                await stops.all_landed()
        scope.cancel()

    async def _start(self) -> None:
        await self.recorder.start(
            job_sha256=self.run.job.sha256, resume=self.resume, resolutions=self.run.people.fresh
        )

    async def _complete(self) -> None:
        """Every chat is planned: `apply --plan` checks it, a person may confirm it."""
        plan = self.run.plan_of(self.planned)
        if self.expected is not None:
            plan = check_expected(plan, self.expected)
            self.planned.update({(c.account, c.chat): c for c in plan.chats})
            config = self.run.config
            check_removals(
                plan,
                limit=config.max_removals,
                percent=config.max_removal_percent,
                consequence="nothing was sent",
            )
        # Abandoned on cancel: Ctrl-C at the prompt must not wait for an answer that may never come.
        if self.confirm is not None and not await self.confirm(plan):
            raise RunRefused("not confirmed; nothing was sent")

    # -- one account ---------------------------------------------------------------------------

    async def _pipeline(self, account: str, chats: list[ChatJob]) -> None:
        # SendingStopped: the run stopped sending (its ledger failed, or it was interrupted while
        # this account still read): nothing more to do here. `except*`: raised in the task group
        # of the account's reads, it comes wrapped in an ExceptionGroup.
        try:
            await self._plan_and_apply(account, chats)
        except* SendingStopped:
            pass

    async def _plan_and_apply(self, account: str, chats: list[ChatJob]) -> None:
        run = self.run
        try:
            plans = await self.source(run, chats)
        except BaseException as error:
            self.removals.refuse(error)
            raise
        for chat_plan in plans:
            self.planned[(chat_plan.account, chat_plan.chat)] = chat_plan
        if run.stops.key_refused is not None and not self.removals.opened.is_set():
            # The key was refused before anything was written: the whole run stops (exit 1).
            # Once writes have begun, the remaining operations are recorded as failed instead.
            self.removals.refuse(run.stops.key_refused)
        await self.removals.report(account, plans)
        await self.removals.wait()
        await self._start()
        if run.stops.writes_stopped:
            return
        current = [self.planned[(c.account, c.chat)] for c in chats]
        self._announce(account, current)
        await for_each(current, self.apply_chat, run.config.chats_per_account, lending=True)
        run.pacing.pacer(account).retire()  # nothing more is sent for it in this run

    def _announce(self, account: str, plans: list[ChatPlan]) -> None:
        """Tell the observer what this account's writes will record: on --resume only what is
        left (what an earlier run settled is neither sent nor recorded again)."""
        run = self.run
        operations = writes = reads = 0
        for plan in plans:
            sends = sum(1 for op in plan.to_send if not self._settled(op))
            known = sum(1 for d in plan.decided if not self._settled(d.operation))
            read = 1 if self._read_to_record(plan) is not None else 0
            operations += sends + known + len(plan.recovered) + read
            writes += sends
            reads += 2 if sends and run.config.verify else 0  # the chat, a participants page
        run.observer.grow("apply", operations)
        if isinstance(run.observer, WorkObserver):
            run.observer.planned(
                AccountWork(account, operations, writes, reads, run.seconds_left(account))
            )

    # -- one chat ------------------------------------------------------------------------------

    def _settled(self, operation: Operation) -> bool:
        return self.resume and self.previous.settled(operation.digest)

    async def apply_chat(self, plan: ChatPlan) -> None:
        """What is known without sending, then the chat's writes in order, then verification."""
        if self.run.stops.writes_stopped:
            return  # interrupted before this chat began: nothing of it is recorded
        await self._record_known(plan)
        ops = [op for op in plan.to_send if not self._settled(op)]
        if ops:
            await self._write_chat(plan, ops)

    async def _record_known(self, plan: ChatPlan) -> None:
        recorder = self.recorder
        for operation in plan.recovered:
            await recorder.outcome(
                Outcome(operation, "applied", None, 0, recovered=True),
                previous_name=self.previous.renamed_from.get(operation.digest),
            )
        for decided in plan.decided:
            if not self._settled(decided.operation):
                await recorder.outcome(decided, previous_name=plan.chat_name)
        read = self._read_to_record(plan)
        if read is not None:
            await recorder.outcome(Outcome(read, "applied", None, 1))

    def _read_to_record(self, plan: ChatPlan) -> Operation | None:
        """On --resume, a desired-state chat whose read failed before was planned afresh and
        read now: its `read` operation has an outcome in this run too."""
        if not self.resume:
            return None
        read = Operation(plan.account, plan.chat, "read")
        if self.previous.outcomes.get(read.digest) in ("failed", "deferred") and not any(
            d.operation.action == "read" for d in plan.decided
        ):
            return read
        return None

    async def _write_chat(self, plan: ChatPlan, ops: list[Operation]) -> None:
        run, recorder = self.run, self.recorder
        account = run.accounts[plan.account]
        # Chats of one account start side by side: claim this chat's writes before the first
        # goes, so that the next chat sees only what is left of the budget.
        claim = run.budget.claim(plan.account, len(ops))
        if claim is None:
            for op in ops:
                await recorder.outcome(Outcome(op, "deferred", "daily_limit", 0))
            return
        applied: list[Outcome] = []
        try:
            refused: ErrorInfo | None = None
            for op in ops:
                flight = run.stops.flight()
                try:
                    outcome = await self._write_one(
                        account, op, claim, refused, plan.chat_name, flight
                    )
                    if outcome is None:
                        break  # not sent: nothing recorded, --resume plans it again
                    await recorder.outcome(outcome, previous_name=plan.chat_name)
                finally:
                    flight.land()
                if outcome.status == "applied":
                    applied.append(outcome)
                if chat_refused(outcome):
                    refused = outcome.error
        finally:
            run.budget.release(claim)
        if applied and run.config.verify and not run.stops.writes_stopped:
            await self._verify(account, plan.chat, applied)

    async def _write_one(
        self,
        account: Account,
        op: Operation,
        claim: Claim,
        refused: ErrorInfo | None,
        chat_name: str | None,
        flight: Flight,
    ) -> Outcome | None:
        """The outcome of one write of the chat, or None if the run stopped before it went."""
        if self.run.stops.writes_stopped:
            return None
        if account.halted():
            return account.stopped_outcome(op)
        if refused is not None:  # this chat alone is off limits: the rest of it fails unsent
            return Outcome(op, "failed", "api_error", 0, refused)
        if not self.run.budget.available(claim):  # not worth a turn in the pacer
            return Outcome(op, "deferred", "daily_limit", 0)
        try:
            return await self.run.write(account, op, claim, previous_name=chat_name, flight=flight)
        except SendingStopped:
            return None

    async def _verify(self, account: Account, chat: str, applied: list[Outcome]) -> None:
        """Re-read the chat (once more after a short delay if needed); writes that do not show
        are amended `failed not_effective`. A chat that cannot be re-read keeps its outcomes.
        Once begun it is seen to its end (a `Flight`), Ctrl-C or not: an applied write that does
        not show must not stay recorded applied, which `--resume` would take as settled."""
        flight = self.run.stops.flight()
        flight.take_off()
        try:
            await self._verify_reads(account, chat, applied)
        finally:
            flight.land()

    async def _verify_reads(self, account: Account, chat: str, applied: list[Outcome]) -> None:
        missing = applied
        for check in range(2):
            state = await self.run.read_for_verify(account, chat)
            if state is None:
                return
            missing = [o for o in missing if not in_effect(o.operation, state, account.owner)]
            if not missing:
                return
            if check == 0:
                await self.run.sleep(self.run.config.verify_delay)
        for outcome in missing:
            await self.recorder.amend(outcome, "failed", "not_effective")


def _shown(chats: list[str]) -> str:
    return ", ".join(chats[:20]) + (f" and {len(chats) - 20} more" if len(chats) > 20 else "")


def check_expected(fresh: Plan, expected: Plan) -> Plan:
    """`apply --plan`: the job and every chat's observed state must be what the plan saw."""
    if fresh.job_sha256 != expected.job_sha256:
        raise RunRefused(
            "the job changed since the plan was made (job_sha256 differs); nothing was sent"
        )
    saved = {(c.account, c.chat): c for c in expected.chats}
    missing = [f"{c.account}/{c.chat}" for c in fresh.chats if (c.account, c.chat) not in saved]
    if missing:
        raise RunRefused(
            f"these chats of the run are not in the plan: {_shown(missing)} (was it made with "
            "other --shard, --only-account or --only-chat?); nothing was sent"
        )
    stale = [
        f"{chat.account}/{chat.chat}"
        for chat in fresh.chats
        if saved[(chat.account, chat.chat)].state_digest != chat.state_digest
    ]
    if stale:
        raise RunRefused(
            f"the state of these chats changed since the plan: {_shown(stale)}; nothing was sent"
        )
    # Same job, same states: the planner (pure) gives the same writes, unless the file was edited —
    # and an edited plan must not send what the job never asked for (the owner, past the cap).
    edited = [
        f"{chat.account}/{chat.chat}"
        for chat in fresh.chats
        if saved[(chat.account, chat.chat)].to_send != chat.to_send
    ]
    if edited:
        raise RunRefused(
            f"the plan's operations for these chats are not what the job plans (was the plan "
            f"file edited?): {_shown(edited)}; nothing was sent"
        )
    chats = tuple(
        replace(chat, to_send=saved[(chat.account, chat.chat)].to_send) for chat in fresh.chats
    )
    return replace(fresh, chats=chats)
