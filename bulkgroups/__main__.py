"""The `bulkgroups` process: `python -m bulkgroups` and the `bulkgroups` script both start here.

`script` runs the command (`cli.main`) and, once it is over, freezes the garbage collector
before the interpreter tears itself down. Teardown ends with a full collection that walks every
object the process holds — some 100,000 of them after aiohttp, anyio, rich and the engine are
imported — which took 80 to 130 ms of every command's run, as long as a whole request window
of a short job (measured: `python -c` importing what `apply` imports exits in ~90 ms, ~15 ms
frozen). Freezing skips that last walk: modules are still cleared and atexit handlers run, and
what reference counting frees is freed (files closed and flushed) as before; only objects held
in reference cycles are no longer finalized. Nothing the command writes depends on that: its
outputs are closed by `with`, and it closes its ledger, lock, sessions and servers itself before
returning (the package defines no `__del__` or `weakref.finalize`). The library and the tests
call `cli.main`, never this: a process that goes on must keep collecting.
"""

from __future__ import annotations

import gc
from typing import NoReturn

from .cli import main

__all__ = ["script"]


def script() -> NoReturn:
    try:
        main()
    finally:
        gc.freeze()


if __name__ == "__main__":
    script()
