"""Helpers for the outcome and fault tests: a fast engine configuration, a client with a
bystander who changes things between our requests, and readers of the ledger and the request log.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from bulkgroups.client import UnipileClient
from bulkgroups.engine import EngineConfig, RunResult, apply_job
from bulkgroups.jobs import load_job
from bulkgroups.model import AccountInfo, RateSpec
from bulkgroups.pacing import RetryPolicy
from bulkgroups.simulator import LoggedRequest, Simulator

from .engine import ledger_records, write_job

T = TypeVar("T")

# 50/s for everything, in windows of 0.1 s (so a second run on a ledger waits 0.1 s, not 1 s);
# the simulators of these tests allow 100/s. Retries back off for milliseconds.
FAST = EngineConfig(
    rate=RateSpec(5, 0.1),
    write_rate=RateSpec(5, 0.1),
    verify_delay=0.05,
    retry=RetryPolicy(attempts=4, budget=5.0, initial=0.01, maximum=0.05),
    seed=7,
)
SIM_RATE = RateSpec(100, 1.0)

Hook = Callable[[], None]


class Bystander(UnipileClient):
    """The real client, plus what happens elsewhere meanwhile: `before_write[n]` runs just before
    the n-th write request (from 1, retries counted) is sent and `after_write[n]` once its answer
    (or failure) is in; `after_preflight` runs after each account GET. A person in the LinkedIn
    app, a proxy that starts failing, an account that gets disconnected mid-run."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.writes = 0
        self.before_write: dict[int, Hook] = {}
        self.after_write: dict[int, Hook] = {}
        self.after_preflight: Hook | None = None

    async def _write(self, send: Callable[[], Awaitable[T]]) -> T:
        self.writes += 1
        n = self.writes
        if n in self.before_write:
            self.before_write[n]()
        try:
            return await send()
        finally:
            if n in self.after_write:
                self.after_write[n]()

    async def get_account(self, account_id: str, **kw: Any) -> AccountInfo:
        info = await super().get_account(account_id, **kw)
        if self.after_preflight is not None:
            self.after_preflight()
        return info

    async def add_participant(self, account_id: str, chat_id: str, user_id: str, **kw: Any) -> None:
        await self._write(
            lambda: super(Bystander, self).add_participant(account_id, chat_id, user_id, **kw)
        )

    async def remove_participant(
        self, account_id: str, chat_id: str, user_id: str, **kw: Any
    ) -> None:
        await self._write(
            lambda: super(Bystander, self).remove_participant(account_id, chat_id, user_id, **kw)
        )

    async def rename_chat(self, account_id: str, chat_id: str, name: str, **kw: Any) -> None:
        await self._write(
            lambda: super(Bystander, self).rename_chat(account_id, chat_id, name, **kw)
        )


async def run_job(
    sim: Simulator,
    tmp_path: Path,
    chats: list[dict[str, Any]],
    *,
    accounts: dict[str, Any] | None = None,
    config: EngineConfig = FAST,
    client: Bystander | None = None,
    ledger: str = "ledger.jsonl",
    job_name: str = "job.yaml",
    **settings: Any,
) -> tuple[RunResult, list[dict[str, Any]]]:
    """Apply a job (written as a real file) against `sim`; the result and this run's op records."""
    job = load_job(write_job(tmp_path / job_name, chats, accounts))
    config = replace(config, **settings) if settings else config
    path = tmp_path / ledger
    if client is None:
        client = Bystander(sim.url, api_key=sim.api_key)
    async with client:
        result = await apply_job(job, client, ledger=path, config=config)
    records = [
        r for r in ledger_records(path) if r["type"] == "op" and r["run_id"] == result.run_id
    ]
    return result, records


def outcomes(records: list[dict[str, Any]]) -> list[tuple[str, str, str | None, str, str | None]]:
    """(chat, action, user or name, status, reason) per op record, in ledger order."""
    return [
        (r["chat"], r["action"], r["user"] or r["name"], r["status"], r["reason"]) for r in records
    ]


def record(
    records: list[dict[str, Any]], action: str, subject: str | None = None
) -> dict[str, Any]:
    """The one op record of `action` (on the user or name `subject`, if given)."""
    found = [
        r
        for r in records
        if r["action"] == action and (subject is None or subject in (r["user"], r["name"]))
    ]
    assert len(found) == 1, found
    return found[0]


def scoped(sim: Simulator, account: str) -> list[LoggedRequest]:
    """The account's account-scoped requests (everything but the core account GET)."""
    return [r for r in sim.requests(account) if r.kind in ("read", "write")]


def writes(sim: Simulator, account: str) -> list[LoggedRequest]:
    return [r for r in sim.requests(account) if r.kind == "write"]
