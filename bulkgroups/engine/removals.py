"""The removal guards, `--max-removals` and `--max-removal-percent`: writes wait until neither can
refuse the run any more."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import anyio

from ..errors import RunRefused
from ..model import ChatJob, ChatPlan, Plan

__all__ = ["RemovalGate", "SteepChat", "check_removals", "removal_bound", "steep_chats"]

# Chats named in a refusal, at most.
_SHOWN = 20


@dataclass(frozen=True, slots=True)
class SteepChat:
    """A desired-state chat whose plan removes more than the allowed share of its members."""

    account: str
    chat: str
    removals: int
    members: int

    def __str__(self) -> str:
        share = self.removals * 100 / self.members
        return (
            f"{self.account}/{self.chat} ({self.removals} of {self.members} members, {share:.0f}%)"
        )


def steep_chats(
    chats: Iterable[ChatJob], plans: Iterable[ChatPlan], percent: float | None
) -> list[SteepChat]:
    """The desired-state chats among `plans` that would lose more than `percent` % of the members
    their read found (owner excluded); none when `percent` is None.

    Only desired-state chats: their removals are computed from what is there, so a stale or wrong
    member list can empty a chat; an imperative chat removes exactly whom the job names.
    """
    if percent is None:
        return []
    desired = {(c.account, c.chat) for c in chats if c.is_desired_state}
    found: list[SteepChat] = []
    for plan in plans:
        if (plan.account, plan.chat) not in desired or not plan.members_before:
            continue
        removals = plan.removals
        if removals * 100 > percent * plan.members_before:
            found.append(SteepChat(plan.account, plan.chat, removals, plan.members_before))
    return found


def steep_message(found: Sequence[SteepChat], percent: float) -> str:
    """`these desired-state chats would lose more than P % ...: a/b (3 of 4 members, 75%), ...`"""
    shown = ", ".join(str(chat) for chat in found[:_SHOWN])
    if len(found) > _SHOWN:
        shown += f" and {len(found) - _SHOWN} more"
    noun = "this desired-state chat" if len(found) == 1 else "these desired-state chats"
    return f"{noun} would lose more than --max-removal-percent {percent:g}% of its members: {shown}"


def check_removals(
    plan: Plan, *, limit: int | None, percent: float | None, consequence: str
) -> None:
    """Refuse (`RunRefused`) a whole plan that either guard refuses; `consequence` ends the
    message (`nothing was sent`, `apply would refuse it`)."""
    removals = plan.removals
    if limit is not None and removals > limit:
        raise RunRefused(
            f"the plan removes {removals} members, more than --max-removals {limit}; {consequence}"
        )
    if percent is not None and plan.job is not None:
        found = steep_chats(plan.job.chats, plan.chats, percent)
        if found:
            raise RunRefused(f"{steep_message(found, percent)}; {consequence}")


class RemovalGate:
    """Holds every write back until it is certain the run will not be refused.

    The guards must refuse a plan before anything is sent, but waiting for every account's reads
    would let one slow account hold up all the others. Each account's removals are bounded
    before it is read (an imperative chat removes at most its `remove` list; a desired-state chat
    has no bound until read), so writes may start as soon as the removals known so far plus the
    bounds of the accounts still reading fit under `--max-removals`, and no account still reading
    has a desired-state chat that `--max-removal-percent` could find too steep. A confirmation or
    a saved plan needs the whole plan: then the gate waits for every account.
    """

    def __init__(
        self,
        chats: Mapping[str, Sequence[ChatJob]],
        limit: int | None,
        *,
        percent: float | None = None,
        wait_for_all: bool,
    ) -> None:
        self.chats = chats
        self.pending = {account: removal_bound(of) for account, of in chats.items()}
        self.limit = limit
        self.percent = percent
        # Accounts whose desired-state chats are not read yet: the percentage guard may still refuse.
        self.unjudged = (
            {a for a, of in chats.items() if any(c.is_desired_state for c in of)}
            if percent is not None
            else set()
        )
        self.wait_for_all = wait_for_all
        self.known = 0
        self.steep: list[SteepChat] = []
        self.opened = anyio.Event()
        self.refusal: BaseException | None = None
        self.on_complete: Callable[[], Awaitable[None]] | None = None

    async def report(self, account: str, plans: Sequence[ChatPlan]) -> None:
        """An account's chats are read and planned."""
        self.pending.pop(account, None)
        self.unjudged.discard(account)
        self.known += sum(plan.removals for plan in plans)
        self.steep += steep_chats(self.chats.get(account, ()), plans, self.percent)
        await self._decide()

    def refuse(self, error: BaseException) -> None:
        if self.refusal is None:
            self.refusal = error
        self.opened.set()

    async def _decide(self) -> None:
        if self.opened.is_set():
            return
        if self.limit is not None and self.known > self.limit:
            self.refuse(
                RunRefused(
                    f"the plan removes {self.known} or more members, more than --max-removals "
                    f"{self.limit}; nothing was sent"
                )
            )
            return
        if self.steep and self.percent is not None:
            self.refuse(RunRefused(f"{steep_message(self.steep, self.percent)}; nothing was sent"))
            return
        if self.pending and (
            self.wait_for_all
            or self.unjudged
            or (self.limit is not None and self.known + sum(self.pending.values()) > self.limit)
        ):
            return
        if not self.pending and self.on_complete is not None:
            try:
                await self.on_complete()
            except RunRefused as error:
                self.refuse(error)
                return
        self.opened.set()

    async def wait(self) -> None:
        await self.opened.wait()
        if self.refusal is not None:
            raise self.refusal


def removal_bound(chats: Iterable[ChatJob]) -> float:
    bound = 0.0
    for chat in chats:
        if chat.members is not None:
            return float("inf")
        bound += len(chat.remove)
    return bound
