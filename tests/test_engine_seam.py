"""The engine depends on `ChatApi`, the calls it makes, not on `UnipileClient`: any object with
those methods will do. Here an in-memory fake (no subclass, no socket) takes a whole run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from bulkgroups.engine import ChatApi, apply_job
from bulkgroups.jobs import load_job
from bulkgroups.model import AccountInfo, ChatInfo, Gate, Participant

from helpers.engine import op_records, write_job
from helpers.outcomes import FAST

OWNER = "ACoAOwner"


class InMemoryChats:
    """One account, chats as sets of members; every call passes the engine's gate, as the
    real client does around each request."""

    def __init__(self, chats: dict[str, set[str]]) -> None:
        self.chats = chats
        self.calls: list[str] = []

    async def _through(self, gate: Gate | None, account: str, kind: str) -> None:
        assert gate is not None
        async with gate(account, kind):  # type: ignore[arg-type]
            self.calls.append(kind)

    async def get_account(self, account_id: str, *, gate: Gate | None = None) -> AccountInfo:
        await self._through(gate, account_id, "core")
        return AccountInfo(account_id, OWNER, "running")

    async def get_chat(
        self, account_id: str, chat_id: str, *, fresh: bool = False, gate: Gate | None = None
    ) -> ChatInfo:
        await self._through(gate, account_id, "read")
        return ChatInfo(chat_id, chat_id, "group", True, False, len(self.chats[chat_id]))

    async def participants(
        self,
        account_id: str,
        chat_id: str,
        *,
        fresh: bool = False,
        gate: Gate | None = None,
        expected_count: int | None = None,
    ) -> AsyncIterator[Participant]:
        await self._through(gate, account_id, "read")
        for user in sorted(self.chats[chat_id]):
            yield Participant(user, is_self=user == OWNER)

    async def add_participant(
        self, account_id: str, chat_id: str, user_id: str, *, gate: Gate | None = None
    ) -> None:
        await self._through(gate, account_id, "write")
        self.chats[chat_id].add(user_id)

    async def remove_participant(
        self, account_id: str, chat_id: str, user_id: str, *, gate: Gate | None = None
    ) -> None:
        await self._through(gate, account_id, "write")
        self.chats[chat_id].discard(user_id)

    async def rename_chat(
        self, account_id: str, chat_id: str, name: str, *, gate: Gate | None = None
    ) -> None:
        await self._through(gate, account_id, "write")


async def test_a_run_goes_through_any_client_with_the_chat_api_methods(tmp_path: Path) -> None:
    fake = InMemoryChats({"c1": {OWNER, "u1", "u2"}})
    client: ChatApi = fake  # what the engine needs, and nothing more
    job = load_job(
        write_job(
            tmp_path / "job.yaml", [{"chat": "c1", "account": "acc", "members": ["u1", "u3"]}]
        )
    )

    result = await apply_job(job, client, ledger=tmp_path / "ledger.jsonl", config=FAST)

    assert fake.chats["c1"] == {OWNER, "u1", "u3"}
    assert sorted(
        (r["action"], r["user"], r["status"]) for r in op_records(tmp_path / "ledger.jsonl")
    ) == [
        ("add", "u3", "applied"),
        ("remove", "u2", "applied"),
    ]
    assert fake.calls.count("write") == 2
    assert result.exit_code == 0
