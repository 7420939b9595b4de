"""The plain-ASGI layers every request passes, outermost first.

``LastResortMiddleware`` turns an unexpected exception into the ``internal_error`` envelope (still
with ``X-Request-Id``); ``RequestIdMiddleware`` accepts or generates the request id, creates the
``RequestContext`` and echoes the id on every response; ``TelemetryMiddleware`` reports each
request once, as one access-log line and its HTTP metrics. None of them buffers a body, so
streams pass straight through.
"""

from __future__ import annotations

import base64
import os
import re
import time
from typing import TYPE_CHECKING

import structlog

from gateway.asgi import CONTEXT_KEY, ASGIApp, Message, Receive, RequestContext, Scope, Send
from gateway.errors import GatewayError, envelope

if TYPE_CHECKING:
    from gateway.metrics import Metrics

_CLIENT_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
_RFC_TO_CROCKFORD = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
)
_log = structlog.get_logger("beatra.gateway")


def new_request_id() -> str:
    """``req_`` + 26 chars: a millisecond timestamp then randomness, sortable like a ULID."""
    raw = (time.time_ns() // 1_000_000).to_bytes(6, "big") + os.urandom(10)
    return "req_" + base64.b32encode(raw)[:26].translate(_RFC_TO_CROCKFORD).decode()


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        offered = headers.get(b"x-request-id")
        if offered is not None and _CLIENT_ID.fullmatch(offered):
            request_id = offered.decode()
        else:
            request_id = new_request_id()
        ctx = RequestContext(request_id=request_id, headers=headers, started=time.perf_counter())
        scope[CONTEXT_KEY] = ctx
        id_header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                ctx.status = message["status"]
                ctx.response_started = True
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        await self.app(scope, receive, send_with_id)


class TelemetryMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ctx: RequestContext = scope[CONTEXT_KEY]
        self.metrics.inflight.inc()
        try:
            await self.app(scope, receive, send)
        except BaseException:
            if not ctx.response_started:
                ctx.status = 500
                ctx.error_code = "internal_error"
            raise
        finally:
            self.metrics.inflight.dec()
            self._report(scope, ctx)

    def _report(self, scope: Scope, ctx: RequestContext) -> None:
        duration = ctx.elapsed()
        # A client that went away before its answer is logged as 499, the de facto convention.
        status = 499 if ctx.disconnected else ctx.status
        self.metrics.observe_request(ctx.route, scope["method"], status, duration, ctx)
        _log.info(
            "request",
            request_id=ctx.request_id,
            method=scope["method"],
            route=ctx.route,
            status=status,
            duration_ms=round(duration * 1000, 3),
            key=ctx.key_name,
            error_code=ctx.error_code,
            model=ctx.model_asked,
            model_served=ctx.model_served,
            provider=ctx.provider,
            attempts=ctx.attempts,
            stream=ctx.stream,
            ttft_ms=None if ctx.ttft is None else round(ctx.ttft * 1000, 3),
            prompt_tokens=ctx.prompt_tokens,
            completion_tokens=ctx.completion_tokens,
            replayed=ctx.replayed,
        )


class LastResortMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception:
            ctx: RequestContext | None = scope.get(CONTEXT_KEY)
            request_id = ctx.request_id if ctx else new_request_id()
            _log.exception("unhandled_error", request_id=request_id)
            if ctx is not None and ctx.response_started:
                return  # a response is under way: nothing valid can be appended to it
            body = envelope(GatewayError("internal_error"), request_id)
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"x-request-id", request_id.encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
