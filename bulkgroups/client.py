"""The Unipile v2 HTTP client: requests, pagination and error mapping. Knows nothing of jobs.

    async with UnipileClient(base_url, api_key=key) as client:
        account = await client.get_account("acc_1")
        state = await client.read_chat("acc_1", "chat_1")          # fresh chat GET + every member
        await client.add_participant("acc_1", "chat_1", "ACoAA1", gate=pacer.gate)

Every HTTP request goes through one private `_request()`, made entirely (send and read the body)
inside `gate(account, kind)`, so pacing sees exactly one entry per request. Failures come out as the
`errors.ApiError` tree: answers through `errors.error_from_response`, timeouts as
`TransportError("timeout")`, broken connections as `TransportError("reset")`, a 2xx read whose
body lacks what we need as `TransientError` of type `http/invalid_body`, and a participants cursor
the server hands out twice as `PaginationError` (type `http/repeated_cursor`).

The API key is sent only in the `X-API-KEY` header of each request. It is never put on the session,
in a URL, in a repr or in an exception: server-supplied error text that echoes it is scrubbed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Final, Literal
from urllib.parse import quote

import aiohttp
import orjson
from yarl import URL

from .errors import PaginationError, TransientError, TransportError, UsageError, error_from_response
from .model import (
    AccountInfo,
    ChatInfo,
    ChatState,
    Gate,
    Participant,
    RateLimitHeaders,
    RequestKind,
    RequestTurn,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "MAX_PAGE_SIZE",
    "UnipileClient",
    "quote_segment",
    "rate_limit_headers",
]

DEFAULT_BASE_URL: Final = "https://api.unipile.com"
# Unipile's (documented-by-decision) maximum `limit` of the participants listing.
MAX_PAGE_SIZE: Final = 100

_Method = Literal["GET", "POST", "PATCH", "DELETE"]

_LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost."})
# Shorter keys are not worth garbling server messages for (every "k" of a one-letter key...).
_MIN_SCRUBBED_KEY: Final = 8
_INVALID_BODY: Final = "http/invalid_body"


def quote_segment(value: str) -> str:
    """`value` as one pre-encoded path segment (or query value).

    Everything outside RFC 3986 unreserved characters is percent-encoded from UTF-8, and the dot
    segments `.` and `..` are encoded too: yarl and servers would otherwise resolve them and a
    request meant for a member named `..` would hit the chat itself.
    """
    if not value:
        raise ValueError("an id in a URL path cannot be empty")
    if value in (".", ".."):
        return "%2E" * len(value)
    # urllib's quoter with nothing safe leaves exactly RFC 3986's unreserved set (and caches
    # per-character results): the same output as a byte loop, a third of the CPU.
    return quote(value, safe="", encoding="utf-8", errors="strict")


def _check_base_url(base_url: str) -> str:
    """The base URL without its trailing `/`; refuses plain http to anything but loopback."""
    base = base_url.rstrip("/")
    try:
        url = URL(base)
    except (ValueError, TypeError) as e:
        raise UsageError(f"not a URL: {base_url[:80]!r}") from e
    if url.scheme not in ("http", "https") or not url.host:
        raise UsageError(f"the base URL must be http(s)://HOST[:PORT][/PREFIX], got {base[:80]!r}")
    if url.user is not None or url.password is not None or url.query_string or url.fragment:
        raise UsageError("the base URL must not carry credentials, a query or a fragment")
    if url.scheme == "http" and not _is_loopback(url.host):
        raise UsageError(
            f"refusing plain http:// to {url.host!r}: the API key would travel in clear; "
            "use https:// (http is allowed only for 127.0.0.0/8, ::1 and localhost)"
        )
    # yarl's encoded form: a prefix such as `/my proxy` must reach the wire as `/my%20proxy`,
    # since request URLs are assembled from it already encoded.
    return str(url).rstrip("/")


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_api_key(api_key: str) -> str:
    # aiohttp would echo a bad header value in its exception; refuse it here without showing it.
    if not isinstance(api_key, str) or not api_key:
        raise UsageError("an API key is required")
    if not api_key.isascii() or not api_key.isprintable() or api_key != api_key.strip():
        raise UsageError(
            "the API key contains whitespace, control or non-ASCII characters (not shown)"
        )
    return api_key


def _invalid_body(status: int, detail: str, account: str) -> TransientError:
    return TransientError(status=status, type=_INVALID_BODY, detail=detail, account=account)


def _object(body: bytes, status: int, account: str, what: str) -> dict[str, object]:
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise _invalid_body(status, f"{what}: expected a JSON object", account)
    return parsed


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _bool(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _account_info(doc: Mapping[str, object], account_id: str, status: int) -> AccountInfo:
    owner = _str(doc.get("user_id"))
    state = _str(doc.get("status"))
    if not owner or not state:
        # Without the owner a leave cannot be planned, without the status preflight cannot decide.
        raise _invalid_body(status, "account: user_id and status are required", account_id)
    return AccountInfo(
        account_id=account_id,  # the id asked for is the one the run knows the account by
        owner_id=owner,
        status=state,
        provider=_str(doc.get("provider")) or "linkedin",
        name=_str(doc.get("name")),
    )


def _chat_info(doc: Mapping[str, object], chat_id: str) -> ChatInfo:
    is_group = _bool(doc.get("is_group"))
    type_ = _str(doc.get("type"))
    if type_ is None:
        # Infer from the flags so a drifting response does not turn a group into "not a group".
        flags = (("group", "is_group"), ("1to1", "is_1to1"), ("channel", "is_channel"))
        type_ = next((t for t, flag in flags if doc.get(flag) is True), "unknown")
    count = doc.get("participants_count")
    # v1 called it `read_only`; accept it when the v2 field is absent.
    readonly = _bool(doc.get("is_readonly"))
    if readonly is None:
        readonly = _bool(doc.get("read_only"))
    return ChatInfo(
        chat_id=chat_id,
        name=_str(doc.get("name")) or "",
        type=type_,
        is_group=is_group if is_group is not None else type_ == "group",
        is_readonly=bool(readonly),
        participants_count=count
        if isinstance(count, int) and not isinstance(count, bool)
        else None,
    )


def _participant(item: object) -> Participant | None:
    if not isinstance(item, dict):
        return None
    user = item.get("user")
    if not isinstance(user, dict):
        return None
    user_id = _str(user.get("id"))
    if not user_id:
        return None
    return Participant(
        user_id=user_id,
        display_name=_str(user.get("display_name")) or "",
        is_self=item.get("is_self") is True,
        is_admin=item.get("is_admin") is True,
    )


def _next_cursor(page: Mapping[str, object], status: int, account: str) -> str | None:
    cursor = page.get("next_cursor")
    if cursor is None or cursor == "":
        return None
    if isinstance(cursor, str):
        return cursor
    if isinstance(cursor, int) and not isinstance(cursor, bool):
        return str(cursor)
    raise _invalid_body(status, "participants: next_cursor is not a string", account)


class _Ungated:
    """The turn of a request sent without a gate: nothing waits, nothing is learnt."""

    __slots__ = ()

    async def __aenter__(self) -> _Ungated:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def observe(self, status: int, headers: RateLimitHeaders | None) -> None:
        return None


_UNGATED: Final = _Ungated()


def _header_int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        number = int(value.strip())
    except ValueError:
        return None
    return number if number >= 0 else None


def _header_seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if 0 <= number < float("inf") else None


def rate_limit_headers(headers: Mapping[str, str]) -> RateLimitHeaders | None:
    """The answer's `X-RateLimit-*` headers, or None when it carries none of them."""
    limit = headers.get("x-ratelimit-limit")
    remaining = headers.get("x-ratelimit-remaining")
    reset = headers.get("x-ratelimit-reset")
    if limit is None and remaining is None and reset is None:
        return None
    return RateLimitHeaders(
        limit=_header_int(limit), remaining=_header_int(remaining), reset=_header_seconds(reset)
    )


