"""(Job, observed state) -> Plan: what each chat still needs, in contract order, and why not the rest.

Pure and synchronous: no I/O, no clock, no randomness, so `plan` can show exactly what `apply` will
do and every rule here is testable without a network. The engine reads each chat (fresh), then asks
this module; the planner never sees an HTTP error, only a `ReadFailure` value.

Per chat the contract order is rename, removes, adds, leave: removes come before adds so that room
is made before a LinkedIn group (at most 50 members) is filled, and a leave comes last because the
owner cannot change a chat it has left. `ChatPlan.to_send` holds the writes still needed, in that
order; `ChatPlan.decided` holds, in the same order, the outcomes known without sending anything
(`attempts=0` unless a read was attempted).

Decisions the contract leaves open, taken here:

* **Member cap.** A chat is refused (`failed` / `member_cap` for every operation of the chat,
  nothing sent) only when the plan *adds* members and the planned end state (members after removes
  and adds, the owner counted) is above `max_members`. A chat already above the cap that the job
  only shrinks, renames or leaves is not refused: those writes move it towards the cap and no add
  can be rejected for lack of room. A plan that removes some and adds some but still ends above the
  cap is refused, because at least one of its adds would be sent into a full chat.
* **Refusals and not-a-group take the whole chat:** every operation the chat would have had,
  including ones that would otherwise be skipped (`same_name`, `already_member`), gets the refusal,
  so a chat's records always tell one story.
* **Read-only chats** (`is_readonly`: read-only *for the current user*, which is not always "left"):
  every operation but leave is skipped `read_only`. A leave is skipped `already_left` when the
  participants were listed and the owner is not among them, and `read_only` when the owner is
  still there or the participants could not be listed (nothing can be sent to the chat anyway, and
  "left" is claimed only when seen). The operations are those the job states (`chat_operations`): for a
  desired-state chat that is one `read` plus its rename and leave, because the owner can no longer
  manage its membership and the engine does not list the participants of such a chat, so no
  difference computed from them would mean anything.
* **Unreadable chats** (`ReadFailure`, or a chat that is not a group): an imperative chat records
  every operation it states; a desired-state chat records one `read` plus its rename and leave. Only
  the `read` record carries the read's `attempts`; operations that never reached the API carry 0.
* **The owner** (a participant with `is_self`, or the account's `owner_id`) is never removed or
  added. In `members`/`protect` it is ignored (it stays anyway). An imperative remove of the owner
  should have been refused by the owner rule before planning; should one slip through it is
  `failed` / `api_error` with error type `bulkgroups/owner_rule` rather than sent, since that DELETE
  would be a leave. An imperative add of the owner is skipped `already_member`.
* **Profiles** (`in:<slug>`) are planned as the provider ids they resolved to (`people`, one
  account's `Resolution`s by profile), so the same person named by URL or by id is one operation.
  A profile not resolved stays a profile: each of its operations is decided with its
  resolution's outcome (`failed unresolved_user` for a profile nobody has) and nothing is sent.
* **Nobody is removed on account of an unresolved profile.** A desired-state chat keeps a
  participant whose public identifier is the slug of an unresolved profile of its `members` or
  `protect`, and holds (`ChatPlan.held`) the removal of every participant whose page gave no public
  identifier, since any of them may be that person. Participants whose public identifier is known
  and is no unresolved slug are removed as usual.
* Users listed twice in one list are planned once (an operation id is recorded at most once a run).
  Imperative operations keep the job's order; computed removes are sorted by user id (the API's page
  order is not a stable input) and computed adds keep the order of `members`.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import replace
from urllib.parse import unquote

from .model import (
    DEFAULT_MAX_MEMBERS,
    AddRemoveConflict,
    ChatJob,
    ChatPlan,
    ChatState,
    ErrorInfo,
    Job,
    Operation,
    Outcome,
    OwnerList,
    OwnerRuleViolation,
    ReadFailure,
    Reason,
    Resolution,
    Status,
    is_profile,
    profile_slug,
)

__all__ = [
    "DEFAULT_MAX_MEMBERS",
    "People",
    "chat_operations",
    "owner_rule_violations",
    "plan_chat",
    "resolved_chat",
]

# An operation still to send, or the outcome already known for it.
_Step = Operation | Outcome

# One account's resolutions of the job's profiles, by profile (`in:<slug>`).
People = Mapping[str, Resolution]
_NOBODY: People = {}


def _unique(users: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(users))


def chat_operations(chat: ChatJob) -> list[Operation]:
    """Every operation the job states for `chat`, in contract order, without looking at state.

    Imperative: rename, removes, adds, leave. Desired state: one `read` plus rename and leave (its
    removes and adds depend on state). Used for records of chats that could not be read, and by
    resume to know which operations a job has.
    """
    account, chat_id = chat.account, chat.chat
    ops: list[Operation] = []
    if chat.is_desired_state:
        ops.append(Operation(account, chat_id, "read"))
    if chat.rename is not None:
        ops.append(Operation(account, chat_id, "rename", name=chat.rename))
    if not chat.is_desired_state:
        ops.extend(Operation(account, chat_id, "remove", user=u) for u in _unique(chat.remove))
        ops.extend(Operation(account, chat_id, "add", user=u) for u in _unique(chat.add))
    if chat.leave:
        ops.append(Operation(account, chat_id, "leave"))
    return ops


def resolved_chat(chat: ChatJob, people: People) -> ChatJob:
    """The chat with each resolved profile replaced by its provider id; unresolved profiles stay
    as they are (`in:<slug>`), which is how the rest of the planner knows them."""
    if not people:
        return chat

    def ids(users: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_resolved(u, people) for u in users)

    return replace(
        chat,
        add=ids(chat.add),
        remove=ids(chat.remove),
        members=None if chat.members is None else ids(chat.members),
        protect=ids(chat.protect),
    )


def _resolved(user: str, people: People) -> str:
    if not is_profile(user):
        return user
    resolution = people.get(user)
    return resolution.user_id if resolution is not None and resolution.user_id else user


def owner_rule_violations(
    job: Job, owners: Mapping[str, str], people: Mapping[str, People] | None = None
) -> list[OwnerRuleViolation]:
    """Each account owner found in a chat's `remove`, `members` or `protect` list: by id, or by a
    profile that resolved to the owner (`people`: each account's resolutions).

    `owners` maps account ids to their owner's user id (from the account lookup); accounts without
    a known owner cannot be checked and are left out. A violation names the user as the job wrote
    it (the id, or the profile), so that it can be located in the file.
    """
    found: list[OwnerRuleViolation] = []
    owner_profiles: dict[str, list[str]] = {}
    for account, resolutions in (people or {}).items():
        owner = owners.get(account)
        owner_profiles[account] = [p for p, r in resolutions.items() if r.user_id == owner]
    for chat in job.chats:
        owner = owners.get(chat.account)
        if owner is None:
            continue
        names = [owner, *owner_profiles.get(chat.account, ())]
        lists: tuple[tuple[OwnerList, tuple[str, ...]], ...] = (
            ("remove", chat.remove),
            ("members", chat.members or ()),
            ("protect", chat.protect),
        )
        for which, users in lists:
            found.extend(
                OwnerRuleViolation(chat.account, chat.chat, which, user)
                for user in names
                if user in users
            )
    return found


def add_remove_conflicts(job: Job, people: Mapping[str, People]) -> list[AddRemoveConflict]:
    """Each `remove` entry naming, once profiles are resolved, someone the chat's `add` names too
    (`people`: each account's resolutions; an unresolved profile names nobody yet)."""
    found: list[AddRemoveConflict] = []
    for chat in job.chats:
        resolutions = people.get(chat.account)
        if not resolutions or not chat.add or not chat.remove:
            continue
        added = {_resolved(user, resolutions): user for user in chat.add}
        for user in chat.remove:
            user_id = _resolved(user, resolutions)
            if user_id in added and added[user_id] != user:
                found.append(
                    AddRemoveConflict(chat.account, chat.chat, user, added[user_id], user_id)
                )
    return found


def plan_chat(
    chat: ChatJob,
    observed: ChatState | ReadFailure,
    *,
    owner_id: str | None,
    max_members: int = DEFAULT_MAX_MEMBERS,
    people: People = _NOBODY,
) -> ChatPlan:
    """Plan one chat against its freshly read state (or the reason it could not be read).

    `owner_id` is the account owner's user id from preflight (None if unknown: then only the
    `is_self` participant is taken as the owner). `people` are the account's resolutions of the
    job's profiles (a profile without one is unresolved). See the module docstring for the rules.
    """
    if (observed.account, observed.chat) != (chat.account, chat.chat):
        raise ValueError(
            f"observed state of {observed.account}/{observed.chat} given for "
            f"{chat.account}/{chat.chat}"
        )
    chat = resolved_chat(chat, people)
    if isinstance(observed, ReadFailure):
        return _unreadable(
            chat,
            status=observed.status,
            reason=observed.reason,
            error=observed.error,
            read_attempts=observed.attempts,
            unread=True,
        )
    info = observed.info
    if info.type != "group" or not info.is_group:
        # The read itself worked; what failed is the premise that this is a group chat.
        return _unreadable(
            chat, status="failed", reason="not_group", error=None, read_attempts=0, state=observed
        )

    current = observed.member_ids()
    owners = {p.user_id for p in observed.participants if p.is_self}
    if owner_id is not None:
        owners.add(owner_id)
    steps, held = _steps(chat, observed, owners, people)
    if _over_cap(steps, current, owners, owner_id, max_members):
        steps = [_decide(s, "failed", "member_cap") for s in steps]

    return ChatPlan(
        account=chat.account,
        chat=chat.chat,
        to_send=tuple(s for s in steps if isinstance(s, Operation)),
        decided=tuple(s for s in steps if isinstance(s, Outcome)),
        in_place=_in_place(chat, current, owners),
        names=_names(chat, observed, steps, people),
        state_digest=observed.digest(),
        chat_name=info.name,
        profiles=_profiles(steps, people),
        held=held,
        members_before=len(current - owners) if observed.members_listed else None,
    )


# --------------------------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------------------------


def _op(step: _Step) -> Operation:
    return step if isinstance(step, Operation) else step.operation


def _decide(step: _Step, status: Status, reason: Reason, error: ErrorInfo | None = None) -> Outcome:
    return Outcome(_op(step), status, reason, attempts=0, error=error)


def _unresolved(op: Operation, people: People) -> Outcome:
    """The outcome of an operation on a profile that was not resolved: its resolution's."""
    resolution = people.get(op.user or "")
    if resolution is None or resolution.reason is None:
        return _decide(op, "failed", "unresolved_user")
    return _decide(op, resolution.status, resolution.reason, resolution.error)


def _steps(
    chat: ChatJob, state: ChatState, owners: set[str], people: People
) -> tuple[list[_Step], tuple[str, ...]]:
    """The chat's steps in contract order, and the removals held (see the module docstring)."""
    if state.info.is_readonly:
        left = state.members_listed and not (state.member_ids() & owners)
        return [
            _decide(op, "skipped", "already_left" if op.action == "leave" and left else "read_only")
            for op in chat_operations(chat)
        ], ()
    if chat.is_desired_state:
        return _desired_steps(chat, state, owners, people)
    return _imperative_steps(chat, state, owners, people), ()


def _rename_step(chat: ChatJob, state: ChatState) -> list[_Step]:
    if chat.rename is None:
        return []
    op = Operation(chat.account, chat.chat, "rename", name=chat.rename)
    if chat.rename == state.info.name:
        return [_decide(op, "skipped", "same_name")]
    return [op]


def _leave_step(chat: ChatJob) -> list[_Step]:
    return [Operation(chat.account, chat.chat, "leave")] if chat.leave else []


def _owner_rule_error(user: str) -> ErrorInfo:
    # Not an API answer, so no HTTP status; the type names the rule that was broken.
    return ErrorInfo(
        status=None,
        type="bulkgroups/owner_rule",
        detail=f"{user} is the account owner: it cannot be removed (use `leave`)",
    )


def _imperative_steps(
    chat: ChatJob, state: ChatState, owners: set[str], people: People
) -> list[_Step]:
    current = state.member_ids()
    steps = _rename_step(chat, state)
    for user in _unique(chat.remove):
        op = Operation(chat.account, chat.chat, "remove", user=user)
        if is_profile(user):
            steps.append(_unresolved(op, people))
        elif user in owners:
            steps.append(_decide(op, "failed", "api_error", _owner_rule_error(user)))
        elif user not in current:
            steps.append(_decide(op, "skipped", "not_member"))
        else:
            steps.append(op)
    for user in _unique(chat.add):
        op = Operation(chat.account, chat.chat, "add", user=user)
        if is_profile(user):
            steps.append(_unresolved(op, people))
        # The owner of a chat it can read is in it, whatever the participant list says.
        elif user in current or user in owners:
            steps.append(_decide(op, "skipped", "already_member"))
        else:
            steps.append(op)
    return steps + _leave_step(chat)


def _canonical_slug(identifier: str) -> str:
    """A public identifier as the job keeps slugs: percent-decoded, NFC, lower case."""
    if "%" in identifier:
        identifier = unquote(identifier, errors="replace")
    if not identifier.isascii():
        identifier = unicodedata.normalize("NFC", identifier)
    return identifier.lower()


def _desired_steps(
    chat: ChatJob, state: ChatState, owners: set[str], people: People
) -> tuple[list[_Step], tuple[str, ...]]:
    """The chat's steps and the members whose removal is held (see the module docstring)."""
    current = state.member_ids()
    listed = _unique(chat.members or ())
    wanted = [u for u in listed if u not in owners and not is_profile(u)]
    keep = set(wanted) | set(chat.protect) | owners
    unresolved = {profile_slug(u) for u in (*listed, *chat.protect) if is_profile(u)}
    removes: list[str] = []
    held: list[str] = []
    for participant in state.participants:
        user = participant.user_id
        if user in keep:
            continue
        if unresolved:
            identifier = participant.public_identifier
            if identifier is None:
                held.append(user)
                continue
            if _canonical_slug(identifier) in unresolved:
                continue  # the unresolved profile's own person: kept
        removes.append(user)
    steps = _rename_step(chat, state)
    steps.extend(Operation(chat.account, chat.chat, "remove", user=u) for u in sorted(set(removes)))
    for user in listed:
        if user in owners:
            continue
        op = Operation(chat.account, chat.chat, "add", user=user)
        if is_profile(user):
            steps.append(_unresolved(op, people))
        elif user not in current:
            steps.append(op)
    return steps + _leave_step(chat), tuple(sorted(set(held)))


def _over_cap(
    steps: list[_Step],
    current: frozenset[str],
    owners: set[str],
    owner_id: str | None,
    max_members: int,
) -> bool:
    """True when the plan adds members and its end state (owner counted) is above the cap."""
    sending = [s for s in steps if isinstance(s, Operation)]
    adds = {op.user for op in sending if op.action == "add" and op.user is not None}
    if not adds:
        return False
    removes = {op.user for op in sending if op.action == "remove"}
    end = (current - removes) | adds
    # The owner is in the chat even when the participant list failed to show it.
    if owner_id is not None and not (end & owners):
        end |= {owner_id}
    return len(end) > max_members


def _in_place(chat: ChatJob, current: frozenset[str], owners: set[str]) -> int:
    """How many of the members (or adds) the job wants are already there; the owner not counted."""
    wanted = chat.members if chat.is_desired_state else chat.add
    return sum(1 for u in _unique(wanted or ()) if u in current and u not in owners)


def _names(chat: ChatJob, state: ChatState, steps: list[_Step], people: People) -> dict[str, str]:
    """Display names of the users the chat's plan mentions, for lines like `+ ACoAA1 (Ann Lee)`:
    as the participants page gives them, else as the users endpoint did for a resolved profile."""
    mentioned = {_op(s).user for s in steps}
    mentioned.update(chat.add, chat.remove, chat.members or (), chat.protect)
    names = {
        r.user_id: r.display_name
        for r in people.values()
        if r.user_id is not None and r.user_id in mentioned and r.display_name
    }
    names.update(
        (p.user_id, p.display_name)
        for p in state.participants
        if p.user_id in mentioned and p.display_name
    )
    return names


def _profiles(steps: list[_Step], people: People) -> dict[str, str]:
    """The profile each user of the plan was named by in the job, for `+ ACoAA1 (Ann Lee,
    linkedin.com/in/ann-lee)`."""
    if not people:
        return {}
    mentioned = {_op(s).user for s in steps}
    return {
        r.user_id: profile
        for profile, r in people.items()
        if r.user_id is not None and r.user_id in mentioned
    }


def _unreadable(
    chat: ChatJob,
    *,
    status: Status,
    reason: Reason,
    error: ErrorInfo | None,
    read_attempts: int,
    state: ChatState | None = None,
    unread: bool = False,
) -> ChatPlan:
    """Every operation of a chat whose state is unusable gets the same outcome."""
    decided = tuple(
        Outcome(
            op,
            status,
            reason,
            attempts=read_attempts if op.action == "read" else 0,
            error=error,
        )
        for op in chat_operations(chat)
    )
    return ChatPlan(
        account=chat.account,
        chat=chat.chat,
        decided=decided,
        state_digest=state.digest() if state is not None else None,
        chat_name=state.info.name if state is not None else None,
        unread=unread,
    )
