"""Per-account pacing that never exceeds a limit, by construction; and the retry policy.

Unipile counts an account's requests in rolling fixed windows (`unipile-v2.md`, "Rate limits"): a
client is safe only if no interval of length T ever holds more than N of its requests. Every
account therefore gets an `AccountPacer` that keeps, per limit, a sliding log of its last N
requests: a request may go once the oldest of those is a full (effective) period old. That is
exact — N requests at once, then the next as soon as the first leaves the window — so a backlog is
sent at the full configured rate (M requests take ⌊(M-1)/N⌋ effective periods, plus a round trip
per window, below) while no window can ever hold N + 1. Writes are logged against both `rate` and
`write_rate`.

Why not aiolimiter: `AsyncLimiter(N, T)` is a leaky bucket that lets N go at once and N more
before T has passed (nearly 2N in one window, which Unipile rejects with 429); `AsyncLimiter(1, T/N)`
is safe but can neither pause (Retry-After) nor slow down, and forbids the initial burst of N
that the limit allows. The sliding log is about 40 lines, pure, and tested against a fake clock.

Arrival, not send: Unipile counts a request when it arrives, and two requests N apart can take
different times to get there (a busy event loop, a slow proxy). So a request sent through
`Pacing.gate` counts from when its answer came back, an upper bound of its arrival, and while
its answer is outstanding a request that needs it out of the window waits (`_Sent`). Safe by
construction whatever the latency; the cost is one round trip per window, negligible at 1/min
and a few milliseconds at 20/s on a near server.

Safety margin: on top of that a period T is paced as T·(1 + margin) + min_margin, by default
T·1.02 + 2 ms, for clock granularity and the server's own scheduling.

Slow-down (after a 429 or a hidden limiter): every period is multiplied by `factor`, and while
`factor > 1` requests are also spread evenly (one per period·factor/N) rather than in bursts,
because whatever answered 429 disliked what we sent. Each success takes `recovery` off the
factor, back to 1. Pauses (Retry-After, cross-run pacing from the ledger) hold every
rate-limited request of the account until a monotonic time. Jitter only ever adds delay, so none
of this can weaken the guarantee: every constraint is a lower bound on the next send time.

Order in `Pacing.gate` (STYLE pattern 5): in the account's queue (one for reads, one for writes),
wait for the account's turn, then take a global in-flight slot, re-check the turn and stamp — so an
account that waits never holds a slot (no head-of-line blocking) and nothing is awaited between
stamping and sending.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from types import TracebackType

import anyio

from .model import AccountSettings, RateLimitHeaders, RateSpec, RequestKind

__all__ = [
    "DEFAULT_RATE",
    "DEFAULT_WRITE_RATE",
    "AccountPacer",
    "Pacing",
    "PacingPolicy",
    "RetryPolicy",
]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

_NEVER = -math.inf  # "nothing holds this request back"

# The contract's defaults: 1/s for every account-scoped request, 1/min for writes.
DEFAULT_RATE = RateSpec(1, 1.0)
DEFAULT_WRITE_RATE = RateSpec(1, 60.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class PacingPolicy:
    """How one account is paced: its limits, jitter, safety margin and slow-down."""

    rate: RateSpec | None = DEFAULT_RATE  # None = unlimited (limits off)
    write_rate: RateSpec | None = DEFAULT_WRITE_RATE  # None = only `rate` applies to writes
    jitter: float = 0.0  # 0..F of the write interval added as random extra delay
    margin: float = 0.02  # relative safety margin on every period
    min_margin: float = 0.002  # absolute seconds added to every period
    slowdown: float = 2.0  # factor applied to the periods by each slow_down()
    max_slowdown: float = 16.0
    recovery: float = 0.05  # taken off the factor by each success

    def __post_init__(self) -> None:
        if self.jitter < 0 or self.margin < 0 or self.min_margin < 0 or self.recovery < 0:
            raise ValueError("jitter, margins and recovery cannot be negative")
        if self.slowdown < 1 or self.max_slowdown < 1:
            raise ValueError("a slow-down factor is at least 1")

    @property
    def strictest_period(self) -> float:
        """The larger T of `rate` and `write_rate` (0 if neither): how long a new run waits after
        an account's last recorded request so that back-to-back runs stay within the limits."""
        return max((spec.period for spec in (self.rate, self.write_rate) if spec), default=0.0)

    def effective_period(self, spec: RateSpec) -> float:
        """The period actually paced for `spec`: its T with the safety margin."""
        return spec.period * (1.0 + self.margin) + self.min_margin

    def write_interval(self) -> float:
        """The configured spacing of writes (what `jitter` is a fraction of); 0 if unlimited."""
        return max((spec.interval for spec in (self.rate, self.write_rate) if spec), default=0.0)

    def overridden_by(self, settings: AccountSettings) -> PacingPolicy:
        """This policy with an account's job-file `rate`/`write_rate`, each on its own."""
        return replace(
            self,
            rate=settings.rate if settings.rate is not None else self.rate,
            write_rate=settings.write_rate if settings.write_rate is not None else self.write_rate,
        )

    def estimate_seconds(self, reads: int, writes: int) -> float:
        """Seconds from the first to the last of these requests at these limits, from a fresh
        start, counting the mean jitter; a lower bound (it leaves out the round trip each window
        waits for, and requests that are not ready when their turn comes)."""
        total = max(reads, 0) + max(writes, 0)
        estimate = 0.0
        if self.rate is not None:
            estimate = _backlog_span(total, self.rate.count, self.effective_period(self.rate))
        write_limit = self.write_rate or self.rate
        if write_limit is not None and writes > 0:
            mean_jitter = self.jitter * self.write_interval() / 2.0
            # Jitter is added to a write's turn, which the log then carries forward per slot.
            period = self.effective_period(write_limit) + mean_jitter
            estimate = max(estimate, _backlog_span(writes, write_limit.count, period))
        return estimate


