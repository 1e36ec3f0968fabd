"""One test per row of CONTRACT.md's outcomes table: status, reason (and error) in the ledger, and
what was — and was not — sent, read from the simulator's request log.

Every run goes through the real engine and the real client over a socket to the simulator. Where
a row needs the world to change between our requests (someone adds the member in the LinkedIn
app after our read, a proxy fails one write), the `Bystander` client makes that change in the
simulator just before or after the chosen request; nothing of the engine is replaced.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from bulkgroups.errors import error_from_response
from bulkgroups.model import AccountInfo, RateSpec
from bulkgroups.pacing import RetryPolicy
from bulkgroups.simulator import Simulator

from helpers.engine import ledger_records
from helpers.outcomes import (
    SIM_RATE,
    Bystander,
    outcomes,
    record,
    run_job,
    scoped,
    writes,
)
from helpers.simulator import Http, SimFactory

A = "acc_a"
ANN, BOB, CID, DAN, EVE = "ACoAA0001", "ACoAA0002", "ACoAA0003", "ACoAA0004", "ACoAA0005"


@pytest.fixture
def sim(sim_factory: SimFactory) -> Simulator:
    return sim_factory(rate=SIM_RATE)


def given(
    sim: Simulator, chat: str, *members: str, account: str = A, name: str | None = None
) -> None:
    """The chat holds the owner and `members` (and is called `name`)."""
    sim.configure_chat(account, chat, members=members, name=name)


def bystander(sim: Simulator) -> Bystander:
    return Bystander(sim.url, api_key=sim.api_key)


# ----------------------------------------------------------------------------- in place already


async def test_what_the_plan_read_shows_in_place_is_skipped_and_never_sent(
    sim: Simulator, tmp_path: Path
) -> None:
    given(sim, "c1", ANN, BOB, name="Cohort 1")
    result, records = await run_job(
        sim,
        tmp_path,
        [{"chat": "c1", "account": A, "add": [ANN], "remove": [CID], "rename": "Cohort 1"}],
    )
    assert outcomes(records) == [
        ("c1", "rename", "Cohort 1", "skipped", "same_name"),
        ("c1", "remove", CID, "skipped", "not_member"),
        ("c1", "add", ANN, "skipped", "already_member"),
    ]
    assert writes(sim, A) == []
    assert result.exit_code == 0


async def test_an_accepted_write_is_applied_after_one_attempt(
    sim: Simulator, tmp_path: Path
) -> None:
    given(sim, "c1", ANN, BOB)
    result, records = await run_job(
        sim,
        tmp_path,
        [
            {
                "chat": "c1",
                "account": A,
                "add": [CID],
                "remove": [BOB],
                "rename": "New",
                "leave": True,
            }
        ],
    )
    assert outcomes(records) == [
        ("c1", "rename", "New", "applied", None),
        ("c1", "remove", BOB, "applied", None),
        ("c1", "add", CID, "applied", None),
        ("c1", "leave", None, "applied", None),
    ]
    assert all(r["attempts"] == 1 and r["error"] is None for r in records)
    assert [
        (w.method, w.path.removeprefix("/v2/acc_a/chats/"), w.status) for w in writes(sim, A)
    ] == [
        ("PATCH", "c1", 200),
        ("DELETE", f"c1/participants/{BOB}", 200),
        ("POST", "c1/participants", 200),
        ("DELETE", f"c1/participants/{sim.owner(A)}", 200),
    ]
    assert CID in sim.members(A, "c1")
    assert sim.chat(A, "c1").readonly
    assert result.exit_code == 0


# ------------------------------------------------------------------ the state changed meanwhile


async def test_an_add_answered_409_on_its_first_attempt_is_skipped_already_member(
    sim: Simulator, tmp_path: Path
) -> None:
    given(sim, "c1", ANN)
    client = bystander(sim)
    # Someone adds Bob in the LinkedIn app after our read, before our add.
    client.before_write[1] = lambda: given(sim, "c1", ANN, BOB)
    result, records = await run_job(
        sim, tmp_path, [{"chat": "c1", "account": A, "add": [BOB]}], client=client
    )
    add = record(records, "add", BOB)
    assert (add["status"], add["reason"], add["attempts"]) == ("skipped", "already_member", 1)
    assert [(w.method, w.status, w.error_type) for w in writes(sim, A)] == [
        ("POST", 409, "api/conflict")
    ]
    assert result.exit_code == 0


async def test_a_remove_answered_404_on_its_first_attempt_is_skipped_not_member(
    sim: Simulator, tmp_path: Path
) -> None:
    given(sim, "c1", ANN, BOB)
    client = bystander(sim)
    client.before_write[1] = lambda: given(sim, "c1", ANN)  # Bob left on his own meanwhile
    result, records = await run_job(
        sim, tmp_path, [{"chat": "c1", "account": A, "remove": [BOB]}], client=client
    )
    remove = record(records, "remove", BOB)
    assert (remove["status"], remove["reason"], remove["attempts"]) == ("skipped", "not_member", 1)
    assert [(w.method, w.user, w.status) for w in writes(sim, A)] == [("DELETE", BOB, 404)]
    assert result.exit_code == 0


async def test_a_first_remove_answered_404_because_the_chat_is_gone_fails_chat_not_found(
    sim: Simulator, tmp_path: Path
) -> None:
    given(sim, "c1", ANN, BOB)
    client = bystander(sim)
    client.before_write[1] = lambda: sim.configure_chat(A, "c1", deleted=True)
    result, records = await run_job(
        sim, tmp_path, [{"chat": "c1", "account": A, "remove": [BOB, ANN]}], client=client
    )
    remove = record(records, "remove", BOB)
    assert (remove["status"], remove["reason"], remove["attempts"]) == (
        "failed",
        "chat_not_found",
        1,
    )
    # The 404 was ambiguous: the chat was read again (fresh) to tell.
    delete = writes(sim, A)[0]
    after = [r for r in scoped(sim, A) if r.seq > delete.seq]
    assert (after[0].method, after[0].path, after[0].status) == ("GET", "/v2/acc_a/chats/c1", 404)
    assert result.exit_code == 3


class ForbiddenChat(Bystander):
    """The real client, but writes to one chat are answered as Unipile answers a write it does
    not allow for this chat: 403 api/insufficient_permissions (reads of the chat still work)."""

    def __init__(self, *args: Any, chat: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.chat = chat
        self.refused = 0

    async def add_participant(self, account_id: str, chat_id: str, user_id: str, **kw: Any) -> None:
        if chat_id != self.chat:
            return await super().add_participant(account_id, chat_id, user_id, **kw)
        async with kw["gate"](account_id, "write"):
            self.refused += 1
            body = orjson.dumps({"type": "api/insufficient_permissions", "status": 403})
            raise error_from_response(403, body, account=account_id)


async def test_a_403_on_one_chats_write_fails_that_chat_and_the_account_carries_on(
    sim: Simulator, tmp_path: Path
) -> None:
    given(sim, "c1", ANN)
    given(sim, "c2", ANN)
    client = ForbiddenChat(sim.url, api_key=sim.api_key, chat="c1")
    result, records = await run_job(
        sim,
        tmp_path,
        [
            {"chat": "c1", "account": A, "add": [BOB, CID]},
            {"chat": "c2", "account": A, "add": [BOB]},
        ],
        client=client,
        chats_per_account=1,
    )
    assert outcomes(records) == [
        ("c1", "add", BOB, "failed", "api_error"),
        ("c1", "add", CID, "failed", "api_error"),  # not sent: the chat is off limits
        ("c2", "add", BOB, "applied", None),
    ]
    assert [r["error"]["type"] for r in records[:2]] == ["api/insufficient_permissions"] * 2
    assert [r["attempts"] for r in records] == [1, 0, 1]
    assert client.refused == 1
    assert result.exit_code == 3


async def test_a_403_on_a_write_that_the_chats_read_gets_too_stops_the_account_unsupported(
    sim: Simulator, tmp_path: Path
) -> None:
    given(sim, "c1", ANN)
    given(sim, "c2", ANN)
    client = bystander(sim)
    # The account turns out to be a Recruiter one: its writes and reads both get 403.
    client.before_write[1] = lambda: sim.configure_account(A, product="recruiter")
    result, records = await run_job(
        sim,
        tmp_path,
        [
            {"chat": "c1", "account": A, "add": [BOB, CID]},
            {"chat": "c2", "account": A, "add": [BOB]},
        ],
        client=client,
        chats_per_account=1,
    )
    assert {(r["status"], r["reason"]) for r in records} == {("failed", "unsupported_account")}
    assert [w.status for w in writes(sim, A)] == [403]
    assert scoped(sim, A)[-1].method == "GET"  # the re-read, then nothing more
    assert result.exit_code == 3


class MissingAccount(Bystander):
    """The real client, but one account's lookup is answered 404, as for a deleted account."""

    async def get_account(self, account_id: str, **kw: Any) -> AccountInfo:
        if account_id != "acc_deleted":
            return await super().get_account(account_id, **kw)
        body = orjson.dumps({"type": "api/resource_not_found", "status": 404, "req_id": "r404"})
        raise error_from_response(404, body, account=account_id)


