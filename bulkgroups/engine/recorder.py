"""A run's side of the ledger: its `run` record, the intents, each outcome as it happens, the
amendments of verification and the `end` record; the counts; what the observer is told."""

from __future__ import annotations

from collections.abc import Iterable

import anyio

from ..ledger import LedgerWriter
from ..model import STATUSES, Operation, Outcome, Reason, Resolution, Status
from ..records import ResolutionRecord, VerifyRecord
from ..version import __version__
from .config import RunObserver

__all__ = ["Recorder"]


class Recorder:
    """Writes one run's records through the ledger's writer and keeps their counts.

    The `run` record goes first, once (`start`), before any other record of the run. Counts are
    the run's `op` records by status, as amended by its `verify` records: what the `end` record
    and `RunResult` say.
    """

    __slots__ = ("_observer", "_starting", "counts", "recorded", "run_id", "started", "writer")

    def __init__(self, writer: LedgerWriter, run_id: str, observer: RunObserver) -> None:
        self.writer = writer
        self.run_id = run_id
        self._observer = observer
        self.counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
        self.recorded = 0  # op records written (what a second Ctrl-C reports)
        self.started = False
        self._starting = anyio.Lock()

    async def start(
        self, *, job_sha256: str, resume: bool, resolutions: Iterable[Resolution] = ()
    ) -> None:
        """The `run` record, once, whichever account gets to its writes first; then a
        `resolution` record for each profile the run resolved (the ledger's cache of them)."""
        async with self._starting:
            if not self.started:
                self._observer.phase("apply", 0)
                await self.writer.run_started(
                    run_id=self.run_id, job_sha256=job_sha256, resume=resume, version=__version__
                )
                for resolution in resolutions:
                    await self.writer.append(ResolutionRecord.of(resolution, run_id=self.run_id))
                self.started = True

    async def intent(
        self, operation: Operation, attempt: int, *, previous_name: str | None = None
    ) -> None:
        """Write-ahead: durable before the attempt is sent (raises `LedgerUnwritable`)."""
        await self.writer.intent(
            operation, run_id=self.run_id, attempt=attempt, previous_name=previous_name
        )

    async def outcome(self, outcome: Outcome, *, previous_name: str | None = None) -> None:
        """The operation's `op` record, appended now; the observer is told."""
        await self.writer.record(outcome, run_id=self.run_id, previous_name=previous_name)
        self.counts[outcome.status] += 1
        self.recorded += 1
        self._observer.outcome(outcome)

    async def amend(self, before: Outcome, status: Status, reason: Reason) -> None:
        """A `verify` record: `before` (applied in this run) did not show on re-read."""
        after = Outcome(before.operation, status, reason, before.attempts, before.error)
        await self.writer.append(
            VerifyRecord(before.operation.op_id, self.run_id, status, reason, self.writer.now())
        )
        self.counts[before.status] -= 1
        self.counts[status] += 1
        self._observer.amended(before, after)

    async def end(self, *, interrupted: bool) -> None:
        await self.writer.run_ended(
            run_id=self.run_id, counts=dict(self.counts), interrupted=interrupted
        )
