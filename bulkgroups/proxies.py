"""Which proxy the environment names for the API, read as curl reads it.

`https_proxy`, else `HTTPS_PROXY`, else `all_proxy` / `ALL_PROXY`, for the https API (the default,
and every Unipile DSN); a value without a scheme is `http://` (`proxy.corp:3128`). An http API is
loopback only (see `client`) and loopback is never proxied from the environment: a proxy elsewhere
could not reach this machine's 127.0.0.1 (Go's `ProxyFromEnvironment` makes the same exception),
so `http_proxy` never applies. None when `no_proxy` (else `NO_PROXY`) names the host: `*` alone,
or entries separated by commas or spaces, each the host itself or a domain above it (a leading dot
or not), an entry's port, if any, matched against the API's. The environment is a parameter: only
the CLI reads `os.environ`; the library takes a `proxy=` URL or none.
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
    if scheme != "https" or is_loopback(host):
        return None
    proxy = _first(environ, "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")
    if not proxy:
        return None
    no_proxy = _first(environ, "no_proxy", "NO_PROXY") or ""
    if _named_in(no_proxy, host, url.port):
        return None
    return proxy if "://" in proxy else "http://" + proxy


def _first(environ: Mapping[str, str], *names: str) -> str | None:
    """The first of `names` that is set (set but empty counts: it says "none")."""
    for name in names:
        if name in environ:
            return environ[name].strip()
    return None


def _named_in(no_proxy: str, host: str, port: int | None) -> bool:
    if no_proxy.strip() == "*":
        return True
    host = host.lower().strip("[]").rstrip(".")
    for entry in no_proxy.lower().replace(",", " ").split():
        name, entry_port = _host_and_port(entry)
        if entry_port is not None and entry_port != port:
            continue
        name = name.strip(".")
        if name and (host == name or host.endswith("." + name)):
            return True
    return False


def _host_and_port(entry: str) -> tuple[str, int | None]:
    """`host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address."""
    if entry.startswith("["):
        name, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif entry.count(":") == 1:
        name, _, port = entry.partition(":")
    else:
        name, port = entry, ""
    return name, int(port) if port.isdigit() else None
