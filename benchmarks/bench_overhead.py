"""The engine's own CPU per request, against a bare aiohttp loop doing the same requests (#5, #13).

The simulator runs as `python -m bulkgroups sandbox --rate 1000000/s` in a process of its own, so
CPU counted here is only the client side. Every run is a fresh process of its own (imports and a
small warm-up done before the clock starts), so no run inherits another's heap, caches or
collector state; rounds are interleaved (bare, client, engine, in a rotating order) and the
figures are medians over `ROUNDS` rounds.

Each run sends, with at most 64 in flight, the same 20,200 requests to the same server: per
account the core account GET, then per chat the chat GET, the participants page (`limit=100`), a
removal (DELETE) and two adds (POST) — 200 accounts x 20 chats, with the same headers (key,
Accept, Accept-Encoding; `Cache-Control: no-cache` on reads; a JSON body on adds). Every answer
is read whole and every read decoded with orjson.

- `engine`: `apply_job` with limits off and no verification (`verify=False`), writing its ledger
  (a durable intent before each write, an `op` record after): everything a real run does for
  these requests but the pacing waits.
- `bare`: the loop a careful user would write with aiohttp: no pacing, no retries, no ledger.
- `client`: the bare loop's requests made through `UnipileClient` (no gate, no engine): how much
  of the difference is the client layer rather than the engine.
- All three run with the collector threshold the engine sets for a run (10,000): that is an
  environment setting, not work the engine saves.

Figures: `ratio` = engine CPU / bare CPU per request (median of the rounds' own ratios; target
1.15); `*_cpu_us`: client CPU (user + system, all threads: the ledger's fsync thread included)
per request, medians; `retry_wrapper_us`: what `attempts.call_with_retry` costs around one
successful no-op call. For a deterministic comparison between versions on a loaded machine, run
one child under callgrind (see `python -m benchmarks.bench_overhead --help`).
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import orjson

from benchmarks.figures import ROOT, Figure, Sandbox, sandbox_process
from bulkgroups.model import Job

ACCOUNTS = 200
CHATS = 20
CONCURRENCY = 64
ROUNDS = 5
TARGET = 1.15
KINDS = ("bare", "client", "engine")
GC_THRESHOLD = 10_000  # what the engine sets for a run (engine.workers.fewer_young_collections)


def _chat_rows(account: str, chat: str, i: int) -> tuple[str, str, list[str]]:
    """The chat's removal and its two adds (newcomers outside the simulator's pool)."""
    from bulkgroups.simulator import initial_members, owner_id

    owner = owner_id(account)
    member = next(m for m in initial_members(account, chat) if m != owner)
    return member, chat, [f"ACoAN{i:04d}a", f"ACoAN{i:04d}b"]


def requests_of(accounts: int, chats: int) -> int:
    return accounts + accounts * chats * 5


def _csv_job(path: Path, prefix: str, accounts: int, chats: int) -> None:
    lines = ["account,chat,action,user,name"]
    for a in range(accounts):
        account = f"{prefix}{a:03d}"
        for i in range(chats):
            removed, chat, added = _chat_rows(account, f"chat_{i:02d}", i)
            lines.append(f"{account},{chat},remove,{removed},")
            lines += [f"{account},{chat},add,{user}," for user in added]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------------------------
# The three loops (each run in a child process)
# --------------------------------------------------------------------------------------------


Rows = list[tuple[str, str, str, list[str]]]  # (account, chat, removed, added) per chat


def _rows(prefix: str, accounts: int, chats: int) -> Rows:
    rows: Rows = []
    for a in range(accounts):
        account = f"{prefix}{a:03d}"
        for i in range(chats):
            removed, chat, added = _chat_rows(account, f"chat_{i:02d}", i)
            rows.append((account, chat, removed, added))
    return rows


def _prepare(kind: str, prefix: str, accounts: int, chats: int, tmp: Path) -> Job | Rows:
    """What a run needs that is not its requests' cost: the engine's job, loaded; the loops'
    list of chats and members."""
    if kind != "engine":
        return _rows(prefix, accounts, chats)
    from bulkgroups.jobs import load_job

    job_path = tmp / f"{prefix}.csv"
    _csv_job(job_path, prefix, accounts, chats)
    return load_job(job_path)


async def _engine(url: str, key: str, work: Job | Rows, tmp: Path) -> int:
    from bulkgroups.client import UnipileClient
    from bulkgroups.engine import EngineConfig, apply_job

    assert isinstance(work, Job)
    config = EngineConfig(
        rate=None, write_rate=None, verify=False, concurrency=CONCURRENCY, max_removals=None
    )
    async with UnipileClient(url, api_key=key, concurrency=CONCURRENCY) as client:
        result = await apply_job(work, client, ledger=tmp / "ledger.jsonl", config=config)
    writes = sum(len(chat.add) + len(chat.remove) for chat in work.chats)
    if result.exit_code != 0 or result.counts["applied"] != writes:
        raise RuntimeError(f"the engine run did not succeed: {dict(result.counts)}")
    return len(work.account_ids()) + len(work.chats) * 2 + writes


async def _bare(url: str, key: str, work: Job | Rows, tmp: Path) -> int:
    import aiohttp

    assert isinstance(work, list)
    headers = {"X-API-KEY": key, "Accept": "application/json", "Accept-Encoding": "gzip, deflate"}
    fresh = {**headers, "Cache-Control": "no-cache"}
    posted = {**headers, "Content-Type": "application/json"}
    base = url + "/v2/"
    sent = 0
    connector = aiohttp.TCPConnector(limit=CONCURRENCY, limit_per_host=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def call(method: str, url: str, hdrs: dict[str, str], body: bytes | None) -> None:
            nonlocal sent
            async with session.request(method, url, headers=hdrs, data=body) as response:
                payload = await response.read()
                if response.status >= 300:
                    raise RuntimeError(f"{method} {url}: {response.status}")
                if method == "GET":
                    orjson.loads(payload)
            sent += 1

        async def check(ids: Iterator[str]) -> None:
            for account in ids:
                await call("GET", f"{base}accounts/{account}", fresh, None)

        async def chat_work(items: Iterator[tuple[str, str, str, list[str]]]) -> None:
            for account, chat, removed, added in items:
                path = f"{base}{account}/chats/{chat}"
                await call("GET", path, fresh, None)
                await call("GET", f"{path}/participants?limit=100", fresh, None)
                await call("DELETE", f"{path}/participants/{removed}", headers, None)
                for user in added:
                    body = orjson.dumps({"user_id": user})
                    await call("POST", f"{path}/participants", posted, body)

        ids = iter(dict.fromkeys(row[0] for row in work))
        async with anyio.create_task_group() as tg:
            for _ in range(CONCURRENCY):
                tg.start_soon(check, ids)
        items = iter(work)
        async with anyio.create_task_group() as tg:
            for _ in range(CONCURRENCY):
                tg.start_soon(chat_work, items)
    return sent


async def _client(url: str, key: str, work: Job | Rows, tmp: Path) -> int:
    """The bare loop's requests through `UnipileClient` (no gate, no engine)."""
    from bulkgroups.client import UnipileClient

    assert isinstance(work, list)
    sent = 0
    async with UnipileClient(url, api_key=key, concurrency=CONCURRENCY) as client:
        ids = iter(dict.fromkeys(row[0] for row in work))
        items = iter(work)

        async def check() -> None:
            nonlocal sent
            for account in ids:
                await client.get_account(account)
                sent += 1

        async def chat_work() -> None:
            nonlocal sent
            for account, chat, removed, added in items:
                await client.get_chat(account, chat, fresh=True)
                _ = [p async for p in client.participants(account, chat, fresh=True)]
                await client.remove_participant(account, chat, removed)
                for user in added:
                    await client.add_participant(account, chat, user)
                sent += 3 + len(added)

        async with anyio.create_task_group() as tg:
            for _ in range(CONCURRENCY):
                tg.start_soon(check)
        async with anyio.create_task_group() as tg:
            for _ in range(CONCURRENCY):
                tg.start_soon(chat_work)
    return sent


