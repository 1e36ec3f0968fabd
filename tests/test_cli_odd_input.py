"""Odd or hostile input to the command (an edited plan file, huge flags, paths that cannot be
written, SIGTERM) ends in a clear error (exit 1, nothing sent) or exit 130, never a traceback or a
write the job never asked for."""

from __future__ import annotations

import http.server
import json
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bulkgroups.model import parse_rate
from bulkgroups.simulator import Simulator, initial_members, owner_id

from helpers.cli import Cli, connect, writes
from helpers.engine import write_job
from helpers.processes import apply_command, finish, key_file, mixed_job, signal_when, start
from helpers.servers import served
from helpers.simulator import SimFactory


def team_job(tmp_path: Path) -> Path:
    current = initial_members("acc_1", "team")
    return write_job(
        tmp_path / "job.yaml",
        [
            {"chat": "team", "account": "acc_1", "add": ["ACoAA0499"], "remove": [current[1]]},
            {"chat": "crew", "account": "acc_2", "rename": "The Crew"},
        ],
    )


# --------------------------------------------------------------------- apply --plan, tampered


def _tamper(saved: Path, extra: dict[str, Any]) -> None:
    data = json.loads(saved.read_text(encoding="utf-8"))
    data["chats"][-1]["operations"].append(extra)
    saved.write_text(json.dumps(data), encoding="utf-8")


@pytest.mark.parametrize(
    "extra",
    [
        {"action": "remove", "user": owner_id("acc_2"), "name": None},  # the owner rule
        {"action": "remove", "user": "ACoAA0001", "name": None},  # not in the job
        {"action": "explode", "user": None, "name": None},  # not an action
        {"action": "add", "user": None, "name": None},  # an add of nobody
        {"action": "add", "user": ["ACoAA0001"], "name": None},  # not an id
    ],
    ids=["owner", "not-in-job", "bad-action", "null-user", "list-user"],
)
def test_apply_plan_refuses_a_plan_file_whose_operations_were_edited(
    cli: Cli, sim: Simulator, tmp_path: Path, extra: dict[str, Any]
) -> None:
    job, saved, ledger = team_job(tmp_path), tmp_path / "PLAN.json", tmp_path / "ledger.jsonl"
    flags = connect(sim, tmp_path)
    assert cli.run("plan", job, "--out", saved, *flags).code == 0
    _tamper(saved, {"op_id": "x", **extra})

    run = cli.run("apply", job, "--plan", saved, "--ledger", ledger, *flags)
    assert run.code == 1, run.err
    assert "Traceback" not in run.err
    assert str(saved) in run.err or "nothing was sent" in run.err
    assert writes(sim) == []


# ------------------------------------------------------------------------ huge or odd flags


