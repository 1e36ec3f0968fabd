"""Every request ends: a deadline over the whole exchange and a cap on the body, against servers that
trickle, never stop, or announce a body no one should read (tests/hostile.py).

No test here measures speed: each asserts what the request ended with. `within` is only a safety
net, many times the client's own deadline, so that a client without one fails instead of hanging.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import orjson
import pytest
from aiohttp import web

from bulkgroups.client import DEFAULT_MAX_BODY_BYTES, UnipileClient
from bulkgroups.errors import NotFound, TransientError, TransportError, Unreachable, UsageError
from bulkgroups.simulator import Simulator

from helpers.hostile import (
    Handler,
    announced_huge,
    endless_body,
    hostile,
    participant,
    silent_headers,
    trickle,
)

KEY = "sk-test-LIMITS-0123456789abcdef"


@asynccontextmanager
async def within(seconds: float) -> AsyncIterator[None]:
    """Fails the test (rather than hanging it) if the block outlives `seconds`."""
    with anyio.fail_after(seconds):
        yield


CHAT = orjson.dumps({"object": "Chat", "id": "chat_1", "name": "Slow", "type": "group"})


async def test_a_body_trickling_a_byte_at_a_time_meets_the_request_deadline() -> None:
    # Each byte comes well within read_timeout: only the deadline over the whole request ends it.
    async with (
        hostile(trickle(CHAT, every=0.2)) as server,
        within(30),
        UnipileClient(server.url, api_key=KEY, request_timeout=1.0, read_timeout=10.0) as client,
    ):
        with pytest.raises(TransportError) as raised:
            await client.get_chat("acc_1", "chat_1")
    error = raised.value
    assert (error.status, error.type, error.account) == (None, "transport/timeout", "acc_1")
    assert error.detail == (
        f"GET {server.url}/v2/acc_1/chats/chat_1: no complete answer within 1 s "
        "(the request's deadline)"
    )
    assert error.retryable and not isinstance(error, Unreachable)


async def test_a_trickle_that_ends_within_the_deadline_is_read_whole() -> None:
    async with (
        hostile(trickle(CHAT, every=0.001)) as server,
        within(30),
        UnipileClient(server.url, api_key=KEY, request_timeout=30) as client,
    ):
        assert (await client.get_chat("acc_1", "chat_1")).name == "Slow"


async def test_headers_that_never_come_meet_the_deadline() -> None:
    async with (
        hostile(silent_headers()) as server,
        within(30),
        UnipileClient(server.url, api_key=KEY, request_timeout=0.5, read_timeout=10.0) as client,
    ):
        with pytest.raises(TransportError) as raised:
            await client.get_account("acc_1")
    assert raised.value.type == "transport/timeout"


async def test_the_deadline_does_not_count_the_wait_for_the_gate() -> None:
    # Pacing may hold a request for minutes: only the server's time counts against the deadline.
    class SlowGate:
        def __call__(self, account: str, kind: str) -> SlowTurn:
            return SlowTurn()

    class SlowTurn:
        async def __aenter__(self) -> SlowTurn:
            await anyio.sleep(0.6)
            return self

        async def __aexit__(self, *exc: object) -> None:
            return None

        def observe(self, status: int, headers: object) -> None:
            return None

    async with (
        hostile(trickle(CHAT, every=0.0)) as server,
        within(30),
        UnipileClient(server.url, api_key=KEY, request_timeout=0.5) as client,
    ):
        info = await client.get_chat("acc_1", "chat_1", gate=SlowGate())
    assert info.name == "Slow"


async def test_an_endless_body_is_cut_at_the_cap() -> None:
    async with (
        hostile(endless_body()) as server,
        within(60),
        UnipileClient(server.url, api_key=KEY, max_body_bytes=256 * 1024) as client,
    ):
        with pytest.raises(TransportError) as raised:
            await client.get_chat("acc_1", "chat_1")
        with pytest.raises(TransportError):
            _ = [p async for p in client.participants("acc_1", "chat_1")]
    error = raised.value
    assert (error.type, error.account) == ("transport/too_large", "acc_1")
    assert error.detail == (
        f"GET {server.url}/v2/acc_1/chats/chat_1: the answer's body is over 256 KiB (the cap)"
    )
    assert error.retryable


async def test_a_body_announced_too_large_is_refused_before_it_is_read() -> None:
    # 10 GiB announced, a byte every 50 ms sent: refused at the headers, long before any deadline.
    async with (
        hostile(announced_huge()) as server,
        within(30),
        UnipileClient(server.url, api_key=KEY, request_timeout=20) as client,
    ):
        with pytest.raises(TransportError) as raised:
            await client.get_chat("acc_1", "chat_1")
    assert raised.value.type == "transport/too_large"
    assert "over 4 MiB" in str(raised.value)


async def test_a_body_just_under_the_cap_is_read() -> None:
    async def exactly(request: object) -> object:
        from aiohttp import web

        padding = b" " * (1000 - len(CHAT))
        return web.Response(body=CHAT + padding, headers={"Content-Type": "application/json"})

    async with (
        hostile(exactly) as server,
        UnipileClient(server.url, api_key=KEY, max_body_bytes=1000) as client,
    ):  # type: ignore[arg-type]
        assert (await client.get_chat("acc_1", "chat_1")).name == "Slow"
        async with UnipileClient(server.url, api_key=KEY, max_body_bytes=999) as client:
            with pytest.raises(TransportError, match="too_large"):
                await client.get_chat("acc_1", "chat_1")


async def test_an_endless_error_body_still_gives_the_error_of_its_status() -> None:
    async with (
        hostile(endless_body(status=503)) as server,
        within(60),
        UnipileClient(server.url, api_key=KEY) as client,
    ):
        with pytest.raises(TransientError) as raised:
            await client.get_chat("acc_1", "chat_1")
    assert (raised.value.status, raised.value.type) == (503, "http/503")
    assert not isinstance(raised.value, TransportError)  # an answer came: its status says it


@pytest.mark.parametrize(
    "behaviour", [endless_body(), trickle(b'{"object":"ParticipantAdded"}', every=0.5)]
)
async def test_a_write_answered_2xx_is_done_whatever_its_body_does(behaviour: object) -> None:
    # The status is a write's answer: waiting for (or capping) its body would turn a write that
    # happened into an unknown outcome.
    async with (
        hostile(behaviour) as server,
        within(30),
        UnipileClient(server.url, api_key=KEY, request_timeout=1.0) as client,
    ):  # type: ignore[arg-type]
        await client.add_participant("acc_1", "chat_1", "ACoAA0001")
    assert [a.method for a in server.arrivals] == ["POST"]


@pytest.mark.parametrize(
    "settings",
    [
        {"request_timeout": 0},
        {"connect_timeout": -1},
        {"read_timeout": 0},
        {"max_body_bytes": 0},
        {"max_items": 0},
        {"page_size": 0},
        {"page_size": 101},
    ],
)
def test_limits_must_be_positive(settings: dict[str, float]) -> None:
    with pytest.raises(UsageError):
        UnipileClient("https://api.unipile.com", api_key=KEY, **settings)  # type: ignore[arg-type]


# ---- memory, measured in a process of its own -------------------------------------------------

READ_ENDLESS = """
import asyncio, json, os, resource, sys
from bulkgroups.client import UnipileClient
from bulkgroups.errors import TransportError