LOOPS = {"engine": _engine, "bare": _bare, "client": _client}


def _child(
    kind: str, url: str, key: str, prefix: str, accounts: int, chats: int
) -> dict[str, float]:
    """In the child process: a warm-up of 10 accounts x 4 chats, then the measured run (its
    job or list prepared before the clock starts)."""
    import bulkgroups.client
    import bulkgroups.engine  # noqa: F401  (imports are not the run's cost)

    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
    loop = LOOPS[kind]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if accounts > 10:
            (tmp / "warm").mkdir()
            warm = _prepare(kind, f"warm{prefix}", 10, 4, tmp)
            anyio.run(loop, url, key, warm, tmp / "warm")
        work = _prepare(kind, prefix, accounts, chats, tmp)
        cpu, wall = time.process_time(), time.perf_counter()
        sent = anyio.run(loop, url, key, work, tmp)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if sent != requests_of(accounts, chats):
        raise RuntimeError(f"{kind} sent {sent} requests, not {requests_of(accounts, chats)}")
    return {"cpu": cpu, "wall": wall, "requests": float(sent)}


def _run_child(kind: str, sandbox: Sandbox, prefix: str, accounts: int) -> dict[str, float]:
    command = ["child", kind, sandbox.url, prefix, str(accounts), str(CHATS)]
    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_overhead", *command],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "BULKGROUPS_BENCH_KEY": sandbox.api_key},
    ).stdout
    result: dict[str, float] = json.loads(output.strip().splitlines()[-1])
    return result


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


