"""`apply --every DURATION [--max-runs N]`: a job kept reconciled where there is no cron.

A pass is one run of the job (a `run` record in the ledger, through to its `end`); the next
starts DURATION after the previous one ended, plus a random 0 to 10 % of DURATION, so that
schedulers started together drift apart and the API does not see a machine's regular beat
(like `--jitter`, it only ever adds delay). Decisions, also in the README's "Scheduling":

- The ledger's lock is held from the first pass to the end, sleeps included: a second scheduler
  (or a one-off `apply`) on the same ledger is refused at once, naming the holder, rather than
  slipping its runs in between.
- The job files are read again at every pass: an edited job (a ConfigMap) counts from the next.
- `--resume` continues an interrupted run in the first pass only; every later pass is a new run
  (which decides earlier runs' pending writes from its reads anyway).
- A pass ending in exit 0 or 3 (some operations failed or were deferred: the next pass retries
  them) is followed by the next; a refusal (1: a bad job file, the owner rule, --max-removals, a
  refused key) or an unwritable ledger (4) ends the loop with that code: a person is needed.
- SIGINT or SIGTERM while sleeping exits 0 at once; during a pass it stops the run as without
  `--every` (exit 130, `--resume` continues). Otherwise the exit code is the last pass's.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from .durations import compact_duration

__all__ = ["JITTER_SHARE", "Schedule", "pass_line"]

# The most added at random to each sleep, as a share of DURATION.
JITTER_SHARE: Final = 0.1


@dataclass(frozen=True, slots=True)
class Schedule:
    """How often passes run (`every`, seconds) and how many at most (`max_runs`, None: no end)."""

    every: float
    max_runs: int | None = None

    def __post_init__(self) -> None:
        if not self.every > 0:
            raise ValueError(f"--every must be more than 0 seconds, got {self.every!r}")
        if self.max_runs is not None and self.max_runs < 1:
            raise ValueError(f"--max-runs must be at least 1, got {self.max_runs!r}")

    def pause(self, rng: random.Random) -> float:
        """Seconds to sleep after a pass: `every`, plus up to `JITTER_SHARE` of it."""
        return self.every * (1.0 + rng.uniform(0.0, JITTER_SHARE))

    def last(self, passes: int) -> bool:
        """Whether `passes` passes are all that `--max-runs` allows."""
        return self.max_runs is not None and passes >= self.max_runs


def pass_line(
    number: int,
    counts: Mapping[str, int],
    seconds: float,
    *,
    run_id: str,
    after: str,
) -> str:
    """`pass 3: 4 applied, 0 skipped, 0 deferred, 0 failed in 12s; next in about 15m` with the
    run's id after the number, so that the ledger's records of the pass can be found."""
    counted = ", ".join(f"{n} {status}" for status, n in counts.items())
    return f"pass {number} (run {run_id}): {counted} in {compact_duration(seconds)}; {after}"
