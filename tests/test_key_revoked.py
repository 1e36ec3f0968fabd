"""An API key refused after writes have begun: the run records what is left, it does not vanish."""

from __future__ import annotations

from pathlib import Path

from engine_helpers import ledger_records
from outcome_helpers import Bystander, run_job

from bulkgroups.simulator import Simulator


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
