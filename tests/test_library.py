"""`import bulkgroups` as a library: the public names, and the README's example against the simulator."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

import bulkgroups
from bulkgroups.simulator import Simulator, initial_members, owner_id

from helpers.engine import op_records


def isort_order(names: list[str]) -> list[str]:
    """The order ruff (RUF022) keeps `__all__` in: CONSTANTS, then Classes, then the rest."""
    return sorted(names, key=lambda n: (0 if n.isupper() else 1 if n[:1].isupper() else 2, n))


def test_the_public_names_are_sorted_and_all_exist() -> None:
    assert bulkgroups.__all__ == isort_order(bulkgroups.__all__)
    for name in bulkgroups.__all__:
        assert hasattr(bulkgroups, name), name


@pytest.mark.parametrize(
    "module", sorted(m.name for m in pkgutil.walk_packages(bulkgroups.__path__, "bulkgroups."))
)
def test_every_module_declares_what_it_exports(module: str) -> None:
    loaded = importlib.import_module(module)
    exported = getattr(loaded, "__all__", None)
    if exported is None:  # private helpers (e.g. __main__) export nothing
        assert module.rsplit(".", 1)[-1].startswith("_"), f"{module} has no __all__"
        return
    assert list(exported) == isort_order(list(exported)), module
    for name in exported:
        assert hasattr(loaded, name), f"{module}.{name}"


def test_plan_and_apply_are_functions_not_modules() -> None:
    assert callable(bulkgroups.plan)
    assert callable(bulkgroups.apply)


def test_the_package_is_typed() -> None:
    assert (Path(bulkgroups.__file__).parent / "py.typed").exists()


async def test_the_readme_example_plans_and_applies(sim: Simulator, tmp_path: Path) -> None:
    members = [m for m in initial_members("acc_lib", "team") if m != owner_id("acc_lib")]
    job_file = tmp_path / "job.yaml"
    job_file.write_text(
        "version: 1\n"
        "chats:\n"
        "  - chat: team\n"
        "    account: acc_lib\n"
        f"    add: [ACoAA0777]\n"
        f"    remove: [{members[0]}]\n",
        encoding="utf-8",
    )
    ledger = tmp_path / "run.jsonl"
    config = bulkgroups.EngineConfig(
        rate=bulkgroups.parse_rate("20/s"),
        write_rate=bulkgroups.parse_rate("20/s"),
        verify_delay=0.05,
    )

    job = bulkgroups.load_job(job_file)
    async with bulkgroups.UnipileClient(sim.url, api_key=sim.api_key) as client:
        plan = await bulkgroups.plan(job, client, config=config)
        result = await bulkgroups.apply(plan, client, ledger=ledger, config=config)

    assert [op.action for op in plan.operations()] == ["remove", "add"]
    assert result.counts == {"applied": 2, "skipped": 0, "deferred": 0, "failed": 0}
    assert result.exit_code == 0
    assert "ACoAA0777" in sim.members("acc_lib", "team")
    assert members[0] not in sim.members("acc_lib", "team")
    assert [r["status"] for r in op_records(ledger)] == ["applied", "applied"]
    assert sim.violations() == 0


async def test_resume_needs_the_job_not_a_plan(sim: Simulator, tmp_path: Path) -> None:
    plan = bulkgroups.Plan(job_sha256="x", chats=())
    async with bulkgroups.UnipileClient(sim.url, api_key=sim.api_key) as client:
        with pytest.raises(bulkgroups.UsageError):
            await bulkgroups.apply(plan, client, ledger=tmp_path / "l.jsonl", resume=True)
