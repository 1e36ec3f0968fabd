"""Makespan against the ideal (issue #5): 120 accounts at 5, 10 and 20 requests/s, every tenth
with 4x the chats, the simulator's limits equal to the engine's rates, simulator in its own thread.

- `ratio`: the run's wall time (client, preflight, reads, writes, verification, ledger: start-up
  included) over the ideal = max over accounts of (account-scoped requests seen by the simulator
  x T / N). The pacer may send N at once, so the ratio can fall below 1.
- `floor_ratio`: the same run over the pacer's own floor for the critical account,
  ⌊(M - 1) / N⌋ x T (a backlog of M after a burst of N): what is left is the safety margin, the
  round trips and the per-chat ordering (a chat's writes wait for its reads).
- `startup_s`: from the start of `apply_job` to the first account-scoped request's arrival.
- `violations`: requests the simulator counted over a limit (must be 0).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import yaml

from benchmarks.figures import Figure
from bulkgroups.client import UnipileClient
from bulkgroups.engine import EngineConfig, apply_job
from bulkgroups.jobs import load_job
from bulkgroups.model import RateSpec
from bulkgroups.pacing import RetryPolicy
from bulkgroups.simulator import SimConfig, initial_members, owner_id, run_in_thread

ACCOUNTS = 120
RATES = (RateSpec(5, 1.0), RateSpec(10, 1.0), RateSpec(20, 1.0))
CHATS = 3
HEAVY_CHATS = 4 * CHATS


def _chats(account: str, count: int) -> list[dict[str, Any]]:
    """Imperative chats (an add and a remove each, a rename every third): 2 reads, 2-3 writes
    and a verifying re-read of 2 requests per chat."""
    owner = owner_id(account)
    chats: list[dict[str, Any]] = []
    for i in range(count):
        chat = f"chat_{i:02d}"
        members = [m for m in initial_members(account, chat) if m != owner]
        entry: dict[str, Any] = {
            "chat": chat,
            "account": account,
            "add": [f"ACoAN{i:04d}"],
            "remove": [members[0]],
        }
        if i % 3 == 2:
            entry["rename"] = f"Cohort {i}"
        chats.append(entry)
    return chats


def run() -> list[Figure]:
    """One run of the scenario; figures as described in the module docstring."""
    with tempfile.TemporaryDirectory() as tmp, run_in_thread(SimConfig()) as sim:
        rates: dict[str, RateSpec] = {}
        chats: list[dict[str, Any]] = []
        settings: dict[str, dict[str, str]] = {}
        for a in range(ACCOUNTS):
            account = f"acc_{a:03d}"
            rate = RATES[a % len(RATES)]
            rates[account] = rate
            sim.configure_account(account, rate=rate, write_rate=rate)
            settings[account] = {"rate": str(rate), "write_rate": str(rate)}
            chats += _chats(account, HEAVY_CHATS if a % 10 == 0 else CHATS)
        job_path = Path(tmp) / "job.yaml"
        job_path.write_text(
            yaml.safe_dump({"version": 1, "accounts": settings, "chats": chats}, sort_keys=False)
        )
        job = load_job(job_path)
        config = EngineConfig(
            rate=RATES[0],
            write_rate=RATES[0],
            verify_delay=0.05,
            retry=RetryPolicy(attempts=4, budget=5.0, initial=0.01, maximum=0.05),
            max_removals=None,
        )

        async def apply() -> tuple[float, float, int]:
            started = time.monotonic()
            async with UnipileClient(sim.url, api_key=sim.api_key) as client:
                result = await apply_job(job, client, ledger=Path(tmp) / "l.jsonl", config=config)
            return started, time.monotonic(), result.exit_code

        started, finished, exit_code = anyio.run(apply)
        elapsed = finished - started
        timelines = {account: sim.timeline(account) for account in rates}
        ideal, critical = max(
            (len(times) * rates[a].period / rates[a].count, a) for a, times in timelines.items()
        )
        m, rate = len(timelines[critical]), rates[critical]
        floor = (m - 1) // rate.count * rate.period
        first = min(times[0] for times in timelines.values() if times)
        requests = sum(len(times) for times in timelines.values())
        violations = sim.violations()
    return [
        Figure("makespan.ratio", elapsed / ideal, "", 1.05, "<=", "makespan / ideal"),
        Figure("makespan.floor_ratio", elapsed / floor, "", note="makespan / ⌊(M-1)/N⌋·T"),
        Figure("makespan.elapsed_s", elapsed, "s"),
        Figure("makespan.ideal_s", ideal, "s", note=f"critical {critical}: {m} req at {rate}"),
        Figure("makespan.startup_s", first - started, "s"),
        Figure("makespan.requests", float(requests), "", note=f"{ACCOUNTS} accounts"),
        Figure("makespan.violations", float(violations), "", 0, "=="),
        Figure("makespan.exit_code", float(exit_code), "", 0, "=="),
    ]


if __name__ == "__main__":
    for figure in run():
        print(f"{figure.name:28} {figure.value_text:>14}  {figure.verdict}  {figure.note}")
