"""`bulkgroups plan`: connection settings, the readable diff, JSON, plan files, exit codes, shards,
and job files refused before a single request is sent."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from bulkgroups.engine import shard_of
from bulkgroups.jobs import load_job
from bulkgroups.model import op_id, parse_rate
from bulkgroups.simulator import Simulator, initial_members, owner_id, person

from helpers.cli import Cli, account_scoped, connect, writes
from helpers.engine import ledger_records, write_job
from helpers.simulator import SimFactory


def a_job(tmp_path: Path) -> Path:
    """One chat of each kind of change: rename, remove, add, leave, and one already in sync."""
    current = initial_members("acc_1", "team")
    return write_job(
        tmp_path / "job.yaml",
        [
            {
                "chat": "team",
                "account": "acc_1",
                "rename": "Team 2025",
                "add": ["ACoAA0499", current[1]],  # the second is already a member
                "remove": [current[2], "ACoAA0498"],  # the second is not a member
            },
            {"chat": "old_team", "account": "acc_1", "leave": True},
            {
                "chat": "in_sync",
                "account": "acc_1",
                "members": list(initial_members("acc_1", "in_sync")[1:]),
            },
        ],
    )


# ------------------------------------------------------------------------------- the diff


def test_the_text_plan_is_a_per_chat_diff_with_names_counts_and_run_time(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    current = initial_members("acc_1", "team")
    run = cli.run("plan", a_job(tmp_path), *connect(sim, tmp_path))
    assert run.code == 0, run.err
    lines = run.out.splitlines()
    team = lines.index('acc_1 / team  "Group team"')
    assert lines[team + 1 : team + 5] == [
        '  ~ name "Group team" -> "Team 2025"',
        f"  - {current[2]} ({person(current[2]).display_name})",
        "  + ACoAA0499",
        # The add already in place is its skip: counted once, not also as "1 already in place".
        "  = 1 skipped (already_member), 1 skipped (not_member)",
    ]
    old = lines.index('acc_1 / old_team  "Group old_team"')
    assert lines[old + 1] == "  leave"
    assert not any("in_sync" in line for line in lines)  # nothing to change: counted, not listed
    assert "1 chat without changes not shown (--show-unchanged lists them)." in lines
    assert "Plan: 1 to add, 1 to remove, 1 to rename, 1 to leave in 2 of 3 chats." in lines
    estimate = lines[-1]
    assert re.fullmatch(
        r"At the configured rates, applying it takes (about .+|under a second)\.", estimate
    )
    assert "about about" not in estimate
    assert writes(sim) == []


def test_plan_json_has_the_job_hash_chats_and_operations(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    job = a_job(tmp_path)
    run = cli.run("plan", job, "--format", "json", *connect(sim, tmp_path))
    assert run.code == 0, run.err
    data: Any = run.json()
    assert data["job_sha256"] == load_job(job).sha256
    assert [c["chat"] for c in data["chats"]] == ["team", "old_team", "in_sync"]
    team = data["chats"][0]
    assert [(op["action"], op["user"], op["name"]) for op in team["operations"]] == [
        ("rename", None, "Team 2025"),
        ("remove", initial_members("acc_1", "team")[2], None),
        ("add", "ACoAA0499", None),
    ]
    assert [op["op_id"] for op in team["operations"]] == [
        op_id("acc_1", "team", op["action"], op["user"] or op["name"]) for op in team["operations"]
    ]
    assert data["chats"][2]["operations"] == []
    assert data["has_changes"] is True
    assert data["estimated_seconds"] > 0


def test_plan_out_saves_the_plan_that_json_prints(cli: Cli, sim: Simulator, tmp_path: Path) -> None:
    saved = tmp_path / "PLAN.json"
    run = cli.run("plan", a_job(tmp_path), "--out", saved, *connect(sim, tmp_path))
    assert run.code == 0, run.err
    assert f"Saved to {saved}" in run.out
    data = json.loads(saved.read_text(encoding="utf-8"))
    printed: Any = cli.run(
        "plan", a_job(tmp_path), "--format", "json", *connect(sim, tmp_path)
    ).json()
    assert data["job_sha256"] == printed["job_sha256"]
    assert [c["operations"] for c in data["chats"]] == [c["operations"] for c in printed["chats"]]
    assert all(c["state_digest"] for c in data["chats"])
    assert sim.api_key not in saved.read_text(encoding="utf-8")
    assert not list(tmp_path.glob("*.tmp"))


# ----------------------------------------------------------------------- detailed exit code


def test_detailed_exitcode_is_2_with_changes_and_0_once_applied(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    job = write_job(
        tmp_path / "job.yaml",
        [
            {"chat": "team", "account": "acc_1", "members": ["ACoAA0001", "ACoAA0002"]},
            {"chat": "crew", "account": "acc_2", "add": ["ACoAA0003"], "rename": "Crew"},
        ],
    )
    flags = connect(sim, tmp_path)
    assert cli.run("plan", job, "--detailed-exitcode", *flags).code == 2
    assert cli.run("plan", job, *flags).code == 0  # without the flag: changes are success
    applied = cli.run("apply", job, "--ledger", tmp_path / "ledger.jsonl", *flags)
    assert applied.code == 0, applied.err
    again = cli.run("plan", job, "--detailed-exitcode", *flags)
    assert again.code == 0, again.out
    assert "Plan: 0 to add, 0 to remove, 0 to rename, 0 to leave in 0 of 2 chats." in again.out
    assert sim.members("acc_1", "team") == {owner_id("acc_1"), "ACoAA0001", "ACoAA0002"}
    assert sim.violations() == 0


def test_detailed_exitcode_counts_a_refused_chat_as_a_change(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    # Read, but over the member cap: the chat is not as the job asks, so the plan has changes.
    job = write_job(
        tmp_path / "job.yaml",
        [{"chat": "team", "account": "acc_1", "add": [f"ACoAA{n:04d}" for n in range(400, 460)]}],
    )
    run = cli.run("plan", job, "--detailed-exitcode", *connect(sim, tmp_path))
    assert run.code == 2, run.err
    assert "failed member_cap" in run.out


@pytest.mark.parametrize("detailed", [False, True], ids=["plain", "detailed"])
def test_a_chat_that_could_not_be_read_exits_3_whatever_the_flags(
    cli: Cli, sim: Simulator, tmp_path: Path, detailed: bool
) -> None:
    job = write_job(
        tmp_path / "job.yaml",
        [
            {"chat": "gone_chat", "account": "acc_1", "leave": True},
            {"chat": "team", "account": "acc_1", "rename": "Team"},
        ],
    )
    flags = ["--detailed-exitcode"] if detailed else []
    run = cli.run("plan", job, *flags, *connect(sim, tmp_path))
    assert run.code == 3, run.err
    assert "! leave: failed chat_not_found" in run.out
    assert "1 chat could not be read" in run.err
    dry = cli.run("apply", job, "--dry-run", *connect(sim, tmp_path))
    assert dry.code == 3, dry.err
    assert writes(sim) == []


def test_an_account_that_could_not_be_used_exits_3(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    # An account in trouble (errored: try later): "nothing to do" would be a lie, and so would
    # "here is the plan": its chats were never read.
    job = write_job(
        tmp_path / "job.yaml", [{"chat": "team", "account": "acc_errored", "leave": True}]
    )
    run = cli.run("plan", job, "--detailed-exitcode", *connect(sim, tmp_path))
    assert run.code == 3, run.out
    assert "! leave: deferred account_errored" in run.out


def test_plan_shows_but_refuses_a_plan_over_max_removals_and_saves_no_plan_file(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    job = write_job(tmp_path / "job.yaml", [{"chat": "team", "account": "acc_1", "members": []}])
    removals = len(initial_members("acc_1", "team")) - 1
    saved = tmp_path / "PLAN.json"
    flags = connect(sim, tmp_path)
    over = cli.run("plan", job, "--max-removals", str(removals - 1), "--out", saved, *flags)
    assert over.code == 1
    assert f"Plan: 0 to add, {removals} to remove" in over.out  # what would be refused, shown
    assert f"removes {removals} members, more than --max-removals {removals - 1}" in over.err
    assert not saved.exists()  # `apply --plan` of it would only be refused
    within = cli.run("plan", job, "--max-removals", str(removals), "--out", saved, *flags)
    assert within.code == 0, within.err
    assert saved.exists()


# ---------------------------------------------------------------------------- connection


def test_no_key_and_no_sandbox_exits_1_saying_how_to_give_one(cli: Cli, tmp_path: Path) -> None:
    run = cli.run("plan", a_job(tmp_path))
    assert run.code == 1
    assert run.err.startswith("error: no API key")
    assert "--api-key-file" in run.err and "UNIPILE_API_KEY" in run.err and "--sandbox" in run.err


def test_sandbox_with_a_base_url_is_a_usage_error(cli: Cli, sim: Simulator, tmp_path: Path) -> None:
    run = cli.run("plan", a_job(tmp_path), "--sandbox", "--base-url", sim.url)
    assert run.code == 1
    assert "--sandbox and --base-url" in run.err
    assert sim.requests() == ()


def test_the_key_can_come_from_stdin(cli: Cli, sim: Simulator, tmp_path: Path) -> None:
    job = a_job(tmp_path)
    run = cli.run(
        "plan",
        job,
        *("--base-url", sim.url, "--rate", "2/0.1s", "--api-key-file", "-"),
        stdin=sim.api_key + "\n",
    )
    assert run.code == 0, run.err
    assert "acc_1 / team" in run.out


def test_the_key_and_origin_can_come_from_the_environment(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    cli.monkeypatch.setenv("UNIPILE_BASE_URL", sim.url)
    cli.monkeypatch.setenv("UNIPILE_API_KEY", sim.api_key)
    run = cli.run("plan", a_job(tmp_path), "--rate", "2/0.1s")
    assert run.code == 0, run.err
    assert sim.requests()


def test_the_key_flag_works_and_flags_beat_the_environment(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    cli.monkeypatch.setenv("UNIPILE_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    cli.monkeypatch.setenv("UNIPILE_API_KEY", "not-the-key")
    run = cli.run(
        "plan",
        a_job(tmp_path),
        "--base-url",
        sim.url,
        "--api-key",
        sim.api_key,
        "--rate",
        "2/0.1s",
    )
    assert run.code == 0, run.err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--api-key-file", "{tmp}/missing"], "--api-key-file {tmp}/missing: No such file"),
        (["--api-key-file", "{tmp}/empty"], "--api-key-file {tmp}/empty: the file is empty"),
        (["--api-key-file", "{tmp}/empty", "--api-key", "k"], "give the API key once"),
        (["--shard", "4/4"], "a shard I/N needs 0 <= I < N"),
        (["--rate", "0/s"], "--rate"),
        (["--concurrency", "0"], "--concurrency"),
    ],
)
def test_bad_flags_exit_1_before_any_request(
    cli: Cli, sim: Simulator, tmp_path: Path, flags: list[str], message: str
) -> None:
    (tmp_path / "empty").write_text("  \n", encoding="utf-8")
    flags = [f.replace("{tmp}", str(tmp_path)) for f in flags]
    run = cli.run("plan", a_job(tmp_path), "--base-url", sim.url, *flags)
    assert run.code == 1
    assert message.replace("{tmp}", str(tmp_path)) in run.err
    assert "Traceback" not in run.err
    assert sim.requests() == ()


def test_plain_http_to_a_remote_host_is_refused_before_sending(cli: Cli, tmp_path: Path) -> None:
    run = cli.run("plan", a_job(tmp_path), "--base-url", "http://api.example.com", "--api-key", "k")
    assert run.code == 1
    assert "refusing plain http://" in run.err


# -------------------------------------------------------------------- bad jobs, owner rule


BAD_JOB = "version: 1\nchats:\n  - chat: team\n    account: acc_1\n    add: ['ACoAA1 ']\n"


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_a_bad_job_file_exits_1_and_the_api_hears_nothing(
    cli: Cli, sim: Simulator, tmp_path: Path, command: str
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_JOB, encoding="utf-8")
    run = cli.run(
        command,
        bad,
        "--ledger" if command == "apply" else "--format",
        *([tmp_path / "ledger.jsonl"] if command == "apply" else ["text"]),
        *connect(sim, tmp_path),
    )
    assert run.code == 1
    assert run.err.startswith(f"{bad}:5: chats[0].add[0]: ")
    assert sim.requests() == ()
    assert not (tmp_path / "ledger.jsonl").exists()


@pytest.mark.parametrize("field", ["remove", "members", "protect"])
@pytest.mark.parametrize("command", ["plan", "apply"])
def test_the_owner_rule_exits_1_after_the_account_get_alone(
    cli: Cli, sim: Simulator, tmp_path: Path, command: str, field: str
) -> None:
    owner = owner_id("acc_1")
    chat: dict[str, Any] = {"chat": "team", "account": "acc_1", field: [owner]}
    if field == "protect":
        chat["members"] = ["ACoAA0001"]
    job = write_job(
        tmp_path / "job.yaml", [chat, {"chat": "crew", "account": "acc_2", "leave": True}]
    )
    extra = ["--ledger", str(tmp_path / "ledger.jsonl")] if command == "apply" else []
    run = cli.run(command, job, *extra, *connect(sim, tmp_path))
    assert run.code == 1
    # Progress bars may share stderr; the error is the one line about the job file.
    (line,) = [line for line in run.err.splitlines() if line.startswith(str(job))]
    assert re.fullmatch(rf"{re.escape(str(job))}:\d+: chats\[0\]\.{field}\[0\]: .+", line), line
    assert owner in line
    assert account_scoped(sim) == []
    assert {r.path for r in sim.requests()} == {"/v2/accounts/acc_1", "/v2/accounts/acc_2"}
    assert not (tmp_path / "ledger.jsonl").exists()


# ----------------------------------------------------------------------------------- shards


def shard_accounts(run_json: Any) -> set[str]:
    return {c["account"] for c in run_json["chats"]}


def test_shards_split_the_accounts_each_exactly_once(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    accounts = [f"acc_{n}" for n in range(8)]
    job = write_job(
        tmp_path / "job.yaml", [{"chat": "team", "account": a, "leave": True} for a in accounts]
    )
    seen: list[set[str]] = []
    for index in range(4):
        run = cli.run(
            "plan", job, "--shard", f"{index}/4", "--format", "json", *connect(sim, tmp_path)
        )
        assert run.code == 0, run.err
        got = shard_accounts(run.json())
        assert got == {a for a in accounts if shard_of(a, 4) == index}
        seen.append(got)
    assert sorted(a for shard in seen for a in shard) == sorted(accounts)
    preflighted = [str(r.account) for r in sim.requests() if r.path.startswith("/v2/accounts/")]
    assert sorted(preflighted) == sorted(accounts)  # no shard so much as looked at another's


def test_applying_every_shard_changes_each_account_exactly_once(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    accounts = [f"acc_{n}" for n in range(6)]
    job = write_job(
        tmp_path / "job.yaml",
        [{"chat": "team", "account": a, "add": ["ACoAA0499"]} for a in accounts],
    )
    applied: list[str] = []
    for index in range(3):
        ledger = tmp_path / f"ledger-{index}.jsonl"  # one per process, as in a CI matrix
        run = cli.run(
            "apply", job, "--shard", f"{index}/3", "--ledger", ledger, *connect(sim, tmp_path)
        )
        assert run.code == 0, run.err
        applied += [r["account"] for r in ledger_records(ledger) if r["type"] == "op"]
    assert sorted(applied) == accounts
    assert sorted(str(r.account) for r in writes(sim)) == accounts
    assert all("ACoAA0499" in sim.members(a, "team") for a in accounts)


def test_an_empty_shard_plans_nothing_and_succeeds(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    job = write_job(tmp_path / "job.yaml", [{"chat": "team", "account": "acc_5", "leave": True}])
    empty = next(i for i in range(4) if i != shard_of("acc_5", 4))
    run = cli.run(
        "plan", job, "--shard", f"{empty}/4", "--detailed-exitcode", *connect(sim, tmp_path)
    )
    assert run.code == 0, run.err
    assert "has no chats" in run.out
    assert sim.requests() == ()


def test_apply_on_an_empty_shard_still_records_its_run(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    job = write_job(tmp_path / "job.yaml", [{"chat": "team", "account": "acc_5", "leave": True}])
    empty = next(i for i in range(4) if i != shard_of("acc_5", 4))
    ledger = tmp_path / "ledger.jsonl"
    run = cli.run(
        "apply", job, "--shard", f"{empty}/4", "--ledger", ledger, *connect(sim, tmp_path)
    )
    assert run.code == 0, run.err
    records = ledger_records(ledger)
    assert [r["type"] for r in records] == ["run", "end"]
    assert records[0]["job_sha256"] == load_job(job).sha256
    assert records[1]["counts"] == {"applied": 0, "skipped": 0, "deferred": 0, "failed": 0}
    assert sim.requests() == ()


@pytest.mark.parametrize("with_plan_file", [False, True], ids=["plan-then-apply", "apply-plan"])
def test_plan_then_apply_back_to_back_stay_within_the_limits(
    cli: Cli, sim_factory: SimFactory, tmp_path: Path, with_plan_file: bool
) -> None:
    # `plan` records nothing in a ledger: the apply after it learns of its reads from the times
    # it left in the state directory (`recent_sends`); before either, 429s at apply's start.
    sim = sim_factory(rate=parse_rate("5/s"))
    chats = [{"chat": f"room{n}", "account": "acc_1", "rename": f"Room {n}"} for n in range(4)]
    job = write_job(tmp_path / "job.yaml", chats)
    flags = [*connect(sim, tmp_path), "--rate", "5/s", "--write-rate", "5/s"]
    saved = tmp_path / "PLAN.json"
    planned = cli.run("plan", job, *flags, *(["--out", saved] if with_plan_file else []))
    assert planned.code == 0, planned.err
    extra = ["--plan", saved] if with_plan_file else []
    applied = cli.run("apply", job, "--ledger", tmp_path / "l.jsonl", *extra, *flags)
    assert applied.code == 0, applied.err
    assert sim.violations() == 0
    assert not [r for r in sim.requests() if r.status == 429]
