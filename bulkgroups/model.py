"""Value types shared by every part of bulkgroups.

This module is a leaf: it imports nothing from the package, so the job loader, the planner, the
engine and the ledger can all agree on what an operation, an outcome and a plan are without
depending on one another. Everything here is immutable.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final, Literal, Protocol, get_args

__all__ = [
    "ACTIONS",
    "DEFAULT_MAX_MEMBERS",
    "PROFILE_PREFIX",
    "REASONS",
    "STATUSES",
    "WRITE_ACTIONS",
    "AccountInfo",
    "AccountSettings",
    "Action",
    "AddRemoveConflict",
    "ChatInfo",
    "ChatJob",
    "ChatPlan",
    "ChatState",
    "ErrorInfo",
    "Gate",
    "Job",
    "Operation",
    "Outcome",
    "OwnerList",
    "OwnerRuleViolation",
    "Participant",
    "Plan",
    "RateLimitHeaders",
    "RateSpec",
    "ReadFailure",
    "Reason",
    "RequestKind",
    "RequestTurn",
    "Resolution",
    "Status",
    "UserLines",
    "UserProfile",
    "is_profile",
    "op_digest",
    "op_id",
    "parse_rate",
    "profile_display",
    "profile_slug",
    "profile_user",
    "shard_of",
]

Action = Literal["add", "remove", "rename", "leave", "read"]
Status = Literal["applied", "skipped", "deferred", "failed"]
Reason = Literal[
    "already_member",
    "not_member",
    "same_name",
    "read_only",
    "already_left",
    "member_cap",
    "chat_not_found",
    "account_not_found",
    "not_group",
    "unresolved_user",
    "not_effective",
    "account_disconnected",
    "account_paused",
    "account_errored",
    "account_auth",
    "account_restricted",
    "unsupported_account",
    "provider_rate_limited",
    "rate_limited",
    "daily_limit",
    "api_error",
]
AccountStatus = Literal["running", "errored", "disconnected", "paused"]
ChatType = Literal["group", "1to1", "channel"]

# How a request counts against an account's limits: the core account GET is not rate-limited,
# every account-scoped request counts against `rate`, writes also against `write_rate`.
RequestKind = Literal["core", "read", "write"]

ACTIONS: tuple[Action, ...] = get_args(Action)
STATUSES: tuple[Status, ...] = get_args(Status)
REASONS: tuple[Reason, ...] = get_args(Reason)

WRITE_ACTIONS: frozenset[str] = frozenset({"add", "remove", "rename", "leave"})

# LinkedIn's cap on a group's participants (the owner counted); `max_members` defaults to it.
DEFAULT_MAX_MEMBERS = 50


@dataclass(frozen=True, slots=True)
class RateLimitHeaders:
    """What an answer's `X-RateLimit-Limit`, `-Remaining` and `-Reset` headers said (None where a
    header was absent or not a number); `reset` is in seconds from the answer."""

    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None


class RequestTurn(Protocol):
    """One request's passage through a gate: entered just before the request is sent, told what
    the answer's rate-limit headers said, left once the answer (or the failure) is in."""

    async def __aenter__(self) -> object: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None: ...

    def observe(self, status: int, headers: RateLimitHeaders | None) -> None:
        """The answer's HTTP status and its rate-limit headers (None when it carried none)."""


class Gate(Protocol):
    """The seam between the HTTP client and pacing: entered around every single HTTP request.

    The client knows nothing of rates; the run passes a gate that waits for the account's turn,
    takes a global in-flight slot and stamps the send time, learns from the answer's rate-limit
    headers (`RequestTurn.observe`), then releases the slot on exit.
    """

    def __call__(self, account: str, kind: RequestKind) -> RequestTurn: ...


# --------------------------------------------------------------------------------------------
# Operation identity
# --------------------------------------------------------------------------------------------

_SEP = "\x1f"  # unit separator: cannot occur in a valid id (control characters are rejected)


def op_digest(account: str, chat: str, action: str, subject: str | None) -> bytes:
    """The 16-byte identity of an operation; what resume keeps in memory for a million ops."""
    text = _SEP.join((account, chat, action, "" if subject is None else subject))
    return hashlib.sha256(text.encode("utf-8")).digest()[:16]


def op_id(account: str, chat: str, action: str, subject: str | None) -> str:
    """Stable id of (account, chat, action, user or name): the same change always has the same id.

    A rename's subject is the new name, so renaming to a different name is a different operation;
    a leave and a desired-state `read` have no subject.
    """
    return op_digest(account, chat, action, subject).hex()


