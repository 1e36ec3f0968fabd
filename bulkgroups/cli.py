"""The `bulkgroups` command: argument parsing, environment, connection, display. Wiring only.

Exit codes (CONTRACT.md, first that applies): 1 nothing was sent that changes anything (bad job
file or flags, owner rule, max-removals, bad key at the first request, resume of another job,
stale plan, held lock); 4 the ledger could not be written; 130 interrupted; 3 finished with
failed or deferred operations; 2 `plan --detailed-exitcode` with changes; 0 success. Usage
errors exit 1, not argparse's 2. An error's code is its `BulkGroupsError.exit_code`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, TypeVar

import anyio
import orjson
from rich.console import Console

from . import engine, jobs, planfile, report
from .client import UnipileClient
from .display import ProgressDisplay, render_outcomes, render_plan
from .errors import (
    AuthError,
    BulkGroupsError,
    JobFileErrors,
    OwnerRuleRefused,
    RunRefused,
    UsageError,
    plain_errors,
)
from .model import Job, Outcome, Plan, RateSpec, parse_rate
from .pacing import DEFAULT_RATE, DEFAULT_WRITE_RATE

__all__ = ["main"]

T = TypeVar("T")

DEFAULT_BASE_URL = "https://api.unipile.com"
SANDBOX_RATE = "20/s"


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as UsageError (exit 1, as the contract says)."""

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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from error
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _removals(text: str) -> int:
    try:
        value = int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected a whole number or -1, got {text!r}") from error
    if value < -1:
        raise argparse.ArgumentTypeError("expected a number >= 0, or -1 to disable the check")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from error
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0..65535 (0 = any free port), got {value}")
    return value


def _jitter(text: str) -> float:
    try:
        value = float(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from error
    if not 0 <= value <= 10:
        raise argparse.ArgumentTypeError("jitter must be between 0 and 10")
    return value


def _connection_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--base-url", help=f"API origin (env UNIPILE_BASE_URL; default {DEFAULT_BASE_URL})"
    )
    group.add_argument(
        "--api-key-file", metavar="PATH", help="read the API key from PATH ('-' = stdin)"
    )
    group.add_argument(
        "--api-key",
        metavar="KEY",
        help="the API key (visible in ps: prefer the file or UNIPILE_API_KEY)",
    )
    group.add_argument("--sandbox", action="store_true", help="run against the embedded simulator")


def _run_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--concurrency", type=_positive_int, default=64, help="requests in flight overall (64)"
    )
    parser.add_argument(
        "--rate", type=_rate, help="per-account limit on every account-scoped request (1/s)"
    )
    parser.add_argument("--write-rate", type=_rate, help="per-account limit on writes (1/min)")
    parser.add_argument(
        "--jitter", type=_jitter, help="random extra delay per write, fraction of its interval"
    )
    parser.add_argument(
        "--max-removals",
        type=_removals,
        default=100,
        help="refuse plans removing more (100; -1 = off)",
    )
    parser.add_argument(
        "--shard", type=_shard, metavar="I/N", help="only the accounts of shard I of N"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="bulkgroups", description="Keep LinkedIn group chats in sync through Unipile."
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    validate = commands.add_parser("validate", help="check job files offline")
    validate.add_argument("jobs", nargs="+", metavar="JOB")

    plan = commands.add_parser("plan", help="read current state and show what apply would change")
    plan.add_argument("jobs", nargs="+", metavar="JOB")
    plan.add_argument("--out", metavar="PLAN.json", help="save the plan for `apply --plan`")
    plan.add_argument("--format", choices=("text", "json"), default="text")
    plan.add_argument(
        "--detailed-exitcode", action="store_true", help="exit 2 when the plan has changes"
    )
    _run_flags(plan)
    _connection_flags(plan)

    apply = commands.add_parser(
        "apply", help="plan and apply, recording every outcome in the ledger"
    )
    apply.add_argument("jobs", nargs="+", metavar="JOB")
    apply.add_argument("--ledger", default=engine.DEFAULT_LEDGER, metavar="PATH")
    apply.add_argument(
        "--resume", action="store_true", help="continue the ledger's last run of this job"
    )
    apply.add_argument("--dry-run", action="store_true", help="plan only, with apply's output")
    apply.add_argument("--yes", action="store_true", help="do not ask before removing members")
    apply.add_argument(
        "--plan", dest="plan_file", metavar="PLAN.json", help="apply exactly this saved plan"
    )
    apply.add_argument(
        "--no-verify", action="store_true", help="do not re-read chats to verify writes"
    )
    _run_flags(apply)
    _connection_flags(apply)

    report_cmd = commands.add_parser("report", help="summarise a ledger")
    report_cmd.add_argument("ledger", metavar="LEDGER")
    report_cmd.add_argument("--format", choices=("text", "json", "csv"), default="text")

    sandbox = commands.add_parser("sandbox", help="serve the Unipile simulator until interrupted")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=_port, default=0)
    sandbox.add_argument("--api-key", metavar="KEY")
    sandbox.add_argument("--rate", default=SANDBOX_RATE, type=str)
    sandbox.add_argument("--faults", default="", metavar="SPEC")
    sandbox.add_argument("--seed", type=int, default=0)
    return parser


