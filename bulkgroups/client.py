"""The Unipile v2 HTTP client: requests, pagination and error mapping. Knows nothing of jobs.

    async with UnipileClient(base_url, api_key=key) as client:
        account = await client.get_account("acc_1")                  # always fresh
        chat = await client.get_chat("acc_1", "chat_1", fresh=True)
        members = [p async for p in client.participants(
            "acc_1", "chat_1", fresh=True, expected_count=chat.participants_count)]
        await client.add_participant("acc_1", "chat_1", "ACoAA1", gate=pacer.gate)

Every HTTP request goes through one private `_request()`, made entirely (send and read the body)
inside `gate(account, kind)`, so pacing sees exactly one entry per request. Failures come out as the
`errors.ApiError` tree: answers through `errors.error_from_response`; a 2xx read whose body lacks
what we need as `TransientError` of type `http/invalid_body`; a listing that cannot be trusted as
`PaginationError` (type `client/pagination`, see `paging`); no usable answer as `TransportError`:

- `transport/timeout`: no complete answer within the request's deadline (`request_timeout`, 60 s,
  over connect, headers and body; a server trickling its body byte by byte meets it), or no byte
  for `read_timeout` (30 s);
- `transport/too_large`: a 2xx body over `max_body_bytes` (4 MiB; a participants page is tens of
  KB). Bodies are read in chunks against the cap, Content-Length or not, compressed or not (gzip
  and deflate are inflated here, a step at a time: see `bodies`). Error bodies are read up to
  64 KiB (only their RFC 7807 fields matter); a 2xx write's body is not read at all (its status
  is the answer);
- `transport/reset`: the connection broke, or the answer was not HTTP;
- `Unreachable` (`transport/connect`, `transport/dns`, `transport/tls`): no connection at all,
  "cannot reach https://host:port: connection refused"; nothing was sent. Also
  `transport/redirect`: an answer 3xx, which Unipile never gives (redirects are not followed, the
  key would go along): the base URL leads elsewhere, and nothing reached the API.

Either limit ends the attempt; retrying it is the caller's (the retry policy).

Each request is logged on `bulkgroups.http` at DEBUG when that is enabled (`logs`): method, path,
status or failure type, `req_id`, latency, attempt, account; never the key, a header or a body.

The base URL may be an origin (`https://host[:port]`), the same ending in `/v2` (as Unipile's docs
write it), or a Unipile DSN `host:port` (https assumed); requests go to `{origin}/v2/...`, never
`/v2/v2/...`. Plain http is refused but to loopback. Any other path is refused, as the contract
says: a gateway's prefix is not supported, and Unipile's v1 base (`.../api/v1`, as its v1 docs
write it) would answer every request 404 (each account "not found") instead of saying what is
wrong.

The API key is sent only in the `X-API-KEY` header of each request. It is never put on the session,
in a URL, in a repr or in an exception: what a server says back is passed through `redact`, which
removes the key in every form a server may echo it.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import re
import socket
import ssl
import time
import zlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import aclosing
from types import TracebackType
from typing import Final, Literal, TypeVar
from urllib.parse import quote

import aiohttp
import orjson
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from .bodies import ACCEPT_ENCODING, UnsupportedEncoding, read_capped
from .errors import (
    ApiError,
    RequestRejected,
    TransientError,
    TransportError,
    Unreachable,
    UsageError,
    error_from_response,
)
from .logs import http_log, log_request
from .model import (
    AccountInfo,
    ChatInfo,
    Gate,
    Participant,
    RateLimitHeaders,
    RequestKind,
    RequestTurn,
    UserProfile,
)
from .paging import Listing, NextPage
from .redact import KeyRedactor
from .version import __version__

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_ITEMS",
    "MAX_PAGE_SIZE",
    "USER_AGENT",
    "UnipileClient",
    "check_proxy",
    "is_loopback",
    "quote_segment",
    "rate_limit_headers",
]

DEFAULT_BASE_URL: Final = "https://api.unipile.com"
# Unipile's (documented-by-decision) maximum `limit` of a listing; also the default page size.
MAX_PAGE_SIZE: Final = 100
DEFAULT_MAX_BODY_BYTES: Final = 4 * 1024 * 1024
# More distinct items than this in one listing is a server gone wrong (a group chat holds 50).
DEFAULT_MAX_ITEMS: Final = 10_000

_Method = Literal["GET", "POST", "PATCH", "DELETE"]
_T = TypeVar("_T")

_LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost."})
_INVALID_BODY: Final = "http/invalid_body"
# RFC 3986's unreserved characters: a segment made only of them is its own encoding.
_UNRESERVED: Final = re.compile(r"[A-Za-z0-9_.~-]+")
# URLs kept by a client (a few hundred bytes each): enough for every chat in flight at once.
_URL_CACHE_SIZE: Final = 2048
_MAX_ERROR_BODY: Final = 64 * 1024
# A Unipile DSN as the dashboard shows it: `api8.unipile.com:13851` (an origin without scheme).
_DSN: Final = re.compile(
    r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):[0-9]{1,5}(?:/.*)?$"
)
_BASE_URL_HINT: Final = (
    "give https://HOST[:PORT] (optionally ending in /v2) or a Unipile DSN HOST:PORT"
)
_CONNECT_REASONS: Final = {
    errno.ECONNREFUSED: "connection refused",
    errno.EHOSTUNREACH: "no route to host",
    errno.ENETUNREACH: "network unreachable",
    errno.ETIMEDOUT: "connection timed out",
    errno.ECONNRESET: "connection reset while connecting",
    errno.EADDRNOTAVAIL: "address not available",
}


USER_AGENT: Final = f"bulkgroups/{__version__}"


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
    if _UNRESERVED.fullmatch(value):
        return value  # nothing to encode (nearly every id): half the CPU of asking urllib
    # urllib's quoter with nothing safe leaves exactly RFC 3986's unreserved set (and caches
    # per-character results): the same output as a byte loop, a third of the CPU.
    return quote(value, safe="", encoding="utf-8", errors="strict")


def _check_base_url(base_url: str) -> str:
    """The base URL as requests are built from it: `scheme://host[:port]`, without a trailing
    `/` or `/v2`. Accepts an origin, the same ending in `/v2`, or a DSN `host:port`, and nothing
    else (CONTRACT: Connection; a gateway's path prefix is not supported); refuses plain http to
    anything but loopback."""
    if not isinstance(base_url, str):
        raise UsageError(f"the base URL must be a string; {_BASE_URL_HINT}")
    text = base_url.strip()
    url = _parse_base_url(text)
    host = url.host or ""
    if url.scheme == "http" and not is_loopback(host):
        raise UsageError(
            f"refusing plain http:// to {host!r}: the API key would travel in clear; "
            "use https:// (http is allowed only for 127.0.0.0/8, ::1 and localhost)"
        )
    _check_path(url, text)
    return str(url.origin())


def _parse_base_url(text: str) -> URL:
    """`text` as an http(s) URL with a host and nothing but a path besides (a DSN gets https)."""
    if "://" not in text:
        if not _DSN.match(text):
            raise UsageError(f"not an API origin or a Unipile DSN: {text[:80]!r}; {_BASE_URL_HINT}")
        text = "https://" + text  # a DSN: Unipile serves only https
    try:
        url = URL(text)
        host, _ = url.host, url.port  # yarl checks the port lazily
    except (ValueError, TypeError) as e:
        raise UsageError(f"not a URL: {text[:80]!r}; {_BASE_URL_HINT}") from e
    if url.scheme not in ("http", "https") or not host:
        raise UsageError(f"not an http(s) URL: {text[:80]!r}; {_BASE_URL_HINT}")
    if url.user is not None or url.password is not None or url.query_string or url.fragment:
        raise UsageError(
            f"the base URL must not carry credentials, a query or a fragment; {_BASE_URL_HINT}"
        )
    return url


def _check_path(url: URL, text: str) -> None:
    """The base URL's path may be nothing or `/v2` (CONTRACT: Connection): requests add `/v2`
    themselves, so `/v2/v2/...` never happens. Anything else is refused, Unipile's v1 base
    (`.../api/v1`, as its v1 docs write it) with its own hint: every request would be a 404 and
    each account "not found" instead of one clear error."""
    segments = [s for s in url.raw_path.split("/") if s]
    while segments and segments[-1].lower() == "v2":
        segments.pop()
    if any(s.lower() == "v1" for s in segments):
        raise UsageError(
            f"{text[:80]!r} is Unipile's v1 API; bulkgroups speaks v2, which lives at the same "
            f"host without the path; {_BASE_URL_HINT}"
        )
    if segments:
        raise UsageError(
            f"the base URL takes no path besides /v2, got {text[:80]!r}; {_BASE_URL_HINT}"
        )


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: where plain http and the sandbox may go."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_proxy(proxy: str | None, base_url: str) -> URL | None:
    """The proxy every request goes through: an http:// or https:// URL with a host (credentials
    in it are sent to the proxy alone, and never shown). A plain-http base URL (loopback only)
    may go through a proxy on loopback only: beyond it, the key would travel in clear."""
    if proxy is None:
        return None
    text = proxy.strip()
    if "://" not in text:
        text = "http://" + text  # `proxy.corp:3128`, as curl reads it
    try:
        url = URL(text)
        host, _ = url.host, url.port
    except (ValueError, TypeError, AttributeError):
        raise UsageError("the proxy is not a URL (http://HOST:PORT)") from None
    if url.scheme not in ("http", "https") or not host:
        raise UsageError(
            f"the proxy must be an http:// or https:// URL with a host, not {_proxy_shown(url)!r}"
        )
    if URL(base_url).scheme == "http" and not is_loopback(host):
        raise UsageError(
            f"refusing plain http:// requests through the proxy at {_proxy_shown(url)}: the API "
            "key would travel in clear beyond this machine"
        )
    return url


def _proxy_shown(url: URL) -> str:
    """A proxy URL as messages show it: scheme, host and port, never its credentials (nor, for
    a URL without a host, anything of it: what looks like its scheme may be a user name)."""
    if not url.host:
        return "…"
    return str(url.with_user(None).with_path("").with_query(None).with_fragment(None))


def _check_api_key(api_key: str) -> str:
    # aiohttp would echo a bad header value in its exception; refuse it here without showing it.
    if not isinstance(api_key, str) or not api_key:
        raise UsageError("an API key is required")
    if not api_key.isascii() or not api_key.isprintable() or api_key != api_key.strip():
        raise UsageError(
            "the API key contains whitespace, control or non-ASCII characters (not shown)"
        )
    return api_key


def _size(n: int) -> str:
    for unit, factor in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if n >= factor:
            return f"{n / factor:g} {unit}"
    return f"{n} bytes"


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


def _count(value: object) -> int | None:
    """A count the API gave: an int, or a float with an integral value (the SDK types counts as
    numbers); anything else is no count."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    return None


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
        # At least 1 when given (the SDK's model; the owner is in every group): a 0 is a
        # server's "unknown", and as a count every listing of the chat would exceed it.
        participants_count=_count(doc.get("participants_count")) or None,
    )


