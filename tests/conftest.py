"""Shared fixtures: a fresh simulator per test, served in its own thread and event loop.

`sim` is the default (20/s per account, no faults, no cache); `sim_factory(...)` takes a
`SimConfig` or its keyword arguments (e.g. `sim_factory(rate=parse_rate("5/s"), cache_age=30)`)
and can be called more than once in a test. Both shut their servers down after the test.
`http` sends plain aiohttp requests (not bulkgroups.client) to a simulator, for its own tests.
`cli` runs the `bulkgroups` command in-process (a module may override it, e.g. to set COLUMNS).
Every test runs inside the network fence of `helpers.loopback` (loopback only), with a state
directory of its own (`BULKGROUPS_STATE_DIR`).
Plain helpers (`SimFactory`, `Http`, readers of ledgers, the CLI in-process...) are in helpers/:
test modules import them from there, never from this file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bulkgroups.recent_sends import STATE_DIR_ENV
from bulkgroups.simulator import SimConfig, Simulator, run_in_thread

from helpers.cli import Cli
from helpers.loopback import loopback_only
from helpers.simulator import Http, SimFactory


@pytest.fixture(autouse=True, scope="session")
def _loopback_only() -> Iterator[None]:
    """Nothing in this process resolves or connects beyond loopback (`helpers.loopback`)."""
    with loopback_only():
        yield


@pytest.fixture(autouse=True)
def state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test has its own state directory (`recent_sends`), never the developer's: what one
    test's runs leave cannot make another's wait, and nothing is written to the home directory."""
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv(STATE_DIR_ENV, str(state))
    return state


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with run_in_thread() as simulator:
        yield simulator


@pytest.fixture
def sim_factory() -> Iterator[SimFactory]:
    with ExitStack() as stack:

        def make(config: SimConfig | None = None, **settings: Any) -> Simulator:
            if config is not None and settings:
                raise TypeError("pass a SimConfig or keyword settings, not both")
            return stack.enter_context(run_in_thread(config or SimConfig(**settings)))

        yield make


@pytest.fixture
async def http() -> AsyncIterator[Http]:
    async with aiohttp.ClientSession() as session:
        yield Http(session)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    return Cli(capsys, monkeypatch)
