"""`bulkgroups undo LEDGER`: the job that undoes what one run applied, from the ledger alone.

The ledger knows exactly what a run changed: its `op` records `applied` (`recovered` ones
included: writes an earlier, killed run sent, that this run found in effect), as amended by its
`verify` records (a write that did not show, `not_effective`, changed nothing and is left out).
Each becomes its inverse in an imperative chat entry: an add a remove, a remove an add, a rename
a rename back to the name the run's read saw (`previous_name` of the op record). A leave cannot
be undone (the owner cannot rejoin a chat by itself); the chat's other inverses could not be
applied either (the chat is read-only for the account since), so such a chat is written as
comments. The result is a job file like any other, to review, `plan` and `apply`.

Decisions:
- Default run: the ledger's last run that applied something (after amendments). Runs are undone
  one at a time (`--run` for another; a job applied over an interrupted run and its `--resume`
  takes one undo per run).
- A user both removed and added back in one run (named twice, by id and by profile) was a member
  before and after: nothing to undo.
- A rename whose previous name is unknown (a rename recovered from a killed run: the killed run's
  read saw the name, this one saw it already renamed) or that no job file could hold is a comment.
- The ledger's `resolution` records give the profile a member was named by, shown as a comment.
- Memory: the run's applied operations are held (grouped by chat) while the file is written; the
  ledger itself is streamed (twice). A ledger directory is read as one, as `report` reads it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import UsageError
from .export import yaml_comment, yaml_scalar
from .jobs.checks import name_problem
from .ledger_dir import read_ledgers
from .model import WRITE_ACTIONS, profile_display
from .records import (
    OpRecord,
    Record,
    ResolutionRecord,
    RunRecord,
    VerifyRecord,
    format_time,
)

__all__ = ["InverseJob", "inverse_of"]

Write = Callable[[bytes], object]


@dataclass(slots=True)
class _Chat:
    """One chat's applied operations in the run, and what undoes them."""

    account: str
    chat: str
    added: dict[str, None] = field(default_factory=dict)
    removed: dict[str, None] = field(default_factory=dict)
    renamed_to: str | None = None
    previous_name: str | None = None
    renamed: bool = False
    left: bool = False

    def take(self, record: OpRecord) -> None:
        if record.action == "add" and record.user is not None:
            self.added[record.user] = None
        elif record.action == "remove" and record.user is not None:
            self.removed[record.user] = None
        elif record.action == "rename":
            self.renamed, self.renamed_to = True, record.name
            self.previous_name = record.previous_name
        elif record.action == "leave":
            self.left = True

    @property
    def to_remove(self) -> list[str]:
        """Added by the run (and not also removed by it): remove them."""
        return [u for u in self.added if u not in self.removed]

    @property
    def to_add(self) -> list[str]:
        """Removed by the run (and not also added back by it): add them."""
        return [u for u in self.removed if u not in self.added]

    def rename_problem(self) -> str | None:
        if not self.renamed:
            return None
        if self.previous_name is None:
            return "the name before it is unknown (the rename was recovered from a killed run)"
        return name_problem(self.previous_name)


@dataclass(frozen=True, slots=True)
class InverseJob:
    """The inverse of one run's applied operations, ready to be written as a YAML job."""

    ledger: str
    run: RunRecord
    chats: list[_Chat]
    profiles: dict[tuple[str, str], str]

    def counts(self) -> dict[str, int]:
        return {
            "remove": sum(len(c.to_remove) for c in self.chats if not c.left),
            "add": sum(len(c.to_add) for c in self.chats if not c.left),
            "rename": sum(1 for c in self.chats if not c.left and c.renamed),
            "leave": sum(1 for c in self.chats if c.left),
        }

    def summary(self) -> str:
        counts = self.counts()
        text = (
            f"Undo of run {self.run.run_id}: {counts['remove']} to remove, {counts['add']} to add, "
            f"{counts['rename']} to rename back"
        )
        if counts["leave"]:
            text += f"; {counts['leave']} leave(s) cannot be undone (comments in the file)"
        return text + ". Review it, then plan and apply it."

    def _entries(self) -> list[_Chat]:
        return [
            c
            for c in self.chats
            if not c.left
            and (c.to_add or c.to_remove or (c.renamed and c.rename_problem() is None))
        ]

    def write_to(self, write: Write) -> None:
        """The job file, chat by chat, in the order the run first changed each chat."""
        run = self.run
        started = f" (started {run.started_at})" if run.started_at else ""
        write(
            (
                f"# Written by `bulkgroups undo` at {format_time(time.time())} from the ledger "
                f"{yaml_comment(self.ledger)}.\n"
                f"# It undoes run {run.run_id}{started},\n"
                f"# of the job with sha256 {run.job_sha256[:12]}…: each operation that run "
                "applied, inverted.\n"
                "# Review it, then `bulkgroups plan` and `bulkgroups apply` it like any job.\n"
                "version: 1\n" + ("chats:\n" if self._entries() else "chats: []\n")
            ).encode("utf-8")
        )
        for chat in self.chats:
            write(self._chat_text(chat).encode("utf-8"))

    def _who(self, account: str, user: str, did: str) -> str:
        profile = self.profiles.get((account, user))
        about = f"{did} by that run" + (f"; {profile_display(profile)}" if profile else "")
        return f"{yaml_scalar(user)}  # {yaml_comment(about)}"

    def _chat_text(self, chat: _Chat) -> str:
        if chat.left:
            return _left_text(chat)
        lines: list[str] = []
        problem = chat.rename_problem()
        if chat.renamed and problem is not None:
            lines.append(
                f"  # {_where(chat)}: the rename to {yaml_comment(repr(chat.renamed_to))} cannot "
                f"be undone: {yaml_comment(problem)}"
            )
        if chat.to_add or chat.to_remove or (chat.renamed and problem is None):
            lines += self._entry_lines(chat)
        return "\n".join(lines) + "\n" if lines else ""

    def _entry_lines(self, chat: _Chat) -> list[str]:
        """The chat's entry in the job: its rename back, then the adds and removes that undo."""
        lines = [f"  - chat: {yaml_scalar(chat.chat)}", f"    account: {yaml_scalar(chat.account)}"]
        if chat.renamed and chat.previous_name is not None and chat.rename_problem() is None:
            lines.append(
                f"    rename: {yaml_scalar(chat.previous_name)}  # renamed to "
                f"{yaml_comment(repr(chat.renamed_to))} by that run"
            )
        if chat.to_add:
            lines.append("    add:")
            lines += [f"      - {self._who(chat.account, u, 'removed')}" for u in chat.to_add]
        if chat.to_remove:
            lines.append("    remove:")
            lines += [f"      - {self._who(chat.account, u, 'added')}" for u in chat.to_remove]
        return lines