def _listed_chat(item: object) -> ChatInfo | None:
    if not isinstance(item, dict):
        return None
    chat_id = _str(item.get("id"))
    return _chat_info(item, chat_id) if chat_id else None


def _participant(item: object) -> Participant | None:
    # Once per member of every chat read: the checks of `_str` written out, no call each.
    if not isinstance(item, dict):
        return None
    user = item.get("user")
    if not isinstance(user, dict):
        return None
    user_id = user.get("id")
    if not user_id or not isinstance(user_id, str):
        return None
    name = user.get("display_name")
    slug = user.get("public_identifier")
    return Participant(
        user_id,
        name if isinstance(name, str) else "",
        item.get("is_self") is True,
        item.get("is_admin") is True,
        slug if slug and isinstance(slug, str) else None,
    )


def _user_profile(doc: Mapping[str, object], account_id: str, status: int) -> UserProfile:
    user_id = _str(doc.get("id"))
    if not user_id:
        # The provider id is what add and remove take: a profile without it resolves nothing.
        raise _invalid_body(status, "user: id is required", account_id)
    return UserProfile(
        user_id=user_id,
        display_name=_str(doc.get("display_name")) or "",
        public_identifier=_str(doc.get("public_identifier")) or None,
        profile_url=_str(doc.get("profile_url")) or None,
        first_name=_str(doc.get("first_name")) or None,
        last_name=_str(doc.get("last_name")) or None,
    )


