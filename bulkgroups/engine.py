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

import gc
import hashlib
import random
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sized
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Protocol, TypeVar

import anyio

from . import jobs, planner
from .attempts import AccountStopped, Attempts, DeferAccount, call_with_retry
from .client import UnipileClient
from .errors import (
    AccountError,
    ApiError,
    AuthError,
    Conflict,
    JobFileErrors,
    NotFound,
    PermissionDenied,
    ProviderRateLimited,
    RunRefused,
    TransientError,
    plain_errors,
)
from .ledger import LedgerWriter, Replay, new_run_id, replay
from .lock import LedgerLock
from .model import (
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
    RateSpec,
    ReadFailure,
    Reason,
    RequestKind,
    Status,
)
from .pacing import Pacing, PacingPolicy, RetryPolicy
from .version import __version__

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

DEFAULT_LEDGER = "bulkgroups-ledger.jsonl"

T = TypeVar("T")


_ONE_PER_SECOND = RateSpec(1, 1.0)
_ONE_PER_MINUTE = RateSpec(1, 60.0)  # LinkedIn advises about a minute between sensitive actions


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineConfig:
    """Everything a run can be told; per-account settings of the job override the rates."""

    concurrency: int = 64
    rate: RateSpec | None = _ONE_PER_SECOND
    write_rate: RateSpec | None = _ONE_PER_MINUTE
    jitter: float = 0.0
    max_members: int = planner.DEFAULT_MAX_MEMBERS
    max_removals: int = 100  # -1 disables the check
    daily_limit: int | None = None
    verify: bool = True
    verify_delay: float = 1.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    shard: tuple[int, int] | None = None
    # Chats of one account worked on at once: enough to keep the account's pacer busy while a
    # response is on its way, few enough that one account cannot flood the global bound.
    chats_per_account: int = 4
    # Providers hide their limiters behind 429/5xx/timeouts: after this many consecutive failed
    # write attempts of one account, slow it down; after `failure_streak_defer`, defer it.
    failure_streak_slowdown: int = 3
    failure_streak_defer: int = 8
    interrupt_grace: float = 10.0
    seed: int | None = None


class RunObserver(Protocol):
    """What a progress display is told; every method must return at once.

    Phases ("preflight", "read", "apply") overlap: an account may write while another still reads.
    `outcome` advances "apply".
    """

    def phase(self, name: str, total: int) -> None: ...

    def advance(self, name: str, count: int = 1) -> None: ...

    def grow(self, name: str, count: int) -> None: ...

    def outcome(self, outcome: Outcome) -> None: ...


class _SilentObserver:
    def phase(self, name: str, total: int) -> None:
        pass

    def grow(self, name: str, count: int) -> None:
        pass

    def advance(self, name: str, count: int = 1) -> None:
        pass

    def outcome(self, outcome: Outcome) -> None:
        pass


@dataclass(frozen=True, slots=True)
class RunResult:
    """What an apply did: the counts of this run's `op` records, and where they are."""

    run_id: str
    counts: Mapping[str, int]
    interrupted: bool
    ledger: str
    plan: Plan

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        if self.counts.get("failed", 0) or self.counts.get("deferred", 0):
            return 3
        return 0


@dataclass(frozen=True, slots=True)
class _Stop:
    """Why an account sends nothing more; its remaining operations get this outcome."""

    status: Status
    reason: Reason
    error: ErrorInfo | None = None


@dataclass(slots=True)
class _Account:
    account: str
    info: AccountInfo | None = None
    stop: _Stop | None = None
    writes_left: int | None = None
    failure_streak: int = 0

    def stop_with(self, stop: _Stop) -> None:
        if self.stop is None:
            self.stop = stop


@contextmanager
def _fewer_young_collections() -> Iterator[None]:
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


def _pacing(job: Job | None, config: EngineConfig, *, rng: random.Random | None = None) -> Pacing:
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


