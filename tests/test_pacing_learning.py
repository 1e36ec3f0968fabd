"""Rate control that learns (issue #12), on a fake clock: what an account's pacer makes of the
answers' X-RateLimit-* headers and 429s, and how it recovers.

The server is modelled with the simulator's own window (`FixedWindow`: opens at a request, counts
every request until it expires, refused ones included), plus random 429s with `Retry-After: 1`.
A driver sends a backlog through the pacer's pure core one request at a time, as the gate does,
and honours each 429's Retry-After with a pause, as the retry loop does. Nothing sleeps.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import pytest

from bulkgroups.model import RateLimitHeaders, RateSpec, RequestKind
from bulkgroups.pacing import AccountPacer, PacingPolicy
from bulkgroups.simulator.limits import FixedWindow

CONFIGURED = RateSpec(20, 1.0)
POLICY = PacingPolicy(rate=CONFIGURED, write_rate=None)
LATENCY = 0.004  # a round trip; requests arrive half way


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def headers(limit: int | None, remaining: int | None, reset: float | None) -> RateLimitHeaders:
    return RateLimitHeaders(limit=limit, remaining=remaining, reset=reset)


def answer(
    pacer: AccountPacer,
    status: int = 200,
    sent_headers: RateLimitHeaders | None = None,
    kind: RequestKind = "read",
) -> None:
    """One request of `kind` sent now and answered at once with this status and headers."""
    sent = pacer.stamp_in_flight(kind)
    pacer.observe(kind, sent, status, sent_headers)
    pacer.answered(sent, kind)


# --------------------------------------------------------------------------------------------
# A server and a driver
# --------------------------------------------------------------------------------------------


@dataclass
class Server:
    """A Unipile window of the real `limit`, with random 429s (`Retry-After: 1`)."""

    limit: RateSpec
    random_429: float = 0.0
    with_headers: bool = True
    seed: int = 0
    window: FixedWindow = field(init=False)
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.window = FixedWindow(self.limit)
        self.rng = random.Random(self.seed)

    def arrive(self, now: float) -> tuple[int, RateLimitHeaders | None, float | None]:
        """Status, headers and Retry-After of a request arriving at `now`."""
        state = self.window.hit(now)
        sent = (
            headers(state.limit, state.remaining, float(math.ceil(state.reset)))
            if self.with_headers
            else None
        )
        if state.exceeded:
            return 429, sent, float(state.retry_after)
        if self.rng.random() < self.random_429:
            return 429, sent, 1.0
        return 200, sent, None


@dataclass
class Trace:
    accepted: list[float] = field(default_factory=list)  # arrival times of accepted requests
    refused: list[float] = field(default_factory=list)  # arrival times of 429s
    paused: float = 0.0  # the sum of the Retry-After the server asked for
    paced: float = 0.0  # the integral over time of the rate paced (requests per second)

    def accepted_between(self, start: float, end: float) -> int:
        return sum(1 for t in self.accepted if start <= t < end)


def drive(pacer: AccountPacer, clock: Clock, server: Server, *, seconds: float) -> Trace:
    """A backlog of reads for `seconds`, one in flight at a time, as fast as the pacer lets."""
    trace = Trace()
    end = clock.now + seconds
    last = clock.now
    while True:
        turn = pacer.earliest("read")
        assert turn < math.inf
        clock.now = min(max(clock.now, turn), end)
        rate = pacer.current_rate("read")
        assert rate is not None
        trace.paced += rate.per_second * (clock.now - last)
        last = clock.now
        if clock.now >= end:
            return trace
        sent = pacer.stamp_in_flight("read")
        arrival = clock.now + LATENCY / 2
        status, sent_headers, retry_after = server.arrive(arrival)
        clock.now += LATENCY
        pacer.observe("read", sent, status, sent_headers)
        pacer.answered(sent, "read")
        if status == 429:
            assert retry_after is not None
            trace.refused.append(arrival)
            trace.paused += retry_after
            pacer.pause_for(retry_after)  # what the retry loop does
        else:
            trace.accepted.append(arrival)


def window_length(policy: PacingPolicy = POLICY) -> float:
    assert policy.rate is not None
    return policy.effective_period(policy.rate)


# --------------------------------------------------------------------------------------------
# Headers
# --------------------------------------------------------------------------------------------


def test_an_advertised_limit_lowers_the_pace_at_once() -> None:
    clock = Clock()
    pacer = AccountPacer(POLICY, clock=clock)
    answer(pacer, 200, headers(10, 9, 1.0))
    assert pacer.current_rate("read") == RateSpec(10, 1.0)
    # ... and the very next burst holds 10, counting the request already sent.
    sends = 1
    while pacer.ready("read"):
        answer(pacer)
        sends += 1
    assert sends == 10


def test_an_advertised_limit_never_raises_the_pace_above_the_configured_one() -> None:
    clock = Clock()
    pacer = AccountPacer(POLICY, clock=clock)
    answer(pacer, 200, headers(500, 499, 1.0))
    assert pacer.current_rate("read") == CONFIGURED


def test_the_latest_advertised_limit_wins_up_to_the_configured_one() -> None:
    clock = Clock()
    pacer = AccountPacer(POLICY, clock=clock)
    answer(pacer, 200, headers(5, 4, 1.0))
    assert pacer.current_rate("read") == RateSpec(5, 1.0)
    clock.now += 2.0
    answer(pacer, 200, headers(15, 14, 1.0))
    assert pacer.current_rate("read") == RateSpec(15, 1.0)
    clock.now += 2.0
    answer(pacer, 200, headers(60, 59, 1.0))
    assert pacer.current_rate("read") == CONFIGURED


def test_a_writes_headers_describe_the_general_window_when_they_advertise_its_limit() -> None:
    """A write counts against both windows and its answer describes the tighter one: with the
    general limit's value it is the general window, else the write window."""
    policy = PacingPolicy(rate=RateSpec(20, 1.0), write_rate=RateSpec(10, 1.0))
    clock = Clock()
    pacer = AccountPacer(policy, clock=clock)
    answer(pacer, 200, headers(20, 5, 1.0), kind="write")
    assert pacer.current_rate("write") == RateSpec(10, 1.0)
    assert pacer.current_rate("read") == RateSpec(20, 1.0)
    answer(pacer, 200, headers(4, 3, 1.0), kind="write")
    assert pacer.current_rate("write") == RateSpec(4, 1.0)
    assert pacer.current_rate("read") == RateSpec(20, 1.0)  # reads are not held to it


