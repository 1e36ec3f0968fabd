"""YAML job files: one document walked with every rule checked and every error collected."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Final, TypeVar

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ..model import AccountSettings, RateSpec, parse_rate
from .checks import id_problem, name_problem
from .drafts import USER_LISTS, ChatDraft, FileResult, UserList
from .report import QUOTE_LIMIT, FileReport, quote
from .source import read_text
from .yaml_compose import REJECTED, Problem, compose

__all__ = ["read_yaml"]

_T = TypeVar("_T")

SUPPORTED_VERSION: Final = 1

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


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _describe(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag == _STR:
        return f"the string {quote(node.value)}"
    return f"{_TAG_NAMES.get(node.tag, node.tag)} ({quote(node.value)})"


class _YamlReader:
    """Walks one composed YAML file, checking every rule and collecting every error."""

    def __init__(
        self,
        path: str,
        report: FileReport,
        problems: tuple[Problem, ...],
    ) -> None:
        self.path = path
        self.report = report
        self.problems = {id(p.node): p for p in problems}
        self.result = FileResult(path, report)
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
                    _line(key_node), where, f"duplicate key {quote(key)} (first at line {first})"
                )
                continue
            if allowed is not None and key not in allowed:
                expected = ", ".join(sorted(allowed))
                self.report.add(
                    _line(key_node), where, f"unknown key {quote(key)} (expected one of {expected})"
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
        problem = id_problem(value, what)
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
                _line(node), field_name, f"expected a positive integer, got {quote(number)}"
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

    def read(self, root: Node) -> FileResult:
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
        shown = quote(node.value) if isinstance(node, ScalarNode) else _describe(node)
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
            problem = id_problem(key, "account id")
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
                self.result.chats.append(draft.build(self.path, f"chats[{index}]"))
                self.result.chat_fields.append(f"chats[{index}].chat")

    def chat(self, node: Node, where: str) -> ChatDraft | None:
        pairs = self.mapping(node, where, _CHAT_KEYS, "a mapping (- chat: ID ...)")
        if pairs is None:
            return None
        draft = ChatDraft(account="", chat="", line=_line(node))
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
                problem = name_problem(name)
                if problem is None:
                    draft.rename = name
                else:
                    self.report.add(_line(value_node), f"{where}.rename", problem)
        if "leave" in pairs:
            draft.leave = bool(self.boolean(pairs["leave"][1], f"{where}.leave"))
        # In document order, so that a conflict is reported where it is made: at the second list.
        for key, (_, value_node) in pairs.items():
            kind = USER_LISTS.get(key)
            if kind is not None:
                if kind == "members":
                    draft.members = []
                self.users(value_node, f"{where}.{kind}", kind, draft)
        return draft

    def users(self, node: Node, where: str, kind: UserList, draft: ChatDraft) -> None:
        if self.rejected(node, where):
            return
        if not isinstance(node, SequenceNode):
            self.report.add(
                _line(node), where, f"expected a list of user ids, got {_describe(node)}"
            )
            return
        for index, item in enumerate(node.value):
            field_name = f"{where}[{index}]"
            user = self.identifier(item, field_name, "user id")
            if user is None:
                continue
            problem = draft.put(kind, user, _line(item))
            if problem is not None:
                self.report.add(_line(item), field_name, problem)

    def leftovers(self) -> None:
        """Refusals inside parts that were not walked (e.g. under an unknown key)."""
        for problem in self.problems.values():
            self.report.add(problem.line, "file", problem.message)


def read_yaml(path: str, report: FileReport) -> FileResult:
    text = read_text(path, report)
    if text is None:
        return FileResult(path, report)
    try:
        composed = compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        detail = exc.problem or exc.context or "invalid YAML"
        report.add(line, "file", f"YAML syntax error: {detail}")
        return FileResult(path, report)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        report.add(line, "file", f"character U+{exc.character:04X} is not allowed in YAML")
        return FileResult(path, report)
    except yaml.YAMLError as exc:
        report.add(1, "file", f"invalid YAML: {str(exc)[:QUOTE_LIMIT]}")
        return FileResult(path, report)
    except RecursionError:
        report.add(1, "file", "YAML nested too deeply")
        return FileResult(path, report)
    if composed.root is None:
        report.add(1, "file", "the file is empty: it holds no YAML document")
        return FileResult(path, report)
    reader = _YamlReader(path, report, composed.problems)
    result = reader.read(composed.root)
    reader.leftovers()
    return result