def _shard_job(job: Job, shard: tuple[int, int] | None) -> Job:
    if shard is None:
        return job
    index, count = shard
    chats = tuple(c for c in job.chats if shard_of(c.account, count) == index)
    return replace(job, chats=chats)


async def _for_each(items: Iterable[T], work: Callable[[T], Awaitable[None]], workers: int) -> None:
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


_PREFLIGHT_STOPS: dict[str, _Stop] = {
    "disconnected": _Stop("failed", "account_disconnected"),
    "paused": _Stop("failed", "account_paused"),
    "errored": _Stop("deferred", "account_errored"),
}


def _stop_for(error: ApiError) -> _Stop | None:
    """The account-wide stop an error calls for, or None if it concerns one request only."""
    if isinstance(error, ProviderRateLimited):
        return _Stop("deferred", "provider_rate_limited", error.info)
    if isinstance(error, AccountError) and error.account_reason is not None:
        return _Stop("failed", error.account_reason, error.info)
    if isinstance(error, AuthError):
        return _Stop("failed", "account_auth", error.info)
    return None


class _WritesStopped(Exception):
    """A write reached its turn after the run was interrupted; it was not sent."""


class _RunTurn:
    """`_Run._gate`: the pacer's turn, then the run's own last look before the request goes.

    A class rather than an @asynccontextmanager: it is entered around every request.
    """

    __slots__ = ("_account", "_run", "_turn", "_writes")

    def __init__(self, run: _Run, account: str, kind: RequestKind, *, writes: bool) -> None:
        self._run = run
        self._account = account
        self._turn = run.pacing.gate(account, kind)
        self._writes = writes

    async def __aenter__(self) -> None:
        await self._turn.__aenter__()
        run = self._run
        state = run.accounts.get(self._account)
        refusal: BaseException | None = None
        if run.run_auth_error is not None or (state is not None and state.stop is not None):
            refusal = AccountStopped()
        elif self._writes and run.writes_stopped:
            refusal = _WritesStopped()
        if refusal is not None:
            await self._turn.__aexit__(type(refusal), refusal, None)
            raise refusal

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._turn.__aexit__(exc_type, exc, tb)


