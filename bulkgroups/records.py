"""The ledger's records: one typed value per JSON line, each with one way to and from JSON.

    run         RunRecord         first record of every invocation that applies
    intent      IntentRecord      write-ahead: durable before the write attempt it announces is sent
    op          OpRecord          the outcome of one operation in one run (at most one per run)
    verify      VerifyRecord      an `applied` op whose verifying re-read did not show it: now failed
    resolution  ResolutionRecord  a profile of the job and the provider id an account resolved it to
    end         EndRecord         last record of a run that was not killed: its op records counted

The field names of the ledger (CONTRACT.md, "Ledger") are spelled here and nowhere else: the
writer (`ledger.LedgerWriter`), `ledger.replay`, `report` and the tests go through these types.
`from_json` refuses what a ledger written by bulkgroups cannot hold (an unknown record type,
status, action or reason, a missing or mistyped field) with `LedgerCorrupt` naming the file and
line. Ledgers written before intents existed (no `intent`/`verify` records, none of the optional
op fields) read as before.

This module imports only the leaves (`model`, `errors`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Final, Literal, TypeAlias, cast

import orjson

from .errors import LedgerCorrupt
from .model import (
    ACTIONS,
    REASONS,
    STATUSES,
    Action,
    ErrorInfo,
    Operation,
    Outcome,
    Reason,
    Resolution,
    Status,
    is_profile,
)

__all__ = [
    "EndRecord",
    "IntentRecord",
    "LedgerClock",
    "OpRecord",
    "Record",
    "ResolutionRecord",
    "RunRecord",
    "VerifyRecord",
    "format_time",
    "parse_time",
    "record_from_json",
]

_ACTIONS: Final = frozenset(ACTIONS)
_STATUSES: Final = frozenset(STATUSES)
_REASONS: Final = frozenset(REASONS)


# --------------------------------------------------------------------------------------------
# Times
# --------------------------------------------------------------------------------------------


def format_time(unix: float) -> str:
    """ISO 8601 UTC with milliseconds (truncated) and a Z, the ledger's only time format."""
    second, millis = divmod(int(unix * 1000), 1000)
    return f"{_second_text(second)}.{millis:03d}Z"


