"""Helpers for the CLI tests (no tests here): run `bulkgroups` in-process and see what it printed.

`Cli.run(...)` calls `bulkgroups.cli.main` with pytest's capsys, returning the exit code and both
streams. The environment is cleared of UNIPILE_* (key, base URL, DSN) so a developer's own
settings never leak in.
`connect(sim, tmp_path)` gives the flags that point a run at a `sim` through a key file, with
rates within the simulator's 20/s (2 per 0.1 s: a second run on a ledger waits 0.1 s, not 1 s)
and no jitter, so runs are quick and never over its limits.
"""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from bulkgroups.cli import main
from bulkgroups.simulator import LoggedRequest, Simulator


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    def json(self) -> object:
        return orjson.loads(self.out)


class Cli:
    def __init__(self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
        self.capsys = capsys
        self.monkeypatch = monkeypatch
        for name in ("UNIPILE_API_KEY", "UNIPILE_BASE_URL", "UNIPILE_DSN"):
            monkeypatch.delenv(name, raising=False)

    def run(self, *args: str | Path, stdin: str | None = None) -> Run:
        self.capsys.readouterr()
        if stdin is not None:
            self.monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        with pytest.raises(SystemExit) as exit_info:
            main([str(a) for a in args])
        captured = self.capsys.readouterr()
        code = exit_info.value.code
        assert isinstance(code, int), f"exit code {code!r}"
        return Run(code, captured.out, captured.err)


def connect(sim: Simulator, tmp_path: Path, *, key: str | None = None) -> list[str]:
    """Connection and pacing flags for a run against `sim` (its key, or `key`, from a file)."""
    key_file = tmp_path / "api-key"
    key_file.write_text((key if key is not None else sim.api_key) + "\n", encoding="utf-8")
    return [
        "--base-url",
        sim.url,
        "--api-key-file",
        str(key_file),
        "--rate",
        "2/0.1s",
        "--write-rate",
        "2/0.1s",
        "--jitter",
        "0",
    ]


def writes(sim: Simulator) -> list[LoggedRequest]:
    return [r for r in sim.requests() if r.method in ("POST", "PATCH", "DELETE")]


def account_scoped(sim: Simulator) -> list[LoggedRequest]:
    return [r for r in sim.requests() if not r.path.startswith("/v2/accounts/")]
