"""When a run's writes will be done: the pacer's estimate, refined by the rate the run achieves.

Each account's writes are paced on their own, so the run ends when its slowest account does: the
ETA is the latest of the accounts' finishing times. An account's finishing time is the later of

- its pacer's estimate of the work left (`AccountWork.seconds_left`: the wait for the next turn,
  then the backlog at the rate paced now, a 429's pause or a lowered rate included), which is a
  lower bound: no account goes faster than its pacer lets it; and
- the rate it achieved, extrapolated from its last write: writes left × the time each write
  took so far (round trips, verification, retries included), which the pacer leaves out.

So the ETA starts as the pacer's figure, where nothing is known yet, and is lengthened by what
the run shows once that is slower. Both figures are times, not durations: between outcomes the
ETA counts down as the clock moves, rather than standing still.

Outcomes carry no mark of whether a write was sent for them: an account's op records are its
writes plus what was known without sending (skips, refusals), which come first in each chat.
So the writes left are taken as min(writes not yet recorded, op records left): an upper bound,
exact once those known outcomes are recorded, and zero when an account is stopped and its
remaining operations are recorded unsent.

Pure and synchronous: the caller gives the time (`now`), so it is tested with plain numbers.
Not thread-safe: one thread (the event loop's) updates it; a renderer in another thread reads
only `finish`, a float.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Eta"]


@dataclass(slots=True)
class _Account:
    """One account's writes in flight: how many, and what its pacer said they take."""

    operations: int  # op records still to come
    writes_total: int
    writes: int  # writes still to send (an upper bound, see the module docstring)
    reads_total: int
    seconds_left: Callable[[int, int], float]
    started: float
    last_write: float  # when its latest write was recorded (`started` before any was)
    finish: float

    def finish_at(self, now: float) -> float:
        """When this account's writes will be done, seen from `now`."""
        if self.operations <= 0 or self.writes <= 0:
            return now
        reads = math.ceil(self.reads_total * self.writes / self.writes_total)
        least = now + self.seconds_left(reads, self.writes)
        done = self.writes_total - self.writes
        if done <= 0:
            return least
        each = (self.last_write - self.started) / done
        return max(least, self.last_write + each * self.writes)


class Eta:
    """The run's expected finishing time (monotonic seconds), from each account's work."""

    __slots__ = ("_accounts", "_next_refresh", "finish")

    def __init__(self) -> None:
        self._accounts: dict[str, _Account] = {}
        # The latest finishing time of the accounts still writing; None before any is known.
        self.finish: float | None = None
        self._next_refresh = -math.inf

    def planned(
        self,
        account: str,
        *,
        operations: int,
        writes: int,
        reads: int,
        seconds_left: Callable[[int, int], float],
        now: float,
    ) -> None:
        """An account's writes are about to begin: `operations` op records to come, `writes`
        of them sent, `reads` to verify them; `seconds_left` is its pacer's estimate."""
        if operations <= 0:
            return
        state = _Account(
            operations=operations,
            writes_total=writes,
            writes=min(writes, operations),
            reads_total=reads,
            seconds_left=seconds_left,
            started=now,
            last_write=now,
            finish=now,
        )
        state.finish = state.finish_at(now)
        self._accounts[account] = state
        self._later(state.finish)

    def recorded(self, account: str, now: float) -> None:
        """One op record of `account` was written."""
        state = self._accounts.get(account)
        if state is None:
            return
        state.operations -= 1
        if state.operations < state.writes:
            state.writes = state.operations
            state.last_write = now
        if state.operations <= 0:
            del self._accounts[account]
            if not self._accounts:
                self.finish = now
            # Else the latest of the others is found by the next `refresh`: a scan here would
            # cost every account once per account.
            return
        state.finish = state.finish_at(now)
        self._later(state.finish)

    def refresh(self, now: float) -> None:
        """Every account's estimate again (a paused account's too, whose writes are waiting, and
        the latest of them once the latest account is done): call it every second or so. It
        asks each account's pacer, a few microseconds each: with many accounts it does so less
        often (every millisecond per account), to stay well under 1 % of a core."""
        if now < self._next_refresh:
            return
        self._next_refresh = now + max(1.0, 0.001 * len(self._accounts)) - 0.01
        for state in self._accounts.values():
            state.finish = state.finish_at(now)
        if self._accounts:
            self.finish = max(a.finish for a in self._accounts.values())

    def seconds_left(self, now: float) -> float | None:
        """Seconds until the writes known so far are done; None before any account's are."""
        if self.finish is None:
            return None
        return max(0.0, self.finish - now)

    def _later(self, finish: float) -> None:
        if self.finish is None or finish > self.finish:
            self.finish = finish