def shard_of(account: str, shards: int) -> int:
    """The stable shard of an account: the same on every machine and Python version (`--shard`,
    and which accounts a ledger directory's `shard-I-of-N.jsonl` speaks for)."""
    return int.from_bytes(hashlib.sha256(account.encode("utf-8")).digest()[:8], "big") % shards


@dataclass(frozen=True, slots=True)
class Operation:
    """One change to one chat (or, for `read`, the reading of a desired-state chat)."""

    account: str
    chat: str
    action: Action
    user: str | None = None
    name: str | None = None

    @property
    def subject(self) -> str | None:
        return self.user if self.user is not None else self.name

    @property
    def op_id(self) -> str:
        return self.digest.hex()

    @property
    def digest(self) -> bytes:
        """Hashed on each use, not cached: a cached digest (49 bytes) on every operation of a
        million-operation apply held 50 MB once its intent was written; a hash costs well under
        a microsecond, next to hundreds per request."""
        return op_digest(self.account, self.chat, self.action, self.subject)

    @property
    def is_write(self) -> bool:
        return self.action in WRITE_ACTIONS


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """What the API (or the transport) said when an operation failed; `status` is None only for
    transport failures (`transport/timeout`, `reset`, `too_large`, `connect`, `dns`, `tls`)."""

    status: int | None
    type: str
    detail: str | None = None
    req_id: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "status": self.status,
            "type": self.type,
            "detail": self.detail,
            "req_id": self.req_id,
        }


@dataclass(frozen=True, slots=True)
class Outcome:
    """The final word on one operation in one run.

    `in_doubt`: some attempt's outcome was unknown (timeout, reset, 5xx) and the status is
    `failed` or `deferred`, so the write may have taken effect: the next run decides it from its
    fresh read. `recovered`: `applied` because the fresh read showed in effect a write that an
    earlier run had sent without recording its outcome (killed, or in doubt).
    """

    operation: Operation
    status: Status
    reason: Reason | None = None
    attempts: int = 0
    error: ErrorInfo | None = None
    in_doubt: bool = False
    recovered: bool = False


# --------------------------------------------------------------------------------------------
# Rates
# --------------------------------------------------------------------------------------------

# The one rate grammar of flags, job files and the simulator: `N/<unit>` or `N/<k><unit>`.
_UNITS = {"s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_MAX_RATE_COUNT = 10**9
_RATE_RE = re.compile(r"(\d+)/(\d+(?:\.\d+)?)?(s|min|h|d)")
_RATE_FORMS = "N/s, N/min, N/h, N/d or N/<k><unit> such as 20/10s"
# Spellings people reach for, and what to write instead (`2/100ms` is told `2/0.1s`).
_LOOKS_LIKE_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*([A-Za-z]+)\s*")
_UNIT_SPELLINGS = {
    **dict.fromkeys(("sec", "secs", "second", "seconds", "S"), "s"),
    **dict.fromkeys(("m", "mn", "mins", "minute", "minutes", "MIN", "Min"), "min"),
    **dict.fromkeys(("hr", "hrs", "hour", "hours", "H"), "h"),
    **dict.fromkeys(("day", "days", "D"), "d"),
}


@dataclass(frozen=True, slots=True)
class RateSpec:
    """At most `count` requests in any interval of `period` seconds."""

    count: int
    period: float

    def __post_init__(self) -> None:
        if self.count <= 0 or self.period <= 0:
            raise ValueError("a rate needs a positive count and a positive period")

    @property
    def interval(self) -> float:
        """The even spacing that fits the rate: period / count."""
        return self.period / self.count

    @property
    def per_second(self) -> float:
        return self.count / self.period

    def __str__(self) -> str:
        """The rate in the grammar `parse_rate` reads, in the largest unit that fits: `2/min`,
        `20/10s`, `3/2min`, `2/d`."""
        for unit in ("d", "h", "min"):
            multiple = self.period / _UNITS[unit]
            if multiple == int(multiple) and multiple >= 1:
                return (
                    f"{self.count}/{unit}" if multiple == 1 else f"{self.count}/{multiple:g}{unit}"
                )
        return f"{self.count}/s" if self.period == 1 else f"{self.count}/{self.period:g}s"


def parse_rate(text: str) -> RateSpec:
    """Parse a rate: `N/s`, `N/min`, `N/h`, `N/d`, or `N/<k><unit>` with the same units and a
    positive number k (`20/10s`, `3/2min`, `1/0.5s`); N is a whole number from 1 to 10**9.

    Nothing else, so that a rate means one thing everywhere: `2/sec`, `2/m`, `1/ms`, `2/minute`
    are refused with a hint naming the accepted forms. Raises ValueError with a message fit to
    show a user.
    """
    if not isinstance(text, str):
        raise ValueError(
            f"expected a rate such as 20/s, 2/min or 20/10s, got {type(text).__name__}"
        )
    match = _RATE_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"not a rate: {text[:80]!r} (expected {_RATE_FORMS}){_hint(text)}")
    count = int(match.group(1))
    multiplier = float(match.group(2)) if match.group(2) is not None else 1.0
    if count <= 0:
        raise ValueError(f"a rate needs N > 0: {text[:80]!r}")
    if count > _MAX_RATE_COUNT:  # the pacer keeps the last N send times
        raise ValueError(f"a rate's N must be at most {_MAX_RATE_COUNT:,}: {text[:80]!r}")
    if multiplier <= 0:
        raise ValueError(f"a rate needs a period > 0: {text[:80]!r}")
    return RateSpec(count, multiplier * _UNITS[match.group(3)])


