"""A tiny Unipile that misbehaves on purpose: an aiohttp server on 127.0.0.1 for the client's limits.

    async with hostile(endless_body()) as server:
        async with UnipileClient(server.url, api_key=KEY) as client:
            with pytest.raises(TransportError):
                await client.get_chat("acc_1", "chat_1")
    assert len(server.arrivals) == 1

Each behaviour below builds the one handler that answers every request: bodies that trickle or
never end, sizes announced wrong, listings that loop or end early, answers that echo the key. The
server records what arrived (`arrivals`), so a test can count pages. It runs on the test's own
loop (`aiohttp.test_utils.TestServer`); a trickling or endless handler stops when the client
hangs up, and the server's shutdown cancels whatever is left.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Arrival:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class HostileServer:
    url: str = ""
    arrivals: list[Arrival] = field(default_factory=list)

    def pages(self) -> list[dict[str, str]]:
        """The query of every listing request, in order."""
        return [a.query for a in self.arrivals if a.method == "GET"]


@asynccontextmanager
async def hostile(behaviour: Handler) -> AsyncIterator[HostileServer]:
    """Serve `behaviour` for every request on 127.0.0.1 (a random port)."""
    server = HostileServer()

    async def handle(request: web.Request) -> web.StreamResponse:
        server.arrivals.append(
            Arrival(
                request.method, request.path, dict(request.query), dict(request.headers.items())
            )
        )
        return await behaviour(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    async with TestServer(app, host="127.0.0.1") as test_server:
        server.url = str(test_server.make_url("")).rstrip("/")
        yield server


def participant(user_id: str) -> dict[str, Any]:
    return {
        "object": "GroupParticipant",
        "user": {"object": "User", "id": user_id, "type": "individual", "display_name": user_id},
        "is_self": False,
        "is_admin": False,
    }


def people(n: int, prefix: str = "ACoAH") -> list[str]:
    return [f"{prefix}{i:05d}" for i in range(n)]


# ---- bodies ------------------------------------------------------------------------------------


def trickle(body: bytes, *, every: float) -> Handler:
    """200 with the whole body announced, then one byte every `every` seconds."""

    async def reply(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers=JSON)
        response.content_length = len(body)
        await response.prepare(request)
        with suppress(ConnectionError):
            for i in range(len(body)):
                await response.write(body[i : i + 1])
                await asyncio.sleep(every)
        return response

    return reply


def endless_body(*, status: int = 200, limit: int = 8 * 1024**3) -> Handler:
    """A JSON page that never ends (chunked, no length): participants as fast as the client
    reads, up to `limit` bytes, until it hangs up."""
    item = orjson.dumps(participant("ACoAHENDLESS")) + b","
    chunk = item * (64 * 1024 // len(item))

    async def reply(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=status, headers=JSON)
        await response.prepare(request)
        with suppress(ConnectionError):
            await response.write(b'{"data":[')
            for _ in range(limit // len(chunk)):
                await response.write(chunk)
        return response

    return reply


def announced_huge(*, length: int = 10 * 1024**3) -> Handler:
    """A Content-Length of `length` (10 GiB) and then a trickle of bytes: the size alone says no."""

    async def reply(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers=JSON)
        response.content_length = length
        await response.prepare(request)
        with suppress(ConnectionError):
            for _ in range(1000):
                await response.write(b" ")
                await asyncio.sleep(0.05)
        return response

    return reply


def silent_headers() -> Handler:
    """Accepts the request and never answers."""

    async def reply(request: web.Request) -> web.StreamResponse:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    return reply


# ---- listings ----------------------------------------------------------------------------------


def fresh_cursors(*, new_people: bool, per_page: int = 100) -> Handler:
    """Every page carries a cursor never seen before, forever. With `new_people` each page also
    brings `per_page` people never seen before; otherwise every page is the first one again."""
    counter = itertools.count(1)

    async def reply(request: web.Request) -> web.StreamResponse:
        page = next(counter)
        ids = people(per_page, prefix=f"ACoAP{page:06d}_") if new_people else people(per_page)
        body = {"data": [participant(i) for i in ids], "next_cursor": f"fresh-{page}"}
        return web.json_response(body)

    return reply


def listing(
    members: Sequence[str],
    *,
    page_size: int = 100,
    cursors: bool = True,
    offsets: bool = True,
    total_count: int | None = None,
    chat: dict[str, Any] | None = None,
) -> Handler:
    """A participants listing of `members` in pages of at most `page_size`.

    `cursors=False`: pages carry no `next_cursor` (a provider that pages by offset, or a truncated
    listing); `offsets=False`: `offset` is ignored (every offset page is the first page again).
    `total_count` is what pages claim (default: the true count; -1: absent). A request for the
    chat itself answers `chat` (with `participants_count`).
    """
    claimed = len(members) if total_count is None else total_count

    async def reply(request: web.Request) -> web.StreamResponse:
        if not request.path.endswith("/participants"):
            return web.json_response(
                chat or {"id": "chat_1", "type": "group", "participants_count": len(members)}
            )
        limit = int(float(request.query.get("limit", "20")))
        start = 0
        cursor = request.query.get("cursor")
        if cursor:
            start = int(cursor.removeprefix("at-"))
        elif offsets and "offset" in request.query:
            start = int(request.query["offset"])
        end = start + min(limit, page_size)
        body: dict[str, Any] = {"data": [participant(m) for m in members[start:end]]}
        if claimed >= 0:
            body["total_count"] = claimed
        if cursors and end < len(members):
            body["next_cursor"] = f"at-{end}"
        return web.json_response(body)

    return reply


def rejects_limit(inner: Handler, *, above: int = 0) -> Handler:
    """400 api/invalid_parameters to any request with a `limit` above `above`; else `inner`."""

    async def reply(request: web.Request) -> web.StreamResponse:
        limit = request.query.get("limit")
        if limit is not None and int(limit) > above:
            return problem(400, "api/invalid_parameters", f"limit must be at most {above}")
        return await inner(request)

    return reply


def problem(
    status: int, type_: str, detail: str, *, title: str = "Error", req_id: str = "req_h"
) -> web.Response:
    body = {
        "object": "Error",
        "type": type_,
        "status": status,
        "title": title,
        "detail": detail,
        "req_id": req_id,
    }
    return web.Response(status=status, body=orjson.dumps(body), headers=JSON)
