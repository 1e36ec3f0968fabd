"""`bulkgroups undo LEDGER`: the inverse job of a run's applied operations, from the ledger alone
(issue #14, item 3)."""

from __future__ import annotations

from pathlib import Path

import yaml

from bulkgroups.jobs import load_job
from bulkgroups.model import Operation, Outcome, Resolution
from bulkgroups.records import (
    EndRecord,
    OpRecord,
    ResolutionRecord,
    RunRecord,
    VerifyRecord,
    parse_time,
)
from bulkgroups.simulator import Simulator, initial_members, owner_id, person

from helpers.cli import Cli, connect
from helpers.engine import write_job

AT = "2025-03-10T12:00:00.000Z"


def state(sim: Simulator, account: str, chats: list[str]) -> dict[str, tuple[str, frozenset[str]]]:
    return {chat: (sim.chat(account, chat).name, sim.members(account, chat)) for chat in chats}


def test_apply_then_undo_then_apply_restores_every_member_list_and_name(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    team = [m for m in initial_members("acc_1", "team") if m != owner_id("acc_1")]
    crew = [m for m in initial_members("acc_1", "crew") if m != owner_id("acc_1")]
    job = write_job(
        tmp_path / "job.yaml",
        [
            {
                "chat": "team",
                "account": "acc_1",
                "rename": "Team 2025",
                "add": [person("ACoAA0161").profile_url, "ACoAA0499"],
                "remove": [team[0], team[1]],
            },
            {"chat": "crew", "account": "acc_1", "members": [*crew[2:], "ACoAA0498"]},
            {"chat": "side", "account": "acc_2", "rename": "Side project"},
        ],
    )
    before = state(sim, "acc_1", ["team", "crew"]) | state(sim, "acc_2", ["side"])
    ledger, flags = tmp_path / "ledger.jsonl", connect(sim, tmp_path)
    assert cli.run("apply", job, "--ledger", ledger, *flags).code == 0
    assert state(sim, "acc_1", ["team", "crew"]) | state(sim, "acc_2", ["side"]) != before

    undone = cli.run("undo", ledger, "--out", tmp_path / "undo.yaml")

    assert undone.code == 0, undone.err
    assert "Undo of run " in undone.err
    inverse = load_job(tmp_path / "undo.yaml")
    assert {(c.account, c.chat) for c in inverse.chats} == {
        ("acc_1", "team"),
        ("acc_1", "crew"),
        ("acc_2", "side"),
    }
    text = (tmp_path / "undo.yaml").read_text()
    assert "      - ACoAA0161  # added by that run; linkedin.com/in/ann-kim-0161" in text
    run = cli.run("apply", tmp_path / "undo.yaml", "--ledger", ledger, *flags)
    assert run.code == 0, run.out + run.err
    assert state(sim, "acc_1", ["team", "crew"]) | state(sim, "acc_2", ["side"]) == before

    # Undoing the undo applies the first job's changes again.
    again = cli.run("undo", ledger)
    assert again.code == 0
    document = yaml.safe_load(again.out)
    renamed = {c["chat"]: c.get("rename") for c in document["chats"]}
    assert renamed["team"] == "Team 2025"


def test_a_leave_is_listed_as_not_reversible(cli: Cli, sim: Simulator, tmp_path: Path) -> None:
    job = write_job(
        tmp_path / "job.yaml",
        [
            {"chat": "old", "account": "acc_1", "rename": "Old times", "leave": True},
            {"chat": "team", "account": "acc_1", "add": ["ACoAA0499"]},
        ],
    )
    ledger, flags = tmp_path / "ledger.jsonl", connect(sim, tmp_path)
    assert cli.run("apply", job, "--ledger", ledger, *flags).code == 0

    run = cli.run("undo", ledger)

    assert run.code == 0
    assert (
        "  # acc_1 / old: left by that run, which cannot be undone (the owner cannot rejoin)"
        in run.out
    )
    assert "  #   renamed 'Group old' -> 'Old times'" in run.out
    assert [c["chat"] for c in yaml.safe_load(run.out)["chats"]] == ["team"]
    assert "1 leave(s) cannot be undone" in run.err


# ------------------------------------------------------------------ ledgers written by hand


def add(user: str, chat: str = "c1") -> Operation:
    return Operation("acc_1", chat, "add", user=user)


def remove(user: str, chat: str = "c1") -> Operation:
    return Operation("acc_1", chat, "remove", user=user)


def ledger_of(path: Path, *runs: list[object]) -> Path:
    lines = []
    for index, records in enumerate(runs):
        run_id = f"run{index}"
        lines.append(RunRecord(run_id, "a" * 64, False, AT, "0").to_json())
        for item in records:
            if isinstance(item, Outcome):
                lines.append(OpRecord.of(item, run_id=run_id, at=AT).to_json())
            elif isinstance(item, tuple):  # (outcome, previous name)
                outcome, previous = item
                record = OpRecord.of(outcome, run_id=run_id, at=AT, previous_name=previous)
                lines.append(record.to_json())
            else:
                lines.append(item.to_json())  # type: ignore[attr-defined]
        lines.append(EndRecord(run_id, {}, False, AT).to_json())
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def test_not_effective_writes_are_left_out_and_recovered_ones_included(
    cli: Cli, tmp_path: Path
) -> None:
    ghost = add("ACoAGhost")
    ledger = ledger_of(
        tmp_path / "l.jsonl",
        [
            Outcome(ghost, "applied", None, 1),
            VerifyRecord(ghost.op_id, "run0", "failed", "not_effective", AT),
            Outcome(add("ACoAKilled"), "applied", None, 0, recovered=True),
            Outcome(add("ACoASkipped"), "skipped", "already_member", 0),
            Outcome(remove("ACoAFailed"), "failed", "api_error", 1),
        ],
    )

    run = cli.run("undo", ledger)

    assert run.code == 0, run.err
    assert yaml.safe_load(run.out)["chats"] == [
        {"chat": "c1", "account": "acc_1", "remove": ["ACoAKilled"]}
    ]


def test_the_default_run_is_the_last_that_applied_something(cli: Cli, tmp_path: Path) -> None:
    ledger = ledger_of(
        tmp_path / "l.jsonl",
        [Outcome(add("ACoAFirst"), "applied", None, 1)],
        [Outcome(add("ACoASecond"), "applied", None, 1)],
        [Outcome(add("ACoASecond"), "skipped", "already_member", 0)],
    )
    assert yaml.safe_load(cli.run("undo", ledger).out)["chats"][0]["remove"] == ["ACoASecond"]
    chosen = cli.run("undo", ledger, "--run", "run0")
    assert yaml.safe_load(chosen.out)["chats"][0]["remove"] == ["ACoAFirst"]
    assert "# It undoes run run0" in chosen.out

    assert cli.run("undo", ledger, "--run", "run2").code == 1
    unknown = cli.run("undo", ledger, "--run", "nope")
    assert unknown.code == 1
    assert "no run 'nope'" in unknown.err
    assert cli.run("undo", tmp_path / "missing.jsonl").code == 1


def test_a_rename_goes_back_to_the_name_the_run_saw_when_it_is_known(
    cli: Cli, tmp_path: Path
) -> None:
    renamed = Operation("acc_1", "c1", "rename", name="New")
    recovered = Operation("acc_1", "c2", "rename", name="Newer")
    ledger = ledger_of(
        tmp_path / "l.jsonl",
        [
            (Outcome(renamed, "applied", None, 1), "Old: the first"),
            Outcome(recovered, "applied", None, 0, recovered=True),  # its previous name unknown
        ],
    )

    run = cli.run("undo", ledger, "--out", tmp_path / "u.yaml")

    assert run.code == 0
    text = (tmp_path / "u.yaml").read_text()
    assert "    rename: \"Old: the first\"  # renamed to 'New' by that run" in text
    assert (
        "  # acc_1 / c2: the rename to 'Newer' cannot be undone: the name before it is unknown"
        in (text)
    )
    assert [(c.chat, c.rename) for c in load_job(tmp_path / "u.yaml").chats] == [
        ("c1", "Old: the first")
    ]


def test_a_member_removed_and_added_back_in_one_run_has_nothing_to_undo(
    cli: Cli, tmp_path: Path
) -> None:
    ann = Resolution("acc_1", "in:ann-kim", "ACoAnn", "Ann Kim", resolved_at=parse_time(AT))
    ledger = ledger_of(
        tmp_path / "l.jsonl",
        [
            ResolutionRecord.of(ann, run_id="run0"),
            Outcome(remove("ACoAnn"), "applied", None, 1),
            Outcome(add("ACoAnn"), "applied", None, 1),
            Outcome(add("ACoAnn", chat="c2"), "applied", None, 1),
        ],
    )
    run = cli.run("undo", ledger)
    assert run.code == 0
    assert yaml.safe_load(run.out)["chats"] == [
        {"chat": "c2", "account": "acc_1", "remove": ["ACoAnn"]}
    ]
    assert "ACoAnn  # added by that run; linkedin.com/in/ann-kim" in run.out


def test_a_ledger_directory_is_undone_as_report_reads_it_every_shards_file_as_one(
    cli: Cli, tmp_path: Path
) -> None:
    # `--ledger DIR/ --shard I/N` writes DIR/shard-I-of-N.jsonl; the user names the directory.
    directory = tmp_path / "ledgers"
    directory.mkdir()
    ledger_of(directory / "shard-0-of-2.jsonl", [Outcome(add("ACoAFirst"), "applied", None, 1)])
    later = "2025-03-10T13:00:00.000Z"
    (directory / "shard-1-of-2.jsonl").write_bytes(
        RunRecord("later", "a" * 64, False, later, "0").to_json()
        + b"\n"
        + OpRecord.of(
            Outcome(add("ACoASecond", "c2"), "applied", None, 1), run_id="later", at=later
        ).to_json()
        + b"\n"
    )

    run = cli.run("undo", f"{directory}/")
    assert run.code == 0, run.err
    assert yaml.safe_load(run.out)["chats"] == [
        {"chat": "c2", "account": "acc_1", "remove": ["ACoASecond"]}
    ]
    chosen = cli.run("undo", directory, "--run", "run0")
    assert chosen.code == 0, chosen.err
    assert yaml.safe_load(chosen.out)["chats"][0]["remove"] == ["ACoAFirst"]
