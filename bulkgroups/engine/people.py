"""Who the job's LinkedIn profiles are: each distinct profile resolved once per account.

A job may name people by profile (`in:<slug>`, from a URL), but add and remove take provider ids,
and which id a profile is can only be asked of an account: `GET /v2/{account}/users/{slug}`, a
read like any other (paced, retried, through the run's gate, fresh since it decides what is
changed). So after the account lookups and before any chat is read, the run resolves each profile
of each account once; the planner then plans with provider ids (`planner.resolved_chat`), and the
owner rule is checked again with them (the owner's own profile in `remove` is refused before
anything is written).

Resolutions are cached in the ledger (`records.ResolutionRecord`, written after the `run` record
of an applying run, only for profiles that resolved): a later run on the same ledger takes a
profile's latest resolution there instead of asking, unless it is older than `resolve_max_age`
(then it is asked again, and recorded again). A profile that could not be resolved is never
cached: a typo fixed on LinkedIn's side, or a transient failure, must not outlive the run.
`plan` reads a ledger's resolutions only when given one (`plan --ledger PATH`); it records none.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from ..errors import RunRefused
from ..model import Job, Resolution, is_profile, profile_display
from ..records import ResolutionRecord
from .workers import for_each

if TYPE_CHECKING:
    from .run import Run

__all__ = ["People", "check_resolutions", "job_profiles"]


def job_profiles(job: Job) -> dict[str, tuple[str, ...]]:
    """Each account's distinct profiles, in the order the job first names them."""
    found: dict[str, dict[str, None]] = {}
    for chat in job.chats:
        for users in (chat.add, chat.remove, chat.members or (), chat.protect):
            for user in users:
                if is_profile(user):
                    found.setdefault(chat.account, {})[user] = None
    return {account: tuple(profiles) for account, profiles in found.items()}


class People:
    """The run's resolutions of its job's profiles, by account; filled once by `resolve`.

    `fresh` are the resolutions this run looked up and got (what its ledger records); the others
    came from the ledger's cache or from a plan.
    """

    __slots__ = ("_cached", "_clock", "_found", "fresh", "max_age", "wanted")

    def __init__(self, job: Job, *, max_age: float, clock: Callable[[], float] = time.time) -> None:
        self.wanted = job_profiles(job)
        self.max_age = max_age
        self._clock = clock
        self._cached: dict[tuple[str, str], Resolution] = {}
        self._found: dict[str, dict[str, Resolution]] = {}
        self.fresh: list[Resolution] = []

    @property
    def lookups(self) -> int:
        """How many profiles the job names (one lookup each, at most, per account)."""
        return sum(len(profiles) for profiles in self.wanted.values())

    def learn(self, records: Iterable[ResolutionRecord]) -> None:
        """The ledger's cache: the latest resolution of each (account, profile) the job names."""
        for record in records:
            if record.profile in self.wanted.get(record.account, ()):
                self._cached[(record.account, record.profile)] = record.resolution

    def adopt(self, resolutions: Iterable[Resolution]) -> None:
        """A plan's resolutions, taken as they are (library `apply(plan)`); recorded as fresh."""
        for resolution in resolutions:
            self._found.setdefault(resolution.account, {})[resolution.profile] = resolution
            if resolution.resolved:
                self.fresh.append(resolution)

    def of(self, account: str) -> Mapping[str, Resolution]:
        """The account's resolutions, by profile (empty before `resolve`)."""
        return self._found.get(account, {})

    def by_account(self) -> Mapping[str, Mapping[str, Resolution]]:
        return self._found

    def all(self) -> tuple[Resolution, ...]:
        return tuple(r for found in self._found.values() for r in found.values())

    def _young(self, account: str, profile: str) -> Resolution | None:
        cached = self._cached.get((account, profile))
        if cached is None or cached.resolved_at is None:
            return None
        return cached if self._clock() - cached.resolved_at <= self.max_age else None

    async def resolve(self, run: Run) -> None:
        """Resolve every profile of every account the job names (from the cache when young
        enough), accounts side by side, a few profiles of one account at a time."""
        asked: dict[str, list[str]] = {}
        for account, profiles in self.wanted.items():
            found = self._found.setdefault(account, {})
            for profile in profiles:
                cached = self._young(account, profile)
                if cached is not None:
                    found[profile] = cached
                else:
                    asked.setdefault(account, []).append(profile)
        run.observer.phase("profiles", sum(len(p) for p in asked.values()))

        async def resolve_account(item: tuple[str, list[str]]) -> None:
            account, profiles = item
            state = run.accounts[account]

            async def look_up(profile: str) -> None:
                resolution = await run.resolve_profile(state, profile)
                self._found[account][profile] = resolution
                if resolution.resolved:
                    self.fresh.append(resolution)
                run.observer.advance("profiles")

            await for_each(profiles, look_up, run.config.chats_per_account)

        await for_each(list(asked.items()), resolve_account, run.config.concurrency)


def check_resolutions(now: Iterable[Resolution], planned: Iterable[Resolution]) -> None:
    """`apply --plan`: every profile must resolve as it did when the plan was made (RunRefused,
    naming them, otherwise: the plan's operations were computed for other people)."""
    before = {(r.account, r.profile): r.user_id for r in planned}
    changed = [
        f"{r.account}: {profile_display(r.profile)} "
        f"({before.get((r.account, r.profile)) or 'not resolved'} when planned, "
        f"{r.user_id or 'not resolved'} now)"
        for r in now
        if before.get((r.account, r.profile)) != r.user_id
    ]
    if changed:
        shown = "; ".join(changed[:10]) + (
            f"; and {len(changed) - 10} more" if len(changed) > 10 else ""
        )
        raise RunRefused(
            f"these profiles resolve differently since the plan: {shown}; nothing was sent"
        )
