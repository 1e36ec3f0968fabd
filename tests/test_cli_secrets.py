"""The API key never shows: not on stdout or stderr, not in the ledger, the plan file or the lock
file, however it was given; a refused key stops the run with a clear message and nothing written."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bulkgroups.simulator import Simulator, initial_members

from helpers.cli import Cli, Run, connect
from helpers.engine import write_job
from helpers.simulator import SimFactory

KEY = "sk-DISTINCTIVE-7f3a91c2e8d4b6a0"


@pytest.fixture
def keyed_sim(sim_factory: SimFactory) -> Simulator:
    return sim_factory(api_key=KEY)


def busy_job(tmp_path: Path) -> Path:
    """Writes of every kind, one failure (its error detail goes to the ledger), a leave."""
    team = initial_members("acc_1", "team")
    return write_job(
        tmp_path / "job.yaml",
        [
            {"chat": "team", "account": "acc_1", "add": ["ACoAA0499"], "remove": [team[1]]},
            {"chat": "crew", "account": "acc_1", "rename": "Crew", "members": ["ACoAA0001"]},
            {"chat": "gone_chat", "account": "acc_2", "add": ["ACoAA0499"]},
            {"chat": "lounge", "account": "acc_2", "leave": True},
        ],
    )


@contextmanager
def watching(path: Path) -> Iterator[list[bytes]]:
    """Every distinct content `path` had while the block ran (it may come and go)."""
    seen: list[bytes] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            try:
                content = path.read_bytes()
            except FileNotFoundError:
                content = None
            if content and content not in seen:
                seen.append(content)
            done.wait(0.002)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield seen
    finally:
        done.set()
        watcher.join()


def assert_nowhere(runs: list[Run], directory: Path, key: str) -> None:
    for run in runs:
        assert key not in run.out
        assert key not in run.err
    written = [p for p in directory.rglob("*") if p.is_file() and p.name != "api-key"]
    assert written, "the runs wrote no file at all?"
    for path in written:
        assert key.encode() not in path.read_bytes(), path


def test_the_key_is_in_no_output_and_no_file_the_tool_writes(
    cli: Cli, keyed_sim: Simulator, tmp_path: Path
) -> None:
    job, ledger, saved = busy_job(tmp_path), tmp_path / "ledger.jsonl", tmp_path / "PLAN.json"
    flags = connect(keyed_sim, tmp_path)
    # Slow answers keep the run, and so its lock file, around long enough to be read.
    for account in ("acc_1", "acc_2"):
        keyed_sim.configure_account(account, latency=0.02)
    runs = [
        cli.run("plan", job, "--out", saved, *flags),
        cli.run("plan", job, "--format", "json", *flags),
        cli.run("apply", job, "--dry-run", *flags),
    ]
    with watching(Path(f"{ledger}.lock")) as lock_contents:
        runs.append(cli.run("apply", job, "--ledger", ledger, *flags))
    runs.append(cli.run("report", ledger))
    runs.append(cli.run("report", ledger, "--format", "json"))
    runs.append(cli.run("report", ledger, "--format", "csv"))
    # plan exits 3 like apply: one chat of the job cannot be read (its error echoes the key)
    assert [r.code for r in runs] == [3, 3, 3, 3, 0, 0, 0], [r.err for r in runs]

    assert lock_contents, "the lock file was never seen"
    assert all(b'"pid"' in content for content in lock_contents)
    for content in lock_contents:
        assert KEY.encode() not in content
    assert_nowhere(runs, tmp_path, KEY)
    assert saved.exists() and ledger.exists()


def test_a_key_given_on_the_command_line_or_stdin_is_not_echoed(
    cli: Cli, keyed_sim: Simulator, tmp_path: Path
) -> None:
    job, origin = busy_job(tmp_path), ["--base-url", keyed_sim.url, "--rate", "2/0.1s"]
    runs = [
        cli.run("plan", job, *origin, "--api-key", KEY),
        cli.run("plan", job, *origin, "--api-key-file", "-", stdin=KEY),
    ]
    cli.monkeypatch.setenv("UNIPILE_API_KEY", KEY)
    runs.append(cli.run("plan", job, *origin, "--out", tmp_path / "P.json"))
    assert [r.code for r in runs] == [3, 3, 3]  # gone_chat cannot be read
    assert_nowhere(runs, tmp_path, KEY)


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_a_refused_key_exits_1_saying_so_and_writes_nothing(
    cli: Cli, keyed_sim: Simulator, tmp_path: Path, command: str
) -> None:
    wrong = "sk-WRONG-0123456789abcdef"
    job, ledger, saved = busy_job(tmp_path), tmp_path / "ledger.jsonl", tmp_path / "PLAN.json"
    extra: list[str | Path] = ["--ledger", ledger] if command == "apply" else ["--out", saved]
    run = cli.run(command, job, *extra, *connect(keyed_sim, tmp_path, key=wrong))
    assert run.code == 1
    assert "the API key was refused" in run.err
    assert "Traceback" not in run.err
    assert wrong not in run.err and wrong not in run.out
    assert KEY not in run.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["api-key", "job.yaml"]
    # Only the core account GETs went out (answered 401); nothing account-scoped, no write.
    assert {r.status for r in keyed_sim.requests()} == {401}
    assert all(r.path.startswith("/v2/accounts/") for r in keyed_sim.requests())