def test_a_huge_concurrency_does_not_start_a_task_per_unit_of_it(
    sim: Simulator, tmp_path: Path
) -> None:
    # One task per unit of --concurrency exhausted memory (OOM-killed at 10**12); only as many
    # workers as there is work. A subprocess under a 2 GB address-space cap keeps the machine safe.
    flags = [*connect(sim, tmp_path), "--concurrency", str(10**9)]
    bulkgroups = Path(sys.executable).with_name("bulkgroups")
    limit = 2 * 1024**3

    def cap_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    done = subprocess.run(
        [str(bulkgroups), "plan", str(team_job(tmp_path)), *flags],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=cap_memory,
        env={k: v for k, v in os.environ.items() if not k.startswith("UNIPILE_")},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Plan:" in done.stdout


@pytest.mark.parametrize("where", ["flag", "job"])
def test_a_rate_too_large_to_track_is_a_clear_error(
    cli: Cli, sim: Simulator, tmp_path: Path, where: str
) -> None:
    huge = "99999999999999999999999/s"
    job = team_job(tmp_path)
    flags = connect(sim, tmp_path)
    if where == "flag":
        flags += ["--rate", huge]
    else:
        text = job.read_text(encoding="utf-8")
        job.write_text(text + f"accounts:\n  acc_1: {{rate: {huge}}}\n", encoding="utf-8")
    run = cli.run("plan", job, *flags)
    assert run.code == 1
    assert "Traceback" not in run.err and "rate" in run.err
    assert sim.requests() == ()


@pytest.mark.parametrize("target", ["missing-dir/PLAN.json", "."])
def test_plan_out_to_a_path_that_cannot_be_written_is_a_clear_error(
    cli: Cli, sim: Simulator, tmp_path: Path, target: str
) -> None:
    out = tmp_path / target
    run = cli.run("plan", team_job(tmp_path), "--out", out, *connect(sim, tmp_path))
    assert run.code == 1
    assert "Traceback" not in run.err
    assert str(out) in run.err
    assert not (tmp_path.parent / (tmp_path.name + ".tmp")).exists()
    assert sim.requests() == ()  # said before reading every chat, not after


@pytest.mark.parametrize("ledger", ["a-file/", "missing-dir/ledger.jsonl", "missing-dir/ledgers/"])
def test_apply_to_a_ledger_that_cannot_be_used_is_a_clear_error_and_sends_nothing(
    cli: Cli, sim: Simulator, tmp_path: Path, ledger: str
) -> None:
    (tmp_path / "a-file").write_text("", encoding="utf-8")
    path = f"{tmp_path}/{ledger}"  # as typed: a trailing / asks for a ledger directory
    run = cli.run("apply", team_job(tmp_path), "--ledger", path, *connect(sim, tmp_path))
    assert run.code == 1
    assert "Traceback" not in run.err
    assert path.rstrip("/") in run.err
    assert writes(sim) == []


def test_report_of_a_directory_without_ledgers_is_a_clear_error(cli: Cli, tmp_path: Path) -> None:
    run = cli.run("report", tmp_path)
    assert run.code == 1
    assert "Traceback" not in run.err
    assert str(tmp_path) in run.err


@pytest.mark.parametrize("port", ["99999", "-1"])
def test_sandbox_port_out_of_range_is_a_usage_error(cli: Cli, port: str) -> None:
    run = cli.run("sandbox", f"--port={port}")
    assert run.code == 1
    assert "--port" in run.err


# ------------------------------------------------------------------------------- signals


def test_plan_stopped_by_sigterm_exits_130_like_ctrl_c(
    sim_factory: SimFactory, tmp_path: Path
) -> None:
    # The contract's 130 is for SIGINT *or* SIGTERM; plan died of SIGTERM's default (-15 / 143).
    sim = sim_factory(rate=parse_rate("2/s"))
    job = mixed_job(tmp_path / "job.yaml", accounts=1, chats=5, tag="term")
    command = apply_command(
        sim,
        job.path,
        tmp_path / "ledger.jsonl",
        key_file(sim, tmp_path),
        rate="2/s",
        write_rate="2/s",
    )
    command[command.index("apply")] = "plan"
    for flag in ("--ledger", "--yes"):
        at = command.index(flag)
        del command[at : at + (2 if flag == "--ledger" else 1)]
    reads = lambda: sum(1 for r in sim.requests() if r.kind == "read")  # noqa: E731

    process = start(command, tmp_path)
    assert signal_when(process, lambda: reads() >= 2, signal.SIGTERM), finish(process)
    stopped = finish(process)
    assert stopped.code == 130, stopped
    assert "Traceback" not in stopped.stderr


# ------------------------------------------------------------------- what a server says back


class _Refusing(http.server.BaseHTTPRequestHandler):
    """Answers every request 401 with a detail that would redraw the terminal if printed raw."""

    def do_GET(self) -> None:
        body = json.dumps(
            {
                "status": 401,
                "type": "errors/invalid_credentials",
                "title": "Unauthorized",
                "detail": "bad key\n\x1b[2J\x1b[Hall good: 0 removals\u202e",
            }
        ).encode()
        try:
            self.send_response(401)
            self.send_header("Content-Type", "application/problem+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client hung up: the run stopped at the first refusal
            pass

    def log_message(self, format: str, *args: object) -> None:
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client hanging up is no error of the test's: nothing on the captured stderr


@pytest.fixture
def refusing_server() -> Iterator[str]:
    with served(_QuietServer(("127.0.0.1", 0), _Refusing)) as url:
        yield url


def test_an_error_the_server_words_is_one_line_without_terminal_controls(
    cli: Cli, tmp_path: Path, refusing_server: str
) -> None:
    run = cli.run("plan", team_job(tmp_path), "--base-url", refusing_server, "--api-key", "k" * 20)
    assert run.code == 1
    assert "\x1b" not in run.err and "\u202e" not in run.err
    others = [line for line in run.err.splitlines() if not line.startswith("progress: ")]
    assert len(others) == 1, run.err
    (line,) = others
    assert line.startswith("error: the API key was refused: ")
    assert "bad key\\n\\x1b[2J\\x1b[Hall good" in line
