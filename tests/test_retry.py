"""`attempts.call_with_retry`: what is retried, how long it backs off, when it gives up, and what a
429 does to the account's pacer. The sleep is injected (it records and returns at once), the
pacer runs on a fake clock: nothing here waits.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from bulkgroups.attempts import (
    DEFAULT_RETRY_AFTER,
    AccountStopped,
    Attempts,
    DeferAccount,
    call_with_retry,
)
from bulkgroups.errors import (
    ApiError,
    Conflict,
    NotFound,
    PermissionDenied,
    ProviderRateLimited,
    RateLimited,
    RequestRejected,
    TransientError,
    TransportError,
    Unreachable,
    UnsupportedAccount,
)
from bulkgroups.model import RateSpec, RequestKind
from bulkgroups.pacing import AccountPacer, PacingPolicy, RetryPolicy


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Harness:
    """A pacer on a fake clock, a recording sleep, and call_with_retry wired to both."""

    def __init__(self, policy: RetryPolicy | None = None) -> None:
        self.clock = FakeClock()
        self.pacer = AccountPacer(PacingPolicy(rate=RateSpec(10, 1.0)), clock=self.clock)
        self.policy = policy or RetryPolicy(
            attempts=5, budget=60.0, initial=1.0, multiplier=2.0, maximum=8.0
        )
        self.sleeps: list[float] = []
        self.attempts = Attempts()
        self.transients: list[ApiError] = []
        self.successes = 0
        self.lends = 0

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    async def run(
        self,
        answers: list[Any],
        *,
        write: bool = True,
        stopped: Callable[[], bool] = lambda: False,
    ) -> Any:
        """Call something that answers (or raises) each of `answers` in turn."""
        remaining = list(answers)

        async def call() -> Any:
            answer = remaining.pop(0)
            if isinstance(answer, BaseException):
                raise answer
            return answer

        def on_success() -> None:
            self.successes += 1

        def lend() -> None:
            self.lends += 1

        return await call_with_retry(
            call,
            pacer=self.pacer,
            policy=self.policy,
            attempts=self.attempts,
            write=write,
            rng=random.Random(1),
            sleep=self.sleep,
            stopped=stopped,
            on_transient=self.transients.append,
            on_success=on_success,
            lend=lend,
        )


def server_error() -> TransientError:
    return TransientError(status=500, type="api/internal_error", req_id="req_1")


def rate_limited(retry_after: float | None) -> RateLimited:
    return RateLimited(retry_after=retry_after, status=429, type="api/too_many_requests")


# ------------------------------------------------------------------------------- what retries


async def test_a_first_success_is_one_attempt_without_sleeping() -> None:
    h = Harness()
    assert await h.run(["ok"]) == "ok"
    assert (h.attempts.count, h.attempts.outcome_unknown, h.sleeps) == (1, False, [])
    assert h.successes == 1


async def test_transient_errors_are_retried_until_a_success() -> None:
    h = Harness()
    reset = TransportError("reset")
    assert await h.run([server_error(), reset, "ok"]) == "ok"
    assert h.attempts.count == 3
    assert len(h.sleeps) == 2
    assert [e.type for e in h.transients] == ["api/internal_error", "transport/reset"]


def refused() -> Unreachable:
    return Unreachable(
        "connect",
        base_url="https://127.0.0.1:9",
        detail="cannot reach https://127.0.0.1:9: connection refused",
    )


async def test_a_failure_to_connect_is_tried_three_times_in_a_row_then_raised() -> None:
    h = Harness(RetryPolicy(attempts=6, budget=60.0, initial=1.0, multiplier=2.0, maximum=8.0))
    with pytest.raises(Unreachable):
        await h.run([refused()] * 6)
    assert h.attempts.count == 3  # not the policy's 6: an API not reachable now says so at once
    assert h.sleeps == [pytest.approx(s, rel=0.5) for s in (1.5, 3.0)]


async def test_failures_to_connect_count_in_a_row_only() -> None:
    h = Harness(RetryPolicy(attempts=6, budget=60.0, initial=0.1, multiplier=1.0, maximum=1.0))
    assert await h.run([refused(), refused(), server_error(), refused(), refused(), "ok"]) == "ok"
    assert h.attempts.count == 6


async def test_a_write_that_never_connected_is_not_in_doubt() -> None:
    h = Harness()
    with pytest.raises(Unreachable):
        await h.run([refused()] * 3)
    assert h.attempts.outcome_unknown is False
    # Nor a sign of a provider's limiter: it does not count towards an account's failing streak.
    assert h.transients == []
    h2 = Harness()
    with pytest.raises(Unreachable):
        await h2.run([TransportError("reset"), refused(), refused(), refused()])
    assert h2.attempts.outcome_unknown is True  # the reset may have been applied


@pytest.mark.parametrize(
    "error",
    [
        Conflict(status=409, type="api/conflict"),
        NotFound(status=404, type="api/resource_not_found"),
        PermissionDenied(status=403, type="provider/insufficient_permissions"),
        RequestRejected(status=422, type="provider/unprocessable_entity"),
        ProviderRateLimited(status=429, type="provider/too_many_requests"),
        UnsupportedAccount(status=403, type="api/insufficient_permissions"),
    ],
    ids=lambda e: e.type,
)
async def test_errors_that_a_retry_cannot_fix_are_raised_after_one_attempt(
    error: ApiError,
) -> None:
    h = Harness()
    with pytest.raises(type(error)) as raised:
        await h.run([error, "never reached"])
    assert raised.value is error
    assert (h.attempts.count, h.sleeps, h.transients) == (1, [], [])


async def test_after_the_last_attempt_the_original_error_is_raised() -> None:
    h = Harness(RetryPolicy(attempts=3, budget=60.0, initial=0.5, maximum=4.0))
    errors = [server_error() for _ in range(3)]
    with pytest.raises(TransientError) as raised:
        await h.run([*errors, "never reached"])
    assert raised.value is errors[-1]
    assert h.attempts.count == 3
    assert len(h.sleeps) == 2  # no sleep after the last attempt


async def test_bugs_are_not_retried() -> None:
    h = Harness()
    with pytest.raises(ValueError):
        await h.run([ValueError("a bug"), "never reached"])
    assert h.attempts.count == 1


# ------------------------------------------------------------------------------------ backoff


async def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(
        attempts=7, budget=1000.0, initial=1.0, multiplier=2.0, maximum=8.0, jitter=0.5
    )
    h = Harness(policy)
    with pytest.raises(TransientError):
        await h.run([server_error() for _ in range(7)])
    assert len(h.sleeps) == 6
    for n, slept in enumerate(h.sleeps):
        base = min(8.0, 2.0**n)
        assert base <= slept <= min(8.0, base * 1.5)
    assert h.sleeps[-1] == 8.0


async def test_the_budget_stops_before_a_backoff_would_exceed_it() -> None:
    # Sleeps of 1, 2, 4 (no jitter): 1 + 2 = 3 fits a budget of 3.5, 1 + 2 + 4 would not.
    policy = RetryPolicy(
        attempts=10, budget=3.5, initial=1.0, multiplier=2.0, maximum=30.0, jitter=0.0
    )
    h = Harness(policy)
    errors = [server_error() for _ in range(10)]
    with pytest.raises(TransientError) as raised:
        await h.run(errors)
    assert h.sleeps == [1.0, 2.0]
    assert h.attempts.count == 3
    assert raised.value is errors[2]


async def test_the_budget_counts_backoff_only_not_the_time_a_call_takes() -> None:
    # A call that waits for its pacer (here: really sleeps) spends no backoff budget.
    policy = RetryPolicy(attempts=3, budget=0.0, initial=0.0, maximum=0.0, jitter=0.0)
    answers: list[Any] = [server_error(), server_error(), "ok"]

    async def slow_call() -> Any:
        await anyio.sleep(0.02)
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    attempts = Attempts()
    clock = FakeClock()
    result = await call_with_retry(
        slow_call,
        pacer=AccountPacer(PacingPolicy(), clock=clock),
        policy=policy,
        attempts=attempts,
        write=False,
        rng=random.Random(1),
        sleep=lambda _: anyio.lowlevel.checkpoint(),
    )
    assert (result, attempts.count) == ("ok", 3)


class Sibling:
    """While the operation waits for its retry, another request of its account is answered."""

    def __init__(self, pacer: AccountPacer, kind: RequestKind, status: int) -> None:
        self.pacer, self.kind, self.status = pacer, kind, status

    async def __call__(self, seconds: float) -> None:
        self.pacer.observe(self.kind, None, self.status, None)


async def retried_with_siblings(
    write: bool,
    sibling: tuple[RequestKind, int] | None,
    failures: int = 3,
    lent: list[None] | None = None,
    answered_before: bool = False,
) -> list[float]:
    """The backoffs of an operation failing `failures` times with a 500 (then succeeding), while
    during each backoff another request of the account gets `sibling` (kind, status); `lent`
    collects the backoffs before which the retry loop lent the account a worker;
    `answered_before`: the server answered a request of the kind before the first failure."""
    policy = RetryPolicy(attempts=6, budget=60.0, initial=1.0, multiplier=2.0, jitter=0.0)
    pacer = AccountPacer(PacingPolicy(rate=RateSpec(10, 1.0)), clock=FakeClock())
    answers: list[Any] = [server_error() for _ in range(failures)] + ["ok"]
    sleeps: list[float] = []
    others = Sibling(pacer, *sibling) if sibling is not None else None
    if answered_before:
        pacer.observe("write" if write else "read", None, 200, None)

    async def call() -> Any:
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if others is not None:
            await others(seconds)

    result = await call_with_retry(
        call,
        pacer=pacer,
        policy=policy,
        attempts=Attempts(),
        write=write,
        rng=random.Random(1),
        sleep=sleep,
        lend=lambda: lent.append(None) if lent is not None else None,
    )
    assert result == "ok"
    return sleeps


@pytest.mark.parametrize(("write", "kind"), [(False, "read"), (True, "write")])
async def test_failures_among_successes_of_the_account_back_off_from_the_start_each_time(
    write: bool, kind: RequestKind
) -> None:
    # Bad luck, not an outage: the server answers the account's other requests of the kind.
    assert await retried_with_siblings(write, (kind, 200)) == [1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("write", "sibling"),
    [
        (False, None),
        (True, None),
        (False, ("read", 500)),  # an outage: the other requests fail too
        (False, ("read", 429)),
        (True, ("read", 200)),  # a limiter failing the writes only: reads do not vouch for them
    ],
)
async def test_failures_while_nothing_of_the_kind_succeeds_back_off_ever_longer(
    write: bool, sibling: tuple[RequestKind, int] | None
) -> None:
    assert await retried_with_siblings(write, sibling) == [1.0, 2.0, 4.0]


@pytest.mark.parametrize(
    ("answered_before", "sibling", "lends"),
    [
        (True, ("write", 200), 3),  # bad luck each time: each backoff lets another chat go
        (False, ("write", 200), 2),  # the first failure came before anything was answered
        (True, None, 1),  # an outage mid-run: only its first failure, not yet told apart
        (True, ("write", 500), 1),
        (False, None, 0),  # an outage from the start
    ],
)
async def test_a_backoff_lends_the_account_a_worker_only_after_a_failure_among_successes(
    answered_before: bool, sibling: tuple[RequestKind, int] | None, lends: int
) -> None:
    lent: list[None] = []
    await retried_with_siblings(True, sibling, lent=lent, answered_before=answered_before)
    assert len(lent) == lends


async def test_a_429_lends_nothing() -> None:
    h = Harness()
    assert await h.run([rate_limited(1.0), "ok"]) == "ok"
    assert h.lends == 0


# --------------------------------------------------------------------------------------- 429


async def test_a_429_pauses_the_account_and_retries_without_backoff_or_lasting_slow_down() -> None:
    h = Harness()
    assert await h.run([rate_limited(3.0), "ok"]) == "ok"
    assert h.attempts.count == 2
    assert all(s == 0 for s in h.sleeps)  # the pacer holds the account, not tenacity
    assert h.pacer.paused_until == h.clock.now + 3.0
    # A pause, not a slow-down: whether the limit is lower is the pacer's to judge from the
    # answer (the gate's `observe`), not the retry loop's.
    assert h.pacer.current_rate("read") == RateSpec(10, 1.0)
    assert h.pacer.current_rate("write") == h.pacer.policy.write_rate
    assert h.attempts.outcome_unknown is False  # a 429 was refused before it did anything


async def test_transient_failures_slow_nothing_down() -> None:
    h = Harness()
    assert await h.run([server_error(), TransportError("reset"), TransportError("timeout"), "ok"])
    assert h.pacer.current_rate("read") == RateSpec(10, 1.0)
    assert h.pacer.current_rate("write") == h.pacer.policy.write_rate
    assert h.pacer.paused_until == float("-inf")


async def test_a_429_without_a_usable_retry_after_pauses_the_default() -> None:
    h = Harness()
    assert await h.run([rate_limited(None), "ok"]) == "ok"
    assert h.pacer.paused_until == h.clock.now + DEFAULT_RETRY_AFTER


async def test_a_retry_after_beyond_the_budget_defers_the_account_without_waiting() -> None:
    h = Harness(RetryPolicy(attempts=5, budget=30.0))
    error = rate_limited(3600.0)
    with pytest.raises(DeferAccount) as raised:
        await h.run([error, "never reached"])
    assert raised.value.error is error
    assert h.attempts.count == 1
    assert h.sleeps == []
    assert h.pacer.paused_until < h.clock.now + 3600.0  # no hour-long pause either


async def test_429s_do_not_use_the_operations_attempts() -> None:
    # Issue #12: a cluster of 5xx and 429s among other operations' successes. A 429 says "not
    # now": the request did nothing and will be accepted after the pause.
    h = Harness(RetryPolicy(attempts=3, budget=60.0, initial=0.01, maximum=0.01))
    answers = [server_error(), rate_limited(1.0), server_error(), rate_limited(1.0), "ok"]
    assert await h.run(answers) == "ok"
    assert h.attempts.count == 5


async def test_429s_beyond_their_allowance_defer_the_account_rather_than_fail() -> None:
    h = Harness(RetryPolicy(attempts=3, budget=60.0))
    last = rate_limited(1.0)
    with pytest.raises(DeferAccount) as raised:
        await h.run([rate_limited(1.0), rate_limited(1.0), last, "never reached"])
    assert raised.value.error is last
    assert h.attempts.count == 3


async def test_the_pauses_of_429s_spend_the_retry_budget() -> None:
    h = Harness(RetryPolicy(attempts=6, budget=10.0))
    third = rate_limited(4.0)
    with pytest.raises(DeferAccount) as raised:
        await h.run([rate_limited(4.0), rate_limited(4.0), third, "never reached"])
    assert raised.value.error is third  # 4 + 4 paused, another 4 would be 12 > 10
    assert h.attempts.count == 3


async def test_429_pauses_do_not_take_the_backoff_budget_of_5xx() -> None:
    # The contract's budget counts backoff only: a 5xx after long 429 pauses is still retried.
    h = Harness(RetryPolicy(attempts=6, budget=5.0, initial=1.0, multiplier=2.0, jitter=0.0))
    assert await h.run([rate_limited(4.0), server_error(), server_error(), "ok"]) == "ok"
    assert h.sleeps == [0.0, 1.0, 2.0]
    assert h.attempts.count == 4


# ------------------------------------------------------------------------ unknown outcomes


@pytest.mark.parametrize(
    "error",
    [server_error(), TransportError("reset"), TransportError("timeout")],
    ids=lambda e: e.type,
)
async def test_a_transient_failure_of_a_write_leaves_its_outcome_unknown(error: ApiError) -> None:
    h = Harness()
    with pytest.raises(Conflict):
        await h.run([error, Conflict(status=409, type="api/conflict")])
    assert h.attempts.outcome_unknown is True
    assert h.attempts.count == 2


async def test_a_transient_failure_of_a_read_changes_nothing() -> None:
    h = Harness()
    assert await h.run([server_error(), "ok"], write=False) == "ok"
    assert h.attempts.outcome_unknown is False


# ---------------------------------------------------------------------------- stopped accounts


async def test_an_account_stopped_meanwhile_sends_no_further_attempt() -> None:
    h = Harness()
    stop = False

    def stopped() -> bool:
        return stop

    answers: list[Any] = [server_error(), "never reached"]

    async def call() -> Any:
        nonlocal stop
        stop = True  # e.g. another request of the account met a 401 meanwhile
        answer = answers.pop(0)
        raise answer

    with pytest.raises(AccountStopped):
        await call_with_retry(
            call,
            pacer=h.pacer,
            policy=h.policy,
            attempts=h.attempts,
            write=True,
            rng=random.Random(1),
            sleep=h.sleep,
            stopped=stopped,
        )
    assert h.attempts.count == 1
    assert answers == ["never reached"]


async def test_an_account_stopped_before_the_first_attempt_sends_nothing() -> None:
    h = Harness()
    with pytest.raises(AccountStopped):
        await h.run(["never reached"], stopped=lambda: True)
    assert h.attempts.count == 0


async def test_a_call_given_up_at_its_turn_in_the_pacer_is_not_counted_as_sent() -> None:
    h = Harness()

    async def call() -> Any:
        raise AccountStopped()  # what the run's gate raises when the account stopped meanwhile

    with pytest.raises(AccountStopped):
        await call_with_retry(
            call,
            pacer=h.pacer,
            policy=h.policy,
            attempts=h.attempts,
            write=True,
            rng=random.Random(1),
            sleep=h.sleep,
        )
    assert h.attempts.count == 0
