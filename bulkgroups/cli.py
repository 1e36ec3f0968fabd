"""The `bulkgroups` command: argument parsing, environment, connection, display. Wiring only.

Exit codes (CONTRACT.md, first that applies): 1 nothing was sent that changes anything (bad job
file or flags, owner rule, max-removals, max-removal-percent, bad key at the first request,
resume of another job, stale plan, held lock, an API no account lookup could reach; `plan`: what
apply would refuse); 4 the ledger could not be written; 130 interrupted; 3 finished with failed or
deferred operations (`plan`: some chats could not be read); 2 `plan --detailed-exitcode`, every
chat read, with changes; 0 success. Usage errors exit 1, not argparse's 2. An error's code is its
`BulkGroupsError.exit_code`.

Start-up is part of the interface: `--help`, `validate` and `report` must answer at once, so this
module imports only what parsing needs (errors, the rate grammar); the engine, the HTTP client
(aiohttp), anyio and rich are imported by the commands that use them.
"""

from __future__ import annotations

import argparse
import codecs
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Final, NoReturn, TextIO, TypeAlias, TypeVar

from .durations import compact_duration, parse_duration
from .errors import (
    AuthError,
    BulkGroupsError,
    JobFileErrors,
    OwnerRuleRefused,
    RunRefused,
    UsageError,
    plain_errors,
)
from .model import RateSpec, parse_rate
from .version import __version__

if TYPE_CHECKING:
    from anyio import CancelScope
    from anyio.abc import TaskStatus
    from rich.console import Console

    from . import engine, export
    from .client import UnipileClient
    from .display import PlanView
    from .lock import LedgerLock
    from .model import Job, Plan
    from .progress import ProgressDisplay, ProgressMode

__all__ = ["main"]

T = TypeVar("T")
_Commands: TypeAlias = "argparse._SubParsersAction[_Parser]"

DEFAULT_BASE_URL = "https://api.unipile.com"
SANDBOX_RATE = "20/s"  # the simulator's own limit (simulator.DEFAULT_RATE; a test keeps them equal)
MAX_PAGE_SIZE = 100  # client.MAX_PAGE_SIZE, without importing the client (a test keeps them equal)
DEFAULT_LEDGER = "bulkgroups-ledger.jsonl"  # engine.DEFAULT_LEDGER, without importing the engine
DEFAULT_PROGRESS_INTERVAL = 10.0
# 128 + SIGPIPE: what a shell shows for a command ended by a pipe nobody reads (`| head`).
EXIT_OUTPUT_CLOSED = 141


_RATE_GRAMMAR = """\
  SPEC is N/s, N/min, N/h, N/d, or N/<k><unit> with those units and a positive
  number k: at most N requests in any interval of that length (20/10s, 3/2min,
  1/0.5s). Nothing else is a rate: not 2/sec, 2/m, 1/ms or 2/minute.
"""

RATES_HELP = (
    "rates:\n"
    + _RATE_GRAMMAR
    + """\
  --rate limits every account-scoped request of each account, reads included;
  --write-rate limits its writes on top of that; a job's accounts.<id>.rate and
  write_rate override them for that account. A plan or run that would take more
  than a day at these rates is announced by a warning with its duration.
"""
)

DURATIONS_HELP = """\
durations:
  DURATION is a number and a unit s, m (or min), h or d, or several such
  parts: 30s, 15m, 1h30m, 1.5h, 1d. A bare number (seconds or minutes?) is
  refused, and so is 0.
"""

EXPORT_RATES_HELP = (
    "rates:\n"
    + _RATE_GRAMMAR
    + """\
  --rate limits every account-scoped request of each account (export only reads).
"""
)

VALIDATE_EXIT_CODES_HELP = """\
exit codes:
  0    every file is a valid job (the owner rule is for plan and apply to check)
  1    errors, one line each: PATH:LINE: FIELD: message (PATH: file: message for
       a whole file), or bad arguments
  130  interrupted (Ctrl-C or SIGTERM)
"""

REPORT_EXIT_CODES_HELP = """\
exit codes:
  0    the report was written
  1    no such ledger, a path that is not a regular file or a directory of
       ledgers, or a line that is not a ledger record (named: PATH:LINE)
  130  interrupted (Ctrl-C or SIGTERM)
"""

EXIT_CODES_HELP = """\
exit codes (the first that applies):
  1    nothing was sent that changes anything: a bad job file or flag (an
       --only-account/--only-chat id not in the job), the owner rule,
       --max-removals, --max-removal-percent, a refused API key, an API no account
       lookup could reach, --resume of another job, a stale --plan, a held ledger
       lock, a declined confirmation (plan: what apply would refuse)
  4    the ledger could not be written: sending stopped at once; what was recorded
       is intact; fix the cause and --resume
  130  interrupted (Ctrl-C or SIGTERM): the ledger is consistent, --resume continues
  3    finished, but some operations failed or were deferred (see the ledger);
       plan: some accounts or chats could not be read
  2    plan --detailed-exitcode only: every chat was read and the plan has changes
  0    success: every operation applied or skipped (plan: every chat was read;
       with --detailed-exitcode, and nothing to change)
"""


