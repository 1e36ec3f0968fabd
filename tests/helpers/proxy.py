"""A forward HTTP proxy on 127.0.0.1 for tests of `--proxy` and `HTTP_PROXY`: it relays
absolute-form requests (`GET http://127.0.0.1:PORT/v2/... HTTP/1.1`) to loopback only, refuses
every tunnel (`CONNECT`, what an https API asks for), and keeps what it was asked. Threads of the standard library: the CLI under test runs its own event loop."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from .servers import served

_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authorization", "proxy-connection", "transfer-encoding"}
)


@dataclass
class Relayed:
    method: str
    url: str
    proxy_authorization: str | None


@dataclass
class ForwardProxy:
    url: str
    relayed: list[Relayed] = field(default_factory=list)


@contextmanager
def forward_proxy() -> Iterator[ForwardProxy]:
    """A proxy serving on a free port of 127.0.0.1 while the context lasts."""
    proxy = ForwardProxy("")

    class Relay(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return None

        def _relay(self) -> None:
            target = urlsplit(self.path)
            proxy.relayed.append(
                Relayed(self.command, self.path, self.headers.get("Proxy-Authorization"))
            )
            if target.hostname != "127.0.0.1" or target.port is None:
                self.send_error(403, "this test proxy relays to 127.0.0.1 only")
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            upstream = http.client.HTTPConnection("127.0.0.1", target.port, timeout=30)
            try:
                path = target.path + (f"?{target.query}" if target.query else "")
                upstream.request(self.command, path, body=body, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            finally:
                upstream.close()

        do_GET = do_POST = do_PATCH = do_DELETE = _relay

        def do_CONNECT(self) -> None:
            # A tunnel (an https API): kept, and refused — nothing leaves this machine.
            proxy.relayed.append(
                Relayed("CONNECT", self.path, self.headers.get("Proxy-Authorization"))
            )
            self.send_error(403, "no tunnels from this test proxy")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Relay)
    server.daemon_threads = True
    with served(server) as url:
        proxy.url = url
        yield proxy