def test_remaining_zero_holds_the_account_until_reset() -> None:
    policy = PacingPolicy(rate=RateSpec(20, 10.0), write_rate=None)
    clock = Clock()
    pacer = AccountPacer(policy, clock=clock)
    answer(pacer, 200, headers(20, 0, 5.0))  # someone else spent the window
    assert pacer.earliest("read") == clock.now + 5.0
    assert pacer.earliest("write") == clock.now + 5.0
    clock.now += 5.0
    assert pacer.ready("read")


def test_remaining_zero_on_a_write_window_holds_writes_but_not_reads() -> None:
    policy = PacingPolicy(rate=RateSpec(20, 1.0), write_rate=RateSpec(5, 60.0))
    clock = Clock()
    pacer = AccountPacer(policy, clock=clock)
    answer(pacer, 200, headers(5, 0, 42.0), kind="write")
    assert pacer.earliest("write") == clock.now + 42.0
    assert pacer.ready("read")


def test_remaining_zero_that_the_log_explains_leaves_the_wait_to_the_log() -> None:
    """The server's count is ours and its window is the configured one: the log already holds
    the next request until that window has passed, to the millisecond, not to a Reset rounded up
    to a whole second."""
    clock = Clock()
    pacer = AccountPacer(POLICY, clock=clock)
    first = clock.now
    for remaining in range(19, 0, -1):
        answer(pacer, 200, headers(20, remaining, 1.0))
        clock.now += 0.01
    answer(pacer, 200, headers(20, 0, 1.0))  # the 20th, 0.19 s later: Reset 0.81 -> 1
    assert pacer.earliest("read") == pytest.approx(first + window_length())
    assert pacer.earliest("read") < clock.now + 1.0


def test_a_reset_longer_than_the_configured_window_holds_even_when_the_log_explains_it() -> None:
    clock = Clock()
    pacer = AccountPacer(POLICY, clock=clock)
    answer(pacer, 200, headers(1, 0, 30.0))  # the window is 30 s, not 1 s
    assert pacer.earliest("read") == clock.now + 30.0


