"""Progress while `apply` works: it advances per operation as outcomes are recorded, with its rate
and an ETA; at a terminal as bars drawn in place (and drawn again below a confirmation, never over
it), elsewhere as a plain line every few seconds and one at the end; on --resume its total is
what is left."""

from __future__ import annotations

import io
import logging
import re
import signal
from pathlib import Path

import anyio
import orjson
import pytest
from rich.console import Console

from bulkgroups.model import Operation, Outcome
from bulkgroups.progress import PROGRESS_LOGGER, ProgressDisplay
from bulkgroups.simulator import Simulator, initial_members, owner_id

from helpers.cli import Cli, connect
from helpers.engine import op_records, write_job
from helpers.terminal import Screen, Terminal

ACCOUNT = "acc_progress"
BAR = re.compile(r"^apply\s.*?(\d+)/(\d+) ops\s+\d+ %(.*)$")
LINE = re.compile(r"(\d+)/(\d+) operations \((\d+) %\)")


def newcomers(count: int) -> list[str]:
    members = set(initial_members(ACCOUNT, "room"))
    return [u for u in (f"ACoAA{n:04d}" for n in range(9000, 9100)) if u not in members][:count]


def job_file(
    tmp_path: Path, *, adds: int, removes: int = 0, daily_limit: int | None = None
) -> Path:
    current = [m for m in initial_members(ACCOUNT, "room") if m != owner_id(ACCOUNT)]
    chat = {"chat": "room", "account": ACCOUNT, "add": newcomers(adds)}
    if removes:
        chat["remove"] = current[:removes]
    accounts = {ACCOUNT: {"daily_limit": daily_limit}} if daily_limit is not None else None
    return write_job(tmp_path / "job.yaml", [chat], accounts)


def bar_frames(terminal: Terminal) -> list[tuple[int, int, str]]:
    """Each apply bar drawn: (done, total, what follows the percentage), in order."""
    frames = []
    for piece in re.split(r"[\r\n]", terminal.text()):
        match = BAR.match(piece.strip())
        if match:
            frames.append((int(match.group(1)), int(match.group(2)), match.group(3)))
    return frames


# ------------------------------------------------------------------------------ at a terminal


def test_at_a_terminal_the_bar_advances_per_operation_with_a_rate_and_an_eta(
    tmp_path: Path,
) -> None:
    adds = 8
    terminal = Terminal(
        [
            "apply",
            job_file(tmp_path, adds=adds),
            "--sandbox",
            "--yes",
            "--write-rate",
            "1/0.25s",  # evenly spaced (4/s would let 4 go at once)
            "--ledger",
            tmp_path / "ledger.jsonl",
        ],
        tmp_path,
    )
    assert terminal.finish() == 0, terminal.text()[-2000:]

    frames = bar_frames(terminal)
    assert frames, terminal.text()[-2000:]
    assert {total for _, total, _ in frames} == {adds}
    done = [d for d, _, _ in frames]
    assert done == sorted(done)  # never backwards
    assert done[-1] == adds
    assert len({d for d in done if 0 < d < adds}) >= 3  # operation by operation, not all at once
    under_way = [rest for d, _, rest in frames if 0 < d < adds]
    assert any(re.search(r"\d+(\.\d)?/(s|min)", rest) for rest in under_way), under_way
    assert any(re.search(r"(about \S+|less than 1s) left", rest) for rest in under_way), under_way


def test_the_confirmation_stays_readable_when_the_bars_come_back(tmp_path: Path) -> None:
    """The bars are taken off for the plan and the question, and drawn again below the answer:
    rich's display restarted as it was would have moved up over its last height and erased them."""
    terminal = Terminal(
        [
            "apply",
            job_file(tmp_path, adds=4, removes=1),
            "--sandbox",
            "--write-rate",
            "1/0.25s",
            "--ledger",
            tmp_path / "ledger.jsonl",
        ],
        tmp_path,
    )
    terminal.wait_for(b"Apply it? [y/N]")
    terminal.type(b"y\n")
    assert terminal.finish() == 0, terminal.text()[-2000:]

    screen = Screen(terminal.seen).text()
    question = [n for n, line in enumerate(screen) if "Apply it? [y/N] y" in line]
    assert question, "\n".join(screen)
    assert any(line.lstrip().startswith("- ACoA") for line in screen[: question[0]])
    # Below the answer: the bars, the apply bar finished; above it, the plan, untouched.
    below = screen[question[0] + 1 :]
    assert any(BAR.match(line) and "5/5 ops" in line for line in below), "\n".join(screen)


