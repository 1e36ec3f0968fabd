"""What exists: an account's group chats and their members, read for `export`.

The reads are a run's (`Run`): the account lookups first, then per account its group chats
(every cursor page of `GET /v2/{account}/chats?type=group`) and each chat's participants, all
paced by the account's pacer, retried and gated like any read of a job, accounts side by side,
a few chats of one account at a time. Nothing is written. A chat's participants are read with the
chat's info from the listing, so a chat costs one request per page of its participants; chats
named with `chats` are read with their own lookup first (`GET .../chats/{id}`), in every account,
and a chat none of the accounts has is a problem.

Each account's chats reach `emit` in order (by chat id for a listing, as given otherwise) as soon
as they and those before them are read: out of order, only the chats read while an earlier one
was still being read are held.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..errors import plain_errors
from ..export import ExportedChat
from ..model import ChatInfo, ChatState, ErrorInfo, Job, ReadFailure, Reason, Status
from .accounts import Account
from .api import ChatApi
from .config import EngineConfig, RunObserver
from .handover import reading_handed_over
from .run import Run
from .workers import for_each

__all__ = ["Inventory", "read_existing"]


def _why(status: Status, reason: Reason, error: ErrorInfo | None) -> str:
    text = f"{status} {reason}"
    if error is not None:
        code = f"{error.status} " if error.status is not None else ""
        text += f": {code}{error.type}"
    return text


def _failure(failure: ReadFailure) -> str:
    return _why(failure.status, failure.reason, failure.error)


@dataclass(slots=True)
class Inventory:
    """What an export could not read: whole accounts, and chats that none of them has."""

    accounts: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        found = [f"{account}: {why}" for account, why in self.accounts.items()]
        return found + [f"{chat}: found in none of the accounts" for chat in self.missing]


async def read_existing(
    accounts: Sequence[str],
    client: ChatApi,
    emit: Callable[[ExportedChat], None],
    *,
    chats: Sequence[str] = (),
    config: EngineConfig | None = None,
    observer: RunObserver | None = None,
) -> Inventory:
    """Read the accounts' group chats (or only `chats`) and their members; `emit` each, per
    account in order. Raises `AuthError` when the key is refused, at the lookups or later (what
    was emitted is then incomplete: the CLI writes nothing)."""
    config = config or EngineConfig()
    run = Run(Job(chats=()), client, config, observer, accounts=accounts)
    with plain_errors():
        async with reading_handed_over(run):
            return await _read_accounts(run, emit, list(dict.fromkeys(chats)))


async def _read_accounts(
    run: Run, emit: Callable[[ExportedChat], None], chats: Sequence[str]
) -> Inventory:
    inventory = Inventory()
    found: set[str] = set()
    await run.preflight()
    if run.stops.key_refused is not None:
        raise run.stops.key_refused
    run.observer.phase("read", 0)

    async def export_account(account: str) -> None:
        state = run.accounts[account]
        if state.halted():
            stop = state.current_stop()
            inventory.accounts[account] = _why(stop.status, stop.reason, stop.error)
            return
        if chats:
            wanted: list[tuple[str, ChatInfo | None]] = [(chat, None) for chat in chats]
        else:
            listed = await run.list_group_chats(state)
            if isinstance(listed, ReadFailure):
                inventory.accounts[account] = _failure(listed)
                return
            wanted = [(info.chat_id, info) for info in sorted(listed, key=lambda i: i.chat_id)]
        run.observer.grow("read", len(wanted))
        await _read_in_order(run, state, wanted, emit, found, named=bool(chats))

    await for_each(list(run.accounts), export_account, run.config.concurrency)
    if run.stops.key_refused is not None:
        raise run.stops.key_refused
    inventory.missing = [chat for chat in chats if chat not in found]
    return inventory


async def _read_in_order(
    run: Run,
    account: Account,
    wanted: list[tuple[str, ChatInfo | None]],
    emit: Callable[[ExportedChat], None],
    found: set[str],
    *,
    named: bool,
) -> None:
    """Read the chats a few at a time; emit each once those before it are emitted."""
    done: dict[int, ExportedChat | None] = {}
    following = 0

    async def read_one(item: tuple[int, tuple[str, ChatInfo | None]]) -> None:
        nonlocal following
        index, (chat, info) = item
        observed = await run.read_chat(account, chat, info=info)
        done[index] = _exported(observed, account, found, named=named)
        run.observer.advance("read")
        while following in done:
            exported = done.pop(following)
            following += 1
            if exported is not None:
                emit(exported)

    await for_each(list(enumerate(wanted)), read_one, run.config.chats_per_account, lending=True)


def _exported(
    observed: ChatState | ReadFailure, account: Account, found: set[str], *, named: bool
) -> ExportedChat | None:
    """The chat as exported; None for a chat named on the command line that this account does
    not have (another account may)."""
    if isinstance(observed, ReadFailure):
        if named and observed.reason == "chat_not_found":
            return None
        found.add(observed.chat)
        return ExportedChat(
            observed.account, observed.chat, "unreadable", problem=_failure(observed)
        )
    found.add(observed.chat)
    info = observed.info
    if info.type != "group" or not info.is_group:
        return ExportedChat(observed.account, observed.chat, "not_group", info.name)
    if not observed.members_listed:
        return ExportedChat(observed.account, observed.chat, "readonly", info.name)
    members = tuple(
        p for p in observed.participants if not p.is_self and p.user_id != account.owner
    )
    return ExportedChat(observed.account, observed.chat, "group", info.name, members)
