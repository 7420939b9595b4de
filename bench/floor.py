"""The benchmark's floor: the least a Python ASGI proxy can do, to compare the gateway against.

A pure-ASGI app served like the gateway (uvicorn, uvloop, httptools, one worker, no access log)
that reads the POST body, forwards it to ``upstream + path`` through one pooled
``aiohttp.ClientSession`` and answers with the upstream's status and body: whole with a
content-length, or chunk by chunk for an event stream. Paths under ``/timed/`` go to the timed
upstream instead of nginx. No auth, validation, logging or metrics.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp
import uvicorn

Message = MutableMapping[str, Any]


class Floor:
    def __init__(self, upstream: str, timed_upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.timed_upstream = timed_upstream.rstrip("/")
        self.session: aiohttp.ClientSession | None = None

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] == "lifespan":
            await receive()  # lifespan.startup
            connector = aiohttp.TCPConnector(limit=2048, limit_per_host=0)
            self.session = aiohttp.ClientSession(connector=connector)
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown
            await self.session.close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        assert self.session is not None and scope["type"] == "http"
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        path: str = scope["path"]
        base = self.timed_upstream if path.startswith("/timed/") else self.upstream
        headers = {"content-type": "application/json"}
        async with self.session.post(base + path, data=body, headers=headers) as up:
            kind = up.headers.get("content-type", "application/json").encode()
            if not kind.startswith(b"text/event-stream"):
                data = await up.read()
                length = (b"content-length", str(len(data)).encode())
                await send(
                    {
                        "type": "http.response.start",
                        "status": up.status,
                        "headers": [(b"content-type", kind), length],
                    }
                )
                await send({"type": "http.response.body", "body": data})
                return
            await send(
                {
                    "type": "http.response.start",
                    "status": up.status,
                    "headers": [(b"content-type", kind)],
                }
            )
            async for part in up.content.iter_any():
                await send({"type": "http.response.body", "body": part, "more_body": True})
            await send({"type": "http.response.body", "body": b""})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", default="http://127.0.0.1:18180")
    parser.add_argument("--timed-upstream", default="http://127.0.0.1:18181")
    parser.add_argument("--port", type=int, default=18182)
    args = parser.parse_args()
    serve_floor(Floor(args.upstream, args.timed_upstream), args.port)


def serve_floor(app: Any, port: int) -> None:
    """Serve a floor as the gateway is served: uvicorn, uvloop, httptools, no access log."""
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        server_header=False,
    )


if __name__ == "__main__":
    main()
