"""`bulkgroups report`: per-run and overall counts, and per-account explanations of failures."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import orjson
import pytest
from rich.console import Console

from bulkgroups.errors import LedgerCorrupt
from bulkgroups.ledger import LedgerWriter
from bulkgroups.model import ErrorInfo, Operation, Outcome
from bulkgroups.records import IntentRecord
from bulkgroups.report import (
    CSV_COLUMNS,
    explain,
    print_text,
    render_csv,
    render_json,
    render_text,
    summarize,
)

JOB = "c" * 64
LIMITED = ErrorInfo(
    status=429, type="provider/too_many_requests", detail="Slow down\nplease", req_id="req-429"
)
BROKEN = ErrorInfo(status=500, type="api/unexpected_error", detail="boom", req_id="req-500")
TIMEOUT = ErrorInfo(status=None, type="transport/timeout", detail="no answer in 30 s")


def add(account: str, chat: str, user: str) -> Operation:
    return Operation(account, chat, "add", user=user)


@pytest.fixture
async def ledger(tmp_path: Path) -> Path:
    """Two runs of one job: the first is interrupted with problems, the resume fixes some."""
    path = tmp_path / "ledger.jsonl"
    async with LedgerWriter(path) as writer:
        await writer.run_started(run_id="r1", job_sha256=JOB, resume=False, version="0.1.0")
        first = [
            Outcome(add("acc_x", "chat_A", "u1"), "applied", attempts=1),
            Outcome(add("acc_x", "chat_A", "u2"), "skipped", "already_member"),
            *(
                Outcome(
                    add("acc_x", "chat_B", f"v{i}"),
                    "deferred",
                    "provider_rate_limited",
                    attempts=1 if i == 0 else 0,
                    error=LIMITED,
                )
                for i in range(12)
            ),
            Outcome(
                Operation("acc_y", "chat_C", "rename", name="Cohort 12"),
                "failed",
                "api_error",
                attempts=6,
                error=BROKEN,
            ),
            Outcome(Operation("acc_y", "chat_D", "leave"), "failed", "api_error", 3, TIMEOUT),
            Outcome(add("acc_z", "chat_E", "w1"), "deferred", "daily_limit"),
        ]
        for outcome in first:
            await writer.record(outcome, run_id="r1")
        await writer.run_ended(
            run_id="r1",
            counts={"applied": 1, "skipped": 1, "deferred": 13, "failed": 2},
            interrupted=True,
        )
        await writer.run_started(run_id="r2", job_sha256=JOB, resume=True, version="0.1.0")
        await writer.record(
            Outcome(add("acc_z", "chat_E", "w1"), "applied", attempts=1), run_id="r2"
        )
        await writer.record(
            Outcome(Operation("acc_y", "chat_D", "leave"), "applied", attempts=1), run_id="r2"
        )
        await writer.run_ended(run_id="r2", counts={"applied": 2}, interrupted=False)
        await writer.run_started(run_id="r3", job_sha256=JOB, resume=True, version="0.1.0")
        await writer.record(
            Outcome(add("acc_x", "chat_B", "v0"), "applied", attempts=2), run_id="r3"
        )
        # r3 has no end record: killed.
    return path


def test_summary_counts_each_run_and_the_last_outcome_per_operation(ledger: Path) -> None:
    summary = summarize(ledger)
    assert [run.run_id for run in summary.runs] == ["r1", "r2", "r3"]
    r1, r2, r3 = summary.runs
    assert r1.counts == {"applied": 1, "skipped": 1, "deferred": 13, "failed": 2}
    assert r1.by_reason == {
        "already_member": 1,
        "api_error": 2,
        "daily_limit": 1,
        "provider_rate_limited": 12,
    }
    assert r1.by_account["acc_x"] == {"applied": 1, "skipped": 1, "deferred": 12, "failed": 0}
    assert (r1.state, r2.state, r3.state) == ("interrupted", "finished", "no end record")
    assert (r1.resume, r2.resume) == (False, True) and r1.job_sha256 == JOB
    assert r2.counts == {"applied": 2, "skipped": 0, "deferred": 0, "failed": 0}

    assert summary.operations == 17
    assert summary.counts == {"applied": 4, "skipped": 1, "deferred": 11, "failed": 1}
    assert summary.by_account == {
        "acc_x": {"applied": 2, "skipped": 1, "deferred": 11, "failed": 0},
        "acc_y": {"applied": 1, "skipped": 0, "deferred": 0, "failed": 1},
        "acc_z": {"applied": 1, "skipped": 0, "deferred": 0, "failed": 0},
    }
    assert summary.by_reason == {
        "already_member": 1,
        "api_error": 1,
        "provider_rate_limited": 11,
    }


def test_problems_are_the_operations_still_failed_or_deferred_with_their_errors(
    ledger: Path,
) -> None:
    problems = summarize(ledger).problems
    assert len(problems) == 12
    rename = next(p for p in problems if p.action == "rename")
    assert (rename.account, rename.chat, rename.name, rename.status, rename.reason) == (
        "acc_y",
        "chat_C",
        "Cohort 12",
        "failed",
        "api_error",
    )
    assert rename.error == BROKEN and rename.attempts == 6 and rename.run_id == "r1"
    # The leave and the daily-limited add were done later: no longer problems.
    assert not any(p.action == "leave" or p.account == "acc_z" for p in problems)


def test_the_text_report_explains_failures_per_account(ledger: Path) -> None:
    text = render_text(summarize(ledger), width=80)  # explanations are never wrapped
    assert (
        "acc_x: 11 deferred — provider_rate_limited "
        "(429 provider/too_many_requests: Slow down please; req_id req-429)"
    ) in text
    assert "acc_y: 1 failed — api_error (500 api/unexpected_error: boom; req_id req-500)" in text
    table = render_text(summarize(ledger), width=120)
    assert "r1" in table and "interrupted" in table and "no end record, resume" in table
    assert "\x1b[" not in text  # plain text: no terminal escapes


def test_explanations_list_distinct_errors_and_outcomes_without_errors(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    records = [{"type": "run", "run_id": "r1", "job_sha256": JOB, "resume": False}]
    errors = [BROKEN, BROKEN, TIMEOUT, None]
    for i, error in enumerate(errors):
        records.append(
            {
                "type": "op",
                "op_id": f"{i:032x}",
                "run_id": "r1",
                "account": "acc_q",
                "chat": "chat_A",
                "action": "add",
                "user": f"u{i}",
                "name": None,
                "status": "failed",
                "reason": "api_error",
                "attempts": 1,
                "error": None if error is None else error.as_dict(),
                "at": "2025-03-10T12:00:00.000Z",
            }
        )
    records.append(records[-1] | {"op_id": "f" * 32, "status": "deferred", "reason": "daily_limit"})
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    assert explain(summarize(path)) == [
        "acc_q: 4 failed — api_error",
        "    2× 500 api/unexpected_error: boom; req_id req-500",
        "    1× transport/timeout: no answer in 30 s",
        "acc_q: 1 deferred — daily_limit",
    ]


def test_a_clean_ledger_says_everything_was_done(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(b'{"type":"run","run_id":"r1","job_sha256":"x","resume":false}\n')
    assert "Every operation was applied or skipped." in render_text(summarize(path))


def test_user_text_is_never_read_as_rich_markup(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    op = {
        "type": "op",
        "op_id": "0" * 32,
        "run_id": "r1",
        "account": "acc_[bold]x[/bold]",
        "chat": "c",
        "action": "add",
        "user": "u",
        "name": None,
        "status": "failed",
        "reason": "api_error",
        "attempts": 1,
        "error": {
            "status": 400,
            "type": "api/invalid_parameters",
            "detail": "[red]no",
            "req_id": None,
        },
        "at": "2025-03-10T12:00:00.000Z",
    }
    path.write_bytes(orjson.dumps(op) + b"\n")
    text = render_text(summarize(path), width=200)
    assert "acc_[bold]x[/bold]: 1 failed" in text and "[red]no" in text


def test_what_the_server_said_cannot_steer_the_terminal(tmp_path: Path) -> None:
    # An error detail (and type) comes from the server: an escape sequence or a bidi override in
    # it is shown escaped, never passed to the terminal.
    path = tmp_path / "ledger.jsonl"
    op = {
        "type": "op", "op_id": "1" * 32, "run_id": "r1", "account": "acc_1", "chat": "c",
        "action": "add", "user": "u", "name": None, "status": "failed", "reason": "api_error",
        "attempts": 1, "at": "2025-03-10T12:00:00.000Z",
        "error": {
            "status": 400, "type": "api/\x1b[2Jodd", "req_id": None,
            "detail": "bad \x1b[31mred\x1b[0m and \u202eevil",
        },
    }  # fmt: skip
    path.write_bytes(orjson.dumps(op) + b"\n")
    text = render_text(summarize(path), width=200)
    assert "\x1b" not in text and "\u202e" not in text
    assert "bad \\x1b[31mred\\x1b[0m and \\u202eevil" in text
    assert "api/\\x1b[2Jodd" in text


def test_the_text_report_prints_to_a_given_console(ledger: Path) -> None:
    buffer = io.StringIO()
    print_text(summarize(ledger), Console(file=buffer, width=120, color_system=None))
    assert "acc_x: 11 deferred" in buffer.getvalue()


def test_the_json_report_holds_runs_counts_and_problems(ledger: Path) -> None:
    document = orjson.loads(render_json(summarize(ledger)))
    assert document["ledger"] == str(ledger)
    assert document["counts"] == {"applied": 4, "skipped": 1, "deferred": 11, "failed": 1}
    assert [run["run_id"] for run in document["runs"]] == ["r1", "r2", "r3"]
    assert document["runs"][0]["interrupted"] is True
    assert document["runs"][2]["finished_at"] is None
    failed = [p for p in document["problems"] if p["status"] == "failed"]
    assert failed == [
        {
            "op_id": Operation("acc_y", "chat_C", "rename", name="Cohort 12").op_id,
            "run_id": "r1",
            "at": failed[0]["at"],
            "account": "acc_y",
            "chat": "chat_C",
            "action": "rename",
            "user": None,
            "name": "Cohort 12",
            "status": "failed",
            "reason": "api_error",
            "attempts": 6,
            "error": BROKEN.as_dict(),
        }
    ]


def test_the_csv_report_has_one_row_per_op_record(ledger: Path) -> None:
    rows = list(csv.reader(io.StringIO(render_csv(ledger))))
    assert tuple(rows[0]) == CSV_COLUMNS
    body = [dict(zip(CSV_COLUMNS, row, strict=True)) for row in rows[1:]]
    assert len(body) == 17 + 2 + 1  # every op record of every run, superseded ones included
    timeout = next(r for r in body if r["error_type"] == "transport/timeout")
    assert timeout | {"at": ""} == {
        "run_id": "r1",
        "at": "",
        "account": "acc_y",
        "chat": "chat_D",
        "action": "leave",
        "user": "",
        "name": "",
        "status": "failed",
        "reason": "api_error",
        "attempts": "3",
        "error_status": "",
        "error_type": "transport/timeout",
        "error_detail": "no answer in 30 s",
        "req_id": "",
    }
    limited = next(r for r in body if r["error_status"] == "429")
    assert limited["error_detail"] == "Slow down\nplease"  # quoted, not mangled


def test_reports_refuse_a_damaged_ledger(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(b"nonsense\n{}\n")
    with pytest.raises(LedgerCorrupt):
        summarize(path)
    with pytest.raises(LedgerCorrupt):
        render_csv(path)


async def test_a_write_sent_without_a_recorded_outcome_is_reported_until_a_later_run_decides_it(
    tmp_path: Path,
) -> None:
    # A run killed while ACoAA2 was on its way: the server may have applied it, so the report must
    # not say that everything was done.
    path = tmp_path / "ledger.jsonl"
    sent, lost = add("acc_x", "chat_A", "ACoAA1"), add("acc_x", "chat_A", "ACoAA2")
    async with LedgerWriter(path) as writer:
        await writer.run_started(run_id="r1", job_sha256=JOB, resume=False, version="0.1.0")
        for operation in (sent, lost):
            await writer.append(IntentRecord.of(operation, run_id="r1", attempt=1, at=writer.now()))
        await writer.record(Outcome(sent, "applied", attempts=1), run_id="r1")
    summary = summarize(path)
    text = render_text(summary, width=200)
    assert "Every operation was applied or skipped." not in text
    assert "acc_x: 1 write sent without a recorded outcome" in text
    document = orjson.loads(render_json(summary))
    assert [(p["op_id"], p["run_id"], p["user"]) for p in document["pending"]] == [
        (lost.op_id, "r1", "ACoAA2")
    ]

    async with LedgerWriter(path) as writer:
        await writer.run_started(run_id="r2", job_sha256=JOB, resume=False, version="0.1.0")
        await writer.record(Outcome(lost, "applied", recovered=True), run_id="r2")
        await writer.run_ended(run_id="r2", counts={"applied": 1}, interrupted=False)
    summary = summarize(path)
    assert summary.pending == ()
    assert "Every operation was applied or skipped." in render_text(summary)
