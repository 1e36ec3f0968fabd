"""UnipileClient against the embedded simulator: pagination, hostile ids, writes, error answers.

The simulator runs in its own thread and event loop (the `sim` fixture); what it holds is read back
through its inspection API, so each test checks the effect on the right resource, not just the URL.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from bulkgroups.client import UnipileClient
from bulkgroups.errors import (
    AccountDisconnected,
    AccountRestricted,
    AuthError,
    Conflict,
    NotFound,
    PaginationError,
    PermissionDenied,
    RateLimited,
    RequestRejected,
    TransientError,
    TransportError,
    UnsupportedAccount,
)
from bulkgroups.model import Participant, RateLimitHeaders, RequestKind, UserProfile, parse_rate
from bulkgroups.simulator import Simulator, parse_faults

from helpers.simulator import SimFactory


@pytest.fixture
def account() -> str:
    """A fresh account per test, so a shared simulator's log and state never mix tests."""
    return f"acc_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[UnipileClient]:
    async with UnipileClient(sim.url, api_key=sim.api_key) as c:
        yield c


async def members_of(
    client: UnipileClient, account: str, chat: str, **kw: Any
) -> list[Participant]:
    """A chat's members as the engine reads them: the chat, then every page, with its count."""
    info = await client.get_chat(account, chat, fresh=True, **kw)
    return [
        p
        async for p in client.participants(
            account, chat, fresh=True, expected_count=info.participants_count, **kw
        )
    ]


def participant_pages(sim: Simulator, account: str) -> list[str]:
    return [
        r.path
        for r in sim.requests(account)
        if r.method == "GET" and r.path.split("?")[0].endswith("/participants")
    ]


async def test_a_1000_member_chat_lists_exactly_1000_distinct_participants(
    sim: Simulator, client: UnipileClient, account: str
) -> None:
    members = await members_of(client, account, "big_cohort")
    ids = [p.user_id for p in members]
    assert len(ids) == 1000
    assert len(set(ids)) == 1000
    assert set(ids) == sim.members(account, "big_cohort")
    assert [p.user_id for p in members if p.is_self] == [sim.owner(account)]
    assert len(participant_pages(sim, account)) == 10


@pytest.mark.parametrize(
    ("others", "with_owner", "pages"),
    [
        (0, False, 1),  # nobody at all (the owner left)
        (0, True, 1),  # the owner alone
        (99, True, 1),  # exactly one full page
        (100, True, 2),  # one page plus one
        (250, True, 3),
    ],
)
async def test_every_participant_is_listed_once_whatever_the_size(
    sim: Simulator, client: UnipileClient, others: int, with_owner: bool, pages: int, account: str
) -> None:
    members = [f"ACoAM{i:04d}" for i in range(others)]
    sim.configure_chat(account, "sized", members=members, with_owner=with_owner)
    listed = [p.user_id async for p in client.participants(account, "sized")]
    assert len(listed) == len(set(listed))
    assert set(listed) == sim.members(account, "sized")
    assert len(listed) == others + with_owner
    assert len(participant_pages(sim, account)) == pages


async def test_small_pages_still_reach_the_end(
    sim: Simulator, client: UnipileClient, account: str
) -> None:
    sim.configure_chat(account, "small_pages", members=[f"ACoAM{i:04d}" for i in range(30)])
    listed = [p.user_id async for p in client.participants(account, "small_pages", page_size=7)]
    assert set(listed) == sim.members(account, "small_pages")
    assert len(participant_pages(sim, account)) == 5  # 31 members in pages of 7


HOSTILE = [
    "a@b",
    "a/b",
    "a?b=c",
    "a#b",
    "100%",
    "%2F",
    "..",
    ".",
    "a b",
    "a+b",
    "caf\u00e9",
    "\u7fa4\u804a \U0001f600",
    "334455667788@s.whatsapp.net",
]


