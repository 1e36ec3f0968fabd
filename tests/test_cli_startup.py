"""Instant start: `bulkgroups --help`, `--version`, `validate` and `report` import neither aiohttp
nor the engine nor the HTTP client (`--help` not even rich), and `import bulkgroups` is the value
types and errors until a heavier name is used. Checked on what Python reports it imported
(`python -X importtime`), in fresh processes — not on the clock, which the machine's load moves."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.engine import write_job

ROOT = Path(__file__).parent.parent
NETWORK_AND_ENGINE = {"aiohttp", "bulkgroups.engine", "bulkgroups.client", "bulkgroups.library"}


def imported(*argv: str) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    """The modules a fresh `python -X importtime ARGV...` imported, and how it ended."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNIPILE_")}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )
    modules = set()
    other = []
    for line in done.stderr.splitlines():
        if line.startswith("import time:"):
            name = line.rsplit("|", 1)[1].strip()
            if name != "package":  # the header line
                modules.add(name)
        else:
            other.append(line)
    done.stderr = "\n".join(other)
    return modules, done


def top_level(modules: set[str]) -> set[str]:
    """Every package of a module counted too (`bulkgroups.engine` for `bulkgroups.engine.run`),
    but outside bulkgroups only the top one (`aiohttp` for `aiohttp.client`)."""
    names = set()
    for module in modules:
        parts = module.split(".")
        depth = len(parts) if parts[0] == "bulkgroups" else 1
        names.update(".".join(parts[:n]) for n in range(1, depth + 1))
    return names


def test_importing_the_package_loads_neither_the_engine_nor_aiohttp_nor_yaml() -> None:
    modules, done = imported("-c", "import bulkgroups")
    assert done.returncode == 0, done.stderr
    assert not (top_level(modules) & (NETWORK_AND_ENGINE | {"bulkgroups.jobs", "yaml", "rich"}))
    assert "anyio" not in top_level(modules)


def test_every_public_name_resolves_in_a_fresh_process() -> None:
    script = (
        "import bulkgroups\n"
        "for name in bulkgroups.__all__:\n"
        "    assert getattr(bulkgroups, name) is not None, name\n"
        "from bulkgroups import UnipileClient, plan, apply, load_job, EngineConfig\n"
        "assert callable(plan) and callable(apply) and callable(load_job)\n"
        "try:\n"
        "    bulkgroups.no_such_name\n"
        "except AttributeError as error:\n"
        "    assert 'no_such_name' in str(error)\n"
        "else:\n"
        "    raise SystemExit('an unknown name resolved')\n"
    )
    modules, done = imported("-c", script)
    assert done.returncode == 0, done.stderr
    assert {"aiohttp", "bulkgroups.engine", "bulkgroups.jobs"} <= top_level(modules)


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["validate", "--help"]])
def test_help_and_version_import_nothing_heavy(argv: list[str]) -> None:
    modules, done = imported("-m", "bulkgroups", *argv)
    assert done.returncode == 0, done.stderr
    assert done.stdout
    heavy = NETWORK_AND_ENGINE | {"rich", "anyio", "yaml", "bulkgroups.pacing", "asyncio"}
    assert not (top_level(modules) & heavy), top_level(modules) & heavy


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_a_commands_help_loads_the_pacing_defaults_it_shows_but_not_the_engine(
    command: str,
) -> None:
    modules, done = imported("-m", "bulkgroups", command, "--help")
    assert done.returncode == 0, done.stderr
    assert "(default: 1/s; 20/s with --sandbox)" in " ".join(done.stdout.split())
    assert "bulkgroups.pacing" in modules
    assert not (top_level(modules) & (NETWORK_AND_ENGINE | {"rich", "yaml"}))


def test_validate_imports_the_job_loader_only() -> None:
    modules, done = imported("-m", "bulkgroups", "validate", "jobs/cohorts.yaml")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("OK:")
    assert "bulkgroups.jobs" in modules
    assert not (top_level(modules) & (NETWORK_AND_ENGINE | {"rich", "anyio", "asyncio"}))


def test_a_validate_error_imports_nothing_heavy_either(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 2\nchats: []\n", encoding="utf-8")
    modules, done = imported("-m", "bulkgroups", "validate", str(bad))
    assert done.returncode == 1
    assert f"{bad}:1: version:" in done.stderr
    assert not (top_level(modules) & (NETWORK_AND_ENGINE | {"rich"}))


def test_report_reads_a_ledger_without_the_engine_or_aiohttp(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text('{"type":"run","run_id":"r1","job_sha256":"x","resume":false}\n')
    for fmt in ("text", "json", "csv"):
        modules, done = imported("-m", "bulkgroups", "report", str(ledger), "--format", fmt)
        assert done.returncode == 0, done.stderr
        assert not (top_level(modules) & NETWORK_AND_ENGINE), fmt


def test_plan_does_import_the_engine_and_client(tmp_path: Path) -> None:
    """The check above is not vacuous: the commands that talk to Unipile do load them."""
    job = write_job(tmp_path / "job.yaml", [{"chat": "team", "account": "acc_1", "leave": True}])
    modules, done = imported("-m", "bulkgroups", "plan", str(job), "--sandbox")
    assert done.returncode == 0, done.stderr
    assert {"aiohttp", "bulkgroups.engine", "bulkgroups.client", "rich"} <= top_level(modules)


@pytest.mark.parametrize("entry", ["python -m bulkgroups", "bulkgroups"])
def test_the_command_freezes_the_collector_before_the_interpreter_tears_down(
    entry: str, tmp_path: Path
) -> None:
    # Teardown's last full collection walked every object the imports left (80-130 ms a run);
    # frozen, it skips them. Seen from an atexit handler (which runs during that teardown),
    # planted by a sitecustomize, for both ways of starting the command.
    (tmp_path / "sitecustomize.py").write_text(
        "import atexit, gc, sys\n"
        "atexit.register(lambda: sys.stderr.write(f'frozen {gc.get_freeze_count() > 0}\\n'))\n"
    )
    command = (
        [sys.executable, "-m", "bulkgroups"]
        if entry.startswith("python")
        else [str(Path(sys.executable).parent / "bulkgroups")]
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run(
        [*command, "--version"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("bulkgroups ")
    assert done.stderr.splitlines()[-1] == "frozen True"
