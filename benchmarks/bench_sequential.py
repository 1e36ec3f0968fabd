"""bulkgroups against the script a user would otherwise write (#13): the same 100-account job,
the same limits, each against a fresh `bulkgroups sandbox --rate 20/s` process.

- the script: `benchmarks/sequential.py` — one request at a time, sleeping 1/rate after each,
  no pacer (it lists each chat's participants, then sends the adds);
- bulkgroups: `bulkgroups apply` (a process of its own: start-up, preflight, reads, writes with
  their intents, verification and ledger included) at `--rate 20/s --write-rate 20/s --jitter 0`.

The job: 100 accounts x 1 chat x 20 adds (2,000 operations, unique user ids). Both must end with
0 requests over a limit in the simulator's count. Rounds alternate script / bulkgroups; figures
are medians.

- `speedup`: the script's wall time ÷ bulkgroups' wall time (median of the rounds' own ratios);
  goal at least 50. bulkgroups paces each account on its own, so its makespan is one account's
  share at its full rate plus start-up, where the script's is every request of every account in
  a row.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.figures import ROOT, Figure, Sandbox, as_installed, sandbox_process, sim_get

ACCOUNTS = 100
CHATS = 1
ADDS = 20
RATE = 20
ROUNDS = 5
GOAL = 50.0
TIMEOUT = 900.0


def write_csv(path: Path, accounts: int = ACCOUNTS) -> None:
    n = 0
    with path.open("w", encoding="utf-8") as out:
        out.write("account,chat,action,user,name\n")
        for a in range(accounts):
            for c in range(CHATS):
                where = f"seq_{a:03d},chat_{c}"
                out.writelines(f"{where},add,ACoAS{n + k:07d},\n" for k in range(ADDS))
                n += ADDS


def _timed(command: list[str], sandbox: Sandbox, tmp: Path) -> tuple[float, int]:
    """Wall seconds of one command against the sandbox, and the sandbox's over-limit count."""
    env = as_installed()
    started = time.perf_counter()
    done = subprocess.run(
        command, capture_output=True, cwd=ROOT, env=env, timeout=TIMEOUT, check=False
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{command[:4]} exited {done.returncode}: {done.stderr[-2000:]!r}")
    return elapsed, int(sim_get(sandbox, "violations")["total"])


def _script(job: Path, tmp: Path, accounts: int) -> tuple[float, int]:
    with sandbox_process(f"{RATE}/s") as sandbox:
        key = tmp / "key"
        key.write_text(sandbox.api_key)
        command = [sys.executable, "-m", "benchmarks.sequential", str(job), sandbox.url, str(key)]
        return _timed([*command, str(RATE)], sandbox, tmp)


def _bulkgroups(job: Path, tmp: Path, round_: int) -> tuple[float, int]:
    with sandbox_process(f"{RATE}/s") as sandbox:
        key = tmp / "key"
        key.write_text(sandbox.api_key)
        key.chmod(0o600)
        rate = f"{RATE}/s"
        command = [
            *(sys.executable, "-m", "bulkgroups", "apply", str(job)),
            *("--base-url", sandbox.url, "--api-key-file", str(key)),
            *("--rate", rate, "--write-rate", rate, "--jitter", "0", "--max-removals", "-1"),
            *("--yes", "--ledger", str(tmp / f"ledger{round_}.jsonl")),
        ]
        return _timed(command, sandbox, tmp)


def run(*, rounds: int = ROUNDS, accounts: int = ACCOUNTS) -> list[Figure]:
    script: list[float] = []
    tool: list[float] = []
    over = 0
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        job = tmp / "job.csv"
        write_csv(job, accounts)
        for r in range(rounds):
            print(f"    sequential: round {r + 1}", flush=True)
            seconds, violations = _script(job, tmp, accounts)
            script.append(seconds)
            over += violations
            seconds, violations = _bulkgroups(job, tmp, r)
            tool.append(seconds)
            over += violations
    ratios = [s / t for s, t in zip(script, tool, strict=True)]
    operations = accounts * CHATS * ADDS
    return [
        Figure(
            "sequential.speedup",
            statistics.median(ratios),
            "x",
            GOAL,
            ">=",
            f"script ÷ bulkgroups wall, median of {rounds} rounds "
            f"({min(ratios):.1f}..{max(ratios):.1f})",
        ),
        Figure("sequential.script_s", statistics.median(script), "s", note=f"{operations:,} ops"),
        Figure("sequential.bulkgroups_s", statistics.median(tool), "s", note="CLI, start-up in"),
        Figure("sequential.over_limit", float(over), "", 0, "==", "both, every round"),
    ]


if __name__ == "__main__":
    for figure in run():
        print(f"{figure.name:28} {figure.value_text:>14}  {figure.verdict}  {figure.note}")
