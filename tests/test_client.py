"""UnipileClient over real sockets, against small aiohttp apps on 127.0.0.1.

These apps play a Unipile whose behaviour each test chooses (short pages, repeated cursors, HTML
502s, hanging bodies); the simulator-backed tests live in test_client_sim.py.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import logging
import socket
import string
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given
from hypothesis import strategies as st

from bulkgroups import __version__
from bulkgroups import client as client_module
from bulkgroups.client import UnipileClient, quote_segment
from bulkgroups.errors import (
    AccountDisconnected,
    ApiError,
    AuthError,
    BulkGroupsError,
    Conflict,
    NotFound,
    PaginationError,
    PermissionDenied,
    ProviderRateLimited,
    RateLimited,
    RequestRejected,
    TransientError,
    TransportError,
    Unreachable,
    UnsupportedAccount,
    UsageError,
)
from bulkgroups.model import AccountInfo, ChatInfo, Participant, RateLimitHeaders, RequestKind

KEY = "sk-test-ZEBRA-4f7c1e9a0b2d-KEEP-SECRET"

Reply = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    method: str
    raw_path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeUnipile:
    """An HTTP server whose answer each test sets; it records every request it receives."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    reply: Reply | None = None
    during_request: Callable[[], None] | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(
            Seen(
                method=request.method,
                raw_path=request.raw_path,
                query=dict(request.query),
                headers=dict(request.headers),
                body=await request.read(),
            )
        )
        if self.during_request is not None:
            self.during_request()
        if self.reply is None:
            return web.json_response({})
        return await self.reply(request)

    def answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        async def reply(request: web.Request) -> web.StreamResponse:
            return web.Response(status=status, body=body, headers=headers)

        self.reply = reply

    def answer_json(self, doc: object, status: int = 200) -> None:
        self.answer(status, orjson.dumps(doc), {"Content-Type": "application/json"})


@pytest.fixture
async def api() -> AsyncIterator[FakeUnipile]:
    fake = FakeUnipile()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    async with TestServer(app, host="127.0.0.1") as server:
        fake.url = str(server.make_url(""))
        yield fake


@pytest.fixture
async def client(api: FakeUnipile) -> AsyncIterator[UnipileClient]:
    async with UnipileClient(api.url, api_key=KEY, read_timeout=5.0) as c:
        yield c


def participant(user_id: str, **extra: object) -> dict[str, object]:
    return {
        "object": "GroupParticipant",
        "user": {
            "object": "User",
            "id": user_id,
            "type": "individual",
            "display_name": f"Name {user_id}",
        },
        "is_self": False,
        "is_admin": False,
        **extra,
    }


# ---------------------------------------------------------------------------------------------
# Construction: base URL, http refusal, repr
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "base_url",
    [
        "http://example.com",
        "http://api.unipile.com",
        "http://10.0.0.1:8080",
        "http://192.168.1.10",
        "http://[2001:db8::1]",
        "http://localhost.example.com",
        "http://127.0.0.1.nip.io",
    ],
)
def test_plain_http_to_a_non_loopback_host_is_refused(base_url: str) -> None:
    with pytest.raises(UsageError, match="http") as raised:
        UnipileClient(base_url, api_key=KEY)
    assert KEY not in str(raised.value)


