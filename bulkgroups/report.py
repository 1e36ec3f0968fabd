"""`bulkgroups report LEDGER`: what the runs in a ledger did, and why operations did not happen.

`summarize` reads a ledger (streaming) into a `Summary`: each run's counts by status, reason and
account, and across the whole ledger the last outcome of every operation, with the failed and
deferred ones kept in full (error type, detail, req_id) so that the text report can say per account
what went wrong. `render_text`, `render_json` and `write_csv` / `render_csv` turn it into the three
`--format`s.

A ledger directory (`--ledger DIR/`, `ledger_dir`) is read as one ledger: every `*.jsonl` in it,
records merged in time order, so the last outcome of an operation is the latest in any file.

An `op` record amended by a `verify` record of its run (the write did not show on re-read) counts
with the amended status everywhere, as the run's own `end` counts do. To keep memory bounded
whatever the size of a run, the ledger is read twice: once for the (few) amendments, once for the
rest. `intent` records are counted per run (write attempts announced); an intent that no later
`op` record of its operation answers is a write sent without a recorded outcome (its process
ended first, and the server may have applied it): `pending`, shown until a later run decides it.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, TextIO

import orjson
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from .ledger import record_digest
from .ledger_dir import ledger_files, read_ledgers
from .model import STATUSES, ErrorInfo, Reason, Status
from .records import EndRecord, IntentRecord, OpRecord, ResolutionRecord, RunRecord, VerifyRecord
from .terminal import printable

__all__ = [
    "CSV_COLUMNS",
    "RunSummary",
    "Summary",
    "amended_ops",
    "amendments",
    "describe_error",
    "explain",
    "print_text",
    "render_csv",
    "render_json",
    "render_text",
    "summarize",
    "write_csv",
]

CSV_COLUMNS: Final = (
    "run_id",
    "at",
    "account",
    "chat",
    "action",
    "user",
    "name",
    "status",
    "reason",
    "attempts",
    "error_status",
    "error_type",
    "error_detail",
    "req_id",
)
# Distinct errors shown per account and outcome in the text report; JSON and CSV have them all.
_ERRORS_SHOWN: Final = 3
_DETAIL_SHOWN: Final = 120
_PROBLEMS: Final = ("deferred", "failed")


@dataclass(frozen=True, slots=True)
class RunSummary:
    """One run: its `run` record, its `op` records counted, and its `end` record if it has one.

    `finished_at` is None for a run without an `end` record (killed, or still running).
    """

    run_id: str
    job_sha256: str | None
    resume: bool
    version: str | None
    started_at: str | None
    finished_at: str | None
    interrupted: bool | None
    counts: Mapping[str, int]
    by_reason: Mapping[str, int]
    by_account: Mapping[str, Mapping[str, int]]
    intents: int = 0  # write attempts announced (`intent` records)

    @property
    def state(self) -> str:
        if self.finished_at is None:
            return "no end record"
        return "interrupted" if self.interrupted else "finished"


@dataclass(frozen=True, slots=True)
class Summary:
    """A whole ledger: its runs, and the last outcome of each operation across all of them."""

    path: str
    runs: tuple[RunSummary, ...]
    operations: int
    counts: Mapping[str, int]
    by_reason: Mapping[str, int]
    by_account: Mapping[str, Mapping[str, int]]
    # The `op` records of the operations whose last outcome is failed or deferred.
    problems: tuple[OpRecord, ...]
    ledgers: tuple[str, ...] = ()  # the files read: `path`, or every ledger of the directory
    # Write attempts announced without a later outcome of their operation, the latest of each.
    pending: tuple[IntentRecord, ...] = ()


def _ledgers(path: str | os.PathLike[str]) -> tuple[str, ...]:
    name = os.fspath(path)
    return tuple(ledger_files(name)) if os.path.isdir(name) else (name,)


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


class _RunTally:
    __slots__ = ("by_account", "by_reason", "counts", "end", "intents", "start")

    def __init__(self, start: RunRecord | None) -> None:
        self.start = start
        self.end: EndRecord | None = None
        self.intents = 0
        self.counts: Counter[str] = Counter()
        self.by_reason: Counter[str] = Counter()
        self.by_account: dict[str, Counter[str]] = {}

    def count(self, account: str, status: str, reason: str | None) -> None:
        self.counts[status] += 1
        if reason is not None:
            self.by_reason[reason] += 1
        self.by_account.setdefault(account, Counter())[status] += 1

    def summary(self, run_id: str) -> RunSummary:
        start, end = self.start, self.end
        return RunSummary(
            run_id=run_id,
            job_sha256=start.job_sha256 if start is not None else None,
            resume=start.resume if start is not None else False,
            version=start.version if start is not None else None,
            started_at=start.started_at if start is not None else None,
            finished_at=end.finished_at if end is not None else None,
            interrupted=end.interrupted if end is not None else None,
            counts=_by_status(self.counts),
            by_reason=dict(sorted(self.by_reason.items())),
            by_account={a: _by_status(c) for a, c in sorted(self.by_account.items())},
            intents=self.intents,
        )


Amendments = dict[tuple[str, str], tuple[Status, Reason | None]]


def amendments(path: str | os.PathLike[str]) -> Amendments:
    """(run_id, op_id) -> the (status, reason) a `verify` record of that run gave the op."""
    return {
        (record.run_id, record.op_id): (record.status, record.reason)
        for record in read_ledgers(path)
        if isinstance(record, VerifyRecord)
    }


def amended_ops(
    path: str | os.PathLike[str],
) -> Iterator[OpRecord | RunRecord | EndRecord | IntentRecord]:
    """The ledger's records but `verify` and `resolution` (a cache of who profiles are), each `op`
    record with its amended status, streaming."""
    changes = amendments(path)
    for record in read_ledgers(path):
        if isinstance(record, VerifyRecord | ResolutionRecord):
            continue
        if isinstance(record, OpRecord) and changes:
            change = changes.get((record.run_id, record.op_id))
            if change is not None:
                record = replace(record, status=change[0], reason=change[1])
        yield record


def summarize(path: str | os.PathLike[str]) -> Summary:
    """Read a ledger (streaming) into a Summary; raises FileNotFoundError or LedgerCorrupt."""
    runs: dict[str, _RunTally] = {}
    # Per operation only its 16-byte identity and a shared (account, status, reason); problems
    # are kept in full until a later outcome of the same operation supersedes them.
    last: dict[bytes, tuple[str, str, str | None]] = {}
    shapes: dict[tuple[str, str, str | None], tuple[str, str, str | None]] = {}
    problems: dict[bytes, OpRecord] = {}
    shared: dict[object, Any] = {}  # one copy of each run id, account, chat, reason, error, ...
    pending: dict[bytes, IntentRecord] = {}
    for record in amended_ops(path):
        if isinstance(record, RunRecord):
            runs[record.run_id] = _RunTally(record)
        elif isinstance(record, EndRecord):
            runs.setdefault(record.run_id, _RunTally(None)).end = record
        elif isinstance(record, IntentRecord):
            runs.setdefault(record.run_id, _RunTally(None)).intents += 1
            pending[record_digest(record)] = record
        else:
            digest = record_digest(record)
            pending.pop(digest, None)
            shape = (record.account, record.status, record.reason)
            account, status, reason = last[digest] = shapes.setdefault(shape, shape)
            runs.setdefault(record.run_id, _RunTally(None)).count(account, status, reason)
            if status in _PROBLEMS:
                problems[digest] = _compact(record, shared)
            else:
                problems.pop(digest, None)
    counts: Counter[str] = Counter()
    by_reason: Counter[str] = Counter()
    by_account: dict[str, Counter[str]] = {}
    for account, status, reason in last.values():
        counts[status] += 1
        if reason is not None:
            by_reason[reason] += 1
        by_account.setdefault(account, Counter())[status] += 1
    return Summary(
        path=os.fspath(path),
        ledgers=_ledgers(path),
        runs=tuple(tally.summary(run_id) for run_id, tally in runs.items()),
        operations=len(last),
        counts=_by_status(counts),
        by_reason=dict(sorted(by_reason.items())),
        by_account={a: _by_status(c) for a, c in sorted(by_account.items())},
        problems=tuple(
            sorted(
                problems.values(),
                key=lambda p: (p.account, p.chat, p.action, p.user or p.name or ""),
            )
        ),
        pending=tuple(pending.values()),
    )


def _compact(record: OpRecord, shared: dict[object, Any]) -> OpRecord:
    """The record with its values that many records repeat (the run, the account, the chat, the
    error, ...) shared with theirs: a ledger of a million failures is held in a fraction of the
    memory."""

    def same(value: Any) -> Any:
        return shared.setdefault(value, value)

    return replace(
        record,
        run_id=same(record.run_id),
        account=same(record.account),
        chat=same(record.chat),
        action=same(record.action),
        name=same(record.name),
        status=same(record.status),
        reason=same(record.reason),
        error=same(record.error),
    )


def _by_status(counts: Mapping[str, int]) -> dict[str, int]:
    """The four contract statuses first (zeros included), then anything unexpected."""
    result: dict[str, int] = {status: counts.get(status, 0) for status in STATUSES}
    result.update({s: n for s, n in sorted(counts.items()) if s not in result})
    return result


# --------------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------------


def _one_line(text: str, limit: int = _DETAIL_SHOWN) -> str:
    # Details come from the server: keep each on one short line of the report, with nothing in
    # it that could steer the terminal (an escape sequence, a bidi override).
    text = printable(re.sub(r"\s+", " ", text).strip())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_error(error: ErrorInfo) -> str:
    """`429 provider/too_many_requests: detail`, as a person reads it."""
    kind = printable(error.type)
    head = kind if error.status is None else f"{error.status} {kind}"
    return f"{head}: {_one_line(error.detail)}" if error.detail else head


def explain(summary: Summary) -> list[str]:
    """Per account, why operations were not done: one line per (status, reason), with errors.

    e.g. `acc_x: 12 deferred — provider_rate_limited (429 provider/too_many_requests: ...; req_id r1)`
    """
    groups: dict[str, dict[tuple[str, str | None], list[OpRecord]]] = {}
    for problem in summary.problems:
        key = (problem.status, problem.reason)
        groups.setdefault(problem.account, {}).setdefault(key, []).append(problem)
    lines: list[str] = []
    for account, by_outcome in groups.items():
        for (status, reason), problems in sorted(
            by_outcome.items(), key=lambda item: (-len(item[1]), item[0][0], item[0][1] or "")
        ):
            errors = Counter(
                (p.error.status, p.error.type, p.error.detail) for p in problems if p.error
            )
            samples = {
                (p.error.status, p.error.type, p.error.detail): p.error.req_id
                for p in problems
                if p.error and p.error.req_id
            }
            head = f"{account}: {len(problems)} {status} — {reason or 'no reason given'}"
            shown = errors.most_common(_ERRORS_SHOWN)
            if len(shown) == 1 and shown[0][1] == len(problems):
                lines.append(f"{head} ({_describe(shown[0][0], samples)})")
                continue
            lines.append(head)
            for error_key, count in shown:
                lines.append(f"    {count}× {_describe(error_key, samples)}")
            if len(errors) > len(shown):
                lines.append(f"    … {len(errors) - len(shown)} more distinct errors")
    return lines


def _describe(
    key: tuple[int | None, str, str | None],
    samples: Mapping[tuple[int | None, str, str | None], str | None],
) -> str:
    status, type_, detail = key
    text = describe_error(ErrorInfo(status=status, type=type_, detail=detail))
    req_id = samples.get(key)
    return f"{text}; req_id {req_id}" if req_id else text


def _counts_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{status} {n}" for status, n in counts.items())


def _table(title: str) -> Table:
    return Table(title=title, title_justify="left", show_edge=False, pad_edge=False)


def _status_table(title: str, first: str, rows: Iterable[tuple[str, Mapping[str, int]]]) -> Table:
    table = _table(title)
    # Ids wrap (fold) within their column rather than lose their end to `…`: a cron mail or a
    # CI log is 80 columns wide, and a cut id cannot be looked up.
    table.add_column(first, overflow="fold")
    for status in STATUSES:
        table.add_column(status, justify="right", no_wrap=True)
    for label, counts in rows:
        table.add_row(Text(label), *(str(counts.get(s, 0)) for s in STATUSES))
    return table


def _line(text: str) -> Text:
    # Whole lines, never wrapped: people grep reports for an account or a reason.
    return Text(text, no_wrap=True, overflow="ignore")


def _runs_table(summary: Summary) -> Table:
    """When each run started, of which job, how it ended (its counts are the next table: both in
    one would not fit 80 columns without cutting run ids)."""
    runs = _table("Runs")
    runs.add_column("run", overflow="fold")
    runs.add_column("job", overflow="fold")
    runs.add_column("started (UTC)", overflow="fold")
    runs.add_column("state", overflow="fold")
    for run in summary.runs:
        started = run.started_at or "?"
        runs.add_row(
            Text(run.run_id),
            Text((run.job_sha256 or "?")[:8]),
            Text(started[:19].replace("T", " ")),
            Text(run.state + (", resume" if run.resume else "")),
        )
    return runs


def _where(summary: Summary) -> str:
    if summary.ledgers == (summary.path,):
        return f"Ledger {summary.path}"
    names = ", ".join(os.path.basename(f) for f in summary.ledgers)
    return f"Ledgers in {summary.path} ({names})"


def _renderables(summary: Summary) -> list[RenderableType]:
    parts: list[RenderableType] = [
        _line(f"{_where(summary)}: {len(summary.runs)} run(s), {summary.operations} operation(s)"),
        _line(f"Last outcome per operation: {_counts_text(summary.counts)}"),
        Text(""),
        _runs_table(summary),
        Text(""),
        _status_table(
            "Outcomes per run", "run", ((run.run_id, run.counts) for run in summary.runs)
        ),
        Text(""),
        _status_table(
            "Accounts (last outcome per operation)", "account", summary.by_account.items()
        ),
    ]
    if summary.by_reason:
        parts += [Text(""), Text("Reasons (last outcome per operation)")]
        parts += [_line(f"  {reason}: {n}") for reason, n in summary.by_reason.items()]
    explanation = explain(summary)
    parts += [Text("")]
    if explanation:
        parts += [Text("Not done, by account:")]
        parts += [_line("  " + line) for line in explanation]
    if summary.pending:
        parts += [Text("Sent, outcome not recorded (the process ended first), by account:")]
        parts += [_line("  " + line) for line in _pending_lines(summary.pending)]
    if not explanation and not summary.pending:
        parts += [Text("Every operation was applied or skipped.")]
    return parts


def _pending_lines(pending: Iterable[IntentRecord]) -> list[str]:
    """`acc_x: 2 writes sent without a recorded outcome; ...`, one line per account."""
    by_account = Counter(intent.account for intent in pending)
    return [
        f"{account}: {n} write{'s' if n != 1 else ''} sent without a recorded outcome; the "
        "next run of the job on this ledger decides each from its read"
        for account, n in sorted(by_account.items())
    ]


def print_text(summary: Summary, console: Console) -> None:
    """Print the text report to a rich Console (colours and width are the console's)."""
    console.print(Group(*_renderables(summary)), markup=False, highlight=False, crop=False)


def render_text(summary: Summary, *, width: int = 100) -> str:
    """The text report as plain text (no colours), `width` columns wide."""
    buffer = io.StringIO()
    console = Console(
        file=buffer, width=width, color_system=None, force_terminal=False, legacy_windows=False
    )
    print_text(summary, console)
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------
# JSON and CSV
# --------------------------------------------------------------------------------------------


def _fields(record: OpRecord | IntentRecord) -> dict[str, Any]:
    """A record's fields as the ledger spells them, without its `type`."""
    fields: dict[str, Any] = orjson.loads(record.to_json())
    del fields["type"]
    return fields


def render_json(summary: Summary) -> str:
    """The summary as one JSON document (indented), for scripts."""
    document = {
        "ledger": summary.path,
        "ledgers": list(summary.ledgers),
        "operations": summary.operations,
        "counts": summary.counts,
        "by_reason": summary.by_reason,
        "by_account": summary.by_account,
        "runs": [
            {
                "run_id": run.run_id,
                "job_sha256": run.job_sha256,
                "resume": run.resume,
                "version": run.version,
                "started_at": run.started_at,
                "finished_at": run.finished_at,
                "interrupted": run.interrupted,
                "counts": run.counts,
                "by_reason": run.by_reason,
                "by_account": run.by_account,
                "intents": run.intents,
            }
            for run in summary.runs
        ],
        "problems": [_fields(record) for record in summary.problems],
        "pending": [_fields(intent) for intent in summary.pending],
    }
    return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode()


def _cell(value: object) -> str | int:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return value
    return str(value)


def write_csv(path: str | os.PathLike[str], out: TextIO) -> None:
    """One CSV row per `op` record of the ledger (status as amended by `verify`), in file order
    (header first; LF line ends)."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for record in amended_ops(path):
        if not isinstance(record, OpRecord):
            continue
        error = record.error
        writer.writerow(
            [
                _cell(record.run_id),
                _cell(record.at),
                _cell(record.account),
                _cell(record.chat),
                _cell(record.action),
                _cell(record.user),
                _cell(record.name),
                _cell(record.status),
                _cell(record.reason),
                _cell(record.attempts),
                _cell(error.status if error else None),
                _cell(error.type if error else None),
                _cell(error.detail if error else None),
                _cell(error.req_id if error else None),
            ]
        )


def render_csv(path: str | os.PathLike[str]) -> str:
    """The CSV report as a string (see `write_csv` to stream a large ledger)."""
    buffer = io.StringIO()
    write_csv(path, buffer)
    return buffer.getvalue()