async def test_an_account_lookup_answered_404_fails_its_operations_account_not_found(
    sim: Simulator, tmp_path: Path
) -> None:
    client = MissingAccount(sim.url, api_key=sim.api_key)
    result, records = await run_job(
        sim,
        tmp_path,
        [
            {"chat": "c1", "account": "acc_deleted", "add": [BOB], "rename": "X"},
            {"chat": "c1", "account": A, "add": [BOB]},
        ],
        client=client,
    )
    gone = [r for r in records if r["account"] == "acc_deleted"]
    assert {(r["status"], r["reason"]) for r in gone} == {("failed", "account_not_found")}
    assert gone[0]["error"]["req_id"] == "r404"
    assert sim.requests("acc_deleted") == ()
    assert outcomes([r for r in records if r["account"] == A]) == [
        ("c1", "add", BOB, "applied", None)
    ]
    assert result.exit_code == 3


def fail_once(sim: Simulator, client: Bystander, fault: str, write: int = 1) -> None:
    """The `write`-th write request meets `fault` (e.g. applied500: it takes effect, then 500)."""
    client.before_write[write] = lambda: sim.set_faults(f"{fault}=1")
    client.after_write[write] = lambda: sim.set_faults("")


async def test_an_add_retried_after_an_unknown_outcome_and_answered_409_is_applied(
    sim: Simulator, tmp_path: Path
) -> None:
    given(sim, "c1", ANN)
    client = bystander(sim)
    fail_once(sim, client, "applied500")
    result, records = await run_job(
        sim, tmp_path, [{"chat": "c1", "account": A, "add": [BOB]}], client=client
    )
    add = record(records, "add", BOB)
    assert (add["status"], add["reason"], add["attempts"], add["error"]) == (
        "applied",
        None,
        2,
        None,
    )
    assert [(w.method, w.status, w.fault) for w in writes(sim, A)] == [
        ("POST", 500, "applied500"),
        ("POST", 409, None),
    ]
    assert BOB in sim.members(A, "c1")
    assert result.exit_code == 0


