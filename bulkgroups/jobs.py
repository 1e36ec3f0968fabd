"""Job files (YAML and CSV) into one immutable `Job`: pure, sync, offline.

A mistake in a job file must be caught before a single request is sent, and the user should fix
every mistake in one go, so loading never stops at the first problem: each one becomes a
`JobFileError` (`PATH:LINE: FIELD: message`) and `load_job` raises them all in `JobFileErrors`.

Decisions beyond the contract (each an error rather than a silent fix-up, because a job file that
means something other than it says is worse than one that does not load):
- A user listed twice in one list, a chat renamed or left twice (CSV rows), or a value in a CSV
  column its action does not use (`user` on rename/leave, `name` on anything but rename): a shifted
  column is caught rather than ignored.
- `protect` only together with `members`: with add/remove nothing is removed unless listed, so a
  protect list there would be a no-op that looks like a safeguard.
- A user may be both in `members` and in `protect` (consistent: wanted, and never removed).
- Ids are strings; YAML scalars that resolve to numbers, booleans or null are refused ("quote it")
  instead of being turned back into text that might differ from what was typed (`0123`, `1e3`).
- Rename names: a non-empty string without control characters or surrounding whitespace (LinkedIn
  keeps one trimmed line, so such a name would never compare equal and be renamed on every run).
- A chat entry with no action key at all (add, remove, rename, leave, members) is an error.
- `defaults.account` of a YAML file applies to the chats of that file. A CSV row with an empty
  account takes the `defaults.account` of the job's YAML files; if they disagree, that is an error.
- An account's settings may appear in one file of a job only; a file given twice is an error.
- Field paths count list items from 0 (`chats[0].add[1]`). A missing or unreadable file is reported
  at line 0 (there is no line), whole-file problems under the field `file`.
- At most `MAX_ERRORS_PER_FILE` errors per file are listed, then one line counting the rest, so a
  broken million-row export does not flood the terminal.
- `job_sha256` covers everything parsed (chats and account settings) but not paths, lines, key or
  file order; set-like lists are sorted, an empty `accounts.<id>` counts as absent.

Big CSV jobs stream row by row and keep only interned id strings in per-chat tuples.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
import os
import sys
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, Literal, NamedTuple, TypeVar

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .errors import JobFileError, JobFileErrors
from .model import AccountSettings, ChatJob, Job, OwnerRuleViolation, RateSpec, parse_rate
from .yamlsafe import REJECTED, Problem, compose

if TYPE_CHECKING:
    from _csv import Reader as CsvReader

__all__ = [
    "CSV_ACTIONS",
    "CSV_COLUMNS",
    "MAX_ERRORS_PER_FILE",
    "job_sha256",
    "load_job",
    "locate_owner_rule",
    "owner_rule_errors",
]

_T = TypeVar("_T")

MAX_ERRORS_PER_FILE: Final = 1000
QUOTE_LIMIT: Final = 80
SUPPORTED_VERSION: Final = 1

CsvAction = Literal["add", "remove", "rename", "leave", "member", "protect"]
CSV_ACTIONS: Final[tuple[CsvAction, ...]] = (
    "add",
    "remove",
    "rename",
    "leave",
    "member",
    "protect",
)
CSV_COLUMNS: Final = frozenset({"account", "chat", "action", "user", "name"})
_CSV_HEADER: Final = "account,chat,action,user,name"

_TOP_KEYS: Final = frozenset({"version", "defaults", "accounts", "chats"})
_DEFAULTS_KEYS: Final = frozenset({"account"})
_ACCOUNT_KEYS: Final = frozenset({"rate", "write_rate", "daily_limit", "max_members"})
_CHAT_KEYS: Final = frozenset(
    {"chat", "account", "add", "remove", "rename", "leave", "members", "protect"}
)
_ACTION_KEYS: Final = ("add", "remove", "rename", "leave", "members")

_STR: Final = "tag:yaml.org,2002:str"
_INT: Final = "tag:yaml.org,2002:int"
_BOOL: Final = "tag:yaml.org,2002:bool"
_TAG_NAMES: Final = {
    "tag:yaml.org,2002:null": "null",
    _INT: "an integer",
    _BOOL: "a boolean",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:timestamp": "a date",
}

# Where a user sits in one chat; bits so that one small int per user records every list it is in
# (small ints are shared objects: a million users cost no extra int objects).
UserList = Literal["add", "remove", "members", "protect"]
_BIT: Final[dict[UserList, int]] = {"add": 1, "remove": 2, "members": 4, "protect": 8}
_ADD_AND_REMOVE: Final = 3
_OWNER_LISTS: Final[frozenset[UserList]] = frozenset({"remove", "members", "protect"})

# Categories refused in ids (invisible or line-breaking), and the subset refused in chat names
# (names may hold emoji, which use the zero-width joiner, a format character).
_ID_BAD: Final = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_NAME_BAD: Final = frozenset({"Cc", "Cs", "Zl", "Zp"})


# --------------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------------


def _q(value: object) -> str:
    """A value quoted for a message: at most QUOTE_LIMIT characters of it, escapes shown."""
    if isinstance(value, str):
        shown = repr(value[:QUOTE_LIMIT])
        return shown + "..." if len(value) > QUOTE_LIMIT else shown
    text = repr(value)
    return text[:QUOTE_LIMIT] + "..." if len(text) > QUOTE_LIMIT else text


def _bad_char(value: str, refused: frozenset[str]) -> str | None:
    for char in value:
        if unicodedata.category(char) in refused:
            return f"U+{ord(char):04X}"
    return None


def _id_problem(value: str, what: str) -> str | None:
    """Why `value` cannot be an id, or None. Ids go into URL paths and ledger lines."""
    if value == "":
        return f"{what} must not be empty"
    # Fast path for the common, clean id; the slow path below finds the words for what is wrong.
    if value.isprintable() and value.strip() == value and value not in (".", ".."):
        return None
    if value.strip() != value:
        return f"{what} {_q(value)} has surrounding whitespace"
    if value in (".", ".."):
        return f"{what} {_q(value)} is not a valid id"
    char = _bad_char(value, _ID_BAD)
    if char is not None:
        return f"{what} {_q(value)} contains a control or invisible character ({char})"
    return None


def _name_problem(value: str) -> str | None:
    if value == "" or value.strip() == "":
        return "the new name must not be empty"
    if value.strip() != value:
        return f"the new name {_q(value)} has surrounding whitespace"
    char = _bad_char(value, _NAME_BAD)
    if char is not None:
        return f"the new name {_q(value)} contains a control character ({char})"
    return None


@dataclass(slots=True)
class _Report:
    """The errors of one file, capped; a cap keeps counting so the summary is exact."""

    path: str
    errors: list[JobFileError] = field(default_factory=list)
    dropped: int = 0

    def add(self, line: int, field_name: str, message: str) -> None:
        if len(self.errors) < MAX_ERRORS_PER_FILE:
            self.errors.append(JobFileError(self.path, line, field_name, message))
        else:
            self.dropped += 1

    def finish(self) -> list[JobFileError]:
        errors = sorted(self.errors, key=lambda e: e.line)
        if self.dropped:
            last = errors[-1].line if errors else 0
            errors.append(
                JobFileError(self.path, last, "file", f"... and {self.dropped} more errors")
            )
        return errors


# --------------------------------------------------------------------------------------------
# One chat, as it is being read
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _ChatDraft:
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

    def put(self, kind: UserList, user: str, line: int, field_name: str, report: _Report) -> None:
        """Record `user` in list `kind`, refusing a duplicate or a user both added and removed."""
        bit = _BIT[kind]
        before = self.seen.get(user, 0)
        if before & bit:
            report.add(line, field_name, f"{_q(user)} is listed twice in {kind}")
            return
        if (before | bit) & _ADD_AND_REMOVE == _ADD_AND_REMOVE:
            report.add(line, field_name, f"{_q(user)} is both added and removed")
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


# Owner locations asked for by owner_rule_errors: (account, chat) -> owner id.
_Targets = Mapping[tuple[str, str], str]


def _owner_message(user: str, account: str) -> str:
    return (
        f"{_q(user)} is the owner of account {_q(account)}: the owner may not be in remove, "
        "members or protect (an owner leaves only via leave)"
    )


@dataclass(slots=True)
class _FileResult:
    """What one file contributes to the job."""

    path: str
    report: _Report
    chats: list[ChatJob] = field(default_factory=list)
    chat_fields: list[str] = field(default_factory=list)  # where each chat's id is, for messages
    accounts: dict[str, tuple[AccountSettings, int]] = field(default_factory=dict)
    default_account: str | None = None
    owner_hits: list[tuple[tuple[str, str], JobFileError]] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------------


def _decode_line(data: bytes, position: int) -> int:
    return data.count(b"\n", 0, position) + 1


def _read_text(path: str, report: _Report) -> str | None:
    """The file's text (UTF-8, BOM allowed), or None after reporting why not."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        report.add(0, "file", "no such file")
        return None
    except IsADirectoryError:
        report.add(0, "file", "is a directory, not a job file")
        return None
    except OSError as exc:
        report.add(0, "file", f"cannot read: {exc.strerror or exc}")
        return None
    # The BOM is cut off by hand: utf-8-sig would report error positions relative to its end.
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        report.add(_decode_line(data, exc.start), "file", "not UTF-8 text")
        return None
    if text.strip() == "":
        report.add(1, "file", "the file is empty")
        return None
    return text