def asked_to_confirm(tmp_path: Path) -> Terminal:
    """`apply` at a terminal, at its question before removing someone."""
    terminal = Terminal(
        [
            "apply",
            job_file(tmp_path, adds=1, removes=1),
            "--sandbox",
            "--ledger",
            tmp_path / "ledger.jsonl",
        ],
        tmp_path,
    )
    terminal.wait_for(b"Apply it? [y/N]")
    return terminal


def test_a_declined_confirmation_leaves_the_answer_and_the_refusal_without_bars(
    tmp_path: Path,
) -> None:
    """Nothing more is done after a "no": bars drawn again below it would only push the refusal
    down and show phases that end there."""
    terminal = asked_to_confirm(tmp_path)
    terminal.type(b"n\n")
    assert terminal.finish() == 1, terminal.text()[-2000:]

    screen = [line for line in Screen(terminal.seen).text() if line]
    question = next(n for n, line in enumerate(screen) if "Apply it? [y/N] n" in line)
    assert screen[question + 1 :] == ["error: not confirmed; nothing was sent"], "\n".join(screen)


def test_ctrl_c_at_the_confirmation_says_so_on_a_line_of_its_own(tmp_path: Path) -> None:
    terminal = asked_to_confirm(tmp_path)
    terminal.process.send_signal(signal.SIGINT)
    assert terminal.finish() == 130, terminal.text()[-2000:]

    screen = [line for line in Screen(terminal.seen).text() if line]
    question = next(n for n, line in enumerate(screen) if "Apply it? [y/N]" in line)
    assert screen[question].endswith("Apply it? [y/N]"), "\n".join(screen)
    assert screen[question + 1 :] == [
        "interrupted before anything was written; nothing to resume"
    ], "\n".join(screen)


# ------------------------------------------------------------------------- without a terminal


