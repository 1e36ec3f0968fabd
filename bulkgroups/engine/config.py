"""What a run can be told and what it answers: settings, the progress seam, the result."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ..errors import UsageError
from ..model import DEFAULT_MAX_MEMBERS, Outcome, Plan, RateSpec
from ..pacing import DEFAULT_RATE, DEFAULT_WRITE_RATE, RetryPolicy
from ..recent_sends import RecentSends

__all__ = [
    "DEFAULT_LEDGER",
    "DEFAULT_RESOLVE_MAX_AGE",
    "AccountWork",
    "EngineConfig",
    "RunObserver",
    "RunResult",
    "SilentObserver",
    "WorkObserver",
]

DEFAULT_LEDGER = "bulkgroups-ledger.jsonl"
DEFAULT_RESOLVE_MAX_AGE = 30 * 86400.0  # 30 days


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
    # response is on its way (at 1/s and Unipile's sub-second latency, 2 are), few enough that
    # one account cannot flood the global bound. Each chat waiting its turn holds its request's
    # coroutines (~10 KB): 4 per account cost a 2,000-account run ~60 MB more than 2.
    chats_per_account: int = 2
    # Providers hide their limiters behind 429/5xx/timeouts: after this many consecutive failed
    # write attempts of one account, slow it down; after `failure_streak_defer`, defer it.
    failure_streak_slowdown: int = 3
    failure_streak_defer: int = 8
    interrupt_grace: float = 10.0
    seed: int | None = None
    # A profile's resolution (its provider id) found in the ledger is reused while younger than
    # this, then looked up again: people rarely change their profile address, but they can.
    resolve_max_age: float = DEFAULT_RESOLVE_MAX_AGE
    # Where runs on this machine leave when they last sent to each account, so that a run waits
    # only what the limits need after `plan` or another run (`recent_sends`; the CLI gives the
    # user's state directory). None: an apply waits one rate window per account before its first
    # request, blind; a plan or an export waits for nothing.
    recent_sends: RecentSends | None = None

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
        _seconds("resolve_max_age", self.resolve_max_age)
        if self.recent_sends is not None and not isinstance(self.recent_sends, RecentSends):
            raise UsageError(
                f"EngineConfig.recent_sends must be a RecentSends or None, got {self.recent_sends!r}"
            )

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
    advances "apply", whose total grows by each account's operations as its writes begin; on
    `--resume` only what is left); `amended` when verification turned an applied outcome into
    `after`. An observer that is also a `WorkObserver` is told each account's `AccountWork`.
    """

    def phase(self, name: str, total: int) -> None: ...

    def advance(self, name: str, count: int = 1) -> None: ...

    def grow(self, name: str, count: int) -> None: ...

    def outcome(self, outcome: Outcome) -> None: ...

    def amended(self, before: Outcome, after: Outcome) -> None: ...


@dataclass(frozen=True, slots=True)
class AccountWork:
    """One account's part of the apply phase, told as its writes are about to begin.

    `operations` op records are to come for the account in this run (on `--resume`, only what is
    left); `writes` of them are write requests still to send (the rest are known without sending)
    and `reads` the reads that verify them. `seconds_left(reads, writes)` is the account's pacer's
    estimate of how long that many requests take from the moment it is asked, at the rates it
    paces at that moment (lowered by what the answers taught, after any pause): a lower bound
    an ETA starts from, and lengthens where the run proves slower.
    """

    account: str
    operations: int
    writes: int
    reads: int
    seconds_left: Callable[[int, int], float]


@runtime_checkable
class WorkObserver(Protocol):
    """What an observer that forecasts (a progress display with an ETA) may also be told: each
    account's work once its plan is known. Optional: a `RunObserver` without `planned` is told
    nothing more than before."""

    def planned(self, work: AccountWork) -> None: ...


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
