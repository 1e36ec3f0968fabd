"""Runs hand over when they last sent to each account (`recent_sends`): the next run, in any
process, waits only what the limits need after them, and nothing after no run at all."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from bulkgroups.engine import EngineConfig
from bulkgroups.engine.run import Run
from bulkgroups.jobs import load_job
from bulkgroups.model import parse_rate
from bulkgroups.recent_sends import STATE_DIR_ENV, LastSent, RecentSends, default_state_dir
from bulkgroups.simulator import Simulator

from helpers.cli import Cli, account_scoped, connect
from helpers.engine import write_job
from helpers.simulator import SimFactory

ORIGIN = "http://127.0.0.1:8080"
EXAMPLE = Path(__file__).parents[1] / "jobs" / "cohorts.yaml"


def _dead_pid() -> int:
    """The pid of a process that has exited (and was reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# --- the files -------------------------------------------------------------------------------


def test_a_run_closed_hands_its_last_times_to_the_next(tmp_path: Path) -> None:
    place = RecentSends(tmp_path, ORIGIN)
    first = place.begin(["acc_1", "acc_2"], now=1000.0)
    assert first.earlier == {}
    first.close({"acc_1": LastSent(request_at=1001.0, write_at=1000.5), "acc_2": LastSent()})

    second = place.begin(["acc_1", "acc_2", "acc_3"], now=1002.0)
    assert second.earlier == {"acc_1": LastSent(request_at=1001.0, write_at=1000.5)}
    # An earlier time never replaces a later one (two runs closing in either order).
    second.close({"acc_1": LastSent(request_at=999.0, write_at=None)})
    assert place.begin(["acc_1"]).earlier["acc_1"] == LastSent(1001.0, 1000.5)


def test_each_origin_keeps_its_own_times(tmp_path: Path) -> None:
    RecentSends(tmp_path, ORIGIN).begin(["acc_1"]).close({"acc_1": LastSent(5.0, 5.0)})
    assert RecentSends(tmp_path, "https://api8.unipile.com:13851").begin(["acc_1"]).earlier == {}


def test_a_run_killed_mid_way_counts_as_sending_until_found_then_only_once(
    tmp_path: Path,
) -> None:
    place = RecentSends(tmp_path, ORIGIN)
    killed = place.begin(["acc_1", "acc_2"], now=1000.0)
    marker = next((place.root / "runs").iterdir())
    text = orjson.loads(marker.read_bytes())
    marker.write_bytes(orjson.dumps({**text, "pid": _dead_pid()}))  # never closed: kill -9
    del killed

    finder = place.begin(["acc_1"], now=2000.0)
    # It may have sent anything until it died, before now: a write included.
    assert finder.earlier == {"acc_1": LastSent(request_at=2000.0, write_at=2000.0)}
    assert not marker.exists()  # closed in its name
    later = place.begin(["acc_2"], now=3000.0)
    assert later.earlier == {"acc_2": LastSent(request_at=2000.0, write_at=2000.0)}


def test_a_reading_run_killed_mid_way_counts_as_reading_only(tmp_path: Path) -> None:
    place = RecentSends(tmp_path, ORIGIN)
    place.begin(["acc_1"], writes=False, now=1000.0)  # a plan, then kill -9
    marker = next((place.root / "runs").iterdir())
    marker.write_bytes(orjson.dumps({**orjson.loads(marker.read_bytes()), "pid": _dead_pid()}))
    assert place.begin(["acc_1"], now=2000.0).earlier == {"acc_1": LastSent(request_at=2000.0)}


def test_a_run_still_going_counts_as_requesting_now_but_not_writing(tmp_path: Path) -> None:
    place = RecentSends(tmp_path, ORIGIN)
    place.begin(["acc_1"], now=1000.0)
    marker = next((place.root / "runs").iterdir())
    going = orjson.loads(marker.read_bytes())
    marker.write_bytes(orjson.dumps({**going, "pid": os.getppid()}))  # alive: pytest's parent
    assert place.begin(["acc_1"], now=1500.0).earlier == {"acc_1": LastSent(request_at=1500.0)}
    assert marker.exists()  # still going: left alone


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[]", b'{"account": "acc_1", "request_at": "soon"}', b"x" * (65 * 1024)],
    ids=["corrupt", "not-an-object", "wrong-type", "too-large"],
)
def test_what_cannot_be_read_is_skipped(tmp_path: Path, content: bytes) -> None:
    place = RecentSends(tmp_path, ORIGIN)
    place.begin(["acc_1"]).close({"acc_1": LastSent(5.0, 5.0)})
    (kept,) = (place.root / "accounts").iterdir()
    kept.write_bytes(content)
    assert place.begin(["acc_1"]).earlier == {}


