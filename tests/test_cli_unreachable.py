"""An API that cannot be reached at all (a wrong base URL, the service down) is one clear line and
exit 1 — nothing was sent — not a connection failure per chat and a plan that looks like success."""

from __future__ import annotations

import http.server
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from helpers.cli import Cli
from helpers.engine import write_job
from helpers.servers import served


@pytest.fixture
def dead_url() -> str:
    """An https origin on 127.0.0.1 where nothing listens (a port just freed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"https://127.0.0.1:{port}"


def _job(tmp_path: Path) -> Path:
    return write_job(
        tmp_path / "job.yaml",
        [
            {"chat": "team", "account": "acc_1", "add": ["ACoAA0001"]},
            {"chat": "crew", "account": "acc_2", "members": ["ACoAA0002"]},
        ],
    )


def _key(tmp_path: Path) -> Path:
    path = tmp_path / "key"
    path.write_text("a-key-of-some-length\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_an_unreachable_api_is_one_line_naming_the_url_and_exit_1(
    cli: Cli, tmp_path: Path, dead_url: str, command: str
) -> None:
    ledger = tmp_path / "ledger.jsonl"
    extra = ["--ledger", str(ledger)] if command == "apply" else []
    run = cli.run(
        command, _job(tmp_path), "--base-url", dead_url, "--api-key-file", _key(tmp_path), *extra
    )
    assert run.code == 1, run.err
    # One line says what happened; no closing progress line ("2/2 accounts looked up (100 %)")
    # reads as a success above it.
    lines = run.err.splitlines()
    assert len(lines) == 1, run.err
    assert f"cannot reach {dead_url}: connection refused" in lines[0]
    assert "nothing was sent" in lines[0]
    assert "a-key-of-some-length" not in run.err + run.out
    assert run.out == ""
    # Nothing ran: no ledger record claims a run happened.
    assert not ledger.exists() or ledger.read_bytes() == b""


@contextmanager
def serving(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """An http origin on 127.0.0.1 answering with `handler`, served by the standard library in a
    thread of its own."""
    with served(http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)) as url:
        yield url


class _Quiet(http.server.BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def redirecting_url() -> Iterator[str]:
    """An origin that redirects every request elsewhere (a marketing site, a moved host)."""

    class Redirect(_Quiet):
        def _redirect(self) -> None:
            self.send_response(301)
            self.send_header("Location", "https://www.example.com" + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_PATCH = do_DELETE = _redirect

    with serving(Redirect) as url:
        yield url


def test_a_base_url_that_redirects_is_one_line_naming_where_and_exit_1(
    cli: Cli, tmp_path: Path, redirecting_url: str
) -> None:
    # Before: every operation `failed api_error (http/301)` and exit 3, the cause left unsaid.
    run = cli.run(
        "plan", _job(tmp_path), "--base-url", redirecting_url, "--api-key-file", _key(tmp_path)
    )
    assert run.code == 1, run.err
    lines = run.err.splitlines()
    assert len(lines) == 1, run.err
    assert (
        f"cannot reach {redirecting_url}: it redirects (301) to https://www.example.com/v2/accounts/acc_"
        in lines[0]
    )
    assert "check the base URL" in lines[0] and "nothing was sent" in lines[0]
    assert run.out == ""


@pytest.fixture
def some_other_web_server() -> Iterator[str]:
    """A web server that is not Unipile: an HTML 404 page for every request."""

    class NotFoundPage(_Quiet):
        def do_GET(self) -> None:
            body = b"<html><body>404 Not Found</body></html>"
            self.send_response(404)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with serving(NotFoundPage) as url:
        yield url


def test_a_base_url_that_is_not_unipile_is_one_line_and_exit_1(
    cli: Cli, tmp_path: Path, some_other_web_server: str
) -> None:
    # Each account would otherwise be "not found" (exit 3), as if the ids were wrong.
    run = cli.run(
        "plan", _job(tmp_path), "--base-url", some_other_web_server,
        "--api-key-file", _key(tmp_path),
    )  # fmt: skip
    assert run.code == 1, run.err
    lines = run.err.splitlines()
    assert len(lines) == 1, run.err
    assert "does not look like the Unipile API" in lines[0]
    assert "nothing was sent" in lines[0]