def _backlog_span(requests: int, count: int, period: float) -> float:
    """With a sliding log, request k (from 0) of a backlog goes at ⌊k/N⌋ periods."""
    return ((requests - 1) // count) * period if requests > 0 else 0.0


class _Sent:
    """One request in a sliding log: when it went, and whether its answer has come back.

    Unipile counts a request when it *arrives*, which is some time between our send and our
    receipt of the answer. Once the answer is in, `at` moves to that receipt time: an upper bound
    of the arrival, so a window measured from it can never be too short, however the latency of
    two requests differs. While the answer is outstanding the request holds its place in the
    log, and a request that would need it to have left the window waits for it.
    """

    __slots__ = ("at", "done")

    def __init__(self, at: float, *, done: bool) -> None:
        self.at = at
        self.done = done


class _Window:
    """The sliding log of one limit: the last `count` requests it covers."""

    __slots__ = ("count", "log", "period")

    def __init__(self, spec: RateSpec, period: float) -> None:
        self.count = spec.count
        self.period = period
        self.log: deque[_Sent] = deque(maxlen=spec.count)

    def ready_at(self, factor: float) -> float:
        log = self.log
        if not log:
            return _NEVER
        period = self.period * factor
        at = _NEVER
        if len(log) == self.count:
            oldest = log[0]
            at = oldest.at + period if oldest.done else math.inf
        if factor > 1.0:
            at = max(at, log[-1].at + period / self.count)
        return at


class AccountPacer:
    """When the next request of one account may go; owned by one run.

    `earliest`/`stamp` are the pure core (no awaiting, testable with a fake clock); `wait_turn`
    sleeps until the turn comes. Callers queue under `lock_for(kind)` for wait_turn, then check
    `ready` and stamp with nothing awaited in between, as `Pacing.gate` does (with
    `stamp_in_flight`, then `answered` when the answer is in).
    """

    __slots__ = (
        "_answered",
        "_clock",
        "_factor",
        "_general",
        "_jitter_span",
        "_locks",
        "_paused_until",
        "_rng",
        "_sleep",
        "_write_extra",
        "_writes",
        "policy",
    )

    def __init__(
        self,
        policy: PacingPolicy,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        self._general = (
            _Window(policy.rate, policy.effective_period(policy.rate)) if policy.rate else None
        )
        self._writes = (
            _Window(policy.write_rate, policy.effective_period(policy.write_rate))
            if policy.write_rate
            else self._general
        )
        self._factor = 1.0
        self._paused_until = _NEVER
        self._jitter_span = policy.jitter * policy.write_interval()
        self._write_extra = self._draw_jitter()
        self._locks: list[anyio.Lock | None] = [None, None]
        self._answered: anyio.Event | None = None

    # --- state -------------------------------------------------------------------------------

    @property
    def factor(self) -> float:
        """The current slow-down factor (1.0 = the configured rate)."""
        return self._factor

    @property
    def paused_until(self) -> float:
        """Monotonic time before which no rate-limited request goes (-inf if never paused)."""
        return self._paused_until

    @property
    def lock(self) -> anyio.Lock:
        """The queue reads wait in, first come first served (see `lock_for`)."""
        return self.lock_for("read")

    def lock_for(self, kind: RequestKind) -> anyio.Lock:
        """The queue requests of this kind wait in for their turn, first come first served.

        Reads and writes queue separately: at 1 write/min, a read (a verify, the next chat's
        state) must not wait a minute behind a write that waits for its write window. Sharing a
        queue is not needed for safety: the final check and the stamp are one step with nothing
        awaited between them. Locks are created on first use so that a pacer built outside the
        event loop binds to the loop it is used in; fast_acquire: an uncontended gate costs no
        extra trip through the event loop (the caller yields right after: it sends a request).
        """
        index = 1 if kind == "write" else 0
        lock = self._locks[index]
        if lock is None:
            lock = self._locks[index] = anyio.Lock(fast_acquire=True)
        return lock

    # --- the pure core -----------------------------------------------------------------------

    def earliest(self, kind: RequestKind) -> float:
        """The monotonic time from which the next request of this kind may be sent."""
        if kind == "core":
            return _NEVER  # the core account GET is not limited by Unipile
        factor = self._factor
        at = self._general.ready_at(factor) if self._general is not None else _NEVER
        if kind == "write" and self._writes is not None:
            at = max(at, self._writes.ready_at(factor))
            if at != _NEVER:
                at += self._write_extra
        return max(at, self._paused_until)

    def ready(self, kind: RequestKind) -> bool:
        """Whether a request of this kind may be sent now."""
        return self.earliest(kind) <= self._clock()

    def stamp(self, kind: RequestKind) -> None:
        """Record that a request of this kind is being sent now (counted from its send time)."""
        self._log(kind, done=True)

    def stamp_in_flight(self, kind: RequestKind) -> _Sent | None:
        """Record a request being sent now whose answer is awaited; pass the result to
        `answered` when the answer (or the failure) comes back."""
        return self._log(kind, done=False)

    def answered(self, sent: _Sent | None) -> None:
        """The answer to a request came back: count it from now (see `_Sent`)."""
        if sent is None or sent.done:
            return
        sent.at = max(sent.at, self._clock())
        sent.done = True
        if self._answered is not None:
            self._answered.set()
            self._answered = None

    def _log(self, kind: RequestKind, *, done: bool) -> _Sent | None:
        if kind == "core" or (self._general is None and self._writes is None):
            return None
        sent = _Sent(self._clock(), done=done)
        if self._general is not None:
            self._general.log.append(sent)
        if kind == "write":
            if self._writes is not None and self._writes is not self._general:
                self._writes.log.append(sent)
            self._write_extra = self._draw_jitter()
        return sent

    def ideal_interval(self, kind: RequestKind) -> float:
        """The sustained spacing of requests of this kind at the current factor, margin
        included and jitter excluded (0 when unlimited)."""
        if kind == "core":
            return 0.0
        windows = (self._general, self._writes) if kind == "write" else (self._general,)
        return max(
            (w.period * self._factor / w.count for w in windows if w is not None), default=0.0
        )

    async def wait_turn(self, kind: RequestKind) -> None:
        """Sleep until this kind's turn; re-checks after every sleep, since a pause or a
        slow-down may arrive meanwhile."""
        while True:
            at = self.earliest(kind)
            if at == math.inf:
                # Waiting for an answer to leave the window: woken by `answered`.
                if self._answered is None:
                    self._answered = anyio.Event()
                await self._answered.wait()
                continue
            delay = at - self._clock()
            if delay <= 0.0:
                return
            await self._sleep(delay)

    # --- feedback ----------------------------------------------------------------------------

    def pause_until(self, when: float) -> None:
        """Hold the account until monotonic time `when`; never shortens an existing pause."""
        if when > self._paused_until:
            self._paused_until = when

    def pause_for(self, seconds: float) -> None:
        """Hold the account for `seconds` from now (e.g. a 429's Retry-After)."""
        self.pause_until(self._clock() + seconds)

    def slow_down(self) -> None:
        """Multiply the periods by the policy's `slowdown`, up to `max_slowdown`."""
        self._factor = min(self._factor * self.policy.slowdown, self.policy.max_slowdown)

    def succeeded(self) -> None:
        """A request went through: recover additively towards the configured rate."""
        if self._factor > 1.0:
            self._factor = max(1.0, self._factor - self.policy.recovery)

    def _draw_jitter(self) -> float:
        return self._rng.uniform(0.0, self._jitter_span) if self._jitter_span > 0.0 else 0.0


class Pacing:
    """All accounts' pacers plus the global in-flight bound; its `gate` is a model.Gate."""

    __slots__ = (
        "_clock",
        "_concurrency",
        "_default",
        "_pacers",
        "_per_account",
        "_rng",
        "_sleep",
        "_slots",
    )

    def __init__(
        self,
        *,
        concurrency: int,
        default: PacingPolicy,
        per_account: Mapping[str, PacingPolicy] | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._concurrency = concurrency
        self._default = default
        self._per_account = dict(per_account or {})
        self._clock = clock
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        self._pacers: dict[str, AccountPacer] = {}
        self._slots: anyio.Semaphore | None = None

    def policy(self, account: str) -> PacingPolicy:
        return self._per_account.get(account, self._default)

    def pacer(self, account: str) -> AccountPacer:
        """The account's pacer, created on first use."""
        pacer = self._pacers.get(account)
        if pacer is None:
            pacer = AccountPacer(
                self.policy(account), clock=self._clock, sleep=self._sleep, rng=self._rng
            )
            self._pacers[account] = pacer
        return pacer

    def gate(self, account: str, kind: RequestKind) -> _Turn:
        """Entered around one HTTP request: waits for the account's turn, takes a global slot,
        stamps the send; the slot is released on exit."""
        return _Turn(self, account, kind)

    def estimate_seconds(self, account: str, reads: int, writes: int) -> float:
        """The time these requests of this account take at its limits (for `plan`)."""
        return self.policy(account).estimate_seconds(reads, writes)

    def _global_slots(self) -> anyio.Semaphore:
        if self._slots is None:
            # Created on first use, inside the run's event loop; FIFO like the account locks.
            self._slots = anyio.Semaphore(self._concurrency, fast_acquire=True)
        return self._slots

    async def _enter(self, account: str, kind: RequestKind) -> _Sent | None:
        # The uncontended path takes locks and slots with acquire_nowait (no trip through the
        # event loop: the caller yields right after, to send); anyio's nowait refuses while
        # others queue, so first come stays first served.
        slots = self._slots if self._slots is not None else self._global_slots()
        if kind == "core":
            try:
                slots.acquire_nowait()
            except anyio.WouldBlock:
                await slots.acquire()
            return None
        pacer = self._pacers.get(account) or self.pacer(account)
        lock = pacer.lock_for(kind)
        try:
            lock.acquire_nowait()
        except anyio.WouldBlock:
            await lock.acquire()
        try:
            while True:
                if not pacer.ready(kind):
                    await pacer.wait_turn(kind)
                try:
                    slots.acquire_nowait()
                except anyio.WouldBlock:
                    await slots.acquire()
                    if not pacer.ready(kind):
                        # A pause or slow-down arrived while we waited for a slot: give it back.
                        slots.release()
                        continue
                break
            # Nothing is awaited from here to the caller's send.
            return pacer.stamp_in_flight(kind)
        finally:
            lock.release()

    def _exit(self, account: str, sent: _Sent | None) -> None:
        assert self._slots is not None  # taken in _enter
        self._slots.release()
        if sent is not None:
            self._pacers[account].answered(sent)


class _Turn:
    """The context manager `Pacing.gate` returns (a class, not a generator: it is on the hot path)."""

    __slots__ = ("_account", "_kind", "_pacing", "_sent")

    def __init__(self, pacing: Pacing, account: str, kind: RequestKind) -> None:
        self._pacing = pacing
        self._account = account
        self._kind = kind
        self._sent: _Sent | None = None

    async def __aenter__(self) -> _Turn:
        self._sent = await self._pacing._enter(self._account, self._kind)
        return self

    def observe(self, status: int, headers: RateLimitHeaders | None) -> None:
        """The answer's rate-limit headers (not used yet: pacing follows the configured limits)."""

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._pacing._exit(self._account, self._sent)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How a failed request is retried (STYLE pattern 6): bounded in attempts and in backoff time.

    `budget` counts backoff only, not time spent waiting for the pacer (at 1 write/min a write may
    wait minutes for its turn); a Retry-After beyond it defers the account rather than sleeping.
    """

    attempts: int = 6  # total attempts per request
    budget: float = 120.0  # seconds of backoff allowed per operation
    initial: float = 0.5  # first backoff
    maximum: float = 30.0  # cap of one backoff
    jitter: float = 0.5  # random extra, fraction of the backoff

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("a retry policy needs at least one attempt")
        if self.budget < 0 or self.initial < 0 or self.jitter < 0 or self.maximum < self.initial:
            raise ValueError("backoff times must be non-negative, with maximum >= initial")

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number `attempt` (1 = the first request):
        initial·2^(attempt-1) plus up to `jitter` of it at random, never above `maximum`."""
        exponent = min(max(attempt, 1) - 1, 64)  # 2**64 · initial is past any cap
        base = min(self.maximum, self.initial * 2.0**exponent)
        return min(self.maximum, base * (1.0 + self.jitter * rng.random()))
