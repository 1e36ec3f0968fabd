"""The owner rule, located: the account owner's own id in `remove`, `members` or `protect`.

It needs the owner's id, known only after the account lookup, so the engine finds violations as
values (`planner.owner_rule_violations`) and the caller turns them into located errors here, from
the lines `load_job` kept (`ChatJob.user_lines`): files are never read again mid-run (they may have
changed, or be gone).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import JobFileError
from ..model import AddRemoveConflict, ChatJob, Job, OwnerRuleViolation
from .report import quote

__all__ = ["locate_owner_rule"]


def _message(user: str, account: str) -> str:
    return (
        f"{quote(user)} is the owner of account {quote(account)}: the owner may not be in remove, "
        "members or protect (an owner leaves only via leave)"
    )


def _conflict(conflict: AddRemoveConflict) -> str:
    return (
        f"{quote(conflict.user)} and {quote(conflict.added)} in add are the same person "
        f"({conflict.user_id}): a person may not be both added and removed"
    )


def _locate(
    chat: ChatJob | None, violation: OwnerRuleViolation | AddRemoveConflict
) -> JobFileError:
    if isinstance(violation, AddRemoveConflict):
        message = _conflict(violation)
    else:
        message = _message(violation.user, violation.account)
    if chat is None:  # a violation of a chat the job does not have: still refused, unlocated
        return JobFileError("<job>", None, "chat", message)
    listed: tuple[str, ...] = getattr(chat, violation.list) or ()
    lines = chat.user_lines
    if lines is None or violation.user not in listed:
        # A job built in code rather than loaded: the chat's own place is all there is.
        return JobFileError(chat.path or "<job>", chat.line or None, "chat", message)
    index = listed.index(violation.user)
    return JobFileError(
        chat.path,
        lines.line_of(violation.list, index),
        lines.field_of(violation.list, index),
        message,
    )


def locate_owner_rule(
    job: Job, violations: Sequence[OwnerRuleViolation | AddRemoveConflict]
) -> list[JobFileError]:
    """The owner-rule violations the engine found, as `PATH:LINE: FIELD: message` errors, in the
    order of the files on the command line and of the lines in each."""
    wanted = {(v.account, v.chat) for v in violations}
    chats = {(c.account, c.chat): c for c in job.chats if (c.account, c.chat) in wanted}
    errors = [_locate(chats.get((v.account, v.chat)), v) for v in violations]
    order = {path: index for index, path in enumerate(job.paths)}
    return sorted(errors, key=lambda e: (order.get(e.path, len(order)), e.line or 0))
