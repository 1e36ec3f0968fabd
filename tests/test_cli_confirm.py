"""At a terminal, apply shows the plan and asks before removing anyone (a real pseudo-terminal)."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bulkgroups.simulator import initial_members, owner_id

from helpers.engine import ledger_records, write_job

QUESTION = b"Apply it? [y/N]"


def _job(tmp_path: Path) -> Path:
    members = [m for m in initial_members("acc_tty", "room") if m != owner_id("acc_tty")]
    return write_job(
        tmp_path / "job.yaml", [{"chat": "room", "account": "acc_tty", "remove": members[:1]}]
    )


class Terminal:
    """`bulkgroups apply` with a pseudo-terminal as its stdin and stdout."""

    def __init__(self, tmp_path: Path) -> None:
        self.ledger = tmp_path / "ledger.jsonl"
        controller, terminal = pty.openpty()
        self.controller = controller
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bulkgroups",
                "apply",
                str(_job(tmp_path)),
                "--sandbox",
                "--ledger",
                str(self.ledger),
            ],
            stdin=terminal,
            stdout=terminal,
            stderr=subprocess.DEVNULL,
            close_fds=True,
        )
        os.close(terminal)
        self.seen = b""

    def wait_for(self, text: bytes, seconds: float = 30.0) -> None:
        deadline = time.monotonic() + seconds
        while text not in self.seen:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"never saw {text!r}; saw {self.seen[-500:]!r}"
            ready, _, _ = select.select([self.controller], [], [], remaining)
            if ready:
                try:
                    self.seen += os.read(self.controller, 4096)
                except OSError:  # the process closed the terminal
                    break

    def type(self, text: bytes) -> None:
        os.write(self.controller, text)

    def exit_code(self) -> int:
        try:
            return self.process.wait(timeout=30)
        finally:
            os.close(self.controller)


@pytest.mark.parametrize(("answer", "code"), [(b"n\n", 1), (b"y\n", 0)])
def test_the_person_sees_the_plan_and_decides(tmp_path: Path, answer: bytes, code: int) -> None:
    term = Terminal(tmp_path)
    term.wait_for(QUESTION)
    assert b"- ACoA" in term.seen  # the removal is shown before the question
    term.type(answer)
    assert term.exit_code() == code
    ops = (
        [r for r in ledger_records(term.ledger) if r["type"] == "op"]
        if term.ledger.exists()
        else []
    )
    assert [r["status"] for r in ops] == (["applied"] if code == 0 else [])


def test_ctrl_c_at_the_question_stops_at_once(tmp_path: Path) -> None:
    term = Terminal(tmp_path)
    term.wait_for(QUESTION)
    term.process.send_signal(signal.SIGINT)
    assert term.exit_code() == 130
    assert not term.ledger.exists() or not [
        r for r in ledger_records(term.ledger) if r["type"] == "op"
    ]


def test_a_run_without_any_standard_input_proceeds_like_a_script(tmp_path: Path) -> None:
    """cron and some CI runners start commands with stdin closed altogether."""
    ledger = tmp_path / "ledger.jsonl"
    command = [
        sys.executable,
        "-m",
        "bulkgroups",
        "apply",
        str(_job(tmp_path)),
        "--sandbox",
        "--ledger",
        str(ledger),
    ]
    done = subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: os.close(0),
    )
    assert done.returncode == 0, done.stderr
    assert [r["status"] for r in ledger_records(ledger) if r["type"] == "op"] == ["applied"]