def _next_cursor(page: Mapping[str, object], status: int, account: str, what: str) -> str | None:
    cursor = page.get("next_cursor")
    if cursor is None or cursor == "":
        return None
    if isinstance(cursor, str):
        return cursor
    if isinstance(cursor, int) and not isinstance(cursor, bool):
        return str(cursor)
    raise _invalid_body(status, f"{what}: next_cursor is not a string", account)


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


def _tls_reason(error: aiohttp.ClientSSLError) -> str:
    if isinstance(error, aiohttp.ClientConnectorCertificateError):
        cert = error.certificate_error
        if isinstance(cert, ssl.SSLCertVerificationError) and cert.verify_message:
            return f"certificate verify failed: {cert.verify_message}"
        return "certificate verify failed"
    os_error = error.os_error
    if isinstance(os_error, ssl.SSLError) and os_error.reason:
        return os_error.reason.lower().replace("_", " ")
    return os_error.strerror or type(os_error).__name__


class UnipileClient:
    """An async context manager owning one `aiohttp.ClientSession` to the Unipile v2 API.

    `concurrency` sizes the connection pool (pacing, via the gate, decides what is in flight).
    `request_timeout` bounds each request whole (connect, headers, body), `connect_timeout` its
    connection and `read_timeout` any silence; `max_body_bytes` caps a body. `page_size` is the
    `limit` asked of listings (1..100); `max_items` caps the distinct items of one listing.
    `proxy` (`http://[user:password@]host:port`) sends every request through an HTTP proxy, an
    https base URL through a CONNECT tunnel (the proxy sees the host, not the key); the library
    reads no environment variable for it (the CLI does: `HTTPS_PROXY`, `NO_PROXY`).
    Pass `session` to share one (tests); it must have no `base_url` and is not closed here; give
    it its own proxy (`proxy` with `session` is refused).
    """

    __slots__ = (
        "_api_key",
        "_base_url",
        "_concurrency",
        "_connect_timeout",
        "_headers",
        "_limit_refused",
        "_max_body",
        "_max_items",
        "_origin",
        "_owns_session",
        "_page_size",
        "_proxy",
        "_read_timeout",
        "_redactor",
        "_request_timeout",
        "_session",
        "_timeout",
        "_urls",
        "_via",
    )

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        api_key: str,
        concurrency: int = 64,
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
        request_timeout: float = 60.0,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        page_size: int = MAX_PAGE_SIZE,
        max_items: int = DEFAULT_MAX_ITEMS,
        session: aiohttp.ClientSession | None = None,
        proxy: str | None = None,
    ) -> None:
        if concurrency < 1:
            raise UsageError(f"concurrency must be at least 1, got {concurrency}")
        if min(connect_timeout, read_timeout, request_timeout) <= 0:
            raise UsageError("timeouts must be positive")
        if max_body_bytes < 1 or max_items < 1:
            raise UsageError("max_body_bytes and max_items must be at least 1")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise UsageError(f"the page size must be 1..{MAX_PAGE_SIZE}, got {page_size}")
        self._base_url = _check_base_url(base_url)
        self._origin = str(URL(self._base_url).origin())
        self._proxy = check_proxy(proxy, self._base_url)
        if self._proxy is not None and session is not None:
            raise UsageError("give the proxy to the session passed, not to the client")
        # Where failures to connect say they tried to go.
        self._via = "" if self._proxy is None else f" through the proxy {_proxy_shown(self._proxy)}"
        self._api_key = _check_api_key(api_key)
        self._redactor = KeyRedactor(self._api_key)
        self._concurrency = concurrency
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._request_timeout = request_timeout
        self._max_body = max_body_bytes
        self._max_items = max_items
        self._page_size = page_size
        # Listings whose first page was refused with our `limit` and accepted without it: for the
        # client's lifetime they are asked without one.
        self._limit_refused: set[str] = set()
        # `total` is aiohttp's deadline over the whole exchange: connect, send, headers and every
        # read of the body (the body is read inside `session.request`'s context).
        self._timeout = aiohttp.ClientTimeout(
            total=request_timeout, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._session = session
        self._owns_session = session is None
        # Every request's headers, by (fresh, with a JSON body): built once, never changed
        # (aiohttp copies them into each request). As multidicts: aiohttp would otherwise turn
        # a dict into one for every request before copying it.
        plain = {
            "X-API-KEY": self._api_key,
            "Accept": "application/json",
            "Accept-Encoding": ACCEPT_ENCODING,
        }
        self._headers: dict[tuple[bool, bool], CIMultiDictProxy[str]] = {}
        for fresh in (False, True):
            for body in (False, True):
                headers = dict(plain)
                if fresh:
                    headers["Cache-Control"] = "no-cache"
                if body:
                    headers["Content-Type"] = "application/json"
                self._headers[fresh, body] = CIMultiDictProxy(CIMultiDict(headers))
        self._urls: dict[tuple[object, ...], URL] = {}

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
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                # Names the tool in Unipile's logs, for its support (never anything secret).
                headers={"User-Agent": USER_AGENT},
                proxy=self._proxy,
            )
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
        """`GET /v2/accounts/{id}`: the owner's user id (for leave and the owner rule) and status.

        Always fresh (`Cache-Control: no-cache`): a cached `running` may hide a disconnection."""
        status, body = await self._request(
            "GET", account_id, ("accounts", account_id), kind="core", gate=gate, fresh=True
        )
        return _account_info(_object(body, status, account_id, "account"), account_id, status)

    async def get_chat(
        self, account_id: str, chat_id: str, *, fresh: bool = False, gate: Gate | None = None
    ) -> ChatInfo:
        """`GET /v2/{account}/chats/{chat}`: name, type, read-only flag and participants count
        (not membership: that is `participants`)."""
        status, body = await self._request(
            "GET", account_id, (account_id, "chats", chat_id), kind="read", gate=gate, fresh=fresh
        )
        return _chat_info(_object(body, status, account_id, "chat"), chat_id)

    async def get_user(
        self, account_id: str, identifier: str, *, fresh: bool = False, gate: Gate | None = None
    ) -> UserProfile:
        """`GET /v2/{account}/users/{identifier}`: the profile of a person named by the slug of
        their profile URL or by provider id (`me`: the account owner); 404 raises `NotFound`."""
        status, body = await self._request(
            "GET",
            account_id,
            (account_id, "users", identifier),
            kind="read",
            gate=gate,
            fresh=fresh,
        )
        return _user_profile(_object(body, status, account_id, "user"), account_id, status)

    async def participants(
        self,
        account_id: str,
        chat_id: str,
        *,
        fresh: bool = False,
        gate: Gate | None = None,
        page_size: int | None = None,
        expected_count: int | None = None,
    ) -> AsyncIterator[Participant]:
        """Every participant of a chat, each user once, page by page (see `paging.Listing`).

        Pass the chat's `participants_count` as `expected_count`: a listing ending with fewer is
        a failed read (`PaginationError`), as is one that loops. A short page is not the end
        (servers may return fewer than asked); only an absent, null or empty cursor is, unless
        a count says more exist (then the next page is asked by `offset`). Each page is one
        request through the gate; nothing is held across a `yield`.
        """
        listing = self._listing(
            f"participants of chat {chat_id}",
            "participants",
            account_id,
            (account_id, "chats", chat_id, "participants"),
            parse=_participant,
            identity=lambda p: p.user_id,
            expected_count=expected_count,
            query={},
            fresh=fresh,
            gate=gate,
            page_size=page_size,
        )
        async with aclosing(listing):  # a caller stopping early closes the listing at once
            async for page in listing:
                for participant in page:
                    yield participant

    async def chats(
        self,
        account_id: str,
        *,
        type: str | None = "group",
        fresh: bool = False,
        gate: Gate | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[ChatInfo]:
        """The account's chats of one `type` (`group`, `1to1`, `channel`; None: all), each once:
        `GET /v2/{account}/chats?type=...`, paged with the same safety as `participants`.

        The type is also checked here: a server that ignores the filter lists every chat."""
        listing = self._listing(
            "chats",
            "chats",
            account_id,
            (account_id, "chats"),
            parse=_listed_chat,
            identity=lambda c: c.chat_id,
            expected_count=None,
            query={} if type is None else {"type": type},
            fresh=fresh,
            gate=gate,
            page_size=page_size,
        )
        async with aclosing(listing):
            async for page in listing:
                for chat in page:
                    if type is None or chat.type == type:
                        yield chat

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
    # Listings
    # ----------------------------------------------------------------------------------------

    async def _listing(
        self,
        what: str,
        listing_kind: str,
        account_id: str,
        segments: tuple[str, ...],
        *,
        parse: Callable[[object], _T | None],
        identity: Callable[[_T], str],
        expected_count: int | None,
        query: Mapping[str, str],
        fresh: bool,
        gate: Gate | None,
        page_size: int | None,
    ) -> AsyncGenerator[list[_T], None]:
        """Each item of a paged listing once, a page at a time (the items not listed before), or
        a `PaginationError` when it cannot be trusted. By page rather than by item: one step of
        an async generator per page, not per member of every chat read."""
        if page_size is not None and page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size}")
        limit = str(min(page_size or self._page_size, MAX_PAGE_SIZE))
        listing = Listing(what, account_id, self._max_items, expected=expected_count)
        next_page: NextPage | None = NextPage()
        while next_page is not None:
            status, page = await self._page(
                what,
                listing_kind,
                account_id,
                segments,
                {**query, **next_page.query()},
                limit=limit,
                first=listing.pages == 0,
                fresh=fresh,
                gate=gate,
            )
            items = page.get("data")
            if not isinstance(items, list):
                raise _invalid_body(status, f"{what}: data is not a list", account_id)
            parsed: list[_T] = []
            for item in items:
                value = parse(item)
                if value is None:
                    # An item we cannot name would be re-added or never removed: do not guess.
                    raise _invalid_body(status, f"{what}: an item has no id", account_id)
                parsed.append(value)
            fresh_positions, next_page = listing.take(
                (identity(v) for v in parsed),
                total_count=_count(page.get("total_count")),
                next_cursor=_next_cursor(page, status, account_id, what),
                status=status,
            )
            yield [parsed[position] for position in fresh_positions]

    async def _page(
        self,
        what: str,
        listing_kind: str,
        account_id: str,
        segments: tuple[str, ...],
        query: Mapping[str, str],
        *,
        limit: str,
        first: bool,
        fresh: bool,
        gate: Gate | None,
    ) -> tuple[int, dict[str, object]]:
        """One page; a first page refused for its `limit` is asked once more without it."""
        with_limit = listing_kind not in self._limit_refused
        try:
            status, body = await self._request(
                "GET",
                account_id,
                segments,
                kind="read",
                gate=gate,
                fresh=fresh,
                query={**query, "limit": limit} if with_limit else query,
            )
        except RequestRejected as error:
            # v2 declares no maximum `limit`: a server refusing ours would fail every read.
            if not (first and with_limit and error.type == "api/invalid_parameters"):
                raise
            status, body = await self._request(
                "GET", account_id, segments, kind="read", gate=gate, fresh=fresh, query=query
            )
            self._limit_refused.add(listing_kind)
        return status, _object(body, status, account_id, what)

    # ----------------------------------------------------------------------------------------
    # The one place that speaks HTTP
    # ----------------------------------------------------------------------------------------

    def _url(self, segments: tuple[str, ...], query: Mapping[str, str] | None) -> URL:
        """The request's URL, built once per path and query: a chat's reads and adds, and every
        page of a listing asked the same way, share it. Kept in a bounded cache, emptied when
        full (a removal's URL, one per member, is seldom asked twice)."""
        key = (segments, tuple(query.items())) if query else segments
        url = self._urls.get(key)
        if url is None:
            url = self._build_url(segments, query)
            if len(self._urls) >= _URL_CACHE_SIZE:
                self._urls.clear()
            self._urls[key] = url
        return url

    def _build_url(self, segments: tuple[str, ...], query: Mapping[str, str] | None) -> URL:
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
        data: bytes | None = None
        if json is not None:
            data = orjson.dumps(json)
        headers = self._headers[fresh, json is not None]
        turn: RequestTurn = _UNGATED if gate is None else gate(account_id, kind)
        logged = http_log.isEnabledFor(logging.DEBUG)  # the only cost of the log when it is off
        async with turn:
            sent_at = time.monotonic() if logged else 0.0
            try:
                # The deadline starts once the gate lets the request go: waiting for the
                # account's turn is pacing, not the server's slowness.
                # No redirects: following one would carry the key to wherever it points.
                async with session.request(
                    method,
                    url,
                    headers=headers,
                    data=data,
                    timeout=self._timeout,
                    allow_redirects=False,
                    auto_decompress=False,  # inflated here, within the cap (see `bodies`)
                ) as response:
                    status = response.status
                    turn.observe(status, rate_limit_headers(response.headers))
                    req_id = response.headers.get("x-request-id") if logged else None
                    body, error_headers = await self._read_answer(
                        response, kind, method, url, account_id
                    )
            # `from None`: aiohttp's exceptions carry request info, headers (the key) included.
            except BaseException as error:
                transport = self._transport_error(error, method, url, account_id)
                if transport is None:
                    raise
                if logged:
                    self._log(method, url, account_id, None, transport.type, None, sent_at)
                raise transport from None
        if error_headers is not None:
            failure = self._error(status, body, error_headers, account_id)
            if logged:
                self._log(method, url, account_id, status, None, failure.req_id, sent_at)
            raise failure
        if logged:
            req_id = self._redactor.text(req_id) if req_id else None
            self._log(method, url, account_id, status, None, req_id, sent_at)
        return status, body

    def _log(
        self,
        method: str,
        url: URL,
        account_id: str,
        status: int | None,
        error: str | None,
        req_id: str | None,
        sent_at: float,
    ) -> None:
        log_request(
            method=method,
            # A cursor in the query is the server's text, sent back: scrubbed like any echo.
            path=self._redactor.text(url.raw_path_qs),
            account=account_id,
            status=status,
            error=error,
            req_id=req_id,
            seconds=time.monotonic() - sent_at,
        )

    async def _read_answer(
        self,
        response: aiohttp.ClientResponse,
        kind: RequestKind,
        method: str,
        url: URL,
        account_id: str,
    ) -> tuple[bytes, dict[str, str] | None]:
        """The body (and, for an error, the headers) of an answer, within the caps."""
        status = response.status
        if not 200 <= status < 300:
            # Only the RFC 7807 fields matter: the rest of a proxy's 50 MB page is left unread,
            # and a body that cannot be decoded leaves the status alone to speak.
            try:
                error_body, _ = await read_capped(response, _MAX_ERROR_BODY)
            except (UnsupportedEncoding, zlib.error):
                error_body = b""
            return error_body, dict(response.headers)
        length = response.content_length
        if kind == "write":
            # The status is the answer. A small body announced as sent is read all the same, so
            # that the connection can carry the next request; whatever becomes of that read
            # (a trickle meeting the deadline, a reset), the write was done.
            small = length is not None and length <= _MAX_ERROR_BODY
            if small and "Content-Encoding" not in response.headers:
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    await response.read()
            return b"", None
        if length is None or length <= self._max_body:
            if length is not None and "Content-Encoding" not in response.headers:
                # Announced within the cap, as sent: aiohttp reads exactly that much.
                return await response.read(), None
            # Chunked, or compressed (a small body may inflate a thousandfold): count what comes.
            try:
                body, over = await read_capped(response, self._max_body)
            except (UnsupportedEncoding, zlib.error) as error:
                raise _invalid_body(
                    status, f"the body cannot be decoded ({type(error).__name__})", account_id
                ) from None
            if not over:
                return body, None
        # Announced over the cap (not a byte of it is read), or past it as it came.
        raise TransportError(
            "too_large",
            detail=f"{self._where(method, url)}: the answer's body is over "
            f"{_size(self._max_body)} (the cap)",
            account=account_id,
        )

    def _where(self, method: str, url: URL) -> str:
        return f"{method} {self._origin}{url.raw_path}"[:200]

    def _transport_error(
        self, error: BaseException, method: str, url: URL, account_id: str
    ) -> TransportError | None:
        """The transport failure an exception of aiohttp (or of the deadline) means, or None for
        anything else (a bug, a cancellation, an error of ours), which propagates unchanged."""
        if isinstance(error, ApiError):
            return None
        if isinstance(error, aiohttp.ConnectionTimeoutError):
            # aiohttp reports the whole deadline passing while connecting the same way.
            waited = min(self._connect_timeout, self._request_timeout)
            return self._unreachable(
                "connect", f"connection timed out after {waited:g} s", account_id
            )
        where = self._where(method, url)
        if isinstance(error, aiohttp.ServerTimeoutError):
            detail = f"{where}: no data for {self._read_timeout:g} s"
            return TransportError("timeout", detail=detail, account=account_id)
        if isinstance(error, TimeoutError):
            detail = (
                f"{where}: no complete answer within {self._request_timeout:g} s "
                "(the request's deadline)"
            )
            return TransportError("timeout", detail=detail, account=account_id)
        if isinstance(error, aiohttp.ClientSSLError):
            return self._unreachable("tls", f"TLS: {_tls_reason(error)}", account_id)
        if isinstance(error, aiohttp.ClientHttpProxyError):
            # The proxy refused the tunnel (CONNECT): 407 wants credentials, 403 forbids the host.
            reason = f"the proxy answered {error.status} {error.message}"[:200]
            return self._unreachable("connect", reason, account_id)
        if isinstance(error, aiohttp.ClientConnectorError):
            os_error = error.os_error
            if isinstance(os_error, socket.gaierror):
                return self._unreachable("dns", f"name not resolved ({error.host})", account_id)
            reason = _CONNECT_REASONS.get(os_error.errno or -1) or (
                os_error.strerror or str(os_error) or type(os_error).__name__
            )
            return self._unreachable("connect", reason, account_id)
        if isinstance(error, aiohttp.ClientError | ConnectionError):
            detail = self._redactor.text(f"{where}: {type(error).__name__}: {error}")
            return TransportError("reset", detail=detail, account=account_id)
        return None

    def _unreachable(self, kind: str, reason: str, account_id: str) -> Unreachable:
        detail = self._redactor.text(f"cannot reach {self._origin}{self._via}: {reason}")
        return Unreachable(kind, base_url=self._origin, detail=detail, account=account_id)

    def _error(
        self, status: int, body: bytes, headers: Mapping[str, str], account_id: str
    ) -> ApiError:
        """The error an answer means, built from what the server said with the key removed."""
        redact = self._redactor.text
        if 300 <= status < 400:
            # Unipile answers no request with a redirect: the base URL leads somewhere else (a
            # web site, a moved host), as much a wrong address as one that cannot be reached.
            location = next((v for k, v in headers.items() if k.lower() == "location"), "")
            location = redact(location or "nowhere")[:200]
            return self._unreachable(
                "redirect",
                f"it redirects ({status}) to {location}, which is not followed (the API key "
                "would go along): check the base URL",
                account_id,
            )
        try:
            problem = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            problem = None
        # Only an RFC 7807 object's top-level strings are ever read (type, title, detail, req_id).
        fields = (
            {k: redact(v) for k, v in problem.items() if isinstance(v, str)}
            if isinstance(problem, dict)
            else {}
        )
        return error_from_response(
            status,
            orjson.dumps(fields) if fields else b"",
            {k: redact(v) for k, v in headers.items()},
            account=account_id,
        )
