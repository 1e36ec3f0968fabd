"""The simulator's core: one request in, one `Reply` out, under one lock; plus the inspection API.

The pipeline of an API request, in order (each step can answer and stop):

1. auth: `X-API-KEY` absent -> 401 `api/missing_authorization`; wrong -> 401
   `api/expired_authorization`. Not counted by any limit.
2. routing: an unknown path -> 404 `api/resource_not_found`; a known path with the wrong method ->
   405 `api/method_not_allowed`; an account that does not exist (`population.account_exists`) ->
   404 `api/resource_not_found`, the account GET included. Not counted.
3. cache (GETs without `Cache-Control: no-cache`, when `cache_age` > 0, the account GET
   included): a stored answer at most `cache_age` seconds old is returned with `X-Cache: HIT` and
   `Age`; hits count toward no limit and no violation.
4. the core `GET /v2/accounts/{id}`: answered (never rate-limited, never faulted).
5. limits: the request counts in the account's window(s) and strict counters; over a window ->
   429 `api/too_many_requests` with `Retry-After`.
6. account: status and product (`World.check_usable`).
7. LinkedIn's own limiter: writes beyond `provider_write_limit` -> 429 `provider/too_many_requests`
   without Retry-After.
8. faults (seeded dice, see `faults`), then the chat rules of `World`.

Every account-scoped answer (cache hits and errors included, resets excepted) carries
`x-ratelimit-limit`, `-remaining`, `-reset`; every answer carries `x-request-id`.
"""

from __future__ import annotations

import contextlib
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

import orjson

from bulkgroups.model import RateSpec, RequestKind, parse_rate
from bulkgroups.simulator.faults import (
    TRICKLE_INTERVAL,
    FaultDice,
    FaultKind,
    FaultSpec,
    parse_faults,
)
from bulkgroups.simulator.limits import AccountLimits
from bulkgroups.simulator.population import AccountStatus, Product, account_exists
from bulkgroups.simulator.replies import Problem, Reply, html_reply, json_reply, problem_reply
from bulkgroups.simulator.world import (
    CHAT_TYPES,
    DEFAULT_MEMBER_CAP,
    ChatType,
    ListingFault,
    World,
)

__all__ = [
    "DEFAULT_RATE",
    "LoggedRequest",
    "SimAccount",
    "SimChat",
    "SimConfig",
    "SimRequest",
    "Simulator",
    "Violations",
]

DEFAULT_RATE = RateSpec(20, 1.0)
_WRITE_METHODS = frozenset({"POST", "PATCH", "DELETE"})

Endpoint = Literal["account", "chats", "chat", "participants", "participant", "user"]
_METHODS: dict[Endpoint, frozenset[str]] = {
    "account": frozenset({"GET"}),
    "chats": frozenset({"GET"}),
    "chat": frozenset({"GET", "PATCH"}),
    "participants": frozenset({"GET", "POST"}),
    "participant": frozenset({"DELETE"}),
    "user": frozenset({"GET"}),
}
_LISTINGS: frozenset[Endpoint] = frozenset({"chats", "participants"})


@dataclass(frozen=True, slots=True, kw_only=True)
class SimConfig:
    """How a simulator behaves; per-account settings (`configure_account`) override the rates."""

    api_key: str | None = field(default=None, repr=False)  # None: a fresh random key
    rate: RateSpec = DEFAULT_RATE
    write_rate: RateSpec | None = None
    provider_write_limit: int | None = None
    cache_age: float = 0.0
    faults: FaultSpec = field(default_factory=FaultSpec)
    seed: int = 0
    member_cap: int = DEFAULT_MEMBER_CAP
    short_pages: bool = False  # pages of 1..limit items even when more exist (still correct)
    log_limit: int = 200_000  # oldest log entries are dropped beyond this
    trickle_interval: float = TRICKLE_INTERVAL  # seconds between bytes under the `trickle` fault


