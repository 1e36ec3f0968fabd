"""Replaying a ledger of a million operations (`--resume`'s read): peak RSS in a process of its own
(VmHWM of /proc/self/status, else ru_maxrss), against 300 MB.

- `replay`: `ledger.replay` (with the job's hash, as `--resume` does) of a ledger of one `run`
  record and 1,000,000 `op` records.
- `baseline`: the interpreter with bulkgroups imported, for reference.

`validate`, `plan` and `apply` of a million operations are measured through the real CLI by
`bench_scale` (this module once measured `load_job` and `planner.plan_chat` in isolation, which
was not what the commands do).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from benchmarks.figures import ROOT, Figure

ACCOUNTS = 250
CHATS_PER_ACCOUNT = 100
MEMBERS = 40
USERS = 20_000
OPERATIONS = ACCOUNTS * CHATS_PER_ACCOUNT * MEMBERS
LIMIT_MB = 300.0
JOB_SHA = "b" * 64


def _user(account: int, chat: int, k: int) -> str:
    return f"ACoAU{(account * 7919 + chat * 104_729 + k * 31) % USERS:05d}"


def write_ledger(path: Path) -> None:
    from bulkgroups.model import op_id

    run_id = "r" * 26
    at = "2024-01-01T00:00:00.000Z"
    with path.open("wb") as out:
        out.write(
            orjson.dumps(
                {
                    "type": "run",
                    "run_id": run_id,
                    "job_sha256": JOB_SHA,
                    "resume": False,
                    "started_at": at,
                    "version": "0",
                }
            )
            + b"\n"
        )
        for a in range(ACCOUNTS):
            account = f"acc_{a:04d}"
            for c in range(CHATS_PER_ACCOUNT):
                chat = f"chat_{c:03d}"
                lines = []
                for k in range(MEMBERS):
                    user = _user(a, c, k)
                    record = {
                        "type": "op",
                        "op_id": op_id(account, chat, "add", user),
                        "run_id": run_id,
                        "account": account,
                        "chat": chat,
                        "action": "add",
                        "user": user,
                        "name": None,
                        "status": "applied",
                        "reason": None,
                        "attempts": 1,
                        "error": None,
                        "at": at,
                    }
                    lines.append(orjson.dumps(record) + b"\n")
                out.write(b"".join(lines))


def _peak_mb() -> float:
    """This process's peak RSS. VmHWM belongs to the process's own memory map; ru_maxrss (the
    fallback) survives exec, so a child could report its parent's peak instead of its own."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _phase(name: str, path: str) -> dict[str, float]:
    """Run in the child: one phase, its peak RSS, its time and what it produced."""
    from bulkgroups import ledger

    started = time.perf_counter()
    count = 0
    if name == "replay":
        count = len(ledger.replay(path, job_sha256=JOB_SHA).outcomes)
    elif name != "baseline":
        raise ValueError(name)
    return {"peak_mb": _peak_mb(), "seconds": time.perf_counter() - started, "count": count}


def _child(name: str, path: str) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_memory", name, path],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    ).stdout
    result: dict[str, float] = json.loads(output)
    return result


def run() -> list[Figure]:
    with tempfile.TemporaryDirectory() as tmp:
        ledger_path = Path(tmp) / "ledger.jsonl"
        write_ledger(ledger_path)
        baseline = _child("baseline", "")
        replayed = _child("replay", str(ledger_path))
    if replayed["count"] != OPERATIONS:
        raise RuntimeError(f"replay found {replayed['count']} operations, not {OPERATIONS}")
    ops = f"{OPERATIONS:,} ops"
    return [
        Figure(
            "memory.replay_peak_mb", replayed["peak_mb"], "MB", LIMIT_MB, "<=", f"replay, {ops}"
        ),
        Figure("memory.baseline_mb", baseline["peak_mb"], "MB", note="imports only"),
        Figure("memory.replay_s", replayed["seconds"], "s"),
    ]


if __name__ == "__main__":
    if len(sys.argv) == 3:
        print(json.dumps(_phase(sys.argv[1], sys.argv[2])))
    else:
        for figure in run():
            print(f"{figure.name:28} {figure.value_text:>14}  {figure.verdict}  {figure.note}")