async def test_a_remove_retried_after_a_reset_and_answered_404_is_applied(
    sim: Simulator, tmp_path: Path
) -> None:
    given(sim, "c1", ANN, BOB)
    client = bystander(sim)
    fail_once(sim, client, "appliedreset")  # took effect, but the connection broke
    result, records = await run_job(
        sim, tmp_path, [{"chat": "c1", "account": A, "remove": [BOB]}], client=client
    )
    remove = record(records, "remove", BOB)
    assert (remove["status"], remove["reason"], remove["attempts"]) == ("applied", None, 2)
    assert [(w.method, w.status, w.fault) for w in writes(sim, A)] == [
        ("DELETE", None, "appliedreset"),
        ("DELETE", 404, None),
    ]
    assert result.exit_code == 0


async def test_a_leave_retried_after_an_unknown_outcome_rereads_the_chat_and_is_applied(
    sim: Simulator, tmp_path: Path
) -> None:
    given(sim, "c1", ANN)
    client = bystander(sim)
    fail_once(sim, client, "applied500")
    result, records = await run_job(
        sim, tmp_path, [{"chat": "c1", "account": A, "leave": True}], client=client
    )
    leave = record(records, "leave")
    assert (leave["status"], leave["reason"], leave["attempts"]) == ("applied", None, 2)
    owner = sim.owner(A)
    assert [(w.method, w.user, w.status, w.error_type) for w in writes(sim, A)] == [
        ("DELETE", owner, 500, "api/internal_error"),
        ("DELETE", owner, 403, "provider/insufficient_permissions"),
    ]
    # After the 403 the chat was read again (fresh) and found read-only.
    after_403 = [r for r in scoped(sim, A) if r.seq > writes(sim, A)[-1].seq]
    assert after_403 and after_403[0].method == "GET" and after_403[0].path.endswith("/c1")
    assert sim.chat(A, "c1").readonly
    assert result.exit_code == 0


# ------------------------------------------------------------------------ refused chats


