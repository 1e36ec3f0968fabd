"""The request log (`-v`, the `bulkgroups.http` logger): one record per request with what Unipile
support asks for (method, path, status, req_id, latency, attempt, account) and never the key;
`--log-format json` for log collectors; `-q` for cron (errors and the summary only)."""

from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

import bulkgroups.client
from bulkgroups.client import UnipileClient
from bulkgroups.simulator import Simulator, initial_members, owner_id

from helpers.cli import Cli, connect
from helpers.engine import write_job

ACCOUNT = "acc_log"
HTTP = re.compile(
    r"^http: \S+Z (GET|POST|PATCH|DELETE) (/v2/\S+) (\d{3}|transport/\w+) (\d+)ms "
    r"req_id=(\S+) attempt=(\d+) account=(\S+)$"
)


def job_file(tmp_path: Path, *, adds: int = 3, remove: bool = True) -> Path:
    members = initial_members(ACCOUNT, "room")
    newcomers = [u for u in (f"ACoAA{n:04d}" for n in range(9000, 9100)) if u not in members]
    chat: dict[str, Any] = {"chat": "room", "account": ACCOUNT, "add": newcomers[:adds]}
    if remove:
        chat["remove"] = [m for m in members if m != owner_id(ACCOUNT)][:1]
    return write_job(tmp_path / "job.yaml", [chat])


def logged(err: str) -> list[re.Match[str]]:
    lines = [line for line in err.splitlines() if line.startswith("http: ")]
    matches = [HTTP.match(line) for line in lines]
    assert all(matches), lines
    return [m for m in matches if m]