@pytest.mark.parametrize("alive", [True, False], ids=["running", "died"])
def test_a_marker_naming_odd_things_is_read_for_its_accounts_only(
    tmp_path: Path, alive: bool
) -> None:
    place = RecentSends(tmp_path, ORIGIN)
    place.begin([], now=1000.0)
    marker = next((place.root / "runs").iterdir())
    pid = os.getppid() if alive else _dead_pid()
    odd = {**orjson.loads(marker.read_bytes()), "pid": pid, "accounts": [{}, 3, "acc_1"]}
    marker.write_bytes(orjson.dumps(odd))
    expected = LastSent(2000.0, None if alive else 2000.0)
    assert place.begin(["acc_1"], now=2000.0).earlier == {"acc_1": expected}


def test_the_state_directory_is_the_users_own_unless_told() -> None:
    assert default_state_dir({STATE_DIR_ENV: "/srv/state"}) == Path("/srv/state")
    assert default_state_dir({"XDG_STATE_HOME": "/x"}) == Path("/x/bulkgroups")
    assert default_state_dir({}) == Path.home() / ".local" / "state" / "bulkgroups"


# --- the wait they decide --------------------------------------------------------------------


def _pause_of(tmp_path: Path, recent: dict[str, LastSent] | None) -> float:
    """Seconds acc_1 is held before its first request at 1/s (general) and 1/min (writes)."""
    job = load_job(
        write_job(tmp_path / "job.yaml", [{"chat": "c", "account": "acc_1", "rename": "C"}])
    )
    config = EngineConfig(rate=parse_rate("1/s"), write_rate=parse_rate("1/min"))
    run = Run(job, object(), config, None)  # type: ignore[arg-type]  # no request is made
    run.pause_after_previous_runs((), recent)
    return max(run.pacing.pacer("acc_1").paused_until - time.monotonic(), 0.0)


def test_without_a_hand_over_each_account_waits_one_general_window_blind(
    tmp_path: Path,
) -> None:
    assert 0.9 < _pause_of(tmp_path, None) <= 1.03


def test_after_no_run_at_all_nothing_is_waited(tmp_path: Path) -> None:
    assert _pause_of(tmp_path, {}) == 0.0
    long_ago = time.time() - 3600
    assert _pause_of(tmp_path, {"acc_1": LastSent(long_ago, long_ago)}) == 0.0


def test_a_request_just_over_holds_the_account_for_the_rest_of_its_window(
    tmp_path: Path,
) -> None:
    pause = _pause_of(tmp_path, {"acc_1": LastSent(request_at=time.time() - 0.3)})
    assert 0.5 < pause <= 1.03 - 0.3


def test_a_write_just_over_holds_the_account_for_the_strictest_window(tmp_path: Path) -> None:
    now = time.time()
    assert 55 < _pause_of(tmp_path, {"acc_1": LastSent(now, now)}) <= 61.3


def test_a_time_in_the_future_counts_as_now(tmp_path: Path) -> None:
    assert _pause_of(tmp_path, {"acc_1": LastSent(time.time() + 86400)}) <= 1.03


# --- through the command ---------------------------------------------------------------------


