"""When things go wrong at scale: 429 pauses, accounts stopped side by side, and a large job that
converges through injected faults with nothing lost, nothing written twice and no limit broken.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bulkgroups.cli import main
from bulkgroups.client import UnipileClient
from bulkgroups.engine import apply_job
from bulkgroups.jobs import load_job
from bulkgroups.model import RateSpec
from bulkgroups.pacing import RetryPolicy
from bulkgroups.simulator import LoggedRequest, initial_members, owner_id, parse_faults

from helpers.engine import ledger_records, op_records, write_job
from helpers.outcomes import FAST, SIM_RATE, Bystander, run_job, scoped, writes
from helpers.simulator import SimFactory

A = "acc_a"


async def test_a_429_pauses_the_whole_account_until_retry_after(
    sim_factory: SimFactory, tmp_path: Path
) -> None:
    sim = sim_factory(rate=SIM_RATE)
    sim.configure_account(A, write_rate="1/s")  # Unipile allows A one write a second...
    for chat in ("c1", "c2"):
        sim.configure_chat(A, chat, members=["ACoAA0001"])
    result, records = await run_job(
        sim,
        tmp_path,
        [
            {"chat": "c1", "account": A, "add": ["ACoAA0002", "ACoAA0003"]},
            {"chat": "c2", "account": A, "add": ["ACoAA0002"]},
        ],
        write_rate=RateSpec(1, 0.25),  # ...and we were told four: 429s with Retry-After
        chats_per_account=2,
        verify=False,
    )
    assert {(r["status"], r["reason"]) for r in records} == {("applied", None)}
    assert len(records) == 3
    log = scoped(sim, A)
    limited = [r for r in log if r.error_type == "api/too_many_requests"]
    assert limited
    for refused in limited:
        # Retry-After is whole seconds, at least 1: no request of the account — of either chat,
        # not just the retry — arrived before it had passed.
        later = [r for r in log if r.seq > refused.seq]
        assert later, "the refused write was retried"
        assert min(r.at for r in later) >= refused.at + 1.0
    assert result.exit_code == 0


async def test_while_a_chats_write_backs_off_after_a_5xx_another_chat_of_the_account_goes_on(
    sim_factory: SimFactory, tmp_path: Path
) -> None:
    # One chat at a time, and c1's second write meets a 500 among successes (backoff 1 s): the
    # account's other chat is written meanwhile, rather than the account sending nothing until
    # the retry.
    sim = sim_factory(rate=SIM_RATE)
    for chat in ("c1", "c2"):
        sim.configure_chat(A, chat, members=["ACoAA0001"])
    client = Bystander(sim.url, api_key=sim.api_key)
    client.before_write[2] = lambda: sim.set_faults("500=1")
    client.before_write[3] = lambda: sim.set_faults("")
    result, records = await run_job(
        sim,
        tmp_path,
        [
            {"chat": "c1", "account": A, "add": ["ACoAA0002", "ACoAA0003"]},
            {"chat": "c2", "account": A, "add": ["ACoAA0002", "ACoAA0003"]},
        ],
        client=client,
        chats_per_account=1,
        verify=False,
        retry=RetryPolicy(attempts=3, budget=5.0, initial=1.0, maximum=1.0, jitter=0.0),
    )
    assert {(r["status"], r["reason"]) for r in records} == {("applied", None)}
    assert [(w.chat, w.status) for w in writes(sim, A)] == [
        ("c1", 200),
        ("c1", 500),
        ("c2", 200),
        ("c2", 200),
        ("c1", 200),
    ]
    assert result.exit_code == 0


def cli(*argv: str) -> int:
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    code = exited.value.code
    assert isinstance(code, int)
    return code


def test_stopped_accounts_each_stop_at_their_first_such_answer_and_the_others_complete(
    sim_factory: SimFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = sim_factory(rate=SIM_RATE)
    ok = ["acc_ok_1", "acc_ok_2"]
    gone, recruiter, limited = "acc_disconnected_3", "acc_recruiter_3", "acc_li_3"
    sim.configure_account(limited, provider_write_limit=1)  # LinkedIn refuses its 2nd write
    chats: list[dict[str, Any]] = []
    for account in [*ok, gone, recruiter, limited]:
        for i in range(3):
            sim.configure_chat(account, f"c{i}", members=["ACoAA0001"])
            chats.append({"chat": f"c{i}", "account": account, "add": ["ACoAA0002"]})
    # Spaced requests, so that "after the first such answer" is well defined for each account.
    spaced = {"rate": "1/0.1s", "write_rate": "1/0.1s"}
    job = write_job(tmp_path / "job.yaml", chats, {recruiter: dict(spaced), limited: dict(spaced)})
    key = tmp_path / "key"
    key.write_text(sim.api_key)
    ledger = tmp_path / "ledger.jsonl"
    connection = ["--base-url", sim.url, "--api-key-file", str(key)]
    rates = ["--rate", "50/s", "--write-rate", "50/s"]

    assert cli("apply", str(job), "--ledger", str(ledger), "--yes", *connection, *rates) == 3

    by_account: dict[str, set[tuple[str, str | None]]] = defaultdict(set)
    for r in op_records(ledger):
        by_account[r["account"]].add((r["status"], r["reason"]))
    assert by_account[gone] == {("failed", "account_disconnected")}
    assert [r.kind for r in sim.requests(gone)] == ["core"]
    assert by_account[recruiter] == {("failed", "unsupported_account")}
    assert [(r.status, r.error_type) for r in scoped(sim, recruiter)] == [
        (403, "api/insufficient_permissions")
    ]
    assert by_account[limited] == {("applied", None), ("deferred", "provider_rate_limited")}
    assert [w.status for w in writes(sim, limited)] == [200, 429]
    assert scoped(sim, limited)[-1].error_type == "provider/too_many_requests"
    for account in ok:
        assert by_account[account] == {("applied", None)}
        assert all("ACoAA0002" in sim.members(account, f"c{i}") for i in range(3))

    capsys.readouterr()
    assert cli("report", str(ledger)) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    for account, reason in [
        (gone, "account_disconnected"),
        (recruiter, "unsupported_account"),
        (limited, "provider_rate_limited"),
    ]:
        assert any(account in line and reason in line for line in lines), text
    assert not any(a in line and "failed" in line for a in ok for line in lines)


# ---------------------------------------------------------------------------- convergence

ACCOUNTS = [f"acc_f{i:02d}" for i in range(50)]
CHATS = [f"g{j:02d}" for j in range(20)]


def convergence_job() -> tuple[list[dict[str, Any]], dict[tuple[str, str], frozenset[str]]]:
    """Each chat loses its first member and gains a newcomer: 2 writes, 2,000 in all."""
    chats: list[dict[str, Any]] = []
    desired: dict[tuple[str, str], frozenset[str]] = {}
    for account in ACCOUNTS:
        for chat in CHATS:
            members = initial_members(account, chat)
            leaving = members[1]  # members[0] is the owner
            newcomer = next(
                u for u in (f"ACoAA{n:04d}" for n in range(500, 0, -1)) if u not in members
            )
            chats.append({"chat": chat, "account": account, "add": [newcomer], "remove": [leaving]})
            desired[(account, chat)] = frozenset(members) - {leaving} | {newcomer}
    return chats, desired


async def test_a_50_by_20_job_converges_through_injected_faults(
    sim_factory: SimFactory, tmp_path: Path
) -> None:
    faults = parse_faults("500=0.05,429=0.02,reset=0.01,applied500=0.02")
    sim = sim_factory(rate=RateSpec(200, 1.0), faults=faults, seed=11)
    chats, desired = convergence_job()
    job = load_job(write_job(tmp_path / "job.yaml", chats))
    ledger = tmp_path / "ledger.jsonl"
    config = replace(
        FAST,
        rate=RateSpec(10, 0.1),
        write_rate=RateSpec(10, 0.1),
        retry=replace(FAST.retry, attempts=6),
        max_removals=None,
    )

    codes: list[int] = []
    async with UnipileClient(sim.url, api_key=sim.api_key) as client:
        for attempt in range(4):
            result = await apply_job(job, client, ledger=ledger, config=config, resume=attempt > 0)
            codes.append(result.exit_code)
            if result.exit_code == 0:
                break
    assert codes[-1] == 0, codes

    # Nothing lost: every operation's last outcome says it is done; no run recorded one twice.
    records = [r for r in ledger_records(ledger) if r["type"] == "op"]
    last: dict[str, str] = {}
    for r in records:
        last[r["op_id"]] = r["status"]
    assert len(last) == 2 * len(ACCOUNTS) * len(CHATS)
    # (skipped: a resumed run found done what an earlier run's unknown outcome had done)
    assert set(last.values()) <= {"applied", "skipped"}
    per_run = Counter((r["run_id"], r["op_id"]) for r in records)
    assert max(per_run.values()) == 1

    # Nothing written twice: no write is sent again once it was answered 200 (only writes of
    # unknown outcome are retried, and those find it done: 409/404), and every write request
    # the simulator saw is one of the attempts the ledger counts (no resend behind our back).
    tries: dict[tuple[str, str], list[LoggedRequest]] = defaultdict(list)
    for r in sim.requests():
        if r.kind == "write":
            tries[(r.method, r.path)].append(r)
    assert len(tries) == 2 * len(ACCOUNTS) * len(CHATS)
    for sent in tries.values():
        accepted = [i for i, r in enumerate(sent) if r.status == 200 and r.fault is None]
        assert accepted in ([], [len(sent) - 1]), sent
    assert sum(r["attempts"] for r in records if r["action"] != "read") == sum(
        len(sent) for sent in tries.values()
    )

    # The faults did happen, no limit was broken, and the end state is the desired one.
    seen = Counter(r.fault for r in sim.requests() if r.fault)
    assert {"500", "429", "reset", "applied500"} <= set(seen)
    assert sim.violations() == 0
    for (account, chat), members in desired.items():
        assert sim.members(account, chat) == members
        assert owner_id(account) in members
