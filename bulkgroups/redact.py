"""Keeping the API key out of what a server says back: every form in which it may be echoed.

A server, a proxy or a gateway may repeat the key it was sent in an error's detail, title, req_id or
a header: raw, in any case, URL-encoded (`%2F`, `+` for spaces), JSON-escaped (`\\/`), HTML-escaped,
base64-encoded (standard or URL-safe, padded or not, alone or inside a longer base64 blob such as a
Basic credential), or cut short ("sk_live_abcd1234..."). `KeyRedactor.text` replaces each such
occurrence with `***`:

- keys of at least `MIN_PREFIX` (8) characters: each form above, and any prefix of at least 8
  characters of each form, matched case-insensitively;
- shorter keys (no real Unipile key is that short, but a test or a proxy may use one): only the
  whole key, in each form, where it stands alone (not inside a longer word or number) — scrubbing
  every "abc" of a 3-character key out of server messages would garble them and protect nothing
  a guess would not find.

The patterns are built once per key; the redactor never shows the key in its repr.
"""

from __future__ import annotations

import base64
import html
import re
from typing import Final
from urllib.parse import quote, quote_plus

import orjson

__all__ = ["MIN_PREFIX", "REDACTED", "KeyRedactor"]

MIN_PREFIX: Final = 8
REDACTED: Final = "***"
# Prefixes are matched up to this length (a regex nesting per character); longer forms are also
# matched whole. No real key comes near it.
_MAX_PREFIX: Final = 256


def _prefix_pattern(form: str) -> str:
    """A regex matching `form`'s first MIN_PREFIX characters and then as much more of it as
    follows: every prefix of at least MIN_PREFIX characters, the whole form included."""
    head, tail = form[:MIN_PREFIX], form[MIN_PREFIX:]
    pattern = ""
    for char in reversed(tail):
        pattern = f"(?:{re.escape(char)}{pattern})?"
    return re.escape(head) + pattern


def _base64_forms(key: bytes) -> set[str]:
    """The key base64-encoded alone, and the part of its encoding that does not depend on what
    precedes it when embedded at each byte alignment of a longer blob."""
    forms: set[str] = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        whole = encode(key).decode("ascii")
        forms.update((whole, whole.rstrip("=")))
        for offset in (1, 2):
            encoded = encode(b"\0" * offset + key).decode("ascii")
            # The first group mixes filler and key bytes; the last may mix key and padding.
            core = encoded[4 : 4 * ((offset + len(key)) // 3)]
            if len(core) >= MIN_PREFIX:
                forms.add(core)
    return forms


def _text_forms(key: str) -> set[str]:
    json_escaped = orjson.dumps(key).decode()[1:-1]
    return {
        key,
        quote(key, safe=""),
        quote(key),
        quote_plus(key),
        json_escaped,
        json_escaped.replace("/", "\\/"),
        html.escape(key),
    }


class KeyRedactor:
    """Replaces every echo of one API key in a text by `***` (see the module docstring)."""

    __slots__ = ("_patterns",)

    def __init__(self, key: str) -> None:
        forms = sorted(_text_forms(key) | _base64_forms(key.encode("utf-8")))
        patterns: list[str] = []
        if len(key) >= MIN_PREFIX:
            patterns += [re.escape(f) for f in forms if len(f) > _MAX_PREFIX]
            patterns += [_prefix_pattern(f[:_MAX_PREFIX]) for f in forms if len(f) >= MIN_PREFIX]
        else:
            patterns += [rf"(?<![A-Za-z0-9]){re.escape(f)}(?![A-Za-z0-9])" for f in forms]
        # One pattern per form, not one alternation: an alternation stops at the first form that
        # matches (a shared prefix of two forms), where the echo may continue in the other.
        self._patterns = tuple(re.compile(p, re.IGNORECASE) for p in patterns)

    def __repr__(self) -> str:
        return "KeyRedactor(***)"

    def text(self, value: str) -> str:
        """`value` with every echo of the key replaced by `***`."""
        spans = sorted(
            m.span() for p in self._patterns for m in p.finditer(value) if m.end() > m.start()
        )
        if not spans:
            return value
        parts: list[str] = []
        position = 0
        start, end = spans[0]
        for next_start, next_end in spans[1:]:
            if next_start <= end:  # overlapping or touching echoes become one `***`
                end = max(end, next_end)
                continue
            parts += (value[position:start], REDACTED)
            position, start, end = end, next_start, next_end
        parts += (value[position:start], REDACTED, value[end:])
        return "".join(parts)
