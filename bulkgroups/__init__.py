"""bulkgroups — keep LinkedIn group-chat membership in sync through the Unipile API.

    import anyio

    import bulkgroups
    from bulkgroups.simulator import run_in_thread

    FAST = bulkgroups.parse_rate("20/s")  # the simulator's limit; Unipile: EngineConfig() defaults


    async def main(base_url: str, api_key: str) -> None:
        config = bulkgroups.EngineConfig(rate=FAST, write_rate=FAST)
        job = bulkgroups.load_job("jobs/cohorts.yaml")
        async with bulkgroups.UnipileClient(base_url, api_key=api_key) as client:
            plan = await bulkgroups.plan(job, client, config=config)
            result = await bulkgroups.apply(plan, client, ledger="run.jsonl", config=config)
        print(result.counts)


    with run_in_thread() as sim:  # the embedded simulator, on 127.0.0.1
        anyio.run(main, sim.url, sim.api_key)

Runs on anyio's asyncio backend (aiohttp is asyncio-only). The embedded simulator is importable
as `bulkgroups.simulator`, for your own tests. Against Unipile, pass its URL and your key (from the
environment, not the code) and keep `EngineConfig()`'s conservative rates (1/s, writes 1/min).

The value types and errors are imported at once; the names that need the engine, the HTTP client
(and so aiohttp) or the job loader are imported on first use (PEP 562), so that `import
bulkgroups` — and every `bulkgroups` command, which imports the package first — starts quickly.
Type checkers see every name as usual.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Final

from .errors import (
    AccountDisconnected,
    AccountError,
    AccountRestricted,
    ApiError,
    ApiUnreachable,
    AuthError,
    BulkGroupsError,
    Conflict,
    JobFileError,
    JobFileErrors,
    LedgerCorrupt,
    LedgerUnwritable,
    NotFound,
    OwnerRuleRefused,
    PaginationError,
    PermissionDenied,
    ProviderRateLimited,
    RateLimited,
    RequestRejected,
    RunRefused,
    TransientError,
    TransportError,
    Unreachable,
    UnsupportedAccount,
    UsageError,
)
from .model import Job, Operation, Outcome, Plan, RateSpec, parse_rate
from .version import __version__

if TYPE_CHECKING:
    from .client import UnipileClient
    from .engine import ChatApi, EngineConfig, RunObserver, RunResult
    from .jobs import load_job
    from .library import apply, plan
    from .pacing import RetryPolicy
    from .recent_sends import RecentSends

__all__ = [
    "AccountDisconnected",
    "AccountError",
    "AccountRestricted",
    "ApiError",
    "ApiUnreachable",
    "AuthError",
    "BulkGroupsError",
    "ChatApi",
    "Conflict",
    "EngineConfig",
    "Job",
    "JobFileError",
    "JobFileErrors",
    "LedgerCorrupt",
    "LedgerUnwritable",
    "NotFound",
    "Operation",
    "Outcome",
    "OwnerRuleRefused",
    "PaginationError",
    "PermissionDenied",
    "Plan",
    "ProviderRateLimited",
    "RateLimited",
    "RateSpec",
    "RecentSends",
    "RequestRejected",
    "RetryPolicy",
    "RunObserver",
    "RunRefused",
    "RunResult",
    "TransientError",
    "TransportError",
    "UnipileClient",
    "Unreachable",
    "UnsupportedAccount",
    "UsageError",
    "__version__",
    "apply",
    "load_job",
    "parse_rate",
    "plan",
]

# Where each lazily exported name is defined.
_LAZY: Final = {
    "ChatApi": "bulkgroups.engine",
    "EngineConfig": "bulkgroups.engine",
    "RecentSends": "bulkgroups.recent_sends",
    "RetryPolicy": "bulkgroups.pacing",
    "RunObserver": "bulkgroups.engine",
    "RunResult": "bulkgroups.engine",
    "UnipileClient": "bulkgroups.client",
    "apply": "bulkgroups.library",
    "load_job": "bulkgroups.jobs",
    "plan": "bulkgroups.library",
}

if not TYPE_CHECKING:  # type checkers take the imports above; an unknown name stays an error

    def __getattr__(name: str) -> object:
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module 'bulkgroups' has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value  # once: later look-ups are plain attribute reads
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})
