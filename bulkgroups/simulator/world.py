"""The simulated state and LinkedIn's rules: accounts, chats, people, and what a change does.

Pure and single-threaded: the `Simulator` calls it under its lock. Accounts and chats come into
being on first use from their ids (see `population`), so a sandbox needs no setup; an account
brings its starter chats along; tests override them with `configure_account` / `configure_chat`.
A rule that refuses a change raises `Problem` with the status and type unipile-v2.md decides.

People: anyone whose id has a provider id's shape (`population.is_provider_id`), anyone ever in a
chat (configured, created or added) and anyone registered (`register_people`) is a known person;
a user id that is none of these (a profile URL, a slug, free text) is refused by an add.
`user_profile` finds a known person by provider id or by public identifier (the slug of the
profile URL: any pool member's, and that of anyone known so far), `me` being the owner.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
from collections.abc import Callable, Iterable
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
    is_provider_id,
    owner_id,
    person,
    pool_slug_owner,
    starter_chat_name,
    starter_chats,
)
from bulkgroups.simulator.replies import Problem

__all__ = [
    "CHAT_TYPES",
    "DEFAULT_MEMBER_CAP",
    "AccountRecord",
    "ChatRecord",
    "ChatType",
    "ListingFault",
    "World",
]

ChatType = Literal["group", "1to1", "channel"]
CHAT_TYPES: tuple[ChatType, ...] = ("group", "1to1", "channel")
# How a listing page may be broken on purpose (see `faults`): a fresh cursor on every page, even
# past the end; or a page cut to its first half with no cursor although more exist.
ListingFault = Literal["fresh_cursor", "short_page"]

DEFAULT_MEMBER_CAP = 50
MAX_PAGE = 100
DEFAULT_PAGE = 20
_CREATED_AT = "2026-01-01T10:00:00.000Z"
_APPLICATION_ID = "app_sandbox"
_CURSOR_PREFIX = "p1:"
_CHATS_CURSOR_PREFIX = "c1:"

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
    moves to the end), which is what cursors page through. `seq` orders an account's chats
    (creation order), which is what a chats listing pages through."""

    account_id: str
    chat_id: str
    name: str
    type: ChatType
    seq: int = 0
    readonly: bool = False
    deleted: bool = False
    members: dict[str, int] = field(default_factory=dict)
    updated_at: str = _CREATED_AT

    def as_json(self) -> dict[str, Any]:
        chat = {
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
        if not self.members:
            del chat["participants_count"]  # optional, and >= 1 when given (the SDK's model)
        return chat


def _encode_cursor(prefix: str, seq: int, nonce: int | None = None) -> str:
    text = f"{prefix}{seq}" if nonce is None else f"{prefix}{seq}:{nonce}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode_cursor(prefix: str, cursor: str) -> int:
    """The keyset position a cursor stands for (a fresh cursor's nonce is ignored)."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    position = text[len(prefix) :].partition(":")[0]
    if not text.startswith(prefix) or not position.isdigit():
        raise Problem(400, "api/invalid_parameters", "cursor is not valid")
    return int(position)


def _number(name: str, value: str | None, *, default: int, minimum: int) -> int:
    """A numeric query parameter: the SDK types them as numbers, so `20.0` is 20 (truncated)."""
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < minimum:
        raise Problem(400, "api/invalid_parameters", f"{name} must be a number >= {minimum}")
    return int(number)


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
        self._chats_of: dict[str, list[ChatRecord]] = {}
        self._seq = 0
        self._chat_seq = 0
        self._nonce = 0
        # People known without the shape of a provider id (ids seen in chats, registered), and
        # the public identifiers (slugs) of everyone known so far.
        self._known: set[str] = set()
        self._slugs: dict[str, str] = {}

    # ---- existence ------------------------------------------------------------------------

    def account(self, account: str) -> AccountRecord:
        """The account, created on first use with its starter chats."""
        record = self._accounts.get(account)
        if record is None:
            record = AccountRecord(
                account_id=account,
                owner=owner_id(account),
                status=account_status(account),
                product=account_product(account),
            )
            self._accounts[account] = record
            self._meet(record.owner)
            for chat in starter_chats(account):
                self.chat_record(account, chat)
        return record

    def chat_record(self, account: str, chat: str) -> ChatRecord:
        """The chat as stored, created from its id on first use (deleted ones included)."""
        key = (account, chat)
        record = self._chats.get(key)
        if record is None:
            kind = chat_kind(chat)
            members = initial_members(account, chat)
            self._chat_seq += 1
            record = ChatRecord(
                account_id=account,
                chat_id=chat,
                name=starter_chat_name(account, chat)
                or (f"Group {chat}" if kind != "1to1" else person(members[-1]).display_name),
                type="1to1" if kind == "1to1" else "group",
                seq=self._chat_seq,
                deleted=kind == "gone",
            )
            self._join(record, members)
            self._chats[key] = record
            self._chats_of.setdefault(account, []).append(record)
        return record

    def _join(self, record: ChatRecord, users: Iterable[str]) -> None:
        for user in users:
            self._seq += 1
            record.members[user] = self._seq
            self._meet(user)

    # ---- people ---------------------------------------------------------------------------

    def _meet(self, user: str) -> None:
        """Remember a person: known from now on, and findable by their public identifier."""
        if not is_provider_id(user):
            self._known.add(user)
        self._slugs.setdefault(person(user).public_identifier, user)

    def register_people(self, users: Iterable[str]) -> None:
        for user in users:
            self._meet(_valid_user_id(user))

    def is_known(self, user: str) -> bool:
        return is_provider_id(user) or user in self._known

    def user_profile(self, account: str, identifier: str) -> dict[str, Any]:
        """`GET /v2/{account}/users/{identifier}`: by provider id, by slug, or `me`."""
        owner = self.account(account).owner
        if identifier == "me":
            user: str | None = owner
        elif self.is_known(identifier):
            user = identifier
        else:
            slug = identifier.lower()
            user = self._slugs.get(slug) or pool_slug_owner(slug)
        if user is None:
            raise Problem(404, "api/resource_not_found", "no such user")
        self._meet(user)
        who = person(user)
        return {
            "object": "UserProfile",
            "id": user,
            "type": "individual",
            "provider": "linkedin",
            "display_name": who.display_name,
            "first_name": who.first_name,
            "last_name": who.last_name,
            "public_identifier": who.public_identifier,
            "profile_url": who.profile_url,
            "is_blocked": False,
            "specifics": {
                "provider": "LINKEDIN",
                "network_distance": "SELF" if user == owner else "FIRST_DEGREE",
                "member_id": hashlib.sha256(user.encode()).hexdigest()[:9],
            },
        }

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
                "provider/invalid_authorization",
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
        self,
        account: str,
        chat: str,
        *,
        limit: str | None,
        cursor: str | None,
        offset: str | None = None,
        fault: ListingFault | None = None,
    ) -> dict[str, Any]:
        """One page of a chat's participants (see `_page`)."""
        record = self._live_chat(account, chat)
        if record.type != "group":
            raise Problem(
                400, "api/invalid_parameters", "participants can only be listed for group chats"
            )
        owner = self.account(account).owner

        def participant(user: str) -> dict[str, Any]:
            who = person(user)
            return {
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

        return self._page(
            list(record.members.items()),
            participant,
            _CURSOR_PREFIX,
            f"{account}/{chat}",
            limit=limit,
            cursor=cursor,
            offset=offset,
            fault=fault,
        )

    def chats_page(
        self,
        account: str,
        *,
        type: str | None,
        limit: str | None,
        cursor: str | None,
        offset: str | None = None,
        fault: ListingFault | None = None,
    ) -> dict[str, Any]:
        """One page of an account's chats in creation order (deleted ones are gone), of one
        `type` when given (see `_page`)."""
        if type is not None and type not in CHAT_TYPES:
            raise Problem(400, "api/invalid_parameters", "type must be group, 1to1 or channel")
        self.account(account)  # its starter chats exist from the start
        chats = [
            (record.chat_id, record.seq)
            for record in self._chats_of.get(account, ())
            if not record.deleted and (type is None or record.type == type)
        ]
        return self._page(
            chats,
            lambda chat: self._chats[(account, chat)].as_json(),
            _CHATS_CURSOR_PREFIX,
            account,
            limit=limit,
            cursor=cursor,
            offset=offset,
            fault=fault,
        )

    def _page(
        self,
        keyed: list[tuple[str, int]],
        render: Callable[[str], dict[str, Any]],
        prefix: str,
        place: str,
        *,
        limit: str | None,
        cursor: str | None,
        offset: str | None,
        fault: ListingFault | None,
    ) -> dict[str, Any]:
        """One page of `keyed` (items with their keyset sequence, in order).

        `limit` defaults to 20 and is clamped to 100 (a number: `20.0` is 20); a `cursor` is an
        opaque keyset position, so changes while paging skip nobody; without one, `offset` skips
        that many items. With `short_pages`, pages hold 1..limit items, decided by position (the
        same request gets the same page). A listing `fault` breaks the page on purpose.
        """
        size = min(_number("limit", limit, default=DEFAULT_PAGE, minimum=1), MAX_PAGE)
        if cursor:
            after = _decode_cursor(prefix, cursor)
            rest = [(item, seq) for item, seq in keyed if seq > after]
        else:
            skip = _number("offset", offset, default=0, minimum=0)
            after = keyed[skip - 1][1] if 0 < skip <= len(keyed) else 0
            rest = keyed[skip:]
        if self.short_pages:
            size = 1 + hashlib.sha256(f"{place}/{after}".encode()).digest()[0] % size
        page = rest[:size]
        more = len(rest) > size
        next_cursor = _encode_cursor(prefix, page[-1][1]) if more else None
        if fault == "fresh_cursor":
            self._nonce += 1
            end = page[-1][1] if page else after
            next_cursor = _encode_cursor(prefix, end, self._nonce)
        elif fault == "short_page":
            page, next_cursor = page[: len(page) // 2], None
        return {
            "data": [render(item) for item, _ in page],
            "total_count": len(keyed),
            "next_cursor": next_cursor,
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
        if not self.is_known(user_id):
            raise Problem(
                400,
                "api/invalid_parameters",
                "user_id is not a LinkedIn provider id of a known person "
                "(a profile URL or public identifier must be resolved through /users first)",
            )
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

    def chat_ids(self, account: str) -> tuple[str, ...]:
        """The account's chats as a listing shows them: creation order, deleted ones left out."""
        self.account(account)
        return tuple(r.chat_id for r in self._chats_of.get(account, ()) if not r.deleted)
