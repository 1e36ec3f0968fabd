"""An API that cannot be reached at all (a wrong base URL, the service down) is one clear line and
exit 1 — nothing was sent — not a connection failure per chat and a plan that looks like success."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from engine_helpers import write_job
from test_cli_helpers import Cli


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    return Cli(capsys, monkeypatch)


@pytest.fixture
def dead_url() -> str:
    """An https origin on 127.0.0.1 where nothing listens (a port just freed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"https://127.0.0.1:{port}"


def _job(tmp_path: Path) -> Path:
    return write_job(
        tmp_path / "job.yaml",
        [
            {"chat": "team", "account": "acc_1", "add": ["ACoAA0001"]},
            {"chat": "crew", "account": "acc_2", "members": ["ACoAA0002"]},
        ],
    )


def _key(tmp_path: Path) -> Path:
    path = tmp_path / "key"
    path.write_text("a-key-of-some-length\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_an_unreachable_api_is_one_line_naming_the_url_and_exit_1(
    cli: Cli, tmp_path: Path, dead_url: str, command: str
) -> None:
    ledger = tmp_path / "ledger.jsonl"
    extra = ["--ledger", str(ledger)] if command == "apply" else []
    run = cli.run(
        command, _job(tmp_path), "--base-url", dead_url, "--api-key-file", _key(tmp_path), *extra
    )
    assert run.code == 1, run.err
    # Besides the progress lines of a run without a terminal: one line says what happened.
    lines = [line for line in run.err.splitlines() if not line.startswith("progress:")]
    assert len(lines) == 1, run.err
    assert f"cannot reach {dead_url}: connection refused" in lines[0]
    assert "nothing was sent" in lines[0]
    assert "a-key-of-some-length" not in run.err + run.out
    assert run.out == ""
    # Nothing ran: no ledger record claims a run happened.
    assert not ledger.exists() or ledger.read_bytes() == b""
