"""How the `bulkgroups` command runs its async work: on uvloop when it is installed.

`pip install bulkgroups[fast]` adds uvloop, which cuts 9-15 % of the client's CPU per request
here; without it the command runs on asyncio's own loop, the same in every other respect. Only
the command chooses: the library leaves the event loop to its caller.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

__all__ = ["hold_standard_descriptors", "loop_factory", "run"]

T = TypeVar("T")


def run(function: Callable[..., Awaitable[T]], *args: object) -> T:
    """`anyio.run(function, *args)` on the asyncio backend, with uvloop's loop when importable."""
    hold_standard_descriptors()
    factory = loop_factory()
    options: dict[str, Any] = {} if factory is None else {"loop_factory": factory}
    return anyio.run(function, *args, backend="asyncio", backend_options=options)


def loop_factory() -> Callable[[], Any] | None:
    """uvloop's `new_event_loop` if uvloop is installed, else None (asyncio's default loop)."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], Any] = uvloop.new_event_loop
    return factory


def hold_standard_descriptors() -> None:
    """cron may start a command with stdin (or more) closed; the next socket would then take
    descriptor 0, which libuv refuses to close (uvloop aborts the process) and where a stray read
    or print would meet a socket. /dev/null keeps descriptors 0-2 taken; sys.stdin stays None."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)  # the lowest free number: this one
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