@pytest.mark.parametrize("hostile", HOSTILE)
async def test_hostile_ids_reach_the_right_resource(
    sim: Simulator, client: UnipileClient, hostile: str, account: str
) -> None:
    # The account id itself is hostile too: it is a path segment like the others.
    odd, chat = f"{account} {hostile}", f"chat {hostile}"
    sim.configure_chat(odd, chat, members=["ACoAA0001", hostile], name="before")
    sim.configure_chat(odd, hostile, members=["ACoAA0002"], name="neighbour")
    sim.register_people(f"new {hostile}")  # no provider id's shape: unknown until registered

    await client.remove_participant(odd, chat, hostile)
    await client.add_participant(odd, chat, f"new {hostile}")
    await client.rename_chat(odd, chat, f"after {hostile}")

    assert sim.members(odd, chat) == {sim.owner(odd), "ACoAA0001", f"new {hostile}"}
    assert (await client.get_chat(odd, chat)).name == f"after {hostile}"
    assert {p.user_id for p in await members_of(client, odd, chat)} == sim.members(odd, chat)
    # The chat whose id is the bare hostile string was never touched.
    assert sim.members(odd, hostile) == {sim.owner(odd), "ACoAA0002"}
    assert (await client.get_chat(odd, hostile)).name == "neighbour"


@pytest.mark.parametrize("hostile", ["..", ".", "a/b", "%2E%2E"])
async def test_hostile_ids_as_a_chat_id(
    sim: Simulator, client: UnipileClient, hostile: str, account: str
) -> None:
    sim.configure_chat(account, hostile, members=["ACoAA0001"], name="odd")
    await client.add_participant(account, hostile, "ACoAA0002")
    assert sim.members(account, hostile) == {sim.owner(account), "ACoAA0001", "ACoAA0002"}
    assert (await client.get_chat(account, hostile)).name == "odd"


async def test_a_member_named_dot_dot_is_removed_and_the_chat_stays(
    sim: Simulator, client: UnipileClient, account: str
) -> None:
    sim.configure_chat(account, "dots", members=["..", "ACoAA0001"])
    await client.remove_participant(account, "dots", "..")
    assert sim.members(account, "dots") == {sim.owner(account), "ACoAA0001"}
    assert not sim.chat(account, "dots").deleted


async def test_get_account_reads_the_owner(
    sim: Simulator, client: UnipileClient, account: str
) -> None:
    info = await client.get_account(account)
    assert (info.account_id, info.owner_id, info.status) == (
        account,
        sim.owner(account),
        "running",
    )


async def test_an_account_that_does_not_exist_is_not_found(client: UnipileClient) -> None:
    with pytest.raises(NotFound) as raised:
        await client.get_account("acc_gone_x")
    assert (raised.value.status, raised.value.type) == (404, "api/resource_not_found")


async def test_leaving_turns_the_chat_read_only(
    sim: Simulator, client: UnipileClient, account: str
) -> None:
    owner = (await client.get_account(account)).owner_id
    await client.remove_participant(account, "to_leave", owner)
    info = await client.get_chat(account, "to_leave", fresh=True)
    assert info.is_readonly
    with pytest.raises(PermissionDenied):
        await client.add_participant(account, "to_leave", "ACoAA0003")


async def test_a_1to1_chat_reads_as_not_a_group(client: UnipileClient, account: str) -> None:
    info = await client.get_chat(account, "1to1_dm")
    assert (info.type, info.is_group) == ("1to1", False)
    with pytest.raises(RequestRejected):
        _ = [p async for p in client.participants(account, "1to1_dm")]


async def test_simulated_errors_come_out_as_their_classes(
    sim: Simulator, client: UnipileClient, account: str
) -> None:
    with pytest.raises(NotFound):
        await client.get_chat(account, "gone_chat")
    members = sim.members(account, "g1")
    member = next(iter(members - {sim.owner(account)}))
    with pytest.raises(Conflict):
        await client.add_participant(account, "g1", member)
    with pytest.raises(NotFound):
        await client.remove_participant(account, "g1", "ACoANOBODY")
    with pytest.raises(AccountDisconnected):
        await client.get_chat(f"{account}_disconnected", "g1")
    with pytest.raises(AccountRestricted):
        await client.get_chat(f"{account}_paused", "g1")
    with pytest.raises(UnsupportedAccount):
        await client.get_chat(f"{account}_recruiter", "g1")


