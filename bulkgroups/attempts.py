"""One request, tried until it succeeds, fails for good, or the account must stop.

The retry loop is tenacity's (STYLE pattern 6): explicit `retry=` (only errors marked retryable),
bounded attempts *and* a budget that counts only backoff sleeps (never the time spent waiting for
the pacer: at a write rate of 1/min a write may wait minutes for its turn), the original error
re-raised, and an injectable sleep so tests do not wait.

A 429 from Unipile does not back off here: the whole account is paused in its pacer until the
Retry-After has passed, so the retry waits for its turn like any other request. A pause, not a
lasting slow-down: whether the 429 also means the account's real limit is lower is for the pacer
to judge, from the answer's headers and its own log (`AccountPacer.observe`, fed by the gate).

Nor does such a 429 use one of the operation's attempts. It says "not now", not "this request
fails": nothing was done, and the request will be accepted once the pause is over. It has an
allowance of its own instead: an operation meets at most `RetryPolicy.attempts` of them, and
their pauses together at most the budget (the contract: "a Retry-After beyond the run's retry
budget" defers the account). Beyond either, the account is deferred (`DeferAccount`, reason
`rate_limited`): a limiter that keeps refusing the account will refuse its other operations too.
So a 429 never ends an operation `failed`, and the pauses never take a 5xx's backoff budget.
Issue #12: with a 429 counted as an attempt, an operation that met a cluster of four 5xx and two
429s (among successes of other operations) failed with `api_error`; now it goes on.

5xx, timeouts and resets back off per operation and slow nothing down; a streak of them across an
account (a limiter hidden behind failures) is the run's to watch (`on_transient` / `on_success`).
A backoff from a failure among successes (`AccountPacer.failed`) calls `lend`: the engine lets
another chat of the account go meanwhile, rather than leave the account idle.

The backoff grows with the operation's failures *in a row for its account*: once the server has
answered another request of the same kind (read or write) of the account since the operation last
failed, the next failure is bad luck, not an outage, and backs off from the start again
(`_Streak`). An operation meeting three random 5xx among successes used to sit out 0.1 + 0.3 +
0.9 s, often alone at the end of a run (issue #12); an outage, where nothing of the kind
succeeds, still backs off 0.1, 0.3, 0.9, 2.7, 8.1 s, and a hidden limiter that fails only the
account's writes still slows its writes (successful reads do not count for a write).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import anyio
import tenacity

from .errors import ApiError, RateLimited, TransientError, Unreachable
from .logs import numbered_attempt, reset_attempt
from .model import RequestKind
from .pacing import AccountPacer, RetryPolicy

__all__ = ["AccountStopped", "Attempts", "DeferAccount", "call_with_retry"]

T = TypeVar("T")

# Without a usable Retry-After, pause the account this long before its next request.
DEFAULT_RETRY_AFTER = 1.0


class DeferAccount(Exception):
    """Unipile asked this account to wait longer, or more often, than the run's retry budget
    allows (its 429s beyond their budget or allowance).

    A control-flow signal between the retry loop and the engine, never raised to a caller: not
    part of the public error tree (`errors.BulkGroupsError`)."""

    def __init__(self, error: RateLimited) -> None:
        self.error = error
        super().__init__(str(error))


class AccountStopped(Exception):
    """The account was stopped (by another request of it) before this attempt could be sent:
    raised before an attempt, or by the call itself when its turn in the pacer came too late.
    A control-flow signal, like `DeferAccount`: never raised to a caller."""


@dataclass(slots=True)
class Attempts:
    """What happened while trying one request: how many were sent, and whether an earlier one
    may have taken effect (a timeout, a reset or a 5xx leaves a write's outcome unknown)."""

    count: int = 0
    outcome_unknown: bool = False


def _retryable(error: BaseException) -> bool:
    return isinstance(error, ApiError) and error.retryable


def _unreachable_for(attempts: int, *, first: bool) -> tenacity.stop.stop_base:
    """Stop once `attempts` tries in a row failed to connect (`RetryPolicy.unreachable_attempts`);
    `first`: the plain first try, which tenacity does not see, was one of them."""

    class _Stop(tenacity.stop.stop_base):
        def __init__(self) -> None:
            self.in_a_row = 1 if first else 0

        def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
            outcome = retry_state.outcome
            if outcome is not None and isinstance(outcome.exception(), Unreachable):
                self.in_a_row += 1
            else:
                self.in_a_row = 0
            return self.in_a_row >= attempts

    return _Stop()


def _spent_all(policy: RetryPolicy, spent: _Spent) -> tenacity.stop.stop_base:
    """Stop once the failures that count as attempts reach `policy.attempts`, or before a
    backoff would take the backoff over the budget. A 429 beyond its allowance or its budget
    has already raised `DeferAccount` (`_failed`)."""

    class _Stop(tenacity.stop.stop_base):
        def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
            upcoming = retry_state.upcoming_sleep or 0.0
            return spent.failures >= policy.attempts or spent.backoff + upcoming > policy.budget

    return _Stop()


def _never() -> bool:
    return False


def _no_error(error: ApiError) -> None:
    return None


def _nothing() -> None:
    return None


@dataclass(slots=True)
class _Spent:
    """What one operation's tries have used of the retry policy: the failures that count as
    attempts (all but Unipile's 429s) and their backoff, the 429s met and their pauses, and
    whether the last failure came among successes (`AccountPacer.failed`)."""

    failures: int = 0
    backoff: float = 0.0
    rate_limited: int = 0
    paused: float = 0.0
    isolated: bool = False


def _failed(
    error: BaseException,
    pacer: AccountPacer,
    policy: RetryPolicy,
    attempts: Attempts,
    spent: _Spent,
    write: bool,
    on_transient: Callable[[ApiError], None],
) -> None:
    """An attempt's bookkeeping when it raised: the count of what was sent, a write's unknown
    outcome, what it spent of the policy, and the account's pause for a 429 — or `DeferAccount`
    when that 429 is more than the budget or the allowance of 429s can take."""
    if isinstance(error, AccountStopped):
        attempts.count -= 1  # given up at its turn in the pacer: nothing was sent
        return
    if isinstance(error, RateLimited):
        on_transient(error)
        retry_after = error.retry_after if error.retry_after is not None else DEFAULT_RETRY_AFTER
        if spent.paused + retry_after > policy.budget:
            raise DeferAccount(error) from error  # and no pause: the account sends nothing more
        pacer.pause_for(retry_after)
        spent.paused += retry_after
        spent.rate_limited += 1
        if spent.rate_limited >= policy.attempts:
            raise DeferAccount(error) from error
        return
    spent.failures += 1
    if isinstance(error, Unreachable):
        # No connection was made: nothing was sent, so the write's outcome is known (not done),
        # and it is no sign of a provider's limiter: the run of failing writes that defers an
        # account (`on_transient`) counts only answers and lost answers.
        pass
    elif isinstance(error, TransientError):
        if write:
            attempts.outcome_unknown = True
        on_transient(error)


async def _attempt(
    call: Callable[[], Awaitable[T]],
    pacer: AccountPacer,
    policy: RetryPolicy,
    attempts: Attempts,
    spent: _Spent,
    write: bool,
    stopped: Callable[[], bool],
    on_transient: Callable[[ApiError], None],
    on_success: Callable[[], None],
) -> T:
    """One attempt: nothing if the account stopped meanwhile, else `call` with its bookkeeping."""
    if stopped():
        raise AccountStopped()
    attempts.count += 1
    token = numbered_attempt(attempts.count)  # a retry's requests say which attempt they are
    try:
        result = await call()
    except BaseException as error:
        _failed(error, pacer, policy, attempts, spent, write, on_transient)
        raise
    finally:
        reset_attempt(token)
    on_success()
    return result


@dataclass(slots=True)
class _Streak:
    """The failures in a row of one operation with no success of its account's requests of the
    same kind in between: what its backoff grows with (module docstring)."""

    pacer: AccountPacer
    kind: RequestKind
    failures: int = 0
    served: int = -1  # the account's served count at the operation's last failure

    def failed(self) -> int:
        served = self.pacer.served(self.kind)
        self.failures = self.failures + 1 if served == self.served else 1
        self.served = served
        return self.failures


def _backoff(
    policy: RetryPolicy,
    rng: random.Random,
    error: BaseException | None,
    streak: _Streak,
    spent: _Spent,
) -> float:
    """The sleep before the next attempt. None after a 429 (the pacer holds the account until
    its Retry-After has passed), which is no failure of the request either: it does not grow
    the streak."""
    if isinstance(error, RateLimited):
        spent.isolated = False
        return 0.0
    spent.isolated = streak.pacer.failed(streak.kind)
    return policy.backoff(streak.failed(), rng)


async def call_with_retry(
    call: Callable[[], Awaitable[T]],
    *,
    pacer: AccountPacer,
    policy: RetryPolicy,
    attempts: Attempts,
    write: bool,
    rng: random.Random,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    stopped: Callable[[], bool] = _never,
    on_transient: Callable[[ApiError], None] = _no_error,
    on_success: Callable[[], None] = _nothing,
    lend: Callable[[], None] = _nothing,
) -> T:
    """Run `call` under the retry policy; raise its last error if it never succeeds.

    `stopped` is asked before every attempt (an account stopped meanwhile sends nothing more);
    `on_transient` / `on_success` let the run watch for a provider's limiter hidden behind 5xx;
    `lend` is called before a backoff from a failure among successes (module docstring).
    """
    # Nearly every request succeeds at once: the first attempt is made here, with nothing built
    # for it (no closure, no retry machinery: that costs more CPU than the request itself).
    if stopped():
        raise AccountStopped()
    attempts.count += 1
    try:
        result = await call()
    except BaseException as error:
        spent = _Spent()
        _failed(error, pacer, policy, attempts, spent, write, on_transient)
        if not _retryable(error) or spent.failures >= policy.attempts:
            raise
        unreachable = isinstance(error, Unreachable)
        if unreachable and policy.unreachable_attempts <= 1:
            raise
        streak = _Streak(pacer, "write" if write else "read")
        first_backoff = _backoff(policy, rng, error, streak, spent)
        if first_backoff > policy.budget:
            raise
        first_error = error
    else:
        on_success()
        return result

    async def backoff(seconds: float) -> None:
        spent.backoff += seconds
        if seconds > 0 and spent.isolated:
            lend()
        await sleep(seconds)

    await backoff(first_backoff)

    def wait(retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        return _backoff(policy, rng, error, streak, spent)

    stop = _spent_all(policy, spent) | _unreachable_for(
        policy.unreachable_attempts, first=unreachable
    )
    retrying = tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception(_retryable),
        stop=stop,
        wait=wait,
        sleep=backoff,
        reraise=True,
    )
    async for retry in retrying:
        with retry:
            return await _attempt(
                call, pacer, policy, attempts, spent, write, stopped, on_transient, on_success
            )
    raise first_error  # pragma: no cover - tenacity either returns or re-raises
