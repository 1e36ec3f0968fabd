"""Unipile's rate windows, the strict violation count, LinkedIn's own limiter, and the cache.

Window arithmetic is shown with a fake clock through the simulator's own pipeline (no sockets, no
timing); what reaches the wire (429, headers, counting) is shown over real sockets with windows long
enough that a burst surely falls into one.
"""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkgroups.model import RateSpec, parse_rate
from bulkgroups.simulator import SimConfig, SimRequest, Simulator
from bulkgroups.simulator.limits import FixedWindow, StrictCounter

from helpers.simulator import Http, SimFactory


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def request(method: str = "GET", path: str = "/v2/acc_1/chats/chat_1", **kw: object) -> SimRequest:
    segments = tuple(path.split("?")[0].split("/")[1:])
    return SimRequest(method, segments, path, api_key="k", **kw)  # type: ignore[arg-type]


def offline(clock: FakeClock, **settings: object) -> Simulator:
    return Simulator(SimConfig(api_key="k", **settings), clock=clock)  # type: ignore[arg-type]


def header(reply: object, name: str) -> str | None:
    headers = dict((k.lower(), v) for k, v in reply.headers)  # type: ignore[attr-defined]
    return headers.get(name.lower())


# ---- the two views of a rate, by themselves --------------------------------------------------


def test_a_fixed_window_opens_at_the_first_request_and_counts_until_it_expires() -> None:
    window = FixedWindow(RateSpec(3, 10.0))
    states = [window.hit(t) for t in (5.0, 6.0, 14.9, 14.99)]
    assert [s.exceeded for s in states] == [False, False, False, True]
    assert [s.remaining for s in states] == [2, 1, 0, 0]
    assert states[0].reset == pytest.approx(10.0)
    assert states[3].reset == pytest.approx(0.01)
    assert states[3].retry_after == "1"
    fresh = window.hit(15.0)  # exactly T after the opening request: a new window
    assert (fresh.exceeded, fresh.remaining, fresh.reset) == (False, 2, 10.0)


def test_the_strict_counter_allows_even_spacing_and_catches_any_n_plus_one_within_t() -> None:
    counter = StrictCounter(RateSpec(3, 10.0))
    assert [counter.arrive(t) for t in (0.0, 3.34, 6.67, 10.0, 13.34, 16.67)] == [False] * 6
    assert counter.arrive(19.99) is True  # 10.0, 13.34, 16.67 all within the last 10 s
    assert counter.violations == 1


def test_a_burst_straddling_two_windows_passes_unipile_but_counts_as_violations() -> None:
    clock = FakeClock()
    sim = offline(clock, rate=RateSpec(5, 10.0))
    statuses = []
    for t in (0.0, 9.1, 9.2, 9.3, 9.4, 10.0, 10.1, 10.2, 10.3, 10.4):
        clock.now = 1000.0 + t
        statuses.append(sim.handle(request()).status)
    assert statuses == [200] * 10  # window 1 held 5, window 2 (opened at 10.0) holds 5
    assert sim.violations("acc_1") == 4  # each of 10.1 .. 10.4 had 5 earlier ones within 10 s


def test_retry_after_and_reset_headers_count_whole_seconds_to_the_window_end() -> None:
    clock = FakeClock()
    sim = offline(clock, rate=RateSpec(2, 60.0))
    first = sim.handle(request())
    assert (header(first, "x-ratelimit-limit"), header(first, "x-ratelimit-remaining")) == (
        "2",
        "1",
    )
    assert header(first, "x-ratelimit-reset") == "60"
    clock.now += 0.5
    sim.handle(request())
    clock.now += 14.2
    rejected = sim.handle(request())
    assert rejected.status == 429
    assert orjson.loads(rejected.body)["type"] == "api/too_many_requests"
    assert header(rejected, "Retry-After") == "46"  # 60 - 14.7 = 45.3, rounded up
    assert header(rejected, "x-ratelimit-reset") == "46"
    assert header(rejected, "x-ratelimit-remaining") == "0"
    clock.now = 1060.0
    assert sim.handle(request()).status == 200


def test_the_tighter_window_describes_a_write() -> None:
    clock = FakeClock()
    sim = offline(clock, rate=RateSpec(100, 1.0), write_rate=RateSpec(1, 60.0))
    body = orjson.dumps({"user_id": "ACoAA0499"})
    first = sim.handle(request("POST", "/v2/acc_1/chats/chat_1/participants", body=body))
    assert first.status == 200
    assert (header(first, "x-ratelimit-limit"), header(first, "x-ratelimit-remaining")) == (
        "1",
        "0",
    )
    clock.now += 1
    second = sim.handle(request("POST", "/v2/acc_1/chats/chat_1/participants", body=body))
    assert second.status == 429
    assert header(second, "Retry-After") == "59"
    assert sim.handle(request()).status == 200  # reads only meet the general window
    assert sim.violations_by_account()["acc_1"].write == 1


