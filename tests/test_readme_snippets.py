"""The README's Python blocks and the package docstring's example run as written: each in a
fresh interpreter, from a copy of the repository's `jobs/`, against a simulator on 127.0.0.1
(`UNIPILE_BASE_URL` and `UNIPILE_API_KEY` point at it for the blocks that read them), within its
limits and without a traceback."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import bulkgroups
from bulkgroups.simulator import Simulator

ROOT = Path(__file__).parent.parent
# Long enough for a loaded 2-core machine; the blocks take a few seconds.
TIMEOUT = 120.0


def readme_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.DOTALL | re.MULTILINE)


def docstring_example() -> str:
    """The first indented block of `bulkgroups.__doc__`."""
    lines = (bulkgroups.__doc__ or "").splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith("    "))
    end = next(
        (
            n
            for n in range(start, len(lines))
            if lines[n].strip() and not lines[n].startswith("    ")
        ),
        len(lines),
    )
    return textwrap.dedent("\n".join(lines[start:end]))


def examples() -> list[tuple[str, str]]:
    found = [(f"README-{n}", block) for n, block in enumerate(readme_blocks(), start=1)]
    return [*found, ("bulkgroups.__doc__", docstring_example())]


def test_the_readme_has_its_library_examples_and_they_talk_to_no_real_host() -> None:
    blocks = readme_blocks()
    assert len(blocks) >= 2
    assert any("run_in_thread" in b for b in blocks)  # one against the simulator
    assert any('os.environ["UNIPILE_API_KEY"]' in b for b in blocks)  # one against Unipile
    for _, code in examples():
        # Only the environment (set below to the simulator) or the simulator itself say where.
        assert re.findall(r"https?://", code) == [], code


@pytest.mark.parametrize(("name", "code"), examples(), ids=[name for name, _ in examples()])
def test_each_example_runs_as_written_against_the_simulator(
    sim: Simulator, tmp_path: Path, name: str, code: str
) -> None:
    shutil.copytree(ROOT / "jobs", tmp_path / "jobs")
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNIPILE_")}
    env |= {"UNIPILE_BASE_URL": sim.url, "UNIPILE_API_KEY": sim.api_key}

    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )

    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout.strip(), "an example shows what it did"
    assert sim.violations() == 0