def _where(chat: _Chat) -> str:
    return f"{yaml_comment(chat.account)} / {yaml_comment(chat.chat)}"


def _left_text(chat: _Chat) -> str:
    """A chat the run left: what it changed there, as comments (none of it can be undone)."""
    notes = [
        f"  # {_where(chat)}: left by that run, which cannot be undone (the owner cannot rejoin)"
    ]
    if chat.to_add or chat.to_remove or chat.renamed:
        notes.append("  # nor can what else it changed there, by this account:")
    notes += [f"  #   added {yaml_comment(u)}" for u in chat.to_remove]
    notes += [f"  #   removed {yaml_comment(u)}" for u in chat.to_add]
    if chat.renamed:
        notes.append(
            f"  #   renamed {yaml_comment(repr(chat.previous_name))} -> "
            f"{yaml_comment(repr(chat.renamed_to))}"
        )
    return "\n".join(notes) + "\n"


@dataclass(slots=True)
class _LedgerRuns:
    """The first pass over the ledger: its runs, how many writes each applied once amended, the
    amendments, and who the profiles are."""

    runs: dict[str, RunRecord] = field(default_factory=dict)
    applied: dict[str, int] = field(default_factory=dict)
    amended: set[tuple[str, str]] = field(default_factory=set)
    profiles: dict[tuple[str, str], str] = field(default_factory=dict)

    def take(self, record: Record) -> None:
        if isinstance(record, RunRecord):
            self.runs[record.run_id] = record
        elif isinstance(record, OpRecord):
            if record.status == "applied" and record.action in WRITE_ACTIONS:
                self.applied[record.run_id] = self.applied.get(record.run_id, 0) + 1
        elif isinstance(record, VerifyRecord):
            if record.status != "applied":
                self.amended.add((record.run_id, record.op_id))
                self.applied[record.run_id] = self.applied.get(record.run_id, 0) - 1
        elif isinstance(record, ResolutionRecord):
            self.profiles[(record.account, record.user_id)] = record.profile

    def chosen(self, ledger: str, run_id: str | None) -> str:
        """`run_id`, checked, or by default the last run that applied something."""
        if run_id is None:
            last = next((r for r in reversed(self.runs) if self.applied.get(r, 0) > 0), None)
            if last is None:
                raise UsageError(f"{ledger}: no run applied anything: nothing to undo")
            return last
        if run_id not in self.runs:
            raise UsageError(f"{ledger}: no run {run_id!r:.80} in this ledger")
        if self.applied.get(run_id, 0) <= 0:
            raise UsageError(f"{ledger}: run {run_id} applied nothing: nothing to undo")
        return run_id

    def undoes(self, record: Record, run_id: str) -> bool:
        """Whether `record` is a write the run applied (and kept applied): one to undo."""
        return (
            isinstance(record, OpRecord)
            and record.run_id == run_id
            and record.status == "applied"
            and record.action in WRITE_ACTIONS
            and (run_id, record.op_id) not in self.amended
        )


def inverse_of(ledger: str, *, run_id: str | None = None) -> InverseJob:
    """The inverse job of run `run_id` of `ledger` (default: its last run that applied
    something); `UsageError` for a missing ledger, an unknown run, or nothing to undo.

    A ledger directory is read as `report` reads it: every ledger in it, as one."""
    if not os.path.exists(ledger):
        raise UsageError(f"{ledger}: no such ledger")
    seen = _LedgerRuns()
    for record in read_ledgers(ledger):
        seen.take(record)
    run_id = seen.chosen(ledger, run_id)
    # Second pass: the run's applied writes, grouped by chat in the order the run reached them.
    chats: dict[tuple[str, str], _Chat] = {}
    for record in read_ledgers(ledger):
        if seen.undoes(record, run_id):
            assert isinstance(record, OpRecord)
            key = (record.account, record.chat)
            chat = chats.get(key)
            if chat is None:
                chat = chats[key] = _Chat(record.account, record.chat)
            chat.take(record)
    return InverseJob(os.fspath(ledger), seen.runs[run_id], list(chats.values()), seen.profiles)