async def test_a_wrong_key_is_an_auth_error_that_does_not_show_either_key(
    sim: Simulator, account: str
) -> None:
    wrong = "sk-wrong-KANGAROO-1234567890"
    async with UnipileClient(sim.url, api_key=wrong) as c:
        with pytest.raises(AuthError) as raised:
            await c.get_account(account)
    text = str(raised.value) + repr(raised.value)
    assert wrong not in text
    assert sim.api_key not in text


async def test_the_gate_is_entered_for_the_chat_and_each_page(
    sim: Simulator, client: UnipileClient, account: str
) -> None:
    kinds: list[RequestKind] = []

    class Counting:
        def __call__(self, account: str, kind: RequestKind) -> _Entered:
            kinds.append(kind)
            return _Entered()

    sim.configure_chat(account, "gated", members=[f"ACoAM{i:04d}" for i in range(150)])
    members = await members_of(client, account, "gated", gate=Counting())
    assert len(members) == 151
    assert kinds == ["read", "read", "read"]
    assert len(sim.requests(account)) == 3


class _Entered:
    async def __aenter__(self) -> _Entered:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def observe(self, status: int, headers: RateLimitHeaders | None) -> None:
        assert headers is not None and headers.limit is not None  # the simulator sends them


@pytest.mark.parametrize(
    ("faults", "expected_type"),
    [
        ("reset=1", "transport/reset"),
        ("500=1", "api/internal_error"),
        ("502=1", None),
        ("503=1", None),
        ("504=1", None),
    ],
)
async def test_simulated_faults_are_transient(
    sim: Simulator, client: UnipileClient, account: str, faults: str, expected_type: str | None
) -> None:
    sim.set_faults(faults)
    with pytest.raises(TransientError) as raised:
        await members_of(client, account, "g1")
    if expected_type is not None:
        assert raised.value.type == expected_type
    assert raised.value.account == account


async def test_an_unknown_outcome_write_then_the_retry_finds_it_done(
    sim: Simulator, client: UnipileClient, account: str
) -> None:
    sim.set_faults("appliedreset=1")
    with pytest.raises(TransportError):
        await client.add_participant(account, "g1", "ACoAA0499")
    sim.set_faults("")
    assert "ACoAA0499" in sim.members(account, "g1")
    with pytest.raises(Conflict):
        await client.add_participant(account, "g1", "ACoAA0499")


async def test_over_the_simulated_limit_is_rate_limited_with_retry_after(
    sim_factory: SimFactory, account: str
) -> None:
    sim = sim_factory(rate=parse_rate("1/min"))
    async with UnipileClient(sim.url, api_key=sim.api_key) as c:
        await c.get_chat(account, "g1")
        with pytest.raises(RateLimited) as raised:
            await c.get_chat(account, "g1")
    assert raised.value.retry_after is not None
    assert 0 < raised.value.retry_after <= 60


async def test_fresh_reads_skip_the_simulated_cache(sim_factory: SimFactory, account: str) -> None:
    sim = sim_factory(cache_age=60)
    async with UnipileClient(sim.url, api_key=sim.api_key) as c:
        await c.get_chat(account, "g1")
        await c.get_chat(account, "g1")
        await c.get_chat(account, "g1", fresh=True)
        await members_of(c, account, "g1")
    assert [r.cached for r in sim.requests(account)] == [False, True, False, False, False]


# ---- what export and profile URLs need --------------------------------------------------------


async def test_a_fresh_account_lists_its_group_chats(
    sim: Simulator, client: UnipileClient, account: str
) -> None:
    listed = [c async for c in client.chats(account, page_size=2)]
    groups = [c for c in sim.chats(account) if not c.startswith("1to1_")]
    assert [c.chat_id for c in listed] == groups
    assert all(c.is_group and c.type == "group" and c.participants_count for c in listed)
    assert all(c.name == sim.chat(account, c.chat_id).name for c in listed)
    everything = [c.chat_id async for c in client.chats(account, type=None)]
    assert everything == list(sim.chats(account))
    assert [c.chat_id async for c in client.chats(account, type="1to1")] == [
        c for c in sim.chats(account) if c.startswith("1to1_")
    ]