# ------------------------------------------------------------------------------- connection


@dataclass(frozen=True, slots=True)
class _Connection:
    base_url: str
    api_key: str

    def __repr__(self) -> str:
        return f"_Connection(base_url={self.base_url!r}, api_key='***')"


def _read_key_file(path: str) -> str:
    if path == "-" and sys.stdin is None:
        raise UsageError("--api-key-file -: there is no standard input to read the key from")
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"--api-key-file {path}: {error.strerror}") from error
    key = text.strip()
    if not key:
        raise UsageError(f"--api-key-file {path}: the file is empty")
    return key


@contextmanager
def _connection(args: argparse.Namespace) -> Iterator[_Connection]:
    """Where requests go: the embedded simulator with --sandbox, else the flags or environment."""
    if args.sandbox:
        if args.base_url:
            raise UsageError("--sandbox and --base-url cannot be used together")
        from .simulator import run_in_thread

        with run_in_thread() as sim:
            yield _Connection(sim.url, sim.api_key)
        return
    base_url = args.base_url or os.environ.get("UNIPILE_BASE_URL") or DEFAULT_BASE_URL
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
    yield _Connection(base_url, key)


def _config(args: argparse.Namespace, *, verify: bool = True) -> engine.EngineConfig:
    sandbox = bool(args.sandbox)
    default_rate = parse_rate(SANDBOX_RATE) if sandbox else DEFAULT_RATE
    default_write = parse_rate(SANDBOX_RATE) if sandbox else DEFAULT_WRITE_RATE
    jitter = args.jitter if args.jitter is not None else (0.0 if sandbox else 0.5)
    return engine.EngineConfig(
        concurrency=args.concurrency,
        rate=args.rate or default_rate,
        write_rate=args.write_rate or default_write,
        jitter=jitter,
        max_removals=None if args.max_removals < 0 else args.max_removals,
        shard=args.shard,
        verify=verify,
        # Exits while waiting on a long pause would surprise nobody; slow sandbox verification would.
        verify_delay=0.2 if sandbox else 1.0,
    )


# ---------------------------------------------------------------------------------- commands


def _load(paths: Sequence[str]) -> Job:
    return jobs.load_job(*paths)


@contextmanager
def _owner_rule_located(job: Job) -> Iterator[None]:
    """The engine reports the owner rule as values; here they get their places in the files."""
    try:
        with plain_errors():
            yield
    except OwnerRuleRefused as refused:
        raise JobFileErrors(jobs.locate_owner_rule(job, refused.violations)) from None


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _cmd_validate(args: argparse.Namespace, out: Console) -> int:
    job = _load(args.jobs)
    accounts = len(job.account_ids())
    out.print(
        f"OK: {_count(len(job.chats), 'chat')} across {_count(accounts, 'account')} "
        f"in {_count(len(args.jobs), 'file')}."
    )
    return 0


