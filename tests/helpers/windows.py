"""What "never over the limit" means, for the pacing tests: the most requests any window holds."""

from __future__ import annotations

from collections.abc import Iterable


def max_in_any_window(times: Iterable[float], period: float) -> int:
    """The most send times any closed interval [a, a + period] holds."""
    ordered = sorted(times)
    best = 0
    start = 0
    for end, t in enumerate(ordered):
        while t - ordered[start] > period:
            start += 1
        best = max(best, end - start + 1)
    return best
