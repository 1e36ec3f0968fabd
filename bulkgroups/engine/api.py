"""The seam between the engine and the HTTP client: the calls a run makes, as a Protocol.

`UnipileClient` is the implementation; tests may pass any object with these methods (a fake
that never opens a socket, or a wrapper that changes the world between two requests) without
subclassing it. Every call takes the run's `gate`, entered around each HTTP request it sends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from ..model import AccountInfo, ChatInfo, Gate, Participant, UserProfile

__all__ = ["ChatApi"]


class ChatApi(Protocol):
    """What a run needs from Unipile: the account lookup, a chat, its members, three writes, and
    for jobs that name people by profile, a user's profile."""

    async def get_account(self, account_id: str, *, gate: Gate | None = None) -> AccountInfo:
        """`GET /v2/accounts/{id}` (the core lookup: owner and status)."""
        ...

    async def get_chat(
        self, account_id: str, chat_id: str, *, fresh: bool = False, gate: Gate | None = None
    ) -> ChatInfo:
        """The chat's name, type and read-only flag; `fresh` bypasses Unipile's cache."""
        ...

    def participants(
        self,
        account_id: str,
        chat_id: str,
        *,
        fresh: bool = False,
        gate: Gate | None = None,
        expected_count: int | None = None,
    ) -> AsyncIterator[Participant]:
        """Every participant of a chat, each once (one request per page); a listing that ends
        with fewer than `expected_count` (the chat's `participants_count`) is a failed read."""
        ...

    async def get_user(
        self, account_id: str, identifier: str, *, fresh: bool = False, gate: Gate | None = None
    ) -> UserProfile:
        """A person's profile by the slug of their profile URL (or provider id); 404: nobody."""
        ...

    def chats(
        self,
        account_id: str,
        *,
        type: str | None = "group",
        fresh: bool = False,
        gate: Gate | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[ChatInfo]:
        """The account's chats of one type, each once (one request per page); `export` lists
        them, a run of a job never does."""
        ...

    async def add_participant(
        self, account_id: str, chat_id: str, user_id: str, *, gate: Gate | None = None
    ) -> None: ...

    async def remove_participant(
        self, account_id: str, chat_id: str, user_id: str, *, gate: Gate | None = None
    ) -> None:
        """With the account owner's id, this is a leave."""
        ...

    async def rename_chat(
        self, account_id: str, chat_id: str, name: str, *, gate: Gate | None = None
    ) -> None: ...
