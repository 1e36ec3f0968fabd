"""One invocation's mutable state and its requests: preflight, fresh reads, writes, verification.

Every request of an account goes through that account's pacer (`Run._gate`); an account-wide
stop (`AccountStop`) sends nothing more for that account, and never touches another.
"""

from __future__ import annotations

import gc
import hashlib
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sized
from contextlib import contextmanager
from dataclasses import dataclass, replace
from types import TracebackType
from typing import TypeVar

import anyio

from .. import jobs, planner
from ..attempts import AccountStopped, Attempts, DeferAccount, call_with_retry
from ..client import UnipileClient
from ..errors import (
    AccountError,
    ApiError,
    AuthError,
    Conflict,
    JobFileErrors,
    NotFound,
    PermissionDenied,
    ProviderRateLimited,
    TransientError,
)
from ..model import (
    STATUSES,
    AccountInfo,
    ChatJob,
    ChatPlan,
    ChatState,
    ErrorInfo,
    Job,
    Operation,
    Outcome,
    Plan,
    RateLimitHeaders,
    ReadFailure,
    Reason,
    RequestKind,
    Status,
)
from ..pacing import Pacing, PacingPolicy
from .config import EngineConfig, RunObserver, SilentObserver

__all__ = [
    "PREFLIGHT_STOPS",
    "AccountState",
    "AccountStop",
    "Run",
    "RunTurn",
    "WritesStopped",
    "build_pacing",
    "fewer_young_collections",
    "for_each",
    "shard_job",
    "shard_of",
    "stop_for",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class AccountStop:
    """Why an account sends nothing more; its remaining operations get this outcome."""

    status: Status
    reason: Reason
    error: ErrorInfo | None = None


@dataclass(slots=True)
class AccountState:
    account: str
    info: AccountInfo | None = None
    stop: AccountStop | None = None
    writes_left: int | None = None
    failure_streak: int = 0

    def stop_with(self, stop: AccountStop) -> None:
        if self.stop is None:
            self.stop = stop


@contextmanager
def fewer_young_collections() -> Iterator[None]:
    """Raise the garbage collector's first threshold for the length of a run, then restore it.

    Every request allocates a few hundred short-lived objects (coroutines, headers, answers);
    at CPython's default of one young collection per 700 allocations the collector took about a
    sixth of the engine's CPU (benchmarks/bench_overhead.py). Nothing here holds reference cycles
    that need prompt collection, and the older generations keep their thresholds.
    """
    previous = gc.get_threshold()
    gc.set_threshold(max(previous[0], 10_000), *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)


def build_pacing(
    job: Job | None, config: EngineConfig, *, rng: random.Random | None = None
) -> Pacing:
    """The run's pacers: the flags' rates, overridden per account by the job's settings."""
    default = PacingPolicy(rate=config.rate, write_rate=config.write_rate, jitter=config.jitter)
    per_account = {
        account: default.overridden_by(settings)
        for account, settings in (job.accounts.items() if job is not None else ())
    }
    return Pacing(concurrency=config.concurrency, default=default, per_account=per_account, rng=rng)


def shard_of(account: str, shards: int) -> int:
    """The stable shard of an account: the same on every machine and Python version."""
    return int.from_bytes(hashlib.sha256(account.encode("utf-8")).digest()[:8], "big") % shards


def shard_job(job: Job, shard: tuple[int, int] | None) -> Job:
    if shard is None:
        return job
    index, count = shard
    chats = tuple(c for c in job.chats if shard_of(c.account, count) == index)
    return replace(job, chats=chats)


async def for_each(items: Iterable[T], work: Callable[[T], Awaitable[None]], workers: int) -> None:
    """Run `work` over `items` with at most `workers` at once (a shared iterator, no queue)."""
    if isinstance(items, Sized):
        workers = min(workers, len(items))  # --concurrency 10**9 must not start 10**9 tasks
    iterator = iter(items)

    async def worker() -> None:
        for item in iterator:
            await work(item)

    async with anyio.create_task_group() as tg:
        for _ in range(max(1, workers)):
            tg.start_soon(worker)


PREFLIGHT_STOPS: dict[str, AccountStop] = {
    "disconnected": AccountStop("failed", "account_disconnected"),
    "paused": AccountStop("failed", "account_paused"),
    "errored": AccountStop("deferred", "account_errored"),
}


def stop_for(error: ApiError) -> AccountStop | None:
    """The account-wide stop an error calls for, or None if it concerns one request only."""
    if isinstance(error, ProviderRateLimited):
        return AccountStop("deferred", "provider_rate_limited", error.info)
    if isinstance(error, AccountError) and error.account_reason is not None:
        return AccountStop("failed", error.account_reason, error.info)
    if isinstance(error, AuthError):
        return AccountStop("failed", "account_auth", error.info)
    return None


class WritesStopped(Exception):
    """A write reached its turn after the run was interrupted; it was not sent."""


class RunTurn:
    """`Run._gate`: the pacer's turn, then the run's own last look before the request goes.

    A class rather than an @asynccontextmanager: it is entered around every request.
    """

    __slots__ = ("_account", "_run", "_turn", "_writes")

    def __init__(self, run: Run, account: str, kind: RequestKind, *, writes: bool) -> None:
        self._run = run
        self._account = account
        self._turn = run.pacing.gate(account, kind)
        self._writes = writes

    async def __aenter__(self) -> RunTurn:
        await self._turn.__aenter__()
        run = self._run
        state = run.accounts.get(self._account)
        refusal: BaseException | None = None
        if run.run_auth_error is not None or (state is not None and state.stop is not None):
            refusal = AccountStopped()
        elif self._writes and run.writes_stopped:
            refusal = WritesStopped()
        if refusal is not None:
            await self._turn.__aexit__(type(refusal), refusal, None)
            raise refusal
        return self

    def observe(self, status: int, headers: RateLimitHeaders | None) -> None:
        self._turn.observe(status, headers)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._turn.__aexit__(exc_type, exc, tb)


class Run:
    """The mutable state of one invocation: pacers, accounts, counts. Owned by one task group."""

    def __init__(
        self,
        job: Job,
        client: UnipileClient,
        config: EngineConfig,
        observer: RunObserver | None,
        *,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self.job = job
        self.client = client
        self.config = config
        self.observer: RunObserver = observer or SilentObserver()
        self.sleep = sleep
        self.rng = random.Random(config.seed)
        self.pacing = build_pacing(job, config, rng=random.Random(self.rng.random()))
        self.accounts: dict[str, AccountState] = {a: AccountState(a) for a in job.account_ids()}
        self.counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
        self.run_auth_error: AuthError | None = None
        # Set on SIGINT/SIGTERM: a write whose turn comes after that is not sent.
        self.writes_stopped = False

    # ---------------------------------------------------------------------------------- helpers

    def _chats_by_account(self) -> dict[str, list[ChatJob]]:
        by_account: dict[str, list[ChatJob]] = defaultdict(list)
        for chat in self.job.chats:
            by_account[chat.account].append(chat)
        return by_account

    def _max_members(self, account: str) -> int:
        settings = self.job.accounts.get(account)
        if settings is not None and settings.max_members is not None:
            return settings.max_members
        return self.config.max_members

    def _daily_limit(self, account: str) -> int | None:
        settings = self.job.accounts.get(account)
        if settings is not None and settings.daily_limit is not None:
            return settings.daily_limit
        return self.config.daily_limit

    async def _call(
        self,
        account: AccountState,
        call: Callable[[], Awaitable[T]],
        attempts: Attempts,
        *,
        write: bool,
    ) -> T:
        def transient(error: ApiError) -> None:
            if not write:
                return
            account.failure_streak += 1
            if account.failure_streak % self.config.failure_streak_slowdown == 0:
                self.pacing.pacer(account.account).slow_down()
            if account.failure_streak >= self.config.failure_streak_defer:
                account.stop_with(AccountStop("deferred", "provider_rate_limited", error.info))

        def success() -> None:
            if write:
                account.failure_streak = 0

        return await call_with_retry(
            call,
            pacer=self.pacing.pacer(account.account),
            policy=self.config.retry,
            attempts=attempts,
            write=write,
            rng=self.rng,
            sleep=self.sleep,
            stopped=lambda: account.stop is not None or self.run_auth_error is not None,
            on_transient=transient,
            on_success=success,
        )

    def _note_stop(self, account: AccountState, error: ApiError) -> AccountStop | None:
        if isinstance(error, AuthError):
            self.run_auth_error = error
        stop = stop_for(error)
        if stop is not None:
            account.stop_with(stop)
        return account.stop if stop is not None else None

    # -------------------------------------------------------------------------------- preflight

    async def preflight(self) -> None:
        """The core account GET of every account; an invalid API key stops the run (exit 1)."""
        self.observer.phase("preflight", len(self.accounts))

        async def check(account: AccountState) -> None:
            attempts = Attempts()
            try:
                info = await self._call(
                    account,
                    lambda: self.client.get_account(account.account, gate=self.pacing.gate),
                    attempts,
                    write=False,
                )
            except AuthError:
                raise
            except ApiError as error:
                account.stop_with(stop_for(error) or AccountStop("failed", "api_error", error.info))
            except DeferAccount as deferral:
                account.stop_with(AccountStop("deferred", "rate_limited", deferral.error.info))
            else:
                account.info = info
                if info.status != "running":
                    account.stop_with(
                        PREFLIGHT_STOPS.get(info.status, AccountStop("deferred", "account_errored"))
                    )
            finally:
                self.observer.advance("preflight")

        await for_each(self.accounts.values(), check, self.config.concurrency)

    def check_owner_rule(self) -> None:
        owners = {a: acc.info.owner_id for a, acc in self.accounts.items() if acc.info is not None}
        errors = jobs.owner_rule_errors(self.job, owners)
        if errors:
            raise JobFileErrors(errors)

    # ----------------------------------------------------------------------------- read + plan

    async def _fetch_state(self, account: str, chat: str) -> ChatState:
        """One fresh read of a chat: its info, then every participant page."""
        info = await self.client.get_chat(account, chat, fresh=True, gate=self._gate)
        if info.type != "group" or not info.is_group or info.is_readonly:
            # Nothing to list: the planner refuses non-groups and skips read-only chats (and a
            # left chat verifies by being read-only).
            return ChatState(account, chat, info, ())
        participants = [
            p async for p in self.client.participants(account, chat, fresh=True, gate=self._gate)
        ]
        return ChatState(account, chat, info, tuple(participants))

    async def read_chat(self, account: AccountState, chat: str) -> ChatState | ReadFailure:
        """A chat's fresh state, or why it could not be read."""
        if account.stop is not None or self.run_auth_error is not None:
            why = self._current_stop(account)
            return ReadFailure(account.account, chat, why.status, why.reason, why.error, 0)
        attempts = Attempts()
        try:
            return await self._call(
                account, lambda: self._fetch_state(account.account, chat), attempts, write=False
            )
        except NotFound as error:
            return ReadFailure(
                account.account, chat, "failed", "chat_not_found", error.info, attempts.count
            )
        except ApiError as error:
            account_stop = self._note_stop(account, error)
            if account_stop is not None:
                return ReadFailure(
                    account.account,
                    chat,
                    account_stop.status,
                    account_stop.reason,
                    account_stop.error,
                    attempts.count,
                )
            return ReadFailure(
                account.account, chat, "failed", "api_error", error.info, attempts.count
            )
        except DeferAccount as deferral:
            account.stop_with(AccountStop("deferred", "rate_limited", deferral.error.info))
            return ReadFailure(
                account.account,
                chat,
                "deferred",
                "rate_limited",
                deferral.error.info,
                attempts.count,
            )
        except AccountStopped:
            why = self._current_stop(account)
            return ReadFailure(account.account, chat, why.status, why.reason, why.error, 0)

    def owners(self) -> dict[str, str]:
        return {a: acc.info.owner_id for a, acc in self.accounts.items() if acc.info is not None}

    async def plan_chat(self, chat: ChatJob) -> ChatPlan:
        """Read one chat (fresh) and plan it; only the compact plan is kept."""
        account = self.accounts[chat.account]
        observed = await self.read_chat(account, chat.chat)
        owner = account.info.owner_id if account.info is not None else None
        chat_plan = planner.plan_chat(
            chat, observed, owner_id=owner, max_members=self._max_members(chat.account)
        )
        self.observer.advance("read")
        return chat_plan

    async def plan_chats(self, chats: list[ChatJob]) -> list[ChatPlan]:
        """One account's chats read and planned, a few at a time, in the job's order."""
        planned: dict[str, ChatPlan] = {}

        async def plan_one(chat: ChatJob) -> None:
            planned[chat.chat] = await self.plan_chat(chat)

        await for_each(chats, plan_one, self.config.chats_per_account)
        return [planned[c.chat] for c in chats]

    async def read_and_plan(self) -> Plan:
        """Every chat read and planned (accounts side by side): what `plan` shows."""
        planned: dict[tuple[str, str], ChatPlan] = {}
        self.observer.phase("read", len(self.job.chats))

        async def plan_account(chats: list[ChatJob]) -> None:
            for chat_plan in await self.plan_chats(chats):
                planned[(chat_plan.account, chat_plan.chat)] = chat_plan

        async with anyio.create_task_group() as tg:
            for chats in self._chats_by_account().values():
                tg.start_soon(plan_account, chats)
        if self.run_auth_error is not None:
            raise self.run_auth_error
        return Plan(
            job_sha256=self.job.sha256,
            chats=tuple(planned[(c.account, c.chat)] for c in self.job.chats),
            owners=self.owners(),
            job=self.job,
        )

    # ------------------------------------------------------------------------------------ write

    def _gate(self, account: str, kind: RequestKind) -> RunTurn:
        """The pacing gate, with a last look once the turn has come: a request that waited in
        the pacer (minutes, at 1 write/min) while another request of its account stopped the
        account is given up there, unsent: an account-wide stop sends nothing more."""
        return RunTurn(self, account, kind, writes=False)

    def _write_gate(self, account: str, kind: RequestKind) -> RunTurn:
        """The pacing gate, except that an interrupted run sends no write: one that waited in
        the pacer for its turn is given up there, unsent (a request in flight finishes)."""
        return RunTurn(self, account, kind, writes=True)

    async def _send(self, op: Operation, owner: str | None) -> None:
        gate = self._write_gate
        if op.action == "add" and op.user is not None:
            await self.client.add_participant(op.account, op.chat, op.user, gate=gate)
        elif op.action == "remove" and op.user is not None:
            await self.client.remove_participant(op.account, op.chat, op.user, gate=gate)
        elif op.action == "rename" and op.name is not None:
            await self.client.rename_chat(op.account, op.chat, op.name, gate=gate)
        elif op.action == "leave" and owner is not None:
            await self.client.remove_participant(op.account, op.chat, owner, gate=gate)
        else:
            raise ValueError(f"cannot send {op!r}")

    async def _left_already(self, account: AccountState, op: Operation) -> bool:
        """After a leave whose first attempt's outcome is unknown: does a re-read show it done?"""
        try:
            info = await self._call(
                account,
                lambda: self.client.get_chat(op.account, op.chat, fresh=True, gate=self._gate),
                Attempts(),
                write=False,
            )
        except (ApiError, DeferAccount, AccountStopped):
            return False
        return info.is_readonly

    async def write(self, account: AccountState, op: Operation, owner: str | None) -> Outcome:
        """Send one write and decide its outcome (CONTRACT: order, outcomes and reasons)."""
        attempts = Attempts()
        try:
            await self._call(account, lambda: self._send(op, owner), attempts, write=True)
        except Conflict as error:
            if op.action == "add":
                if attempts.outcome_unknown:
                    return Outcome(op, "applied", None, attempts.count)
                return Outcome(op, "skipped", "already_member", attempts.count)
            return Outcome(op, "failed", "api_error", attempts.count, error.info)
        except NotFound as error:
            if op.action == "remove":
                if attempts.outcome_unknown:
                    return Outcome(op, "applied", None, attempts.count)
                return Outcome(op, "skipped", "not_member", attempts.count)
            if op.action == "leave" and await self._left_already(account, op):
                return self._left(op, attempts)
            return Outcome(op, "failed", "chat_not_found", attempts.count, error.info)
        except PermissionDenied as error:
            if op.action == "leave" and await self._left_already(account, op):
                return self._left(op, attempts)
            return Outcome(op, "failed", "api_error", attempts.count, error.info)
        except ApiError as error:
            stop = self._note_stop(account, error)
            if stop is not None:
                return Outcome(op, stop.status, stop.reason, attempts.count, error.info)
            if isinstance(error, TransientError) and account.stop is not None:
                stop = account.stop  # the failure streak just deferred the account
                return Outcome(op, stop.status, stop.reason, attempts.count, error.info)
            return Outcome(op, "failed", "api_error", attempts.count, error.info)
        except DeferAccount as deferral:
            account.stop_with(AccountStop("deferred", "rate_limited", deferral.error.info))
            return Outcome(op, "deferred", "rate_limited", attempts.count, deferral.error.info)
        except AccountStopped:
            return self._stopped_outcome(account, op, attempts.count)
        finally:
            if account.writes_left is not None:
                account.writes_left -= attempts.count
        return Outcome(op, "applied", None, attempts.count)

    @staticmethod
    def _left(op: Operation, attempts: Attempts) -> Outcome:
        """A leave refused because the chat is read-only: our own earlier attempt may have done
        it (outcome unknown: applied), or the owner had left since the plan read it."""
        if attempts.outcome_unknown:
            return Outcome(op, "applied", None, attempts.count)
        return Outcome(op, "skipped", "already_left", attempts.count)

    def _current_stop(self, account: AccountState) -> AccountStop:
        """Why an account sends nothing more: its own stop, or the run's refused API key."""
        if account.stop is not None:
            return account.stop
        auth = self.run_auth_error
        return AccountStop("failed", "account_auth", auth.info if auth else None)

    def _stopped_outcome(self, account: AccountState, op: Operation, attempts: int = 0) -> Outcome:
        why = self._current_stop(account)
        return Outcome(op, why.status, why.reason, attempts, why.error)

    @staticmethod
    def _visible(op: Operation, state: ChatState, owner: str | None) -> bool:
        members = state.member_ids()
        if op.action in ("add", "remove") and state.info.is_readonly:
            # The chat's own leave went first: its members can no longer be listed, so the
            # re-read cannot tell; the write was accepted and stays applied.
            return True
        if op.action == "add":
            return op.user in members
        if op.action == "remove":
            return op.user not in members
        if op.action == "rename":
            return state.info.name == op.name
        if op.action == "leave":
            return state.info.is_readonly or (owner is not None and owner not in members)
        return True

    async def verify(
        self, account: AccountState, chat: str, outcomes: list[Outcome], owner: str | None
    ) -> list[Outcome]:
        """Re-read the chat (once more after a short delay if needed); writes that do not show
        become `not_effective`. A chat that cannot be re-read keeps its outcomes."""
        for check in range(2):
            pending = [o for o in outcomes if o.status == "applied"]
            if not pending:
                return outcomes
            observed = await self.read_chat_for_verify(account, chat)
            if observed is None:
                return outcomes
            missing = {id(o) for o in pending if not self._visible(o.operation, observed, owner)}
            if not missing:
                return outcomes
            if check == 0:
                await self.sleep(self.config.verify_delay)
                continue
            return [
                Outcome(o.operation, "failed", "not_effective", o.attempts, None)
                if id(o) in missing
                else o
                for o in outcomes
            ]
        return outcomes

    async def read_chat_for_verify(self, account: AccountState, chat: str) -> ChatState | None:
        if account.stop is not None:
            return None
        try:
            return await self._call(
                account, lambda: self._fetch_state(account.account, chat), Attempts(), write=False
            )
        except (ApiError, DeferAccount, AccountStopped):
            return None
