"""Smoke tests of benchmarks/ at tiny sizes (the benchmarks themselves are `make bench`, not tests):
each module runs as `make bench` runs it, `python -m benchmarks....` from the project's root."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bulkgroups.simulator import Simulator

ROOT = Path(__file__).resolve().parent.parent


def _module(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_a_1000_member_chat_is_read_in_the_minimum_of_full_pages() -> None:
    done = _module("benchmarks.bench_pages")
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line.split() for line in done.stdout.splitlines() if line.strip()}
    assert lines["pages.plan_ratio"][1:3] == ["1", "PASS"]
    assert lines["pages.apply_ratio"][1:3] == ["1", "PASS"]


def test_the_sequential_baseline_applies_its_job_within_the_limits(
    sim: Simulator, tmp_path: Path
) -> None:
    job = tmp_path / "job.csv"
    job.write_text(
        "account,chat,action,user,name\n"
        + "".join(f"acc_seq_{a},chat_0,add,ACoAS000{a}{k},\n" for a in range(2) for k in range(3))
    )
    key = tmp_path / "key"
    key.write_text(sim.api_key)
    done = _module("benchmarks.sequential", str(job), sim.url, str(key), "50")
    assert done.returncode == 0, done.stderr
    for a in range(2):
        members = sim.members(f"acc_seq_{a}", "chat_0")
        assert {f"ACoAS000{a}{k}" for k in range(3)} <= members
    assert sim.violations() == 0


@pytest.mark.parametrize("kind", ["bare", "client", "engine"])
def test_every_overhead_loop_sends_the_same_requests(
    sim: Simulator, tmp_path: Path, kind: str
) -> None:
    """2 accounts x 2 chats: each loop sends its 22 requests (the child checks the count)."""
    done = _module(
        "benchmarks.bench_overhead",
        "child",
        kind,
        sim.url,
        f"{kind}_",
        "2",
        "2",
        env={"BULKGROUPS_BENCH_KEY": sim.api_key},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["requests"] == 22
    assert sim.violations() == 0


def test_measure_reports_a_commands_own_peak_memory_and_exit_code(tmp_path: Path) -> None:
    figures = tmp_path / "figures.json"
    done = _module(
        "benchmarks.measure",
        str(figures),
        sys.executable,
        "-c",
        "import sys; block = bytearray(80 * 1024 * 1024); sys.exit(3)",
    )
    assert done.returncode == 0, done.stderr
    measured = json.loads(figures.read_text())
    assert measured["exit_code"] == 3
    assert measured["peak_mb"] >= 80
    assert measured["user_s"] >= 0 and measured["wall_s"] > 0


def test_startup_times_help_and_validate_against_a_bare_interpreter() -> None:
    done = _module("benchmarks.bench_startup", "1")
    assert done.returncode == 0, done.stderr
    names = [line.split()[0] for line in done.stdout.splitlines() if line.strip()]
    assert names == [
        "startup.bare_python_s",
        "startup.help_s",
        "startup.help_ratio",
        "startup.validate_s",
        "startup.validate_ratio",
    ]