def test_without_a_terminal_a_plain_line_every_interval_and_one_at_the_end(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    adds = 8
    run = cli.run(
        "apply",
        job_file(tmp_path, adds=adds),
        "--ledger",
        tmp_path / "ledger.jsonl",
        *connect(sim, tmp_path),
        "--write-rate",
        "1/0.25s",
        "--progress-interval",
        "0.3s",
    )
    assert run.code == 0, run.err
    assert "\x1b" not in run.err and "\r" not in run.err  # no control characters in a log
    lines = run.err.splitlines()
    assert all(line.startswith("progress: ") for line in lines), lines
    applying = [m for m in map(LINE.search, lines) if m]
    done = [int(m.group(1)) for m in applying]
    assert done == sorted(done)
    assert len(applying) >= 3, lines
    under_way = [line for line in lines if LINE.search(line) and "left" in line]
    assert under_way and all(re.search(r", \d+\.\d/s, ", line) for line in under_way), lines
    assert re.fullmatch(rf"progress: {adds}/{adds} operations \(100 %\) in \S+", lines[-1])
    assert "Run " in run.out and "Outcomes" in run.out  # the result as before, on stdout


def test_on_resume_the_total_is_what_is_left(cli: Cli, sim: Simulator, tmp_path: Path) -> None:
    """A daily limit of 2 lets one chat's 2 adds through and defers the other's: the resumed run
    has those 2 operations to record, not the 4 of the job."""
    first_two, last_two = newcomers(4)[:2], newcomers(4)[2:]
    job = write_job(
        tmp_path / "job.yaml",
        [
            {"chat": "room", "account": ACCOUNT, "add": first_two},
            {"chat": "hall", "account": ACCOUNT, "add": last_two},
        ],
        {ACCOUNT: {"daily_limit": 2}},
    )
    ledger = tmp_path / "ledger.jsonl"
    first = cli.run("apply", job, "--ledger", ledger, *connect(sim, tmp_path))
    assert first.code == 3, first.err
    assert first.err.splitlines()[-1].startswith("progress: 4/4 operations (100 %)")

    resumed = cli.run("apply", job, "--ledger", ledger, "--resume", *connect(sim, tmp_path))
    assert resumed.code == 3, resumed.err
    assert len(op_records(ledger)) == 4 + 2
    assert resumed.err.splitlines()[-1].startswith("progress: 2/2 operations (100 %)")


def test_json_log_lines_carry_the_progress_figures(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    run = cli.run(
        "apply",
        job_file(tmp_path, adds=3),
        "--ledger",
        tmp_path / "ledger.jsonl",
        *connect(sim, tmp_path),
        "--log-format",
        "json",
    )
    assert run.code == 0, run.err
    (last,) = [orjson.loads(line) for line in run.err.splitlines()]
    assert last["logger"] == "bulkgroups.progress" and last["final"] is True
    assert last["apply"] == {"done": 3, "total": 3}
    assert last["message"].startswith("progress: 3/3 operations (100 %)")


def test_quiet_shows_no_progress(cli: Cli, sim: Simulator, tmp_path: Path) -> None:
    run = cli.run(
        "apply", job_file(tmp_path, adds=2), "--ledger", tmp_path / "l.jsonl", "-q",
        *connect(sim, tmp_path),
    )  # fmt: skip
    assert run.code == 0, run.err
    assert run.err == ""


async def test_once_every_phase_is_done_lines_stop_until_the_last(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Between the last outcome and the end of the command (verification, closing the ledger)
    # nothing moves: a line every interval saying `3/3 (100 %)` again is noise before the last.
    now = [0.0]
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=False)
    display = ProgressDisplay(console, mode="lines", interval=0.01, clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger=PROGRESS_LOGGER)
    with display:
        display.phase("apply", 3)
        async with anyio.create_task_group() as tg:
            tg.start_soon(display.run_clock)
            for _ in range(3):
                now[0] += 5.0  # the fake clock: a line is due at every tick
                await anyio.sleep(0.05)
            under_way = len(caplog.records)
            for _ in range(3):
                display.outcome(Outcome(Operation(ACCOUNT, "room", "add", user="u"), "applied"))
            for _ in range(3):
                now[0] += 5.0
                await anyio.sleep(0.05)
            tg.cancel_scope.cancel()
    messages = [r.getMessage() for r in caplog.records]
    assert under_way >= 1, messages  # lines while the work went on
    assert messages[under_way:] == ["progress: 3/3 operations (100 %) in 30s"], messages


async def test_once_stopping_the_progress_says_so_instead_of_a_time_left(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # After Ctrl-C the rest of the operations will not be done by this run: "about 2m left"
    # would promise what will not happen while requests in flight finish.
    now = [0.0]
    display = ProgressDisplay(
        Console(file=io.StringIO(), force_terminal=False),
        mode="lines",
        interval=0.01,
        clock=lambda: now[0],
    )
    caplog.set_level(logging.INFO, logger=PROGRESS_LOGGER)
    display.phase("apply", 4)
    display.outcome(Outcome(Operation(ACCOUNT, "room", "add", user="u1"), "applied"))

    async def ticks() -> list[str]:
        caplog.clear()
        for _ in range(3):
            now[0] += 10.0  # a line is due at every tick
            await anyio.sleep(0.05)
        return [r.getMessage() for r in caplog.records]

    async with anyio.create_task_group() as tg:
        tg.start_soon(display.run_clock)
        before = await ticks()
        display.stopping()
        after = await ticks()
        tg.cancel_scope.cancel()
    assert before and all(re.search(r"/min(, about \S+ left)?$", line) for line in before), before
    assert after and set(after) == {
        "progress: 1/4 operations (25 %), stopping: requests in flight finish"
    }, after
