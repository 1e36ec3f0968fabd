"""Makespan under faults (issue #12): rate control must stay fast when a few requests fail.

Faults injected by the simulator on account-scoped requests: 5 % 500, 2 % 429 with
`Retry-After: 1`, 1 % connection resets, 1 % writes applied then answered 500.

- `ratio` (median of `ROUNDS` runs, each with its own seed): the makespan job of
  `bench_makespan` (120 accounts at 5, 10 and 20/s, every tenth with 4x the chats, simulator in
  its own thread, default retry policy) with those faults, over an ideal that also counts the
  pauses the server demanded: max over accounts of (account-scoped requests seen by the
  simulator x T / N + the sum of the Retry-After of the account's 429s).
- `e2e_ratio`: the issue's own figure, through the real CLI: `bulkgroups apply` (a process of its
  own: start-up, ledger, retries, pauses and verification included) of a 200-operation job over 5
  accounts (8 chats each: 3 adds and 2 removes) at 20/s per account, against a
  `bulkgroups sandbox --rate 20/s --faults ...` process; over the plain ideal, max over accounts of
  (the requests a fault-free run of the same job needs x T / N). The worst of `E2E_SEEDS` seeds
  (the mean too). Before issue #12 this took x11-14. `e2e_paused_ratio` holds each run to its own
  ideal with the pauses its 429s asked for: what is left is the client's (start-up included).
- `e2e_harsh_*`: the same with the harsher mix of the run that opened issue #12 (5 % 500, 3 % 429,
  2 % resets, 3 % applied then 500), held to the same 2.5.
- `violations`: requests the simulator counted over a limit (must be 0).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import yaml

from benchmarks.bench_makespan import ACCOUNTS, CHATS, HEAVY_CHATS, RATES, _chats
from benchmarks.figures import ROOT, Figure, Sandbox, as_installed, sandbox_process, sim_get
from bulkgroups.client import UnipileClient
from bulkgroups.engine import EngineConfig, apply_job
from bulkgroups.jobs import load_job
from bulkgroups.model import RateSpec
from bulkgroups.simulator import SimConfig, initial_members, owner_id, parse_faults, run_in_thread

FAULTS = "500=0.05,429=0.02,reset=0.01,applied500=0.01"
# The mix of the measurement that opened issue #12 (x11-14 then): more 429s, resets and writes
# applied then answered 500.
HARSH_FAULTS = "500=0.05,429=0.03,reset=0.02,applied500=0.03"
RETRY_AFTER = 1.0  # what each injected 429 asks for (and a window 429 of a 1 s window)
SEED = 12
ROUNDS = 5  # in-process runs, seeds SEED .. SEED + 4

E2E_ACCOUNTS = 5
E2E_CHATS = 8
E2E_RATE = RateSpec(20, 1.0)
E2E_SEEDS = (1, 2, 3, 4, 5)
E2E_TIMEOUT = 600.0  # seconds a CLI run may take before the benchmark gives up on it


def _pauses(requests: list[Any]) -> float:
    """Seconds of pause Unipile's 429s demanded of one account."""
    limited = [r for r in requests if r.status == 429 and r.error_type == "api/too_many_requests"]
    return RETRY_AFTER * len(limited)