@pytest.mark.parametrize(
    ("base_url", "normalised"),
    [
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765"),
        ("http://127.0.0.2", "http://127.0.0.2"),
        ("http://127.255.255.254:1", "http://127.255.255.254:1"),
        ("http://localhost:8080/", "http://localhost:8080"),
        ("http://LOCALHOST", "http://localhost"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("https://api.unipile.com", "https://api.unipile.com"),
        ("https://api12.unipile.com:14567/", "https://api12.unipile.com:14567"),
    ],
)
def test_https_anywhere_and_http_to_loopback_are_accepted(base_url: str, normalised: str) -> None:
    assert UnipileClient(base_url, api_key=KEY).base_url == normalised


@pytest.mark.parametrize(
    "base_url",
    ["ftp://127.0.0.1", "api.unipile.com", "", "https://", "https://u:p@api.unipile.com"],
)
def test_a_base_url_that_is_not_http_s_is_refused(base_url: str) -> None:
    with pytest.raises(UsageError):
        UnipileClient(base_url, api_key=KEY)


def test_the_default_base_url_is_unipile_over_https() -> None:
    assert UnipileClient(api_key=KEY).base_url == "https://api.unipile.com"


@pytest.mark.parametrize("api_key", ["", " padded ", "line\nbreak", "caf\u00e9"])
def test_an_unusable_key_is_refused_without_showing_it(api_key: str) -> None:
    with pytest.raises(UsageError) as raised:
        UnipileClient("https://api.unipile.com", api_key=api_key)
    if api_key.strip():
        assert api_key.strip() not in str(raised.value)


def test_repr_shows_the_base_url_and_never_the_key() -> None:
    c = UnipileClient("https://api.unipile.com/", api_key=KEY)
    assert repr(c) == "UnipileClient(base_url='https://api.unipile.com', api_key='***')"
    assert KEY not in str(c)
    assert not hasattr(c, "__dict__")  # slotted: no stray attribute can hold a copy


def test_using_the_client_outside_async_with_is_a_bug() -> None:
    c = UnipileClient("https://api.unipile.com", api_key=KEY)
    with pytest.raises(RuntimeError, match="async with"):
        asyncio.run(c.get_account("acc_1"))


# ---------------------------------------------------------------------------------------------
# Requests: URL, headers, bodies, freshness
# ---------------------------------------------------------------------------------------------


async def test_every_request_sends_the_key_and_accepts_json(
    api: FakeUnipile, client: UnipileClient
) -> None:
    api.answer_json({"object": "Chat", "id": "chat_1", "type": "group"})
    await client.get_chat("acc_1", "chat_1")
    [seen] = api.seen
    assert (seen.method, seen.raw_path) == ("GET", "/v2/acc_1/chats/chat_1")
    assert seen.headers["X-API-KEY"] == KEY
    assert seen.headers["Accept"] == "application/json"
    assert "Cache-Control" not in seen.headers


async def test_the_account_lookup_is_always_fresh(api: FakeUnipile, client: UnipileClient) -> None:
    # A cached `running` could hide an account disconnected since: the lookup decides everything.
    api.answer_json({"user_id": "ACoOwner", "status": "running"})
    await client.get_account("acc_1")
    [seen] = api.seen
    assert (seen.raw_path, seen.headers["Cache-Control"]) == ("/v2/accounts/acc_1", "no-cache")


async def test_fresh_reads_send_cache_control_no_cache(
    api: FakeUnipile, client: UnipileClient
) -> None:
    api.answer_json({"id": "c", "name": "n", "type": "group", "is_group": True, "data": []})
    await client.get_chat("acc_1", "chat_1")
    await client.get_chat("acc_1", "chat_1", fresh=True)
    _ = [p async for p in client.participants("acc_1", "chat_1", fresh=True)]
    _ = [p async for p in client.participants("acc_1", "chat_1")]
    assert [s.headers.get("Cache-Control") for s in api.seen] == [
        None,
        "no-cache",
        "no-cache",
        None,
    ]


async def test_writes_send_json_bodies_to_the_documented_endpoints(
    api: FakeUnipile, client: UnipileClient
) -> None:
    await client.add_participant("acc_1", "chat_1", "ACoAA1")
    await client.remove_participant("acc_1", "chat_1", "ACoAA2")
    await client.rename_chat("acc_1", "chat_1", "Cohort 12 \u2728")
    assert [(s.method, s.raw_path) for s in api.seen] == [
        ("POST", "/v2/acc_1/chats/chat_1/participants"),
        ("DELETE", "/v2/acc_1/chats/chat_1/participants/ACoAA2"),
        ("PATCH", "/v2/acc_1/chats/chat_1"),
    ]
    post, delete, patch = api.seen
    assert orjson.loads(post.body) == {"user_id": "ACoAA1"}
    assert post.headers["Content-Type"] == "application/json"
    assert delete.body == b""
    assert orjson.loads(patch.body) == {"name": "Cohort 12 \u2728"}


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, b'{"object":"ParticipantAdded"}'),
        (200, b""),
        (200, b"<html>OK</html>"),
        (201, b"null"),
        (204, b""),
    ],
)
async def test_a_write_succeeds_on_its_status_whatever_the_body(
    api: FakeUnipile, client: UnipileClient, status: int, body: bytes
) -> None:
    api.answer(status, body)
    await client.add_participant("acc_1", "chat_1", "ACoAA1")
    await client.remove_participant("acc_1", "chat_1", "ACoAA1")
    await client.rename_chat("acc_1", "chat_1", "x")


async def test_every_request_names_the_tool_for_unipiles_support(
    api: FakeUnipile, client: UnipileClient
) -> None:
    await client.add_participant("acc_1", "chat_1", "ACoAA1")
    await client.rename_chat("acc_1", "chat_1", "x")
    assert [s.headers["User-Agent"] for s in api.seen] == [f"bulkgroups/{__version__}"] * 2


@pytest.mark.parametrize("path", ["/proxy/unipile/", "/my proxy", "/api/v2"])
def test_a_base_url_with_a_path_besides_v2_is_a_usage_error(api: FakeUnipile, path: str) -> None:
    # The contract takes an origin, the same ending in /v2, or a DSN; anything else is refused
    # before a request is sent (a wrong path would be a 404 per account, "not found").
    with pytest.raises(UsageError, match="takes no path besides /v2"):
        UnipileClient(api.url + path, api_key=KEY)
    assert api.seen == []


HOSTILE_IDS = [
    ("a@b", "a%40b"),
    ("a/b", "a%2Fb"),
    ("a?b=c", "a%3Fb%3Dc"),
    ("a#b", "a%23b"),
    ("100%", "100%25"),
    ("%2F", "%252F"),
    ("..", "%2E%2E"),
    (".", "%2E"),
    ("...", "..."),
    ("a b", "a%20b"),
    ("a+b", "a%2Bb"),
    ("caf\u00e9", "caf%C3%A9"),
    ("\u7fa4\u804a", "%E7%BE%A4%E8%81%8A"),
    ("\U0001f600", "%F0%9F%98%80"),
    ("334455667788@s.whatsapp.net", "334455667788%40s.whatsapp.net"),
    ("ACoAA-_.~9", "ACoAA-_.~9"),
    ("a;b,c&d'e(f)g*h!i$j:k", "a%3Bb%2Cc%26d%27e%28f%29g%2Ah%21i%24j%3Ak"),
]


