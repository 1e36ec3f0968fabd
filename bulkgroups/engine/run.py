"""One invocation's requests: preflight, fresh reads and plans, writes and their outcomes.

Every request of an account goes through that account's pacer and the run's last look
(`gates.RunTurn`); an account-wide stop (`accounts.AccountStop`) sends nothing more for that
account, and never touches another. The decisions themselves (which outcome, which stop, whether
a write shows) are the pure functions of `outcomes`; this module makes the requests they need.
"""

from __future__ import annotations

import math
import random
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import TypeVar

import anyio

from .. import planner
from ..attempts import AccountStopped, Attempts, DeferAccount, call_with_retry
from ..errors import (
    ApiError,
    ApiUnreachable,
    AuthError,
    NotFound,
    OwnerRuleRefused,
    RunRefused,
    TransientError,
    Unreachable,
)
from ..ledger import Replay
from ..ledger_dir import LedgerHistory
from ..model import (
    AccountInfo,
    AddRemoveConflict,
    ChatInfo,
    ChatJob,
    ChatPlan,
    ChatState,
    Job,
    Operation,
    Outcome,
    OwnerRuleViolation,
    Plan,
    ReadFailure,
    Reason,
    RequestKind,
    Resolution,
    profile_slug,
    shard_of,
)
from ..pacing import Pacing, PacingPolicy
from ..recent_sends import LastSent
from .accounts import Account, AccountStop
from .api import ChatApi
from .budget import Claim, WriteBudget
from .config import EngineConfig, RunObserver, SilentObserver
from .gates import RunTurn, WriteSender
from .outcomes import PREFLIGHT_STOPS, Recheck, after_recheck, in_effect, outcome_of, stop_for
from .people import People
from .recorder import Recorder
from .stops import BudgetSpent, Flight, RunStops, SendingStopped
from .workers import for_each, lend_a_worker

__all__ = ["Run", "build_pacing", "shard_job", "shard_of"]

T = TypeVar("T")

# Seconds a chat's info, read by one try of a chat read, serves the retries of its participants
# listing (`Run._state_reader`): a backoff or a 1 s Retry-After, not a long pause.
_INFO_REUSE = 5.0


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


def shard_job(job: Job, shard: tuple[int, int] | None) -> Job:
    if shard is None:
        return job
    index, count = shard
    chats = tuple(c for c in job.chats if shard_of(c.account, count) == index)
    return replace(job, chats=chats)


def _defer(account: Account, deferral: DeferAccount) -> None:
    """Unipile's 429s went past the retry budget (`attempts`): whichever request met them, the
    account's remaining operations are deferred `rate_limited`."""
    account.stop_with(AccountStop("deferred", "rate_limited", deferral.error.info))


def _ignore(*_: object) -> None:
    """Reads do not count towards an account's run of failing writes."""


def _with_recovered(plan: ChatPlan, recovered: list[Operation]) -> ChatPlan:
    """The plan with `recovered` recorded as such instead of whatever it said of them."""
    found = {op.digest for op in recovered}
    return replace(
        plan,
        to_send=tuple(op for op in plan.to_send if op.digest not in found),
        decided=tuple(o for o in plan.decided if o.operation.digest not in found),
        recovered=tuple(recovered),
    )


def _still_in_doubt(plan: ChatPlan, pending: list[Operation]) -> ChatPlan:
    """The plan of a chat that could not be read, its earlier runs' pending writes marked in
    doubt: they may have taken effect, and stay pending until a run reads the chat."""
    waiting = {op.digest for op in pending}
    return replace(
        plan,
        decided=tuple(
            replace(o, in_doubt=True) if o.operation.digest in waiting else o for o in plan.decided
        ),
    )


