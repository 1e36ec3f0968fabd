"""The suite's network fence: this process resolves and connects to loopback only.

Tests talk to 127.0.0.1 and nowhere else. A test that names a real host (the default base URL,
a proxy's tunnel target) must never reach it, even if the code under test regresses: a name
other than loopback does not resolve here (as if it did not exist: `EAI_NONAME`) and a connection
to an address other than loopback is refused. Only this process: the CLI runs that tests start
as processes of their own talk to a simulator on 127.0.0.1 by construction.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


def is_loopback(host: object) -> bool:
    if host is None or host in ("", b""):
        return True  # a server binding "any": nothing leaves the machine
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0].strip("[]")).is_loopback
    except ValueError:
        return False


@contextmanager
def loopback_only() -> Iterator[None]:
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not is_loopback(host):
            raise socket.gaierror(socket.EAI_NONAME, f"the tests reach loopback only, not {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    def refused(address: Any) -> bool:
        return isinstance(address, tuple) and not is_loopback(address[0])

    def connect(self: socket.socket, address: Any) -> None:
        if refused(address):
            raise ConnectionRefusedError(f"the tests reach loopback only, not {address!r}")
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if refused(address):
            raise ConnectionRefusedError(f"the tests reach loopback only, not {address!r}")
        return real_connect_ex(self, address)

    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    try:
        yield
    finally:
        socket.getaddrinfo = real_getaddrinfo
        socket.socket.connect = real_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = real_connect_ex  # type: ignore[method-assign]
