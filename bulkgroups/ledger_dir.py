"""A ledger directory: the ledgers of a job's shards side by side, every run reading them all.

`--ledger DIR/` (a path ending in `/`, or an existing directory) makes a run append to its own
file in DIR, `shard-I-of-N.jsonl` with `--shard I/N` and `ledger.jsonl` without, locked as any
ledger (`FILE.lock`). It reads every `*.jsonl` ledger in DIR, so that when the number of shards
changes between runs an account's history is still seen wherever it was written:

- daily limits count the write attempts of every file (intents are per file, never repeated);
- pacing across runs waits from each account's latest record in any file, and from the end (or
  the death) of the last run of every file that may have sent that account requests: a
  `shard-J-of-M.jsonl` speaks for the accounts of shard J of M, any other file for all. A file
  whose writer died mid-run holds its accounts back a full window only until a run of another
  file of theirs has started since (`LedgerHistory.death_outlived`);
- pending writes (sent without a known outcome) are taken from every file, unless a later record
  of the same operation in another file supersedes them;
- `--resume` continues the last run of the run's own file (another sharding's runs are not its
  runs; their settled operations show as skips in the fresh reads).

Two shardings must not run at once (they would share accounts): after taking its own lock, a run
looks at the lock of every other file in DIR and refuses (exit 1, nothing sent) if a live process
holds one that may speak for one of its accounts. Each run takes its lock before looking, so of
two runs starting together at least one sees the other. The check is by pid, as the lock's own:
processes in other pid namespaces (containers sharing a volume) are not seen reliably.

This module imports only leaves (`model`, `errors`, `records`) and the ledger's own modules.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Final

from .errors import RunRefused, UsageError
from .files import sync_entry
from .ledger import Replay, read_ledger, record_digest, replay
from .lock import LedgerLock, LockHolder
from .model import Operation, shard_of
from .records import (
    EndRecord,
    IntentRecord,
    OpRecord,
    Record,
    ResolutionRecord,
    RunRecord,
    VerifyRecord,
    parse_time,
)

__all__ = [
    "DIRECTORY_LEDGER",
    "LedgerHistory",
    "LedgerPlace",
    "combined",
    "file_shard",
    "ledger_files",
    "ledger_place",
    "names_directory",
    "prepare_directory",
    "read_histories",
    "read_ledgers",
]

# The file of a run without `--shard` in a ledger directory.
DIRECTORY_LEDGER: Final = "ledger.jsonl"
_SHARD_FILE: Final = re.compile(r"shard-(\d+)-of-(\d+)\.jsonl")


def names_directory(ledger: str) -> bool:
    """Whether `--ledger` names a directory: it ends in `/` or is an existing directory."""
    return ledger.endswith(("/", os.sep)) or os.path.isdir(ledger)


@dataclass(frozen=True, slots=True)
class LedgerPlace:
    """Where a run appends (`path`, locked) and which directory's ledgers it reads besides
    (None: `path` alone, a plain ledger file)."""

    path: str
    directory: str | None = None


def ledger_place(ledger: str, shard: tuple[int, int] | None) -> LedgerPlace:
    """The file a run appends to for `--ledger` (see the module docstring)."""
    if not names_directory(ledger):
        return LedgerPlace(ledger)
    name = DIRECTORY_LEDGER if shard is None else f"shard-{shard[0]}-of-{shard[1]}.jsonl"
    return LedgerPlace(os.path.join(ledger, name), ledger)


def file_shard(path: str) -> tuple[int, int] | None:
    """The (I, N) of a `shard-I-of-N.jsonl` file name; None for any other name."""
    match = _SHARD_FILE.fullmatch(os.path.basename(path))
    if match is None:
        return None
    index, count = int(match.group(1)), int(match.group(2))
    return (index, count) if 0 <= index < count else None


def ledger_files(directory: str, *, locked: bool = False) -> list[str]:
    """Every `*.jsonl` file of the directory, by name; subdirectories are not looked into. With
    `locked`, also the ledgers that only have a lock so far (`*.jsonl.lock`: a run still
    reading, or one that died before writing anything).

    A missing directory has none; one that cannot be listed is a `UsageError`.
    """
    try:
        with os.scandir(directory) as entries:
            names = {
                e.name.removesuffix(".lock")
                for e in entries
                if (e.name.endswith(".jsonl") or (locked and e.name.endswith(".jsonl.lock")))
                and not e.is_dir()
            }
    except FileNotFoundError:
        return []
    except NotADirectoryError:
        raise UsageError(f"{directory}: not a directory") from None
    except OSError as error:
        raise UsageError(f"{directory}: cannot list the ledgers: {error.strerror}") from error
    return [os.path.join(directory, name) for name in sorted(names)]


def prepare_directory(place: LedgerPlace) -> None:
    """Create the ledger directory if it does not exist yet (not its parents: a typo in them
    should not quietly start an empty history)."""
    if place.directory is None:
        return
    try:
        os.mkdir(place.directory)
    except FileExistsError:
        if not os.path.isdir(place.directory):
            raise UsageError(f"{place.directory}: not a directory") from None
    except OSError as error:
        raise UsageError(
            f"{place.directory}: cannot create the ledger directory: {error.strerror}"
        ) from error
    else:
        sync_entry(place.directory)


# --------------------------------------------------------------------------------------------
# What a run learns from a directory
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LedgerHistory:
    """One ledger as a run found it: what it says, which accounts it may hold requests of (its
    `shard`; None: any), and whether the process that last held its lock died holding it (and
    when that process took the lock, if known)."""

    path: str
    replay: Replay
    shard: tuple[int, int] | None = None
    holder_died: bool = False
    holder_since: float | None = None

    def covers(self, account: str) -> bool:
        """Whether a run that wrote this ledger may have sent `account` requests."""
        return self.shard is None or shard_of(account, self.shard[1]) == self.shard[0]

    @property
    def died_mid_run(self) -> bool:
        """Its writer died holding the lock, or its last run has no `end`: when that process last
        sent a request is unknown."""
        return self.holder_died or self.replay.last_run_open

    def death_outlived(self, account: str, histories: Sequence[LedgerHistory]) -> bool:
        """Whether a run of another ledger that may hold `account`'s requests started after this
        ledger's dead writer took its lock (or began its open run).

        That run found the writer dead (a live one would have refused it: see the module
        docstring) and waited a full window itself, so what the dead writer sent is behind it.
        Without this, a shard's file abandoned mid-run after a resharding would make every later
        run of its accounts wait a full window, forever.
        """
        since = self.holder_since if self.holder_died else self.replay.last_run_started_at
        if since is None:
            return False
        return any(
            other is not self
            and other.covers(account)
            and (other.replay.last_run_started_at or float("-inf")) > since
            for other in histories
        )


def _may_share(
    other: tuple[int, int] | None, ours: tuple[int, int] | None, accounts: Sequence[str]
) -> bool:
    """Whether a run on a file of shard `other` may work on one of `accounts` (ours)."""
    if other is not None and ours is not None and other[1] == ours[1]:
        return False  # two shards of one sharding never share an account
    if other is None:
        return bool(accounts)
    return any(shard_of(account, other[1]) == other[0] for account in accounts)


def _neighbours(
    place: LedgerPlace, accounts: Sequence[str], shard: tuple[int, int] | None
) -> list[tuple[str, LockHolder | None]]:
    """The directory's other ledgers, each with its lock's holder; raises `RunRefused` if a live
    process holds one that may share an account with this run."""
    if place.directory is None:
        return []
    found: list[tuple[str, LockHolder | None]] = []
    for path in ledger_files(place.directory, locked=True):
        if os.path.abspath(path) == os.path.abspath(place.path):
            continue
        holder = LedgerLock(path).holder()
        if holder is not None and holder.alive and _may_share(file_shard(path), shard, accounts):
            raise RunRefused(
                f"{path} is in use by {holder}: a run of another sharding (or without --shard) "
                "may share accounts with this one; let it finish first"
            )
        found.append((path, holder))
    return found


def _since(holder: LockHolder | None) -> float | None:
    if holder is None or holder.started_at is None:
        return None
    try:
        return parse_time(holder.started_at)
    except ValueError:
        return None


def read_histories(
    place: LedgerPlace,
    *,
    accounts: Sequence[str],
    shard: tuple[int, int] | None,
    job_sha256: str,
    keep_outcomes: bool,
    holder_died: bool,
) -> tuple[list[LedgerHistory], Replay]:
    """The run's own ledger first (outcomes kept if `keep_outcomes`), then every other ledger
    of its directory; and what they say together (`combined`). Blocking (it reads the ledgers):
    run it in a worker thread.

    Call it holding the own ledger's lock (see the module docstring for why in that order).
    """
    own_shard = None if place.directory is None else file_shard(place.path)
    histories = [
        LedgerHistory(
            place.path,
            replay(place.path, job_sha256=job_sha256, keep_outcomes=keep_outcomes),
            own_shard,
            holder_died,
        )
    ]
    for path, holder in _neighbours(place, accounts, shard):
        found = replay(path, job_sha256=job_sha256, keep_outcomes=False)
        died = holder is not None and not holder.alive
        histories.append(LedgerHistory(path, found, file_shard(path), died, _since(holder)))
    return histories, combined(histories)


def combined(histories: Sequence[LedgerHistory]) -> Replay:
    """One `Replay` of all: the first (own) ledger's runs and outcomes, every ledger's write
    attempts today (summed) and latest record per account, and the pending writes of all that
    no later record elsewhere superseded. Blocking: it may read the ledgers once more."""
    own = histories[0].replay
    if len(histories) == 1:
        return own
    writes: dict[str, int] = {}
    last: dict[str, float] = {}
    for history in histories:
        for account, count in history.replay.writes_today.items():
            writes[account] = writes.get(account, 0) + count
        for account, at in history.replay.last_record_at.items():
            last[account] = max(at, last.get(account, at))
    pending, since, renamed_from = _pending(histories)
    return replace(
        own,
        writes_today=writes,
        last_record_at=last,
        pending=pending,
        pending_since=since,
        resolutions=_latest_resolutions(histories),
        renamed_from=renamed_from,
    )


def _latest_resolutions(
    histories: Sequence[LedgerHistory],
) -> dict[tuple[str, str], ResolutionRecord]:
    """Each (account, profile)'s latest resolution in any ledger: resharding keeps the cache."""
    latest: dict[tuple[str, str], ResolutionRecord] = {}
    for history in histories:
        for key, found in history.replay.resolutions.items():
            known = latest.get(key)
            if known is None or parse_time(found.at) > parse_time(known.at):
                latest[key] = found
    return latest