class _HelpFormatter(argparse.HelpFormatter):
    """Keeps the epilogs (text of several lines) as written while wrapping one-line
    descriptions, and fills in the engine's default rates only when help is shown: importing
    the pacing module for them would slow every command's start."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help
        if text and "{default_" in text:
            from .pacing import DEFAULT_RATE, DEFAULT_WRITE_RATE

            text = text.replace("{default_rate}", str(DEFAULT_RATE))
            text = text.replace("{default_write_rate}", str(DEFAULT_WRITE_RATE))
        return text


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as UsageError (exit 1, as the contract says)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _rate(text: str) -> RateSpec:
    try:
        return parse_rate(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _shard(text: str) -> tuple[int, int]:
    try:
        index_text, count_text = text.split("/")
        index, count = int(index_text), int(count_text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected I/N such as 0/4, got {text!r}") from error
    if count < 1 or not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"a shard I/N needs 0 <= I < N, got {text!r}")
    return index, count


def _parsed(text: str, convert: Callable[[str], T], expected: str) -> T:
    """`convert(text)`, or the usage error `expected X, got 'text'`."""
    try:
        return convert(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from error


def _positive_int(text: str) -> int:
    value = _parsed(text, int, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _page_size(text: str) -> int:
    value = _positive_int(text)
    if value > MAX_PAGE_SIZE:
        raise argparse.ArgumentTypeError(f"a page holds 1..{MAX_PAGE_SIZE} items, got {value}")
    return value


def _removals(text: str) -> int:
    value = _parsed(text, int, "a whole number or -1")
    if value < -1:
        raise argparse.ArgumentTypeError("expected a number >= 0, or -1 to disable the check")
    return value


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _percent(text: str) -> float:
    value = _parsed(text, float, "a number")
    if not 0 < value <= 100:
        raise argparse.ArgumentTypeError(
            f"expected a percentage above 0 and at most 100, got {text}"
        )
    return value


def _port(text: str) -> int:
    value = _parsed(text, int, "a port number")
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0..65535 (0 = any free port), got {value}")
    return value


def _max_age(text: str) -> float:
    """`--resolve-max-age`: a duration (`30d`, `12h`, `90min`), or `0` to always look profiles up."""
    if text.strip() == "0":
        return 0.0
    return _duration(text)


def _jitter(text: str) -> float:
    value = _parsed(text, float, "a number")
    if not 0 <= value <= 10:
        raise argparse.ArgumentTypeError("jitter must be between 0 and 10")
    return value


def _connection_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--base-url",
        metavar="URL",
        help="API origin, the same ending in /v2, or a Unipile DSN HOST:PORT "
        f"(default: $UNIPILE_BASE_URL or $UNIPILE_DSN, else {DEFAULT_BASE_URL})",
    )
    group.add_argument(
        "--api-key-file",
        metavar="PATH",
        help="read the API key from PATH, a regular file; '-' = stdin, for a key piped in "
        "(default: $UNIPILE_API_KEY)",
    )
    group.add_argument(
        "--api-key",
        metavar="KEY",
        help="the API key itself, visible in ps and shell history: prefer the file or the "
        "environment (default: $UNIPILE_API_KEY)",
    )
    group.add_argument(
        "--sandbox",
        action="store_true",
        help="run against the embedded simulator on 127.0.0.1, started afresh (default: off)",
    )
    group.add_argument(
        "--proxy",
        metavar="URL",
        help="send every request through this HTTP proxy, http://[USER:PASSWORD@]HOST:PORT; '' "
        "for none (default: $https_proxy, $HTTPS_PROXY or $ALL_PROXY, unless $NO_PROXY names "
        "the API's host; never for loopback or the sandbox)",
    )
    group.add_argument(
        "--page-size",
        type=_page_size,
        default=MAX_PAGE_SIZE,
        metavar="N",
        help=f"items asked per page of a listing, 1..{MAX_PAGE_SIZE} (default: {MAX_PAGE_SIZE})",
    )


def _parallel_flags(parser: argparse.ArgumentParser, *, writes: bool) -> None:
    """--concurrency and --chats-per-account, for the commands that send (`writes`: apply and
    plan, whose chats are written too; export only reads)."""
    parser.add_argument(
        "--concurrency",
        type=_positive_int,
        default=64,
        metavar="N",
        help="requests in flight overall; each account is paced by its own limits (default: 64)",
    )
    parser.add_argument(
        "--chats-per-account",
        type=_positive_int,
        default=2,  # EngineConfig.chats_per_account (not imported: --help stays light)
        metavar="N",
        help=f"chats of one account {'read or written' if writes else 'read'} at once (default: "
        "2, which keeps an account paced at 1/s busy at Unipile's latency; raise it for high "
        "rates, at ~10 KB per chat waiting its turn)",
    )


def _run_flags(parser: argparse.ArgumentParser) -> None:
    _parallel_flags(parser, writes=True)
    parser.add_argument(
        "--rate",
        type=_rate,
        metavar="SPEC",
        help="per-account limit on every account-scoped request, reads included "
        f"(default: {{default_rate}}; {SANDBOX_RATE} with --sandbox)",
    )
    parser.add_argument(
        "--write-rate",
        type=_rate,
        metavar="SPEC",
        help="per-account limit on writes, on top of --rate "
        f"(default: {{default_write_rate}}; {SANDBOX_RATE} with --sandbox)",
    )
    parser.add_argument(
        "--jitter",
        type=_jitter,
        metavar="F",
        help="delay each write by a random 0..F of its interval, 0 <= F <= 10 "
        "(default: 0.5; 0 with --sandbox)",
    )
    parser.add_argument(
        "--max-removals",
        type=_removals,
        default=100,
        metavar="N",
        help="refuse a plan removing more than N members in total (default: 100; -1 = no limit)",
    )
    parser.add_argument(
        "--max-removal-percent",
        type=_percent,
        metavar="P",
        help="refuse a plan in which any desired-state chat loses more than P %% of its current "
        "members, owner excluded; 0 < P <= 100 (default: no such check)",
    )
    parser.add_argument(
        "--shard",
        type=_shard,
        metavar="I/N",
        help="only the accounts of shard I of N, 0 <= I < N (default: every account)",
    )
    parser.add_argument(
        "--only-account",
        dest="only_accounts",
        action="extend",
        nargs="+",
        default=[],
        metavar="ID",
        help="only these accounts of the job; several after one flag, or the flag repeated, "
        "after the job files (default: every account)",
    )
    parser.add_argument(
        "--only-chat",
        dest="only_chats",
        action="extend",
        nargs="+",
        default=[],
        metavar="CHAT",
        help="only these chats of the job, each CHAT (under any account) or ACCOUNT/CHAT; "
        "several, or repeated, as --only-account (default: every chat)",
    )
    parser.add_argument(
        "--resolve-max-age",
        type=_max_age,
        default=None,
        metavar="DURATION",
        help="reuse a profile's provider id found in the ledger while younger than this, "
        "e.g. 30d, 12h, 90min, 0 = always look profiles up (default: 30d)",
    )


def _output_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("output on stderr")
    loudness = group.add_mutually_exclusive_group()
    loudness.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log every HTTP request: method, path, status, Unipile's req_id, latency, attempt "
        "and account, never the key or a body (default: not logged)",
    )
    loudness.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="for cron: only errors, warnings and the summary; no progress, no plan diff "
        "(default: progress and the plan)",
    )
    group.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="stderr as plain lines, or one JSON object a line for log collectors: requests, "
        "progress, warnings and errors (default: text)",
    )
    group.add_argument(
        "--progress-interval",
        type=_duration,
        default=DEFAULT_PROGRESS_INTERVAL,
        metavar="DURATION",
        help="when stderr is not a terminal, a progress line this often, and one at the end "
        "(default: 10s)",
    )


def _view_flags(parser: argparse.ArgumentParser, shown: str) -> None:
    parser.add_argument(
        "--show-unchanged",
        action="store_true",
        help=f"list the chats without changes in {shown} too (default: only counted)",
    )
    detail = parser.add_mutually_exclusive_group()
    detail.add_argument(
        "--summary",
        dest="detail",
        action="store_const",
        const="summary",
        default="auto",
        help=f"show totals per account instead of every chat in {shown} (default: only beyond "
        "10,000 operations, with a note)",
    )
    detail.add_argument(
        "--full",
        dest="detail",
        action="store_const",
        const="full",
        help=f"list every chat with changes in {shown}, however large",
    )


def _add_validate(commands: _Commands) -> None:
    """`validate JOB...`: offline checks."""
    validate = commands.add_parser(
        "validate",
        help="check job files offline",
        description="Check job files offline (no network): every error as PATH:LINE: FIELD: "
        "message. The owner rule needs the account lookup: plan and apply check it.",
        epilog=VALIDATE_EXIT_CODES_HELP,
    )
    validate.add_argument("jobs", nargs="+", metavar="JOB", help="YAML or CSV job files, one job")


def _add_plan(commands: _Commands) -> None:
    """`plan JOB...`: reads only; the run flags of apply, since it plans as apply would."""
    plan = commands.add_parser(
        "plan",
        help="read current state and show what apply would change",
        description="Read every chat's current state (GET only, paced as apply is) and print "
        "what apply would change. Changes nothing.",
        epilog=RATES_HELP + "\n" + DURATIONS_HELP + "\n" + EXIT_CODES_HELP,
    )
    plan.add_argument("jobs", nargs="+", metavar="JOB", help="YAML or CSV job files, one job")
    plan.add_argument(
        "--out",
        metavar="PLAN.json",
        help="save the plan for `apply --plan` (default: not saved)",
    )
    plan.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text for people, json for scripts (default: text)",
    )
    plan.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 2 when the plan has changes (default: 0 with or without)",
    )
    plan.add_argument(
        "--ledger",
        metavar="PATH",
        help="read the profiles resolved in this ledger instead of looking them up again; it is "
        "only read (default: no ledger, every profile looked up)",
    )
    _view_flags(plan, "the text plan")
    _run_flags(plan)
    _output_flags(plan)
    _connection_flags(plan)


def _add_apply(commands: _Commands) -> None:
    """`apply JOB...`: the run, its ledger and its schedule."""
    apply = commands.add_parser(
        "apply",
        help="plan and apply, recording every outcome in the ledger",
        description="Plan the job from fresh reads and apply it, paced per account, recording "
        "every outcome in the ledger. At a terminal, a plan with removals is shown and "
        "confirmed first (unless --yes).",
        epilog=RATES_HELP + "\n" + DURATIONS_HELP + "\n" + EXIT_CODES_HELP,
    )
    apply.add_argument("jobs", nargs="+", metavar="JOB", help="YAML or CSV job files, one job")
    apply.add_argument(
        "--ledger",
        default=DEFAULT_LEDGER,
        metavar="PATH",
        help="the JSON Lines ledger to append to; a directory (DIR/ or an existing one) holds "
        "one ledger per shard, shard-I-of-N.jsonl (ledger.jsonl without --shard), and every run "
        f"reads them all for daily limits and pacing (default: {DEFAULT_LEDGER})",
    )
    apply.add_argument(
        "--resume",
        action="store_true",
        help="continue the ledger's last run of this job (default: a new run)",
    )
    apply.add_argument(
        "--dry-run", action="store_true", help="plan only, with apply's output; sends nothing"
    )
    apply.add_argument(
        "--yes",
        action="store_true",
        help="do not ask before removing members (default: ask at a terminal)",
    )
    apply.add_argument(
        "--plan",
        dest="plan_file",
        metavar="PLAN.json",
        help="apply exactly this plan saved by `plan --out`, or nothing if a chat changed since "
        "(default: plan afresh)",
    )
    apply.add_argument(
        "--no-verify",
        action="store_true",
        help="do not re-read chats to verify writes (default: verify)",
    )
    apply.add_argument(
        "--every",
        type=_duration,
        metavar="DURATION",
        help="run the job again DURATION after each pass ends (plus up to 10%% at random), "
        "until stopped; each pass is a run in the ledger, whose lock is held throughout; "
        "SIGTERM while sleeping exits 0 (default: run once)",
    )
    apply.add_argument(
        "--max-runs",
        type=_positive_int,
        metavar="N",
        help="with --every: stop after N passes (default: until stopped)",
    )
    _view_flags(apply, "--dry-run's plan and the confirmation")
    _run_flags(apply)
    _output_flags(apply)
    _connection_flags(apply)


def _add_report(commands: _Commands) -> None:
    """`report LEDGER`: what a ledger holds."""
    report = commands.add_parser(
        "report",
        help="summarise a ledger",
        description="What the runs in a ledger did, per account, and why operations were not done.",
        epilog=REPORT_EXIT_CODES_HELP,
    )
    report.add_argument(
        "ledger",
        metavar="LEDGER",
        help="a ledger written by apply, or a directory of ledgers (apply --ledger DIR/), "
        "read as one",
    )
    report.add_argument(
        "--format",
        choices=("text", "json", "csv"),
        default="text",
        help="text for people, json for scripts, csv one row per op record (default: text)",
    )


def _add_export(commands: _Commands) -> None:
    """`export --account ID...`: today's chats as a job file; reads only."""
    export = commands.add_parser(
        "export",
        help="write today's group chats as a desired-state job file",
        description="Read the accounts' group chats (or only --chat) and their members, paced, and "
        "write them as a desired-state job: `plan` of it is empty until you edit it. The account "
        "owner is left out, read-only chats are comments, names are comments (YAML).",
        epilog=EXPORT_RATES_HELP
        + "\nexit codes: 0 written; 1 bad flags or a refused API key, nothing written;\n"
        "  3 written, but some accounts or chats could not be read (named on stderr); 130\n"
        "  interrupted, nothing written\n",
    )
    export.add_argument(
        "--account",
        "--only-account",
        dest="account",
        nargs="+",
        action="extend",
        required=True,
        metavar="ID",
        help="the accounts whose group chats to export (in this order); --only-account, as in "
        "plan and apply, is the same flag",
    )
    export.add_argument(
        "--chat",
        "--only-chat",
        dest="chat",
        nargs="+",
        action="extend",
        default=[],
        metavar="ID",
        help="only these chats, looked for in every account; --only-chat is the same flag "
        "(default: every group chat)",
    )
    export.add_argument(
        "--format",
        choices=("yaml", "csv"),
        help="yaml (names as comments) or csv; with --out, the one its extension says, as job "
        "files are read (default: csv for an --out ending in .csv, else yaml)",
    )
    export.add_argument(
        "--out",
        metavar="FILE",
        help="write the job file there, whole or not at all (default: standard output)",
    )
    _parallel_flags(export, writes=False)
    export.add_argument(
        "--rate",
        type=_rate,
        metavar="SPEC",
        help="per-account limit on every account-scoped request "
        f"(default: {{default_rate}}; {SANDBOX_RATE} with --sandbox)",
    )
    _output_flags(export)
    _connection_flags(export)


