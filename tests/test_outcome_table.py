"""The outcome table for writes, as pure functions: no simulator, no run, no network.

(The same rows are checked end to end, over real sockets, in test_outcomes.py.)
"""

from __future__ import annotations

from bulkgroups.attempts import Attempts, DeferAccount
from bulkgroups.engine.outcomes import Recheck, after_recheck, chat_refused, in_effect, outcome_of
from bulkgroups.errors import (
    AccountDisconnected,
    ApiError,
    Conflict,
    NotFound,
    PermissionDenied,
    ProviderRateLimited,
    RateLimited,
    RequestRejected,
    TransientError,
    UnsupportedAccount,
)
from bulkgroups.model import ChatInfo, ChatState, Operation, Participant

A, C, OWNER = "acc", "chat", "ACoAOwner"
ADD = Operation(A, C, "add", user="u1")
REMOVE = Operation(A, C, "remove", user="u1")
RENAME = Operation(A, C, "rename", name="New")
LEAVE = Operation(A, C, "leave")


def tried(count: int = 1, *, unknown: bool = False) -> Attempts:
    return Attempts(count=count, outcome_unknown=unknown)


def error(cls: type[ApiError], status: int, type_: str) -> ApiError:
    return cls(status=status, type=type_, req_id="r1")


def state(
    *members: str, readonly: bool = False, name: str = "Old", listed: bool = True
) -> ChatState:
    participants = tuple(Participant(m, is_self=m == OWNER) for m in members)
    info = ChatInfo(C, name, "group", True, readonly, len(participants))
    return ChatState(A, C, info, participants, members_listed=listed)


def summary(outcome: object) -> object:
    if isinstance(outcome, Recheck):
        return outcome
    return (outcome.status, outcome.reason, outcome.attempts, outcome.in_doubt)  # type: ignore[attr-defined]


def test_an_accepted_write_is_applied() -> None:
    assert summary(outcome_of(ADD, None, tried(2, unknown=True))) == ("applied", None, 2, False)


def test_a_first_409_on_an_add_is_already_member_and_after_an_unknown_outcome_applied() -> None:
    conflict = error(Conflict, 409, "api/conflict")
    assert summary(outcome_of(ADD, conflict, tried())) == ("skipped", "already_member", 1, False)
    assert summary(outcome_of(ADD, conflict, tried(2, unknown=True))) == ("applied", None, 2, False)


def test_a_404_on_a_remove_needs_a_reread_unless_an_earlier_attempt_may_have_done_it() -> None:
    gone = error(NotFound, 404, "api/resource_not_found")
    assert outcome_of(REMOVE, gone, tried()) is Recheck.REMOVE_NOT_FOUND
    assert summary(outcome_of(REMOVE, gone, tried(3, unknown=True))) == ("applied", None, 3, False)


def test_a_remove_reread_tells_a_gone_chat_from_a_member_that_left() -> None:
    gone = error(NotFound, 404, "api/resource_not_found")
    deleted = after_recheck(REMOVE, Recheck.REMOVE_NOT_FOUND, gone, tried(), gone, OWNER)
    assert (deleted.status, deleted.reason, deleted.error) == (
        "failed",
        "chat_not_found",
        gone.info,
    )
    present = after_recheck(REMOVE, Recheck.REMOVE_NOT_FOUND, gone, tried(), state(OWNER), OWNER)
    assert (present.status, present.reason) == ("skipped", "not_member")


def test_a_refused_leave_is_decided_by_the_chats_participants() -> None:
    refused = error(PermissionDenied, 403, "provider/insufficient_permissions")
    assert outcome_of(LEAVE, refused, tried()) is Recheck.LEAVE_REFUSED

    def decide(reread: ChatState, attempts: Attempts | None = None) -> tuple[str, str | None]:
        attempts = attempts or tried()
        outcome = after_recheck(LEAVE, Recheck.LEAVE_REFUSED, refused, attempts, reread, OWNER)
        return outcome.status, outcome.reason

    assert decide(state("u2", readonly=True)) == ("skipped", "already_left")
    assert decide(state(OWNER, "u2", readonly=True)) == ("skipped", "read_only")
    assert decide(state(readonly=True, listed=False)) == ("skipped", "read_only")
    assert decide(state(OWNER, readonly=True), tried(2, unknown=True)) == ("applied", None)
    assert decide(state(OWNER, "u2")) == ("failed", "api_error")  # not read-only: it stands


def test_a_403_insufficient_permissions_on_a_write_fails_the_chat_unless_reads_get_it_too() -> None:
    forbidden = error(UnsupportedAccount, 403, "api/insufficient_permissions")
    assert outcome_of(ADD, forbidden, tried()) is Recheck.WRITE_FORBIDDEN
    chat_only = after_recheck(ADD, Recheck.WRITE_FORBIDDEN, forbidden, tried(), state(OWNER), OWNER)
    assert (chat_only.status, chat_only.reason) == ("failed", "api_error")
    assert chat_refused(chat_only)
    account = after_recheck(ADD, Recheck.WRITE_FORBIDDEN, forbidden, tried(), forbidden, OWNER)
    assert (account.status, account.reason) == ("failed", "unsupported_account")
    assert not chat_refused(account)


def test_account_stopping_errors_give_the_accounts_stop() -> None:
    limited = error(ProviderRateLimited, 429, "provider/too_many_requests")
    assert summary(outcome_of(ADD, limited, tried())) == (
        "deferred",
        "provider_rate_limited",
        1,
        False,
    )
    gone = error(AccountDisconnected, 401, "provider/invalid_credentials")
    assert summary(outcome_of(RENAME, gone, tried())) == ("failed", "account_auth", 1, False)
    wait = DeferAccount(RateLimited(retry_after=3600, status=429, type="api/too_many_requests"))
    assert summary(outcome_of(ADD, wait, tried())) == ("deferred", "rate_limited", 1, False)


def test_a_failure_after_an_unknown_outcome_is_in_doubt() -> None:
    broken = error(TransientError, 503, "api/proxy_error")
    assert summary(outcome_of(ADD, broken, tried(6, unknown=True))) == (
        "failed",
        "api_error",
        6,
        True,
    )
    rejected = error(RequestRejected, 422, "provider/unprocessable_entity")
    assert summary(outcome_of(ADD, rejected, tried())) == ("failed", "api_error", 1, False)


def test_in_effect_reads_each_action_from_the_chat() -> None:
    assert in_effect(ADD, state(OWNER, "u1"), OWNER)
    assert not in_effect(ADD, state(OWNER), OWNER)
    assert in_effect(REMOVE, state(OWNER), OWNER)
    assert not in_effect(REMOVE, state(OWNER, "u1"), OWNER)
    assert in_effect(RENAME, state(OWNER, name="New"), OWNER)
    assert not in_effect(RENAME, state(OWNER), OWNER)
    assert in_effect(LEAVE, state("u1", readonly=True), OWNER)
    assert not in_effect(LEAVE, state(OWNER, "u1", readonly=True), OWNER)  # read-only, not left
    assert in_effect(LEAVE, state(readonly=True, listed=False), OWNER)
    assert not in_effect(LEAVE, state(OWNER, "u1"), OWNER)


def test_members_of_a_read_only_chat_cannot_be_seen_so_adds_and_removes_count_as_done() -> None:
    left = state(readonly=True, listed=False)
    assert in_effect(ADD, left, OWNER) and in_effect(REMOVE, left, OWNER)
    not_a_group = ChatState(A, C, ChatInfo(C, "x", "1to1", False, False), (), members_listed=False)
    assert not in_effect(ADD, not_a_group, OWNER)
