"""Tables in cron mail and CI logs (no terminal, 80 columns): long ids wrap within their column,
never cut to `account_…`; whatever a table holds can be read back from it whole."""

from __future__ import annotations

import io
import itertools
import re
from pathlib import Path

import pytest
from rich.console import Console

from bulkgroups.display import render_outcomes
from bulkgroups.ledger import LedgerWriter
from bulkgroups.model import ErrorInfo, Operation, Outcome
from bulkgroups.progress import ProgressDisplay
from bulkgroups.report import render_text, summarize
from bulkgroups.simulator import Simulator

from helpers.cli import Cli, connect
from helpers.engine import write_job

LONG_ACCOUNT = "account_disconnected_with_a_rather_long_identifier_0001"
LONG_CHAT = "chat_of_the_spring_cohort_with_a_long_id_0042"
LONG_USER = "ACoAAA8BYqEBCGLg_vT_ca6mMEqkpp9nVffJ3hc"
ERROR = ErrorInfo(
    status=403, type="api/insufficient_permissions", detail="nope", req_id="req-0123456789"
)
RUN_ID = "20261125T214252Z-6d6db585"


def narrow_console(stream: io.StringIO):  # type: ignore[no-untyped-def]
    from rich.console import Console

    return Console(file=stream, width=80, color_system=None, force_terminal=False)