def _rooms(tmp_path: Path, count: int) -> Path:
    chats = [{"chat": f"room{n}", "account": "acc_1", "rename": f"Room {n}"} for n in range(count)]
    return write_job(tmp_path / "job.yaml", chats)


@pytest.mark.parametrize("reader", ["plan", "export"])
def test_a_read_right_after_an_apply_stays_within_the_limits(
    cli: Cli, sim_factory: SimFactory, tmp_path: Path, reader: str
) -> None:
    # Before: `plan` and `export` waited for nothing, and read at the full rate inside apply's
    # last window.
    sim = sim_factory(rate=parse_rate("5/s"))
    connection = connect(sim, tmp_path)[:4]  # base URL and key file
    job = _rooms(tmp_path, 4)
    rates = ["--rate", "5/s", "--write-rate", "5/s"]
    applied = cli.run("apply", job, "--yes", "--ledger", tmp_path / "l.jsonl", *connection, *rates)
    assert applied.code == 0, applied.err
    if reader == "plan":
        read = cli.run("plan", job, *connection, *rates)
    else:
        read = cli.run("export", "--account", "acc_1", *connection, "--rate", "5/s")
    assert read.code == 0, read.err
    assert sim.violations() == 0
    assert not [r for r in sim.requests() if r.status == 429]


def _first_paced_after_preflight(sim: Simulator) -> float:
    preflight = next(r for r in sim.requests() if r.path.startswith("/v2/accounts/"))
    return account_scoped(sim)[0].at - preflight.at


def test_a_first_run_starts_sending_at_once(
    cli: Cli, sim_factory: SimFactory, tmp_path: Path
) -> None:
    # 4 requests per 20 s: a blind wait would hold the first read 20 s; nothing ran before.
    sim = sim_factory(rate=parse_rate("4/20s"))
    flags = [*connect(sim, tmp_path), "--rate", "4/20s", "--write-rate", "4/20s"]
    ledger = tmp_path / "l.jsonl"
    applied = cli.run(
        "apply", _rooms(tmp_path, 1), "--yes", "--no-verify", "--ledger", ledger, *flags
    )
    assert applied.code == 0, applied.err
    assert len(account_scoped(sim)) <= 4
    assert _first_paced_after_preflight(sim) < 10.0


def test_a_state_directory_that_cannot_be_written_costs_a_warning_and_a_blind_wait(
    cli: Cli, sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    not_a_directory = tmp_path / "state"
    not_a_directory.write_text("a file\n", encoding="utf-8")
    monkeypatch.setenv(STATE_DIR_ENV, str(not_a_directory))
    applied = cli.run(
        "apply",
        _rooms(tmp_path, 1),
        "--yes",
        "--ledger",
        tmp_path / "l.jsonl",
        *connect(sim, tmp_path),
    )
    assert applied.code == 0, applied.err
    assert "cannot keep the times of recent requests" in applied.err
    assert sim.violations() == 0


def test_a_run_leaves_its_times_in_the_state_directory_and_the_sandbox_leaves_none(
    cli: Cli, sim: Simulator, tmp_path: Path, state_dir: Path
) -> None:
    applied = cli.run(
        "apply",
        _rooms(tmp_path, 1),
        "--yes",
        "--ledger",
        tmp_path / "l.jsonl",
        *connect(sim, tmp_path),
    )
    assert applied.code == 0, applied.err
    place = RecentSends(state_dir, sim.url)
    assert list((place.root / "runs").iterdir()) == []  # closed: no marker left
    last = place.begin(["acc_1"]).earlier["acc_1"]
    assert last.request_at is not None and last.write_at is not None
    assert last.write_at <= last.request_at <= time.time()

    before = sorted(p.relative_to(state_dir) for p in state_dir.rglob("*"))
    sandboxed = cli.run("plan", EXAMPLE, "--sandbox")
    assert sandboxed.code == 0, sandboxed.err
    after = sorted(p.relative_to(state_dir) for p in state_dir.rglob("*"))
    assert after == before
