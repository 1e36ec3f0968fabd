"""An account's chats in the simulator: starter chats from the start, cursor pages, type filter.

Also the stricter-where-the-SDK-is details of listings: `participants_count` is never below 1,
`limit` may come as `20.0`, and `offset` pages where no cursor is used.
"""

from __future__ import annotations

from typing import Any

import pytest

from bulkgroups.model import parse_rate
from bulkgroups.simulator import Simulator, initial_members, pool_id
from bulkgroups.simulator.population import starter_chat_name, starter_chats

from helpers.simulator import Http, SimFactory, segment

CHAT_FIELDS = {
    "object", "id", "name", "type", "is_group", "is_1to1", "is_channel", "is_readonly",
    "is_pinned", "is_archived", "folders", "unread_count", "muted_until", "provider",
}  # fmt: skip


def chats_path(account: str, query: str = "") -> str:
    return f"/v2/{segment(account)}/chats{query}"


async def all_chats(
    http: Http, sim: Simulator, account: str, query: str = "type=group&limit=2"
) -> list[dict[str, Any]]:
    chats: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = (
            await http.get(
                sim, chats_path(account, f"?{query}" + (f"&cursor={cursor}" * bool(cursor)))
            )
        ).json()
        chats += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            return chats


def test_every_account_has_a_deterministic_handful_of_starter_chats() -> None:
    chats = starter_chats("acc_1")
    assert chats == starter_chats("acc_1")
    groups, one_to_one = chats[:-1], chats[-1]
    assert 3 <= len(groups) <= 6
    assert one_to_one.startswith("1to1_")
    assert all(c.startswith("chat_") for c in groups)
    assert len({starter_chat_name("acc_1", c) for c in groups}) == len(groups)
    assert starter_chat_name("acc_1", one_to_one) is None
    sizes = {len(starter_chats(f"acc_{i}")) - 1 for i in range(100)}
    assert sizes == {3, 4, 5, 6}


async def test_a_fresh_account_lists_its_starter_group_chats(sim: Simulator, http: Http) -> None:
    listed = await all_chats(http, sim, "acc_fresh")
    groups = list(starter_chats("acc_fresh")[:-1])
    assert [c["id"] for c in listed] == groups
    for chat in listed:
        assert set(chat) >= CHAT_FIELDS
        assert (chat["type"], chat["is_group"]) == ("group", True)
        assert chat["name"] == starter_chat_name("acc_fresh", chat["id"])
        assert chat["participants_count"] == len(initial_members("acc_fresh", chat["id"]))
    assert sim.chats("acc_fresh") == starter_chats("acc_fresh")


async def test_chats_used_since_join_the_listing_and_deleted_ones_leave_it(
    sim: Simulator, http: Http
) -> None:
    assert (await http.get(sim, "/v2/acc_1/chats/cohort_x")).status == 200
    sim.configure_chat("acc_1", "dm_x", type="1to1", members=[pool_id(3)])
    sim.configure_chat("acc_1", starter_chats("acc_1")[0], deleted=True)
    groups = [c["id"] for c in await all_chats(http, sim, "acc_1")]
    assert groups == [*starter_chats("acc_1")[1:-1], "cohort_x"]
    everything = [c["id"] for c in await all_chats(http, sim, "acc_1", "limit=3")]
    assert everything == [*starter_chats("acc_1")[1:], "cohort_x", "dm_x"]
    one_to_one = [c["id"] for c in await all_chats(http, sim, "acc_1", "type=1to1")]
    assert one_to_one == [starter_chats("acc_1")[-1], "dm_x"]


async def test_a_chats_page_counts_and_pages_by_cursor(sim: Simulator, http: Http) -> None:
    for i in range(30):
        sim.configure_chat("acc_1", f"extra_{i:02d}")
    first = (await http.get(sim, chats_path("acc_1", "?type=group&limit=10"))).json()
    total = len(starter_chats("acc_1")) - 1 + 30
    assert (len(first["data"]), first["total_count"]) == (10, total)
    assert first["next_cursor"]
    default = (await http.get(sim, chats_path("acc_1", "?type=group"))).json()
    assert len(default["data"]) == 20
    assert len(await all_chats(http, sim, "acc_1", "type=group&limit=7")) == total


async def test_a_chats_page_pages_by_offset_too(sim: Simulator, http: Http) -> None:
    everything = await all_chats(http, sim, "acc_1", "type=group&limit=100")
    page = (await http.get(sim, chats_path("acc_1", "?type=group&limit=2&offset=1"))).json()
    assert [c["id"] for c in page["data"]] == [c["id"] for c in everything[1:3]]


@pytest.mark.parametrize("query", ["?type=room", "?limit=0", "?limit=abc", "?offset=-1"])
async def test_bad_chats_listing_parameters_are_invalid_parameters(
    sim: Simulator, http: Http, query: str
) -> None:
    answer = await http.get(sim, chats_path("acc_1", query))
    assert (answer.status, answer.json()["type"]) == (400, "api/invalid_parameters")


async def test_a_disconnected_accounts_listing_is_401_provider_invalid_authorization(
    sim: Simulator, http: Http
) -> None:
    answer = await http.get(sim, chats_path("acc_disconnected"))
    assert (answer.status, answer.json()["type"]) == (401, "provider/invalid_authorization")


@pytest.mark.parametrize("limit", ["20.0", "7.0", "100.0", "250.0", "7.9"])
async def test_limit_may_be_a_number_with_a_fraction_as_the_sdk_types_it(
    sim_factory: SimFactory, http: Http, limit: str
) -> None:
    sim = sim_factory(rate=parse_rate("1000/s"))
    sim.configure_chat("acc_1", "big_list", members=[pool_id(n) for n in range(1, 300)])
    answer = await http.get(sim, f"/v2/acc_1/chats/big_list/participants?limit={limit}")
    assert answer.status == 200, answer.body
    assert len(answer.json()["data"]) == min(int(float(limit)), 100)


async def test_participants_page_by_offset_where_no_cursor_is_given(
    sim: Simulator, http: Http
) -> None:
    people = [pool_id(n) for n in range(1, 31)]
    sim.configure_chat("acc_1", "c", members=people, with_owner=False)
    page = (await http.get(sim, "/v2/acc_1/chats/c/participants?limit=10&offset=25")).json()
    assert [i["user"]["id"] for i in page["data"]] == people[25:]
    assert page["next_cursor"] is None


async def test_participants_count_is_never_below_one(sim: Simulator, http: Http) -> None:
    sim.configure_chat("acc_1", "empty", members=[], with_owner=False)
    chat = (await http.get(sim, "/v2/acc_1/chats/empty")).json()
    assert "participants_count" not in chat  # optional, and >= 1 when given
    sim.configure_chat("acc_1", "alone", members=[])
    assert (await http.get(sim, "/v2/acc_1/chats/alone")).json()["participants_count"] == 1


async def test_a_write_refreshes_the_cached_chats_listing(
    sim_factory: SimFactory, http: Http
) -> None:
    sim = sim_factory(cache_age=60)
    chat = starter_chats("acc_1")[0]
    before = (await http.get(sim, chats_path("acc_1", "?type=group"))).json()["data"][0]
    added = await http.post(sim, f"/v2/acc_1/chats/{chat}/participants", {"user_id": "ACoAA0499"})
    assert added.status == 200
    after = await http.get(sim, chats_path("acc_1", "?type=group"))
    assert after.headers["X-Cache"] == "MISS"
    assert after.json()["data"][0]["participants_count"] == before["participants_count"] + 1
