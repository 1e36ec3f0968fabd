"""Text from outside (the server, a ledger) made safe to show on one line of a terminal.

A leaf module (the standard library only): `validate` and `report` start without rich.
"""

from __future__ import annotations

import unicodedata
from typing import Final

__all__ = ["printable"]

# Escaped where shown: what would break a line (C0 and C1 controls, line and paragraph
# separators) or steer the terminal or the direction of the text (escape sequences, bidi
# overrides). Other format characters stay: emoji are joined by U+200D.
_ESCAPED_CATEGORIES: Final = frozenset({"Cc", "Zl", "Zp"})
_BIDI_CONTROLS: Final = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def printable(text: str) -> str:
    """`text` safe on one line of a terminal, every other character as it is: names come from
    the server (anyone in a LinkedIn group may rename it, people choose their names), and a
    newline in one would add a line of its own making to a plan a person confirms, an escape
    sequence would redraw the screen. What is not shown as itself is shown escaped (`\\n`)."""
    if text.isprintable():
        return text
    return "".join(
        char.encode("unicode_escape").decode("ascii")
        if unicodedata.category(char) in _ESCAPED_CATEGORIES or char in _BIDI_CONTROLS
        else char
        for char in text
    )
