"""The job's hash: what `apply --resume` and `apply --plan` compare to know it is the same job."""

from __future__ import annotations

import hashlib
import json

from ..model import AccountSettings, Job, RateSpec

__all__ = ["job_sha256"]


def _rate_canon(rate: RateSpec | None) -> list[float] | None:
    return None if rate is None else [rate.count, rate.period]


def job_sha256(job: Job) -> str:
    """Hash of the canonical parsed job: what `apply --resume` and `apply --plan` compare.

    Independent of key order, file order, paths and lines; add/remove/members/protect are sets.
    """
    digest = hashlib.sha256(b"bulkgroups job v1\n")
    accounts = {
        account: [
            _rate_canon(settings.rate),
            _rate_canon(settings.write_rate),
            settings.daily_limit,
            settings.max_members,
        ]
        for account, settings in sorted(job.accounts.items())
        if settings != AccountSettings()
    }
    digest.update(json.dumps(accounts, separators=(",", ":")).encode())
    for chat in sorted(job.chats, key=lambda c: (c.account, c.chat)):
        canon = [
            chat.account,
            chat.chat,
            sorted(chat.add),
            sorted(chat.remove),
            chat.rename,
            chat.leave,
            None if chat.members is None else sorted(chat.members),
            sorted(chat.protect),
        ]
        digest.update(b"\n" + json.dumps(canon, separators=(",", ":")).encode())
    return digest.hexdigest()
