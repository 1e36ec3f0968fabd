"""A demanding user's review of the CLI: hostile input must end in a clear error (exit 1, nothing
sent), never a traceback or a write the job never asked for."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from engine_helpers import write_job
from test_cli_helpers import Cli, connect, writes

from bulkgroups.simulator import Simulator, initial_members, owner_id


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    return Cli(capsys, monkeypatch)


def team_job(tmp_path: Path) -> Path:
    current = initial_members("acc_1", "team")
    return write_job(
        tmp_path / "job.yaml",
        [
            {"chat": "team", "account": "acc_1", "add": ["ACoAA0499"], "remove": [current[1]]},
            {"chat": "crew", "account": "acc_2", "rename": "The Crew"},
        ],
    )


# --------------------------------------------------------------------- apply --plan, tampered


def _tamper(saved: Path, extra: dict[str, Any]) -> None:
    data = json.loads(saved.read_text(encoding="utf-8"))
    data["chats"][-1]["operations"].append(extra)
    saved.write_text(json.dumps(data), encoding="utf-8")


@pytest.mark.parametrize(
    "extra",
    [
        {"action": "remove", "user": owner_id("acc_2"), "name": None},  # the owner rule
        {"action": "remove", "user": "ACoAA0001", "name": None},  # not in the job
        {"action": "explode", "user": None, "name": None},  # not an action
        {"action": "add", "user": None, "name": None},  # an add of nobody
        {"action": "add", "user": ["ACoAA0001"], "name": None},  # not an id
    ],
    ids=["owner", "not-in-job", "bad-action", "null-user", "list-user"],
)
def test_apply_plan_refuses_a_plan_file_whose_operations_were_edited(
    cli: Cli, sim: Simulator, tmp_path: Path, extra: dict[str, Any]
) -> None:
    job, saved, ledger = team_job(tmp_path), tmp_path / "PLAN.json", tmp_path / "ledger.jsonl"
    flags = connect(sim, tmp_path)
    assert cli.run("plan", job, "--out", saved, *flags).code == 0
    _tamper(saved, {"op_id": "x", **extra})

    run = cli.run("apply", job, "--plan", saved, "--ledger", ledger, *flags)
    assert run.code == 1, run.err
    assert "Traceback" not in run.err
    assert str(saved) in run.err or "nothing was sent" in run.err
    assert writes(sim) == []
