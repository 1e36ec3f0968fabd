"""The package's layers, as the README's Development section lists them, hold for its imports: a
module imports only from its own line or the lines above it, and every module has its line. Also
the rules no list shows: nothing imports `cli`, the simulator imports only `model`, and only `cli`
reads the environment. Imports are read from the source (every one: at the top, in a function,
for the type checker alone), so an arrow that would only show at run time is caught too."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "bulkgroups"


def layout_lines() -> list[str]:
    """The README's layout list, one string per line of it (a bullet and its continuation)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("\nLayout: `bulkgroups/`") :]
    section = section[: section.index("\n\n", section.index("\n- "))]
    return [" ".join(item.split()) for item in re.split(r"\n- ", section)[1:]]


def outside_parentheses(line: str) -> str:
    while (cut := re.sub(r"\([^()]*\)", "", line)) != line:
        line = cut
    return line


def unit_of(path: Path) -> str:
    """`ledger` for bulkgroups/ledger.py, `engine/` for anything in bulkgroups/engine/."""
    relative = path.relative_to(PACKAGE)
    return f"{relative.parts[0]}/" if len(relative.parts) > 1 else relative.stem


def layers() -> dict[str, int]:
    """Each module or package of the README's list, with the number of its line (0 at the top):
    the names on it outside parentheses, after its heading if it has one (`on `model` alone:`)."""
    found: dict[str, int] = {}
    for number, line in enumerate(layout_lines()):
        names = outside_parentheses(line).rpartition(":")[2]
        for name in re.findall(r"`([^`]+)`", names):
            assert name not in found, f"{name} is on two lines of the README's layout"
            found[name] = number
    return found


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py")


def module_name(path: Path) -> list[str]:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def imported(path: Path) -> Iterator[Path]:
    """The files of the package that `path` imports, wherever in it the import is."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name.split(".") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            base = base + (node.module.split(".") if node.module else [])
            names = [[*base, alias.name] for alias in node.names]
        else:
            continue
        for name in names:
            while name and name[0] == "bulkgroups":
                candidate = ROOT.joinpath(*name)
                if candidate.with_suffix(".py").is_file():
                    yield candidate.with_suffix(".py")
                    break
                if (candidate / "__init__.py").is_file():
                    yield candidate / "__init__.py"
                    break
                name = name[:-1]


def test_every_module_of_the_package_has_one_line_of_the_readmes_layout() -> None:
    listed = layers()
    units = {unit_of(path) for path in modules()}
    assert sorted(units - listed.keys()) == []
    assert sorted(listed.keys() - units) == []


def test_every_module_of_a_subpackage_is_named_in_the_readmes_layout() -> None:
    text = " ".join(layout_lines())
    named = set(re.findall(r"`([^`]+)`", text))
    inner = {path.stem for path in modules() if len(path.relative_to(PACKAGE).parts) > 1}
    assert sorted(inner - named) == []


def test_no_module_imports_from_a_line_below_its_own() -> None:
    listed = layers()
    upward = [
        f"{path.relative_to(ROOT)} imports {target.relative_to(ROOT)}"
        for path in [*modules(), *PACKAGE.glob("*/__init__.py")]
        for target in imported(path)
        if target.parent != PACKAGE or target.name != "__init__.py"
        if listed[unit_of(target)] > listed[unit_of(path)]
    ]
    assert upward == []


def test_nothing_but_the_entry_point_imports_the_cli() -> None:
    importers = [
        str(path.relative_to(ROOT))
        for path in PACKAGE.rglob("*.py")
        if PACKAGE / "cli.py" in set(imported(path))
    ]
    assert importers == ["bulkgroups/__main__.py"]


def test_the_simulator_imports_nothing_of_the_package_but_model() -> None:
    outside = {
        str(target.relative_to(ROOT))
        for path in (PACKAGE / "simulator").glob("*.py")
        for target in imported(path)
        if target.parent != PACKAGE / "simulator"
    }
    assert outside == {"bulkgroups/model.py"}


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_the_cli_reads_the_environment(path: Path) -> None:
    if path == PACKAGE / "cli.py":
        return
    tree = ast.parse(path.read_text(encoding="utf-8"))
    reads = [
        ast.unparse(node)
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb")
    ]
    assert reads == []
