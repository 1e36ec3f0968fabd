"""Members named by LinkedIn profile, end to end against the simulator: resolved once per account
through the users endpoint, cached in the ledger, unresolvable ones failing only their own
operations, and nobody removed on account of a profile that could not be resolved (issue #14)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from bulkgroups.client import UnipileClient
from bulkgroups.engine import EngineConfig, RunResult, apply_job, plan_job_online
from bulkgroups.errors import AuthError, NotFound, RunRefused
from bulkgroups.jobs import load_job
from bulkgroups.model import Gate, Participant, UserProfile
from bulkgroups.planfile import dump_plan, load_plan
from bulkgroups.records import format_time, parse_time
from bulkgroups.simulator import LoggedRequest, Simulator, initial_members, owner_id, person

from helpers.cli import Cli, account_scoped, connect, writes
from helpers.engine import ledger_records, op_records, write_job
from helpers.outcomes import FAST, Bystander

ANN = "ACoAA0161"  # Ann Kim, linkedin.com/in/ann-kim-0161


def user_lookups(sim: Simulator, account: str | None = None) -> list[LoggedRequest]:
    return [r for r in sim.requests(account) if "/users/" in r.path]


def url(user: str) -> str:
    return person(user).profile_url


class Renamed(UnipileClient):
    """The real client, but LinkedIn no longer knows some profiles by their old address (the
    users endpoint answers 404 for `unknown` slugs), and, with `anonymous`, participants pages
    that give no public identifiers."""

    def __init__(
        self, *args: Any, unknown: frozenset[str] = frozenset(), anonymous: bool = False, **kw: Any
    ) -> None:
        super().__init__(*args, **kw)
        self.unknown = unknown
        self.anonymous = anonymous

    async def get_user(
        self, account_id: str, identifier: str, *, fresh: bool = False, gate: Gate | None = None
    ) -> UserProfile:
        if identifier in self.unknown:
            raise NotFound(status=404, type="api/resource_not_found", account=account_id)
        return await super().get_user(account_id, identifier, fresh=fresh, gate=gate)

    async def participants(  # type: ignore[override]
        self, account_id: str, chat_id: str, **kw: Any
    ) -> AsyncIterator[Participant]:
        async for participant in super().participants(account_id, chat_id, **kw):
            if self.anonymous:
                participant = Participant(
                    participant.user_id, participant.display_name, participant.is_self
                )
            yield participant


async def apply(
    sim: Simulator,
    job_path: Path,
    ledger: Path,
    *,
    config: EngineConfig = FAST,
    client: type[UnipileClient] | UnipileClient = UnipileClient,
    **client_settings: Any,
) -> RunResult:
    if isinstance(client, type):
        client = client(sim.url, api_key=sim.api_key, **client_settings)
    async with client as connected:
        return await apply_job(load_job(job_path), connected, ledger=ledger, config=config)


# ------------------------------------------------------------------------------- resolution


async def test_every_url_form_of_one_person_is_one_lookup_and_the_same_provider_id(
    sim: Simulator, tmp_path: Path
) -> None:
    forms = [
        "https://www.linkedin.com/in/ann-kim-0161/",
        "http://linkedin.com/in/Ann-Kim-0161?trk=public_profile",
        "https://uk.linkedin.com/in/ann-kim-0161#about",
        "linkedin.com/in/ann-kim-0161",
        "in:ann-kim-0161",
    ]
    chats = [
        {"chat": f"form_{i}", "account": "acc_1", "add": [form]} for i, form in enumerate(forms)
    ]
    job = write_job(tmp_path / "job.yaml", chats)

    result = await apply(sim, job, tmp_path / "ledger.jsonl")

    assert result.exit_code == 0, result.counts
    assert [r.path for r in user_lookups(sim)] == ["/v2/acc_1/users/ann-kim-0161"]
    assert all(ANN in sim.members("acc_1", f"form_{i}") for i in range(len(forms)))
    adds = [(r["user"], r["status"]) for r in op_records(tmp_path / "ledger.jsonl")]
    assert adds == [(ANN, "applied")] * len(forms)


async def test_each_account_resolves_its_own_profiles(sim: Simulator, tmp_path: Path) -> None:
    job = write_job(
        tmp_path / "job.yaml",
        [
            {"chat": "team", "account": "acc_1", "add": [url(ANN)]},
            {"chat": "crew", "account": "acc_1", "members": [url(ANN)]},
            {"chat": "team", "account": "acc_2", "add": [url(ANN)]},
        ],
    )
    result = await apply(sim, job, tmp_path / "ledger.jsonl", config=FAST)
    assert result.exit_code == 0, result.counts
    assert len(user_lookups(sim, "acc_1")) == 1
    assert len(user_lookups(sim, "acc_2")) == 1


async def test_the_same_person_by_url_and_by_id_is_the_same_operation(
    sim: Simulator, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.jsonl"
    by_url = write_job(
        tmp_path / "url.yaml", [{"chat": "team", "account": "acc_1", "add": [url(ANN)]}]
    )
    by_id = write_job(tmp_path / "id.yaml", [{"chat": "team", "account": "acc_1", "add": [ANN]}])
    await apply(sim, by_url, ledger)
    await apply(sim, by_id, ledger)
    records = op_records(ledger)
    assert [(r["user"], r["status"]) for r in records] == [
        (ANN, "applied"),
        (ANN, "skipped"),
    ]
    assert records[0]["op_id"] == records[1]["op_id"]


async def test_a_second_run_on_the_ledger_sends_no_users_request(
    sim: Simulator, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.jsonl"
    job = write_job(
        tmp_path / "job.yaml",
        [
            {"chat": "team", "account": "acc_1", "members": [url(ANN), url("ACoAA0162")]},
            {"chat": "crew", "account": "acc_1", "add": [url(ANN)]},
        ],
    )
    await apply(sim, job, ledger)
    assert len(user_lookups(sim)) == 2
    resolutions = [r for r in ledger_records(ledger) if r["type"] == "resolution"]
    assert [(r["account"], r["profile"], r["user_id"], r["display_name"]) for r in resolutions] == [
        ("acc_1", "in:ann-kim-0161", ANN, "Ann Kim"),
        ("acc_1", "in:ben-kim-0162", "ACoAA0162", "Ben Kim"),
    ]

    sim.reset_log()
    second = await apply(sim, job, ledger)

    assert user_lookups(sim) == []
    assert second.exit_code == 0
    assert [r for r in ledger_records(ledger) if r["type"] == "resolution"] == resolutions


async def test_a_resolution_too_old_is_looked_up_again(sim: Simulator, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    job = write_job(
        tmp_path / "job.yaml", [{"chat": "team", "account": "acc_1", "add": [url(ANN)]}]
    )
    await apply(sim, job, ledger)

    sim.reset_log()
    await apply(sim, job, ledger, config=replace(FAST, resolve_max_age=0.0))
    assert len(user_lookups(sim)) == 1

    # A resolution recorded 40 days ago is older than the default 30 days.
    aged = tmp_path / "aged.jsonl"
    records = ledger_records(ledger)
    old = format_time(parse_time(records[1]["at"]) - 40 * 86400)
    aged.write_bytes(
        b"".join(
            orjson.dumps({**r, "at": old} if r["type"] == "resolution" else r) + b"\n"
            for r in records
        )
    )
    sim.reset_log()
    await apply(sim, job, aged)
    assert len(user_lookups(sim)) == 1
    sim.reset_log()
    await apply(sim, job, aged)  # recorded again by the run that looked it up
    assert user_lookups(sim) == []


async def test_a_profile_that_could_not_be_resolved_is_never_cached(
    sim: Simulator, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.jsonl"
    job = write_job(
        tmp_path / "job.yaml", [{"chat": "team", "account": "acc_1", "add": ["in:nobody-at-all"]}]
    )
    await apply(sim, job, ledger)
    sim.reset_log()
    await apply(sim, job, ledger)
    assert [r.path for r in user_lookups(sim)] == ["/v2/acc_1/users/nobody-at-all"]
    assert not [r for r in ledger_records(ledger) if r["type"] == "resolution"]


def test_plan_with_a_ledger_reuses_its_resolutions_and_records_nothing(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.jsonl"
    job = write_job(
        tmp_path / "job.yaml", [{"chat": "team", "account": "acc_1", "add": [url(ANN)]}]
    )
    flags = connect(sim, tmp_path)
    assert cli.run("apply", job, "--ledger", ledger, *flags).code == 0
    before = ledger.read_bytes()
    sim.reset_log()

    run = cli.run("plan", job, "--ledger", ledger, *flags)

    assert run.code == 0, run.err
    assert user_lookups(sim) == []
    assert ledger.read_bytes() == before
    without = cli.run("plan", job, *flags)
    assert without.code == 0
    assert len(user_lookups(sim)) == 1


def test_plan_with_a_ledger_directory_reuses_the_resolutions_of_every_shard(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    directory = tmp_path / "ledgers"
    job = write_job(
        tmp_path / "job.yaml",
        [
            {"chat": "team", "account": "acc_1", "add": [url(ANN)]},
            {"chat": "team", "account": "acc_2", "add": [url(ANN)]},
        ],
    )
    flags = connect(sim, tmp_path)
    for index in (0, 1):  # each shard resolves its own account's profiles, in its own file
        ran = cli.run("apply", job, "--ledger", f"{directory}/", "--shard", f"{index}/2", *flags)
        assert ran.code == 0, ran.err
    assert len(list(directory.glob("shard-*.jsonl"))) == 2
    sim.reset_log()

    run = cli.run("plan", job, "--ledger", f"{directory}/", *flags)

    assert run.code == 0, run.err
    assert user_lookups(sim) == []


# ------------------------------------------------------------------------- unresolvable people


async def test_an_unresolvable_profile_fails_only_its_own_operations(
    sim: Simulator, tmp_path: Path
) -> None:
    current = initial_members("acc_1", "team")
    ledger = tmp_path / "ledger.jsonl"
    job = write_job(
        tmp_path / "job.yaml",
        [
            {
                "chat": "team",
                "account": "acc_1",
                "add": ["https://www.linkedin.com/in/nobody-at-all/", url(ANN)],
                "remove": ["in:gone-for-good", current[1]],
            }
        ],
    )

    result = await apply(sim, job, ledger)

    assert result.exit_code == 3
    outcomes = sorted(
        (r["action"], r["user"], r["status"], r["reason"]) for r in op_records(ledger)
    )
    assert outcomes == [
        ("add", ANN, "applied", None),
        ("add", "in:nobody-at-all", "failed", "unresolved_user"),
        ("remove", current[1], "applied", None),
        ("remove", "in:gone-for-good", "failed", "unresolved_user"),
    ]
    failed = [r for r in op_records(ledger) if r["status"] == "failed"]
    assert {r["error"]["type"] for r in failed} == {"api/resource_not_found"}
    assert {r.user for r in writes(sim)} == {ANN, current[1]}


async def test_desired_state_keeps_whoever_an_unresolved_profile_may_be(
    sim: Simulator, tmp_path: Path
) -> None:
    # Ann changed her profile address: the job's old one is unknown now, but the chat's page
    # still shows her by it. Nobody else is listed, so everyone else goes.
    current = [m for m in initial_members("acc_1", "team") if m != owner_id("acc_1")]
    sim.configure_chat("acc_1", "team", members=[*current, ANN])
    job = write_job(
        tmp_path / "job.yaml", [{"chat": "team", "account": "acc_1", "members": [url(ANN)]}]
    )
    ledger = tmp_path / "ledger.jsonl"

    result = await apply(sim, job, ledger, client=Renamed, unknown=frozenset({"ann-kim-0161"}))

    assert sim.members("acc_1", "team") == {owner_id("acc_1"), ANN}
    outcomes = sorted((r["action"], r["user"], r["status"]) for r in op_records(ledger))
    assert outcomes == [("add", "in:ann-kim-0161", "failed")] + [
        ("remove", user, "applied") for user in sorted(current)
    ]
    assert result.exit_code == 3


async def test_desired_state_removes_no_one_when_participants_carry_no_public_identifiers(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    before = sim.members("acc_1", "team")
    job = write_job(
        tmp_path / "job.yaml",
        [{"chat": "team", "account": "acc_1", "members": [url(ANN), "in:nobody-at-all"]}],
    )
    ledger = tmp_path / "ledger.jsonl"

    result = await apply(sim, job, ledger, client=Renamed, anonymous=True)

    assert sim.members("acc_1", "team") == before | {ANN}
    assert [r.method for r in writes(sim)] == ["POST"]
    assert result.plan.chats[0].held == tuple(sorted(before - {owner_id("acc_1")}))
    outcomes = [(r["action"], r["user"], r["status"]) for r in op_records(ledger)]
    assert sorted(outcomes) == [
        ("add", ANN, "applied"),
        ("add", "in:nobody-at-all", "failed"),
    ]


async def test_the_plan_says_which_removals_are_held_and_why(
    sim: Simulator, tmp_path: Path
) -> None:
    from bulkgroups.display import render_plan

    job = load_job(
        write_job(
            tmp_path / "job.yaml",
            [{"chat": "team", "account": "acc_1", "members": [url(ANN), "in:nobody-at-all"]}],
        )
    )
    async with Renamed(sim.url, api_key=sim.api_key, anonymous=True) as client:
        plan = await plan_job_online(job, client, config=FAST)
    text = render_plan(plan)
    held = len(plan.chats[0].held)
    assert held > 0
    assert f"  + {ANN} (Ann Kim, linkedin.com/in/ann-kim-0161)" in text
    assert (
        f"  ! removals held: {held} members kept, since a profile could not be resolved "
        "(linkedin.com/in/nobody-at-all) and the chat does not say who they are: "
    ) in text
    assert "  ! add linkedin.com/in/nobody-at-all: failed unresolved_user" in text
    assert f"; 1 operation refused; {held} removals held." in text


# -------------------------------------------------------------------------------- owner rule


def test_the_owners_own_url_in_remove_is_refused_before_any_write(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    owner_url = url(owner_id("acc_1"))
    job = write_job(
        tmp_path / "job.yaml",
        [
            {"chat": "other", "account": "acc_1", "add": [url(ANN)]},
            {"chat": "team", "account": "acc_1", "remove": [owner_url]},
        ],
    )
    ledger = tmp_path / "ledger.jsonl"

    run = cli.run("apply", job, "--ledger", ledger, *connect(sim, tmp_path))

    assert run.code == 1
    slug = person(owner_id("acc_1")).public_identifier
    line = job.read_text().splitlines().index(f"  - {owner_url}") + 1
    assert (
        f"{job}:{line}: chats[1].remove[0]: 'in:{slug}' is the owner of account 'acc_1'"
    ) in run.err
    assert writes(sim) == []
    # Only profiles were looked up: no chat was read.
    assert {r.path.split("/")[3] for r in account_scoped(sim)} == {"users"}
    assert not ledger.exists() or ledger_records(ledger) == []


@pytest.mark.parametrize("profile_in", ["add", "remove"])
def test_a_person_added_by_id_and_removed_by_profile_is_refused_before_any_write(
    cli: Cli, sim: Simulator, tmp_path: Path, profile_in: str
) -> None:
    # `validate` cannot see it (an id and a URL), so apply refuses it once the URL is resolved,
    # naming the remove entry's line, as it does the owner rule.
    add, remove = (url(ANN), ANN) if profile_in == "add" else (ANN, url(ANN))
    job = write_job(
        tmp_path / "job.yaml",
        [{"chat": "team", "account": "acc_1", "add": [add], "remove": [remove]}],
    )
    assert cli.run("validate", job).code == 0

    run = cli.run("apply", job, "--ledger", tmp_path / "ledger.jsonl", *connect(sim, tmp_path))

    assert run.code == 1, run.err
    line = job.read_text().splitlines().index(f"  - {remove}") + 1
    assert f"{job}:{line}: chats[0].remove[0]: " in run.err
    assert f"are the same person ({ANN}): a person may not be both added and removed" in run.err
    assert writes(sim) == []
    assert {r.path.split("/")[3] for r in account_scoped(sim)} == {"users"}


# ----------------------------------------------------------------------- resume, saved plans


def test_apply_plan_and_resume_work_with_profiles(cli: Cli, sim: Simulator, tmp_path: Path) -> None:
    job = write_job(
        tmp_path / "job.yaml",
        [{"chat": "team", "account": "acc_1", "add": [url(ANN), "in:nobody-at-all"]}],
    )
    saved, ledger, flags = tmp_path / "PLAN.json", tmp_path / "ledger.jsonl", connect(sim, tmp_path)
    assert cli.run("plan", job, "--out", saved, *flags).code == 0
    document = json.loads(saved.read_text())
    assert document["chats"][0]["operations"][0]["user"] == ANN
    assert {(r["profile"], r["user_id"]) for r in document["resolutions"]} == {
        ("in:ann-kim-0161", ANN),
        ("in:nobody-at-all", None),
    }

    applied = cli.run("apply", job, "--plan", saved, "--ledger", ledger, *flags)
    assert applied.code == 3, applied.err  # the profile nobody has failed
    assert ANN in sim.members("acc_1", "team")

    sim.reset_log()
    resumed = cli.run("apply", job, "--resume", "--ledger", ledger, *flags)
    assert resumed.code == 3
    assert writes(sim) == []
    assert [r.path for r in user_lookups(sim)] == ["/v2/acc_1/users/nobody-at-all"]


async def test_apply_plan_refuses_a_profile_that_resolves_to_someone_else_now(
    sim: Simulator, tmp_path: Path
) -> None:
    job = load_job(
        write_job(tmp_path / "job.yaml", [{"chat": "team", "account": "acc_1", "add": [url(ANN)]}])
    )
    async with UnipileClient(sim.url, api_key=sim.api_key) as client:
        plan = await plan_job_online(job, client, config=FAST)
    dump_plan(plan, tmp_path / "PLAN.json")
    sim.reset_log()

    async with Renamed(sim.url, api_key=sim.api_key, unknown=frozenset({"ann-kim-0161"})) as client:
        with pytest.raises(RunRefused, match="resolve differently since the plan") as refused:
            await apply_job(
                job,
                client,
                ledger=tmp_path / "ledger.jsonl",
                config=FAST,
                expected=load_plan(tmp_path / "PLAN.json"),
            )
    assert "linkedin.com/in/ann-kim-0161 (ACoAA0161 when planned, not resolved now)" in str(
        refused.value
    )
    assert writes(sim) == []
    assert [r for r in sim.requests() if "/chats/" in r.path] == []


@pytest.mark.parametrize("age", ["-1d", "soon", "1.5", "5 days"])
def test_a_resolve_max_age_that_is_no_duration_is_refused(
    cli: Cli, sim: Simulator, tmp_path: Path, age: str
) -> None:
    job = write_job(tmp_path / "job.yaml", [{"chat": "team", "account": "acc_1", "add": [ANN]}])
    run = cli.run("plan", job, f"--resolve-max-age={age}", *connect(sim, tmp_path))
    assert run.code == 1
    # The one duration grammar of every flag (`--every`, `--progress-interval`), plus `0`.
    assert "not a duration" in run.err and "such as 30s, 15m, 1h30m, 1d" in run.err
    assert sim.requests() == ()


async def test_a_key_refused_while_profiles_are_resolved_stops_before_any_chat_is_read(
    sim: Simulator, tmp_path: Path
) -> None:
    client = Bystander(sim.url, api_key=sim.api_key)

    def revoke() -> None:  # the key rotated in the dashboard right after the account lookup
        sim._api_key = "rotated-elsewhere"

    client.after_preflight = revoke
    people = [url(f"ACoAA{n:04d}") for n in range(161, 171)]
    job = write_job(tmp_path / "job.yaml", [{"chat": "team", "account": "acc_1", "add": people}])
    ledger = tmp_path / "ledger.jsonl"

    with pytest.raises(AuthError):
        await apply(sim, job, ledger, client=client)

    # Only the lookups already in flight met the refusal: nothing was sent after it.
    lookups = user_lookups(sim)
    assert {r.status for r in lookups} == {401}
    assert len(lookups) <= FAST.chats_per_account < len(people)
    assert [r for r in sim.requests() if "/chats/" in r.path] == []
    assert not ledger.exists() or ledger_records(ledger) == []