async def test_a_profile_resolves_by_slug_or_id(
    sim: Simulator, client: UnipileClient, account: str
) -> None:
    by_slug = await client.get_user(account, "ann-kim-0161")
    assert by_slug == UserProfile(
        user_id="ACoAA0161",
        display_name="Ann Kim",
        public_identifier="ann-kim-0161",
        profile_url="https://www.linkedin.com/in/ann-kim-0161",
        first_name="Ann",
        last_name="Kim",
    )
    assert await client.get_user(account, "ACoAA0161") == by_slug
    assert (await client.get_user(account, "me")).user_id == sim.owner(account)
    with pytest.raises(NotFound):
        await client.get_user(account, "nobody-of-that-name")


async def test_adding_a_profile_url_as_a_user_id_is_rejected(
    sim: Simulator, client: UnipileClient, account: str
) -> None:
    url = "https://www.linkedin.com/in/ann-kim-0161"
    with pytest.raises(RequestRejected) as raised:
        await client.add_participant(account, "g1", url)
    assert raised.value.type == "api/invalid_parameters"
    assert url not in sim.members(account, "g1")


async def test_a_disconnected_account_is_account_disconnected(
    client: UnipileClient, account: str
) -> None:
    with pytest.raises(AccountDisconnected) as raised:
        await client.get_chat(f"{account}_disconnected", "g1")
    assert (raised.value.status, raised.value.type) == (401, "provider/invalid_authorization")


# ---- the simulator's faults against the client's limits ----------------------------------------


async def test_fresh_cursors_past_a_complete_listing_end_it_not_loop(
    sim: Simulator, client: UnipileClient, account: str
) -> None:
    # The simulator hands out a new cursor on every page, past the end too: once everyone its
    # total_count promised is in, the empty page after is the end (a loop without any count is
    # a failed read: tests/test_client_paging.py).
    everyone = [f"ACoAM{i:04d}" for i in range(130)]
    sim.configure_chat(account, "loop", members=everyone)
    sim.set_faults("fresh_cursor=1")
    read = {p.user_id for p in await members_of(client, account, "loop")}
    assert read >= set(everyone)
    assert len(participant_pages(sim, account)) == 3  # two pages, then the empty one
    assert [c async for c in client.chats(account)]


async def test_pages_always_cut_short_end_in_a_failed_read(
    sim: Simulator, client: UnipileClient, account: str
) -> None:
    sim.configure_chat(account, "cut", members=[f"ACoAM{i:04d}" for i in range(11)])
    sim.set_faults("short_page=1")
    with pytest.raises(PaginationError) as raised:
        await members_of(client, account, "cut")
    assert "of the 12 items the API counts (truncated)" in str(raised.value)


async def test_pages_sometimes_cut_short_are_completed_by_offset(
    sim_factory: SimFactory,
) -> None:
    # A fixed account and seed: the dice cut some pages, the client asks on by offset.
    sim = sim_factory(faults=parse_faults("short_page=0.5"), seed=0)
    sim.configure_chat("acc_offsets", "cut", members=[f"ACoAM{i:04d}" for i in range(250)])
    async with UnipileClient(sim.url, api_key=sim.api_key) as c:
        found = await members_of(c, "acc_offsets", "cut")
    assert {p.user_id for p in found} == sim.members("acc_offsets", "cut")
    pages = [
        r for r in sim.requests("acc_offsets") if r.path.split("?")[0].endswith("/participants")
    ]
    assert [r.fault for r in pages] == ["short_page", None, "short_page", None]
    assert [dict(r.query).get("offset") for r in pages] == [None, "50", None, "200"]


async def test_a_trickling_answer_ends_at_the_clients_deadline(
    sim: Simulator, account: str
) -> None:
    sim.set_faults("trickle=1")
    async with UnipileClient(sim.url, api_key=sim.api_key, request_timeout=1.0) as c:
        with anyio.fail_after(30):
            with pytest.raises(TransportError) as raised:
                await c.get_chat(account, "g1")
    assert raised.value.type == "transport/timeout"


async def test_an_endless_answer_ends_at_the_clients_cap(sim: Simulator, account: str) -> None:
    sim.set_faults("huge_body=1")
    async with UnipileClient(sim.url, api_key=sim.api_key) as c:
        with anyio.fail_after(60):
            with pytest.raises(TransportError) as raised:
                _ = [p async for p in c.participants(account, "g1")]
    assert raised.value.type == "transport/too_large"
