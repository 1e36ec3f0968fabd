"""Which proxy the environment names for the API, read as curl reads it.

`https_proxy` / `HTTPS_PROXY` for an https API (the default, and every Unipile DSN), `http_proxy`
/ `HTTP_PROXY` for http (loopback only, see `client`); the lower-case name first. None when
`NO_PROXY` (or `no_proxy`) names the host — `*`, the host itself or a domain above it, with or
without a leading dot, ports ignored — and never for loopback: a proxy elsewhere could not reach
this machine's 127.0.0.1 (Go's `ProxyFromEnvironment` makes the same exception). The environment
is a parameter: only the CLI reads `os.environ`; the library takes a `proxy=` URL or none.
"""

from __future__ import annotations

from collections.abc import Mapping

from yarl import URL

from .client import is_loopback

__all__ = ["proxy_for"]


def proxy_for(base_url: str, environ: Mapping[str, str]) -> str | None:
    """The proxy URL `environ` names for requests to `base_url` (an origin, `/v2` URL or DSN)."""
    try:
        url = URL(base_url.strip() if "://" in base_url else "https://" + base_url.strip())
        scheme, host = url.scheme, url.host or ""
    except ValueError:
        return None  # not a URL: the client refuses it, saying why
    if scheme not in ("http", "https"):
        return None
    proxy = environ.get(f"{scheme}_proxy") or environ.get(f"{scheme.upper()}_PROXY")
    if not proxy:
        return None
    no_proxy = environ.get("no_proxy") or environ.get("NO_PROXY") or ""
    if is_loopback(host) or _named_in(no_proxy, host):
        return None
    return proxy


def _named_in(no_proxy: str, host: str) -> bool:
    host = host.lower().rstrip(".")
    for entry in no_proxy.lower().split(","):
        entry = entry.strip()
        if entry == "*":
            return True
        name = entry.rsplit(":", 1)[0] if entry.count(":") == 1 else entry  # host:port
        name = name.strip("[]").strip(".")
        if name and (host == name or host.endswith("." + name)):
            return True
    return False