async def _plan(args: argparse.Namespace, job: Job, err: Console) -> tuple[Plan, float]:
    config = _config(args)
    with _connection(args) as conn:
        async with UnipileClient(
            conn.base_url, api_key=conn.api_key, concurrency=config.concurrency
        ) as client:
            with ProgressDisplay(err) as progress:
                plan = await _until_signalled(
                    engine.plan_job_online(job, client, config=config, observer=progress)
                )
    if plan is None:
        raise KeyboardInterrupt  # main: exit 130, as for Ctrl-C
    return plan, engine.estimate_seconds(plan, config)


async def _until_signalled(work: Awaitable[T]) -> T | None:
    """Run `work`; SIGINT or SIGTERM cancels it cleanly (sessions and the simulator closed)
    and gives None. A signal raised as an exception mid-await could surface anywhere."""
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
    if 0 <= args.max_removals < plan.removals:
        raise RunRefused(
            f"the plan removes {plan.removals} members, more than --max-removals "
            f"{args.max_removals}; apply would refuse it"
        )


def _cmd_plan(args: argparse.Namespace, out: Console, err: Console) -> int:
    job = _load(args.jobs)
    if args.out:
        planfile.check_plan_path(args.out)  # before anything is read: a FIFO or /dev/full
    with _owner_rule_located(job):
        plan, seconds = anyio.run(_plan, args, job, err)
    # Shown, but refused as apply would refuse it: no plan file that `apply --plan` cannot use.
    too_many = 0 <= args.max_removals < plan.removals
    if args.out and not too_many:
        planfile.dump_plan(plan, args.out, estimated_seconds=seconds)
    if args.format == "json":
        sys.stdout.write(
            orjson.dumps(
                planfile.plan_to_dict(plan, estimated_seconds=seconds), option=orjson.OPT_INDENT_2
            ).decode()
            + "\n"
        )
    else:
        out.print(render_plan(plan, estimated_seconds=seconds), markup=False, highlight=False)
        if args.out and not too_many:
            out.print(
                f"Saved to {args.out}; apply exactly this plan with `bulkgroups apply ... --plan {args.out}`."
            )
    _refuse_removals(args, plan)
    if args.detailed_exitcode and plan.has_changes:
        return 2
    return 0


