"""The API key file: read whole but bounded, and anything that is not a key refused with one line
(exit 1, nothing sent), never a traceback, a hang or a process filling memory."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from bulkgroups.files import KEY_FILE_LIMIT
from bulkgroups.simulator import Simulator

from helpers.cli import Cli

ROOT = Path(__file__).resolve().parent.parent
JOB = "version: 1\nchats:\n  - {chat: team, account: acc_1, add: [ACoAA0499]}\n"


def _job(tmp_path: Path) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(JOB, encoding="utf-8")
    return path


def _limited_memory() -> None:
    # A key file read without a bound would take all of it: end such a child at 1 GiB.
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def _plan_in_a_child(
    tmp_path: Path, sim: Simulator, key_file: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNIPILE_")}
    env["PYTHONPATH"] = str(ROOT)
    command = [sys.executable, "-m", "bulkgroups", "plan", str(_job(tmp_path))]
    return subprocess.run(
        [*command, "--base-url", sim.url, "--api-key-file", key_file],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=20,
        env=env,
        preexec_fn=_limited_memory,
    )


@pytest.mark.parametrize("device", ["/dev/zero", "fifo"])
def test_a_key_file_that_is_a_device_or_a_fifo_exits_1_at_once_naming_it(
    sim: Simulator, tmp_path: Path, device: str
) -> None:
    if device == "fifo":
        device = str(tmp_path / "key.fifo")
        os.mkfifo(device)  # nobody writes to it: opened for reading as it is, it waits forever
    done = _plan_in_a_child(tmp_path, sim, device)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(f"error: --api-key-file {device}: "), done.stderr
    assert "not a regular file" in done.stderr
    assert "--api-key-file -" in done.stderr  # how to pipe a key in instead
    assert "Traceback" not in done.stderr
    assert sim.requests() == ()


def test_a_key_file_too_large_to_be_a_key_is_refused(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    key = tmp_path / "key"
    key.write_bytes(b"k" * (KEY_FILE_LIMIT + 1))
    run = cli.run("plan", _job(tmp_path), "--base-url", sim.url, "--api-key-file", key)
    assert run.code == 1
    assert run.err.startswith(f"error: --api-key-file {key}: ")
    assert "KiB" in run.err
    assert sim.requests() == ()


def test_a_key_file_that_is_not_utf8_text_is_refused_without_a_traceback(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    key = tmp_path / "key"
    key.write_bytes(b"\xff\xfe secret")
    run = cli.run("plan", _job(tmp_path), "--base-url", sim.url, "--api-key-file", key)
    assert run.code == 1
    assert run.err == f"error: --api-key-file {key}: not UTF-8 text\n"
    assert sim.requests() == ()


def test_a_key_piped_in_is_read_up_to_the_same_bound(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    args = ("plan", _job(tmp_path), "--base-url", sim.url, "--api-key-file", "-")
    run = cli.run(*args, stdin="k" * (KEY_FILE_LIMIT + 1))
    assert run.code == 1
    assert run.err.startswith("error: --api-key-file -: ")
    assert sim.requests() == ()
    assert cli.run(*args, "--rate", "2/0.1s", stdin=sim.api_key + "\n").code == 0
