"""`plan` and `apply` as a person runs them: how much of the plan is shown (`--show-unchanged`,
`--summary`, `--full`), the event loop (uvloop when installed), the garbage collector's setting
around a plan, and a warning with the duration when the rates make a run longer than a day."""

from __future__ import annotations

import gc
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop

import bulkgroups
from bulkgroups import display, engine
from bulkgroups.simulator import Simulator, initial_members

from helpers.cli import Cli, connect, writes
from helpers.engine import write_job

DEADLINE = 60.0


def three_chats(tmp_path: Path) -> Path:
    """One chat with an add, two already as the job wants them."""
    return write_job(
        tmp_path / "job.yaml",
        [
            {"chat": "team", "account": "acc_1", "add": ["ACoAA0499"]},
            {"chat": "calm", "account": "acc_1", "add": [initial_members("acc_1", "calm")[1]]},
            {
                "chat": "still",
                "account": "acc_2",
                "members": list(initial_members("acc_2", "still")[1:]),
            },
        ],
    )


# -------------------------------------------------------------------------- what is shown


@pytest.mark.parametrize("command", [["plan"], ["apply", "--dry-run"]])
def test_unchanged_chats_are_hidden_unless_asked_for(
    cli: Cli, sim: Simulator, tmp_path: Path, command: list[str]
) -> None:
    job = three_chats(tmp_path)
    hidden = cli.run(*command, job, *connect(sim, tmp_path))
    assert hidden.code == 0, hidden.err
    assert "acc_1 / team" in hidden.out
    assert "calm" not in hidden.out and "still" not in hidden.out
    assert "2 chats without changes not shown (--show-unchanged lists them)." in hidden.out

    shown = cli.run(*command, job, "--show-unchanged", *connect(sim, tmp_path))
    assert shown.code == 0, shown.err
    assert 'acc_1 / calm  "Group calm"' in shown.out and "acc_2 / still" in shown.out
    assert "not shown" not in shown.out


@pytest.mark.parametrize("command", [["plan"], ["apply", "--dry-run"]])
def test_summary_shows_totals_per_account(
    cli: Cli, sim: Simulator, tmp_path: Path, command: list[str]
) -> None:
    run = cli.run(*command, three_chats(tmp_path), "--summary", *connect(sim, tmp_path))
    assert run.code == 0, run.err
    assert "Plan by account" in run.out
    assert "+ ACoAA0499" not in run.out
    assert "Plan: 1 to add, 0 to remove, 0 to rename, 0 to leave in 1 of 3 chats." in run.out
    assert writes(sim) == []


