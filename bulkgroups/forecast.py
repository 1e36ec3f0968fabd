"""How long a job will take at its rates, known before a single request is sent.

The CLI warns when that is more than a day: a rate typed as `2/d` where `2/s` was meant would
otherwise keep `plan` or `apply` waiting silently for hours. These are lower bounds: every chat
takes at least two reads (the chat, one page of participants); the writes counted are those the
job names outright (an imperative chat's adds and removes, every rename and leave), since a
desired-state chat's changes are known only once it is read.
"""

from __future__ import annotations

from collections import Counter
from typing import Final

from .engine.config import EngineConfig
from .engine.run import build_pacing
from .engine.selection import scope_job
from .model import Job

__all__ = ["ONE_DAY", "READS_PER_CHAT", "apply_seconds", "read_seconds"]

ONE_DAY: Final = 86_400.0
READS_PER_CHAT: Final = 2


def read_seconds(job: Job, config: EngineConfig) -> float:
    """The least time reading every chat of the job (the part this run selects) takes: what
    `plan` waits."""
    return _seconds(job, config, writes=False)


def apply_seconds(job: Job, config: EngineConfig) -> float:
    """The least time `apply` takes: the reads, the writes the job names, their verification."""
    return _seconds(job, config, writes=True)


def _seconds(job: Job, config: EngineConfig, *, writes: bool) -> float:
    job = scope_job(job, config)
    pacing = build_pacing(job, config)
    reads: Counter[str] = Counter()
    sends: Counter[str] = Counter()
    for chat in job.chats:
        reads[chat.account] += READS_PER_CHAT
        if not writes:
            continue
        named = len(chat.add) + len(chat.remove) + (chat.rename is not None) + chat.leave
        sends[chat.account] += named
        if named and config.verify:
            reads[chat.account] += READS_PER_CHAT
    return max(
        (pacing.estimate_seconds(account, reads[account], sends[account]) for account in reads),
        default=0.0,
    )