async def test_a_read_only_chat_skips_every_operation_and_its_leave_is_already_left(
    sim: Simulator, tmp_path: Path
) -> None:
    sim.configure_chat(A, "c1", members=[ANN], with_owner=False, readonly=True)
    sim.configure_chat(A, "c2", members=[ANN], with_owner=False, readonly=True)
    result, records = await run_job(
        sim,
        tmp_path,
        [
            {
                "chat": "c1",
                "account": A,
                "add": [BOB],
                "remove": [ANN],
                "rename": "X",
                "leave": True,
            },
            {"chat": "c2", "account": A, "members": [BOB]},
        ],
        chats_per_account=1,
    )
    assert outcomes(records) == [
        ("c1", "rename", "X", "skipped", "read_only"),
        ("c1", "remove", ANN, "skipped", "read_only"),
        ("c1", "add", BOB, "skipped", "read_only"),
        ("c1", "leave", None, "skipped", "already_left"),
        ("c2", "read", None, "skipped", "read_only"),
    ]
    # One chat GET each, and only the chat with a leave lists its participants (is the owner
    # still in it?); no write.
    assert [(r.method, r.path.rsplit("/", 1)[-1]) for r in scoped(sim, A)] == [
        ("GET", "c1"),
        ("GET", "participants"),
        ("GET", "c2"),
    ]
    assert result.exit_code == 0


async def test_a_leave_of_a_read_only_chat_that_still_lists_the_owner_is_skipped_read_only(
    sim: Simulator, tmp_path: Path
) -> None:
    # `is_readonly` is "read-only for the current user", not necessarily "left".
    sim.configure_chat(A, "c1", members=[ANN], readonly=True)
    result, records = await run_job(sim, tmp_path, [{"chat": "c1", "account": A, "leave": True}])
    assert outcomes(records) == [("c1", "leave", None, "skipped", "read_only")]
    assert writes(sim, A) == []
    assert result.exit_code == 0


async def test_a_chat_planned_above_its_member_cap_fails_whole_and_sends_nothing(
    sim: Simulator, tmp_path: Path
) -> None:
    given(sim, "c1", ANN, BOB, CID)
    result, records = await run_job(
        sim,
        tmp_path,
        [{"chat": "c1", "account": A, "add": [DAN, EVE], "remove": [ANN], "rename": "Big"}],
        accounts={A: {"max_members": 4}},  # owner + Bob, Cid, Dan, Eve = 5
    )
    assert outcomes(records) == [
        ("c1", "rename", "Big", "failed", "member_cap"),
        ("c1", "remove", ANN, "failed", "member_cap"),
        ("c1", "add", DAN, "failed", "member_cap"),
        ("c1", "add", EVE, "failed", "member_cap"),
    ]
    assert writes(sim, A) == []
    assert result.exit_code == 3


async def test_a_chat_that_is_gone_fails_chat_not_found_with_the_apis_error(
    sim: Simulator, tmp_path: Path
) -> None:
    result, records = await run_job(
        sim, tmp_path, [{"chat": "gone_1", "account": A, "add": [ANN], "leave": True}]
    )
    assert outcomes(records) == [
        ("gone_1", "add", ANN, "failed", "chat_not_found"),
        ("gone_1", "leave", None, "failed", "chat_not_found"),
    ]
    (read,) = scoped(sim, A)
    assert (read.method, read.status) == ("GET", 404)
    error = record(records, "add")["error"]
    assert error["status"] == 404 and error["type"] == "api/resource_not_found"
    assert error["req_id"] == read.req_id
    assert result.exit_code == 3


async def test_a_chat_that_is_not_a_group_fails_not_group_and_its_members_are_never_listed(
    sim: Simulator, tmp_path: Path
) -> None:
    result, records = await run_job(
        sim, tmp_path, [{"chat": "1to1_x", "account": A, "add": [ANN], "rename": "R"}]
    )
    assert outcomes(records) == [
        ("1to1_x", "rename", "R", "failed", "not_group"),
        ("1to1_x", "add", ANN, "failed", "not_group"),
    ]
    assert [(r.method, r.status) for r in scoped(sim, A)] == [("GET", 200)]
    assert result.exit_code == 3


# ---------------------------------------------------------------------------------- verify


async def test_a_write_accepted_without_effect_fails_not_effective_after_two_rereads(
    sim: Simulator, tmp_path: Path
) -> None:
    given(sim, "c1", ANN)
    client = bystander(sim)
    fail_once(sim, client, "ignored")  # 200, but nothing changes
    result, records = await run_job(
        sim, tmp_path, [{"chat": "c1", "account": A, "add": [BOB, CID]}], client=client
    )
    # Each outcome is recorded as it happens (the write was accepted); the chat's verifying
    # re-reads then amend the one that does not show with a `verify` record.
    assert outcomes(records) == [
        ("c1", "add", BOB, "applied", None),
        ("c1", "add", CID, "applied", None),
    ]
    verify = [r for r in ledger_records(tmp_path / "ledger.jsonl") if r["type"] == "verify"]
    assert [(r["op_id"], r["status"], r["reason"]) for r in verify] == [
        (record(records, "add", BOB)["op_id"], "failed", "not_effective")
    ]
    assert result.counts == {"applied": 1, "skipped": 0, "deferred": 0, "failed": 1}
    assert [(w.status, w.fault) for w in writes(sim, A)] == [(200, "ignored"), (200, None)]
    # Plan read, then two verifying re-reads (chat + participants each), all fresh.
    reads = [r for r in scoped(sim, A) if r.kind == "read"]
    assert len(reads) == 6
    assert BOB not in sim.members(A, "c1")
    assert result.exit_code == 3


