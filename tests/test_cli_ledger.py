"""`bulkgroups apply` and its files: paths that are not regular files are refused at once (exit 1,
nothing sent), a ledger that cannot be written stops the run (exit 4, nothing sent after it), and
a second Ctrl-C tells how much the ledger holds."""

from __future__ import annotations

import os
import resource
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from bulkgroups.model import parse_rate
from bulkgroups.simulator import Simulator

from helpers.cli import Cli, connect
from helpers.engine import write_job
from helpers.processes import (
    apply_command,
    desired_state_problems,
    duplicated_writes,
    finish,
    key_file,
    ledger_lines,
    mixed_job,
    requests_sent,
    run,
    signal_when,
    start,
    wait_until,
    write_count,
    write_key,
)
from helpers.simulator import SimFactory


def one_chat_job(tmp_path: Path, adds: int = 1) -> Path:
    users = [f"ACoAN{i:04d}" for i in range(adds)]
    return write_job(tmp_path / "job.yaml", [{"chat": "c1", "account": "acc_f", "add": users}])


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


# ------------------------------------------------------------------------ only regular files


def not_regular(tmp_path: Path, fifo: Path) -> list[Path]:
    (tmp_path / "dir").mkdir(exist_ok=True)
    link = tmp_path / "link-to-dir"
    if not link.exists():
        link.symlink_to(tmp_path / "dir")
    return [fifo, Path("/dev/zero"), Path("/dev/full"), tmp_path / "dir", link]


def test_a_ledger_that_is_not_a_regular_file_exits_1_at_once_and_sends_nothing(
    cli: Cli, sim: Simulator, tmp_path: Path, fifo: Path
) -> None:
    job = one_chat_job(tmp_path)
    # A directory (or a link to one) is a ledger directory (`--ledger DIR/`): test_ledger_dir.py.
    for ledger in [p for p in not_regular(tmp_path, fifo) if not p.is_dir()]:
        result = cli.run("apply", job, "--ledger", ledger, *connect(sim, tmp_path))
        assert result.code == 1, (ledger, result.err)
        assert str(ledger) in result.err and "regular file" in result.err
        assert len(result.err.strip().splitlines()) == 1
    assert sim.requests() == ()


