"""A window counts a request from when its answer came back, an upper bound of its arrival.

Found by a 100-account run that the simulator saw exceed its limits: requests stamped N apart
at send time arrived less than T apart when the older one's trip took longer.
"""

from __future__ import annotations

from bulkgroups.model import RateSpec
from bulkgroups.pacing import AccountPacer, PacingPolicy

POLICY = PacingPolicy(rate=RateSpec(2, 1.0), write_rate=None, margin=0.0, min_margin=0.0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_slow_answer_moves_the_window_to_when_it_came_back() -> None:
    clock = Clock()
    pacer = AccountPacer(POLICY, clock=clock)
    first = pacer.stamp_in_flight("read")
    pacer.stamp("read")
    clock.now = 100.4
    pacer.answered(first, "read")  # its answer took 0.4 s: it may have arrived as late as 100.4
    assert pacer.earliest("read") == 101.4


def test_while_the_oldest_answer_is_outstanding_the_next_request_waits() -> None:
    clock = Clock()
    pacer = AccountPacer(POLICY, clock=clock)
    first = pacer.stamp_in_flight("read")
    pacer.stamp("read")
    clock.now = 105.0
    assert not pacer.ready("read")
    pacer.answered(first, "read")
    assert pacer.earliest("read") == 106.0


def test_answers_of_requests_that_already_left_the_window_change_nothing() -> None:
    clock = Clock()
    pacer = AccountPacer(POLICY, clock=clock)
    first = pacer.stamp_in_flight("read")
    pacer.answered(first, "read")
    pacer.answered(first, "read")  # twice is harmless
    assert pacer.earliest("read") == float("-inf")
