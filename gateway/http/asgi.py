"""The lean request/response layer the endpoints use: plain ASGI, no framework objects.

A ``Request`` bundles the ASGI triple with the per-request ``RequestContext`` (what the access log
and metrics report); the ``respond_*`` helpers write whole responses. Streaming endpoints send
their own messages through ``Request.send``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
RawHeaders = list[tuple[bytes, bytes]]

JSON_HEADERS: RawHeaders = [(b"content-type", b"application/json")]
CONTEXT_KEY = "beatra.ctx"


@dataclass(slots=True)
class RequestContext:
    """What one request did, filled in along the way and reported once at its end."""

    request_id: str
    headers: dict[bytes, bytes]
    started: float
    route: str = "unmatched"
    status: int = 0
    response_started: bool = False
    key_name: str | None = None
    error_code: str | None = None
    model_asked: str | None = None
    model_served: str | None = None
    provider: str | None = None
    attempts: int = 0
    stream: bool = False
    ttft: float | None = None
    upstream_seconds: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    replayed: bool = False
    disconnected: bool = False
    span: Any = None  # the request's trace span, when traces are on (gateway.telemetry)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started


class Request:
    """One HTTP request as an endpoint sees it."""

    __slots__ = ("ctx", "params", "receive", "scope", "send")

    def __init__(
        self, scope: Scope, receive: Receive, send: Send, params: dict[str, str] | None = None
    ) -> None:
        self.scope = scope
        self.receive = receive
        self.send = send
        self.ctx: RequestContext = scope[CONTEXT_KEY]
        self.params = params or {}

    def header(self, name: bytes) -> bytes | None:
        return self.ctx.headers.get(name)

    @property
    def method(self) -> str:
        return str(self.scope["method"])

    @property
    def path(self) -> str:
        return str(self.scope["path"])

    async def respond_bytes(
        self, status: int, body: bytes, headers: RawHeaders = JSON_HEADERS
    ) -> None:
        await self.send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())],
            }
        )
        await self.send({"type": "http.response.body", "body": body})

    async def respond_json(self, status: int, data: Any, headers: RawHeaders | None = None) -> None:
        extra = JSON_HEADERS if headers is None else [*JSON_HEADERS, *headers]
        await self.respond_bytes(status, orjson.dumps(data), extra)
