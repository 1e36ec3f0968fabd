"""Helpers for the resume, interruption and kill -9 tests: `bulkgroups apply` as a real process.

The simulator runs in the test process (its own thread and loop, from `sim_factory`); the command
runs as a subprocess against it over 127.0.0.1, so a signal or a SIGKILL hits a real process with
real sockets, a real lock file and a real ledger.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bulkgroups.simulator import Simulator, initial_members, owner_id, pool_id

from .engine import write_job

# Long enough for a slow, loaded CI machine; a run that takes this long is a hang.
PROCESS_TIMEOUT = 120.0


@dataclass
class MixedJob:
    """A job file over several accounts whose chats mix add, remove, rename and desired state,
    with the members (owner included) and names every chat must end with."""

    path: Path
    members: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)
    names: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def chats(self) -> list[tuple[str, str]]:
        return list(self.members)


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@contextmanager
def live_pid() -> Iterator[int]:
    """The pid of another process, alive while the context lasts."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield process.pid
    finally:
        process.kill()
        process.wait()


def _newcomers(taken: set[str], start: int, count: int) -> list[str]:
    """`count` pool members not in `taken`, from pool number `start` on."""
    chosen: list[str] = []
    number = start
    while len(chosen) < count:
        user = pool_id(1 + (number - 1) % 500)
        number += 1
        if user not in taken:
            chosen.append(user)
            taken.add(user)
    return chosen


def mixed_job(
    path: Path,
    *,
    accounts: int = 6,
    chats: int = 5,
    tag: str = "r",
    settings: dict[str, Any] | None = None,
) -> MixedJob:
    """Write a job of `accounts` x `chats` group chats, five kinds in turn: plain adds, plain
    removes, a `members` list, add + remove + rename, and `members` with a `protect`ed user.
    Accounts are `acc_{tag}{n}`; `settings` is the job's `accounts:` section."""
    job = MixedJob(path)
    entries: list[dict[str, Any]] = []
    for a in range(accounts):
        account = f"acc_{tag}{a}"
        owner = owner_id(account)
        for c in range(chats):
            chat = f"chat_{tag}{a}_{c}"
            initial = initial_members(account, chat)
            others = list(initial[1:])
            taken = set(initial)
            start = 1 + 37 * (a * chats + c)
            kind = c % 5
            entry: dict[str, Any] = {"chat": chat, "account": account}
            if kind == 0:
                entry["add"] = _newcomers(taken, start, 4)
                final = set(initial) | set(entry["add"])
            elif kind == 1:
                entry["remove"] = others[:3]
                final = set(initial) - set(entry["remove"])
            elif kind == 2:
                entry["members"] = others[:2] + _newcomers(taken, start, 3)
                final = {owner, *entry["members"]}
            elif kind == 3:
                entry["add"] = _newcomers(taken, start, 2)
                entry["remove"] = others[:1]
                entry["rename"] = f"Cohort {a}-{c}"
                job.names[(account, chat)] = entry["rename"]
                final = (set(initial) | set(entry["add"])) - set(entry["remove"])
            else:
                entry["members"] = _newcomers(taken, start, 2)
                entry["protect"] = others[:1]
                final = {owner, *entry["members"], *entry["protect"]}
            entries.append(entry)
            job.members[(account, chat)] = frozenset(final)
    write_job(path, entries, settings)
    return job


def desired_state_problems(sim: Simulator, job: MixedJob) -> list[str]:
    """Every chat whose members or name differ from what the job asks (empty when converged)."""
    problems: list[str] = []
    for account, chat in job.chats:
        have = sim.members(account, chat)
        want = job.members[(account, chat)]
        if have != want:
            problems.append(
                f"{account}/{chat}: missing {sorted(want - have)}, extra {sorted(have - want)}"
            )
        name = job.names.get((account, chat))
        if name is not None and sim.chat(account, chat).name != name:
            problems.append(f"{account}/{chat}: named {sim.chat(account, chat).name!r}")
    return problems


def effective_writes(sim: Simulator) -> Counter[tuple[str, str | None, str | None, str | None]]:
    """Writes the simulator answered 200, per (method, account, chat, user)."""
    return Counter(
        (r.method, r.account, r.chat, r.user)
        for r in sim.requests()
        if r.kind == "write" and r.status == 200
    )


def duplicated_writes(sim: Simulator) -> dict[tuple[str, str | None, str | None, str | None], int]:
    """Effective writes made more than once: a change applied twice."""
    return {key: n for key, n in effective_writes(sim).items() if n > 1}


