"""The exception tree of bulkgroups, grouped by what the caller does next.

    BulkGroupsError                 root of everything raised on purpose; `exit_code` is the CLI's
    ├── UsageError                  bad flags or settings                      -> exit 1, nothing sent
    ├── JobFileError                one problem in a job file (path, line, field)
    ├── JobFileErrors               all problems found in the job files        -> exit 1, nothing sent
    ├── RunRefused                  lock held, stale plan, resume of another job, max-removals -> exit 1
    │   ├── OwnerRuleRefused        an account owner's own id in remove/members/protect (as values)
    │   └── ApiUnreachable          no account could be looked up: the API cannot be reached
    ├── LedgerCorrupt               a complete ledger line that is not a valid record (path, line)
    ├── LedgerUnwritable            the ledger could not be written or synced: sending stopped -> exit 4
    └── ApiError                    an answer (or no answer) from Unipile; carries status, type,
        │                           detail, req_id and account, never the API key
        ├── TransientError          5xx: retry with backoff; a write's outcome is unknown
        │   ├── TransportError      no answer: timeout, reset, a body over the cap (status None)
        │   │   └── Unreachable     no connection at all (connect, dns, tls, a redirect): nothing sent
        │   └── RateLimited         429 api/too_many_requests: pause the account for retry_after
        ├── PaginationError         a listing that cannot be trusted (loops, truncated): read failed
        ├── ProviderRateLimited     429 provider/too_many_requests: stop writing for the account
        ├── AuthError               the API key is wrong: stop the whole run
        ├── AccountError            stop this account only (reason says why)
        │   ├── AccountDisconnected     401 provider/*            -> account_auth
        │   ├── AccountRestricted       403 account_restricted / inactive_subscription
        │   └── UnsupportedAccount      403 api/insufficient_permissions (no group messaging)
        ├── NotFound                404: chat or user gone
        ├── Conflict                409: the member is already there
        ├── PermissionDenied        403 provider/insufficient_permissions (e.g. read-only chat)
        └── RequestRejected         400 / 422 / 501 and anything else: the operation failed

`error_from_response` builds the right class from a status, headers and a (possibly non-JSON)
body; nothing here matches on message text.

Control-flow signals the engine uses among its own parts (an account deferred, a request given up
at its turn) are not errors of the tree: they are private to the engine and its retry loop and
never reach a caller.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

from .model import AddRemoveConflict, ErrorInfo, OwnerRuleViolation, Reason

__all__ = [
    "AccountDisconnected",
    "AccountError",
    "AccountRestricted",
    "ApiError",
    "ApiUnreachable",
    "AuthError",
    "BulkGroupsError",
    "Conflict",
    "JobFileError",
    "JobFileErrors",
    "LedgerCorrupt",
    "LedgerUnwritable",
    "NotFound",
    "OwnerRuleRefused",
    "PaginationError",
    "PermissionDenied",
    "ProviderRateLimited",
    "RateLimited",
    "RequestRejected",
    "RunRefused",
    "TransientError",
    "TransportError",
    "Unreachable",
    "UnsupportedAccount",
    "UsageError",
    "error_from_response",
    "parse_retry_after",
    "plain_errors",
]


class BulkGroupsError(Exception):
    """Root of everything bulkgroups raises on purpose.

    `exit_code` is what `bulkgroups` exits with when this error ends a command: 1 ("nothing was
    sent that changes anything") for all but `LedgerUnwritable` (4).
    """

    exit_code: ClassVar[int] = 1


class UsageError(BulkGroupsError):
    """Bad command-line flags or settings; nothing was sent."""


class RunRefused(BulkGroupsError):
    """The run refuses to start (lock held, stale plan, another job's ledger, too many removals)."""


class ApiUnreachable(RunRefused):
    """No account could be looked up because no connection to the API could be made (refused,
    no such host, TLS): the base URL is wrong or the service is down. Nothing was sent.

    `error` is the lookup's last `Unreachable`; the message names the URL and the cause once,
    instead of one failure per account and chat.
    """

    def __init__(self, error: Unreachable) -> None:
        self.error = error
        cause = error.detail or f"cannot reach {error.base_url}"
        super().__init__(
            f"{cause}; no account could be looked up, so nothing was sent "
            "(check --base-url / UNIPILE_BASE_URL and the network)"
        )


class OwnerRuleRefused(RunRefused):
    """The account owner's own id is in a chat's `remove`, `members` or `protect` (leaving is only
    via `leave`); found right after the account lookup, before any account-scoped request. Also
    the rules of the job that only resolved profiles can show: a person both added and removed
    (`AddRemoveConflict`).

    `violations` are values: whoever loaded the job attaches file locations to them
    (`jobs.locate_owner_rule`), so nothing re-reads the job files mid-run.
    """

    def __init__(
        self,
        violations: Sequence[OwnerRuleViolation | AddRemoveConflict],
    ):
        self.violations = tuple(violations)
        shown = "; ".join(_broken_rule(v) for v in self.violations[:5])
        more = len(self.violations) - 5
        if more > 0:
            shown += f"; and {more} more"
        super().__init__(f"the job breaks its rules: {shown}; nothing was sent")


def _broken_rule(violation: OwnerRuleViolation | AddRemoveConflict) -> str:
    where = f"{violation.account}/{violation.chat}"
    if isinstance(violation, AddRemoveConflict):
        return (
            f"{where}: {violation.user} in remove and {violation.added} in add are the same "
            f"person ({violation.user_id})"
        )
    return (
        f"{where}: {violation.list} holds the account owner {violation.user} (the owner may not "
        "be in remove, members or protect; an owner leaves only via leave)"
    )


class LedgerCorrupt(BulkGroupsError):
    """A complete line of the ledger is not a valid record: the file was edited or damaged.

    A torn *last* line is expected after a kill -9 and never raises this.
    """

    def __init__(self, path: str, line: int, problem: str) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        super().__init__(f"{path}:{line}: {problem}")


class LedgerUnwritable(BulkGroupsError):
    """Writing or syncing the ledger failed (disk full, I/O error, the file truncated or replaced
    by another process): the run stopped sending at once. What was recorded before is intact."""

    exit_code: ClassVar[int] = 4

    def __init__(self, path: str, cause: str) -> None:
        self.path = path
        self.cause = cause
        super().__init__(
            f"the ledger {path} could not be written ({cause}); sending stopped at once; what "
            "was recorded before is intact; free the space (or fix the cause) and run again with "
            "--resume"
        )


class JobFileError(BulkGroupsError):
    """One problem in a job file, shown as `PATH:LINE: FIELD: message`, or `PATH: FIELD: message`
    when it concerns the whole file and no line (a missing file, a FIFO, an empty file)."""

    def __init__(self, path: str, line: int | None, field: str, message: str) -> None:
        self.path = path
        self.line = line
        self.field = field
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.field}: {self.message}"

    def __repr__(self) -> str:
        return f"JobFileError({str(self)!r})"


class JobFileErrors(BulkGroupsError):
    """Every problem found in the job files, reported at once."""

    def __init__(self, errors: list[JobFileError] | tuple[JobFileError, ...]) -> None:
        self.errors = tuple(errors)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


class ApiError(BulkGroupsError):
    """An error answer from the API, or a failure to get one.

    Built only from what the server said (RFC 7807 body) and the request's account: the API key is
    never part of it.
    """

    retryable: ClassVar[bool] = False
    # Reason recorded when this error stops a whole account (AccountError subclasses).
    account_reason: ClassVar[Reason | None] = None

    def __init__(
        self,
        *,
        status: int | None,
        type: str,
        title: str | None = None,
        detail: str | None = None,
        req_id: str | None = None,
        account: str | None = None,
    ) -> None:
        self.status = status
        self.type = type
        self.title = title
        self.detail = detail
        self.req_id = req_id
        self.account = account
        super().__init__(self._message())

    def _message(self) -> str:
        message = f"{self.status if self.status is not None else '-'} {self.type}"
        if self.detail:
            message += f": {self.detail[:300]}"
        if self.account:
            message += f" (account {self.account})"
        if self.req_id:
            message += f" (req_id {self.req_id})"
        return message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, type={self.type!r}, "
            f"detail={self.detail!r}, req_id={self.req_id!r}, account={self.account!r})"
        )

    @property
    def info(self) -> ErrorInfo:
        """The ledger's `error` object."""
        return ErrorInfo(status=self.status, type=self.type, detail=self.detail, req_id=self.req_id)


