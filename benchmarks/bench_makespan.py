"""Makespan against the ideal (issue #5): 120 accounts at 5, 10 and 20 requests/s, every tenth
with 4x the chats, the simulator's limits equal to the engine's rates, simulator in its own thread.

- `ratio`: the run's wall time (client, preflight, reads, writes, verification, ledger: start-up
  included) over the ideal = max over accounts of (account-scoped requests seen by the simulator
  x T / N). The pacer may send N at once, so the ratio can fall below 1.
- `floor_ratio`: the same run over the pacer's own floor for the critical account,
  ⌊(M - 1) / N⌋ x T (a backlog of M after a burst of N): what is left is the safety margin, the
  round trips and the per-chat ordering (a chat's writes wait for its reads).
- `startup_s`: from the start of `apply_job` to the first account-scoped request's arrival. The
  run is configured as the command configures it, with a hand-over of recent sends
  (`recent_sends`); a library run given none waits one window per account first (1 s here).
- `violations`: requests the simulator counted over a limit (must be 0).

`ROUNDS` runs, medians. `benchmarks/makespan.svg` charts the operations completed over time (the
`op` records of the ledger) of the median run against the ideal line.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import orjson
import yaml

from benchmarks.chart import write_completion_svg
from benchmarks.figures import Figure
from bulkgroups.client import UnipileClient
from bulkgroups.engine import EngineConfig, apply_job
from bulkgroups.jobs import load_job
from bulkgroups.model import RateSpec
from bulkgroups.pacing import RetryPolicy
from bulkgroups.recent_sends import RecentSends
from bulkgroups.records import parse_time
from bulkgroups.simulator import SimConfig, initial_members, owner_id, run_in_thread

ACCOUNTS = 120
RATES = (RateSpec(5, 1.0), RateSpec(10, 1.0), RateSpec(20, 1.0))
CHATS = 3
HEAVY_CHATS = 4 * CHATS
ROUNDS = 5
CHART = Path(__file__).resolve().parent / "makespan.svg"


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


@dataclass(frozen=True, slots=True)
class _Round:
    elapsed: float
    ideal: float
    floor: float
    critical: str
    critical_requests: int
    startup: float
    requests: int
    violations: int
    exit_code: int
    completed: list[float]  # seconds from the start at which each operation's outcome came
    ideal_completed: list[float]  # the same, each account's requests at its full rate


def _one_round() -> _Round:
    """One run of the scenario, against a fresh simulator."""
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
            # As the command runs it: with the hand-over of recent sends (a fresh simulator, no
            # earlier run: no wait). Without one, a library run waits one window, blind.
            recent_sends=RecentSends(Path(tmp) / "state", sim.url),
        )
        ledger = Path(tmp) / "l.jsonl"

        async def apply() -> tuple[float, float, float, int]:
            started_at, started = time.time(), time.monotonic()
            async with UnipileClient(sim.url, api_key=sim.api_key) as client:
                result = await apply_job(job, client, ledger=ledger, config=config)
            return started_at, started, time.monotonic(), result.exit_code

        started_at, started, finished, exit_code = anyio.run(apply)
        ops = [
            record
            for record in map(orjson.loads, ledger.read_bytes().splitlines())
            if record["type"] == "op"
        ]
        completed = [parse_time(record["at"]) - started_at for record in ops]
        timelines = {account: sim.timeline(account) for account in rates}
        # Ideally each account sends its requests at its full rate from the start, in the order
        # it sent them: its k-th request at k x T / N, each write an operation completed.
        ideal_completed = []
        for account, rate in rates.items():
            scoped = [r for r in sim.requests(account) if r.kind in ("read", "write")]
            ideal_completed += [
                (k + 1) * rate.period / rate.count
                for k, r in enumerate(scoped)
                if r.kind == "write" and r.status is not None and r.status < 300
            ]
        ideal, critical = max(
            (len(times) * rates[a].period / rates[a].count, a) for a, times in timelines.items()
        )
        m, rate = len(timelines[critical]), rates[critical]
        return _Round(
            elapsed=finished - started,
            ideal=ideal,
            floor=(m - 1) // rate.count * rate.period,
            critical=critical,
            critical_requests=m,
            startup=min(times[0] for times in timelines.values() if times) - started,
            requests=sum(len(times) for times in timelines.values()),
            violations=sim.violations(),
            exit_code=exit_code,
            completed=completed,
            ideal_completed=ideal_completed,
        )


def run(*, rounds: int = ROUNDS, chart: Path | None = CHART) -> list[Figure]:
    """`rounds` runs of the scenario; medians (violations and exit codes: the worst). The chart
    is of the run whose ratio is the median."""
    runs: list[_Round] = []
    for r in range(rounds):
        print(f"    makespan: round {r + 1}", flush=True)
        runs.append(_one_round())
    ratios = sorted((x.elapsed / x.ideal, i) for i, x in enumerate(runs))
    median = runs[ratios[len(ratios) // 2][1]]
    if chart is not None:
        write_completion_svg(
            chart,
            median.completed,
            ideal=median.ideal_completed,
            title=f"Makespan job: {len(median.completed)} operations over {ACCOUNTS} accounts "
            f"at 5, 10 and 20 requests/s",
            note=f"median of {rounds} runs: {median.elapsed:.1f} s for an ideal of "
            f"{median.ideal:.1f} s (x{median.elapsed / median.ideal:.3f}), 0 over the limits"
            if median.violations == 0
            else f"{median.violations} requests over the limits",
        )
    critical = median.critical
    rate = RATES[int(critical.rsplit("_", 1)[1]) % len(RATES)]
    return [
        Figure(
            "makespan.ratio",
            statistics.median(x.elapsed / x.ideal for x in runs),
            "",
            1.05,
            "<=",
            f"makespan / ideal, median of {rounds} ({ratios[0][0]:.3f}..{ratios[-1][0]:.3f})",
        ),
        Figure(
            "makespan.floor_ratio",
            statistics.median(x.elapsed / x.floor for x in runs),
            "",
            note="makespan / ⌊(M-1)/N⌋·T",
        ),
        Figure("makespan.elapsed_s", statistics.median(x.elapsed for x in runs), "s"),
        Figure(
            "makespan.ideal_s",
            median.ideal,
            "s",
            note=f"critical {critical}: {median.critical_requests} req at {rate}",
        ),
        Figure("makespan.startup_s", statistics.median(x.startup for x in runs), "s"),
        Figure("makespan.requests", float(median.requests), "", note=f"{ACCOUNTS} accounts"),
        Figure("makespan.violations", float(max(x.violations for x in runs)), "", 0, "=="),
        Figure("makespan.exit_code", float(max(x.exit_code for x in runs)), "", 0, "=="),
    ]


if __name__ == "__main__":
    for figure in run():
        print(f"{figure.name:28} {figure.value_text:>14}  {figure.verdict}  {figure.note}")
