"""Listings end, and end complete: loops and truncations are read failures, never a plan.

Servers from tests/hostile.py hand out fresh cursors forever, page by offset only, or stop short of
their own count; the client follows what can be trusted (cursor, else offset) and raises
`PaginationError` (type `client/pagination`, not retryable) for the rest.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from bulkgroups.client import UnipileClient
from bulkgroups.errors import PaginationError, RequestRejected
from bulkgroups.paging import Listing, NextPage

from helpers.hostile import fresh_cursors, hostile, listing, people, problem, rejects_limit
from helpers.hostile import participant as participant_item

KEY = "sk-test-PAGING-0123456789abcdef"


async def members(server_url: str, **kw: Any) -> list[str]:
    settings = {k: kw.pop(k) for k in ("max_items", "page_size") if k in kw}
    async with UnipileClient(server_url, api_key=KEY, **settings) as client:
        return [p.user_id async for p in client.participants("acc_1", "chat_1", **kw)]


async def failure(server_url: str, **kw: Any) -> PaginationError:
    with pytest.raises(PaginationError) as raised:
        await members(server_url, **kw)
    error = raised.value
    assert (error.type, error.account, error.retryable) == ("client/pagination", "acc_1", False)
    return error


# ---- loops -------------------------------------------------------------------------------------


async def test_fresh_cursors_over_the_same_page_stop_at_the_second_page() -> None:
    async with hostile(fresh_cursors(new_people=False)) as server:
        error = await failure(server.url)
    assert str(error).startswith(
        "200 client/pagination: participants of chat chat_1: a page brought no new item yet asked"
    )
    assert len(server.arrivals) == 2


async def test_fresh_cursors_inventing_people_stop_once_past_the_count() -> None:
    # 17,340 pages in 15 minutes before: now the count the chat gave bounds the listing.
    async with hostile(fresh_cursors(new_people=True)) as server:
        error = await failure(server.url, expected_count=120)
    assert "200 items, far more than the 120 the API counts" in str(error)
    assert len(server.arrivals) == 2


async def test_one_new_person_per_page_stops_after_count_plus_one_pages() -> None:
    async with hostile(fresh_cursors(new_people=True, per_page=1)) as server:
        error = await failure(server.url, expected_count=3)
    assert "more than 4 pages for 3 items" in str(error)
    assert len(server.arrivals) == 4


async def test_without_any_count_the_item_cap_ends_the_listing() -> None:
    async with hostile(fresh_cursors(new_people=True)) as server:
        error = await failure(server.url, max_items=250)
    assert "more than 250 items, the client's cap" in str(error)
    assert len(server.arrivals) == 3


async def test_an_empty_last_page_with_a_cursor_ends_a_listing_that_is_complete() -> None:
    # A server may end a listing with an empty page that still carries a cursor: once everyone
    # the count promised is in, that is the end, not a loop.
    everyone = people(3)

    def ending_empty(*, counted: bool) -> Any:
        count = {"total_count": 3} if counted else {}

        async def reply(request: web.Request) -> web.StreamResponse:
            if "cursor" not in request.query:
                page = [participant_item(u) for u in everyone]
                return web.json_response({"data": page, **count, "next_cursor": "more"})
            return web.json_response({"data": [], **count, "next_cursor": "still-more"})

        return reply

    async with hostile(ending_empty(counted=True)) as server:
        assert await members(server.url) == everyone
        assert len(server.arrivals) == 2
    async with hostile(ending_empty(counted=False)) as server:  # nothing says it is complete
        await failure(server.url)


# ---- offset, truncation ------------------------------------------------------------------------


async def test_a_provider_without_cursors_is_paged_by_offset() -> None:
    everyone = people(250)
    async with hostile(listing(everyone, cursors=False)) as server:
        assert await members(server.url) == everyone
    assert server.pages() == [
        {"limit": "100"},
        {"offset": "100", "limit": "100"},
        {"offset": "200", "limit": "100"},
    ]


async def test_offset_pages_follow_what_each_page_actually_held() -> None:
    everyone = people(45)
    async with hostile(listing(everyone, cursors=False, page_size=20)) as server:
        assert await members(server.url) == everyone
    assert [p.get("offset") for p in server.pages()] == [None, "20", "40"]


async def test_a_listing_ending_short_of_its_total_count_is_a_failed_read() -> None:
    # No cursor, offset ignored: the server shows the first 100 of the 250 it counts, again.
    everyone = people(250)
    async with hostile(listing(everyone, cursors=False, offsets=False)) as server:
        error = await failure(server.url)
    assert "the listing ended with 100 of the 250 items the API counts (truncated)" in str(error)
    assert len(server.arrivals) == 2


async def test_a_listing_ending_short_of_the_chats_count_is_a_failed_read() -> None:
    # The pages say nothing of a total; the chat said 12 participants, 10 came.
    async with hostile(listing(people(10), total_count=-1)) as server:
        error = await failure(server.url, expected_count=12)
    assert "the listing ended with 10 of the 12 items" in str(error)
    assert server.pages()[-1] == {"offset": "10", "limit": "100"}


async def test_more_participants_than_counted_is_read_whole() -> None:
    # Someone joined between the chat's count and the listing: no reason to fail.
    everyone = people(13)
    async with hostile(listing(everyone, total_count=-1)) as server:
        assert await members(server.url, expected_count=12) == everyone


async def test_a_count_of_the_listing_itself_is_checked_without_the_callers() -> None:
    async with hostile(listing(people(30), page_size=10, total_count=35)) as server:
        error = await failure(server.url)
    assert "30 of the 35" in str(error)


# ---- limit -------------------------------------------------------------------------------------


async def test_a_refused_limit_is_dropped_once_and_for_the_clients_lifetime() -> None:
    everyone = people(30)
    async with (
        hostile(rejects_limit(listing(everyone, page_size=20))) as server,
        UnipileClient(server.url, api_key=KEY) as client,
    ):
        first = [p.user_id async for p in client.participants("acc_1", "chat_1")]
        second = [p.user_id async for p in client.participants("acc_1", "chat_2")]
    assert first == second == everyone
    assert server.pages() == [
        {"limit": "100"},  # refused: 400 api/invalid_parameters
        {},
        {"cursor": "at-20"},
        {},
        {"cursor": "at-20"},
    ]


async def test_a_limit_the_server_takes_is_kept() -> None:
    async with (
        hostile(rejects_limit(listing(people(5)), above=10)) as server,
        UnipileClient(server.url, api_key=KEY, page_size=10) as client,
    ):
        found = [p async for p in client.participants("acc_1", "chat_1")]
    assert len(found) == 5
    assert server.pages() == [{"limit": "10"}]


async def test_a_400_that_is_not_about_the_limit_is_raised_and_not_remembered() -> None:
    # Listing a 1to1 chat's participants is a 400 too: asked twice, then raised; the next
    # listing still sends its limit.
    async def one_to_one(request: web.Request) -> web.StreamResponse:
        if request.match_info["tail"].endswith("dm/participants"):
            return problem(400, "api/invalid_parameters", "not a group chat")
        return await listing(people(3))(request)

    async with hostile(one_to_one) as server, UnipileClient(server.url, api_key=KEY) as client:
        with pytest.raises(RequestRejected):
            _ = [p async for p in client.participants("acc_1", "dm")]
        assert len([p async for p in client.participants("acc_1", "group")]) == 3
    assert server.pages() == [{"limit": "100"}, {}, {"limit": "100"}]


async def test_a_400_on_a_later_page_is_not_retried_without_limit() -> None:
    inner = listing(people(150))

    async def later_pages_refused(request: web.Request) -> web.StreamResponse:
        if "cursor" in request.query:
            return problem(400, "api/invalid_parameters", "cursor expired")
        return await inner(request)

    async with hostile(later_pages_refused) as server:
        with pytest.raises(RequestRejected):
            await members(server.url)
    assert len(server.arrivals) == 2


@pytest.mark.parametrize("page_size", [1, 7, 100])
async def test_the_page_size_is_the_clients_setting(page_size: int) -> None:
    everyone = people(15)
    async with hostile(listing(everyone)) as server:
        assert await members(server.url, page_size=page_size) == everyone
    assert {p["limit"] for p in server.pages()} == {str(page_size)}


# ---- the bookkeeping alone, for any honest server -----------------------------------------------


@given(
    total=st.integers(min_value=0, max_value=300),
    sizes=st.lists(st.integers(min_value=1, max_value=100), min_size=1, max_size=50),
    announce=st.booleans(),
    by_offset=st.booleans(),
)
def test_an_honest_listing_of_any_shape_is_read_whole_without_error(
    total: int, sizes: list[int], announce: bool, by_offset: bool
) -> None:
    everyone = [f"u{i}" for i in range(total)]
    listing_ = Listing(
        "participants", "acc_1", max_items=10_000, expected=total if announce else None
    )
    position, page_number, got = 0, 0, []
    next_page: NextPage | None = NextPage()
    while next_page is not None:
        if next_page.offset is not None:
            position = next_page.offset
        size = sizes[page_number % len(sizes)]
        page = everyone[position : position + size]
        more = position + size < total
        cursor = f"c{position + size}" if more and not by_offset else None
        fresh, next_page = listing_.take(
            page,
            total_count=total if (announce or by_offset) else None,
            next_cursor=cursor,
            status=200,
        )
        got += [page[i] for i in fresh]
        position += len(page)
        page_number += 1
        assert page_number <= total + 1
    assert got == everyone


async def test_a_caller_stopping_early_sends_no_further_page() -> None:
    async with (
        hostile(listing(people(250))) as server,
        UnipileClient(server.url, api_key=KEY) as client,
    ):
        async for participant in client.participants("acc_1", "chat_1"):
            assert participant.user_id == people(1)[0]
            break
        assert len(server.arrivals) == 1
