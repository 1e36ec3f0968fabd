"""Bounded work for a run: a few workers over a list, and a quieter garbage collector."""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sized
from contextlib import contextmanager
from typing import TypeVar

import anyio

__all__ = ["fewer_young_collections", "for_each"]

T = TypeVar("T")


async def for_each(items: Iterable[T], work: Callable[[T], Awaitable[None]], workers: int) -> None:
    """Run `work` over `items` with at most `workers` at once (a shared iterator, no queue)."""
    if isinstance(items, Sized):
        workers = min(workers, len(items))  # --concurrency 10**9 must not start 10**9 tasks
    iterator = iter(items)

    async def worker() -> None:
        for item in iterator:
            await work(item)

    async with anyio.create_task_group() as tg:
        for _ in range(max(1, workers)):
            tg.start_soon(worker)


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
