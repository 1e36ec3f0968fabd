"""Requests through an HTTP proxy: `--proxy URL`, or the proxy the environment names as curl
reads it (`https_proxy`, `NO_PROXY`); a proxy's credentials are never shown."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from bulkgroups.client import UnipileClient
from bulkgroups.errors import UsageError
from bulkgroups.proxies import proxy_for
from bulkgroups.simulator import Simulator

from helpers.cli import Cli, connect
from helpers.engine import write_job
from helpers.proxy import forward_proxy


def _job(tmp_path: Path) -> Path:
    return write_job(tmp_path / "job.yaml", [{"chat": "c1", "account": "acc_p", "add": ["ACoAP1"]}])


def _key(tmp_path: Path) -> Path:
    key = tmp_path / "key"
    key.write_text("sk_test_proxy_key_0123456789\n", encoding="utf-8")
    return key


def test_every_request_goes_through_the_proxy_given(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    with forward_proxy() as proxy:
        run = cli.run("plan", _job(tmp_path), *connect(sim, tmp_path), "--proxy", proxy.url)

    assert run.code == 0, run.err
    assert "+ ACoAP1" in run.out
    seen = sim.requests()
    assert len(seen) >= 3  # the account, the chat, its participants
    assert [r.method for r in proxy.relayed] == [r.method for r in seen]
    assert all(r.url.startswith(sim.url + "/v2/") for r in proxy.relayed)


def test_an_https_api_is_tunnelled_through_the_environments_proxy_whose_password_stays_unsaid(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The test proxy refuses every tunnel: nothing leaves this machine. What is checked is that
    # the tunnel was asked of the proxy the environment names, and how its refusal is told.
    with forward_proxy() as proxy:
        authenticated = proxy.url.replace("http://", "http://ops:s3cr3t-pw@")
        monkeypatch.setenv("HTTPS_PROXY", authenticated)
        monkeypatch.delenv("https_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        run = cli.run(
            "plan", _job(tmp_path), "--base-url", "https://api.unipile.com",
            "--api-key-file", _key(tmp_path),
        )  # fmt: skip

    assert run.code == 1, run.err
    assert {r.method for r in proxy.relayed} == {"CONNECT"}
    assert {r.url for r in proxy.relayed} == {"api.unipile.com:443"}
    assert all(r.proxy_authorization for r in proxy.relayed)  # the credentials went to the proxy
    assert f"cannot reach https://api.unipile.com through the proxy {proxy.url}" in run.err
    assert "403" in run.err
    assert "s3cr3t-pw" not in run.err + run.out
    assert "sk_test_proxy_key" not in run.err + run.out


def test_a_proxy_that_is_not_listening_is_named_and_nothing_is_sent(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    run = cli.run("plan", _job(tmp_path), *connect(sim, tmp_path), "--proxy", "http://127.0.0.1:9")

    assert run.code == 1, run.err
    assert f"cannot reach {sim.url} through the proxy http://127.0.0.1:9" in run.err
    assert sim.requests() == ()


def test_an_empty_proxy_flag_overrides_the_environment(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With --proxy '' the environment's proxy is not asked (the name then does not resolve:
    # the tests' network fence, helpers.loopback, lets nothing leave this machine).
    with forward_proxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        run = cli.run(
            "plan", _job(tmp_path), "--base-url", "https://api.unipile.com",
            "--api-key-file", _key(tmp_path), "--proxy", "",
        )  # fmt: skip
    assert run.code == 1, run.err
    assert proxy.relayed == []
    assert "cannot reach https://api.unipile.com: name not resolved" in run.err


def test_the_fence_of_the_tests_lets_nothing_beyond_loopback(tmp_path: Path) -> None:
    # What keeps a regression of the proxy code from sending a key to the real service.
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("api.unipile.com", 443)
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect(("192.0.2.1", 443))


def test_a_proxy_named_without_a_scheme_is_http_and_its_credentials_stay_unsaid(
    cli: Cli, sim: Simulator, tmp_path: Path
) -> None:
    run = cli.run(
        "plan", _job(tmp_path), *connect(sim, tmp_path), "--proxy", "ops:s3cr3t-pw@127.0.0.1:9"
    )
    assert run.code == 1, run.err
    assert f"cannot reach {sim.url} through the proxy http://127.0.0.1:9" in run.err
    assert "s3cr3t-pw" not in run.err and "ops" not in run.err


def test_sandbox_and_proxy_together_are_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    run = cli.run("plan", _job(tmp_path), "--sandbox", "--proxy", "http://127.0.0.1:3128")
    assert run.code == 1
    assert "--sandbox and --proxy cannot be used together" in run.err


@pytest.mark.parametrize(
    ("base_url", "environ", "expected"),
    [
        ("https://api.unipile.com", {"HTTPS_PROXY": "http://p:3128"}, "http://p:3128"),
        ("api8.unipile.com:13851", {"https_proxy": "http://p:1", "HTTPS_PROXY": "http://q:2"},
         "http://p:1"),
        ("https://api.unipile.com/v2", {"HTTP_PROXY": "http://p:3128"}, None),
        ("https://api.unipile.com", {"http_proxy": "http://p:3128"}, None),
        ("http://127.0.0.1:8080", {"HTTP_PROXY": "http://p:3128"}, None),
        ("http://localhost:8080", {"http_proxy": "http://p:3128"}, None),
        ("https://api.unipile.com", {"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "unipile.com"},
         None),
        ("https://api8.unipile.com", {"HTTPS_PROXY": "http://p", "no_proxy": "x.org, .unipile.com"},
         None),
        ("https://api.unipile.com", {"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "*"}, None),
        ("https://api.unipile.com", {"HTTPS_PROXY": "p.corp:3128"}, "http://p.corp:3128"),
        ("https://api.unipile.com", {"ALL_PROXY": "http://p:1"}, "http://p:1"),
        ("https://api.unipile.com", {"HTTPS_PROXY": "http://p", "NO_PROXY": "x.org *"}, "http://p"),
        ("https://api.unipile.com", {"HTTPS_PROXY": "http://p", "NO_PROXY": "x.org unipile.com"},
         None),
        ("https://api.unipile.com", {"HTTPS_PROXY": "http://p", "NO_PROXY": "unipile.com:8443"},
         "http://p"),
        ("https://api.unipile.com", {"HTTPS_PROXY": "http://p", "no_proxy": "", "NO_PROXY": "*"},
         "http://p"),
        ("https://[::1]:8443", {"HTTPS_PROXY": "http://p"}, None),
        ("https://api.unipile.com", {"https_proxy": "", "HTTPS_PROXY": "http://p"}, None),
        ("https://api.unipile.com", {"HTTPS_PROXY": "http://p", "NO_PROXY": "api.unipile.com:443"},
         None),
        ("https://notunipile.com", {"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "unipile.com"},
         "http://p:3128"),
        ("https://api.unipile.com", {}, None),
    ],
)  # fmt: skip
def test_the_proxy_the_environment_names_as_curl_reads_it(
    base_url: str, environ: dict[str, str], expected: str | None
) -> None:
    assert proxy_for(base_url, environ) == expected


@pytest.mark.parametrize(
    ("proxy", "message"),
    [
        ("socks5://127.0.0.1:1080", "must be an http:// or https:// URL"),
        ("user:pw@", "the proxy is not a URL"),
        ("http://user:pw@proxy.example:3128", "the API key would travel in clear"),
    ],
)
def test_a_proxy_the_client_cannot_use_safely_is_refused(proxy: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as refused:
        UnipileClient("http://127.0.0.1:8080", api_key="k", proxy=proxy)
    assert "pw@" not in str(refused.value)


def test_a_proxy_of_the_environment_that_is_no_url_names_where_it_came_from(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "socks5://ops:s3cr3t-pw@127.0.0.1:1080")
    run = cli.run(
        "plan", _job(tmp_path), "--base-url", "https://api.unipile.com",
        "--api-key-file", _key(tmp_path),
    )  # fmt: skip
    assert run.code == 1, run.err
    assert "must be an http:// or https:// URL" in run.err
    assert "the environment's (https_proxy, HTTPS_PROXY or ALL_PROXY)" in run.err
    assert "s3cr3t-pw" not in run.err
