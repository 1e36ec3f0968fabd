"""A line chart written by hand as SVG (no plotting dependency): operations completed over time
against the ideal line, for `benchmarks/makespan.svg`."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

WIDTH, HEIGHT = 760, 420
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 40, 50


def _ticks(maximum: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least `maximum`."""
    raw = maximum / count if maximum > 0 else 1.0
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [i * step for i in range(count + 2) if i * step <= maximum]


def _steps(
    times: Sequence[float], x: Callable[[float], float], y: Callable[[float], float], style: str
) -> str:
    """The count of `times` (sorted) passed, as a step line."""
    points = [f"{x(0):.1f},{y(0):.1f}"]
    for count, seconds in enumerate(times, start=1):
        points.append(f"{x(seconds):.1f},{y(count - 1):.1f} {x(seconds):.1f},{y(count):.1f}")
    return f'<polyline points="{" ".join(points)}" fill="none" stroke-width="2" {style}/>'


def write_completion_svg(
    path: Path,
    completed: Sequence[float],
    *,
    ideal: Sequence[float],
    title: str,
    note: str,
) -> None:
    """`completed`: seconds from the start at which each operation completed (any order);
    `ideal`: the same at the ideal pace."""
    times = sorted(completed)
    ideal_times = sorted(ideal)
    total = len(times)
    x_max = max([*ideal_times[-1:], *times[-1:]]) * 1.05 or 1.0
    y_max = max(total, 1) * 1.05
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(seconds: float) -> float:
        return LEFT + seconds / x_max * plot_w

    def y(count: float) -> float:
        return TOP + plot_h - count / y_max * plot_h

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="20" text-anchor="middle" font-size="14">{title}</text>',
    ]
    for tick in _ticks(x_max):
        out.append(
            f'<line x1="{x(tick):.1f}" y1="{TOP}" x2="{x(tick):.1f}" y2="{TOP + plot_h}" '
            'stroke="#eee"/>'
        )
        out.append(
            f'<text x="{x(tick):.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">{tick:g}</text>'
        )
    for tick in _ticks(y_max):
        out.append(
            f'<line x1="{LEFT}" y1="{y(tick):.1f}" x2="{LEFT + plot_w}" y2="{y(tick):.1f}" '
            'stroke="#eee"/>'
        )
        out.append(f'<text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:g}</text>')
    out += [
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" '
        'stroke="black"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="black"/>',
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 12}" text-anchor="middle">'
        "seconds since the start of the run</text>",
        f'<text x="16" y="{TOP + plot_h / 2}" text-anchor="middle" '
        f'transform="rotate(-90 16 {TOP + plot_h / 2})">operations completed</text>',
        _steps(ideal_times, x, y, 'stroke="#888" stroke-dasharray="6 4"'),
        _steps(times, x, y, 'stroke="#1f77b4"'),
    ]
    legend_x, legend_y = LEFT + plot_w - 400, TOP + plot_h - 62
    out += [
        f'<rect x="{legend_x}" y="{legend_y - 14}" width="396" height="62" fill="white" '
        'stroke="#ccc"/>',
        f'<line x1="{legend_x + 8}" y1="{legend_y}" x2="{legend_x + 38}" y2="{legend_y}" '
        'stroke="#1f77b4" stroke-width="2"/>',
        f'<text x="{legend_x + 44}" y="{legend_y + 4}">bulkgroups (ledger outcomes)</text>',
        f'<line x1="{legend_x + 8}" y1="{legend_y + 18}" x2="{legend_x + 38}" y2="{legend_y + 18}" '
        'stroke="#888" stroke-width="2" stroke-dasharray="6 4"/>',
        f'<text x="{legend_x + 44}" y="{legend_y + 22}">ideal: each account&#8217;s requests at its full '
        f"rate from the start ({ideal_times[-1] if ideal_times else 0:.1f} s)</text>",
        f'<text x="{legend_x + 8}" y="{legend_y + 40}" fill="#555">{note}</text>',
        "</svg>",
    ]
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
