"""What the write-ahead intent costs: every write attempt waits for its intent to be fsync'd.

A `LedgerWriter` on a file in the project's directory (the disk a real ledger lives on, not a
tmpfs where fsync is free) takes intents with `append_durable`:

- `intent_wall_us_1`: one writer at a time — the full cost of an fsync per intent;
- `intent_wall_us_64`: 64 writers at once (64 accounts writing together) — group commit lets the
  intents handed over during one fsync share the next one;
- `fsyncs_per_intent_64`: how many fsyncs those 64-at-once intents needed, per intent;
- `intent_cpu_us_1` / `intent_cpu_us_64`: CPU (all threads, the fsync's kernel time included) per
  intent in each;
- `op_record_us`: an `op` record for comparison (written at once, fsync'd in batches).

The figures go into the `ledger` module docstring.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import anyio

from benchmarks.figures import ROOT, Figure
from bulkgroups.ledger import LedgerWriter
from bulkgroups.model import Operation, Outcome
from bulkgroups.records import IntentRecord, OpRecord, format_time

SINGLE = 400
WRITERS = 64
EACH = 25
AT = format_time(0)


def _intent(i: int) -> IntentRecord:
    op = Operation(f"acc_{i % 64}", f"chat_{i % 1000}", "add", user=f"ACoAN{i:06d}")
    return IntentRecord.of(op, run_id="bench", attempt=1, at=AT)


async def _single(path: Path) -> float:
    async with LedgerWriter(path) as ledger:
        started = time.perf_counter()
        for i in range(SINGLE):
            await ledger.append_durable(_intent(i))
        return (time.perf_counter() - started) / SINGLE * 1e6


async def _concurrent(path: Path, fsyncs: list[int]) -> float:
    def counting_fsync(fd: int) -> None:
        fsyncs.append(fd)
        os.fsync(fd)

    async with LedgerWriter(path, fsync=counting_fsync) as ledger:

        async def writer(first: int) -> None:
            for i in range(first, first + EACH):
                await ledger.append_durable(_intent(i))

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for w in range(WRITERS):
                tg.start_soon(writer, w * EACH)
        return (time.perf_counter() - started) / (WRITERS * EACH) * 1e6


async def _op_records(path: Path) -> float:
    outcome = Outcome(Operation("acc", "chat", "add", user="ACoAN000001"), "applied", None, 1)
    async with LedgerWriter(path) as ledger:
        started = time.perf_counter()
        for _ in range(SINGLE * 10):
            await ledger.append(OpRecord.of(outcome, run_id="bench", at=AT))
        await ledger.append_durable(_intent(0))  # every record before it is on disk too
        return (time.perf_counter() - started) / (SINGLE * 10) * 1e6


def run() -> list[Figure]:
    directory = Path(tempfile.mkdtemp(prefix=".bench-ledger-", dir=ROOT))
    try:
        fsyncs: list[int] = []
        cpu = time.process_time()
        single = anyio.run(_single, directory / "single.jsonl")
        cpu_single = (time.process_time() - cpu) / SINGLE * 1e6
        cpu = time.process_time()
        concurrent = anyio.run(_concurrent, directory / "concurrent.jsonl", fsyncs)
        cpu_concurrent = (time.process_time() - cpu) / (WRITERS * EACH) * 1e6
        op_us = anyio.run(_op_records, directory / "ops.jsonl")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return [
        Figure("ledger.intent_wall_us_1", single, "µs"),
        Figure("ledger.intent_wall_us_64", concurrent, "µs"),
        Figure("ledger.fsyncs_per_intent_64", len(fsyncs) / (WRITERS * EACH)),
        Figure("ledger.intent_cpu_us_1", cpu_single, "µs"),
        Figure("ledger.intent_cpu_us_64", cpu_concurrent, "µs"),
        Figure("ledger.op_record_us", op_us, "µs"),
    ]


if __name__ == "__main__":
    for figure in run():
        print(f"{figure.name:>32}: {figure.value_text}", file=sys.stdout)