async def test_without_verification_an_accepted_write_is_applied_and_not_reread(
    sim: Simulator, tmp_path: Path
) -> None:
    given(sim, "c1", ANN)
    client = bystander(sim)
    fail_once(sim, client, "ignored")
    result, records = await run_job(
        sim, tmp_path, [{"chat": "c1", "account": A, "add": [BOB]}], client=client, verify=False
    )
    assert outcomes(records) == [("c1", "add", BOB, "applied", None)]
    assert [r.kind for r in scoped(sim, A)] == ["read", "read", "write"]
    assert result.exit_code == 0


# ------------------------------------------------------------------- accounts that must stop


@pytest.mark.parametrize(
    ("account", "status", "reason"),
    [
        ("acc_disconnected_1", "failed", "account_disconnected"),
        ("acc_paused_1", "failed", "account_paused"),
        ("acc_errored_1", "deferred", "account_errored"),
    ],
)
async def test_an_account_not_running_at_preflight_sends_nothing_more(
    sim: Simulator, tmp_path: Path, account: str, status: str, reason: str
) -> None:
    given(sim, "c1", ANN)
    result, records = await run_job(
        sim,
        tmp_path,
        [
            {"chat": "c1", "account": account, "add": [BOB]},
            {"chat": "c2", "account": account, "members": [BOB], "leave": True},
            {"chat": "c1", "account": A, "add": [BOB]},
        ],
    )
    assert outcomes([r for r in records if r["account"] == account]) == [
        ("c1", "add", BOB, status, reason),
        ("c2", "read", None, status, reason),
        ("c2", "leave", None, status, reason),
    ]
    assert [r.kind for r in sim.requests(account)] == ["core"]
    assert outcomes([r for r in records if r["account"] == A]) == [
        ("c1", "add", BOB, "applied", None)
    ]
    assert result.exit_code == 3


@pytest.mark.parametrize(
    ("account", "change", "reason", "error"),
    [
        # Disconnected after the preflight: 401 provider/invalid_authorization on its first read.
        (
            "acc_a",
            {"status": "disconnected"},
            "account_auth",
            (401, "provider/invalid_authorization"),
        ),
        # Subscription lapsed after the preflight: 403 api/inactive_subscription.
        ("acc_a", {"status": "paused"}, "account_restricted", (403, "api/inactive_subscription")),
        # A Recruiter account looks like any other in its account GET.
        ("acc_recruiter_1", {}, "unsupported_account", (403, "api/insufficient_permissions")),
    ],
)
async def test_an_account_wide_error_fails_the_account_after_its_first_such_answer(
    sim: Simulator,
    tmp_path: Path,
    account: str,
    change: dict[str, str],
    reason: str,
    error: tuple[int, str],
) -> None:
    client = bystander(sim)
    client.after_preflight = lambda: sim.configure_account(account, **change)  # type: ignore[arg-type]
    result, records = await run_job(
        sim,
        tmp_path,
        [{"chat": f"c{i}", "account": account, "add": [BOB]} for i in range(4)],
        client=client,
        chats_per_account=1,
    )
    assert {(r["status"], r["reason"]) for r in records} == {("failed", reason)}
    (first,) = scoped(sim, account)  # nothing was sent after the first such answer
    assert (first.status, first.error_type) == error
    c0 = next(r for r in records if r["chat"] == "c0")
    assert (c0["error"]["status"], c0["error"]["type"], c0["error"]["req_id"]) == (
        *error,
        first.req_id,
    )
    assert result.exit_code == 3


async def test_an_account_disconnected_between_its_writes_fails_its_remaining_operations(
    sim: Simulator, tmp_path: Path
) -> None:
    given(sim, "c1", ANN)
    given(sim, "c2", ANN)
    client = bystander(sim)
    client.after_write[1] = lambda: sim.configure_account(A, status="disconnected")
    result, records = await run_job(
        sim,
        tmp_path,
        [
            {"chat": "c1", "account": A, "add": [BOB, CID]},
            {"chat": "c2", "account": A, "add": [BOB]},
        ],
        client=client,
        chats_per_account=1,
        verify=False,
    )
    assert outcomes(records) == [
        ("c1", "add", BOB, "applied", None),
        ("c1", "add", CID, "failed", "account_auth"),
        ("c2", "add", BOB, "failed", "account_auth"),
    ]
    assert [(w.status, w.error_type) for w in writes(sim, A)] == [
        (200, None),
        (401, "provider/invalid_authorization"),
    ]
    assert scoped(sim, A)[-1].status == 401  # nothing after it
    assert [r["attempts"] for r in records] == [1, 1, 0]
    assert result.exit_code == 3


