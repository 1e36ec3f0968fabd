"""PLAN.json: a plan saved by `plan --out`, for `apply --plan` to apply exactly.

It holds the job's hash, each chat's observed-state digest and the operations computed from it —
never the API key, never the participants themselves (the digest is enough to tell that a chat
changed) — and the provider id each profile of the job resolved to. `apply --plan` resolves the
profiles and re-reads every chat, and refuses to send anything if a profile resolves to someone
else or a digest differs.

`PlanFileRecord` is the file's one typed record, with one way to and from JSON; reading refuses
what `plan --out` never writes (an unknown action, status or reason, a missing or mistyped
field) with a `UsageError` naming the file and the field. Plan files are regular files of bounded
size (`files`): a FIFO, `/dev/zero` or a directory is refused at once, before anything is read
or sent.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, cast

import orjson

from .errors import UsageError
from .files import PLAN_FILE_LIMIT, FileRefused, read_regular
from .model import (
    ACTIONS,
    REASONS,
    STATUSES,
    Action,
    ChatPlan,
    ErrorInfo,
    Operation,
    Outcome,
    Plan,
    Reason,
    Resolution,
    Status,
    is_profile,
)
from .outputs import Write, write_output

__all__ = [
    "PLAN_FORMAT",
    "PlanFileRecord",
    "chat_to_dict",
    "dump_plan",
    "load_plan",
    "plan_to_dict",
    "write_plan",
]

PLAN_FORMAT = "bulkgroups-plan/1"
_WRITES: Final = frozenset(("add", "remove", "rename", "leave"))


class _Malformed(Exception):
    """Where in the plan file, and what is wrong there."""


def _text(obj: Mapping[str, Any], key: str, where: str, *, optional: bool = False) -> Any:
    value = obj.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise _Malformed(f"{where}.{key} must be a string, not {value!r:.60}")
    return value


def _one_of(obj: Mapping[str, Any], key: str, allowed: tuple[str, ...], where: str) -> Any:
    value = obj.get(key)
    if value not in allowed:
        raise _Malformed(f"{where}.{key}: unknown {key} {value!r:.60}")
    return value


def _list(obj: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = obj.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise _Malformed(f"{where}.{key} must be a list of objects")
    return value


def _operation_json(op: Operation) -> dict[str, Any]:
    return {"op_id": op.op_id, "action": op.action, "user": op.user, "name": op.name}


def _operation_from(account: str, chat: str, obj: Mapping[str, Any], where: str) -> Operation:
    action = cast(Action, _one_of(obj, "action", ACTIONS, where))
    return Operation(
        account,
        chat,
        action,
        _text(obj, "user", where, optional=True),
        _text(obj, "name", where, optional=True),
    )


def _error_from(value: object, where: str) -> ErrorInfo | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _Malformed(f"{where}.error must be an object or null")
    status = value.get("status")
    if status is not None and (not isinstance(status, int) or isinstance(status, bool)):
        raise _Malformed(f"{where}.error.status must be a number or null")
    return ErrorInfo(
        status=status,
        type=_text(value, "type", f"{where}.error"),
        detail=_text(value, "detail", f"{where}.error", optional=True),
        req_id=_text(value, "req_id", f"{where}.error", optional=True),
    )


def chat_to_dict(chat: ChatPlan) -> dict[str, Any]:
    """One chat of the plan as JSON-ready data."""
    mentioned = {op.user for op in chat.to_send} | {o.operation.user for o in chat.decided}
    return {
        "account": chat.account,
        "chat": chat.chat,
        "chat_name": chat.chat_name,
        "state_digest": chat.state_digest,
        "in_place": chat.in_place,
        "operations": [_operation_json(op) for op in chat.to_send],
        "decided": [
            {
                **_operation_json(o.operation),
                "status": o.status,
                "reason": o.reason,
                "error": o.error.as_dict() if o.error else None,
            }
            for o in chat.decided
        ],
        "names": {user: name for user, name in chat.names.items() if user in mentioned},
        "profiles": {user: p for user, p in chat.profiles.items() if user in mentioned},
        "held": list(chat.held),
    }


def _chat_from(obj: Mapping[str, Any], where: str) -> ChatPlan:
    account, chat = _text(obj, "account", where), _text(obj, "chat", where)
    to_send = []
    for i, item in enumerate(_list(obj, "operations", where)):
        op = _operation_from(account, chat, item, f"{where}.operations[{i}]")
        if op.action not in _WRITES:
            raise _Malformed(f"{where}.operations[{i}].action: {op.action!r} is not a write")
        to_send.append(op)
    decided = []
    for i, item in enumerate(_list(obj, "decided", where)):
        at = f"{where}.decided[{i}]"
        decided.append(
            Outcome(
                _operation_from(account, chat, item, at),
                cast(Status, _one_of(item, "status", STATUSES, at)),
                cast(
                    "Reason | None",
                    None if item.get("reason") is None else _one_of(item, "reason", REASONS, at),
                ),
                error=_error_from(item.get("error"), at),
            )
        )
    names = obj.get("names", {})
    in_place = obj.get("in_place", 0)
    profiles = obj.get("profiles", {})
    held = obj.get("held", [])
    if not isinstance(names, dict) or not all(isinstance(v, str) for v in names.values()):
        raise _Malformed(f"{where}.names must map user ids to names")
    if not isinstance(profiles, dict) or not all(
        isinstance(v, str) and is_profile(v) for v in profiles.values()
    ):
        raise _Malformed(f"{where}.profiles must map user ids to profiles (in:<slug>)")
    if not isinstance(held, list) or not all(isinstance(v, str) for v in held):
        raise _Malformed(f"{where}.held must be a list of user ids")
    if not isinstance(in_place, int) or isinstance(in_place, bool) or in_place < 0:
        raise _Malformed(f"{where}.in_place must be a whole number >= 0")
    return ChatPlan(
        account=account,
        chat=chat,
        to_send=tuple(to_send),
        decided=tuple(decided),
        in_place=in_place,
        names=dict(names),
        state_digest=_text(obj, "state_digest", where, optional=True),
        chat_name=_text(obj, "chat_name", where, optional=True),
        profiles=dict(profiles),
        held=tuple(held),
    )


def _resolution_json(resolution: Resolution) -> dict[str, Any]:
    return {
        "account": resolution.account,
        "profile": resolution.profile,
        "user_id": resolution.user_id,
        "display_name": resolution.display_name,
        "reason": None if resolution.resolved else resolution.reason,
    }


def _resolution_from(obj: Mapping[str, Any], where: str) -> Resolution:
    profile = _text(obj, "profile", where)
    if not is_profile(profile):
        raise _Malformed(f"{where}.profile must be in:<slug>, not {profile!r:.60}")
    reason = obj.get("reason")
    return Resolution(
        _text(obj, "account", where),
        profile,
        _text(obj, "user_id", where, optional=True),
        _text(obj, "display_name", where, optional=True) or "",
        reason=None if reason is None else cast(Reason, _one_of(obj, "reason", REASONS, where)),
    )


@dataclass(frozen=True, slots=True)
class PlanFileRecord:
    """What a plan file holds: a plan without its job (the job is loaded again from its files,
    and must hash the same)."""

    job_sha256: str
    chats: tuple[ChatPlan, ...]
    owners: Mapping[str, str] = field(default_factory=dict)
    estimated_seconds: float | None = None
    resolutions: tuple[Resolution, ...] = ()

    @classmethod
    def of(cls, plan: Plan, *, estimated_seconds: float | None = None) -> PlanFileRecord:
        return cls(plan.job_sha256, plan.chats, plan.owners, estimated_seconds, plan.resolutions)

    @property
    def plan(self) -> Plan:
        return Plan(
            job_sha256=self.job_sha256,
            chats=self.chats,
            owners=dict(self.owners),
            resolutions=self.resolutions,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (also what `plan --format json` prints)."""
        data: dict[str, Any] = {
            "format": PLAN_FORMAT,
            "job_sha256": self.job_sha256,
            "owners": dict(self.owners),
            "resolutions": [_resolution_json(r) for r in self.resolutions],
            "has_changes": self.plan.has_changes,
            "chats": [chat_to_dict(chat) for chat in self.chats],
        }
        if self.estimated_seconds is not None:
            data["estimated_seconds"] = round(self.estimated_seconds, 3)
        return data

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2) + b"\n"

    @classmethod
    def from_json(cls, data: bytes, *, path: str) -> PlanFileRecord:
        """Parse a plan file's bytes; `UsageError` naming `path` (and the field) if it is not one."""
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError as error:
            raise UsageError(f"{path}: not a plan file (invalid JSON: {error})") from error
        if not isinstance(document, dict) or document.get("format") != PLAN_FORMAT:
            raise UsageError(f"{path}: not a plan file written by `bulkgroups plan --out`")
        try:
            owners = document.get("owners", {})
            if not isinstance(owners, dict) or not all(isinstance(v, str) for v in owners.values()):
                raise _Malformed("owners must map account ids to user ids")
            chats = tuple(
                _chat_from(chat, f"chats[{i}]")
                for i, chat in enumerate(_list(document, "chats", "plan"))
            )
            resolutions = tuple(
                _resolution_from(item, f"resolutions[{i}]")
                for i, item in enumerate(_list(document, "resolutions", "plan"))
            )
            return cls(
                _text(document, "job_sha256", "plan"),
                chats,
                dict(owners),
                resolutions=resolutions,
            )
        except _Malformed as problem:
            raise UsageError(f"{path}: malformed plan file: {problem}") from None


