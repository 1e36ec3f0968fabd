"""`bulkgroups export`: today's group chats written as a desired-state job file.

Adopting bulkgroups starts from chats that exist. `export` reads them (`engine.inventory`) and this
module writes what it read as a job any command takes: one desired-state entry per group chat,
its `members` everyone in it but the account's owner, so that `plan` of the file is empty until
someone edits it. The formatting is pure (`yaml_header`, `yaml_chat`, `csv_chat`); `ExportFile`
spools each account's chats as they are read (in memory up to 256 KiB an account, then in a
temporary file) and writes them out in the order of the accounts at the end, so that thousands
of chats never sit in memory and several accounts can be read side by side while the file
still comes out in a stable order.

Decisions:
- Members are written as provider ids, exact and with nothing to resolve; the YAML gives each
  one's name and profile address as a comment. CSV has no comments: it has the rows alone.
- A chat that cannot be written as an entry is a comment, never an entry: read-only (the owner
  left it), not a group, not readable, or with a member id no job file could hold (its entry
  would remove that person). Only unreadable and inexpressible chats are problems (exit 3).
- Within an account chats are ordered by id (Unipile lists them by recent activity, which
  changes from day to day), members in the order the chat lists them.
- Values are plain YAML when they are obviously strings (a letter or `_` first, then letters,
  digits, `_`, `-`, and no word YAML reads as a boolean or null), double-quoted otherwise.
"""

from __future__ import annotations

import csv
import io
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import orjson

from .jobs.checks import id_problem
from .jobs.csv_file import CSV_HEADER
from .jobs.users import read_user
from .model import Participant

__all__ = [
    "ExportFile",
    "ExportFormat",
    "ExportedChat",
    "csv_chat",
    "yaml_chat",
    "yaml_comment",
    "yaml_header",
    "yaml_scalar",
]

ExportFormat = Literal["yaml", "csv"]
ChatKind = Literal["group", "readonly", "not_group", "unreadable"]

_PLAIN: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_YAML_WORDS: Final = frozenset({"y", "yes", "n", "no", "on", "off", "true", "false", "null"})
_SPOOL_IN_MEMORY: Final = 256 * 1024
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")


@dataclass(frozen=True, slots=True)
class ExportedChat:
    """One chat as `export` read it: a group with its `members` (the owner left out), or why it
    is not exported (`kind`, with `problem` for one that could not be read)."""

    account: str
    chat: str
    kind: ChatKind
    name: str = ""
    members: tuple[Participant, ...] = ()
    problem: str | None = None

    def unwritable(self) -> str | None:
        """Why this group cannot be an entry of a job file (an id no job file can hold)."""
        for what, value in (("account", self.account), ("chat", self.chat)):
            problem = id_problem(value, what)
            if problem is not None:
                return problem
        for member in self.members:
            user, problem = read_user(member.user_id)
            if user != member.user_id:
                return problem or f"member id {member.user_id!r:.80} reads as another user"
        return None


def yaml_scalar(value: str) -> str:
    """`value` as a YAML scalar that reads back as the same string."""
    if _PLAIN.fullmatch(value) and value.lower() not in _YAML_WORDS:
        return value
    return orjson.dumps(value).decode()


def yaml_comment(text: str) -> str:
    """Text safe in a one-line YAML comment."""
    return _CONTROL.sub(" ", text).strip()


def yaml_header(*, accounts: Sequence[str], base_url: str, at: str, chats: int) -> str:
    """The file's opening: when, from where (never the key), what it means, `version` and
    `chats`; `chats` = 0 gives an empty list (a key followed only by comments would be null)."""
    listed = ", ".join(accounts[:10]) + (
        f" and {len(accounts) - 10} more" if len(accounts) > 10 else ""
    )
    return (
        f"# Written by `bulkgroups export` at {at} from {yaml_comment(base_url)}\n"
        f"# (account{'s' if len(accounts) != 1 else ''} {yaml_comment(listed)}).\n"
        "# Each chat is in desired state: `members` are everyone in it but the account's owner,\n"
        "# so `bulkgroups plan` of this file changes nothing until you edit it. Whoever is left\n"
        "# out of a list is removed by `apply`; add people by provider id or profile URL.\n"
        "version: 1\n" + ("chats:\n" if chats else "chats: []\n")
    )