def _hint(text: str) -> str:
    """`; did you mean 2/s?` for a rate written with another spelling of a unit."""
    match = _LOOKS_LIKE_RATE.fullmatch(text)
    if match is None:
        return ""
    count, multiple, unit = match.groups()
    if unit == "ms":
        seconds = float(multiple or 1) / 1000
        return f"; milliseconds are not a unit: did you mean {count}/{seconds:g}s?"
    spelled = unit if unit in _UNITS else _UNIT_SPELLINGS.get(unit)  # `2 / s`: the spaces
    return f"; did you mean {count}/{multiple or ''}{spelled}?" if spelled else ""


# --------------------------------------------------------------------------------------------
# Jobs
# --------------------------------------------------------------------------------------------

# A user is named in a job either by provider id (`ACoAA…`, as Unipile returns it) or by LinkedIn
# profile, kept in one canonical form `in:<slug>` (slug percent-decoded, lower case): one string a
# person whatever URL form the file used, so chats stay tuples of strings and the job's hash is
# stable. Turning a profile into a provider id is an account-scoped read, done by the engine.
PROFILE_PREFIX: Final = "in:"


def is_profile(user: str) -> bool:
    """True if `user` names a LinkedIn profile (`in:<slug>`) rather than a provider id."""
    return user.startswith(PROFILE_PREFIX)


def profile_slug(user: str) -> str:
    """The slug of a profile user (`in:ann-kim` -> `ann-kim`); ValueError for a provider id."""
    if not is_profile(user):
        raise ValueError(f"not a profile: {user[:80]!r}")
    return user[len(PROFILE_PREFIX) :]


def profile_user(slug: str) -> str:
    """The canonical user string of the profile with this (already canonical) slug."""
    return PROFILE_PREFIX + slug


def profile_display(user: str) -> str:
    """How a profile is shown to people (`linkedin.com/in/ann-kim`); a provider id unchanged."""
    return f"linkedin.com/in/{profile_slug(user)}" if is_profile(user) else user


@dataclass(frozen=True, slots=True)
class UserLines:
    """Where the users of one chat's `remove`, `members` and `protect` lists were written, so that
    the owner rule can be reported at `PATH:LINE: FIELD` without reading the file again.

    Each list is the line of every user, in list order, packed as native 4-byte unsigned ints
    (`array("I")` bytes: 4 bytes a user, immutable). `chat_field` is the chat's field path in a
    YAML file (`chats[3]`, users then at `chats[3].remove[0]`), None in a CSV file (users are in the
    column `user`). Not all lines are kept: `add` needs none (the owner rule does not look at it).
    """

    chat_field: str | None
    remove: bytes = b""
    members: bytes = b""
    protect: bytes = b""

    def line_of(self, which: OwnerList, index: int) -> int:
        """The line of the `index`-th user of list `which` (IndexError if there is none)."""
        packed: int = memoryview(getattr(self, which)).cast("I")[index]
        return packed

    def field_of(self, which: OwnerList, index: int) -> str:
        """The field an error about that user names: `chats[3].remove[0]`, or `user` in CSV."""
        if self.chat_field is None:
            return "user"
        return f"{self.chat_field}.{which}[{index}]"


