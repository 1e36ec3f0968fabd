"""What profiles leave in files: `resolution` records in the ledger (read back, refused when
malformed, ignored by the report), and the resolutions a plan file carries to `apply --plan`."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from bulkgroups.errors import LedgerCorrupt, UsageError
from bulkgroups.ledger import read_ledger, replay
from bulkgroups.model import ChatPlan, Operation, Outcome, Plan, Resolution
from bulkgroups.planfile import dump_plan, load_plan
from bulkgroups.records import (
    EndRecord,
    OpRecord,
    ResolutionRecord,
    RunRecord,
    parse_time,
    record_from_json,
)
from bulkgroups.report import render_csv, summarize

AT = "2025-03-10T12:00:00.000Z"
ANN = Resolution("acc_1", "in:ann-kim", "ACoAnn", "Ann Kim", resolved_at=parse_time(AT))


def test_a_resolution_record_is_read_back_as_written() -> None:
    record = ResolutionRecord.of(ANN, run_id="r1")
    line = record.to_json()
    assert orjson.loads(line) == {
        "type": "resolution",
        "run_id": "r1",
        "account": "acc_1",
        "profile": "in:ann-kim",
        "user_id": "ACoAnn",
        "display_name": "Ann Kim",
        "at": AT,
    }
    read = record_from_json(orjson.loads(line), path="l.jsonl", line=3)
    assert read == record
    assert isinstance(read, ResolutionRecord) and read.resolution == ANN


def test_an_unresolved_profile_has_no_record() -> None:
    with pytest.raises(ValueError, match="was not resolved"):
        ResolutionRecord.of(Resolution("acc_1", "in:ghost", reason="unresolved_user"), run_id="r1")


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("profile", "ACoAnn", "profile must be in:<slug>"),
        ("user_id", None, "user_id must be a string"),
        ("at", "yesterday", "at is not an ISO 8601 time"),
    ],
)
def test_a_malformed_resolution_record_is_a_corrupt_ledger(
    field: str, value: object, problem: str
) -> None:
    obj = {**orjson.loads(ResolutionRecord.of(ANN, run_id="r1").to_json()), field: value}
    with pytest.raises(LedgerCorrupt, match=f"l.jsonl:7: resolution record: {problem}"):
        record_from_json(obj, path="l.jsonl", line=7)


def write_ledger(path: Path, *records: object) -> Path:
    path.write_bytes(b"".join(r.to_json() + b"\n" for r in records))  # type: ignore[attr-defined]
    return path


def test_replay_keeps_each_profiles_latest_resolution_of_any_run(tmp_path: Path) -> None:
    later = Resolution("acc_1", "in:ann-kim", "ACoAnn2", "Ann Kim", resolved_at=parse_time(AT) + 60)
    other = Resolution("acc_2", "in:ann-kim", "ACoAnnX", "Ann Kim", resolved_at=parse_time(AT))
    ledger = write_ledger(
        tmp_path / "l.jsonl",
        RunRecord("r1", "a" * 64, False, AT, "0"),
        ResolutionRecord.of(later, run_id="r1"),
        ResolutionRecord.of(other, run_id="r1"),
        RunRecord("r2", "b" * 64, False, AT, "0"),
        ResolutionRecord.of(ANN, run_id="r2"),  # written later, looked up earlier
    )
    known = replay(ledger).resolutions
    assert {key: r.user_id for key, r in known.items()} == {
        ("acc_1", "in:ann-kim"): "ACoAnn2",
        ("acc_2", "in:ann-kim"): "ACoAnnX",
    }


def test_the_report_counts_operations_not_resolutions(tmp_path: Path) -> None:
    add = Operation("acc_1", "chat_A", "add", user="ACoAnn")
    ledger = write_ledger(
        tmp_path / "l.jsonl",
        RunRecord("r1", "a" * 64, False, AT, "0"),
        ResolutionRecord.of(ANN, run_id="r1"),
        OpRecord.of(Outcome(add, "applied", None, 1), run_id="r1", at=AT),
        EndRecord("r1", {"applied": 1}, False, AT),
    )
    assert len(list(read_ledger(ledger))) == 4
    summary = summarize(ledger)
    assert summary.counts["applied"] == 1
    assert sum(summary.counts.values()) == 1
    assert len(render_csv(ledger).splitlines()) == 2  # the header and the op


def test_a_plan_file_keeps_resolutions_profiles_and_held_removals(tmp_path: Path) -> None:
    ghost = Resolution("acc_1", "in:ghost", reason="unresolved_user")
    chat = ChatPlan(
        "acc_1",
        "chat_A",
        to_send=(Operation("acc_1", "chat_A", "add", user="ACoAnn"),),
        names={"ACoAnn": "Ann Kim"},
        profiles={"ACoAnn": "in:ann-kim"},
        held=("ACoAX",),
    )
    plan = Plan("a" * 64, (chat,), {"acc_1": "ACoAOwner"}, resolutions=(ANN, ghost))
    dump_plan(plan, tmp_path / "PLAN.json")

    loaded = load_plan(tmp_path / "PLAN.json")

    assert loaded.chats[0].profiles == {"ACoAnn": "in:ann-kim"}
    assert loaded.chats[0].held == ("ACoAX",)
    assert [(r.account, r.profile, r.user_id, r.reason) for r in loaded.resolutions] == [
        ("acc_1", "in:ann-kim", "ACoAnn", None),
        ("acc_1", "in:ghost", None, "unresolved_user"),
    ]


def test_a_plan_file_with_a_malformed_resolution_is_refused_naming_it(tmp_path: Path) -> None:
    plan = Plan("a" * 64, (), resolutions=(ANN,))
    dump_plan(plan, tmp_path / "PLAN.json")
    document = orjson.loads((tmp_path / "PLAN.json").read_bytes())
    document["resolutions"][0]["profile"] = "ann-kim"
    (tmp_path / "PLAN.json").write_bytes(orjson.dumps(document))
    with pytest.raises(UsageError, match=r"resolutions\[0\]\.profile must be in:<slug>"):
        load_plan(tmp_path / "PLAN.json")