def _pending(
    histories: Sequence[LedgerHistory],
) -> tuple[dict[bytes, Operation], dict[bytes, float], dict[bytes, str]]:
    """Every ledger's pending writes, the latest of each operation, less those that a later
    `intent` or `op` record in another ledger superseded (the next run on that ledger decided
    them, or sent them again), with the since and the rename's previous name of the ledger
    each was taken from. Only when there are any does it read the ledgers once more."""
    candidates: dict[bytes, tuple[float, str, Operation, str | None]] = {}
    for history in histories:
        found = history.replay
        for digest, operation in found.pending.items():
            at = found.pending_since.get(digest, float("-inf"))
            if digest not in candidates or at > candidates[digest][0]:
                renamed = found.renamed_from.get(digest)
                candidates[digest] = (at, history.path, operation, renamed)
    superseded: set[bytes] = set()
    if candidates:
        for history in histories:
            for record in _records_if_any(history.path):
                if not isinstance(record, IntentRecord | OpRecord):
                    continue
                digest = record_digest(record)
                candidate = candidates.get(digest)
                if (
                    candidate is not None
                    and candidate[1] != history.path
                    and parse_time(record.at) > candidate[0]
                ):
                    superseded.add(digest)
    kept = {d: c for d, c in candidates.items() if d not in superseded}
    return (
        {d: c[2] for d, c in kept.items()},
        {d: c[0] for d, c in kept.items()},
        {d: c[3] for d, c in kept.items() if c[3] is not None},
    )