class TransientError(ApiError):
    """5xx and friends: worth retrying; for a write, whether it took effect is unknown."""

    retryable = True


class TransportError(TransientError):
    """No usable HTTP answer: `transport/timeout` (no complete answer within the request's
    deadline), `transport/reset` (the connection broke), `transport/too_large` (a body over the
    client's cap); `Unreachable` for no connection at all. The status is None."""

    def __init__(self, kind: str, *, detail: str | None = None, account: str | None = None) -> None:
        super().__init__(status=None, type=f"transport/{kind}", detail=detail, account=account)


class Unreachable(TransportError):
    """No connection to the API could be made (`transport/connect`, `transport/dns`,
    `transport/tls`), or the base URL redirects elsewhere (`transport/redirect`, never followed):
    nothing of the request reached the API, so a write did not happen.

    Retryable like any transport failure (a bounded retry is the caller's); when every account's
    lookup ends in this, the API itself is unreachable from here, not one request unlucky.
    `base_url` is where the client tried to go (the detail names it too).
    """

    def __init__(
        self,
        kind: str,
        *,
        base_url: str,
        detail: str | None = None,
        account: str | None = None,
    ) -> None:
        self.base_url = base_url
        super().__init__(kind, detail=detail, account=account)


class PaginationError(ApiError):
    """A listing that cannot be trusted, type `client/pagination`: the server repeated a cursor,
    sent a page that added no one while asking for more, needed more pages or items than its own
    count allows, or ended with fewer than the count it gave. The read failed: planning on it
    could add or remove the wrong people. Not retryable: a server that loops once loops again.
    """

    TYPE: ClassVar[str] = "client/pagination"

    def __init__(
        self, detail: str, *, status: int | None = None, account: str | None = None
    ) -> None:
        super().__init__(status=status, type=self.TYPE, detail=detail, account=account)