def _second_text(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


class LedgerClock:
    """Ledger times of a clock, the text of the current second kept (a record a millisecond)."""

    __slots__ = ("_clock", "_second", "_text")

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._second: int | None = None
        self._text = ""

    def now(self) -> str:
        second, millis = divmod(int(self._clock() * 1000), 1000)
        if second != self._second:
            self._second, self._text = second, _second_text(second)
        return f"{self._text}.{millis:03d}Z"


def parse_time(text: str) -> float:
    """Unix time of a ledger time (any ISO 8601 form; a naive time is taken as UTC)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


# --------------------------------------------------------------------------------------------
# Reading fields: each refuses what bulkgroups never writes, naming the field
# --------------------------------------------------------------------------------------------


class _Fields:
    """One JSON object being read as a record: typed getters that raise LedgerCorrupt."""

    __slots__ = ("line", "obj", "path")

    def __init__(self, obj: Mapping[str, Any], path: str, line: int) -> None:
        self.obj = obj
        self.path = path
        self.line = line

    def corrupt(self, problem: str) -> LedgerCorrupt:
        kind = self.obj.get("type")
        where = f"{kind} record" if isinstance(kind, str) else "record"
        return LedgerCorrupt(self.path, self.line, f"{where}: {problem}")

    def text(self, name: str) -> str:
        value = self.obj.get(name)
        if not isinstance(value, str):
            raise self.corrupt(f"{name} must be a string, not {value!r:.60}")
        return value

    def optional_text(self, name: str) -> str | None:
        value = self.obj.get(name)
        if value is not None and not isinstance(value, str):
            raise self.corrupt(f"{name} must be a string or null, not {value!r:.60}")
        return value

    def time(self, name: str) -> str:
        value = self.text(name)
        try:
            parse_time(value)
        except ValueError:
            raise self.corrupt(f"{name} is not an ISO 8601 time: {value!r:.60}") from None
        return value

    def optional_time(self, name: str) -> str | None:
        return None if self.obj.get(name) is None else self.time(name)

    def flag(self, name: str, *, default: bool | None = None) -> bool:
        value = self.obj.get(name, default)
        if not isinstance(value, bool):
            raise self.corrupt(f"{name} must be true or false, not {value!r:.60}")
        return value

    def count(self, name: str) -> int:
        value = self.obj.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise self.corrupt(f"{name} must be a whole number >= 0, not {value!r:.60}")
        return value

    def action(self) -> Action:
        value = self.obj.get("action")
        if value not in _ACTIONS:
            raise self.corrupt(f"unknown action {value!r:.60}")
        return cast(Action, value)

    def status(self) -> Status:
        value = self.obj.get("status")
        if value not in _STATUSES:
            raise self.corrupt(f"unknown status {value!r:.60}")
        return cast(Status, value)

    def reason(self) -> Reason | None:
        value = self.obj.get("reason")
        if value is not None and value not in _REASONS:
            raise self.corrupt(f"unknown reason {value!r:.60}")
        return cast("Reason | None", value)

    def error(self) -> ErrorInfo | None:
        value = self.obj.get("error")
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.corrupt(f"error must be an object or null, not {value!r:.60}")
        status = value.get("status")
        if status is not None and (not isinstance(status, int) or isinstance(status, bool)):
            raise self.corrupt(f"error.status must be a number or null, not {status!r:.60}")
        inner = _Fields(value, self.path, self.line)
        return ErrorInfo(
            status=status,
            type=inner.text("type"),
            detail=inner.optional_text("detail"),
            req_id=inner.optional_text("req_id"),
        )


def _dumps(fields: dict[str, Any]) -> bytes:
    return orjson.dumps(fields)


# The two records written for every write (`intent`, `op`): one JSON form each, shared by
# `to_json` and by `json_of`, which writes a record without building it.


def _intent_json(
    op_id: str,
    run_id: str,
    account: str,
    chat: str,
    action: Action,
    user: str | None,
    name: str | None,
    attempt: int,
    at: str,
    previous_name: str | None,
) -> bytes:
    fields = {
        "type": "intent",
        "op_id": op_id,
        "run_id": run_id,
        "account": account,
        "chat": chat,
        "action": action,
        "user": user,
        "name": name,
        "attempt": attempt,
        "at": at,
    }
    if previous_name is not None:  # a rename's, only (see `IntentRecord`)
        fields["previous_name"] = previous_name
    return orjson.dumps(fields)


def _op_json(
    op_id: str,
    run_id: str,
    account: str,
    chat: str,
    action: Action,
    user: str | None,
    name: str | None,
    status: Status,
    reason: Reason | None,
    attempts: int,
    error: ErrorInfo | None,
    at: str,
    recovered: bool,
    previous_name: str | None,
    in_doubt: bool,
) -> bytes:
    fields: dict[str, Any] = {
        "type": "op",
        "op_id": op_id,
        "run_id": run_id,
        "account": account,
        "chat": chat,
        "action": action,
        "user": user,
        "name": name,
        "status": status,
        "reason": reason,
        "attempts": attempts,
        "error": None if error is None else error.as_dict(),
        "at": at,
    }
    if recovered:
        fields["recovered"] = True
    if previous_name is not None:
        fields["previous_name"] = previous_name
    if in_doubt:
        fields["in_doubt"] = True
    return orjson.dumps(fields)


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunRecord:
    """`run`: an invocation that applies starts (a fresh `run_id` each time, `--resume` too)."""

    TYPE: ClassVar[Literal["run"]] = "run"

    run_id: str
    job_sha256: str
    resume: bool
    started_at: str | None
    version: str | None

    def to_json(self) -> bytes:
        return _dumps(
            {
                "type": self.TYPE,
                "run_id": self.run_id,
                "job_sha256": self.job_sha256,
                "resume": self.resume,
                "started_at": self.started_at,
                "version": self.version,
            }
        )

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], *, path: str, line: int) -> RunRecord:
        f = _Fields(obj, path, line)
        return cls(
            run_id=f.text("run_id"),
            job_sha256=f.text("job_sha256"),
            resume=f.flag("resume", default=False),
            started_at=f.optional_time("started_at"),
            version=f.optional_text("version"),
        )


@dataclass(frozen=True, slots=True)
class IntentRecord:
    """`intent`: a write attempt about to be sent; on disk (fsync'd) before it is sent.

    Every attempt has its own (`attempt` counts from 1 within the run). Daily limits and pacing
    across runs count intents; the next run decides an intent left without an outcome from its
    fresh read (`ledger.Replay.pending`). A rename's intent also carries `previous_name` (the
    name the run's read saw), written only then: a rename found in effect after a kill can be
    undone like any other.
    """

    TYPE: ClassVar[Literal["intent"]] = "intent"

    op_id: str
    run_id: str
    account: str
    chat: str
    action: Action
    user: str | None
    name: str | None
    attempt: int
    at: str
    previous_name: str | None = None

    @classmethod
    def of(
        cls,
        operation: Operation,
        *,
        run_id: str,
        attempt: int,
        at: str,
        previous_name: str | None = None,
    ) -> IntentRecord:
        return cls(
            operation.op_id,
            run_id,
            operation.account,
            operation.chat,
            operation.action,
            operation.user,
            operation.name,
            attempt,
            at,
            previous_name if operation.action == "rename" else None,
        )

    @classmethod
    def json_of(
        cls,
        operation: Operation,
        *,
        run_id: str,
        attempt: int,
        at: str,
        previous_name: str | None = None,
    ) -> bytes:
        """`of(...).to_json()` without building the record: one is written before every write
        attempt, and a frozen dataclass's construction costs more than its JSON."""
        return _intent_json(
            operation.op_id,
            run_id,
            operation.account,
            operation.chat,
            operation.action,
            operation.user,
            operation.name,
            attempt,
            at,
            previous_name if operation.action == "rename" else None,
        )

    @property
    def operation(self) -> Operation:
        return Operation(self.account, self.chat, self.action, self.user, self.name)

    def to_json(self) -> bytes:
        return _intent_json(
            self.op_id,
            self.run_id,
            self.account,
            self.chat,
            self.action,
            self.user,
            self.name,
            self.attempt,
            self.at,
            self.previous_name,
        )

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], *, path: str, line: int) -> IntentRecord:
        f = _Fields(obj, path, line)
        return cls(
            op_id=f.text("op_id"),
            run_id=f.text("run_id"),
            account=f.text("account"),
            chat=f.text("chat"),
            action=f.action(),
            user=f.optional_text("user"),
            name=f.optional_text("name"),
            attempt=f.count("attempt"),
            at=f.time("at"),
            previous_name=f.optional_text("previous_name"),
        )


