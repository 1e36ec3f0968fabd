"""The engine's own CPU per request, against a bare aiohttp loop doing the same requests (#5).

The simulator runs as `python -m bulkgroups sandbox --rate 1000000/s` in a process of its own,
so `time.process_time()` here counts only the client side. Both runs send, with at most 64 in
flight, the same 20,200 requests: per account the core account GET, then per chat the chat GET,
the participants page, two adds (POST) and a removal (DELETE) — 200 accounts x 20 chats. The
engine runs with limits off and no verification (`verify=False`), writing its ledger; the bare
loop sends the same requests with aiohttp and decodes each JSON answer with orjson, nothing else.

- `engine_cpu_us` / `bare_cpu_us`: client CPU (user + system, all threads) per request.
- `client_cpu_us`: the bare loop's requests made through `UnipileClient` (no gate, no engine):
  how much of the difference is the client layer rather than the engine.
- `retry_wrapper_us`: what `attempts.call_with_retry` (a tenacity `AsyncRetrying` per call)
  costs around one successful call, measured alone: part of the engine's share.
- `overhead`: (engine - bare) / bare; the target is under 0.40.
- `engine_wall_s` / `engine_rps`: wall time and requests/s of the engine run (the single-process
  sandbox is usually the bottleneck, so these are figures, not targets).
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import anyio
import orjson

from benchmarks.figures import Figure, Sandbox, sandbox_process
from bulkgroups.client import UnipileClient
from bulkgroups.engine import EngineConfig, apply_job
from bulkgroups.jobs import load_job
from bulkgroups.simulator import initial_members, owner_id

ACCOUNTS = 200
CHATS = 20
CONCURRENCY = 64
ROUNDS = 2  # each measured twice, interleaved; the lower CPU figure of each is kept


def _chat_rows(account: str, chat: str, i: int) -> tuple[str, str, list[str]]:
    """The chat's removal and its two adds (newcomers outside the simulator's pool)."""
    owner = owner_id(account)
    member = next(m for m in initial_members(account, chat) if m != owner)
    return member, chat, [f"ACoAN{i:04d}a", f"ACoAN{i:04d}b"]


def _csv_job(path: Path, prefix: str, accounts: int, chats: int) -> None:
    lines = ["account,chat,action,user,name"]
    for a in range(accounts):
        account = f"{prefix}{a:03d}"
        for i in range(chats):
            removed, chat, added = _chat_rows(account, f"chat_{i:02d}", i)
            lines.append(f"{account},{chat},remove,{removed},")
            lines += [f"{account},{chat},add,{user}," for user in added]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _engine_run(sandbox: Sandbox, job_path: Path, ledger: Path) -> tuple[float, float, int]:
    job = load_job(job_path)
    config = EngineConfig(
        rate=None, write_rate=None, verify=False, concurrency=CONCURRENCY, max_removals=None
    )

    async def main() -> int:
        async with UnipileClient(
            sandbox.url, api_key=sandbox.api_key, concurrency=CONCURRENCY
        ) as client:
            result = await apply_job(job, client, ledger=ledger, config=config)
        if result.exit_code != 0:
            raise RuntimeError(f"the engine run did not succeed: {dict(result.counts)}")
        return sum(result.counts.values())

    cpu, wall = time.process_time(), time.perf_counter()
    operations = anyio.run(main)
    return time.process_time() - cpu, time.perf_counter() - wall, operations


def _bare_run(sandbox: Sandbox, prefix: str, accounts: int, chats: int) -> tuple[float, float, int]:
    headers = {"X-API-KEY": sandbox.api_key, "Accept": "application/json"}
    fresh = {**headers, "Cache-Control": "no-cache"}
    posted = {**headers, "Content-Type": "application/json"}
    base = sandbox.url + "/v2/"
    sent = 0

    async def main() -> None:
        nonlocal sent
        connector = aiohttp.TCPConnector(limit=CONCURRENCY, limit_per_host=CONCURRENCY)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def call(method: str, url: str, hdrs: dict[str, str], body: bytes | None) -> None:
                nonlocal sent
                async with session.request(method, url, headers=hdrs, data=body) as response:
                    payload = await response.read()
                    if response.status >= 300:
                        raise RuntimeError(f"{method} {url}: {response.status}")
                    orjson.loads(payload)
                sent += 1

            account_ids = [f"{prefix}{a:03d}" for a in range(accounts)]

            def preflight() -> Iterator[str]:
                yield from account_ids

            def chat_work() -> Iterator[tuple[str, int]]:
                for account in account_ids:
                    for i in range(chats):
                        yield account, i

            async def check(ids: Iterator[str]) -> None:
                for account in ids:
                    await call("GET", f"{base}accounts/{account}", headers, None)

            async def work(items: Iterator[tuple[str, int]]) -> None:
                for account, i in items:
                    removed, chat, added = _chat_rows(account, f"chat_{i:02d}", i)
                    path = f"{base}{account}/chats/{chat}"
                    await call("GET", path, fresh, None)
                    await call("GET", f"{path}/participants?limit=100", fresh, None)
                    await call("DELETE", f"{path}/participants/{removed}", headers, None)
                    for user in added:
                        body = orjson.dumps({"user_id": user})
                        await call("POST", f"{path}/participants", posted, body)

            ids = preflight()
            async with anyio.create_task_group() as tg:
                for _ in range(CONCURRENCY):
                    tg.start_soon(check, ids)
            items = chat_work()
            async with anyio.create_task_group() as tg:
                for _ in range(CONCURRENCY):
                    tg.start_soon(work, items)

    cpu, wall = time.process_time(), time.perf_counter()
    anyio.run(main)
    return time.process_time() - cpu, time.perf_counter() - wall, sent


def _client_run(
    sandbox: Sandbox, prefix: str, accounts: int, chats: int
) -> tuple[float, float, int]:
    """The bare loop's requests through `UnipileClient` (no gate, no engine): the client layer's
    share of the engine's cost."""
    sent = 0

    async def main() -> None:
        nonlocal sent
        async with UnipileClient(
            sandbox.url, api_key=sandbox.api_key, concurrency=CONCURRENCY
        ) as client:
            account_ids = iter([f"{prefix}{a:03d}" for a in range(accounts)])
            items = iter([(f"{prefix}{a:03d}", i) for a in range(accounts) for i in range(chats)])

            async def check() -> None:
                nonlocal sent
                for account in account_ids:
                    await client.get_account(account)
                    sent += 1

            async def work() -> None:
                nonlocal sent
                for account, i in items:
                    removed, chat, added = _chat_rows(account, f"chat_{i:02d}", i)
                    await client.get_chat(account, chat, fresh=True)
                    _ = [p async for p in client.participants(account, chat, fresh=True)]
                    await client.remove_participant(account, chat, removed)
                    for user in added:
                        await client.add_participant(account, chat, user)
                    sent += 5

            async with anyio.create_task_group() as tg:
                for _ in range(CONCURRENCY):
                    tg.start_soon(check)
            async with anyio.create_task_group() as tg:
                for _ in range(CONCURRENCY):
                    tg.start_soon(work)

    cpu, wall = time.process_time(), time.perf_counter()
    anyio.run(main)
    return time.process_time() - cpu, time.perf_counter() - wall, sent


