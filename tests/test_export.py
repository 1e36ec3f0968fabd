"""`bulkgroups export`: today's group chats as a desired-state job, read through the engine's
pacing, that `plan` finds already in place (issue #14, item 2)."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import orjson
import pytest
import yaml

from bulkgroups.client import UnipileClient
from bulkgroups.engine.inventory import read_existing
from bulkgroups.errors import AuthError
from bulkgroups.jobs import load_job
from bulkgroups.model import parse_rate
from bulkgroups.simulator import Simulator, owner_id, person, starter_chats

from helpers.cli import Cli, connect, writes


def reading(sim: Simulator, tmp_path: Path, *, key: str | None = None) -> list[str]:
    """`connect`'s flags without those of writes (export has none): key file, base URL, rate."""
    flags = connect(sim, tmp_path, key=key)
    for flag in ("--write-rate", "--jitter"):
        at = flags.index(flag)
        del flags[at : at + 2]
    return flags


def groups(account: str) -> list[str]:
    return [chat for chat in starter_chats(account) if not chat.startswith("1to1")]


def entries(path: Path) -> list[dict[str, object]]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    chats: list[dict[str, object]] = document["chats"]
    return chats


def test_export_then_plan_is_empty_for_a_whole_account(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    account = "acc_1"
    chats = groups(account)
    # Today's chats as people left them: one grew, one the owner left, one big, one with an id
    # YAML would read as a number.
    sim.configure_chat(account, chats[0], members=[*sim.members(account, chats[0]), "ACoAA0161"])
    sim.configure_chat(account, chats[1], readonly=True)
    sim.configure_chat(account, "big_room")
    sim.configure_chat(account, "2024", members=["ACoAA0001"])
    exported, flags = tmp_path / "today.yaml", connect(sim, tmp_path)

    run = cli.run("export", "--account", account, "--out", exported, *reading(sim, tmp_path))

    assert run.code == 0, run.err
    assert writes(sim) == []
    listed = entries(exported)
    assert [c["chat"] for c in listed] == sorted(
        c for c in [*chats, "big_room", "2024"] if c != chats[1]
    )
    for chat in listed:
        everyone = sim.members(account, str(chat["chat"]))
        assert chat["members"] == [
            m for m in sim.chat(account, str(chat["chat"])).members if m != owner_id(account)
        ]
        assert set(chat["members"]) == everyone - {owner_id(account)}  # type: ignore[arg-type]
    text = exported.read_text()
    assert f"  # {account} / {chats[1]} " in text and "read-only" in text
    assert "      - ACoAA0161  # Ann Kim, linkedin.com/in/ann-kim-0161" in text
    assert '  - chat: "2024"' in text
    assert text.startswith("# Written by `bulkgroups export` at ")
    assert sim.url in text.splitlines()[0]
    assert sim.api_key not in text

    plan = cli.run("plan", exported, "--detailed-exitcode", *flags)
    assert plan.code == 0, plan.out + plan.err
    assert f"Plan: 0 to add, 0 to remove, 0 to rename, 0 to leave in 0 of {len(listed)} chats." in (
        plan.out
    )


def test_export_as_csv_plans_empty_too(cli: Cli, sim: Simulator, tmp_path: Path) -> None:
    sim.configure_chat("acc_1", "emptied", members=[])
    exported, flags = tmp_path / "today.csv", connect(sim, tmp_path)

    run = cli.run(
        "export", "--account", "acc_1", "acc_2", "--out", exported, *reading(sim, tmp_path)
    )

    assert run.code == 0, run.err
    rows = list(csv.DictReader(io.StringIO(exported.read_text())))
    assert {r["action"] for r in rows} == {"member"}
    assert [r for r in rows if r["chat"] == "emptied"] == [
        {"account": "acc_1", "chat": "emptied", "action": "member", "user": "", "name": ""}
    ]
    accounts = [r["account"] for r in rows]
    assert accounts == sorted(accounts)  # acc_1's chats, then acc_2's
    assert not any(owner_id(r["account"]) == r["user"] for r in rows)
    job = load_job(exported)
    assert len(job.chats) == len(groups("acc_1")) + 1 + len(groups("acc_2"))
    plan = cli.run("plan", exported, "--detailed-exitcode", *flags)
    assert plan.code == 0, plan.out + plan.err


def test_csv_export_has_the_columns_in_the_documented_order_every_time(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    # A column order that changed from one export to the next (it followed a set's hash order,
    # random per process) would make every line of a file kept in git differ from its last export.
    run = cli.run("export", "--account", "acc_1", "--format", "csv", *reading(sim, tmp_path))

    assert run.code == 0, run.err
    header, first, *_ = run.out.splitlines()
    assert header == "account,chat,action,user,name"
    assert first.startswith(f"acc_1,{sorted(groups('acc_1'))[0]},member,ACoAA")


@pytest.mark.parametrize(("fmt", "out"), [("yaml", "today.csv"), ("csv", "today.yaml")])
def test_a_format_that_the_files_extension_would_misread_is_refused_before_anything_is_read(
    cli: Cli, sim: Simulator, tmp_path: Path, fmt: str, out: str
) -> None:
    # Job files are read by their extension: YAML in a .csv (or CSV in a .yaml) would be an
    # export that `plan` cannot read back.
    path = tmp_path / out
    run = cli.run(
        "export", "--account", "acc_1", "--format", fmt, "--out", path, *reading(sim, tmp_path)
    )

    assert run.code == 1
    assert run.err.startswith(f"error: --format {fmt} with --out {path}: ")
    assert not path.exists()
    assert sim.requests() == ()


def test_an_out_file_in_a_directory_that_does_not_exist_is_refused_before_anything_is_read(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    # Found only once every chat was read, it would cost the whole read (hours at 1/s).
    out = tmp_path / "no-such-dir" / "groups.yaml"
    run = cli.run("export", "--account", "acc_1", "--out", out, *reading(sim, tmp_path))

    assert run.code == 1
    assert run.err.startswith(f"error: {out}: cannot write the job file there: ")
    assert str(out.parent) in run.err
    assert sim.requests() == ()


def test_export_of_named_chats_reads_only_those(cli: Cli, sim: Simulator, tmp_path: Path) -> None:
    chosen = groups("acc_1")[0]
    lone = starter_chats("acc_1")[-1]  # the 1to1 chat
    flags = reading(sim, tmp_path)
    sim.chats("acc_1")
    sim.reset_log()

    run = cli.run("export", "--account", "acc_1", "--chat", chosen, lone, *flags)

    assert run.code == 0, run.err
    document = yaml.safe_load(run.out)
    assert [c["chat"] for c in document["chats"]] == [chosen]
    assert f"  # acc_1 / {lone} " in run.out and "not a group chat" in run.out
    paths = {r.path for r in sim.requests("acc_1") if r.kind == "read"}
    assert paths == {
        f"/v2/acc_1/chats/{chosen}",
        f"/v2/acc_1/chats/{chosen}/participants",
        f"/v2/acc_1/chats/{lone}",
    }


def test_chats_and_accounts_that_cannot_be_read_are_named_and_exit_3(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    sim.configure_chat("acc_1", "has_a_stranger", members=["ACoAA0001", "not an id"])
    flags = reading(sim, tmp_path)

    run = cli.run(
        "export", "--account", "acc_1", "acc_disconnected", "--out", tmp_path / "x.yaml", *flags
    )

    assert run.code == 3
    assert "not exported: acc_disconnected: failed account_disconnected" in run.err
    assert re.search(r"not exported: acc_1 / has_a_stranger: .*contains a space", run.err)
    text = (tmp_path / "x.yaml").read_text()
    assert "  # acc_1 / has_a_stranger" in text
    assert "  - chat: has_a_stranger" not in text  # never an entry that would remove someone
    assert load_job(tmp_path / "x.yaml").chats  # the rest is a job all the same

    missing = cli.run("export", "--account", "acc_1", "--chat", "gone_chat", *flags)
    assert missing.code == 3
    assert "not exported: gone_chat: found in none of the accounts" in missing.err


def test_a_refused_key_writes_nothing(cli: Cli, sim: Simulator, tmp_path: Path) -> None:
    out = tmp_path / "x.yaml"
    run = cli.run("export", "--account", "acc_1", "--out", out, *reading(sim, tmp_path, key="k"))
    assert run.code == 1
    assert not out.exists()


def test_export_is_paced_by_the_accounts_limits(
    cli: Cli, sim_factory: object, tmp_path: Path
) -> None:
    sim = sim_factory(rate=parse_rate("5/s"))  # type: ignore[operator]
    sim.configure_chat("acc_1", "big_room")  # ten pages of participants
    flags = reading(sim, tmp_path)
    flags[flags.index("--rate") + 1] = "5/s"

    run = cli.run("export", "--account", "acc_1", "--page-size", "100", *flags)

    assert run.code == 0, run.err
    assert sim.violations() == 0
    reads = [r for r in sim.requests("acc_1") if r.kind == "read"]
    assert len(reads) >= 10 + len(groups("acc_1"))
    assert "ACoAB0999" in run.out
    assert f"  - ACoAB0001  # {person('ACoAB0001').display_name}" in run.out


def test_names_in_any_script_survive_standard_output_whole(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    # Long names of three-byte characters: the account's spool is copied out in chunks whose
    # ends fall inside some of them.
    names = {f"room_{i:02d}": f"Équipe {i} " + "€" * 3000 for i in range(40)}
    for chat, name in names.items():
        sim.configure_chat("acc_1", chat, name=name)

    run = cli.run("export", "--account", "acc_1", *reading(sim, tmp_path))

    assert run.code == 0, run.err
    for chat, name in names.items():
        assert f'  # "{name}"\n  - chat: {chat}\n' in run.out
    assert len(run.out.encode()) > 5 * 64 * 1024


def test_a_chat_named_twice_is_exported_once(cli: Cli, sim: Simulator, tmp_path: Path) -> None:
    chosen = groups("acc_1")[0]
    run = cli.run("export", "--account", "acc_1", "--chat", chosen, chosen, *reading(sim, tmp_path))
    assert run.code == 0, run.err
    assert [c["chat"] for c in yaml.safe_load(run.out)["chats"]] == [chosen]


async def test_the_library_raises_a_refused_key_itself(sim: Simulator) -> None:
    async with UnipileClient(sim.url, api_key="not-the-key") as client:
        with pytest.raises(AuthError):
            await read_existing(["acc_1", "acc_2"], client, lambda chat: None)


def test_export_logs_its_requests_as_json_lines_for_a_log_collector(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    out = tmp_path / "x.yaml"
    flags = reading(sim, tmp_path)

    run = cli.run(
        "export", "--account", "acc_1", "--out", out, "-v", "--log-format", "json", *flags
    )

    assert run.code == 0, run.err
    lines = [orjson.loads(line) for line in run.err.splitlines()]
    requests = [line for line in lines if line.get("logger") == "bulkgroups.http"]
    assert len(requests) == len([r for r in sim.requests("acc_1") if r.kind == "read"]) + 1
    assert all(r["status"] == 200 for r in requests)
    assert sim.api_key not in run.err


def test_export_quiet_says_only_what_it_wrote(cli: Cli, sim: Simulator, tmp_path: Path) -> None:
    out = tmp_path / "x.yaml"

    run = cli.run("export", "--account", "acc_1", "--out", out, "-q", *reading(sim, tmp_path))

    assert run.code == 0, run.err
    assert run.err.strip().splitlines() == [
        f"Exported {len(groups('acc_1'))} chats of 1 account to {out}."
    ]


def test_only_account_and_only_chat_select_as_in_plan_and_apply(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    chosen = groups("acc_1")[0]
    flags = reading(sim, tmp_path)

    run = cli.run("export", "--only-account", "acc_1", "--only-chat", chosen, *flags)

    assert run.code == 0, run.err
    document = yaml.safe_load(run.out)
    assert [(c["account"], c["chat"]) for c in document["chats"]] == [("acc_1", chosen)]
