"""Serving the simulator: in its own thread and event loop for tests, or in the foreground for
`bulkgroups sandbox`.

A thread of its own keeps arrival times honest: the simulator stamps requests on a loop that the
client under test cannot stall, which matters for rate-limit assertions on a 2-core machine.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from aiohttp import web

from bulkgroups.model import RateSpec, parse_rate
from bulkgroups.simulator.app import create_app
from bulkgroups.simulator.faults import FaultSpec, parse_faults
from bulkgroups.simulator.service import DEFAULT_RATE, SimConfig, Simulator

__all__ = ["run_in_thread", "run_sandbox"]

# In-flight handlers are short; do not let a lingering client hold up shutdown for aiohttp's 60 s.
_SHUTDOWN_TIMEOUT = 2.0


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def _start(simulator: Simulator, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(
        create_app(simulator),
        access_log=None,
        handle_signals=False,
        shutdown_timeout=_SHUTDOWN_TIMEOUT,
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_port = runner.addresses[0][1]
    simulator.served_at(_url(host, bound_port))
    return runner


class _ServerThread(threading.Thread):
    """Owns one event loop from `asyncio.run` to its close; stopped from any thread."""

    def __init__(self, simulator: Simulator, host: str, port: int) -> None:
        super().__init__(name="bulkgroups-simulator", daemon=True)
        self._simulator = simulator
        self._host = host
        self._port = port
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # reported to the starting thread, not lost in this one
            self.error = error
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        runner = await _start(self._simulator, self._host, self._port)
        try:
            self._loop = asyncio.get_running_loop()
            self._stopping = asyncio.Event()
            self._ready.set()
            await self._stopping.wait()
        finally:
            await runner.cleanup()

    def wait_ready(self) -> None:
        self._ready.wait()
        if self.error is not None:
            raise RuntimeError("the simulator failed to start") from self.error

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None and self.is_alive():
            self._loop.call_soon_threadsafe(self._stopping.set)
        self.join()


@contextmanager
def run_in_thread(
    config: SimConfig | None = None,
    *,
    simulator: Simulator | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> Iterator[Simulator]:
    """Serve a simulator on `host` (port 0: a free one) in its own thread and event loop.

    Yields the `Simulator` with `.url` and `.api_key` set, its inspection API usable from the
    calling thread; on exit the server shuts down and its loop is closed.
    """
    served = simulator if simulator is not None else Simulator(config)
    thread = _ServerThread(served, host, port)
    thread.start()
    try:
        thread.wait_ready()
        yield served
    finally:
        thread.stop()
        served.served_at(None)


def _print_flushed(line: str) -> None:
    print(line, flush=True)


def run_sandbox(
    host: str = "127.0.0.1",
    port: int = 0,
    api_key: str | None = None,
    rate: RateSpec | str | None = None,
    faults: FaultSpec | str | None = None,
    seed: int = 0,
    print_fn: Callable[[str], None] = _print_flushed,
) -> None:
    """Serve in the foreground until SIGINT or SIGTERM (`bulkgroups sandbox`).

    Prints `URL: http://HOST:PORT` and `API key: KEY` through `print_fn` once listening; the
    default prints and flushes. Bad `rate` / `faults` raise ValueError before anything starts.
    """
    config = SimConfig(
        api_key=api_key,
        rate=DEFAULT_RATE
        if rate is None
        else rate
        if isinstance(rate, RateSpec)
        else parse_rate(rate),
        faults=(
            FaultSpec()
            if faults is None
            else faults
            if isinstance(faults, FaultSpec)
            else parse_faults(faults)
        ),
        seed=seed,
    )
    asyncio.run(_sandbox(Simulator(config), host, port, print_fn))


async def _sandbox(
    simulator: Simulator, host: str, port: int, print_fn: Callable[[str], None]
) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    installed: list[signal.Signals] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stopping.set)
            installed.append(signum)
        except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
            pass
    runner = await _start(simulator, host, port)
    try:
        print_fn(f"URL: {simulator.url}")
        print_fn(f"API key: {simulator.api_key}")
        await stopping.wait()
    finally:
        await runner.cleanup()
        simulator.served_at(None)
        for signum in installed:
            loop.remove_signal_handler(signum)
