"""Runs hand over when they last sent to each account (`recent_sends`): the next run, in any
process, waits only what the limits need after them, and nothing after no run at all."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Collection
from contextlib import nullcontext
from pathlib import Path

import orjson
import pytest

from bulkgroups import recent_sends
from bulkgroups.engine import EngineConfig, handover
from bulkgroups.engine.handover import handed_over
from bulkgroups.engine.run import Run, build_pacing
from bulkgroups.jobs import load_job
from bulkgroups.model import parse_rate
from bulkgroups.recent_sends import (
    STATE_DIR_ENV,
    Handover,
    LastSent,
    RecentSends,
    default_state_dir,
)
from bulkgroups.simulator import Simulator

from helpers.cli import Cli, account_scoped, connect
from helpers.cli import Run as CliRun
from helpers.engine import write_job
from helpers.processes import dead_pid, live_pid
from helpers.simulator import SimFactory

ORIGIN = "http://127.0.0.1:8080"
EXAMPLE = Path(__file__).parents[1] / "jobs" / "cohorts.yaml"


def _as_another_process(marker: Path, pid: object, **changes: object) -> None:
    """Rewrite a marker this process wrote as if process `pid` (of this machine) had."""
    content = orjson.loads(marker.read_bytes())
    content.update(pid=pid, process="another", **changes)
    marker.write_bytes(orjson.dumps(content))


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
    _as_another_process(marker, dead_pid())  # never closed: kill -9
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
    _as_another_process(next((place.root / "runs").iterdir()), dead_pid())
    assert place.begin(["acc_1"], now=2000.0).earlier == {"acc_1": LastSent(request_at=2000.0)}


def test_a_run_still_going_counts_as_requesting_now_but_not_writing(tmp_path: Path) -> None:
    place = RecentSends(tmp_path, ORIGIN)
    place.begin(["acc_1"], now=1000.0)
    marker = next((place.root / "runs").iterdir())
    with live_pid() as pid:
        _as_another_process(marker, pid)
        earlier = place.begin(["acc_1"], now=1500.0).earlier
    assert earlier == {"acc_1": LastSent(request_at=1500.0)}
    assert marker.exists()  # still going: left alone


def test_another_run_of_this_process_is_still_going_not_dead(tmp_path: Path) -> None:
    # Before: a marker with this process's pid was taken for a dead container pid 1's, so two
    # library runs side by side closed each other's markers.
    place = RecentSends(tmp_path, ORIGIN)
    place.begin(["acc_1"], now=1000.0)
    (first,) = (place.root / "runs").iterdir()
    assert place.begin(["acc_1"], now=1500.0).earlier == {"acc_1": LastSent(request_at=1500.0)}
    assert first.exists()


def test_a_container_pid_reused_by_a_later_process_is_dead(tmp_path: Path) -> None:
    place = RecentSends(tmp_path, ORIGIN)
    place.begin(["acc_1"], now=1000.0)
    marker = next((place.root / "runs").iterdir())
    _as_another_process(marker, os.getpid())  # pid 1 then, pid 1 now: another process
    assert place.begin(["acc_1"], now=1500.0).earlier == {"acc_1": LastSent(1500.0, 1500.0)}
    assert not marker.exists()


def test_a_run_that_closes_while_another_begins_is_seen_either_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: the accounts' files were read first, then the markers; a run closing in between
    # (its file written just after it was read, its marker gone before the scan) was missed.
    place = RecentSends(tmp_path, ORIGIN)
    closing = place.begin(["acc_1"], now=1000.0)
    read = recent_sends._read_account
    closed: list[bool] = []

    def closes_right_after_the_read(path: Path, account: str) -> LastSent | None:
        found = read(path, account)
        if not closed:
            closed.append(True)
            closing.close({"acc_1": LastSent(1001.0, 1001.0)})
        return found

    monkeypatch.setattr(recent_sends, "_read_account", closes_right_after_the_read)
    earlier = place.begin(["acc_1"], now=1002.0).earlier
    assert earlier["acc_1"].request_at == 1002.0  # seen still going


def test_a_hand_over_that_fails_half_way_leaves_no_marker_of_its_own(tmp_path: Path) -> None:
    place = RecentSends(tmp_path, ORIGIN)
    place.begin(["acc_1"], now=1000.0)
    (dead,) = (place.root / "runs").iterdir()
    _as_another_process(dead, dead_pid())
    (place.root / "accounts.lock").mkdir()  # closing the dead run in its name fails
    with pytest.raises(OSError):
        place.begin(["acc_1"], now=2000.0)
    assert list((place.root / "runs").iterdir()) == [dead]


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
    with live_pid() if alive else nullcontext(dead_pid()) as pid:
        _as_another_process(marker, pid, accounts=[{}, 3, "acc_1"])
        earlier = place.begin(["acc_1"], now=2000.0).earlier
    assert earlier == {"acc_1": LastSent(2000.0, None if alive else 2000.0)}


@pytest.mark.parametrize("pid", [2**40, -1, 0, "12"], ids=["too-large", "negative", "zero", "text"])
def test_a_marker_with_an_impossible_pid_is_a_dead_run(tmp_path: Path, pid: object) -> None:
    # Before: a pid beyond the C range raised OverflowError out of the hand-over, failing the run.
    place = RecentSends(tmp_path, ORIGIN)
    place.begin(["acc_1"], now=1000.0)
    marker = next((place.root / "runs").iterdir())
    _as_another_process(marker, pid)
    assert place.begin(["acc_1"], now=2000.0).earlier == {"acc_1": LastSent(2000.0, 2000.0)}


def test_the_state_directory_is_the_users_own_unless_told() -> None:
    assert default_state_dir({STATE_DIR_ENV: "/srv/state"}) == Path("/srv/state")
    assert default_state_dir({"XDG_STATE_HOME": "/x"}) == Path("/x/bulkgroups")
    assert default_state_dir({}) == Path.home() / ".local" / "state" / "bulkgroups"


# --- the wait they decide --------------------------------------------------------------------


def _pause_of(tmp_path: Path, recent: dict[str, LastSent] | None, *, writes: bool = True) -> float:
    """Seconds acc_1 is held before its first request at 1/s (general) and 1/min (writes), as
    decided just now (wide lower bounds on the result leave room for a loaded machine)."""
    job = load_job(
        write_job(tmp_path / "job.yaml", [{"chat": "c", "account": "acc_1", "rename": "C"}])
    )
    config = EngineConfig(rate=parse_rate("1/s"), write_rate=parse_rate("1/min"))
    run = Run(job, object(), config, None)  # type: ignore[arg-type]  # no request is made
    run.pause_after_previous_runs((), recent, writes=writes)
    return max(run.pacing.pacer("acc_1").paused_until - time.monotonic(), 0.0)


def test_without_a_hand_over_each_account_waits_one_general_window_blind(
    tmp_path: Path,
) -> None:
    assert 0.5 < _pause_of(tmp_path, None) <= 1.03


def test_after_no_run_at_all_nothing_is_waited(tmp_path: Path) -> None:
    assert _pause_of(tmp_path, {}) == 0.0
    long_ago = time.time() - 3600
    assert _pause_of(tmp_path, {"acc_1": LastSent(long_ago, long_ago)}) == 0.0


def test_a_request_just_over_holds_the_account_for_the_rest_of_its_window(
    tmp_path: Path,
) -> None:
    pause = _pause_of(tmp_path, {"acc_1": LastSent(request_at=time.time() - 0.3)})
    assert 0.2 < pause <= 1.03 - 0.3


def test_a_write_just_over_holds_the_account_for_the_strictest_window(tmp_path: Path) -> None:
    now = time.time()
    assert 55 < _pause_of(tmp_path, {"acc_1": LastSent(now, now)}) <= 61.3


def test_a_reading_run_waits_only_the_general_window_after_a_write(tmp_path: Path) -> None:
    # Before: `plan` or `export` right after an apply waited the write window (a minute).
    now = time.time()
    assert 0.5 < _pause_of(tmp_path, {"acc_1": LastSent(now, now)}, writes=False) <= 1.03


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


def _apply_one_room(cli: Cli, sim: Simulator, tmp_path: Path) -> CliRun:
    return cli.run(
        "apply",
        _rooms(tmp_path, 1),
        "--yes",
        "--ledger",
        tmp_path / "l.jsonl",
        *connect(sim, tmp_path),
    )


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
    applied = _apply_one_room(cli, sim, tmp_path)
    assert applied.code == 0, applied.err
    assert "cannot keep the times of recent requests" in applied.err
    assert sim.violations() == 0


def test_a_run_leaves_its_times_in_the_state_directory_and_the_sandbox_leaves_none(
    cli: Cli, sim: Simulator, tmp_path: Path, state_dir: Path
) -> None:
    applied = _apply_one_room(cli, sim, tmp_path)
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


async def test_a_state_directory_that_does_not_answer_costs_a_warning_not_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Before: a hung mount held the run's start for as long as it hung.
    release = threading.Event()

    class Hung(RecentSends):
        def begin(
            self, accounts: Collection[str], *, writes: bool = True, now: float | None = None
        ) -> Handover:
            release.wait(30)
            raise OSError("answered too late")

    monkeypatch.setattr(handover, "_OPEN_DEADLINE", 0.2)
    pacing = build_pacing(None, EngineConfig())
    try:
        async with handed_over(Hung(tmp_path, ORIGIN), ["acc_1"], pacing, writes=True) as recent:
            assert recent is None
    finally:
        release.set()
    assert "no answer in 0.2 s" in caplog.text