def _in_process(rounds: int) -> list[Figure]:
    """`rounds` runs (seeds SEED, SEED + 1, ...); the median ratio, the worst counts."""
    runs = []
    for r in range(rounds):
        print(f"    faults: in-process round {r + 1}", flush=True)
        runs.append(_in_process_round(SEED + r))
    runs.sort(key=lambda figures: figures[0].value)
    median = runs[len(runs) // 2]
    spread = f"{runs[0][0].value:.3f}..{runs[-1][0].value:.3f}"
    ratio = median[0]
    return [
        Figure(
            ratio.name,
            ratio.value,
            ratio.unit,
            ratio.target,
            ratio.compare,
            f"{ratio.note}, median of {rounds} seeds ({spread})",
        ),
        *median[1:4],
        Figure("faults.violations", max(f[4].value for f in runs), "", 0, "=="),
        Figure("faults.exit_code", max(f[5].value for f in runs), "", 0, "=="),
    ]


def _in_process_round(seed: int) -> list[Figure]:
    """The makespan job under faults, in this process against a simulator in a thread."""
    config = SimConfig(faults=parse_faults(FAULTS), seed=seed)
    with tempfile.TemporaryDirectory() as tmp, run_in_thread(config) as sim:
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
        engine_config = EngineConfig(
            rate=RATES[0], write_rate=RATES[0], verify_delay=0.05, max_removals=None
        )

        async def apply() -> tuple[float, int]:
            started = time.monotonic()
            async with UnipileClient(sim.url, api_key=sim.api_key) as client:
                result = await apply_job(
                    job, client, ledger=Path(tmp) / "l.jsonl", config=engine_config
                )
            return time.monotonic() - started, result.exit_code

        elapsed, exit_code = anyio.run(apply)
        ideal, critical, requests, pauses = max(
            (
                len(sim.timeline(a)) * rates[a].interval + _pauses(list(sim.requests(a))),
                a,
                len(sim.timeline(a)),
                _pauses(list(sim.requests(a))),
            )
            for a in rates
        )
        injected = sum(1 for r in sim.requests() if r.fault)
        violations = sim.violations()
    return [
        Figure("faults.ratio", elapsed / ideal, "", 1.3, "<=", "makespan / ideal with pauses"),
        Figure("faults.elapsed_s", elapsed, "s"),
        Figure(
            "faults.ideal_s",
            ideal,
            "s",
            note=f"critical {critical}: {requests} req at {rates[critical]} + {pauses:g} s paused",
        ),
        Figure("faults.injected", float(injected), "", note=FAULTS),
        Figure("faults.violations", float(violations), "", 0, "=="),
        Figure("faults.exit_code", float(exit_code), "", 0, "=="),
    ]


# --------------------------------------------------------------------------------------------
# End to end, through the CLI
# --------------------------------------------------------------------------------------------


def _e2e_job(path: Path) -> Path:
    """5 accounts x 8 chats, each chat 2 removes and 3 adds: 200 writes."""
    chats: list[dict[str, Any]] = []
    for a in range(E2E_ACCOUNTS):
        account = f"acc_e2e_{a}"
        owner = owner_id(account)
        for c in range(E2E_CHATS):
            chat = f"chat_{c}"
            members = [m for m in initial_members(account, chat) if m != owner]
            newcomers = [
                u for u in (f"ACoAA{n:04d}" for n in range(500, 0, -1)) if u not in members
            ][:3]
            chats.append(
                {"chat": chat, "account": account, "add": newcomers, "remove": members[:2]}
            )
    path.write_text(yaml.safe_dump({"version": 1, "chats": chats}, sort_keys=False))
    return path


@dataclass(frozen=True, slots=True)
class _CliRun:
    elapsed: float  # wall time of the `bulkgroups apply` process
    exit_code: int
    most_requests: int  # the most account-scoped requests any account sent
    paused_ideal: float  # max over accounts of requests x T / N + the Retry-After asked of it
    violations: int


def _cli_apply(sandbox: Sandbox, tmp: Path, job: Path, name: str) -> _CliRun:
    """`bulkgroups apply` in a process of its own, and what the sandbox counted."""
    key = tmp / f"{name}.key"
    key.write_text(sandbox.api_key)
    key.chmod(0o600)
    rate = str(E2E_RATE)
    command = [
        sys.executable,
        "-m",
        "bulkgroups",
        "apply",
        str(job),
        "--base-url",
        sandbox.url,
        "--api-key-file",
        str(key),
        "--rate",
        rate,
        "--write-rate",
        rate,
        "--jitter",
        "0",
        "--max-removals",
        "-1",
        "--yes",
        "--ledger",
        str(tmp / f"{name}.jsonl"),
    ]
    env = as_installed()
    started = time.perf_counter()
    done = subprocess.run(
        command, capture_output=True, cwd=ROOT, env=env, timeout=E2E_TIMEOUT, check=False
    )
    elapsed = time.perf_counter() - started
    most, paused_ideal = 0, 0.0
    for a in range(E2E_ACCOUNTS):
        log = sim_get(sandbox, f"requests?account=acc_e2e_{a}")["requests"]
        scoped = [r for r in log if r["kind"] in ("read", "write") and not r["cached"]]
        limited = [
            r for r in scoped if r["status"] == 429 and r["error_type"] == "api/too_many_requests"
        ]
        most = max(most, len(scoped))
        paused_ideal = max(
            paused_ideal, len(scoped) * E2E_RATE.interval + RETRY_AFTER * len(limited)
        )
    violations = int(sim_get(sandbox, "violations")["total"])
    return _CliRun(elapsed, done.returncode, most, paused_ideal, violations)


def _end_to_end(seeds: tuple[int, ...]) -> list[Figure]:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        job = _e2e_job(tmp / "job.yaml")
        with sandbox_process(str(E2E_RATE)) as sandbox:
            plain = _cli_apply(sandbox, tmp, job, "plain")
        if plain.exit_code != 0:
            raise RuntimeError(f"the fault-free CLI run exited {plain.exit_code}")
        ideal = plain.most_requests * E2E_RATE.interval
        figures = _faulty_runs(tmp, job, seeds, FAULTS, "e2e", ideal)
        figures += _faulty_runs(tmp, job, seeds, HARSH_FAULTS, "e2e_harsh", ideal)
    return [
        *figures,
        Figure(
            "faults.e2e_plain_ideal_s",
            ideal,
            "s",
            note=f"{plain.most_requests} req per account at {E2E_RATE}",
        ),
        Figure("faults.e2e_plain_elapsed_s", plain.elapsed, "s", note="the same job, no faults"),
    ]


def _faulty_runs(
    tmp: Path, job: Path, seeds: tuple[int, ...], faults: str, name: str, ideal: float
) -> list[Figure]:
    """The job through the CLI once per seed against a sandbox injecting `faults`."""
    runs: list[_CliRun] = []
    for seed in seeds:
        with sandbox_process(str(E2E_RATE), faults=faults, seed=seed) as sandbox:
            runs.append(_cli_apply(sandbox, tmp, job, f"{name}{seed}"))
    worst = max(runs, key=lambda r: r.elapsed)
    times = ", ".join(f"{r.elapsed:.1f} s" for r in runs)
    return [
        Figure(
            f"faults.{name}_ratio",
            worst.elapsed / ideal,
            "",
            2.5,
            "<=",
            f"worst CLI makespan / plain ideal; faults {faults}",
        ),
        Figure(f"faults.{name}_elapsed_s", worst.elapsed, "s", note=f"seeds {seeds}: {times}"),
        Figure(f"faults.{name}_mean_ratio", statistics.mean(r.elapsed for r in runs) / ideal, ""),
        Figure(
            f"faults.{name}_paused_ratio",
            max(r.elapsed / r.paused_ideal for r in runs),
            "",
            note="worst CLI makespan / its ideal with the pauses the server asked for",
        ),
        Figure(f"faults.{name}_violations", float(sum(r.violations for r in runs)), "", 0, "=="),
        Figure(f"faults.{name}_exit_code", float(max(r.exit_code for r in runs)), "", 0, "=="),
    ]


def run(*, rounds: int = ROUNDS, seeds: tuple[int, ...] = E2E_SEEDS) -> list[Figure]:
    """Both scenarios; figures as described in the module docstring."""
    return _in_process(rounds) + _end_to_end(seeds)


if __name__ == "__main__":
    for figure in run():
        print(f"{figure.name:28} {figure.value_text:>14}  {figure.verdict}  {figure.note}")
