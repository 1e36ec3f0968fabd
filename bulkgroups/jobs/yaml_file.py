"""YAML job files: one document walked event by event, every rule checked, every error collected.

The walk follows the document: each value is read right where its key is, so a list of a million
users goes straight from the parser into the chat's list without a tree in between. What only the
whole document can decide is settled at its end: the `version` (missing?) and the account of
chats that name none (`defaults.account` may come after them).

A syntax error anywhere means the file contributes nothing and reports only that error, as if it
had not been walked: what was found before it may be half a chat.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final

import yaml
from yaml.events import (
    DocumentStartEvent,
    Event,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import ScalarNode

from ..model import AccountSettings, RateSpec
from .checks import id_problem, name_problem
from .drafts import USER_LISTS, ChatDraft, FileResult, UserList
from .report import FileReport, quote
from .source import read_utf8
from .users import read_user
from .yaml_events import INT, STR, YamlEvents, line_of, problem, refusal
from .yaml_values import CONSTRUCTOR, DocumentRefused, Keys, ValueReader

__all__ = ["read_yaml"]

SUPPORTED_VERSION: Final = 1

_TOP_KEYS: Final = frozenset({"version", "defaults", "accounts", "chats"})
_DEFAULTS_KEYS: Final = frozenset({"account"})
_ACCOUNT_KEYS: Final = frozenset({"rate", "write_rate", "daily_limit", "max_members"})
_CHAT_KEYS: Final = frozenset(
    {"chat", "account", "add", "remove", "rename", "leave", "members", "protect"}
)
_ACTION_KEYS: Final = ("add", "remove", "rename", "leave", "members")


@dataclass(slots=True)
class _Unplaced:
    """A chat that names no account, waiting for the end of the file's `defaults.account`."""

    index: int  # in the file's chats
    line: int
    where: str