def run(*, rounds: int = ROUNDS, accounts: int = ACCOUNTS) -> list[Figure]:
    """`rounds` rounds, each kind once per round in a rotating order; medians."""
    runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in KINDS}
    ratios: list[float] = []
    with sandbox_process() as sandbox:
        for r in range(rounds):
            print(f"    overhead: round {r + 1}", flush=True)
            order = KINDS[r % 3 :] + KINDS[: r % 3]
            this_round = {
                kind: _run_child(kind, sandbox, f"{kind}{r}_", accounts) for kind in order
            }
            for kind, result in this_round.items():
                runs[kind].append(result)
            ratios.append(this_round["engine"]["cpu"] / this_round["bare"]["cpu"])
    requests = runs["engine"][0]["requests"]
    per = {k: statistics.median(x["cpu"] for x in v) / requests * 1e6 for k, v in runs.items()}
    wall = {k: statistics.median(x["wall"] for x in v) for k, v in runs.items()}
    spread = f"rounds {min(ratios):.3f}..{max(ratios):.3f}"
    return [
        Figure(
            "overhead.ratio",
            statistics.median(ratios),
            "",
            TARGET,
            "<=",
            f"engine CPU / bare CPU per request, median of {rounds} rounds ({spread})",
        ),
        Figure("overhead.engine_cpu_us", per["engine"], "µs/req"),
        Figure("overhead.bare_cpu_us", per["bare"], "µs/req"),
        Figure(
            "overhead.client_cpu_us",
            per["client"],
            "µs/req",
            note="the same loop through UnipileClient, no gate/engine",
        ),
        Figure(
            "overhead.retry_wrapper_us",
            _retry_wrapper_us(),
            "µs/call",
            note="call_with_retry around a no-op call, vs awaiting it",
        ),
        Figure("overhead.requests", requests, "", note="per run"),
        Figure("overhead.engine_rps", requests / wall["engine"], "req/s", note="wall"),
        Figure("overhead.bare_rps", requests / wall["bare"], "req/s", note="wall"),
    ]


USAGE = """\
python -m benchmarks.bench_overhead            all rounds, the figures
python -m benchmarks.bench_overhead child KIND URL PREFIX [ACCOUNTS CHATS]
    one run (KIND: engine, bare, client) against a running `bulkgroups sandbox` (its key in
    $BULKGROUPS_BENCH_KEY; PREFIX names fresh accounts). For callgrind, run two sizes and take
    the difference per request, e.g. ACCOUNTS 10 and 50 with CHATS 10:
    valgrind --tool=callgrind --callgrind-out-file=/dev/null python -m benchmarks.bench_overhead \\
        child engine URL e10_ 10 10     (the total instruction count is printed at the end)
"""


if __name__ == "__main__":
    if len(sys.argv) >= 5 and sys.argv[1] == "child":
        kind, url, prefix = sys.argv[2:5]
        accounts, chats = (
            (int(sys.argv[5]), int(sys.argv[6])) if len(sys.argv) > 6 else (ACCOUNTS, CHATS)
        )
        key = os.environ["BULKGROUPS_BENCH_KEY"]
        print(json.dumps(_child(kind, url, key, prefix, accounts, chats)))
    elif len(sys.argv) > 1:
        print(USAGE)
    else:
        for figure in run():
            print(f"{figure.name:28} {figure.value_text:>14}  {figure.verdict}  {figure.note}")
