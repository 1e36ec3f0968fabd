"""Bounded work for a run: a few workers over a list, and a quieter garbage collector."""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sized
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Generic, TypeVar

import anyio
from anyio.abc import TaskGroup

__all__ = ["fewer_young_collections", "for_each", "lend_a_worker"]

T = TypeVar("T")


async def for_each(
    items: Iterable[T],
    work: Callable[[T], Awaitable[None]],
    workers: int,
    *,
    lending: bool = False,
) -> None:
    """Run `work` over `items` with at most `workers` at once (a shared iterator, no queue).

    `lending`: a worker about to sleep in a retry's backoff (`lend_a_worker`) lets one more item
    start meanwhile, so that the items backing off do not idle what they share. Issue #12: with
    an account's two chats both backing off after a 5xx, the account sent nothing for 0.1 to
    0.3 s while its other chats waited their turn, a few times a run under faults — the whole
    account slowed by what the contract retries per operation. At most `workers` items start
    that way at once, so no more than twice `workers` are ever in progress (memory stays
    bounded); each extra worker takes one item and ends.
    """
    if isinstance(items, Sized):
        workers = min(workers, len(items))  # --concurrency 10**9 must not start 10**9 tasks
    async with anyio.create_task_group() as tg:
        pool = _Pool(iter(items), work, tg, spare=max(1, workers) if lending else 0)
        for _ in range(max(1, workers)):
            tg.start_soon(pool.worker)


def lend_a_worker() -> None:
    """The calling task is about to sleep in a backoff: if it works for a `for_each(...,
    lending=True)`, one more of that loop's items may start meanwhile (see `for_each`)."""
    pool = _LENDER.get()
    if pool is not None:
        pool.lend()


class _Pool(Generic[T]):
    """The workers of one `for_each`, and the spare ones it may start while others back off."""

    def __init__(
        self, items: Iterator[T], work: Callable[[T], Awaitable[None]], tg: TaskGroup, spare: int
    ) -> None:
        self.items = items
        self.work = work
        self.tg = tg
        self.spare = spare
        self.drained = False

    async def worker(self, *, once: bool = False) -> None:
        _LENDER.set(self)  # this task's own context: what its work calls sees this loop
        for item in self.items:
            await self.work(item)
            if once:
                return
        self.drained = True

    def lend(self) -> None:
        if self.spare > 0 and not self.drained:
            self.spare -= 1
            self.tg.start_soon(self._spare_worker)

    async def _spare_worker(self) -> None:
        try:
            await self.worker(once=True)
        finally:
            self.spare += 1


_LENDER: ContextVar[_Pool[Any] | None] = ContextVar("bulkgroups_lender", default=None)


@contextmanager
def fewer_young_collections() -> Iterator[None]:
    """Raise the garbage collector's first threshold for the length of a run, then restore it.

    Every request allocates a few hundred short-lived objects (coroutines, headers, answers);
    at CPython's default of one young collection per 700 allocations the collector took about a
    sixth of the engine's CPU (benchmarks/bench_overhead.py). Nothing here holds reference cycles
    that need prompt collection, and the older generations keep their thresholds.
    """
    previous = gc.get_threshold()
    gc.set_threshold(max(previous[0], 10_000), *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)
