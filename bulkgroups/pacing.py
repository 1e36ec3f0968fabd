"""Per-account pacing that never exceeds a limit, by construction; rate control that learns from
the server's answers; and the retry policy.

The safety core. Unipile counts an account's requests in rolling fixed windows (`unipile-v2.md`,
"Rate limits"): a client is safe only if no interval of length T ever holds more than N of its
requests. Every account therefore gets an `AccountPacer` that keeps, per limit, a sliding log of
its last N requests: a request may go once the n-th most recent of them is a full (effective)
period old, where n ≤ N is the count currently paced (below). That is exact — n requests at once,
then the next as soon as the first leaves the window — so a backlog is sent at the full rate
(M requests take ⌊(M-1)/n⌋ effective periods, plus a round trip per window) while no window can
ever hold N + 1. Whatever is learnt only ever lowers n or lengthens the period, so it can never
weaken that guarantee. Writes are logged against both `rate` and `write_rate`.

Decision — no aiolimiter (it was a declared dependency, never imported, and is now removed):
`AsyncLimiter(N, T)` is a leaky bucket that lets N go at once and N more before T has passed
(nearly 2N in one window, which Unipile rejects with 429); `AsyncLimiter(1, T/N)` is safe but
forbids the initial burst of N the limit allows, and its rate is fixed at creation: it can neither
pause (Retry-After, `Remaining: 0`) nor lower its count and recover. The sliding log does all of
that in a few dozen lines, pure, and tested against a fake clock.

Arrival, not send: Unipile counts a request when it arrives, and two requests N apart can take
different times to get there (a busy event loop, a slow proxy). So a request sent through
`Pacing.gate` counts from when its answer came back, an upper bound of its arrival, and while
its answer is outstanding a request that needs it out of the window waits (`Sent`). Safe by
construction whatever the latency; the cost is one round trip per window.

Safety margin: on top of that a period T is paced as T·(1 + margin) + min_margin, by default
T·1.02 + 2 ms, for clock granularity and the server's own scheduling.

What the answers teach (`AccountPacer.observe`, fed by the gate with every answer's status and
`X-RateLimit-*` headers; README "Rate control" says the same for users):

- Advertised limit. `X-RateLimit-Limit: L` caps the window it describes at L requests per its
  *configured* period: the headers carry no window length, and the configured period is the
  user's statement of it. The latest answer wins (a server that raises L back is followed, never
  above the configured N). A read's answer describes the general window (reads count against no
  other); a write's answer describes the tighter of the two windows a write counts against
  (as the simulator sends), so it is taken for the general window when L equals that window's
  known limit, else for the write window.
- `X-RateLimit-Remaining: 0` holds that window until `X-RateLimit-Reset` seconds from the answer,
  unless the account's own log explains it: it holds at least as many of the account's requests
  in the last period as the server counted, and Reset is within the configured period (rounded
  up to whole seconds, as Reset is). Then the log already holds the next request until that
  window has passed, to the millisecond rather than to a Reset rounded up to a whole second.
- Inconsistent headers are not trusted: Remaining above Limit discards the set; a Limit of 0 is
  ignored; a Reset above `max_hold` (e.g. an epoch timestamp) or absent makes the hold one
  configured period instead (1 s for an account without limits). Every hold is bounded.
- A 429 (Retry-After is honoured by the retry loop, `attempts`, as a pause of the whole account):
  * with headers showing room left (Remaining > 0): bad luck, not our pace — the pause only;
  * with headers advertising a Limit (or Remaining 0): calibrated by the headers, as above;
  * without usable headers, judged by the answers of the last period: if the server refused
    while it held h of them (this one included), and no answer it accepted in the last two
    periods had found as many (the account has not shown it can send h), the real limit is
    lower: the window's count is lowered to h − 1 — by at most half per 429, never below
    1/`max_slowdown` of the configured rate (rounded down to whole requests a period).
    Otherwise it was bad luck: the pause only.
- `slow_down()` (the engine's consecutive-failure streak: a limiter hidden behind 5xx) divides
  the rate of the window writes are paced by by `slowdown`, down to 1/`max_slowdown`. Single
  5xx, resets and timeouts slow nothing: they are retried per operation with backoff.
- Recovery in time, not in successes: a lowered window stays at its level for the first half of
  `recovery_windows` clean windows (configured periods without a new lowering), then climbs in
  equal steps, back at the configured rate after `recovery_windows` of them — whatever the
  request rate, an idle account included. A lowering that interrupts a climb (the probe met the
  limit again) holds twice as long next time, at most four times: a real limit below the
  configured one costs a 429 ever more rarely, and any lowering is over within 2.5 ×
  `recovery_windows` windows. Below one request per period, the period lengthens.

Pauses (Retry-After, cross-run pacing from the ledger) hold every rate-limited request of the
account until a monotonic time. Jitter only ever adds delay. Every constraint is a lower bound on
the next send time.

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
    "Sent",
]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

_NEVER = -math.inf  # "nothing holds this request back"

# The contract's defaults: 1/s for every account-scoped request, 1/min for writes.
DEFAULT_RATE = RateSpec(1, 1.0)
DEFAULT_WRITE_RATE = RateSpec(1, 60.0)

# How long `Remaining: 0` holds an account that has no configured limit, without a usable Reset.
_UNCONFIGURED_HOLD = 1.0

# A lowered window holds its level at most 2**_MAX_STRIKES times longer than after a first lowering.
_MAX_STRIKES = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class PacingPolicy:
    """How one account is paced: its limits, jitter, safety margin, and how far and for how long
    what the answers teach may lower them (module docstring)."""

    rate: RateSpec | None = DEFAULT_RATE  # None = unlimited (limits off)
    write_rate: RateSpec | None = DEFAULT_WRITE_RATE  # None = only `rate` applies to writes
    jitter: float = 0.0  # 0..F of the write interval added as random extra delay
    margin: float = 0.02  # relative safety margin on every period
    min_margin: float = 0.002  # absolute seconds added to every period
    slowdown: float = 2.0  # each slow_down() divides the write rate by this
    max_slowdown: float = 16.0  # learning never lowers a rate below 1/max_slowdown of it
    recovery_windows: int = 8  # clean windows after which a lowered rate is configured again
    max_hold: float = 120.0  # the longest X-RateLimit-Reset trusted, in seconds

    def __post_init__(self) -> None:
        if self.jitter < 0 or self.margin < 0 or self.min_margin < 0 or self.max_hold < 0:
            raise ValueError("jitter, margins and max_hold cannot be negative")
        if self.slowdown < 1 or self.max_slowdown < 1:
            raise ValueError("a slow-down factor is at least 1")
        if self.recovery_windows < 0:
            raise ValueError("recovery_windows cannot be negative")

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


class Sent:
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
    """One limit of one account: the sliding log of its last N requests, and what the answers
    taught about it — the advertised limit, a hold until the server's window resets, and a
    lowered share of the configured rate that recovers window by window.

    `count` and `period` are what is paced now (n ≤ N requests per period ≥ the configured one);
    they are recomputed when something is learnt and when the recovery takes its next step
    (`next_change`), so the hot path reads two attributes.
    """

    __slots__ = (
        "advertised",
        "answers",
        "base_count",
        "base_period",
        "count",
        "held_until",
        "log",
        "lowered_at",
        "lowest_share",
        "next_change",
        "period",
        "policy",
        "shown",
        "span",
        "spec",
        "strikes",
    )

    def __init__(self, spec: RateSpec, policy: PacingPolicy) -> None:
        self.spec = spec
        self.policy = policy
        self.base_count = spec.count
        self.base_period = policy.effective_period(spec)
        self.log: deque[Sent] = deque(maxlen=spec.count)
        # The longest period this window can ever pace at (a lowering stops at 1/max_slowdown
        # of the rate): an answered request older than that holds nothing back (`append`).
        self.span = self.base_period * max(1.0, policy.max_slowdown)
        # Answer times within the last period; and (time, answers the window held) of accepted
        # answers, each holding more than every later one: its head is the most the server
        # was shown to accept (a sliding maximum, trimmed to the last two periods when read).
        self.answers: deque[float] = deque()
        self.shown: deque[tuple[float, int]] = deque()
        self.advertised: int | None = None
        self.lowest_share = 1.0  # the share of the configured rate set by the last lowering
        self.lowered_at = _NEVER
        self.strikes = 0  # lowerings in a row that interrupted a climb back
        self.held_until = _NEVER
        self.count = spec.count
        self.period = self.base_period
        self.next_change = math.inf

    # --- what is paced now -------------------------------------------------------------------

    def append(self, sent: Sent, now: float) -> None:
        """Log a request; answered ones older than `span` leave first. Memory, not pacing: a
        slowly paced account kept its last N stamps for ever (100 at 100/s, 2,000 accounts:
        30 MB), though only those within a period can hold a request back."""
        log = self.log
        horizon = now - self.span
        while log and log[0].done and log[0].at < horizon:
            log.popleft()
        log.append(sent)

    def ready_at(self, now: float) -> float:
        """When the next request may go by this window (inf: when an answer comes back)."""
        if now >= self.next_change:
            self._refresh(now)
        log = self.log
        count = self.count
        at = self.held_until
        if len(log) >= count:
            oldest = log[-count]
            if not oldest.done:
                return math.inf
            at = max(at, oldest.at + self.period)
        return at

    def share(self, now: float) -> float:
        """The lowered share of the configured rate at `now`, after recovery (1.0 = none):
        held for the first half of `recovery_windows` clean windows (twice or four times that
        after lowerings that interrupted a recovery), then back in equal steps."""
        low = self.lowest_share
        if low >= 1.0:
            return 1.0
        hold, climb = self._recovery()
        clean = self._clean_windows(now)
        if clean >= hold + climb:
            return 1.0
        if clean <= hold:
            return low
        return low + (1.0 - low) * (clean - hold) / climb

    def _recovery(self) -> tuple[int, int]:
        """Windows held at the lowered level, and windows of the climb back."""
        windows = self.policy.recovery_windows
        return (windows // 2) << self.strikes, windows - windows // 2

    def _clean_windows(self, now: float) -> int:
        # (the epsilon: a window that ends at `now` has ended, whatever the float rounding)
        return math.floor((now - self.lowered_at) / self.base_period + 1e-9)

    def current(self, now: float) -> RateSpec:
        """The limit paced now, in the configured terms (period without the margin)."""
        if now >= self.next_change:
            self._refresh(now)
        return RateSpec(self.count, self.spec.period * self.period / self.base_period)

    def _refresh(self, now: float) -> None:
        share = self.share(now)
        if share >= 1.0:
            self.lowest_share = 1.0
            self.next_change = math.inf
        else:
            step = max(self._clean_windows(now), self._recovery()[0]) + 1
            self.next_change = self.lowered_at + step * self.base_period
        rate = self.base_count * share
        if self.advertised is not None and self.advertised < rate:
            rate = float(self.advertised)
        if rate >= 1.0:
            self.count = min(self.base_count, math.floor(rate + 1e-9))
            self.period = self.base_period
        else:
            self.count = 1
            self.period = self.base_period / rate

    # --- what the answers teach --------------------------------------------------------------

    def advertise(self, limit: int, now: float) -> None:
        """The server says this window allows `limit` per period (the latest answer wins)."""
        self.advertised = limit
        self._refresh(now)

    def hold(self, limit: int | None, reset: float | None, now: float) -> None:
        """`Remaining: 0`: hold until Reset (one period without it), unless the log explains it:
        it holds as many requests in the last period as the server counted (`limit`, else what
        is paced now), and Reset is within the configured period rounded up to whole seconds,
        as Reset is. Then the log holds the next request until the server's window has passed,
        to the millisecond; a longer Reset says the window is longer than configured."""
        used = limit if limit is not None else self.count
        within = reset is None or reset <= math.ceil(self.spec.period)
        if within and self._in_window(now, used) >= used:
            return
        seconds = reset if reset is not None else self.base_period
        self.held_until = max(self.held_until, now + seconds)

    def _in_window(self, now: float, enough: int) -> int:
        """Requests of the log the server may have counted in its window (answered within the
        last period, or still outstanding); stops counting at `enough`."""
        horizon = now - self.base_period
        seen = 0
        for sent in reversed(self.log):
            if not sent.done or sent.at >= horizon:
                seen += 1
                if seen >= enough:
                    break
        return seen

    def lower(self, share: float, now: float) -> None:
        """Pace at most `share` of the configured rate from now on (bounded below), starting
        the recovery afresh; a lowering that interrupts a recovery (the climb met the limit
        again) doubles the windows held next time, up to four times."""
        floor = 1.0 / self.policy.max_slowdown
        current = self.share(now)
        if current >= 1.0:
            self.strikes = 0
        elif current > self.lowest_share:  # it was climbing back
            self.strikes = min(self.strikes + 1, _MAX_STRIKES)
        self.lowest_share = max(floor, min(current, share))
        self.lowered_at = now
        self._refresh(now)

    def heard(self, now: float, *, accepted: bool) -> int:
        """An answer came back now: how many answers the window holds with it (the server
        counts refused requests too). An accepted one shows the server takes that many."""
        answers = self.answers
        answers.append(now)
        horizon = now - self.base_period
        while answers[0] < horizon:
            answers.popleft()
        held = len(answers)
        if accepted:
            shown = self.shown
            while shown and shown[-1][1] <= held:
                shown.pop()
            shown.append((now, held))
        return held

    def refused(self, held: int, now: float) -> None:
        """A 429 without usable headers, with `held` answers in the window (its own included):
        if the server accepted as many within the last two windows, or nothing else was in the
        window (no count below one explains a refusal), it was bad luck; else the real limit is
        below `held`: lower the count to `held - 1`, by at most half at once."""
        shown = self.shown
        horizon = now - 2.0 * self.base_period
        while shown and shown[0][0] < horizon:
            shown.popleft()
        if held <= 1 or (shown and held <= shown[0][1]):
            return
        self.lower(max((held - 1) / self.base_count, self.share(now) / 2.0), now)


class AccountPacer:
    """When the next request of one account may go; owned by one run.

    `earliest`/`stamp` are the pure core (no awaiting, testable with a fake clock); `wait_turn`
    sleeps until the turn comes. Callers queue under `lock_for(kind)` for wait_turn, then check
    `ready` and stamp with nothing awaited in between, as `Pacing.gate` does (with
    `stamp_in_flight`, then `observe` with the answer, and `answered` once it is in).

    Feedback: `observe` (every answer: status and rate-limit headers), `pause_for`/`pause_until`
    (Retry-After, cross-run pacing), `slow_down` (a limiter hidden behind failures).
    """

    __slots__ = (
        "_answered",
        "_clock",
        "_failed_at",
        "_general",
        "_jitter_span",
        "_last_over",
        "_last_write_over",
        "_locks",
        "_paused_until",
        "_rng",
        "_served",
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
        self._general = _Window(policy.rate, policy) if policy.rate else None
        self._writes = _Window(policy.write_rate, policy) if policy.write_rate else self._general
        self._paused_until = _NEVER
        self._jitter_span = policy.jitter * policy.write_interval()
        self._write_extra = self._draw_jitter()
        self._locks: list[anyio.Lock | None] = [None, None]
        self._answered: anyio.Event | None = None
        self._served = [0, 0]  # answers that were not a server failure: reads, writes
        # `_served` at the last failure of a read, of a write: before the server answered any,
        # a failure is no bad luck among successes (it may be an outage from the start).
        self._failed_at = [0, 0]
        # When the last request, and the last write, were over (answered or given up): what a
        # run leaves for the next (`recent_sends`), whose pacers start empty.
        self._last_over = _NEVER
        self._last_write_over = _NEVER

    # --- state -------------------------------------------------------------------------------

    @property
    def paused_until(self) -> float:
        """Monotonic time before which no rate-limited request goes (-inf if never paused)."""
        return self._paused_until

    def served(self, kind: RequestKind) -> int:
        """How many requests of this kind (reads, or writes) the server has answered with
        something other than a 5xx or a 429 so far: the retry loop's evidence that a failure
        was bad luck rather than an outage (`attempts.call_with_retry`)."""
        return self._served[kind == "write"]

    def failed(self, kind: RequestKind) -> bool:
        """Note that a request of this kind failed (a 5xx, a reset, a timeout). True when the
        server has answered the account's requests of that kind since its previous such failure:
        bad luck among successes rather than an outage, and a retry backing off from it may let
        another chat of the account go meanwhile (`engine.workers`). The first failure of an
        outage that begins mid-run looks the same; the ones after it do not, and nor does a
        failure before the account was ever answered."""
        i = kind == "write"
        isolated = self._served[i] != self._failed_at[i]
        self._failed_at[i] = self._served[i]
        return isolated

    def current_rate(self, kind: RequestKind) -> RateSpec | None:
        """The limit requests of this kind are paced at now, in configured terms (no margin):
        the general one for reads, the one writes are paced by for writes (the write limit, or
        the general one without it); None when unlimited. Below the configured rate while
        headers advertise less or a lowering has not yet recovered."""
        window = self._writes if kind == "write" else self._general if kind == "read" else None
        return window.current(self._clock()) if window is not None else None

    def seconds_left(self, reads: int, writes: int) -> float:
        """How long these requests of the account take from now: the wait for the next one's
        turn, then the backlog at the rates paced now (what the answers taught and any pause
        included, the mean jitter counted). What a progress display's ETA starts from; a lower
        bound, as `PacingPolicy.estimate_seconds` is."""
        if reads <= 0 and writes <= 0:
            return 0.0
        now = self._clock()
        turn = self._earliest("write" if writes > 0 else "read", now)
        wait = turn - now if now < turn < math.inf else 0.0
        paced = replace(
            self.policy,
            rate=self.current_rate("read"),
            write_rate=self.current_rate("write") if self.policy.write_rate else None,
        )
        return wait + paced.estimate_seconds(reads, writes)

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
        return self._earliest(kind, self._clock())

    def ready(self, kind: RequestKind) -> bool:
        """Whether a request of this kind may be sent now."""
        now = self._clock()
        return self._earliest(kind, now) <= now

    def _earliest(self, kind: RequestKind, now: float) -> float:
        if kind == "core":
            return _NEVER  # the core account GET is not limited by Unipile
        at = self._general.ready_at(now) if self._general is not None else _NEVER
        if kind == "write" and self._writes is not None:
            at = max(at, self._writes.ready_at(now))
            if at != _NEVER:
                at += self._write_extra
        return max(at, self._paused_until)

    def stamp(self, kind: RequestKind) -> None:
        """Record that a request of this kind is being sent now (counted from its send time)."""
        self._log(kind, done=True)

    def stamp_in_flight(self, kind: RequestKind) -> Sent | None:
        """Record a request being sent now whose answer is awaited; pass the result to
        `observe` with its answer and to `answered` once the answer (or the failure) is in."""
        return self._log(kind, done=False)

    def answered(self, sent: Sent | None, kind: RequestKind) -> None:
        """The answer to a request came back (or the request was given up): count it from now
        (see `Sent`)."""
        if sent is None:
            return
        now = self._clock()
        self._over(now, kind)
        if not sent.done:
            self._answered_at(sent, now)

    def _over(self, now: float, kind: RequestKind) -> None:
        """A request of `kind` is over at `now`: what `seconds_since_last` measures from."""
        self._last_over = now
        if kind == "write":
            self._last_write_over = now

    def seconds_since_last(self) -> tuple[float, float]:
        """Seconds since the last request, and since the last write, were over (inf: never)."""
        now = self._clock()
        return now - self._last_over, now - self._last_write_over

    def _answered_at(self, sent: Sent | None, now: float) -> None:
        if sent is None or sent.done:
            return
        sent.at = max(sent.at, now)
        sent.done = True
        if self._answered is not None:
            self._answered.set()
            self._answered = None

    def _log(self, kind: RequestKind, *, done: bool) -> Sent | None:
        if kind == "core" or (self._general is None and self._writes is None):
            return None
        now = self._clock()
        sent = Sent(now, done=done)
        if done:
            self._over(now, kind)
        if self._general is not None:
            self._general.append(sent, now)
        if kind == "write":
            if self._writes is not None and self._writes is not self._general:
                self._writes.append(sent, now)
            self._write_extra = self._draw_jitter()
        return sent

    async def wait_turn(self, kind: RequestKind) -> None:
        """Sleep until this kind's turn; re-checks after every sleep, since a pause, a hold or a
        lowered limit may arrive meanwhile (and a recovery step may bring the turn closer)."""
        while True:
            at = self.earliest(kind)
            if at == math.inf:
                # Waiting for an answer to leave the window: woken by `answered`.
                if self._answered is None:
                    self._answered = anyio.Event()
                await self._answered.wait()
                continue
            now = self._clock()
            delay = at - now
            if delay <= 0.0:
                return
            await self._sleep(min(delay, self._next_change(kind) - now))

    def _next_change(self, kind: RequestKind) -> float:
        windows = (self._general, self._writes) if kind == "write" else (self._general,)
        return min((w.next_change for w in windows if w is not None), default=math.inf)

    # --- feedback ----------------------------------------------------------------------------

    def observe(
        self,
        kind: RequestKind,
        sent: Sent | None,
        status: int,
        headers: RateLimitHeaders | None,
    ) -> None:
        """One answer of a request of this kind (as `stamp_in_flight` returned it): its status
        and X-RateLimit-* headers. Learns what the module docstring describes; the pause a 429's
        Retry-After asks for is the caller's (`pause_for`), as it is in the error."""
        if kind == "core":
            return
        now = self._clock()
        self._answered_at(sent, now)
        accepted = status != 429
        if accepted and status < 500:
            self._served[kind == "write"] += 1
        general = self._general
        writes = self._writes if kind == "write" and self._writes is not general else None
        held = general.heard(now, accepted=accepted) if general is not None else 0
        held_writes = writes.heard(now, accepted=accepted) if writes is not None else 0
        if headers is not None and self._learn(kind, headers, now):
            return  # a 429 included: room left was bad luck, none is calibrated by the headers
        if not accepted:
            if general is not None:
                general.refused(held, now)
            if writes is not None:
                writes.refused(held_writes, now)

    def _learn(self, kind: RequestKind, headers: RateLimitHeaders, now: float) -> bool:
        """Calibrate from X-RateLimit-* headers; False when they say nothing that is trusted:
        neither Limit nor Remaining, or Remaining above Limit (a Limit of 0 would pace at
        nothing: ignored; a Reset beyond `max_hold`, an epoch timestamp perhaps: as absent)."""
        limit = headers.limit
        if limit is not None and limit < 1:
            limit = None
        remaining = headers.remaining
        if remaining is None:
            if limit is None:
                return False
        elif limit is not None and remaining > limit:
            return False
        window = self._described(kind, limit)
        if window is not None and limit is not None and limit != window.advertised:
            window.advertise(limit, now)
        if remaining == 0:
            reset = headers.reset
            if reset is not None and not 0.0 <= reset <= self.policy.max_hold:
                reset = None
            if window is not None:
                window.hold(limit, reset, now)
            else:
                self.pause_until(now + (reset if reset is not None else _UNCONFIGURED_HOLD))
        return True

    def _described(self, kind: RequestKind, limit: int | None) -> _Window | None:
        """The window an answer's headers describe: the general one for a read; for a write the
        tighter of the two — taken as the general one when its limit is that window's."""
        general, writes = self._general, self._writes
        if kind != "write" or writes is general:
            return general
        if general is None or limit is None:
            return writes
        known = general.advertised if general.advertised is not None else general.base_count
        return general if limit == known else writes

    def pause_until(self, when: float) -> None:
        """Hold the account until monotonic time `when`; never shortens an existing pause."""
        if when > self._paused_until:
            self._paused_until = when

    def pause_for(self, seconds: float) -> None:
        """Hold the account for `seconds` from now (e.g. a 429's Retry-After)."""
        self.pause_until(self._clock() + seconds)

    def retire(self) -> None:
        """The account's work in this run is done: let its logs go (the last window of stamps of
        every account, 25 MB for 2,000 accounts at 100/s), keeping only a pause until the last
        request's window has passed — never earlier than the log would allow, so a request sent
        after all still waits its turn. A pacer with a request in flight keeps its logs."""
        windows = [w for w in (self._general, self._writes) if w is not None]
        if any(not sent.done for window in windows for sent in window.log):
            return
        for window in windows:
            if window.log:
                self.pause_until(max(sent.at for sent in window.log) + window.period)
                window.log.clear()
            window.answers.clear()

    def slow_down(self) -> None:
        """A limiter hides behind failures (the engine's consecutive-failure streak): divide the
        rate writes are paced by by the policy's `slowdown`, down to 1/`max_slowdown`; it
        recovers in `recovery_windows` clean windows."""
        window = self._writes
        if window is not None:
            now = self._clock()
            window.lower(window.share(now) / self.policy.slowdown, now)

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
        stamps the send; learns from the answer (`observe`); the slot is released on exit.

        A caller that wraps the turn in one of its own (the engine's `RunTurn`) calls `enter`,
        `observe_answer` and `leave` itself instead: one object per request, not two."""
        return _Turn(self, account, kind)

    def estimate_seconds(self, account: str, reads: int, writes: int) -> float:
        """The time these requests of this account take at its limits (for `plan`)."""
        return self.policy(account).estimate_seconds(reads, writes)

    def _global_slots(self) -> anyio.Semaphore:
        if self._slots is None:
            # Created on first use, inside the run's event loop; FIFO like the account locks.
            self._slots = anyio.Semaphore(self._concurrency, fast_acquire=True)
        return self._slots

    async def enter(self, account: str, kind: RequestKind) -> Sent | None:
        """A request's turn: wait for the account's turn, take a global slot, stamp the send.
        Pass what it returns to `observe_answer` and `leave`; `leave` must follow, once."""
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

    def observe_answer(
        self,
        account: str,
        kind: RequestKind,
        sent: Sent | None,
        status: int,
        headers: RateLimitHeaders | None,
    ) -> None:
        """The answer to an entered request: what the account's pacer learns from."""
        if kind != "core":
            self._pacers[account].observe(kind, sent, status, headers)

    def leave(self, account: str, sent: Sent | None, kind: RequestKind) -> None:
        """The request is over (answered or failed): its slot is released."""
        assert self._slots is not None  # taken in enter
        self._slots.release()
        if sent is not None:
            self._pacers[account].answered(sent, kind)

    def seconds_since_last(self) -> dict[str, tuple[float, float]]:
        """Per account paced so far: seconds since its last request, and since its last write,
        were over (inf: never)."""
        return {account: pacer.seconds_since_last() for account, pacer in self._pacers.items()}


class _Turn:
    """The context manager `Pacing.gate` returns (a class, not a generator: it is on the hot path)."""

    __slots__ = ("_account", "_kind", "_pacing", "_sent")

    def __init__(self, pacing: Pacing, account: str, kind: RequestKind) -> None:
        self._pacing = pacing
        self._account = account
        self._kind = kind
        self._sent: Sent | None = None

    async def __aenter__(self) -> _Turn:
        self._sent = await self._pacing.enter(self._account, self._kind)
        return self

    def observe(self, status: int, headers: RateLimitHeaders | None) -> None:
        """The answer's status and rate-limit headers: what the account's pacer learns from."""
        self._pacing.observe_answer(self._account, self._kind, self._sent, status, headers)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._pacing.leave(self._account, self._sent, self._kind)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How a failed request is retried (STYLE pattern 6): bounded in attempts and in backoff time.

    `attempts` bounds the failures of one request; Unipile's 429s ("not now") are not among them
    but have an allowance of as many again, so a request is sent at most `2 * attempts - 1` times.
    `budget` bounds the backoff of one request, not time spent waiting for the pacer (at 1
    write/min a write may wait minutes for its turn); the 429 pauses of one request have a budget
    of the same size, and going beyond it (or the allowance) defers the account rather than
    sleeping (`attempts`).

    Backoff starts small and grows fast: 0.1, 0.3, 0.9, 2.7, 8.1 s (plus up to half again of
    jitter). An isolated 5xx or reset — most of them — costs its operation a tenth of a second
    (the first backoff was 0.5 s doubling, which made a few faults on a chat's chain of requests
    cost seconds: issue #12), while the five backoffs of the six attempts still span some 12 to
    18 s of a longer outage, as 0.5 s doubling did. The retry cannot hurt the server's limits:
    it waits for its turn in the account's pacer like any request.

    A failure to connect at all (`errors.Unreachable`: refused, no such host, TLS) is tried at
    most `unreachable_attempts` times in a row: nothing was sent, and an API that cannot be
    reached now will not be reached within the backoff of a 5xx outage — a run against a wrong
    or dead base URL must say so in seconds, not after 12 to 18 s of silence per request.
    """

    attempts: int = 6  # attempts per request that failed (a 429 has an allowance of its own)
    unreachable_attempts: int = 3  # consecutive failures to connect before giving up
    budget: float = 120.0  # seconds of backoff allowed per operation
    initial: float = 0.1  # first backoff
    multiplier: float = 3.0  # each backoff is this many times the one before
    maximum: float = 30.0  # cap of one backoff
    jitter: float = 0.5  # random extra, fraction of the backoff

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.unreachable_attempts < 1:
            raise ValueError("a retry policy needs at least one attempt")
        if self.budget < 0 or self.initial < 0 or self.jitter < 0 or self.maximum < self.initial:
            raise ValueError("backoff times must be non-negative, with maximum >= initial")
        if self.multiplier < 1:
            raise ValueError("a backoff multiplier is at least 1")

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number `attempt` (1 = the first request):
        initial·multiplier^(attempt-1) plus up to `jitter` of it at random, never above
        `maximum`."""
        exponent = max(attempt, 1) - 1
        try:
            base = min(self.maximum, self.initial * self.multiplier**exponent)
        except OverflowError:  # far past any cap
            base = self.maximum
        return min(self.maximum, base * (1.0 + self.jitter * rng.random()))