@pytest.mark.parametrize(("raw", "encoded"), HOSTILE_IDS, ids=[e for _, e in HOSTILE_IDS])
def test_quote_segment_encodes_everything_outside_unreserved(raw: str, encoded: str) -> None:
    assert quote_segment(raw) == encoded
    assert unquote(encoded) == raw


@given(st.text(min_size=1, max_size=30))
def test_quote_segment_is_one_plain_segment_that_decodes_back(raw: str) -> None:
    encoded = quote_segment(raw)
    assert unquote(encoded, errors="surrogatepass") == raw
    assert set(encoded) <= set(string.ascii_letters + string.digits + "-._~%")
    assert encoded not in (".", "..")


def test_quote_segment_refuses_an_empty_id() -> None:
    with pytest.raises(ValueError, match="empty"):
        quote_segment("")


@pytest.mark.parametrize(("raw", "encoded"), HOSTILE_IDS, ids=[e for _, e in HOSTILE_IDS])
async def test_hostile_ids_arrive_as_single_exactly_encoded_segments(
    api: FakeUnipile, client: UnipileClient, raw: str, encoded: str
) -> None:
    await client.remove_participant(raw, raw, raw)
    [seen] = api.seen
    assert seen.raw_path == f"/v2/{encoded}/chats/{encoded}/participants/{encoded}"
    segments = [unquote(s) for s in seen.raw_path.split("/")]
    assert segments == ["", "v2", raw, "chats", raw, "participants", raw]
    assert seen.query == {}


async def test_a_member_named_dot_dot_is_not_the_chat(
    api: FakeUnipile, client: UnipileClient
) -> None:
    # Naively quoted, DELETE .../participants/.. would resolve to DELETE .../chats/chat_1.
    await client.remove_participant("acc_1", "chat_1", "..")
    assert api.seen[0].raw_path == "/v2/acc_1/chats/chat_1/participants/%2E%2E"


# ---------------------------------------------------------------------------------------------
# The gate: entered once per request, with the right kind, around the whole exchange
# ---------------------------------------------------------------------------------------------


@dataclass
class RecordingGate:
    entries: list[tuple[str, RequestKind]] = field(default_factory=list)
    observed: list[tuple[int, RateLimitHeaders | None]] = field(default_factory=list)
    inside: bool = False

    def __call__(self, account: str, kind: RequestKind) -> RecordingTurn:
        return RecordingTurn(self, account, kind)


@dataclass
class RecordingTurn:
    gate: RecordingGate
    account: str
    kind: RequestKind

    async def __aenter__(self) -> RecordingTurn:
        assert not self.gate.inside, "the gate was entered twice at once by one sequential caller"
        self.gate.entries.append((self.account, self.kind))
        self.gate.inside = True
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.gate.inside = False

    def observe(self, status: int, headers: RateLimitHeaders | None) -> None:
        assert self.gate.inside, "observed outside the gate"
        self.gate.observed.append((status, headers))


async def test_the_gate_is_entered_once_per_request_with_its_kind(
    api: FakeUnipile, client: UnipileClient
) -> None:
    gate = RecordingGate()
    arrived_inside: list[bool] = []
    api.during_request = lambda: arrived_inside.append(gate.inside)
    pages = {
        None: {"data": [participant("u1")], "next_cursor": "p2"},
        "p2": {"data": [participant("u2")], "next_cursor": None},
    }

    async def reply(request: web.Request) -> web.StreamResponse:
        if request.path.endswith("/participants") and request.method == "GET":
            return web.json_response(pages[request.query.get("cursor")])
        return web.json_response(
            {"id": "x", "user_id": "ACoOwner", "status": "running", "name": "n", "type": "group"}
        )

    api.reply = reply
    await client.get_account("acc_1", gate=gate)
    await client.get_chat("acc_1", "chat_1", gate=gate)
    listed = [p.user_id async for p in client.participants("acc_1", "chat_1", gate=gate)]
    await client.add_participant("acc_1", "chat_1", "u3", gate=gate)
    await client.remove_participant("acc_1", "chat_1", "u1", gate=gate)
    await client.rename_chat("acc_1", "chat_1", "new", gate=gate)
    assert gate.entries == [
        ("acc_1", "core"),
        ("acc_1", "read"),
        ("acc_1", "read"),
        ("acc_1", "read"),
        ("acc_1", "write"),
        ("acc_1", "write"),
        ("acc_1", "write"),
    ]
    assert len(api.seen) == len(gate.entries)
    assert all(arrived_inside)
    assert not gate.inside
    assert listed == ["u1", "u2"]
    assert gate.observed == [(200, None)] * len(gate.entries)


async def test_the_gate_is_told_the_answers_rate_limit_headers(
    api: FakeUnipile, client: UnipileClient
) -> None:
    gate = RecordingGate()
    answers = iter(
        [
            {"X-RateLimit-Limit": "20", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "3"},
            {"X-RateLimit-Remaining": "lots", "X-RateLimit-Reset": "-1"},
        ]
    )

    async def reply(request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {"id": "c", "name": "n", "type": "group", "is_group": True}, headers=next(answers)
        )

    api.reply = reply
    await client.get_chat("acc_1", "chat_1", gate=gate)
    await client.get_chat("acc_1", "chat_1", gate=gate)
    assert gate.observed == [
        (200, RateLimitHeaders(limit=20, remaining=0, reset=3.0)),
        (200, RateLimitHeaders(limit=None, remaining=None, reset=None)),
    ]


