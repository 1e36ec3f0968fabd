"""`bulkgroups --version` and the help: every flag explained with its default, the rate grammar
and the exit codes in the epilog, and the defaults shown being the ones used."""

from __future__ import annotations

import argparse
import re

import pytest

from bulkgroups import __version__, client, display, engine, pacing, simulator
from bulkgroups.cli import DEFAULT_LEDGER, MAX_PAGE_SIZE, SANDBOX_RATE, build_parser
from bulkgroups.simulator.faults import FAULT_KINDS

from helpers.cli import Cli

COMMANDS = ("validate", "plan", "apply", "report", "sandbox")


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("COLUMNS", "100")  # argparse wraps at the terminal's width
    return Cli(capsys, monkeypatch)


def help_of(cli: Cli, *command: str) -> str:
    run = cli.run(*command, "--help")
    assert run.code == 0, run.err
    return " ".join(run.out.split())  # argparse's line breaks are not the content


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (group,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(group.choices)


def test_version_prints_the_package_version(cli: Cli) -> None:
    run = cli.run("--version")
    assert run.code == 0
    assert run.out == f"bulkgroups {__version__}\n"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_flag_of_every_command_is_explained_with_its_default(command: str) -> None:
    for action in subparsers()[command]._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"{command} {action.option_strings or action.dest}: no help"
        takes_a_value = action.option_strings and action.nargs != 0
        if takes_a_value or action.option_strings == ["--show-unchanged"]:
            assert "(default: " in action.help, f"{command} {action.option_strings}: no default"


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        ("plan", "--rate SPEC per-account limit on every account-scoped request, reads "
         "included (default: 1/s; 20/s with --sandbox)"),
        ("apply", "--write-rate SPEC per-account limit on writes, on top of --rate "
         "(default: 1/min; 20/s with --sandbox)"),
        ("plan", "(default: 0.5; 0 with --sandbox)"),
        ("plan", "--format {text,json} text for people, json for scripts (default: text)"),
        ("plan", "(default: 64)"),
        ("plan", "(default: 100; -1 = no limit)"),
        ("apply", "--ledger PATH the JSON Lines ledger to append to; a directory"),
        ("apply", "for daily limits and pacing (default: bulkgroups-ledger.jsonl)"),
        ("apply", "--max-removal-percent P refuse a plan in which any desired-state chat"),
        ("apply", "owner excluded; 0 < P <= 100 (default: no such check)"),
        ("plan", "(default: every account)"),
        ("plan", "(default: every chat)"),
        ("apply", "(default: $UNIPILE_BASE_URL or $UNIPILE_DSN, else https://api.unipile.com)"),
        ("report", "(default: text)"),
        ("sandbox", "--rate SPEC each account's limit; beyond it 429 with Retry-After "
         "(default: 20/s)"),
        ("sandbox", "--host HOST address to listen on (default: 127.0.0.1)"),
        ("sandbox", "--port PORT port to listen on (default: 0, any free port)"),
        ("sandbox", "(default: a random one, printed)"),
        ("sandbox", "(default: none)"),
        ("sandbox", "--seed N seed of the faults' randomness (default: 0)"),
    ],
)  # fmt: skip
def test_the_help_shows_the_defaults(cli: Cli, command: str, shown: str) -> None:
    assert shown in help_of(cli, command)


def test_the_automatic_summary_size_shown_is_the_one_used(cli: Cli) -> None:
    assert f"(default: only beyond {display.AUTO_SUMMARY_LINES:,} operations" in help_of(
        cli, "plan"
    )


def test_the_defaults_shown_are_the_ones_used() -> None:
    assert str(pacing.DEFAULT_RATE) == "1/s"
    assert str(pacing.DEFAULT_WRITE_RATE) == "1/min"
    assert str(simulator.DEFAULT_RATE) == SANDBOX_RATE
    assert DEFAULT_LEDGER == engine.DEFAULT_LEDGER
    assert MAX_PAGE_SIZE == client.MAX_PAGE_SIZE
    defaults = {a.dest: a.default for a in subparsers()["plan"]._actions}
    assert (defaults["concurrency"], defaults["max_removals"]) == (64, 100)
    assert defaults["rate"] is None and defaults["jitter"] is None  # resolved per connection
    assert engine.EngineConfig().concurrency == 64
    assert engine.EngineConfig().max_removals == 100


EXIT_CODES = re.compile(r"exit codes.*?\b1 .*?\b4 .*?\b130 .*?\b3 .*?\b2 .*?\b0 success")


@pytest.mark.parametrize("command", [(), ("plan",), ("apply",)])
def test_the_epilog_has_the_rate_grammar_and_the_exit_codes_in_order(
    cli: Cli, command: tuple[str, ...]
) -> None:
    text = help_of(cli, *command)
    assert "SPEC is N/s, N/min, N/h, N/d, or N/<k><unit>" in text
    assert "Nothing else is a rate: not 2/sec, 2/m, 1/ms or 2/minute." in text
    assert EXIT_CODES.search(text), text
    assert "4 the ledger could not be written" in text
    assert "130 interrupted (Ctrl-C or SIGTERM)" in text


@pytest.mark.parametrize("command", ["validate", "report"])
def test_commands_that_send_nothing_list_only_the_exit_codes_they_can_give(
    cli: Cli, command: str
) -> None:
    # A ledger that cannot be written (4), operations that failed (3) or --max-removals are
    # nothing validate or report could ever exit for.
    text = help_of(cli, command)
    assert re.search(r"exit codes: 0 .*? 1 .*? 130 interrupted", text), text
    assert "--max-removals" not in text and "ledger could not be written" not in text


def test_export_explains_the_rate_it_takes_and_no_other(cli: Cli) -> None:
    text = help_of(cli, "export")
    assert "SPEC is N/s, N/min, N/h, N/d, or N/<k><unit>" in text
    assert "--write-rate" not in text  # export only reads


def test_the_sandbox_help_names_every_kind_of_fault(cli: Cli) -> None:
    text = help_of(cli, "sandbox")
    for kind in FAULT_KINDS:
        assert kind in text, kind


def test_the_sandbox_help_has_the_rate_grammar(cli: Cli) -> None:
    assert "SPEC is N/s, N/min, N/h, N/d, or N/<k><unit>" in help_of(cli, "sandbox")


def test_a_usage_error_exits_1_naming_the_flag(cli: Cli) -> None:
    run = cli.run("plan", "job.yaml", "--frobnicate")
    assert run.code == 1
    assert run.err.startswith("error: bulkgroups")
    assert "--frobnicate" in run.err
    assert "Traceback" not in run.err


def test_summary_and_full_exclude_each_other(cli: Cli) -> None:
    run = cli.run("plan", "job.yaml", "--summary", "--full")
    assert run.code == 1
    assert "not allowed with argument" in run.err


@pytest.mark.parametrize(
    ("command", "flag"),
    [("plan", "--only-account"), ("apply", "--only-chat"), ("apply", "--only-account")],
)
def test_job_files_after_a_list_flag_are_pointed_out(cli: Cli, command: str, flag: str) -> None:
    # `--only-account acc_1 job.yaml` takes job.yaml for a second account id: "JOB is required"
    # alone would puzzle someone who gave one.
    run = cli.run(command, flag, "acc_1", "job.yaml")
    assert run.code == 1
    assert "the following arguments are required: JOB" in run.err
    assert f"{flag} takes every value after it" in run.err
    assert "give the job files first" in run.err
