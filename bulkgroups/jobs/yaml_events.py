"""The parser events of a YAML job file, and YAML's shortcuts refused.

Job files are reviewed in git and exported by scripts, so what a reader sees must be what the tool
does. Anchors and aliases let one line silently change another, and tags ask the loader to build
arbitrary objects (`!!python/object`), so all three are refused (`refusal`), each where it
appears, so one file reports all of them at once.

Nothing is composed or constructed: the job reader walks the parser's events, which carry their
line, and keeps only what the job needs. A node tree (PyYAML's composer) costs about a kilobyte a
list item and holds the document a second time; events are dropped as soon as they are read.
The parser is libyaml's (C) when PyYAML was built with it, else PyYAML's pure-Python one, which
gives the same events (only slower).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, cast

import yaml
from yaml.events import (
    AliasEvent,
    CollectionStartEvent,
    Event,
    NodeEvent,
    ScalarEvent,
)
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

from .report import quote

__all__ = [
    "BOOL",
    "INT",
    "PARSER_NAME",
    "STR",
    "Loader",
    "YamlEvents",
    "line_of",
    "problem",
    "refusal",
]

STR: Final = "tag:yaml.org,2002:str"
INT: Final = "tag:yaml.org,2002:int"
BOOL: Final = "tag:yaml.org,2002:bool"
_TAG_NAMES: Final = {
    "tag:yaml.org,2002:null": "null",
    INT: "an integer",
    BOOL: "a boolean",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:timestamp": "a date",
}

# A plain scalar can only resolve to something other than a string if its first character (""
# for an empty scalar) starts one of the resolver's patterns: the others skip the regexes.
_MAY_RESOLVE: Final = frozenset(Resolver.yaml_implicit_resolvers)

# The parser class; tests set it to yaml.SafeLoader to prove the fallback keeps every rule.
Loader: type[yaml.SafeLoader] | type[yaml.CSafeLoader]
try:
    Loader = yaml.CSafeLoader
    PARSER_NAME = "libyaml"
except AttributeError:  # PyYAML without libyaml
    Loader = yaml.SafeLoader
    PARSER_NAME = "pure Python"

_SHOWN: Final = 80  # characters of an anchor or tag quoted in a message


def line_of(event: Event) -> int:
    """The 1-based line where `event` starts."""
    mark = event.start_mark
    return 1 if mark is None else mark.line + 1


def refusal(event: Event) -> str | None:
    """Why `event` (an alias, or a node with an anchor or an explicit tag) is refused, or None."""
    if isinstance(event, AliasEvent):
        return f"YAML aliases are not allowed (*{(event.anchor or '')[:_SHOWN]})"
    if isinstance(event, NodeEvent) and event.anchor is not None:
        return f"YAML anchors are not allowed (&{event.anchor[:_SHOWN]})"
    if isinstance(event, (ScalarEvent, CollectionStartEvent)) and event.tag is not None:
        return f"YAML tags are not allowed ({event.tag[:_SHOWN]})"
    return None


class YamlEvents:
    """The events of one YAML text (UTF-8 bytes without BOM), read one at a time with `next()`.

    Parse errors surface as PyYAML's exceptions, from `next()` or (pure-Python parser) from the
    constructor; `problem()` turns one into a line and a message.
    """

    def __init__(self, data: bytes) -> None:
        # libyaml reads the bytes as they are; the pure-Python reader wants text.
        self._parser = Loader(data) if _libyaml() else Loader(data.decode("utf-8"))
        self.next = cast(Callable[[], Event], self._parser.get_event)

    def close(self) -> None:
        self._parser.dispose()

    def tag(self, event: ScalarEvent) -> str:
        """The tag a scalar resolves to (explicit tags are refused before this is asked)."""
        if not event.implicit[0] or event.value[:1] not in _MAY_RESOLVE:
            return STR  # quoted, or plain and not the start of a number, boolean, null or date
        resolved: str = self._parser.resolve(ScalarNode, event.value, event.implicit)  # type: ignore[no-untyped-call]
        return resolved

    def describe(self, event: Event) -> str:
        """What a value is, for `expected X, got Y` messages."""
        if isinstance(event, ScalarEvent):
            tag = self.tag(event)
            if tag == STR:
                return f"the string {quote(event.value)}"
            return f"{_TAG_NAMES.get(tag, tag)} ({quote(event.value)})"
        if isinstance(event, yaml.MappingStartEvent):
            return "a mapping"
        if isinstance(event, yaml.SequenceStartEvent):
            return "a list"
        return "an alias"


def _libyaml() -> bool:
    return Loader is not yaml.SafeLoader


def problem(error: yaml.YAMLError, data: bytes) -> tuple[int, str]:
    """The line and message for an error of the parser reading `data`."""
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        line = 1 if mark is None else mark.line + 1
        detail = error.problem or error.context or "invalid YAML"
        begun = error.context_mark
        if error.problem and error.context and begun is not None and begun.line + 1 != line:
            # Found at the end of what it ends (an unclosed quote or bracket): where that began.
            detail += f", {error.context} that begins at line {begun.line + 1}"
        if mark is not None and _character_at(data, mark.line, mark.column) == "\t":
            detail += " (a tab: YAML indents with spaces)"
        return line, f"YAML syntax error: {detail}"
    if isinstance(error, yaml.reader.ReaderError):
        # libyaml counts bytes; the pure-Python reader counts characters of the text.
        if _libyaml():
            line = data.count(b"\n", 0, error.position) + 1
        else:
            line = data.decode("utf-8").count("\n", 0, error.position) + 1
        return line, f"character U+{error.character:04X} is not allowed in YAML"
    return 1, f"invalid YAML: {str(error)[:_SHOWN]}"


def _character_at(data: bytes, line: int, column: int) -> str:
    """The character at 0-based `line` and `column` of `data` ("" past its end)."""
    start = 0
    for _ in range(line):
        start = data.find(b"\n", start) + 1
        if start == 0:
            return ""
    end = data.find(b"\n", start)
    text = data[start : len(data) if end < 0 else end].decode("utf-8", errors="replace")
    return text[column : column + 1]
