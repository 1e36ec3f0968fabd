"""What a run can be told and what it answers: settings, the progress seam, the result."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ..errors import UsageError
from ..model import DEFAULT_MAX_MEMBERS, Outcome, Plan, RateSpec
from ..pacing import DEFAULT_RATE, DEFAULT_WRITE_RATE, RetryPolicy

__all__ = [
    "DEFAULT_LEDGER",
    "EngineConfig",
    "RunObserver",
    "RunResult",
    "SilentObserver",
]

DEFAULT_LEDGER = "bulkgroups-ledger.jsonl"


def _whole(name: str, value: object, *, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise UsageError(f"EngineConfig.{name} must be a whole number >= {minimum}, got {value!r}")


def _seconds(name: str, value: object, *, maximum: float = math.inf) -> None:
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not 0 <= value <= maximum
        or math.isnan(value)
    ):
        raise UsageError(f"EngineConfig.{name} must be a number from 0 to {maximum}, got {value!r}")


def _percent(name: str, value: object) -> None:
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or math.isnan(value)
        or not 0 < value <= 100
    ):
        raise UsageError(
            f"EngineConfig.{name} must be a number above 0 and at most 100, got {value!r}"
        )


def _ids(name: str, value: object) -> None:
    if not isinstance(value, tuple) or not all(isinstance(v, str) and v for v in value):
        raise UsageError(f"EngineConfig.{name} must be a tuple of non-empty ids, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineConfig:
    """Everything a run can be told; per-account settings of the job override the rates.

    Every field is checked when the config is made (`UsageError` naming the field): a bad value
    fails here, not deep inside a run.
    """

    concurrency: int = 64
    rate: RateSpec | None = DEFAULT_RATE
    write_rate: RateSpec | None = DEFAULT_WRITE_RATE  # LinkedIn: ~a minute apart
    jitter: float = 0.0
    max_members: int = DEFAULT_MAX_MEMBERS
    max_removals: int | None = 100  # None: no limit (the CLI's -1)
    # None: off. Else a desired-state chat may lose at most this % of its members (owner excluded).
    max_removal_percent: float | None = None
    daily_limit: int | None = None
    verify: bool = True
    verify_delay: float = 1.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    shard: tuple[int, int] | None = None
    # `--only-account` / `--only-chat` (empty: every account / chat); see `selection`.
    only_accounts: tuple[str, ...] = ()
    only_chats: tuple[str, ...] = ()
    # Chats of one account worked on at once: enough to keep the account's pacer busy while a
    # response is on its way, few enough that one account cannot flood the global bound.
    chats_per_account: int = 4
    # Providers hide their limiters behind 429/5xx/timeouts: after this many consecutive failed
    # write attempts of one account, slow it down; after `failure_streak_defer`, defer it.
    failure_streak_slowdown: int = 3
    failure_streak_defer: int = 8
    interrupt_grace: float = 10.0
    seed: int | None = None

    def __post_init__(self) -> None:
        _whole("concurrency", self.concurrency, minimum=1)
        for name, spec in (("rate", self.rate), ("write_rate", self.write_rate)):
            if spec is not None and not isinstance(spec, RateSpec):
                raise UsageError(f"EngineConfig.{name} must be a RateSpec or None, got {spec!r}")
        _seconds("jitter", self.jitter, maximum=10.0)
        _whole("max_members", self.max_members, minimum=1)
        if self.max_removals is not None:
            _whole("max_removals", self.max_removals, minimum=0)
        if self.max_removal_percent is not None:
            _percent("max_removal_percent", self.max_removal_percent)
        if self.daily_limit is not None:
            _whole("daily_limit", self.daily_limit, minimum=0)
        if not isinstance(self.verify, bool):
            raise UsageError(f"EngineConfig.verify must be True or False, got {self.verify!r}")
        _seconds("verify_delay", self.verify_delay, maximum=3600.0)
        if not isinstance(self.retry, RetryPolicy):
            raise UsageError(f"EngineConfig.retry must be a RetryPolicy, got {self.retry!r}")
        if self.shard is not None:
            self._check_shard(self.shard)
        _ids("only_accounts", self.only_accounts)
        _ids("only_chats", self.only_chats)
        _whole("chats_per_account", self.chats_per_account, minimum=1)
        _whole("failure_streak_slowdown", self.failure_streak_slowdown, minimum=1)
        _whole("failure_streak_defer", self.failure_streak_defer, minimum=1)
        _seconds("interrupt_grace", self.interrupt_grace, maximum=3600.0)
        if self.seed is not None:
            _whole("seed", self.seed, minimum=-(2**63))

    @staticmethod
    def _check_shard(shard: object) -> None:
        valid = (
            isinstance(shard, tuple)
            and len(shard) == 2
            and all(isinstance(n, int) and not isinstance(n, bool) for n in shard)
            and 0 <= shard[0] < shard[1]
        )
        if not valid:
            raise UsageError(f"EngineConfig.shard must be (I, N) with 0 <= I < N, got {shard!r}")


class RunObserver(Protocol):
    """What a progress display is told; every method must return at once.

    Phases ("preflight", "read", "apply") overlap: an account may write while another still reads.
    `outcome` is called for each `op` record as it is written (operations, not chats: it
    advances "apply"); `amended` when verification turned an applied outcome into `after`.
    """

    def phase(self, name: str, total: int) -> None: ...

    def advance(self, name: str, count: int = 1) -> None: ...

    def grow(self, name: str, count: int) -> None: ...

    def outcome(self, outcome: Outcome) -> None: ...

    def amended(self, before: Outcome, after: Outcome) -> None: ...


class SilentObserver:
    def phase(self, name: str, total: int) -> None:
        pass

    def grow(self, name: str, count: int) -> None:
        pass

    def advance(self, name: str, count: int = 1) -> None:
        pass

    def outcome(self, outcome: Outcome) -> None:
        pass

    def amended(self, before: Outcome, after: Outcome) -> None:
        pass


@dataclass(frozen=True, slots=True)
class RunResult:
    """What an apply did: the counts of this run's `op` records (as amended), and where they are.

    A run whose ledger failed does not return: it raises `LedgerUnwritable` (exit 4).
    """

    run_id: str
    counts: Mapping[str, int]
    interrupted: bool
    ledger: str
    plan: Plan

    @property
    def exit_code(self) -> int:
        """CONTRACT.md's exit code of this run: 130 interrupted, 3 some operation failed or
        deferred, else 0 (1 and 4 are raised as errors before or instead of a result)."""
        if self.interrupted:
            return 130
        if self.counts.get("failed", 0) or self.counts.get("deferred", 0):
            return 3
        return 0