async def test_the_body_is_read_before_the_gate_is_left(
    api: FakeUnipile, client: UnipileClient
) -> None:
    # The server sends the headers, then holds the body until the test lets it go: the gate must
    # still be held while the client waits for the body.
    gate = RecordingGate()
    headers_sent = asyncio.Event()
    release_body = asyncio.Event()

    async def reply(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(b'{"id":"c","name":"slow",')
        headers_sent.set()
        await release_body.wait()
        await response.write(b'"type":"group","is_group":true}')
        await response.write_eof()
        return response

    api.reply = reply
    read = asyncio.create_task(client.get_chat("acc_1", "chat_1", gate=gate))
    await headers_sent.wait()
    assert gate.inside
    release_body.set()
    info = await read
    assert info.name == "slow"
    assert not gate.inside


async def test_a_gate_that_refuses_sends_nothing(api: FakeUnipile, client: UnipileClient) -> None:
    class Stopped(Exception):
        pass

    @asynccontextmanager
    async def closed_gate(account: str, kind: RequestKind) -> AsyncIterator[None]:
        raise Stopped(account)
        yield  # pragma: no cover

    with pytest.raises(Stopped):
        await client.add_participant("acc_1", "chat_1", "u1", gate=closed_gate)
    assert api.seen == []


# ---------------------------------------------------------------------------------------------
# Response shapes: read what is used, tolerate the rest
# ---------------------------------------------------------------------------------------------


async def test_get_account_maps_user_id_to_the_owner(
    api: FakeUnipile, client: UnipileClient
) -> None:
    api.answer_json(
        {
            "object": "Account",
            "id": "acc_1",
            "user_id": "ACoAAOwner",
            "name": "Jane Doe",
            "provider": "linkedin",
            "status": "running",
            "created_at": "2026-01-01T10:00:00.000Z",
            "application_id": "app_1",
            "something_new": {"nested": [1, 2]},
        }
    )
    assert await client.get_account("acc_1") == AccountInfo(
        account_id="acc_1", owner_id="ACoAAOwner", status="running", name="Jane Doe"
    )


async def test_get_account_tolerates_missing_and_null_optional_fields(
    api: FakeUnipile, client: UnipileClient
) -> None:
    api.answer_json({"user_id": "ACoAAOwner", "status": "paused", "name": None, "provider": None})
    assert await client.get_account("acc_9") == AccountInfo(
        account_id="acc_9", owner_id="ACoAAOwner", status="paused", name=None
    )


@pytest.mark.parametrize(
    "doc", [{"status": "running"}, {"user_id": None, "status": "running"}, {"user_id": "u"}]
)
async def test_an_account_without_owner_or_status_is_an_invalid_body(
    api: FakeUnipile, client: UnipileClient, doc: dict[str, object]
) -> None:
    api.answer_json(doc)
    with pytest.raises(TransientError) as raised:
        await client.get_account("acc_1")
    assert raised.value.type == "http/invalid_body"
    assert raised.value.account == "acc_1"


async def test_get_chat_reads_name_type_and_read_only(
    api: FakeUnipile, client: UnipileClient
) -> None:
    api.answer_json(
        {
            "object": "Chat",
            "id": "2-ZDk",
            "name": "Project team",
            "type": "group",
            "is_group": True,
            "is_1to1": False,
            "is_channel": False,
            "is_readonly": True,
            "is_pinned": False,
            "is_archived": False,
            "folders": [],
            "unread_count": 0,
            "muted_until": "2026-02-01T00:00:00.000Z",
            "participants_count": 12,
            "provider": "linkedin",
        }
    )
    assert await client.get_chat("acc_1", "2-ZDk") == ChatInfo(
        chat_id="2-ZDk",
        name="Project team",
        type="group",
        is_group=True,
        is_readonly=True,
        participants_count=12,
    )


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"name": None, "is_group": True}, ChatInfo("c", "", "group", True, False)),
        ({"is_1to1": True}, ChatInfo("c", "", "1to1", False, False)),
        ({"type": "channel", "is_readonly": None}, ChatInfo("c", "", "channel", False, False)),
        ({"type": "group", "read_only": True}, ChatInfo("c", "", "group", True, True)),
        ({"type": "group", "participants_count": True}, ChatInfo("c", "", "group", True, False)),
        # The SDK's model wants a count >= 1 when given (the owner is in every group): 0 is no
        # count, not a chat of nobody that every listing would then exceed.
        ({"type": "group", "participants_count": 0}, ChatInfo("c", "", "group", True, False)),
        ({"type": "group", "participants_count": 0.0}, ChatInfo("c", "", "group", True, False)),
        ({"type": "group", "participants_count": 3.0}, ChatInfo("c", "", "group", True, False, 3)),
        ({}, ChatInfo("c", "", "unknown", False, False)),
    ],
)
async def test_get_chat_tolerates_drifting_fields(
    api: FakeUnipile, client: UnipileClient, doc: dict[str, object], expected: ChatInfo
) -> None:
    api.answer_json(doc)
    assert await client.get_chat("acc_1", "c") == expected


