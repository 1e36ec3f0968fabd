"""The outcome table of CONTRACT.md for writes, as pure functions (no I/O, no clock).

`outcome_of` turns what a write's attempts ended with into the operation's outcome, or into a
`Recheck` when the answer is ambiguous and a fresh read of the chat decides (`after_recheck`).
`in_effect` says whether a chat's state shows an operation done: verification uses it after a
chat's writes, and the next run uses it on writes an earlier run sent without recording their
outcome. `stop_for` says which errors stop a whole account.

Decisions taken here where the contract is silent:

- A first remove answered 404 is ambiguous (the member left, or the chat is gone: both answer
  `resource_not_found`): the chat is re-read; gone → `failed chat_not_found`, else `skipped
  not_member`. A re-read that fails otherwise keeps `not_member`, what the 404 said.
- A leave refused (403, or 404) re-reads the chat, listing its participants: not read-only → the
  refusal stands (`api_error`, or `chat_not_found` for a 404); read-only after an attempt whose
  outcome was unknown → `applied`; read-only with the owner no longer listed → `skipped
  already_left`; read-only with the owner still there, or participants that cannot be listed →
  `skipped read_only` ("left" is claimed only when seen).
- 403 `api/insufficient_permissions` on a write re-reads the chat: if that read is refused the
  same way, the account's product has no group messaging (the account stops
  `unsupported_account`, as for reads); otherwise only this chat is off limits and its remaining
  operations fail `api_error` with that error (`chat_refused`).
- An add or remove on a chat that has become read-only cannot be seen (its members are not
  listed): it counts as in effect. After our own leave that is the truth (the write was accepted
  before it); for an earlier run's unrecorded write it is the best that can be known, and
  nothing more can be sent to that chat anyway.
"""

from __future__ import annotations

import enum

from ..attempts import Attempts, DeferAccount
from ..errors import (
    AccountError,
    ApiError,
    AuthError,
    Conflict,
    NotFound,
    PermissionDenied,
    ProviderRateLimited,
    UnsupportedAccount,
)
from ..model import ChatState, ErrorInfo, Operation, Outcome, Reason, Status
from .accounts import AccountStop

__all__ = [
    "PREFLIGHT_STOPS",
    "Recheck",
    "after_recheck",
    "chat_refused",
    "in_effect",
    "outcome_of",
    "stop_for",
]

_FORBIDDEN = "api/insufficient_permissions"

PREFLIGHT_STOPS: dict[str, AccountStop] = {
    "disconnected": AccountStop("failed", "account_disconnected"),
    "paused": AccountStop("failed", "account_paused"),
    "errored": AccountStop("deferred", "account_errored"),
}


def stop_for(error: ApiError) -> AccountStop | None:
    """The account-wide stop an error calls for, or None if it concerns one request only."""
    if isinstance(error, ProviderRateLimited):
        return AccountStop("deferred", "provider_rate_limited", error.info)
    if isinstance(error, AccountError) and error.account_reason is not None:
        return AccountStop("failed", error.account_reason, error.info)
    if isinstance(error, AuthError):
        return AccountStop("failed", "account_auth", error.info)
    return None


class Recheck(enum.Enum):
    """An answer a fresh read of the chat must decide (see the module docstring)."""

    REMOVE_NOT_FOUND = "remove_not_found"
    LEAVE_REFUSED = "leave_refused"
    WRITE_FORBIDDEN = "write_forbidden"


def _done(
    op: Operation,
    status: Status,
    reason: Reason | None,
    attempts: Attempts,
    error: ErrorInfo | None = None,
) -> Outcome:
    doubt = attempts.outcome_unknown and status in ("failed", "deferred")
    return Outcome(op, status, reason, attempts.count, error, in_doubt=doubt)


