"""Pacing: no interval of length T ever holds more than N requests of an account, whatever happens.

Everything runs on virtual time: a fake clock, and a sleep that either jumps the clock (for the pure
core) or parks the task until a tiny autojump scheduler advances time to the next wake-up once every
task is blocked. No test sleeps for real or measures the wall clock.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bulkgroups.model import AccountSettings, RateLimitHeaders, RateSpec, RequestKind
from bulkgroups.pacing import AccountPacer, Pacing, PacingPolicy, RetryPolicy

from helpers.windows import max_in_any_window

# --------------------------------------------------------------------------------------------
# Virtual time
# --------------------------------------------------------------------------------------------


class VirtualTime:
    """A clock that only moves when told to, and a sleep that waits for it.

    `run(main)` is an autojump scheduler: whenever every task is blocked (nothing ready to run on
    the event loop), time jumps to the earliest pending wake-up. If everything is blocked with no
    wake-up pending, the program is deadlocked and `run` says so instead of hanging.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._order = itertools.count()
        self.sleeps = 0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        wake = anyio.Event()
        heapq.heappush(self._sleepers, (self.now + max(seconds, 0.0), next(self._order), wake))
        await wake.wait()

    def advance(self, seconds: float) -> None:
        self.advance_to(self.now + seconds)

    def advance_to(self, when: float) -> None:
        self.now = max(self.now, when)
        while self._sleepers and self._sleepers[0][0] <= self.now:
            heapq.heappop(self._sleepers)[2].set()

    async def run(self, main: Callable[[], Awaitable[None]]) -> None:
        loop = asyncio.get_running_loop()
        async with anyio.create_task_group() as tg:

            async def driver() -> None:
                idle = 0
                while True:
                    await asyncio.sleep(0)
                    if loop._ready:  # type: ignore[attr-defined]  # someone can still run
                        idle = 0
                        continue
                    if self._sleepers:
                        self.advance_to(self._sleepers[0][0])
                        idle = 0
                    else:
                        idle += 1
                        if idle > 3:
                            raise AssertionError("deadlock: every task blocked, none sleeping")

            async def body() -> None:
                await main()
                tg.cancel_scope.cancel()

            tg.start_soon(driver)
            tg.start_soon(body)


# --------------------------------------------------------------------------------------------
# What "never over the limit" means
# --------------------------------------------------------------------------------------------


def assert_within(policy: PacingPolicy, stamps: Sequence[tuple[float, RequestKind]]) -> None:
    limited = [t for t, kind in stamps if kind != "core"]
    writes = [t for t, kind in stamps if kind == "write"]
    if policy.rate is not None:
        assert max_in_any_window(limited, policy.rate.period) <= policy.rate.count
        # and the safety margin is really there: N + 1 requests span a whole effective period
        n, p = policy.rate.count, policy.effective_period(policy.rate)
        ordered = sorted(limited)
        assert all(b - a >= p - 1e-9 for a, b in zip(ordered, ordered[n:], strict=False))
    if policy.write_rate is not None:
        assert max_in_any_window(writes, policy.write_rate.period) <= policy.write_rate.count


def test_the_window_checker_itself_counts_closed_intervals() -> None:
    assert max_in_any_window([0.0, 1.0, 2.0], 1.0) == 2
    assert max_in_any_window([0.0, 0.5, 1.0, 1.5], 1.0) == 3
    assert max_in_any_window([], 1.0) == 0
    assert max_in_any_window([5.0, 0.0, 10.0], 4.9) == 1


# --------------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------------

rates = st.builds(
    RateSpec,
    st.integers(min_value=1, max_value=50),
    st.floats(min_value=0.1, max_value=100.0, allow_nan=False, allow_infinity=False),
)
write_rates = st.builds(
    RateSpec,
    st.integers(min_value=1, max_value=10),
    st.floats(min_value=0.1, max_value=100.0, allow_nan=False, allow_infinity=False),
)
policies = st.builds(
    PacingPolicy,
    rate=rates,
    write_rate=st.none() | write_rates,
    jitter=st.sampled_from([0.0, 0.0, 0.5, 1.0]),
    slowdown=st.sampled_from([1.0, 1.5, 2.0]),
    max_slowdown=st.sampled_from([1.0, 4.0, 16.0]),
    recovery_windows=st.sampled_from([0, 1, 2, 8]),
    max_hold=st.sampled_from([0.0, 5.0, 120.0]),
)
kinds: st.SearchStrategy[RequestKind] = st.sampled_from(["read", "read", "write", "core"])
gaps = st.one_of(
    st.just(0.0),
    st.floats(min_value=0.0, max_value=2.0),
    st.floats(min_value=0.0, max_value=200.0),
)