@pytest.mark.parametrize("body", [b"", b"<html>hello</html>", b"[]", b"null", b'"chat"', b"{"])
async def test_a_2xx_read_without_a_json_object_is_an_invalid_body(
    api: FakeUnipile, client: UnipileClient, body: bytes
) -> None:
    api.answer(200, body)
    with pytest.raises(TransientError) as raised:
        await client.get_chat("acc_1", "chat_1")
    assert (raised.value.status, raised.value.type) == (200, "http/invalid_body")
    with pytest.raises(TransientError):
        _ = [p async for p in client.participants("acc_1", "chat_1")]


# ---------------------------------------------------------------------------------------------
# Pagination
# ---------------------------------------------------------------------------------------------


def paged(
    api: FakeUnipile,
    members: list[str],
    *,
    serve_at_most: int = 100,
    cursor_after_last: bool = False,
    last_cursor: object = None,
) -> None:
    """Serve `members` in pages of min(limit, serve_at_most), offset cursors `o<n>`."""

    async def reply(request: web.Request) -> web.StreamResponse:
        limit = min(int(request.query.get("limit", "20")), 100)
        cursor = request.query.get("cursor")
        offset = int(cursor[1:]) if cursor else 0
        end = offset + min(limit, serve_at_most)
        page: dict[str, Any] = {
            "data": [participant(m) for m in members[offset:end]],
            "total_count": len(members),
        }
        if end < len(members) or (cursor_after_last and offset < len(members)):
            page["next_cursor"] = f"o{end}"
        elif last_cursor != "absent":
            page["next_cursor"] = last_cursor
        return web.json_response(page)

    api.reply = reply


def users(n: int) -> list[str]:
    return [f"ACoAA{i:05d}" for i in range(n)]


async def listed(client: UnipileClient, **kw: Any) -> list[Participant]:
    return [p async for p in client.participants("acc_1", "chat_1", **kw)]


@pytest.mark.parametrize(
    ("count", "requests"), [(0, 1), (1, 1), (99, 1), (100, 1), (101, 2), (200, 2), (1000, 10)]
)
async def test_every_member_is_listed_once(
    api: FakeUnipile, client: UnipileClient, count: int, requests: int
) -> None:
    paged(api, users(count))
    found = await listed(client)
    assert [p.user_id for p in found] == users(count)
    assert len(api.seen) == requests
    assert all(s.query["limit"] == "100" for s in api.seen)


async def test_exactly_one_page_followed_by_an_empty_page(
    api: FakeUnipile, client: UnipileClient
) -> None:
    paged(api, users(100), cursor_after_last=True)
    found = await listed(client)
    assert len(found) == 100
    assert [s.query.get("cursor") for s in api.seen] == [None, "o100"]


async def test_a_short_page_with_a_cursor_is_not_the_end(
    api: FakeUnipile, client: UnipileClient
) -> None:
    paged(api, users(50), serve_at_most=7)
    found = await listed(client)
    assert [p.user_id for p in found] == users(50)
    assert len(api.seen) == 8  # ceil(50 / 7): never stopped at the first short page


@pytest.mark.parametrize("end", ["", None, "absent"])
async def test_an_empty_null_or_absent_cursor_ends_the_listing(
    api: FakeUnipile, client: UnipileClient, end: object
) -> None:
    paged(api, users(150), last_cursor=end)
    assert len(await listed(client)) == 150
    assert len(api.seen) == 2


async def test_the_cursor_is_sent_back_verbatim_however_odd(
    api: FakeUnipile, client: UnipileClient
) -> None:
    odd = "a+b/c=d&e?f#g%h \u00e9"
    pages = {None: {"data": [participant("u1")], "next_cursor": odd}, odd: {"data": []}}

    async def reply(request: web.Request) -> web.StreamResponse:
        return web.json_response(pages[request.query.get("cursor")])

    api.reply = reply
    assert [p.user_id for p in await listed(client)] == ["u1"]
    assert api.seen[1].query == {"cursor": odd, "limit": "100"}


@pytest.mark.parametrize(("page_size", "asked"), [(1, "1"), (10, "10"), (100, "100"), (500, "100")])
async def test_page_size_is_asked_and_capped_at_100(
    api: FakeUnipile, client: UnipileClient, page_size: int, asked: str
) -> None:
    paged(api, users(3))
    assert len(await listed(client, page_size=page_size)) == 3
    assert api.seen[0].query["limit"] == asked


async def test_page_size_below_one_is_a_bug(client: UnipileClient) -> None:
    with pytest.raises(ValueError):
        await listed(client, page_size=0)


async def test_members_repeated_across_pages_are_listed_once(
    api: FakeUnipile, client: UnipileClient
) -> None:
    # Membership changing between pages shifts offsets: the last of a page reappears on the next.
    pages = {
        None: {"data": [participant("u1"), participant("u2")], "next_cursor": "b"},
        "b": {
            "data": [participant("u2"), participant("u3"), participant("u3")],
            "next_cursor": "c",
        },
        "c": {"data": [participant("u1"), participant("u4")]},
    }

    async def reply(request: web.Request) -> web.StreamResponse:
        return web.json_response(pages[request.query.get("cursor")])

    api.reply = reply
    assert [p.user_id for p in await listed(client)] == ["u1", "u2", "u3", "u4"]