def plan_to_dict(plan: Plan, *, estimated_seconds: float | None = None) -> dict[str, Any]:
    """The plan as JSON-ready data (also what `plan --format json` prints)."""
    return PlanFileRecord.of(plan, estimated_seconds=estimated_seconds).to_dict()


def _head(plan: Plan) -> dict[str, Any]:
    return {
        "format": PLAN_FORMAT,
        "job_sha256": plan.job_sha256,
        "owners": dict(plan.owners),
        "resolutions": [_resolution_json(r) for r in plan.resolutions],
        "has_changes": plan.has_changes,
    }


def _indented(value: object, depth: int) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).replace(b"\n", b"\n" + b" " * depth)


def write_plan(
    plan: Plan, write: Callable[[bytes], object], *, estimated_seconds: float | None = None
) -> None:
    """Write the plan as indented JSON (the document `plan_to_dict` describes) chat by chat,
    so that a plan of a million operations never becomes one string in memory."""
    write(b"{\n")
    for key, value in _head(plan).items():
        write(b"  " + orjson.dumps(key) + b": " + _indented(value, 2) + b",\n")
    write(b'  "chats": [')
    for index, chat in enumerate(plan.chats):
        write((b"\n    " if index == 0 else b",\n    ") + _indented(chat_to_dict(chat), 4))
    write(b"\n  ]" if plan.chats else b"]")
    if estimated_seconds is not None:
        write(b',\n  "estimated_seconds": ' + orjson.dumps(round(estimated_seconds, 3)))
    write(b"\n}\n")


def dump_plan(
    plan: Plan, path: str | os.PathLike[str], *, estimated_seconds: float | None = None
) -> None:
    """Write PLAN.json atomically (a half-written plan must never be applied)."""

    def body(write: Write) -> None:
        write_plan(plan, write, estimated_seconds=estimated_seconds)

    write_output(path, body, what="the plan file")


def load_plan(path: str | os.PathLike[str]) -> Plan:
    """Read a plan written by `dump_plan`; raises UsageError naming the file if it is not one."""
    try:
        data = read_regular(path, limit=PLAN_FILE_LIMIT)
    except FileRefused as refused:
        raise UsageError(f"{path}: cannot read the plan file: {refused.reason}") from None
    except OSError as error:
        raise UsageError(f"{path}: cannot read the plan file: {error.strerror}") from error
    return PlanFileRecord.from_json(data, path=os.fspath(path)).plan