def _add_undo(commands: _Commands) -> None:
    """`undo LEDGER`: the inverse job of a run; offline."""
    undo = commands.add_parser(
        "undo",
        help="write the inverse job of a run's applied operations",
        description="Write the job that undoes what one run of a ledger applied (default: its last "
        "run that applied something): adds become removes, removes adds, renames go back. Leaves "
        "cannot be undone (listed as comments). Offline: review it, then plan and apply it.",
        epilog="exit codes: 0 written; 1 no such ledger or run, or nothing to undo\n",
    )
    undo.add_argument("ledger", metavar="LEDGER", help="a ledger written by apply")
    undo.add_argument(
        "--run",
        dest="run_id",
        metavar="RUN_ID",
        help="the run to undo (default: the ledger's last run that applied something)",
    )
    undo.add_argument(
        "--out",
        metavar="FILE",
        help="write the job file there, whole or not at all (default: standard output)",
    )


def _add_sandbox(commands: _Commands) -> None:
    """`sandbox`: the simulator as a server."""
    sandbox = commands.add_parser(
        "sandbox",
        help="serve the Unipile simulator until interrupted",
        description="Serve the Unipile v2 simulator until Ctrl-C or SIGTERM; prints "
        "`URL: ...` and `API key: ...` once listening.",
        epilog="rates:\n" + _RATE_GRAMMAR,
    )
    sandbox.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    sandbox.add_argument(
        "--port", type=_port, default=0, help="port to listen on (default: 0, any free port)"
    )
    sandbox.add_argument(
        "--api-key",
        metavar="KEY",
        help="the key clients must send (default: a random one, printed)",
    )
    sandbox.add_argument(
        "--rate",
        default=SANDBOX_RATE,
        type=str,
        metavar="SPEC",
        help=f"each account's limit; beyond it 429 with Retry-After (default: {SANDBOX_RATE})",
    )
    sandbox.add_argument(
        "--faults",
        default="",
        metavar="SPEC",
        help="faults to inject, KIND=PROBABILITY,... and latency=DURATION, e.g. "
        "500=0.05,429=0.02,reset=0.01,applied500=0.01,latency=5ms; kinds: 500, 502, 503, 504, "
        "429, reset; applied500, appliedreset, ignored (writes); fresh_cursor, short_page "
        "(listings); trickle, huge_body (bodies) (default: none)",
    )
    sandbox.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="N",
        help="seed of the faults' randomness (default: 0)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="bulkgroups",
        description="Keep LinkedIn group chats in sync through Unipile. "
        "Run `bulkgroups COMMAND --help` for a command's flags.",
        epilog=RATES_HELP + "\n" + EXIT_CODES_HELP,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser, metavar="COMMAND"
    )
    _add_validate(commands)
    _add_plan(commands)
    _add_apply(commands)
    _add_report(commands)
    _add_export(commands)
    _add_undo(commands)
    _add_sandbox(commands)
    return parser


