"""An embedded Unipile v2 look-alike, for tests, demos and `bulkgroups sandbox`.

It serves the endpoints, shapes, errors, rate limits and cache of `unipile-v2.md` on 127.0.0.1, and
counts what a careful client must never do (see `limits`). It imports only `bulkgroups.model`: it
must not share the client's assumptions.

Quick use::

    with run_in_thread(SimConfig(rate=parse_rate("5/s"))) as sim:
        ...  # requests to sim.url with X-API-KEY: sim.api_key
        assert sim.violations() == 0

Conventions (everything is created on first use, deterministically, from the ids):

- People: a pool `ACoAA0001` .. `ACoAA0500` with distinct names (`person(id)`); anyone else gets a
  name derived from sha256 of the id. Everyone has a public identifier (the slug of their profile
  URL, `https://www.linkedin.com/in/<slug>`): pool member n is `first-last-NNNN` (`ACoAA0161` is
  Ann Kim, `ann-kim-0161`), anyone else `first-last-<8 hex of sha256(id)>`.
- Known people (whom an add accepts): anyone whose id has a LinkedIn provider id's shape (`ACo`
  then letters, digits, `_`, `-`: the pool, `big` members, owners, real ids), anyone ever in a chat
  of this simulator (initial, configured or added members), and anyone `register_people` names.
  A profile URL, a slug or free text is none of these.
- Accounts: owner id `ACoAO` + 8 upper-case hex digits of sha256(account) (`owner_id`), provider
  `linkedin`, `application_id` `app_sandbox`. An id containing `gone` does not exist (404
  `api/resource_not_found` on every call, the account GET included, counted by no limit: a
  deleted account, a typo). An id containing `disconnected`, `errored` or `paused` has that
  status; containing `recruiter`, `salesnav` or `company` it is that product (no group
  messaging); otherwise running Classic. Every account has, from its first use, 3..6 starter
  group chats `chat_<8 hex>` named after a topic ("Project team", ...) and one 1to1 chat
  `1to1_<8 hex>` (`starter_chats(account)`), so that a chats listing shows something.
- Chats: name `Group <chat>`; members = the owner (`is_self: true`) plus 3..12 pool members
  (`initial_members(account, chat)` says exactly which). A chat id starting with `1to1` is a 1to1
  chat (owner + one person), with `gone` does not exist (404), with `big` starts with 1000
  participants (`ACoAB0001` .. `ACoAB0999` plus the owner). Any chat used joins its account's
  listing (creation order); a deleted chat leaves it.

Decisions where unipile-v2.md leaves room:

- Auth: no key -> 401 `api/missing_authorization`; a wrong key -> 401 `api/expired_authorization`.
- Account status on account-scoped calls: `disconnected` -> 401 `provider/invalid_authorization`;
  `paused` -> 403 `api/inactive_subscription`; `errored` -> 503 `provider/server_error`. Products
  without group messaging -> 403 `api/insufficient_permissions`. The account GET always answers
  200 and shows the status (never the product: Unipile has no such field).
- Rules: an add to a chat already at 50 participants (owner counted) -> 422
  `provider/unprocessable_entity`; add of a member -> 409 `api/conflict`; remove of a non-member ->
  404 `api/resource_not_found`; the owner removing their own id leaves: the owner is gone from the
  list and `is_readonly` is true; any write to a read-only chat -> 403
  `provider/insufficient_permissions`; listing participants of, or writing to, a non-group chat ->
  400 `api/invalid_parameters`; a deleted chat -> 404 `api/resource_not_found`; adding a user id
  that is no known person -> 400 `api/invalid_parameters` (as the real service answers a
  malformed id).
- Users: `GET /v2/{account}/users/{identifier}` answers a `UserProfile` (the SDK's required fields,
  `public_identifier`, `profile_url`, first and last name) for a known person's provider id, for
  a slug (any case) of a pool member or of anyone known so far, and for `me` (the owner,
  `network_distance: SELF`); anything else -> 404 `api/resource_not_found`.
- Chats: `participants_count` is the number of participants, left out when there are none (the
  SDK's model wants it >= 1 when given). `GET /v2/{account}/chats[?type=group|1to1|channel]` lists
  the account's chats in creation order, any other type -> 400.
- Pages (participants and chats): `limit` default 20, clamped to 100, a number (`20.0` is 20; 0,
  negative or non-numeric -> 400); the cursor is an opaque keyset (join order, creation order), so
  removals while paging skip nobody; without a cursor, `offset` skips that many items;
  `next_cursor` is null at the end; `total_count` counts everything listed. With
  `SimConfig(short_pages=True)` pages hold 1..limit items even when more exist, as Unipile may do.
- Rate limits: per account, on `/v2/{account}/...` only, rolling fixed windows (general `rate`,
  default 20/s, and optional `write_rate` for POST/PATCH/DELETE). Over a window -> 429
  `api/too_many_requests`, `Retry-After` = whole seconds until the window ends, rounded up (>= 1).
  `x-ratelimit-limit` / `-remaining` / `-reset` (whole seconds, rounded up) describe the tighter
  window that applies. `provider_write_limit` writes per account later, every write gets 429
  `provider/too_many_requests` without Retry-After. Violations: see `limits`; cache hits are not
  counted, 429s are.
- Cache (`cache_age` > 0, default off): a GET without `Cache-Control: no-cache` may get a stored
  answer up to `cache_age` seconds old (`X-Cache: HIT`, `Age` in whole seconds); it spends no rate
  and meets no fault; a write invalidates its chat's answers and the account's listings.
  `configure_account` / `configure_chat` are out-of-band changes (as if made in the LinkedIn app):
  cached answers stay stale until they expire, a write, or `clear_cache()`.
- Faults: see `faults` (account-scoped requests past the limiter; reads and writes): errors,
  resets, writes applied or ignored, and for the client's limits `fresh_cursor` and `short_page`
  (listings that never end or end short), `trickle` (a body a byte per second) and `huge_body`
  (a body that does not end).
- Errors are RFC 7807 JSON (`application/json`) with a `req_id`; every answer carries
  `x-request-id`. The order of the checks is in `service`.
- Arrival times are stamped on the simulator's own loop, so they can lag the socket by a GIL
  switch interval (about 5 ms) when the client runs in the same process: pace with a margin.

Inspection (thread-safe, on the `Simulator`): `members`, `chat`, `chats`, `account`, `owner`,
`requests` (the log), `timeline`, `violations`, `violations_by_account`, `configure_account`,
`configure_chat`, `register_people`, `set_faults`, `clear_cache`, `reset_log`; over HTTP under
`/_sim/` (see `app`).
"""

from __future__ import annotations

from bulkgroups.simulator.app import create_app
from bulkgroups.simulator.faults import FaultSpec, parse_faults
from bulkgroups.simulator.population import (
    initial_members,
    owner_id,
    person,
    pool_id,
    starter_chats,
)
from bulkgroups.simulator.runner import run_in_thread, run_sandbox
from bulkgroups.simulator.service import (
    DEFAULT_RATE,
    LoggedRequest,
    SimAccount,
    SimChat,
    SimConfig,
    SimRequest,
    Simulator,
    Violations,
)

__all__ = [
    "DEFAULT_RATE",
    "FaultSpec",
    "LoggedRequest",
    "SimAccount",
    "SimChat",
    "SimConfig",
    "SimRequest",
    "Simulator",
    "Violations",
    "create_app",
    "initial_members",
    "owner_id",
    "parse_faults",
    "person",
    "pool_id",
    "run_in_thread",
    "run_sandbox",
    "starter_chats",
]