@pytest.mark.parametrize(
    ("reset", "why"),
    [(None, "absent"), (1.7e9, "an epoch timestamp, not seconds"), (121.0, "beyond max_hold")],
)
def test_remaining_zero_without_a_trusted_reset_holds_one_configured_window(
    reset: float | None, why: str
) -> None:
    clock = Clock()
    pacer = AccountPacer(PacingPolicy(rate=RateSpec(20, 10.0), write_rate=None), clock=clock)
    answer(pacer, 200, headers(20, 0, reset))
    assert pacer.earliest("read") == pytest.approx(clock.now + 10.0 * 1.02 + 0.002), why


def test_inconsistent_headers_are_not_trusted() -> None:
    clock = Clock()
    pacer = AccountPacer(POLICY, clock=clock)
    answer(pacer, 200, headers(5, 9, 30.0))  # Remaining above Limit
    answer(pacer, 200, headers(0, 3, 30.0))  # a Limit of 0 would pace at nothing
    assert pacer.current_rate("read") == CONFIGURED
    assert pacer.ready("read")


def test_an_account_without_limits_still_honours_remaining_zero_for_a_bounded_time() -> None:
    clock = Clock()
    pacer = AccountPacer(PacingPolicy(rate=None, write_rate=None), clock=clock)
    answer(pacer, 200, headers(100, 0, None))
    assert pacer.earliest("read") == clock.now + 1.0
    assert pacer.current_rate("read") is None


# --------------------------------------------------------------------------------------------
# 429s: too fast, or bad luck
# --------------------------------------------------------------------------------------------


def test_a_429_with_room_left_in_its_window_is_bad_luck() -> None:
    clock = Clock()
    pacer = AccountPacer(POLICY, clock=clock)
    for _ in range(3):
        answer(pacer, 200, headers(20, 17, 1.0))
    answer(pacer, 429, headers(20, 16, 1.0))
    assert pacer.current_rate("read") == CONFIGURED


def test_a_429_without_headers_below_the_limit_lowers_the_count_to_what_the_window_held() -> None:
    clock = Clock()
    pacer = AccountPacer(POLICY, clock=clock)
    for _ in range(12):
        answer(pacer)
        clock.now += 0.01
    answer(pacer, 429)  # the 13th in the window: the real limit is 12
    assert pacer.current_rate("read") == RateSpec(12, 1.0)


def test_a_429_lowers_by_at_most_half_at_a_time_and_never_below_the_floor() -> None:
    clock = Clock()
    pacer = AccountPacer(POLICY, clock=clock)
    answer(pacer)
    answer(pacer, 429)  # the window held 1: "the limit is 1"? halve instead
    assert pacer.current_rate("read") == RateSpec(10, 1.0)
    for _ in range(10):
        clock.now += 2.0
        answer(pacer)
        answer(pacer, 429)
    # 1/16 of 20/s, rounded down to whole requests a period
    assert pacer.current_rate("read") == RateSpec(1, 1.0)


def test_a_429_alone_in_its_window_says_nothing_about_our_pace() -> None:
    clock = Clock()
    pacer = AccountPacer(POLICY, clock=clock)
    answer(pacer, 429)
    assert pacer.current_rate("read") == CONFIGURED


def test_a_429_at_a_count_the_server_just_accepted_is_bad_luck() -> None:
    clock = Clock()
    pacer = AccountPacer(POLICY, clock=clock)
    for _ in range(15):  # a window of 15, all accepted
        answer(pacer)
        clock.now += 0.01
    clock.now += 1.1
    for _ in range(9):
        answer(pacer)
        clock.now += 0.01
    answer(pacer, 429)  # the 10th: but 15 went through a moment ago
    assert pacer.current_rate("read") == CONFIGURED


# --------------------------------------------------------------------------------------------
# Recovery: in windows, whatever the request rate
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("busy", [False, True], ids=["idle", "busy"])
def test_a_lowered_limit_is_back_in_full_after_recovery_windows_clean_windows(busy: bool) -> None:
    clock = Clock()
    pacer = AccountPacer(POLICY, clock=clock)
    for _ in range(6):
        answer(pacer)
    answer(pacer, 429)  # lowered to 10/s (half: no lower in one step)
    lowered_at = clock.now
    steps: list[int] = []
    server = Server(CONFIGURED)
    for windows in range(1, POLICY.recovery_windows + 1):
        window_end = lowered_at + windows * window_length()
        if busy:
            drive(pacer, clock, server, seconds=window_end - clock.now)
        clock.now = window_end
        rate = pacer.current_rate("read")
        assert rate is not None
        steps.append(rate.count)
    # Held for half the windows, then equal steps, then the configured rate.
    assert steps == [10, 10, 10, 10, 12, 15, 17, 20]


