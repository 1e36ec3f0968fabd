"""Who lives in the simulated LinkedIn: deterministic accounts, people, chats and their members.

Everything here is a pure function of the ids, so a job file written today names the same members
tomorrow, and a test can compute what a chat starts with instead of hard-coding it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "BIG_CHAT_SIZE",
    "POOL_SIZE",
    "Person",
    "Product",
    "account_exists",
    "account_product",
    "account_status",
    "chat_kind",
    "initial_members",
    "is_provider_id",
    "owner_id",
    "person",
    "pool_id",
    "pool_slug_owner",
    "starter_chat_name",
    "starter_chats",
]

Product = Literal["classic", "recruiter", "salesnav", "company"]
AccountStatus = Literal["running", "errored", "disconnected", "paused"]
ChatKind = Literal["group", "1to1", "gone", "big"]

POOL_SIZE = 500
BIG_CHAT_SIZE = 1000

_FIRST = (
    "Ann", "Ben", "Chloe", "David", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jonas",
    "Kenji", "Lea", "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tara",
)  # fmt: skip
_LAST = (
    "Lee", "Martin", "Garcia", "Novak", "Okafor", "Silva", "Schmidt", "Rossi", "Kim", "Dubois",
    "Haddad", "Jensen", "Kowalski", "Moreau", "Nakamura", "Olsen", "Patel", "Quispe", "Ricci",
    "Santos", "Tanaka", "Ueda", "Varga", "Weber", "Yilmaz",
)  # fmt: skip


_TOPICS = (
    "Project team", "Alumni circle", "Hiring panel", "Book club", "Sales huddle", "Mentors",
    "Design critique", "Weekly sync", "Product council", "Founders", "Study group", "Launch crew",
)  # fmt: skip

# A LinkedIn provider id as the simulator accepts one without having seen it: `ACo` and then
# letters, digits, `_` or `-` (the pool `ACoAA0001`, `big` members `ACoAB0001`, owners
# `ACoAO1A2B3C4D`, and real ids such as `ACoAAAcDMMQBODyLwZrRcgYhrkCafURGqva0U4E`).
_PROVIDER_ID = re.compile(r"ACo[A-Za-z0-9_-]{1,253}")
_POOL_SLUG = re.compile(r"[a-z]+-[a-z]+-(\d{4})")


@dataclass(frozen=True, slots=True)
class Person:
    """A LinkedIn member as the participants and users endpoints describe them."""

    user_id: str
    display_name: str
    public_identifier: str

    @property
    def profile_url(self) -> str:
        return f"https://www.linkedin.com/in/{self.public_identifier}"

    @property
    def first_name(self) -> str:
        return self.display_name.partition(" ")[0]

    @property
    def last_name(self) -> str:
        return self.display_name.partition(" ")[2]


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def pool_id(number: int) -> str:
    """The id of pool member `number` (1..500): `ACoAA0001` .. `ACoAA0500`."""
    return f"ACoAA{number:04d}"


def owner_id(account: str) -> str:
    """The account owner's user id: `ACoAO` + the first 8 hex digits (upper case) of sha256(account)."""
    return "ACoAO" + _digest(account).hex()[:8].upper()


