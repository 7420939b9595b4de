"""Run real HTTP servers for tests on 127.0.0.1, each in its own thread and event loop.

Fake upstreams are aiohttp.web applications (so a fault can abort the TCP connection itself);
the gateway runs under uvicorn exactly as in production. Tests talk to both over real sockets,
and can look inside: the tasks on a server's loop, the TCP sockets the process holds open.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import uvicorn
import uvloop
from aiohttp import web

T = TypeVar("T")


def _bound_socket() -> socket.socket:
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and without
    # it every small response waits for the peer's delayed ACK (about 40 ms).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
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
    """An ASGI app under a real uvicorn server (uvloop, httptools) in a background thread."""

    def __init__(self, app: Any, **config: Any) -> None:
        self._sock = _bound_socket()
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        options: dict[str, Any] = {
            "log_level": "warning",
            "access_log": False,
            "lifespan": "on",
            "loop": "uvloop",
            "http": "httptools",
            "timeout_graceful_shutdown": 2,
        }
        options.update(config)
        self._server = uvicorn.Server(uvicorn.Config(app, **options))
        self._thread = threading.Thread(target=self._run, name="gateway", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None

    def _run(self) -> None:
        uvloop.run(self._serve())  # the loop the gateway runs on in production

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._server.serve(sockets=[self._sock])

    def call_in_loop(self, fn: Callable[[], T], timeout: float = 5.0) -> T:
        """Run ``fn`` on the server's own loop thread and return its result: the way to inspect
        the loop (e.g. count its tasks) without racing it."""
        if self._loop is None:
            raise RuntimeError("server not started")
        done: Future[T] = Future()

        def run() -> None:
            try:
                done.set_result(fn())
            except BaseException as exc:  # handed to the waiting thread
                done.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return done.result(timeout)

    def await_in_loop(self, coroutine: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        """Run ``coroutine`` on the server's own loop and wait for its result."""
        if self._loop is None:
            raise RuntimeError("server not started")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    @property
    def app(self) -> Any:
        """The ASGI application being served."""
        return self._server.config.app

    def cpu_seconds(self) -> float:
        """CPU time the server's own thread (its event loop) has used so far: what one request
        cost the gateway, apart from the test's clients in the same process. Linux only."""
        ident = self._thread.ident
        if ident is None:
            raise RuntimeError("server not started")
        return time.clock_gettime(time.pthread_getcpuclockid(ident))

    def task_count(self) -> int:
        """Asyncio tasks alive on the server's loop (requests, watchers, background jobs)."""
        return self.call_in_loop(lambda: len(asyncio.all_tasks()))

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


def open_tcp_sockets(*, local_port: int | None = None, remote_port: int | None = None) -> int:
    """TCP sockets this process holds open (listening ones aside) on a loopback port.

    Servers and clients of a test share one process, so the side matters: ``remote_port`` counts
    connections made *to* that port (e.g. the gateway's pool towards an upstream), ``local_port``
    the ones accepted *on* it. Linux only: file descriptors matched against ``/proc/net/tcp``.
    """
    inodes = set()
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            target = fd.readlink().name
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
                if inode not in inodes or state == "0A":  # 0A: LISTEN
                    continue
                if local_port is not None and int(local.rsplit(":", 1)[1], 16) != local_port:
                    continue
                if remote_port is not None and int(remote.rsplit(":", 1)[1], 16) != remote_port:
                    continue
                count += 1
    return count
