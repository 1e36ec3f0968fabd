"""An account's run of failing writes (`engine.accounts.Account`): every third failure Unipile's
429 does not explain halves its write rate, and the eighth in a row, 429s included, defers it
(CONTRACT: a long run of consecutive failing writes is `provider_rate_limited`). The pacer runs on
a fake clock: nothing here waits."""

from __future__ import annotations

from bulkgroups.engine.accounts import Account, AccountStop
from bulkgroups.engine.stops import RunStops
from bulkgroups.errors import ApiError, RateLimited, TransientError
from bulkgroups.model import RateSpec
from bulkgroups.pacing import AccountPacer, PacingPolicy


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def account() -> tuple[Account, AccountPacer]:
    rate = RateSpec(20, 1.0)
    pacer = AccountPacer(PacingPolicy(rate=rate, write_rate=rate), clock=FakeClock())
    return Account("acc", pacer=pacer, stops=RunStops(), slowdown_every=3, defer_after=8), pacer


def server_error() -> TransientError:
    return TransientError(status=500, type="api/internal_error")


def rate_limited() -> RateLimited:
    return RateLimited(retry_after=1.0, status=429, type="api/too_many_requests")


def write_rate(pacer: AccountPacer) -> int:
    rate = pacer.current_rate("write")
    assert rate is not None
    return rate.count


def fail(target: Account, errors: list[ApiError]) -> None:
    for error in errors:
        target.write_failed(error)


def test_three_failing_writes_in_a_row_halve_the_write_rate() -> None:
    target, pacer = account()
    fail(target, [server_error(), server_error()])
    assert write_rate(pacer) == 20
    fail(target, [server_error()])
    assert write_rate(pacer) == 10


def test_unipiles_429s_among_failing_writes_do_not_slow_the_account_down() -> None:
    # Their Retry-After paused the account already: two 429s and a 500 answered side by side
    # are no limiter hidden behind 5xx.
    target, pacer = account()
    fail(target, [rate_limited(), server_error(), rate_limited(), rate_limited()])
    assert write_rate(pacer) == 20
    assert target.stop is None


def test_unipiles_429s_neither_count_towards_nor_break_the_run_that_slows_down() -> None:
    target, pacer = account()
    fail(target, [server_error(), rate_limited(), server_error(), rate_limited(), server_error()])
    assert write_rate(pacer) == 10


def test_a_success_ends_the_run() -> None:
    target, pacer = account()
    fail(target, [server_error(), server_error()])
    target.write_succeeded()
    fail(target, [server_error(), server_error()])
    assert write_rate(pacer) == 20


def test_eight_failing_writes_in_a_row_defer_the_account_429s_included() -> None:
    target, _ = account()
    errors: list[ApiError] = [rate_limited() for _ in range(7)]
    fail(target, errors)
    assert target.stop is None
    last = rate_limited()
    fail(target, [last])
    assert target.stop == AccountStop("deferred", "provider_rate_limited", last.info)
