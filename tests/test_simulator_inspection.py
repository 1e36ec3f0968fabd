"""What tests can see and set: the Python inspection API, its HTTP twin under /_sim, the runners."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
import threading

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bulkgroups.model import parse_rate
from bulkgroups.simulator import (
    SimConfig,
    Simulator,
    create_app,
    initial_members,
    owner_id,
    run_in_thread,
    run_sandbox,
)
from bulkgroups.simulator.faults import FaultDice, parse_faults

from helpers.simulator import Http, segment


async def test_the_request_log_records_arrivals_decoded(sim: Simulator, http: Http) -> None:
    await http.get(sim, "/v2/accounts/acc_1")
    await http.get(sim, "/v2/acc_1/chats/chat_1")
    await http.delete(sim, f"/v2/acc_1/chats/chat_1/participants/{segment('a/b')}")
    await http.get(sim, "/v2/acc_1/chats/chat_1", key="wrong")
    log = sim.requests()
    assert [(e.method, e.kind, e.status) for e in log] == [
        ("GET", "core", 200),
        ("GET", "read", 200),
        ("DELETE", "write", 404),
        ("GET", None, 401),
    ]
    assert [e.is_write for e in log] == [False, False, True, False]
    assert log[2].user == "a/b" and log[2].path.endswith("a%2Fb")
    assert log[2].error_type == "api/resource_not_found"
    assert all(a.at <= b.at for a, b in itertools.pairwise(log))
    assert sim.timeline("acc_1") == (log[1].at, log[2].at)
    assert sim.timeline("acc_1", writes_only=True) == (log[2].at,)
    sim.reset_log()
    assert sim.requests() == ()


async def test_configure_account_and_chat(sim: Simulator, http: Http) -> None:
    sim.configure_account("acc_1", status="disconnected")
    assert (await http.get(sim, "/v2/accounts/acc_1")).json()["status"] == "disconnected"
    sim.configure_account("acc_1", status="running", product="recruiter")
    assert (await http.get(sim, "/v2/acc_1/chats/c")).status == 403
    sim.configure_account("acc_1", product="classic", rate="7/s", write_rate="1/min")
    snapshot = sim.account("acc_1")
    assert (snapshot.rate, snapshot.write_rate) == (parse_rate("7/s"), parse_rate("1/min"))
    assert snapshot.owner == owner_id("acc_1")

    sim.configure_chat("acc_1", "c", members=["ACoAA0001"], name="Team", readonly=True)
    chat = sim.chat("acc_1", "c")
    assert (chat.name, chat.readonly, chat.deleted, chat.type) == ("Team", True, False, "group")
    assert chat.members == (owner_id("acc_1"), "ACoAA0001")
    sim.configure_chat("acc_1", "c", members=["ACoAA0002"], with_owner=False, type="channel")
    assert sim.members("acc_1", "c") == {"ACoAA0002"}
    assert (await http.get(sim, "/v2/acc_1/chats/c")).json()["is_channel"] is True


def test_a_chat_snapshot_before_any_request_shows_its_initial_members(sim: Simulator) -> None:
    assert sim.chat("acc_9", "chat_9").members == initial_members("acc_9", "chat_9")
    assert sim.chat("acc_9", "gone_9").deleted


async def test_the_http_inspection_api_mirrors_the_python_one(sim: Simulator, http: Http) -> None:
    assert (await http.get(sim, "/_sim/violations", key="wrong")).status == 401
    configured = await http.post(
        sim, "/_sim/accounts/acc_1/chats/chat_x", {"members": ["ACoAA0003"], "name": "X"}
    )
    assert configured.status == 200
    members = (await http.get(sim, "/_sim/accounts/acc_1/chats/chat_x/members")).json()["members"]
    assert members == sorted([owner_id("acc_1"), "ACoAA0003"])
    chat = (await http.get(sim, "/_sim/accounts/acc_1/chats/chat_x")).json()
    assert (chat["name"], chat["members"]) == ("X", [owner_id("acc_1"), "ACoAA0003"])
    assert (await http.post(sim, "/_sim/accounts/acc_1", {"rate": "1/10s"})).status == 200
    assert (await http.get(sim, "/_sim/accounts/acc_1")).json()["rate"] == "1/10s"
    for _ in range(3):
        await http.get(sim, "/v2/acc_1/chats/chat_x")
    violations = (await http.get(sim, "/_sim/violations")).json()
    assert violations == {"total": 2, "accounts": {"acc_1": {"general": 2, "write": 0, "total": 2}}}
    log = (await http.get(sim, "/_sim/requests?account=acc_1")).json()["requests"]
    assert [e["status"] for e in log] == [200, 429, 429]
    timeline = (await http.get(sim, "/_sim/accounts/acc_1/timeline")).json()["timeline"]
    assert timeline == [e["at"] for e in log]
    assert (await http.post(sim, "/_sim/faults", {"faults": "503=1", "seed": 3})).status == 200
    assert (await http.get(sim, "/v2/acc_2/chats/c")).status == 503
    assert (await http.post(sim, "/_sim/reset-log", {})).status == 200
    assert sim.requests() == () and sim.violations() == 0
    for bad_settings in ({"colour": "blue"}, {"status": "sleepy"}, {"product": "premium"}):
        bad = await http.post(sim, "/_sim/accounts/acc_1", bad_settings)
        assert (bad.status, bad.json()["type"]) == (400, "api/invalid_parameters")


async def test_create_app_serves_under_aiohttp_test_server() -> None:
    simulator = Simulator()
    async with TestServer(create_app(simulator)) as server, aiohttp.ClientSession() as session:
        headers = {"X-API-KEY": simulator.api_key}
        async with session.get(server.make_url("/v2/accounts/acc_1"), headers=headers) as answer:
            assert answer.status == 200
            assert (await answer.json())["user_id"] == owner_id("acc_1")


async def test_run_in_thread_serves_then_shuts_down_cleanly() -> None:
    threads_before = threading.active_count()
    with run_in_thread() as sim:
        url, key = sim.url, sim.api_key
        assert url.startswith("http://127.0.0.1:")
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{url}/v2/accounts/a", headers={"X-API-KEY": key}) as answer,
        ):
            assert answer.status == 200
    assert threading.active_count() == threads_before
    with pytest.raises(RuntimeError):
        sim.url  # noqa: B018
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(f"{url}/v2/accounts/a", headers={"X-API-KEY": key})


def test_the_api_key_is_generated_and_never_in_the_repr(sim: Simulator) -> None:
    assert len(sim.api_key) >= 20
    assert sim.api_key not in repr(sim)
    assert Simulator().api_key != sim.api_key
    assert "s3cret" not in repr(SimConfig(api_key="s3cret")) + repr(
        Simulator(SimConfig(api_key="s3cret"))
    )


def test_run_sandbox_refuses_bad_settings_before_serving() -> None:
    lines: list[str] = []
    with pytest.raises(ValueError, match="unknown fault kind"):
        run_sandbox(faults="418=0.5", print_fn=lines.append)
    with pytest.raises(ValueError):
        run_sandbox(rate="fast", print_fn=lines.append)
    assert lines == []


SANDBOX = "from bulkgroups.simulator import run_sandbox; run_sandbox(api_key='k', rate='5/s', faults='500=0.1', seed=1)"


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
async def test_sandbox_prints_url_and_key_then_serves_until_signalled(stop: signal.Signals) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SANDBOX,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    try:
        assert process.stdout is not None
        url_line = (await process.stdout.readline()).decode()
        key_line = (await process.stdout.readline()).decode()
        assert url_line.startswith("URL: http://127.0.0.1:")
        assert key_line == "API key: k\n"
        url = url_line.removeprefix("URL: ").strip()
        statuses = []
        async with aiohttp.ClientSession(headers={"X-API-KEY": "k"}) as session:
            for _ in range(12):
                async with session.get(f"{url}/v2/acc_1/chats/chat_1") as answer:
                    assert answer.headers["x-ratelimit-limit"] == "5"
                    statuses.append(answer.status)
        # Past the limiter (5 per window), each request meets the seeded dice for acc_1.
        dice = FaultDice(parse_faults("500=0.1"), seed=1)
        passed = [s for s in statuses if s != 429]
        expected = [500 if dice.roll("acc_1", is_write=False) else 200 for _ in passed]
        assert passed == expected
        assert 429 in statuses
        process.send_signal(stop)
        assert await asyncio.wait_for(process.wait(), timeout=10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_a_generated_key_never_reads_as_a_command_line_option() -> None:
    # `bulkgroups plan --api-key KEY` with a key starting with `-` is argparse's next option.
    keys = {Simulator(SimConfig()).api_key for _ in range(200)}
    assert len(keys) == 200
    assert not any(key.startswith("-") for key in keys)


@pytest.mark.parametrize(
    "bad_settings",
    [
        {"latency": "5ms"},
        {"latency": -1},
        {"latency": True},
        {"provider_write_limit": "3"},
        {"provider_write_limit": -1},
        {"provider_write_limit": 2.5},
    ],
)
async def test_settings_of_the_wrong_type_are_refused_and_the_account_keeps_working(
    sim: Simulator, http: Http, bad_settings: dict[str, object]
) -> None:
    # Before: stored as given, then every request of the account failed inside the server (a
    # string compared with a number) with an aiohttp 500 page.
    bad = await http.post(sim, "/_sim/accounts/acc_1", bad_settings)
    assert (bad.status, bad.json()["type"]) == (400, "api/invalid_parameters")
    assert (await http.get(sim, "/v2/acc_1/chats/chat_1")).status == 200
    added = await http.post(sim, "/v2/acc_1/chats/chat_1/participants", {"user_id": "ACoAA0499"})
    assert added.status == 200


@pytest.mark.parametrize(
    "bad_settings",
    [
        {"members": "ACoAA0003"},  # a string would be taken a character at a time
        {"members": [1, 2]},
        {"name": 7},
        {"type": "guild"},
        {"readonly": "yes"},
        {"deleted": 1},
        {"with_owner": "false"},
    ],
)
async def test_chat_settings_of_the_wrong_type_are_refused_and_change_nothing(
    sim: Simulator, http: Http, bad_settings: dict[str, object]
) -> None:
    before = sim.chat("acc_1", "chat_1")
    bad = await http.post(sim, "/_sim/accounts/acc_1/chats/chat_1", bad_settings)
    assert (bad.status, bad.json()["type"]) == (400, "api/invalid_parameters")
    assert sim.chat("acc_1", "chat_1") == before