@dataclass(frozen=True, slots=True)
class OpRecord:
    """`op`: the outcome of one operation in one run, appended as soon as it is known.

    Optional fields, written only when they say something: `recovered` (true: an earlier run's
    write found in effect by this run's fresh read), `in_doubt` (true: some attempt's outcome
    was unknown and the status is failed/deferred, so the next run decides it from its read) and
    `previous_name` (a rename: the name this run's read saw, for `undo`).
    """

    TYPE: ClassVar[Literal["op"]] = "op"

    op_id: str
    run_id: str
    account: str
    chat: str
    action: Action
    user: str | None
    name: str | None
    status: Status
    reason: Reason | None
    attempts: int
    error: ErrorInfo | None
    at: str
    recovered: bool = False
    previous_name: str | None = None
    in_doubt: bool = False

    @classmethod
    def of(
        cls, outcome: Outcome, *, run_id: str, at: str, previous_name: str | None = None
    ) -> OpRecord:
        op = outcome.operation
        return cls(
            op.op_id,
            run_id,
            op.account,
            op.chat,
            op.action,
            op.user,
            op.name,
            outcome.status,
            outcome.reason,
            outcome.attempts,
            outcome.error,
            at,
            outcome.recovered,
            previous_name if op.action == "rename" else None,
            outcome.in_doubt,
        )

    @classmethod
    def json_of(
        cls, outcome: Outcome, *, run_id: str, at: str, previous_name: str | None = None
    ) -> bytes:
        """`of(...).to_json()` without building the record (one per operation of a run)."""
        op = outcome.operation
        return _op_json(
            op.op_id,
            run_id,
            op.account,
            op.chat,
            op.action,
            op.user,
            op.name,
            outcome.status,
            outcome.reason,
            outcome.attempts,
            outcome.error,
            at,
            outcome.recovered,
            previous_name if op.action == "rename" else None,
            outcome.in_doubt,
        )

    @property
    def operation(self) -> Operation:
        return Operation(self.account, self.chat, self.action, self.user, self.name)

    def to_json(self) -> bytes:
        return _op_json(
            self.op_id,
            self.run_id,
            self.account,
            self.chat,
            self.action,
            self.user,
            self.name,
            self.status,
            self.reason,
            self.attempts,
            self.error,
            self.at,
            self.recovered,
            self.previous_name,
            self.in_doubt,
        )

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], *, path: str, line: int) -> OpRecord:
        f = _Fields(obj, path, line)
        return cls(
            op_id=f.text("op_id"),
            run_id=f.text("run_id"),
            account=f.text("account"),
            chat=f.text("chat"),
            action=f.action(),
            user=f.optional_text("user"),
            name=f.optional_text("name"),
            status=f.status(),
            reason=f.reason(),
            attempts=f.count("attempts"),
            error=f.error(),
            at=f.time("at"),
            recovered=f.flag("recovered", default=False),
            previous_name=f.optional_text("previous_name"),
            in_doubt=f.flag("in_doubt", default=False),
        )


@dataclass(frozen=True, slots=True)
class VerifyRecord:
    """`verify`: an `applied` op of the same run whose verifying re-read (twice) did not show it.

    It amends that op record: readers (replay, report, the end counts) take this status. A run
    still has at most one `op` record per operation.
    """

    TYPE: ClassVar[Literal["verify"]] = "verify"

    op_id: str
    run_id: str
    status: Status
    reason: Reason | None
    at: str

    def to_json(self) -> bytes:
        return _dumps(
            {
                "type": self.TYPE,
                "op_id": self.op_id,
                "run_id": self.run_id,
                "status": self.status,
                "reason": self.reason,
                "at": self.at,
            }
        )

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], *, path: str, line: int) -> VerifyRecord:
        f = _Fields(obj, path, line)
        return cls(
            op_id=f.text("op_id"),
            run_id=f.text("run_id"),
            status=f.status(),
            reason=f.reason(),
            at=f.time("at"),
        )