def outcome_of(
    operation: Operation, error: ApiError | DeferAccount | None, attempts: Attempts
) -> Outcome | Recheck:
    """The outcome of a write whose attempts ended with `error` (None: accepted).

    A 409 on an add or a 404 on a remove after an attempt whose outcome was unknown means that
    attempt took effect: `applied`. `in_doubt` marks a failed/deferred outcome after such an
    attempt. Errors that stop the whole account give the account's stop as the outcome.
    """
    if error is None:
        return _done(operation, "applied", None, attempts)
    if isinstance(error, DeferAccount):
        return _done(operation, "deferred", "rate_limited", attempts, error.error.info)
    action, unknown = operation.action, attempts.outcome_unknown
    if isinstance(error, Conflict) and action == "add":
        return _done(
            operation,
            "applied" if unknown else "skipped",
            None if unknown else "already_member",
            attempts,
        )
    if isinstance(error, NotFound):
        if action == "remove":
            return (
                _done(operation, "applied", None, attempts)
                if unknown
                else (Recheck.REMOVE_NOT_FOUND)
            )
        if action == "leave":
            return Recheck.LEAVE_REFUSED
        return _done(operation, "failed", "chat_not_found", attempts, error.info)
    if isinstance(error, PermissionDenied) and action == "leave":
        return Recheck.LEAVE_REFUSED
    if isinstance(error, UnsupportedAccount):  # 403 api/insufficient_permissions
        return Recheck.WRITE_FORBIDDEN
    stop = stop_for(error)
    if stop is not None:
        return _done(operation, stop.status, stop.reason, attempts, error.info)
    return _done(operation, "failed", "api_error", attempts, error.info)


def after_recheck(
    operation: Operation,
    recheck: Recheck,
    error: ApiError,
    attempts: Attempts,
    reread: ChatState | ApiError | None,
    owner: str | None,
) -> Outcome:
    """The outcome of a write answered `error`, once the chat's fresh re-read is in (`reread`:
    the state, the error the re-read ended with, or None if it could not be sent)."""
    if recheck is Recheck.REMOVE_NOT_FOUND:
        if isinstance(reread, NotFound):
            return _done(operation, "failed", "chat_not_found", attempts, reread.info)
        return _done(operation, "skipped", "not_member", attempts)
    if recheck is Recheck.WRITE_FORBIDDEN:
        if isinstance(reread, UnsupportedAccount):
            return _done(operation, "failed", "unsupported_account", attempts, reread.info)
        return _done(operation, "failed", "api_error", attempts, error.info)
    if isinstance(reread, ChatState) and reread.info.is_readonly:
        if attempts.outcome_unknown:
            return _done(operation, "applied", None, attempts)
        owners = _owners(reread, owner)
        left = reread.members_listed and not (reread.member_ids() & owners)
        return _done(operation, "skipped", "already_left" if left else "read_only", attempts)
    if isinstance(error, NotFound):
        return _done(operation, "failed", "chat_not_found", attempts, error.info)
    return _done(operation, "failed", "api_error", attempts, error.info)


def chat_refused(outcome: Outcome) -> bool:
    """A write refused for this chat alone (403 insufficient_permissions that the chat's read
    does not share): the chat's remaining operations fail the same way, unsent."""
    error = outcome.error
    return outcome.reason == "api_error" and error is not None and error.type == _FORBIDDEN


def _owners(state: ChatState, owner: str | None) -> set[str]:
    found = {p.user_id for p in state.participants if p.is_self}
    if owner is not None:
        found.add(owner)
    return found


def in_effect(operation: Operation, state: ChatState, owner: str | None) -> bool:
    """Whether the chat's state shows the operation done (see the module docstring for a chat
    that has become read-only)."""
    action = operation.action
    if action == "rename":
        return state.info.name == operation.name
    if action == "leave":
        if state.members_listed and state.info.is_readonly:
            return not (state.member_ids() & _owners(state, owner))
        return state.info.is_readonly
    if state.info.is_readonly:
        return action in ("add", "remove")
    if not state.members_listed:
        return False  # not a group: nothing to see, nothing was done
    if action == "add":
        return operation.user in state.member_ids()
    if action == "remove":
        return operation.user not in state.member_ids()
    return True
