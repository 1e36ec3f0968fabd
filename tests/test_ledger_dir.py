"""`--ledger DIR/`: one ledger per shard in a directory, every run reading them all, so that
resharding keeps daily limits, pacing across runs and pending writes; `report DIR/` reads them
as one ledger."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bulkgroups.client import UnipileClient
from bulkgroups.engine import EngineConfig, RunResult, apply_job
from bulkgroups.jobs import load_job
from bulkgroups.ledger import Replay
from bulkgroups.ledger_dir import (
    LedgerHistory,
    file_shard,
    ledger_files,
    ledger_place,
    prepare_directory,
    read_histories,
    read_ledgers,
)
from bulkgroups.lock import LedgerLock
from bulkgroups.model import Operation, Outcome, parse_rate, shard_of
from bulkgroups.records import IntentRecord, OpRecord, Record, RunRecord, format_time
from bulkgroups.simulator import Simulator, initial_members

from helpers.cli import Cli, connect, writes
from helpers.engine import ledger_records, op_records, write_job
from helpers.simulator import SimFactory

ACCOUNTS = [f"acc_s{n}" for n in range(6)]
NEWCOMERS = ["ACoAN0491", "ACoAN0492", "ACoAN0493", "ACoAN0494"]  # in no chat yet


def limited_job(tmp_path: Path, daily_limit: int) -> Path:
    """Four chats of each account with one add each, every account allowed `daily_limit` writes
    a day (a chat the budget cannot finish is deferred whole: one write per chat keeps it
    simple)."""
    return write_job(
        tmp_path / "job.yaml",
        [
            {"chat": f"team_{n}", "account": a, "add": [user]}
            for a in ACCOUNTS
            for n, user in enumerate(NEWCOMERS)
        ],
        accounts={a: {"daily_limit": daily_limit} for a in ACCOUNTS},
    )


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# -------------------------------------------------------------------------- where runs write


def test_each_shard_appends_to_its_own_file_and_a_run_without_shard_to_ledger_jsonl(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    job = limited_job(tmp_path, daily_limit=100)
    ledgers = tmp_path / "ledgers"
    for index in range(2):
        run = cli.run(
            "apply",
            job,
            "--shard",
            f"{index}/2",
            "--ledger",
            f"{ledgers}/",
            *connect(sim, tmp_path),
        )
        assert run.code == 0, run.err
        assert f"Ledger: {ledgers}/shard-{index}-of-2.jsonl" in run.out
    whole = cli.run(
        "apply", job, "--ledger", ledgers, *connect(sim, tmp_path)
    )  # exists: a directory
    assert whole.code == 0, whole.err
    assert names(ledgers) == ["ledger.jsonl", "shard-0-of-2.jsonl", "shard-1-of-2.jsonl"]
    for index in range(2):
        recorded = {r["account"] for r in op_records(ledgers / f"shard-{index}-of-2.jsonl")}
        assert recorded == {a for a in ACCOUNTS if shard_of(a, 2) == index}


def test_ledger_place_names_the_file_of_each_shard(tmp_path: Path) -> None:
    assert ledger_place("run.jsonl", (1, 3)).path == "run.jsonl"  # a file stays a file
    assert ledger_place("run.jsonl", (1, 3)).directory is None
    assert ledger_place("ledgers/", (1, 3)).path == "ledgers/shard-1-of-3.jsonl"
    assert ledger_place("ledgers/", None).path == "ledgers/ledger.jsonl"
    assert ledger_place(str(tmp_path), (0, 2)).path == f"{tmp_path}/shard-0-of-2.jsonl"


# ------------------------------------------------------------------------------ resharding


def test_resharding_from_two_shards_to_three_keeps_every_accounts_daily_limit(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    job = limited_job(tmp_path, daily_limit=3)
    ledgers = f"{tmp_path}/ledgers/"
    for index in range(2):
        run = cli.run(
            "apply", job, "--shard", f"{index}/2", "--ledger", ledgers, *connect(sim, tmp_path)
        )
        assert run.code == 3, run.err  # each account: 3 applied, 1 deferred daily_limit
    assert Counter(str(w.account) for w in writes(sim)) == dict.fromkeys(ACCOUNTS, 3)

    # Every account now appends to a file it never wrote to: its count is in another one.
    for index in range(3):
        run = cli.run(
            "apply", job, "--shard", f"{index}/3", "--ledger", ledgers, *connect(sim, tmp_path)
        )
        assert run.code == 3, run.err

    assert Counter(str(w.account) for w in writes(sim)) == dict.fromkeys(ACCOUNTS, 3)
    for index in range(3):
        records = op_records(Path(ledgers) / f"shard-{index}-of-3.jsonl")
        deferred = {(r["account"], r["user"]) for r in records if r["status"] == "deferred"}
        assert {r["reason"] for r in records if r["status"] == "deferred"} == {"daily_limit"}
        assert len(deferred) == sum(1 for a in ACCOUNTS if shard_of(a, 3) == index)


async def _apply(
    sim: Simulator, job: Path, ledger: str, shard: tuple[int, int], rate: str
) -> RunResult:
    spec = parse_rate(rate)
    config = EngineConfig(rate=spec, write_rate=spec, shard=shard, verify_delay=0.05)
    async with UnipileClient(sim.url, api_key=sim.api_key) as client:
        return await apply_job(load_job(job), client, ledger=ledger, config=config)


async def test_a_run_on_a_new_shards_file_waits_for_the_window_the_old_shards_run_used(
    sim_factory: SimFactory, tmp_path: Path
) -> None:
    """As back to back on one ledger (test_resume): the simulator's limit equals the run's, so
    the second run's first reads break it unless it waits for the first run's window, which is
    recorded in another file (an in-sync chat leaves only the run's `end` record)."""
    limit = "10/s"
    sim = sim_factory(rate=parse_rate(limit), write_rate=parse_rate(limit))
    account = "acc_q"
    chats = [
        {
            "chat": f"quiet_{n}",
            "account": account,
            "members": list(initial_members(account, f"quiet_{n}")[1:]),
        }
        for n in range(6)
    ]
    job = write_job(tmp_path / "job.yaml", chats)
    ledgers = f"{tmp_path}/ledgers/"

    first = await _apply(sim, job, ledgers, (shard_of(account, 2), 2), limit)
    second = await _apply(sim, job, ledgers, (shard_of(account, 3), 3), limit)

    assert (first.exit_code, second.exit_code) == (0, 0)
    assert len(sim.timeline(account)) >= 2 * 12  # each run read every chat
    assert sim.violations() == 0


# --------------------------------------------------------------------- pending writes


def killed_run(ledger: Path, job_file: Path, *intents: Operation) -> None:
    """What a run killed mid-write leaves: its `run` record and intents, no outcome, no end."""
    job = load_job(job_file)
    now = format_time(time.time() - 60)
    lines: list[Record] = [RunRecord("20250101T000000Z-dead0001", job.sha256, False, now, "0")]
    lines += [
        IntentRecord.of(op, run_id="20250101T000000Z-dead0001", attempt=1, at=now) for op in intents
    ]
    ledger.parent.mkdir(exist_ok=True)
    ledger.write_bytes(b"".join(line.to_json() + b"\n" for line in lines))


def test_a_write_pending_in_another_shards_file_is_recovered_once_never_sent_again(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    account, bob = "acc_p", "ACoAA0495"
    job = write_job(tmp_path / "job.yaml", [{"chat": "c1", "account": account, "add": [bob]}])
    ledgers = tmp_path / "ledgers"
    killed_run(
        ledgers / f"shard-{shard_of(account, 2)}-of-2.jsonl",
        job,
        Operation(account, "c1", "add", user=bob),
    )
    sim.configure_chat(account, "c1", members=["ACoAA0001", bob])  # the killed write took effect

    moved = cli.run(
        "apply",
        job,
        "--shard",
        f"{shard_of(account, 3)}/3",
        "--ledger",
        f"{ledgers}/",
        *connect(sim, tmp_path),
    )
    again = cli.run("apply", job, "--ledger", f"{ledgers}/", *connect(sim, tmp_path))

    assert (moved.code, again.code) == (0, 0), moved.err + again.err
    (recovered,) = op_records(ledgers / f"shard-{shard_of(account, 3)}-of-3.jsonl")
    assert (recovered["status"], recovered.get("recovered")) == ("applied", True)
    # The old file still has the intent without an outcome, but the later record decided it.
    (settled,) = op_records(ledgers / "ledger.jsonl")
    assert (settled["status"], settled["reason"], settled.get("recovered")) == (
        "skipped",
        "already_member",
        None,
    )
    assert writes(sim) == []


# ------------------------------------------------------------------ two shardings at once


def shard_members(count: int, index: int) -> list[str]:
    return [a for a in ACCOUNTS if shard_of(a, count) == index]


def test_shards_of_one_sharding_run_side_by_side_but_another_sharding_is_refused(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    job = limited_job(tmp_path, daily_limit=100)
    ledgers = tmp_path / "ledgers"
    ledgers.mkdir()
    # Shard 0 of 2 is running (this test process holds its lock, as a live shard would).
    with LedgerLock(ledgers / "shard-0-of-2.jsonl"):
        sibling = cli.run(
            "apply", job, "--shard", "1/2", "--ledger", f"{ledgers}/", *connect(sim, tmp_path)
        )
        assert sibling.code == 0, sibling.err
        sent = len(sim.requests())

        # Shard 2 of 3 has accounts that shard 0 of 2 has too (this set of accounts does).
        assert set(shard_members(3, 2)) & set(shard_members(2, 0))
        other = cli.run(
            "apply", job, "--shard", "2/3", "--ledger", f"{ledgers}/", *connect(sim, tmp_path)
        )
        whole = cli.run("apply", job, "--ledger", f"{ledgers}/", *connect(sim, tmp_path))

    for refused in (other, whole):
        assert refused.code == 1
        assert f"{ledgers}/shard-0-of-2.jsonl is in use by process" in refused.err
        assert "another sharding" in refused.err
    assert len(sim.requests()) == sent
    assert names(ledgers) == ["shard-1-of-2.jsonl"]  # the refused runs left nothing, no lock


# ----------------------------------------------------------------------------------- resume


def test_resume_continues_the_last_run_of_the_shards_own_file(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    job = limited_job(tmp_path, daily_limit=100)
    ledgers = f"{tmp_path}/ledgers/"
    paused = shard_members(2, 0)[0]
    sim.configure_account(paused, status="paused")
    first = cli.run("apply", job, "--shard", "0/2", "--ledger", ledgers, *connect(sim, tmp_path))
    assert first.code == 3, first.err
    other = cli.run("apply", job, "--shard", "1/2", "--ledger", ledgers, *connect(sim, tmp_path))
    assert other.code == 0, other.err
    sim.configure_account(paused, status="running")
    before = len(writes(sim))

    resumed = cli.run(
        "apply", job, "--shard", "0/2", "--resume", "--ledger", ledgers, *connect(sim, tmp_path)
    )

    assert resumed.code == 0, resumed.err
    assert {(str(w.account), w.user) for w in writes(sim)[before:]} == {
        (paused, user) for user in NEWCOMERS
    }
    runs = [r for r in ledger_records(Path(ledgers) / "shard-0-of-2.jsonl") if r["type"] == "run"]
    assert [r["resume"] for r in runs] == [False, True]


# ----------------------------------------------------------------------------------- report


def test_report_of_a_directory_reads_every_ledger_in_it_as_one(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    job = limited_job(tmp_path, daily_limit=3)
    ledgers = tmp_path / "ledgers"
    for count in (2, 3):
        for index in range(count):
            cli.run(
                "apply",
                job,
                "--shard",
                f"{index}/{count}",
                "--ledger",
                f"{ledgers}/",
                *connect(sim, tmp_path),
            )

    report = cli.run("report", f"{ledgers}/", "--format", "json")
    text = cli.run("report", ledgers)

    assert (report.code, text.code) == (0, 0), report.err + text.err
    document: Any = report.json()
    assert [Path(f).name for f in document["ledgers"]] == [
        "shard-0-of-2.jsonl",
        "shard-0-of-3.jsonl",
        "shard-1-of-2.jsonl",
        "shard-1-of-3.jsonl",
        "shard-2-of-3.jsonl",
    ]
    assert len(document["runs"]) == 5
    assert [r["started_at"] for r in document["runs"]] == sorted(
        r["started_at"] for r in document["runs"]
    )
    # The last outcome of each of the 24 adds, whichever file holds it: 18 applied in the first
    # sharding (skipped already_member later), 6 deferred daily_limit in both.
    assert document["operations"] == len(ACCOUNTS) * len(NEWCOMERS)
    assert document["counts"] == {"applied": 0, "skipped": 18, "deferred": 6, "failed": 0}
    assert f"Ledgers in {ledgers} (shard-0-of-2.jsonl, " in text.out


def test_read_ledgers_merges_the_files_in_time_order(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    job = limited_job(tmp_path, daily_limit=100)
    ledgers = tmp_path / "ledgers"
    for index in (1, 0):  # shard 1 first: file order is not time order
        cli.run(
            "apply",
            job,
            "--shard",
            f"{index}/2",
            "--ledger",
            f"{ledgers}/",
            *connect(sim, tmp_path),
        )
    kinds = [type(r).__name__ for r in read_ledgers(ledgers)]
    assert kinds[0] == "RunRecord" and kinds[-1] == "EndRecord"
    first_end = kinds.index("EndRecord")
    assert kinds[first_end + 1] == "RunRecord"  # the second run's records all come after


# ------------------------------------------------------------------------ reading, offline


def write_ledger(path: Path, records: list[Record]) -> Path:
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"".join(r.to_json() + b"\n" for r in records))
    return path


def test_combined_sums_todays_writes_keeps_the_latest_record_and_drops_superseded_pending(
    tmp_path: Path,
) -> None:
    now = time.time()
    at = lambda seconds_ago: format_time(now - seconds_ago)  # noqa: E731
    job = "j" * 64
    early, late = (Operation("acc_x", "c1", "add", user=u) for u in ("ACoAN0001", "ACoAN0002"))
    old_run, new_run = "20250101T000000Z-00000001", "20250101T000100Z-00000002"
    directory = tmp_path / "ledgers"
    write_ledger(
        directory / "shard-0-of-2.jsonl",
        [
            RunRecord(old_run, job, False, at(50), "0"),
            IntentRecord.of(early, run_id=old_run, attempt=1, at=at(40)),  # killed in flight
            IntentRecord.of(late, run_id=old_run, attempt=1, at=at(10)),  # killed in flight
        ],
    )
    write_ledger(
        directory / "shard-1-of-3.jsonl",
        [
            RunRecord(new_run, job, False, at(35), "0"),
            # Decided after the first intent (supersedes it), before the second (does not).
            OpRecord.of(
                Outcome(early, "applied", None, 0, recovered=True), run_id=new_run, at=at(30)
            ),
            OpRecord.of(Outcome(late, "skipped", "already_member", 0), run_id=new_run, at=at(20)),
            IntentRecord.of(
                Operation("acc_x", "c2", "add", user="ACoAN0003"),
                run_id=new_run,
                attempt=1,
                at=at(25),
            ),
            OpRecord.of(
                Outcome(Operation("acc_x", "c2", "add", user="ACoAN0003"), "applied", None, 1),
                run_id=new_run,
                at=at(5),
            ),
        ],
    )
    place = ledger_place(f"{directory}/", (0, 3))
    histories, together = read_histories(
        place,
        accounts=["acc_x"],
        shard=(0, 3),
        job_sha256=job,
        keep_outcomes=False,
        holder_died=False,
    )

    assert [Path(h.path).name for h in histories] == [
        "shard-0-of-3.jsonl",  # its own, not written yet
        "shard-0-of-2.jsonl",
        "shard-1-of-3.jsonl",
    ]
    assert together.writes_today == {"acc_x": 3}
    assert together.last_record_at == {"acc_x": pytest.approx(now - 5, abs=0.002)}
    assert together.pending == {late.digest: late}


def test_a_ledger_speaks_for_the_accounts_of_its_shard_and_a_lock_alone_is_a_ledger(
    tmp_path: Path,
) -> None:
    assert LedgerHistory("x/shard-1-of-3.jsonl", Replay(), (1, 3)).covers("acc_s2")  # 1 of 3
    assert not LedgerHistory("x/shard-1-of-3.jsonl", Replay(), (1, 3)).covers("acc_s1")
    assert LedgerHistory("x/ledger.jsonl", Replay()).covers("acc_s1")
    assert [file_shard(n) for n in ("shard-2-of-3.jsonl", "shard-3-of-3.jsonl", "l.jsonl")] == [
        (2, 3),
        None,
        None,
    ]
    (tmp_path / "shard-0-of-2.jsonl.lock").write_text("", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("", encoding="utf-8")
    (tmp_path / "old.jsonl").mkdir()
    assert ledger_files(str(tmp_path)) == []
    assert ledger_files(str(tmp_path), locked=True) == [f"{tmp_path}/shard-0-of-2.jsonl"]


def test_a_shard_file_abandoned_mid_run_holds_its_accounts_back_only_until_another_run_starts() -> (
    None
):
    """A killed shard's file is never written again after a resharding: its open run must not
    make every later run of its accounts wait a full window forever. A run of another ledger of
    the account that started later found it dead and waited; after that it is history."""
    killed = LedgerHistory(
        "d/shard-1-of-3.jsonl", Replay(last_run_open=True, last_run_started_at=100.0), (1, 3)
    )
    account = "acc_s2"  # shard 1 of 3, shard 0 of 2
    before = LedgerHistory("d/shard-0-of-2.jsonl", Replay(last_run_started_at=90.0), (0, 2))
    after = LedgerHistory("d/shard-0-of-2.jsonl", Replay(last_run_started_at=130.0), (0, 2))
    elsewhere = LedgerHistory("d/shard-1-of-2.jsonl", Replay(last_run_started_at=130.0), (1, 2))
    assert killed.died_mid_run
    assert not killed.death_outlived(account, [killed, before])
    assert not killed.death_outlived(account, [killed, elsewhere])  # not a run of this account
    assert killed.death_outlived(account, [killed, after])
    # A stale lock: from when its process took it, if the lock says.
    stale = LedgerHistory("d/ledger.jsonl", Replay(), None, holder_died=True, holder_since=140.0)
    assert not stale.death_outlived(account, [stale, after])
    unknown = LedgerHistory("d/ledger.jsonl", Replay(), None, holder_died=True)
    assert not unknown.death_outlived(account, [unknown, after])


def test_a_new_ledger_directory_is_made_durable_in_its_parent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # fsync of a file does not make its directory entry durable: after a power cut a new
    # ledger directory could be gone with every record fsync'd into it.
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    place = ledger_place(f"{tmp_path / 'ledgers'}/", None)

    prepare_directory(place)

    assert synced == [str(tmp_path)]
    prepare_directory(place)  # already there: nothing new to make durable
    assert synced == [str(tmp_path)]
