"""What makes an id or a chat name acceptable: the checks shared by the YAML and CSV readers.

Ids go into URL paths and ledger lines, and names are compared with what LinkedIn keeps (one
trimmed line), so anything invisible, line-breaking or padded is refused rather than fixed up.
"""

from __future__ import annotations

import unicodedata
from typing import Final

from .report import quote

__all__ = ["id_problem", "is_plain_id", "name_problem"]

# Categories refused in ids (invisible or line-breaking), and the subset refused in chat names
# (names may hold emoji, which use the zero-width joiner, a format character).
_ID_BAD: Final = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_NAME_BAD: Final = frozenset({"Cc", "Cs", "Zl", "Zp"})


def _bad_char(value: str, refused: frozenset[str]) -> str | None:
    for char in value:
        if unicodedata.category(char) in refused:
            return f"U+{ord(char):04X}"
    return None


def is_plain_id(value: str) -> bool:
    """True for the common, clean id: the fast path; `id_problem` finds the words otherwise."""
    return value.isprintable() and value.strip() == value and value not in ("", ".", "..")


def id_problem(value: str, what: str) -> str | None:
    """Why `value` cannot be an id, or None."""
    if is_plain_id(value):
        return None
    if value == "":
        return f"{what} must not be empty"
    if value.strip() != value:
        return f"{what} {quote(value)} has surrounding whitespace"
    if value in (".", ".."):
        return f"{what} {quote(value)} is not a valid id"
    char = _bad_char(value, _ID_BAD)
    if char is not None:
        return f"{what} {quote(value)} contains a control or invisible character ({char})"
    return None


def name_problem(value: str) -> str | None:
    """Why `value` cannot be a chat's new name, or None."""
    if value == "" or value.strip() == "":
        return "the new name must not be empty"
    if value.strip() != value:
        return f"the new name {quote(value)} has surrounding whitespace"
    char = _bad_char(value, _NAME_BAD)
    if char is not None:
        return f"the new name {quote(value)} contains a control character ({char})"
    return None
