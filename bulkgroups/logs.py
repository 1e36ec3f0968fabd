"""Logging: a record per HTTP request for Unipile support, and how the command writes its log.

**Requests.** The client logs each request it makes on the `bulkgroups.http` logger at DEBUG:
method, path (the ids as sent), status (or the transport failure's type), Unipile's `req_id`
(the `x-request-id` header, or an error body's `req_id`), latency, attempt number and account.
Never the API key, a header or a body: nothing there can carry the key. A library user turns it
on with `logging.getLogger("bulkgroups.http").setLevel(logging.DEBUG)` and a handler; the
command with `-v`. Off, it costs the client one `isEnabledFor` per request (logging caches the
answer), nothing else: the record's text is formatted only when a handler writes it, and the
attempt number is a context variable that the retry loop sets only for a retry.

**The command's log** (`install`): every record of the `bulkgroups` loggers — requests with `-v`,
progress lines when stderr is no terminal (`bulkgroups.progress`), the command's warnings and
errors (`bulkgroups.cli`) — goes to stderr, as the message alone (`text`) or as one JSON object
a line (`json`: `time`, `level`, `logger`, `message` and each record's figures as fields). `-q`
keeps warnings and errors only.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Final, Literal, TextIO

import orjson

__all__ = [
    "CLI_LOGGER",
    "HTTP_LOGGER",
    "SUMMARY_LOGGER",
    "LogFormat",
    "http_log",
    "install",
    "log_request",
    "numbered_attempt",
    "reset_attempt",
]

LogFormat = Literal["text", "json"]

HTTP_LOGGER: Final = "bulkgroups.http"
CLI_LOGGER: Final = "bulkgroups.cli"
# A command's one-line summary: shown with --quiet too (cron wants to know what happened).
SUMMARY_LOGGER: Final = "bulkgroups.summary"
# Records carry their figures in this attribute (`extra={"bulkgroups": {...}}`).
FIGURES: Final = "bulkgroups"

http_log: Final = logging.getLogger(HTTP_LOGGER)

# The attempt a request belongs to, as the retry loop counts them: 1 unless it set a retry's.
_ATTEMPT: Final[ContextVar[int]] = ContextVar("bulkgroups_attempt", default=1)


def numbered_attempt(number: int) -> Token[int]:
    """Requests made from here on (in this task) belong to attempt `number`; undo with
    `reset_attempt`."""
    return _ATTEMPT.set(number)


def reset_attempt(token: Token[int]) -> None:
    _ATTEMPT.reset(token)


def log_request(
    *,
    method: str,
    path: str,
    account: str,
    status: int | None,
    error: str | None,
    req_id: str | None,
    seconds: float,
) -> None:
    """One request's record (the caller checked `http_log.isEnabledFor(logging.DEBUG)`)."""
    milliseconds = round(seconds * 1000.0)
    attempt = _ATTEMPT.get()
    http_log.debug(
        "http: %s %s %s %dms req_id=%s attempt=%d account=%s",
        method,
        path,
        status if status is not None else error,
        milliseconds,
        req_id or "-",
        attempt,
        account,
        extra={
            FIGURES: {
                "method": method,
                "path": path,
                "status": status,
                "error": error,
                "req_id": req_id,
                "latency_ms": milliseconds,
                "attempt": attempt,
                "account": account,
            }
        },
    )


def _utc(created: float) -> str:
    return (
        datetime.fromtimestamp(created, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


class _TextFormatter(logging.Formatter):
    """The message alone: `progress: ...`, `http: ...`, `warning: ...` as the command wrote them
    before it had a log (a request's line carries its own time)."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.name == HTTP_LOGGER:
            text = text.replace("http: ", f"http: {_utc(record.created)} ", 1)
        return text


class _JsonFormatter(logging.Formatter):
    """One JSON object a line, for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, object] = {
            "time": _utc(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        figures = getattr(record, FIGURES, None)
        if isinstance(figures, dict):
            document.update(figures)
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(document, default=str).decode()


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever `sys.stderr` is when a record comes: rich's live display replaces it
    while the bars are drawn (so that lines go above them), pytest's capture between tests."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


@contextmanager
def install(
    *, log_format: LogFormat = "text", verbose: bool = False, quiet: bool = False
) -> Iterator[None]:
    """The command's log on stderr while the context lasts; every setting restored after."""
    root = logging.getLogger("bulkgroups")
    http = logging.getLogger(HTTP_LOGGER)
    summary = logging.getLogger(SUMMARY_LOGGER)
    handler = _StderrHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if log_format == "json" else _TextFormatter())
    saved = (root.level, root.propagate, http.level, summary.level)
    root.addHandler(handler)
    root.setLevel(logging.WARNING if quiet else logging.INFO)
    root.propagate = False  # a library user's root handlers do not print the command's lines twice
    http.setLevel(logging.DEBUG if verbose else logging.NOTSET)
    summary.setLevel(logging.INFO)  # --quiet keeps a command's one-line summary
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        root.propagate = saved[1]
        http.setLevel(saved[2])
        summary.setLevel(saved[3])