# ------------------------------------------------------------------------------- connection


@dataclass(frozen=True, slots=True)
class _Connection:
    base_url: str
    api_key: str
    proxy: str | None = None
    # Where runs leave when they last sent to each account (`recent_sends`): the user's state
    # directory; a throw-away one for --sandbox, whose simulator no earlier run has talked to.
    state_dir: str | None = None

    def __repr__(self) -> str:
        return f"_Connection(base_url={self.base_url!r}, api_key='***', proxy=...)"

    def handing_over(self, config: engine.EngineConfig, base_url: str) -> engine.EngineConfig:
        """`config` with this machine's recent sends to `base_url` (the client's, normalised)."""
        from dataclasses import replace
        from pathlib import Path

        from .recent_sends import RecentSends

        recent = (
            RecentSends(Path(self.state_dir), base_url)
            if self.state_dir is not None
            else RecentSends.default(base_url, os.environ)
        )
        return replace(config, recent_sends=recent)


def _read_key_file(path: str) -> str:
    """The key in `path` (`-`: standard input), read with the bound of any file the tool reads:
    `/dev/zero` would fill memory and a FIFO nobody writes to would wait forever."""
    from .files import KEY_FILE_LIMIT, FileRefused, read_regular

    if path == "-" and sys.stdin is None:
        raise UsageError("--api-key-file -: there is no standard input to read the key from")
    try:
        if path == "-":
            text = sys.stdin.read(KEY_FILE_LIMIT + 1)
            data = text.encode("utf-8", errors="surrogateescape")
        else:
            data = read_regular(path, limit=KEY_FILE_LIMIT)
        if len(data) > KEY_FILE_LIMIT:
            raise FileRefused(f"more than the {KEY_FILE_LIMIT // 1024} KiB a key file may hold")
        key = data.decode("utf-8").strip()
    except FileRefused as refused:
        hint = (
            ""
            if path == "-"
            else " (a key is read from a regular file, or piped in: --api-key-file -)"
        )
        raise UsageError(f"--api-key-file {path}: {refused.reason}{hint}") from None
    except OSError as error:
        raise UsageError(f"--api-key-file {path}: {error.strerror}") from error
    except UnicodeError:
        raise UsageError(f"--api-key-file {path}: not UTF-8 text") from None
    if not key:
        raise UsageError(f"--api-key-file {path}: the file is empty")
    return key


@contextmanager
def _connection(args: argparse.Namespace) -> Iterator[_Connection]:
    """Where requests go: the embedded simulator with --sandbox, else the flags or environment."""
    if args.sandbox:
        for flag, value in (("--base-url", args.base_url), ("--proxy", args.proxy)):
            if value:
                raise UsageError(f"--sandbox and {flag} cannot be used together")
        import tempfile

        from .simulator import run_in_thread

        with run_in_thread() as sim, tempfile.TemporaryDirectory(prefix="bulkgroups-") as state:
            yield _Connection(sim.url, sim.api_key, state_dir=state)
        return
    base_url = (
        args.base_url
        or os.environ.get("UNIPILE_BASE_URL")
        or os.environ.get("UNIPILE_DSN")  # what Unipile's dashboard calls it
        or DEFAULT_BASE_URL
    )
    yield _Connection(base_url, _api_key(args), _proxy(args.proxy, base_url))


def _proxy(flag: str | None, base_url: str) -> str | None:
    """`--proxy` ('' for none), else what the environment names (`proxies.proxy_for`)."""
    if flag is not None:
        return flag or None
    from .client import check_proxy
    from .proxies import proxy_for

    proxy = proxy_for(base_url, os.environ)
    try:
        check_proxy(proxy, base_url if "://" in base_url else "https://" + base_url)
    except UsageError as error:
        raise UsageError(
            f"{error}; it is the environment's (https_proxy, HTTPS_PROXY or ALL_PROXY): fix it, "
            "or give --proxy URL, or --proxy '' for none"
        ) from None
    return proxy


def _api_key(args: argparse.Namespace) -> str:
    """The key from --api-key-file, --api-key or UNIPILE_API_KEY, given once."""
    if args.api_key_file and args.api_key:
        raise UsageError("give the API key once: --api-key-file or --api-key")
    if args.api_key_file:
        key = _read_key_file(args.api_key_file)
    else:
        key = args.api_key or os.environ.get("UNIPILE_API_KEY") or ""
    if not key:
        raise UsageError(
            "no API key: use --api-key-file PATH, the UNIPILE_API_KEY environment variable, "
            "or --sandbox"
        )
    return key


def _config(args: argparse.Namespace, *, verify: bool = True) -> engine.EngineConfig:
    from . import engine
    from .pacing import DEFAULT_RATE, DEFAULT_WRITE_RATE

    sandbox = bool(args.sandbox)
    default_rate = parse_rate(SANDBOX_RATE) if sandbox else DEFAULT_RATE
    default_write = parse_rate(SANDBOX_RATE) if sandbox else DEFAULT_WRITE_RATE
    jitter = args.jitter if args.jitter is not None else (0.0 if sandbox else 0.5)
    resolve_max_age = getattr(args, "resolve_max_age", None)
    return engine.EngineConfig(
        resolve_max_age=(
            engine.DEFAULT_RESOLVE_MAX_AGE if resolve_max_age is None else resolve_max_age
        ),
        concurrency=args.concurrency,
        chats_per_account=args.chats_per_account,
        rate=args.rate or default_rate,
        write_rate=args.write_rate or default_write,
        jitter=jitter,
        max_removals=None if args.max_removals < 0 else args.max_removals,
        max_removal_percent=args.max_removal_percent,
        shard=args.shard,
        only_accounts=tuple(args.only_accounts),
        only_chats=tuple(args.only_chats),
        verify=verify,
        # Exits while waiting on a long pause would surprise nobody; slow sandbox verification would.
        verify_delay=0.2 if sandbox else 1.0,
    )