@dataclass(frozen=True, slots=True)
class SimRequest:
    """An HTTP request, decoded: `segments` are the percent-decoded path segments."""

    method: str
    segments: tuple[str, ...]
    path: str = ""
    query: Mapping[str, str] = field(default_factory=dict)
    api_key: str | None = None
    no_cache: bool = False
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    """One request as the simulator saw it. `at` is the monotonic arrival time; `status` is None
    when the connection was reset; `kind` is None for requests that reached no endpoint; `user`
    is the user of the path, or of the body of an add (POST participants); `query` its query
    parameters (the path has none)."""

    seq: int
    req_id: str
    at: float
    method: str
    path: str
    account: str | None
    chat: str | None
    user: str | None
    kind: RequestKind | None
    status: int | None
    fault: str | None = None
    cached: bool = False
    violation: bool = False
    error_type: str | None = None
    query: tuple[tuple[str, str], ...] = ()

    @property
    def is_write(self) -> bool:
        return self.kind == "write"

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "req_id": self.req_id,
            "at": self.at,
            "method": self.method,
            "path": self.path,
            "account": self.account,
            "chat": self.chat,
            "user": self.user,
            "kind": self.kind,
            "is_write": self.is_write,
            "status": self.status,
            "fault": self.fault,
            "cached": self.cached,
            "violation": self.violation,
            "error_type": self.error_type,
            "query": dict(self.query),
        }


@dataclass(frozen=True, slots=True)
class Violations:
    """Strict-rate violations of one account: of the general limit and of the write limit."""

    general: int = 0
    write: int = 0

    @property
    def total(self) -> int:
        return self.general + self.write


@dataclass(frozen=True, slots=True)
class SimChat:
    """A snapshot of a chat for tests; `members` in join order, owner included while present."""

    account: str
    chat: str
    name: str
    type: ChatType
    readonly: bool
    deleted: bool
    members: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SimAccount:
    account: str
    owner: str
    status: AccountStatus
    product: Product
    rate: RateSpec
    write_rate: RateSpec | None
    provider_write_limit: int | None
    latency: float


@dataclass(frozen=True, slots=True)
class _Route:
    endpoint: Endpoint
    account: str
    chat: str | None = None
    user: str | None = None


def _route(segments: tuple[str, ...]) -> _Route | None:
    if len(segments) < 3 or segments[0] != "v2" or any(not s for s in segments[1:]):
        return None
    match segments[1:]:
        case ("accounts", account):
            return _Route("account", account)
        case (account, "chats"):
            return _Route("chats", account)
        case (account, "users", identifier):
            return _Route("user", account, user=identifier)
        case (account, "chats", chat):
            return _Route("chat", account, chat)
        case (account, "chats", chat, "participants"):
            return _Route("participants", account, chat)
        case (account, "chats", chat, "participants", user):
            return _Route("participant", account, chat, user)
    return None


def _as_rate(value: RateSpec | str) -> RateSpec:
    return value if isinstance(value, RateSpec) else parse_rate(value)


_CacheKey = tuple[str, str | None, str]


