"""Injected faults: the `--faults` spec and the seeded dice that decide which request meets one.

Spec syntax (CONTRACT.md): comma-separated `KIND=PROBABILITY` pairs plus an optional
`latency=DURATION`, e.g. `500=0.05,429=0.02,reset=0.01,applied500=0.01,latency=5ms`.

| kind | answer |
|---|---|
| `500` | 500 RFC 7807 `api/internal_error`; nothing applied |
| `502` | 502 with an HTML page (a proxy's, not JSON); nothing applied |
| `503` | 503 with an empty body; nothing applied |
| `504` | 504 RFC 7807 `api/proxy_timeout`; nothing applied |
| `429` | 429 RFC 7807 `api/too_many_requests` with `Retry-After: 1`; nothing applied |
| `reset` | the connection is closed without an answer; nothing applied |
| `applied500` | writes only: the write takes effect, then 500 `api/internal_error` |
| `appliedreset` | writes only: the write takes effect, then the connection is closed |
| `ignored` | writes only: 200 as if accepted, but nothing changes (re-read to verify) |
| `fresh_cursor` | listings only: the page as usual, but its `next_cursor` is one never handed out before, on every page and past the end too (a listing that never ends) |
| `short_page` | listings only: the page cut to its first half (rounded down) and no `next_cursor`, `total_count` unchanged (a truncated listing; asking on by `offset` works) |
| `trickle` | the answer as usual (a write takes effect), its body sent one byte per `TRICKLE_INTERVAL` (1 s; `SimConfig.trickle_interval`) |
| `huge_body` | the answer's status, then an endless JSON body (chunked, no length; cut at 1 GiB or when the client hangs up); a write takes effect |

Faults meet account-scoped requests (`/v2/{account}/...`), reads and writes alike (the writes-only
kinds pass over reads, the listing kinds over anything but `GET .../participants` and
`GET .../chats`), and only those that got past the rate limiter; never the core account GET.
Latency (`5ms`, `0.2s`) is added to every answer, the account GET included.

Each account rolls its own dice, seeded from `f"{seed}/{account}"`: the faults an account meets
depend only on the seed and that account's own sequence of requests, not on how concurrent
accounts interleave.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Literal, get_args

__all__ = [
    "HUGE_BODY_LIMIT",
    "LISTING_FAULTS",
    "TRICKLE_INTERVAL",
    "WRITE_ONLY_FAULTS",
    "FaultDice",
    "FaultKind",
    "FaultSpec",
    "parse_duration",
    "parse_faults",
]

FaultKind = Literal[
    "429",
    "500",
    "502",
    "503",
    "504",
    "reset",
    "applied500",
    "appliedreset",
    "ignored",
    "fresh_cursor",
    "short_page",
    "trickle",
    "huge_body",
]
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)
WRITE_ONLY_FAULTS: frozenset[str] = frozenset({"applied500", "appliedreset", "ignored"})
LISTING_FAULTS: frozenset[str] = frozenset({"fresh_cursor", "short_page"})
# `trickle`: seconds between two bytes of a body (well under any sane read timeout, so that only
# a deadline over the whole request ends it). `huge_body`: bytes sent at most.
TRICKLE_INTERVAL = 1.0
HUGE_BODY_LIMIT = 1024**3

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s)\s*$")


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """Probabilities per fault kind (summing to at most 1) and a fixed latency in seconds."""

    rates: tuple[tuple[FaultKind, float], ...] = ()
    latency: float = 0.0

    def __post_init__(self) -> None:
        for kind, p in self.rates:
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault kind {kind!r}")
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"fault probability of {kind} must be within 0..1, got {p}")
        if sum(p for _, p in self.rates) > 1.0 + 1e-9:
            raise ValueError("fault probabilities add up to more than 1")
        if self.latency < 0:
            raise ValueError("latency must not be negative")

    def __str__(self) -> str:
        parts = [f"{kind}={p:g}" for kind, p in self.rates]
        if self.latency:
            parts.append(f"latency={self.latency * 1000:g}ms")
        return ",".join(parts)


def parse_duration(text: str) -> float:
    """`5ms` or `0.2s` to seconds."""
    match = _DURATION_RE.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text[:80]!r} (expected e.g. 5ms or 0.2s)")
    value = float(match.group(1))
    return value / 1000 if match.group(2) == "ms" else value


def parse_faults(text: str) -> FaultSpec:
    """Parse the `--faults` syntax; raises ValueError with a message fit to show a user."""
    rates: dict[FaultKind, float] = {}
    latency = 0.0
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not value:
            raise ValueError(f"fault {part.strip()[:80]!r} needs KIND=VALUE")
        if key == "latency":
            latency = parse_duration(value)
            continue
        if key not in FAULT_KINDS:
            raise ValueError(
                f"unknown fault kind {key[:80]!r} (known: {', '.join(FAULT_KINDS)}, latency)"
            )
        try:
            probability = float(value)
        except ValueError:
            raise ValueError(f"fault {key}: not a probability: {value[:80]!r}") from None
        if key in rates:
            raise ValueError(f"fault {key} given twice")
        rates[key] = probability
    return FaultSpec(tuple(rates.items()), latency)


@dataclass(slots=True)
class FaultDice:
    """Per-account seeded dice: one roll per eligible request."""

    spec: FaultSpec
    seed: int = 0
    _rngs: dict[str, random.Random] = field(default_factory=dict)

    def roll(self, account: str, *, is_write: bool, is_listing: bool = False) -> FaultKind | None:
        """The fault this request meets, if any: one roll per eligible request, whether or not
        the kind rolled applies to it (so an account's sequence of faults does not depend on
        which of its requests are listings)."""
        if not self.spec.rates:
            return None
        rng = self._rngs.get(account)
        if rng is None:
            rng = self._rngs[account] = random.Random(f"{self.seed}/{account}")
        point = rng.random()
        for kind, p in self.spec.rates:
            if point < p:
                if kind in WRITE_ONLY_FAULTS and not is_write:
                    return None
                if kind in LISTING_FAULTS and not is_listing:
                    return None
                return kind
            point -= p
        return None
