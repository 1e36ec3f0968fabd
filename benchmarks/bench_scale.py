"""The real CLI at 10k, 100k and 1M operations (#13 "Done when"): `validate`, `plan` and `apply`
of a CSV job of unique user ids, each a process of its own measured by the kernel (peak RSS,
wall, CPU: `benchmarks.measure`).

The jobs: 25 `add` rows a chat, 20 chats an account, every user id distinct — 20, 200 and 2,000
accounts. `plan` and `apply` run against `bulkgroups sandbox --rate 100/s` in a process of its
own, started afresh for each run (the same state every time), with `--rate 100/s --write-rate
100/s --jitter 0` (every account paced, the machine's CPU the bottleneck); `plan` writes its
text plan to a file, `apply` its ledger to a file (verification on, as by default).

Rounds are interleaved (every size and command once a round) and the figures are medians. At a
million operations `plan` (80,000 reads) and `apply` (1.16 million requests) take minutes each:
they run in `LARGEST_ROUNDS` round(s) only (validate in every round).

- `{cmd}_peak_mb_{size}`: peak RSS of the bulkgroups process; goals at 1M: validate 250 MB,
  plan 400 MB, apply 400 MB;
- `{cmd}_us_per_op_{size}`: wall time per operation, start-up included; `{cmd}_cpu_us_{size}`:
  CPU (user + system) of the bulkgroups process per operation;
- `{cmd}_linearity`: µs/op at 1M ÷ µs/op at 10k (wall); goal at most 1.5.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from benchmarks.figures import ROOT, Figure, as_installed, sandbox_process

CHATS = 20
ADDS = 25
SIZES = {"10k": 20, "100k": 200, "1M": 2000}  # accounts
RATE = "100/s"
ROUNDS = 5
LARGEST_ROUNDS = 1
COMMANDS = ("validate", "plan", "apply")
PEAK_GOALS_MB = {"validate": 250.0, "plan": 400.0, "apply": 400.0}
LINEARITY_GOAL = 1.5
TIMEOUT = 1800.0  # seconds one command may take before the benchmark gives up on it


def operations(accounts: int) -> int:
    return accounts * CHATS * ADDS


def write_csv(path: Path, accounts: int) -> None:
    """`accounts` accounts x 20 chats x 25 adds, every user id distinct."""
    n = 0
    with path.open("w", encoding="utf-8") as out:
        out.write("account,chat,action,user,name\n")
        for a in range(accounts):
            for c in range(CHATS):
                where = f"sc_{a:04d},chat_{c:02d},add"
                out.writelines(f"{where},ACoAU{n + k:07d},\n" for k in range(ADDS))
                n += ADDS


def _measured(command: list[str], tmp: Path, name: str) -> dict[str, float]:
    """One CLI run under `benchmarks.measure`: its figures; its output to a file in `tmp`."""
    figures_path = tmp / f"{name}.json"
    with (tmp / f"{name}.out").open("wb") as out:
        subprocess.run(
            [sys.executable, "-m", "benchmarks.measure", str(figures_path), *command],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=as_installed(),
            timeout=TIMEOUT,
            check=True,
        )
    figures: dict[str, float] = json.loads(figures_path.read_text())
    if figures["exit_code"] != 0:
        tail = (tmp / f"{name}.out").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{name} exited {figures['exit_code']}: {tail}")
    return figures


def _run(command: str, job: Path, tmp: Path, name: str) -> dict[str, float]:
    cli = [sys.executable, "-m", "bulkgroups", command, str(job)]
    if command == "validate":
        return _measured(cli, tmp, name)
    with ExitStack() as stack:
        sandbox = stack.enter_context(sandbox_process(RATE))
        key = tmp / "key"
        key.write_text(sandbox.api_key)
        key.chmod(0o600)
        pacing = ["--rate", RATE, "--write-rate", RATE, "--jitter", "0", "--max-removals", "-1"]
        connection = ["--base-url", sandbox.url, "--api-key-file", str(key)]
        extra = ["--yes", "--ledger", str(tmp / f"{name}.jsonl")] if command == "apply" else []
        try:
            return _measured([*cli, *pacing, *connection, *extra], tmp, name)
        finally:
            for leftover in (tmp / f"{name}.jsonl", tmp / f"{name}.jsonl.lock"):
                leftover.unlink(missing_ok=True)


def run(
    *,
    rounds: int = ROUNDS,
    sizes: dict[str, int] | None = None,
    largest_rounds: int = LARGEST_ROUNDS,
) -> list[Figure]:
    """Every command at every size, `rounds` rounds interleaved (`plan` and `apply` of the
    largest size in only `largest_rounds`); medians."""
    sizes = sizes or SIZES
    names = list(sizes)
    smallest, largest = names[0], names[-1]
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(dir=os.environ.get("BULKGROUPS_BENCH_TMP")) as tmp_name:
        tmp = Path(tmp_name)
        jobs = {size: tmp / f"job_{size}.csv" for size in sizes}
        for size, path in jobs.items():
            write_csv(path, sizes[size])
        for r in range(rounds):
            for size, path in jobs.items():
                for command in COMMANDS:
                    if command != "validate" and size == largest and r >= largest_rounds:
                        continue
                    print(f"    scale: round {r + 1} {command} {size}", flush=True)
                    figures = _run(command, path, tmp, f"{command}_{size}_{r}")
                    results.setdefault((command, size), []).append(figures)
    out: list[Figure] = []
    for command in COMMANDS:
        per_op: dict[str, float] = {}
        for size, accounts in sizes.items():
            runs = results[(command, size)]
            ops = operations(accounts)
            peak = statistics.median(r["peak_mb"] for r in runs)
            wall = statistics.median(r["wall_s"] for r in runs) / ops * 1e6
            cpu = statistics.median(r["user_s"] + r["sys_s"] for r in runs) / ops * 1e6
            per_op[size] = wall
            goal = PEAK_GOALS_MB[command] if size == largest else None
            note = f"{ops:,} ops, {len(runs)} run(s)"
            out.append(Figure(f"scale.{command}_peak_mb_{size}", peak, "MB", goal, "<=", note))
            out.append(Figure(f"scale.{command}_us_per_op_{size}", wall, "µs", note="wall"))
            out.append(Figure(f"scale.{command}_cpu_us_{size}", cpu, "µs", note="user + sys"))
        out.append(
            Figure(
                f"scale.{command}_linearity",
                per_op[largest] / per_op[smallest],
                "",
                LINEARITY_GOAL,
                "<=",
                f"µs/op at {largest} ÷ at {smallest}",
            )
        )
    return out


if __name__ == "__main__":
    for figure in run():
        print(f"{figure.name:34} {figure.value_text:>14}  {figure.verdict}  {figure.note}")