@dataclass(frozen=True, slots=True)
class AccountSettings:
    """Per-account overrides from the job file; None means "take it from the flags"."""

    rate: RateSpec | None = None
    write_rate: RateSpec | None = None
    daily_limit: int | None = None
    max_members: int | None = None


@dataclass(frozen=True, slots=True)
class ChatJob:
    """What the job says about one chat of one account.

    Either an imperative diff (`add`/`remove`) or a desired member list (`members`, with `protect`),
    plus an optional rename and leave. `path`/`line` locate the chat's first mention for messages.
    """

    account: str
    chat: str
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    rename: str | None = None
    leave: bool = False
    members: tuple[str, ...] | None = None
    protect: tuple[str, ...] = ()
    path: str = ""
    line: int = 0
    # Where the owner rule's lists were written; not part of what the chat means.
    user_lines: UserLines | None = field(default=None, compare=False, repr=False)

    @property
    def is_desired_state(self) -> bool:
        return self.members is not None


@dataclass(frozen=True, slots=True)
class Job:
    """One job, possibly from several files; `sha256` hashes its canonical form."""

    chats: tuple[ChatJob, ...]
    accounts: Mapping[str, AccountSettings] = field(default_factory=dict)
    paths: tuple[str, ...] = ()
    sha256: str = ""

    def account_ids(self) -> tuple[str, ...]:
        """Accounts in order of first appearance."""
        return tuple(dict.fromkeys(c.account for c in self.chats))


# Where the account owner's own id may not appear: leaving is only via `leave`.
OwnerList = Literal["remove", "members", "protect"]


@dataclass(frozen=True, slots=True)
class OwnerRuleViolation:
    """The account owner's own id in one of a chat's `remove`, `members` or `protect` lists.

    A value, not a message: the engine finds these right after the account lookup (it needs the
    owner's id), and whoever loaded the job attaches file locations (`jobs.locate_owner_rule`).
    """

    account: str
    chat: str
    list: OwnerList
    user: str


@dataclass(frozen=True, slots=True)
class AddRemoveConflict:
    """A chat's `remove` entry and one of its `add` entries name the same person, seen only once
    profiles are resolved (an id and a profile URL, or two profiles): the job asks for both.
    `validate` refuses the same id (or profile) written in both; this is that rule, online.
    `user` is the remove entry as written, `added` the add entry, `user_id` whom both name."""

    account: str
    chat: str
    user: str
    added: str
    user_id: str
    list: Literal["remove"] = "remove"


# --------------------------------------------------------------------------------------------
# Observed state
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """The fields of `GET /v2/accounts/{id}` that bulkgroups uses."""

    account_id: str
    owner_id: str
    status: str
    provider: str = "linkedin"
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Participant:
    """One member of a chat as its participants page lists them; `public_identifier` is the slug
    of their profile URL when the page gives it (it tells who an unresolved profile may be)."""

    user_id: str
    display_name: str = ""
    is_self: bool = False
    is_admin: bool = False
    public_identifier: str | None = None


@dataclass(frozen=True, slots=True)
class ChatInfo:
    """The fields of `GET /v2/{account}/chats/{chat}` that bulkgroups uses."""

    chat_id: str
    name: str
    type: str
    is_group: bool
    is_readonly: bool
    participants_count: int | None = None


@dataclass(frozen=True, slots=True)
class UserProfile:
    """The fields of `GET /v2/{account}/users/{identifier}` that bulkgroups uses.

    `user_id` is the provider id (the API's `id`), what add and remove take; `public_identifier`
    is the slug of the profile URL (`linkedin.com/in/<slug>`), which people know them by.
    """

    user_id: str
    display_name: str = ""
    public_identifier: str | None = None
    profile_url: str | None = None
    first_name: str | None = None
    last_name: str | None = None


@dataclass(frozen=True, slots=True)
class Resolution:
    """A LinkedIn profile a job names (`in:<slug>`), as one account's users endpoint answered.

    `user_id` is the provider id it resolved to, what its operations and the ledger use; None
    when it was not resolved, and then `status` and `reason` are what its operations end as:
    `failed unresolved_user` for a profile the endpoint does not know (404), a read failure's
    outcome for anything else (`api_error`, an account's stop). `resolved_at` is the unix time of
    the lookup that resolved it (for a cached resolution, that of the original lookup).
    """

    account: str
    profile: str
    user_id: str | None = None
    display_name: str = ""
    resolved_at: float | None = None
    status: Status = "failed"
    reason: Reason | None = None
    error: ErrorInfo | None = None

    @property
    def resolved(self) -> bool:
        return self.user_id is not None


