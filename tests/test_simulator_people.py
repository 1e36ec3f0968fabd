"""People in the simulator: profiles by slug or provider id, and adds of someone who is no one.

Known people: anyone with a provider id's shape (`ACo...`), anyone ever in a chat, anyone
registered. The users endpoint finds them by id or by the slug of their profile URL; an add of a
profile URL, a slug or free text is a 400, as the real service would answer a malformed id.
"""

from __future__ import annotations

import pytest

from bulkgroups.simulator import Simulator, initial_members, owner_id, person, pool_id
from bulkgroups.simulator.population import is_provider_id, pool_slug_owner

from helpers.simulator import Http, segment

PROFILE_FIELDS = {"object", "id", "type", "display_name", "is_blocked", "provider", "specifics"}


def user_path(account: str, identifier: str) -> str:
    return f"/v2/{segment(account)}/users/{segment(identifier)}"


def test_people_have_profile_urls_deterministic_from_their_ids() -> None:
    ann = person("ACoAA0161")
    assert (ann.display_name, ann.public_identifier) == ("Ann Kim", "ann-kim-0161")
    assert ann.profile_url == "https://www.linkedin.com/in/ann-kim-0161"
    assert (ann.first_name, ann.last_name) == ("Ann", "Kim")
    other = person("ACoAB0007")
    assert other == person("ACoAB0007")
    assert other.profile_url == f"https://www.linkedin.com/in/{other.public_identifier}"
    slugs = {person(pool_id(n)).public_identifier for n in range(1, 501)}
    assert len(slugs) == 500
    assert pool_slug_owner("Ann-Kim-0161") == "ACoAA0161"
    assert pool_slug_owner("ann-kim-0162") is None  # 162 is someone else
    assert pool_slug_owner("ann-kim-0501") is None


@pytest.mark.parametrize("identifier", ["ACoAA0161", "ann-kim-0161", "ANN-KIM-0161"])
async def test_a_profile_is_found_by_provider_id_or_slug(
    sim: Simulator, http: Http, identifier: str
) -> None:
    answer = await http.get(sim, user_path("acc_1", identifier))
    assert answer.status == 200, answer.body
    profile = answer.json()
    assert set(profile) >= PROFILE_FIELDS
    assert profile["object"] == "UserProfile"
    assert (profile["id"], profile["display_name"]) == ("ACoAA0161", "Ann Kim")
    assert profile["public_identifier"] == "ann-kim-0161"
    assert profile["profile_url"] == "https://www.linkedin.com/in/ann-kim-0161"
    assert profile["specifics"]["network_distance"] == "FIRST_DEGREE"


async def test_me_is_the_account_owner(sim: Simulator, http: Http) -> None:
    profile = (await http.get(sim, user_path("acc_1", "me"))).json()
    assert profile["id"] == owner_id("acc_1")
    assert profile["specifics"]["network_distance"] == "SELF"
    by_slug = await http.get(sim, user_path("acc_1", profile["public_identifier"]))
    assert by_slug.json()["id"] == owner_id("acc_1")


async def test_anyone_seen_in_a_chat_is_found_by_slug(sim: Simulator, http: Http) -> None:
    sim.configure_chat("acc_1", "team", members=["ACoAB0042", "odd member"])
    for user in ("ACoAB0042", "odd member"):
        answer = await http.get(sim, user_path("acc_1", person(user).public_identifier))
        assert answer.json()["id"] == user


@pytest.mark.parametrize(
    "identifier",
    [
        "nobody-at-all",
        "ann-kim-9999",
        "https://www.linkedin.com/in/ann-kim-0161",
        "ann kim",
    ],
)
async def test_an_unknown_identifier_is_not_found(
    sim: Simulator, http: Http, identifier: str
) -> None:
    answer = await http.get(sim, user_path("acc_1", identifier))
    assert (answer.status, answer.json()["type"]) == (404, "api/resource_not_found")


async def test_the_users_endpoint_is_account_scoped_like_any_read(
    sim: Simulator, http: Http
) -> None:
    answer = await http.get(sim, user_path("acc_disconnected", "me"))
    assert (answer.status, answer.json()["type"]) == (401, "provider/invalid_authorization")
    [entry] = sim.requests("acc_disconnected")
    assert (entry.kind, entry.user) == ("read", "me")
    assert "x-ratelimit-limit" in answer.headers


@pytest.mark.parametrize(
    "user",
    [
        "https://www.linkedin.com/in/ann-kim-0161",
        "linkedin.com/in/ann-kim-0161/",
        "ann-kim-0161",
        "Ann Kim",
        "acoaa0161",
    ],
)
async def test_adding_someone_who_is_no_known_person_is_invalid_parameters(
    sim: Simulator, http: Http, user: str
) -> None:
    answer = await http.post(sim, "/v2/acc_1/chats/chat_1/participants", {"user_id": user})
    assert (answer.status, answer.json()["type"]) == (400, "api/invalid_parameters")
    assert user not in sim.members("acc_1", "chat_1")


@pytest.mark.parametrize(
    "user", ["ACoAA0499", "ACoAB0500", "ACoAAAcDMMQBODyLwZrRcgYhrkCafURGqva0U4E", "ACoAM_x-1"]
)
async def test_adding_anyone_with_a_provider_ids_shape_works(
    sim: Simulator, http: Http, user: str
) -> None:
    assert is_provider_id(user)
    answer = await http.post(sim, "/v2/acc_1/chats/chat_1/participants", {"user_id": user})
    assert answer.status == 200, answer.body
    assert user in sim.members("acc_1", "chat_1")


async def test_someone_seen_in_any_chat_or_registered_can_be_added(
    sim: Simulator, http: Http
) -> None:
    sim.configure_chat("acc_2", "other", members=["whatsapp:1234"])
    sim.register_people("odd id")
    for user in ("whatsapp:1234", "odd id"):
        answer = await http.post(sim, "/v2/acc_1/chats/chat_1/participants", {"user_id": user})
        assert answer.status == 200, answer.body
    assert sim.members("acc_1", "chat_1") >= {"whatsapp:1234", "odd id"}


async def test_registering_people_over_http(sim: Simulator, http: Http) -> None:
    assert (await http.post(sim, "/_sim/people", {"people": ["x y"]})).status == 200
    assert (await http.post(sim, "/_sim/people", {"people": "x y"})).status == 400
    answer = await http.post(sim, "/v2/acc_1/chats/chat_1/participants", {"user_id": "x y"})
    assert answer.status == 200


def test_initial_members_are_all_known_people() -> None:
    members = initial_members("acc_1", "chat_1")
    assert all(is_provider_id(m) for m in members)