WriteKey = tuple[str, str, str, str | None]
_METHODS = {"add": "POST", "remove": "DELETE", "rename": "PATCH", "leave": "DELETE"}


def write_key(record: dict[str, Any]) -> WriteKey:
    """The request an `op` or `intent` record of a write stands for: (method, account, chat,
    user) as the simulator logs it (a rename has no user; a leave removes the owner)."""
    action, account = record["action"], record["account"]
    user = owner_id(account) if action == "leave" else record["user"]
    return (_METHODS[action], account, record["chat"], user)


def requests_sent(sim: Simulator) -> Counter[WriteKey]:
    """Every write request the simulator received (whatever its answer)."""
    return Counter(
        (r.method, r.account or "", r.chat or "", r.user)
        for r in sim.requests()
        if r.kind == "write"
    )


def writes_accepted(sim: Simulator) -> Counter[WriteKey]:
    """The writes the simulator accepted (answered 200)."""
    return Counter(
        (r.method, r.account or "", r.chat or "", r.user)
        for r in sim.requests()
        if r.kind == "write" and r.status == 200
    )


def write_count(sim: Simulator) -> int:
    return sum(1 for r in sim.requests() if r.kind == "write")


def key_file(sim: Simulator, directory: Path) -> Path:
    path = directory / "api-key"
    path.write_text(sim.api_key + "\n", encoding="utf-8")
    return path


def apply_command(
    sim: Simulator,
    job: Path,
    ledger: Path,
    key: Path,
    *,
    rate: str,
    write_rate: str,
    extra: Sequence[str] = (),
) -> list[str]:
    """`bulkgroups apply` against the simulator, non-interactive, no jitter, no removal cap."""
    return [
        sys.executable,
        "-m",
        "bulkgroups",
        "apply",
        str(job),
        "--base-url",
        sim.url,
        "--api-key-file",
        str(key),
        "--ledger",
        str(ledger),
        "--yes",
        "--rate",
        rate,
        "--write-rate",
        write_rate,
        "--jitter",
        "0",
        "--max-removals",
        "-1",
        *extra,
    ]


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNIPILE_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    env["COLUMNS"] = "200"
    return env


def start(
    command: Sequence[str], cwd: Path, *, preexec_fn: Callable[[], None] | None = None
) -> subprocess.Popen[bytes]:
    """Start the command; `preexec_fn` runs in the child before it starts (e.g. resource limits)."""
    return subprocess.Popen(
        list(command),
        cwd=cwd,
        env=environment(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=preexec_fn,
    )


@dataclass(frozen=True)
class Finished:
    code: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def finish(process: subprocess.Popen[bytes]) -> Finished:
    try:
        out, err = process.communicate(timeout=PROCESS_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(
            f"bulkgroups did not finish in {PROCESS_TIMEOUT} s\n{err.decode(errors='replace')}"
        ) from None
    return Finished(process.returncode, out.decode(errors="replace"), err.decode(errors="replace"))


def run(command: Sequence[str], cwd: Path) -> Finished:
    return finish(start(command, cwd))


def wait_until(
    condition: Callable[[], bool], process: subprocess.Popen[bytes], *, poll: float = 0.005
) -> bool:
    """Poll until `condition` holds (True) or the process exits first (False)."""
    deadline = time.monotonic() + PROCESS_TIMEOUT
    while time.monotonic() < deadline:
        if condition():
            return True
        if process.poll() is not None:
            return condition()
        time.sleep(poll)
    process.kill()
    raise AssertionError("timed out waiting for the simulator to see the expected requests")


def signal_when(
    process: subprocess.Popen[bytes], condition: Callable[[], bool], signum: int
) -> bool:
    """Send `signum` once `condition` holds; False if the process had exited before that."""
    if not wait_until(condition, process):
        return False
    if process.poll() is not None:
        return False
    process.send_signal(signum)
    return True


def kill_when(process: subprocess.Popen[bytes], condition: Callable[[], bool]) -> bool:
    return signal_when(process, condition, signal.SIGKILL)


def ledger_lines(path: Path) -> tuple[list[dict[str, Any]], bytes]:
    """The ledger's records, each line parsed, and the bytes of a torn last line (b"" if none)."""
    data = path.read_bytes() if path.exists() else b""
    *whole, tail = data.split(b"\n")
    return [orjson.loads(line) for line in whole], tail