def test_verbose_logs_each_request_with_its_req_id_and_never_the_key(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    sim.set_faults("500=0.3", seed=3)
    run = cli.run(
        "apply", job_file(tmp_path), "--ledger", tmp_path / "ledger.jsonl", "--yes", "-v",
        *connect(sim, tmp_path),
    )  # fmt: skip
    assert run.code == 0, run.err
    records = logged(run.err)
    seen = sim.requests()
    # One line per request the simulator answered, with the req_id it gave, the same status.
    assert Counter((m.group(5), m.group(3)) for m in records) == Counter(
        (r.req_id, str(r.status)) for r in seen
    )
    assert Counter((m.group(1), m.group(2).split("?")[0]) for m in records) == Counter(
        (r.method, r.path) for r in seen
    )
    assert {m.group(7) for m in records} == {ACCOUNT}
    # A 500 is retried: the retry says it is attempt 2 (or more), the first ones say 1.
    failed = [m for m in records if m.group(3) == "500"]
    assert failed, "the seed gave no 500: pick another"
    assert {m.group(6) for m in records} >= {"1", "2"}
    assert sim.api_key not in run.err and sim.api_key not in run.out


def test_json_log_lines_parse_and_carry_each_requests_fields(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    run = cli.run(
        "apply", job_file(tmp_path), "--ledger", tmp_path / "ledger.jsonl", "--yes", "-v",
        "--log-format", "json", *connect(sim, tmp_path),
    )  # fmt: skip
    assert run.code == 0, run.err
    documents = [orjson.loads(line) for line in run.err.splitlines()]  # every line is JSON
    requests = [d for d in documents if d["logger"] == "bulkgroups.http"]
    assert len(requests) == len(sim.requests())
    assert {r.req_id for r in sim.requests()} == {d["req_id"] for d in requests}
    for document in requests:
        assert document["level"] == "debug"
        assert document["time"].endswith("Z")
        assert document["method"] in ("GET", "POST", "DELETE")
        assert document["path"].startswith("/v2/")
        assert isinstance(document["status"], int) and document["error"] is None
        assert isinstance(document["latency_ms"], int) and document["attempt"] == 1
        assert document["account"] == ACCOUNT
    assert documents[-1]["logger"] == "bulkgroups.progress"
    assert sim.api_key not in run.err


def test_without_verbose_no_request_is_logged(cli: Cli, sim: Simulator, tmp_path: Path) -> None:
    run = cli.run(
        "apply", job_file(tmp_path), "--ledger", tmp_path / "ledger.jsonl", "--yes",
        *connect(sim, tmp_path),
    )  # fmt: skip
    assert run.code == 0, run.err
    assert logged(run.err) == []


def test_an_error_with_json_logs_is_a_json_line(cli: Cli, sim: Simulator, tmp_path: Path) -> None:
    run = cli.run(
        "apply", job_file(tmp_path), "--ledger", tmp_path / "ledger.jsonl", "--yes",
        "--log-format", "json", "--max-removals", "0", *connect(sim, tmp_path),
    )  # fmt: skip
    assert run.code == 1
    documents = [orjson.loads(line) for line in run.err.splitlines()]  # every line is JSON
    (document,) = [d for d in documents if d["level"] == "error"]
    assert document["logger"] == "bulkgroups.cli"
    assert "--max-removals" in document["message"]


@pytest.mark.parametrize("command", [("plan",), ("apply", "--dry-run")])
def test_a_plan_with_chats_it_could_not_read_says_so_in_a_json_line(
    cli: Cli, sim: Simulator, tmp_path: Path, command: tuple[str, ...]
) -> None:
    job = write_job(
        tmp_path / "job.yaml", [{"chat": "gone_room", "account": ACCOUNT, "add": ["ACoAA9000"]}]
    )
    run = cli.run(
        *command, job, "--ledger", tmp_path / "ledger.jsonl", "--log-format", "json",
        *connect(sim, tmp_path),
    )  # fmt: skip
    assert run.code == 3, run.err
    documents = [orjson.loads(line) for line in run.err.splitlines()]  # every line is JSON
    (warning,) = [d for d in documents if d["level"] == "warning"]
    assert warning["message"].startswith("1 chat could not be read")


# ------------------------------------------------------------------------------------ quiet


def test_quiet_prints_the_summary_alone_when_all_went_well(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    run = cli.run(
        "apply", job_file(tmp_path), "--ledger", tmp_path / "ledger.jsonl", "--yes", "-q",
        *connect(sim, tmp_path),
    )  # fmt: skip
    assert run.code == 0, run.err
    assert run.err == ""
    (line,) = run.out.splitlines()
    assert re.fullmatch(r"Run \S+: 4 applied, 0 skipped, 0 deferred, 0 failed\. Ledger: .+", line)


def test_quiet_still_shows_what_failed_in_full(cli: Cli, sim: Simulator, tmp_path: Path) -> None:
    sim.configure_chat(ACCOUNT, "room", deleted=True)
    run = cli.run(
        "apply", job_file(tmp_path, remove=False), "--ledger", tmp_path / "ledger.jsonl", "-q",
        *connect(sim, tmp_path),
    )  # fmt: skip
    assert run.code == 3
    assert run.err == ""
    assert "Outcomes" not in run.out  # the counts are in the summary line
    assert "Failed or deferred" in run.out  # the table of what failed, each operation a row
    assert run.out.splitlines()[-1].startswith("Run ")


def test_quiet_plan_prints_its_totals_alone(cli: Cli, sim: Simulator, tmp_path: Path) -> None:
    run = cli.run("plan", job_file(tmp_path), "-q", *connect(sim, tmp_path))
    assert run.code == 0, run.err
    assert run.err == ""
    assert run.out.splitlines() == [
        "Plan: 3 to add, 1 to remove, 0 to rename, 0 to leave in 1 of 1 chats.",
        run.out.splitlines()[-1],
    ]
    assert run.out.splitlines()[-1].startswith("At the configured rates, applying it takes")


def test_quiet_and_verbose_exclude_each_other(cli: Cli, tmp_path: Path) -> None:
    run = cli.run("apply", job_file(tmp_path), "-q", "-v", "--sandbox")
    assert run.code == 1
    assert "not allowed with argument" in run.err


# ----------------------------------------------------------------------------- the library


async def test_a_library_user_turns_the_request_log_on_with_logging(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="bulkgroups.http")
    async with UnipileClient(sim.url, api_key=sim.api_key) as client:
        await client.get_account(ACCOUNT)
    (record,) = [r for r in caplog.records if r.name == "bulkgroups.http"]
    (request,) = sim.requests()
    assert request.req_id in record.getMessage()
    assert sim.api_key not in record.getMessage()


async def test_with_the_request_log_off_no_record_is_made(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bulkgroups.http")

    def refuse(**fields: object) -> None:
        raise AssertionError("a record was built although the log is off")

    monkeypatch.setattr(bulkgroups.client, "log_request", refuse)
    async with UnipileClient(sim.url, api_key=sim.api_key) as client:
        await client.get_account(ACCOUNT)
        await client.get_chat(ACCOUNT, "room")
