"""An API key refused after writes have begun: the run records what is left, it does not vanish."""

from __future__ import annotations

from pathlib import Path

from bulkgroups.simulator import Simulator

from helpers.engine import ledger_records
from helpers.outcomes import Bystander, run_job


async def test_a_key_refused_mid_run_fails_the_rest_and_keeps_the_ledger_whole(
    sim: Simulator, tmp_path: Path
) -> None:
    client = Bystander(sim.url, api_key=sim.api_key)

    def revoke() -> None:  # someone rotates the key in the dashboard mid-run
        sim._api_key = "rotated-elsewhere"

    client.after_write[1] = revoke
    chats = [{"chat": "team", "account": "acc_rot", "add": ["ACoAN0001", "ACoAN0002", "ACoAN0003"]}]

    result, records = await run_job(sim, tmp_path, chats, client=client, verify=False)

    assert [(r["user"], r["status"], r["reason"]) for r in records] == [
        ("ACoAN0001", "applied", None),
        ("ACoAN0002", "failed", "account_auth"),
        ("ACoAN0003", "failed", "account_auth"),
    ]
    assert records[1]["error"]["status"] == 401
    assert result.exit_code == 3
    kinds = [r["type"] for r in ledger_records(tmp_path / "ledger.jsonl")]
    assert kinds[0] == "run" and kinds[-1] == "end"
    # After the refusal nothing more was sent with the refused key.
    refused = [r for r in sim.requests() if r.status == 401]
    assert len(refused) == 1


async def test_a_key_refused_while_another_account_still_reads_does_not_abort_the_run(
    sim: Simulator, tmp_path: Path
) -> None:
    """Account A writes while account B is still reading its chats (no removal gate to wait
    for): the refused key must not turn into a crash that leaves A's writes unrecorded."""
    client = Bystander(sim.url, api_key=sim.api_key)

    def revoke() -> None:
        sim._api_key = "rotated-elsewhere"

    client.after_write[1] = revoke
    sim.configure_account("acc_slow_reader", latency=0.05)
    chats = [{"chat": "team", "account": "acc_writer", "add": ["ACoAN0001"]}] + [
        {"chat": f"c{i}", "account": "acc_slow_reader", "rename": f"Room {i}"} for i in range(12)
    ]

    result, records = await run_job(
        sim, tmp_path, chats, client=client, verify=False, max_removals=None
    )

    assert ("team", "add", "applied") in [(r["chat"], r["action"], r["status"]) for r in records]
    assert len(records) == 13  # every operation has its outcome
    assert {r["reason"] for r in records if r["status"] == "failed"} == {"account_auth"}
    assert result.exit_code == 3
    assert [r["type"] for r in ledger_records(tmp_path / "ledger.jsonl")][-1] == "end"