class UnipileClient:
    """An async context manager owning one `aiohttp.ClientSession` to the Unipile v2 API.

    `concurrency` sizes the connection pool (pacing, via the gate, decides what is in flight).
    Pass `session` to share one (tests, proxies); it must have no `base_url` and is not closed here.
    """

    __slots__ = ("_api_key", "_base_url", "_concurrency", "_owns_session", "_session", "_timeout")

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        api_key: str,
        concurrency: int = 64,
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        if concurrency < 1:
            raise UsageError(f"concurrency must be at least 1, got {concurrency}")
        if connect_timeout <= 0 or read_timeout <= 0:
            raise UsageError("timeouts must be positive")
        self._base_url = _check_base_url(base_url)
        self._api_key = _check_api_key(api_key)
        self._concurrency = concurrency
        # total=None: a large page on a slow link is fine as long as bytes keep coming.
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._session = session
        self._owns_session = session is None

    @property
    def base_url(self) -> str:
        return self._base_url

    def __repr__(self) -> str:
        return f"UnipileClient(base_url={self._base_url!r}, api_key='***')"

    async def __aenter__(self) -> UnipileClient:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._concurrency, limit_per_host=self._concurrency
            )
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
            # aiohttp silently resends a GET or DELETE once when a kept-alive connection breaks:
            # a second request behind the pacer's back (one stamp, two arrivals) and a write of
            # unknown outcome repeated outside the retry policy. Every resend must be ours.
            # (A private flag; aiohttp's own test_utils clears it the same way.)
            self._session._retry_connection = False
            self._owns_session = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._owns_session and self._session is not None:
            session, self._session = self._session, None
            await session.close()

    # ----------------------------------------------------------------------------------------
    # Endpoints
    # ----------------------------------------------------------------------------------------

    async def get_account(self, account_id: str, *, gate: Gate | None = None) -> AccountInfo:
        """`GET /v2/accounts/{id}`: the owner's user id (for leave and the owner rule) and status."""
        status, body = await self._request(
            "GET", account_id, ("accounts", account_id), kind="core", gate=gate
        )
        return _account_info(_object(body, status, account_id, "account"), account_id, status)

    async def get_chat(
        self, account_id: str, chat_id: str, *, fresh: bool = False, gate: Gate | None = None
    ) -> ChatInfo:
        """`GET /v2/{account}/chats/{chat}`: name, type and read-only flag (not membership)."""
        status, body = await self._request(
            "GET", account_id, (account_id, "chats", chat_id), kind="read", gate=gate, fresh=fresh
        )
        return _chat_info(_object(body, status, account_id, "chat"), chat_id)

    async def participants(
        self,
        account_id: str,
        chat_id: str,
        *,
        fresh: bool = False,
        gate: Gate | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> AsyncIterator[Participant]:
        """Every participant of a chat, each user once, following `next_cursor` to the end.

        A short page is not the end (servers may return fewer than asked); only an absent, null or
        empty cursor is. A cursor seen before raises `PaginationError` instead of looping. Each
        page is one request through the gate; nothing is held across a `yield`.
        """
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size}")
        limit = str(min(page_size, MAX_PAGE_SIZE))
        path = (account_id, "chats", chat_id, "participants")
        seen_users: set[str] = set()
        seen_cursors: set[str] = set()
        cursor: str | None = None
        while True:
            query = {"limit": limit} if cursor is None else {"cursor": cursor, "limit": limit}
            status, body = await self._request(
                "GET", account_id, path, kind="read", gate=gate, fresh=fresh, query=query
            )
            page = _object(body, status, account_id, "participants")
            items = page.get("data")
            if not isinstance(items, list):
                raise _invalid_body(status, "participants: data is not a list", account_id)
            for item in items:
                participant = _participant(item)
                if participant is None:
                    # A member we cannot name would be re-added or never removed: do not guess.
                    raise _invalid_body(status, "participants: an item has no user.id", account_id)
                if participant.user_id not in seen_users:
                    seen_users.add(participant.user_id)
                    yield participant
            cursor = _next_cursor(page, status, account_id)
            if cursor is None:
                return
            if cursor in seen_cursors:
                raise PaginationError(
                    status=status,
                    type="http/repeated_cursor",
                    detail=f"participants of chat {chat_id}: the server repeated a cursor",
                    account=account_id,
                )
            seen_cursors.add(cursor)

    async def read_chat(
        self, account_id: str, chat_id: str, *, fresh: bool = True, gate: Gate | None = None
    ) -> ChatState:
        """The chat and all its participants, fresh by default: this is what plans are made from.

        A chat that is not a group is returned without participants: listing them is a 400 there.
        """
        info = await self.get_chat(account_id, chat_id, fresh=fresh, gate=gate)
        if info.type != "group" or not info.is_group:
            return ChatState(account=account_id, chat=chat_id, info=info, participants=())
        members = [p async for p in self.participants(account_id, chat_id, fresh=fresh, gate=gate)]
        return ChatState(account=account_id, chat=chat_id, info=info, participants=tuple(members))

    async def add_participant(
        self, account_id: str, chat_id: str, user_id: str, *, gate: Gate | None = None
    ) -> None:
        """`POST .../participants {"user_id"}`; success is the status alone (verify by re-reading)."""
        await self._request(
            "POST",
            account_id,
            (account_id, "chats", chat_id, "participants"),
            kind="write",
            gate=gate,
            json={"user_id": user_id},
        )

    async def remove_participant(
        self, account_id: str, chat_id: str, user_id: str, *, gate: Gate | None = None
    ) -> None:
        """`DELETE .../participants/{user_id}`; with the owner's id this is a leave."""
        await self._request(
            "DELETE",
            account_id,
            (account_id, "chats", chat_id, "participants", user_id),
            kind="write",
            gate=gate,
        )

    async def rename_chat(
        self, account_id: str, chat_id: str, name: str, *, gate: Gate | None = None
    ) -> None:
        """`PATCH /v2/{account}/chats/{chat} {"name"}`."""
        await self._request(
            "PATCH",
            account_id,
            (account_id, "chats", chat_id),
            kind="write",
            gate=gate,
            json={"name": name},
        )

    # ----------------------------------------------------------------------------------------
    # The one place that speaks HTTP
    # ----------------------------------------------------------------------------------------

    def _url(self, segments: tuple[str, ...], query: Mapping[str, str] | None) -> URL:
        text = self._base_url + "/v2/" + "/".join(quote_segment(s) for s in segments)
        if query:
            text += "?" + "&".join(f"{k}={quote_segment(v)}" for k, v in query.items())
        # encoded=True: yarl must neither re-quote our escapes nor resolve %2E%2E segments.
        return URL(text, encoded=True)

    async def _request(
        self,
        method: _Method,
        account_id: str,
        segments: tuple[str, ...],
        *,
        kind: RequestKind,
        gate: Gate | None,
        fresh: bool = False,
        query: Mapping[str, str] | None = None,
        json: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """Send one request inside the gate; the 2xx status and body, or an `ApiError`."""
        session = self._session
        if session is None:
            raise RuntimeError("UnipileClient is used outside `async with`")
        url = self._url(segments, query)
        headers = {"X-API-KEY": self._api_key, "Accept": "application/json"}
        if fresh:
            headers["Cache-Control"] = "no-cache"
        data: bytes | None = None
        if json is not None:
            data = orjson.dumps(json)
            headers["Content-Type"] = "application/json"
        turn: RequestTurn = _UNGATED if gate is None else gate(account_id, kind)
        async with turn:
            try:
                # No redirects: following one would carry the key to wherever it points.
                async with session.request(
                    method,
                    url,
                    headers=headers,
                    data=data,
                    timeout=self._timeout,
                    allow_redirects=False,
                ) as response:
                    status = response.status
                    body = await response.read()
                    turn.observe(status, rate_limit_headers(response.headers))
                    # Only an error needs the headers (Retry-After, x-request-id).
                    response_headers = {} if 200 <= status < 300 else dict(response.headers)
            # `from None`: aiohttp's exceptions carry request info, headers (the key) included.
            except TimeoutError as e:
                raise TransportError(
                    "timeout",
                    detail=self._scrub(f"{method} {type(e).__name__}"),
                    account=account_id,
                ) from None
            except (aiohttp.ClientError, ConnectionError) as e:
                raise TransportError(
                    "reset",
                    detail=self._scrub(f"{method} {type(e).__name__}: {e}"),
                    account=account_id,
                ) from None
        if not 200 <= status < 300:
            raise error_from_response(
                status,
                self._scrub_bytes(body),
                {k: self._scrub(v) for k, v in response_headers.items()},
                account=account_id,
            )
        return status, body

    def _scrub(self, text: str) -> str:
        if len(self._api_key) < _MIN_SCRUBBED_KEY:
            return text
        return text.replace(self._api_key, "***")

    def _scrub_bytes(self, body: bytes) -> bytes:
        """An error body with the key removed, should a server or proxy echo it back."""
        if len(self._api_key) < _MIN_SCRUBBED_KEY:
            return body
        key = self._api_key.encode()
        # Inside a JSON string the key may also appear escaped (`"`, `\\`, or `/` as `\\/`).
        for form in (key, orjson.dumps(self._api_key)[1:-1], key.replace(b"/", b"\\/")):
            body = body.replace(form, b"***")
        return body
