"""`engine.workers.for_each`: at most `workers` items at once, and, with `lending`, one more item
started for each worker sleeping in a backoff — never more than twice `workers` in progress."""

from __future__ import annotations

import anyio
import pytest

from bulkgroups.engine.workers import for_each, lend_a_worker


class Tally:
    """How many items are in progress, and the most there ever were."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0
        self.started: list[int] = []

    def enter(self, item: int) -> None:
        self.started.append(item)
        self.now += 1
        self.most = max(self.most, self.now)

    def leave(self) -> None:
        self.now -= 1


async def test_at_most_the_workers_at_once_and_every_item_once() -> None:
    tally = Tally()

    async def work(item: int) -> None:
        tally.enter(item)
        await anyio.sleep(0.001)
        tally.leave()

    await for_each(range(10), work, 3)
    assert sorted(tally.started) == list(range(10))
    assert tally.most == 3


@pytest.mark.parametrize("lending", [False, True])
async def test_a_worker_backing_off_lets_the_next_item_start_only_when_lending(
    lending: bool,
) -> None:
    # Item 0 backs off until item 1 has run: without lending, item 1 waits for item 0.
    second_ran = anyio.Event()
    order: list[str] = []

    async def work(item: int) -> None:
        if item == 0:
            lend_a_worker()
            with anyio.move_on_after(0.5):
                await second_ran.wait()
            order.append("0 after its backoff")
        else:
            order.append(f"{item}")
            if item == 1:
                second_ran.set()

    await for_each(range(3), work, 1, lending=lending)
    if lending:
        assert order == ["1", "0 after its backoff", "2"]
    else:
        assert order == ["0 after its backoff", "1", "2"]


async def test_lending_never_has_more_than_twice_the_workers_in_progress() -> None:
    # Every item backs off twice (an outage): each lends, yet no more than 2 x 2 run at once.
    tally = Tally()

    async def work(item: int) -> None:
        tally.enter(item)
        for _ in range(2):
            lend_a_worker()
            await anyio.sleep(0.005)
        tally.leave()

    await for_each(range(20), work, 2, lending=True)
    assert sorted(tally.started) == list(range(20))
    assert tally.most == 4


async def test_a_backoff_outside_any_lending_loop_lends_nothing() -> None:
    lend_a_worker()  # no loop: nothing to lend, nothing raised
    tally = Tally()

    async def work(item: int) -> None:
        tally.enter(item)
        lend_a_worker()
        await anyio.sleep(0.005)
        tally.leave()

    await for_each(range(6), work, 2)  # lending=False
    assert tally.most == 2