@pytest.mark.parametrize(
    "cursors", [["same", "same"], ["a", "b", "a"], ["a", "b", "c", "b"]], ids=str
)
async def test_a_repeated_cursor_is_an_error_not_a_loop(
    api: FakeUnipile, client: UnipileClient, cursors: list[str]
) -> None:
    served = iter(cursors)

    async def reply(request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {"data": [participant(f"u{len(api.seen)}")], "next_cursor": next(served)}
        )

    api.reply = reply
    with pytest.raises(PaginationError) as raised:
        await listed(client)
    assert not raised.value.retryable  # a server that loops once loops again
    assert raised.value.type == "client/pagination"
    assert "repeated a cursor" in str(raised.value)
    assert raised.value.account == "acc_1"
    assert len(api.seen) == len(cursors)


async def test_participant_fields_are_read_and_drift_tolerated(
    api: FakeUnipile, client: UnipileClient
) -> None:
    api.answer_json(
        {
            "data": [
                participant("owner", is_self=True, is_admin=True),
                {"user": {"id": "bare"}},
                {
                    "object": "GroupParticipant",
                    "user": {"id": "nulls", "display_name": None, "type": None},
                    "is_self": None,
                    "is_admin": "yes",
                    "role": "new field",
                },
            ],
            "total_count": None,
        }
    )
    assert await listed(client) == [
        Participant("owner", "Name owner", is_self=True, is_admin=True),
        Participant("bare"),
        Participant("nulls"),
    ]


@pytest.mark.parametrize(
    "page",
    [
        {"total_count": 3},
        {"data": None},
        {"data": {"user": {"id": "u1"}}},
        {"data": [{"user": {"id": None}}]},
        {"data": [{"user": "u1"}]},
        {"data": ["u1"]},
        {"data": [], "next_cursor": ["x"]},
    ],
)
async def test_a_page_we_cannot_read_fully_is_an_invalid_body(
    api: FakeUnipile, client: UnipileClient, page: dict[str, object]
) -> None:
    # Skipping an unreadable member would make the plan re-add or never remove someone.
    api.answer_json(page)
    with pytest.raises(TransientError) as raised:
        await listed(client)
    assert raised.value.type == "http/invalid_body"


async def test_a_chat_and_all_its_members_read_with_its_count(
    api: FakeUnipile, client: UnipileClient
) -> None:
    members = users(130)

    async def reply(request: web.Request) -> web.StreamResponse:
        if request.path.endswith("/participants"):
            offset = int(request.query.get("cursor", "0"))
            page: dict[str, Any] = {
                "data": [participant(m) for m in members[offset : offset + 100]]
            }
            if offset + 100 < len(members):
                page["next_cursor"] = str(offset + 100)
            return web.json_response(page)
        return web.json_response(
            {"id": "chat_1", "name": "Team", "type": "group", "participants_count": 130}
        )

    api.reply = reply
    info = await client.get_chat("acc_1", "chat_1", fresh=True)
    found = await listed(client, fresh=True, expected_count=info.participants_count)
    assert (info.name, info.participants_count) == ("Team", 130)
    assert [p.user_id for p in found] == members
    assert [s.headers.get("Cache-Control") for s in api.seen] == ["no-cache"] * 3


# ---------------------------------------------------------------------------------------------
# Error answers over the socket
# ---------------------------------------------------------------------------------------------


def problem(status: int, type_: str) -> bytes:
    return orjson.dumps(
        {"object": "Error", "type": type_, "status": status, "detail": "d", "req_id": "req_1"}
    )


ERRORS_OVER_THE_WIRE = [
    (400, problem(400, "api/invalid_parameters"), {}, RequestRejected, "api/invalid_parameters"),
    (400, problem(400, "api/invalid_auth_format"), {}, AuthError, "api/invalid_auth_format"),
    (401, problem(401, "api/missing_authorization"), {}, AuthError, "api/missing_authorization"),
    (401, problem(401, "provider/invalid_credentials"), {}, AccountDisconnected, None),
    (401, problem(401, "provider/brand_new"), {}, AccountDisconnected, "provider/brand_new"),
    (401, b"<html>401</html>", {}, AuthError, "http/401"),
    (403, problem(403, "api/insufficient_permissions"), {}, UnsupportedAccount, None),
    (403, problem(403, "provider/insufficient_permissions"), {}, PermissionDenied, None),
    (404, problem(404, "api/resource_not_found"), {}, NotFound, None),
    (409, problem(409, "api/conflict"), {}, Conflict, None),
    (422, problem(422, "provider/unprocessable_entity"), {}, RequestRejected, None),
    (429, problem(429, "provider/too_many_requests"), {}, ProviderRateLimited, None),
    (501, problem(501, "api/not_implemented"), {}, RequestRejected, None),
    (500, problem(500, "api/internal_error"), {}, TransientError, None),
    (502, b"<html><body><h1>502 Bad Gateway</h1></body></html>", {}, TransientError, "http/502"),
    (503, b"", {}, TransientError, "http/503"),
    (504, b"upstream timed out", {}, TransientError, "http/504"),
    (418, problem(418, "api/teapot"), {}, RequestRejected, "api/teapot"),
]


