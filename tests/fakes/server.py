"""Run real HTTP servers for tests on 127.0.0.1, each in its own thread and event loop.

Fake upstreams are aiohttp.web applications (so a fault can abort the TCP connection itself);
the gateway runs under uvicorn exactly as in production. Tests talk to both over real sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import uvicorn
from aiohttp import web


def _bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


class _LoopThread:
    """A daemon thread running one asyncio loop until ``stop``."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Awaitable[Any], timeout: float = 10.0) -> Any:
        async def wrapper() -> Any:
            return await coro

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(timeout)

    def call(self, fn: Callable[[], Any]) -> None:
        self.loop.call_soon_threadsafe(fn)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        with contextlib.suppress(RuntimeError):
            self.loop.close()


@contextlib.contextmanager
def serve_aiohttp(app: web.Application) -> Iterator[str]:
    """Serve an aiohttp application; yields its base URL (``http://127.0.0.1:PORT``)."""
    thread = _LoopThread("fake-upstream")
    sock = _bound_socket()
    port = sock.getsockname()[1]
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)

    async def start() -> None:
        await runner.setup()
        await web.SockSite(runner, sock).start()

    thread.run(start())
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(Exception):
            thread.run(runner.cleanup())
        thread.stop()


class UvicornServer:
    """An ASGI app under a real uvicorn server in a background thread."""

    def __init__(self, app: Any, **config: Any) -> None:
        self._sock = _bound_socket()
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        options: dict[str, Any] = {
            "log_level": "warning",
            "access_log": False,
            "lifespan": "on",
            "loop": "asyncio",
            "http": "httptools",
            "timeout_graceful_shutdown": 2,
        }
        options.update(config)
        self._server = uvicorn.Server(uvicorn.Config(app, **options))
        self._thread = threading.Thread(target=self._run, name="gateway", daemon=True)

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._sock]))

    def start(self) -> UvicornServer:
        self._thread.start()
        for _ in range(500):
            if self._server.started:
                return self
            if not self._thread.is_alive():
                raise RuntimeError("server failed to start")
            threading.Event().wait(0.01)
        raise RuntimeError("server did not start in time")

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()

    def __enter__(self) -> UvicornServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
