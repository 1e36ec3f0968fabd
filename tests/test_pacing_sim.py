"""Pacing over real sockets: 200 accounts at once through the gate, against the simulator running in
its own thread, which counts every request that arrives over a window by its own clock.

In one process on two cores the simulator sees a request up to ~80 ms after the pacer let it go
(client and simulator queue for the GIL), far more than the margin; the gate's windows count a
request from its answer, an upper bound of its arrival, so they hold anyway, at default settings.
Each account is given more than its limits allow at once, so the pacer, not the machine's
throughput, is what spaces its requests.
"""

from __future__ import annotations

import anyio

from bulkgroups.client import UnipileClient
from bulkgroups.model import RateSpec
from bulkgroups.pacing import Pacing, PacingPolicy
from bulkgroups.simulator import SimConfig, run_in_thread

ACCOUNTS = 200
RATE = RateSpec(2, 1.0)
WRITE_RATE = RateSpec(1, 1.0)
TASKS = 2  # per account, each: read, write, read


async def test_200_accounts_at_once_never_exceed_their_windows() -> None:
    policy = PacingPolicy(rate=RATE, write_rate=WRITE_RATE)
    with run_in_thread(SimConfig(rate=RATE, write_rate=WRITE_RATE)) as sim:
        pacing = Pacing(concurrency=64, default=policy)
        async with UnipileClient(sim.url, api_key=sim.api_key, concurrency=64) as client:

            async def work(account: str, task: int) -> None:
                chat = f"chat_{task}"
                await client.get_chat(account, chat, fresh=True, gate=pacing.gate)
                await client.rename_chat(account, chat, f"renamed {task}", gate=pacing.gate)
                await client.get_chat(account, chat, fresh=True, gate=pacing.gate)

            # Per account: 6 requests against 2/s, 2 writes against 1/s; all accounts at once.
            async with anyio.create_task_group() as tg:
                for a in range(ACCOUNTS):
                    for task in range(TASKS):
                        tg.start_soon(work, f"acc_{a:03}", task)

        log = sim.requests()
        assert len(log) == ACCOUNTS * TASKS * 3
        assert {r.status for r in log} == {200}  # not one 429
        assert sim.violations() == 0
