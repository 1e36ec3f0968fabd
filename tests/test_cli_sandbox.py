"""`bulkgroups sandbox` as a real process: the lines it prints, the API it serves, its limits and
faults as documented, and a clean stop on SIGINT / SIGTERM."""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from helpers.cli import Cli

ROOT = Path(__file__).parent.parent
STARTUP_SECONDS = 30.0


@dataclass
class Sandbox:
    process: subprocess.Popen[bytes]
    url: str
    api_key: str

    def stop(self, signum: int = signal.SIGINT) -> tuple[int, str]:
        """Send `signum`, wait for the process; its exit code and what it wrote on stderr."""
        self.process.send_signal(signum)
        _, err = self.process.communicate(timeout=STARTUP_SECONDS)
        return self.process.returncode, err.decode()


def _read_banner(process: subprocess.Popen[bytes]) -> dict[str, str]:
    """The `URL:` and `API key:` lines, read from the pipe itself (no buffered readline that could
    hold the second line while we wait on the descriptor) and never past a deadline."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    received = b""
    deadline = time.monotonic() + STARTUP_SECONDS
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while received.count(b"\n") < 2:
            if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                raise AssertionError(f"no banner within {STARTUP_SECONDS} s: {received!r}")
            chunk = os.read(fd, 4096)
            if not chunk:
                raise AssertionError(f"sandbox exited early: {process.communicate()[1]!r}")
            received += chunk
    banner: dict[str, str] = {}
    for line in received.decode().splitlines()[:2]:
        label, _, value = line.partition(": ")
        banner[label] = value
    return banner


def start_sandbox(*flags: str) -> Sandbox:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNIPILE_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "bulkgroups", "sandbox", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )
    try:
        banner = _read_banner(process)
    except BaseException:
        process.kill()
        process.communicate()
        raise
    assert set(banner) == {"URL", "API key"}, banner
    return Sandbox(process, banner["URL"], banner["API key"])


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """`bulkgroups sandbox --port 0 --rate 5/s --faults 500=0.1 --seed 1`, killed if left running."""
    running = start_sandbox("--port", "0", "--rate", "5/s", "--faults", "500=0.1", "--seed", "1")
    try:
        yield running
    finally:
        if running.process.poll() is None:
            running.process.kill()
            running.process.communicate()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


async def get(session: aiohttp.ClientSession, url: str, key: str) -> Answer:
    async with session.get(url, headers={"X-API-KEY": key}) as response:
        return Answer(response.status, dict(response.headers), await response.json())


def assert_problem(answer: Answer, status: int) -> None:
    """RFC 7807 as unipile-v2.md shows it."""
    assert answer.status == status
    assert answer.headers["Content-Type"].startswith("application/json")
    body = answer.body
    assert body["object"] == "Error"
    assert body["status"] == status
    for field in ("type", "title", "detail", "req_id"):
        assert isinstance(body[field], str) and body[field], field


def participants(sandbox: Sandbox, account: str, chat: str) -> str:
    return f"{sandbox.url}/v2/{account}/chats/{chat}/participants"


async def test_the_sandbox_prints_its_url_and_key_and_serves_participant_pages(
    sandbox: Sandbox,
) -> None:
    assert sandbox.url.startswith("http://127.0.0.1:")
    assert sandbox.api_key
    async with aiohttp.ClientSession() as session:
        # 500s are on at 10%: a few tries reach a real page.
        for _ in range(10):
            answer = await get(session, participants(sandbox, "acc_1", "chat_1"), sandbox.api_key)
            if answer.status != 500:
                break
            assert_problem(answer, 500)
            await anyio.sleep(0.25)
    assert answer.status == 200
    page = answer.body
    assert isinstance(page["data"], list) and page["data"]
    for item in page["data"]:
        assert item["object"] == "GroupParticipant"
        assert isinstance(item["is_self"], bool) and isinstance(item["is_admin"], bool)
        user = item["user"]
        assert user["object"] == "User"
        assert isinstance(user["id"], str) and user["id"]
        assert user["type"] in ("individual", "organization", "other")
        assert isinstance(user["display_name"], str) and user["display_name"]
    assert sum(item["is_self"] for item in page["data"]) == 1  # the account owner
    assert page.get("next_cursor") is None  # a small chat fits one page


async def test_a_wrong_key_gets_an_rfc_7807_401(sandbox: Sandbox) -> None:
    async with aiohttp.ClientSession() as session:
        answer = await get(session, participants(sandbox, "acc_1", "chat_1"), "not-the-key")
    assert_problem(answer, 401)
    assert answer.body["type"].startswith("api/")
    assert sandbox.api_key not in str(answer.body)


async def test_more_than_the_rate_in_a_second_meets_429_with_retry_after(sandbox: Sandbox) -> None:
    url = participants(sandbox, "acc_burst", "chat_1")
    async with aiohttp.ClientSession() as session:
        answers: list[Answer] = []

        async def one() -> None:
            answers.append(await get(session, url, sandbox.api_key))

        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(one)
    limited = [a for a in answers if a.status == 429]
    assert limited, Counter(a.status for a in answers)
    assert len(answers) - len(limited) <= 5  # --rate 5/s: at most 5 in any second get through
    for answer in limited:
        assert_problem(answer, 429)
        assert answer.body["type"] == "api/too_many_requests"
        assert int(answer.headers["Retry-After"]) >= 1


async def test_faults_500_at_10_percent_appear_as_rfc_7807_errors(sandbox: Sandbox) -> None:
    statuses: Counter[int] = Counter()
    async with aiohttp.ClientSession() as session:
        # 10 accounts x 5 reads: each account stays within its 5/s.
        for account in range(10):
            for _ in range(5):
                answer = await get(
                    session, participants(sandbox, f"acc_f{account}", "chat_1"), sandbox.api_key
                )
                statuses[answer.status] += 1
                if answer.status == 500:
                    assert_problem(answer, 500)
                    assert answer.body["type"] == "api/internal_error"
    assert set(statuses) == {200, 500}, statuses
    assert 1 <= statuses[500] <= 15, statuses


def test_sigint_stops_the_sandbox_cleanly(sandbox: Sandbox) -> None:
    code, err = sandbox.stop(signal.SIGINT)
    assert code == 0, err
    assert "Traceback" not in err


def test_a_fixed_port_and_key_are_used_and_sigterm_stops_it() -> None:
    port = free_port()
    running = start_sandbox("--port", str(port), "--api-key", "sk-sandbox-fixed")
    try:
        assert running.url == f"http://127.0.0.1:{port}"
        assert running.api_key == "sk-sandbox-fixed"

        async def fetch() -> Answer:
            async with aiohttp.ClientSession() as session:
                return await get(
                    session, participants(running, "acc_1", "chat_1"), "sk-sandbox-fixed"
                )

        assert anyio.run(fetch).status == 200
    finally:
        code, err = running.stop(signal.SIGTERM)
    assert code == 0, err


def test_a_port_in_use_exits_1_with_a_message() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "bulkgroups", "sandbox", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=STARTUP_SECONDS,
            cwd=ROOT,
        )
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: cannot serve on 127.0.0.1:{port}")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--faults", "boom=0.1"], "--faults: unknown fault kind 'boom'"),
        (["--faults", "500=2"], "--faults:"),
        (["--rate", "fast"], "--rate: not a rate: 'fast'"),
    ],
)
def test_bad_sandbox_settings_exit_1_before_serving(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    flags: list[str],
    message: str,
) -> None:
    run = Cli(capsys, monkeypatch).run("sandbox", "--port", "0", *flags)
    assert run.code == 1
    assert run.err.startswith(f"error: {message}")
    assert run.out == ""  # no URL line: nothing was served