async def test_linkedins_own_429_defers_that_write_and_the_accounts_remaining_operations(
    sim: Simulator, tmp_path: Path
) -> None:
    for chat in ("c1", "c2"):
        given(sim, chat, ANN)
    sim.configure_account(A, provider_write_limit=2)
    result, records = await run_job(
        sim,
        tmp_path,
        [
            {"chat": "c1", "account": A, "add": [BOB, CID, DAN]},
            {"chat": "c2", "account": A, "add": [BOB]},
        ],
        chats_per_account=1,
    )
    assert outcomes(records) == [
        ("c1", "add", BOB, "applied", None),
        ("c1", "add", CID, "applied", None),
        ("c1", "add", DAN, "deferred", "provider_rate_limited"),
        ("c2", "add", BOB, "deferred", "provider_rate_limited"),
    ]
    met = record(records, "add", DAN)
    assert (met["attempts"], met["error"]["status"], met["error"]["type"]) == (
        1,
        429,
        "provider/too_many_requests",
    )
    assert [w.status for w in writes(sim, A)] == [200, 200, 429]
    assert scoped(sim, A)[-1].error_type == "provider/too_many_requests"  # nothing after it
    assert result.exit_code == 3


async def test_a_retry_after_beyond_the_retry_budget_defers_the_account_rate_limited(
    sim: Simulator, http: Http, tmp_path: Path
) -> None:
    given(sim, "c1", ANN)
    given(sim, "c2", ANN)
    given(sim, "c3", ANN)
    sim.configure_account(A, write_rate="1/10s")
    # Someone else's write has just spent the account's write window: our first write meets a
    # 429 whose Retry-After (~10 s) is over the budget. (A window our own answers show spent,
    # Remaining 0, is waited out in the pacer instead: tests/test_pacing_sim.py.)
    await http.post(sim, f"/v2/{A}/chats/c3/participants", {"user_id": EVE})
    result, records = await run_job(
        sim,
        tmp_path,
        [
            {"chat": "c1", "account": A, "add": [BOB, CID]},
            {"chat": "c2", "account": A, "add": [BOB]},
        ],
        chats_per_account=1,
        verify=False,
        retry=RetryPolicy(attempts=4, budget=2.0, initial=0.01, maximum=0.05),
    )
    assert outcomes(records) == [
        ("c1", "add", BOB, "deferred", "rate_limited"),
        ("c1", "add", CID, "deferred", "rate_limited"),
        ("c2", "add", BOB, "deferred", "rate_limited"),
    ]
    error = record(records, "add", CID)["error"]
    assert (error["status"], error["type"]) == (429, "api/too_many_requests")
    assert [w.status for w in writes(sim, A)] == [200, 429]  # the other client's, ours
    assert scoped(sim, A)[-1].status == 429
    assert result.exit_code == 3


async def test_a_write_refused_by_429s_beyond_their_allowance_defers_the_account_not_fails(
    sim: Simulator, tmp_path: Path
) -> None:
    # Unipile's 429 says "not now": it spends the retry budget and an allowance of its own, not
    # the operation's attempts, and a limiter that keeps refusing defers the account.
    given(sim, "c1", ANN)
    given(sim, "c2", ANN)
    client = bystander(sim)
    client.before_write[1] = lambda: sim.set_faults("429=1")  # each with Retry-After: 1
    result, records = await run_job(
        sim,
        tmp_path,
        [
            {"chat": "c1", "account": A, "add": [BOB, CID]},
            {"chat": "c2", "account": A, "add": [BOB]},
        ],
        client=client,
        chats_per_account=1,
        verify=False,
        retry=RetryPolicy(attempts=3, budget=60.0, initial=0.01, maximum=0.02),
    )
    assert outcomes(records) == [
        ("c1", "add", BOB, "deferred", "rate_limited"),
        ("c1", "add", CID, "deferred", "rate_limited"),
        ("c2", "add", BOB, "deferred", "rate_limited"),
    ]
    met = records[0]
    assert (met["attempts"], met["error"]["status"], met["error"]["type"]) == (
        3,
        429,
        "api/too_many_requests",
    )
    assert [w.status for w in writes(sim, A)] == [429, 429, 429]
    assert scoped(sim, A)[-1].status == 429  # nothing after it
    assert result.exit_code == 3


