"""Where the client goes and what it says when it cannot get there.

The base URL may be pasted as Unipile writes it (an origin, the docs' `.../v2`, the dashboard's DSN
`host:port`); failures to connect name the URL and the cause (`transport/connect`, `dns`, `tls`) as
`Unreachable`, so that a caller can tell an unreachable API from one unlucky request. Nothing here
leaves 127.0.0.1: name resolution is a resolver that fails, TLS a local server.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from bulkgroups.client import UnipileClient
from bulkgroups.errors import TransportError, Unreachable, UsageError

from helpers.hostile import hostile, listing

KEY = "sk-test-CONNECT-0123456789abcdef"

# ---- the base URL ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "base"),
    [
        ("https://api.unipile.com", "https://api.unipile.com"),
        ("https://api.unipile.com/", "https://api.unipile.com"),
        ("https://api.unipile.com/v2", "https://api.unipile.com"),
        ("https://api.unipile.com/v2/", "https://api.unipile.com"),
        ("https://api.unipile.com/V2", "https://api.unipile.com"),
        ("https://api.unipile.com/v2/v2", "https://api.unipile.com"),
        ("  https://api8.unipile.com:13851/v2\n", "https://api8.unipile.com:13851"),
        ("api8.unipile.com:13851", "https://api8.unipile.com:13851"),
        ("api8.unipile.com:13851/v2", "https://api8.unipile.com:13851"),
        ("API8.Unipile.com:13851", "https://api8.unipile.com:13851"),
        ("127.0.0.1:9", "https://127.0.0.1:9"),
        ("[::1]:8443", "https://[::1]:8443"),
        ("http://127.0.0.1:8765/v2", "http://127.0.0.1:8765"),
        ("HTTPS://api.unipile.com:443/v2", "https://api.unipile.com"),
    ],
)
def test_an_origin_the_docs_base_or_a_dsn_all_lead_to_the_same_origin(
    given: str, base: str
) -> None:
    assert UnipileClient(given, api_key=KEY).base_url == base


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("api.unipile.com", "not an API origin or a Unipile DSN"),
        ("api8.unipile.com:port", "not an API origin or a Unipile DSN"),
        ("acc_1", "not an API origin or a Unipile DSN"),
        ("", "not an API origin or a Unipile DSN"),
        ("ftp://api.unipile.com", "not an http(s) URL"),
        ("https://", "not an http(s) URL"),
        ("https://api.unipile.com:99999", "not a URL"),
        ("https://api.unipile.com/v2/accounts", "takes no path besides /v2"),
        ("https://api.unipile.com/v2/x/v2", "takes no path besides /v2"),
        ("http://api.unipile.com/v2", "refusing plain http://"),
        ("https://u:p@api.unipile.com", "credentials"),
        ("https://api.unipile.com/?key=1", "query"),
        # Unipile's v1 base, as its v1 docs and dashboard write it: every request would be a 404
        # (each account "not found") instead of one clear error.
        ("https://api8.unipile.com:13851/api/v1", "Unipile's v1 API"),
        ("api8.unipile.com:13851/api/v1/", "Unipile's v1 API"),
        ("https://gw.example.com/unipile/api/v1", "Unipile's v1 API"),
        ("http://127.0.0.1:8765/api/v1", "Unipile's v1 API"),
        # No path besides /v2, on any host (a gateway's prefix is not a supported form).
        ("https://api.unipile.com/api", "takes no path besides /v2"),
        ("https://api8.unipile.com:13851/api/v2", "takes no path besides /v2"),
        ("https://gw.example.com/unipile/v2", "takes no path besides /v2"),
    ],
)
def test_anything_else_is_a_usage_error_with_a_hint(given: str, message: str) -> None:
    with pytest.raises(UsageError) as raised:
        UnipileClient(given, api_key=KEY)
    assert message in str(raised.value)
    if "refusing" not in message:
        assert "HOST:PORT" in str(raised.value)  # the hint: what would have worked


async def test_requests_never_go_to_v2_v2() -> None:
    async with hostile(listing(["ACoAA1"])) as server:
        for base in (server.url, server.url + "/v2", server.url + "/v2/"):
            async with UnipileClient(base, api_key=KEY) as client:
                await client.get_chat("acc_1", "chat_1")
    assert [a.path for a in server.arrivals] == ["/v2/acc_1/chats/chat_1"] * 3


# ---- unreachable -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_nothing_listening_fails_fast_naming_the_url() -> None:
    # `https://127.0.0.1:9` as in the issue: the discard port, nothing listens there.
    with anyio.fail_after(30):
        async with UnipileClient("https://127.0.0.1:9", api_key=KEY) as client:
            with pytest.raises(Unreachable) as raised:
                await client.get_account("acc_1")
    error = raised.value
    assert (error.status, error.type, error.account) == (None, "transport/connect", "acc_1")
    assert str(error) == (
        "- transport/connect: cannot reach https://127.0.0.1:9: connection refused (account acc_1)"
    )
    assert error.base_url == "https://127.0.0.1:9"
    assert error.retryable  # a bounded retry is the caller's
    assert KEY not in repr(error)


async def test_every_kind_of_request_is_unreachable_alike() -> None:
    port = free_port()
    async with UnipileClient(f"127.0.0.1:{port}", api_key=KEY) as client:
        calls = [
            client.get_account("a"),
            client.get_chat("a", "c"),
            client.get_user("a", "me"),
            client.add_participant("a", "c", "u"),
            client.remove_participant("a", "c", "u"),
            client.rename_chat("a", "c", "n"),
        ]
        for call in calls:
            with pytest.raises(Unreachable, match=f"cannot reach https://127.0.0.1:{port}"):
                await call
        with pytest.raises(Unreachable):
            _ = [p async for p in client.participants("a", "c")]
        with pytest.raises(Unreachable):
            _ = [c async for c in client.chats("a")]


class NoSuchName(AbstractResolver):
    """A resolver for which no name exists (as for a typo in the host), without asking anyone."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async def close(self) -> None:
        return None


