"""The floor again, on the gateway's own upstream client (``providers/http/h1.py``), not aiohttp.

``bench/floor.py`` is the floor the targets are judged against: a minimal passthrough on the
fastest client library. The gateway's chat path runs on a client of its own that is cheaper than
aiohttp, so this variant shows the other comparison too: what the gateway's features cost on top
of the same client. Same shape as the floor: read the body, POST it upstream, answer with the
status and body (whole, or chunk by chunk for an event stream). nginx only (no timed upstream).
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from bench.floor import serve_floor
from providers.http.framing import Origin
from providers.http.h1_pool import H1Pool

Message = MutableMapping[str, Any]


class LeanFloor:
    def __init__(self, upstream: str) -> None:
        self.origin = Origin.parse(upstream)
        self.pool: H1Pool | None = None

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] == "lifespan":
            await receive()  # lifespan.startup
            self.pool = H1Pool(self.origin, max_connections=2048, connect_timeout=5)
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown
            await self.pool.close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        assert self.pool is not None and scope["type"] == "http"
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        head = b"POST %s HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\n" % (
            scope["path"].encode(),
            self.origin.host_header,
        )
        conn = await self.pool.acquire(60)
        try:
            conn.send(
                head + b"content-length: %d\r\n\r\n" % len(body) + body,
                stream=True,
                limit=1 << 30,
                read_timeout=60,
            )
            status, headers = await conn.read_head()
            kind = headers.get("content-type", "application/json").encode()
            if not kind.startswith(b"text/event-stream"):
                data = await conn.read_whole()
                length = (b"content-length", str(len(data)).encode())
                await send(
                    {
                        "type": "http.response.start",
                        "status": status,
                        "headers": [(b"content-type", kind), length],
                    }
                )
                await send({"type": "http.response.body", "body": data})
                return
            conn.stop_deadline()
            start = {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", kind)],
            }
            await send(start)
            while part := await conn.read_some():
                await send({"type": "http.response.body", "body": part, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            self.pool.release(conn)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", default="http://127.0.0.1:18180")
    parser.add_argument("--port", type=int, default=18184)
    args = parser.parse_args()
    serve_floor(LeanFloor(args.upstream), args.port)


if __name__ == "__main__":
    main()
