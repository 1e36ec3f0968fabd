"""The example jobs in jobs/ run as their comments say: `bulkgroups plan jobs/<example> --sandbox`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bulkgroups.jobs import load_job

from helpers.cli import Cli
from helpers.engine import ledger_records

ROOT = Path(__file__).parent.parent
EXAMPLES = sorted((ROOT / "jobs").iterdir())


def test_there_are_the_three_kinds_of_example() -> None:
    assert {p.suffix for p in EXAMPLES} == {".yaml", ".csv"}
    kinds = set()
    for example in EXAMPLES:
        for chat in load_job(example).chats:
            kinds.add("desired" if chat.members is not None else "imperative")
    assert kinds == {"desired", "imperative"}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_each_example_plans_in_the_sandbox_showing_every_chat(cli: Cli, example: Path) -> None:
    run = cli.run("plan", example, "--sandbox", "--detailed-exitcode")
    assert run.code == 2, run.err  # every example has something to change in a fresh sandbox
    for chat in load_job(example).chats:
        assert f"{chat.account} / {chat.chat}" in run.out
    assert "Plan: " in run.out
    assert "Traceback" not in run.err


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_each_example_applies_in_the_sandbox_without_failures(
    cli: Cli, example: Path, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.jsonl"
    run = cli.run("apply", example, "--sandbox", "--ledger", ledger)
    assert run.code == 0, run.out + run.err
    end = ledger_records(ledger)[-1]
    assert end["type"] == "end"
    assert end["counts"]["applied"] > 0
    assert end["counts"]["failed"] == end["counts"]["deferred"] == 0


def test_the_readme_command_works_as_a_fresh_process() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNIPILE_")}
    result = subprocess.run(
        [sys.executable, "-m", "bulkgroups", "plan", "jobs/reconcile.yaml", "--sandbox"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "acc_ops / ops_oncall" in result.stdout