def test_a_lock_file_that_is_not_a_regular_file_exits_1_naming_it(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.jsonl"
    os.mkfifo(tmp_path / "ledger.jsonl.lock")
    result = cli.run("apply", one_chat_job(tmp_path), "--ledger", ledger, *connect(sim, tmp_path))
    assert result.code == 1
    assert "ledger.jsonl.lock" in result.err and "not a regular file" in result.err
    assert sim.requests() == ()


def test_report_of_something_that_is_not_a_regular_file_exits_1_at_once(
    cli: Cli, tmp_path: Path, fifo: Path
) -> None:
    for ledger in not_regular(tmp_path, fifo):
        result = cli.run("report", ledger)
        assert result.code == 1, (ledger, result.err)
        assert str(ledger) in result.err


def test_plan_files_that_are_not_regular_files_exit_1_before_anything_is_sent(
    cli: Cli, sim: Simulator, tmp_path: Path, fifo: Path
) -> None:
    job = one_chat_job(tmp_path)
    for path in not_regular(tmp_path, fifo):
        saved = cli.run("plan", job, "--out", path, *connect(sim, tmp_path))
        assert saved.code == 1, (path, saved.err)
        assert str(path) in saved.err
        applied = cli.run("apply", job, "--plan", path, *connect(sim, tmp_path))
        assert applied.code == 1, (path, applied.err)
        assert str(path) in applied.err
    assert sim.requests() == ()


# ------------------------------------------------------------------ a ledger that fails: exit 4


def test_a_ledger_truncated_by_another_process_mid_run_exits_4_and_nothing_more_is_sent(
    sim_factory: SimFactory, tmp_path: Path
) -> None:
    sim = sim_factory(rate=parse_rate("50/s"), write_rate=parse_rate("2/s"))
    ledger = tmp_path / "ledger.jsonl"
    command = apply_command(
        sim,
        one_chat_job(tmp_path, adds=6),
        ledger,
        key_file(sim, tmp_path),
        rate="50/s",
        write_rate="2/s",
    )
    process = start(command, tmp_path)
    assert wait_until(lambda: write_count(sim) >= 2, process)
    time.sleep(0.1)  # the 2nd write's outcome is recorded; the 3rd waits ~0.5 s for its turn
    sent = write_count(sim)
    os.truncate(ledger, 0)

    ended = finish(process)

    assert ended.code == 4, ended
    assert write_count(sim) == sent  # the next intent met the truncated file: never sent
    (line,) = [n for n in ended.stderr.splitlines() if not n.startswith("progress: ")]
    assert str(ledger) in line and "truncated by another process" in line
    assert "--resume" in line


def _limited_file_size(limit: int) -> None:
    # As a full disk does, the kernel refuses the ledger's write past this size (EFBIG); the
    # signal it would also send is ignored, as a long-running service would.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_a_ledger_the_disk_refuses_mid_run_exits_4_and_resume_completes_the_job(
    sim_factory: SimFactory, tmp_path: Path
) -> None:
    """No tmpfs (mounting one needs privileges CI may lack): a file-size limit gives the same
    kernel write error, in a real process, without them."""
    sim = sim_factory(rate=parse_rate("100/s"), write_rate=parse_rate("100/s"))
    job = mixed_job(tmp_path / "job.yaml", accounts=2, chats=3, tag="full")
    ledger = tmp_path / "ledger.jsonl"
    command = apply_command(
        sim, job.path, ledger, key_file(sim, tmp_path), rate="100/s", write_rate="100/s"
    )
    process = start(command, tmp_path, preexec_fn=lambda: _limited_file_size(3000))
    ended = finish(process)

    assert ended.code == 4, ended
    (line,) = [n for n in ended.stderr.splitlines() if not n.startswith("progress: ")]
    assert str(ledger) in line and "File too large" in line and "--resume" in line
    records, _torn = ledger_lines(ledger)
    intents = Counter(write_key(r) for r in records if r["type"] == "intent")
    assert requests_sent(sim) - intents == Counter()  # every request sent had its intent on disk

    resumed = run([*command, "--resume"], tmp_path)
    assert resumed.code == 0, resumed
    assert desired_state_problems(sim, job) == []
    assert duplicated_writes(sim) == {}


# ----------------------------------------------------------------------------- Ctrl-C twice


def test_a_second_ctrl_c_after_writes_says_how_many_operations_are_recorded(
    sim_factory: SimFactory, tmp_path: Path
) -> None:
    sim = sim_factory(rate=parse_rate("50/s"), write_rate=parse_rate("2/s"))
    # Every answer takes 2 s: the first Ctrl-C finds the second write in flight and waits for it
    # (a run with nothing in flight ends at once), so the second Ctrl-C comes during that wait.
    sim.configure_account("acc_f", latency=2.0)
    ledger = tmp_path / "ledger.jsonl"
    command = apply_command(
        sim,
        one_chat_job(tmp_path, adds=8),
        ledger,
        key_file(sim, tmp_path),
        rate="50/s",
        write_rate="2/s",
    )
    process = start(command, tmp_path)
    assert signal_when(process, lambda: write_count(sim) >= 2, signal.SIGINT), finish(process)
    time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    ended = finish(process)

    assert ended.code == 130, ended
    assert "nothing to resume" not in ended.stderr
    records, _ = ledger_lines(ledger)
    ops = sum(1 for r in records if r["type"] == "op")
    assert ops >= 1  # the write in flight was cut: its intent is there for the next run
    assert sum(1 for r in records if r["type"] == "intent") > ops
    noun = "operation" if ops == 1 else "operations"
    assert f"{ops} {noun} recorded in {ledger}" in ended.stderr
    assert "--resume" in ended.stderr
