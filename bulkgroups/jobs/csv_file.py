"""CSV job files: the export format, streamed row by row.

Big CSV jobs keep only id strings in per-chat lists, one string per distinct id (a table of the
file's own, dropped once it is read: `sys.intern`'s table would hold an entry per id for the
life of the process, 40 MB for a million distinct ids): rows are checked and consumed as they
are read, never kept.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, BinaryIO, Final, Literal, NamedTuple

from .checks import id_problem, is_plain_id, name_problem
from .drafts import ChatDraft, FileResult, UserList
from .report import FileReport, quote
from .source import open_text
from .users import read_user

if TYPE_CHECKING:
    from _csv import Reader as CsvReader

__all__ = ["CSV_ACTIONS", "CSV_COLUMNS", "CSV_HEADER", "CsvAction", "read_csv"]

CsvAction = Literal["add", "remove", "rename", "leave", "member", "protect"]
CSV_ACTIONS: Final[tuple[CsvAction, ...]] = (
    "add",
    "remove",
    "rename",
    "leave",
    "member",
    "protect",
)
# The columns in the order the documentation writes them and `export` writes them (a file read
# accepts any order).
CSV_HEADER: Final = ("account", "chat", "action", "user", "name")
CSV_COLUMNS: Final = frozenset(CSV_HEADER)
_USER_ACTIONS: Final = frozenset({"add", "remove", "member", "protect"})
_CSV_HEADER: Final = ",".join(CSV_HEADER)

# Column positions of account, chat, action, user, name, as the header orders them.
_Columns = tuple[int, int, int, int, int]


class _Row(NamedTuple):
    """One valid CSV row; transient (rows are consumed as they are read, never kept)."""

    line: int
    account: str
    chat: str
    action: CsvAction
    user: str
    name: str


def _default_for_csv(defaults: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The account for CSV rows without one, or None and why there is none."""
    distinct = set(defaults.values())
    if len(distinct) == 1:
        return next(iter(distinct)), None
    if not distinct:
        return None, "empty, and no YAML file of this job sets defaults.account"
    files = ", ".join(f"{p} ({quote(a)})" for p, a in defaults.items())
    return None, f"empty, and the YAML files set different defaults.account: {files}"


def _csv_rows(path: str, report: FileReport, defaults: Mapping[str, str]) -> Iterator[_Row]:
    """Stream the valid rows of a CSV job file, reporting the invalid ones."""
    opened = open_text(path, report)
    if opened is None:
        return
    raw, text = opened
    rows = _RowChecker(report, *_default_for_csv(defaults))
    with text:
        reader = csv.reader(text, strict=True)
        try:
            columns = _columns(reader, report)
            if columns is not None:
                for line, fields in _records(reader, report):
                    row = rows.check(line, fields, columns)
                    if row is not None:
                        yield row
        except UnicodeDecodeError:
            report.add(_first_bad_utf8_line(raw), "file", "not UTF-8 text")