@pytest.mark.parametrize(
    ("status", "body", "headers", "cls", "type_"),
    ERRORS_OVER_THE_WIRE,
    ids=[f"{s}-{t or c.__name__}" for s, _, _, c, t in ERRORS_OVER_THE_WIRE],
)
async def test_error_answers_raise_their_class_with_the_account(
    api: FakeUnipile,
    client: UnipileClient,
    status: int,
    body: bytes,
    headers: dict[str, str],
    cls: type[ApiError],
    type_: str | None,
) -> None:
    api.answer(status, body, headers)
    with pytest.raises(ApiError) as raised:
        await client.add_participant("acc_7", "chat_1", "u1")
    error = raised.value
    assert type(error) is cls
    assert error.status == status
    if type_ is not None:
        assert error.type == type_
    assert error.account == "acc_7"


async def test_errors_on_reads_and_pages_are_raised_too(
    api: FakeUnipile, client: UnipileClient
) -> None:
    api.answer(404, problem(404, "api/resource_not_found"))
    with pytest.raises(NotFound):
        await client.get_chat("acc_1", "gone")
    with pytest.raises(NotFound):
        await listed(client)
    api.answer(401, problem(401, "api/expired_authorization"))
    with pytest.raises(AuthError):
        await client.get_account("acc_1")


async def test_an_error_on_a_later_page_stops_the_listing(
    api: FakeUnipile, client: UnipileClient
) -> None:
    async def reply(request: web.Request) -> web.StreamResponse:
        if "cursor" in request.query:
            return web.Response(status=503, body=b"")
        return web.json_response({"data": [participant("u1")], "next_cursor": "p2"})

    api.reply = reply
    got: list[str] = []
    with pytest.raises(TransientError):
        async for p in client.participants("acc_1", "chat_1"):
            got.append(p.user_id)
    assert got == ["u1"]


@pytest.mark.parametrize(
    ("headers", "retry_after"),
    [
        ({"Retry-After": "3"}, 3.0),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),
        ({"x-ratelimit-reset": "17", "x-ratelimit-remaining": "0"}, 17.0),
        ({}, None),
    ],
)
async def test_a_429_carries_its_retry_after(
    api: FakeUnipile,
    client: UnipileClient,
    headers: dict[str, str],
    retry_after: float | None,
) -> None:
    api.answer(429, problem(429, "api/too_many_requests"), headers)
    with pytest.raises(RateLimited) as raised:
        await client.get_chat("acc_1", "chat_1")
    assert raised.value.retry_after == retry_after
    assert raised.value.req_id == "req_1"


async def test_a_future_http_date_retry_after_counts_down_from_now(
    api: FakeUnipile, client: UnipileClient
) -> None:
    import email.utils
    import time

    api.answer(
        429,
        b"",
        {"Retry-After": email.utils.formatdate(time.time() + 3600, usegmt=True)},
    )
    with pytest.raises(RateLimited) as raised:
        await client.get_chat("acc_1", "chat_1")
    assert raised.value.retry_after is not None
    assert 3000 < raised.value.retry_after <= 3600


# ---------------------------------------------------------------------------------------------
# Transport failures
# ---------------------------------------------------------------------------------------------


async def test_no_answer_within_the_read_timeout_is_a_transport_timeout(
    api: FakeUnipile,
) -> None:
    never = asyncio.Event()

    async def reply(request: web.Request) -> web.StreamResponse:
        await never.wait()
        return web.json_response({})

    api.reply = reply
    try:
        async with UnipileClient(api.url, api_key=KEY, read_timeout=0.2) as c:
            with pytest.raises(TransportError) as raised:
                await c.add_participant("acc_1", "chat_1", "u1")
    finally:
        never.set()
    assert (raised.value.status, raised.value.type) == (None, "transport/timeout")
    assert raised.value.retryable
    assert raised.value.account == "acc_1"
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


