"""`bulkgroups validate JOB...`: job files checked offline, errors as `PATH:LINE: FIELD: message`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bulkgroups.simulator import Simulator, owner_id

from helpers.cli import Cli
from helpers.engine import write_job

EXAMPLES = sorted(Path(__file__).parent.parent.joinpath("jobs").iterdir())
ERROR_LINE = re.compile(r"^(?P<path>.+):(?P<line>\d+): (?P<field>[^:]+): (?P<message>.+)$")


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_example_job_is_valid(cli: Cli, example: Path) -> None:
    run = cli.run("validate", example)
    assert run.code == 0, run.err
    assert run.out.startswith("OK:")
    assert run.err == ""


def test_several_files_are_validated_as_one_job(cli: Cli) -> None:
    run = cli.run("validate", *EXAMPLES)
    assert run.code == 0, run.err
    assert f"in {len(EXAMPLES)} files" in run.out


def test_a_bad_file_exits_1_with_one_located_line_per_error(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\n"
        "chats:\n"
        "  - chat: c1\n"
        "    account: acc_1\n"
        "    add: [ACoAA0001]\n"
        "    remove: [ACoAA0001]\n"
        "    colour: red\n"
        "  - chat: ' c2'\n"
        "    account: acc_1\n"
        "    leave: true\n",
        encoding="utf-8",
    )
    run = cli.run("validate", bad)
    assert run.code == 1
    assert run.out == ""
    lines = run.err.splitlines()
    parsed = [ERROR_LINE.match(line) for line in lines]
    assert all(parsed), lines
    located = [(m["path"], int(m["line"]), m["field"]) for m in parsed if m]
    assert located == [
        (str(bad), 6, "chats[0].remove[0]"),
        (str(bad), 7, "chats[0].colour"),
        (str(bad), 8, "chats[1].chat"),
    ]


def test_errors_of_a_csv_file_name_its_physical_line(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "export.csv"
    bad.write_text(
        "account,chat,action,user,name\r\nacc_1,c1,add,ACoAA1,\r\nacc_1,c1,frobnicate,ACoAA2,\r\n",
        encoding="utf-8",
    )
    run = cli.run("validate", bad)
    assert run.code == 1
    assert run.err.startswith(f"{bad}:3: action: unknown action 'frobnicate'")


def test_a_chat_listed_in_two_files_is_one_error_naming_both(cli: Cli, tmp_path: Path) -> None:
    first = write_job(tmp_path / "a.yaml", [{"chat": "c1", "account": "acc_1", "leave": True}])
    second = write_job(tmp_path / "b.yaml", [{"chat": "c1", "account": "acc_1", "leave": True}])
    run = cli.run("validate", first, second)
    assert run.code == 1
    assert f"{second}:3: chats[0].chat:" in run.err
    assert f"{first}:" in run.err


def test_a_missing_file_is_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    run = cli.run("validate", tmp_path / "nowhere.yaml")
    assert run.code == 1
    assert "nowhere.yaml" in run.err
    assert "Traceback" not in run.err


def test_validate_uses_no_network_even_when_a_connection_is_configured(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    cli.monkeypatch.setenv("UNIPILE_BASE_URL", sim.url)
    cli.monkeypatch.setenv("UNIPILE_API_KEY", sim.api_key)
    job = write_job(
        tmp_path / "job.yaml",
        # The owner rule needs the account GET, so validate cannot and does not check it.
        [{"chat": "c1", "account": "acc_1", "remove": [owner_id("acc_1")]}],
    )
    run = cli.run("validate", job)
    assert run.code == 0, run.err
    assert sim.requests() == ()


def test_validate_takes_no_connection_flags(cli: Cli, tmp_path: Path) -> None:
    job = write_job(tmp_path / "job.yaml", [{"chat": "c1", "account": "acc_1", "leave": True}])
    run = cli.run("validate", job, "--sandbox")
    assert run.code == 1
    assert "--sandbox" in run.err
