"""Participant pages read for a 1,000-member chat, against the minimum (#13): a listing must ask
pages of the maximum size (100) and read nothing twice but what verification re-reads.

In this process, against the simulator in a thread (limits off): `plan_job_online` of a job
removing one member of a 1,000-participant chat (the simulator's `big...` chats), then
`apply_job` of the same job (its read, the removal, the verifying re-read).

- `plan_ratio`: participant pages the plan asked ÷ ⌈1000 / 100⌉ = 10; goal 1.0;
- `apply_ratio`: participant pages the apply asked ÷ (10 for its read + ⌈999 / 100⌉ = 10 for its
  verification); goal 1.0.

Counts, not times: one run each is exact.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import anyio

from benchmarks.figures import Figure
from bulkgroups.client import MAX_PAGE_SIZE, UnipileClient
from bulkgroups.engine import EngineConfig, apply_job, plan_job_online
from bulkgroups.jobs import load_job
from bulkgroups.simulator import SimConfig, run_in_thread

MEMBERS = 1000  # a `big` chat: the owner and ACoAB0001 .. ACoAB0999
ACCOUNT = "acc_pages"
CHAT = "big_members"


def _pages(sim_requests: Iterable[Any]) -> int:
    return sum(
        1
        for r in sim_requests
        if r.method == "GET" and r.path.endswith("/participants") and r.status == 200
    )


def run() -> list[Figure]:
    config = EngineConfig(rate=None, write_rate=None, max_removals=None, verify_delay=0.05)
    with tempfile.TemporaryDirectory() as tmp, run_in_thread(SimConfig()) as sim:
        job_path = Path(tmp) / "job.csv"
        job_path.write_text(
            f"account,chat,action,user,name\n{ACCOUNT},{CHAT},remove,ACoAB0001,\n",
            encoding="utf-8",
        )
        job = load_job(job_path)

        async def plan_then_apply() -> int:
            async with UnipileClient(sim.url, api_key=sim.api_key) as client:
                await plan_job_online(job, client, config=config)
                planned = _pages(sim.requests(ACCOUNT))
                result = await apply_job(job, client, ledger=Path(tmp) / "l.jsonl", config=config)
            if result.exit_code != 0:
                raise RuntimeError(f"the run did not succeed: {dict(result.counts)}")
            return planned

        plan_pages = anyio.run(plan_then_apply)
        apply_pages = _pages(sim.requests(ACCOUNT)) - plan_pages
    read_min = math.ceil(MEMBERS / MAX_PAGE_SIZE)
    verify_min = math.ceil((MEMBERS - 1) / MAX_PAGE_SIZE)
    return [
        Figure("pages.plan_ratio", plan_pages / read_min, "", 1.0, "<=", f"{plan_pages} pages"),
        Figure(
            "pages.apply_ratio",
            apply_pages / (read_min + verify_min),
            "",
            1.0,
            "<=",
            f"{apply_pages} pages (read + verify)",
        ),
    ]


if __name__ == "__main__":
    for figure in run():
        print(f"{figure.name:28} {figure.value_text:>14}  {figure.verdict}  {figure.note}")
