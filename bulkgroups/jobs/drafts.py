"""A chat while its file is read, and what one file contributes to the job.

CSV rows of one chat may be anywhere in the file, and a YAML chat is checked key by key, so a chat
is first a mutable draft; it becomes an immutable `ChatJob` once its file is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from ..errors import JobFileError
from ..model import AccountSettings, ChatJob
from .report import FileReport, quote

__all__ = ["OWNER_LISTS", "USER_LISTS", "ChatDraft", "FileResult", "Targets", "UserList"]

# Where a user sits in one chat; bits so that one small int per user records every list it is in
# (small ints are shared objects: a million users cost no extra int objects).
UserList = Literal["add", "remove", "members", "protect"]
USER_LISTS: Final[dict[str, UserList]] = {
    "add": "add",
    "remove": "remove",
    "members": "members",
    "protect": "protect",
}
_BIT: Final[dict[UserList, int]] = {"add": 1, "remove": 2, "members": 4, "protect": 8}
_ADD_AND_REMOVE: Final = 3
OWNER_LISTS: Final[frozenset[UserList]] = frozenset({"remove", "members", "protect"})

# Owner locations asked for by owner_rule_errors: (account, chat) -> owner id.
Targets = Mapping[tuple[str, str], str]


@dataclass(slots=True)
class ChatDraft:
    """A chat while its file is read; CSV rows for it may be anywhere in the file."""

    account: str
    chat: str
    line: int
    add: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    members: list[str] | None = None
    protect: list[str] = field(default_factory=list)
    rename: str | None = None
    rename_line: int = 0
    leave: bool = False
    leave_line: int = 0
    diff_line: int = 0  # first add/remove row (CSV): a member row after it is a conflict
    members_line: int = 0  # first member row (CSV)
    protect_line: int = 0
    mixing_reported: bool = False
    valid: bool = True
    seen: dict[str, int] = field(default_factory=dict)

    def put(
        self, kind: UserList, user: str, line: int, field_name: str, report: FileReport
    ) -> None:
        """Record `user` in list `kind`, refusing a duplicate or a user both added and removed."""
        bit = _BIT[kind]
        before = self.seen.get(user, 0)
        if before & bit:
            report.add(line, field_name, f"{quote(user)} is listed twice in {kind}")
            return
        if (before | bit) & _ADD_AND_REMOVE == _ADD_AND_REMOVE:
            report.add(line, field_name, f"{quote(user)} is both added and removed")
            return
        self.seen[user] = before | bit
        if kind == "members":
            if self.members is None:
                self.members = []
            self.members.append(user)
        else:
            getattr(self, kind).append(user)

    def build(self, path: str) -> ChatJob:
        return ChatJob(
            account=self.account,
            chat=self.chat,
            add=tuple(self.add),
            remove=tuple(self.remove),
            rename=self.rename,
            leave=self.leave,
            members=None if self.members is None else tuple(self.members),
            protect=tuple(self.protect),
            path=path,
            line=self.line,
        )


@dataclass(slots=True)
class FileResult:
    """What one file contributes to the job."""

    path: str
    report: FileReport
    chats: list[ChatJob] = field(default_factory=list)
    chat_fields: list[str] = field(default_factory=list)  # where each chat's id is, for messages
    accounts: dict[str, tuple[AccountSettings, int]] = field(default_factory=dict)
    default_account: str | None = None
    owner_hits: list[tuple[tuple[str, str], JobFileError]] = field(default_factory=list)
