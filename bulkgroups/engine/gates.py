"""What every request of a run passes through just before it is sent.

`RunTurn` takes the account's pacing turn (`pacing.Pacing.enter`): once the turn has come (a write
may have waited minutes for it), the run takes a last look — a stopped run, a stopped account
and, for a write, an exhausted daily budget send nothing — and for a write it writes the attempt's
intent ahead (durable) before letting the request go. `WriteSender` is one operation's writes:
what the retry loop calls, with the gate each of its attempts passes.

Both are classes rather than closures: they are built once per request (`RunTurn`, the only
object a request's gate builds) or once per operation (`WriteSender`), on the path every write
takes.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

from ..attempts import Attempts
from ..errors import LedgerUnwritable
from ..model import Operation, RateLimitHeaders, RequestKind
from ..pacing import Sent
from .budget import Claim
from .stops import BudgetSpent, Flight, SendingStopped

if TYPE_CHECKING:
    from .run import Run

__all__ = ["RunTurn", "WriteSender"]


class RunTurn:
    """One request's passage: the pacer's turn, the run's last look, a write's intent.

    It takes the account's turn from `Pacing` itself (`enter`, `observe_answer`, `leave`) rather
    than wrapping the pacer's own turn object: one object per request on the path every request
    takes."""

    __slots__ = ("_account", "_kind", "_pacing", "_run", "_sent", "_write")

    def __init__(
        self, run: Run, account: str, kind: RequestKind, write: WriteSender | None = None
    ) -> None:
        self._run = run
        self._pacing = run.pacing
        self._account = account
        self._kind = kind
        self._write = write
        self._sent: Sent | None = None

    async def __aenter__(self) -> RunTurn:
        sent = self._sent = await self._pacing.enter(self._account, self._kind)
        stops = self._run.stops
        stops.took_off()
        try:
            self._run.check_before_sending(self._account, write=self._write is not None)
            if self._write is not None:
                await self._write.announce()
        except BaseException:
            stops.landed()
            self._pacing.leave(self._account, sent, self._kind)
            raise
        return self

    def observe(self, status: int, headers: RateLimitHeaders | None) -> None:
        self._pacing.observe_answer(self._account, self._kind, self._sent, status, headers)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._run.stops.landed()
        self._pacing.leave(self._account, self._sent, self._kind)


class WriteSender:
    """The write requests of one operation: `send` is one attempt, `gate` the gate it passes."""

    __slots__ = ("_attempts", "_claim", "_flight", "_owner", "_previous_name", "_run", "operation")

    def __init__(
        self,
        run: Run,
        operation: Operation,
        owner: str | None,
        attempts: Attempts,
        claim: Claim,
        previous_name: str | None = None,
        flight: Flight | None = None,
    ) -> None:
        self._run = run
        self.operation = operation
        self._owner = owner
        self._attempts = attempts
        self._claim = claim
        self._previous_name = previous_name  # a rename's: into its intent, for `undo`
        self._flight = flight  # up from the first intent until the outcome is recorded

    async def send(self) -> None:
        """One attempt: the request for the operation's action (a leave removes the owner)."""
        op, client, gate = self.operation, self._run.client, self.gate
        if op.action == "add" and op.user is not None:
            await client.add_participant(op.account, op.chat, op.user, gate=gate)
        elif op.action == "remove" and op.user is not None:
            await client.remove_participant(op.account, op.chat, op.user, gate=gate)
        elif op.action == "rename" and op.name is not None:
            await client.rename_chat(op.account, op.chat, op.name, gate=gate)
        elif op.action == "leave" and self._owner is not None:
            await client.remove_participant(op.account, op.chat, self._owner, gate=gate)
        else:
            raise ValueError(f"cannot send {op!r}")

    def gate(self, account: str, kind: RequestKind) -> RunTurn:
        return RunTurn(self._run, account, kind, self)

    async def announce(self) -> None:
        """At the attempt's turn: spend a unit of the daily budget, then write the attempt's
        intent and wait until it is durable. Raises (and nothing is sent) when there is no
        budget, the ledger fails, or the run stopped meanwhile."""
        run = self._run
        if not run.budget.spend(self._claim):
            raise BudgetSpent()
        if self._flight is not None:
            self._flight.take_off()
        recorder = run.recorder
        if recorder is None:
            raise RuntimeError("a write needs the run's ledger")
        try:
            await recorder.intent(
                self.operation, self._attempts.count, previous_name=self._previous_name
            )
        except LedgerUnwritable:
            raise SendingStopped() from None
        run.stops.check(write=True)
