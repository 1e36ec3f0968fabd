"""What a person sees: the plan as a per-chat diff, progress while a run works, the result table.

Progress and tables go through rich; the plan diff is plain text so that it reads the same in a
terminal, a CI log and a pull-request comment.
"""

from __future__ import annotations

from collections import Counter
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from .model import ChatPlan, Outcome, Plan

__all__ = ["ProgressDisplay", "format_duration", "render_outcomes", "render_plan"]


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return "under a second"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = []
    if hours:
        parts.append(f"{hours}h")
    if minutes or hours:
        parts.append(f"{minutes}m")
    parts.append(f"{secs}s")
    return "about " + " ".join(parts)


def _who(chat: ChatPlan, user: str | None) -> str:
    if user is None:
        return ""
    name = chat.names.get(user)
    return f"{user} ({name})" if name else user


def _chat_lines(chat: ChatPlan) -> list[str]:
    title = f"{chat.account} / {chat.chat}"
    if chat.chat_name:
        title += f'  "{chat.chat_name}"'
    lines = [title]
    for op in chat.to_send:
        if op.action == "rename":
            lines.append(f'  ~ name "{chat.chat_name or ""}" -> "{op.name}"')
        elif op.action == "remove":
            lines.append(f"  - {_who(chat, op.user)}")
        elif op.action == "add":
            lines.append(f"  + {_who(chat, op.user)}")
        elif op.action == "leave":
            lines.append("  leave")
    refused = [o for o in chat.decided if o.status in ("failed", "deferred")]
    skipped = Counter(o.reason for o in chat.decided if o.status == "skipped")
    for outcome in refused:
        subject = outcome.operation.subject
        what = f"{outcome.operation.action} {subject}" if subject else outcome.operation.action
        detail = f" ({outcome.error.type})" if outcome.error else ""
        lines.append(f"  ! {what}: {outcome.status} {outcome.reason}{detail}")
    summary = []
    if chat.in_place:
        summary.append(f"{chat.in_place} already in place")
    summary.extend(f"{n} skipped ({reason})" for reason, n in sorted(skipped.items(), key=str))
    if summary:
        lines.append("  = " + ", ".join(summary))
    if len(lines) == 1:
        lines.append("  = no changes")
    return lines


def render_plan(plan: Plan, *, estimated_seconds: float | None = None) -> str:
    """The plan as text: one block per chat, then the totals and the time the run will take."""
    if not plan.chats:
        return "Nothing to do: the job (or this shard of it) has no chats."
    lines: list[str] = []
    actions: Counter[str] = Counter()
    refused = 0
    for chat in plan.chats:
        lines.extend(_chat_lines(chat))
        actions.update(op.action for op in chat.to_send)
        refused += sum(1 for o in chat.decided if o.status in ("failed", "deferred"))
    total = (
        f"Plan: {actions['add']} to add, {actions['remove']} to remove, "
        f"{actions['rename']} to rename, {actions['leave']} to leave "
        f"in {sum(1 for c in plan.chats if c.to_send)} of {len(plan.chats)} chats"
    )
    if refused:
        total += f"; {refused} operation{'s' if refused != 1 else ''} refused"
    lines.append("")
    lines.append(total + ".")
    if estimated_seconds is not None and plan.has_changes:
        lines.append(
            f"At the configured rates, applying it takes {format_duration(estimated_seconds)}."
        )
    return "\n".join(lines)


def render_outcomes(display: ProgressDisplay, console: Console) -> None:
    """The result table: counts by status and reason, then what failed or was deferred."""
    table = Table(title="Outcomes")
    table.add_column("status")
    table.add_column("reason")
    table.add_column("operations", justify="right")
    for (status, reason), count in sorted(display.by_reason.items()):
        table.add_row(status, reason or "-", str(count))
    table.add_row("[bold]total[/bold]", "", f"[bold]{sum(display.by_reason.values())}[/bold]")
    console.print(table)
    problems = display.problems
    if problems:
        detail = Table(title="Failed or deferred")
        for column in ("account", "chat", "action", "subject", "status", "reason", "error"):
            detail.add_column(column)
        for o in problems:
            error = ""
            if o.error is not None:
                error = f"{o.error.status or '-'} {o.error.type}"
                if o.error.req_id:
                    error += f" (req_id {o.error.req_id})"
            detail.add_row(
                o.operation.account,
                o.operation.chat,
                o.operation.action,
                o.operation.subject or "",
                o.status,
                o.reason or "",
                error,
            )
        console.print(detail)
        if display.problem_count > len(problems):
            more = display.problem_count - len(problems)
            console.print(f"... and {more} more: see `bulkgroups report`.")


class ProgressDisplay:
    """A RunObserver drawing one progress bar per phase on stderr.

    For the result table it keeps counts and the first failures only, so a run of a million
    operations does not hold a million outcomes in memory.
    """

    MAX_PROBLEMS_SHOWN = 50

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
            # Bars are for a person watching: in cron mail and CI logs they would only be noise
            # between the error lines.
            disable=not console.is_terminal,
        )
        self._tasks: dict[str, TaskID] = {}
        self._tasks_index: dict[str, int] = {}
        self.by_reason: Counter[tuple[str, str]] = Counter()
        self.problems: list[Outcome] = []
        self.problem_count = 0

    def __enter__(self) -> ProgressDisplay:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def pause(self) -> None:
        """Stop drawing (e.g. while asking a question on the terminal)."""
        self._progress.stop()

    def resume(self) -> None:
        self._progress.start()

    def phase(self, name: str, total: int) -> None:
        self._tasks[name] = self._progress.add_task(name, total=total)
        self._tasks_index[name] = len(self._progress.tasks) - 1

    def grow(self, name: str, count: int) -> None:
        task = self._tasks.get(name)
        if task is not None:
            total = self._progress.tasks[self._tasks_index[name]].total or 0
            self._progress.update(task, total=total + count)

    def advance(self, name: str, count: int = 1) -> None:
        task = self._tasks.get(name)
        if task is not None:
            self._progress.advance(task, count)

    def outcome(self, outcome: Outcome) -> None:
        self._count(outcome)
        self.advance("apply")

    def amended(self, before: Outcome, after: Outcome) -> None:
        """Verification turned an applied outcome into `after` (`not_effective`)."""
        key = (before.status, before.reason or "")
        self.by_reason[key] -= 1
        if self.by_reason[key] <= 0:
            del self.by_reason[key]
        self._count(after)

    def _count(self, outcome: Outcome) -> None:
        self.by_reason[(outcome.status, outcome.reason or "")] += 1
        if outcome.status in ("failed", "deferred"):
            self.problem_count += 1
            if len(self.problems) < self.MAX_PROBLEMS_SHOWN:
                self.problems.append(outcome)
