"""One account within a run: what its lookup said, why it stopped, its run of failing writes."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ApiError, RateLimited
from ..model import AccountInfo, ErrorInfo, Operation, Outcome, Reason, Status
from ..pacing import AccountPacer
from .stops import RunStops

__all__ = ["Account", "AccountStop"]


@dataclass(frozen=True, slots=True)
class AccountStop:
    """Why an account sends nothing more; its remaining operations get this outcome."""

    status: Status
    reason: Reason
    error: ErrorInfo | None = None


class Account:
    """An account's state in one run; its methods are what the retry loop and the writes ask.

    An account-wide stop sends nothing more for this account and never touches another; the run's
    refused API key stops every account.
    """

    __slots__ = (
        "_defer_after",
        "_pacer",
        "_slowdown_every",
        "_stops",
        "account",
        "failure_streak",
        "info",
        "stop",
        "unexplained_streak",
    )

    def __init__(
        self,
        account: str,
        *,
        pacer: AccountPacer,
        stops: RunStops,
        slowdown_every: int,
        defer_after: int,
    ) -> None:
        self.account = account
        self.info: AccountInfo | None = None
        self.stop: AccountStop | None = None
        self.failure_streak = 0
        self.unexplained_streak = 0
        self._pacer = pacer
        self._stops = stops
        self._slowdown_every = slowdown_every
        self._defer_after = defer_after

    @property
    def owner(self) -> str | None:
        """The account owner's user id, once the lookup said it."""
        return self.info.owner_id if self.info is not None else None

    def stop_with(self, stop: AccountStop) -> None:
        """Stop the account; the first reason given is the one its operations get."""
        if self.stop is None:
            self.stop = stop

    def halted(self) -> bool:
        """Whether nothing more may be sent for this account (asked before every attempt)."""
        return self.stop is not None or self._stops.key_refused is not None

    def current_stop(self) -> AccountStop:
        """Why the account sends nothing more: its own stop, or the run's refused API key."""
        if self.stop is not None:
            return self.stop
        refused = self._stops.key_refused
        return AccountStop("failed", "account_auth", refused.info if refused else None)

    def stopped_outcome(self, operation: Operation, attempts: int = 0) -> Outcome:
        why = self.current_stop()
        return Outcome(operation, why.status, why.reason, attempts, why.error)

    def write_failed(self, error: ApiError) -> None:
        """A write attempt failed with a 429, a 5xx or an unknown outcome: providers hide their
        limiters behind those, so a run of them slows the account down, then defers it.

        Unipile's own 429 (`RateLimited`) counts towards the deferral but not the slow-down: its
        Retry-After already paused the account, and the pacer judged from its headers whether
        the limit is lower (README "Rate control": room left is bad luck, no lasting slow-down).
        Two such 429s and a 500 answered side by side used to halve the write rate for 8 windows."""
        self.failure_streak += 1
        if not isinstance(error, RateLimited):
            self.unexplained_streak += 1
            if self.unexplained_streak % self._slowdown_every == 0:
                self._pacer.slow_down()
        if self.failure_streak >= self._defer_after:
            self.stop_with(AccountStop("deferred", "provider_rate_limited", error.info))

    def write_succeeded(self) -> None:
        self.failure_streak = self.unexplained_streak = 0
