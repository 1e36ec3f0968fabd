"""`python -m benchmarks [NAME...]` (`make bench`): run the benchmarks (all by default: makespan,
overhead, memory, pacing, faults, jobs, ledger), print every figure and overwrite
benchmarks/RESULTS.md with a fresh table: date, machine, each figure with its target and PASS /
MISS. A missed CPU target adds a
profile of the engine run to RESULTS.md."""

from __future__ import annotations

import datetime
import inspect
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from benchmarks import (
    bench_faults,
    bench_jobs,
    bench_ledger,
    bench_makespan,
    bench_memory,
    bench_overhead,
    bench_pacing,
)
from benchmarks.figures import Compare, Figure

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"

# Issue #3: "a few microseconds is the bar" for the gate's own cost.
GATE_US = 5.0


def _pacing() -> list[Figure]:
    figures = bench_pacing.run()
    targets: dict[str, tuple[float, Compare, str]] = {
        "gate_us_unlimited": (GATE_US, "<=", "µs"),
        "gate_us_high_limit": (GATE_US, "<=", "µs"),
        "violations": (0.0, "==", ""),
    }
    units = {"gate_us_contended": "µs", "loop_us_baseline": "µs"}
    result = []
    for name, value in figures.items():
        if name in targets:
            target, compare, unit = targets[name]
            result.append(Figure(f"pacing.{name}", value, unit, target, compare))
        else:
            result.append(Figure(f"pacing.{name}", value, units.get(name, "")))
    return result


BENCHMARKS: dict[str, tuple[ModuleType, Callable[[], list[Figure]]]] = {
    "makespan": (bench_makespan, bench_makespan.run),
    "overhead": (bench_overhead, bench_overhead.run),
    "memory": (bench_memory, bench_memory.run),
    "pacing": (bench_pacing, _pacing),
    "faults": (bench_faults, bench_faults.run),
    "jobs": (bench_jobs, bench_jobs.run),
    "ledger": (bench_ledger, bench_ledger.run),
}


def _machine() -> str:
    load = os.getloadavg()
    return (
        f"{os.cpu_count()} CPUs ({platform.machine()}, {platform.system()} {platform.release()}), "
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"load average at start {load[0]:.2f}"
    )


def _section(name: str, module: ModuleType, figures: list[Figure], seconds: float) -> list[str]:
    lines = [f"## {name} ({seconds:.0f} s)", "", "| figure | value | target | verdict | note |"]
    lines.append("|---|---:|---|---|---|")
    for f in figures:
        lines.append(f"| `{f.name}` | {f.value_text} | {f.target_text} | {f.verdict} | {f.note} |")
    doc = inspect.getdoc(module) or ""
    lines += ["", *doc.splitlines(), ""]
    return lines


def main(names: list[str]) -> int:
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
        return 2
    chosen = names or list(BENCHMARKS)
    started = datetime.datetime.now(datetime.UTC)
    machine = _machine()
    print(f"bulkgroups benchmarks, {started:%Y-%m-%d %H:%M} UTC, {machine}", flush=True)
    body: list[str] = []
    summary: list[Figure] = []
    for name in chosen:
        module, bench = BENCHMARKS[name]
        clock = time.perf_counter()
        figures = bench()
        seconds = time.perf_counter() - clock
        for f in figures:
            print(f"  {f.name:34} {f.value_text:>16}  {f.target_text:>12}  {f.verdict:4}  {f.note}")
        sys.stdout.flush()
        summary += [f for f in figures if f.target is not None]
        body += _section(name, module, figures, seconds)
        if name == "overhead" and any(f.verdict == "MISS" for f in figures):
            body += [
                "### Where the engine's CPU goes (cProfile of one engine run)",
                "",
                "```",
                bench_overhead.profile(),
                "```",
                "",
            ]
    finished = datetime.datetime.now(datetime.UTC)
    misses = [f for f in summary if f.verdict == "MISS"]
    head = [
        "# bulkgroups benchmarks",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} UTC ({(finished - started).total_seconds():.0f} s)",
        f"- machine: {machine}",
        "- run: `make bench` (`python -m benchmarks`); this file is rewritten by every run",
        "",
        "| target | value | target | verdict |",
        "|---|---:|---|---|",
        *(f"| `{f.name}` | {f.value_text} | {f.target_text} | {f.verdict} |" for f in summary),
        "",
        f"**{len(summary) - len(misses)} of {len(summary)} targets met**"
        + (f"; missed: {', '.join(f.name for f in misses)}" if misses else ""),
        "",
    ]
    if set(chosen) == set(BENCHMARKS):
        RESULTS.write_text("\n".join(head + body), encoding="utf-8")
        print(
            f"wrote {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS}"
        )
    else:
        print("(a subset was run: RESULTS.md left as it was)")
    return 0  # figures, not a test: a missed target is reported, not an error


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