# ---------------------------------------------------------------------------------- commands


def _load(paths: Sequence[str]) -> Job:
    from . import jobs

    return jobs.load_job(*paths)


def _run(function: Callable[..., Awaitable[T]], *args: object) -> T:
    from . import eventloop  # uvloop when installed (`bulkgroups[fast]`)

    return eventloop.run(function, *args)


def _view(args: argparse.Namespace) -> PlanView:
    """What of a plan is printed: `--quiet` keeps only its totals."""
    from .display import PlanView

    if args.quiet:
        return PlanView(detail="totals")
    return PlanView(detail=args.detail, show_unchanged=args.show_unchanged)


def _say(text: str, level: int = logging.WARNING) -> None:
    """One of the command's own messages on stderr, through its log: a plain line, or a JSON
    object with `--log-format json` (without a log installed, Python prints warnings plainly)."""
    logging.getLogger("bulkgroups.cli").log(level, text)


def _warn_if_slow(err: Console, what: str, seconds: float) -> None:
    """A rate mistyped as `2/d` must not keep a command waiting for hours without a word."""
    from .display import format_duration
    from .forecast import ONE_DAY

    if seconds > ONE_DAY:
        _say(
            f"warning: at the configured rates, {what} takes {format_duration(seconds)}, more "
            "than a day; check --rate, --write-rate and the job's accounts.<id> settings"
        )


def _progress(args: argparse.Namespace, err: Console) -> ProgressDisplay:
    """Bars at a terminal, lines elsewhere or for a log collector, nothing with --quiet."""
    from .progress import ProgressDisplay

    mode: ProgressMode | None = None
    if args.quiet:
        mode = "off"
    elif args.log_format == "json":
        mode = "lines"
    return ProgressDisplay(err, mode=mode, interval=args.progress_interval)


@contextmanager
def _owner_rule_located(job: Job) -> Iterator[None]:
    """The engine reports the owner rule as values; here they get their places in the files."""
    try:
        with plain_errors():
            yield
    except OwnerRuleRefused as refused:
        from . import jobs

        raise JobFileErrors(jobs.locate_owner_rule(job, refused.violations)) from None


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _cmd_validate(args: argparse.Namespace, out: _PlainConsole) -> int:
    job = _load(args.jobs)
    accounts = len(job.account_ids())
    out.print(
        f"OK: {_count(len(job.chats), 'chat')} across {_count(accounts, 'account')} "
        f"in {_count(len(args.jobs), 'file')}."
    )
    return 0


async def _plan(args: argparse.Namespace, job: Job, err: Console) -> tuple[Plan, float]:
    import anyio

    from . import engine, forecast
    from .client import UnipileClient

    config = _config(args)
    _warn_if_slow(err, "reading the job's chats", forecast.read_seconds(job, config))
    with _connection(args) as conn:
        async with UnipileClient(
            conn.base_url,
            api_key=conn.api_key,
            proxy=conn.proxy,
            concurrency=config.concurrency,
            page_size=args.page_size,
        ) as client:
            config = conn.handing_over(config, client.base_url)
            with _progress(args, err) as progress:

                async def plan_shown() -> Plan:
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(progress.run_clock)
                        plan = await engine.plan_job_online(
                            job,
                            client,
                            config=config,
                            observer=progress,
                            ledger=getattr(args, "ledger", None),
                        )
                        tg.cancel_scope.cancel()
                    return plan

                plan = await _until_signalled(plan_shown())
    if plan is None:
        raise KeyboardInterrupt  # main: exit 130, as for Ctrl-C
    return plan, engine.estimate_seconds(plan, config)


async def _until_signalled(work: Awaitable[T]) -> T | None:
    """Run `work`; SIGINT or SIGTERM cancels it cleanly (sessions and the simulator closed)
    and gives None. A signal raised as an exception mid-await could surface anywhere."""
    import anyio

    result: T | None = None
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    tg.cancel_scope.cancel()
                    return

        tg.start_soon(watch)
        result = await work
        tg.cancel_scope.cancel()
    return result


def _refuse_removals(args: argparse.Namespace, plan: Plan) -> None:
    """`plan` and `apply --dry-run` refuse, after showing it, the plan that apply would refuse."""
    from .engine.removals import check_removals

    check_removals(
        plan,
        limit=None if args.max_removals < 0 else args.max_removals,
        percent=args.max_removal_percent,
        consequence="apply would refuse it",
    )


def _refused(args: argparse.Namespace, plan: Plan) -> bool:
    try:
        _refuse_removals(args, plan)
    except RunRefused:
        return True
    return False


def _cmd_plan(args: argparse.Namespace, out: Console, err: Console) -> int:
    from . import outputs, planfile
    from .display import write_plan
    from .engine.workers import fewer_young_collections

    job = _load(args.jobs)
    if args.out:  # before anything is read: a FIFO, /dev/full, a directory that does not exist
        outputs.check_output_path(args.out, what="the plan file")
    # As apply does: a large plan allocates millions of long-lived objects, which CPython's
    # default young-generation threshold would scan again and again.
    with fewer_young_collections():
        with _owner_rule_located(job):
            plan, seconds = _run(_plan, args, job, err)
        # Shown, but refused as apply would refuse it: no plan file that `apply --plan` cannot use.
        refused = _refused(args, plan)
        if args.out and not refused:
            planfile.dump_plan(plan, args.out, estimated_seconds=seconds)
        if args.format == "json":
            planfile.write_plan(plan, _utf8_writer(sys.stdout), estimated_seconds=seconds)
        else:
            write_plan(plan, out, estimated_seconds=seconds, view=_view(args))
            if args.out and not refused:
                out.print(
                    f"Saved to {args.out}; apply exactly this plan with `bulkgroups apply ... --plan {args.out}`."
                )
    if plan.has_changes:
        _warn_if_slow(err, "applying this plan", seconds)
    return _plan_exit_code(args, plan)


def _plan_exit_code(args: argparse.Namespace, plan: Plan) -> int:
    """`plan` (and `apply --dry-run`) exit as apply would: 1 for a plan apply refuses, 3 when
    some chats could not be read (a plan of what could be read is not the plan of the job), 2
    with `--detailed-exitcode` only when every chat was read and something would change."""
    _refuse_removals(args, plan)
    if plan.unread_chats:
        _say(
            f"{_count(plan.unread_chats, 'chat')} could not be read (the `!` lines say why): "
            "this plan leaves out what they need"
        )
        return 3
    if getattr(args, "detailed_exitcode", False) and plan.has_changes:
        return 2
    return 0


