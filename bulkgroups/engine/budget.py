"""`daily_limit`: how many write requests each account may still send today (UTC).

The budget starts from the limit minus the write attempts the ledger shows for today (its
`intent` records: every attempt that may have reached the server, killed runs included), so a
crash-looping cron job never sends more than the limit in a day.

A chat *claims* the writes it plans before its first one goes: chats of one account start side by
side, and a chat the budget cannot finish today is not started at all (its operations are deferred
`daily_limit`; a later day finishes it whole), unless it needs more writes than the whole daily
limit: no day could finish it, so it claims what is left of today and goes that far (the rest is
deferred, and later days continue it). Each attempt, retries included, *spends* one unit just
before its intent is written: from its chat's claim, else from what no chat has claimed; with
neither, the attempt is not sent and its operation is deferred `daily_limit` — the engine asks
first (`available`), so such a write does not even wait for its turn in the pacer. When the chat
is done, what it claimed but did not spend is *released* for the chats after it. Accounts without
a limit always have budget.

The day is the UTC day the run started in (a run across midnight keeps its day's count).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Claim", "WriteBudget"]


@dataclass(slots=True)
class Claim:
    """Units one chat reserved of its account's budget and has not spent yet (`limited` False:
    the account has no limit and the claim is only a formality)."""

    account: str
    units: int
    limited: bool = True


class WriteBudget:
    """Every account's write budget for the rest of the day; one per run."""

    __slots__ = ("_claimed", "_left", "_limits")

    def __init__(self, left: Mapping[str, int], *, limits: Mapping[str, int] | None = None) -> None:
        """`left` maps each limited account to the writes it may still send today (clamped at
        0); accounts not in it are unlimited. `limits` are their whole daily limits (a chat
        needing more than its account's may claim part of the day: see the module docstring)."""
        self._left = {account: max(0, units) for account, units in left.items()}
        self._claimed = dict.fromkeys(self._left, 0)
        self._limits = dict(limits or {})

    def left(self, account: str) -> int | None:
        """Writes the account may still send today (claimed ones included); None if unlimited."""
        return self._left.get(account)

    def claim(self, account: str, writes: int) -> Claim | None:
        """Reserve `writes` units for one chat; None if what is unclaimed cannot cover them (for a
        chat larger than the whole daily limit: if nothing is unclaimed)."""
        left = self._left.get(account)
        if left is None:
            return Claim(account, writes, limited=False)
        unclaimed = left - self._claimed[account]
        if writes > unclaimed:
            if writes <= self._limits.get(account, writes) or unclaimed <= 0:
                return None
            writes = unclaimed  # no day could finish it: today's part
        self._claimed[account] += writes
        return Claim(account, writes)

    def available(self, claim: Claim) -> bool:
        """Whether `spend` would give the claiming chat a unit now (nothing is taken)."""
        if not claim.limited or claim.units > 0:
            return True
        return self._left[claim.account] - self._claimed[claim.account] > 0

    def spend(self, claim: Claim) -> bool:
        """Take one unit for one write attempt of the claiming chat; False: none is left."""
        if not claim.limited:
            return True
        account = claim.account
        if claim.units > 0:
            claim.units -= 1
            self._claimed[account] -= 1
        elif self._left[account] - self._claimed[account] <= 0:
            return False
        self._left[account] -= 1
        return True

    def release(self, claim: Claim) -> None:
        """Give back what the chat claimed and did not spend."""
        if claim.limited and claim.units:
            self._claimed[claim.account] -= claim.units
        claim.units = 0
