"""`--chats-per-account N`: how many chats of one account are read or written at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulkgroups.simulator import Simulator

from helpers.cli import Cli, account_scoped, connect
from helpers.engine import write_job


def _chat_order(sim: Simulator) -> list[str]:
    """The chat of each account-scoped read, in arrival order."""
    return [r.chat or "?" for r in account_scoped(sim) if r.method == "GET"]


def _runs(order: list[str]) -> int:
    """How many times the chat changes between consecutive reads, plus one."""
    return sum(1 for i, chat in enumerate(order) if i == 0 or order[i - 1] != chat)


@pytest.mark.parametrize("command", ["plan", "export"])
def test_one_chat_at_a_time_reads_each_chat_whole_before_the_next(
    cli: Cli, sim: Simulator, tmp_path: Path, command: str
) -> None:
    chats = [f"room{n}" for n in range(6)]
    job = write_job(
        tmp_path / "job.yaml",
        [{"chat": c, "account": "acc_1", "rename": c.upper()} for c in chats],
    )
    flags = [*connect(sim, tmp_path)[:4], "--rate", "50/s", "--chats-per-account", "1"]
    if command == "plan":
        run = cli.run("plan", job, *flags, "--write-rate", "50/s")
    else:
        run = cli.run(
            "export", "--account", "acc_1", *(f for c in chats for f in ("--chat", c)), *flags
        )
    assert run.code == 0, run.err
    order = _chat_order(sim)
    assert set(order) == set(chats)
    assert _runs(order) == len(chats)  # each chat's reads side by side, never interleaved


def test_chats_per_account_must_be_a_positive_whole_number(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    job = write_job(tmp_path / "job.yaml", [{"chat": "c", "account": "acc_1", "rename": "C"}])
    run = cli.run("plan", job, *connect(sim, tmp_path), "--chats-per-account", "0")
    assert run.code == 1
    assert "--chats-per-account" in run.err
    assert sim.requests() == ()
