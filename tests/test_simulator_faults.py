"""Injected faults: the `--faults` spec, seeded dice, and what each kind does on the wire."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bulkgroups.model import parse_rate
from bulkgroups.simulator import FaultSpec, Simulator, parse_faults, pool_id
from bulkgroups.simulator.faults import FaultDice

from helpers.simulator import Http, SimFactory

PARTICIPANTS = "/v2/acc_1/chats/chat_1/participants"


@pytest.fixture
async def fresh_http() -> AsyncIterator[Http]:
    """One connection per request: a reset must not be retried by connection reuse."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        yield Http(session)


# ---- the spec ----------------------------------------------------------------------------------


def test_the_contract_example_parses() -> None:
    spec = parse_faults("500=0.05,429=0.02,reset=0.01,applied500=0.01,latency=5ms")
    assert dict(spec.rates) == {"500": 0.05, "429": 0.02, "reset": 0.01, "applied500": 0.01}
    assert spec.latency == pytest.approx(0.005)
    assert parse_faults(str(spec)) == spec
    assert parse_faults("") == FaultSpec()
    assert parse_faults("latency=0.2s").latency == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("418=0.1", "unknown fault kind"),
        ("500=0.7,503=0.4", "more than 1"),
        ("500=lots", "not a probability"),
        ("500=-0.1", "within 0..1"),
        ("500", "KIND=VALUE"),
        ("latency=fast", "not a duration"),
        ("500=0.1,500=0.2", "twice"),
    ],
)
def test_bad_specs_are_refused_with_a_message(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_faults(text)


def test_the_dice_depend_only_on_seed_and_the_accounts_own_requests() -> None:
    spec = parse_faults("500=0.3,reset=0.2")
    one, two = FaultDice(spec, seed=7), FaultDice(spec, seed=7)
    alone = [one.roll("acc_a", is_write=False) for _ in range(50)]
    interleaved = []
    for _ in range(50):
        two.roll("acc_b", is_write=False)
        interleaved.append(two.roll("acc_a", is_write=False))
    assert alone == interleaved
    assert {"500", "reset", None} == set(alone)
    other_seed = FaultDice(spec, seed=8)
    assert [other_seed.roll("acc_a", is_write=False) for _ in range(50)] != alone


def test_write_only_kinds_pass_over_reads() -> None:
    dice = FaultDice(parse_faults("applied500=1"), seed=0)
    assert dice.roll("acc_1", is_write=False) is None
    assert dice.roll("acc_1", is_write=True) == "applied500"


# ---- on the wire -------------------------------------------------------------------------------


async def test_500_is_rfc7807_internal_error_and_changes_nothing(
    sim: Simulator, http: Http
) -> None:
    sim.set_faults("500=1")
    answer = await http.post(sim, PARTICIPANTS, {"user_id": "ACoAA0499"})
    body = answer.json()
    assert (answer.status, body["object"], body["type"]) == (500, "Error", "api/internal_error")
    assert body["req_id"] == answer.headers["x-request-id"]
    assert "ACoAA0499" not in sim.members("acc_1", "chat_1")
    assert (
        await http.get(sim, "/v2/accounts/acc_1")
    ).status == 200  # the core GET is never faulted
    assert [e.fault for e in sim.requests()] == ["500", None]


async def test_502_is_an_html_page_and_503_an_empty_body(sim: Simulator, http: Http) -> None:
    sim.set_faults("502=1")
    html = await http.get(sim, PARTICIPANTS)
    assert html.status == 502
    assert html.headers["Content-Type"].startswith("text/html")
    assert html.body.startswith(b"<html>")
    sim.set_faults("503=1")
    empty = await http.get(sim, PARTICIPANTS)
    assert (empty.status, empty.body) == (503, b"")


async def test_504_and_429_faults(sim: Simulator, http: Http) -> None:
    sim.set_faults("504=1")
    assert (await http.get(sim, PARTICIPANTS)).json()["type"] == "api/proxy_timeout"
    sim.set_faults("429=1")
    limited = await http.get(sim, PARTICIPANTS)
    assert (limited.status, limited.json()["type"]) == (429, "api/too_many_requests")
    assert limited.headers["Retry-After"] == "1"


async def test_reset_closes_the_connection_without_an_answer(
    sim: Simulator, fresh_http: Http
) -> None:
    sim.set_faults("reset=1")
    with pytest.raises(aiohttp.ClientConnectionError):
        await fresh_http.post(sim, PARTICIPANTS, {"user_id": "ACoAA0499"})
    assert "ACoAA0499" not in sim.members("acc_1", "chat_1")
    entry = sim.requests()[-1]
    assert (entry.status, entry.fault, entry.user) == (None, "reset", "ACoAA0499")


async def test_applied500_applies_the_write_then_answers_500(sim: Simulator, http: Http) -> None:
    sim.set_faults("applied500=1")
    assert (await http.get(sim, PARTICIPANTS)).status == 200  # reads pass
    answer = await http.post(sim, PARTICIPANTS, {"user_id": "ACoAA0499"})
    assert (answer.status, answer.json()["type"]) == (500, "api/internal_error")
    assert "ACoAA0499" in sim.members("acc_1", "chat_1")


async def test_appliedreset_applies_the_write_then_drops_the_connection(
    sim: Simulator, fresh_http: Http
) -> None:
    sim.set_faults("appliedreset=1")
    with pytest.raises(aiohttp.ClientConnectionError):
        await fresh_http.patch(sim, "/v2/acc_1/chats/chat_1", {"name": "Cohort 12"})
    assert sim.chat("acc_1", "chat_1").name == "Cohort 12"


async def test_ignored_answers_success_but_changes_nothing(sim: Simulator, http: Http) -> None:
    sim.set_faults("ignored=1")
    answer = await http.post(sim, PARTICIPANTS, {"user_id": "ACoAA0499"})
    assert (answer.status, answer.json()) == (200, {"object": "ParticipantAdded"})
    assert "ACoAA0499" not in sim.members("acc_1", "chat_1")
    member = sorted(sim.members("acc_1", "chat_1") - {sim.owner("acc_1")})[0]
    conflict = await http.post(sim, PARTICIPANTS, {"user_id": member})
    assert conflict.status == 409  # the rules still answer


async def test_a_fixed_seed_gives_the_same_faults_on_every_run(
    sim_factory: SimFactory, http: Http
) -> None:
    def statuses_of(seed: int) -> list[int | None]:
        return [e.status for e in sims[seed].requests()]

    sims = {
        seed: sim_factory(
            faults=parse_faults("500=0.3,503=0.2"), seed=seed, rate=parse_rate("1000/s")
        )
        for seed in (1, 2)
    }
    again = sim_factory(faults=parse_faults("500=0.3,503=0.2"), seed=1, rate=parse_rate("1000/s"))
    for sim in (*sims.values(), again):
        for _ in range(30):
            await http.get(sim, PARTICIPANTS)
    assert statuses_of(1) == [e.status for e in again.requests()]
    assert statuses_of(1) != statuses_of(2)
    assert {200, 500, 503} == set(statuses_of(1))


async def test_faults_meet_only_requests_past_the_limiter(
    sim_factory: SimFactory, http: Http
) -> None:
    sim = sim_factory(rate=parse_rate("1/10s"), faults=parse_faults("500=1"))
    assert [(await http.get(sim, PARTICIPANTS)).status for _ in range(2)] == [500, 429]


async def test_latency_delays_answers_globally_and_per_account(sim: Simulator, http: Http) -> None:
    sim.set_faults("latency=80ms")
    sim.configure_account("acc_slow", latency=0.25)
    assert sim.account("acc_1").latency == pytest.approx(0.08)
    assert sim.account("acc_slow").latency == pytest.approx(0.25)
    started = time.monotonic()
    assert (await http.get(sim, "/v2/accounts/acc_1")).status == 200
    assert time.monotonic() - started >= 0.08
    started = time.monotonic()
    assert (await http.get(sim, "/v2/acc_slow/chats/c")).status == 200
    assert time.monotonic() - started >= 0.25


# ---- listing and body faults (for the client's limits) -------------------------------------------


async def test_fresh_cursor_hands_out_a_new_cursor_on_every_page_even_past_the_end(
    sim: Simulator, http: Http
) -> None:
    sim.configure_chat("acc_1", "c", members=[pool_id(n) for n in range(1, 6)], with_owner=False)
    sim.set_faults("fresh_cursor=1")
    cursors, ids, query = [], [], "?limit=2"
    for _ in range(6):
        page = (await http.get(sim, f"/v2/acc_1/chats/c/participants{query}")).json()
        ids += [item["user"]["id"] for item in page["data"]]
        cursors.append(page["next_cursor"])
        query = f"?limit=2&cursor={page['next_cursor']}"
    assert ids == [pool_id(n) for n in range(1, 6)]  # the data stays right: only the end is lost
    assert len(set(cursors)) == 6 and None not in cursors
    assert {e.fault for e in sim.requests()} == {"fresh_cursor"}


async def test_short_page_cuts_a_page_in_half_without_a_cursor(sim: Simulator, http: Http) -> None:
    people = [pool_id(n) for n in range(1, 13)]
    sim.configure_chat("acc_1", "c", members=people, with_owner=False)
    sim.set_faults("short_page=1")
    page = (await http.get(sim, "/v2/acc_1/chats/c/participants?limit=100")).json()
    assert [i["user"]["id"] for i in page["data"]] == people[:6]
    assert (page["total_count"], page["next_cursor"]) == (12, None)
    chats = (await http.get(sim, "/v2/acc_1/chats?type=group")).json()
    assert chats["next_cursor"] is None and len(chats["data"]) < chats["total_count"]


async def test_listing_faults_pass_over_everything_but_listings(sim: Simulator, http: Http) -> None:
    sim.set_faults("fresh_cursor=0.5,short_page=0.5")
    assert (await http.get(sim, "/v2/acc_1/chats/chat_1")).status == 200
    assert (await http.get(sim, "/v2/acc_1/users/me")).status == 200
    added = await http.post(sim, PARTICIPANTS, {"user_id": "ACoAA0499"})
    assert added.status == 200
    assert [e.fault for e in sim.requests()] == [None, None, None]


async def test_trickle_sends_the_usual_answer_a_byte_at_a_time(
    sim_factory: SimFactory, http: Http
) -> None:
    sim = sim_factory(faults=parse_faults("trickle=1"), trickle_interval=0.01)
    answer = await http.get(sim, "/v2/acc_1/chats/chat_1")
    assert (answer.status, answer.json()["id"]) == (200, "chat_1")
    assert int(answer.headers["Content-Length"]) == len(answer.body)
    added = await http.post(sim, PARTICIPANTS, {"user_id": "ACoAA0499"})
    assert added.status == 200
    assert "ACoAA0499" in sim.members("acc_1", "chat_1")  # a write takes effect
    assert [e.fault for e in sim.requests()] == ["trickle", "trickle"]


async def test_huge_body_never_ends_until_the_client_hangs_up(sim: Simulator) -> None:
    sim.set_faults("huge_body=1")
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            sim.url + "/v2/acc_1/chats/chat_1", headers={"X-API-KEY": sim.api_key}
        ) as response,
    ):
        assert response.status == 200
        assert response.content_length is None
        received = 0
        async for chunk in response.content.iter_chunked(64 * 1024):
            received += len(chunk)
            if received > 8 * 1024 * 1024:
                break
    assert received > 8 * 1024 * 1024
    assert sim.requests()[-1].fault == "huge_body"


@pytest.mark.parametrize("kind", ["fresh_cursor", "short_page", "trickle", "huge_body"])
def test_the_new_kinds_parse_in_the_faults_syntax(kind: str) -> None:
    spec = parse_faults(f"{kind}=0.25,500=0.1")
    assert dict(spec.rates) == {kind: 0.25, "500": 0.1}
    assert parse_faults(str(spec)) == spec


def test_listing_kinds_roll_the_dice_on_every_request_but_meet_only_listings() -> None:
    dice = FaultDice(parse_faults("short_page=1"), seed=0)
    assert dice.roll("acc_1", is_write=False) is None
    assert dice.roll("acc_1", is_write=False, is_listing=True) == "short_page"
    assert dice.roll("acc_1", is_write=True) is None
