"""What a run can be told and what it answers: settings, the progress seam, the result."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from .. import planner
from ..model import (
    Outcome,
    Plan,
    RateSpec,
)
from ..pacing import DEFAULT_RATE, DEFAULT_WRITE_RATE, RetryPolicy

__all__ = [
    "DEFAULT_LEDGER",
    "EngineConfig",
    "RunObserver",
    "RunResult",
    "SilentObserver",
]

DEFAULT_LEDGER = "bulkgroups-ledger.jsonl"


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineConfig:
    """Everything a run can be told; per-account settings of the job override the rates."""

    concurrency: int = 64
    rate: RateSpec | None = DEFAULT_RATE
    write_rate: RateSpec | None = DEFAULT_WRITE_RATE  # LinkedIn: ~a minute apart
    jitter: float = 0.0
    max_members: int = planner.DEFAULT_MAX_MEMBERS
    max_removals: int = 100  # -1 disables the check
    daily_limit: int | None = None
    verify: bool = True
    verify_delay: float = 1.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    shard: tuple[int, int] | None = None
    # Chats of one account worked on at once: enough to keep the account's pacer busy while a
    # response is on its way, few enough that one account cannot flood the global bound.
    chats_per_account: int = 4
    # Providers hide their limiters behind 429/5xx/timeouts: after this many consecutive failed
    # write attempts of one account, slow it down; after `failure_streak_defer`, defer it.
    failure_streak_slowdown: int = 3
    failure_streak_defer: int = 8
    interrupt_grace: float = 10.0
    seed: int | None = None


class RunObserver(Protocol):
    """What a progress display is told; every method must return at once.

    Phases ("preflight", "read", "apply") overlap: an account may write while another still reads.
    `outcome` advances "apply".
    """

    def phase(self, name: str, total: int) -> None: ...

    def advance(self, name: str, count: int = 1) -> None: ...

    def grow(self, name: str, count: int) -> None: ...

    def outcome(self, outcome: Outcome) -> None: ...


class SilentObserver:
    def phase(self, name: str, total: int) -> None:
        pass

    def grow(self, name: str, count: int) -> None:
        pass

    def advance(self, name: str, count: int = 1) -> None:
        pass

    def outcome(self, outcome: Outcome) -> None:
        pass


@dataclass(frozen=True, slots=True)
class RunResult:
    """What an apply did: the counts of this run's `op` records, and where they are."""

    run_id: str
    counts: Mapping[str, int]
    interrupted: bool
    ledger: str
    plan: Plan

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        if self.counts.get("failed", 0) or self.counts.get("deferred", 0):
            return 3
        return 0