def _first_bad_utf8_line(raw: BinaryIO) -> int:
    raw.seek(0)
    for number, line in enumerate(raw, start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            return number
    return 1


def _columns(reader: CsvReader, report: FileReport) -> _Columns | None:
    """The column positions from the header line, or None after reporting why there are none."""
    try:
        header = next(reader, None)
    except csv.Error as exc:
        report.add(1, "file", f"malformed CSV header: {exc}")
        return None
    if header == []:
        # Only blank lines, or a blank line where the header belongs.
        if any(row for row in reader):
            report.add(1, "file", f"line 1 must be the header {_CSV_HEADER}; it is blank")
            return None
        header = None
    if header is None:
        report.add(None, "file", "the file is empty")
        return None
    seen = set(header)
    if len(seen) != len(header) or seen != CSV_COLUMNS:
        shown = quote(",".join(header))
        message = f"the header must be exactly the columns {_CSV_HEADER} (any order), got {shown}"
        report.add(1, "file", message)
        return None
    index = {name: i for i, name in enumerate(header)}
    return (index["account"], index["chat"], index["action"], index["user"], index["name"])


def _records(reader: CsvReader, report: FileReport) -> Iterator[tuple[int, list[str]]]:
    """Each record of five fields with the physical line it starts on; blank lines skipped."""
    end = reader.line_num
    while True:
        line = end + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # The reader cannot find the next row reliably (e.g. an unclosed quote): stop here.
            report.add(line, "file", f"malformed CSV from this line on: {exc}")
            return
        end = reader.line_num
        if not fields:
            continue  # a blank line
        if len(fields) != len(CSV_COLUMNS):
            report.add(line, "row", f"expected {len(CSV_COLUMNS)} fields, got {len(fields)}")
            continue
        yield line, fields


class _RowChecker:
    """Checks one record's fields, each against its column and its action; reports every problem
    of the row (not only the first) and yields the row only when all are right."""

    def __init__(self, report: FileReport, default_account: str | None, no_default: str | None):
        self.report = report
        self.default_account = default_account
        self.no_default = no_default or "empty"

    def check(self, line: int, fields: list[str], columns: _Columns) -> _Row | None:
        i_account, i_chat, i_action, i_user, i_name = columns
        account, chat, action, user = (
            fields[i_account],
            fields[i_chat],
            fields[i_action],
            fields[i_user],
        )
        # The fast path: a clean row of a user action, as nearly every row of a big export is.
        if (
            action in _USER_ACTIONS
            and fields[i_name] == ""
            and is_plain_id(account)
            and is_plain_id(chat)
        ):
            named, _ = read_user(user)
            if named is not None:
                return _Row(line, account, chat, action, named, "")  # type: ignore[arg-type]
        return self.check_each(line, account, chat, action, user, fields[i_name])

    def check_each(
        self, line: int, account: str, chat: str, action: str, user: str, name: str
    ) -> _Row | None:
        """Every column checked and every problem reported."""
        default_or_account = self.account(line, account)
        chat_ok = self.problem(line, "chat", id_problem(chat, "chat id"))
        if action not in CSV_ACTIONS:
            expected = ", ".join(CSV_ACTIONS)
            self.report.add(
                line, "action", f"unknown action {quote(action)} (expected one of {expected})"
            )
            return None
        named = self.user(line, action, user)
        name_ok = self.name(line, action, name)
        if default_or_account is None or named is None or not (chat_ok and name_ok):
            return None
        return _Row(line, default_or_account, chat, action, named, name)

    def problem(self, line: int, column: str, problem: str | None) -> bool:
        """Report `problem` (if any) in `column`; True when there was none."""
        if problem is None:
            return True
        self.report.add(line, column, problem)
        return False

    def account(self, line: int, account: str) -> str | None:
        if account != "":
            return (
                account
                if self.problem(line, "account", id_problem(account, "account id"))
                else None
            )
        if self.default_account is None:
            self.report.add(line, "account", self.no_default)
        return self.default_account

    def user(self, line: int, action: CsvAction, user: str) -> str | None:
        """The user the row names ("" where its action takes none), or None (reported)."""
        if action in ("rename", "leave"):
            if user == "":
                return ""
            self.report.add(line, "user", f"{action} takes no user, got {quote(user)}")
            return None
        if user == "" and action == "member":
            return ""  # declares the desired list, possibly empty
        named, problem = read_user(user)
        if problem is not None:
            suffix = f" ({action} needs a user)" if user == "" else ""
            self.report.add(line, "user", problem + suffix)
        return named

    def name(self, line: int, action: CsvAction, name: str) -> bool:
        if action == "rename":
            return self.problem(line, "name", name_problem(name))
        problem = None if name == "" else f"only rename uses name; {action} got {quote(name)}"
        return self.problem(line, "name", problem)


def read_csv(path: str, report: FileReport, defaults: Mapping[str, str]) -> FileResult:
    """Read one CSV job file; `defaults` are the YAML files' `defaults.account` by path."""
    result = FileResult(path, report)
    drafts: dict[tuple[str, str], ChatDraft] = {}
    users: dict[str, str] = {}  # each distinct user id once (see the module docstring)
    intern = sys.intern
    for row in _csv_rows(path, report, defaults):
        key = (row.account, row.chat)
        draft = drafts.get(key)
        if draft is None:
            draft = drafts[key] = ChatDraft(intern(row.account), intern(row.chat), row.line)
        _apply(draft, row, report, users)
    for draft in drafts.values():
        if draft.protect_line and draft.members is None:
            report.add(
                draft.protect_line,
                "action",
                "protect only applies together with member rows (a desired member list)",
            )
        result.chats.append(draft.build(path, None))
        result.chat_fields.append("chat")
    return result


def _apply(draft: ChatDraft, row: _Row, report: FileReport, users: dict[str, str]) -> None:
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
            _mixing(draft, row, report, draft.members_line, "member")
            return
        draft.diff_line = draft.diff_line or line
        _put(draft, action, row, report, users)
        return
    if action == "member":
        if draft.diff_line:
            _mixing(draft, row, report, draft.diff_line, "add/remove")
            return
        draft.members_line = draft.members_line or line
        if draft.members is None:
            draft.members = []
        if row.user:
            _put(draft, "members", row, report, users)
        return
    draft.protect_line = draft.protect_line or line
    _put(draft, "protect", row, report, users)


def _put(
    draft: ChatDraft, kind: UserList, row: _Row, report: FileReport, users: dict[str, str]
) -> None:
    problem = draft.put(kind, users.setdefault(row.user, row.user), row.line)
    if problem is not None:
        report.add(row.line, "user", problem)


def _mixing(draft: ChatDraft, row: _Row, report: FileReport, first: int, other: str) -> None:
    # Reported once per chat: every further row would repeat the same mistake.
    if not draft.mixing_reported:
        draft.mixing_reported = True
        report.add(
            row.line,
            "action",
            f"{row.action} rows cannot be mixed with {other} rows for one chat (line {first}): "
            "a chat takes add/remove or a member list",
        )