def _is_csv(path: str) -> bool:
    return path.lower().endswith(".csv")


# --------------------------------------------------------------------------------------------
# YAML
# --------------------------------------------------------------------------------------------


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _describe(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag == _STR:
        return f"the string {_q(node.value)}"
    return f"{_TAG_NAMES.get(node.tag, node.tag)} ({_q(node.value)})"


class _YamlReader:
    """Walks one composed YAML file, checking every rule and collecting every error."""

    def __init__(
        self,
        path: str,
        report: _Report,
        problems: tuple[Problem, ...],
        targets: _Targets | None,
    ) -> None:
        self.path = path
        self.report = report
        self.problems = {id(p.node): p for p in problems}
        self.targets = targets
        self.result = _FileResult(path, report)
        # Only for its scalar conversions (`0x1F`, `1_000`, `yes`), which take a node as it is.
        self.constructor = yaml.constructor.SafeConstructor()

    # -- generic checks ------------------------------------------------------------------------

    def rejected(self, node: Node, field_name: str) -> bool:
        """True if `node` was refused by the loader; reports it under `field_name` once."""
        if node.tag != REJECTED:
            return False
        problem = self.problems.pop(id(node), None)
        if problem is not None:
            self.report.add(problem.line, field_name, problem.message)
        return True

    def mapping(
        self, node: Node, field_name: str, allowed: frozenset[str] | None, what: str
    ) -> dict[str, tuple[Node, Node]] | None:
        """The pairs of a mapping node by key, reporting duplicate, unknown and non-string keys."""
        if self.rejected(node, field_name):
            return None
        if not isinstance(node, MappingNode):
            message = f"expected {what}, got {_describe(node)}"
            self.report.add(_line(node), field_name or "file", message)
            return None
        pairs: dict[str, tuple[Node, Node]] = {}
        prefix = f"{field_name}." if field_name else ""
        for key_node, value_node in node.value:
            if self.rejected(key_node, field_name or "file"):
                continue
            if not isinstance(key_node, ScalarNode) or key_node.tag != _STR:
                self.report.add(
                    _line(key_node),
                    field_name or "file",
                    f"keys must be strings, got {_describe(key_node)} (quote it)",
                )
                continue
            key = key_node.value
            where = f"{prefix}{key}"
            if key in pairs:
                first = _line(pairs[key][0])
                self.report.add(
                    _line(key_node), where, f"duplicate key {_q(key)} (first at line {first})"
                )
                continue
            if allowed is not None and key not in allowed:
                expected = ", ".join(sorted(allowed))
                self.report.add(
                    _line(key_node), where, f"unknown key {_q(key)} (expected one of {expected})"
                )
                continue
            pairs[key] = (key_node, value_node)
        return pairs

    def string(self, node: Node, field_name: str, what: str) -> str | None:
        if self.rejected(node, field_name):
            return None
        if isinstance(node, ScalarNode) and node.tag == _STR:
            value: str = node.value
            return value
        hint = " (quote it)" if isinstance(node, ScalarNode) else ""
        self.report.add(_line(node), field_name, f"expected {what}, got {_describe(node)}{hint}")
        return None

    def identifier(self, node: Node, field_name: str, what: str) -> str | None:
        value = self.string(node, field_name, f"{what} (a string)")
        if value is None:
            return None
        problem = _id_problem(value, what)
        if problem is not None:
            self.report.add(_line(node), field_name, problem)
            return None
        return sys.intern(value)

    def positive_int(self, node: Node, field_name: str) -> int | None:
        if self.rejected(node, field_name):
            return None
        if isinstance(node, ScalarNode) and node.tag == _INT:
            number: int = self.constructor.construct_yaml_int(node)
            if number > 0:
                return number
            self.report.add(
                _line(node), field_name, f"expected a positive integer, got {_q(number)}"
            )
            return None
        self.report.add(
            _line(node), field_name, f"expected a positive integer, got {_describe(node)}"
        )
        return None

    def boolean(self, node: Node, field_name: str) -> bool | None:
        if self.rejected(node, field_name):
            return None
        if isinstance(node, ScalarNode) and node.tag == _BOOL:
            value: bool = self.constructor.construct_yaml_bool(node)
            return value
        self.report.add(_line(node), field_name, f"expected true or false, got {_describe(node)}")
        return None

    def rate(self, node: Node, field_name: str) -> RateSpec | None:
        text = self.string(node, field_name, "a rate such as 2/s, 2/min or 20/10s")
        if text is None:
            return None
        try:
            return parse_rate(text)
        except ValueError as exc:
            self.report.add(_line(node), field_name, str(exc))
            return None

    def optional(
        self,
        nodes: Mapping[str, Node],
        name: str,
        where: str,
        parse: Callable[[Node, str], _T | None],
    ) -> _T | None:
        node = nodes.get(name)
        return None if node is None else parse(node, f"{where}.{name}")

    # -- the file --------------------------------------------------------------------------------

    def read(self, root: Node) -> _FileResult:
        pairs = self.mapping(root, "", _TOP_KEYS, "a mapping with version: 1 and chats")
        if pairs is None:
            return self.result
        self.version(pairs.get("version"), _line(root))
        if "defaults" in pairs:
            self.defaults(pairs["defaults"][1])
        if "accounts" in pairs:
            self.accounts(pairs["accounts"][1])
        if "chats" in pairs:
            self.chats(pairs["chats"][1])
        return self.result

    def version(self, pair: tuple[Node, Node] | None, root_line: int) -> None:
        if pair is None:
            self.report.add(root_line, "version", "missing: start the file with version: 1")
            return
        node = pair[1]
        if self.rejected(node, "version"):
            return
        if (
            isinstance(node, ScalarNode)
            and node.tag == _INT
            and self.constructor.construct_yaml_int(node) == SUPPORTED_VERSION
        ):
            return
        shown = _q(node.value) if isinstance(node, ScalarNode) else _describe(node)
        message = (
            f"unsupported version {shown} (this bulkgroups reads version: {SUPPORTED_VERSION})"
        )
        self.report.add(_line(node), "version", message)

    def defaults(self, node: Node) -> None:
        pairs = self.mapping(
            node, "defaults", _DEFAULTS_KEYS, "a mapping (defaults: {account: ...})"
        )
        if pairs and "account" in pairs:
            value_node = pairs["account"][1]
            account = self.identifier(value_node, "defaults.account", "account id")
            if account is not None:
                self.result.default_account = account

    def accounts(self, node: Node) -> None:
        pairs = self.mapping(node, "accounts", None, "a mapping of account ids to settings")
        for key, (key_node, value_node) in (pairs or {}).items():
            where = f"accounts.{key}"
            problem = _id_problem(key, "account id")
            if problem is not None:
                self.report.add(_line(key_node), where, problem)
            settings = self.mapping(
                value_node, where, _ACCOUNT_KEYS, "a mapping of settings (rate, write_rate, ...)"
            )
            if settings is None:
                continue
            nodes = {name: pair[1] for name, pair in settings.items()}
            parsed = AccountSettings(
                rate=self.optional(nodes, "rate", where, self.rate),
                write_rate=self.optional(nodes, "write_rate", where, self.rate),
                daily_limit=self.optional(nodes, "daily_limit", where, self.positive_int),
                max_members=self.optional(nodes, "max_members", where, self.positive_int),
            )
            if problem is None:
                self.result.accounts[sys.intern(key)] = (parsed, _line(key_node))

    def chats(self, node: Node) -> None:
        if self.rejected(node, "chats"):
            return
        if not isinstance(node, SequenceNode):
            self.report.add(
                _line(node), "chats", f"expected a list of chats, got {_describe(node)}"
            )
            return
        for index, item in enumerate(node.value):
            draft = self.chat(item, f"chats[{index}]")
            if draft is not None and draft.valid:
                self.result.chats.append(draft.build(self.path))
                self.result.chat_fields.append(f"chats[{index}].chat")

    def chat(self, node: Node, where: str) -> _ChatDraft | None:
        pairs = self.mapping(node, where, _CHAT_KEYS, "a mapping (- chat: ID ...)")
        if pairs is None:
            return None
        draft = _ChatDraft(account="", chat="", line=_line(node))
        if "chat" in pairs:
            chat = self.identifier(pairs["chat"][1], f"{where}.chat", "chat id")
            if chat is None:
                draft.valid = False
            else:
                draft.chat = chat
        else:
            self.report.add(_line(node), f"{where}.chat", "missing: every chat needs chat: ID")
            draft.valid = False
        if "account" in pairs:
            account = self.identifier(pairs["account"][1], f"{where}.account", "account id")
        elif self.result.default_account is not None:
            account = self.result.default_account
        else:
            account = None
            self.report.add(
                _line(node),
                f"{where}.account",
                "no account: give account: ID here or defaults.account in this file",
            )
        if account is None:
            draft.valid = False
        else:
            draft.account = account
        # Only when every key was understood: after an unknown key, this would say it twice.
        if len(pairs) == len(node.value) and not any(key in pairs for key in _ACTION_KEYS):
            self.report.add(
                _line(node),
                where,
                "nothing to do: give add, remove, rename, leave or members",
            )
        if "members" in pairs:
            for key in ("add", "remove"):
                if key in pairs:
                    first, second = sorted((pairs[key][0], pairs["members"][0]), key=_line)
                    self.report.add(
                        _line(second),
                        f"{where}.{second.value}",
                        f"{second.value} cannot be combined with {first.value} (line "
                        f"{_line(first)}): a chat takes add/remove or a members list",
                    )
        elif "protect" in pairs:
            self.report.add(
                _line(pairs["protect"][0]),
                f"{where}.protect",
                "protect only applies together with members (a desired member list)",
            )
        if "rename" in pairs:
            value_node = pairs["rename"][1]
            name = self.string(value_node, f"{where}.rename", "the new name (a string)")
            if name is not None:
                problem = _name_problem(name)
                if problem is None:
                    draft.rename = name
                else:
                    self.report.add(_line(value_node), f"{where}.rename", problem)
        if "leave" in pairs:
            draft.leave = bool(self.boolean(pairs["leave"][1], f"{where}.leave"))
        # In document order, so that a conflict is reported where it is made: at the second list.
        for key, (_, value_node) in pairs.items():
            if key in _BIT:
                kind: UserList = key
                if kind == "members":
                    draft.members = []
                self.users(value_node, f"{where}.{kind}", kind, draft)
        return draft

    def users(self, node: Node, where: str, kind: UserList, draft: _ChatDraft) -> None:
        if self.rejected(node, where):
            return
        if not isinstance(node, SequenceNode):
            self.report.add(
                _line(node), where, f"expected a list of user ids, got {_describe(node)}"
            )
            return
        owner = self.targets.get((draft.account, draft.chat)) if self.targets else None
        for index, item in enumerate(node.value):
            field_name = f"{where}[{index}]"
            user = self.identifier(item, field_name, "user id")
            if user is None:
                continue
            draft.put(kind, user, _line(item), field_name, self.report)
            if owner == user and kind in _OWNER_LISTS:
                error = JobFileError(
                    self.path, _line(item), field_name, _owner_message(user, draft.account)
                )
                self.result.owner_hits.append(((draft.account, draft.chat), error))

    def leftovers(self) -> None:
        """Refusals inside parts that were not walked (e.g. under an unknown key)."""
        for problem in self.problems.values():
            self.report.add(problem.line, "file", problem.message)


def _read_yaml(path: str, report: _Report, targets: _Targets | None = None) -> _FileResult:
    text = _read_text(path, report)
    if text is None:
        return _FileResult(path, report)
    try:
        composed = compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        detail = exc.problem or exc.context or "invalid YAML"
        report.add(line, "file", f"YAML syntax error: {detail}")
        return _FileResult(path, report)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        report.add(line, "file", f"character U+{exc.character:04X} is not allowed in YAML")
        return _FileResult(path, report)
    except yaml.YAMLError as exc:
        report.add(1, "file", f"invalid YAML: {str(exc)[:QUOTE_LIMIT]}")
        return _FileResult(path, report)
    except RecursionError:
        report.add(1, "file", "YAML nested too deeply")
        return _FileResult(path, report)
    if composed.root is None:
        report.add(1, "file", "the file is empty: it holds no YAML document")
        return _FileResult(path, report)
    reader = _YamlReader(path, report, composed.problems, targets)
    result = reader.read(composed.root)
    reader.leftovers()
    return result


# --------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------


class _Row(NamedTuple):
    """One valid CSV row; transient (rows are consumed as they are read, never kept)."""

    line: int
    account: str
    chat: str
    action: CsvAction
    user: str
    name: str


def _default_for_csv(defaults: Mapping[str, str], path: str) -> tuple[str | None, str | None]:
    """The account for CSV rows without one, or None and why there is none."""
    distinct = set(defaults.values())
    if len(distinct) == 1:
        return next(iter(distinct)), None
    if not distinct:
        return None, "empty, and no YAML file of this job sets defaults.account"
    files = ", ".join(f"{p} ({_q(a)})" for p, a in defaults.items())
    return None, f"empty, and the YAML files set different defaults.account: {files}"


def _csv_rows(path: str, report: _Report, defaults: Mapping[str, str]) -> Iterator[_Row]:
    """Stream the valid rows of a CSV job file, reporting the invalid ones."""
    try:
        handle = open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        report.add(0, "file", "no such file")
        return
    except IsADirectoryError:
        report.add(0, "file", "is a directory, not a job file")
        return
    except OSError as exc:
        report.add(0, "file", f"cannot read: {exc.strerror or exc}")
        return
    default_account, no_default = _default_for_csv(defaults, path)
    with handle:
        reader = csv.reader(handle, strict=True)
        try:
            yield from _csv_body(reader, report, default_account, no_default)
        except UnicodeDecodeError:
            report.add(_first_bad_utf8_line(path), "file", "not UTF-8 text")


def _first_bad_utf8_line(path: str) -> int:
    with open(path, "rb") as raw:
        for number, line in enumerate(raw, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 1


def _csv_body(
    reader: CsvReader,
    report: _Report,
    default_account: str | None,
    no_default: str | None,
) -> Iterator[_Row]:
    try:
        header = next(reader, None)
    except csv.Error as exc:
        report.add(1, "file", f"malformed CSV header: {exc}")
        return
    if header == []:
        # Only blank lines, or a blank line where the header belongs.
        if any(row for row in reader):
            report.add(1, "file", f"line 1 must be the header {_CSV_HEADER}; it is blank")
            return
        header = None
    if header is None:
        report.add(1, "file", "the file is empty")
        return
    columns = _csv_header(header, report)
    if columns is None:
        return
    i_account, i_chat, i_action, i_user, i_name = columns
    end = reader.line_num
    while True:
        line = end + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # The reader cannot find the next row reliably (e.g. an unclosed quote): stop here.
            report.add(line, "file", f"malformed CSV from this line on: {exc}")
            return
        end = reader.line_num
        if not row:
            continue  # a blank line
        if len(row) != len(CSV_COLUMNS):
            report.add(line, "row", f"expected {len(CSV_COLUMNS)} fields, got {len(row)}")
            continue
        account, chat, action, user, name = (
            row[i_account],
            row[i_chat],
            row[i_action],
            row[i_user],
            row[i_name],
        )
        ok = True
        if account == "":
            if default_account is None:
                report.add(line, "account", no_default or "empty")
                ok = False
            else:
                account = default_account
        else:
            problem = _id_problem(account, "account id")
            if problem is not None:
                report.add(line, "account", problem)
                ok = False
        problem = _id_problem(chat, "chat id")
        if problem is not None:
            report.add(line, "chat", problem)
            ok = False
        if action not in CSV_ACTIONS:
            expected = ", ".join(CSV_ACTIONS)
            report.add(line, "action", f"unknown action {_q(action)} (expected one of {expected})")
            continue
        if action in ("rename", "leave"):
            if user != "":
                report.add(line, "user", f"{action} takes no user, got {_q(user)}")
                ok = False
        elif user == "" and action == "member":
            pass  # declares the desired list, possibly empty
        else:
            problem = _id_problem(user, "user id")
            if problem is not None:
                report.add(line, "user", problem + f" ({action} needs a user)" * (user == ""))
                ok = False
        if action == "rename":
            problem = _name_problem(name)
            if problem is not None:
                report.add(line, "name", problem)
                ok = False
        elif name != "":
            report.add(line, "name", f"only rename uses name; {action} got {_q(name)}")
            ok = False
        if ok:
            yield _Row(line, account, chat, action, user, name)


def _csv_header(header: list[str], report: _Report) -> tuple[int, int, int, int, int] | None:
    seen = set(header)
    if len(seen) != len(header) or seen != CSV_COLUMNS:
        shown = _q(",".join(header))
        message = f"the header must be exactly the columns {_CSV_HEADER} (any order), got {shown}"
        report.add(1, "file", message)
        return None
    index = {name: i for i, name in enumerate(header)}
    return (index["account"], index["chat"], index["action"], index["user"], index["name"])


def _read_csv(
    path: str, report: _Report, defaults: Mapping[str, str], targets: _Targets | None = None
) -> _FileResult:
    result = _FileResult(path, report)
    drafts: dict[tuple[str, str], _ChatDraft] = {}
    intern = sys.intern
    for row in _csv_rows(path, report, defaults):
        if targets is not None:
            owner = targets.get((row.account, row.chat))
            if owner == row.user and row.action in ("remove", "member", "protect"):
                error = JobFileError(path, row.line, "user", _owner_message(row.user, row.account))
                result.owner_hits.append(((row.account, row.chat), error))
            continue
        key = (row.account, row.chat)
        draft = drafts.get(key)
        if draft is None:
            draft = drafts[key] = _ChatDraft(intern(row.account), intern(row.chat), row.line)
        _csv_apply(draft, row, report)
    for draft in drafts.values():
        if draft.protect_line and draft.members is None:
            report.add(
                draft.protect_line,
                "action",
                "protect only applies together with member rows (a desired member list)",
            )
        result.chats.append(draft.build(path))
        result.chat_fields.append("chat")
    return result


def _csv_apply(draft: _ChatDraft, row: _Row, report: _Report) -> None:
    action, line = row.action, row.line
    if action == "rename":
        if draft.rename is not None:
            report.add(line, "action", f"the chat is already renamed at line {draft.rename_line}")
        else:
            draft.rename, draft.rename_line = row.name, line
        return
    if action == "leave":
        if draft.leave:
            report.add(line, "action", f"the chat already leaves at line {draft.leave_line}")
        else:
            draft.leave, draft.leave_line = True, line
        return
    if action in ("add", "remove"):
        if draft.members_line:
            _csv_mixing(draft, row, report, draft.members_line, "member")
            return
        draft.diff_line = draft.diff_line or line
        draft.put(action, sys.intern(row.user), line, "user", report)
        return
    if action == "member":
        if draft.diff_line:
            _csv_mixing(draft, row, report, draft.diff_line, "add/remove")
            return
        draft.members_line = draft.members_line or line
        if draft.members is None:
            draft.members = []
        if row.user:
            draft.put("members", sys.intern(row.user), line, "user", report)
        return
    draft.protect_line = draft.protect_line or line
    draft.put("protect", sys.intern(row.user), line, "user", report)


def _csv_mixing(draft: _ChatDraft, row: _Row, report: _Report, first: int, other: str) -> None:
    # Reported once per chat: every further row would repeat the same mistake.
    if not draft.mixing_reported:
        draft.mixing_reported = True
        report.add(
            row.line,
            "action",
            f"{row.action} rows cannot be mixed with {other} rows for one chat (line {first}): "
            "a chat takes add/remove or a member list",
        )


# --------------------------------------------------------------------------------------------
# The job
# --------------------------------------------------------------------------------------------


def _read_all(
    paths: tuple[str, ...], reports: dict[str, _Report], targets: _Targets | None
) -> list[_FileResult]:
    """Read every file, YAML first (CSV rows may need their defaults), in command-line order."""
    results: dict[str, _FileResult] = {}
    for path in paths:
        if not _is_csv(path):
            results[path] = _read_yaml(path, reports[path], targets)
    defaults = {
        r.path: r.default_account for r in results.values() if r.default_account is not None
    }
    for path in paths:
        if _is_csv(path):
            results[path] = _read_csv(path, reports[path], defaults, targets)
    return [results[path] for path in paths]


def load_job(*paths: str | os.PathLike[str]) -> Job:
    """Load one job from one or more YAML/CSV files (`.csv` selects CSV).

    Raises JobFileErrors holding every problem of every file, each located (path, line, field).
    """
    names = tuple(os.fspath(p) for p in paths)
    reports = {name: _Report(name) for name in names}
    errors: list[JobFileError] = []
    unique: list[str] = []
    first_by_file: dict[Path, str] = {}
    for name in names:
        resolved = Path(name).resolve()
        if resolved in first_by_file:
            errors.append(
                JobFileError(name, 0, "file", f"given twice (as {_q(first_by_file[resolved])})")
            )
            continue
        first_by_file[resolved] = name
        unique.append(name)
    if not unique:
        raise JobFileErrors(errors or [JobFileError("-", 0, "file", "no job file given")])
    results = _read_all(tuple(unique), reports, None)

    accounts: dict[str, AccountSettings] = {}
    account_places: dict[str, str] = {}
    chats: list[ChatJob] = []
    chat_places: dict[tuple[str, str], str] = {}
    for result in results:
        for account, (settings, line) in result.accounts.items():
            if account in account_places:
                result.report.add(
                    line,
                    f"accounts.{account}",
                    f"settings for account {_q(account)} are already given at "
                    f"{account_places[account]}",
                )
                continue
            account_places[account] = f"{result.path}:{line}"
            accounts[account] = settings
        for chat, chat_field in zip(result.chats, result.chat_fields, strict=True):
            key = (chat.account, chat.chat)
            if key in chat_places:
                result.report.add(
                    chat.line,
                    chat_field,
                    f"chat {_q(chat.chat)} of account {_q(chat.account)} is already listed at "
                    f"{chat_places[key]}",
                )
                continue
            chat_places[key] = f"{chat.path}:{chat.line}"
            chats.append(chat)
    for name in unique:
        errors.extend(reports[name].finish())
    if errors:
        raise JobFileErrors(errors)
    job = Job(chats=tuple(chats), accounts=MappingProxyType(accounts), paths=tuple(unique))
    return replace(job, sha256=job_sha256(job))


def _rate_canon(rate: RateSpec | None) -> list[float] | None:
    return None if rate is None else [rate.count, rate.period]


def job_sha256(job: Job) -> str:
    """Hash of the canonical parsed job: what `apply --resume` and `apply --plan` compare.

    Independent of key order, file order, paths and lines; add/remove/members/protect are sets.
    """
    digest = hashlib.sha256(b"bulkgroups job v1\n")
    accounts = {
        account: [
            _rate_canon(settings.rate),
            _rate_canon(settings.write_rate),
            settings.daily_limit,
            settings.max_members,
        ]
        for account, settings in sorted(job.accounts.items())
        if settings != AccountSettings()
    }
    digest.update(json.dumps(accounts, separators=(",", ":")).encode())
    for chat in sorted(job.chats, key=lambda c: (c.account, c.chat)):
        canon = [
            chat.account,
            chat.chat,
            sorted(chat.add),
            sorted(chat.remove),
            chat.rename,
            chat.leave,
            None if chat.members is None else sorted(chat.members),
            sorted(chat.protect),
        ]
        digest.update(b"\n" + json.dumps(canon, separators=(",", ":")).encode())
    return digest.hexdigest()


def owner_rule_errors(job: Job, owners: Mapping[str, str]) -> list[JobFileError]:
    """Errors for each account owner's id in remove, members or protect, located in the files.

    `owners` maps account ids to their owner's user id (from the account GET). Locations are found
    by reading the files again, which only happens when there is something to report.
    """
    targets: dict[tuple[str, str], str] = {}
    for chat in job.chats:
        owner = owners.get(chat.account)
        if owner is None:
            continue
        if owner in chat.remove or owner in chat.protect or owner in (chat.members or ()):
            targets[(chat.account, chat.chat)] = owner
    if not targets:
        return []
    reports = {path: _Report(path) for path in job.paths}
    hits = [hit for result in _read_all(job.paths, reports, targets) for hit in result.owner_hits]
    errors = [error for _, error in hits]
    located = {key for key, _ in hits}
    for chat in job.chats:
        key = (chat.account, chat.chat)
        if key in targets and key not in located:
            # The file changed since it was loaded: still refuse, at the chat's own place.
            message = _owner_message(targets[key], chat.account)
            errors.append(JobFileError(chat.path or "<job>", chat.line, "chat", message))
    order = {path: index for index, path in enumerate(job.paths)}
    return sorted(errors, key=lambda e: (order.get(e.path, len(order)), e.line))


def locate_owner_rule(job: Job, violations: Sequence[OwnerRuleViolation]) -> list[JobFileError]:
    """The owner-rule violations the engine found, as `PATH:LINE: FIELD: message` errors."""
    owners = {v.account: v.user for v in violations}
    return owner_rule_errors(job, owners)