def _retry_wrapper_us(calls: int = 20_000) -> float:
    """µs that `attempts.call_with_retry` adds to one successful call (every engine request goes
    through it), against awaiting the same no-op call directly."""
    import random

    from bulkgroups.attempts import Attempts, call_with_retry
    from bulkgroups.pacing import Pacing, PacingPolicy, RetryPolicy

    async def call() -> None:
        pass

    async def main() -> float:
        pacer = Pacing(concurrency=64, default=PacingPolicy(rate=None, write_rate=None)).pacer("a")
        policy, rng = RetryPolicy(), random.Random(0)
        start = time.process_time()
        for _ in range(calls):
            await call()
        direct = time.process_time() - start
        start = time.process_time()
        for _ in range(calls):
            await call_with_retry(
                call, pacer=pacer, policy=policy, attempts=Attempts(), write=False, rng=rng
            )
        return (time.process_time() - start - direct) / calls * 1e6

    return anyio.run(main)


def run() -> list[Figure]:
    """Warm both paths up, then measure each ROUNDS times, interleaved."""
    requests = ACCOUNTS + ACCOUNTS * CHATS * 5
    engine: list[tuple[float, float]] = []
    bare: list[tuple[float, float]] = []
    client: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory() as tmp, sandbox_process() as sandbox:
        root = Path(tmp)
        _csv_job(root / "warm.csv", "warm_", 10, 4)
        _engine_run(sandbox, root / "warm.csv", root / "warm.jsonl")
        _bare_run(sandbox, "warmbare_", 10, 4)
        _client_run(sandbox, "warmclient_", 10, 4)
        for r in range(ROUNDS):
            job_path = root / f"job{r}.csv"
            _csv_job(job_path, f"eng{r}_", ACCOUNTS, CHATS)
            bare_cpu, bare_wall, sent = _bare_run(sandbox, f"bare{r}_", ACCOUNTS, CHATS)
            assert sent == requests, sent
            bare.append((bare_cpu, bare_wall))
            client_cpu, client_wall, sent = _client_run(sandbox, f"client{r}_", ACCOUNTS, CHATS)
            assert sent == requests, sent
            client.append((client_cpu, client_wall))
            cpu, wall, operations = _engine_run(sandbox, job_path, root / f"l{r}.jsonl")
            assert operations == ACCOUNTS * CHATS * 3, operations
            engine.append((cpu, wall))
    engine_cpu, engine_wall = min(engine)
    bare_cpu, bare_wall = min(bare)
    per_engine = engine_cpu / requests * 1e6
    per_bare = bare_cpu / requests * 1e6
    per_client = min(client)[0] / requests * 1e6
    return [
        Figure(
            "overhead.ratio",
            (per_engine - per_bare) / per_bare,
            "",
            0.40,
            "<=",
            "(engine - bare) / bare, client CPU per request",
        ),
        Figure("overhead.engine_cpu_us", per_engine, "µs/req"),
        Figure("overhead.bare_cpu_us", per_bare, "µs/req"),
        Figure(
            "overhead.client_cpu_us",
            per_client,
            "µs/req",
            note="same loop through UnipileClient, no gate/engine",
        ),
        Figure(
            "overhead.retry_wrapper_us",
            _retry_wrapper_us(),
            "µs/call",
            note="call_with_retry around a no-op call, vs awaiting it",
        ),
        Figure("overhead.requests", float(requests), "", note="per run"),
        Figure("overhead.engine_wall_s", engine_wall, "s"),
        Figure("overhead.engine_rps", requests / engine_wall, "req/s"),
        Figure("overhead.bare_wall_s", bare_wall, "s"),
        Figure("overhead.bare_rps", requests / bare_wall, "req/s"),
    ]


if __name__ == "__main__":
    for figure in run():
        print(f"{figure.name:28} {figure.value_text:>14}  {figure.verdict}  {figure.note}")


def profile(top: int = 20) -> str:
    """The engine run under cProfile (for a missed target): the top functions by own time and
    bulkgroups' and tenacity's by cumulative time, paths shortened."""
    import cProfile
    import io
    import pstats

    with tempfile.TemporaryDirectory() as tmp, sandbox_process() as sandbox:
        job_path = Path(tmp) / "job.csv"
        _csv_job(job_path, "prof_", ACCOUNTS, CHATS)
        profiler = cProfile.Profile()
        profiler.enable()
        _engine_run(sandbox, job_path, Path(tmp) / "l.jsonl")
        profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(r"bulkgroups/|tenacity/", top)
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    text = "\n".join(
        line.replace(str(Path(sys.prefix)), "<venv>").replace(str(Path.cwd()) + "/", "")
        for line in lines
        if not line.lstrip().startswith(("Ordered by", "List reduced", "function calls"))
    )
    return text
