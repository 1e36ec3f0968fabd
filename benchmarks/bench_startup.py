"""How soon the commands a person types most often answer (#13): `bulkgroups --help` and
`bulkgroups validate jobs/cohorts.yaml`, each a fresh process (the venv's console script), against
a bare `python -c "import argparse, json"` — the floor any Python command-line tool starts from.

Rounds are interleaved (bare, help, validate in turn) so that a machine getting busier weighs on
all three alike; figures are medians of `ROUNDS` rounds of wall time, from the spawn to the exit.

- `{cmd}_s`: wall seconds; `{cmd}_ratio`: that ÷ the bare interpreter's. The issue's goal is
  ≤ 0.15 s *or* ≤ 5× bare: a slow machine slows the interpreter as much as the tool, so the ratio
  is the figure held to its goal here and the seconds are shown beside it.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.figures import ROOT, Figure, as_installed

ROUNDS = 15
RATIO_GOAL = 5.0


def _commands() -> dict[str, list[str]]:
    tool = str(Path(sys.executable).with_name("bulkgroups"))
    return {
        "bare": [sys.executable, "-c", "import argparse, json"],
        "help": [tool, "--help"],
        "validate": [tool, "validate", str(ROOT / "jobs" / "cohorts.yaml")],
    }


def _wall(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env
    )
    return time.perf_counter() - started


def run(rounds: int = ROUNDS) -> list[Figure]:
    commands = _commands()
    env = as_installed()
    for command in commands.values():  # warm the page cache first
        _wall(command, env)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, command in commands.items():
            times[name].append(_wall(command, env))
    bare = statistics.median(times["bare"])
    figures = [Figure("startup.bare_python_s", bare, "s")]
    for name in ("help", "validate"):
        seconds = statistics.median(times[name])
        figures.append(Figure(f"startup.{name}_s", seconds, "s", note="goal ≤ 0.15 s or ≤ 5× bare"))
        figures.append(Figure(f"startup.{name}_ratio", seconds / bare, "×", RATIO_GOAL, "<="))
    return figures


if __name__ == "__main__":
    for figure in run(int(sys.argv[1]) if len(sys.argv) > 1 else ROUNDS):
        print(
            f"{figure.name:28} {figure.value_text:>10}  {figure.target_text:>8}  {figure.verdict}"
        )