def test_a_plan_beyond_the_automatic_size_is_summarised_unless_full_is_asked(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    cli.monkeypatch.setattr(display, "AUTO_SUMMARY_LINES", 2)
    job = write_job(
        tmp_path / "job.yaml",
        [{"chat": "team", "account": "acc_1", "add": ["ACoAA0497", "ACoAA0498", "ACoAA0499"]}],
    )
    auto = cli.run("plan", job, *connect(sim, tmp_path))
    assert auto.code == 0, auto.err
    assert auto.out.startswith("The plan has 3 operations: only its summary is shown.\n")
    assert "`--full` lists every chat" in auto.out
    assert "+ ACoAA0499" not in auto.out

    full = cli.run("plan", job, "--full", *connect(sim, tmp_path))
    assert full.code == 0, full.err
    assert "  + ACoAA0499" in full.out
    assert "summary" not in full.out


def test_plan_json_is_the_whole_plan_whatever_the_view(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    run = cli.run("plan", three_chats(tmp_path), "--format", "json", *connect(sim, tmp_path))
    assert run.code == 0, run.err
    data: Any = run.json()
    assert [c["chat"] for c in data["chats"]] == ["team", "calm", "still"]


# ------------------------------------------------------------------- garbage collector


def test_plan_raises_the_young_generation_threshold_as_apply_does_and_restores_it(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    seen: list[int] = []
    real = engine.plan_job_online

    async def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.get_threshold()[0])
        return await real(*args, **kwargs)

    cli.monkeypatch.setattr(engine, "plan_job_online", spy)
    before = gc.get_threshold()
    run = cli.run("plan", three_chats(tmp_path), *connect(sim, tmp_path))
    assert run.code == 0, run.err
    assert seen and seen[0] >= 10_000
    assert gc.get_threshold() == before


async def test_the_library_plan_leaves_the_garbage_collector_alone(
    sim: Simulator, tmp_path: Path
) -> None:
    thresholds: list[int] = []

    class Watcher(engine.config.SilentObserver):
        def phase(self, name: str, total: int) -> None:
            thresholds.append(gc.get_threshold()[0])

    config = bulkgroups.EngineConfig(rate=bulkgroups.parse_rate("20/s"))
    job = bulkgroups.load_job(three_chats(tmp_path))
    before = gc.get_threshold()[0]
    async with bulkgroups.UnipileClient(sim.url, api_key=sim.api_key) as client:
        await bulkgroups.plan(job, client, config=config, observer=Watcher())
    assert thresholds and set(thresholds) == {before}


# ------------------------------------------------------------------------------ the loop


def loop_of_a_plan(cli: Cli, sim: Simulator, tmp_path: Path) -> str:
    kinds: list[str] = []
    real = engine.plan_job_online

    async def spy(*args: Any, **kwargs: Any) -> Any:
        import asyncio

        kinds.append(type(asyncio.get_running_loop()).__module__)
        return await real(*args, **kwargs)

    cli.monkeypatch.setattr(engine, "plan_job_online", spy)
    run = cli.run("plan", three_chats(tmp_path), *connect(sim, tmp_path))
    assert run.code == 0, run.err
    (kind,) = kinds
    return kind


def test_the_command_runs_on_uvloop_when_it_is_installed(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    assert loop_of_a_plan(cli, sim, tmp_path) == uvloop.Loop.__module__


def test_without_uvloop_the_command_runs_on_asyncios_own_loop(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    cli.monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop: ImportError
    assert loop_of_a_plan(cli, sim, tmp_path).startswith("asyncio.")


def test_apply_works_without_uvloop(cli: Cli, sim: Simulator, tmp_path: Path) -> None:
    cli.monkeypatch.setitem(sys.modules, "uvloop", None)
    run = cli.run(
        "apply", three_chats(tmp_path), "--ledger", tmp_path / "l.jsonl", *connect(sim, tmp_path)
    )
    assert run.code == 0, run.err
    assert "ACoAA0499" in sim.members("acc_1", "team")


# ---------------------------------------------------------------------- too slow a rate


def test_a_plan_that_takes_more_than_a_day_to_apply_is_a_warning_with_its_duration(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    job = write_job(
        tmp_path / "job.yaml",
        [{"chat": "team", "account": "acc_1", "add": ["ACoAA0497", "ACoAA0498", "ACoAA0499"]}],
    )
    run = cli.run("plan", job, *connect(sim, tmp_path), "--write-rate", "1/d")
    assert run.code == 0, run.err
    assert "At the configured rates, applying it takes about 2d " in run.out
    (warning,) = [line for line in run.err.splitlines() if line.startswith("warning:")]
    assert warning.startswith(
        "warning: at the configured rates, applying this plan takes about 2d "
    )
    assert "more than a day; check --rate, --write-rate" in warning


def test_a_plan_within_a_day_warns_of_nothing(cli: Cli, sim: Simulator, tmp_path: Path) -> None:
    run = cli.run("plan", three_chats(tmp_path), *connect(sim, tmp_path), "--write-rate", "1/h")
    assert run.code == 0, run.err
    assert "warning" not in run.err


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.communicate()


def first_stderr_line(process: subprocess.Popen[bytes]) -> str:
    """The first line the process writes on stderr, read from the pipe within a deadline."""
    assert process.stderr is not None
    fd = process.stderr.fileno()
    received = b""
    deadline = time.monotonic() + DEADLINE
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while b"\n" not in received:
            if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                raise AssertionError(f"nothing on stderr within {DEADLINE} s: {received!r}")
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            received += chunk
    return received.decode().split("\n", 1)[0]


@pytest.mark.parametrize(
    ("command", "rates", "what"),
    [
        (["plan"], ["--rate", "2/d"], "reading the job's chats takes about 2d 0h"),
        (["apply", "--yes"], ["--write-rate", "2/d"], "this run takes about 1d 0h"),
    ],
    ids=["plan", "apply"],
)
def test_a_rate_so_slow_that_the_run_takes_days_is_announced_at_once(
    sim: Simulator,
    tmp_path: Path,
    started: list[subprocess.Popen[bytes]],
    command: list[str],
    rates: list[str],
    what: str,
) -> None:
    """`plan --rate 2/d` sat silently for hours; now it says why before its first wait."""
    job = write_job(
        tmp_path / "job.yaml",
        [
            {"chat": f"c{n}", "account": "acc_1", "add": [f"ACoAA04{90 + n}"]}
            for n in range(3)  # 6 reads, 3 writes
        ],
    )
    flags = [*connect(sim, tmp_path), *rates]  # the later flag wins over connect's rate
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNIPILE_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "bulkgroups", *command, str(job), *flags,
         "--ledger" if command[0] == "apply" else "--format",
         str(tmp_path / "l.jsonl") if command[0] == "apply" else "text"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
    )  # fmt: skip
    started.append(process)
    line = first_stderr_line(process)
    assert line == (
        f"warning: at the configured rates, {what}, more than a day; check --rate, "
        "--write-rate and the job's accounts.<id> settings"
    )
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=DEADLINE)
    assert process.returncode == 130, err