def person(user_id: str) -> Person:
    """Display name and public identifier of any user id.

    Pool member n is `_FIRST[(n-1) % 20] _LAST[(n-1) // 20]` (all 500 names distinct); anyone else
    gets a name picked by sha256 of the id.
    """
    if len(user_id) == 9 and user_id.startswith("ACoAA") and user_id[5:].isdigit():
        number = int(user_id[5:])
        if 1 <= number <= POOL_SIZE:
            first, last = _FIRST[(number - 1) % 20], _LAST[(number - 1) // 20]
            return Person(user_id, f"{first} {last}", f"{first}-{last}-{number:04d}".lower())
    digest = _digest(user_id)
    first, last = _FIRST[digest[0] % len(_FIRST)], _LAST[digest[1] % len(_LAST)]
    return Person(user_id, f"{first} {last}", f"{first}-{last}-{digest.hex()[:8]}".lower())


def is_provider_id(user_id: str) -> bool:
    """Whether `user_id` has the shape of a LinkedIn provider id (`ACo...`): a profile URL, a
    slug or free text does not."""
    return _PROVIDER_ID.fullmatch(user_id) is not None


def pool_slug_owner(slug: str) -> str | None:
    """The pool member whose public identifier is `slug` (any case), if any: `ann-lee-0001` is
    `ACoAA0001`."""
    match = _POOL_SLUG.fullmatch(slug.lower())
    if match is None:
        return None
    number = int(match.group(1))
    if not 1 <= number <= POOL_SIZE:
        return None
    user = pool_id(number)
    return user if person(user).public_identifier == slug.lower() else None


def starter_chats(account: str) -> tuple[str, ...]:
    """The chats every account has from the start, in creation order: 3..6 group chats
    `chat_<8 hex>` then one 1to1 chat `1to1_<8 hex>`, the hex from sha256(f"{account}/starter/i").

    They make a listing of a fresh account show something; their members are `initial_members`.
    """
    count = 3 + _digest(f"{account}/starter")[0] % 4
    groups = tuple(f"chat_{_digest(f'{account}/starter/{i}').hex()[:8]}" for i in range(count))
    return (*groups, f"1to1_{_digest(f'{account}/starter/1to1').hex()[:8]}")


def starter_chat_name(account: str, chat: str) -> str | None:
    """The name of a starter group chat (a topic, "Project team" ...), None for any other chat."""
    chats = starter_chats(account)[:-1]
    if chat not in chats:
        return None
    return _TOPICS[(_digest(account)[1] + chats.index(chat)) % len(_TOPICS)]


def account_exists(account: str) -> bool:
    """False when the account id contains `gone` (any case): a deleted account, or a typo, which
    Unipile answers 404 on every call."""
    return "gone" not in account.lower()


def account_status(account: str) -> AccountStatus:
    """`disconnected`, `errored` or `paused` when the account id contains that word, else running."""
    lowered = account.lower()
    for status in ("disconnected", "errored", "paused"):
        if status in lowered:
            return status
    return "running"


def account_product(account: str) -> Product:
    """`recruiter`, `salesnav` or `company` when the account id contains that word, else classic."""
    lowered = account.lower()
    for product in ("recruiter", "salesnav", "company"):
        if product in lowered:
            return product
    return "classic"


def chat_kind(chat: str) -> ChatKind:
    """What a chat id asks for by its prefix: `1to1...`, `gone...`, `big...`, else a group."""
    for prefix in ("1to1", "gone", "big"):
        if chat.startswith(prefix):
            return prefix
    return "group"


def initial_members(account: str, chat: str) -> tuple[str, ...]:
    """The members a chat starts with, owner first.

    Group: the owner plus 3..12 pool members. size = 3 + (d[0] % 10) and the members are
    `pool_id(1 + (u16 % 500))` for the successive big-endian 2-byte chunks u16 of d[1:], then of
    sha256(d), ... skipping repeats, where d = sha256(f"{account}/{chat}").
    1to1: the owner and one pool member. big: the owner plus `ACoAB0001` .. `ACoAB0999`
    (1000 participants). gone: nobody (the chat does not exist).
    """
    kind = chat_kind(chat)
    owner = owner_id(account)
    if kind == "gone":
        return ()
    if kind == "big":
        return (owner, *(f"ACoAB{n:04d}" for n in range(1, BIG_CHAT_SIZE)))
    digest = _digest(f"{account}/{chat}")
    size = 1 if kind == "1to1" else 3 + digest[0] % 10
    chosen: dict[str, None] = {}
    stream = digest[1:]
    while len(chosen) < size:
        for i in range(0, len(stream) - 1, 2):
            chosen.setdefault(pool_id(1 + int.from_bytes(stream[i : i + 2], "big") % POOL_SIZE))
            if len(chosen) == size:
                break
        digest = hashlib.sha256(digest).digest()
        stream = digest
    return (owner, *chosen)
