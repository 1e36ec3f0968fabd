"""What the simulator answers, independent of the web framework: status, body, headers, or a reset.

Rules and limits produce `Reply` values (or raise `Problem`); the aiohttp adapter only copies them
onto the wire. Keeping the answer a plain value lets the core run under one lock and be tested
without sockets.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import orjson

__all__ = ["Problem", "Reply", "html_reply", "json_reply", "problem_reply"]

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    422: "Unprocessable entity",
    429: "Too many requests",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
    504: "Gateway timeout",
}


class Problem(Exception):
    """An RFC 7807 error the rules decided on; becomes a `Reply` once a req_id is known."""

    def __init__(
        self, status: int, type_: str, detail: str, *, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        super().__init__(f"{status} {type_}: {detail}")
        self.status = status
        self.type = type_
        self.detail = detail
        self.headers = headers

    def reply(self, req_id: str) -> Reply:
        return problem_reply(self.status, self.type, self.detail, req_id, headers=self.headers)


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer. `reset` drops the connection instead of answering; `delay` is added latency;
    `trickle` > 0 sends the body one byte per that many seconds; `endless` sends the status, then
    a JSON body that does not end (see `faults`)."""

    status: int
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    reset: bool = False
    delay: float = 0.0
    fault: str | None = None
    trickle: float = 0.0
    endless: bool = False

    def with_headers(self, *headers: tuple[str, str]) -> Reply:
        return replace(self, headers=self.headers + headers)


def json_reply(payload: object, *, status: int = 200) -> Reply:
    return Reply(status, orjson.dumps(payload))


def problem_reply(
    status: int,
    type_: str,
    detail: str,
    req_id: str,
    *,
    headers: tuple[tuple[str, str], ...] = (),
) -> Reply:
    """Every error body is RFC 7807 in Unipile's shape, req_id included."""
    body = {
        "object": "Error",
        "type": type_,
        "status": status,
        "title": _TITLES.get(status, "Error"),
        "detail": detail,
        "req_id": req_id,
    }
    return Reply(status, orjson.dumps(body), "application/json", headers)


def html_reply(status: int, text: str) -> Reply:
    """What a proxy in front of the API answers: not JSON at all."""
    page = f"<html><head><title>{status}</title></head><body><h1>{text}</h1></body></html>"
    return Reply(status, page.encode(), "text/html")
