"""The ETA of a run's writes: it starts from each account's pacer's estimate of the work left, the
slowest account bounds it, and the rate the run achieves takes over as the writes are done; the
pacer's own estimate counts the wait for the next turn, a 429's pause and a lowered rate.
Plain numbers for the time: nothing sleeps."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bulkgroups.eta import Eta
from bulkgroups.model import RateSpec
from bulkgroups.pacing import AccountPacer, PacingPolicy


def paced(seconds_per_write: float) -> Callable[[int, int], float]:
    """A pacer's estimate at a steady write interval (one write goes at once)."""

    def seconds_left(reads: int, writes: int) -> float:
        return max(writes - 1, 0) * seconds_per_write

    return seconds_left


def test_the_eta_starts_from_the_pacers_estimate_and_the_slowest_account_bounds_it() -> None:
    eta = Eta()
    eta.planned("fast", operations=5, writes=5, reads=2, seconds_left=paced(1.0), now=100.0)
    eta.planned("slow", operations=5, writes=5, reads=2, seconds_left=paced(60.0), now=100.0)
    assert eta.seconds_left(100.0) == pytest.approx(240.0)
    assert eta.seconds_left(130.0) == pytest.approx(210.0)  # it counts down between outcomes


def test_the_rate_achieved_lengthens_the_eta_where_the_run_is_slower_than_its_pacer() -> None:
    """The pacer says a write a second; the run gets one every 10 s (round trips, verification):
    the ETA extrapolates from the last write, and counts down between outcomes."""
    eta = Eta()
    eta.planned("acc", operations=10, writes=10, reads=0, seconds_left=paced(1.0), now=0.0)
    assert eta.seconds_left(0.0) == pytest.approx(9.0)  # the pacer's figure, nothing else known
    for done in range(1, 10):
        eta.recorded("acc", now=10.0 * done)
    assert eta.seconds_left(90.0) == pytest.approx(10.0)  # 1 write left at 10 s a write
    assert eta.seconds_left(95.0) == pytest.approx(5.0)
    eta.recorded("acc", now=100.0)
    assert eta.seconds_left(100.0) == 0.0


def test_the_eta_is_never_below_what_the_pacer_allows() -> None:
    """Two writes at once, then the pacer's minute apart: the rate of the burst says nothing."""
    eta = Eta()
    eta.planned("acc", operations=4, writes=4, reads=0, seconds_left=paced(60.0), now=0.0)
    eta.recorded("acc", now=0.1)
    eta.recorded("acc", now=0.2)
    eta.refresh(0.2)
    assert eta.seconds_left(0.2) == pytest.approx(60.0)


def test_outcomes_known_without_sending_do_not_count_as_writes_done() -> None:
    """Skips are recorded before a chat's writes: the writes left stay those to send."""
    eta = Eta()
    eta.planned("acc", operations=6, writes=3, reads=0, seconds_left=paced(60.0), now=0.0)
    for _ in range(3):  # three skips, recorded at once
        eta.recorded("acc", now=0.0)
    assert eta.seconds_left(0.0) == pytest.approx(120.0)


def test_a_stopped_account_whose_operations_are_recorded_unsent_leaves_nothing_to_wait_for() -> (
    None
):
    eta = Eta()
    eta.planned("acc", operations=4, writes=4, reads=0, seconds_left=paced(60.0), now=0.0)
    eta.planned("other", operations=2, writes=2, reads=0, seconds_left=paced(5.0), now=0.0)
    for _ in range(4):  # deferred, not sent
        eta.recorded("acc", now=1.0)
    eta.refresh(1.0)
    assert eta.seconds_left(1.0) == pytest.approx(5.0)  # only `other` is left, as its pacer says


def test_a_refresh_asks_the_pacer_again_so_a_paused_account_pushes_the_eta_out() -> None:
    pause = {"until": 0.0}

    def seconds_left(reads: int, writes: int) -> float:
        return max(pause["until"] - now, 0.0) + (writes - 1) * 1.0

    now = 0.0
    eta = Eta()
    eta.planned("acc", operations=3, writes=3, reads=0, seconds_left=seconds_left, now=now)
    assert eta.seconds_left(now) == pytest.approx(2.0)
    pause["until"] = 30.0  # a 429 asked the account to wait
    now = 0.5
    eta.refresh(now)
    assert eta.seconds_left(now) == pytest.approx(29.5 + 2.0)


def test_before_any_account_writes_there_is_no_eta() -> None:
    assert Eta().seconds_left(0.0) is None


# ------------------------------------------------------------------ the pacer's own estimate


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pacer(clock: Clock) -> AccountPacer:
    policy = PacingPolicy(
        rate=RateSpec(10, 1.0), write_rate=RateSpec(1, 60.0), margin=0.0, min_margin=0.0
    )
    return AccountPacer(policy, clock=clock)


def test_the_pacer_estimates_the_writes_left_from_now_at_its_rates() -> None:
    clock = Clock()
    account = pacer(clock)
    assert account.seconds_left(0, 3) == pytest.approx(120.0)  # now, +1 min, +2 min
    account.stamp("write")
    clock.now += 20.0
    assert account.seconds_left(0, 2) == pytest.approx(40.0 + 60.0)  # its turn in 40 s, then 1
    assert account.seconds_left(0, 0) == 0.0


def test_the_pacers_estimate_counts_a_pause_and_a_lowered_rate() -> None:
    clock = Clock()
    account = pacer(clock)
    account.pause_for(90.0)  # a 429's Retry-After
    assert account.seconds_left(0, 2) == pytest.approx(90.0 + 60.0)
    clock.now += 90.0
    account.slow_down()  # a limiter behind 5xx: writes at half the rate, for a while
    assert account.seconds_left(0, 2) == pytest.approx(120.0)