@dataclass(frozen=True, slots=True)
class ResolutionRecord:
    """`resolution`: a profile the job names (`in:<slug>`) and the provider id one account's users
    endpoint resolved it to, `at` the time of that lookup.

    Written after the `run` record by a run that looked profiles up, so that later runs on the
    ledger reuse them rather than ask again (until they are older than `--resolve-max-age`).
    Only resolved profiles are recorded: one that could not be resolved is looked up again.
    """

    TYPE: ClassVar[Literal["resolution"]] = "resolution"

    run_id: str
    account: str
    profile: str
    user_id: str
    display_name: str
    at: str

    @classmethod
    def of(cls, resolution: Resolution, *, run_id: str) -> ResolutionRecord:
        if resolution.user_id is None or resolution.resolved_at is None:
            raise ValueError(f"{resolution.profile} was not resolved: nothing to record")
        return cls(
            run_id,
            resolution.account,
            resolution.profile,
            resolution.user_id,
            resolution.display_name,
            format_time(resolution.resolved_at),
        )

    @property
    def resolution(self) -> Resolution:
        return Resolution(
            self.account,
            self.profile,
            self.user_id,
            self.display_name,
            resolved_at=parse_time(self.at),
        )

    def to_json(self) -> bytes:
        return _dumps(
            {
                "type": self.TYPE,
                "run_id": self.run_id,
                "account": self.account,
                "profile": self.profile,
                "user_id": self.user_id,
                "display_name": self.display_name,
                "at": self.at,
            }
        )

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], *, path: str, line: int) -> ResolutionRecord:
        f = _Fields(obj, path, line)
        profile = f.text("profile")
        if not is_profile(profile):
            raise f.corrupt(f"profile must be in:<slug>, not {profile!r:.60}")
        return cls(
            run_id=f.text("run_id"),
            account=f.text("account"),
            profile=profile,
            user_id=f.text("user_id"),
            display_name=f.text("display_name"),
            at=f.time("at"),
        )


@dataclass(frozen=True, slots=True)
class EndRecord:
    """`end`: a run finished or was interrupted (never written by a killed one); `counts` are
    its `op` records by status, as amended by its `verify` records."""

    TYPE: ClassVar[Literal["end"]] = "end"

    run_id: str
    counts: Mapping[str, int] = field(default_factory=dict)
    interrupted: bool = False
    finished_at: str = ""

    def to_json(self) -> bytes:
        return _dumps(
            {
                "type": self.TYPE,
                "run_id": self.run_id,
                "counts": {status: int(self.counts.get(status, 0)) for status in STATUSES},
                "interrupted": self.interrupted,
                "finished_at": self.finished_at,
            }
        )

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], *, path: str, line: int) -> EndRecord:
        f = _Fields(obj, path, line)
        raw = obj.get("counts", {})
        if not isinstance(raw, dict):
            raise f.corrupt(f"counts must be an object, not {raw!r:.60}")
        counts: dict[str, int] = {}
        inner = _Fields(raw, path, line)
        for status in raw:
            if status not in _STATUSES:
                raise f.corrupt(f"counts: unknown status {status!r:.60}")
            counts[status] = inner.count(status)
        return cls(
            run_id=f.text("run_id"),
            counts=counts,
            interrupted=f.flag("interrupted", default=False),
            finished_at=f.time("finished_at"),
        )


Record: TypeAlias = (
    RunRecord | IntentRecord | OpRecord | VerifyRecord | ResolutionRecord | EndRecord
)

_BY_TYPE: Final[dict[str, Any]] = {
    RunRecord.TYPE: RunRecord,
    IntentRecord.TYPE: IntentRecord,
    OpRecord.TYPE: OpRecord,
    VerifyRecord.TYPE: VerifyRecord,
    ResolutionRecord.TYPE: ResolutionRecord,
    EndRecord.TYPE: EndRecord,
}


def record_from_json(obj: Mapping[str, Any], *, path: str, line: int) -> Record:
    """The typed record of one parsed ledger line; LedgerCorrupt for an unknown `type`."""
    name = obj.get("type")
    kind = _BY_TYPE.get(name) if isinstance(name, str) else None
    if kind is None:
        raise LedgerCorrupt(path, line, f"unknown record type {obj.get('type')!r:.60}")
    record: Record = kind.from_json(obj, path=path, line=line)
    return record
