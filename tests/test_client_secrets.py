"""The key never leaves through what a server says back, in whatever form the server echoes it.

A server (or a proxy in front of it) answers an error whose every field and header repeats the key
raw, upper-cased, URL-encoded, base64-encoded (alone or in a Basic credential), JSON-escaped, or cut
to a prefix; the error the client raises carries none of it.
"""

from __future__ import annotations

import base64
import logging
import traceback
from collections.abc import Callable
from urllib.parse import quote, quote_plus

import orjson
import pytest
from aiohttp import web

from bulkgroups.client import UnipileClient
from bulkgroups.errors import ApiError, RateLimited
from bulkgroups.redact import KeyRedactor

from helpers.hostile import hostile

KEY = "sk-live/Zq8+KANGAROO=7f3e9a1b2c4d"

FORMS: dict[str, Callable[[str], str]] = {
    "raw": lambda k: k,
    "upper case": str.upper,
    "lower case": str.lower,
    "url-encoded": lambda k: quote(k, safe=""),
    "url-encoded, lower-case hex": lambda k: quote(k, safe="").lower(),
    "form-encoded": quote_plus,
    "base64": lambda k: base64.b64encode(k.encode()).decode(),
    "base64 unpadded url-safe": lambda k: base64.urlsafe_b64encode(k.encode()).decode().rstrip("="),
    "base64 in a Basic credential": lambda k: base64.b64encode(f"user:{k}".encode()).decode(),
    "base64 at another alignment": lambda k: base64.b64encode(f"ab:{k}".encode()).decode(),
    "json-escaped slash": lambda k: k.replace("/", "\\/"),
    "12-character prefix": lambda k: k[:12],
    "8-character prefix": lambda k: k[:8],
    "prefix, upper case": lambda k: k[:10].upper(),
}


def everything_about(error: BaseException) -> str:
    return "\n".join(
        [str(error), repr(error), "".join(traceback.format_exception(error)), str(vars(error))]
    )


def echoing(echo: str) -> Callable[[web.Request], object]:
    async def reply(request: web.Request) -> web.Response:
        body = {
            "object": "Error",
            "type": "api/too_many_requests",
            "status": 429,
            "title": f"Slow down, {echo}",
            "detail": f"key {echo} (from header {echo}) is over its limit",
            "req_id": f"req-{echo}",
        }
        return web.Response(
            status=429,
            body=orjson.dumps(body),
            headers={
                "Content-Type": "application/json",
                "X-Request-Id": f"rid-{echo}",
                "Retry-After": "2",
                "X-Echo": echo,
            },
        )

    return reply


@pytest.mark.parametrize("form", FORMS, ids=list(FORMS))
async def test_an_error_echoing_the_key_in_any_form_carries_none_of_it(
    form: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    echo = FORMS[form](KEY)
    async with hostile(echoing(echo)) as server, UnipileClient(server.url, api_key=KEY) as client:  # type: ignore[arg-type]
        with pytest.raises(RateLimited) as raised:
            await client.get_chat("acc_1", "chat_1")
    error = raised.value
    text = everything_about(error)
    assert echo not in text and echo.lower() not in text.lower()
    assert KEY[:8].lower() not in text.lower()
    assert error.detail is not None and "***" in error.detail
    assert error.retry_after == 2.0  # headers are still read, once scrubbed
    assert KEY[:8] not in caplog.text


async def test_a_json_body_escaping_every_character_is_scrubbed_after_decoding() -> None:
    escaped = "".join(f"\\u{ord(c):04x}" for c in KEY)

    async def reply(request: web.Request) -> web.Response:
        body = f'{{"type":"api/invalid_parameters","detail":"bad key {escaped}"}}'
        return web.Response(status=400, body=body.encode(), content_type="application/json")

    async with hostile(reply) as server, UnipileClient(server.url, api_key=KEY) as client:
        with pytest.raises(ApiError) as raised:
            await client.get_chat("acc_1", "chat_1")
    assert raised.value.detail == "bad key ***"


def test_text_around_the_key_is_kept() -> None:
    redactor = KeyRedactor(KEY)
    assert redactor.text(f"before {KEY} after") == "before *** after"
    assert redactor.text("nothing secret here, sk-live is just a word") == (
        "nothing secret here, sk-live is just a word"
    )
    assert redactor.text(f"{KEY[:7]} is too short a prefix to mean the key") == (
        f"{KEY[:7]} is too short a prefix to mean the key"
    )
    assert repr(redactor) == "KeyRedactor(***)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("k7Z", "***"),
        ("your key k7Z is wrong", "your key *** is wrong"),
        ("your key K7z is wrong", "your key *** is wrong"),
        ('{"key":"k7Z"}', '{"key":"***"}'),
        ("ak7Z, k7Za, 1k7Z: other words", "ak7Z, k7Za, 1k7Z: other words"),
    ],
)
def test_a_key_shorter_than_8_characters_is_scrubbed_only_where_it_stands_alone(
    text: str, expected: str
) -> None:
    assert KeyRedactor("k7Z").text(text) == expected


@pytest.mark.parametrize("form", ["raw", "base64 unpadded url-safe", "12-character prefix"])
async def test_a_cursor_echoing_the_key_is_scrubbed_from_the_request_log(
    form: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The cursor is the server's text, sent back in the next page's URL: the request log (-v)
    # shows that URL, so it must be scrubbed like anything else a server says.
    echo = FORMS[form](KEY)

    async def reply(request: web.Request) -> web.Response:
        first = "cursor" not in request.query
        user = {"object": "User", "id": "ACoAA1" if first else "ACoAA2", "display_name": "A"}
        body = {
            "data": [{"object": "GroupParticipant", "user": user, "is_self": False}],
            "next_cursor": f"page2-{echo}" if first else None,
        }
        return web.json_response(body)

    caplog.set_level(logging.DEBUG, logger="bulkgroups.http")
    async with hostile(reply) as server, UnipileClient(server.url, api_key=KEY) as client:  # type: ignore[arg-type]
        listed = [p.user_id async for p in client.participants("acc_1", "chat_1")]
        assert server.arrivals[1].query["cursor"] == f"page2-{echo}"  # sent back as given
    assert listed == ["ACoAA1", "ACoAA2"]
    logged = [r.getMessage() for r in caplog.records if r.name == "bulkgroups.http"]
    assert len(logged) == 2 and "cursor=page2-***" in logged[1]
    assert "KANGAROO" not in caplog.text.upper() and "S0FOR0FST08" not in caplog.text.upper()
