"""`--max-removal-percent P`: a plan in which a desired-state chat would lose more than P % of its
current members (owner excluded) is refused before anything is sent, naming the chats."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bulkgroups.engine.removals import SteepChat, steep_chats
from bulkgroups.model import ChatJob, ChatPlan, Operation
from bulkgroups.simulator import Simulator, owner_id

from helpers.cli import Cli, connect, writes
from helpers.engine import write_job

TEN = [f"ACoAA{n:04d}" for n in range(101, 111)]  # the ten members of `team`, owner aside


@pytest.fixture
def team(sim: Simulator) -> Simulator:
    sim.configure_chat("acc_1", "team", members=TEN)  # the owner is added: 11 participants
    return sim


def keeping(tmp_path: Path, kept: int, **extra: Any) -> Path:
    """A job whose desired-state `team` keeps `kept` of its ten members (removes the rest)."""
    chat = {"chat": "team", "account": "acc_1", "members": TEN[:kept], **extra}
    return write_job(tmp_path / "job.yaml", [chat])


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_a_chat_losing_more_than_p_percent_is_refused_naming_it_and_nothing_is_sent(
    cli: Cli, team: Simulator, tmp_path: Path, command: str
) -> None:
    ledger = tmp_path / "ledger.jsonl"
    extra = ["--ledger", str(ledger)] if command == "apply" else []
    run = cli.run(
        command,
        keeping(tmp_path, 6),  # loses 4 of 10: 40 %
        "--max-removal-percent",
        "30",
        *extra,
        *connect(team, tmp_path),
    )
    assert run.code == 1
    assert (
        "this desired-state chat would lose more than --max-removal-percent 30% of its members: "
        "acc_1/team (4 of 10 members, 40%)"
    ) in run.err
    assert writes(team) == []
    assert not ledger.exists() or ledger.read_bytes() == b""  # no run record: nothing was sent


def test_a_chat_losing_exactly_p_percent_is_applied(
    cli: Cli, team: Simulator, tmp_path: Path
) -> None:
    run = cli.run(
        "apply",
        keeping(tmp_path, 6),
        "--max-removal-percent",
        "40",
        "--ledger",
        tmp_path / "ledger.jsonl",
        *connect(team, tmp_path),
    )
    assert run.code == 0, run.err
    assert team.members("acc_1", "team") == {owner_id("acc_1"), *TEN[:6]}


def test_the_owner_and_protected_members_count_as_they_should(
    cli: Cli, team: Simulator, tmp_path: Path
) -> None:
    """The owner is not a member that can be lost (10 members, not 11); a protected member stays
    and is not a removal."""
    job = keeping(tmp_path, 0, protect=TEN[:5])  # removes 5 of 10: 50 %
    allowed = cli.run("plan", job, "--max-removal-percent", "50", *connect(team, tmp_path))
    refused = cli.run("plan", job, "--max-removal-percent", "49.9", *connect(team, tmp_path))
    assert allowed.code == 0, allowed.err
    assert refused.code == 1
    assert "(5 of 10 members, 50%)" in refused.err


def test_imperative_removals_are_not_measured(cli: Cli, team: Simulator, tmp_path: Path) -> None:
    job = write_job(tmp_path / "job.yaml", [{"chat": "team", "account": "acc_1", "remove": TEN}])
    run = cli.run(
        "plan", job, "--max-removal-percent", "10", "--max-removals", "-1", *connect(team, tmp_path)
    )
    assert run.code == 0, run.err


def test_plan_shows_the_refused_plan_but_saves_no_plan_file(
    cli: Cli, team: Simulator, tmp_path: Path
) -> None:
    saved = tmp_path / "plan.json"
    run = cli.run(
        "plan",
        keeping(tmp_path, 2),
        "--max-removal-percent",
        "50",
        "--out",
        saved,
        *connect(team, tmp_path),
    )
    assert run.code == 1
    assert "Plan: 0 to add, 8 to remove" in run.out
    assert "apply would refuse it" in run.err
    assert not saved.exists()


def test_writes_of_other_accounts_wait_until_every_desired_state_chat_is_judged(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    """Without `--max-removals`, an imperative account could write at once; with the percentage
    guard it must not, while a desired-state chat of a slower account is still unread."""
    chats: list[dict[str, Any]] = [{"chat": "fast", "account": "acc_quick", "add": ["ACoAA0499"]}]
    for number in range(3):
        chat = f"slow_{number}"
        sim.configure_chat("acc_slow", chat, members=TEN)
        kept = 0 if number == 2 else 10  # the last one read is emptied
        chats.append({"chat": chat, "account": "acc_slow", "members": TEN[:kept]})
    job = write_job(tmp_path / "job.yaml", chats, accounts={"acc_slow": {"rate": "2/s"}})
    run = cli.run(
        "apply",
        job,
        "--max-removals",
        "-1",
        "--max-removal-percent",
        "50",
        "--ledger",
        tmp_path / "ledger.jsonl",
        *connect(sim, tmp_path),
    )
    assert run.code == 1
    assert "acc_slow/slow_2 (10 of 10 members, 100%)" in run.err
    assert writes(sim) == []


def test_apply_of_a_saved_plan_is_judged_too(cli: Cli, team: Simulator, tmp_path: Path) -> None:
    job = keeping(tmp_path, 3)
    saved = tmp_path / "plan.json"
    made = cli.run("plan", job, "--out", saved, *connect(team, tmp_path))
    assert made.code == 0, made.err
    run = cli.run(
        "apply",
        job,
        "--plan",
        saved,
        "--max-removal-percent",
        "60",
        "--ledger",
        tmp_path / "ledger.jsonl",
        *connect(team, tmp_path),
    )
    assert run.code == 1
    assert "acc_1/team (7 of 10 members, 70%)" in run.err
    assert writes(team) == []


@pytest.mark.parametrize("value", ["0", "-5", "100.1", "half"])
def test_a_percentage_out_of_range_is_a_usage_error(cli: Cli, tmp_path: Path, value: str) -> None:
    run = cli.run("plan", keeping(tmp_path, 1), "--sandbox", f"--max-removal-percent={value}")
    assert run.code == 1
    assert "--max-removal-percent" in run.err


def test_steep_chats_measures_only_listed_desired_state_chats() -> None:
    desired = ChatJob("a", "d", members=())
    imperative = ChatJob("a", "i", remove=("u1", "u2"))
    unlisted = ChatJob("a", "r", members=())
    removes = tuple(Operation("a", "x", "remove", user=f"u{n}") for n in range(3))
    plans = [
        ChatPlan("a", "d", to_send=removes, members_before=4),  # 75 %
        ChatPlan("a", "i", to_send=removes[:2], members_before=2),  # 100 %, but imperative
        ChatPlan("a", "r", members_before=None),  # read-only: not listed
    ]
    chats = [desired, imperative, unlisted]
    assert steep_chats(chats, plans, 75) == []
    assert steep_chats(chats, plans, 74.9) == [SteepChat("a", "d", 3, 4)]
    assert steep_chats(chats, plans, None) == []