@dataclass(frozen=True)
class Request:
    gap: float  # after the previous event
    kind: RequestKind


@dataclass(frozen=True)
class Pause:
    seconds: float


@dataclass(frozen=True)
class SlowDown:
    pass


@dataclass(frozen=True)
class Retire:
    """The account's work in the run is done (`AccountPacer.retire`): whatever still goes after
    it must keep to the limits all the same."""


@dataclass(frozen=True)
class Answer:
    """What the server answered the latest request: its status and X-RateLimit-* headers."""

    status: int
    headers: RateLimitHeaders | None


Event = Request | Pause | SlowDown | Retire | Answer

# Anything a server (or a broken proxy) might say, consistent or not.
rate_limit_headers = st.none() | st.builds(
    RateLimitHeaders,
    limit=st.none() | st.integers(0, 60),
    remaining=st.none() | st.integers(0, 60) | st.just(0),
    reset=st.none() | st.floats(0.0, 200.0) | st.just(1.7e9),
)
answers = st.builds(Answer, st.sampled_from([200, 200, 429, 500]), rate_limit_headers)

events: st.SearchStrategy[Event] = st.one_of(
    st.builds(Request, gaps, kinds),
    st.builds(Request, gaps, kinds),
    st.builds(Request, st.just(0.0), kinds),
    st.builds(Pause, st.floats(min_value=0.0, max_value=300.0)),
    st.builds(SlowDown),
    st.builds(Retire),
    answers,
    answers,
)