class RateLimited(TransientError):
    """429 api/too_many_requests: Unipile's limiter; wait `retry_after` seconds for the account."""

    def __init__(self, *, retry_after: float | None, **kw: Any) -> None:
        self.retry_after = retry_after
        super().__init__(**kw)


class ProviderRateLimited(ApiError):
    """429 provider/too_many_requests: LinkedIn's limiter; no reliable window, stop writing."""

    account_reason: ClassVar[Reason | None] = "provider_rate_limited"


class AuthError(ApiError):
    """The API key is missing, malformed or expired: nothing will work for any account."""


class AccountError(ApiError):
    """A problem with one account: stop that account, leave the others running."""

    account_reason: ClassVar[Reason | None] = "account_auth"


class AccountDisconnected(AccountError):
    """401 provider/*: the account must be re-authenticated by its owner."""

    account_reason: ClassVar[Reason | None] = "account_auth"


class AccountRestricted(AccountError):
    account_reason: ClassVar[Reason | None] = "account_restricted"


class UnsupportedAccount(AccountError):
    """The account's product (Recruiter, Sales Navigator, Company page) has no group messaging."""

    account_reason: ClassVar[Reason | None] = "unsupported_account"


class NotFound(ApiError):
    """404: the chat, or the member being removed, is not there."""


