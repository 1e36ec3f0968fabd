"""The simulated state and LinkedIn's rules: accounts, group chats, members, and what a change does.

Pure and single-threaded: the `Simulator` calls it under its lock. Accounts and chats come into
being on first use from their ids (see `population`), so a sandbox needs no setup; tests override
them with `configure_account` / `configure_chat`. A rule that refuses a change raises `Problem`
with the status and type unipile-v2.md decides.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from bulkgroups.model import RateSpec
from bulkgroups.simulator.population import (
    AccountStatus,
    Product,
    account_product,
    account_status,
    chat_kind,
    initial_members,
    owner_id,
    person,
)
from bulkgroups.simulator.replies import Problem

__all__ = [
    "DEFAULT_MEMBER_CAP",
    "AccountRecord",
    "ChatRecord",
    "ChatType",
    "World",
]

ChatType = Literal["group", "1to1", "channel"]

DEFAULT_MEMBER_CAP = 50
MAX_PAGE = 100
DEFAULT_PAGE = 20
_CREATED_AT = "2026-01-01T10:00:00.000Z"
_APPLICATION_ID = "app_sandbox"
_CURSOR_PREFIX = "p1:"

_PRODUCT_NAMES: dict[Product, str] = {
    "classic": "Classic",
    "recruiter": "Recruiter",
    "salesnav": "Sales Navigator",
    "company": "Company page",
}


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class AccountRecord:
    """One linked account and its per-account simulator settings (None: the global setting)."""

    account_id: str
    owner: str
    status: AccountStatus
    product: Product
    rate: RateSpec | None = None
    write_rate: RateSpec | None = None
    provider_write_limit: int | None = None
    latency: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "object": "Account",
            "id": self.account_id,
            "user_id": self.owner,
            "name": person(self.owner).display_name,
            "provider": "linkedin",
            "status": self.status,
            "created_at": _CREATED_AT,
            "application_id": _APPLICATION_ID,
        }


@dataclass(slots=True)
class ChatRecord:
    """One chat. `members` maps user id to join sequence; dict order is join order (a re-add
    moves to the end), which is what cursors page through."""

    account_id: str
    chat_id: str
    name: str
    type: ChatType
    readonly: bool = False
    deleted: bool = False
    members: dict[str, int] = field(default_factory=dict)
    updated_at: str = _CREATED_AT

    def as_json(self) -> dict[str, Any]:
        return {
            "object": "Chat",
            "id": self.chat_id,
            "account_id": self.account_id,
            "name": self.name,
            "type": self.type,
            "is_group": self.type == "group",
            "is_1to1": self.type == "1to1",
            "is_channel": self.type == "channel",
            "is_readonly": self.readonly,
            "is_pinned": False,
            "is_archived": False,
            "folders": [],
            "unread_count": 0,
            "muted_until": False,
            "participants_count": len(self.members),
            "provider": "linkedin",
            "created_at": _CREATED_AT,
            "updated_at": self.updated_at,
        }


def _encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{seq}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if not text.startswith(_CURSOR_PREFIX) or not text[len(_CURSOR_PREFIX) :].isdigit():
        raise Problem(400, "api/invalid_parameters", "cursor is not valid")
    return int(text[len(_CURSOR_PREFIX) :])


def _valid_user_id(user: object) -> str:
    if not isinstance(user, str) or not user or len(user) > 256:
        raise Problem(400, "api/invalid_parameters", "user_id must be a non-empty string")
    if any(ord(c) < 32 or ord(c) == 127 for c in user):
        raise Problem(400, "api/invalid_parameters", "user_id contains control characters")
    return user


class World:
    """Accounts and chats, created on first use, changed only by the rules below."""

    def __init__(self, *, member_cap: int = DEFAULT_MEMBER_CAP, short_pages: bool = False) -> None:
        self.member_cap = member_cap
        self.short_pages = short_pages
        self._accounts: dict[str, AccountRecord] = {}
        self._chats: dict[tuple[str, str], ChatRecord] = {}
        self._seq = 0

    # ---- existence ------------------------------------------------------------------------

    def account(self, account: str) -> AccountRecord:
        record = self._accounts.get(account)
        if record is None:
            record = AccountRecord(
                account_id=account,
                owner=owner_id(account),
                status=account_status(account),
                product=account_product(account),
            )
            self._accounts[account] = record
        return record

    def chat_record(self, account: str, chat: str) -> ChatRecord:
        """The chat as stored, created from its id on first use (deleted ones included)."""
        key = (account, chat)
        record = self._chats.get(key)
        if record is None:
            kind = chat_kind(chat)
            record = ChatRecord(
                account_id=account,
                chat_id=chat,
                name=f"Group {chat}"
                if kind != "1to1"
                else person(initial_members(account, chat)[-1]).display_name,
                type="1to1" if kind == "1to1" else "group",
                deleted=kind == "gone",
            )
            self._join(record, initial_members(account, chat))
            self._chats[key] = record
        return record

    def _join(self, record: ChatRecord, users: Iterable[str]) -> None:
        for user in users:
            self._seq += 1
            record.members[user] = self._seq

    def _live_chat(self, account: str, chat: str) -> ChatRecord:
        record = self.chat_record(account, chat)
        if record.deleted:
            raise Problem(404, "api/resource_not_found", f"chat {chat!r} not found")
        return record

    def check_usable(self, account: str) -> AccountRecord:
        """What every chat or participant call of an account meets before the chat rules."""
        record = self.account(account)
        if record.status == "disconnected":
            raise Problem(
                401,
                "provider/invalid_credentials",
                "the account is disconnected from LinkedIn: reconnect it",
            )
        if record.status == "paused":
            raise Problem(
                403, "api/inactive_subscription", "the account is paused: no active subscription"
            )
        if record.status == "errored":
            raise Problem(
                503, "provider/server_error", "the account is errored: service interruption"
            )
        if record.product != "classic":
            raise Problem(
                403,
                "api/insufficient_permissions",
                "group messaging is not available for this account type "
                f"({_PRODUCT_NAMES[record.product]})",
            )
        return record

    # ---- reads ----------------------------------------------------------------------------

    def get_chat(self, account: str, chat: str) -> dict[str, Any]:
        return self._live_chat(account, chat).as_json()

    def participants_page(
        self, account: str, chat: str, *, limit: str | None, cursor: str | None
    ) -> dict[str, Any]:
        """One page; `limit` defaults to 20 and is clamped to 100; the cursor is opaque keyset."""
        record = self._live_chat(account, chat)
        if record.type != "group":
            raise Problem(
                400, "api/invalid_parameters", "participants can only be listed for group chats"
            )
        size = DEFAULT_PAGE
        if limit is not None:
            if not limit.isdigit() or int(limit) < 1:
                raise Problem(400, "api/invalid_parameters", "limit must be a positive integer")
            size = min(int(limit), MAX_PAGE)
        after = _decode_cursor(cursor) if cursor else 0
        owner = self.account(account).owner
        members = [(user, seq) for user, seq in record.members.items() if seq > after]
        if self.short_pages:
            # Unipile may return fewer items than asked while more exist: 1..size, decided by
            # the page's position so that the same request gets the same page.
            size = 1 + hashlib.sha256(f"{account}/{chat}/{after}".encode()).digest()[0] % size
        page = members[:size]
        data = []
        for user, _ in page:
            who = person(user)
            data.append(
                {
                    "object": "GroupParticipant",
                    "user": {
                        "object": "User",
                        "id": user,
                        "type": "individual",
                        "display_name": who.display_name,
                        "public_identifier": who.public_identifier,
                        "profile_url": who.profile_url,
                    },
                    "is_self": user == owner,
                    "is_admin": False,
                }
            )
        more = len(members) > size
        return {
            "data": data,
            "total_count": len(record.members),
            "next_cursor": _encode_cursor(page[-1][1]) if more else None,
        }

    # ---- writes ---------------------------------------------------------------------------

    def _writable(self, account: str, chat: str) -> ChatRecord:
        record = self._live_chat(account, chat)
        if record.type != "group":
            raise Problem(400, "api/invalid_parameters", "this chat is not a group chat")
        if record.readonly:
            raise Problem(
                403, "provider/insufficient_permissions", "the chat is read-only for this account"
            )
        return record

    def add(self, account: str, chat: str, user: object, *, apply: bool = True) -> dict[str, Any]:
        """Add a participant; `apply=False` checks the rules and answers without changing."""
        user_id = _valid_user_id(user)
        record = self._writable(account, chat)
        if user_id in record.members:
            raise Problem(409, "api/conflict", "the user is already a participant of this chat")
        if len(record.members) >= self.member_cap:
            raise Problem(
                422,
                "provider/unprocessable_entity",
                f"a group chat holds at most {self.member_cap} participants",
            )
        if apply:
            self._join(record, (user_id,))
            record.updated_at = _now_iso()
        return {"object": "ParticipantAdded"}

    def remove(self, account: str, chat: str, user: str, *, apply: bool = True) -> dict[str, Any]:
        """Removing the owner's own id is leaving: the chat turns read-only for the account."""
        record = self._writable(account, chat)
        if user not in record.members:
            raise Problem(404, "api/resource_not_found", "the user is not a participant")
        if apply:
            del record.members[user]
            if user == self.account(account).owner:
                record.readonly = True
            record.updated_at = _now_iso()
        return {"object": "ParticipantRemoved"}

    def rename(
        self, account: str, chat: str, name: object, *, apply: bool = True
    ) -> dict[str, Any]:
        if not isinstance(name, str) or not name.strip():
            raise Problem(400, "api/invalid_parameters", "name must be a non-empty string")
        record = self._writable(account, chat)
        if not apply:
            return {**record.as_json(), "name": name}
        record.name = name
        record.updated_at = _now_iso()
        return record.as_json()

    # ---- configuration (tests, inspection) -------------------------------------------------

    def configure_chat(
        self,
        account: str,
        chat: str,
        *,
        members: Iterable[str] | None = None,
        with_owner: bool = True,
        name: str | None = None,
        type: ChatType | None = None,
        readonly: bool | None = None,
        deleted: bool | None = None,
    ) -> None:
        record = self.chat_record(account, chat)
        if members is not None:
            wanted = list(dict.fromkeys(members))
            owner = self.account(account).owner
            if with_owner and owner not in wanted:
                wanted.insert(0, owner)
            record.members.clear()
            self._join(record, wanted)
        if name is not None:
            record.name = name
        if type is not None:
            record.type = type
        if readonly is not None:
            record.readonly = readonly
        if deleted is not None:
            record.deleted = deleted

    def members(self, account: str, chat: str) -> frozenset[str]:
        return frozenset(self.chat_record(account, chat).members)
