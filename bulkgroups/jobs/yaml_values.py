"""Typed values read out of a YAML event stream, each mistake reported where it is.

The job reader (`yaml_file`) says what it expects at each place (a string, an id, a positive
integer, a mapping with these keys, a list); this reads the next value, and when it is something
else, reports `expected X, got Y` at the value's line and skips the rest of it, so the walk goes
on and every error of a file is found in one pass. Refused YAML (anchors, aliases, tags) is
reported under the field where it appears, or under `file` inside a value that is skipped.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

import yaml
from yaml.events import (
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from yaml.nodes import ScalarNode

from ..model import RateSpec, parse_rate
from .checks import id_problem
from .report import FileReport, quote
from .yaml_events import BOOL, INT, STR, YamlEvents, line_of, refusal

__all__ = ["CONSTRUCTOR", "MAX_DEPTH", "DocumentRefused", "Keys", "ValueReader"]

# Nesting a job file never needs; past it a document is refused (PyYAML's pure-Python scanner
# slows down quadratically with depth, libyaml stops at 1000 levels).
MAX_DEPTH: Final = 100

# Only for its scalar conversions (`0x1F`, `1_000`, `yes`), which take a node as it is.
CONSTRUCTOR: Final = yaml.constructor.SafeConstructor()


class DocumentRefused(Exception):
    """The document as a whole cannot be read (too deep, a second document): its file then
    reports only this, at `line`."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


@dataclass(slots=True)
class Keys:
    """The keys of one mapping as it is walked: the line of each accepted key, and how many keys
    were refused (duplicate, unknown, not a string)."""

    lines: dict[str, int] = field(default_factory=dict)
    refused: int = 0


