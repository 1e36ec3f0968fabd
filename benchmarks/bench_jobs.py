"""Job files: YAML against CSV per operation (issue #13 item 2: YAML at most 2x CSV in time and in
memory), on one generated job of 300,000 operations written both ways.

The job: 60 accounts x 100 chats x 50 users, every user distinct; even chats an imperative diff
(35 `add`, 15 `remove`), odd chats a desired state (50 `members`, the first 2 also `protect`ed,
which are not counted as operations); one user in ten given as a LinkedIn profile URL. YAML is
written as a person or a script would (block lists, one user a line), CSV as an export would.

Each load runs `load_job` in a process of its own (so peaks do not mix), `ROUNDS` rounds interleaved
YAML / CSV, median kept:
- `yaml_us_per_op`, `csv_us_per_op`: CPU time of `load_job` per operation (CPU rather than wall
  time: the machines are shared, and a load is single-threaded and does no waiting);
- `yaml_kb_per_op`, `csv_kb_per_op`: peak RSS (VmHWM) above the interpreter with bulkgroups
  imported, per operation;
- `time_ratio`, `memory_ratio`: YAML over CSV, the targets;
- `yaml_parser`: 1 when libyaml's C parser was used, 0 for the pure-Python fallback.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_memory import _peak_mb
from benchmarks.figures import ROOT, Figure

ACCOUNTS = 60
CHATS_PER_ACCOUNT = 100
USERS_PER_CHAT = 50
ADDS = 35  # of an imperative chat's users; the rest are removes
PROTECTED = 2  # of a desired-state chat's members
OPERATIONS = ACCOUNTS * CHATS_PER_ACCOUNT * USERS_PER_CHAT
ROUNDS = 5
RATIO_TARGET = 2.0


def _users(account: int, chat: int) -> list[str]:
    first = (account * CHATS_PER_ACCOUNT + chat) * USERS_PER_CHAT
    return [
        f"https://www.linkedin.com/in/person-{n:07d}/" if n % 10 == 0 else f"ACoAA{n:09d}"
        for n in range(first, first + USERS_PER_CHAT)
    ]


def write_yaml(path: Path) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write("version: 1\nchats:\n")
        for a in range(ACCOUNTS):
            for c in range(CHATS_PER_ACCOUNT):
                users = _users(a, c)
                out.write(f"  - chat: chat_{c:03d}\n    account: acc_{a:03d}\n")
                if c % 2 == 0:
                    lists = {"add": users[:ADDS], "remove": users[ADDS:]}
                else:
                    lists = {"members": users, "protect": users[:PROTECTED]}
                for key, listed in lists.items():
                    out.write(f"    {key}:\n")
                    out.writelines(f"      - {user}\n" for user in listed)


def write_csv(path: Path) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write("account,chat,action,user,name\n")
        for a in range(ACCOUNTS):
            for c in range(CHATS_PER_ACCOUNT):
                users = _users(a, c)
                where = f"acc_{a:03d},chat_{c:03d}"
                if c % 2 == 0:
                    out.writelines(f"{where},add,{user},\n" for user in users[:ADDS])
                    out.writelines(f"{where},remove,{user},\n" for user in users[ADDS:])
                else:
                    out.writelines(f"{where},member,{user},\n" for user in users)
                    out.writelines(f"{where},protect,{user},\n" for user in users[:PROTECTED])


def _phase(path: str) -> dict[str, float]:
    """Run in the child: load one job file (or nothing, for the baseline)."""
    from bulkgroups.jobs import load_job

    started = time.process_time()
    count = 0
    if path:
        job = load_job(path)
        count = sum(len(c.add) + len(c.remove) + len(c.members or ()) for c in job.chats)
    return {"peak_mb": _peak_mb(), "seconds": time.process_time() - started, "count": count}


def _child(path: str) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_jobs", path],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    ).stdout
    result: dict[str, float] = json.loads(output)
    return result


def _uses_libyaml() -> float:
    from bulkgroups.jobs.yaml_events import PARSER_NAME

    return 1.0 if PARSER_NAME == "libyaml" else 0.0


def run(*, rounds: int = ROUNDS) -> list[Figure]:
    seconds: dict[str, list[float]] = {"yaml": [], "csv": []}
    memory: dict[str, list[float]] = {"yaml": [], "csv": []}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"yaml": Path(tmp) / "job.yaml", "csv": Path(tmp) / "job.csv"}
        write_yaml(paths["yaml"])
        write_csv(paths["csv"])
        baseline = statistics.median(_child("")["peak_mb"] for _ in range(rounds))
        for _ in range(rounds):
            for kind, path in paths.items():
                phase = _child(str(path))
                if phase["count"] != OPERATIONS:
                    raise RuntimeError(f"{kind} loaded {phase['count']} operations")
                seconds[kind].append(phase["seconds"])
                memory[kind].append(phase["peak_mb"] - baseline)
        sizes = {kind: path.stat().st_size / 1e6 for kind, path in paths.items()}
    us = {kind: statistics.median(s) / OPERATIONS * 1e6 for kind, s in seconds.items()}
    kb = {kind: statistics.median(m) * 1024 / OPERATIONS for kind, m in memory.items()}
    ops = f"{OPERATIONS:,} ops"
    return [
        Figure("jobs.time_ratio", us["yaml"] / us["csv"], "", RATIO_TARGET, "<=", "YAML / CSV"),
        Figure("jobs.memory_ratio", kb["yaml"] / kb["csv"], "", RATIO_TARGET, "<=", "YAML / CSV"),
        Figure("jobs.yaml_us_per_op", us["yaml"], "µs", note=f"{ops}, {sizes['yaml']:.1f} MB"),
        Figure("jobs.csv_us_per_op", us["csv"], "µs", note=f"{ops}, {sizes['csv']:.1f} MB"),
        Figure("jobs.yaml_kb_per_op", kb["yaml"], "KB", note="peak RSS above the baseline"),
        Figure("jobs.csv_kb_per_op", kb["csv"], "KB", note="peak RSS above the baseline"),
        Figure("jobs.baseline_mb", baseline, "MB", note="imports only"),
        Figure("jobs.yaml_parser", _uses_libyaml(), note="1 = libyaml's C parser"),
    ]


if __name__ == "__main__":
    if len(sys.argv) == 2:
        print(json.dumps(_phase(sys.argv[1])))
    else:
        for figure in run():
            print(f"{figure.name:24} {figure.value_text:>14}  {figure.verdict}  {figure.note}")
