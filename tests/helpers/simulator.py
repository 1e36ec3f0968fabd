"""What tests of a simulator share (no tests or fixtures here): the type of the `sim_factory`
fixture, and `Http`, plain aiohttp requests (not bulkgroups.client) to a simulator, behind the
`http` fixture. The fixtures themselves are in conftest.py."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import yarl
from multidict import CIMultiDict

from bulkgroups.simulator import Simulator

SimFactory = Callable[..., Simulator]
"""`sim_factory(...)`: a `SimConfig` or its keyword arguments in, a running simulator out."""


@dataclass(frozen=True)
class Answer:
    """One HTTP answer as the test saw it."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


def segment(identifier: str) -> str:
    """Percent-encode an id as one path segment (dots too, so `..` stays an id)."""
    return quote(identifier, safe="").replace(".", "%2E")


class Http:
    """Plain aiohttp requests to a simulator: pre-encoded paths, the simulator's key by default."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def call(
        self,
        sim: Simulator,
        method: str,
        path: str,
        *,
        body: object = None,
        key: str | None = "",
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        sent = dict(headers or {})
        if key is not None:
            sent["X-API-KEY"] = key or sim.api_key
        data = None if body is None else orjson.dumps(body)
        if data is not None:
            sent["Content-Type"] = "application/json"
        url = yarl.URL(sim.url + path, encoded=True)
        async with self.session.request(method, url, data=data, headers=sent) as response:
            return Answer(response.status, CIMultiDict(response.headers), await response.read())

    async def get(self, sim: Simulator, path: str, **kw: Any) -> Answer:
        return await self.call(sim, "GET", path, **kw)

    async def post(self, sim: Simulator, path: str, body: object, **kw: Any) -> Answer:
        return await self.call(sim, "POST", path, body=body, **kw)

    async def patch(self, sim: Simulator, path: str, body: object, **kw: Any) -> Answer:
        return await self.call(sim, "PATCH", path, body=body, **kw)

    async def delete(self, sim: Simulator, path: str, **kw: Any) -> Answer:
        return await self.call(sim, "DELETE", path, **kw)