async def _ask(question: str) -> str:
    """A line from the terminal, read without blocking the event loop or holding a thread, so
    that Ctrl-C at the question stops the run at once (a thread stuck in input() would keep the
    process alive until Enter)."""
    sys.stdout.write(question)
    sys.stdout.flush()
    loop = asyncio.get_running_loop()
    readable = anyio.Event()
    fd = sys.stdin.fileno()
    loop.add_reader(fd, readable.set)
    try:
        await readable.wait()
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
    and `--yes` never wait for a question nobody will answer.
    """
    if args.yes or not _interactive():
        return None

    async def confirm(plan: Plan) -> bool:
        progress.pause()
        try:
            out.print(render_plan(plan), markup=False, highlight=False)
            if plan.removals == 0:
                return True
            answer = await _ask(f"This plan removes {plan.removals} member(s). Apply it? [y/N] ")
            return answer.strip().lower() in ("y", "yes")
        finally:
            progress.resume()

    return confirm


async def _apply(args: argparse.Namespace, job: Job, out: Console, err: Console) -> int:
    config = _config(args, verify=not args.no_verify)
    expected = planfile.load_plan(args.plan_file) if args.plan_file else None
    interrupt = anyio.Event()
    result: engine.RunResult | None = None
    in_write_phase = False
    recorded = 0

    class _Observer(ProgressDisplay):
        def phase(self, name: str, total: int) -> None:
            nonlocal in_write_phase
            in_write_phase = in_write_phase or name == "apply"
            super().phase(name, total)

        def outcome(self, outcome: Outcome) -> None:
            nonlocal recorded
            recorded += 1
            super().outcome(outcome)

    with _connection(args) as conn:
        async with UnipileClient(
            conn.base_url, api_key=conn.api_key, concurrency=config.concurrency
        ) as client:
            with _Observer(err) as progress:
                async with anyio.create_task_group() as tg:

                    async def watch_signals() -> None:
                        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                            async for signum in signals:
                                if interrupt.is_set() or not in_write_phase:
                                    tg.cancel_scope.cancel()  # nothing written yet, or asked twice
                                    return
                                err.print(
                                    f"{signal.Signals(signum).name}: stopping; requests in flight may "
                                    "finish, then the ledger is closed (again to stop at once)"
                                )
                                interrupt.set()

                    tg.start_soon(watch_signals)
                    result = await engine.apply_job(
                        job,
                        client,
                        ledger=args.ledger,
                        config=config,
                        resume=args.resume,
                        observer=progress,
                        interrupt=interrupt,
                        expected=expected,
                        confirm=_confirmer(args, out, progress),
                    )
                    tg.cancel_scope.cancel()
            if result is None:
                if in_write_phase:  # the run has its `run` record: the ledger knows it
                    err.print(
                        f"stopped at once: {_count(recorded, 'operation')} recorded in "
                        f"{args.ledger}; run the same command with --resume to continue",
                        markup=False,
                        highlight=False,
                    )
                else:
                    err.print("interrupted before anything was written; nothing to resume")
                return 130
            render_outcomes(progress, out)
    counts = ", ".join(f"{n} {status}" for status, n in result.counts.items())
    out.print(f"Run {result.run_id}: {counts}. Ledger: {result.ledger}")
    if result.interrupted:
        out.print("Interrupted: run the same command with --resume to continue.")
    return result.exit_code


async def _dry_run(args: argparse.Namespace, job: Job, out: Console, err: Console) -> int:
    plan, seconds = await _plan(args, job, err)
    out.print(render_plan(plan, estimated_seconds=seconds), markup=False, highlight=False)
    out.print("Dry run: nothing was sent.")
    _refuse_removals(args, plan)
    return 0


def _cmd_apply(args: argparse.Namespace, out: Console, err: Console) -> int:
    job = _load(args.jobs)
    with _owner_rule_located(job):
        if args.dry_run:
            return anyio.run(_dry_run, args, job, out, err)
        return anyio.run(_apply, args, job, out, err)


def _cmd_report(args: argparse.Namespace, out: Console) -> int:
    if not os.path.exists(args.ledger):
        raise UsageError(f"{args.ledger}: no such ledger")
    if args.format == "csv":
        sys.stdout.write(report.render_csv(args.ledger))
        return 0
    summary = report.summarize(args.ledger)
    if args.format == "json":
        sys.stdout.write(report.render_json(summary) + "\n")
    else:
        # Never narrower than the report's tables need: a pipe (cron mail, CI log) is 80 wide.
        out.print(
            report.render_text(summary, width=max(out.width, 130)), markup=False, highlight=False
        )
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


def _dispatch(args: argparse.Namespace, out: Console, err: Console) -> int:
    if args.command == "validate":
        return _cmd_validate(args, out)
    if args.command == "plan":
        return _cmd_plan(args, out, err)
    if args.command == "apply":
        return _cmd_apply(args, out, err)
    if args.command == "report":
        return _cmd_report(args, out)
    if args.command == "sandbox":
        return _cmd_sandbox(args)
    raise UsageError(f"unknown command {args.command!r}")


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM ends validate/plan/report as Ctrl-C does: exit 130


def main(argv: Sequence[str] | None = None) -> NoReturn:
    out = Console(soft_wrap=True)
    err = Console(stderr=True, soft_wrap=True)
    # `apply` replaces this with its own graceful handling while it runs.
    previous = signal.signal(signal.SIGTERM, _terminated) if _in_main_thread() else None
    try:
        args = build_parser().parse_args(argv)
        with plain_errors():
            code = _dispatch(args, out, err)
    except JobFileErrors as errors:
        for error in errors.errors:
            err.print(str(error), markup=False, highlight=False)
        code = 1
    except AuthError as error:
        err.print(f"error: the API key was refused: {error}", markup=False, highlight=False)
        code = error.exit_code
    except BulkGroupsError as error:  # usage, refused runs, LedgerUnwritable (4), ...
        err.print(f"error: {error}", markup=False, highlight=False)
        code = error.exit_code
    except KeyboardInterrupt:
        code = 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    sys.exit(code)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
