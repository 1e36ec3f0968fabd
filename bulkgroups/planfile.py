"""PLAN.json: a plan saved by `plan --out`, for `apply --plan` to apply exactly.

It holds the job's hash, each chat's observed-state digest and the operations computed from it —
never the API key, never the participants themselves (the digest is enough to tell that a chat
changed). `apply --plan` re-reads every chat and refuses to send anything if a digest differs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from .errors import UsageError
from .model import ChatPlan, Operation, Outcome, Plan

__all__ = ["PLAN_FORMAT", "chat_to_dict", "dump_plan", "load_plan", "plan_to_dict", "write_plan"]

PLAN_FORMAT = "bulkgroups-plan/1"


def _operation(op: Operation) -> dict[str, Any]:
    return {"op_id": op.op_id, "action": op.action, "user": op.user, "name": op.name}


def chat_to_dict(chat: ChatPlan) -> dict[str, Any]:
    """One chat of the plan as JSON-ready data."""
    mentioned = {op.user for op in chat.to_send} | {o.operation.user for o in chat.decided}
    return {
        "account": chat.account,
        "chat": chat.chat,
        "chat_name": chat.chat_name,
        "state_digest": chat.state_digest,
        "in_place": chat.in_place,
        "operations": [_operation(op) for op in chat.to_send],
        "decided": [
            {
                **_operation(o.operation),
                "status": o.status,
                "reason": o.reason,
                "error": o.error.as_dict() if o.error else None,
            }
            for o in chat.decided
        ],
        "names": {user: name for user, name in chat.names.items() if user in mentioned},
    }


def _head(plan: Plan) -> dict[str, Any]:
    return {
        "format": PLAN_FORMAT,
        "job_sha256": plan.job_sha256,
        "owners": dict(plan.owners),
        "has_changes": plan.has_changes,
    }


def plan_to_dict(plan: Plan, *, estimated_seconds: float | None = None) -> dict[str, Any]:
    """The plan as JSON-ready data (what `write_plan` writes, for a small plan or a test)."""
    data = _head(plan) | {"chats": [chat_to_dict(chat) for chat in plan.chats]}
    if estimated_seconds is not None:
        data["estimated_seconds"] = round(estimated_seconds, 3)
    return data


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
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    try:
        with tmp.open("wb") as out:
            write_plan(plan, out.write, estimated_seconds=estimated_seconds)
        os.replace(tmp, target)
    except OSError as error:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise UsageError(f"{path}: cannot write the plan file: {error.strerror}") from error


def load_plan(path: str | os.PathLike[str]) -> Plan:
    """Read a plan written by `dump_plan`; raises UsageError naming the file if it is not one."""
    try:
        data = orjson.loads(Path(path).read_bytes())
    except OSError as error:
        raise UsageError(f"{path}: cannot read the plan file: {error.strerror}") from error
    except orjson.JSONDecodeError as error:
        raise UsageError(f"{path}: not a plan file (invalid JSON: {error})") from error
    if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT:
        raise UsageError(f"{path}: not a plan file written by `bulkgroups plan --out`")
    try:
        chats = []
        for chat in data["chats"]:
            account, chat_id = str(chat["account"]), str(chat["chat"])
            ops = tuple(
                Operation(account, chat_id, op["action"], op.get("user"), op.get("name"))
                for op in chat["operations"]
            )
            decided = tuple(
                Outcome(
                    Operation(account, chat_id, o["action"], o.get("user"), o.get("name")),
                    o["status"],
                    o.get("reason"),
                )
                for o in chat.get("decided", [])
            )
            chats.append(
                ChatPlan(
                    account=account,
                    chat=chat_id,
                    to_send=ops,
                    decided=decided,
                    in_place=int(chat.get("in_place", 0)),
                    names=dict(chat.get("names", {})),
                    state_digest=chat.get("state_digest"),
                    chat_name=chat.get("chat_name"),
                )
            )
        return Plan(
            job_sha256=str(data["job_sha256"]),
            chats=tuple(chats),
            owners={str(k): str(v) for k, v in data.get("owners", {}).items()},
        )
    except (KeyError, TypeError, ValueError) as error:
        raise UsageError(f"{path}: malformed plan file ({error!r})") from error
