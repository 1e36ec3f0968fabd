"""A run's hand-over with the runs before and after it on this machine (`recent_sends`).

Entered before a run's first request: what the earlier runs left for its accounts, for
`Run.pause_after_previous_runs`. Left after its last: when each account's last request and last
write were over, for the next run. A state directory that cannot be used costs a warning (and an
apply a blind wait of one general window per account), never the run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING

import anyio

from ..pacing import Pacing
from ..recent_sends import Handover, LastSent, RecentSends

if TYPE_CHECKING:
    from .run import Run

__all__ = ["handed_over", "reading_handed_over"]

_log = logging.getLogger("bulkgroups.engine")

# The hand-over is a few small files; a disk that hangs does not hold the start or the exit longer.
_OPEN_DEADLINE = 10.0
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
    handover, problem = await _begin(recent, accounts, writes=writes)
    if handover is None:
        _log.warning(
            "%s: cannot keep the times of recent requests (%s)%s",
            recent.directory,
            problem,
            "; each account waits one rate window before its first request" if writes else "",
        )
        yield None
        return
    try:
        yield handover.earlier
    finally:
        await _close(handover, _last_sent(pacing), recent)


@asynccontextmanager
async def reading_handed_over(run: Run) -> AsyncIterator[None]:
    """`handed_over` for a run that only reads (`plan`, `export`): each account first waits until
    the last request an earlier run sent it is a general window old. Without a hand-over it
    waits for nothing, as before there was one: the blind wait is an apply's."""
    async with handed_over(
        run.config.recent_sends, run.accounts, run.pacing, writes=False
    ) as recent:
        if recent is not None:
            run.pause_after_previous_runs((), recent, writes=False)
        yield


async def _begin(
    recent: RecentSends, accounts: Collection[str], *, writes: bool
) -> tuple[Handover | None, str]:
    """The hand-over begun, or None and why: the directory failed, or did not answer in time (a
    hung network mount must not hold the run; its marker, if written late, is then closed by
    the next run as a dead one)."""
    with anyio.move_on_after(_OPEN_DEADLINE):
        try:
            begun = await anyio.to_thread.run_sync(
                partial(recent.begin, accounts, writes=writes), abandon_on_cancel=True
            )
        except OSError as error:
            return None, str(error.strerror or error)
        return begun, ""
    return None, f"no answer in {_OPEN_DEADLINE:g} s"


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
                "%s: cannot keep the times of this run's requests (%s); the next run takes "
                "this one for killed and waits a full window",
                recent.directory,
                error.strerror or error,
            )
