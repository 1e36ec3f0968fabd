"""When a paged listing may go on, and when it must stop because it cannot be trusted.

A listing (participants of a chat, chats of an account) is read page by page. The SDK says to page
"with `cursor` if supported by the provider, else `offset`", and pages may carry `total_count`
(a chat carries `participants_count`). A broken or hostile server can make a naive loop run forever
(a fresh cursor on every page), or end early without a word (no cursor, although the count says
more exist). `Listing` is the bookkeeping of one listing, pure and synchronous:

- a `next_cursor` is followed while it is new and its page brought someone new: a repeated cursor,
  or a page that adds no one yet asks for more, is a loop — unless everyone the count promised is
  already in (a server may well end a listing with an empty page that still carries a cursor:
  that is the end, not a failed read);
- with no cursor but a count saying more exist, the next page is asked by `offset` (the number of
  items received so far); an offset page that brings no one new ends the listing;
- the count is the largest one the API gave (the caller's, e.g. the chat's `participants_count`,
  or any page's `total_count`): as every page but the last brings someone new, a listing of N
  never needs more than N + 1 pages; more is a loop. Nor does it hold many more than N items:
  beyond N + 10 % + 10 (room for people joining while it is read) the server is inventing them;
- more than `max_items` distinct items is too many, whatever the count says;
- a listing that ends with fewer distinct items than the count is truncated: the read failed
  (planning on it would re-add people who are there, or miss people to remove).

Each of these raises `PaginationError` (type `client/pagination`, not retryable).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .errors import PaginationError

__all__ = ["Listing", "NextPage"]


@dataclass(frozen=True, slots=True)
class NextPage:
    """How to ask for the next page: by `cursor`, else by `offset`."""

    cursor: str | None = None
    offset: int | None = None

    def query(self) -> dict[str, str]:
        if self.cursor is not None:
            return {"cursor": self.cursor}
        if self.offset is not None:
            return {"offset": str(self.offset)}
        return {}


@dataclass(slots=True)
class Listing:
    """One listing's progress. `what` names it in errors ("participants of chat c1")."""

    what: str
    account: str
    max_items: int
    expected: int | None = None
    pages: int = 0
    received: int = 0
    seen: set[str] = field(default_factory=set)
    cursors: set[str] = field(default_factory=set)
    count: int | None = None

    def __post_init__(self) -> None:
        self.count = self.expected if self.expected is not None and self.expected >= 0 else None

    def _fail(self, detail: str, status: int) -> PaginationError:
        return PaginationError(f"{self.what}: {detail}", status=status, account=self.account)

    def take(
        self,
        ids: Iterable[str],
        *,
        total_count: int | None,
        next_cursor: str | None,
        status: int,
    ) -> tuple[list[int], NextPage | None]:
        """Record one page: the positions of its items not seen before, and how to ask for the
        next page (None: the listing is complete). Raises `PaginationError` when it cannot be
        trusted."""
        self.pages += 1
        fresh: list[int] = []
        for position, item in enumerate(ids):
            self.received += 1
            if item not in self.seen:
                self.seen.add(item)
                fresh.append(position)
        if total_count is not None and total_count >= 0:
            self.count = total_count if self.count is None else max(self.count, total_count)
        if len(self.seen) > self.max_items:
            raise self._fail(f"more than {self.max_items:,} items, the client's cap", status)
        if self.count is not None and len(self.seen) > self.count + self.count // 10 + 10:
            raise self._fail(
                f"{len(self.seen)} items, far more than the {self.count} the API counts", status
            )
        next_page = self._next(next_cursor, bool(fresh), status)
        if next_page is not None and self.count is not None and self.pages >= self.count + 1:
            raise self._fail(
                f"more than {self.pages} pages for {self.count} items "
                "(every page but the last must bring a new one)",
                status,
            )
        if next_page is None and self.count is not None and len(self.seen) < self.count:
            raise self._fail(
                f"the listing ended with {len(self.seen)} of the {self.count} items "
                "the API counts (truncated)",
                status,
            )
        return fresh, next_page

    def _next(self, cursor: str | None, progressed: bool, status: int) -> NextPage | None:
        if cursor is not None:
            if cursor in self.cursors:
                raise self._fail("the server repeated a cursor", status)
            if not progressed:
                if self.count is not None and len(self.seen) >= self.count:
                    return None  # everyone counted is in: the empty page is the end
                raise self._fail("a page brought no new item yet asked for more", status)
            self.cursors.add(cursor)
            return NextPage(cursor=cursor)
        if self.count is not None and len(self.seen) < self.count and progressed:
            return NextPage(offset=self.received)
        return None
