"""A YAML composer for job files: safe, located, and without YAML's shortcuts.

Job files are reviewed in git and exported by scripts, so what a reader sees must be what the tool
does. Anchors and aliases let one line silently change another, tags ask the loader to build
arbitrary objects (`!!python/object`), so all three are refused. Instead of constructing Python
values we return the node tree: every node keeps its line, which is what error messages need. A
refused node is kept in the tree with the tag `REJECTED` and one `Problem`, so the caller can
report it under the field where it appears and still check everything around it.

Duplicate keys are found by the caller while walking mappings, where the field path is known.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml
from yaml.nodes import Node

__all__ = ["REJECTED", "Composed", "Problem", "StrictLoader", "compose"]

# A tag no document can produce (explicit tags are refused): marks a node already reported.
REJECTED = "!bulkgroups/rejected"


@dataclass(frozen=True, slots=True, eq=False)
class Problem:
    """Something refused while composing: `node` is the (REJECTED) node it produced."""

    node: Node
    line: int
    message: str


@dataclass(frozen=True, slots=True)
class Composed:
    """The single document of a file (None if there is none) and what was refused in it."""

    root: Node | None
    problems: tuple[Problem, ...]


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that composes nodes while refusing anchors, aliases and explicit tags.

    Refusals are collected rather than raised, so one file reports all of them at once.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.problems: list[Problem] = []

    def _refuse(self, node: Node, message: str) -> None:
        node.tag = REJECTED
        self.problems.append(Problem(node, node.start_mark.line + 1, message))

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            self.get_event()  # type: ignore[no-untyped-call]
            alias: Node = yaml.ScalarNode(REJECTED, "", event.start_mark, event.end_mark)  # type: ignore[arg-type]
            self._refuse(alias, f"YAML aliases are not allowed (*{(event.anchor or '')[:80]})")
            return alias
        anchor: str | None = None
        tag: str | None = None
        if isinstance(event, yaml.NodeEvent):
            anchor, event.anchor = event.anchor, None
        if isinstance(event, (yaml.ScalarEvent, yaml.CollectionStartEvent)):
            tag, event.tag = event.tag, None
        # Cleared before composing (above): the base composer would register the anchor (and
        # fail on a reused one) and would honour the explicit tag.
        node = super().compose_node(parent, index)
        if node is None:
            return None
        if anchor is not None:
            self._refuse(node, f"YAML anchors are not allowed (&{anchor[:80]})")
        elif tag is not None:
            self._refuse(node, f"YAML tags are not allowed ({tag[:80]})")
        return node


def compose(text: str) -> Composed:
    """Compose the single YAML document in `text`.

    Raises yaml.YAMLError (syntax errors, several documents) and RecursionError (absurd nesting).
    """
    loader = StrictLoader(text)
    try:
        root = loader.get_single_node()
    finally:
        loader.dispose()
    return Composed(root, tuple(loader.problems))