class Run:
    """The mutable state of one invocation and the requests it makes; owned by one task group.

    Its accounts are the job's, or `accounts` for a run that reads what exists (`export`)."""

    def __init__(
        self,
        job: Job,
        client: ChatApi,
        config: EngineConfig,
        observer: RunObserver | None,
        *,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        accounts: Iterable[str] | None = None,
    ) -> None:
        self.job = job
        self.client = client
        self.config = config
        self.observer: RunObserver = observer or SilentObserver()
        self.sleep = sleep
        self.rng = random.Random(config.seed)
        self._pacing = build_pacing(job, config, rng=random.Random(self.rng.random()))
        self.stops = RunStops()
        self.accounts: dict[str, Account] = {
            account: Account(
                account,
                pacer=self._pacing.pacer(account),
                stops=self.stops,
                slowdown_every=config.failure_streak_slowdown,
                defer_after=config.failure_streak_defer,
            )
            for account in (job.account_ids() if accounts is None else dict.fromkeys(accounts))
        }
        self.people = People(job, max_age=config.resolve_max_age)
        self.budget = WriteBudget({})
        self.recorder: Recorder | None = None
        self._pending: dict[tuple[str, str], list[Operation]] = defaultdict(list)

    # ------------------------------------------------------------------------- settings, ledger

    def max_members(self, account: str) -> int:
        settings = self.job.accounts.get(account)
        if settings is not None and settings.max_members is not None:
            return settings.max_members
        return self.config.max_members

    def daily_limit(self, account: str) -> int | None:
        settings = self.job.accounts.get(account)
        if settings is not None and settings.daily_limit is not None:
            return settings.daily_limit
        return self.config.daily_limit

    def learn_from(self, previous: Replay) -> None:
        """What this run takes from the ledger: today's budget of each limited account (its
        write attempts today already spent) and the earlier runs' writes left pending."""
        left: dict[str, int] = {}
        limits: dict[str, int] = {}
        for account in self.accounts:
            limit = self.daily_limit(account)
            if limit is not None:
                limits[account] = limit
                left[account] = limit - previous.writes_today.get(account, 0)
        self.budget = WriteBudget(left, limits=limits)
        for operation in previous.pending.values():
            if operation.account in self.accounts:
                self._pending[(operation.account, operation.chat)].append(operation)
        self.people.learn(previous.resolutions.values())

    def adopt_owners(self, owners: Mapping[str, str]) -> None:
        """Accounts looked up by an earlier `plan` (library `apply(plan)`): running, with these
        owners, without a lookup of their own."""
        for account_id, owner in owners.items():
            account = self.accounts.get(account_id)
            if account is not None:
                account.info = AccountInfo(account_id, owner, "running")

    # --------------------------------------------------------------------------------- pacing

    @property
    def pacing(self) -> Pacing:
        """The run's pacers (every request's turn, see `gates.RunTurn`)."""
        return self._pacing

    def seconds_left(self, account: str) -> Callable[[int, int], float]:
        """The account's pacer's estimate of how long so many reads and writes take from now
        (`AccountWork.seconds_left`)."""
        return self._pacing.pacer(account).seconds_left

    def gate(self, account: str, kind: RequestKind) -> RunTurn:
        """The gate of a read: the pacer's turn, then the run's last look before it goes."""
        return RunTurn(self, account, kind)

    def check_before_sending(self, account: str, *, write: bool) -> None:
        """At a request's turn: a stopped run (`SendingStopped`) or a stopped account
        (`AccountStopped`) sends nothing more."""
        self.stops.check(write=write)
        state = self.accounts.get(account)
        if state is not None and state.halted():
            raise AccountStopped()

    def pause_after_previous_runs(
        self,
        histories: Sequence[LedgerHistory],
        recent: Mapping[str, LastSent] | None,
        *,
        writes: bool = True,
    ) -> None:
        """Runs back to back stay within the limits: each account waits its strictest window (with
        the pacer's margin) since the last request an earlier run may have sent it.

        That is bounded by the account's last `intent` or `op` record in any ledger read (a write
        is announced just before it is sent and answered before its outcome is recorded) and by
        the last `end` record of each ledger that may hold the account's requests (all reads
        before it; with `interrupted`, writes given up in flight too). A process that died
        mid-run on such a ledger (its stale lock, or a last run without `end`) may have sent
        anything until it died, which was before now: the account then waits a full strictest
        window from now, unless a run of another ledger of the account has started since
        (`LedgerHistory.death_outlived`).

        `recent` is what the runs of this machine left (`recent_sends`: `plan` and `export`
        too, and runs of other ledgers): the account waits until its last request there is a
        general window old and, if this run `writes`, its last write a strictest window old (a
        read counts in the general window only: `plan` after `apply` does not wait a minute). Without it (a library
        run given no `RecentSends`, or a state directory that cannot be written), each account
        waits one general window from now, blind: a `plan` run just before, or the `plan --out`
        that made the plan of `apply --plan`, read the account at the full rate, and its last
        window may still be open at the server.
        """
        now = time.time()
        for account in self.accounts:
            policy = self._pacing.policy(account)
            limits = [spec for spec in (policy.rate, policy.write_rate) if spec is not None]
            strictest = max((policy.effective_period(spec) for spec in limits), default=0.0)
            general = policy.effective_period(policy.rate) if policy.rate is not None else 0.0
            after_write = strictest if writes else general
            ready = self._ready_after_recent(recent, account, now, general, after_write)
            for history in histories:
                previous = history.replay
                last = previous.last_record_at.get(account)
                if last is not None:
                    ready.append(last + strictest)
                if not history.covers(account):
                    continue
                if history.died_mid_run:
                    if not history.death_outlived(account, histories):
                        ready.append(now + strictest)
                elif previous.last_end_at is not None:
                    window = strictest if previous.last_end_interrupted else general
                    ready.append(previous.last_end_at + window)
            remaining = max(ready) - now
            if remaining > 0:
                self._pacing.pacer(account).pause_for(remaining)

    @staticmethod
    def _ready_after_recent(
        recent: Mapping[str, LastSent] | None,
        account: str,
        now: float,
        general: float,
        after_write: float,
    ) -> list[float]:
        if recent is None:
            return [now + general]
        ready = [now]
        last = recent.get(account)
        if last is not None:
            if last.request_at is not None:
                ready.append(min(last.request_at, now) + general)
            if last.write_at is not None:
                ready.append(min(last.write_at, now) + after_write)
        return ready

    # --------------------------------------------------------------------------------- requests

    async def _read(
        self, account: Account, call: Callable[[], Awaitable[T]], attempts: Attempts
    ) -> T:
        return await call_with_retry(
            call,
            pacer=self._pacing.pacer(account.account),
            policy=self.config.retry,
            attempts=attempts,
            write=False,
            rng=self.rng,
            sleep=self.sleep,
            lend=lend_a_worker,
            stopped=account.halted,
            on_transient=_ignore,
            on_success=_ignore,
        )

    def _note_stop(self, account: Account, error: ApiError) -> AccountStop | None:
        """Stop what the error stops (the account; every account for a refused key)."""
        if isinstance(error, AuthError):
            self.stops.refuse_key(error)
        stop = stop_for(error)
        if stop is not None:
            account.stop_with(stop)
        return account.stop if stop is not None else None

    # -------------------------------------------------------------------------------- preflight

    async def preflight(self) -> None:
        """The core account GET of every account; an invalid API key stops the run (exit 1), and
        so does a base URL no lookup could use: one message, instead of a failure for every
        chat — an API that could not be reached (`ApiUnreachable`, naming the URL), or a server
        whose every answer is an error without Unipile's error body (some other web server:
        each account would be "not found")."""
        self.observer.phase("preflight", len(self.accounts))
        failed: list[ApiError] = []
        await for_each(
            self.accounts.values(), partial(self._look_up, failed=failed), self.config.concurrency
        )
        if not self.accounts or len(failed) < len(self.accounts):
            return
        unreachable = [e for e in failed if isinstance(e, Unreachable)]
        if len(unreachable) == len(failed):
            raise ApiUnreachable(unreachable[0])
        if all(e.type.startswith("http/") for e in failed):
            raise RunRefused(
                f"every account lookup was answered {failed[0].status} without Unipile's error "
                f"body ({failed[0].type}): the base URL does not look like the Unipile API "
                "(check --base-url / UNIPILE_BASE_URL); nothing was sent"
            )

    async def _look_up(self, account: Account, *, failed: list[ApiError]) -> None:
        try:
            info = await self._read(
                account,
                partial(self.client.get_account, account.account, gate=self.gate),
                Attempts(),
            )
        except AuthError:
            raise
        except NotFound as error:
            failed.append(error)
            account.stop_with(AccountStop("failed", "account_not_found", error.info))
        except ApiError as error:
            failed.append(error)
            account.stop_with(stop_for(error) or AccountStop("failed", "api_error", error.info))
        except DeferAccount as deferral:
            _defer(account, deferral)
        else:
            account.info = info
            if info.status != "running":
                account.stop_with(
                    PREFLIGHT_STOPS.get(info.status, AccountStop("deferred", "account_errored"))
                )
        finally:
            self.observer.advance("preflight")

    def owners(self) -> dict[str, str]:
        return {a: acc.owner for a, acc in self.accounts.items() if acc.owner is not None}

    def check_owner_rule(self) -> None:
        """The owner's own id in remove/members/protect refuses the run (`OwnerRuleRefused`);
        once profiles are resolved, so does a profile that resolved to the owner."""
        people = self.people.by_account()
        violations: list[OwnerRuleViolation | AddRemoveConflict] = [
            *planner.owner_rule_violations(self.job, self.owners(), people),
            *planner.add_remove_conflicts(self.job, people),
        ]
        if violations:
            raise OwnerRuleRefused(violations)

    async def resolve_people(self) -> None:
        """Resolve the job's profiles (see `people`), then check the owner rule with them: all
        before any chat is read. A key refused meanwhile stops the run (exit 1)."""
        if self.people.wanted:
            await self.people.resolve(self)
            if self.stops.key_refused is not None:
                raise self.stops.key_refused
            self.check_owner_rule()

    async def resolve_profile(self, account: Account, profile: str) -> Resolution:
        """One profile's provider id, or why it has none: `unresolved_user` for a profile the
        users endpoint does not know (404), a read failure's outcome for any other error."""
        name = account.account
        if account.halted():
            why = account.current_stop()
            return Resolution(name, profile, status=why.status, reason=why.reason, error=why.error)
        lookup = partial(
            self.client.get_user, name, profile_slug(profile), fresh=True, gate=self.gate
        )
        try:
            user = await self._read(account, lookup, Attempts())
        except SendingStopped:
            raise
        except NotFound as error:
            return Resolution(name, profile, reason="unresolved_user", error=error.info)
        except ApiError as error:
            stop = self._note_stop(account, error)
            if stop is not None:
                return Resolution(
                    name, profile, status=stop.status, reason=stop.reason, error=stop.error
                )
            return Resolution(name, profile, reason="api_error", error=error.info)
        except (AccountStopped, DeferAccount) as stopped:
            if isinstance(stopped, DeferAccount):
                _defer(account, stopped)
            why = account.current_stop()
            return Resolution(name, profile, status=why.status, reason=why.reason, error=why.error)
        return Resolution(name, profile, user.user_id, user.display_name, resolved_at=time.time())

    # ----------------------------------------------------------------------------- read + plan

    async def fetch_state(
        self, account: str, chat: str, *, listing: bool, info: ChatInfo | None = None
    ) -> ChatState:
        """One fresh read of a chat: its info (unless given, as an account's chat listing gives
        it), then every participant page.

        A chat that is not a group is not listed (a 400 there), nor is a read-only one unless
        `listing` (its leave needs to know whether the owner is still in it); a read-only chat
        whose participants cannot be listed is returned unlisted (`members_listed` False).
        """
        if info is None:
            info = await self.client.get_chat(account, chat, fresh=True, gate=self.gate)
        if info.type != "group" or not info.is_group or (info.is_readonly and not listing):
            return ChatState(account, chat, info, (), members_listed=False)
        try:
            pages = self.client.participants(
                account, chat, fresh=True, gate=self.gate, expected_count=info.participants_count
            )
            participants = [p async for p in pages]
        except ApiError as error:
            if not info.is_readonly or stop_for(error) is not None:
                raise
            return ChatState(account, chat, info, (), members_listed=False)
        return ChatState(account, chat, info, tuple(participants))

    def _state_reader(
        self, account: str, chat: str, *, listing: bool, info: ChatInfo | None = None
    ) -> Callable[[], Awaitable[ChatState]]:
        """`fetch_state` for the retry loop: once a try has read the chat's info, a retry after its
        participants listing failed (5xx, reset, 429) lists them again without reading the info
        again. One request less per failed listing, and one roll less of the dice: at the end
        of a run, under faults, the info read again met a 429 or a 5xx of its own (issue #12).
        Only while the info is `_INFO_REUSE` seconds old at most (a long Retry-After reads it
        again); a listing that no longer matches its count fails the read
        (`client/pagination`), as it would have between the two requests."""
        known, read_at = info, math.inf

        async def read() -> ChatState:
            nonlocal known, read_at
            if known is None or time.monotonic() - read_at > _INFO_REUSE:
                known = await self.client.get_chat(account, chat, fresh=True, gate=self.gate)
                read_at = time.monotonic()
            return await self.fetch_state(account, chat, listing=listing, info=known)

        return read

    async def read_chat(
        self, account: Account, chat: str, *, listing: bool = False, info: ChatInfo | None = None
    ) -> ChatState | ReadFailure:
        """A chat's fresh state, or why it could not be read."""
        if account.halted():
            return self._stopped_read(account, chat, 0)
        attempts = Attempts()
        read = self._state_reader(account.account, chat, listing=listing, info=info)
        try:
            return await self._read(account, read, attempts)
        except SendingStopped:
            raise
        except AccountStopped:
            return self._stopped_read(account, chat, 0)
        except NotFound as error:
            return ReadFailure(
                account.account, chat, "failed", "chat_not_found", error.info, attempts.count
            )
        except ApiError as error:
            if self._note_stop(account, error) is not None:
                return self._stopped_read(account, chat, attempts.count)
            return ReadFailure(
                account.account, chat, "failed", "api_error", error.info, attempts.count
            )
        except DeferAccount as deferral:
            _defer(account, deferral)
            return self._stopped_read(account, chat, attempts.count)

    async def list_group_chats(
        self, account: Account, *, page_size: int | None = None
    ) -> list[ChatInfo] | ReadFailure:
        """Every group chat of the account (all cursor pages, fresh), or why they could not be
        listed (a `ReadFailure` whose chat is empty). Like any listing, read whole or not at all:
        a failed page is retried from the first."""
        if account.halted():
            return self._stopped_read(account, "", 0)
        attempts = Attempts()

        async def listing() -> list[ChatInfo]:
            chats = self.client.chats(
                account.account, type="group", fresh=True, gate=self.gate, page_size=page_size
            )
            return [chat async for chat in chats]

        try:
            return await self._read(account, listing, attempts)
        except SendingStopped:
            raise
        except AccountStopped:
            return self._stopped_read(account, "", 0)
        except ApiError as error:
            if self._note_stop(account, error) is not None:
                return self._stopped_read(account, "", attempts.count)
            reason: Reason = "account_not_found" if isinstance(error, NotFound) else "api_error"
            return ReadFailure(account.account, "", "failed", reason, error.info, attempts.count)
        except DeferAccount as deferral:
            _defer(account, deferral)
            return self._stopped_read(account, "", attempts.count)

    @staticmethod
    def _stopped_read(account: Account, chat: str, attempts: int) -> ReadFailure:
        why = account.current_stop()
        return ReadFailure(account.account, chat, why.status, why.reason, why.error, attempts)

    async def plan_chat(self, chat: ChatJob) -> ChatPlan:
        """Read one chat (fresh) and plan it; only the compact plan is kept.

        Writes an earlier run left pending on this chat are decided from the same read: those in
        effect become the plan's `recovered` (the rest is planned again if the job still asks).
        Raises `SendingStopped` once the run is interrupted: the read is not begun.
        """
        if self.stops.interrupted:
            raise SendingStopped()  # no chat begins its writes now: nothing would come of the read
        account = self.accounts[chat.account]
        observed = await self.read_chat(account, chat.chat, listing=chat.leave)
        plan = planner.plan_chat(
            chat,
            observed,
            owner_id=account.owner,
            max_members=self.max_members(chat.account),
            people=self.people.of(chat.account),
        )
        pending = self._pending.get((chat.account, chat.chat))
        if pending and isinstance(observed, ChatState):
            found = [op for op in pending if in_effect(op, observed, account.owner)]
            if found:
                plan = _with_recovered(plan, found)
        elif pending:
            plan = _still_in_doubt(plan, pending)
        self.observer.advance("read")
        return plan

    async def plan_chats(self, chats: list[ChatJob]) -> list[ChatPlan]:
        """One account's chats read and planned, a few at a time, in the job's order."""
        planned: dict[str, ChatPlan] = {}

        async def plan_one(chat: ChatJob) -> None:
            planned[chat.chat] = await self.plan_chat(chat)

        await for_each(chats, plan_one, self.config.chats_per_account, lending=True)
        return [planned[c.chat] for c in chats]

    def chats_by_account(self) -> dict[str, list[ChatJob]]:
        by_account: dict[str, list[ChatJob]] = defaultdict(list)
        for chat in self.job.chats:
            by_account[chat.account].append(chat)
        return by_account

    async def read_and_plan(self) -> Plan:
        """Every chat read and planned (accounts side by side): what `plan` shows."""
        planned: dict[tuple[str, str], ChatPlan] = {}
        self.observer.phase("read", len(self.job.chats))

        async def plan_account(chats: list[ChatJob]) -> None:
            for chat_plan in await self.plan_chats(chats):
                planned[(chat_plan.account, chat_plan.chat)] = chat_plan

        async with anyio.create_task_group() as tg:
            for chats in self.chats_by_account().values():
                tg.start_soon(plan_account, chats)
        if self.stops.key_refused is not None:
            raise self.stops.key_refused
        return self.plan_of(planned)

    def plan_of(self, planned: Mapping[tuple[str, str], ChatPlan]) -> Plan:
        """The whole plan, in the job's order, from every chat's plan."""
        return Plan(
            job_sha256=self.job.sha256,
            chats=tuple(planned[(c.account, c.chat)] for c in self.job.chats),
            owners=self.owners(),
            job=self.job,
            resolutions=self.people.all(),
        )

    # ------------------------------------------------------------------------------------ write

    async def write(
        self,
        account: Account,
        op: Operation,
        claim: Claim,
        *,
        previous_name: str | None = None,
        flight: Flight | None = None,
    ) -> Outcome:
        """Send one write (with retries) and decide its outcome (CONTRACT: outcomes and reasons).
        `previous_name`: a rename's chat name as read, written into its intents; `flight` takes
        off with the first intent (the caller lands it once the outcome is recorded).

        Raises `SendingStopped` if the run stopped before an attempt went: nothing is recorded.
        """
        attempts = Attempts()
        sender = WriteSender(self, op, account.owner, attempts, claim, previous_name, flight)
        try:
            await call_with_retry(
                sender.send,
                pacer=self._pacing.pacer(account.account),
                policy=self.config.retry,
                attempts=attempts,
                write=True,
                rng=self.rng,
                sleep=self.sleep,
                lend=lend_a_worker,
                stopped=account.halted,
                on_transient=account.write_failed,
                on_success=account.write_succeeded,
            )
        except BudgetSpent:
            doubt = attempts.outcome_unknown
            return Outcome(op, "deferred", "daily_limit", attempts.count, in_doubt=doubt)
        except SendingStopped:
            raise
        except AccountStopped:
            stopped = account.stopped_outcome(op, attempts.count)
            return replace(stopped, in_doubt=attempts.outcome_unknown)
        except (ApiError, DeferAccount) as error:
            return await self._decide(account, op, error, attempts)
        return Outcome(op, "applied", None, attempts.count)

    async def _decide(
        self, account: Account, op: Operation, error: ApiError | DeferAccount, attempts: Attempts
    ) -> Outcome:
        verdict = outcome_of(op, error, attempts)
        if isinstance(verdict, Recheck):
            assert isinstance(error, ApiError)
            reread = await self._reread(account, op.chat, verdict)
            if isinstance(reread, ApiError):
                self._note_stop(account, reread)
            return after_recheck(op, verdict, error, attempts, reread, account.owner)
        if isinstance(error, DeferAccount):
            _defer(account, error)
            return verdict
        stop = self._note_stop(account, error)
        if stop is None and isinstance(error, TransientError):
            stop = account.stop  # the run of failing writes may just have deferred the account
        if stop is not None:
            return replace(verdict, status=stop.status, reason=stop.reason)
        return verdict

    async def _reread(
        self, account: Account, chat: str, recheck: Recheck
    ) -> ChatState | ApiError | None:
        """A fresh read that decides an ambiguous write answer: the chat (with its participants
        for a leave), the error the read ended with, or None if it could not be sent."""
        try:
            if recheck is Recheck.LEAVE_REFUSED:
                return await self._read(
                    account,
                    self._state_reader(account.account, chat, listing=True),
                    Attempts(),
                )
            info = await self._read(
                account,
                partial(self.client.get_chat, account.account, chat, fresh=True, gate=self.gate),
                Attempts(),
            )
            return ChatState(account.account, chat, info, (), members_listed=False)
        except SendingStopped:
            raise
        except ApiError as error:
            return error
        except DeferAccount as deferral:
            _defer(account, deferral)
            return None
        except AccountStopped:
            return None

    async def read_for_verify(self, account: Account, chat: str) -> ChatState | None:
        """The chat's fresh state after its writes, or None if it cannot be read now."""
        if account.halted():
            return None
        try:
            return await self._read(
                account,
                self._state_reader(account.account, chat, listing=False),
                Attempts(),
            )
        except SendingStopped:
            raise
        except DeferAccount as deferral:
            _defer(account, deferral)
            return None
        except (ApiError, AccountStopped):
            return None
