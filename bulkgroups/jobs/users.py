"""How a job names a user: a provider id, or a LinkedIn profile by URL or by `in:<slug>`.

Teams keep profile URLs, not provider ids, so wherever a job names a user (`add`, `remove`,
`members`, `protect`; YAML and CSV) it may give:
- a provider id, as Unipile returns it (`ACoAA…`): any other bare value, kept as written;
- a profile URL: `https://www.linkedin.com/in/<slug>/`, with or without `www`, the trailing
  slash, a query or a fragment;
- `in:<slug>`, the same slug with an explicit marker (a plain scalar in YAML, a plain CSV field).

A profile is kept in one canonical form, `in:<slug>` (`model.PROFILE_PREFIX`), so that one
person is one string whatever form the file used: "listed twice" and the job's hash see through
the forms. The shapes are checked offline; whether the profile exists is for the engine to find.

Decisions:
- `http://` is accepted like `https://` (the URL only names the person; it is never fetched),
  and so are country and mobile hosts (`uk.linkedin.com`, `m.linkedin.com`) and a URL without
  scheme that starts with a LinkedIn host (`linkedin.com/in/…`, as copied from an address bar).
- The slug is percent-decoded (`j%C3%BCrgen` is `jürgen`), NFC-normalised and lower-cased
  (LinkedIn's profile addresses ignore case), then must be 3 to 100 letters, digits, `-` or `_`
  (LinkedIn's rule for custom addresses; letters of any script).
- Only `/in/<slug>` names a profile: a company page, a post, `/pub/…` or `/in/<slug>/details/…`
  is an error, as is a port or a user name in the URL.
- A value with `://`, or starting with `http:`/`https:`, or a LinkedIn host is a URL and must be a
  profile's. Any other value that starts with a scheme (`mailto:`, `urn:li:…`) is not an id
  (LinkedIn provider ids have no colon), nor is a value with a space (a name pasted where an id
  belongs).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final
from urllib.parse import unquote

from ..model import PROFILE_PREFIX, profile_user
from .checks import id_problem
from .report import quote

__all__ = ["read_user"]

# An id with nothing to look at twice: the fast path of big jobs.
_SIMPLE_ID: Final = re.compile(r"[A-Za-z0-9_-]+")
_URLISH: Final = re.compile(r"://|^https?:|^(?:[a-z0-9-]+\.)*linkedin\.com(?:[/?#]|$)", re.I)
# Every accepted URL form: scheme (optional), a LinkedIn host, /in/<slug>, slash, query, fragment.
_PROFILE_URL: Final = re.compile(
    r"(?:https?://)?(?:(?:www|m|[a-z]{2})\.)?linkedin\.com/in/([^/?#]+)/?(?:[?#].*)?",
    re.IGNORECASE | re.DOTALL,
)
_SCHEME: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_ASCII_SLUG: Final = re.compile(r"[a-z0-9_-]{3,100}")
_SLUG_PUNCTUATION: Final = frozenset("-_")
_SLUG_LENGTH: Final = range(3, 101)

_FORMS: Final = "https://www.linkedin.com/in/<slug>/ or in:<slug>"
_NOT_A_PROFILE: Final = (
    "is not a LinkedIn profile URL (expected https://www.linkedin.com/in/<slug>/)"
)

Read = tuple[str, None] | tuple[None, str]


def read_user(value: str) -> Read:
    """The user `value` names (a provider id as written, or a profile as `in:<slug>`), or None
    and why it names nobody."""
    if _SIMPLE_ID.fullmatch(value):
        return value, None
    problem = id_problem(value, "user id")
    if problem is not None:
        return None, problem
    if value.startswith(PROFILE_PREFIX):
        return _profile(value[len(PROFILE_PREFIX) :], value)
    url = _PROFILE_URL.fullmatch(value)
    if url is not None:
        return _profile(url[1], value)
    if _URLISH.search(value):
        return None, f"{quote(value)} {_NOT_A_PROFILE}"
    scheme = _SCHEME.match(value)
    if scheme is not None:
        message = (
            f"user id {quote(value)} starts with a scheme ({scheme[0]}): a user is a provider id "
            f"(ACoAA…) or a profile ({_FORMS})"
        )
        return None, message
    if " " in value:
        message = f"user id {quote(value)} contains a space (a person by profile: {_FORMS})"
        return None, message
    return value, None


def _profile(written: str, value: str) -> Read:
    """The canonical profile of the slug `written` (as in the file), or why it is not one."""
    try:
        slug = unquote(written, errors="strict") if "%" in written else written
    except UnicodeDecodeError:
        return None, f"{quote(value)}: the slug's percent-encoded bytes are not UTF-8"
    if not slug.isascii():
        slug = unicodedata.normalize("NFC", slug)
    slug = slug.lower()
    if _ASCII_SLUG.fullmatch(slug):
        return profile_user(slug), None
    if len(slug) not in _SLUG_LENGTH:
        return None, f"{quote(value)}: a profile's slug has 3 to 100 characters, not {len(slug)}"
    for char in slug:
        if not (
            char.isalnum()
            or char in _SLUG_PUNCTUATION
            or unicodedata.category(char).startswith("M")
        ):
            return None, (
                f"{quote(value)}: a profile's slug has letters, digits, - and _ only, "
                f"not {quote(char)}"
            )
    return profile_user(slug), None
