"""Properties of the planner over random chats: a plan applied reaches the job's end state, never
touches the owner or protected users, respects the member cap, and planning again sends nothing.

The cap rule under test (planner docstring): a chat is refused exactly when its plan adds members
and the planned end state, owner counted, is above the cap.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from bulkgroups.model import ChatInfo, ChatJob, ChatPlan, ChatState, Operation, Participant
from bulkgroups.planner import plan_chat

ACC = "acc_1"
CHAT = "chat_A"
OWNER = "ACoAOwner"
USERS = [f"ACoA{i}" for i in range(12)]
NAMES = ["Cohort 11", "Cohort 12"]
RANK = {"read": 0, "rename": 1, "remove": 2, "add": 3, "leave": 4}

# How the owner shows up in what was read: is_self, the account's owner id, or both.
OwnerSeen = tuple[bool, bool]  # (is_self flag set, owner_id passed to the planner)
owner_seen = st.sampled_from([(True, True), (True, False), (False, True)])

PROPERTY = settings(max_examples=300, deadline=None)


@dataclass
class Chat:
    """A tiny model of a group chat that plans are applied to."""

    members: set[str]
    name: str
    readonly: bool = False

    def observed(self, seen: OwnerSeen) -> ChatState:
        is_self, _ = seen
        # Like the engine: the participants of a chat the owner has left are not listed.
        participants = tuple(
            Participant(u, f"Name of {u}", is_self=is_self and u == OWNER)
            for u in sorted(self.members)
            if not self.readonly
        )
        info = ChatInfo(CHAT, self.name, "group", True, self.readonly, len(participants))
        return ChatState(ACC, CHAT, info, participants)

    def plan(self, job: ChatJob, seen: OwnerSeen, cap: int) -> ChatPlan:
        _, with_owner_id = seen
        owner_id = OWNER if with_owner_id else None
        return plan_chat(job, self.observed(seen), owner_id=owner_id, max_members=cap)

    def apply(self, op: Operation, *, cap: int, protected: frozenset[str] = frozenset()) -> None:
        """One write, as LinkedIn would take it; asserts what a write must never do."""
        assert not self.readonly, "a write was planned for a chat the owner has left"
        if op.action == "rename":
            assert op.name is not None and op.name != self.name
            self.name = op.name
        elif op.action == "remove":
            assert op.user in self.members, "a remove of a non-member was sent"
            assert op.user != OWNER, "the owner was removed"
            assert op.user not in protected, "a protected user was removed"
            self.members.discard(op.user)
        elif op.action == "add":
            assert op.user is not None and op.user not in self.members
            assert op.user != OWNER, "the owner was added"
            self.members.add(op.user)
            assert len(self.members) <= cap, "an add went above the member cap"
        elif op.action == "leave":
            self.members.discard(OWNER)
            self.readonly = True
        else:
            raise AssertionError(f"unexpected operation {op}")


def assert_contract_order(plan: ChatPlan) -> None:
    """Rename, removes, adds, leave: in what is sent and in what is decided alike."""
    for ops in (list(plan.to_send), [o.operation for o in plan.decided]):
        ranks = [RANK[o.action] for o in ops]
        assert ranks == sorted(ranks)


def assert_refused(plan: ChatPlan) -> None:
    assert plan.to_send == ()
    assert plan.decided
    assert {(o.status, o.reason, o.attempts) for o in plan.decided} == {("failed", "member_cap", 0)}


def assert_nothing_left_to_do(plan: ChatPlan) -> None:
    assert plan.to_send == ()
    assert all(o.status == "skipped" for o in plan.decided)
    assert not plan.has_changes


@PROPERTY
@given(
    current=st.sets(st.sampled_from(USERS)),
    members=st.lists(st.sampled_from(USERS), unique=True),
    protect=st.sets(st.sampled_from(USERS)),
    cap=st.integers(1, 14),
    rename=st.none() | st.sampled_from(NAMES),
    leave=st.booleans(),
    seen=owner_seen,
)
def test_a_desired_state_plan_reaches_exactly_the_desired_members(
    current: set[str],
    members: list[str],
    protect: set[str],
    cap: int,
    rename: str | None,
    leave: bool,
    seen: OwnerSeen,
) -> None:
    chat = Chat(current | {OWNER}, NAMES[0])
    job = ChatJob(
        ACC, CHAT, members=tuple(members), protect=tuple(protect), rename=rename, leave=leave
    )
    plan = chat.plan(job, seen, cap)
    assert_contract_order(plan)

    end = set(members) | {OWNER} | (protect & current)
    if set(members) - current and len(end) > cap:
        assert_refused(plan)
        return
    assert {o.reason for o in plan.decided} <= {"same_name"}

    for op in plan.to_send:
        chat.apply(op, cap=cap, protected=frozenset(protect))
    assert chat.members == (end - {OWNER} if leave else end)
    assert chat.name == (rename or NAMES[0])
    assert_nothing_left_to_do(chat.plan(job, seen, cap))


@PROPERTY
@given(
    current=st.sets(st.sampled_from(USERS)),
    add=st.lists(st.sampled_from([*USERS, OWNER]), unique=True),
    remove=st.lists(st.sampled_from(USERS), unique=True),
    cap=st.integers(1, 14),
    rename=st.none() | st.sampled_from(NAMES),
    leave=st.booleans(),
    seen=owner_seen,
)
def test_an_imperative_plan_reaches_the_stated_end_state(
    current: set[str],
    add: list[str],
    remove: list[str],
    cap: int,
    rename: str | None,
    leave: bool,
    seen: OwnerSeen,
) -> None:
    remove = [u for u in remove if u not in add]  # a user both added and removed: a job error
    chat = Chat(current | {OWNER}, NAMES[0])
    job = ChatJob(ACC, CHAT, add=tuple(add), remove=tuple(remove), rename=rename, leave=leave)
    plan = chat.plan(job, seen, cap)
    assert_contract_order(plan)
    assert len(plan.to_send) + len(plan.decided) == (
        len(add) + len(remove) + (rename is not None) + leave
    )

    end = (current - set(remove)) | set(add) | {OWNER}
    if set(add) - current - {OWNER} and len(end) > cap:
        assert_refused(plan)
        return
    for outcome in plan.decided:
        o = outcome.operation
        assert outcome.status == "skipped"
        assert (
            outcome.reason
            == {
                "add": "already_member",
                "remove": "not_member",
                "rename": "same_name",
            }[o.action]
        )

    for op in plan.to_send:
        chat.apply(op, cap=cap)
    assert chat.members == (end - {OWNER} if leave else end)
    assert_nothing_left_to_do(chat.plan(job, seen, cap))
