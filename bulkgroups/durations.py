"""Lengths of time as people write and read them: `--every 15m`, `about 2m20s left`.

One grammar for every duration the command takes (`apply --every`, `--progress-interval`):
one or more parts `<number><unit>`, the number a whole or decimal number, the unit `s`, `m` (or
`min`), `h` or `d` — `30s`, `15m`, `1h30m`, `1.5h`, `1d`. A bare number is refused (seconds or
minutes?), as are zero, negative and endless lengths. `m` is minutes here, as in cron, systemd
and Kubernetes; rates spell minutes `min` (`2/min`) and refuse `2/m`, where a reader might take it
for a month.

A leaf module (nothing but the standard library): `--help` and argument parsing import it.
"""

from __future__ import annotations

import math
import re
from typing import Final

__all__ = ["DURATION_FORMS", "compact_duration", "format_duration", "parse_duration"]

DURATION_FORMS: Final = "a number and a unit s, m (or min), h or d, such as 30s, 15m, 1h30m, 1d"

_UNIT_SECONDS: Final = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86_400.0}
_PART: Final = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(min|s|m|h|d)")
_WHOLE: Final = re.compile(r"(?:(?:\d+(?:\.\d+)?|\.\d+)(?:min|s|m|h|d))+")
_BARE_NUMBER: Final = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")


def parse_duration(text: str) -> float:
    """Seconds in `text` (`15m` -> 900.0); ValueError with a message fit to show a user."""
    spelled = text.strip().lower() if isinstance(text, str) else ""
    if _WHOLE.fullmatch(spelled) is None:
        hint = ""
        if spelled.startswith("-"):
            hint = "; a length of time cannot be negative"
        elif _BARE_NUMBER.fullmatch(spelled):
            number = spelled.lstrip("+")
            hint = (
                f"; a unit is needed: did you mean {number}s or {number}m?"
                if float(number) > 0
                else "; a duration must be more than 0 seconds"
            )
        raise ValueError(f"not a duration: {str(text)[:80]!r} (expected {DURATION_FORMS}){hint}")
    seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _PART.findall(spelled))
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"a duration must be more than 0 seconds, got {str(text)[:80]!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """`about 1h 5m 0s`; from a day on, `about 2d 3h` (seconds no longer matter)."""
    if seconds < 1:
        return "under a second"
    seconds = round(seconds)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"about {days}d {hours}h"
    parts = []
    if hours:
        parts.append(f"{hours}h")
    if minutes or hours:
        parts.append(f"{minutes}m")
    parts.append(f"{secs}s")
    return "about " + " ".join(parts)


def compact_duration(seconds: float) -> str:
    """`2m20s`, `1h05m`, `3d4h`, `15m`, `12s`, `0.4s`: the two largest units (a zero second
    one left out), for progress and pass lines."""
    if seconds < 0.05 or not math.isfinite(seconds):
        return "0s"
    if seconds < 10 and seconds != round(seconds):
        return f"{seconds:.1f}s"
    whole = round(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m{secs:02d}s" if secs else f"{minutes}m"
    return f"{secs}s"
