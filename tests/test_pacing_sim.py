"""Pacing over real sockets: 200 accounts at once through the gate, against the simulator running in
its own thread, which counts every request that arrives over a window by its own clock.

The pacer stamps a request just before the client sends it; the simulator counts it on arrival. In
one process on two cores, with 64 requests in flight, arrival lags the stamp by up to ~80 ms (the
client and the simulator share the GIL and queue for it), where a real network varies by a few ms.
The test therefore paces with a 20 % margin at T = 1 s: what it checks is that the windows hold
end to end, not the default margin, which is sized for network jitter (see `pacing`).
"""

from __future__ import annotations

import anyio

from bulkgroups.client import UnipileClient
from bulkgroups.model import RateSpec
from bulkgroups.pacing import Pacing, PacingPolicy
from bulkgroups.simulator import SimConfig, run_in_thread

ACCOUNTS = 200
RATE = RateSpec(5, 1.0)
WRITE_RATE = RateSpec(2, 1.0)


async def test_200_accounts_at_once_never_exceed_their_windows() -> None:
    policy = PacingPolicy(rate=RATE, write_rate=WRITE_RATE, margin=0.2)
    with run_in_thread(SimConfig(rate=RATE, write_rate=WRITE_RATE)) as sim:
        pacing = Pacing(concurrency=64, default=policy)
        async with UnipileClient(sim.url, api_key=sim.api_key, concurrency=64) as client:

            async def work(account: str, task: int) -> None:
                chat = f"chat_{task}"
                await client.get_chat(account, chat, fresh=True, gate=pacing.gate)
                await client.rename_chat(account, chat, f"renamed {task}", gate=pacing.gate)
                await client.get_chat(account, chat, fresh=True, gate=pacing.gate)

            # Per account: 9 requests against 5/s, 3 writes against 2/s; all accounts at once.
            async with anyio.create_task_group() as tg:
                for a in range(ACCOUNTS):
                    for task in range(3):
                        tg.start_soon(work, f"acc_{a:03}", task)

        log = sim.requests()
        assert len(log) == ACCOUNTS * 9
        assert {r.status for r in log} == {200}  # not one 429
        assert sim.violations() == 0
