"""A run's hand-over with the runs before and after it on this machine (`recent_sends`).

Entered before a run's first request: what the earlier runs left for its accounts, for
`Run.pause_after_previous_runs`. Left after its last: when each account's last request and last
write were over, for the next run. A state directory that cannot be used costs a warning and a
blind wait (one general window per account), never the run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager
from functools import partial

import anyio

from ..pacing import Pacing
from ..recent_sends import Handover, LastSent, RecentSends

__all__ = ["handed_over"]

_log = logging.getLogger("bulkgroups.engine")

# The hand-over at the end is a few small files; a disk that hangs does not hold the exit longer.
_CLOSE_DEADLINE = 5.0


@asynccontextmanager
async def handed_over(
    recent: RecentSends | None, accounts: Collection[str], pacing: Pacing, *, writes: bool
) -> AsyncIterator[Mapping[str, LastSent] | None]:
    """Yields what the earlier runs left for `accounts` (None: nothing is known, wait blind);
    on exit, however the run ends, leaves the times of `pacing`'s last requests. `writes`:
    whether this run may write (a run killed mid-way is then taken to have written)."""
    if recent is None:
        yield None
        return
    try:
        handover = await anyio.to_thread.run_sync(partial(recent.begin, accounts, writes=writes))
    except OSError as error:
        _log.warning(
            "%s: cannot keep the times of recent requests (%s); each account waits one rate "
            "window before its first request",
            recent.directory,
            error.strerror or error,
        )
        yield None
        return
    try:
        yield handover.earlier
    finally:
        await _close(handover, _last_sent(pacing), recent)


def _last_sent(pacing: Pacing) -> dict[str, LastSent]:
    now = time.time()
    return {
        account: LastSent(
            now - since_request if since_request != float("inf") else None,
            now - since_write if since_write != float("inf") else None,
        )
        for account, (since_request, since_write) in pacing.seconds_since_last().items()
    }


async def _close(handover: Handover, last: Mapping[str, LastSent], recent: RecentSends) -> None:
    with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_DEADLINE):
        try:
            await anyio.to_thread.run_sync(handover.close, last, abandon_on_cancel=True)
        except OSError as error:
            _log.warning(
                "%s: cannot keep the times of this run's requests (%s); the next run waits "
                "one rate window",
                recent.directory,
                error.strerror or error,
            )
