"""`--only-account` and `--only-chat`: a run restricted to part of its job.

A restricted run is a run of the same job, as a shard is: its records carry the whole job's
`job_sha256`, so `apply --resume` without the restriction continues it with the rest (and
`--resume --only-chat X` after a whole run continues X alone), and the ledger's daily limits and
pacing count it as any other run of those accounts. Preflight, the owner rule and the removal
guards see only what is selected.

A chat is named by its id (that chat under every account of the job that has it) or as
`ACCOUNT/CHAT`. With both flags a chat must pass both. Every id must name something, within the
accounts selected: a typo is a usage error naming it, never a run that silently does nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ..errors import UsageError
from ..model import ChatJob, Job
from .config import EngineConfig
from .run import shard_job

__all__ = ["scope_job", "select_job"]

# Ids listed in a message, at most: a job may have thousands of accounts.
_SHOWN = 10


def _listed(ids: Sequence[str]) -> str:
    shown = ", ".join(ids[:_SHOWN])
    return shown + (f" and {len(ids) - _SHOWN} more" if len(ids) > _SHOWN else "")


def _names(chat: ChatJob) -> tuple[str, str]:
    return chat.chat, f"{chat.account}/{chat.chat}"


def select_job(job: Job, *, accounts: Sequence[str] = (), chats: Sequence[str] = ()) -> Job:
    """The job restricted to `accounts` and `chats` (empty: no restriction on that side).

    Raises `UsageError` naming every account that is not in the job and every chat that is not
    in it (or not in the accounts selected).
    """
    if not accounts and not chats:
        return job
    known = job.account_ids()
    known_set = set(known)
    unknown = [a for a in dict.fromkeys(accounts) if a not in known_set]
    if unknown:
        raise UsageError(
            f"--only-account {_listed(unknown)}: not an account of the job "
            f"(its accounts: {_listed(known)})"
        )
    wanted_accounts = set(accounts)
    candidates = [c for c in job.chats if not accounts or c.account in wanted_accounts]
    if not chats:
        return replace(job, chats=tuple(candidates))
    wanted = set(chats)
    found: set[str] = set()
    selected: list[ChatJob] = []
    for chat in candidates:
        named = wanted.intersection(_names(chat))
        if named:
            selected.append(chat)
            found |= named
    missing = [c for c in dict.fromkeys(chats) if c not in found]
    if missing:
        where = "in the accounts given to --only-account" if accounts else "in the job"
        raise UsageError(
            f"--only-chat {_listed(missing)}: no such chat {where} (name a chat CHAT, under "
            "any account, or ACCOUNT/CHAT)"
        )
    return replace(job, chats=tuple(selected))


def scope_job(job: Job, config: EngineConfig) -> Job:
    """What a run works on: the job restricted by `only_accounts`/`only_chats`, then its shard."""
    selected = select_job(job, accounts=config.only_accounts, chats=config.only_chats)
    return shard_job(selected, config.shard)
