"""The owner rule, located: the account owner's own id in `remove`, `members` or `protect`.

It needs the owner's id, known only after the account lookup, so the engine finds violations as
values (`planner.owner_rule_violations`) and the caller turns them into located errors here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..errors import JobFileError
from ..model import Job, OwnerRuleViolation
from .report import quote

__all__ = ["locate_owner_rule", "owner_message", "owner_rule_errors"]


def owner_message(user: str, account: str) -> str:
    return (
        f"{quote(user)} is the owner of account {quote(account)}: the owner may not be in remove, "
        "members or protect (an owner leaves only via leave)"
    )


def owner_rule_errors(job: Job, owners: Mapping[str, str]) -> list[JobFileError]:
    """Errors for each account owner's id in remove, members or protect, located in the files.

    `owners` maps account ids to their owner's user id (from the account GET). Locations are found
    by reading the files again, which only happens when there is something to report.
    """
    from .load import read_all
    from .report import FileReport

    targets: dict[tuple[str, str], str] = {}
    for chat in job.chats:
        owner = owners.get(chat.account)
        if owner is None:
            continue
        if owner in chat.remove or owner in chat.protect or owner in (chat.members or ()):
            targets[(chat.account, chat.chat)] = owner
    if not targets:
        return []
    reports = {path: FileReport(path) for path in job.paths}
    hits = [hit for result in read_all(job.paths, reports, targets) for hit in result.owner_hits]
    errors = [error for _, error in hits]
    located = {key for key, _ in hits}
    for chat in job.chats:
        key = (chat.account, chat.chat)
        if key in targets and key not in located:
            # The file changed since it was loaded: still refuse, at the chat's own place.
            message = owner_message(targets[key], chat.account)
            errors.append(JobFileError(chat.path or "<job>", chat.line, "chat", message))
    order = {path: index for index, path in enumerate(job.paths)}
    return sorted(errors, key=lambda e: (order.get(e.path, len(order)), e.line))


def locate_owner_rule(job: Job, violations: Sequence[OwnerRuleViolation]) -> list[JobFileError]:
    """The owner-rule violations the engine found, as `PATH:LINE: FIELD: message` errors."""
    owners = {v.account: v.user for v in violations}
    return owner_rule_errors(job, owners)
