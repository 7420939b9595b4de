"""A small forward proxy on 127.0.0.1, as corporate egress proxies behave, for egress tests.

``CONNECT host:port`` opens a tunnel (200, then bytes both ways untouched: TLS passes through
end to end); a request in absolute form (``POST http://host:port/path``) is forwarded to that
origin in origin form, without the ``Proxy-Authorization`` header, and its answer relayed back
(one request per client connection, then both sides close, as a proxy may). With
``credentials`` (``user:password``) every request must carry them as
``Proxy-Authorization: Basic``, or gets 407. Every request the proxy saw is logged, with the
credentials it received, so tests can check what reached the proxy and what did not reach the
origin.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from tests.fakes.server import _bound_socket, _LoopThread


@dataclass
class Seen:
    method: str
    target: str
    authorization: str | None


@dataclass
class ProxyLog:
    credentials: str | None = None
    seen: list[Seen] = field(default_factory=list)
    forwarded_heads: list[bytes] = field(default_factory=list)  # what origins received

    def targets(self) -> list[str]:
        return [f"{s.method} {s.target}" for s in self.seen]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(Exception):
        writer.close()


def _header(head: bytes, name: bytes) -> str | None:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip().decode("latin-1")
    return None


class _Proxy:
    def __init__(self, log: ProxyLog) -> None:
        self.log = log

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            writer.close()
            return
        method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        authorization = _header(head, b"proxy-authorization")
        self.log.seen.append(Seen(method, target, authorization))
        wanted = self.log.credentials
        if wanted is not None and authorization != (
            "Basic " + base64.b64encode(wanted.encode()).decode()
        ):
            writer.write(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                b'proxy-authenticate: Basic realm="egress"\r\ncontent-length: 0\r\n\r\n'
            )
            await writer.drain()
            writer.close()
            return
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            return
        await self._forward(head, method, target, reader, writer)

    async def _forward(
        self,
        head: bytes,
        method: str,
        target: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        url = urlsplit(target)
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        lines = [f"{method} {path} HTTP/1.1".encode()]
        for line in head.split(b"\r\n")[1:]:
            name = line.partition(b":")[0].strip().lower()
            if line and name not in (b"proxy-authorization", b"connection", b"keep-alive"):
                lines.append(line)
        lines.append(b"connection: close")
        forwarded = b"\r\n".join(lines) + b"\r\n\r\n"
        self.log.forwarded_heads.append(forwarded)
        length = int(_header(head, b"content-length") or 0)
        body = await reader.readexactly(length) if length else b""
        up_reader, up_writer = await asyncio.open_connection(url.hostname, url.port or 80)
        up_writer.write(forwarded + body)
        await _pipe(up_reader, writer)
        up_writer.close()


@contextlib.contextmanager
def serve_proxy(credentials: str | None = None) -> Iterator[tuple[str, ProxyLog]]:
    """Run the proxy; yields its URL (``http://127.0.0.1:PORT``, no credentials) and its log."""
    log = ProxyLog(credentials)
    thread = _LoopThread("fake-proxy")
    sock = _bound_socket()
    proxy = _Proxy(log)

    async def start() -> asyncio.Server:
        return await asyncio.start_server(proxy.handle, sock=sock)

    server = thread.run(start())
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", log
    finally:
        # The server's bookkeeping is not thread-safe: close it on its own loop, where the
        # connection handlers that detach from it also run.
        thread.call(server.close)
        thread.stop()