def _records_if_any(path: str) -> Iterator[Record]:
    """A ledger's records; none if it does not exist (yet: only its lock does)."""
    try:
        yield from read_ledger(path)
    except FileNotFoundError:
        return


# --------------------------------------------------------------------------------------------
# Reading a directory as one ledger (`report DIR/`)
# --------------------------------------------------------------------------------------------


def _record_time(record: Record) -> str | None:
    if isinstance(record, RunRecord):
        return record.started_at
    if isinstance(record, EndRecord):
        return record.finished_at
    assert isinstance(record, IntentRecord | OpRecord | VerifyRecord)
    return record.at


def _timed(records: Iterator[Record]) -> Iterator[tuple[float, Record]]:
    """Each record with its time; one without a usable time (an old `run` record) takes the
    time of the record before it, so that the file stays in order."""
    at = float("-inf")
    for record in records:
        text = _record_time(record)
        if text:
            with contextlib.suppress(ValueError):
                at = max(at, parse_time(text))
        yield at, record


def read_ledgers(path: str | os.PathLike[str]) -> Iterator[Record]:
    """The records of a ledger, or of every ledger of a directory merged in time order (each
    file is in time order already), streaming. See `ledger.read_ledger` for the errors."""
    name = os.fspath(path)
    if not os.path.isdir(name):
        yield from read_ledger(name)
        return
    files = [_timed(read_ledger(f)) for f in ledger_files(name)]
    for _, record in heapq.merge(*files, key=lambda timed: timed[0]):
        yield record