def test_cached_answers_are_as_old_as_the_cache_allows_and_say_so() -> None:
    clock = FakeClock()
    sim = offline(clock, cache_age=30.0)
    assert header(sim.handle(request()), "X-Cache") == "MISS"
    sim.configure_chat("acc_1", "chat_1", name="renamed in the LinkedIn app")
    clock.now += 12.7
    hit = sim.handle(request())
    assert (header(hit, "X-Cache"), header(hit, "Age")) == ("HIT", "12")
    assert orjson.loads(hit.body)["name"] == "Group chat_1"  # stale, as Unipile may answer
    fresh = sim.handle(request(no_cache=True))
    assert orjson.loads(fresh.body)["name"] == "renamed in the LinkedIn app"
    clock.now += 20
    assert header(sim.handle(request()), "X-Cache") == "HIT"  # the fresh read refreshed the cache
    clock.now += 10.5
    assert header(sim.handle(request()), "X-Cache") == "MISS"


# ---- over real sockets -------------------------------------------------------------------------


async def test_a_burst_of_n_plus_one_gets_exactly_one_429_and_one_violation(
    sim_factory: SimFactory, http: Http
) -> None:
    sim = sim_factory(rate=parse_rate("5/10s"))
    answers = [await http.get(sim, "/v2/acc_1/chats/chat_1") for _ in range(6)]
    assert [a.status for a in answers] == [200] * 5 + [429]
    assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["4", "3", "2", "1", "0", "0"]
    assert all(a.headers["x-ratelimit-limit"] == "5" for a in answers)
    assert 1 <= int(answers[-1].headers["Retry-After"]) <= 10
    body = answers[-1].json()
    assert (body["object"], body["type"], body["status"]) == ("Error", "api/too_many_requests", 429)
    assert sim.violations() == sim.violations("acc_1") == 1
    assert sim.violations("acc_2") == 0


async def test_rejected_requests_still_count_as_violations(
    sim_factory: SimFactory, http: Http
) -> None:
    sim = sim_factory(rate=parse_rate("2/10s"))
    statuses = [(await http.get(sim, "/v2/acc_1/chats/chat_1")).status for _ in range(5)]
    assert statuses == [200, 200, 429, 429, 429]
    assert sim.violations("acc_1") == 3
    assert [e.violation for e in sim.requests("acc_1")] == [False, False, True, True, True]


async def test_the_account_get_is_not_rate_limited(sim_factory: SimFactory, http: Http) -> None:
    sim = sim_factory(rate=parse_rate("1/10s"))
    answers = [await http.get(sim, "/v2/accounts/acc_1") for _ in range(5)]
    assert [a.status for a in answers] == [200] * 5
    assert "x-ratelimit-limit" not in answers[0].headers
    assert sim.violations() == 0
    assert (await http.get(sim, "/v2/acc_1/chats/chat_1")).status == 200


async def test_limits_are_per_account_and_configurable_per_account(
    sim: Simulator, http: Http
) -> None:
    sim.configure_account("acc_slow", rate="1/10s")
    assert (await http.get(sim, "/v2/acc_slow/chats/c")).status == 200
    assert (await http.get(sim, "/v2/acc_slow/chats/c")).status == 429
    fast = [await http.get(sim, "/v2/acc_fast/chats/c") for _ in range(3)]
    assert [a.status for a in fast] == [200] * 3
    assert fast[0].headers["x-ratelimit-limit"] == "20"
    assert sim.violations_by_account().keys() == {"acc_slow"}


async def test_the_write_limit_is_separate_from_the_general_one(
    sim_factory: SimFactory, http: Http
) -> None:
    sim = sim_factory(write_rate=parse_rate("2/10s"))
    path = "/v2/acc_1/chats/chat_1/participants"
    statuses = [
        (await http.post(sim, path, {"user_id": f"ACoAA04{n}"})).status for n in range(90, 93)
    ]
    assert statuses == [200, 200, 429]
    assert (await http.get(sim, path)).status == 200
    assert "ACoAA0492" not in sim.members("acc_1", "chat_1")
    counts = sim.violations_by_account()["acc_1"]
    assert (counts.general, counts.write, counts.total) == (0, 1, 1)