async def test_429s_beyond_their_allowance_on_a_verifying_read_defer_the_account(
    sim: Simulator, tmp_path: Path
) -> None:
    # The read that verifies c1's write meets only 429s: the account is deferred, as after a
    # write's, and c2's write is not sent into the limiter.
    given(sim, "c1", ANN)
    given(sim, "c2", ANN)
    client = bystander(sim)
    client.after_write[1] = lambda: sim.set_faults("429=1")
    result, records = await run_job(
        sim,
        tmp_path,
        [
            {"chat": "c1", "account": A, "add": [BOB]},
            {"chat": "c2", "account": A, "add": [BOB]},
        ],
        client=client,
        chats_per_account=1,
        retry=RetryPolicy(attempts=2, budget=60.0, initial=0.01, maximum=0.02),
    )
    assert [(w.chat, w.status) for w in writes(sim, A)] == [("c1", 200)]
    assert outcomes(records)[-1] == ("c2", "add", BOB, "deferred", "rate_limited")
    assert result.exit_code == 3


async def test_a_long_run_of_failing_writes_defers_the_account_provider_rate_limited(
    sim: Simulator, tmp_path: Path
) -> None:
    given(sim, "c1", ANN)
    given(sim, "c2", ANN)
    client = bystander(sim)
    # From the first write on, every request of the account meets a 500: a limiter in disguise.
    client.before_write[1] = lambda: sim.set_faults("500=1")
    result, records = await run_job(
        sim,
        tmp_path,
        [
            {"chat": "c1", "account": A, "add": [BOB, CID, DAN]},
            {"chat": "c2", "account": A, "add": [BOB]},
        ],
        client=client,
        chats_per_account=1,
        retry=RetryPolicy(attempts=5, budget=5.0, initial=0.01, maximum=0.02),
    )
    # 5 attempts of the first add, 3 of the second: the 8th consecutive failure defers.
    assert outcomes(records) == [
        ("c1", "add", BOB, "failed", "api_error"),
        ("c1", "add", CID, "deferred", "provider_rate_limited"),
        ("c1", "add", DAN, "deferred", "provider_rate_limited"),
        ("c2", "add", BOB, "deferred", "provider_rate_limited"),
    ]
    assert [r["attempts"] for r in records] == [5, 3, 0, 0]
    assert records[0]["error"]["type"] == "api/internal_error"
    assert len(writes(sim, A)) == 8
    assert scoped(sim, A)[-1].kind == "write"  # not even a verifying read after the deferral
    assert result.exit_code == 3


# ------------------------------------------------------------------------- unreadable chats


async def test_a_desired_state_chat_that_cannot_be_read_gets_one_read_record(
    sim: Simulator, tmp_path: Path
) -> None:
    result, records = await run_job(
        sim,
        tmp_path,
        [
            {"chat": "gone_1", "account": A, "members": [ANN, BOB], "rename": "N", "leave": True},
            {"chat": "1to1_x", "account": A, "members": [ANN]},
            {"chat": "c1", "account": "acc_paused_2", "members": [ANN], "protect": [BOB]},
        ],
        chats_per_account=1,
    )
    assert outcomes(sorted(records, key=lambda r: r["account"])) == [
        ("gone_1", "read", None, "failed", "chat_not_found"),
        ("gone_1", "rename", "N", "failed", "chat_not_found"),
        ("gone_1", "leave", None, "failed", "chat_not_found"),
        ("1to1_x", "read", None, "failed", "not_group"),
        ("c1", "read", None, "failed", "account_paused"),
    ]
    assert [r.kind for r in sim.requests("acc_paused_2")] == ["core"]
    gone_read = next(r for r in records if r["chat"] == "gone_1" and r["action"] == "read")
    assert gone_read["attempts"] == 1 and gone_read["error"]["status"] == 404
    assert writes(sim, A) == []
    assert result.exit_code == 3


# ------------------------------------------------------------------------------- daily limit