def table(text: str, title: str) -> list[str]:
    """The lines of the table under `title`: up to the first blank line."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == title)
    end = start + 1
    while end < len(lines) and lines[end].strip() and not lines[end - 1].startswith("└"):
        end += 1
    return lines[start + 1 : end]


def columns(lines: list[str]) -> dict[str, str]:
    """Each column's text read back: its fragments on every body line joined, spaces dropped
    (a cell wrapped at a space loses that space at the line break)."""
    rule = next(i for i, line in enumerate(lines) if "╇" in line)
    cuts = [i for i, char in enumerate(lines[rule]) if char in "╇┡┩"]
    bounds = [-1 if lines[rule][0] not in "┡" else 0, *cuts, len(lines[rule])]
    bounds = sorted(set(bounds))

    def split(line: str) -> list[str]:
        return [line[a + 1 : b].strip() for a, b in itertools.pairwise(bounds)]

    header = [split(line) for line in lines[:rule] if "┃" in line]
    heads = ["".join(parts).replace(" ", "") for parts in zip(*header, strict=True)]
    body = [split(line) for line in lines[rule + 1 :] if "│" in line]
    return {
        head: "".join(row[n] for row in body).replace(" ", "")
        for n, head in enumerate(heads)
        if head
    }


def assert_fits_in(lines: list[str], width: int) -> None:
    assert all(len(line.rstrip()) <= width for line in lines), "\n".join(lines)
    assert not any("…" in line for line in lines), "\n".join(lines)


def assert_fits(lines: list[str]) -> None:
    assert_fits_in(lines, 80)


def _failed_and_deferred(console: Console) -> ProgressDisplay:
    display = ProgressDisplay(console)
    display.outcome(
        Outcome(
            Operation(LONG_ACCOUNT, LONG_CHAT, "add", user=LONG_USER),
            "failed",
            "api_error",
            6,
            ERROR,
        )
    )
    display.outcome(
        Outcome(Operation("acc_2", "team", "rename", name="Cohort 12"), "deferred", "daily_limit")
    )
    return display


def test_what_failed_too_wide_for_a_table_in_80_columns_is_one_whole_line_each() -> None:
    # A table folding ids, reasons and errors into 10-column slivers (`account_d`, `isconnect`,
    # `ed`) can neither be read nor grepped in a cron mail: one line per operation can.
    stream = io.StringIO()
    console = narrow_console(stream)
    render_outcomes(_failed_and_deferred(console).tally, console)
    text = stream.getvalue()
    assert "Outcomes" in text  # the counts still a table: short words that fit
    listed = text[text.index("Failed or deferred") :].splitlines()
    assert listed == [
        "Failed or deferred",
        f"  {LONG_ACCOUNT} / {LONG_CHAT}: add {LONG_USER}: failed api_error "
        "(403 api/insufficient_permissions, req_id req-0123456789)",
        "  acc_2 / team: rename Cohort 12: deferred daily_limit",
    ]


def test_what_failed_is_a_table_where_the_table_fits() -> None:
    stream = io.StringIO()
    console = Console(file=stream, width=300, color_system=None, force_terminal=False)
    render_outcomes(_failed_and_deferred(console).tally, console)
    lines = table(stream.getvalue(), "Failed or deferred")
    assert_fits_in(lines, 300)
    assert columns(lines) == {
        "account": LONG_ACCOUNT + "acc_2",
        "chat": LONG_CHAT + "team",
        "action": "addrename",
        "subject": LONG_USER + "Cohort12",
        "status": "faileddeferred",
        "reason": "api_errordaily_limit",
        "error": "403api/insufficient_permissions(req_idreq-0123456789)",
    }
    assert len([line for line in lines if "│" in line]) == 2  # a row each, nothing folded


@pytest.fixture
async def long_ledger(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.jsonl"
    async with LedgerWriter(path) as writer:
        await writer.run_started(run_id=RUN_ID, job_sha256="c" * 64, resume=True, version="0.1.0")
        for n in range(2):
            await writer.record(
                Outcome(
                    Operation(f"{LONG_ACCOUNT}{n}", LONG_CHAT, "add", user=LONG_USER),
                    "failed",
                    "api_error",
                    2,
                    ERROR,
                ),
                run_id=RUN_ID,
            )
        # No end record: the longest state, "no end record, resume".
    return path


def test_the_reports_tables_wrap_rather_than_cut_in_80_columns(long_ledger: Path) -> None:
    text = render_text(summarize(long_ledger), width=80)
    runs = table(text, "Runs")
    assert_fits(runs)
    read_back = columns(runs)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d\d\d:\d\d:\d\d", read_back.pop("started(UTC)"))
    assert read_back == {"run": RUN_ID, "job": "cccccccc", "state": "noendrecord,resume"}
    counts = table(text, "Outcomes per run")
    assert_fits(counts)
    assert columns(counts) == {
        "run": RUN_ID,
        "applied": "0",
        "skipped": "0",
        "deferred": "0",
        "failed": "2",
    }
    accounts = table(text, "Accounts (last outcome per operation)")
    assert_fits(accounts)
    assert columns(accounts)["account"] == f"{LONG_ACCOUNT}0{LONG_ACCOUNT}1"
    # The explanations are whole lines, never wrapped: people grep reports for an account.
    assert f"  {LONG_ACCOUNT}0: 1 failed — api_error (403" in text


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.delenv("COLUMNS", raising=False)
    return Cli(capsys, monkeypatch)


def test_a_cron_run_shows_what_failed_in_full(cli: Cli, sim: Simulator, tmp_path: Path) -> None:
    job = write_job(
        tmp_path / "job.yaml", [{"chat": LONG_CHAT, "account": LONG_ACCOUNT, "add": [LONG_USER]}]
    )
    ledger = tmp_path / "ledger.jsonl"
    run = cli.run("apply", job, "--ledger", ledger, *connect(sim, tmp_path))
    assert run.code == 3, run.err
    assert f"  {LONG_ACCOUNT} / {LONG_CHAT}: add {LONG_USER}: failed account_disconnected\n" in (
        run.out
    )

    report = cli.run("report", ledger)
    assert report.code == 0, report.err
    for title in ("Runs", "Outcomes per run", "Accounts (last outcome per operation)"):
        assert_fits(table(report.out, title))
    assert (
        columns(table(report.out, "Accounts (last outcome per operation)"))["account"]
        == LONG_ACCOUNT
    )