async def main(url: str, key: str) -> None:
    async with UnipileClient(url, api_key=key, request_timeout=120) as client:
        try:
            await client.get_chat("acc_1", "chat_1")
            outcome = "read"
        except TransportError as error:
            outcome = error.type
    print(json.dumps({"outcome": outcome, "peak_mib": peak_kib() / 1024}))

def peak_kib() -> int:
    # This process image's own high-water mark: ru_maxrss would include the parent's peak
    # (Linux carries it across fork and exec), and the parent here is a whole test session.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

asyncio.run(main(sys.argv[1], os.environ["TEST_API_KEY"]))
"""


async def read_endless_in_a_process(url: str, key: str) -> dict[str, object]:
    result = await anyio.run_process(
        [sys.executable, "-c", READ_ENDLESS, url],
        check=False,
        stderr=subprocess.STDOUT,
        env={**os.environ, "TEST_API_KEY": key},
    )
    assert result.returncode == 0, result.stdout.decode()
    return json.loads(result.stdout.decode().strip().splitlines()[-1])  # type: ignore[no-any-return]


async def test_reading_an_endless_body_keeps_peak_memory_under_200_mb() -> None:
    async with hostile(endless_body()) as server, within(120):
        measured = await read_endless_in_a_process(server.url, KEY)
    assert measured["outcome"] == "transport/too_large"
    assert isinstance(measured["peak_mib"], float) and measured["peak_mib"] < 200
    assert DEFAULT_MAX_BODY_BYTES == 4 * 1024 * 1024


async def test_reading_the_simulators_huge_body_keeps_peak_memory_under_200_mb(
    sim: Simulator,
) -> None:
    sim.set_faults("huge_body=1")
    with anyio.fail_after(120):
        measured = await read_endless_in_a_process(sim.url, sim.api_key)
    assert measured["outcome"] == "transport/too_large"
    assert isinstance(measured["peak_mib"], float) and measured["peak_mib"] < 200


def gzip(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def deflate(data: bytes, *, raw: bool = False) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def encoded(body: bytes, encoding: str, *, status: int = 200, chunked: bool = False) -> Handler:
    async def reply(request: web.Request) -> web.StreamResponse:
        headers = {"Content-Type": "application/json", "Content-Encoding": encoding}
        if not chunked:
            return web.Response(status=status, body=body, headers=headers)
        response = web.StreamResponse(status=status, headers=headers)
        await response.prepare(request)
        for i in range(0, len(body), 1000):
            await response.write(body[i : i + 1000])
        return response

    return reply


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip),
        ("x-gzip", gzip),
        ("deflate", deflate),
        ("deflate", lambda data: deflate(data, raw=True)),  # as some servers send it
        ("identity", lambda data: data),
    ],
)
@pytest.mark.parametrize("chunked", [False, True])
async def test_compressed_answers_are_read_and_decoded(
    encoding: str, encode: Callable[[bytes], bytes], chunked: bool
) -> None:
    page = {"data": [participant(f"ACoAA{i:04d}") for i in range(100)], "total_count": 100}
    body = encode(orjson.dumps(page))
    async with (
        hostile(encoded(body, encoding, chunked=chunked)) as server,
        UnipileClient(server.url, api_key=KEY) as client,
    ):
        found = [p async for p in client.participants("acc_1", "chat_1")]
    assert len(found) == 100
    assert server.arrivals[0].headers["Accept-Encoding"] == "gzip, deflate"


async def test_a_compressed_error_answer_still_names_its_type() -> None:
    problem = orjson.dumps({"type": "api/resource_not_found", "status": 404, "detail": "gone"})
    async with (
        hostile(encoded(gzip(problem), "gzip", status=404)) as server,
        UnipileClient(server.url, api_key=KEY) as client,
    ):
        with pytest.raises(NotFound) as raised:
            await client.get_chat("acc_1", "chat_1")
    assert raised.value.detail == "gone"


async def test_a_small_gzip_body_inflating_past_the_cap_is_too_large() -> None:
    bomb = gzip(b'{"data":[' + b" " * (64 * 1024 * 1024))  # 64 KB on the wire
    async with (
        hostile(encoded(bomb, "gzip")) as server,
        UnipileClient(server.url, api_key=KEY) as client,
    ):
        with pytest.raises(TransportError) as raised:
            await client.get_chat("acc_1", "chat_1")
    assert raised.value.type == "transport/too_large"


async def test_a_gzip_bomb_keeps_peak_memory_under_200_mb() -> None:
    # 250 KB on the wire, 256 MiB inflated: read whole, it would pass the 200 MB on its own.
    compressor = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    bomb = compressor.compress(b'{"data":[')
    zeros = b" " * (1024 * 1024)
    for _ in range(256):
        bomb += compressor.compress(zeros)
    bomb += compressor.flush()
    async with hostile(encoded(bomb, "gzip")) as server, within(120):
        measured = await read_endless_in_a_process(server.url, KEY)
    assert measured["outcome"] == "transport/too_large"
    assert isinstance(measured["peak_mib"], float) and measured["peak_mib"] < 200


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress"])
async def test_an_encoding_not_asked_for_is_an_invalid_body(encoding: str) -> None:
    async with (
        hostile(encoded(b"\x00\x01binary", encoding, chunked=True)) as server,
        UnipileClient(server.url, api_key=KEY) as client,
    ):
        with pytest.raises(TransientError) as raised:
            await client.get_chat("acc_1", "chat_1")
    assert raised.value.type == "http/invalid_body"


def test_participants_pages_are_far_below_the_cap() -> None:
    # The default cap leaves room: a full page of 100 participants with long names is ~30 KB.
    page = {"data": [participant("ACoAA" + "x" * 34) for _ in range(100)], "total_count": 100}
    assert len(orjson.dumps(page)) * 50 < DEFAULT_MAX_BODY_BYTES
