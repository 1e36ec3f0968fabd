"""The ledger's typed records: one line each, read back as written, unknown values refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from bulkgroups.errors import LedgerCorrupt
from bulkgroups.ledger import read_ledger
from bulkgroups.model import ErrorInfo, Operation, Outcome
from bulkgroups.records import (
    EndRecord,
    IntentRecord,
    OpRecord,
    Record,
    RunRecord,
    VerifyRecord,
    record_from_json,
)

AT = "2025-03-10T12:00:00.000Z"
ADD = Operation("acc_1", "chat_A", "add", user="u1")
RENAME = Operation("acc_1", "chat_A", "rename", name="Cohort 12")
ERROR = ErrorInfo(status=503, type="api/proxy_error", detail="down", req_id="q1")

EVERY_KIND: list[Record] = [
    RunRecord("r1", "a" * 64, True, AT, "0.1.0"),
    IntentRecord.of(ADD, run_id="r1", attempt=2, at=AT),
    OpRecord.of(Outcome(ADD, "failed", "api_error", 6, ERROR, in_doubt=True), run_id="r1", at=AT),
    OpRecord.of(Outcome(ADD, "applied", None, 0, recovered=True), run_id="r1", at=AT),
    OpRecord.of(Outcome(RENAME, "applied", None, 1), run_id="r1", at=AT, previous_name="Old"),
    VerifyRecord(ADD.op_id, "r1", "failed", "not_effective", AT),
    EndRecord("r1", {"applied": 2, "skipped": 0, "deferred": 0, "failed": 1}, False, AT),
]


def parse(line: bytes, line_number: int = 1) -> Record:
    return record_from_json(orjson.loads(line), path="ledger.jsonl", line=line_number)


@pytest.mark.parametrize("record", EVERY_KIND, ids=lambda r: type(r).__name__)
def test_each_record_is_one_json_line_read_back_as_written(record: Record) -> None:
    line = record.to_json()
    assert b"\n" not in line
    assert parse(line) == record


@pytest.mark.parametrize(
    "outcome",
    [
        Outcome(ADD, "failed", "api_error", 6, ERROR, in_doubt=True),
        Outcome(ADD, "applied", None, 0, recovered=True),
        Outcome(RENAME, "applied", None, 1),
        Outcome(Operation("acc_1", "chat_A", "leave"), "skipped", "not_member", 0),
    ],
)
def test_the_write_paths_lines_are_the_records_own_json(outcome: Outcome) -> None:
    """The engine writes `intent` and `op` lines without building the records: same bytes."""
    for previous_name in (None, "Old"):
        record = OpRecord.of(outcome, run_id="r1", at=AT, previous_name=previous_name)
        line = OpRecord.json_of(outcome, run_id="r1", at=AT, previous_name=previous_name)
        assert line == record.to_json()
        assert parse(line) == record
    for previous_name in (None, "Old"):
        intent = IntentRecord.of(
            outcome.operation, run_id="r1", attempt=3, at=AT, previous_name=previous_name
        )
        line = IntentRecord.json_of(
            outcome.operation, run_id="r1", attempt=3, at=AT, previous_name=previous_name
        )
        assert line == intent.to_json()
        assert parse(line) == intent


def test_optional_op_fields_are_written_only_when_they_say_something() -> None:
    plain: dict[str, Any] = orjson.loads(
        OpRecord.of(Outcome(ADD, "applied", None, 1), run_id="r1", at=AT).to_json()
    )
    assert not {"recovered", "in_doubt", "previous_name"} & plain.keys()
    flagged = orjson.loads(EVERY_KIND[2].to_json())
    assert flagged["in_doubt"] is True and "recovered" not in flagged
    renamed = orjson.loads(EVERY_KIND[4].to_json())
    assert renamed["previous_name"] == "Old"
    # Only a rename has a previous name worth keeping.
    added = OpRecord.of(Outcome(ADD, "applied"), run_id="r1", at=AT, previous_name="Old")
    assert added.previous_name is None


def test_an_op_record_of_a_ledger_older_than_intents_still_reads() -> None:
    old = {
        "type": "op",
        "op_id": ADD.op_id,
        "run_id": "r1",
        "account": "acc_1",
        "chat": "chat_A",
        "action": "add",
        "user": "u1",
        "name": None,
        "status": "applied",
        "reason": None,
        "attempts": 1,
        "error": None,
        "at": AT,
    }
    record = parse(orjson.dumps(old))
    assert isinstance(record, OpRecord)
    assert (record.recovered, record.in_doubt, record.previous_name) == (False, False, None)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"type": "checkpoint"}, "unknown record type 'checkpoint'"),
        ({"status": "done"}, "unknown status 'done'"),
        ({"action": "invite"}, "unknown action 'invite'"),
        ({"reason": "because"}, "unknown reason 'because'"),
        ({"attempts": -1}, "attempts must be a whole number >= 0"),
        ({"attempts": True}, "attempts must be a whole number >= 0"),
        ({"account": None}, "account must be a string"),
        ({"at": "yesterday"}, "at is not an ISO 8601 time"),
        ({"error": {"status": "500", "type": "x"}}, "error.status must be a number or null"),
        ({"in_doubt": "yes"}, "in_doubt must be true or false"),
    ],
)
def test_a_record_bulkgroups_never_writes_is_refused_naming_file_line_and_field(
    tmp_path: Path, change: dict[str, Any], problem: str
) -> None:
    good = orjson.loads(EVERY_KIND[2].to_json())
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(EVERY_KIND[0].to_json() + b"\n" + orjson.dumps(good | change) + b"\n")
    with pytest.raises(LedgerCorrupt) as caught:
        list(read_ledger(path))
    assert caught.value.line == 2
    assert str(caught.value).startswith(f"{path}:2: ")
    assert problem in str(caught.value)


def test_an_end_record_with_an_unknown_status_count_is_refused() -> None:
    line = orjson.dumps(
        {
            "type": "end",
            "run_id": "r1",
            "counts": {"lost": 1},
            "interrupted": False,
            "finished_at": AT,
        }
    )
    with pytest.raises(LedgerCorrupt, match="unknown status 'lost'"):
        parse(line)
