"""What a person sees: the plan as a per-chat diff and the result table (progress: `progress`).

The plan diff is plain text written chat by chat straight to the output stream, so that it reads
the same in a terminal, a CI log and a pull-request comment, and so that a plan of a million
operations never becomes one string (through rich it cost 750 MB). rich draws the tables (the
summary of a large plan, the result table). Tables wrap long ids rather than cut them: a cron
mail is 80 columns wide and an id with `…` in it cannot be looked up; what failed, too wide for a
table there, is a line per operation instead.

What a plan shows (`PlanView`): chats without changes are counted, not listed, unless
`show_unchanged`; `detail="summary"` prints totals per account instead of the diff, and `"auto"`
(the default) does so beyond `AUTO_SUMMARY_LINES` operations, with a note saying how to see all;
`"totals"` (`--quiet`) prints the totals line alone.
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Final, Literal

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from .durations import format_duration
from .model import ChatPlan, Operation, Outcome, Plan, profile_display
from .terminal import printable

if TYPE_CHECKING:
    from .progress import OutcomeTally

__all__ = [
    "AUTO_SUMMARY_LINES",
    "PlanDetail",
    "PlanView",
    "format_duration",
    "render_outcomes",
    "render_plan",
    "write_plan",
]

PlanDetail = Literal["auto", "full", "summary", "totals"]

# Beyond this many operation lines a diff is no longer read, only scrolled: `auto` summarises.
AUTO_SUMMARY_LINES: Final = 10_000
# Accounts listed in a summary; the rest are counted (the JSON plan has every chat).
_SUMMARY_ACCOUNTS: Final = 50
_REFUSED: Final = ("failed", "deferred")


@dataclass(frozen=True, slots=True)
class PlanView:
    """How much of a plan to print (`plan`'s `--summary`, `--full` and `--show-unchanged`)."""

    detail: PlanDetail = "auto"
    show_unchanged: bool = False


def _who(chat: ChatPlan, user: str | None) -> str:
    """`ACoAA1 (Ann Lee, linkedin.com/in/ann-lee)`: the id, its name, the profile the job named
    it by; an unresolved profile as its address."""
    if user is None:
        return ""
    name = chat.names.get(user)
    profile = chat.profiles.get(user) if chat.profiles else None
    if profile is None:
        shown = profile_display(user)
        return f"{shown} ({name})" if name else shown
    about = f"{name}, {profile_display(profile)}" if name else profile_display(profile)
    return f"{user} ({about})"


# Members listed on a `removals held` line; the rest are counted.
_HELD_SHOWN: Final = 10


def _held_line(chat: ChatPlan) -> str:
    unresolved = sorted(
        {
            profile_display(o.operation.user)
            for o in chat.decided
            if o.reason == "unresolved_user" and o.operation.user is not None
        }
    )
    shown = ", ".join(_who(chat, user) for user in chat.held[:_HELD_SHOWN])
    if len(chat.held) > _HELD_SHOWN:
        shown += f" and {len(chat.held) - _HELD_SHOWN} more"
    members = "member" if len(chat.held) == 1 else "members"
    why = f" ({', '.join(unresolved)})" if unresolved else ""
    return (
        f"  ! removals held: {len(chat.held)} {members} kept, since a profile could not be "
        f"resolved{why} and the chat does not say who they are: {shown}"
    )


def _refused(chat: ChatPlan) -> list[Outcome]:
    return [o for o in chat.decided if o.status in _REFUSED]


def _send_line(chat: ChatPlan, op: Operation) -> str:
    """`~ name "old" -> "new"`, `- user`, `+ user` or `leave`: a write the plan will send."""
    if op.action == "rename":
        return f'  ~ name "{chat.chat_name or ""}" -> "{op.name}"'
    if op.action == "remove":
        return f"  - {_who(chat, op.user)}"
    if op.action == "add":
        return f"  + {_who(chat, op.user)}"
    return "  leave"


def _refused_line(chat: ChatPlan, outcome: Outcome) -> str:
    """`! add ACoAA1 (Ann Lee): failed member_cap (type)`: an operation the plan refuses."""
    operation = outcome.operation
    subject = operation.subject
    if operation.user is not None:
        subject = _who(chat, operation.user)
    what = f"{operation.action} {subject}" if subject else operation.action
    detail = f" ({outcome.error.type})" if outcome.error else ""
    return f"  ! {what}: {outcome.status} {outcome.reason}{detail}"


def _settled_line(chat: ChatPlan) -> str | None:
    """`= 3 already in place, 1 skipped (not_member)`: what needs nothing sent, or None."""
    skipped = Counter(o.reason for o in chat.decided if o.status == "skipped")
    # An imperative add already in place is recorded as its `already_member` skip, listed next:
    # `in_place` counts it too (the plan file keeps both), so it is counted once here.
    in_place = chat.in_place - skipped["already_member"]
    settled = [f"{in_place} already in place"] if in_place > 0 else []
    settled.extend(f"{n} skipped ({reason})" for reason, n in sorted(skipped.items(), key=str))
    return "  = " + ", ".join(settled) if settled else None


def _chat_lines(chat: ChatPlan) -> list[str]:
    title = f"{chat.account} / {chat.chat}"
    if chat.chat_name:
        title += f'  "{chat.chat_name}"'
    lines = [title, *(_send_line(chat, op) for op in chat.to_send)]
    if chat.held:
        lines.append(_held_line(chat))
    lines.extend(_refused_line(chat, outcome) for outcome in _refused(chat))
    settled = _settled_line(chat)
    if settled is not None:
        lines.append(settled)
    if len(lines) == 1:
        lines.append("  = no changes")
    return [printable(line) for line in lines]


@dataclass(slots=True)
class _AccountTally:
    chats: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    refused: int = 0

    @property
    def operations(self) -> int:
        return self.actions.total() + self.refused


@dataclass(slots=True)
class _PlanTally:
    """One pass over the plan: what the totals, the summary and the choice of detail need."""

    chats: int = 0
    changing: int = 0
    unchanged: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    refused: Counter[tuple[str, str]] = field(default_factory=Counter)
    accounts: dict[str, _AccountTally] = field(default_factory=dict)
    held: int = 0

    @classmethod
    def of(cls, plan: Plan) -> _PlanTally:
        tally = cls()
        for chat in plan.chats:
            tally.chats += 1
            refused = _refused(chat)
            if not chat.has_changes:
                tally.unchanged += 1
                continue
            account = tally.accounts.setdefault(chat.account, _AccountTally())
            account.chats += 1
            if chat.to_send:
                tally.changing += 1
                sent = Counter(op.action for op in chat.to_send)
                tally.actions.update(sent)
                account.actions.update(sent)
            account.refused += len(refused)
            tally.refused.update((o.status, o.reason or "") for o in refused)
            tally.held += len(chat.held)
        return tally

    @property
    def lines(self) -> int:
        """Operation lines of the full diff (chat titles and counts aside)."""
        return self.actions.total() + self.refused.total()

    def totals(self) -> str:
        text = (
            f"Plan: {self.actions['add']} to add, {self.actions['remove']} to remove, "
            f"{self.actions['rename']} to rename, {self.actions['leave']} to leave "
            f"in {self.changing} of {self.chats} chats"
        )
        refused = self.refused.total()
        if refused:
            text += f"; {refused} operation{'s' if refused != 1 else ''} refused"
        if self.held:
            text += f"; {self.held} removal{'s' if self.held != 1 else ''} held"
        return text + "."


def _summary_table(tally: _PlanTally) -> Table:
    table = Table(title="Plan by account", title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("account", overflow="fold")
    for column in ("chats", "add", "remove", "rename", "leave", "refused"):
        table.add_column(column, justify="right", no_wrap=True)
    accounts = sorted(tally.accounts.items(), key=lambda item: -item[1].operations)
    for account, counts in accounts[:_SUMMARY_ACCOUNTS]:
        table.add_row(
            Text(account),
            str(counts.chats),
            *(str(counts.actions[a]) for a in ("add", "remove", "rename", "leave")),
            str(counts.refused),
        )
    return table


def write_plan(
    plan: Plan,
    console: Console,
    *,
    estimated_seconds: float | None = None,
    view: PlanView = PlanView(),
) -> None:
    """Print the plan: one block per chat with changes (or the summary), the totals, the time.

    The diff goes to `console.file` chat by chat, as plain text; only the summary uses rich.
    """
    out = console.file
    if not plan.chats:
        out.write("Nothing to do: the job (or this shard of it) has no chats.\n")
        return
    tally = _PlanTally.of(plan)
    detail = view.detail
    if detail == "auto":
        detail = "summary" if tally.lines > AUTO_SUMMARY_LINES else "full"
    if detail == "full":
        _write_diff(plan, out, tally, show_unchanged=view.show_unchanged)
    elif detail == "summary":
        _write_summary(console, tally, automatic=view.detail == "auto")
    out.write(tally.totals() + "\n")
    if estimated_seconds is not None and plan.has_changes:
        out.write(
            f"At the configured rates, applying it takes {format_duration(estimated_seconds)}.\n"
        )
    out.flush()


def _write_diff(plan: Plan, out: IO[str], tally: _PlanTally, *, show_unchanged: bool) -> None:
    """Each chat with changes (every chat with `show_unchanged`), chat by chat."""
    shown = 0
    for chat in plan.chats:
        if chat.has_changes or show_unchanged:
            out.write("\n".join(_chat_lines(chat)) + "\n")
            shown += 1
    if shown:
        out.write("\n")
    hidden = 0 if show_unchanged else tally.unchanged
    if hidden:
        chats = "chat" if hidden == 1 else "chats"
        out.write(f"{hidden} {chats} without changes not shown (--show-unchanged lists them).\n")


def _write_summary(console: Console, tally: _PlanTally, *, automatic: bool) -> None:
    """The table of totals per account, and what was refused; `automatic`: say why it is shown
    instead of the diff, and how to see the rest."""
    out = console.file
    if automatic:
        out.write(
            f"The plan has {tally.lines:,} operations: only its summary is shown.\n"
            "`--full` lists every chat; `--format json` or `--out PLAN.json` keeps all of it.\n\n"
        )
    out.flush()
    if tally.accounts:
        console.print(_summary_table(tally), markup=False, highlight=False, crop=False)
        more = len(tally.accounts) - _SUMMARY_ACCOUNTS
        if more > 0:
            out.write(f"... and {more} more accounts with changes.\n")
    if tally.refused:
        refused = ", ".join(
            f"{n} {status} {reason}" for (status, reason), n in sorted(tally.refused.items())
        )
        out.write(f"Refused: {refused}.\n")
    out.write("\n")


def render_plan(
    plan: Plan, *, estimated_seconds: float | None = None, view: PlanView = PlanView()
) -> str:
    """The plan as text (what `write_plan` prints), for a small plan or a test."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=100, color_system=None, force_terminal=False)
    write_plan(plan, console, estimated_seconds=estimated_seconds, view=view)
    return buffer.getvalue().rstrip("\n")


def render_outcomes(tally: OutcomeTally, console: Console, *, counts: bool = True) -> None:
    """The result table: counts by status and reason (unless not `counts`: `--quiet` keeps only
    what failed), then what failed or was deferred.

    What failed is a table where it fits the console, else one whole line per operation, as in
    `report`: a cron mail or a CI log is 80 columns wide, and a table folded to fit it cuts ids
    and reasons into slivers (`account_d`, `isconnect`, `ed`) that nobody can read or grep.
    """
    if counts:
        table = Table(title="Outcomes")
        table.add_column("status")
        table.add_column("reason", overflow="fold")
        table.add_column("operations", justify="right")
        for (status, reason), count in sorted(tally.by_reason.items()):
            table.add_row(status, reason or "-", str(count))
        table.add_row("[bold]total[/bold]", "", f"[bold]{sum(tally.by_reason.values())}[/bold]")
        console.print(table)
    problems = tally.problems
    if not problems:
        return
    detail = _problems_table(problems)
    natural = Measurement.get(console, console.options.update_width(_UNBOUNDED), detail)
    if natural.maximum <= console.width:
        console.print(detail)
    else:
        console.print("Failed or deferred", markup=False, highlight=False)
        for outcome in problems:
            console.print(_problem_line(outcome), markup=False, highlight=False, soft_wrap=True)
    if tally.problem_count > len(problems):
        more = tally.problem_count - len(problems)
        console.print(f"... and {more} more: see `bulkgroups report`.")


# Wide enough for any table's natural width: what it takes without folding a cell.
_UNBOUNDED: Final = 1_000_000


def _problems_table(problems: list[Outcome]) -> Table:
    detail = Table(title="Failed or deferred")
    for column in ("account", "chat", "action", "subject", "status", "reason", "error"):
        # Actions and statuses are short words: the ids and the error take the wrapping.
        detail.add_column(column, overflow="fold", no_wrap=column in ("action", "status"))
    for o in problems:
        error = ""
        if o.error is not None:
            error = f"{o.error.status or '-'} {o.error.type}"
            if o.error.req_id:
                error += f" (req_id {o.error.req_id})"
        detail.add_row(
            Text(o.operation.account),
            Text(o.operation.chat),
            o.operation.action,
            Text(printable(o.operation.subject or "")),
            o.status,
            o.reason or "",
            Text(printable(error)),
        )
    return detail


def _problem_line(outcome: Outcome) -> str:
    """`  acc_1 / team: add ACoAA1: failed api_error (403 api/insufficient_permissions, req_id
    r1)`: the plan's `!` lines and `report`'s explanations say it the same way."""
    operation = outcome.operation
    what = f"{operation.action} {operation.subject}" if operation.subject else operation.action
    line = f"  {operation.account} / {operation.chat}: {what}: {outcome.status} {outcome.reason}"
    error = outcome.error
    if error is not None:
        status = f"{error.status} " if error.status is not None else ""
        req_id = f", req_id {error.req_id}" if error.req_id else ""
        line += f" ({status}{error.type}{req_id})"
    return printable(line)
