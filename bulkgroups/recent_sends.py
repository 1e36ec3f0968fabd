"""When this machine's earlier runs last sent to each account: so that the next run waits only
what the limits need, and never blindly.

A server counts every request of an account in its window, whoever sent it, while a new process
starts with empty pacers. The ledgers tell a run when earlier runs wrote
(`engine.run.Run.pause_after_previous_runs`), but `plan` and `export` record nothing, and a run
of another ledger is not read at all. So every run that sends leaves its times here, in a state
directory shared by all the runs of a user:

- At its start, a run writes a marker naming its process and its accounts (`runs/`). It reads
  what the earlier runs left for its accounts (`accounts/`, one small file per account).
- At its end (finished, failed or interrupted), it writes, for each account it sent to, when its
  last request and its last write were over (answered, or given up: a server has counted a
  request by the time its answer leaves), keeping any later time already there, and removes its
  marker.
- A marker whose process is gone (kill -9, a crash, the machine restarted) is a run that may
  have sent anything until it died, some time before now: its accounts are closed in its name
  as over now (its writes too, unless its marker says it makes none: `plan`, `export`), so the
  run that finds it waits a strictest window (a general one after a reading run) and the later
  ones less.
- A marker whose process still runs is another run sending now: its accounts are counted as
  requested now (one general window; two processes on one account cannot keep its limit between
  them, and this only spares the request that overlapped the hand-over).

The engine waits, per account, until the last request is one general window old and, for a run
that writes, the last write one strictest window old (`engine.handover`). Times are kept per API
origin as the client spells it (`UnipileClient.base_url`, normalised: pass that, not the text
you gave it) and per state directory: runs of another machine, or of a library that was given no
`RecentSends`, are not seen (one Unipile tenant's account ids say nothing of another's). The
state directory is, in order: `$BULKGROUPS_STATE_DIR`, `$XDG_STATE_HOME/bulkgroups`,
`~/.local/state/bulkgroups`. A directory that cannot be used (or answers in no more than 10 s) is
not fatal: an `apply` then waits one general window per account before its first request,
blind, as the library's does when it is given no `RecentSends`.

Everything read here is bounded: files of at most 64 KiB (an account's) or 16 MiB (a marker), at
most 10,000 markers; what cannot be read or parsed is skipped (it is advice, not the ledger).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import secrets
import socket
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import orjson

from .files import FileRefused, read_regular
from .lock import pid_alive

__all__ = ["STATE_DIR_ENV", "Handover", "LastSent", "RecentSends", "default_state_dir"]

STATE_DIR_ENV = "BULKGROUPS_STATE_DIR"

_ACCOUNT_FILE_LIMIT = 64 * 1024
_MARKER_FILE_LIMIT = 16 * 1024 * 1024
_MAX_MARKERS = 10_000
# Tells this process's markers from those of a process before it with the same pid.
_PROCESS = secrets.token_hex(8)
# A marker of another machine (a shared volume) whose process cannot be asked: after this long it
# is taken for dead rather than running.
_FOREIGN_MARKER_AGE = 86400.0


def default_state_dir(env: Mapping[str, str]) -> Path:
    """`$BULKGROUPS_STATE_DIR`, else `$XDG_STATE_HOME/bulkgroups`, else
    `~/.local/state/bulkgroups` (the XDG base directory specification's place for state), as
    `env` (the process's environment, which only the command reads) says."""
    if env.get(STATE_DIR_ENV):
        return Path(env[STATE_DIR_ENV])
    if env.get("XDG_STATE_HOME"):
        return Path(env["XDG_STATE_HOME"]) / "bulkgroups"
    return Path.home() / ".local" / "state" / "bulkgroups"


@dataclass(frozen=True, slots=True)
class LastSent:
    """When an account's last request, and its last write, were over (wall-clock seconds since
    the epoch; None: none known)."""

    request_at: float | None = None
    write_at: float | None = None

    def merged(self, other: LastSent) -> LastSent:
        """The later of each time."""
        return LastSent(
            _later(self.request_at, other.request_at), _later(self.write_at, other.write_at)
        )


def _later(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


@dataclass(frozen=True, slots=True)
class RecentSends:
    """Where the runs to one API origin leave when they last sent to each account (module doc)."""

    directory: Path  # the state directory; the times are kept under `recent-sends/`
    origin: str

    @classmethod
    def default(cls, origin: str, env: Mapping[str, str]) -> RecentSends:
        """The user's state directory for `origin`: `RecentSends.default(url, os.environ)`."""
        return cls(default_state_dir(env), origin)

    @property
    def root(self) -> Path:
        """This origin's part of the state directory."""
        return self.directory / "recent-sends" / _digest(self.origin, 16)

    def begin(
        self, accounts: Collection[str], *, writes: bool = True, now: float | None = None
    ) -> Handover:
        """Mark this run as sending to `accounts` (writing too, unless `writes` is false: `plan`,
        `export`) and read what earlier runs left for them.

        Blocking file work (call it from a worker thread). Raises OSError when the directory
        cannot be created or written: the caller then knows nothing of earlier runs."""
        now = time.time() if now is None else now
        runs, kept = self.root / "runs", self.root / "accounts"
        # Account ids are the user's business: the directories are the user's alone.
        runs.mkdir(mode=0o700, parents=True, exist_ok=True)
        kept.mkdir(mode=0o700, exist_ok=True)
        marker = runs / f"{int(now * 1e6)}-{os.getpid()}-{secrets.token_hex(4)}.json"
        wanted = frozenset(accounts)
        _write_atomically(
            marker,
            {
                "origin": self.origin,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "process": _PROCESS,
                "started_at": now,
                "writes": writes,
                "accounts": sorted(wanted),
            },
        )
        handover = Handover(self, marker, wanted)
        try:
            handover.read_earlier(now)
        except BaseException:
            with contextlib.suppress(OSError):
                marker.unlink()
            raise
        return handover


class Handover:
    """One run's part: what earlier runs left for its accounts (`earlier`), and `close`, which
    leaves its own times for the next."""

    __slots__ = ("_marker", "_place", "_wanted", "earlier")

    def __init__(self, place: RecentSends, marker: Path, wanted: frozenset[str]) -> None:
        self._place = place
        self._marker = marker
        self._wanted = wanted
        self.earlier: dict[str, LastSent] = {}

    def read_earlier(self, now: float) -> None:
        """The markers first, then the accounts' files: a run closes the other way round (its
        files, then its marker), so a run that closes meanwhile is seen one way or the other."""
        self._read_markers(now)
        self._read_accounts()

    def _read_accounts(self) -> None:
        for account in self._wanted:
            found = _read_account(self._account_file(account), account)
            if found is not None:
                self._learn(account, found)

    def close(self, last: Mapping[str, LastSent]) -> None:
        """Leave this run's times (each account's later than any already there), then remove
        its marker (in that order: `read_earlier`). Blocking file work."""
        self._keep(last)
        with contextlib.suppress(FileNotFoundError):
            self._marker.unlink()

    def _learn(self, account: str, sent: LastSent) -> None:
        known = self.earlier.get(account)
        self.earlier[account] = sent if known is None else known.merged(sent)

    def _account_file(self, account: str) -> Path:
        return self._place.root / "accounts" / f"{_digest(account, 32)}.json"

    def _keep(self, last: Mapping[str, LastSent]) -> None:
        """Each account's file rewritten with the later times; under the origin's lock, so that
        two runs closing at once cannot lose each other's."""
        lock = os.open(
            self._place.root / "accounts.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
        )
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            for account, sent in last.items():
                if sent.request_at is None and sent.write_at is None:
                    continue
                path = self._account_file(account)
                known = _read_account(path, account)
                merged = sent if known is None else known.merged(sent)
                _write_atomically(
                    path,
                    {
                        "origin": self._place.origin,
                        "account": account,
                        "request_at": merged.request_at,
                        "write_at": merged.write_at,
                    },
                )
        finally:
            os.close(lock)  # and with it the lock

    def _read_markers(self, now: float) -> None:
        runs = self._place.root / "runs"
        with os.scandir(runs) as entries:
            for count, entry in enumerate(entries):
                if count >= _MAX_MARKERS:
                    break
                path = Path(entry.path)
                if path == self._marker or not entry.name.endswith(".json"):
                    continue
                marker = _read_json(path, _MARKER_FILE_LIMIT)
                if marker is None:
                    continue
                listed = marker.get("accounts")
                if not isinstance(listed, list):
                    continue
                accounts = [a for a in listed if isinstance(a, str)]
                if _still_running(marker, now):
                    for account in self._wanted.intersection(accounts):
                        self._learn(account, LastSent(request_at=now))
                    continue
                # Died mid-run: it may have sent anything until then, so close it as over now.
                died = LastSent(request_at=now, write_at=now if marker.get("writes") else None)
                closed = dict.fromkeys(accounts, died)
                for account in self._wanted.intersection(closed):
                    self._learn(account, died)
                self._keep(closed)
                with contextlib.suppress(OSError):  # gone already, or another user's
                    path.unlink()


def _still_running(marker: Mapping[str, object], now: float) -> bool:
    """Whether the marker's process may still be sending: this process (another run of it, in a
    library); on this machine, whether its pid is alive (not ours: a container's pid 1 is every
    run's, run after run); elsewhere, whether it started less than a day ago."""
    pid, host, started = marker.get("pid"), marker.get("host"), marker.get("started_at")
    if marker.get("process") == _PROCESS:
        return True
    if host != socket.gethostname():
        return isinstance(started, int | float) and now - started < _FOREIGN_MARKER_AGE
    if not isinstance(pid, int) or pid == os.getpid():
        return False
    return pid_alive(pid)


def _read_account(path: Path, account: str) -> LastSent | None:
    data = _read_json(path, _ACCOUNT_FILE_LIMIT)
    if data is None or data.get("account") != account:
        return None
    request_at, write_at = data.get("request_at"), data.get("write_at")
    found = LastSent(
        request_at if isinstance(request_at, int | float) else None,
        write_at if isinstance(write_at, int | float) else None,
    )
    return None if found == LastSent() else found


def _read_json(path: Path, limit: int) -> dict[str, object] | None:
    try:
        data = orjson.loads(read_regular(path, limit=limit))
    except (OSError, FileRefused, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _write_atomically(path: Path, content: Mapping[str, object]) -> None:
    """Whole or not at all, so that a reader never sees half a file; not fsync'd: after a machine
    crash the windows these times are for have long passed."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        tmp.write_bytes(orjson.dumps(content))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