async def _ask(question: str) -> str:
    """A line from the terminal, read without blocking the event loop or holding a thread, so
    that Ctrl-C at the question stops the run at once (a thread stuck in input() would keep the
    process alive until Enter)."""
    import asyncio

    import anyio

    sys.stdout.write(question)
    sys.stdout.flush()
    loop = asyncio.get_running_loop()
    readable = anyio.Event()
    fd = sys.stdin.fileno()
    loop.add_reader(fd, readable.set)
    try:
        await readable.wait()
    except BaseException:  # Ctrl-C: what is said next starts a line of its own
        sys.stdout.write("\n")
        sys.stdout.flush()
        raise
    finally:
        loop.remove_reader(fd)
    return sys.stdin.readline()


def _interactive() -> bool:
    """Whether a person can answer: stdin is a terminal (cron may start us with none at all)."""
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except ValueError:  # closed
        return False


def _confirmer(
    args: argparse.Namespace, out: Console, progress: ProgressDisplay
) -> Callable[[Plan], Awaitable[bool]] | None:
    """A person at a terminal sees the whole plan and is asked before members are removed.

    Only then does the run wait for every chat to be read before the first write; scripts, cron
    and `--yes` never wait for a question nobody will answer. The bars are taken off while the
    plan and the question are shown, and drawn again below a "yes" (after a "no" or Ctrl-C the
    run ends: they would only push its last words down).
    """
    from .display import PlanView, write_plan

    if args.yes or not _interactive():
        return None
    # The plan asked about is shown whole, --quiet or not: nobody confirms what they cannot see.
    view = PlanView(detail=args.detail, show_unchanged=args.show_unchanged)

    async def confirm(plan: Plan) -> bool:
        progress.pause()
        write_plan(plan, out, view=view)
        if plan.removals:
            answer = await _ask(f"This plan removes {plan.removals} member(s). Apply it? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                return False  # the run ends here: no bars drawn again below the answer
        progress.resume()
        return True

    return confirm


class _Pass:
    """One run of `apply` under way, as a signal sees it: before anything is written a signal
    cancels it at once (nothing to record); once writing, the first asks it to stop sending
    (`interrupt`), a second cancels it."""

    def __init__(self, progress: ProgressDisplay) -> None:
        import anyio

        self.progress = progress  # it knows whether writing began, and what was recorded
        self.scope = anyio.CancelScope()
        self.interrupt = anyio.Event()

    def signalled(self, signum: int) -> None:
        if self.interrupt.is_set() or not self.progress.writing:
            self.scope.cancel()
            return
        _say(
            f"{signal.Signals(signum).name}: stopping; requests in flight may finish, then the "
            "ledger is closed (again to stop at once)"
        )
        self.progress.stopping()
        self.interrupt.set()


class _Signals:
    """SIGINT and SIGTERM for the whole `apply` command: the run under way stops as `_Pass`
    says; a sleep between `--every` passes ends at once, and so does the loop.

    One receiver for the command rather than one per run: asyncio restores a signal's default
    action when its receiver closes, so between two receivers SIGTERM would kill the process
    with nothing recorded and the lock left behind.
    """

    def __init__(self) -> None:
        self.current: _Pass | None = None
        self.sleeping: CancelScope | None = None
        self.stop = False  # a signal came while no run was under way: no more passes

    async def watch(self, *, task_status: TaskStatus[None]) -> None:
        import anyio

        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            async for signum in signals:
                if self.current is not None:
                    self.current.signalled(signum)
                    continue
                self.stop = True
                if self.sleeping is not None:
                    self.sleeping.cancel()

    async def sleep(self, seconds: float) -> bool:
        """Sleep between passes; True if a signal ended the sleep (or came before it)."""
        import anyio

        if self.stop:
            return True
        with anyio.CancelScope() as scope:
            self.sleeping = scope
            try:
                await anyio.sleep(seconds)
            finally:
                self.sleeping = None
        return self.stop


async def _apply(args: argparse.Namespace, out: Console, err: Console) -> int:
    """`apply`: one run of the job, or with --every one every DURATION; the exit code of the
    last. The connection (and --sandbox's simulator) lasts for every pass."""
    import anyio

    from .client import UnipileClient

    config = _config(args, verify=not args.no_verify)
    signals = _Signals()
    with _connection(args) as conn:
        async with (
            UnipileClient(
                conn.base_url,
                api_key=conn.api_key,
                proxy=conn.proxy,
                concurrency=config.concurrency,
                page_size=args.page_size,
            ) as client,
            anyio.create_task_group() as tg,
        ):
            await tg.start(signals.watch)
            config = conn.handing_over(config, client.base_url)
            if args.every is None:
                code = await _apply_once(args, config, client, out, err, signals)
            else:
                code = await _apply_every(args, config, client, out, err, signals)
            tg.cancel_scope.cancel()
    return code


async def _apply_once(
    args: argparse.Namespace,
    config: engine.EngineConfig,
    client: UnipileClient,
    out: Console,
    err: Console,
    signals: _Signals,
) -> int:
    import anyio

    from . import planfile
    from .display import render_outcomes

    job = await anyio.to_thread.run_sync(_load, args.jobs)  # a large job takes seconds to parse
    expected = None
    if args.plan_file:  # a saved plan of a million operations is 150 MB of JSON: off the loop too
        expected = await anyio.to_thread.run_sync(planfile.load_plan, args.plan_file)
    with _owner_rule_located(job):
        ran = await _run_pass(
            args, job, config, client, out, err, signals, resume=args.resume, expected=expected
        )
    if ran is None:
        return 130
    result, progress = ran
    with _unread_output_ignored():
        render_outcomes(progress.tally, out, counts=not args.quiet)
        counts = ", ".join(f"{n} {status}" for status, n in result.counts.items())
        out.print(f"Run {result.run_id}: {counts}. Ledger: {result.ledger}")
        if result.interrupted:
            out.print("Interrupted: run the same command with --resume to continue.")
    return result.exit_code


async def _apply_every(
    args: argparse.Namespace,
    config: engine.EngineConfig,
    client: UnipileClient,
    out: Console,
    err: Console,
    signals: _Signals,
) -> int:
    """Pass after pass (`schedule`'s docstring has the rules), holding the ledger's lock."""
    import random
    import time

    import anyio

    from .display import render_outcomes
    from .engine.opening import check_ledger_path
    from .ledger_dir import ledger_place, prepare_directory
    from .lock import LedgerLock
    from .schedule import Schedule, pass_line

    schedule = Schedule(args.every, args.max_runs)
    rng = random.Random()
    # The file this command appends to (in a ledger directory: this shard's own), locked
    # across every pass.
    place = ledger_place(args.ledger, args.shard)
    prepare_directory(place)
    check_ledger_path(place.path)
    with LedgerLock(place.path) as lock:
        number = 0
        while True:
            number += 1
            # Read again each pass (an edited job counts from the next), off the event loop.
            job = await anyio.to_thread.run_sync(_load, args.jobs)
            if signals.stop:  # signalled while the job was read: between passes, as if asleep
                return 0
            began = time.monotonic()
            with _owner_rule_located(job):
                ran = await _run_pass(
                    args,
                    job,
                    config,
                    client,
                    out,
                    err,
                    signals,
                    resume=args.resume and number == 1,
                    lock=lock,
                )
            # The first pass dealt with a holder that died (its writes decided, its pause
            # waited); the next passes follow runs of this very process.
            lock.took_over = False
            if ran is None:
                return 130
            result, progress = ran
            seconds = time.monotonic() - began
            last = result.interrupted or schedule.last(number)
            pause = 0.0 if last else schedule.pause(rng)
            if result.interrupted:
                after = "interrupted: run the same command with --resume"
            elif last:
                after = f"--max-runs {args.max_runs} reached"
            else:
                after = f"next in about {compact_duration(pause)}"
            with _unread_output_ignored():  # the loop goes on: the ledger has every pass
                render_outcomes(progress.tally, out, counts=False)  # what failed, in full
                out.print(
                    pass_line(number, result.counts, seconds, run_id=result.run_id, after=after)
                )
            if last:
                return result.exit_code
            if await signals.sleep(pause):
                return 0


async def _run_pass(
    args: argparse.Namespace,
    job: Job,
    config: engine.EngineConfig,
    client: UnipileClient,
    out: Console,
    err: Console,
    signals: _Signals,
    *,
    resume: bool,
    expected: Plan | None = None,
    lock: LedgerLock | None = None,
) -> tuple[engine.RunResult, ProgressDisplay] | None:
    """One run of the job with its progress shown; None if a signal cancelled it (after
    saying what the ledger holds)."""
    import anyio

    from . import engine, forecast

    # On --resume what is left is known only once read: count the reads alone.
    seconds = (forecast.read_seconds if resume else forecast.apply_seconds)(job, config)
    _warn_if_slow(err, "this run", seconds)
    progress = _progress(args, err)
    current = _Pass(progress)
    result: engine.RunResult | None = None
    with progress:
        signals.current = current
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(progress.run_clock)
                with current.scope:
                    result = await engine.apply_job(
                        job,
                        client,
                        ledger=args.ledger,
                        config=config,
                        resume=resume,
                        observer=progress,
                        interrupt=current.interrupt,
                        expected=expected,
                        confirm=_confirmer(args, out, progress),
                        lock=lock,
                    )
                tg.cancel_scope.cancel()
        finally:
            signals.current = None
    if result is None:
        if progress.writing:  # the run has its `run` record: the ledger knows it
            from .ledger_dir import ledger_place

            written = ledger_place(args.ledger, args.shard).path
            _say(
                f"stopped at once: {_count(progress.recorded, 'operation')} recorded in "
                f"{written}; run the same command with --resume to continue"
            )
        else:
            _say("interrupted before anything was written; nothing to resume")
        return None
    return result, progress


async def _dry_run(args: argparse.Namespace, job: Job, out: Console, err: Console) -> int:
    from .display import write_plan

    plan, seconds = await _plan(args, job, err)
    write_plan(plan, out, estimated_seconds=seconds, view=_view(args))
    out.print("Dry run: nothing was sent.")
    if plan.has_changes:
        _warn_if_slow(err, "applying this plan", seconds)
    return _plan_exit_code(args, plan)


def _check_every(args: argparse.Namespace) -> None:
    if args.every is None:
        if args.max_runs is not None:
            raise UsageError("--max-runs counts the passes of --every: give --every DURATION")
        return
    if args.dry_run or args.plan_file:
        raise UsageError(
            "--every repeats a run: not with --dry-run or --plan (a saved plan is for one run)"
        )
    if not args.yes and _interactive():
        raise UsageError(
            "--every runs unattended and asks nothing: add --yes (--max-removals still refuses "
            "a plan that removes too many)"
        )


def _cmd_apply(args: argparse.Namespace, out: Console, err: Console) -> int:
    _check_every(args)
    if args.dry_run:
        from .engine.workers import fewer_young_collections

        job = _load(args.jobs)
        with _owner_rule_located(job), fewer_young_collections():  # a dry run is a plan
            return _run(_dry_run, args, job, out, err)
    return _run(_apply, args, out, err)


def _export_config(args: argparse.Namespace) -> engine.EngineConfig:
    from . import engine
    from .pacing import DEFAULT_RATE

    rate = args.rate or (parse_rate(SANDBOX_RATE) if args.sandbox else DEFAULT_RATE)
    return engine.EngineConfig(
        concurrency=args.concurrency,
        chats_per_account=args.chats_per_account,
        rate=rate,
        write_rate=rate,
    )


async def _export(
    args: argparse.Namespace, exported: export.ExportFile, err: Console
) -> tuple[list[str], str] | None:
    """Read into `exported`; what could not be read, and the base URL read from (None if
    interrupted)."""
    from .client import UnipileClient
    from .engine.inventory import read_existing

    config = _export_config(args)
    with _connection(args) as conn:
        async with UnipileClient(
            conn.base_url,
            api_key=conn.api_key,
            proxy=conn.proxy,
            concurrency=config.concurrency,
            page_size=args.page_size,
        ) as client:
            config = conn.handing_over(config, client.base_url)
            with _progress(args, err) as progress:
                inventory = await _until_signalled(
                    read_existing(
                        args.account,
                        client,
                        exported.add,
                        chats=args.chat,
                        config=config,
                        observer=progress,
                    )
                )
            if inventory is None:
                return None
            return inventory.problems, client.base_url


def _export_format(args: argparse.Namespace) -> export.ExportFormat:
    """`--format`, else what `--out`'s extension says. Job files are read by their extension, so
    a format the extension contradicts would write a file that no command could read back."""
    from .jobs.source import is_csv

    if args.out is None:
        return "csv" if args.format == "csv" else "yaml"
    extension: export.ExportFormat = "csv" if is_csv(args.out) else "yaml"
    if args.format is not None and args.format != extension:
        raise UsageError(
            f"--format {args.format} with --out {args.out}: a job file is read as CSV if its "
            "name ends in .csv and as YAML otherwise; name the file to match, or leave out "
            "--format"
        )
    return extension


def _cmd_export(args: argparse.Namespace, out: Console, err: Console) -> int:
    from . import export, logs, outputs
    from .records import format_time
    from .terminal import printable

    fmt = _export_format(args)
    if args.out:
        outputs.check_output_path(args.out)  # before anything is read
    with export.ExportFile(args.account, format=fmt) as exported:
        read = _run(_export, args, exported, err)
        if read is None:
            raise KeyboardInterrupt  # main: exit 130; nothing was written
        problems, base_url = read
        at = format_time(time.time())

        def body(write: outputs.Write) -> None:
            exported.write_to(write, base_url=base_url, at=at)

        if args.out:
            outputs.write_output(args.out, body)
        else:
            body(_utf8_writer(sys.stdout))
            sys.stdout.flush()
    problems += exported.problems
    for problem in problems:  # the server's words among them
        _say(printable(f"not exported: {problem}"))
    where = args.out or "standard output"
    logging.getLogger(logs.SUMMARY_LOGGER).info(
        f"Exported {_count(exported.entries, 'chat')} of {_count(len(args.account), 'account')} "
        f"to {where}" + (f"; {_count(len(problems), 'problem')} above." if problems else ".")
    )
    return 3 if problems else 0


def _cmd_undo(args: argparse.Namespace, out: _PlainConsole, err: _PlainConsole) -> int:
    from . import outputs, undo

    if args.out:
        outputs.check_output_path(args.out)
    inverse = undo.inverse_of(args.ledger, run_id=args.run_id)
    if args.out:
        outputs.write_output(args.out, inverse.write_to)
    else:
        inverse.write_to(_utf8_writer(sys.stdout))
        sys.stdout.flush()
    err.print(inverse.summary(), markup=False, highlight=False)
    return 0


def _cmd_report(args: argparse.Namespace, out: Console) -> int:
    from . import report

    if not os.path.exists(args.ledger):
        raise UsageError(f"{args.ledger}: no such ledger")
    if os.path.isdir(args.ledger):
        from .ledger_dir import ledger_files

        if not ledger_files(args.ledger):
            raise UsageError(f"{args.ledger}: a directory without ledgers (*.jsonl)")
    if args.format == "csv":
        report.write_csv(args.ledger, sys.stdout)
        return 0
    summary = report.summarize(args.ledger)
    if args.format == "json":
        sys.stdout.write(report.render_json(summary) + "\n")
    else:
        # At the console's width (80 in a pipe: cron mail, CI logs); the tables wrap to fit.
        report.print_text(summary, out)
    return 0


def _cmd_sandbox(args: argparse.Namespace) -> int:
    from .simulator import parse_faults, run_sandbox

    try:
        rate = parse_rate(args.rate)
    except ValueError as error:
        raise UsageError(f"--rate: {error}") from error
    try:
        faults = parse_faults(args.faults)
    except ValueError as error:
        raise UsageError(f"--faults: {error}") from error
    try:
        run_sandbox(
            host=args.host,
            port=args.port,
            api_key=args.api_key,
            rate=rate,
            faults=faults,
            seed=args.seed,
            print_fn=lambda line: print(line, flush=True),
        )
    except OSError as error:  # e.g. the port is taken: a usage problem, not a crash
        raise UsageError(f"cannot serve on {args.host}:{args.port}: {error.strerror}") from error
    return 0


class _PlainConsole:
    """The little of a rich Console that validate and main's error messages use: lines of text
    printed as they are (rich would print them the same: soft wrap, no markup). Importing rich
    would cost `validate` a quarter of its start; the commands that draw tables or progress get
    real Consoles."""

    def __init__(self, *, stderr: bool = False) -> None:
        self._stderr = stderr

    def print(
        self, *objects: object, markup: bool | None = None, highlight: bool | None = None
    ) -> None:
        print(*objects, file=sys.stderr if self._stderr else sys.stdout)


def _output_closed() -> None:
    """Standard output's reader is gone: point it at /dev/null, so that nothing written from
    here on, nor the interpreter's last flush, fails again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no file descriptor (a test's capture): nothing to redirect
        pass


@contextmanager
def _unread_output_ignored() -> Iterator[None]:
    """Around what `apply` prints of a run already recorded: a reader gone (`| head`) must not
    turn its exit code into another (1 would say that nothing was sent)."""
    try:
        yield
    except BrokenPipeError:
        _output_closed()


def _consoles() -> tuple[Console, Console]:
    """rich Consoles for stdout and stderr. rich ends the process with exit 1 when a pipe's
    reader is gone; these raise BrokenPipeError, as plain writes do, for the command to decide
    (`main`: 141; `apply`: the run's own code)."""
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True  # nothing more is written through it
            raise BrokenPipeError

    return _Console(soft_wrap=True), _Console(stderr=True, soft_wrap=True)


def _dispatch(args: argparse.Namespace, out: _PlainConsole, err: _PlainConsole) -> int:
    if args.command == "validate":
        return _cmd_validate(args, out)
    if args.command == "sandbox":
        return _cmd_sandbox(args)
    if args.command == "undo":
        return _cmd_undo(args, out, err)
    console, console_err = _consoles()
    if args.command == "plan":
        return _cmd_plan(args, console, console_err)
    if args.command == "apply":
        return _cmd_apply(args, console, console_err)
    if args.command == "report":
        return _cmd_report(args, console)
    if args.command == "export":
        return _cmd_export(args, console, console_err)
    raise UsageError(f"unknown command {args.command!r}")


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM ends validate/plan/report as Ctrl-C does: exit 130


def _utf8_writer(stream: TextIO) -> Callable[[bytes], object]:
    """Bytes of UTF-8 text (a job file, a plan's JSON) written to a text stream, in pieces that
    may end mid-character (an export's spools are copied in fixed-size chunks)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    return lambda data: stream.write(decoder.decode(data))


def _reported(command: Callable[[], int], report: Callable[[str], None]) -> int:
    """The command's exit code; an error it raised is reported (one line each) and gives its.

    An error may carry what the server said (its `detail`): shown `printable`, so that a server
    cannot break the line or send the terminal escape sequences."""
    from .terminal import printable

    try:
        with plain_errors():
            return command()
    except JobFileErrors as errors:
        for error in errors.errors:
            report(str(error))
        return 1
    except AuthError as error:
        report(printable(f"error: the API key was refused: {error}"))
        return error.exit_code
    except BulkGroupsError as error:  # usage, refused runs, LedgerUnwritable (4), ...
        report(printable(f"error: {error}"))
        return error.exit_code


def _command(args: argparse.Namespace, out: _PlainConsole, err: _PlainConsole) -> int:
    """Run the parsed command. `plan`, `apply` and `export` write their stderr through the command's log
    (`logs`): requests with -v, progress lines, warnings and errors, as text or JSON lines."""
    if args.command not in ("plan", "apply", "export"):
        return _reported(lambda: _dispatch(args, out, err), err.print)
    from . import logs

    with logs.install(log_format=args.log_format, verbose=args.verbose, quiet=args.quiet):
        return _reported(lambda: _dispatch(args, out, err), partial(_say, level=logging.ERROR))


def main(argv: Sequence[str] | None = None) -> NoReturn:
    out = _PlainConsole()
    err = _PlainConsole(stderr=True)
    # `apply` replaces this with its own graceful handling while it runs.
    previous = signal.signal(signal.SIGTERM, _terminated) if _in_main_thread() else None
    try:
        try:
            args = build_parser().parse_args(argv)
        except UsageError as error:
            err.print(f"error: {error}{_list_flag_hint(error, argv)}")
            code = error.exit_code
        else:
            code = _command(args, out, err)
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:  # stdout's reader is gone: nothing more to say, and nobody to hear it
        _output_closed()
        code = EXIT_OUTPUT_CLOSED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    sys.exit(code)


# Flags that take every value after them (nargs="+"): job files given after one become its ids.
_LIST_FLAGS: Final = ("--only-account", "--only-chat")


def _list_flag_hint(error: UsageError, argv: Sequence[str] | None) -> str:
    """`--only-account acc_1 job.yaml` leaves no JOB: say why, rather than only that it is
    missing."""
    words = sys.argv[1:] if argv is None else argv
    used = [flag for flag in _LIST_FLAGS if flag in words]
    if not used or "arguments are required: JOB" not in str(error):
        return ""
    return (
        f" ({used[0]} takes every value after it as one of its ids: give the job files first, "
        f"`bulkgroups {words[0]} JOB... {used[0]} ID...`)"
    )


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