async def test_a_name_that_does_not_resolve_is_a_dns_failure() -> None:
    connector = aiohttp.TCPConnector(resolver=NoSuchName())
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        UnipileClient("api9.unipile.example:13851", api_key=KEY, session=session) as client,
    ):
        with pytest.raises(Unreachable) as raised:
            await client.get_account("acc_1")
    assert raised.value.type == "transport/dns"
    assert raised.value.detail == (
        "cannot reach https://api9.unipile.example:13851: name not resolved (api9.unipile.example)"
    )


async def test_https_to_a_server_that_speaks_plain_http_is_a_tls_failure() -> None:
    async with hostile(listing([])) as server:
        https = server.url.replace("http://", "https://")
        async with UnipileClient(https, api_key=KEY) as client:
            with pytest.raises(Unreachable) as raised:
                await client.get_account("acc_1")
    assert raised.value.type == "transport/tls"
    assert raised.value.detail is not None
    assert raised.value.detail.startswith(f"cannot reach {https}: TLS: ")
    assert server.arrivals == []  # nothing of the request (nor the key) went out


# A throwaway self-signed certificate for 127.0.0.1 (valid until 2126), for a TLS server that no
# client should trust.
SELF_SIGNED = """\
-----BEGIN CERTIFICATE-----
MIIBkTCCATagAwIBAgIUFno9R9WoTleFK1B00lIjgHL6H1cwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJMTI3LjAuMC4xMCAXDTI2MTEyOTA5MDExMVoYDzIxMjYxMTA1
MDkwMTExWjAUMRIwEAYDVQQDDAkxMjcuMC4wLjEwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAAQm/nT6s8C7Y0wnzeKx4CcsDkTjh847r/QrBNXkJ/bSNHkANN0SLN5/
JRX/dasuVWe3P0TVVe952enld7fnCv2ao2QwYjAdBgNVHQ4EFgQUp0UZe6UHm8xW
GDpAnYB/vCLWdtIwHwYDVR0jBBgwFoAUp0UZe6UHm8xWGDpAnYB/vCLWdtIwDwYD
VR0TAQH/BAUwAwEB/zAPBgNVHREECDAGhwR/AAABMAoGCCqGSM49BAMCA0kAMEYC
IQDJ2S5Y0xeZPgvOnFLXMUAZVv4gh690J+pcyIAWbkrCxgIhAM0DiSbvzSmVkpET
MrtJgGoFTWTqG9vOCCVCFhna3kfQ
-----END CERTIFICATE-----
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgyUlXHtBY+lcILJOK
0UbPaB+3Z4ooV5rRqeyMh4MUC6mhRANCAAQm/nT6s8C7Y0wnzeKx4CcsDkTjh847
r/QrBNXkJ/bSNHkANN0SLN5/JRX/dasuVWe3P0TVVe952enld7fnCv2a
-----END PRIVATE KEY-----
"""


@pytest.fixture
async def untrusted_https(tmp_path: Path) -> AsyncIterator[str]:
    pem = tmp_path / "self-signed.pem"
    pem.write_text(SELF_SIGNED)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pem)
    seen: list[Any] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request)
        return web.json_response({"user_id": "u", "status": "running"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        yield f"https://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
    assert seen == []  # the handshake failed: no request (and no key) reached the server


async def test_an_untrusted_certificate_is_a_tls_failure_that_says_why(
    untrusted_https: str,
) -> None:
    async with UnipileClient(untrusted_https, api_key=KEY) as client:
        with pytest.raises(Unreachable) as raised:
            await client.get_account("acc_1")
    assert raised.value.type == "transport/tls"
    assert raised.value.detail == (
        f"cannot reach {untrusted_https}: TLS: certificate verify failed: self-signed certificate"
    )


async def test_a_one_off_failure_is_not_unreachable() -> None:
    # The server was reached: a reset after connecting is a transport failure of that request.
    async def drop(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.abort()
        return web.Response()

    async with hostile(drop) as server, UnipileClient(server.url, api_key=KEY) as client:
        with pytest.raises(TransportError) as raised:
            await client.get_account("acc_1")
    assert raised.value.type == "transport/reset"
    assert not isinstance(raised.value, Unreachable)