def test_the_refusals_of_one_burst_lower_once() -> None:
    clock = Clock()
    pacer = AccountPacer(POLICY, clock=clock)
    for _ in range(10):
        answer(pacer)
    for _ in range(4):  # the 11th to the 14th were in flight together
        answer(pacer, 429)
    lowered_at = clock.now
    assert pacer.current_rate("read") == RateSpec(10, 1.0)
    clock.now = lowered_at + POLICY.recovery_windows * window_length()
    assert pacer.current_rate("read") == CONFIGURED


def test_a_climb_that_meets_the_limit_again_holds_twice_as_long_next_time() -> None:
    clock = Clock()
    pacer = AccountPacer(POLICY, clock=clock)
    for _ in range(10):
        answer(pacer)
    answer(pacer, 429)
    clock.now += 5 * window_length()
    assert pacer.current_rate("read") == RateSpec(12, 1.0)  # climbing back: a probe
    for _ in range(10):
        answer(pacer)
    answer(pacer, 429)  # the 11th again
    again = clock.now
    clock.now = again + 8 * window_length()
    assert pacer.current_rate("read") == RateSpec(10, 1.0)  # held 8 windows, not 4
    clock.now = again + 9 * window_length()
    assert pacer.current_rate("read") == RateSpec(12, 1.0)


def test_no_recovery_windows_means_no_lasting_lowering() -> None:
    pacer = AccountPacer(PacingPolicy(rate=CONFIGURED, write_rate=None, recovery_windows=0))
    pacer.slow_down()
    assert pacer.current_rate("read") == CONFIGURED


# --------------------------------------------------------------------------------------------
# The controller against a server
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("with_headers", [True, False], ids=["headers", "no-headers"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_steady_random_429s_keep_at_least_80_percent_of_the_configured_rate(
    with_headers: bool, seed: int
) -> None:
    """2 % of requests meet a 429 that is bad luck, not our pace: the account is paused as the
    server asks, and otherwise keeps its configured rate (with headers showing room left, all
    of it; without headers, nearly: a 429 early in a window can still look like a lower limit)."""
    clock = Clock()
    pacer = AccountPacer(POLICY, clock=clock)
    server = Server(CONFIGURED, random_429=0.02, with_headers=with_headers, seed=seed)
    seconds = 200.0
    trace = drive(pacer, clock, server, seconds=seconds)
    assert len(trace.refused) >= 40  # the bad luck did happen
    paced = trace.paced / seconds  # the rate the pacer allowed, averaged over time
    assert paced >= 0.8 * CONFIGURED.per_second
    if with_headers:
        assert paced == pytest.approx(CONFIGURED.per_second)
    achieved = len(trace.accepted) / (seconds - trace.paused)
    assert achieved >= 0.8 * CONFIGURED.per_second


def test_a_server_with_half_the_configured_limit_is_learnt_at_once_from_its_headers() -> None:
    clock = Clock()
    pacer = AccountPacer(POLICY, clock=clock)
    server = Server(RateSpec(10, 1.0))
    trace = drive(pacer, clock, server, seconds=30.0)
    assert trace.refused == []
    assert pacer.current_rate("read") == RateSpec(10, 1.0)
    assert len(trace.accepted) >= 0.95 * 10 * 30


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_server_with_half_the_configured_limit_and_no_headers_is_learnt_from_its_429s(
    seed: int,
) -> None:
    """Converged within a window, with a handful of 429s: the first teaches the limit, and the
    recovery probes above it, ever more rarely."""
    clock = Clock()
    pacer = AccountPacer(POLICY, clock=clock)
    server = Server(RateSpec(10, 1.0), with_headers=False, seed=seed)
    start = clock.now
    trace = drive(pacer, clock, server, seconds=2.0)
    assert pacer.current_rate("read") == RateSpec(10, 1.0)
    assert len(trace.refused) == 1
    later = drive(pacer, clock, server, seconds=28.0)
    # Probes above the learnt limit: after 5 windows, then after 9 (a failed probe doubles the
    # windows held next time).
    assert len(trace.refused) + len(later.refused) <= 3
    accepted = len(trace.accepted) + len(later.accepted)
    assert accepted >= 0.9 * 10 * (clock.now - start)
