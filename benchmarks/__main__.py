"""`python -m benchmarks [--quick] [NAME...]` (`make bench`, `make bench-quick`): run the
benchmarks (all by default, in the order of `BENCHMARKS`), print every figure and, for a full run
of all of them, rewrite benchmarks/RESULTS.md: the commit, date, machine and its load, then every
figure with its goal and PASS / MISS, and each benchmark's own description.

Figures with a goal are medians of interleaved rounds (each benchmark says how many); counts are
exact. `--quick` is a smoke run (tiny sizes, one round each, a few minutes): it prints the
figures and leaves RESULTS.md alone. A full run takes about 25 minutes on a quiet 2-core machine.
"""

from __future__ import annotations

import datetime
import inspect
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
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
    bench_pages,
    bench_scale,
    bench_sequential,
    bench_startup,
)
from benchmarks.figures import ROOT, Compare, Figure

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"

# Issue #3: "a few microseconds is the bar" for the gate's own cost.
GATE_US = 5.0


def _pacing(quick: bool) -> list[Figure]:
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


def _scale(quick: bool) -> list[Figure]:
    if quick:
        return bench_scale.run(rounds=1, sizes={"1k": 2, "10k": 20})
    return bench_scale.run()


def _sequential(quick: bool) -> list[Figure]:
    return bench_sequential.run(rounds=1, accounts=5) if quick else bench_sequential.run()


def _overhead(quick: bool) -> list[Figure]:
    return bench_overhead.run(rounds=1, accounts=40) if quick else bench_overhead.run()


def _makespan(quick: bool) -> list[Figure]:
    return bench_makespan.run(rounds=1, chart=None) if quick else bench_makespan.run()


def _faults(quick: bool) -> list[Figure]:
    return bench_faults.run(rounds=1, seeds=(1,)) if quick else bench_faults.run()


def _jobs(quick: bool) -> list[Figure]:
    return bench_jobs.run(rounds=1) if quick else bench_jobs.run()


@dataclass(frozen=True, slots=True)
class Benchmark:
    module: ModuleType
    run: Callable[[bool], list[Figure]]


BENCHMARKS: dict[str, Benchmark] = {
    "overhead": Benchmark(bench_overhead, _overhead),
    "makespan": Benchmark(bench_makespan, _makespan),
    "sequential": Benchmark(bench_sequential, _sequential),
    "pages": Benchmark(bench_pages, lambda quick: bench_pages.run()),
    "faults": Benchmark(bench_faults, _faults),
    "scale": Benchmark(bench_scale, _scale),
    "memory": Benchmark(bench_memory, lambda quick: bench_memory.run()),
    "jobs": Benchmark(bench_jobs, _jobs),
    "ledger": Benchmark(bench_ledger, lambda quick: bench_ledger.run()),
    "pacing": Benchmark(bench_pacing, _pacing),
    "startup": Benchmark(bench_startup, lambda quick: bench_startup.run(2 if quick else 15)),
}


class LoadSampler:
    """The machine's 1-minute load average, sampled every 15 s in a thread for the run's
    length: a figure measured on a busy machine is not one measured on a quiet one."""

    def __init__(self) -> None:
        self.samples: list[float] = [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(15.0):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=20.0)
        self.samples.append(os.getloadavg()[0])

    def text(self) -> str:
        s = self.samples
        return (
            f"1-min load average {s[0]:.2f} at the start, {s[-1]:.2f} at the end, "
            f"{sum(s) / len(s):.2f} mean and {max(s):.2f} max of {len(s)} samples "
            "(the benchmarks' own processes included; 2 = both cores busy)"
        )


def _commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, cwd=ROOT, check=False
        ).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "bulkgroups", "benchmarks")
    return commit + (" (with uncommitted changes)" if dirty else "")


def _machine() -> str:
    return (
        f"{os.cpu_count()} CPUs ({platform.machine()}, {platform.system()} {platform.release()}), "
        f"Python {platform.python_version()} ({platform.python_implementation()})"
    )


def _section(name: str, module: ModuleType, figures: list[Figure], seconds: float) -> list[str]:
    lines = [f"## {name} ({seconds:.0f} s)", "", "| figure | value | goal | verdict | note |"]
    lines.append("|---|---:|---|---|---|")
    for f in figures:
        lines.append(f"| `{f.name}` | {f.value_text} | {f.target_text} | {f.verdict} | {f.note} |")
    doc = inspect.getdoc(module) or ""
    lines += ["", *doc.splitlines(), ""]
    if name == "makespan":
        lines += ["![operations completed over time](makespan.svg)", ""]
    return lines


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    names = [a for a in argv if a != "--quick"]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
        return 2
    chosen = names or list(BENCHMARKS)
    started = datetime.datetime.now(datetime.UTC)
    commit, machine = _commit(), _machine()
    mode = " (quick)" if quick else ""
    print(f"bulkgroups benchmarks{mode}, {commit}, {started:%Y-%m-%d %H:%M} UTC, {machine}")
    body: list[str] = []
    summary: list[Figure] = []
    # The runs hand over their last send times (`recent_sends`) in a state directory of the
    # benchmark's own, never the user's: each scenario talks to a sandbox of its own.
    state = tempfile.TemporaryDirectory(prefix="bulkgroups-bench-state-")
    os.environ["BULKGROUPS_STATE_DIR"] = state.name
    with state, LoadSampler() as load:
        for name in chosen:
            print(f"  {name}", flush=True)
            clock = time.perf_counter()
            figures = BENCHMARKS[name].run(quick)
            seconds = time.perf_counter() - clock
            for f in figures:
                print(
                    f"  {f.name:34} {f.value_text:>16}  {f.target_text:>12}  {f.verdict:4}  {f.note}"
                )
            print(f"  ({name}: {seconds:.0f} s)", flush=True)
            summary += [f for f in figures if f.target is not None]
            body += _section(name, BENCHMARKS[name].module, figures, seconds)
    finished = datetime.datetime.now(datetime.UTC)
    misses = [f for f in summary if f.verdict == "MISS"]
    print(f"{len(summary) - len(misses)} of {len(summary)} goals met; {load.text()}")
    head = [
        "# bulkgroups benchmarks",
        "",
        f"- commit: {commit}",
        f"- date: {started:%Y-%m-%d %H:%M} UTC ({(finished - started).total_seconds():.0f} s)",
        f"- machine: {machine}",
        f"- load: {load.text()}",
        "- run: `make bench` (`python -m benchmarks`); this file is rewritten by every full run",
        "",
        "| figure | value | goal | verdict |",
        "|---|---:|---|---|",
        *(f"| `{f.name}` | {f.value_text} | {f.target_text} | {f.verdict} |" for f in summary),
        "",
        f"**{len(summary) - len(misses)} of {len(summary)} goals met**"
        + (f"; missed: {', '.join(f.name for f in misses)}" if misses else ""),
        "",
    ]
    if set(chosen) == set(BENCHMARKS) and not quick:
        RESULTS.write_text("\n".join(head + body), encoding="utf-8")
        print(f"wrote {RESULTS}")
    else:
        print("(a quick run or a subset: RESULTS.md left as it was)")
    return 0  # figures, not a test: a missed goal is reported, not an error


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
