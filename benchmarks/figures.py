"""What every benchmark hands back: named figures, each with its unit and, when it has one, the
target it is held to (`PASS` / `MISS` in RESULTS.md). Also the sandbox-in-a-subprocess helper."""

from __future__ import annotations

import compileall
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

Compare = Literal["<=", ">=", "=="]

ROOT = Path(__file__).resolve().parent.parent


def as_installed() -> dict[str, str]:
    """The environment to start the command in, as on a user's machine: the package's bytecode
    compiled, as `pip install` compiles it (an editable install compiles a module only when it is
    imported with writing allowed), and without PYTHONDONTWRITEBYTECODE, which a CI shell (or this
    machine) may set. Otherwise every start of the command compiles some 40 modules from source,
    about 0.1 s, and a benchmark of a 3 s run times the compiler."""
    compileall.compile_dir(ROOT / "bulkgroups", quiet=1)
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured figure; `target` with `compare` makes it a pass/miss check."""

    name: str
    value: float
    unit: str = ""
    target: float | None = None
    compare: Compare = "<="
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.target is None:
            return ""
        ok = {
            "<=": self.value <= self.target,
            ">=": self.value >= self.target,
            "==": self.value == self.target,
        }[self.compare]
        return "PASS" if ok else "MISS"

    @property
    def target_text(self) -> str:
        if self.target is None:
            return "—"
        return f"{self.compare} {_number(self.target)} {self.unit}".strip()

    @property
    def value_text(self) -> str:
        return f"{_number(self.value)} {self.unit}".strip()


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 1e12:
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.3f}"
    return f"{value:.4f}"


@dataclass(frozen=True, slots=True)
class Sandbox:
    url: str
    api_key: str
    pid: int


@contextmanager
def sandbox_process(
    rate: str = "1000000/s", *, faults: str = "", seed: int = 0
) -> Iterator[Sandbox]:
    """`python -m bulkgroups sandbox --port 0 --rate RATE [--faults SPEC --seed N]` in its own
    process, so its CPU time is not this process's; stopped with SIGTERM (then killed) on exit."""
    command = [sys.executable, "-m", "bulkgroups", "sandbox", "--port", "0", "--rate", rate]
    if faults:
        command += ["--faults", faults, "--seed", str(seed)]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        url = key = ""
        while not (url and key):
            line = process.stdout.readline()
            if not line:
                raise RuntimeError(
                    f"the sandbox exited early: {process.stderr.read() if process.stderr else ''}"
                )
            if line.startswith("URL: "):
                url = line[5:].strip()
            elif line.startswith("API key: "):
                key = line[9:].strip()
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the sandbox is not on loopback: {url!r}")
        yield Sandbox(url=url, api_key=key, pid=process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def sim_get(sandbox: Sandbox, path: str) -> Any:
    """`GET /_sim/{path}` of a sandbox process (its inspection API): the decoded answer."""
    request = urllib.request.Request(sandbox.url + "/_sim/" + path)
    request.add_header("X-API-KEY", sandbox.api_key)
    with urllib.request.urlopen(request, timeout=30) as answer:
        return orjson.loads(answer.read())
