"""`--only-account` and `--only-chat`: a run restricted to part of its job, named ids checked
before anything is sent, recorded as a run of the whole job (so `--resume` continues it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bulkgroups.client import UnipileClient
from bulkgroups.engine import EngineConfig, apply_job, plan_job_online
from bulkgroups.engine.selection import select_job
from bulkgroups.errors import UsageError
from bulkgroups.jobs import load_job
from bulkgroups.simulator import Simulator, initial_members, owner_id

from helpers.cli import Cli, connect, writes
from helpers.engine import ledger_records, op_records, write_job


def three_accounts(tmp_path: Path) -> Path:
    """`team` under acc_1 and acc_2, `crew` under acc_2, `desk` under acc_3; one add each."""
    return write_job(
        tmp_path / "job.yaml",
        [
            {"chat": "team", "account": "acc_1", "add": ["ACoAA0491"]},
            {"chat": "team", "account": "acc_2", "add": ["ACoAA0492"]},
            {"chat": "crew", "account": "acc_2", "add": ["ACoAA0493"]},
            {"chat": "desk", "account": "acc_3", "add": ["ACoAA0494"]},
        ],
    )


def planned_chats(run_json: Any) -> list[tuple[str, str]]:
    return [(c["account"], c["chat"]) for c in run_json["chats"]]


def touched_accounts(sim: Simulator) -> set[str]:
    """Every account the run so much as looked up."""
    return {str(r.account) for r in sim.requests()}


# --------------------------------------------------------------------------------- choosing


def test_only_account_runs_those_accounts_and_never_looks_at_the_others(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.jsonl"
    run = cli.run(
        "apply",
        three_accounts(tmp_path),
        "--only-account",
        "acc_2",
        "--ledger",
        ledger,
        *connect(sim, tmp_path),
    )
    assert run.code == 0, run.err
    assert touched_accounts(sim) == {"acc_2"}  # not even the preflight of acc_1 or acc_3
    assert {(r["chat"], r["user"]) for r in op_records(ledger)} == {
        ("team", "ACoAA0492"),
        ("crew", "ACoAA0493"),
    }


def test_a_chat_id_selects_that_chat_under_every_account_and_account_slash_chat_just_one(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    job = three_accounts(tmp_path)
    by_id = cli.run("plan", job, "--only-chat", "team", "--format", "json", *connect(sim, tmp_path))
    assert by_id.code == 0, by_id.err
    assert planned_chats(by_id.json()) == [("acc_1", "team"), ("acc_2", "team")]

    by_path = cli.run(
        "plan", job, "--only-chat", "acc_2/team", "--format", "json", *connect(sim, tmp_path)
    )
    assert by_path.code == 0, by_path.err
    assert planned_chats(by_path.json()) == [("acc_2", "team")]


def test_the_flags_take_several_ids_at_once_or_repeated_and_combine_as_both_filters(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    job = three_accounts(tmp_path)
    listed = cli.run(
        "plan", job, "--only-account", "acc_1", "acc_3", "--format", "json", *connect(sim, tmp_path)
    )
    repeated = cli.run(
        "plan",
        job,
        "--only-account",
        "acc_1",
        "--only-account",
        "acc_3",
        "--format",
        "json",
        *connect(sim, tmp_path),
    )
    both = cli.run(
        "plan",
        job,
        "--only-account",
        "acc_2",
        "--only-chat",
        "team",
        "--format",
        "json",
        *connect(sim, tmp_path),
    )
    assert (listed.code, repeated.code, both.code) == (0, 0, 0), listed.err + both.err
    assert planned_chats(listed.json()) == [("acc_1", "team"), ("acc_3", "desk")]
    assert planned_chats(repeated.json()) == planned_chats(listed.json())
    assert planned_chats(both.json()) == [("acc_2", "team")]


# ------------------------------------------------------------------------------------ typos


@pytest.mark.parametrize("command", ["plan", "apply"])
@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--only-account", "acc_2", "acc_9"], "--only-account acc_9: not an account of the job"),
        (["--only-chat", "taem"], "--only-chat taem: no such chat in the job"),
        (["--only-chat", "acc_1/crew"], "--only-chat acc_1/crew: no such chat in the job"),
        (
            ["--only-account", "acc_1", "--only-chat", "crew"],
            "--only-chat crew: no such chat in the accounts given to --only-account",
        ),
    ],
)
def test_an_id_that_names_nothing_is_a_usage_error_naming_it_and_nothing_is_sent(
    cli: Cli, sim: Simulator, tmp_path: Path, command: str, flags: list[str], named: str
) -> None:
    ledger = tmp_path / "ledger.jsonl"
    extra = ["--ledger", str(ledger)] if command == "apply" else []
    run = cli.run(command, three_accounts(tmp_path), *flags, *extra, *connect(sim, tmp_path))
    assert run.code == 1
    assert run.err.startswith(f"error: {named}"), run.err
    assert len(run.err.splitlines()) == 1
    assert sim.requests() == ()
    assert not ledger.exists()


async def test_the_library_refuses_a_selection_that_names_nothing_before_the_ledger_or_a_request(
    sim: Simulator, tmp_path: Path
) -> None:
    job = load_job(three_accounts(tmp_path))
    ledger = tmp_path / "ledger.jsonl"
    config = EngineConfig(only_chats=("acc_3/team",))
    async with UnipileClient(sim.url, api_key=sim.api_key) as client:
        with pytest.raises(UsageError, match="acc_3/team"):
            await apply_job(job, client, ledger=ledger, config=config)
        with pytest.raises(UsageError, match="acc_3/team"):
            await plan_job_online(job, client, config=config)
    assert sim.requests() == ()
    assert not ledger.exists()


# ------------------------------------------------------------------- guards on the selection


def test_the_owner_rule_and_max_removals_judge_only_what_is_selected(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    members = initial_members("acc_2", "crew")[1:]
    job = write_job(
        tmp_path / "job.yaml",
        [
            {"chat": "team", "account": "acc_1", "add": ["ACoAA0491"]},
            # Would refuse the whole job: the owner in `remove`, and more removals than allowed.
            {"chat": "crew", "account": "acc_2", "remove": [owner_id("acc_2"), *members]},
        ],
    )
    ledger = tmp_path / "ledger.jsonl"
    whole = cli.run(
        "apply", job, "--max-removals", "1", "--ledger", ledger, *connect(sim, tmp_path)
    )
    assert whole.code == 1
    assert writes(sim) == []

    selected = cli.run(
        "apply",
        job,
        "--only-account",
        "acc_1",
        "--max-removals",
        "1",
        "--ledger",
        ledger,
        *connect(sim, tmp_path),
    )
    assert selected.code == 0, selected.err
    assert [(str(w.account), w.user) for w in writes(sim)] == [("acc_1", "ACoAA0491")]


# ----------------------------------------------------------------------------- resume, hash


def test_a_restricted_run_is_a_run_of_the_whole_job_that_resume_without_it_continues(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    job = three_accounts(tmp_path)
    ledger = tmp_path / "ledger.jsonl"
    first = cli.run(
        "apply", job, "--only-chat", "acc_2/crew", "--ledger", ledger, *connect(sim, tmp_path)
    )
    assert first.code == 0, first.err
    (run_record,) = [r for r in ledger_records(ledger) if r["type"] == "run"]
    assert run_record["job_sha256"] == load_job(job).sha256

    resumed = cli.run("apply", job, "--resume", "--ledger", ledger, *connect(sim, tmp_path))
    assert resumed.code == 0, resumed.err
    # The rest, and nothing twice: crew's add was settled by the restricted run.
    assert sorted(w.user or "" for w in writes(sim)) == [
        "ACoAA0491",
        "ACoAA0492",
        "ACoAA0493",
        "ACoAA0494",
    ]
    second_run = [r for r in ledger_records(ledger) if r["type"] == "run"][1]
    resumed_ops = [r for r in op_records(ledger) if r["run_id"] == second_run["run_id"]]
    assert sorted((r["account"], r["chat"]) for r in resumed_ops) == [
        ("acc_1", "team"),
        ("acc_2", "team"),
        ("acc_3", "desk"),
    ]


# ------------------------------------------------------------------------------- the engine


def test_select_job_keeps_the_jobs_hash_and_order(tmp_path: Path) -> None:
    job = load_job(three_accounts(tmp_path))
    selected = select_job(job, accounts=["acc_3", "acc_1"])
    assert [(c.account, c.chat) for c in selected.chats] == [("acc_1", "team"), ("acc_3", "desk")]
    assert selected.sha256 == job.sha256
    assert select_job(job) is job
    with pytest.raises(UsageError, match="acc_x, acc_y"):
        select_job(job, accounts=["acc_x", "acc_1", "acc_y"])


@pytest.mark.parametrize(
    "settings",
    [
        {"only_accounts": "acc_1"},  # a string is not a tuple of ids
        {"only_accounts": ("acc_1", "")},
        {"only_chats": ["team"]},
        {"max_removal_percent": 0},
        {"max_removal_percent": 100.5},
        {"max_removal_percent": float("nan")},
        {"max_removal_percent": True},
    ],
)
def test_engine_config_refuses_a_bad_selection_or_percentage(settings: dict[str, Any]) -> None:
    with pytest.raises(UsageError, match=f"EngineConfig.{next(iter(settings))}"):
        EngineConfig(**settings)


def test_a_saved_plan_applies_with_its_restriction_and_refuses_chats_it_does_not_have(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    job = three_accounts(tmp_path)
    saved = tmp_path / "plan.json"
    made = cli.run("plan", job, "--only-account", "acc_3", "--out", saved, *connect(sim, tmp_path))
    assert made.code == 0, made.err
    ledger = tmp_path / "ledger.jsonl"

    whole = cli.run("apply", job, "--plan", saved, "--ledger", ledger, *connect(sim, tmp_path))
    assert whole.code == 1
    assert "these chats of the run are not in the plan: acc_1/team, acc_2/team, acc_2/crew" in (
        whole.err
    )
    assert writes(sim) == []

    same = cli.run(
        "apply",
        job,
        "--plan",
        saved,
        "--only-account",
        "acc_3",
        "--ledger",
        ledger,
        *connect(sim, tmp_path),
    )
    assert same.code == 0, same.err
    assert [(str(w.account), w.user) for w in writes(sim)] == [("acc_3", "ACoAA0494")]
