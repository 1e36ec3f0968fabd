"""Why a run sends nothing more: the stop signals one run owns, and the private control-flow
signals a request given up at its turn raises.

Three things stop a run's sending, each set once and read before every request (at its turn,
after the pacer's wait, so that a request that waited minutes does not go out after the stop):

- an interrupt (SIGINT/SIGTERM, or the library caller's event): no write leaves after it, and no
  chat's read begins (nothing would come of it); the reads that decide writes already sent, and
  requests already sent, finish;
- the ledger failing (`LedgerUnwritable`): no request of any kind leaves after it, since nothing
  more could be recorded;
- the API key refused (`AuthError`): every account stops (a per-account matter, see `accounts`).
"""

from __future__ import annotations

import anyio

from ..attempts import AccountStopped
from ..errors import AuthError, LedgerUnwritable

__all__ = ["BudgetSpent", "Flight", "RunStops", "SendingStopped"]


class SendingStopped(AccountStopped):
    """A request reached its turn after the run stopped sending (interrupt, ledger failure): it
    was not sent. Nothing is recorded for its operation (`--resume` plans it again).

    An `AccountStopped`, so that the retry loop does not count the attempt it never sent.
    """


class BudgetSpent(AccountStopped):
    """A write attempt reached its turn with no daily budget left for its account: not sent; its
    operation is deferred `daily_limit`."""


class RunStops:
    """The stop signals of one run; owned by the run, created inside its event loop."""

    __slots__ = ("_in_flight", "_landed", "interrupted", "key_refused", "ledger_failure", "stopped")

    def __init__(self) -> None:
        self.interrupted = False
        self.ledger_failure: LedgerUnwritable | None = None
        self.key_refused: AuthError | None = None
        # Set by an interrupt or a ledger failure: the run's watcher then gives requests in
        # flight their grace and cancels the rest.
        self.stopped = anyio.Event()
        self._in_flight = 0
        self._landed: anyio.Event | None = None

    # What is in flight: each request from its turn in the pacer to its answer (a write's intent
    # included), and each `Flight` (a write from its first intent until its outcome is recorded,
    # the reads deciding it included; a chat's verification), so that a stopped run waits for
    # them — and only for them: what still waits for a turn it has not begun (a write at 1/min,
    # a backoff) would send nothing and is cancelled at once.

    def flight(self) -> Flight:
        return Flight(self)

    def took_off(self) -> None:
        """Something has begun that must end before the run may be cancelled: until `landed`."""
        self._in_flight += 1

    def landed(self) -> None:
        self._in_flight -= 1
        if not self._in_flight and self._landed is not None:
            self._landed.set()

    async def all_landed(self) -> None:
        """Return once no request is in flight."""
        while self._in_flight:
            self._landed = anyio.Event()
            await self._landed.wait()

    def interrupt(self) -> None:
        self.interrupted = True
        self.stopped.set()

    def fail_ledger(self, error: LedgerUnwritable) -> None:
        if self.ledger_failure is None:
            self.ledger_failure = error
        self.stopped.set()

    def refuse_key(self, error: AuthError) -> None:
        if self.key_refused is None:
            self.key_refused = error

    @property
    def writes_stopped(self) -> bool:
        """No write may be sent (an interrupt or a failed ledger)."""
        return self.interrupted or self.ledger_failure is not None

    def check(self, *, write: bool) -> None:
        """Raise `SendingStopped` if a request of this kind may no longer be sent."""
        if self.ledger_failure is not None or (write and self.interrupted):
            raise SendingStopped()


class Flight:
    """A piece of work that, once begun, must be seen to its end even after the run stops
    sending: a write whose request may have reached the server until its `op` record is handed to
    the ledger (a 404 or 403 is decided by a fresh read first), or a chat's verification. Not in
    flight until `take_off`; `land` ends it (both idempotent, so `land` can sit in a `finally`)."""

    __slots__ = ("_stops", "_up")

    def __init__(self, stops: RunStops) -> None:
        self._stops = stops
        self._up = False

    def take_off(self) -> None:
        if not self._up:
            self._up = True
            self._stops.took_off()

    def land(self) -> None:
        if self._up:
            self._up = False
            self._stops.landed()
