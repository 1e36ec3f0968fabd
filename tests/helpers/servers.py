"""A server of the standard library (`http.server`, `socketserver`) run in a thread of its own for
the length of a `with`: what the tests' small stand-ins for other servers (a redirecting page, a
refusing server, a forward proxy) are served by, on 127.0.0.1."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def served(server: socketserver.TCPServer) -> Iterator[str]:
    """`http://127.0.0.1:PORT` of `server` (bound already) while it serves; shut down after."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
