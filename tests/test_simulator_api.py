"""The simulator speaks Unipile v2 as unipile-v2.md describes it: shapes, auth, pages, rules."""

from __future__ import annotations

from typing import Any

import pytest

from bulkgroups.model import parse_rate
from bulkgroups.simulator import Simulator, initial_members, owner_id, person, pool_id

from helpers.simulator import Http, SimFactory, segment

ACCOUNT_FIELDS = {"object", "id", "user_id", "created_at", "application_id", "status", "provider"}
CHAT_FIELDS = {
    "object", "id", "name", "type", "is_group", "is_1to1", "is_channel", "is_readonly",
    "is_pinned", "is_archived", "folders", "unread_count", "muted_until", "provider",
}  # fmt: skip
ERROR_FIELDS = {"object", "type", "status", "title", "detail", "req_id"}


def participants_path(account: str, chat: str, query: str = "") -> str:
    return f"/v2/{segment(account)}/chats/{segment(chat)}/participants{query}"


async def all_participants(
    http: Http, sim: Simulator, account: str, chat: str, limit: int
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = f"?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        answer = await http.get(sim, participants_path(account, chat, query))
        assert answer.status == 200, answer.body
        page = answer.json()
        items.extend(page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def assert_problem(answer: Any, status: int, type_: str) -> None:
    assert answer.status == status, answer.body
    body = answer.json()
    assert set(body) >= ERROR_FIELDS
    assert body["object"] == "Error"
    assert (body["status"], body["type"]) == (status, type_)
    assert body["req_id"] == answer.headers["x-request-id"]


# ---- shapes ----------------------------------------------------------------------------------


async def test_account_has_every_required_field_and_a_deterministic_owner(
    sim: Simulator, http: Http
) -> None:
    answer = await http.get(sim, "/v2/accounts/acc_1")
    assert answer.status == 200
    account = answer.json()
    assert set(account) >= ACCOUNT_FIELDS
    assert account["object"] == "Account"
    assert account["id"] == "acc_1"
    assert account["user_id"] == owner_id("acc_1") == sim.owner("acc_1")
    assert account["user_id"].startswith("ACoAO") and len(account["user_id"]) == 13
    assert (account["status"], account["provider"]) == ("running", "linkedin")
    assert answer.headers["x-request-id"]


async def test_chat_has_every_required_field(sim: Simulator, http: Http) -> None:
    answer = await http.get(sim, "/v2/acc_1/chats/chat_1")
    assert answer.status == 200
    chat = answer.json()
    assert set(chat) >= CHAT_FIELDS
    assert chat["object"] == "Chat"
    assert (chat["id"], chat["name"], chat["type"]) == ("chat_1", "Group chat_1", "group")
    assert (chat["is_group"], chat["is_1to1"], chat["is_channel"]) == (True, False, False)
    assert chat["is_readonly"] is False
    assert chat["participants_count"] == len(initial_members("acc_1", "chat_1"))


async def test_participants_page_shape_and_owner_is_self(sim: Simulator, http: Http) -> None:
    answer = await http.get(sim, participants_path("acc_1", "chat_1", "?limit=100"))
    page = answer.json()
    assert set(page) >= {"data", "total_count", "next_cursor"}
    assert page["next_cursor"] is None
    for item in page["data"]:
        assert set(item) >= {"object", "user", "is_self", "is_admin"}
        assert item["object"] == "GroupParticipant"
        assert set(item["user"]) >= {"object", "id", "type", "display_name"}
        assert (item["user"]["object"], item["user"]["type"]) == ("User", "individual")
        assert item["user"]["display_name"] == person(item["user"]["id"]).display_name
        assert item["is_self"] is (item["user"]["id"] == owner_id("acc_1"))
    ids = [item["user"]["id"] for item in page["data"]]
    assert ids == list(initial_members("acc_1", "chat_1"))
    assert page["total_count"] == len(ids)


def test_generated_population_is_deterministic_and_documented() -> None:
    members = initial_members("acc_1", "chat_1")
    assert members == initial_members("acc_1", "chat_1")
    assert members[0] == owner_id("acc_1")
    assert 3 <= len(members) - 1 <= 12
    assert len(set(members)) == len(members)
    assert all(m.startswith("ACoAA") and 1 <= int(m[5:]) <= 500 for m in members[1:])
    sizes = {len(initial_members("acc_1", f"chat_{i}")) - 1 for i in range(200)}
    assert sizes == set(range(3, 13))
    names = {person(pool_id(n)).display_name for n in range(1, 501)}
    assert len(names) == 500
    assert person("somebody-new").display_name == person("somebody-new").display_name


# ---- auth ------------------------------------------------------------------------------------


async def test_missing_key_is_an_rfc7807_401(sim: Simulator, http: Http) -> None:
    assert_problem(
        await http.get(sim, "/v2/acc_1/chats/chat_1", key=None), 401, "api/missing_authorization"
    )


async def test_wrong_key_is_an_rfc7807_401(sim: Simulator, http: Http) -> None:
    answer = await http.get(sim, "/v2/accounts/acc_1", key="not-the-key")
    assert_problem(answer, 401, "api/expired_authorization")
    assert sim.api_key not in answer.body.decode()


async def test_unknown_endpoint_and_method_are_rfc7807(sim: Simulator, http: Http) -> None:
    assert_problem(await http.get(sim, "/v2/acc_1/messages"), 404, "api/resource_not_found")
    assert_problem(
        await http.call(sim, "PUT", "/v2/acc_1/chats/chat_1"), 405, "api/method_not_allowed"
    )


# ---- pagination ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 20, 100, 101, 250])
async def test_pages_cover_every_participant_exactly_once(
    sim_factory: SimFactory, http: Http, size: int
) -> None:
    sim = sim_factory(rate=parse_rate("1000/s"))
    people = [pool_id(n) for n in range(1, size + 1)]
    sim.configure_chat("acc_1", "chat_p", members=people, with_owner=False)
    for limit in (1, 7, 100):
        seen = await all_participants(http, sim, "acc_1", "chat_p", limit)
        assert [item["user"]["id"] for item in seen] == people


async def test_default_page_is_20_and_limit_is_clamped_to_100(sim: Simulator, http: Http) -> None:
    sim.configure_chat("acc_1", "chat_p", members=[pool_id(n) for n in range(1, 300)])
    default = (await http.get(sim, participants_path("acc_1", "chat_p"))).json()
    assert len(default["data"]) == 20
    assert default["total_count"] == 300
    clamped = (await http.get(sim, participants_path("acc_1", "chat_p", "?limit=1000"))).json()
    assert len(clamped["data"]) == 100
    assert clamped["next_cursor"]


async def test_a_big_chat_lists_1000_distinct_participants(sim: Simulator, http: Http) -> None:
    seen = await all_participants(http, sim, "acc_1", "big_room", 100)
    ids = {item["user"]["id"] for item in seen}
    assert len(seen) == len(ids) == 1000
    assert owner_id("acc_1") in ids


async def test_a_removal_while_paging_skips_nobody_else(sim: Simulator, http: Http) -> None:
    people = [pool_id(n) for n in range(1, 11)]
    sim.configure_chat("acc_1", "chat_p", members=people, with_owner=False)
    first = (await http.get(sim, participants_path("acc_1", "chat_p", "?limit=5"))).json()
    assert (
        await http.delete(sim, participants_path("acc_1", "chat_p", f"/{pool_id(2)}"))
    ).status == 200
    rest = (
        await http.get(
            sim, participants_path("acc_1", "chat_p", f"?limit=5&cursor={first['next_cursor']}")
        )
    ).json()
    assert [i["user"]["id"] for i in rest["data"]] == people[5:]


@pytest.mark.parametrize("query", ["?limit=0", "?limit=-1", "?limit=ten", "?cursor=garbage!"])
async def test_bad_limit_or_cursor_is_invalid_parameters(
    sim: Simulator, http: Http, query: str
) -> None:
    assert_problem(
        await http.get(sim, participants_path("acc_1", "chat_1", query)),
        400,
        "api/invalid_parameters",
    )


# ---- hostile ids -----------------------------------------------------------------------------

HOSTILE = [
    "a/b",
    "x?y=1",
    "#frag",
    "100%",
    "..",
    ".",
    "with space",
    "@home",
    "Zoë 日本",
    "%2F",
    "a+b",
]


@pytest.mark.parametrize("identifier", HOSTILE)
async def test_hostile_ids_reach_the_right_resource(
    sim: Simulator, http: Http, identifier: str
) -> None:
    account, chat = f"acc {identifier}", f"chat/{identifier}"
    sim.register_people(identifier)  # no provider id's shape: unknown until registered
    chat_answer = await http.get(sim, f"/v2/{segment(account)}/chats/{segment(chat)}")
    assert chat_answer.json()["id"] == chat
    added = await http.post(sim, participants_path(account, chat), {"user_id": identifier})
    assert added.status == 200, added.body
    assert identifier in sim.members(account, chat)
    removed = await http.delete(sim, participants_path(account, chat, "/" + segment(identifier)))
    assert removed.status == 200, removed.body
    assert identifier not in sim.members(account, chat)
    entry = sim.requests()[-1]
    assert (entry.account, entry.chat, entry.user) == (account, chat, identifier)


# ---- LinkedIn rules --------------------------------------------------------------------------


async def test_add_then_add_again_conflicts(sim: Simulator, http: Http) -> None:
    path = participants_path("acc_1", "chat_1")
    assert (await http.post(sim, path, {"user_id": "ACoAA0499"})).json() == {
        "object": "ParticipantAdded"
    }
    assert "ACoAA0499" in sim.members("acc_1", "chat_1")
    assert_problem(await http.post(sim, path, {"user_id": "ACoAA0499"}), 409, "api/conflict")


async def test_remove_then_remove_again_is_not_found(sim: Simulator, http: Http) -> None:
    member = initial_members("acc_1", "chat_1")[1]
    path = participants_path("acc_1", "chat_1", "/" + member)
    assert (await http.delete(sim, path)).json() == {"object": "ParticipantRemoved"}
    assert member not in sim.members("acc_1", "chat_1")
    assert_problem(await http.delete(sim, path), 404, "api/resource_not_found")


@pytest.mark.parametrize("body", [{}, {"user_id": ""}, {"user_id": 7}, {"user_id": "a\nb"}, [1]])
async def test_malformed_add_is_invalid_parameters(
    sim: Simulator, http: Http, body: object
) -> None:
    assert_problem(
        await http.post(sim, participants_path("acc_1", "chat_1"), body),
        400,
        "api/invalid_parameters",
    )


async def test_fifty_members_is_the_cap_owner_counted(sim: Simulator, http: Http) -> None:
    sim.configure_chat("acc_1", "chat_c", members=[pool_id(n) for n in range(1, 49)])
    path = participants_path("acc_1", "chat_c")
    assert (await http.post(sim, path, {"user_id": "ACoAA0100"})).status == 200
    assert len(sim.members("acc_1", "chat_c")) == 50
    assert_problem(
        await http.post(sim, path, {"user_id": "ACoAA0101"}), 422, "provider/unprocessable_entity"
    )
    assert len(sim.members("acc_1", "chat_c")) == 50


async def test_big_chats_cannot_grow_but_can_shrink(sim: Simulator, http: Http) -> None:
    assert_problem(
        await http.post(sim, participants_path("acc_1", "big_1"), {"user_id": "ACoAA0001"}),
        422,
        "provider/unprocessable_entity",
    )
    assert (await http.delete(sim, participants_path("acc_1", "big_1", "/ACoAB0001"))).status == 200


async def test_the_owner_leaving_makes_the_chat_read_only(sim: Simulator, http: Http) -> None:
    owner = owner_id("acc_1")
    assert (await http.delete(sim, participants_path("acc_1", "chat_1", "/" + owner))).status == 200
    chat = (await http.get(sim, "/v2/acc_1/chats/chat_1")).json()
    assert chat["is_readonly"] is True
    page = (await http.get(sim, participants_path("acc_1", "chat_1", "?limit=100"))).json()
    assert owner not in {item["user"]["id"] for item in page["data"]}
    for answer in (
        await http.post(sim, participants_path("acc_1", "chat_1"), {"user_id": "ACoAA0499"}),
        await http.delete(sim, participants_path("acc_1", "chat_1", "/" + owner)),
        await http.patch(sim, "/v2/acc_1/chats/chat_1", {"name": "x"}),
    ):
        assert_problem(answer, 403, "provider/insufficient_permissions")


async def test_rename_sets_the_name(sim: Simulator, http: Http) -> None:
    answer = await http.patch(sim, "/v2/acc_1/chats/chat_1", {"name": "Cohort 12"})
    assert answer.status == 200
    assert answer.json()["name"] == "Cohort 12"
    assert (await http.get(sim, "/v2/acc_1/chats/chat_1")).json()["name"] == "Cohort 12"
    assert_problem(
        await http.patch(sim, "/v2/acc_1/chats/chat_1", {"name": ""}), 400, "api/invalid_parameters"
    )


async def test_one_to_one_chats_are_not_groups(sim: Simulator, http: Http) -> None:
    chat = (await http.get(sim, "/v2/acc_1/chats/1to1_bob")).json()
    assert (chat["type"], chat["is_group"], chat["is_1to1"]) == ("1to1", False, True)
    assert_problem(
        await http.get(sim, participants_path("acc_1", "1to1_bob")), 400, "api/invalid_parameters"
    )
    assert_problem(
        await http.post(sim, participants_path("acc_1", "1to1_bob"), {"user_id": "ACoAA0001"}),
        400,
        "api/invalid_parameters",
    )


async def test_gone_and_deleted_chats_are_not_found(sim: Simulator, http: Http) -> None:
    assert_problem(await http.get(sim, "/v2/acc_1/chats/gone_1"), 404, "api/resource_not_found")
    sim.configure_chat("acc_1", "chat_1", deleted=True)
    assert_problem(await http.get(sim, "/v2/acc_1/chats/chat_1"), 404, "api/resource_not_found")
    assert_problem(
        await http.get(sim, participants_path("acc_1", "chat_1")), 404, "api/resource_not_found"
    )
    assert_problem(
        await http.delete(sim, participants_path("acc_1", "chat_1", "/x")),
        404,
        "api/resource_not_found",
    )


@pytest.mark.parametrize("account", ["acc_recruiter", "acc_salesnav_2", "acc_company"])
async def test_products_without_group_messaging_are_refused(
    sim: Simulator, http: Http, account: str
) -> None:
    assert (await http.get(sim, f"/v2/accounts/{account}")).json()["status"] == "running"
    for answer in (
        await http.get(sim, f"/v2/{account}/chats/chat_1"),
        await http.get(sim, participants_path(account, "chat_1")),
        await http.post(sim, participants_path(account, "chat_1"), {"user_id": "ACoAA0001"}),
    ):
        assert_problem(answer, 403, "api/insufficient_permissions")
        assert "group messaging is not available" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("account", "status", "type_"),
    [
        ("acc_disconnected", 401, "provider/invalid_authorization"),
        ("acc_paused", 403, "api/inactive_subscription"),
        ("acc_errored", 503, "provider/server_error"),
    ],
)
async def test_accounts_not_running(
    sim: Simulator, http: Http, account: str, status: int, type_: str
) -> None:
    state = account.removeprefix("acc_")
    assert (await http.get(sim, f"/v2/accounts/{account}")).json()["status"] == state
    assert_problem(await http.get(sim, f"/v2/{account}/chats/chat_1"), status, type_)
    sim.configure_account(account, status="running")
    assert (await http.get(sim, f"/v2/{account}/chats/chat_1")).status == 200


async def test_short_pages_still_cover_everyone_exactly_once(
    sim_factory: SimFactory, http: Http
) -> None:
    sim = sim_factory(rate=parse_rate("1000/s"), short_pages=True)
    people = [pool_id(n) for n in range(1, 121)]
    sim.configure_chat("acc_1", "chat_s", members=people, with_owner=False)
    first = (await http.get(sim, participants_path("acc_1", "chat_s", "?limit=100"))).json()
    assert len(first["data"]) < 100 and first["next_cursor"] is not None
    seen = await all_participants(http, sim, "acc_1", "chat_s", 100)
    assert [item["user"]["id"] for item in seen] == people


async def test_an_account_id_with_gone_does_not_exist(sim: Simulator, http: Http) -> None:
    # As a deleted account (or a typo) at Unipile: the account GET and every call on its behalf
    # are 404, counted by no limit, so that `account_not_found` can be met in the sandbox too.
    for path in (
        "/v2/accounts/acc_gone_1",
        "/v2/acc_gone_1/chats/chat_1",
        "/v2/acc_gone_1/chats/chat_1/participants",
        "/v2/acc_gone_1/chats?type=group",
        "/v2/acc_gone_1/users/me",
    ):
        assert_problem(await http.get(sim, path), 404, "api/resource_not_found")
    assert sim.timeline("acc_gone_1") == ()
    assert (await http.get(sim, "/v2/accounts/acc_1")).status == 200
