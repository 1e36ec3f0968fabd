"""The `--max-removals` gate: writes wait until the check can no longer fail."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

import anyio

from ..errors import RunRefused
from ..model import ChatJob

__all__ = ["RemovalGate", "removal_bound"]


class RemovalGate:
    """Holds every write back until it is certain the run will not be refused.

    `--max-removals` must refuse a plan before anything is sent, but waiting for every account's
    reads would let one slow account hold up all the others. Each account's removals are bounded
    before it is read (an imperative chat removes at most its `remove` list; a desired-state chat
    has no bound until read), so writes may start as soon as the removals known so far plus the
    bounds of the accounts still reading fit under the limit. A confirmation or a saved plan needs
    the whole plan: then the gate waits for every account.
    """

    def __init__(self, bounds: dict[str, float], limit: int | None, *, wait_for_all: bool) -> None:
        self.pending = dict(bounds)
        self.limit = limit
        self.wait_for_all = wait_for_all
        self.known = 0
        self.opened = anyio.Event()
        self.refusal: BaseException | None = None
        self.on_complete: Callable[[], Awaitable[None]] | None = None

    async def report(self, account: str, removals: int) -> None:
        self.pending.pop(account, None)
        self.known += removals
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
        if self.pending and (
            self.wait_for_all
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
