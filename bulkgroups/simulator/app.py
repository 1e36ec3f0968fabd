"""The aiohttp face of the simulator: decode the request exactly, hand it to the core, copy back.

Paths are split from `request.raw_path` on `/` and each segment is percent-decoded on its own:
aiohttp's router decodes `%2F` before matching, which would turn the user id `a/b` into two
segments, so the router only sees one catch-all route.

Besides the Unipile endpoints, `/_sim/...` (same `X-API-KEY`) exposes the inspection API over HTTP,
for tests in other processes and for poking at `bulkgroups sandbox` with curl:

    GET  /_sim/accounts/{account}                      account settings and owner
    POST /_sim/accounts/{account}                      configure_account (JSON body, same names)
    GET  /_sim/accounts/{account}/timeline             {"timeline": [arrival times]}
    GET  /_sim/accounts/{account}/chats                {"chats": [chat ids, as listed]}
    GET  /_sim/accounts/{account}/chats/{chat}         chat snapshot, members included
    POST /_sim/accounts/{account}/chats/{chat}         configure_chat (JSON body, same names)
    GET  /_sim/accounts/{account}/chats/{chat}/members {"members": [sorted ids]}
    GET  /_sim/requests[?account=ID]                   {"requests": [log entries]}
    GET  /_sim/violations                              {"total": N, "accounts": {...}}
    POST /_sim/faults                                  {"faults": "500=0.1", "seed": 1}
    POST /_sim/people                                  register_people: {"people": [ids]}
    POST /_sim/reset-log
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web

from bulkgroups.simulator.faults import HUGE_BODY_LIMIT
from bulkgroups.simulator.replies import Problem, Reply, json_reply, problem_reply
from bulkgroups.simulator.service import SimRequest, Simulator

__all__ = ["create_app"]

_SIMULATOR_KEY = web.AppKey("simulator", Simulator)
_MAX_BODY = 1024 * 1024
_ENDLESS_ITEM = orjson.dumps(
    {
        "object": "GroupParticipant",
        "user": {"object": "User", "id": "ACoAZ0000", "type": "individual", "display_name": "Z"},
        "is_self": False,
        "is_admin": False,
    }
)
_ENDLESS_CHUNK = b",".join([_ENDLESS_ITEM] * (64 * 1024 // (len(_ENDLESS_ITEM) + 1))) + b","


def create_app(simulator: Simulator) -> web.Application:
    """An aiohttp app serving `simulator` (usable with `aiohttp.test_utils.TestServer` too)."""
    app = web.Application(client_max_size=_MAX_BODY)
    app[_SIMULATOR_KEY] = simulator
    app.router.add_route("*", "/{tail:.*}", _handle)
    return app


def _segments(raw_path: str) -> tuple[str, ...] | None:
    try:
        return tuple(unquote(part, errors="strict") for part in raw_path.split("/")[1:])
    except UnicodeDecodeError:
        return None


async def _handle(request: web.Request) -> web.StreamResponse:
    simulator = request.app[_SIMULATOR_KEY]
    path = request.raw_path.partition("?")[0]
    segments = _segments(path)
    if segments is None:
        reply = problem_reply(400, "api/invalid_parameters", "path is not UTF-8", "req_sim_bad")
        return _response(reply)
    body = await request.read()
    if segments and segments[0] == "_sim":
        return _response(_inspect(simulator, request, segments[1:], body))
    reply = simulator.handle(
        SimRequest(
            method=request.method,
            segments=segments,
            path=path,
            query=dict(request.query),
            api_key=request.headers.get("X-API-KEY"),
            no_cache="no-cache" in request.headers.get("Cache-Control", "").lower(),
            body=body,
        )
    )
    if reply.delay > 0:
        await asyncio.sleep(reply.delay)
    if reply.reset:
        if request.transport is not None:
            request.transport.abort()
        # Nothing reaches the client: the transport is gone; aiohttp drops this quietly.
        return web.Response(status=500)
    if reply.trickle > 0 or reply.endless:
        return await _streamed(request, reply)
    return _response(reply)


async def _streamed(request: web.Request, reply: Reply) -> web.StreamResponse:
    """The `trickle` and `huge_body` faults: a body a byte at a time, or one that does not end.

    Either stops as soon as the client hangs up (a write to a closed transport fails), and the
    server's shutdown cancels it; `huge_body` also stops at HUGE_BODY_LIMIT bytes.
    """
    response = web.StreamResponse(status=reply.status)
    if reply.content_type is not None:
        response.content_type = reply.content_type
    for name, value in reply.headers:
        response.headers[name] = value
    if reply.trickle > 0:
        response.content_length = len(reply.body)
    await response.prepare(request)
    with contextlib.suppress(ConnectionError):
        if reply.trickle > 0:
            for index in range(len(reply.body)):
                await response.write(reply.body[index : index + 1])
                await asyncio.sleep(reply.trickle)
        else:
            await response.write(b'{"data":[')
            for _ in range(HUGE_BODY_LIMIT // len(_ENDLESS_CHUNK)):
                await response.write(_ENDLESS_CHUNK)
    return response


def _response(reply: Reply) -> web.Response:
    response = web.Response(status=reply.status, body=reply.body)
    if reply.content_type is not None:
        response.content_type = reply.content_type
    for name, value in reply.headers:
        response.headers[name] = value
    return response


# ---- /_sim: inspection over HTTP -------------------------------------------------------------


def _inspect(
    simulator: Simulator, request: web.Request, segments: tuple[str, ...], body: bytes
) -> Reply:
    key = request.headers.get("X-API-KEY", "")
    if not secrets.compare_digest(key.encode(), simulator.api_key.encode()):
        return problem_reply(401, "api/expired_authorization", "the API key is not valid", "-")
    try:
        return _inspect_route(simulator, request, segments, body)
    except Problem as problem:
        return problem.reply("-")
    except (TypeError, ValueError) as error:
        return problem_reply(400, "api/invalid_parameters", str(error), "-")


def _inspect_route(
    simulator: Simulator, request: web.Request, segments: tuple[str, ...], body: bytes
) -> Reply:
    method = request.method
    match segments:
        case ("accounts", account) if method == "GET":
            snapshot = simulator.account(account)
            return json_reply(
                {
                    "account": snapshot.account,
                    "owner": snapshot.owner,
                    "status": snapshot.status,
                    "product": snapshot.product,
                    "rate": str(snapshot.rate),
                    "write_rate": None if snapshot.write_rate is None else str(snapshot.write_rate),
                    "provider_write_limit": snapshot.provider_write_limit,
                    "latency": snapshot.latency,
                }
            )
        case ("accounts", account) if method == "POST":
            simulator.configure_account(account, **_object(body))
            return json_reply({"ok": True})
        case ("accounts", account, "timeline") if method == "GET":
            return json_reply({"timeline": list(simulator.timeline(account))})
        case ("accounts", account, "chats") if method == "GET":
            return json_reply({"chats": list(simulator.chats(account))})
        case ("accounts", account, "chats", chat) if method == "GET":
            chat_snapshot = simulator.chat(account, chat)
            return json_reply(
                {
                    "account": account,
                    "chat": chat,
                    "name": chat_snapshot.name,
                    "type": chat_snapshot.type,
                    "readonly": chat_snapshot.readonly,
                    "deleted": chat_snapshot.deleted,
                    "members": list(chat_snapshot.members),
                }
            )
        case ("accounts", account, "chats", chat) if method == "POST":
            simulator.configure_chat(account, chat, **_object(body))
            return json_reply({"ok": True})
        case ("accounts", account, "chats", chat, "members") if method == "GET":
            return json_reply({"members": sorted(simulator.members(account, chat))})
        case ("requests",) if method == "GET":
            entries = simulator.requests(request.query.get("account"))
            return json_reply({"requests": [entry.as_json() for entry in entries]})
        case ("violations",) if method == "GET":
            by_account = simulator.violations_by_account()
            return json_reply(
                {
                    "total": sum(v.total for v in by_account.values()),
                    "accounts": {
                        account: {"general": v.general, "write": v.write, "total": v.total}
                        for account, v in by_account.items()
                    },
                }
            )
        case ("faults",) if method == "POST":
            payload = _object(body)
            simulator.set_faults(str(payload.get("faults", "")), seed=payload.get("seed"))
            return json_reply({"ok": True})
        case ("people",) if method == "POST":
            people = _object(body).get("people")
            if not isinstance(people, list) or not all(isinstance(p, str) for p in people):
                raise Problem(400, "api/invalid_parameters", "people must be a list of ids")
            simulator.register_people(*people)
            return json_reply({"ok": True})
        case ("reset-log",) if method == "POST":
            simulator.reset_log()
            return json_reply({"ok": True})
    raise Problem(404, "api/resource_not_found", "no such inspection endpoint")


def _object(body: bytes) -> dict[str, Any]:
    try:
        payload = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        raise Problem(400, "api/invalid_parameters", "the body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise Problem(400, "api/invalid_parameters", "the body must be a JSON object")
    return payload
