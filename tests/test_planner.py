"""The planner, specified: (job, observed chat state) -> operations to send and outcomes known now.

Every row of CONTRACT.md's outcomes table that is decided at plan time has a test here; the
property tests at the end check that applying a plan reaches the job's end state and that planning
again on that state sends nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import pytest

from bulkgroups.model import (
    ChatInfo,
    ChatJob,
    ChatPlan,
    ChatState,
    ErrorInfo,
    Job,
    Operation,
    Outcome,
    OwnerRuleViolation,
    Participant,
    ReadFailure,
)
from bulkgroups.planner import (
    DEFAULT_MAX_MEMBERS,
    chat_operations,
    owner_rule_violations,
    plan_chat,
)

ACC = "acc_1"
CHAT = "chat_A"
OWNER = "ACoAOwner"


def state(
    members: Iterable[str] = (),
    *,
    owner: str | None = OWNER,
    name: str = "Cohort 11",
    readonly: bool = False,
    type: str = "group",
    is_group: bool = True,
    chat: str = CHAT,
    account: str = ACC,
    names: dict[str, str] | None = None,
) -> ChatState:
    """A chat as read: the owner (is_self) first unless it left, then `members`."""
    names = names or {}
    participants = [Participant(u, names.get(u, ""), is_self=False) for u in members]
    if owner is not None:
        participants.insert(0, Participant(owner, "Jane Owner", is_self=True))
    return ChatState(
        account,
        chat,
        ChatInfo(chat, name, type, is_group, readonly, len(participants)),
        tuple(participants),
    )


def job(**fields: object) -> ChatJob:
    return ChatJob(ACC, fields.pop("chat", CHAT), **fields)  # type: ignore[arg-type]


def op(action: str, user: str | None = None, name: str | None = None) -> Operation:
    return Operation(ACC, CHAT, action, user=user, name=name)  # type: ignore[arg-type]


def sent(plan: ChatPlan) -> list[tuple[str, str | None]]:
    return [(o.action, o.subject) for o in plan.to_send]


def decided(plan: ChatPlan) -> list[tuple[str, str | None, str, str | None]]:
    return [(o.operation.action, o.operation.subject, o.status, o.reason) for o in plan.decided]


def plan(chat: ChatJob, observed: ChatState | ReadFailure, **kw: object) -> ChatPlan:
    return plan_chat(chat, observed, owner_id=kw.pop("owner_id", OWNER), **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Order
# --------------------------------------------------------------------------------------------


def test_an_imperative_chat_is_planned_rename_then_removes_then_adds_then_leave() -> None:
    chat = job(add=("u4", "u5"), remove=("u1", "u2"), rename="Cohort 12", leave=True)
    result = plan(chat, state(["u1", "u2", "u3"]))
    assert sent(result) == [
        ("rename", "Cohort 12"),
        ("remove", "u1"),
        ("remove", "u2"),
        ("add", "u4"),
        ("add", "u5"),
        ("leave", None),
    ]
    assert result.decided == ()


def test_a_desired_state_chat_sends_its_difference_in_contract_order() -> None:
    chat = job(members=("u9", "u3", "u8"), rename="New", leave=True)
    result = plan(chat, state(["u3", "u2", "u1"]))
    # Removes sorted by id (page order is not a stable input), adds in the job's order.
    assert sent(result) == [
        ("rename", "New"),
        ("remove", "u1"),
        ("remove", "u2"),
        ("add", "u9"),
        ("add", "u8"),
        ("leave", None),
    ]


def test_skips_and_sends_each_keep_contract_order() -> None:
    chat = job(add=("u1", "u9"), remove=("u8", "u2"), rename="Cohort 11", leave=True)
    result = plan(chat, state(["u1", "u2"]))
    assert sent(result) == [("remove", "u2"), ("add", "u9"), ("leave", None)]
    assert decided(result) == [
        ("rename", "Cohort 11", "skipped", "same_name"),
        ("remove", "u8", "skipped", "not_member"),
        ("add", "u1", "skipped", "already_member"),
    ]


def test_a_user_listed_twice_is_planned_once() -> None:
    result = plan(job(add=("u1", "u1"), remove=("u2", "u2")), state(["u2"]))
    assert sent(result) == [("remove", "u2"), ("add", "u1")]


# --------------------------------------------------------------------------------------------
# Skips decided at plan time
# --------------------------------------------------------------------------------------------


def test_adding_a_current_member_is_skipped_already_member() -> None:
    result = plan(job(add=("u1",)), state(["u1"]))
    assert result.to_send == ()
    assert result.decided == (Outcome(op("add", "u1"), "skipped", "already_member", 0),)


def test_removing_a_non_member_is_skipped_not_member() -> None:
    result = plan(job(remove=("u1",)), state(["u2"]))
    assert result.to_send == ()
    assert result.decided == (Outcome(op("remove", "u1"), "skipped", "not_member", 0),)


def test_renaming_to_the_current_name_is_skipped_same_name() -> None:
    result = plan(job(rename="Cohort 11"), state(name="Cohort 11"))
    assert result.to_send == ()
    assert result.decided == (Outcome(op("rename", name="Cohort 11"), "skipped", "same_name", 0),)


def test_a_rename_to_another_name_is_sent() -> None:
    result = plan(job(rename="Cohort 12"), state(name="Cohort 11"))
    assert result.to_send == (op("rename", name="Cohort 12"),)


def test_renaming_a_desired_state_chat_to_its_name_is_skipped_same_name() -> None:
    result = plan(job(members=("u1",), rename="Cohort 11"), state(["u1"], name="Cohort 11"))
    assert result.to_send == ()
    assert decided(result) == [("rename", "Cohort 11", "skipped", "same_name")]


# --------------------------------------------------------------------------------------------
# Read-only and not-a-group chats
# --------------------------------------------------------------------------------------------


def test_a_read_only_chat_skips_every_operation_read_only_and_its_leave_already_left() -> None:
    chat = job(add=("u4", "u1"), remove=("u2",), rename="Cohort 12", leave=True)
    result = plan(chat, state(["u1", "u2"], owner=None, readonly=True))
    assert result.to_send == ()
    assert decided(result) == [
        ("rename", "Cohort 12", "skipped", "read_only"),
        ("remove", "u2", "skipped", "read_only"),
        ("add", "u4", "skipped", "read_only"),
        ("add", "u1", "skipped", "read_only"),
        ("leave", None, "skipped", "already_left"),
    ]
    assert not result.has_changes


def test_a_leave_of_a_read_only_chat_that_still_lists_the_owner_is_skipped_read_only() -> None:
    # `is_readonly` is "read-only for the current user": the owner may not have left.
    result = plan(job(leave=True), state(["u1"], readonly=True))
    assert decided(result) == [("leave", None, "skipped", "read_only")]


def test_a_leave_of_a_read_only_chat_whose_members_could_not_be_listed_is_skipped_read_only() -> (
    None
):
    unlisted = replace(state([], owner=None, readonly=True), members_listed=False)
    result = plan(job(leave=True, add=("u1",)), unlisted)
    assert decided(result) == [
        ("add", "u1", "skipped", "read_only"),
        ("leave", None, "skipped", "read_only"),
    ]


def test_a_read_only_desired_state_chat_records_one_read_plus_rename_and_leave() -> None:
    # The engine does not list the participants of a chat the owner has left: no difference.
    chat = job(members=("u1", "u3"), rename="X", leave=True)
    result = plan(chat, state([], owner=None, readonly=True))
    assert result.to_send == ()
    assert decided(result) == [
        ("read", None, "skipped", "read_only"),
        ("rename", "X", "skipped", "read_only"),
        ("leave", None, "skipped", "already_left"),
    ]


def test_a_read_only_chat_is_not_refused_for_the_member_cap() -> None:
    result = plan(job(add=("u3",)), state(["u1", "u2"], readonly=True), max_members=2)
    assert decided(result) == [("add", "u3", "skipped", "read_only")]


@pytest.mark.parametrize(
    ("type_", "is_group"), [("1to1", False), ("channel", False), ("group", False)]
)
def test_a_chat_that_is_not_a_group_fails_every_operation_not_group(
    type_: str, is_group: bool
) -> None:
    chat = job(add=("u1",), remove=("u2",), rename="X", leave=True)
    result = plan(chat, state(["u2"], type=type_, is_group=is_group))
    assert result.to_send == ()
    assert decided(result) == [
        ("rename", "X", "failed", "not_group"),
        ("remove", "u2", "failed", "not_group"),
        ("add", "u1", "failed", "not_group"),
        ("leave", None, "failed", "not_group"),
    ]
    assert result.has_changes  # a refused chat counts as a change for --detailed-exitcode


def test_a_desired_state_chat_that_is_not_a_group_records_one_read_plus_rename_and_leave() -> None:
    chat = job(members=("u1",), rename="X", leave=True)
    result = plan(chat, state(["u2"], type="1to1", is_group=False))
    assert decided(result) == [
        ("read", None, "failed", "not_group"),
        ("rename", "X", "failed", "not_group"),
        ("leave", None, "failed", "not_group"),
    ]


# --------------------------------------------------------------------------------------------
# Chats whose state could not be read
# --------------------------------------------------------------------------------------------

GONE = ErrorInfo(404, "api/resource_not_found", "chat not found", "req-1")


def test_an_unreadable_imperative_chat_gives_every_operation_the_read_failure() -> None:
    failure = ReadFailure(ACC, CHAT, "failed", "chat_not_found", GONE, attempts=3)
    chat = job(add=("u1",), remove=("u2",), rename="X", leave=True)
    result = plan(chat, failure)
    assert result.to_send == ()
    # None of these reached the API, so none counts an attempt.
    assert list(result.decided) == [
        Outcome(o, "failed", "chat_not_found", 0, GONE) for o in chat_operations(chat)
    ]
    assert result.state_digest is None and result.chat_name is None


def test_an_unreadable_desired_state_chat_records_one_read_plus_rename_and_leave() -> None:
    failure = ReadFailure(ACC, CHAT, "deferred", "account_paused", None, attempts=1)
    result = plan(job(members=("u1", "u2"), rename="X", leave=True), failure)
    assert list(result.decided) == [
        Outcome(op("read"), "deferred", "account_paused", 1, None),
        Outcome(op("rename", name="X"), "deferred", "account_paused", 0, None),
        Outcome(op("leave"), "deferred", "account_paused", 0, None),
    ]


def test_an_unreadable_desired_state_chat_without_rename_or_leave_records_just_its_read() -> None:
    failure = ReadFailure(ACC, CHAT, "failed", "api_error", GONE, attempts=6)
    result = plan(job(members=()), failure)
    assert list(result.decided) == [Outcome(op("read"), "failed", "api_error", 6, GONE)]


def test_state_observed_for_another_chat_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="chat_B"):
        plan(job(add=("u1",)), state(chat="chat_B"))


# --------------------------------------------------------------------------------------------
# Desired state: the exact difference, never the owner, never a protected user
# --------------------------------------------------------------------------------------------


def test_desired_members_remove_everyone_else_but_the_owner_and_protected_users() -> None:
    chat = job(members=("u1", "u4"), protect=("u9",))
    result = plan(chat, state(["u1", "u2", "u3", "u9"]))
    assert sent(result) == [("remove", "u2"), ("remove", "u3"), ("add", "u4")]


def test_an_empty_member_list_empties_the_chat_but_for_owner_and_protected_users() -> None:
    result = plan(job(members=(), protect=("u2",)), state(["u1", "u2", "u3"]))
    assert sent(result) == [("remove", "u1"), ("remove", "u3")]


def test_a_protected_user_who_is_absent_is_not_added() -> None:
    result = plan(job(members=("u1",), protect=("u9",)), state(["u1"]))
    assert result.to_send == () and result.decided == ()


def test_the_owner_is_recognised_by_is_self_even_without_the_owner_id() -> None:
    result = plan(job(members=()), state(["u1"], owner="ACoASelf"), owner_id=None)
    assert sent(result) == [("remove", "u1")]


def test_the_owner_is_recognised_by_the_owner_id_even_without_is_self() -> None:
    observed = state(["u1", OWNER], owner=None)  # OWNER listed, is_self missing
    result = plan(job(members=("u1",)), observed)
    assert result.to_send == ()


def test_the_owner_in_members_or_protect_is_never_added_nor_removed() -> None:
    # Caught by the owner rule before planning; the planner still keeps its hands off the owner.
    chat = job(members=(OWNER, "u1"), protect=(OWNER,))
    assert plan(chat, state(["u1"])).to_send == ()
    assert plan(chat, state(["u1", OWNER], owner=None)).to_send == ()


def test_an_imperative_remove_of_the_owner_is_never_sent() -> None:
    result = plan(job(remove=(OWNER, "u1")), state(["u1"]))
    assert sent(result) == [("remove", "u1")]
    [refused] = result.decided
    assert (refused.operation, refused.status, refused.reason) == (
        op("remove", OWNER),
        "failed",
        "api_error",
    )
    assert refused.error is not None and refused.error.type == "bulkgroups/owner_rule"


def test_an_imperative_add_of_the_owner_is_skipped_already_member() -> None:
    result = plan(job(add=(OWNER,)), state([], owner=None))
    assert result.to_send == ()
    assert decided(result) == [("add", OWNER, "skipped", "already_member")]


def test_a_leave_is_sent_last_and_is_the_only_way_the_owner_goes() -> None:
    result = plan(job(members=(), leave=True), state(["u1"]))
    assert sent(result) == [("remove", "u1"), ("leave", None)]


# --------------------------------------------------------------------------------------------
# Member cap: refuse only a plan that adds into an end state above the cap
# --------------------------------------------------------------------------------------------


def test_the_default_cap_is_linkedins_fifty() -> None:
    assert DEFAULT_MAX_MEMBERS == 50
    members = [f"u{i:02}" for i in range(48)]  # + owner = 49
    assert plan(job(add=("n1",)), state(members)).to_send == (op("add", "n1"),)
    refused = plan(job(add=("n1", "n2")), state(members))
    assert refused.to_send == ()


def test_a_plan_that_adds_beyond_the_cap_fails_every_operation_of_the_chat() -> None:
    chat = job(add=("u3", "u1"), remove=("u9",), rename="X", leave=True)
    result = plan(chat, state(["u1", "u2"]), max_members=3)  # owner + u1 u2 u3 = 4
    assert result.to_send == ()
    assert decided(result) == [
        ("rename", "X", "failed", "member_cap"),
        ("remove", "u9", "failed", "member_cap"),
        ("add", "u3", "failed", "member_cap"),
        ("add", "u1", "failed", "member_cap"),
        ("leave", None, "failed", "member_cap"),
    ]
    assert all(o.attempts == 0 for o in result.decided)
    assert result.has_changes


def test_the_owner_counts_towards_the_cap() -> None:
    assert plan(job(add=("u2",)), state(["u1"]), max_members=3).to_send == (op("add", "u2"),)
    assert plan(job(add=("u2", "u3")), state(["u1"]), max_members=3).to_send == ()


def test_removes_make_room_for_adds() -> None:
    chat = job(add=("u4",), remove=("u1",))
    assert sent(plan(chat, state(["u1", "u2"]), max_members=3)) == [
        ("remove", "u1"),
        ("add", "u4"),
    ]


def test_a_chat_above_the_cap_may_still_be_shrunk_renamed_or_left() -> None:
    chat = job(members=("u1", "u2", "u3"), rename="X", leave=True)
    result = plan(chat, state(["u1", "u2", "u3", "u4", "u5"]), max_members=3)
    # Ends at owner + 3 = 4, still above 3, but nothing is added: every write moves towards the cap.
    assert sent(result) == [
        ("rename", "X"),
        ("remove", "u4"),
        ("remove", "u5"),
        ("leave", None),
    ]


def test_a_chat_above_the_cap_that_would_still_end_above_it_cannot_take_adds() -> None:
    chat = job(members=("u1", "u2", "u9"))
    result = plan(chat, state(["u1", "u2", "u3", "u4", "u5"]), max_members=3)
    assert result.to_send == ()
    assert {o.reason for o in result.decided} == {"member_cap"}


def test_a_chat_above_the_cap_may_take_adds_that_end_at_the_cap() -> None:
    chat = job(members=("u1", "u9"))
    result = plan(chat, state(["u1", "u2", "u3", "u4", "u5"]), max_members=3)
    assert sent(result)[-1] == ("add", "u9")


# --------------------------------------------------------------------------------------------
# What the plan shows
# --------------------------------------------------------------------------------------------


def test_the_plan_carries_display_names_digest_name_and_members_in_place() -> None:
    observed = state(["u1", "u2", "u3"], names={"u1": "Ann Lee", "u2": "Bo Chen", "u3": "Cy Diaz"})
    result = plan(job(add=("u1", "u2", "u4"), remove=("u3",)), observed)
    assert result.in_place == 2
    assert result.names == {"u1": "Ann Lee", "u2": "Bo Chen", "u3": "Cy Diaz"}
    assert result.state_digest == observed.digest()
    assert result.chat_name == "Cohort 11"


def test_display_names_cover_computed_removes_and_leave_out_unmentioned_members() -> None:
    observed = state(["u1", "u2"], names={"u1": "Ann Lee", "u2": "Bo Chen"})
    result = plan(job(members=("u2", "u5")), observed)
    assert result.names == {"u1": "Ann Lee", "u2": "Bo Chen"}
    assert result.in_place == 1
    assert plan(job(rename="X"), observed).names == {}


# --------------------------------------------------------------------------------------------
# chat_operations: what the job states, without state
# --------------------------------------------------------------------------------------------


def test_chat_operations_lists_an_imperative_chat_in_contract_order() -> None:
    chat = job(add=("u1", "u1"), remove=("u2",), rename="X", leave=True)
    assert chat_operations(chat) == [
        op("rename", name="X"),
        op("remove", "u2"),
        op("add", "u1"),
        op("leave"),
    ]


def test_chat_operations_of_a_desired_state_chat_are_its_read_rename_and_leave() -> None:
    assert chat_operations(job(members=("u1",), rename="X", leave=True)) == [
        op("read"),
        op("rename", name="X"),
        op("leave"),
    ]
    assert chat_operations(job(members=("u1",))) == [op("read")]


# --------------------------------------------------------------------------------------------
# The cap each chat is planned with
# --------------------------------------------------------------------------------------------


def test_each_chat_is_planned_against_the_cap_it_is_given() -> None:
    # The engine passes each account's `max_members` from the job, else the flag's.
    chat = job(add=("u2", "u3"))
    assert {o.reason for o in plan(chat, state(["u1"]), max_members=3).decided} == {"member_cap"}
    assert sent(plan(chat, state(["u1"]), max_members=4)) == [("add", "u2"), ("add", "u3")]


def test_the_owner_rule_finds_the_owner_in_remove_members_and_protect_as_values() -> None:
    the_job = Job(
        chats=(
            job(remove=("u1", OWNER)),
            job(chat="chat_B", members=(OWNER, "u2"), protect=(OWNER,)),
            job(chat="chat_C", add=(OWNER,)),  # an add of the owner is skipped, not refused
            ChatJob("acc_unknown", "chat_D", remove=(OWNER,)),  # owner not known: not checked
        )
    )
    assert owner_rule_violations(the_job, {ACC: OWNER}) == [
        OwnerRuleViolation(ACC, CHAT, "remove", OWNER),
        OwnerRuleViolation(ACC, "chat_B", "members", OWNER),
        OwnerRuleViolation(ACC, "chat_B", "protect", OWNER),
    ]
