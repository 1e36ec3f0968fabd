"""The README's "Guarantees" cannot go stale: every promise names tests, and every test it names
exists (a top-level test function of that file)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
PROMISES = [
    "Never over a limit.",
    "Never a change twice.",
    "Every accepted write is recorded.",
    "Bounded waits.",
    "The key is never written.",
    "Bad input sends nothing.",
]


def guarantees() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Guarantees\n", 1)[1]
    return section.split("\n## ", 1)[0]


def proofs() -> dict[str, list[tuple[str, str]]]:
    """Each promise (its bold title) and the (file, test) references listed under it."""
    found: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for line in guarantees().splitlines():
        title = re.match(r"- \*\*(.+?)\*\*", line)
        if title:
            current = found.setdefault(title.group(1), [])
        if current is not None:
            current += re.findall(r"`(tests/\w+\.py)::(\w+)`", line)
    return found


def defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    }


def test_every_promise_is_there_and_names_at_least_one_test() -> None:
    found = proofs()
    assert list(found) == PROMISES
    assert all(found[promise] for promise in PROMISES), found


def test_every_test_the_guarantees_name_exists() -> None:
    missing = [
        f"{file}::{name}"
        for references in proofs().values()
        for file, name in references
        if not (ROOT / file).is_file() or name not in defined_tests(ROOT / file)
    ]
    assert missing == []


def test_the_check_sees_a_test_that_does_not_exist(tmp_path: Path) -> None:
    test_file = tmp_path / "test_x.py"
    test_file.write_text("def test_real() -> None:\n    pass\n", encoding="utf-8")
    assert defined_tests(test_file) == {"test_real"}
    assert "test_renamed" not in defined_tests(test_file)