class Conflict(ApiError):
    """409: the member being added is already there."""


class PermissionDenied(ApiError):
    """403 on a write: no right to change this chat (e.g. it is read-only)."""


class RequestRejected(ApiError):
    """400, 422, 501 and any other error that retrying will not fix."""


_BY_TYPE: dict[str, type[ApiError]] = {
    "api/invalid_auth_format": AuthError,
    "api/missing_authorization": AuthError,
    "api/expired_authorization": AuthError,
    "api/invalid_authorization": AuthError,
    "provider/invalid_authorization": AccountDisconnected,
    "provider/invalid_credentials": AccountDisconnected,
    "api/account_restricted": AccountRestricted,
    "api/inactive_subscription": AccountRestricted,
    "api/insufficient_permissions": UnsupportedAccount,
    "provider/insufficient_permissions": PermissionDenied,
    "api/resource_not_found": NotFound,
    "provider/resource_not_found": NotFound,
    "api/conflict": Conflict,
    "provider/conflict": Conflict,
    "provider/too_many_requests": ProviderRateLimited,
    "api/too_many_requests": RateLimited,
    "api/invalid_parameters": RequestRejected,
    "provider/invalid_parameters": RequestRejected,
    "provider/unprocessable_entity": RequestRejected,
    "api/not_implemented": RequestRejected,
}


def _class_by_status(status: int, type_: str) -> type[ApiError]:
    if status == 429:
        return ProviderRateLimited if type_.startswith("provider/") else RateLimited
    if status == 401:
        return AccountDisconnected if type_.startswith("provider/") else AuthError
    if status == 403:
        if type_.startswith("provider/"):
            return PermissionDenied
        return AccountRestricted
    if status == 404:
        return NotFound
    if status == 409:
        return Conflict
    if status == 501:
        return RequestRejected
    if status >= 500 or status in (408, 425):
        return TransientError
    return RequestRejected


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After value: delta-seconds or an HTTP date. None if unusable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        import email.utils  # here, not at the top: every command would pay for it at start-up

        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return max(0.0, seconds)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def error_from_response(
    status: int,
    body: bytes,
    headers: Mapping[str, str] | None = None,
    *,
    account: str | None = None,
    now: float | None = None,
) -> ApiError:
    """The exception for an error response; the body may be RFC 7807 JSON, HTML, or empty."""
    # Header names are case-insensitive; callers may pass aiohttp's CIMultiDict or a plain dict.
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    problem: dict[str, object] = {}
    if body:
        import orjson  # here, like email.utils: `validate` never parses an answer

        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            problem = parsed
    type_ = _text(problem.get("type")) or f"http/{status}"
    cls = _BY_TYPE.get(type_) or _class_by_status(status, type_)
    fields: dict[str, Any] = {
        "status": status,
        "type": type_,
        "title": _text(problem.get("title")),
        "detail": _text(problem.get("detail")),
        "req_id": _text(problem.get("req_id")) or headers.get("x-request-id"),
        "account": account,
    }
    if cls is RateLimited:
        retry_after = parse_retry_after(headers.get("retry-after"), now=now)
        if retry_after is None:
            retry_after = parse_retry_after(headers.get("x-ratelimit-reset"), now=now)
        return RateLimited(retry_after=retry_after, **fields)
    return cls(**fields)


def _leaves(error: BaseException) -> Iterator[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            yield from _leaves(inner)
    else:
        yield error


@contextmanager
def plain_errors() -> Iterator[None]:
    """Task groups wrap errors in ExceptionGroups; callers should see the BulkGroupsError itself
    (an invalid key, a refused run), not a group of one. Anything else propagates unchanged."""
    try:
        yield
    except BaseExceptionGroup as group:
        leaves = list(_leaves(group))
        if leaves and all(isinstance(e, BulkGroupsError) for e in leaves):
            raise leaves[0] from group
        raise
