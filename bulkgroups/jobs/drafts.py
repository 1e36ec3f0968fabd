"""A chat while its file is read, and what one file contributes to the job.

CSV rows of one chat may be anywhere in the file, and a YAML chat is checked key by key, so a chat
is first a mutable draft; it becomes an immutable `ChatJob` once its file is read.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Final, Literal

from ..model import AccountSettings, ChatJob, UserLines
from .report import FileReport, quote

__all__ = ["USER_LISTS", "ChatDraft", "FileResult", "UserList"]

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


def _lines() -> array[int]:
    return array("I")


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
    # The line of each user of the owner rule's lists, in list order (4 bytes a user).
    remove_lines: array[int] = field(default_factory=_lines)
    members_lines: array[int] = field(default_factory=_lines)
    protect_lines: array[int] = field(default_factory=_lines)

    def put(self, kind: UserList, user: str, line: int) -> str | None:
        """Record `user` in list `kind`, or say why not: a duplicate, or both added and removed."""
        bit = _BIT[kind]
        before = self.seen.get(user, 0)
        if before & bit:
            return f"{quote(user)} is listed twice in {kind}"
        if (before | bit) & _ADD_AND_REMOVE == _ADD_AND_REMOVE:
            return f"{quote(user)} is both added and removed"
        self.seen[user] = before | bit
        if kind == "add":
            self.add.append(user)
        elif kind == "remove":
            self.remove.append(user)
            self.remove_lines.append(line)
        elif kind == "members":
            if self.members is None:
                self.members = []
            self.members.append(user)
            self.members_lines.append(line)
        else:
            self.protect.append(user)
            self.protect_lines.append(line)
        return None

    def build(self, path: str, chat_field: str | None) -> ChatJob:
        """The chat as read; `chat_field` is its field path in a YAML file (None in CSV)."""
        lines = UserLines(
            chat_field,
            remove=self.remove_lines.tobytes(),
            members=self.members_lines.tobytes(),
            protect=self.protect_lines.tobytes(),
        )
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
            user_lines=lines,
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