class _Walker(ValueReader):
    """Walks the events of one file, checking every rule and collecting every error."""

    def __init__(self, path: str, report: FileReport, events: YamlEvents) -> None:
        super().__init__(report, events)
        self.path = path
        self.result = FileResult(path, report)
        self.unplaced: list[_Unplaced] = []

    # -- the document ----------------------------------------------------------------------------

    def document(self) -> FileResult:
        self.events.next()  # StreamStart
        if isinstance(self.events.next(), StreamEndEvent):
            self.report.add(None, "file", "the file is empty: it holds no YAML document")
            return self.result
        root = self.value("file")
        if isinstance(root, MappingStartEvent):
            self.top(line_of(root))
        elif root is not None:
            self.mismatch(root, "file", "a mapping with version: 1 and chats", hint=False)
        self.events.next()  # DocumentEnd
        following = self.events.next()
        if isinstance(following, DocumentStartEvent):
            raise DocumentRefused(
                line_of(following), "YAML syntax error: expected a single document, found another"
            )
        self.place_chats()
        return self.result

    def top(self, root_line: int) -> None:
        readers: dict[str, Callable[[], None]] = {
            "version": self.version,
            "defaults": self.defaults,
            "accounts": self.accounts,
            "chats": self.chats,
        }
        keys = Keys()
        for key, _ in self.entries("", _TOP_KEYS, keys):
            readers[key]()
        if "version" not in keys.lines:
            self.report.add(root_line, "version", "missing: start the file with version: 1")

    def version(self) -> None:
        event = self.value("version")
        if event is None:
            return
        if (
            isinstance(event, ScalarEvent)
            and self.events.tag(event) == INT
            and CONSTRUCTOR.construct_yaml_int(ScalarNode(INT, event.value)) == SUPPORTED_VERSION
        ):
            return
        shown = (
            quote(event.value) if isinstance(event, ScalarEvent) else self.events.describe(event)
        )
        message = (
            f"unsupported version {shown} (this bulkgroups reads version: {SUPPORTED_VERSION})"
        )
        self.report.add(line_of(event), "version", message)
        self.skip_rest(event)

    def defaults(self) -> None:
        if self.mapping("defaults", "a mapping (defaults: {account: ...})") is None:
            return
        for _, where in self.entries("defaults", _DEFAULTS_KEYS, Keys()):
            account = self.identifier(where, "account id")
            if account is not None:
                self.result.default_account = account

    def accounts(self) -> None:
        if self.mapping("accounts", "a mapping of account ids to settings") is None:
            return
        keys = Keys()
        for key, where in self.entries("accounts", None, keys):
            problem = id_problem(key, "account id")
            if problem is not None:
                self.report.add(keys.lines[key], where, problem)
            settings = self.settings(where)
            if settings is not None and problem is None:
                self.result.accounts[sys.intern(key)] = (settings, keys.lines[key])

    def settings(self, where: str) -> AccountSettings | None:
        what = "a mapping of settings (rate, write_rate, ...)"
        if self.mapping(where, what) is None:
            return None
        rates: dict[str, RateSpec | None] = {}
        counts: dict[str, int | None] = {}
        for key, field_name in self.entries(where, _ACCOUNT_KEYS, Keys()):
            if key in ("rate", "write_rate"):
                rates[key] = self.rate(field_name)
            else:
                counts[key] = self.positive_int(field_name)
        return AccountSettings(
            rate=rates.get("rate"),
            write_rate=rates.get("write_rate"),
            daily_limit=counts.get("daily_limit"),
            max_members=counts.get("max_members"),
        )

    def chats(self) -> None:
        event = self.value("chats")
        if event is None:
            return
        if not isinstance(event, SequenceStartEvent):
            self.mismatch(event, "chats", "a list of chats", hint=False)
            return
        for where, item in self.items("chats"):
            if isinstance(item, MappingStartEvent):
                self.chat(where, line_of(item))
            else:
                self.mismatch(item, where, "a mapping (- chat: ID ...)", hint=False)

    # -- one chat --------------------------------------------------------------------------------

    def chat(self, where: str, line: int) -> None:
        draft = ChatDraft(account="", chat="", line=line)
        keys = Keys()
        for key, field_name in self.entries(where, _CHAT_KEYS, keys):
            kind = USER_LISTS.get(key)
            if kind is not None:
                if kind == "members":
                    draft.members = []
                self.users(field_name, kind, draft)
            else:
                self.chat_setting(key, field_name, draft)
        self.check_chat(where, keys, draft)
        if not draft.valid:
            return
        if "account" not in keys.lines:
            self.unplaced.append(_Unplaced(len(self.result.chats), line, where))
        self.result.chats.append(draft.build(self.path, where))
        self.result.chat_fields.append(f"{where}.chat")

    def chat_setting(self, key: str, field_name: str, draft: ChatDraft) -> None:
        """chat, account, rename or leave."""
        if key == "chat":
            chat = self.identifier(field_name, "chat id")
            draft.chat, draft.valid = chat or "", draft.valid and chat is not None
        elif key == "account":
            account = self.identifier(field_name, "account id")
            draft.account, draft.valid = account or "", draft.valid and account is not None
        elif key == "rename":
            found = self.string(field_name, "the new name (a string)")
            if found is not None:
                problem = name_problem(found[0])
                if problem is None:
                    draft.rename = found[0]
                else:
                    self.report.add(found[1], field_name, problem)
        else:
            draft.leave = bool(self.boolean(field_name))

    def check_chat(self, where: str, keys: Keys, draft: ChatDraft) -> None:
        """What a chat's keys must say together: an id, something to do, one kind of list."""
        if "chat" not in keys.lines:
            self.report.add(draft.line, f"{where}.chat", "missing: every chat needs chat: ID")
            draft.valid = False
        # Only when every key was understood: after an unknown key, this would say it twice.
        if not keys.refused and not any(key in keys.lines for key in _ACTION_KEYS):
            message = "nothing to do: give add, remove, rename, leave or members"
            self.report.add(draft.line, where, message)
        if "members" in keys.lines:
            for other in ("add", "remove"):
                if other in keys.lines:
                    self.conflict(where, keys, other)
        elif "protect" in keys.lines:
            self.report.add(
                keys.lines["protect"],
                f"{where}.protect",
                "protect only applies together with members (a desired member list)",
            )

    def conflict(self, where: str, keys: Keys, other: str) -> None:
        """`members` with `other` (add or remove): reported at the later of the two keys."""
        first, second = sorted(("members", other), key=lambda k: keys.lines[k])
        self.report.add(
            keys.lines[second],
            f"{where}.{second}",
            f"{second} cannot be combined with {first} (line {keys.lines[first]}): a chat takes "
            "add/remove or a members list",
        )

    def users(self, field_name: str, kind: UserList, draft: ChatDraft) -> None:
        """One list of users, straight from the parser into the draft (the hot path of big jobs:
        a field path is only built for an error)."""
        event = self.value(field_name)
        if event is None:
            return
        if not isinstance(event, SequenceStartEvent):
            self.mismatch(event, field_name, "a list of users", hint=False)
            return
        index = -1
        next_event, tag, put, intern = self.events.next, self.events.tag, draft.put, sys.intern
        while True:
            event = next_event()
            index += 1
            if (
                type(event) is ScalarEvent
                and event.anchor is None
                and event.tag is None
                and tag(event) == STR
            ):
                line = line_of(event)
                user, problem = read_user(event.value)
                if user is not None:
                    problem = put(kind, intern(user), line)
                if problem is not None:
                    self.report.add(line, f"{field_name}[{index}]", problem)
            elif isinstance(event, SequenceEndEvent):
                return
            else:
                self.odd_user(event, f"{field_name}[{index}]")

    def odd_user(self, event: Event, field_name: str) -> None:
        """A list item that is not a plain string: refused, or of the wrong kind."""
        problem = refusal(event)
        if problem is not None:
            self.report.add(line_of(event), field_name, problem)
            self.skip_rest(event)
        else:
            self.mismatch(event, field_name, "user id (a string)", hint=True)

    # -- the end of the file ---------------------------------------------------------------------

    def place_chats(self) -> None:
        """Give chats without an account the file's `defaults.account`, or refuse them."""
        default = self.result.default_account
        refused: set[int] = set()
        for chat in self.unplaced:
            if default is not None:
                placed = replace(self.result.chats[chat.index], account=default)
                self.result.chats[chat.index] = placed
                continue
            self.report.add(
                chat.line,
                f"{chat.where}.account",
                "no account: give account: ID here or defaults.account in this file",
            )
            refused.add(chat.index)
        if refused:
            kept = [i for i in range(len(self.result.chats)) if i not in refused]
            self.result.chats = [self.result.chats[i] for i in kept]
            self.result.chat_fields = [self.result.chat_fields[i] for i in kept]


def read_yaml(path: str, report: FileReport) -> FileResult:
    """Read one YAML job file."""
    data = read_utf8(path, report)
    if data is None:
        return FileResult(path, report)
    events: YamlEvents | None = None
    try:
        events = YamlEvents(data)
        return _Walker(path, report, events).document()
    except yaml.YAMLError as error:
        line, message = problem(error, data)
    except DocumentRefused as error:
        line, message = error.line, error.message
    finally:
        if events is not None:
            events.close()
    # What was found before the error may be half a chat: only the error is reported.
    report.clear()
    report.add(line, "file", message)
    return FileResult(path, report)