@dataclass(frozen=True, slots=True)
class ChatState:
    """A chat as read (fresh) before planning: its info and every participant, owner included.

    `members_listed` is False when the participants were not (or could not be) listed, e.g. for
    a chat that is not a group or a read-only chat: then `participants` says nothing.
    """

    account: str
    chat: str
    info: ChatInfo
    participants: tuple[Participant, ...]
    members_listed: bool = True

    def member_ids(self) -> frozenset[str]:
        return frozenset(p.user_id for p in self.participants)

    def digest(self) -> str:
        """What `apply --plan` compares to detect that the chat changed since the plan."""
        h = hashlib.sha256()
        h.update(
            _SEP.join(
                (
                    self.info.name,
                    self.info.type,
                    str(self.info.is_group),
                    str(self.info.is_readonly),
                )
            ).encode()
        )
        for user in sorted(self.member_ids()):
            h.update(b"\x1e" + user.encode())
        return h.hexdigest()


@dataclass(frozen=True, slots=True)
class ReadFailure:
    """Why a chat's state could not be read: every operation of the chat gets this outcome."""

    account: str
    chat: str
    status: Status
    reason: Reason
    error: ErrorInfo | None = None
    attempts: int = 1


# --------------------------------------------------------------------------------------------
# Plans
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChatPlan:
    """The planned changes of one chat, in contract order (rename, removes, adds, leave).

    `to_send` are the writes still needed; `decided` are operations whose outcome the plan already
    knows (skips, member cap, read failures); `in_place` counts members the job wants that are
    already there. `names` maps user ids to display names for humans, `profiles` the ids of
    users the job named by profile to that profile (`in:<slug>`). `recovered` are writes an
    earlier run sent without recording their outcome that the read shows in effect: the run
    records them `applied` (`recovered`), instead of whatever the plan would have said of them.
    `held` are members a desired-state chat would remove but keeps, because a profile the job
    lists could not be resolved and they may be that person.
    `unread`: the chat's state could not be read (its account stopped, the chat is gone, the read
    failed), so every operation carries why — not the same as a chat read and found wanting (not a
    group, over the member cap), which `plan` reports as a change it cannot make.
    `members_before` is how many members the read listed, the owner not counted (None: the
    participants were not listed), what `--max-removal-percent` measures removals against.
    """

    account: str
    chat: str
    to_send: tuple[Operation, ...] = ()
    decided: tuple[Outcome, ...] = ()
    in_place: int = 0
    names: Mapping[str, str] = field(default_factory=dict)
    state_digest: str | None = None
    chat_name: str | None = None
    recovered: tuple[Operation, ...] = ()
    profiles: Mapping[str, str] = field(default_factory=dict)
    held: tuple[str, ...] = ()
    unread: bool = False
    members_before: int | None = None

    @property
    def removals(self) -> int:
        return sum(1 for op in self.to_send if op.action == "remove")

    @property
    def has_changes(self) -> bool:
        # Refused operations (failed or deferred) and held removals count: the chat is not in the
        # state the job asks.
        return (
            bool(self.to_send)
            or bool(self.held)
            or any(o.status in ("failed", "deferred") for o in self.decided)
        )


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything a run will do, chat by chat.

    `owners` maps each account to its owner's user id (read at preflight; a leave removes it).
    `job` is the job the plan was computed from, when known (apply needs its account settings).
    `resolutions` are the job's profiles as each account resolved them (`apply --plan` refuses to
    send anything if one resolves differently now).
    """

    job_sha256: str
    chats: tuple[ChatPlan, ...]
    owners: Mapping[str, str] = field(default_factory=dict)
    job: Job | None = None
    resolutions: tuple[Resolution, ...] = ()

    def operations(self) -> Iterator[Operation]:
        for chat in self.chats:
            yield from chat.to_send

    def decided(self) -> Iterator[Outcome]:
        for chat in self.chats:
            yield from chat.decided

    @property
    def has_changes(self) -> bool:
        return any(chat.has_changes for chat in self.chats)

    @property
    def unread_chats(self) -> int:
        """Chats whose state could not be read: `plan` exits 3 when there are any."""
        return sum(1 for chat in self.chats if chat.unread)

    @property
    def removals(self) -> int:
        return sum(1 for op in self.operations() if op.action == "remove")
