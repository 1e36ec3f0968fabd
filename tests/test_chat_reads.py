"""A chat read whose participants listing fails for a moment (a 5xx, a reset, a 429) lists them
again without reading the chat's info again: one request, and one chance of another fault, less
per failed listing. The real engine and client against the simulator; the listing's failure is
the simulator's own injected 500, switched on for that one request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bulkgroups.model import Participant
from bulkgroups.simulator import Simulator

from helpers.outcomes import SIM_RATE, Bystander, outcomes, run_job, scoped
from helpers.simulator import SimFactory

A = "acc_a"
ANN = "ACoAA0001"


class ListingFailsOnce(Bystander):
    """The first participants listing meets a 500 from the simulator (its first page only)."""

    def __init__(self, sim: Simulator) -> None:
        super().__init__(sim.url, api_key=sim.api_key)
        self.sim = sim
        self.failures_left = 1

    def participants(self, *args: Any, **kwargs: Any) -> AsyncIterator[Participant]:
        pages = super().participants(*args, **kwargs)
        if self.failures_left == 0:
            return pages
        self.failures_left -= 1
        return self._failing(pages)

    async def _failing(self, pages: AsyncIterator[Participant]) -> AsyncIterator[Participant]:
        self.sim.set_faults("500=1")
        try:
            async for participant in pages:
                yield participant
        finally:
            self.sim.set_faults("")


async def test_a_failed_participants_listing_is_retried_alone(
    sim_factory: SimFactory, tmp_path: Path
) -> None:
    sim = sim_factory(rate=SIM_RATE)
    sim.configure_chat(A, "c1", members=(ANN,))
    client = ListingFailsOnce(sim)
    result, records = await run_job(
        sim, tmp_path, [{"chat": "c1", "account": A, "add": [ANN]}], client=client
    )
    assert outcomes(records) == [("c1", "add", ANN, "skipped", "already_member")]
    assert [(r.path, r.status) for r in scoped(sim, A)] == [
        (f"/v2/{A}/chats/c1", 200),
        (f"/v2/{A}/chats/c1/participants", 500),
        (f"/v2/{A}/chats/c1/participants", 200),
    ]
    assert result.exit_code == 0