def yaml_chat(chat: ExportedChat) -> str:
    """The chat's entry in the `chats` list (or the comment that stands for it)."""
    title = f'  # "{yaml_comment(chat.name)}"' if chat.name else ""
    if chat.kind == "group" and (why := chat.unwritable()) is None:
        lines = [title] if title else []
        lines.append(f"  - chat: {yaml_scalar(chat.chat)}")
        lines.append(f"    account: {yaml_scalar(chat.account)}")
        if not chat.members:
            lines.append("    members: []")
        else:
            lines.append("    members:")
            lines.extend(f"      - {_member(m)}" for m in chat.members)
        return "\n".join(lines) + "\n"
    if chat.kind == "group":
        reason = f"not exported: {why}"
    elif chat.kind == "readonly":
        reason = "read-only (the account left it): not exported"
    elif chat.kind == "not_group":
        reason = "not a group chat: not exported"
    else:
        reason = f"could not be read ({chat.problem}): not exported"
    name = f' "{yaml_comment(chat.name)}"' if chat.name else ""
    return f"  # {yaml_comment(chat.account)} / {yaml_comment(chat.chat)}{name}: {yaml_comment(reason)}\n"


def _member(member: Participant) -> str:
    about = [part for part in (member.display_name, _profile(member)) if part]
    comment = f"  # {yaml_comment(', '.join(about))}" if about else ""
    return yaml_scalar(member.user_id) + comment


def _profile(member: Participant) -> str:
    return f"linkedin.com/in/{member.public_identifier}" if member.public_identifier else ""


def csv_header() -> str:
    return ",".join(CSV_HEADER) + "\n"


def csv_chat(chat: ExportedChat) -> str:
    """The chat's `member` rows (one with an empty user for a chat of the owner alone); nothing
    for a chat that is not exported (CSV has no comments)."""
    if chat.kind != "group" or chat.unwritable() is not None:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_HEADER, lineterminator="\n")
    base = {"account": chat.account, "chat": chat.chat, "action": "member", "name": ""}
    for user in [m.user_id for m in chat.members] or [""]:
        writer.writerow({**base, "user": user})
    return buffer.getvalue()


class ExportFile:
    """An export being written: each account's chats spooled (temporary files) as they come, in
    the order each account gives them; `write_to` puts the whole file out, accounts in order.

    `problems` says which chats could not be exported although they are groups (unreadable, or
    with an id no job file can hold). A context manager: the spools are removed when it is left.
    """

    def __init__(self, accounts: Iterable[str], *, format: ExportFormat) -> None:
        self.format = format
        self.accounts = list(dict.fromkeys(accounts))
        self.entries = 0
        self.problems: list[str] = []
        self._spools: dict[str, tempfile.SpooledTemporaryFile[bytes]] = {}

    def __enter__(self) -> ExportFile:
        return self

    def __exit__(self, *exc: object) -> None:
        for spool in self._spools.values():
            spool.close()
        self._spools.clear()

    def add(self, chat: ExportedChat) -> None:
        """The chat's entry (or comment), after the account's chats added before."""
        if chat.kind == "unreadable":
            self.problems.append(f"{chat.account} / {chat.chat}: {chat.problem}")
        elif chat.kind == "group":
            why = chat.unwritable()
            if why is None:
                self.entries += 1
            else:
                self.problems.append(f"{chat.account} / {chat.chat}: {why}")
        text = yaml_chat(chat) if self.format == "yaml" else csv_chat(chat)
        if not text:
            return
        spool = self._spools.get(chat.account)
        if spool is None:
            # In memory until it grows: a thousand small accounts must not hold a thousand files.
            spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115
            self._spools[chat.account] = spool
        spool.write(text.encode("utf-8"))

    def write_to(self, write: Callable[[bytes], object], *, base_url: str, at: str) -> None:
        """The whole file: the header, then each account's chats, accounts in order."""
        if self.format == "yaml":
            header = yaml_header(
                accounts=self.accounts, base_url=base_url, at=at, chats=self.entries
            )
        else:
            header = csv_header()
        write(header.encode("utf-8"))
        for account in self.accounts:
            spool = self._spools.get(account)
            if spool is None:
                continue
            spool.seek(0)
            while chunk := spool.read(64 * 1024):
                write(chunk)
