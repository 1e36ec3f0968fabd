"""Standard output closed early (`bulkgroups report L --format csv | head`): the command ends
quietly with 141, what a shell shows for a command ended by a closed pipe, never a traceback;
and `apply`, whose run is done and recorded by then, still exits with the run's own code (1
would say that nothing was sent)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bulkgroups.simulator import initial_members

from helpers.engine import ledger_records, write_job

ROOT = Path(__file__).resolve().parent.parent
JOBS = ROOT / "jobs"


def closed_stdout(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`bulkgroups ARGS` with a standard output whose reader has gone: every write to it fails."""
    reader, writer = os.pipe()
    os.close(reader)
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNIPILE_")}
    env["PYTHONPATH"] = str(ROOT)
    try:
        return subprocess.run(
            [sys.executable, "-m", "bulkgroups", *map(str, args)],
            stdin=subprocess.DEVNULL,
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
            env=env,
            timeout=60,
        )
    finally:
        os.close(writer)


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    """A ledger of one run of the example job against the sandbox."""
    path = tmp_path / "ledger.jsonl"
    command = [sys.executable, "-m", "bulkgroups", "apply", JOBS / "cohorts.yaml", "--sandbox"]
    done = subprocess.run(
        [*command, "--ledger", str(path)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return path


@pytest.mark.parametrize(
    "command",
    [
        ("validate", JOBS / "cohorts.yaml"),
        ("report", "{ledger}", "--format", "csv"),
        ("report", "{ledger}"),
        ("report", "{ledger}", "--format", "json"),
        ("undo", "{ledger}"),
        ("plan", JOBS / "cohorts.yaml", "--sandbox"),
        ("plan", JOBS / "cohorts.yaml", "--sandbox", "--format", "json"),
        ("apply", JOBS / "cohorts.yaml", "--sandbox", "--dry-run"),
        ("export", "--account", "acc_1", "--sandbox"),
    ],
    ids=lambda command: " ".join(str(c) for c in command[:1] + command[2:]),
)
def test_a_command_whose_output_is_no_longer_read_ends_quietly_with_141(
    ledger: Path, tmp_path: Path, command: tuple[str | Path, ...]
) -> None:
    args = [str(ledger) if part == "{ledger}" else part for part in command]
    done = closed_stdout(*args, cwd=tmp_path)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 141, done.stderr


def test_apply_whose_output_is_no_longer_read_exits_with_the_runs_code(tmp_path: Path) -> None:
    current = initial_members("acc_1", "team")
    job = write_job(
        tmp_path / "job.yaml",
        [{"chat": "team", "account": "acc_1", "add": ["ACoAA0499"], "remove": [current[1]]}],
    )
    ledger = tmp_path / "ledger.jsonl"
    done = closed_stdout("apply", job, "--sandbox", "--ledger", ledger, cwd=tmp_path)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr
    records = ledger_records(ledger)
    assert records[-1]["type"] == "end" and records[-1]["counts"]["applied"] == 2