class ValueReader:
    """Reads values from `events`, reporting to `report`; the job reader builds on it."""

    def __init__(self, report: FileReport, events: YamlEvents) -> None:
        self.report = report
        self.events = events

    # -- values ----------------------------------------------------------------------------------

    def value(self, field_name: str) -> Event | None:
        """The first event of the next value, or None if it was refused (reported, skipped)."""
        event = self.events.next()
        problem = refusal(event)
        if problem is None:
            return event
        self.report.add(line_of(event), field_name, problem)
        self.skip_rest(event)
        return None

    def skip_rest(self, event: Event) -> None:
        """Consume the rest of the value `event` starts; refusals inside it are still reported."""
        depth = 1 if isinstance(event, (MappingStartEvent, SequenceStartEvent)) else 0
        while depth:
            event = self.events.next()
            problem = refusal(event)
            if problem is not None:
                self.report.add(line_of(event), "file", problem)
            if isinstance(event, (MappingStartEvent, SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    message = f"YAML nested too deeply (more than {MAX_DEPTH} levels)"
                    raise DocumentRefused(line_of(event), message)
            elif isinstance(event, (MappingEndEvent, SequenceEndEvent)):
                depth -= 1

    def skip_value(self) -> None:
        """Consume a value that is not read (under a refused key), reporting refusals in it."""
        event = self.events.next()
        problem = refusal(event)
        if problem is not None:
            self.report.add(line_of(event), "file", problem)
        self.skip_rest(event)

    def mismatch(self, event: Event, field_name: str, expected: str, *, hint: bool) -> None:
        """Report a value of the wrong kind and skip it; `hint` asks to quote a scalar."""
        quote_it = " (quote it)" if hint and isinstance(event, ScalarEvent) else ""
        got = self.events.describe(event)
        self.report.add(line_of(event), field_name, f"expected {expected}, got {got}{quote_it}")
        self.skip_rest(event)

    def string(self, field_name: str, what: str) -> tuple[str, int] | None:
        """A string value and its line, or None (reported)."""
        event = self.value(field_name)
        if event is None:
            return None
        if isinstance(event, ScalarEvent) and self.events.tag(event) == STR:
            return event.value, line_of(event)
        self.mismatch(event, field_name, what, hint=True)
        return None

    def identifier(self, field_name: str, what: str) -> str | None:
        found = self.string(field_name, f"{what} (a string)")
        if found is None:
            return None
        value, line = found
        problem = id_problem(value, what)
        if problem is not None:
            self.report.add(line, field_name, problem)
            return None
        return sys.intern(value)

    def positive_int(self, field_name: str) -> int | None:
        event = self.value(field_name)
        if event is None:
            return None
        if isinstance(event, ScalarEvent) and self.events.tag(event) == INT:
            number: int = CONSTRUCTOR.construct_yaml_int(ScalarNode(INT, event.value))
            if number > 0:
                return number
            message = f"expected a positive integer, got {number!r}"
            self.report.add(line_of(event), field_name, message)
            return None
        self.mismatch(event, field_name, "a positive integer", hint=False)
        return None

    def boolean(self, field_name: str) -> bool | None:
        event = self.value(field_name)
        if event is None:
            return None
        if isinstance(event, ScalarEvent) and self.events.tag(event) == BOOL:
            value: bool = CONSTRUCTOR.construct_yaml_bool(ScalarNode(BOOL, event.value))
            return value
        self.mismatch(event, field_name, "true or false", hint=False)
        return None

    def rate(self, field_name: str) -> RateSpec | None:
        found = self.string(field_name, "a rate such as 2/s, 2/min or 20/10s")
        if found is None:
            return None
        try:
            return parse_rate(found[0])
        except ValueError as exc:
            self.report.add(found[1], field_name, str(exc))
            return None

    # -- collections -----------------------------------------------------------------------------

    def mapping(self, field_name: str, what: str) -> Event | None:
        """The start of a mapping value, or None (reported and skipped) if it is something else."""
        event = self.value(field_name)
        if event is None or isinstance(event, MappingStartEvent):
            return event
        self.mismatch(event, field_name, what, hint=False)
        return None

    def entries(
        self, field_name: str, allowed: frozenset[str] | None, keys: Keys
    ) -> Iterator[tuple[str, str]]:
        """Each accepted key of the mapping just started, with its field path; the caller reads
        exactly one value per key. Duplicate, unknown and non-string keys are reported and their
        values skipped."""
        prefix = f"{field_name}." if field_name else ""
        while not isinstance(event := self.events.next(), MappingEndEvent):
            key = self.key(event, field_name or "file")
            if key is not None:
                where = prefix + key
                problem = self.key_problem(key, keys, allowed)
                if problem is None:
                    keys.lines[key] = line_of(event)
                    yield key, where
                    continue
                self.report.add(line_of(event), where, problem)
            keys.refused += 1
            self.skip_value()

    def key(self, event: Event, field_name: str) -> str | None:
        problem = refusal(event)
        if problem is not None:
            self.report.add(line_of(event), field_name, problem)
        elif isinstance(event, ScalarEvent) and self.events.tag(event) == STR:
            return event.value
        else:
            message = f"keys must be strings, got {self.events.describe(event)} (quote it)"
            self.report.add(line_of(event), field_name, message)
        self.skip_rest(event)
        return None

    @staticmethod
    def key_problem(key: str, keys: Keys, allowed: frozenset[str] | None) -> str | None:
        if key in keys.lines:
            return f"duplicate key {quote(key)} (first at line {keys.lines[key]})"
        if allowed is not None and key not in allowed:
            return f"unknown key {quote(key)} (expected one of {', '.join(sorted(allowed))})"
        return None

    def items(self, field_name: str) -> Iterator[tuple[str, Event]]:
        """The first event of each acceptable item of the list just started, with its field."""
        index = 0
        while not isinstance(event := self.events.next(), SequenceEndEvent):
            where = f"{field_name}[{index}]"
            index += 1
            problem = refusal(event)
            if problem is None:
                yield where, event
            else:
                self.report.add(line_of(event), where, problem)
                self.skip_rest(event)
