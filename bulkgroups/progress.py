"""Progress while a command works: bars at a terminal, a plain line every few seconds elsewhere.

`ProgressDisplay` is the CLI's `RunObserver` (and `WorkObserver`). Its phases are the engine's:
accounts looked up ("preflight"), chats read ("read") and operations recorded ("apply", one step
per `op` record as it is written, so at 1 write/min it still moves every minute; on `--resume`
its total is what is left). The apply phase shows its rate and an ETA (`eta.Eta`: each account's
pacer's estimate, lengthened where the rate achieved is slower; the slowest account bounds it).

Three modes:
- `bars` (stderr is a terminal): rich draws one bar per phase in place. `pause()` takes the bars
  off before a question is asked, and `resume()` draws them afresh *below* it: a live display
  that was merely stopped and started again would move the cursor up over its last height and
  erase whatever was printed meanwhile (the plan, the question and its answer).
- `lines` (cron, CI, `| tee`): no control characters, one line every `interval` seconds while
  work is under way (`progress: 120/400 operations (30 %), 2.0/s, about 2m20s left`) and a last
  one at the end,
  logged as records of the `bulkgroups.progress` logger (so `--log-format json` makes them JSON,
  with the figures as fields).
- `off` (`--quiet`): nothing drawn; the outcomes are still counted for the result table.

`run_clock()` is the display's own task (the caller runs it in its task group): it refreshes the
ETA every second and, in `lines` mode, writes the lines.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Final, Literal

import anyio
from rich.console import Console, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from .durations import compact_duration
from .errors import AuthError, RunRefused
from .eta import Eta
from .model import Outcome

if TYPE_CHECKING:
    from .engine.config import AccountWork

__all__ = ["PROGRESS_LOGGER", "OutcomeTally", "ProgressDisplay", "ProgressMode", "format_rate"]

ProgressMode = Literal["bars", "lines", "off"]

PROGRESS_LOGGER: Final = "bulkgroups.progress"
# How often the ETA is computed afresh (a paused account's writes wait without any outcome).
_REFRESH_SECONDS: Final = 1.0
_BAR_WIDTH: Final = 20
_UNITS: Final = {"preflight": "accounts", "read": "chats", "apply": "operations"}
_DONE_WORDS: Final = {"preflight": "looked up", "read": "read", "apply": ""}


def format_rate(per_second: float) -> str:
    """`2.0/s`, `12/min` or `3.0/h`: in the unit that shows the rate as a number above 1."""
    if per_second >= 1.0:
        return f"{per_second:.1f}/s"
    if per_second * 60.0 >= 1.0:
        return f"{per_second * 60.0:.1f}/min"
    return f"{per_second * 3600.0:.1f}/h"


@dataclass(slots=True)
class OutcomeTally:
    """What the result table needs: counts by status and reason, and the first failures only,
    so that a run of a million operations does not hold a million outcomes in memory."""

    max_problems_shown: int = 50
    by_reason: Counter[tuple[str, str]] = field(default_factory=Counter)
    problems: list[Outcome] = field(default_factory=list)
    problem_count: int = 0

    def add(self, outcome: Outcome) -> None:
        self.by_reason[(outcome.status, outcome.reason or "")] += 1
        if outcome.status in ("failed", "deferred"):
            self.problem_count += 1
            if len(self.problems) < self.max_problems_shown:
                self.problems.append(outcome)

    def amend(self, before: Outcome, after: Outcome) -> None:
        """Verification turned an applied outcome into `after` (`not_effective`)."""
        key = (before.status, before.reason or "")
        self.by_reason[key] -= 1
        if self.by_reason[key] <= 0:
            del self.by_reason[key]
        self.add(after)


@dataclass(slots=True)
class _Phase:
    name: str
    total: int
    started: float
    done: int = 0

    @property
    def complete(self) -> bool:
        return self.total > 0 and self.done >= self.total

    def percent(self) -> int:
        return min(100, self.done * 100 // self.total) if self.total else 0


def _refused_as_a_whole(error: BaseException | None) -> bool:
    """The command ends in an error that says nothing was done (maybe from a task group)."""
    if isinstance(error, BaseExceptionGroup):
        return all(_refused_as_a_whole(inner) for inner in error.exceptions)
    return isinstance(error, (RunRefused, AuthError))


class ProgressDisplay:
    """The RunObserver of the `plan` and `apply` commands: progress on stderr, and the outcomes
    counted for the result table (`tally`)."""

    def __init__(
        self,
        console: Console,
        *,
        mode: ProgressMode | None = None,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console
        self.mode: ProgressMode = mode or ("bars" if console.is_terminal else "lines")
        self.interval = interval
        self.tally = OutcomeTally()
        self._clock = clock
        self._phases: list[_Phase] = []  # appended only: a renderer thread iterates it
        self._eta = Eta()
        self._live: Live | None = None
        self._paused = False
        self._stopping = False
        self._log = logging.getLogger(PROGRESS_LOGGER)

    # --- lifetime ------------------------------------------------------------------------------

    def __enter__(self) -> ProgressDisplay:
        self._start_live()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop_live()
        # A command refused as a whole (API unreachable, key refused, run declined) did nothing:
        # a closing "2/2 accounts looked up (100 %)" line above its error would read as success.
        if self.mode == "lines" and self._phases and not _refused_as_a_whole(exc):
            self._write_line(final=True)

    def pause(self) -> None:
        """Take the bars off (e.g. while a question is asked on the terminal); no lines either."""
        self._paused = True
        self._stop_live()

    def resume(self) -> None:
        """Draw the bars again, below whatever was printed meanwhile."""
        self._paused = False
        self._start_live()

    async def run_clock(self) -> None:
        """Refresh the ETA every second; in `lines` mode write a line every `interval` seconds.
        Runs until cancelled."""
        if self.mode == "off":
            return
        next_line = self._clock() + self.interval
        while True:
            now = self._clock()
            self._eta.refresh(now)
            wait = _REFRESH_SECONDS
            if self.mode == "lines":
                if now >= next_line:
                    if not self._paused and self._under_way():
                        self._write_line(final=False)
                    next_line = now + self.interval
                wait = min(wait, next_line - now)
            await anyio.sleep(max(wait, 0.01))

    def stopping(self) -> None:
        """The run was asked to stop (Ctrl-C): what is left will not be done by it, so no time
        left is shown, only that requests in flight finish."""
        self._stopping = True

    @property
    def writing(self) -> bool:
        """Whether the run's writes began (it has its `run` record)."""
        return self._phase("apply") is not None

    @property
    def recorded(self) -> int:
        """The op records the run wrote so far."""
        return self.tally.by_reason.total()

    # --- RunObserver ---------------------------------------------------------------------------

    def phase(self, name: str, total: int) -> None:
        self._phases.append(_Phase(name, total, self._clock()))

    def grow(self, name: str, count: int) -> None:
        phase = self._phase(name)
        if phase is not None:
            phase.total += count

    def advance(self, name: str, count: int = 1) -> None:
        phase = self._phase(name)
        if phase is not None:
            phase.done += count

    def outcome(self, outcome: Outcome) -> None:
        self.tally.add(outcome)
        self.advance("apply")
        self._eta.recorded(outcome.operation.account, self._clock())

    def amended(self, before: Outcome, after: Outcome) -> None:
        self.tally.amend(before, after)

    # --- WorkObserver --------------------------------------------------------------------------

    def planned(self, work: AccountWork) -> None:
        self._eta.planned(
            work.account,
            operations=work.operations,
            writes=work.writes,
            reads=work.reads,
            seconds_left=work.seconds_left,
            now=self._clock(),
        )

    # --- what is shown -------------------------------------------------------------------------

    def _under_way(self) -> bool:
        """Whether something is still to be done: once every phase is, the last line says so
        (a line every interval repeating `3/3 (100 %)` until the command ends would be noise)."""
        return any(not phase.complete for phase in self._phases)

    def _phase(self, name: str) -> _Phase | None:
        for phase in reversed(self._phases):
            if phase.name == name:
                return phase
        return None

    def _apply_details(self, phase: _Phase, now: float) -> list[str]:
        """The rate and the time left of the apply phase under way."""
        elapsed = now - phase.started
        if phase.complete:
            return []
        if self._stopping:
            return ["stopping: requests in flight finish"]
        details = []
        if phase.done and elapsed > 0:
            details.append(format_rate(phase.done / elapsed))
        left = self._eta.seconds_left(now)
        if left is not None and phase.total:
            details.append(
                f"about {compact_duration(left)} left" if left >= 1 else "less than 1s left"
            )
        return details

    def _shown(self) -> list[_Phase]:
        """Phases under way, the apply phase once begun; else the last one."""
        phases = list(self._phases)
        shown = [p for p in phases if not p.complete or p.name == "apply"]
        return shown or phases[-1:]

    def _write_line(self, *, final: bool) -> None:
        now = self._clock()
        parts: list[str] = []
        figures: dict[str, object] = {}
        for phase in self._shown():
            unit = _UNITS.get(phase.name, "steps")
            text = f"{phase.done}/{phase.total} {unit}"
            if _DONE_WORDS.get(phase.name):
                text += f" {_DONE_WORDS[phase.name]}"
            if phase.total:
                text += f" ({phase.percent()} %)"
            if final or phase.complete:
                text += f" in {compact_duration(now - phase.started)}"
            details = self._apply_details(phase, now) if phase.name == "apply" and not final else []
            parts.append(", ".join([text, *details]))
            figures[phase.name] = {"done": phase.done, "total": phase.total}
        apply = self._phase("apply")
        if apply is not None and not apply.complete:
            left = self._eta.seconds_left(now)
            elapsed = now - apply.started
            figures["per_second"] = round(apply.done / elapsed, 3) if elapsed > 0 else None
            figures["seconds_left"] = round(left, 1) if left is not None else None
        figures["final"] = final
        self._log.info("progress: %s", "; ".join(parts), extra={"bulkgroups": figures})

    def _render(self) -> RenderableType:
        """The bars, drawn by rich's refresh thread: reads counts and one float, changes nothing.
        A row fits in 80 columns: `apply     ━━━━━━━  120/400 ops  30 %  2.0/s  about 2m20s left`."""
        now = self._clock()
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True, min_width=9)
        grid.add_column(no_wrap=True)
        grid.add_column(no_wrap=True, overflow="ellipsis")
        for phase in list(self._phases):
            bar = ProgressBar(total=phase.total or None, completed=phase.done, width=_BAR_WIDTH)
            unit = "ops" if phase.name == "apply" else _UNITS.get(phase.name, "")
            parts = [f"{phase.done}/{phase.total} {unit}"]
            if phase.name == "apply":
                parts += [f"{phase.percent()} %", *self._apply_details(phase, now)]
            elif not phase.complete:
                parts.append(compact_duration(now - phase.started))
            grid.add_row(Text(phase.name), bar, Text("  ".join(parts)))
        return grid

    def _start_live(self) -> None:
        if self.mode != "bars" or self._live is not None:
            return
        # A fresh Live each time: one stopped and started again would erase what was printed
        # meanwhile (it moves the cursor up over the height it drew last).
        self._live = Live(
            get_renderable=self._render,
            console=self.console,
            refresh_per_second=10,
            transient=False,
        )
        self._live.start(refresh=True)

    def _stop_live(self) -> None:
        live, self._live = self._live, None
        if live is not None:
            live.stop()