class Simulator:
    """A Unipile v2 look-alike: thread-safe core shared by the HTTP app and the test thread."""

    def __init__(
        self, config: SimConfig | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config if config is not None else SimConfig()
        # A fixed prefix: a bare token_urlsafe may start with `-`, which a command line given
        # `--api-key KEY` would read as an option.
        self._api_key = self.config.api_key or "sk_sim_" + secrets.token_urlsafe(24)
        self._clock = clock
        self._lock = threading.Lock()
        self._world = World(member_cap=self.config.member_cap, short_pages=self.config.short_pages)
        self._limits: dict[str, AccountLimits] = {}
        self._violations: dict[str, Violations] = {}
        self._dice = FaultDice(self.config.faults, self.config.seed)
        self._cache: dict[_CacheKey, tuple[float, Reply]] = {}
        self._log: deque[LoggedRequest] = deque(maxlen=self.config.log_limit)
        self._seq = 0
        self._url: str | None = None

    def __repr__(self) -> str:  # never show the key
        return f"<Simulator url={self._url!r}>"

    # ---- identity --------------------------------------------------------------------------

    @property
    def api_key(self) -> str:
        return self._api_key

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT` while served by `run_in_thread` / `run_sandbox`."""
        if self._url is None:
            raise RuntimeError("the simulator is not being served")
        return self._url

    def served_at(self, url: str | None) -> None:
        """Where the runner serves this simulator (`simulator.runner`), None once it stopped:
        the server lives in the runner, the simulator only answers requests."""
        self._url = url

    # ---- the request pipeline ----------------------------------------------------------------

    def handle(self, request: SimRequest) -> Reply:
        """Answer one API request (see the module docstring for the order of the checks)."""
        with self._lock:
            now = self._clock()  # under the lock: log order and arrival order agree
            self._seq += 1
            req_id = f"req_sim{self._seq:08d}"
            entry = LoggedRequest(
                seq=self._seq,
                req_id=req_id,
                at=now,
                method=request.method,
                path=request.path,
                account=None,
                chat=None,
                user=None,
                kind=None,
                status=None,
                query=tuple(request.query.items()),
            )
            reply, entry = self._answer(request, now, req_id, entry)
            reply = reply.with_headers(("x-request-id", req_id))
            self._log.append(
                replace(
                    entry,
                    status=None if reply.reset else reply.status,
                    fault=reply.fault,
                    error_type=_error_type(reply),
                )
            )
            return reply

    def _answer(
        self, request: SimRequest, now: float, req_id: str, entry: LoggedRequest
    ) -> tuple[Reply, LoggedRequest]:
        if request.api_key is None or request.api_key == "":
            return problem_reply(
                401, "api/missing_authorization", "the X-API-KEY header is missing", req_id
            ), entry
        if not secrets.compare_digest(request.api_key.encode(), self._api_key.encode()):
            return problem_reply(
                401, "api/expired_authorization", "the API key is not valid", req_id
            ), entry
        route = _route(request.segments)
        if route is None:
            return problem_reply(404, "api/resource_not_found", "no such endpoint", req_id), entry
        if request.method not in _METHODS[route.endpoint]:
            allow = ", ".join(sorted(_METHODS[route.endpoint]))
            return problem_reply(
                405,
                "api/method_not_allowed",
                f"{request.method} is not allowed here",
                req_id,
                headers=(("Allow", allow),),
            ), entry
        is_write = request.method in _WRITE_METHODS
        kind: RequestKind = (
            "core" if route.endpoint == "account" else "write" if is_write else "read"
        )
        # An add names its user in the body, not the path: log it, so that the log tells who
        # was added (e.g. to count an add applied twice).
        user = route.user if route.user is not None else _body_user(request)
        entry = replace(entry, account=route.account, chat=route.chat, user=user, kind=kind)
        if not account_exists(route.account):
            # No account to count against: the limits, the cache and the faults never see it.
            return problem_reply(
                404, "api/resource_not_found", f"account {route.account!r} not found", req_id
            ), replace(entry, kind=None)
        account = self._world.account(route.account)
        latency = account.latency if account.latency is not None else self._dice.spec.latency
        reply, entry = self._answer_api(request, route, kind, now, req_id, entry)
        return replace(reply, delay=latency), entry

    def _answer_api(
        self,
        request: SimRequest,
        route: _Route,
        kind: RequestKind,
        now: float,
        req_id: str,
        entry: LoggedRequest,
    ) -> tuple[Reply, LoggedRequest]:
        cache_key: _CacheKey = (
            route.account,
            route.chat,
            request.path + "?" + "&".join(f"{k}={v}" for k, v in sorted(request.query.items())),
        )
        cacheable = request.method == "GET" and self.config.cache_age > 0
        limits = self._limits_of(route.account)
        if cacheable and not request.no_cache:
            stored = self._cache.get(cache_key)
            if stored is not None and now - stored[0] <= self.config.cache_age:
                hit = stored[1].with_headers(
                    ("X-Cache", "HIT"), ("Age", str(math.floor(now - stored[0])))
                )
                if kind != "core":
                    hit = hit.with_headers(*limits.peek(now, is_write=False).headers())
                return hit, replace(entry, cached=True)
        if kind == "core":
            reply = json_reply(self._world.account(route.account).as_json())
            if cacheable:
                self._cache[cache_key] = (now, reply)
                reply = reply.with_headers(("X-Cache", "MISS"))
            return reply, entry

        verdict = limits.arrive(now, is_write=kind == "write")
        if verdict.violation:
            seen = self._violations.get(route.account, Violations())
            self._violations[route.account] = Violations(
                seen.general + verdict.general_violation, seen.write + verdict.write_violation
            )
            entry = replace(entry, violation=True)
        rate_headers = verdict.state.headers()
        if verdict.state.exceeded:
            return problem_reply(
                429,
                "api/too_many_requests",
                "too many requests for this account: retry after the window resets",
                req_id,
                headers=(("Retry-After", verdict.state.retry_after), *rate_headers),
            ), entry
        try:
            reply = self._answer_account_scoped(request, route, kind, req_id, limits)
        except Problem as problem:
            reply = problem.reply(req_id)
        if cacheable and reply.status == 200 and reply.fault is None:
            self._cache[cache_key] = (now, reply)
            reply = reply.with_headers(("X-Cache", "MISS"))
        if kind == "write" and reply.fault != "ignored":
            self._invalidate(route.account, route.chat)
        if reply.reset:
            return reply, entry
        return reply.with_headers(*rate_headers), entry

    def _answer_account_scoped(
        self,
        request: SimRequest,
        route: _Route,
        kind: RequestKind,
        req_id: str,
        limits: AccountLimits,
    ) -> Reply:
        account = self._world.check_usable(route.account)
        if kind == "write":
            limit = (
                account.provider_write_limit
                if account.provider_write_limit is not None
                else self.config.provider_write_limit
            )
            limits.provider_writes += 1
            if limit is not None and limits.provider_writes > limit:
                raise Problem(
                    429,
                    "provider/too_many_requests",
                    "LinkedIn refused the action: too many requests, try again later",
                )
        fault = self._dice.roll(
            route.account,
            is_write=kind == "write",
            is_listing=route.endpoint in _LISTINGS and kind == "read",
        )
        if fault is None:
            return json_reply(self._dispatch(request, route, apply=True))
        if fault in ("fresh_cursor", "short_page"):
            return replace(json_reply(self._dispatch(request, route, listing=fault)), fault=fault)
        if fault in ("trickle", "huge_body"):
            return self._slow_or_endless(request, route, fault, req_id)
        if fault == "ignored":
            return replace(json_reply(self._dispatch(request, route, apply=False)), fault=fault)
        if fault not in ("applied500", "appliedreset"):
            return replace(_fault_reply(fault, req_id), fault=fault)
        with contextlib.suppress(Problem):  # whatever the rules answered, that answer is lost
            self._dispatch(request, route, apply=True)
        if fault == "applied500":
            return replace(_fault_reply("500", req_id), fault=fault)
        return Reply(0, reset=True, fault=fault)

    def _slow_or_endless(
        self, request: SimRequest, route: _Route, fault: FaultKind, req_id: str
    ) -> Reply:
        """The usual answer (a write takes effect), delivered a byte at a time or followed by a
        body that does not end."""
        try:
            reply = json_reply(self._dispatch(request, route, apply=True))
        except Problem as problem:
            reply = problem.reply(req_id)
        if fault == "trickle":
            return replace(reply, trickle=self.config.trickle_interval, fault=fault)
        return replace(reply, endless=True, fault=fault)

    def _dispatch(
        self,
        request: SimRequest,
        route: _Route,
        *,
        apply: bool = True,
        listing: ListingFault | None = None,
    ) -> dict[str, Any]:
        world = self._world
        method = request.method
        query = request.query
        if route.endpoint == "chats":
            return world.chats_page(
                route.account,
                type=query.get("type"),
                limit=query.get("limit"),
                cursor=query.get("cursor"),
                offset=query.get("offset"),
                fault=listing,
            )
        if route.endpoint == "user":
            assert route.user is not None
            return world.user_profile(route.account, route.user)
        assert route.chat is not None
        if route.endpoint == "chat" and method == "GET":
            return world.get_chat(route.account, route.chat)
        if route.endpoint == "participants" and method == "GET":
            return world.participants_page(
                route.account,
                route.chat,
                limit=query.get("limit"),
                cursor=query.get("cursor"),
                offset=query.get("offset"),
                fault=listing,
            )
        if route.endpoint == "participant":
            assert route.user is not None
            return world.remove(route.account, route.chat, route.user, apply=apply)
        payload = _json_object(request.body)
        if route.endpoint == "chat":
            return world.rename(route.account, route.chat, payload.get("name"), apply=apply)
        return world.add(route.account, route.chat, payload.get("user_id"), apply=apply)

    # ---- helpers -----------------------------------------------------------------------------

    def _limits_of(self, account: str) -> AccountLimits:
        limits = self._limits.get(account)
        if limits is None:
            record = self._world.account(account)
            limits = AccountLimits(
                record.rate or self.config.rate, record.write_rate or self.config.write_rate
            )
            self._limits[account] = limits
        return limits

    def _invalidate(self, account: str, chat: str | None) -> None:
        """A write drops its chat's answers and the account's chats listings (whose counts and
        dates it changed)."""
        for key in [
            k for k in self._cache if k[0] == account and (chat is None or k[1] in (chat, None))
        ]:
            del self._cache[key]

    # ---- inspection and configuration (thread-safe) ------------------------------------------

    def members(self, account: str, chat: str) -> frozenset[str]:
        """The chat's current participants (owner included while present)."""
        with self._lock:
            return self._world.members(account, chat)

    def chat(self, account: str, chat: str) -> SimChat:
        with self._lock:
            record = self._world.chat_record(account, chat)
            return SimChat(
                account=account,
                chat=chat,
                name=record.name,
                type=record.type,
                readonly=record.readonly,
                deleted=record.deleted,
                members=tuple(record.members),
            )

    def account(self, account: str) -> SimAccount:
        with self._lock:
            record = self._world.account(account)
            return SimAccount(
                account=account,
                owner=record.owner,
                status=record.status,
                product=record.product,
                rate=record.rate or self.config.rate,
                write_rate=record.write_rate or self.config.write_rate,
                provider_write_limit=(
                    record.provider_write_limit
                    if record.provider_write_limit is not None
                    else self.config.provider_write_limit
                ),
                latency=record.latency if record.latency is not None else self._dice.spec.latency,
            )

    def owner(self, account: str) -> str:
        return self.account(account).owner

    def chats(self, account: str) -> tuple[str, ...]:
        """The account's chat ids as its listing shows them (creation order, deleted left out):
        its starter chats from the start, then every chat used since."""
        with self._lock:
            return self._world.chat_ids(account)

    def register_people(self, *users: str) -> None:
        """Make people known (ids an add accepts) that have no provider id's shape, e.g. odd ids
        for encoding tests: `ACo...` ids and anyone ever in a chat are known already."""
        with self._lock:
            self._world.register_people(users)

    def requests(self, account: str | None = None) -> tuple[LoggedRequest, ...]:
        """The request log, oldest first (optionally one account's)."""
        with self._lock:
            return tuple(e for e in self._log if account is None or e.account == account)

    def timeline(self, account: str, *, writes_only: bool = False) -> tuple[float, ...]:
        """Arrival times of the account's requests that counted toward its limits."""
        return tuple(
            e.at
            for e in self.requests(account)
            if e.kind in ("read", "write")
            and not e.cached
            and (e.kind == "write" or not writes_only)
        )

    def violations(self, account: str | None = None) -> int:
        """Strict-rate violations (general + write), of one account or of all."""
        with self._lock:
            if account is not None:
                return self._violations.get(account, Violations()).total
            return sum(v.total for v in self._violations.values())

    def violations_by_account(self) -> dict[str, Violations]:
        with self._lock:
            return dict(self._violations)

    def reset_log(self) -> None:
        """Forget the request log and the violation counts (state and windows stay)."""
        with self._lock:
            self._log.clear()
            self._violations.clear()

    def configure_account(
        self,
        account: str,
        *,
        status: AccountStatus | None = None,
        product: Product | None = None,
        rate: RateSpec | str | None = None,
        write_rate: RateSpec | str | None = None,
        provider_write_limit: int | None = None,
        latency: float | None = None,
    ) -> None:
        """Override an account's settings; None leaves a setting as it is. Changing a rate
        starts the account's windows afresh (violations counted so far stay). Like a change made
        outside the API, it does not invalidate cached answers (`clear_cache`). A setting of the
        wrong type or out of range raises ValueError and changes nothing."""
        if provider_write_limit is not None and not _whole(provider_write_limit):
            raise ValueError("provider_write_limit must be a whole number >= 0")
        if latency is not None and not _seconds(latency):
            raise ValueError("latency must be a number of seconds >= 0")
        with self._lock:
            record = self._world.account(account)
            if status is not None:
                if status not in get_args(AccountStatus):
                    raise ValueError(f"unknown account status {status!r}")
                record.status = status
            if product is not None:
                if product not in get_args(Product):
                    raise ValueError(f"unknown product {product!r}")
                record.product = product
            if rate is not None:
                record.rate = _as_rate(rate)
            if write_rate is not None:
                record.write_rate = _as_rate(write_rate)
            if rate is not None or write_rate is not None:
                self._limits.pop(account, None)
            if provider_write_limit is not None:
                record.provider_write_limit = provider_write_limit
                self._limits_of(account).provider_writes = 0
            if latency is not None:
                record.latency = latency

    def configure_chat(
        self,
        account: str,
        chat: str,
        *,
        members: Iterable[str] | None = None,
        with_owner: bool = True,
        name: str | None = None,
        type: ChatType | None = None,
        readonly: bool | None = None,
        deleted: bool | None = None,
    ) -> None:
        """Set a chat's state. `members` is the full list; the owner is added to it unless
        `with_owner=False` (a chat the owner has left). None leaves a field as it is. Like a change
        made in the LinkedIn app, it does not invalidate cached answers (`clear_cache`). A setting
        of the wrong type raises ValueError and changes nothing."""
        if members is not None:
            if isinstance(members, str | bytes):
                raise ValueError("members must be a list of user ids, not one string")
            members = list(members)
            if not all(isinstance(m, str) and m for m in members):
                raise ValueError("members must be non-empty strings")
        if name is not None and not isinstance(name, str):
            raise ValueError("name must be a string")
        if type is not None and type not in CHAT_TYPES:
            raise ValueError(f"type must be one of {', '.join(CHAT_TYPES)}")
        for flag, value in (
            ("with_owner", with_owner),
            ("readonly", readonly),
            ("deleted", deleted),
        ):
            if value is not None and not isinstance(value, bool):
                raise ValueError(f"{flag} must be true or false")
        with self._lock:
            self._world.configure_chat(
                account,
                chat,
                members=members,
                with_owner=with_owner,
                name=name,
                type=type,
                readonly=readonly,
                deleted=deleted,
            )

    def clear_cache(self) -> None:
        """Forget every cached answer (configuration changes alone keep them, as out-of-band
        changes in LinkedIn would)."""
        with self._lock:
            self._cache.clear()

    def set_faults(self, faults: FaultSpec | str, *, seed: int | None = None) -> None:
        """Replace the fault spec; the dice start afresh from `seed` (default: the config's)."""
        spec = faults if isinstance(faults, FaultSpec) else parse_faults(faults)
        with self._lock:
            self._dice = FaultDice(spec, self.config.seed if seed is None else seed)


def _whole(value: object) -> bool:
    """A count as settings take it (JSON over HTTP gives anything): an int >= 0, not a bool."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _seconds(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def _body_user(request: SimRequest) -> str | None:
    """The `user_id` of an add's JSON body, if it has one (the log's `user` of a POST)."""
    if request.method != "POST" or not request.body:
        return None
    try:
        payload = orjson.loads(request.body)
    except orjson.JSONDecodeError:
        return None
    user = payload.get("user_id") if isinstance(payload, dict) else None
    return user if isinstance(user, str) else None


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        raise Problem(400, "api/invalid_parameters", "the body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise Problem(400, "api/invalid_parameters", "the body must be a JSON object")
    return payload


def _fault_reply(kind: str, req_id: str) -> Reply:
    if kind == "500":
        return problem_reply(500, "api/internal_error", "injected fault: internal error", req_id)
    if kind == "504":
        return problem_reply(504, "api/proxy_timeout", "injected fault: proxy timeout", req_id)
    if kind == "429":
        return problem_reply(
            429,
            "api/too_many_requests",
            "injected fault: too many requests",
            req_id,
            headers=(("Retry-After", "1"),),
        )
    if kind == "502":
        return html_reply(502, "502 Bad Gateway")
    if kind == "503":
        return Reply(503, b"", None)
    if kind == "reset":
        return Reply(0, reset=True)
    raise AssertionError(kind)


def _error_type(reply: Reply) -> str | None:
    if reply.status < 400 or reply.content_type != "application/json":
        return None
    try:
        payload = orjson.loads(reply.body)
    except orjson.JSONDecodeError:
        return None
    value = payload.get("type") if isinstance(payload, dict) else None
    return value if isinstance(value, str) else None