class _Run:
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
        self.observer: RunObserver = observer or _SilentObserver()
        self.sleep = sleep
        self.rng = random.Random(config.seed)
        self.pacing = _pacing(job, config, rng=random.Random(self.rng.random()))
        self.accounts: dict[str, _Account] = {a: _Account(a) for a in job.account_ids()}
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
        account: _Account,
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
                account.stop_with(_Stop("deferred", "provider_rate_limited", error.info))

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

    def _note_stop(self, account: _Account, error: ApiError) -> _Stop | None:
        if isinstance(error, AuthError):
            self.run_auth_error = error
        stop = _stop_for(error)
        if stop is not None:
            account.stop_with(stop)
        return account.stop if stop is not None else None

    # -------------------------------------------------------------------------------- preflight

    async def preflight(self) -> None:
        """The core account GET of every account; an invalid API key stops the run (exit 1)."""
        self.observer.phase("preflight", len(self.accounts))

        async def check(account: _Account) -> None:
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
                account.stop_with(_stop_for(error) or _Stop("failed", "api_error", error.info))
            except DeferAccount as deferral:
                account.stop_with(_Stop("deferred", "rate_limited", deferral.error.info))
            else:
                account.info = info
                if info.status != "running":
                    account.stop_with(
                        _PREFLIGHT_STOPS.get(info.status, _Stop("deferred", "account_errored"))
                    )
            finally:
                self.observer.advance("preflight")

        await _for_each(self.accounts.values(), check, self.config.concurrency)

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

    async def read_chat(self, account: _Account, chat: str) -> ChatState | ReadFailure:
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
            account.stop_with(_Stop("deferred", "rate_limited", deferral.error.info))
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

    async def read_and_plan(self) -> Plan:
        """Every chat read and planned (accounts side by side): what `plan` shows."""
        by_account = self._chats_by_account()
        planned: dict[tuple[str, str], ChatPlan] = {}
        self.observer.phase("read", len(self.job.chats))

        async def plan_one(chat: ChatJob) -> None:
            planned[(chat.account, chat.chat)] = await self.plan_chat(chat)

        async with anyio.create_task_group() as tg:
            for chats in by_account.values():
                tg.start_soon(_for_each, chats, plan_one, self.config.chats_per_account)
        if self.run_auth_error is not None:
            raise self.run_auth_error
        return Plan(
            job_sha256=self.job.sha256,
            chats=tuple(planned[(c.account, c.chat)] for c in self.job.chats),
            owners=self.owners(),
            job=self.job,
        )

    # ------------------------------------------------------------------------------------ write

    def _gate(self, account: str, kind: RequestKind) -> _RunTurn:
        """The pacing gate, with a last look once the turn has come: a request that waited in
        the pacer (minutes, at 1 write/min) while another request of its account stopped the
        account is given up there, unsent: an account-wide stop sends nothing more."""
        return _RunTurn(self, account, kind, writes=False)

    def _write_gate(self, account: str, kind: RequestKind) -> _RunTurn:
        """The pacing gate, except that an interrupted run sends no write: one that waited in
        the pacer for its turn is given up there, unsent (a request in flight finishes)."""
        return _RunTurn(self, account, kind, writes=True)

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

    async def _left_already(self, account: _Account, op: Operation) -> bool:
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

    async def write(self, account: _Account, op: Operation, owner: str | None) -> Outcome:
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
            account.stop_with(_Stop("deferred", "rate_limited", deferral.error.info))
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

    def _current_stop(self, account: _Account) -> _Stop:
        """Why an account sends nothing more: its own stop, or the run's refused API key."""
        if account.stop is not None:
            return account.stop
        auth = self.run_auth_error
        return _Stop("failed", "account_auth", auth.info if auth else None)

    def _stopped_outcome(self, account: _Account, op: Operation, attempts: int = 0) -> Outcome:
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
        self, account: _Account, chat: str, outcomes: list[Outcome], owner: str | None
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

    async def read_chat_for_verify(self, account: _Account, chat: str) -> ChatState | None:
        if account.stop is not None:
            return None
        try:
            return await self._call(
                account, lambda: self._fetch_state(account.account, chat), Attempts(), write=False
            )
        except (ApiError, DeferAccount, AccountStopped):
            return None


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
    run = _Run(_shard_job(job, config.shard), client, config, observer)
    with plain_errors():
        await run.preflight()
        run.check_owner_rule()
        return await run.read_and_plan()


def estimate_seconds(plan: Plan, config: EngineConfig | None = None) -> float:
    """How long applying the plan takes at the configured rates: the slowest account's writes
    and their verification reads, paced."""
    config = config or EngineConfig()
    job = plan.job
    pacing = _pacing(job, config)
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


class _WriteGate:
    """Holds every write back until it is certain the run will not be refused.

    `--max-removals` must refuse a plan before anything is sent, but waiting for every account's
    reads would let one slow account hold up all the others. Each account's removals are bounded
    before it is read (an imperative chat removes at most its `remove` list; a desired-state chat
    has no bound until read), so writes may start as soon as the removals known so far plus the
    bounds of the accounts still reading fit under the limit. A confirmation or a saved plan needs
    the whole plan: then the gate waits for every account.
    """

    def __init__(self, bounds: dict[str, float], limit: int, *, wait_for_all: bool) -> None:
        self.pending = dict(bounds)
        self.limit = limit
        self.wait_for_all = wait_for_all
        self.known = 0
        self.opened = anyio.Event()
        self.refusal: BaseException | None = None
        self.on_complete: Callable[[], Awaitable[None]] | None = None

    async def report(self, account: str, removals: int) -> None:
        self.pending.pop(account, None)
        self.known += removals
        await self._decide()

    def refuse(self, error: BaseException) -> None:
        if self.refusal is None:
            self.refusal = error
        self.opened.set()

    async def _decide(self) -> None:
        if self.opened.is_set():
            return
        if self.limit >= 0 and self.known > self.limit:
            self.refuse(
                RunRefused(
                    f"the plan removes {self.known} or more members, more than --max-removals "
                    f"{self.limit}; nothing was sent"
                )
            )
            return
        if self.pending and (
            self.wait_for_all
            or (self.limit >= 0 and self.known + sum(self.pending.values()) > self.limit)
        ):
            return
        if not self.pending and self.on_complete is not None:
            try:
                await self.on_complete()
            except RunRefused as error:
                self.refuse(error)
                return
        self.opened.set()

    async def wait(self) -> None:
        await self.opened.wait()
        if self.refusal is not None:
            raise self.refusal