async def test_a_body_that_stalls_is_a_transport_timeout(api: FakeUnipile) -> None:
    never = asyncio.Event()

    async def reply(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = 1000
        await response.prepare(request)
        await response.write(b'{"data": [')
        await never.wait()
        return response

    api.reply = reply
    try:
        async with UnipileClient(api.url, api_key=KEY, read_timeout=0.2) as c:
            with pytest.raises(TransportError) as raised:
                await listed(c)
    finally:
        never.set()
    assert raised.value.type == "transport/timeout"


async def test_a_connection_that_is_never_accepted_is_unreachable() -> None:
    # A listener with a full accept queue drops further SYNs: the connect hangs, as it does
    # behind a black-holing firewall, without sending anything off this machine.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(3)]
        try:
            for filler in fillers:
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
            async with UnipileClient(
                f"http://127.0.0.1:{port}", api_key=KEY, connect_timeout=0.2
            ) as c:
                with pytest.raises(Unreachable) as raised:
                    await c.get_account("acc_1")
        finally:
            for filler in fillers:
                filler.close()
    assert raised.value.type == "transport/connect"
    assert raised.value.detail == (
        f"cannot reach http://127.0.0.1:{port}: connection timed out after 0.2 s"
    )
    assert raised.value.retryable


@asynccontextmanager
async def raw_server(
    respond: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[str]:
    """A bare TCP server on 127.0.0.1 that misbehaves below HTTP."""

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            await respond(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    return None


async def hang_up_mid_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"
        b'{"data": ['
    )
    await writer.drain()


async def abort(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # SO_LINGER 0: close with a TCP RST, the way a crashing proxy drops a connection.
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    writer.transport.abort()


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"this is not HTTP at all\r\n\r\n")
    await writer.drain()


@pytest.mark.parametrize(
    "respond", [hang_up, hang_up_mid_body, abort, garbage], ids=lambda f: f.__name__
)
async def test_a_dropped_connection_is_a_transport_reset(
    respond: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> None:
    async with raw_server(respond) as url, UnipileClient(url, api_key=KEY) as c:
        with pytest.raises(TransportError) as raised:
            await listed(c)
        if respond is not hang_up_mid_body:  # a write's 200 is its answer, whatever follows
            with pytest.raises(TransportError):
                await c.remove_participant("acc_1", "chat_1", "u1")
    assert (raised.value.status, raised.value.type) == (None, "transport/reset")
    assert not isinstance(raised.value, Unreachable)  # it was reached: something may have happened
    assert raised.value.account == "acc_1"


async def test_a_refused_connection_is_unreachable_naming_the_url() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with UnipileClient(f"http://127.0.0.1:{port}", api_key=KEY) as c:
        with pytest.raises(Unreachable) as raised:
            await c.get_account("acc_1")
    assert raised.value.type == "transport/connect"
    assert raised.value.detail == f"cannot reach http://127.0.0.1:{port}: connection refused"
    assert raised.value.base_url == f"http://127.0.0.1:{port}"


# ---------------------------------------------------------------------------------------------
# The key never leaks
# ---------------------------------------------------------------------------------------------


def everything_about(error: BaseException) -> str:
    return "\n".join(
        [str(error), repr(error), "".join(traceback.format_exception(error)), str(vars(error))]
    )


async def test_an_error_that_echoes_the_key_does_not_repeat_it(
    api: FakeUnipile, client: UnipileClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    api.answer(
        401,
        orjson.dumps(
            {
                "type": "api/expired_authorization",
                "title": f"key {KEY} expired",
                "detail": f"The API key {KEY} has expired",
                "req_id": f"req-{KEY}",
            }
        ),
        {"X-Request-Id": KEY},
    )
    with pytest.raises(AuthError) as raised:
        await client.get_account("acc_1")
    error = raised.value
    assert error.detail == "The API key *** has expired"
    assert KEY not in everything_about(error)
    assert KEY not in caplog.text


async def test_transport_errors_do_not_carry_the_request_headers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with raw_server(garbage) as url, UnipileClient(url, api_key=KEY) as c:
        with pytest.raises(TransportError) as raised:
            await c.add_participant("acc_1", "chat_1", "u1")
    assert KEY not in everything_about(raised.value)
    assert KEY not in caplog.text


async def test_a_redirect_is_not_followed_so_the_key_stays_home(
    api: FakeUnipile, client: UnipileClient
) -> None:
    async def reply(request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/elsewhere"):
            return web.json_response({"user_id": "u", "status": "running"})
        raise web.HTTPFound("/elsewhere/v2/accounts/acc_1")

    api.reply = reply
    with pytest.raises(Unreachable) as raised:
        await client.get_account("acc_1")
    assert [s.raw_path for s in api.seen] == ["/v2/accounts/acc_1"]
    # A redirect means the base URL leads elsewhere than the API: said as such (the run then
    # stops with one line, as for any API it cannot reach), not as `api_error (http/302)`.
    error = raised.value
    assert (error.status, error.type, error.retryable) == (None, "transport/redirect", True)
    assert error.detail == (
        f"cannot reach {api.url}: it redirects (302) to /elsewhere/v2/accounts/acc_1, which is "
        "not followed (the API key would go along): check the base URL"
    )


# ---------------------------------------------------------------------------------------------
# Session ownership
# ---------------------------------------------------------------------------------------------


async def test_an_injected_session_is_used_and_left_open(api: FakeUnipile) -> None:
    async with aiohttp.ClientSession() as session:
        async with UnipileClient(api.url, api_key=KEY, session=session) as c:
            await c.add_participant("acc_1", "chat_1", "u1")
        assert not session.closed
        assert len(api.seen) == 1


async def test_the_owned_session_is_closed_on_exit(api: FakeUnipile) -> None:
    c = UnipileClient(api.url, api_key=KEY)
    async with c:
        await c.add_participant("acc_1", "chat_1", "u1")
    with pytest.raises(RuntimeError):
        await c.add_participant("acc_1", "chat_1", "u1")


async def test_concurrent_requests_share_the_session(api: FakeUnipile) -> None:
    async with UnipileClient(api.url, api_key=KEY, concurrency=4) as c:
        await asyncio.gather(*(c.add_participant("acc_1", "chat_1", f"u{i}") for i in range(20)))
    assert sorted(orjson.loads(s.body)["user_id"] for s in api.seen) == sorted(
        f"u{i}" for i in range(20)
    )


# ---------------------------------------------------------------------------------------------
# Module surface
# ---------------------------------------------------------------------------------------------


def public_top_level_names(source: str) -> Iterator[str]:
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            names = [node.name]
        elif isinstance(node, ast.Assign):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names = [node.target.id]
        else:
            names = []
        yield from (n for n in names if not n.startswith("_"))


def test_client_all_is_sorted_and_complete() -> None:
    assert client_module.__all__ == sorted(client_module.__all__)
    assert set(client_module.__all__) == set(
        public_top_level_names(inspect.getsource(client_module))
    )


def test_client_errors_are_all_bulkgroups_errors() -> None:
    assert issubclass(PaginationError, BulkGroupsError)
    assert issubclass(TransportError, BulkGroupsError)
