"""Raw scripted HTTP/1.1 servers for testing the gateway's own upstream client
(``providers/http/h1.py``): each writes exactly the bytes a test scripts, so framing, keep-alive and
failure cases can be produced at will. Tests drive the client through ``HttpUpstream`` as the
adapters do, on the stdlib loop and on uvloop.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvloop

from providers.base import ProviderSettings, UpstreamError
from providers.http.upstream import HttpUpstream
from tests.fakes.server import _LoopThread

JSON_OK = b'{"ok":true}'


def ok(body: bytes = JSON_OK, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n%scontent-length: %d\r\n\r\n%s"
        % (
            extra,
            len(body),
            body,
        )
    )


@dataclass
class Request:
    head: bytes
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name:
                return value.strip()
        return None


Script = Callable[[Request, asyncio.StreamWriter, int], Awaitable[bool]]


@dataclass
class RawServer:
    """Answers each request with ``script(request, writer, index)``; False closes the socket."""

    script: Script
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    requests: list[Request] = field(default_factory=list)
    port: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def until_requests(self, count: int) -> None:
        while len(self.requests) < count:
            self.arrived.clear()
            await self.arrived.wait()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                request = Request(head, b"")
                length = int(request.header(b"content-length") or 0)
                request.body = await reader.readexactly(length)
                self.requests.append(request)
                self.arrived.set()
                if not await self.script(request, writer, len(self.requests) - 1):
                    return
                await writer.drain()
        finally:
            self.open_now -= 1
            writer.close()


async def reset(writer: asyncio.StreamWriter) -> bool:
    """Send what was written, then close abortively: the peer reads those bytes, then a reset
    (TCP RST) instead of a clean end of stream. Returns False, to end the script's connection."""
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
    return False


def run(test: Callable[[], Coroutine[Any, Any, None]], loop_kind: str) -> None:
    if loop_kind == "uvloop":
        uvloop.run(test())
    else:
        asyncio.run(test())


async def serve(
    script: Script, tls: ssl.SSLContext | None = None
) -> tuple[RawServer, asyncio.Server]:
    raw = RawServer(script)
    server = await asyncio.start_server(raw.handle, "127.0.0.1", 0, ssl=tls)
    raw.port = server.sockets[0].getsockname()[1]
    return raw, server


def upstream(port: int, scheme: str = "http", **settings: Any) -> HttpUpstream:
    base = ProviderSettings(
        name="raw", kind="openai", base_url=f"{scheme}://127.0.0.1:{port}/v1", **settings
    )
    return HttpUpstream(base, {"authorization": "Bearer upstream-secret"})


def mapper(status: int, body: bytes, headers: Any, scrubber: Any = None) -> UpstreamError:
    return UpstreamError("server", f"status {status}: {body.decode()}")


async def post(up: HttpUpstream, headers: dict[str, str] | None = None) -> bytes:
    return await up.post_json(
        "/chat/completions", b'{"model":"m"}', headers or {"x-request-id": "req_1"}, mapper
    )


async def always_ok(request: Request, writer: asyncio.StreamWriter, index: int) -> bool:
    """A script answering every request with ``ok()`` on a kept-alive connection."""
    writer.write(ok())
    return True


@contextlib.asynccontextmanager
async def scripted(
    script: Script, **settings: Any
) -> AsyncIterator[tuple[RawServer, HttpUpstream]]:
    """A raw server answering with ``script`` and a started client of it (provider
    ``settings`` passed on); both closed on the way out."""
    raw, server = await serve(script)
    up = upstream(raw.port, **settings)
    await up.start()
    try:
        yield raw, up
    finally:
        await up.close()
        server.close()


@contextlib.contextmanager
def serve_in_thread(script: Script) -> Iterator[tuple[RawServer, str]]:
    """A raw server answering with ``script`` on a loop of its own (for a gateway to call);
    yields it and its base URL."""
    thread = _LoopThread("raw-upstream")
    raw, server = thread.run(serve(script))
    try:
        yield raw, f"http://127.0.0.1:{raw.port}"
    finally:
        # Closed on its own loop: the server's bookkeeping is not thread-safe.
        thread.call(server.close)
        thread.stop()


async def pool_drained(up: HttpUpstream) -> None:
    """Wait (at most 5 s) until the client's pool holds no open connection."""
    pool = up._pool
    assert pool is not None
    for _ in range(500):
        if pool.open_connections == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{pool.open_connections} connections still open")


LOOPS = pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