def _removal_bound(chats: Iterable[ChatJob]) -> float:
    bound = 0.0
    for chat in chats:
        if chat.members is not None:
            return float("inf")
        bound += len(chat.remove)
    return bound


PlanSource = Callable[[_Run, list[ChatJob]], Awaitable[list[ChatPlan]]]


async def _read_and_plan_account(run: _Run, chats: list[ChatJob]) -> list[ChatPlan]:
    planned: dict[str, ChatPlan] = {}

    async def plan_one(chat: ChatJob) -> None:
        planned[chat.chat] = await run.plan_chat(chat)

    await _for_each(chats, plan_one, run.config.chats_per_account)
    return [planned[c.chat] for c in chats]


async def _apply(
    run: _Run,
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
    gate = _WriteGate(
        {a: _removal_bound(chats) for a, chats in by_account.items()},
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
            plan = _check_expected(plan, expected)
            planned.update({(c.account, c.chat): c for c in plan.chats})
            _check_removals(plan, config)
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
                except _WritesStopped:
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
                await _for_each(current, apply_chat, config.chats_per_account)

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


def _check_removals(plan: Plan, config: EngineConfig) -> None:
    removals = plan.removals
    if config.max_removals >= 0 and removals > config.max_removals:
        raise RunRefused(
            f"the plan removes {removals} members, more than --max-removals {config.max_removals}; "
            "nothing was sent"
        )


def _pause_after_previous_runs(run: _Run, previous: Replay, *, holder_died: bool) -> None:
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
    with plain_errors(), LedgerLock(ledger) as lock, _fewer_young_collections():
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
        run = _Run(_shard_job(job, config.shard), client, config, observer)
        _pause_after_previous_runs(run, previous, holder_died=lock.took_over)
        await run.preflight()
        run.check_owner_rule()
        return await _apply(
            run,
            ledger=ledger,
            resume=resume,
            previous=previous,
            interrupt=interrupt,
            source=_read_and_plan_account,
            expected=expected,
            confirm=confirm,
        )


def _check_expected(fresh: Plan, expected: Plan) -> Plan:
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

    async def given_plans(run: _Run, chats: list[ChatJob]) -> list[ChatPlan]:
        return [given[(c.account, c.chat)] for c in chats if (c.account, c.chat) in given]

    with plain_errors(), LedgerLock(ledger) as lock, _fewer_young_collections():
        previous = await anyio.to_thread.run_sync(replay, ledger)
        job = replace(
            plan.job, chats=tuple(c for c in plan.job.chats if (c.account, c.chat) in given)
        )
        run = _Run(job, client, config, observer)
        _pause_after_previous_runs(run, previous, holder_died=lock.took_over)
        # The plan's reads were paced by another run: wait one general window before writing.
        for account in run.accounts:
            policy = run.pacing.policy(account)
            if policy.rate is not None:
                run.pacing.pacer(account).pause_for(policy.effective_period(policy.rate))
        for account_id, owner in plan.owners.items():
            if account_id in run.accounts:
                run.accounts[account_id].info = AccountInfo(account_id, owner, "running")
        return await _apply(
            run,
            ledger=ledger,
            resume=False,
            previous=previous,
            interrupt=interrupt,
            source=given_plans,
        )