async def test_the_daily_limit_counts_writes_across_runs_and_never_starts_a_chat_it_cannot_finish(
    sim: Simulator, tmp_path: Path
) -> None:
    for chat in ("c1", "c2", "c3"):
        given(sim, chat, ANN)
    accounts = {A: {"daily_limit": 4}}
    first, records = await run_job(
        sim, tmp_path, [{"chat": "c1", "account": A, "add": [BOB, CID]}], accounts=accounts
    )
    assert outcomes(records) == [
        ("c1", "add", BOB, "applied", None),
        ("c1", "add", CID, "applied", None),
    ]
    # A second run on the same ledger has 2 writes left today: c2 fits, c3 (3 writes) does not.
    second, records = await run_job(
        sim,
        tmp_path,
        [
            {"chat": "c2", "account": A, "add": [BOB]},
            {"chat": "c3", "account": A, "add": [BOB, CID, DAN]},
        ],
        accounts=accounts,
        job_name="second.yaml",
        chats_per_account=1,
    )
    assert outcomes(records) == [
        ("c2", "add", BOB, "applied", None),
        ("c3", "add", BOB, "deferred", "daily_limit"),
        ("c3", "add", CID, "deferred", "daily_limit"),
        ("c3", "add", DAN, "deferred", "daily_limit"),
    ]
    assert all(w.chat != "c3" for w in writes(sim, A))
    assert sim.members(A, "c3") == {sim.owner(A), ANN}
    assert (first.exit_code, second.exit_code) == (0, 3)


# --------------------------------------------------------------------------- other failures


async def test_any_other_api_error_fails_api_error_with_the_error_and_is_not_retried(
    sim_factory: SimFactory, tmp_path: Path
) -> None:
    sim = sim_factory(rate=SIM_RATE, member_cap=3)  # LinkedIn says the group is full at 3
    given(sim, "c1", ANN)
    result, records = await run_job(
        sim, tmp_path, [{"chat": "c1", "account": A, "add": [BOB, CID]}]
    )
    assert outcomes(records) == [
        ("c1", "add", BOB, "applied", None),
        ("c1", "add", CID, "failed", "api_error"),
    ]
    full = record(records, "add", CID)
    (post,) = [w for w in writes(sim, A) if w.status == 422]
    assert full["attempts"] == 1
    assert full["error"]["status"] == 422
    assert full["error"]["type"] == "provider/unprocessable_entity"
    assert full["error"]["req_id"] == post.req_id
    assert result.exit_code == 3


async def test_a_write_that_keeps_losing_its_connection_fails_with_a_transport_error(
    sim: Simulator, tmp_path: Path
) -> None:
    given(sim, "c1", ANN)
    client = bystander(sim)
    client.before_write[1] = lambda: sim.set_faults("reset=1")
    client.after_write[3] = lambda: sim.set_faults("")
    result, records = await run_job(
        sim,
        tmp_path,
        [{"chat": "c1", "account": A, "add": [BOB]}],
        client=client,
        retry=RetryPolicy(attempts=3, budget=5.0, initial=0.01, maximum=0.02),
    )
    add = record(records, "add", BOB)
    assert (add["status"], add["reason"], add["attempts"]) == ("failed", "api_error", 3)
    assert add["error"]["status"] is None
    assert add["error"]["type"] == "transport/reset"
    assert [(w.status, w.fault) for w in writes(sim, A)] == [(None, "reset")] * 3
    assert result.exit_code == 3


async def test_writes_waiting_in_the_pacer_when_the_account_stops_are_never_sent(
    sim: Simulator, tmp_path: Path
) -> None:
    for i in range(3):
        given(sim, f"c{i}", ANN)
    sim.configure_account(A, provider_write_limit=0)  # LinkedIn refuses the very first write
    result, records = await run_job(
        sim,
        tmp_path,
        [{"chat": f"c{i}", "account": A, "add": [BOB]} for i in range(3)],
        write_rate=RateSpec(1, 0.2),  # the other chats' writes wait for their turn meanwhile
    )
    assert {(r["status"], r["reason"]) for r in records} == {("deferred", "provider_rate_limited")}
    assert sorted(r["attempts"] for r in records) == [0, 0, 1]
    assert [w.status for w in writes(sim, A)] == [429]
    assert result.exit_code == 3


async def test_a_read_that_keeps_timing_out_fails_with_a_transport_timeout(
    sim: Simulator, tmp_path: Path
) -> None:
    given(sim, "c1", ANN)
    client = Bystander(sim.url, api_key=sim.api_key, read_timeout=0.1)
    client.after_preflight = lambda: sim.configure_account(A, latency=0.3)
    result, records = await run_job(
        sim,
        tmp_path,
        [{"chat": "c1", "account": A, "add": [BOB]}],
        client=client,
        retry=RetryPolicy(attempts=2, budget=5.0, initial=0.01, maximum=0.02),
    )
    add = record(records, "add", BOB)
    assert (add["status"], add["reason"], add["attempts"]) == ("failed", "api_error", 0)
    assert add["error"]["status"] is None
    assert add["error"]["type"] == "transport/timeout"
    assert [r.method for r in scoped(sim, A)] == ["GET", "GET"]  # the chat GET, twice
    assert writes(sim, A) == []
    assert result.exit_code == 3
