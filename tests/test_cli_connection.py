"""Where `plan` and `apply` send requests, as a user pastes it: flags, environment, Unipile's forms.

`--base-url` (or `UNIPILE_BASE_URL`, alias `UNIPILE_DSN`) takes an origin, the same ending in `/v2`,
or the dashboard's DSN `host:port`; anything else exits 1 with a hint before any request.
`--page-size N` is the `limit` asked of each listing page.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from bulkgroups.simulator import Simulator

from helpers.cli import Cli, connect
from helpers.engine import write_job


def a_job(tmp_path: Path) -> Path:
    return write_job(
        tmp_path / "job.yaml", [{"chat": "team", "account": "acc_1", "add": ["ACoAA0499"]}]
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("suffix", ["/v2", "/v2/"])
def test_the_base_url_may_end_in_v2_as_unipiles_docs_write_it(
    cli: Cli, sim: Simulator, tmp_path: Path, suffix: str
) -> None:
    flags = connect(sim, tmp_path)
    flags[flags.index("--base-url") + 1] = sim.url + suffix
    run = cli.run("plan", a_job(tmp_path), *flags)
    assert run.code == 0, run.err
    assert sim.requests()
    assert all(
        r.path.startswith("/v2/") and not r.path.startswith("/v2/v2") for r in sim.requests()
    )


def test_unipile_dsn_is_an_alias_of_unipile_base_url(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    cli.monkeypatch.setenv("UNIPILE_DSN", sim.url)
    cli.monkeypatch.setenv("UNIPILE_API_KEY", sim.api_key)
    run = cli.run("plan", a_job(tmp_path), "--rate", "2/0.1s")
    assert run.code == 0, run.err
    assert sim.requests()


def test_unipile_base_url_wins_over_unipile_dsn(cli: Cli, sim: Simulator, tmp_path: Path) -> None:
    cli.monkeypatch.setenv("UNIPILE_DSN", f"127.0.0.1:{free_port()}")  # nothing listens there
    cli.monkeypatch.setenv("UNIPILE_BASE_URL", sim.url)
    cli.monkeypatch.setenv("UNIPILE_API_KEY", sim.api_key)
    run = cli.run("plan", a_job(tmp_path), "--rate", "2/0.1s")
    assert run.code == 0, run.err


@pytest.mark.parametrize(
    "given", ["api.unipile.com", "api8.unipile.com:dsn", "https://h/v2/accounts"]
)
def test_a_base_url_of_no_known_form_exits_1_with_a_hint_before_any_request(
    cli: Cli, sim: Simulator, tmp_path: Path, given: str
) -> None:
    run = cli.run("plan", a_job(tmp_path), "--base-url", given, "--api-key", sim.api_key)
    assert run.code == 1
    assert "HOST:PORT" in run.err and "https://HOST[:PORT]" in run.err
    assert "Traceback" not in run.err
    assert sim.requests() == ()


@pytest.mark.parametrize("size", ["7", "100"])
def test_page_size_is_the_limit_of_every_listing_page(
    cli: Cli, sim: Simulator, tmp_path: Path, size: str
) -> None:
    run = cli.run("plan", a_job(tmp_path), *connect(sim, tmp_path), "--page-size", size)
    assert run.code == 0, run.err
    pages = [r for r in sim.requests() if r.path.endswith("/participants") and r.method == "GET"]
    assert pages and {dict(r.query).get("limit") for r in pages} == {size}


@pytest.mark.parametrize("size", ["0", "101", "ten"])
def test_a_page_size_outside_1_to_100_is_a_usage_error(
    cli: Cli, sim: Simulator, tmp_path: Path, size: str
) -> None:
    run = cli.run("plan", a_job(tmp_path), *connect(sim, tmp_path), "--page-size", size)
    assert run.code == 1
    assert "--page-size" in run.err
    assert sim.requests() == ()
