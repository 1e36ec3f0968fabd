"""Unipile's per-account limits, and an independent strict count of every breach of them.

Two views of the same rate N/T:

- `FixedWindow` is what Unipile enforces: a window opens at the first request when none is open,
  every request until it expires counts (rejected ones too), and the (N+1)-th gets a 429. It is
  lenient towards bursts that straddle two windows.
- `StrictCounter` is what a careful client promises: no interval of length T ever holds more than
  N requests. A request is a violation when the previous N requests of the account all arrived
  less than T before it. Every arrival counts, 429s included: they are requests the client sent.

Engine tests assert that the strict count is zero; the window is what the client is answered.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from bulkgroups.model import RateSpec

__all__ = ["AccountLimits", "FixedWindow", "StrictCounter", "Verdict", "WindowState"]


@dataclass(frozen=True, slots=True)
class WindowState:
    """A window as the `x-ratelimit-*` headers describe it after a request."""

    limit: int
    remaining: int
    reset: float  # seconds until the window ends (0 when none is open)
    exceeded: bool

    def headers(self) -> tuple[tuple[str, str], ...]:
        """Integer seconds, rounded up, so a client that waits them is never early."""
        return (
            ("x-ratelimit-limit", str(self.limit)),
            ("x-ratelimit-remaining", str(self.remaining)),
            ("x-ratelimit-reset", str(math.ceil(self.reset))),
        )

    @property
    def retry_after(self) -> str:
        """RFC 9110 delay-seconds: whole seconds until the window ends, at least 1."""
        return str(max(1, math.ceil(self.reset)))


@dataclass(slots=True)
class FixedWindow:
    rate: RateSpec
    opened_at: float | None = None
    count: int = 0

    def _roll(self, now: float) -> None:
        if self.opened_at is not None and now >= self.opened_at + self.rate.period:
            self.opened_at = None
            self.count = 0

    def hit(self, now: float) -> WindowState:
        """Count one request at `now`."""
        self._roll(now)
        if self.opened_at is None:
            self.opened_at = now
        self.count += 1
        return self._state(now)

    def peek(self, now: float) -> WindowState:
        """The state without counting (for answers that do not count, like cache hits)."""
        self._roll(now)
        return self._state(now)

    def _state(self, now: float) -> WindowState:
        reset = 0.0 if self.opened_at is None else self.opened_at + self.rate.period - now
        return WindowState(
            limit=self.rate.count,
            remaining=max(0, self.rate.count - self.count),
            reset=max(0.0, reset),
            exceeded=self.count > self.rate.count,
        )


@dataclass(slots=True)
class StrictCounter:
    rate: RateSpec
    recent: deque[float] = field(init=False)
    violations: int = 0

    def __post_init__(self) -> None:
        self.recent = deque(maxlen=self.rate.count)

    def arrive(self, now: float) -> bool:
        """Record an arrival; True when it breaks the rate (N earlier ones within T)."""
        violation = len(self.recent) == self.rate.count and now - self.recent[0] < self.rate.period
        if violation:
            self.violations += 1
        self.recent.append(now)
        return violation


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the limits say about one request."""

    state: WindowState  # the tightest window that applies (the one that rejected, if any)
    general_violation: bool = False
    write_violation: bool = False

    @property
    def violation(self) -> bool:
        return self.general_violation or self.write_violation


class AccountLimits:
    """The general limit on every account-scoped request, plus an optional write limit."""

    def __init__(self, rate: RateSpec, write_rate: RateSpec | None) -> None:
        self.rate = rate
        self.write_rate = write_rate
        self.window = FixedWindow(rate)
        self.strict = StrictCounter(rate)
        self.write_window = FixedWindow(write_rate) if write_rate else None
        self.write_strict = StrictCounter(write_rate) if write_rate else None
        self.provider_writes = 0

    def arrive(self, now: float, *, is_write: bool) -> Verdict:
        """Count a request in every window and counter that applies to it."""
        general_violation = self.strict.arrive(now)
        write_violation = False
        state = self.window.hit(now)
        if is_write and self.write_window is not None and self.write_strict is not None:
            write_violation = self.write_strict.arrive(now)
            state = _tighter(state, self.write_window.hit(now))
        return Verdict(state, general_violation, write_violation)

    def peek(self, now: float, *, is_write: bool) -> WindowState:
        state = self.window.peek(now)
        if is_write and self.write_window is not None:
            state = _tighter(state, self.write_window.peek(now))
        return state


def _tighter(a: WindowState, b: WindowState) -> WindowState:
    """The window that rejects, else the one with fewer requests left."""
    if a.exceeded != b.exceeded:
        return a if a.exceeded else b
    if a.exceeded:
        return a if a.reset >= b.reset else b
    return a if a.remaining <= b.remaining else b
