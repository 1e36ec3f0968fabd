"""Pacing benchmarks: the gate's own cost per request, and the rate it achieves in real time.

Figures, not assertions (the tests prove the limits on a virtual clock):
- `gate_us_unlimited` / `gate_us_high_limit`: µs per `gate()` enter + exit, one task, limits off
  and with a limit too high to ever wait (the sliding log is kept and checked);
- `gate_us_contended`: µs per request with 64 tasks over 16 accounts sharing 8 slots;
- `achieved_over_configured_{min,mean}`: for a backlog on 20 accounts at 50/s each for ~2 s of real
  time, the ideal makespan ⌊(M-1)/N⌋·T over the achieved one (1.0 = the full configured rate; the
  2 % safety margin alone costs about 0.02);
- `violations`: windows of length T holding more than N sends (by the stamps taken in the gate).
"""

from __future__ import annotations

import time
from collections import defaultdict

import anyio
import anyio.lowlevel

from bulkgroups.model import RateSpec
from bulkgroups.pacing import Pacing, PacingPolicy

UNLIMITED = PacingPolicy(rate=None, write_rate=None)
HIGH_LIMIT = PacingPolicy(rate=RateSpec(10**9, 1.0), write_rate=RateSpec(10**9, 1.0))


async def _gate_overhead(policy: PacingPolicy, requests: int) -> float:
    pacing = Pacing(concurrency=64, default=policy)
    gate = pacing.gate
    for _ in range(1000):  # warm up: locks created, code paths hot
        async with gate("acc", "read"):
            pass
    start = time.perf_counter()
    for i in range(requests):
        async with gate("acc", "write" if i & 1 else "read"):
            pass
    return (time.perf_counter() - start) / requests * 1e6


async def _contended_overhead(requests_per_task: int) -> float:
    pacing = Pacing(concurrency=8, default=HIGH_LIMIT)
    tasks = 64

    async def work(account: str) -> None:
        for _ in range(requests_per_task):
            async with pacing.gate(account, "read"):
                await anyio.lowlevel.checkpoint()  # the "send": give the loop to others

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for i in range(tasks):
            tg.start_soon(work, f"acc{i % 16}")
    return (time.perf_counter() - start) / (tasks * requests_per_task) * 1e6


async def _baseline_checkpoint(requests: int) -> float:
    """What the contended loop costs without any gate: the event loop's own share."""
    tasks = 64

    async def work() -> None:
        for _ in range(requests):
            await anyio.lowlevel.checkpoint()

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(tasks):
            tg.start_soon(work)
    return (time.perf_counter() - start) / (tasks * requests) * 1e6


def _violations(times: list[float], spec: RateSpec) -> int:
    ordered = sorted(times)
    return sum(
        1 for a, b in zip(ordered, ordered[spec.count :], strict=False) if b - a <= spec.period
    )


async def _achieved_rate(accounts: int, rate: RateSpec, periods: int) -> tuple[float, float, int]:
    policy = PacingPolicy(rate=rate, write_rate=None)
    pacing = Pacing(concurrency=64, default=policy)
    backlog = rate.count * periods + 1  # ideal makespan: exactly `periods` periods
    sent: dict[str, list[float]] = defaultdict(list)

    async def work(account: str, share: int) -> None:
        for _ in range(share):
            async with pacing.gate(account, "read"):
                sent[account].append(time.monotonic())
                await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        for a in range(accounts):
            account = f"acc{a}"
            per_task, extra = divmod(backlog, 8)
            for t in range(8):
                tg.start_soon(work, account, per_task + (1 if t < extra else 0))

    ideal = periods * rate.period
    ratios = [ideal / (max(ts) - min(ts)) for ts in sent.values()]
    violations = sum(_violations(ts, rate) for ts in sent.values())
    return min(ratios), sum(ratios) / len(ratios), violations


def run() -> dict[str, float]:
    """Run every pacing benchmark once; figures keyed by name."""

    async def main() -> dict[str, float]:
        ratio_min, ratio_mean, violations = await _achieved_rate(
            accounts=20, rate=RateSpec(50, 1.0), periods=2
        )
        return {
            "gate_us_unlimited": await _gate_overhead(UNLIMITED, 100_000),
            "gate_us_high_limit": await _gate_overhead(HIGH_LIMIT, 100_000),
            "gate_us_contended": await _contended_overhead(500),
            "loop_us_baseline": await _baseline_checkpoint(500),
            "achieved_over_configured_min": ratio_min,
            "achieved_over_configured_mean": ratio_mean,
            "violations": float(violations),
        }

    return anyio.run(main)


if __name__ == "__main__":
    for name, value in run().items():
        print(f"pacing.{name:32} {value:10.3f}")