async def test_linkedins_own_limiter_answers_provider_429_without_retry_after(
    sim_factory: SimFactory, http: Http
) -> None:
    sim = sim_factory(provider_write_limit=2)
    path = "/v2/acc_1/chats/chat_1/participants"
    answers = [await http.post(sim, path, {"user_id": f"ACoAA04{n}"}) for n in range(90, 94)]
    assert [a.status for a in answers] == [200, 200, 429, 429]
    assert answers[2].json()["type"] == "provider/too_many_requests"
    assert "Retry-After" not in answers[2].headers
    assert "ACoAA0492" not in sim.members("acc_1", "chat_1")
    assert (await http.get(sim, path)).status == 200  # reads still go through
    sim.configure_account("acc_2", provider_write_limit=0)
    refused = await http.post(sim, "/v2/acc_2/chats/c/participants", {"user_id": "ACoAA0001"})
    assert refused.json()["type"] == "provider/too_many_requests"


async def test_cache_hits_carry_x_cache_and_age_and_spend_no_rate(
    sim_factory: SimFactory, http: Http
) -> None:
    sim = sim_factory(rate=parse_rate("2/10s"), cache_age=60)
    path = "/v2/acc_1/chats/chat_1/participants"
    answers = [await http.get(sim, path) for _ in range(5)]
    assert [a.status for a in answers] == [200] * 5
    assert [a.headers["X-Cache"] for a in answers] == ["MISS"] + ["HIT"] * 4
    assert all(int(a.headers["Age"]) >= 0 for a in answers[1:])
    assert len(sim.timeline("acc_1")) == 1
    fresh = await http.get(sim, path, headers={"Cache-Control": "no-cache"})
    assert (fresh.status, fresh.headers["X-Cache"]) == (200, "MISS")
    assert sim.violations() == 0


async def test_a_write_invalidates_the_chats_cached_reads(
    sim_factory: SimFactory, http: Http
) -> None:
    sim = sim_factory(cache_age=60)
    path = "/v2/acc_1/chats/chat_1/participants?limit=100"
    before = await http.get(sim, path)
    other = await http.get(sim, "/v2/acc_1/chats/chat_2")
    assert (
        await http.post(sim, "/v2/acc_1/chats/chat_1/participants", {"user_id": "ACoAA0499"})
    ).status == 200
    after = await http.get(sim, path)
    assert after.headers["X-Cache"] == "MISS"
    assert "ACoAA0499" in {i["user"]["id"] for i in after.json()["data"]}
    assert "ACoAA0499" not in {i["user"]["id"] for i in before.json()["data"]}
    assert (await http.get(sim, "/v2/acc_1/chats/chat_2")).headers["X-Cache"] == "HIT"
    assert other.status == 200


# ---- properties ----------------------------------------------------------------------------------

arrivals = st.lists(st.integers(min_value=0, max_value=5000), min_size=1, max_size=80).map(sorted)


@settings(max_examples=200, deadline=None)
@given(times=arrivals, count=st.integers(1, 6), period=st.integers(1, 500))
def test_the_strict_count_is_the_number_of_requests_with_n_others_in_the_last_t(
    times: list[int], count: int, period: int
) -> None:
    counter = StrictCounter(RateSpec(count, float(period)))
    flagged = [counter.arrive(float(t)) for t in times]
    expected = [i >= count and times[i] - times[i - count] < period for i in range(len(times))]
    assert flagged == expected
    assert counter.violations == sum(expected)


@settings(max_examples=200, deadline=None)
@given(times=arrivals, count=st.integers(1, 6), period=st.integers(1, 500))
def test_a_client_without_violations_never_meets_a_429(
    times: list[int], count: int, period: int
) -> None:
    rate = RateSpec(count, float(period))
    counter, window = StrictCounter(rate), FixedWindow(rate)
    for t in times:
        violation = counter.arrive(float(t))
        rejected = window.hit(float(t)).exceeded
        assert violation or not rejected  # every 429 of the window is a strict violation too


@settings(max_examples=200, deadline=None)
@given(times=arrivals, count=st.integers(1, 6), period=st.integers(1, 500))
def test_a_fixed_window_accepts_at_most_n_per_window(
    times: list[int], count: int, period: int
) -> None:
    window = FixedWindow(RateSpec(count, float(period)))
    accepted_since_open: list[float] = []
    for t in times:
        state = window.hit(float(t))
        assert window.opened_at is not None
        accepted_since_open = [a for a in accepted_since_open if a >= window.opened_at]
        if not state.exceeded:
            accepted_since_open.append(float(t))
        assert len(accepted_since_open) <= count
        assert 0 < state.reset <= period
