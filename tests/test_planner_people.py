"""The planner with people named by profile: resolved profiles are provider ids, an unresolved
profile's operations are decided from its resolution, and nobody is removed on its account."""

from __future__ import annotations

from collections.abc import Iterable

from bulkgroups.model import (
    ChatInfo,
    ChatJob,
    ChatPlan,
    ChatState,
    ErrorInfo,
    Job,
    OwnerRuleViolation,
    Participant,
    ReadFailure,
    Resolution,
)
from bulkgroups.planner import owner_rule_violations, plan_chat

ACC = "acc_1"
CHAT = "chat_A"
OWNER = "ACoAOwner"
NOT_FOUND = ErrorInfo(404, "api/resource_not_found", "no such user")

ANN = "in:ann-kim"
GHOST = "in:ghost-person"
PEOPLE = {
    ANN: Resolution(ACC, ANN, "ACoAnn", "Ann Kim", resolved_at=0.0),
    GHOST: Resolution(ACC, GHOST, reason="unresolved_user", error=NOT_FOUND),
}


def state(members: Iterable[tuple[str, str | None]]) -> ChatState:
    """A chat with the owner and `members` as (user id, public identifier or None)."""
    participants = [Participant(OWNER, "Jane Owner", is_self=True, public_identifier="jane")]
    participants += [
        Participant(user, f"Name of {user}", public_identifier=slug) for user, slug in members
    ]
    return ChatState(
        ACC,
        CHAT,
        ChatInfo(CHAT, "Cohort", "group", True, False, len(participants)),
        tuple(participants),
    )


def job(**fields: object) -> ChatJob:
    return ChatJob(ACC, CHAT, **fields)  # type: ignore[arg-type]


def sent(plan: ChatPlan) -> list[tuple[str, str | None]]:
    return [(o.action, o.subject) for o in plan.to_send]


def decided(plan: ChatPlan) -> list[tuple[str, str | None, str, str | None]]:
    return [(o.operation.action, o.operation.subject, o.status, o.reason) for o in plan.decided]


def test_a_resolved_profile_is_planned_as_its_provider_id_with_its_name_and_profile() -> None:
    plan = plan_chat(job(add=(ANN, "ACoAB")), state([]), owner_id=OWNER, people=PEOPLE)
    assert sent(plan) == [("add", "ACoAnn"), ("add", "ACoAB")]
    assert plan.names["ACoAnn"] == "Ann Kim"
    assert plan.profiles == {"ACoAnn": ANN}


def test_the_same_person_by_profile_and_by_id_is_one_operation() -> None:
    plan = plan_chat(
        job(members=(ANN, "ACoAnn")), state([("ACoAnn", "ann-kim")]), owner_id=OWNER, people=PEOPLE
    )
    assert sent(plan) == []
    assert plan.in_place == 1


def test_an_unresolved_profile_fails_only_its_own_operations() -> None:
    plan = plan_chat(
        job(add=(GHOST, "ACoAB"), remove=("in:gone-too", "ACoAC")),
        state([("ACoAC", "c-person")]),
        owner_id=OWNER,
        people={**PEOPLE, "in:gone-too": Resolution(ACC, "in:gone-too", reason="unresolved_user")},
    )
    assert sent(plan) == [("remove", "ACoAC"), ("add", "ACoAB")]
    assert decided(plan) == [
        ("remove", "in:gone-too", "failed", "unresolved_user"),
        ("add", GHOST, "failed", "unresolved_user"),
    ]
    assert plan.decided[1].error == NOT_FOUND


def test_a_profile_that_failed_otherwise_takes_its_lookups_outcome() -> None:
    error = ErrorInfo(503, "api/proxy_error")
    people = {GHOST: Resolution(ACC, GHOST, status="deferred", reason="rate_limited", error=error)}
    plan = plan_chat(job(add=(GHOST,)), state([]), owner_id=OWNER, people=people)
    assert decided(plan) == [("add", GHOST, "deferred", "rate_limited")]


def test_a_profile_never_looked_up_is_unresolved() -> None:
    plan = plan_chat(job(add=(GHOST,)), state([]), owner_id=OWNER)
    assert decided(plan) == [("add", GHOST, "failed", "unresolved_user")]


def test_desired_state_keeps_the_participant_whose_public_identifier_is_an_unresolved_slug() -> (
    None
):
    plan = plan_chat(
        job(members=(ANN, GHOST)),
        state([("ACoAGhost", "Ghost-Person"), ("ACoAOther", "someone-else")]),
        owner_id=OWNER,
        people=PEOPLE,
    )
    assert sent(plan) == [("remove", "ACoAOther"), ("add", "ACoAnn")]
    assert decided(plan) == [("add", GHOST, "failed", "unresolved_user")]
    assert plan.held == ()


def test_public_identifiers_are_compared_as_slugs_are_kept() -> None:
    people = {"in:jürgen-x": Resolution(ACC, "in:jürgen-x", reason="unresolved_user")}
    plan = plan_chat(
        job(members=("in:jürgen-x",)),
        state([("ACoAJ", "J%C3%BCrgen-X")]),
        owner_id=OWNER,
        people=people,
    )
    assert sent(plan) == []


def test_desired_state_removes_nobody_without_a_public_identifier_while_a_profile_is_unresolved() -> (
    None
):
    plan = plan_chat(
        job(members=(ANN,), protect=(GHOST,)),
        state([("ACoAX", None), ("ACoAY", None), ("ACoAZ", "zed")]),
        owner_id=OWNER,
        people=PEOPLE,
    )
    assert sent(plan) == [("remove", "ACoAZ"), ("add", "ACoAnn")]
    assert plan.held == ("ACoAX", "ACoAY")
    assert plan.has_changes


def test_without_unresolved_profiles_participants_without_identifiers_are_removed() -> None:
    plan = plan_chat(job(members=(ANN,)), state([("ACoAX", None)]), owner_id=OWNER, people=PEOPLE)
    assert sent(plan) == [("remove", "ACoAX"), ("add", "ACoAnn")]
    assert plan.held == ()


def test_an_unreadable_chat_records_profiles_as_resolved() -> None:
    failure = ReadFailure(ACC, CHAT, "failed", "chat_not_found", None, 1)
    plan = plan_chat(job(add=(ANN, GHOST)), failure, owner_id=OWNER, people=PEOPLE)
    assert decided(plan) == [
        ("add", "ACoAnn", "failed", "chat_not_found"),
        ("add", GHOST, "failed", "chat_not_found"),
    ]


def test_the_owners_profile_breaks_the_owner_rule_as_written() -> None:
    me = "in:jane-owner"
    people = {ACC: {me: Resolution(ACC, me, OWNER, "Jane Owner", resolved_at=0.0), **PEOPLE}}
    the_job = Job(
        chats=(
            ChatJob(ACC, "c1", remove=(me,)),
            ChatJob(ACC, "c2", members=(ANN,), protect=(me,)),
            ChatJob(ACC, "c3", add=(me,)),  # adding the owner is harmless: skipped
        )
    )
    assert owner_rule_violations(the_job, {ACC: OWNER}, people) == [
        OwnerRuleViolation(ACC, "c1", "remove", me),
        OwnerRuleViolation(ACC, "c2", "protect", me),
    ]
    assert owner_rule_violations(the_job, {ACC: OWNER}) == []  # before resolution