# --------------------------------------------------------------------------------------------
# The guarantee, through the pure core
# --------------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(policy=policies, stream=st.lists(events, max_size=250), seed=st.integers(0, 2**32))
def test_no_window_ever_holds_more_than_its_limit_pure(
    policy: PacingPolicy, stream: list[Event], seed: int
) -> None:
    """Whatever the answers say (headers consistent or not, 429s, slow-downs, pauses, a pacer
    retired with its logs let go), the configured limits hold, every wait is finite, and
    nothing goes while the account is paused."""
    vt = VirtualTime(start=0.0)
    pacer = AccountPacer(policy, clock=vt.clock, rng=random.Random(seed))
    stamps: list[tuple[float, RequestKind]] = []
    latest: tuple[RequestKind, Any] | None = None
    for event in stream:
        match event:
            case Request(gap=gap, kind=kind):
                vt.advance(gap)
                turn = pacer.earliest(kind)
                assert turn < math.inf  # every earlier answer is in: nothing waits for ever
                vt.advance_to(turn)
                assert pacer.ready(kind)
                assert vt.now >= pacer.paused_until or kind == "core"
                sent = pacer.stamp_in_flight(kind)
                pacer.answered(sent, kind)
                latest = (kind, sent)
                stamps.append((vt.now, kind))
            case Pause(seconds=seconds):
                pacer.pause_for(seconds)
            case SlowDown():
                pacer.slow_down()
            case Retire():
                pacer.retire()
            case Answer(status=status, headers=headers) if latest is not None:
                pacer.observe(latest[0], latest[1], status, headers)
            case Answer():
                pass
    assert_within(policy, stamps)


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(1, 50),
    period=st.floats(0.1, 100.0),
    backlog=st.integers(1, 400),
)
def test_a_backlog_goes_at_the_full_rate(n: int, period: float, backlog: int) -> None:
    """Exact, not merely safe: request k of a backlog goes at ⌊k/N⌋ effective periods, so M
    requests take ⌊(M-1)/N⌋ periods — within the 2 % margin of the ideal."""
    policy = PacingPolicy(rate=RateSpec(n, period), write_rate=None)
    vt = VirtualTime(start=0.0)
    pacer = AccountPacer(policy, clock=vt.clock)
    p = policy.effective_period(RateSpec(n, period))
    for k in range(backlog):
        vt.advance_to(pacer.earliest("read"))
        assert vt.now == pytest.approx((k // n) * p)
        pacer.stamp("read")
    assert policy.estimate_seconds(backlog, 0) == pytest.approx(vt.now)
    ideal = ((backlog - 1) // n) * period
    assert vt.now <= ideal * 1.02 + ((backlog - 1) // n) * 0.002 + 1e-9


def test_writes_count_against_both_limits_and_reads_only_against_rate() -> None:
    policy = PacingPolicy(
        rate=RateSpec(3, 1.0), write_rate=RateSpec(1, 10.0), margin=0, min_margin=0
    )
    vt = VirtualTime(start=0.0)
    pacer = AccountPacer(policy, clock=vt.clock)
    pacer.stamp("write")
    assert pacer.earliest("write") == 10.0  # the write window
    assert pacer.earliest("read") == -math.inf  # 1 of 3 used
    pacer.stamp("read")
    pacer.stamp("read")
    assert pacer.earliest("read") == 1.0  # the write filled the general window too
    vt.advance_to(1.0)
    pacer.stamp("read")
    assert pacer.earliest("read") == 1.0  # the read at 0 leaves at 1
    assert pacer.earliest("write") == 10.0


def test_core_requests_are_never_held_and_never_counted() -> None:
    vt = VirtualTime(start=0.0)
    pacer = AccountPacer(PacingPolicy(rate=RateSpec(1, 5.0)), clock=vt.clock)
    pacer.pause_for(100.0)
    for _ in range(10):
        assert pacer.earliest("core") == -math.inf
        pacer.stamp("core")
    vt.advance_to(100.0)
    assert pacer.earliest("read") == 100.0  # the core stamps left no trace


# --------------------------------------------------------------------------------------------
# Pauses, slow-down, jitter, unlimited
# --------------------------------------------------------------------------------------------


def test_pause_holds_every_limited_kind_and_is_never_shortened() -> None:
    vt = VirtualTime(start=50.0)
    pacer = AccountPacer(PacingPolicy(rate=None, write_rate=None), clock=vt.clock)
    assert pacer.earliest("read") == -math.inf
    pacer.pause_for(30.0)
    assert pacer.paused_until == 80.0
    pacer.pause_until(60.0)  # an older, shorter Retry-After
    pacer.pause_for(1.0)
    assert pacer.paused_until == 80.0
    assert pacer.earliest("read") == 80.0
    assert pacer.earliest("write") == 80.0
    pacer.pause_until(90.0)
    assert pacer.earliest("write") == 90.0


async def test_wait_turn_sleeps_until_the_pause_ends_even_if_it_grows_meanwhile() -> None:
    vt = VirtualTime(start=0.0)
    pacer = AccountPacer(PacingPolicy(rate=RateSpec(5, 1.0)), clock=vt.clock, sleep=vt.sleep)
    pacer.pause_for(10.0)
    woke_at: list[float] = []

    async def main() -> None:
        async with anyio.create_task_group() as tg:

            async def waiter() -> None:
                await pacer.wait_turn("read")
                woke_at.append(vt.now)

            tg.start_soon(waiter)
            await vt.sleep(5.0)
            pacer.pause_for(20.0)  # a 429 arrives while the waiter sleeps: now until 25

    await vt.run(main)
    assert woke_at == [25.0]


def as_pair(rate: RateSpec | None) -> tuple[int, float]:
    assert rate is not None
    return rate.count, rate.period


def test_slow_down_halves_the_write_rate_and_recovers_in_windows_not_successes() -> None:
    policy = PacingPolicy(
        rate=RateSpec(4, 2.0), write_rate=RateSpec(8, 60.0), slowdown=2.0, max_slowdown=16.0
    )
    vt = VirtualTime(start=0.0)
    pacer = AccountPacer(policy, clock=vt.clock)
    assert pacer.current_rate("write") == RateSpec(8, 60.0)
    pacer.slow_down()
    assert pacer.current_rate("write") == RateSpec(4, 60.0)
    assert pacer.current_rate("read") == RateSpec(4, 2.0)  # the hidden limiter is on writes
    # However many writes succeed meanwhile, only clean windows bring the rate back.
    window = policy.effective_period(RateSpec(8, 60.0))
    vt.advance(window * policy.recovery_windows - 1.0)
    assert pacer.current_rate("write") != RateSpec(8, 60.0)
    vt.advance(1.0)
    assert pacer.current_rate("write") == RateSpec(8, 60.0)


def test_repeated_slow_downs_reach_the_floor_and_still_recover_in_bounded_windows() -> None:
    policy = PacingPolicy(rate=None, write_rate=RateSpec(8, 60.0), max_slowdown=16.0)
    vt = VirtualTime(start=0.0)
    pacer = AccountPacer(policy, clock=vt.clock)
    for _ in range(10):
        pacer.slow_down()
    # Capped at 1/16 of the configured rate: below one request a period, the period lengthens.
    assert as_pair(pacer.current_rate("write")) == (1, pytest.approx(120.0))
    # Lowerings in a row hold the lowered level longer (at most four times), never for ever.
    window = policy.effective_period(RateSpec(8, 60.0))
    k = policy.recovery_windows
    vt.advance(window * (4 * (k // 2) + k - k // 2))
    assert pacer.current_rate("write") == RateSpec(8, 60.0)


def test_without_a_write_limit_a_slow_down_lowers_the_general_rate() -> None:
    pacer = AccountPacer(PacingPolicy(rate=RateSpec(10, 1.0), write_rate=None))
    pacer.slow_down()
    assert pacer.current_rate("read") == RateSpec(5, 1.0)
    assert pacer.current_rate("write") == RateSpec(5, 1.0)


def test_a_slowed_limit_of_one_request_lengthens_its_period() -> None:
    """At the default 1 write/min, slowing down cannot lower the count: the period doubles."""
    policy = PacingPolicy(margin=0, min_margin=0)
    vt = VirtualTime(start=0.0)
    pacer = AccountPacer(policy, clock=vt.clock)
    pacer.stamp("write")
    pacer.slow_down()
    assert as_pair(pacer.current_rate("write")) == (1, pytest.approx(120.0))
    assert pacer.earliest("write") == pytest.approx(120.0)


@settings(max_examples=50, deadline=None)
@given(
    jitter=st.floats(0.0, 2.0),
    seed=st.integers(0, 2**32),
    stream=st.lists(st.tuples(st.floats(0.0, 100.0), kinds), min_size=1, max_size=60),
)
def test_jitter_only_adds_and_stays_within_its_share_of_the_write_interval(
    jitter: float, seed: int, stream: list[tuple[float, RequestKind]]
) -> None:
    """A twin pacer without jitter, fed the same send times, is never later than the jittery one,
    and the jittery one is late by at most jitter x the write interval."""
    rate, write_rate = RateSpec(5, 1.0), RateSpec(2, 30.0)
    jittery = PacingPolicy(rate=rate, write_rate=write_rate, jitter=jitter)
    vt = VirtualTime(start=0.0)
    pacer = AccountPacer(jittery, clock=vt.clock, rng=random.Random(seed))
    twin = AccountPacer(PacingPolicy(rate=rate, write_rate=write_rate), clock=vt.clock)
    bound = jitter * write_rate.interval
    for gap, kind in stream:
        vt.advance(gap)
        for k in ("read", "write"):
            late = pacer.earliest(k) - twin.earliest(k)
            assert late >= 0.0 or math.isinf(twin.earliest(k))
            if k == "read" or twin.earliest(k) == -math.inf:
                assert late == 0.0 or math.isnan(late)
            else:
                assert late <= bound + 1e-9
        vt.advance_to(pacer.earliest(kind))
        pacer.stamp(kind)
        twin.stamp(kind)


def test_jitter_really_varies_the_writes() -> None:
    policy = PacingPolicy(rate=None, write_rate=RateSpec(1, 60.0), jitter=0.5)
    vt = VirtualTime(start=0.0)
    pacer = AccountPacer(policy, clock=vt.clock, rng=random.Random(7))
    gaps = []
    for _ in range(20):
        before = vt.now
        vt.advance_to(pacer.earliest("write"))
        pacer.stamp("write")
        gaps.append(vt.now - before)
    spaced = gaps[1:]
    base = 60.0 * 1.02 + 0.002
    assert all(base <= g <= base + 30.0 for g in spaced)
    assert len({round(g, 6) for g in spaced}) > 10
    # the same seed gives the same run
    vt2 = VirtualTime(start=0.0)
    again = AccountPacer(policy, clock=vt2.clock, rng=random.Random(7))
    for _ in range(20):
        vt2.advance_to(again.earliest("write"))
        again.stamp("write")
    assert vt2.now == vt.now


async def test_unlimited_never_waits() -> None:
    async def no_sleep(seconds: float) -> None:
        raise AssertionError(f"slept {seconds}")

    vt = VirtualTime(start=0.0)
    pacing = Pacing(
        concurrency=4,
        default=PacingPolicy(rate=None, write_rate=None, jitter=1.0),
        clock=vt.clock,
        sleep=no_sleep,
    )
    for i in range(500):
        async with pacing.gate(f"acc{i % 3}", "write" if i % 2 else "read"):
            pass
    assert pacing.estimate_seconds("acc0", 1000, 1000) == 0.0
    assert pacing.pacer("acc0").current_rate("write") is None


# --------------------------------------------------------------------------------------------
# The guarantee, through the async gate, with many tasks on a few accounts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Worker:
    account: int
    # Per request: the gap before it and its latency (until its answer), both in periods of the
    # account's `rate`; its kind; when in its trip it arrives (0 = at send, 1 = at the answer);
    # and what the pacer hears: an answer (a 429's pause is 10 latencies), a slow-down, nothing.
    requests: tuple[tuple[float, RequestKind, float, float, Answer | str], ...]


feedbacks = answers | st.sampled_from(["slow", "none"])
workers = st.builds(
    Worker,
    st.integers(0, 2),
    st.lists(
        st.tuples(
            st.floats(0.0, 2.0) | st.just(0.0),
            kinds,
            st.floats(0.0, 3.0) | st.just(0.0),
            st.sampled_from([0.0, 1.0]) | st.floats(0.0, 1.0),
            feedbacks,
        ),
        max_size=25,
    ).map(tuple),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    account_policies=st.lists(policies, min_size=3, max_size=3),
    team=st.lists(workers, min_size=1, max_size=8),
    concurrency=st.integers(1, 4),
    seed=st.integers(0, 2**32),
)
def test_no_window_ever_holds_more_than_its_limit_through_the_gate(
    account_policies: list[PacingPolicy], team: list[Worker], concurrency: int, seed: int
) -> None:
    vt = VirtualTime()
    per_account = {f"acc{i}": p for i, p in enumerate(account_policies)}
    stamps: dict[str, list[tuple[float, RequestKind]]] = defaultdict(list)
    arrivals: dict[str, list[tuple[float, RequestKind]]] = defaultdict(list)
    in_flight = 0
    most_in_flight = 0
    paused_until: dict[str, float] = defaultdict(lambda: -math.inf)
    sent_while_paused: list[tuple[str, float, float]] = []

    async def main() -> None:
        pacing = Pacing(
            concurrency=concurrency,
            default=PacingPolicy(),
            per_account=per_account,
            clock=vt.clock,
            sleep=vt.sleep,
            rng=random.Random(seed),
        )

        async def work(worker: Worker) -> None:
            nonlocal in_flight, most_in_flight
            account = f"acc{worker.account}"
            pacer = pacing.pacer(account)
            period = per_account[account].rate.period if per_account[account].rate else 1.0
            for gap, kind, trip, arrives, feedback in worker.requests:
                latency = trip * period
                await vt.sleep(gap * period)
                async with pacing.gate(account, kind) as turn:
                    stamps[account].append((vt.now, kind))  # the caller sends right now
                    arrivals[account].append((vt.now + arrives * latency, kind))
                    if kind != "core" and vt.now < paused_until[account]:
                        sent_while_paused.append((account, vt.now, paused_until[account]))
                    in_flight += 1
                    most_in_flight = max(most_in_flight, in_flight)
                    await vt.sleep(latency)
                    in_flight -= 1
                    if isinstance(feedback, Answer):
                        turn.observe(feedback.status, feedback.headers)
                if isinstance(feedback, Answer) and feedback.status == 429:
                    pacer.pause_for(latency * 10)  # what the retry loop does with Retry-After
                    paused_until[account] = max(paused_until[account], vt.now + latency * 10)
                elif feedback == "slow":
                    pacer.slow_down()

        async with anyio.create_task_group() as tg:
            for worker in team:
                tg.start_soon(work, worker)

    anyio.run(vt.run, main)
    assert most_in_flight <= concurrency
    assert sum(map(len, stamps.values())) == sum(len(w.requests) for w in team)
    assert sent_while_paused == []
    for account, account_stamps in stamps.items():
        assert_within(per_account[account], account_stamps)
        # What the server counts: each request arrives somewhere between its send and its answer.
        assert_within(per_account[account], arrivals[account])


async def test_a_backlog_through_the_gate_goes_at_the_full_rate_on_every_account() -> None:
    """Three accounts, ten tasks each, one global slot: each account still gets its whole rate,
    because nobody holds the slot while waiting for a turn."""
    vt = VirtualTime(start=0.0)
    policy = PacingPolicy(rate=RateSpec(5, 1.0), write_rate=None)
    pacing = Pacing(concurrency=1, default=policy, clock=vt.clock, sleep=vt.sleep)
    last: dict[str, float] = {}

    async def main() -> None:
        async def work(account: str) -> None:
            for _ in range(10):
                async with pacing.gate(account, "read"):
                    last[account] = vt.now

        async with anyio.create_task_group() as tg:
            for account in ("a", "b", "c"):
                for _ in range(10):
                    tg.start_soon(work, account)

    await vt.run(main)
    expected = pacing.estimate_seconds("a", 100, 0)  # 100 reads: 19 full periods
    assert expected == pytest.approx(19 * 1.022)
    assert last == pytest.approx({"a": expected, "b": expected, "c": expected})


# --------------------------------------------------------------------------------------------
# The gate's order: turn, then slot, then stamp
# --------------------------------------------------------------------------------------------


async def test_an_account_waiting_for_its_turn_does_not_block_another_account() -> None:
    vt = VirtualTime(start=0.0)
    pacing = Pacing(concurrency=1, default=PacingPolicy(), clock=vt.clock, sleep=vt.sleep)
    pacing.pacer("slow").pause_for(1000.0)
    events: list[str] = []

    async def slow() -> None:
        async with pacing.gate("slow", "write"):
            events.append(f"slow sent at {vt.now:g}")

    async with anyio.create_task_group() as tg:
        tg.start_soon(slow)
        await _settle()
        async with pacing.gate("fast", "read"):
            events.append(f"fast sent at {vt.now:g}")
        assert events == ["fast sent at 0"]
        vt.advance(1000.0)
    assert events == ["fast sent at 0", "slow sent at 1000"]


async def test_a_read_does_not_queue_behind_a_write_waiting_for_its_window() -> None:
    vt = VirtualTime(start=0.0)
    pacing = Pacing(concurrency=4, default=PacingPolicy(), clock=vt.clock, sleep=vt.sleep)
    sent: list[str] = []

    async def write() -> None:
        async with pacing.gate("acc", "write"):
            sent.append(f"write at {vt.now:g}")

    async with anyio.create_task_group() as tg:
        await write()  # the first write goes at once; the next must wait a minute
        vt.advance(2.0)
        tg.start_soon(write)
        await _settle()
        async with pacing.gate("acc", "read"):
            sent.append(f"read at {vt.now:g}")
        vt.advance_to(pacing.pacer("acc").earliest("write"))
    assert sent == ["write at 0", "read at 2", "write at 61.202"]


async def test_a_pause_that_arrives_while_waiting_for_a_slot_is_honoured() -> None:
    vt = VirtualTime(start=0.0)
    pacing = Pacing(concurrency=1, default=PacingPolicy(), clock=vt.clock, sleep=vt.sleep)
    sent: list[float] = []
    release = anyio.Event()

    async def hog() -> None:
        async with pacing.gate("other", "core"):
            await release.wait()

    async def read() -> None:
        async with pacing.gate("acc", "read"):
            sent.append(vt.now)

    async with anyio.create_task_group() as tg:
        tg.start_soon(hog)
        await _settle()
        tg.start_soon(read)  # its turn has come; it waits for the only slot
        await _settle()
        pacing.pacer("acc").pause_for(30.0)  # a 429 from a request in flight
        release.set()
        await _settle()
        assert sent == []  # it gave the slot back and waits for the pause
        vt.advance(30.0)
    assert sent == [30.0]


async def test_a_cancelled_waiter_leaves_the_queue_and_holds_no_slot() -> None:
    vt = VirtualTime(start=0.0)
    pacing = Pacing(concurrency=1, default=PacingPolicy(), clock=vt.clock, sleep=vt.sleep)
    pacing.pacer("acc").pause_for(100.0)
    sent: list[str] = []
    scope = anyio.CancelScope()

    async def waiter() -> None:
        with scope:
            async with pacing.gate("acc", "read"):
                sent.append("cancelled one")

    with anyio.fail_after(5):  # a safety net against a hang, not a speed assertion
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await _settle()
            scope.cancel()
        async with pacing.gate("other", "read"):
            sent.append("other")  # the only slot is free
        vt.advance(100.0)
        async with pacing.gate("acc", "read"):
            sent.append("acc")  # the account's queue is free
    assert sent == ["other", "acc"]


async def test_core_requests_take_only_a_global_slot() -> None:
    vt = VirtualTime(start=0.0)
    pacing = Pacing(concurrency=1, default=PacingPolicy(), clock=vt.clock, sleep=vt.sleep)
    pacing.pacer("acc").pause_for(100.0)
    async with pacing.gate("acc", "core"):
        pass  # not paced, not paused
    assert vt.sleeps == 0

    entered: list[str] = []

    async def second() -> None:
        async with pacing.gate("acc2", "core"):
            entered.append("second")

    async with anyio.create_task_group() as tg, pacing.gate("acc", "core"):
        tg.start_soon(second)
        await _settle()
        assert entered == []  # the one slot is taken
    assert entered == ["second"]


def test_pacing_is_built_outside_the_event_loop_and_used_inside() -> None:
    vt = VirtualTime(start=0.0)
    pacing = Pacing(concurrency=2, default=PacingPolicy(rate=RateSpec(2, 1.0)), clock=vt.clock)
    pacer = pacing.pacer("acc")
    _ = pacer.lock_for("read")  # still unbound to any loop
    stamps: list[float] = []

    async def main() -> None:
        for _ in range(3):
            async with pacing.gate("acc", "read"):
                stamps.append(vt.now)
            vt.advance(0.6)  # (the real sleep below is never reached: the clock moved)

    anyio.run(main)
    assert stamps == pytest.approx([0.0, 0.6, 1.2])


async def _settle() -> None:
    """Let every task run until it blocks (on a lock, a slot, an event or a virtual sleep)."""
    for _ in range(20):
        await anyio.lowlevel.checkpoint()


# --------------------------------------------------------------------------------------------
# Policies
# --------------------------------------------------------------------------------------------


def test_policy_defaults_follow_the_contract() -> None:
    policy = PacingPolicy()
    assert policy.rate == RateSpec(1, 1.0)
    assert policy.write_rate == RateSpec(1, 60.0)
    assert policy.jitter == 0.0


def test_account_settings_override_each_rate_on_its_own() -> None:
    flags = PacingPolicy(rate=RateSpec(5, 1.0), write_rate=RateSpec(2, 60.0), jitter=0.5)
    only_rate = flags.overridden_by(AccountSettings(rate=RateSpec(2, 1.0)))
    assert only_rate.rate == RateSpec(2, 1.0)
    assert only_rate.write_rate == RateSpec(2, 60.0)
    assert only_rate.jitter == 0.5
    assert flags.overridden_by(AccountSettings()) == flags


def test_estimate_counts_the_write_window_and_mean_jitter() -> None:
    policy = PacingPolicy(rate=RateSpec(1, 1.0), write_rate=RateSpec(1, 60.0), jitter=0.5)
    # 11 writes: 10 write periods of 61.202 s plus a mean jitter of 15 s each
    assert policy.estimate_seconds(reads=20, writes=11) == pytest.approx(10 * (61.202 + 15.0))
    # reads alone: 19 general periods
    assert policy.estimate_seconds(reads=20, writes=0) == pytest.approx(19 * 1.022)
    assert policy.estimate_seconds(reads=0, writes=0) == 0.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"jitter": -0.1},
        {"margin": -0.01},
        {"min_margin": -1.0},
        {"slowdown": 0.5},
        {"max_slowdown": 0.9},
        {"recovery_windows": -1},
        {"max_hold": -1.0},
    ],
)
def test_nonsensical_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        PacingPolicy(**kwargs)  # type: ignore[arg-type]


def test_pacing_needs_at_least_one_slot() -> None:
    with pytest.raises(ValueError):
        Pacing(concurrency=0, default=PacingPolicy())


# --------------------------------------------------------------------------------------------
# Retry policy
# --------------------------------------------------------------------------------------------


def test_backoff_grows_from_initial_with_jitter_that_only_adds_and_is_capped() -> None:
    policy = RetryPolicy(initial=0.5, multiplier=2.0, maximum=30.0, jitter=0.5)
    rng = random.Random(3)
    for attempt in range(1, 12):
        base = min(30.0, 0.5 * 2 ** (attempt - 1))
        for _ in range(50):
            delay = policy.backoff(attempt, rng)
            assert base <= delay <= min(30.0, base * 1.5)
    assert policy.backoff(1000, rng) == 30.0


def test_backoff_without_jitter_is_exactly_exponential() -> None:
    policy = RetryPolicy(initial=1.0, multiplier=2.0, maximum=100.0, jitter=0.0)
    rng = random.Random(0)
    assert [policy.backoff(a, rng) for a in range(1, 9)] == [1, 2, 4, 8, 16, 32, 64, 100]
    huge = RetryPolicy(initial=1.0, multiplier=1e6, maximum=100.0, jitter=0.0)
    assert huge.backoff(10**6, rng) == 100.0  # no OverflowError on the way


def test_default_backoff_retries_an_isolated_fault_at_once_and_still_spans_an_outage() -> None:
    """Issue #12: a few faults on one chat's chain of requests cost seconds when the first
    backoff was 0.5 s; now a tenth of one, while the six attempts still wait out ~12 s."""
    policy = RetryPolicy()
    rng = random.Random(0)
    assert policy.backoff(1, rng) <= 0.15
    without_jitter = RetryPolicy(jitter=0.0)
    waits = [without_jitter.backoff(a, rng) for a in range(1, policy.attempts)]
    assert waits == pytest.approx([0.1, 0.3, 0.9, 2.7, 8.1])
    assert sum(waits) >= 12.0


def test_backoff_jitter_really_varies() -> None:
    policy = RetryPolicy()
    rng = random.Random(1)
    assert len({policy.backoff(2, rng) for _ in range(20)}) > 10


@pytest.mark.parametrize(
    "kwargs",
    [
        {"attempts": 0},
        {"budget": -1.0},
        {"initial": -0.1},
        {"initial": 5.0, "maximum": 1.0},
        {"multiplier": 0.5},
    ],
)
def test_nonsensical_retry_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


async def test_a_request_cancelled_in_flight_counts_from_its_cancellation() -> None:
    """Its answer will never come: the gate's exit is the last moment it can have arrived, so the
    account's next request waits a period from then, and is not stuck waiting for an answer."""
    vt = VirtualTime(start=0.0)
    policy = PacingPolicy(rate=RateSpec(1, 1.0), write_rate=None, margin=0.0, min_margin=0.0)
    pacing = Pacing(concurrency=4, default=policy, clock=vt.clock, sleep=vt.sleep)
    sent: list[float] = []

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            cancel = anyio.CancelScope()

            async def hanging() -> None:
                with cancel:
                    async with pacing.gate("acc", "read"):
                        sent.append(vt.now)
                        await vt.sleep(1000.0)  # no answer comes

            async def next_one() -> None:
                await vt.sleep(0.5)
                async with pacing.gate("acc", "read"):
                    sent.append(vt.now)

            tg.start_soon(hanging)
            tg.start_soon(next_one)
            await vt.sleep(3.0)
            cancel.cancel()  # at 3: the next one may go at 4

    await vt.run(main)
    assert sent == [0.0, 4.0]
