"""`bulkgroups apply` and `report` through the CLI: saved plans, dry runs, --max-removals, exit
codes, and the ledger a run leaves behind as `report` shows it."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from bulkgroups.jobs import load_job
from bulkgroups.simulator import Simulator, initial_members, owner_id

from helpers.cli import Cli, connect, writes
from helpers.engine import ledger_records, op_records, write_job


def no_records(ledger: Path) -> bool:
    """A refused run leaves no record (an empty ledger file may have been opened)."""
    return not ledger.exists() or ledger_records(ledger) == []


def team_job(tmp_path: Path, *, add: str = "ACoAA0499") -> Path:
    current = initial_members("acc_1", "team")
    return write_job(
        tmp_path / "job.yaml",
        [
            {"chat": "team", "account": "acc_1", "add": [add], "remove": [current[1]]},
            {"chat": "crew", "account": "acc_2", "rename": "The Crew"},
        ],
    )


# ------------------------------------------------------------------------------ apply --plan


def test_apply_plan_applies_exactly_the_saved_plan_when_nothing_changed(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    job, saved, ledger = team_job(tmp_path), tmp_path / "PLAN.json", tmp_path / "ledger.jsonl"
    flags = connect(sim, tmp_path)
    assert cli.run("plan", job, "--out", saved, *flags).code == 0
    planned = {
        op["op_id"] for c in json.loads(saved.read_text())["chats"] for op in c["operations"]
    }

    run = cli.run("apply", job, "--plan", saved, "--ledger", ledger, *flags)
    assert run.code == 0, run.err
    applied = {r["op_id"] for r in op_records(ledger) if r["status"] == "applied"}
    assert applied == planned
    assert len(writes(sim)) == len(planned)
    assert "ACoAA0499" in sim.members("acc_1", "team")
    assert initial_members("acc_1", "team")[1] not in sim.members("acc_1", "team")
    assert sim.chat("acc_2", "crew").name == "The Crew"


def test_apply_plan_refuses_a_plan_whose_chat_changed_since_and_names_it(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    job, saved, ledger = team_job(tmp_path), tmp_path / "PLAN.json", tmp_path / "ledger.jsonl"
    flags = connect(sim, tmp_path)
    assert cli.run("plan", job, "--out", saved, *flags).code == 0
    # Someone adds a person in the LinkedIn app between plan and apply.
    sim.configure_chat(
        "acc_1", "team", members=[*initial_members("acc_1", "team")[1:], "ACoAA0001"]
    )

    run = cli.run("apply", job, "--plan", saved, "--ledger", ledger, *flags)
    assert run.code == 1
    assert "acc_1/team" in run.err
    assert "acc_2/crew" not in run.err  # unchanged chats are not blamed
    assert "nothing was sent" in run.err
    assert writes(sim) == []
    assert no_records(ledger)


def test_apply_plan_refuses_a_plan_of_another_version_of_the_job(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    job, saved, ledger = team_job(tmp_path), tmp_path / "PLAN.json", tmp_path / "ledger.jsonl"
    flags = connect(sim, tmp_path)
    assert cli.run("plan", job, "--out", saved, *flags).code == 0
    team_job(tmp_path, add="ACoAA0498")  # the job file is edited after planning

    run = cli.run("apply", job, "--plan", saved, "--ledger", ledger, *flags)
    assert run.code == 1
    assert "the job changed since the plan was made" in run.err
    assert writes(sim) == []


@pytest.mark.parametrize("content", ["", "{not json", '{"format": "something-else"}'])
def test_apply_plan_refuses_a_file_that_is_not_a_plan(
    cli: Cli, sim: Simulator, tmp_path: Path, content: str
) -> None:
    saved = tmp_path / "PLAN.json"
    saved.write_text(content, encoding="utf-8")
    run = cli.run("apply", team_job(tmp_path), "--plan", saved, *connect(sim, tmp_path))
    assert run.code == 1
    assert str(saved) in run.err
    assert sim.requests() == ()


# ---------------------------------------------------------------------------------- dry run


def test_dry_run_prints_the_plan_and_sends_no_write(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.jsonl"
    run = cli.run(
        "apply", team_job(tmp_path), "--dry-run", "--ledger", ledger, *connect(sim, tmp_path)
    )
    assert run.code == 0, run.err
    assert "acc_1 / team" in run.out
    assert "  + ACoAA0499" in run.out
    assert '  ~ name "Group crew" -> "The Crew"' in run.out
    assert "Dry run: nothing was sent." in run.out
    assert sim.requests()  # it did read
    assert writes(sim) == []
    assert not ledger.exists()


def test_a_dry_run_over_max_removals_shows_the_plan_and_exits_1_as_apply_would(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    job = write_job(tmp_path / "job.yaml", [{"chat": "team", "account": "acc_1", "members": []}])
    run = cli.run("apply", job, "--dry-run", "--max-removals", "1", *connect(sim, tmp_path))
    assert run.code == 1
    assert "  - " in run.out and "Dry run: nothing was sent." in run.out
    assert "more than --max-removals 1" in run.err
    assert writes(sim) == []


# ---------------------------------------------------------------------------- max removals


def test_max_removals_refuses_the_whole_apply_before_any_write(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    job = write_job(tmp_path / "job.yaml", [{"chat": "team", "account": "acc_1", "members": []}])
    removals = len(initial_members("acc_1", "team")) - 1
    ledger = tmp_path / "ledger.jsonl"
    flags = connect(sim, tmp_path)

    refused = cli.run("apply", job, "--max-removals", str(removals - 1), "--ledger", ledger, *flags)
    assert refused.code == 1
    assert re.search(
        rf"removes {removals} (or more )?members, more than --max-removals", refused.err
    )
    assert writes(sim) == []
    assert no_records(ledger)

    allowed = cli.run("apply", job, "--max-removals", str(removals), "--ledger", ledger, *flags)
    assert allowed.code == 0, allowed.err
    assert sim.members("acc_1", "team") == {owner_id("acc_1")}


def test_max_removals_minus_one_disables_the_check(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    job = write_job(tmp_path / "job.yaml", [{"chat": "team", "account": "acc_1", "members": []}])
    run = cli.run(
        "apply",
        job,
        "--max-removals",
        "-1",
        "--ledger",
        tmp_path / "l.jsonl",
        *connect(sim, tmp_path),
    )
    assert run.code == 0, run.err
    assert sim.members("acc_1", "team") == {owner_id("acc_1")}


# ------------------------------------------------------------------------------ exit codes


def test_a_run_with_a_failed_operation_exits_3_and_the_rest_is_applied(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    job = write_job(
        tmp_path / "job.yaml",
        [
            {"chat": "gone_chat", "account": "acc_1", "add": ["ACoAA0499"]},
            {"chat": "team", "account": "acc_1", "add": ["ACoAA0499"]},
        ],
    )
    ledger = tmp_path / "ledger.jsonl"
    run = cli.run("apply", job, "--ledger", ledger, *connect(sim, tmp_path))
    assert run.code == 3, run.err
    outcomes = {(r["chat"], r["status"], r["reason"]) for r in op_records(ledger)}
    assert outcomes == {("gone_chat", "failed", "chat_not_found"), ("team", "applied", None)}
    assert "1 applied, 0 skipped, 0 deferred, 1 failed" in run.out
    assert "chat_not_found" in run.out  # the table of what failed


def test_a_deferred_account_exits_3(cli: Cli, sim: Simulator, tmp_path: Path) -> None:
    job = write_job(
        tmp_path / "job.yaml", [{"chat": "team", "account": "acc_errored", "leave": True}]
    )
    ledger = tmp_path / "ledger.jsonl"
    run = cli.run("apply", job, "--ledger", ledger, *connect(sim, tmp_path))
    assert run.code == 3, run.err
    (record,) = op_records(ledger)
    assert (record["status"], record["reason"]) == ("deferred", "account_errored")


def test_a_clean_run_exits_0_and_says_where_its_ledger_is(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.jsonl"
    run = cli.run("apply", team_job(tmp_path), "--ledger", ledger, *connect(sim, tmp_path))
    assert run.code == 0, run.err
    records = ledger_records(ledger)
    assert records[0]["type"] == "run" and records[-1]["type"] == "end"
    assert f"Run {records[0]['run_id']}: 3 applied, 0 skipped, 0 deferred, 0 failed." in run.out
    assert f"Ledger: {ledger}" in run.out
    assert sim.violations() == 0


# ---------------------------------------------------------------------------------- report


@pytest.fixture
def applied_ledger(cli: Cli, sim: Simulator, tmp_path: Path) -> Path:
    """A real ledger: one run with applied, skipped and failed operations."""
    current = initial_members("acc_1", "team")
    job = write_job(
        tmp_path / "job.yaml",
        [
            {"chat": "team", "account": "acc_1", "add": ["ACoAA0499", current[1]]},
            {"chat": "gone_chat", "account": "acc_2", "leave": True},
        ],
    )
    ledger = tmp_path / "ledger.jsonl"
    assert cli.run("apply", job, "--ledger", ledger, *connect(sim, tmp_path)).code == 3
    return ledger


def test_report_text_summarises_runs_and_explains_failures(cli: Cli, applied_ledger: Path) -> None:
    run = cli.run("report", applied_ledger)
    assert run.code == 0, run.err
    assert f"Ledger {applied_ledger}: 1 run(s), 3 operation(s)" in run.out
    assert "applied 1, skipped 1, deferred 0, failed 1" in run.out
    assert "acc_2" in run.out and "chat_not_found" in run.out


def test_report_json_counts_the_ledger(cli: Cli, applied_ledger: Path) -> None:
    run = cli.run("report", applied_ledger, "--format", "json")
    assert run.code == 0, run.err
    data: Any = run.json()
    assert data["counts"] == {"applied": 1, "skipped": 1, "deferred": 0, "failed": 1}
    (only_run,) = data["runs"]
    assert only_run["run_id"] == ledger_records(applied_ledger)[0]["run_id"]
    assert only_run["interrupted"] is False


def test_report_csv_has_one_row_per_operation(cli: Cli, applied_ledger: Path) -> None:
    run = cli.run("report", applied_ledger, "--format", "csv")
    assert run.code == 0, run.err
    rows = list(csv.DictReader(io.StringIO(run.out)))
    assert sorted((r["chat"], r["action"], r["status"], r["reason"]) for r in rows) == [
        ("gone_chat", "leave", "failed", "chat_not_found"),
        ("team", "add", "applied", ""),
        ("team", "add", "skipped", "already_member"),
    ]


def test_report_of_a_missing_ledger_exits_1(cli: Cli, tmp_path: Path) -> None:
    run = cli.run("report", tmp_path / "none.jsonl")
    assert run.code == 1
    assert "no such ledger" in run.err


def test_report_reads_a_ledger_without_touching_it(cli: Cli, applied_ledger: Path) -> None:
    before = applied_ledger.read_bytes()
    assert cli.run("report", applied_ledger).code == 0
    assert applied_ledger.read_bytes() == before
    assert load_job(applied_ledger.parent / "job.yaml")  # the job is still valid, for the record
